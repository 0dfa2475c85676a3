//! The pod network on a node (the CNI plugin's job, in-process).
//!
//! The agent makes one [`PodNetwork`] per node and calls it as pods come and
//! go. It sets up, in the node's network namespace:
//!
//! - a Linux bridge (`bulwark0`) holding the gateway address, the first
//!   address of the node's pod CIDR (`10.42.3.1/24`);
//! - per pod, a veth pair: the host end `bw<11 hex of sha256(pod id)>` on the
//!   bridge, the other end moved into the pod's namespace as `eth0` with the
//!   pod's address and a default route via the gateway, and `lo` up;
//! - IPAM over the pod CIDR, kept in `<state_dir>/ipam.json`;
//! - `ip_forward`, and an nftables table `ip bulwark` that accepts forwarded
//!   cluster traffic and masquerades pod traffic leaving the cluster CIDR;
//! - a table `bridge bulwark` that drops frames a pod sends with a MAC, IP
//!   or ARP source address other than its own (no posing as another pod);
//! - routes to other nodes' pod CIDRs, marked with routing protocol
//!   [`ROUTE_PROTOCOL`], by one of two [`Backend`]s: `HostGw`, via each
//!   node's address (the nodes share one L2 segment), or `Vxlan` (the
//!   default of `bulwark agent`), through the device [`VXLAN_DEVICE`], which
//!   carries pod traffic to other nodes in UDP (port [`VXLAN_PORT`]) over
//!   any IP network, as flannel's vxlan backend does.
//! - NetworkPolicy enforcement for the node's pods: the table
//!   `inet bulwark_policy`, from the plain model in [`policy`]
//!   ([`PodNetwork::sync_policy`]).
//!
//! [`ServiceProxy`] is kube-proxy's part: Services' cluster IPs, NodePorts
//! and pods' hostPorts, in a table of its own (`ip bulwark_proxy`) that
//! the pod network never rewrites.
//!
//! Everything goes through netlink (`rtnetlink`) except nftables, which is
//! one `nft -f -` transaction per sync. IPv4 only; IPv6 is not done yet.
//!
//! ```no_run
//! # async fn example() -> Result<(), bulwark_network::NetworkError> {
//! use bulwark_network::{NetworkConfig, Peer, PodNetwork};
//! let network = PodNetwork::new(NetworkConfig::new(
//!     "10.42.3.0/24".parse().unwrap(),
//!     "10.42.0.0/16".parse().unwrap(),
//!     "/var/lib/bulwark/network".into(),
//! ))
//! .await?;
//! let address = network.attach("pod-uid", "/proc/4242/ns/net".as_ref()).await?;
//! println!("pod at {}/{} via {}", address.ip, address.prefix_len, address.gateway);
//! network
//!     .sync_routes(&[Peer {
//!         pod_cidr: "10.42.4.0/24".parse().unwrap(),
//!         node_ip: "192.168.1.4".parse().unwrap(),
//!     }])
//!     .await?;
//! network.detach("pod-uid").await?;
//! # Ok(()) }
//! ```

mod error;
mod ipam;
mod kernel;
mod link;
mod netns;
mod network;
mod nft;
pub mod policy;
mod proxy;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use error::NetworkError;
pub use ipnet::Ipv4Net;
pub use link::ROUTE_PROTOCOL;
pub use proxy::{
    Endpoint, HostPort, PROXY_TABLE, Protocol, ProxyConfig, ServicePort, ServiceProxy,
};

use kernel::Linux;
use network::Network;

/// How the host ends of pods' veth pairs begin (`bw<hash>`).
pub(crate) const VETH_PREFIX: &str = "bw";

/// The default bridge name.
pub const DEFAULT_BRIDGE: &str = "bulwark0";
/// The VXLAN device of the `Vxlan` backend.
pub const VXLAN_DEVICE: &str = "bulwark.vxlan";
/// The VXLAN network identifier every node uses.
pub const VXLAN_VNI: u32 = 1;
/// The UDP port VXLAN traffic between nodes uses (Linux's and flannel's).
pub const VXLAN_PORT: u16 = 8472;
/// What VXLAN encapsulation adds to each packet (outer IPv4, UDP, VXLAN
/// and Ethernet headers): pod MTUs are this much below the node's.
pub const VXLAN_OVERHEAD: u32 = 50;

