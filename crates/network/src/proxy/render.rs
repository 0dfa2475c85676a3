//! The service proxy's table as nftables text, laid out as upstream
//! kube-proxy's nftables mode lays out its `kube-proxy` table: verdict maps
//! keyed by `address . protocol . port` jump to one chain per service port,
//! which picks an endpoint chain with `numgen random`; the endpoint chain
//! marks hairpin traffic for masquerade and DNATs. No IO here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use super::{Endpoint, HostPort, Protocol, ProxyConfig, ServicePort};

/// The table the proxy owns (`table ip bulwark_proxy`).
pub(crate) const TABLE: &str = "bulwark_proxy";

/// The packet mark bit asking for masquerade (upstream's 0x4000).
const MASQUERADE_MARK: &str = "0x4000";

/// The maps and sets whose elements every sync rewrites whole.
const STATIC_MAPS: [(&str, &str); 6] = [
    ("set", "cluster-ips"),
    ("set", "nodeport-ips"),
    ("map", "no-endpoint-services"),
    ("map", "no-endpoint-nodeports"),
    ("map", "service-ips"),
    ("map", "service-nodeports"),
];

/// What a sync left in the table besides the fixed maps: every chain with
/// its rules (a later sync rewrites only the chains that changed), and the
/// affinity sets (whose contents — clients and their endpoints — must
/// outlive a sync, so they are never recreated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Objects {
    chains: BTreeMap<String, String>,
    sets: BTreeSet<String>,
}

#[cfg(test)]
impl Objects {
    /// How many per-service chains the table holds.
    pub(crate) fn chains(&self) -> usize {
        self.chains.len()
    }
}

/// A ruleset and what it leaves in the table.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    /// The `nft -f -` input: one transaction.
    pub(crate) text: String,
    /// What the table holds once it is applied.
    pub(crate) objects: Objects,
}

/// Renders the table. Without `previous` (first sync, or after a failed
/// one) the table is deleted and made afresh. With it (what the last
/// applied sync left), the transaction rewrites the maps whole but touches
/// only the chains that changed: a changed chain is flushed and refilled,
/// a new one added, one no longer wanted flushed and deleted; affinity
/// sets still wanted keep their entries. One endpoint changing at 1,000
/// Services is a few chains, not the whole table (upstream's reason for
/// the same design).
pub(crate) fn render(
    config: &ProxyConfig,
    services: &[ServicePort],
    host_ports: &[HostPort],
    previous: Option<&Objects>,
) -> Rendered {
    let mut body = Body::default();
    for service in services {
        body.service(config, service);
    }
    for host_port in host_ports {
        body.host_port(host_port);
    }
    let mut chains: Vec<(String, String)> = fixed_chains(&body.host_port_rules)
        .into_iter()
        .map(|(name, rules)| (name, rule_lines(&rules)))
        .collect();
    chains.append(&mut body.chains);
    let objects = Objects {
        chains: chains.iter().cloned().collect(),
        sets: body.affinity_sets.iter().map(|(n, _)| n.clone()).collect(),
    };

    let mut text = String::new();
    let mut wanted: Vec<&(String, String)> = chains.iter().collect();
    match previous {
        None => {
            let _ = writeln!(text, "table ip {TABLE}\ndelete table ip {TABLE}");
        }
        Some(previous) => {
            let _ = writeln!(text, "add table ip {TABLE}");
            for (kind, name) in STATIC_MAPS {
                let _ = writeln!(text, "flush {kind} ip {TABLE} {name}");
            }
            wanted.retain(|(name, rules)| previous.chains.get(name) != Some(rules));
            for (name, _) in &wanted {
                if previous.chains.contains_key(name) {
                    let _ = writeln!(text, "flush chain ip {TABLE} {name}");
                }
            }
            // Stale chains may refer to each other: empty them all first.
            let stale: Vec<&String> = previous
                .chains
                .keys()
                .filter(|name| !objects.chains.contains_key(*name))
                .collect();
            for name in &stale {
                let _ = writeln!(text, "flush chain ip {TABLE} {name}");
            }
            for name in &stale {
                let _ = writeln!(text, "delete chain ip {TABLE} {name}");
            }
            for set in previous.sets.difference(&objects.sets) {
                let _ = writeln!(text, "delete set ip {TABLE} {set}");
            }
        }
    }
    let _ = writeln!(text, "table ip {TABLE} {{");
    text.push_str(&body.declarations(config));
    for (name, rules) in wanted {
        let _ = write!(text, "\tchain {name} {{\n{rules}\t}}\n");
    }
    text.push_str("}\n");
    Rendered { text, objects }
}

