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
//! - routes to other nodes' pod CIDRs via their node IPs (same L2), marked
//!   with routing protocol [`ROUTE_PROTOCOL`].
//!
//! Everything goes through netlink (`rtnetlink`) except nftables, which is
//! one `nft -f -` transaction per sync. IPv4 only; VXLAN (nodes on different
//! L2 segments) and IPv6 are not done yet.
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
mod link;
mod netns;
mod nft;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

pub use error::NetworkError;
pub use ipnet::Ipv4Net;
pub use link::ROUTE_PROTOCOL;

use ipam::{Ipam, IpamStore};
use netns::Netns;

/// How the host ends of pods' veth pairs begin (`bw<hash>`).
pub(crate) const VETH_PREFIX: &str = "bw";

/// The default bridge name.
pub const DEFAULT_BRIDGE: &str = "bulwark0";
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
}

impl NetworkConfig {
    /// A config with the default bridge, MTU 1500, in the caller's netns.
    pub fn new(pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net, state_dir: PathBuf) -> Self {
        Self {
            bridge: DEFAULT_BRIDGE.to_owned(),
            pod_cidr,
            cluster_cidr,
            state_dir,
            mtu: 1500,
            netns: None,
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

/// Another node, reached directly (same L2) for its pods.
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
    config: NetworkConfig,
    pod_cidr: Ipv4Net,
    gateway: Ipv4Addr,
    node: Option<Netns>,
    netlink: rtnetlink::Handle,
    nft: PathBuf,
    ipam: Mutex<IpamStore>,
}

impl PodNetwork {
    /// Checks the config and the `nft` tool, opens the IPAM state, and sets
    /// up the bridge, `ip_forward` and the nftables table. Idempotent: a
    /// restarted agent calls it again and keeps its pods' addresses.
    /// Must be called inside a tokio runtime (netlink runs on it).
    pub async fn new(config: NetworkConfig) -> Result<Self, NetworkError> {
        config.validate()?;
        let nft = nft::find()?;
        let node = config.netns.as_deref().map(Netns::open).transpose()?;
        let pod_cidr = config.pod_cidr.trunc();
        let ipam = IpamStore::open(&config.state_dir, pod_cidr)?;
        let gateway = Ipam::gateway(pod_cidr);
        let netlink = netns::netlink(node.as_ref())?;
        let network = Self {
            config,
            pod_cidr,
            gateway,
            node,
            netlink,
            nft,
            ipam: Mutex::new(ipam),
        };
        network.setup().await?;
        Ok(network)
    }

    async fn setup(&self) -> Result<(), NetworkError> {
        let bridge = &self.config.bridge;
        link::ensure_bridge(
            &self.netlink,
            bridge,
            self.config.mtu,
            self.gateway,
            self.pod_cidr.prefix_len(),
        )
        .await?;
        netns::run_in(self.node.as_ref(), || {
            // /proc/sys/net is the namespace of the thread that opens it.
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        })?
        .map_err(NetworkError::io("enabling net.ipv4.ip_forward"))?;
        {
            let ipam = self.ipam.lock().await;
            self.apply_nft(self.ruleset(&ipam)).await?;
        }
        info!(%bridge, pod_cidr = %self.pod_cidr, gateway = %self.gateway, "pod network ready");
        Ok(())
    }

    /// Connects the pod to the bridge: its address (the same one on every
    /// call for the same `pod_id`), a veth pair, `eth0` inside `netns` (a
    /// path such as `/run/bulwark/netns/<id>` or `/proc/<pid>/ns/net`).
    /// Calling it again rebuilds the wiring with the same address.
    pub async fn attach(&self, pod_id: &str, netns: &Path) -> Result<PodAddress, NetworkError> {
        let pod_netns = Netns::open(netns)?;
        let (ip, new) = {
            let mut ipam = self.ipam.lock().await;
            let new = ipam.get(pod_id).is_none();
            let ip = ipam.allocate(pod_id)?;
            // The pod's anti-spoofing entries exist before its veth does.
            if let Err(e) = self.apply_nft(self.ruleset(&ipam)).await {
                if new {
                    ipam.release(pod_id)?;
                }
                return Err(e);
            }
            (ip, new)
        };
        let address = PodAddress {
            ip,
            gateway: self.gateway,
            prefix_len: self.pod_cidr.prefix_len(),
        };
        match self.wire(pod_id, &pod_netns, address).await {
            Ok(()) => {
                debug!(pod_id, %ip, netns = %netns.display(), "pod attached");
                Ok(address)
            }
            Err(e) => {
                if let Err(undo) = link::delete(&self.netlink, &host_veth(pod_id)).await {
                    warn!(pod_id, error = %undo, "removing the veth of a failed attach");
                }
                if new {
                    let mut ipam = self.ipam.lock().await;
                    ipam.release(pod_id)?;
                    self.apply_nft(self.ruleset(&ipam)).await?;
                }
                Err(e)
            }
        }
    }

    async fn wire(
        &self,
        pod_id: &str,
        pod_netns: &Netns,
        address: PodAddress,
    ) -> Result<(), NetworkError> {
        let (host, peer) = (host_veth(pod_id), peer_veth(pod_id));
        // Start clean: deleting an old host end takes its peer (the old eth0) with it.
        link::delete(&self.netlink, &host).await?;
        link::delete(&self.netlink, &peer).await?;
        let bridge = link::index(&self.netlink, &self.config.bridge)
            .await?
            .ok_or_else(|| {
                NetworkError::Config(format!(
                    "bridge {} is gone; create a new PodNetwork to set it up again",
                    self.config.bridge
                ))
            })?;
        link::create_veth(
            &self.netlink,
            &host,
            &peer,
            bridge,
            self.config.mtu,
            pod_netns,
        )
        .await?;
        let pod = netns::netlink(Some(pod_netns))?;
        link::configure_pod(
            &pod,
            &peer,
            self.config.mtu,
            address.ip,
            address.prefix_len,
            address.gateway,
        )
        .await
    }

    /// Disconnects the pod: removes its veth pair and frees its address.
    /// Detaching a pod that is not attached does nothing.
    pub async fn detach(&self, pod_id: &str) -> Result<(), NetworkError> {
        link::delete(&self.netlink, &host_veth(pod_id)).await?;
        link::delete(&self.netlink, &peer_veth(pod_id)).await?;
        let mut ipam = self.ipam.lock().await;
        let released = ipam.release(pod_id)?;
        if released.is_some() {
            self.apply_nft(self.ruleset(&ipam)).await?;
        }
        debug!(pod_id, ?released, "pod detached");
        Ok(())
    }

    /// Makes Bulwark's routes exactly one per peer: its pod CIDR via its
    /// node IP. Routes to peers no longer listed are removed; a peer with
    /// this node's own pod CIDR is skipped.
    pub async fn sync_routes(&self, peers: &[Peer]) -> Result<(), NetworkError> {
        let desired = desired_routes(self.pod_cidr, peers)?;
        let current = link::routes(&self.netlink).await?;
        for (destination, (gateway, route)) in &current {
            if desired.get(destination) != gateway.as_ref() {
                link::delete_route(&self.netlink, route.clone()).await?;
            }
        }
        for (destination, gateway) in &desired {
            if current.get(destination).and_then(|(g, _)| g.as_ref()) != Some(gateway) {
                link::replace_route(&self.netlink, *destination, *gateway).await?;
            }
        }
        debug!(routes = desired.len(), "peer routes synced");
        Ok(())
    }

    /// Removes everything this crate made: veth pairs, the bridge, peer
    /// routes, the nftables tables, and the IPAM state.
    pub async fn cleanup(&self) -> Result<(), NetworkError> {
        for (_, (_, route)) in link::routes(&self.netlink).await? {
            link::delete_route(&self.netlink, route).await?;
        }
        let bridge = link::index(&self.netlink, &self.config.bridge).await?;
        for (_, name, controller) in link::list(&self.netlink).await? {
            if (bridge.is_some() && controller == bridge) || is_veth_name(&name) {
                link::delete(&self.netlink, &name).await?;
            }
        }
        link::delete(&self.netlink, &self.config.bridge).await?;
        self.apply_nft(nft::render_delete()).await?;
        self.ipam.lock().await.remove()?;
        info!(bridge = %self.config.bridge, "pod network removed");
        Ok(())
    }

    /// The pod's address, if it has one.
    pub async fn address(&self, pod_id: &str) -> Option<PodAddress> {
        let ip = self.ipam.lock().await.get(pod_id)?;
        Some(PodAddress {
            ip,
            gateway: self.gateway,
            prefix_len: self.pod_cidr.prefix_len(),
        })
    }

    /// The nftables text for the pods `ipam` knows. (Callers hold the IPAM
    /// lock while applying it, so an older ruleset never replaces a newer.)
    fn ruleset(&self, ipam: &IpamStore) -> String {
        let pods: Vec<nft::PodPort> = ipam
            .allocations()
            .map(|(pod_id, ip)| nft::PodPort {
                veth: host_veth(pod_id),
                ip,
                mac: link::pod_mac(ip),
            })
            .collect();
        nft::render(self.pod_cidr, self.config.cluster_cidr, &pods)
    }

    async fn apply_nft(&self, ruleset: String) -> Result<(), NetworkError> {
        // `nft` runs in a child process: keep the runtime's threads free.
        let nft = self.nft.clone();
        let node = self.node.as_ref().map(|n| n.path().to_owned());
        tokio::task::spawn_blocking(move || {
            let node = node.as_deref().map(Netns::open).transpose()?;
            nft::apply(&nft, node.as_ref(), &ruleset)
        })
        .await
        .map_err(|e| NetworkError::io("running nft")(std::io::Error::other(e)))?
    }
}

/// The routes `sync_routes` keeps: each peer's pod CIDR via its node IP,
/// except this node's own. Overlapping or doubly claimed ranges are refused
/// rather than routed one way or the other.
fn desired_routes(
    own: Ipv4Net,
    peers: &[Peer],
) -> Result<BTreeMap<Ipv4Net, Ipv4Addr>, NetworkError> {
    let mut desired = BTreeMap::new();
    for peer in peers {
        let cidr = peer.pod_cidr.trunc();
        if cidr == own {
            continue;
        }
        if cidr.contains(&own) || own.contains(&cidr) {
            return Err(NetworkError::Config(format!(
                "peer {} has pod CIDR {cidr}, which overlaps this node's {own}",
                peer.node_ip
            )));
        }
        if let Some(other) = desired.insert(cidr, peer.node_ip)
            && other != peer.node_ip
        {
            return Err(NetworkError::Config(format!(
                "pod CIDR {cidr} is claimed by two nodes, {other} and {}",
                peer.node_ip
            )));
        }
    }
    Ok(desired)
}

/// The host end of the pod's veth pair: `bw` + 11 hex digits of
/// sha256(pod id), 13 characters (interface names stop at 15).
pub fn host_veth(pod_id: &str) -> String {
    format!("{VETH_PREFIX}{}", short_hash(pod_id))
}

/// The pod end's name until it is moved and renamed `eth0`.
fn peer_veth(pod_id: &str) -> String {
    format!("bp{}", short_hash(pod_id))
}

fn short_hash(pod_id: &str) -> String {
    let digest = Sha256::digest(pod_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..11].to_owned()
}

fn is_veth_name(name: &str) -> bool {
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

    fn peer(cidr: &str, ip: &str) -> Peer {
        Peer {
            pod_cidr: cidr.parse().unwrap(),
            node_ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn routes_go_to_every_peer_but_this_node() {
        let own: Ipv4Net = "10.42.1.0/24".parse().unwrap();
        let peers = [
            peer("10.42.1.0/24", "192.168.0.1"),
            peer("10.42.2.0/24", "192.168.0.2"),
            peer("10.42.3.7/24", "192.168.0.3"),
            peer("10.42.2.0/24", "192.168.0.2"),
        ];
        let routes: Vec<String> = desired_routes(own, &peers)
            .unwrap()
            .iter()
            .map(|(cidr, via)| format!("{cidr} via {via}"))
            .collect();
        assert_eq!(
            routes,
            [
                "10.42.2.0/24 via 192.168.0.2",
                "10.42.3.0/24 via 192.168.0.3"
            ]
        );
    }

    #[test]
    fn ambiguous_routes_are_refused() {
        let own: Ipv4Net = "10.42.1.0/24".parse().unwrap();
        let err = desired_routes(own, &[peer("10.42.0.0/16", "192.168.0.9")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid network configuration: peer 192.168.0.9 has pod CIDR 10.42.0.0/16, which overlaps this node's 10.42.1.0/24"
        );
        let twice = [
            peer("10.42.2.0/24", "192.168.0.2"),
            peer("10.42.2.0/24", "192.168.0.3"),
        ];
        let err = desired_routes(own, &twice).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid network configuration: pod CIDR 10.42.2.0/24 is claimed by two nodes, 192.168.0.2 and 192.168.0.3"
        );
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
