//! The table `inet bulwark_policy`, written from a [`Plan`]: sets of pod
//! addresses (isolated pods, each policy's targets, each rule's peers and
//! named ports), base chains on `forward` and `input`, and one `ingress`
//! and one `egress` chain holding every rule. A rule that allows the
//! traffic `return`s; a chain that reaches its end drops. The whole table
//! is replaced in one transaction, whatever its size.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::plan::{Plan, PlannedRule, Ranges};

/// The table's name (family `inet`).
pub const TABLE: &str = "bulwark_policy";

/// The nftables text of the table for `plan`, replacing what was there
/// (what [`crate::PodNetwork::sync_policy`] applies).
pub fn render(plan: &Plan) -> String {
    let mut sets = String::new();
    let mut ingress = String::new();
    let mut egress = String::new();
    set(
        &mut sets,
        "ingress_isolated",
        "ipv4_addr",
        false,
        addrs(&plan.ingress_isolated),
    );
    set(
        &mut sets,
        "egress_isolated",
        "ipv4_addr",
        false,
        addrs(&plan.egress_isolated),
    );
    for (n, policy) in plan.policies.iter().enumerate() {
        let targets = format!("p{n}_targets");
        set(
            &mut sets,
            &targets,
            "ipv4_addr",
            false,
            addrs(&policy.targets),
        );
        let name = comment(&policy.name);
        for (dir, label, rules, out, local, remote) in [
            (
                "in",
                "ingress",
                &policy.ingress,
                &mut ingress,
                "daddr",
                "saddr",
            ),
            (
                "out",
                "egress",
                &policy.egress,
                &mut egress,
                "saddr",
                "daddr",
            ),
        ] {
            for rule in rules {
                let prefix = format!("p{n}_{dir}{}", rule.index);
                let what = format!("{name} {label} {}", rule.index);
                rule_lines(
                    &mut sets, out, rule, &prefix, &targets, local, remote, &what,
                );
            }
        }
    }
    format!(
        "table inet {TABLE}
delete table inet {TABLE}
table inet {TABLE} {{
{sets}\tchain forward {{
\t\ttype filter hook forward priority filter; policy accept;
\t\tct state established,related accept
\t\tip saddr @egress_isolated jump egress
\t\tip daddr @ingress_isolated jump ingress
\t}}
\tchain input {{
\t\ttype filter hook input priority filter; policy accept;
\t\tct state established,related accept
\t\tip saddr @egress_isolated jump egress
\t}}
\tchain ingress {{
{ingress}\t\tdrop
\t}}
\tchain egress {{
{egress}\t\tdrop
\t}}
}}
"
    )
}

/// Removes the table (and nothing else); a no-op when it is absent.
pub(crate) fn render_delete() -> String {
    format!("table inet {TABLE}\ndelete table inet {TABLE}\n")
}

#[allow(clippy::too_many_arguments)] // one line of nft, spelled out
fn rule_lines(
    sets: &mut String,
    out: &mut String,
    rule: &PlannedRule,
    prefix: &str,
    targets: &str,
    local: &str,
    remote: &str,
    what: &str,
) {
    let mut head = format!("ip {local} @{targets}");
    if let Some(peers) = &rule.peers {
        let name = format!("{prefix}_peers");
        set(sets, &name, "ipv4_addr", true, ranges(peers));
        let _ = write!(head, " ip {remote} @{name}");
    }
    let line = |out: &mut String, matcher: &str| {
        let _ = writeln!(out, "\t\t{head}{matcher} return comment \"{what}\"");
    };
    let Some(ports) = &rule.ports else {
        line(out, "");
        return;
    };
    for (protocol, range) in &ports.ranges {
        let dport = match range {
            None => String::new(),
            Some((lo, hi)) if lo == hi => format!(" th dport {lo}"),
            Some((lo, hi)) => format!(" th dport {lo}-{hi}"),
        };
        line(out, &format!(" meta l4proto {}{dport}", protocol.nft()));
    }
    if !ports.named.is_empty() {
        let name = format!("{prefix}_named");
        let elements = ports
            .named
            .iter()
            .map(|(ip, protocol, port)| format!("{ip} . {} . {port}", protocol.nft()))
            .collect();
        set(
            sets,
            &name,
            "ipv4_addr . inet_proto . inet_service",
            false,
            elements,
        );
        line(out, &format!(" ip daddr . meta l4proto . th dport @{name}"));
    }
}

fn set(out: &mut String, name: &str, kind: &str, interval: bool, elements: Vec<String>) {
    let _ = writeln!(out, "\tset {name} {{\n\t\ttype {kind}");
    if interval {
        let _ = writeln!(out, "\t\tflags interval");
    }
    if !elements.is_empty() {
        let _ = writeln!(out, "\t\telements = {{ {} }}", elements.join(", "));
    }
    let _ = writeln!(out, "\t}}");
}

fn addrs<'a>(ips: impl IntoIterator<Item = &'a Ipv4Addr>) -> Vec<String> {
    ips.into_iter().map(Ipv4Addr::to_string).collect()
}

fn ranges(ranges: &Ranges) -> Vec<String> {
    ranges
        .0
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                Ipv4Addr::from(lo).to_string()
            } else {
                format!("{}-{}", Ipv4Addr::from(lo), Ipv4Addr::from(hi))
            }
        })
        .collect()
}

/// Object names are DNS labels; anything else becomes `_`, so nothing from
/// the API can end the quoted comment.
fn comment(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-./".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