/// Removes the table (and nothing else); a no-op when it is absent.
pub(crate) fn render_delete() -> String {
    format!("table ip {TABLE}\ndelete table ip {TABLE}\n")
}

/// The per-service part, built up service by service.
#[derive(Default)]
struct Body {
    cluster_ips: BTreeSet<Ipv4Addr>,
    service_ips: Vec<String>,
    service_nodeports: Vec<String>,
    no_endpoint_services: Vec<String>,
    no_endpoint_nodeports: Vec<String>,
    /// Affinity sets: name, timeout in seconds.
    affinity_sets: Vec<(String, u32)>,
    /// The `hostports` chain's rules.
    host_port_rules: Vec<String>,
    /// Cluster IP and NodePort keys already in the maps.
    claimed: BTreeSet<String>,
    chain_names: BTreeSet<String>,
    /// The per-service chains: name, rule lines.
    chains: Vec<(String, String)>,
}

/// Names of one service port's chains.
struct Names {
    /// `ns/name/proto/port`, as upstream's chain names end.
    base: String,
    cluster: String,
    local: String,
    external: String,
}

impl Names {
    fn new(service: &ServicePort) -> Self {
        let port = if service.port_name.is_empty() {
            service.port.to_string()
        } else {
            service.port_name.clone()
        };
        let base = format!(
            "{}/{}/{}/{}",
            service.namespace,
            service.name,
            service.protocol.keyword(),
            port
        );
        let hashed = |prefix: &str| object_name(prefix, &[prefix, &base], &base);
        Self {
            cluster: hashed("service"),
            local: hashed("local"),
            external: hashed("external"),
            base,
        }
    }

    fn endpoint(&self, endpoint: &Endpoint) -> String {
        let tail = format!("{}__{}/{}", self.base, endpoint.ip, endpoint.port);
        object_name("endpoint", &["endpoint", &tail], &tail)
    }

    fn affinity(&self, endpoint: &Endpoint, timeout: u32) -> String {
        let tail = format!("{}__{}/{}", self.base, endpoint.ip, endpoint.port);
        let timeout = timeout.to_string();
        object_name("affinity", &["affinity", &tail, &timeout], &tail)
    }
}

