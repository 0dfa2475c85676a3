//! What the policies mean for this node's pods: which are isolated, and
//! per policy, the local pods it selects and its rules with every selector
//! resolved to addresses and every named port to numbers. The renderer
//! writes this down as nftables rules; [`Plan::allows`] evaluates it the
//! way those rules do, so the semantics are tested without a kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Peer, Policy, PolicyInput, PolicyPod, PortRef, Protocol, Rule};

/// The decisions for the pods of one node (those with an address in its
/// pod CIDR).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Local pods selected by some policy with ingress rules.
    pub(crate) ingress_isolated: BTreeSet<Ipv4Addr>,
    /// Local pods selected by some policy with egress rules.
    pub(crate) egress_isolated: BTreeSet<Ipv4Addr>,
    /// The policies that select a local pod, by namespace and name.
    pub(crate) policies: Vec<Planned>,
}

/// One policy, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    /// `namespace/name`.
    pub(crate) name: String,
    /// The local pods it selects.
    pub(crate) targets: BTreeSet<Ipv4Addr>,
    /// Its ingress rules that can match something.
    pub(crate) ingress: Vec<PlannedRule>,
    /// Its egress rules that can match something.
    pub(crate) egress: Vec<PlannedRule>,
}

/// One rule, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedRule {
    /// The rule's index in its policy's list (for comments).
    pub(crate) index: usize,
    /// The other end's addresses; `None`: any.
    pub(crate) peers: Option<Ranges>,
    /// The traffic; `None`: any.
    pub(crate) ports: Option<PortMatch>,
}

/// A rule's ports, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PortMatch {
    /// A protocol with a port range (`None`: any port).
    pub(crate) ranges: Vec<(Protocol, Option<(u16, u16)>)>,
    /// Named ports: (destination address, protocol, port).
    pub(crate) named: BTreeSet<(Ipv4Addr, Protocol, u16)>,
}

/// A set of IPv4 addresses as sorted, disjoint, non-adjacent ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ranges(pub(crate) Vec<(u32, u32)>);

impl Ranges {
    fn from_unsorted(mut ranges: Vec<(u32, u32)>) -> Self {
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Self(merged)
    }

    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        let i = self.0.partition_point(|&(_, hi)| hi < ip);
        self.0.get(i).is_some_and(|&(lo, _)| lo <= ip)
    }
}

fn span(net: Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

/// `cidr` without the `except` ranges.
fn block(cidr: Ipv4Net, except: &[Ipv4Net]) -> Vec<(u32, u32)> {
    let mut parts = vec![span(cidr.trunc())];
    for hole in except {
        let (hlo, hhi) = span(hole.trunc());
        parts = parts
            .into_iter()
            .flat_map(|(lo, hi)| {
                let mut kept = Vec::new();
                if hhi < lo || hlo > hi {
                    kept.push((lo, hi));
                } else {
                    if hlo > lo {
                        kept.push((lo, hlo - 1));
                    }
                    if hhi < hi {
                        kept.push((hhi + 1, hi));
                    }
                }
                kept
            })
            .collect();
    }
    parts
}

/// Which way a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// The cluster's pods, indexed for selection.
struct Index<'a> {
    input: &'a PolicyInput,
    by_namespace: BTreeMap<&'a str, Vec<&'a PolicyPod>>,
    empty: BTreeMap<String, String>,
}

impl<'a> Index<'a> {
    fn new(input: &'a PolicyInput) -> Self {
        let mut by_namespace: BTreeMap<&str, Vec<&PolicyPod>> = BTreeMap::new();
        for pod in &input.pods {
            by_namespace.entry(&pod.namespace).or_default().push(pod);
        }
        Self {
            input,
            by_namespace,
            empty: BTreeMap::new(),
        }
    }

    fn in_namespace(&self, namespace: &str) -> &[&'a PolicyPod] {
        self.by_namespace
            .get(namespace)
            .map_or(&[], |pods| pods.as_slice())
    }

    /// The pods a `podSelector`/`namespaceSelector` peer of a policy in
    /// `namespace` matches.
    fn peer_pods(&self, namespace: &str, peer: &Peer) -> Vec<&'a PolicyPod> {
        let Peer::Pods { namespaces, pods } = peer else {
            return Vec::new();
        };
        let pod_ok = |p: &&PolicyPod| pods.as_ref().is_none_or(|s| s.matches(&p.labels));
        match namespaces {
            None => self
                .in_namespace(namespace)
                .iter()
                .copied()
                .filter(pod_ok)
                .collect(),
            Some(selector) => self
                .by_namespace
                .iter()
                .filter(|(ns, _)| {
                    selector.matches(self.input.namespaces.get(**ns).unwrap_or(&self.empty))
                })
                .flat_map(|(_, pods)| pods.iter().copied().filter(pod_ok))
                .collect(),
        }
    }
}