/// How pods reach pods on other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A route per peer node: its pod CIDR via its address. Needs the
    /// nodes on one L2 segment; no encapsulation.
    HostGw,
    /// A route per peer node through the VXLAN device, whose forwarding
    /// entries send the peer's frames in UDP to its address: works across
    /// routed networks.
    Vxlan {
        /// This node's address, the tunnel's outer source.
        local: Ipv4Addr,
    },
}
/// The name of the nftables tables the crate owns (`table ip bulwark`,
/// `table bridge bulwark`).
pub const NFT_TABLE: &str = nft::TABLE;

/// How the node's pod network is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The bridge's name (`bulwark0`).
    pub bridge: String,
    /// This node's pod CIDR (`spec.podCIDR` of its Node).
    pub pod_cidr: Ipv4Net,
    /// The whole cluster's pod CIDR; traffic leaving it is masqueraded.
    pub cluster_cidr: Ipv4Net,
    /// Where IPAM keeps its state.
    pub state_dir: PathBuf,
    /// MTU of the bridge and of both ends of every veth pair.
    pub mtu: u32,
    /// The node's network namespace; `None` is the caller's own. (Tests and
    /// multi-node setups on one machine give each node its own.)
    pub netns: Option<PathBuf>,
    /// How pods reach other nodes' pods.
    pub backend: Backend,
}

impl NetworkConfig {
    /// A config with the default bridge, MTU 1500, in the caller's netns,
    /// with the `HostGw` backend.
    pub fn new(pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net, state_dir: PathBuf) -> Self {
        Self {
            bridge: DEFAULT_BRIDGE.to_owned(),
            pod_cidr,
            cluster_cidr,
            state_dir,
            mtu: 1500,
            netns: None,
            backend: Backend::HostGw,
        }
    }

    /// This config with the `Vxlan` backend from `local`, and pod MTUs
    /// [`VXLAN_OVERHEAD`] below `node_mtu`.
    pub fn vxlan(self, local: Ipv4Addr, node_mtu: u32) -> Self {
        Self {
            backend: Backend::Vxlan { local },
            mtu: node_mtu.saturating_sub(VXLAN_OVERHEAD),
            ..self
        }
    }

    fn validate(&self) -> Result<(), NetworkError> {
        let bad = |why: String| Err(NetworkError::Config(why));
        let name_ok = !self.bridge.is_empty()
            && self.bridge.len() <= 15
            && self
                .bridge
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
        if !name_ok {
            return bad(format!(
                "bridge name {:?} is not a valid interface name (1-15 characters, no '/', ':' or spaces)",
                self.bridge
            ));
        }
        if self.bridge.starts_with(VETH_PREFIX) {
            return bad(format!(
                "bridge name {:?} may not start with {VETH_PREFIX:?}, which names pods' veth ends",
                self.bridge
            ));
        }
        if self.pod_cidr.prefix_len() > 30 {
            return bad(format!(
                "pod CIDR {} is too small: it needs at least a /30",
                self.pod_cidr
            ));
        }
        if !self.cluster_cidr.contains(&self.pod_cidr) {
            return bad(format!(
                "pod CIDR {} is not inside cluster CIDR {}",
                self.pod_cidr, self.cluster_cidr
            ));
        }
        if !(68..=65535).contains(&self.mtu) {
            return bad(format!("MTU {} is outside 68-65535", self.mtu));
        }
        Ok(())
    }
}

/// A pod's place on the network, as `attach` set it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodAddress {
    /// The pod's address (on its `eth0`).
    pub ip: Ipv4Addr,
    /// The bridge's address, the pod's default route.
    pub gateway: Ipv4Addr,
    /// The pod CIDR's prefix length.
    pub prefix_len: u8,
}

/// Another node, whose pods this node reaches (directly or through the
/// tunnel, by the backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    /// The other node's pod CIDR.
    pub pod_cidr: Ipv4Net,
    /// The other node's address.
    pub node_ip: Ipv4Addr,
}