impl Body {
    fn service(&mut self, config: &ProxyConfig, service: &ServicePort) {
        // One address, protocol and port (or NodePort) serves one Service:
        // a second claim (which the API server does not allow) is skipped
        // rather than failing the whole transaction.
        let claims = [
            format!(
                "{} {:?} {}",
                service.cluster_ip, service.protocol, service.port
            ),
            match service.node_port {
                Some(port) => format!("node {:?} {port}", service.protocol),
                None => String::new(),
            },
        ];
        if claims
            .iter()
            .any(|c| !c.is_empty() && self.claimed.contains(c))
        {
            return;
        }
        self.claimed
            .extend(claims.into_iter().filter(|c| !c.is_empty()));
        let names = Names::new(service);
        let proto = service.protocol.keyword();
        let local: Vec<&Endpoint> = service.endpoints.iter().filter(|e| e.local).collect();
        let all: Vec<&Endpoint> = service.endpoints.iter().collect();
        let internal = if service.internal_local { &local } else { &all };
        let external = if service.external_local { &local } else { &all };
        // Where a service with endpoints, but none this traffic may use,
        // sends it: no endpoint anywhere is refused, none on this node
        // (a Local policy) is dropped, as upstream does.
        let nothing = if all.is_empty() {
            "goto reject-chain"
        } else {
            "drop"
        };

        self.cluster_ips.insert(service.cluster_ip);
        let key = format!("{} . {proto} . {}", service.cluster_ip, service.port);
        let internal_chain = if service.internal_local {
            &names.local
        } else {
            &names.cluster
        };
        if internal.is_empty() {
            self.no_endpoint_services.push(format!("{key} : {nothing}"));
        } else {
            self.service_ips
                .push(format!("{key} : goto {internal_chain}"));
        }
        if let Some(node_port) = service.node_port {
            let key = format!("{proto} . {node_port}");
            if external.is_empty() {
                self.no_endpoint_nodeports
                    .push(format!("{key} : {nothing}"));
            } else {
                self.service_nodeports
                    .push(format!("{key} : goto {}", names.external));
            }
        }

        // The chain over every endpoint serves cluster traffic (unless
        // internalTrafficPolicy is Local) and NodePort traffic (all of it,
        // or with externalTrafficPolicy Local that of pods and the node).
        let has_external = service.node_port.is_some() && !external.is_empty();
        let uses_cluster = !all.is_empty() && (!service.internal_local || has_external);
        let uses_local = !local.is_empty()
            && (service.internal_local || (service.node_port.is_some() && service.external_local));
        if uses_cluster {
            let masquerade = format!(
                "ip daddr {} {proto} dport {} ip saddr != {} jump mark-for-masquerade",
                service.cluster_ip, service.port, config.cluster_cidr
            );
            self.balancing_chain(&names, &names.cluster, Some(&masquerade), &all, service);
        }
        if uses_local {
            self.balancing_chain(&names, &names.local, None, &local, service);
        }
        if has_external {
            let mut rules = Vec::new();
            if service.external_local {
                // Pods and the node itself may use any endpoint (upstream's
                // short-circuits); traffic from outside only local ones,
                // with its source address kept.
                rules.push(format!(
                    "ip saddr {} goto {}",
                    config.cluster_cidr, names.cluster
                ));
                rules.push("fib saddr type local jump mark-for-masquerade".to_owned());
                rules.push(format!("fib saddr type local goto {}", names.cluster));
                rules.push(format!("goto {}", names.local));
            } else {
                rules.push("jump mark-for-masquerade".to_owned());
                rules.push(format!("goto {}", names.cluster));
            }
            self.chain(&names.external, &rules);
        }
        let timeout = service.affinity_timeout;
        let mut emitted = BTreeSet::new();
        for endpoint in &service.endpoints {
            if !emitted.insert((endpoint.ip, endpoint.port)) {
                continue;
            }
            let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", endpoint.ip)];
            if let Some(timeout) = timeout {
                let set = names.affinity(endpoint, timeout);
                rules.push(format!("update @{set} {{ ip saddr }}"));
                self.affinity_sets.push((set, timeout));
            }
            rules.push(format!(
                "meta l4proto {proto} dnat to {}:{}",
                endpoint.ip, endpoint.port
            ));
            self.chain(&names.endpoint(endpoint), &rules);
        }
    }

    /// A pod's hostPort: node addresses (never loopback) to the pod, with
    /// the pod reaching its own hostPort masqueraded (hairpin).
    fn host_port(&mut self, host_port: &HostPort) {
        let proto = host_port.protocol.keyword();
        let base = format!(
            "{}/{}/{proto}/{}",
            host_port.namespace, host_port.pod, host_port.host_port
        );
        let chain = object_name("hostport", &["hostport", &base], &base);
        let address = match host_port.host_ip {
            Some(ip) => format!("ip daddr {ip} "),
            None => String::new(),
        };
        self.host_port_rules.push(format!(
            "{address}meta l4proto {proto} th dport {} goto {chain}",
            host_port.host_port
        ));
        self.chain(
            &chain,
            &[
                format!("ip saddr {} jump mark-for-masquerade", host_port.pod_ip),
                format!(
                    "meta l4proto {proto} dnat to {}:{}",
                    host_port.pod_ip, host_port.container_port
                ),
            ],
        );
    }

