//! The service proxy (kube-proxy's job): makes Services' cluster IPs and
//! NodePorts reach their endpoints, with its own nftables table
//! `ip bulwark_proxy`, rewritten in one `nft -f -` transaction per sync as
//! upstream kube-proxy's nftables mode does.
//!
//! The caller (the agent) turns Services and EndpointSlices into
//! [`ServicePort`]s — this crate knows nothing of the Kubernetes API — and
//! calls [`ServiceProxy::sync`] with all of them whenever something changed.
//! What the table does:
//!
//! - ClusterIP `ip . proto . port` and NodePort `proto . port` (on the
//!   node's addresses, never 127.0.0.1: `route_localnet` stays off) DNAT to
//!   one endpoint picked by `numgen random`, for traffic from pods
//!   (prerouting) and from the node itself (output);
//! - masquerade where replies would otherwise miss the node: NodePort
//!   traffic from elsewhere, cluster-IP traffic from outside the cluster
//!   CIDR, and hairpin (a pod reaching itself through its Service);
//! - `sessionAffinity: ClientIP`: a timed set per endpoint remembers its
//!   clients, kept across syncs;
//! - `internalTrafficPolicy`/`externalTrafficPolicy: Local`: only this
//!   node's endpoints (NodePort traffic keeps its source address);
//! - pods' `hostPort`s: DNAT from the node's addresses (not 127.0.0.1);
//! - a Service with no endpoint is refused (ICMP port unreachable: a client
//!   fails at once instead of hanging); with endpoints, but none on this
//!   node under a Local policy, its traffic is dropped.

mod render;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ipnet::Ipv4Net;

pub(crate) use render::render_delete;
use render::{Objects, render};

use crate::NetworkError;
use crate::netns::Netns;

/// The name of the proxy's nftables table (`table ip bulwark_proxy`).
pub const PROXY_TABLE: &str = render::TABLE;

/// What the proxy needs to know of its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The node's addresses NodePorts answer on.
    pub node_ips: Vec<Ipv4Addr>,
    /// The cluster's pod CIDR: traffic from outside it to a cluster IP is
    /// masqueraded (its replies must come back through this node).
    pub cluster_cidr: Ipv4Net,
}

/// A transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// One port of one Service, with the endpoints that serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's name (may be empty for a Service with one port).
    pub port_name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// The Service's cluster IP.
    pub cluster_ip: Ipv4Addr,
    /// The Service's port.
    pub port: u16,
    /// Its NodePort, if the Service has one.
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP`: how long a client sticks to its
    /// endpoint, in seconds.
    pub affinity_timeout: Option<u32>,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// The endpoints traffic may go to (ready ones, as the caller chose).
    pub endpoints: Vec<Endpoint>,
}

/// A pod's `hostPort`: traffic to one of the node's addresses (or to
/// `host_ip` only) at `host_port` goes to the pod (CNI's portmap).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// The one node address it is published on (`hostIP`); `None`: all.
    pub host_ip: Option<Ipv4Addr>,
    /// The port on the node.
    pub host_port: u16,
    /// The pod's address.
    pub pod_ip: Ipv4Addr,
    /// The container's port.
    pub container_port: u16,
}

/// One endpoint of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Its address.
    pub ip: Ipv4Addr,
    /// The port traffic goes to.
    pub port: u16,
    /// Whether it is on this node.
    pub local: bool,
}

/// The service proxy of one node. See the module docs.
#[derive(Debug)]
pub struct ServiceProxy {
    nft: PathBuf,
    netns: Option<PathBuf>,
    /// What the last sync left in the table; `None` before the first sync
    /// and after a failed one (the next sync then starts afresh).
    applied: Mutex<Option<Objects>>,
}

impl ServiceProxy {
    /// Finds `nft`; `netns` is the node's network namespace (`None`: the
    /// caller's own). Changes nothing until the first sync.
    pub fn new(netns: Option<&Path>) -> Result<Self, NetworkError> {
        let nft = crate::nft::find()?;
        if let Some(path) = netns {
            Netns::open(path)?;
        }
        Ok(Self {
            nft,
            netns: netns.map(Path::to_owned),
            applied: Mutex::new(None),
        })
    }

    /// Makes the table match `services` and `host_ports` in one
    /// transaction. Blocking (it runs `nft`): call it from a blocking
    /// thread.
    pub fn sync(
        &self,
        config: &ProxyConfig,
        services: &[ServicePort],
        host_ports: &[HostPort],
    ) -> Result<(), NetworkError> {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let rendered = render(config, services, host_ports, applied.as_ref());
        // Until it succeeds the table's contents are unknown.
        let previous = applied.take();
        match self.apply(&rendered.text) {
            Ok(()) => {
                *applied = Some(rendered.objects);
                Ok(())
            }
            Err(err) if previous.is_some() => {
                // A flush-based update can fail where a fresh table would
                // not (an object changed under us): start afresh once.
                tracing::warn!(error = %err, "updating the service proxy's table; rewriting it");
                let fresh = render(config, services, host_ports, None);
                self.apply(&fresh.text)?;
                *applied = Some(fresh.objects);
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Removes the proxy's table. Blocking.
    pub fn cleanup(&self) -> Result<(), NetworkError> {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        self.apply(&render_delete())?;
        *applied = None;
        Ok(())
    }

    fn apply(&self, text: &str) -> Result<(), NetworkError> {
        let netns = self.netns.as_deref().map(Netns::open).transpose()?;
        crate::nft::apply(&self.nft, netns.as_ref(), text)
    }
}

#[cfg(test)]
mod tests;