/// The pod network of one node. See the crate docs.
#[derive(Debug)]
pub struct PodNetwork {
    inner: Network<Linux>,
    /// Counts attaches, so policy enforcement hears of a new pod address
    /// before the pod's status carries it.
    attached: tokio::sync::watch::Sender<u64>,
}

impl PodNetwork {
    /// Checks the config and the `nft` tool, opens the IPAM state, and sets
    /// up the bridge, `ip_forward` and the nftables tables. Idempotent: a
    /// restarted agent calls it again and keeps its pods' addresses.
    /// Must be called inside a tokio runtime (netlink runs on it).
    pub async fn new(config: NetworkConfig) -> Result<Self, NetworkError> {
        config.validate()?;
        let kernel = Linux::new(config.netns.as_deref())?;
        Ok(Self {
            inner: Network::start(config, kernel).await?,
            attached: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Connects the pod to the bridge: its address (the same one on every
    /// call for the same `pod_id`), a veth pair, `eth0` inside `netns` (a
    /// path such as `/run/bulwark/netns/<id>` or `/proc/<pid>/ns/net`).
    /// Calling it again keeps the address; it leaves whole wiring alone
    /// (a running pod's connections survive its agent's restart) and
    /// rebuilds wiring found broken or half-made.
    pub async fn attach(&self, pod_id: &str, netns: &Path) -> Result<PodAddress, NetworkError> {
        let address = self.inner.attach(pod_id, netns).await?;
        self.attached.send_modify(|n| *n = n.wrapping_add(1));
        Ok(address)
    }

    /// Changes after every attach: a pod has an address (see
    /// [`PodNetwork::address`]) that its status may not show yet.
    pub fn attachments(&self) -> tokio::sync::watch::Receiver<u64> {
        self.attached.subscribe()
    }

    /// Disconnects the pod: removes its veth pair and frees its address.
    /// Detaching a pod that is not attached does nothing.
    pub async fn detach(&self, pod_id: &str) -> Result<(), NetworkError> {
        self.inner.detach(pod_id).await
    }

    /// Makes Bulwark's routes exactly one per peer: its pod CIDR via its
    /// node IP (`HostGw`) or via its VTEP on the VXLAN device, whose
    /// neighbour and forwarding entries follow (`Vxlan`). Routes and
    /// entries of peers no longer listed are removed; a peer with this
    /// node's own pod CIDR is skipped.
    pub async fn sync_routes(&self, peers: &[Peer]) -> Result<(), NetworkError> {
        self.inner.sync_routes(peers).await
    }

    /// Removes everything this crate made: veth pairs, the bridge, the
    /// VXLAN device, peer routes, the nftables tables (the service proxy's
    /// too), and the IPAM state.
    pub async fn cleanup(&self) -> Result<(), NetworkError> {
        self.inner.cleanup().await
    }

    /// Makes the network policy table (`inet bulwark_policy`) enforce
    /// `input`'s policies on this node's pods, in one transaction; does
    /// nothing when the rules would not change. True when they changed.
    pub async fn sync_policy(&self, input: &policy::PolicyInput) -> Result<bool, NetworkError> {
        self.inner.sync_policy(input).await
    }

    /// The pod's address, if it has one.
    pub async fn address(&self, pod_id: &str) -> Option<PodAddress> {
        self.inner.address(pod_id).await
    }
}

/// The MTU of the node's link that carries `address` (in `netns`, or the
/// caller's namespace), if one does: what the `Vxlan` backend subtracts its
/// overhead from. Must be called inside a tokio runtime.
pub async fn node_mtu(
    netns: Option<&Path>,
    address: Ipv4Addr,
) -> Result<Option<u32>, NetworkError> {
    let node = netns.map(netns::Netns::open).transpose()?;
    let handle = netns::netlink(node.as_ref())?;
    link::mtu_of(&handle, address).await
}

/// Removes everything the pod network, NetworkPolicy and the service proxy
/// made in the node's namespace (`netns`; `None`: the caller's) — veth
/// pairs, the bridge `bulwark0`, the VXLAN device, peer routes, the
/// nftables tables — and the IPAM state in `state_dir`, without knowing
/// the node's pod CIDR: `bulwark agent --cleanup`, with the agent stopped
/// (a running one holds the IPAM lock: refused).
pub async fn cleanup_node(netns: Option<&Path>, state_dir: &Path) -> Result<(), NetworkError> {
    let kernel = Linux::new(netns)?;
    ipam::IpamStore::remove_at(state_dir)?;
    network::remove_wiring(&kernel, DEFAULT_BRIDGE).await
}

/// The host end of the pod's veth pair: `bw` + 11 hex digits of
/// sha256(pod id), 13 characters (interface names stop at 15).
pub fn host_veth(pod_id: &str) -> String {
    format!("{VETH_PREFIX}{}", short_hash(pod_id))
}

/// The pod end's name until it is moved and renamed `eth0`.
pub(crate) fn peer_veth(pod_id: &str) -> String {
    format!("bp{}", short_hash(pod_id))
}

fn short_hash(pod_id: &str) -> String {
    let digest = Sha256::digest(pod_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..11].to_owned()
}

/// The MAC of a node's VXLAN device: locally administered, from its
/// address, so peers know it without asking.
pub(crate) fn vtep_mac(node_ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = node_ip.octets();
    [0x0a, 0x62, a, b, c, d]
}

pub(crate) fn is_veth_name(name: &str) -> bool {
    (name.starts_with("bw") || name.starts_with("bp"))
        && name.len() == 13
        && name[2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pod: &str, cluster: &str) -> NetworkConfig {
        NetworkConfig::new(
            pod.parse().unwrap(),
            cluster.parse().unwrap(),
            "/nonexistent".into(),
        )
    }

    /// The agent shares one `PodNetwork` between tasks: it and its futures
    /// must be `Send` (and it `Sync`). Checked when this compiles.
    #[allow(dead_code)]
    fn can_be_shared_between_tasks(network: &PodNetwork) {
        fn send<T: Send>(_: T) {}
        fn sync<T: Sync>(_: &T) {}
        sync(network);
        send(network.attach("a", Path::new("/x")));
        send(network.detach("a"));
        send(network.sync_routes(&[]));
        send(network.cleanup());
    }

    #[test]
    fn veth_names_fit_and_are_stable() {
        let name = host_veth("0b6f5a3e-8f4c-4c1d-9a8e-3f2b1c0d9e8f");
        assert_eq!(name.len(), 13);
        assert_eq!(name, host_veth("0b6f5a3e-8f4c-4c1d-9a8e-3f2b1c0d9e8f"));
        assert_ne!(name, host_veth("another pod"));
        assert!(is_veth_name(&name));
        assert!(is_veth_name(&peer_veth("x")));
        assert!(!is_veth_name("bulwark0"));
        assert!(!is_veth_name("eth0"));
    }

    #[test]
    fn configs_that_cannot_work_are_refused_with_the_reason() {
        let cases = [
            (
                config("10.43.0.0/24", "10.42.0.0/16"),
                "pod CIDR 10.43.0.0/24 is not inside cluster CIDR 10.42.0.0/16",
            ),
            (
                config("10.42.0.0/31", "10.42.0.0/16"),
                "pod CIDR 10.42.0.0/31 is too small: it needs at least a /30",
            ),
            (
                NetworkConfig {
                    bridge: "a-very-long-bridge-name".into(),
                    ..config("10.42.0.0/24", "10.42.0.0/16")
                },
                "bridge name \"a-very-long-bridge-name\" is not a valid interface name (1-15 characters, no '/', ':' or spaces)",
            ),
            (
                NetworkConfig {
                    mtu: 10,
                    ..config("10.42.0.0/24", "10.42.0.0/16")
                },
                "MTU 10 is outside 68-65535",
            ),
        ];
        for (config, want) in cases {
            let err = config.validate().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid network configuration: {want}")
            );
        }
        config("10.42.7.0/24", "10.42.0.0/16").validate().unwrap();
    }
}
