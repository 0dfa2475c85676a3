//! NetworkPolicy enforcement on a node: a plain model of the cluster's
//! policies, pods and namespaces (the agent fills it from the API; this
//! crate knows nothing of the Kubernetes API) decided into a [`Plan`] for
//! the pods on this node, rendered as the nftables table
//! `inet bulwark_policy` and applied in one `nft -f -` transaction.
//!
//! The semantics are networking.k8s.io/v1's:
//!
//! - a pod selected by any policy of a direction (`policyTypes`) is
//!   isolated for that direction; traffic of an isolated direction passes
//!   if any rule of any policy selecting the pod allows it (a union);
//! - a policy with an empty rule list for a direction denies it all;
//! - a rule's peers: `podSelector` (pods of the policy's namespace),
//!   `namespaceSelector` (all pods of matching namespaces), both in one
//!   peer (matching pods of matching namespaces), `ipBlock` with `except`;
//!   no peers: any address;
//! - a rule's ports: protocol (TCP default), a number, a range up to
//!   `endPort`, or a container port's name, resolved on the pod that
//!   receives the traffic (the selected pod for ingress, the destination
//!   pod for egress); no ports: any traffic;
//! - replies of an allowed connection pass (`ct state established,related`).
//!
//! Where the traffic is checked (the choices upstream leaves to the
//! network plugin, made as Calico and Cilium make them by default):
//!
//! - pod → pod and outside → pod: on the `forward` hook (bridged frames
//!   too: the kernel's `br_netfilter` passes them through it), after
//!   Service DNAT, so a rule sees the real destination pod;
//! - node → its own pods (`output` hook): always allowed, as upstream's
//!   documentation promises for traffic between a pod and its node, so the
//!   node can probe its pods; another node is an address like any other;
//! - pod → its own node (`input` hook: the node's addresses, the cluster
//!   DNS address on the bridge): here Bulwark is stricter than that
//!   promise and does what Calico and Cilium do by default — the pod's
//!   egress policy applies, so an egress default deny also keeps a pod
//!   from the node's own services (and its node-local DNS: allow port 53).
//!
//! Pods with `hostNetwork` are neither selected nor matched as peers (the
//! agent leaves them out of the model), as upstream leaves them undefined.

mod plan;
mod render;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

pub use plan::Plan;
pub(crate) use render::render_delete;
pub use render::{TABLE, render};

/// Everything policy enforcement needs to know about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyInput {
    /// Every NetworkPolicy of the cluster.
    pub policies: Vec<Policy>,
    /// Every pod with an address (on any node): targets and peers.
    pub pods: Vec<PolicyPod>,
    /// Every namespace's labels, by name.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

/// One NetworkPolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its namespace: it selects pods there only.
    pub namespace: String,
    /// Its name (for the rules' comments).
    pub name: String,
    /// `spec.podSelector`: the pods it applies to.
    pub pod_selector: Selector,
    /// The ingress rules if `policyTypes` holds `Ingress` (`Some(vec![])`
    /// denies all ingress); `None`: the policy says nothing of ingress.
    pub ingress: Option<Vec<Rule>>,
    /// The egress rules if `policyTypes` holds `Egress`, likewise.
    pub egress: Option<Vec<Rule>>,
}

/// One ingress (`from`) or egress (`to`) rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// The ports; empty: all traffic.
    pub ports: Vec<Port>,
    /// The peers; empty: any address.
    pub peers: Vec<Peer>,
}

/// One peer of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// `podSelector` and/or `namespaceSelector`.
    Pods {
        /// `namespaceSelector`; `None`: the policy's own namespace.
        namespaces: Option<Selector>,
        /// `podSelector`; `None`: every pod of those namespaces.
        pods: Option<Selector>,
    },
    /// `ipBlock`.
    IpBlock {
        /// `cidr`.
        cidr: Ipv4Net,
        /// `except`: ranges inside `cidr` that do not match.
        except: Vec<Ipv4Net>,
    },
}

/// One entry of a rule's `ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// `protocol` (TCP when absent).
    pub protocol: Protocol,
    /// `port`; `None`: every port of the protocol.
    pub port: Option<PortRef>,
}

/// A port by number (with `endPort`, a range) or by container port name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    /// `port` .. `endPort` (inclusive; equal when there is no `endPort`).
    Range(u16, u16),
    /// A named container port, resolved on the receiving pod.
    Named(String),
}

/// A transport protocol a policy can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses upstream's spelling (`TCP`, `UDP`, `SCTP`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// nftables' name for it.
    pub(crate) fn nft(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// A pod, as policies select it and as a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its containers' named ports.
    pub ports: Vec<NamedPort>,
}

/// A container port with a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    /// `name`.
    pub name: String,
    /// `protocol`.
    pub protocol: Protocol,
    /// `containerPort`.
    pub port: u16,
}

/// A label selector (`matchLabels` and `matchExpressions`, ANDed); the
/// empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// `matchLabels`.
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions`.
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// The values (`In`, `NotIn`).
    pub values: Vec<String>,
}

/// A `matchExpressions` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// The label is one of the values.
    In,
    /// The label is absent or none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl Selector {
    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    Operator::In => value.is_some_and(|v| r.values.contains(v)),
                    Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }
}