impl Plan {
    /// Decides what `input`'s policies mean for the pods whose addresses
    /// are in `local` (this node's pod CIDR).
    pub fn new(input: &PolicyInput, local: Ipv4Net) -> Self {
        let index = Index::new(input);
        let mut policies: Vec<&Policy> = input.policies.iter().collect();
        policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut plan = Plan::default();
        for policy in policies {
            let targets: Vec<&PolicyPod> = index
                .in_namespace(&policy.namespace)
                .iter()
                .copied()
                .filter(|p| local.contains(&p.ip) && policy.pod_selector.matches(&p.labels))
                .collect();
            if targets.is_empty() {
                continue;
            }
            let addresses: BTreeSet<Ipv4Addr> = targets.iter().map(|p| p.ip).collect();
            let mut planned = Planned {
                name: format!("{}/{}", policy.namespace, policy.name),
                targets: addresses.clone(),
                ingress: Vec::new(),
                egress: Vec::new(),
            };
            if let Some(rules) = &policy.ingress {
                plan.ingress_isolated.extend(&addresses);
                planned.ingress = plan_rules(&index, policy, rules, &targets, Direction::Ingress);
            }
            if let Some(rules) = &policy.egress {
                plan.egress_isolated.extend(&addresses);
                planned.egress = plan_rules(&index, policy, rules, &targets, Direction::Egress);
            }
            plan.policies.push(planned);
        }
        plan
    }

    /// Whether a new connection from `src` to `dst` (`protocol`, `port`)
    /// passes this node's rules, as the rendered table decides it for
    /// forwarded traffic: the source's egress and the destination's
    /// ingress, each checked only if that pod is local and isolated.
    pub fn allows(&self, src: Ipv4Addr, dst: Ipv4Addr, protocol: Protocol, port: u16) -> bool {
        let check = |isolated: &BTreeSet<Ipv4Addr>, local: Ipv4Addr, remote: Ipv4Addr, egress| {
            !isolated.contains(&local)
                || self.policies.iter().any(|p| {
                    let rules = if egress { &p.egress } else { &p.ingress };
                    p.targets.contains(&local)
                        && rules.iter().any(|r| r.matches(remote, dst, protocol, port))
                })
        };
        check(&self.egress_isolated, src, dst, true)
            && check(&self.ingress_isolated, dst, src, false)
    }

    /// How many rules the plan holds (for logs).
    pub fn rule_count(&self) -> usize {
        self.policies
            .iter()
            .map(|p| p.ingress.len() + p.egress.len())
            .sum()
    }
}

impl PlannedRule {
    fn matches(&self, remote: Ipv4Addr, dst: Ipv4Addr, protocol: Protocol, port: u16) -> bool {
        self.peers.as_ref().is_none_or(|r| r.contains(remote))
            && self.ports.as_ref().is_none_or(|m| {
                m.named.contains(&(dst, protocol, port))
                    || m.ranges.iter().any(|&(p, range)| {
                        p == protocol && range.is_none_or(|(lo, hi)| (lo..=hi).contains(&port))
                    })
            })
    }
}

fn plan_rules(
    index: &Index<'_>,
    policy: &Policy,
    rules: &[Rule],
    targets: &[&PolicyPod],
    direction: Direction,
) -> Vec<PlannedRule> {
    let mut planned = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let peer_pods: Vec<&PolicyPod> = rule
            .peers
            .iter()
            .flat_map(|peer| index.peer_pods(&policy.namespace, peer))
            .collect();
        let peers = (!rule.peers.is_empty()).then(|| {
            let mut ranges: Vec<(u32, u32)> = peer_pods
                .iter()
                .map(|p| (u32::from(p.ip), u32::from(p.ip)))
                .collect();
            for peer in &rule.peers {
                if let Peer::IpBlock { cidr, except } = peer {
                    ranges.extend(block(*cidr, except));
                }
            }
            Ranges::from_unsorted(ranges)
        });
        if peers.as_ref().is_some_and(|r| r.0.is_empty()) {
            continue; // its peers are nobody (yet)
        }
        let ports = (!rule.ports.is_empty()).then(|| {
            let mut matched = PortMatch::default();
            // Named ports live on the pod receiving the traffic: the
            // selected pod for ingress, the peer for egress (any pod of
            // the cluster when the rule names no peers).
            let receivers: Vec<&PolicyPod> = match direction {
                Direction::Ingress => targets.to_vec(),
                Direction::Egress if rule.peers.is_empty() => index.input.pods.iter().collect(),
                Direction::Egress => peer_pods.clone(),
            };
            for port in &rule.ports {
                match &port.port {
                    None => matched.ranges.push((port.protocol, None)),
                    Some(PortRef::Range(lo, hi)) => matched
                        .ranges
                        .push((port.protocol, Some((*lo, (*hi).max(*lo))))),
                    Some(PortRef::Named(name)) => {
                        for pod in &receivers {
                            for named in &pod.ports {
                                if &named.name == name && named.protocol == port.protocol {
                                    matched.named.insert((pod.ip, named.protocol, named.port));
                                }
                            }
                        }
                    }
                }
            }
            matched.ranges.sort_unstable();
            matched.ranges.dedup();
            matched
        });
        if ports
            .as_ref()
            .is_some_and(|m| m.ranges.is_empty() && m.named.is_empty())
        {
            continue; // only named ports no receiving pod has
        }
        planned.push(PlannedRule {
            index: i,
            peers,
            ports,
        });
    }
    planned
}