    /// A chain that picks one of `endpoints` at random (or the one a
    /// client's affinity entry names).
    fn balancing_chain(
        &mut self,
        names: &Names,
        chain: &str,
        first: Option<&str>,
        endpoints: &[&Endpoint],
        service: &ServicePort,
    ) {
        let mut rules: Vec<String> = first.map(str::to_owned).into_iter().collect();
        if let Some(timeout) = service.affinity_timeout {
            for endpoint in endpoints {
                rules.push(format!(
                    "ip saddr @{} goto {}",
                    names.affinity(endpoint, timeout),
                    names.endpoint(endpoint)
                ));
            }
        }
        let targets: Vec<String> = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{i} : goto {}", names.endpoint(e)))
            .collect();
        rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            endpoints.len(),
            targets.join(", ")
        ));
        self.chain(chain, &rules);
    }

    fn chain(&mut self, name: &str, rules: &[String]) {
        if !self.chain_names.insert(name.to_owned()) {
            return;
        }
        self.chains.push((name.to_owned(), rule_lines(rules)));
    }

    fn declarations(&self, config: &ProxyConfig) -> String {
        let mut out = String::new();
        let cluster_ips: Vec<String> = self.cluster_ips.iter().map(|ip| ip.to_string()).collect();
        let node_ips: Vec<String> = config.node_ips.iter().map(|ip| ip.to_string()).collect();
        declare(&mut out, "set", "cluster-ips", "ipv4_addr", &cluster_ips);
        declare(&mut out, "set", "nodeport-ips", "ipv4_addr", &node_ips);
        let by_ip = "ipv4_addr . inet_proto . inet_service : verdict";
        let by_port = "inet_proto . inet_service : verdict";
        declare(
            &mut out,
            "map",
            "no-endpoint-services",
            by_ip,
            &self.no_endpoint_services,
        );
        declare(
            &mut out,
            "map",
            "no-endpoint-nodeports",
            by_port,
            &self.no_endpoint_nodeports,
        );
        declare(&mut out, "map", "service-ips", by_ip, &self.service_ips);
        declare(
            &mut out,
            "map",
            "service-nodeports",
            by_port,
            &self.service_nodeports,
        );
        for (name, timeout) in &self.affinity_sets {
            let _ = writeln!(
                out,
                "\tset {name} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout {timeout}s\n\t}}"
            );
        }
        out
    }
}

/// Rules as they sit in a chain's block, a line each.
fn rule_lines(rules: &[String]) -> String {
    rules.iter().map(|rule| format!("\t\t{rule}\n")).collect()
}

fn declare(out: &mut String, kind: &str, name: &str, typ: &str, elements: &[String]) {
    let _ = writeln!(out, "\t{kind} {name} {{\n\t\ttype {typ}");
    if !elements.is_empty() {
        let _ = writeln!(out, "\t\telements = {{ {} }}", elements.join(", "));
    }
    out.push_str("\t}\n");
}

/// The chains every sync has: the hooks and the dispatch through the maps.
/// Refusals answer TCP with a reset (a local client's first SYN would
/// otherwise take its retransmission second to see the ICMP error), other
/// protocols with ICMP port unreachable. Prerouting catches pods' traffic
/// before any routing decision (a node need not have a route to the
/// service range); output catches the node's own.
fn fixed_chains(host_port_rules: &[String]) -> Vec<(String, Vec<String>)> {
    vec![
        (
            "filter-prerouting".to_owned(),
            vec![
                "type filter hook prerouting priority dstnat - 10; policy accept;".to_owned(),
                "ct state new jump service-endpoints-check".to_owned(),
                "ct state new jump nodeport-endpoints-check".to_owned(),
            ],
        ),
        (
            "filter-output".to_owned(),
            vec![
                "type filter hook output priority -110; policy accept;".to_owned(),
                "ct state new jump service-endpoints-check".to_owned(),
                "ct state new jump nodeport-endpoints-check".to_owned(),
            ],
        ),
        (
            "filter-forward".to_owned(),
            vec![
                "type filter hook forward priority filter - 10; policy accept;".to_owned(),
                "ct state new jump cluster-ips-check".to_owned(),
            ],
        ),
        (
            "filter-output-post-dnat".to_owned(),
            vec![
                "type filter hook output priority -90; policy accept;".to_owned(),
                "ct state new jump cluster-ips-check".to_owned(),
            ],
        ),
        (
            "nat-prerouting".to_owned(),
            vec![
                "type nat hook prerouting priority dstnat; policy accept;".to_owned(),
                "fib daddr type local ip daddr != 127.0.0.0/8 jump hostports".to_owned(),
                "jump services".to_owned(),
            ],
        ),
        (
            "nat-output".to_owned(),
            vec![
                "type nat hook output priority -100; policy accept;".to_owned(),
                "fib daddr type local ip daddr != 127.0.0.0/8 jump hostports".to_owned(),
                "jump services".to_owned(),
            ],
        ),
        (
            "nat-postrouting".to_owned(),
            vec![
                "type nat hook postrouting priority srcnat; policy accept;".to_owned(),
                "jump masquerading".to_owned(),
            ],
        ),
        (
            "reject-chain".to_owned(),
            vec![
                "meta l4proto tcp reject with tcp reset".to_owned(),
                "reject".to_owned(),
            ],
        ),
        (
            "mark-for-masquerade".to_owned(),
            vec![format!("meta mark set meta mark | {MASQUERADE_MARK}")],
        ),
        (
            "masquerading".to_owned(),
            vec![
                format!("meta mark & {MASQUERADE_MARK} == 0 return"),
                format!("meta mark set meta mark ^ {MASQUERADE_MARK}"),
                "masquerade fully-random".to_owned(),
            ],
        ),
        (
            "service-endpoints-check".to_owned(),
            vec!["ip daddr . meta l4proto . th dport vmap @no-endpoint-services".to_owned()],
        ),
        (
            "nodeport-endpoints-check".to_owned(),
            vec![
                "ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"
                    .to_owned(),
            ],
        ),
        (
            "cluster-ips-check".to_owned(),
            vec!["ip daddr @cluster-ips reject".to_owned()],
        ),
        ("hostports".to_owned(), host_port_rules.to_vec()),
        (
            "services".to_owned(),
            vec![
                "ip daddr . meta l4proto . th dport vmap @service-ips".to_owned(),
                "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports".to_owned(),
            ],
        ),
    ]
}

impl Protocol {
    /// The nftables keyword.
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// The longest name a chain or set gets (the kernel's limit is 255 bytes).
const MAX_NAME: usize = 200;

/// `<prefix>-<hash of hashed>-<readable>`, the readable part cut short
/// where the whole would pass [`MAX_NAME`] (the hash keeps it unique).
fn object_name(prefix: &str, hashed: &[&str], readable: &str) -> String {
    let mut name = format!("{prefix}-{}-{readable}", hash(hashed));
    // Every part is ASCII (DNS names, port names, addresses).
    name.truncate(MAX_NAME);
    name
}

/// 8 uppercase base-32 characters of sha256 over `parts` (upstream's
/// chain-name hash shape).
fn hash(parts: &[&str]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut bits = u64::from_be_bytes(
        digest[..8]
            .try_into()
            .expect("a sha256 digest has 32 bytes"),
    );
    let mut out = String::with_capacity(8);
    for _ in 0..8 {
        out.push(ALPHABET[(bits >> 59) as usize] as char);
        bits <<= 5;
    }
    out
}
