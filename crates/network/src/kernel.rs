//! The narrow trait between what the pod network decides (`lib.rs`) and
//! the kernel: `Linux` does it (netlink through `link.rs`, `nft`, sysctl),
//! the recording fake in the tests writes it down, so the decisions are
//! unit-tested without root (DESIGN.md, invariant 5).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::netns::{self, Netns};
use crate::{NetworkError, PodAddress, link, nft};

/// One link as listed: index, name, and the bridge it is attached to.
pub(crate) type LinkInfo = (u32, String, Option<u32>);

/// Everything the pod network asks of the kernel of one node.
pub(crate) trait Kernel: Send + Sync {
    /// An opened pod network namespace.
    type PodNetns: Send + Sync;

    /// Opens and checks a pod's network namespace.
    fn open_netns(&self, path: &Path) -> Result<Self::PodNetns, NetworkError>;
    /// Creates (if missing) and configures the bridge; returns its index.
    fn ensure_bridge(
        &self,
        name: &str,
        mtu: u32,
        gateway: Ipv4Addr,
        prefix_len: u8,
    ) -> impl Future<Output = Result<u32, NetworkError>> + Send;
    /// Turns on IPv4 forwarding in the node's namespace.
    fn enable_forwarding(&self) -> impl Future<Output = Result<(), NetworkError>> + Send;
    /// Applies an nftables ruleset in one transaction.
    fn apply_nft(&self, ruleset: String) -> impl Future<Output = Result<(), NetworkError>> + Send;
    /// The index of the link called `name`.
    fn link_index(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<u32>, NetworkError>> + Send;
    /// Every link of the node's namespace.
    fn links(&self) -> impl Future<Output = Result<Vec<LinkInfo>, NetworkError>> + Send;
    /// Deletes the link called `name` if it exists.
    fn delete_link(&self, name: &str) -> impl Future<Output = Result<(), NetworkError>> + Send;
    /// Creates the veth pair, `host` on the bridge, `peer` moved into `pod`.
    fn create_veth(
        &self,
        host: &str,
        peer: &str,
        bridge: u32,
        mtu: u32,
        pod: &Self::PodNetns,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send;
    /// Inside `pod`: `peer` becomes `eth0` with `ip`, routed via `gateway`.
    fn configure_pod(
        &self,
        pod: &Self::PodNetns,
        peer: &str,
        mtu: u32,
        ip: Ipv4Addr,
        prefix_len: u8,
        gateway: Ipv4Addr,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send;
    /// Whether the pod's wiring is whole: `host` up on `bridge`, its peer
    /// the pod's `eth0` with `mtu` and `address`.
    fn pod_wired(
        &self,
        host: &str,
        bridge: u32,
        mtu: u32,
        pod: &Self::PodNetns,
        address: PodAddress,
    ) -> impl Future<Output = Result<bool, NetworkError>> + Send;
    /// Bulwark's peer routes: destination → gateway.
    fn routes(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<Ipv4Net, Option<Ipv4Addr>>, NetworkError>> + Send;
    /// Adds or replaces a peer route; with `onlink`, through that device.
    fn replace_route(
        &self,
        destination: Ipv4Net,
        gateway: Ipv4Addr,
        onlink: Option<u32>,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send;
    /// Deletes a peer route.
    fn delete_route(
        &self,
        destination: Ipv4Net,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send;
    /// Keeps the VXLAN device if it is as these settings make it, else
    /// creates it afresh; returns its index and the peers it already
    /// tunnels to (none when new).
    fn ensure_vxlan(
        &self,
        vxlan: &Vxlan,
        local: Ipv4Addr,
        address: Ipv4Addr,
        mtu: u32,
    ) -> impl Future<Output = Result<(u32, Vec<Vtep>), NetworkError>> + Send;
    /// Points a peer VTEP's address at its MAC (`fdb: false`), or its MAC
    /// at its node (`fdb: true`), on the VXLAN device.
    fn replace_vtep(
        &self,
        device: u32,
        peer: Vtep,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send;
    /// Removes both entries `replace_vtep` made for `peer`.
    fn delete_vtep(
        &self,
        device: u32,
        peer: Vtep,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send;
}

/// The VXLAN device's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vxlan {
    /// Its name.
    pub(crate) name: &'static str,
    /// The VXLAN network identifier.
    pub(crate) vni: u32,
    /// The UDP port, the same on every node.
    pub(crate) port: u16,
}

/// A node's end of the tunnel: the address and MAC of its VXLAN device and
/// the node address its encapsulated frames go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Vtep {
    /// The device's address: the network address of the node's pod CIDR.
    pub(crate) ip: Ipv4Addr,
    /// The device's MAC, derived from the node address.
    pub(crate) mac: [u8; 6],
    /// The node's address.
    pub(crate) node_ip: Ipv4Addr,
}

/// The real kernel, in the node's namespace (`None`: the caller's own).
#[derive(Debug)]
pub(crate) struct Linux {
    node: Option<Netns>,
    netlink: rtnetlink::Handle,
    nft: PathBuf,
}

impl Linux {
    /// Finds `nft` and opens netlink in the node's namespace.
    pub(crate) fn new(netns: Option<&Path>) -> Result<Self, NetworkError> {
        let nft = nft::find()?;
        let node = netns.map(Netns::open).transpose()?;
        let netlink = netns::netlink(node.as_ref())?;
        Ok(Self { node, netlink, nft })
    }
}

impl Kernel for Linux {
    type PodNetns = Netns;

    fn open_netns(&self, path: &Path) -> Result<Netns, NetworkError> {
        Netns::open(path)
    }

    async fn ensure_bridge(
        &self,
        name: &str,
        mtu: u32,
        gateway: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<u32, NetworkError> {
        link::ensure_bridge(&self.netlink, name, mtu, gateway, prefix_len).await
    }

    async fn enable_forwarding(&self) -> Result<(), NetworkError> {
        netns::run_in(self.node.as_ref(), || {
            // /proc/sys/net is the namespace of the thread that opens it.
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        })?
        .map_err(NetworkError::io("enabling net.ipv4.ip_forward"))
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

    async fn link_index(&self, name: &str) -> Result<Option<u32>, NetworkError> {
        link::index(&self.netlink, name).await
    }

    async fn links(&self) -> Result<Vec<LinkInfo>, NetworkError> {
        link::list(&self.netlink).await
    }

    async fn delete_link(&self, name: &str) -> Result<(), NetworkError> {
        link::delete(&self.netlink, name).await
    }

    async fn create_veth(
        &self,
        host: &str,
        peer: &str,
        bridge: u32,
        mtu: u32,
        pod: &Netns,
    ) -> Result<(), NetworkError> {
        link::create_veth(&self.netlink, host, peer, bridge, mtu, pod).await
    }

    async fn configure_pod(
        &self,
        pod: &Netns,
        peer: &str,
        mtu: u32,
        ip: Ipv4Addr,
        prefix_len: u8,
        gateway: Ipv4Addr,
    ) -> Result<(), NetworkError> {
        let handle = netns::netlink(Some(pod))?;
        link::configure_pod(&handle, peer, mtu, ip, prefix_len, gateway).await
    }

    async fn pod_wired(
        &self,
        host: &str,
        bridge: u32,
        mtu: u32,
        pod: &Netns,
        address: PodAddress,
    ) -> Result<bool, NetworkError> {
        let handle = netns::netlink(Some(pod))?;
        link::pod_wired(
            &self.netlink,
            &handle,
            host,
            bridge,
            mtu,
            address.ip,
            address.prefix_len,
            address.gateway,
        )
        .await
    }

    async fn routes(&self) -> Result<BTreeMap<Ipv4Net, Option<Ipv4Addr>>, NetworkError> {
        Ok(link::routes(&self.netlink)
            .await?
            .into_iter()
            .map(|(destination, (gateway, _))| (destination, gateway))
            .collect())
    }

    async fn replace_route(
        &self,
        destination: Ipv4Net,
        gateway: Ipv4Addr,
        onlink: Option<u32>,
    ) -> Result<(), NetworkError> {
        link::replace_route(&self.netlink, destination, gateway, onlink).await
    }

    async fn delete_route(&self, destination: Ipv4Net) -> Result<(), NetworkError> {
        if let Some((_, route)) = link::routes(&self.netlink).await?.remove(&destination) {
            link::delete_route(&self.netlink, route).await?;
        }
        Ok(())
    }

    async fn ensure_vxlan(
        &self,
        vxlan: &Vxlan,
        local: Ipv4Addr,
        address: Ipv4Addr,
        mtu: u32,
    ) -> Result<(u32, Vec<Vtep>), NetworkError> {
        let handle = &self.netlink;
        let wanted = link::VxlanDevice {
            name: vxlan.name,
            vni: vxlan.vni,
            port: vxlan.port,
            local,
            mac: crate::vtep_mac(local),
            address,
            mtu,
        };
        let Some(device) = link::keep_vxlan(handle, &wanted).await? else {
            let device = link::recreate_vxlan(handle, &wanted).await?;
            return Ok((device, Vec::new()));
        };
        // A peer is its neighbour entry and the forwarding entry of the
        // same MAC; a half (an agent killed between the two) is dropped,
        // and the next route sync makes the whole again.
        let (neighbours, forwarding) = link::tunnel_entries(handle, device).await?;
        let mut peers = Vec::new();
        for (ip, mac) in &neighbours {
            match forwarding.iter().find(|(m, _)| m == mac) {
                Some((_, node_ip)) => peers.push(Vtep {
                    ip: *ip,
                    mac: *mac,
                    node_ip: *node_ip,
                }),
                None => link::delete_neighbour(handle, device, *ip, None).await?,
            }
        }
        for (mac, node_ip) in &forwarding {
            if !neighbours.iter().any(|(_, m)| m == mac) {
                link::delete_neighbour(handle, device, *node_ip, Some(*mac)).await?;
            }
        }
        Ok((device, peers))
    }

    async fn replace_vtep(&self, device: u32, peer: Vtep) -> Result<(), NetworkError> {
        link::replace_fdb(&self.netlink, device, peer.mac, peer.node_ip).await?;
        link::replace_neighbour(&self.netlink, device, peer.ip, peer.mac).await
    }

    async fn delete_vtep(&self, device: u32, peer: Vtep) -> Result<(), NetworkError> {
        link::delete_neighbour(&self.netlink, device, peer.ip, None).await?;
        link::delete_neighbour(&self.netlink, device, peer.node_ip, Some(peer.mac)).await
    }
}

/// A kernel that writes down what it is asked and keeps a small model of
/// links and routes, for unit tests.
#[cfg(test)]
pub(crate) mod fake {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;

    use super::*;

    #[derive(Debug, Default)]
    pub(crate) struct State {
        /// Every call, rendered.
        pub(crate) calls: Vec<String>,
        pub(crate) links: Vec<LinkInfo>,
        pub(crate) routes: BTreeMap<Ipv4Net, Option<Ipv4Addr>>,
        /// The last ruleset applied.
        pub(crate) nft: String,
        /// `configure_pod` fails while this is set.
        pub(crate) fail_configure: bool,
        /// Pods configured: peer name → (namespace, mtu, address).
        pub(crate) configured: BTreeMap<String, (PathBuf, u32, PodAddress)>,
        /// The VXLAN device's settings, as rendered.
        pub(crate) vxlan_settings: String,
        /// Peers on the VXLAN device, by VTEP address.
        pub(crate) tunnel: BTreeMap<Ipv4Addr, Vtep>,
    }

    #[derive(Debug, Default)]
    pub(crate) struct Fake(pub(crate) Mutex<State>);

    /// The pod end's name of the veth whose host end is `host`.
    fn peer_of(host: &str) -> String {
        host.replacen(crate::VETH_PREFIX, "bp", 1)
    }

    impl Fake {
        pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.0.lock().unwrap()
        }

        /// The calls since the last `take_calls`.
        pub(crate) fn take_calls(&self) -> Vec<String> {
            std::mem::take(&mut self.state().calls)
        }

        fn add_link(state: &mut State, name: &str, bridge: Option<u32>) -> u32 {
            let index = state.links.iter().map(|l| l.0).max().unwrap_or(1) + 1;
            state.links.push((index, name.to_owned(), bridge));
            index
        }
    }

    impl Kernel for Fake {
        type PodNetns = PathBuf;

        fn open_netns(&self, path: &Path) -> Result<PathBuf, NetworkError> {
            Ok(path.to_owned())
        }

        async fn ensure_bridge(
            &self,
            name: &str,
            mtu: u32,
            gateway: Ipv4Addr,
            prefix_len: u8,
        ) -> Result<u32, NetworkError> {
            let mut state = self.state();
            state
                .calls
                .push(format!("bridge {name} mtu {mtu} {gateway}/{prefix_len}"));
            match state.links.iter().find(|l| l.1 == name) {
                Some(link) => Ok(link.0),
                None => Ok(Self::add_link(&mut state, name, None)),
            }
        }

        async fn enable_forwarding(&self) -> Result<(), NetworkError> {
            self.state().calls.push("ip_forward=1".into());
            Ok(())
        }

        async fn apply_nft(&self, ruleset: String) -> Result<(), NetworkError> {
            let mut state = self.state();
            let pods = ruleset
                .lines()
                .find(|l| l.contains("elements") && l.contains("10."))
                .map_or("no pods".to_owned(), |l| l.trim().to_owned());
            let what = if ruleset.contains("chain") {
                pods
            } else {
                "delete tables".to_owned()
            };
            state.calls.push(format!("nft: {what}"));
            state.nft = ruleset;
            Ok(())
        }

        async fn link_index(&self, name: &str) -> Result<Option<u32>, NetworkError> {
            Ok(self.state().links.iter().find(|l| l.1 == name).map(|l| l.0))
        }

        async fn links(&self) -> Result<Vec<LinkInfo>, NetworkError> {
            Ok(self.state().links.clone())
        }

        async fn delete_link(&self, name: &str) -> Result<(), NetworkError> {
            let mut state = self.state();
            let before = state.links.len();
            state.links.retain(|l| l.1 != name);
            if state.links.len() != before {
                state.calls.push(format!("delete link {name}"));
            }
            // A veth's peer goes with it.
            state.configured.remove(&peer_of(name));
            Ok(())
        }

        async fn create_veth(
            &self,
            host: &str,
            peer: &str,
            bridge: u32,
            mtu: u32,
            pod: &PathBuf,
        ) -> Result<(), NetworkError> {
            let mut state = self.state();
            state.calls.push(format!(
                "veth {host} (bridge {bridge}) / {peer} -> {} mtu {mtu}",
                pod.display()
            ));
            Self::add_link(&mut state, host, Some(bridge));
            Ok(())
        }

        async fn configure_pod(
            &self,
            pod: &PathBuf,
            peer: &str,
            mtu: u32,
            ip: Ipv4Addr,
            prefix_len: u8,
            gateway: Ipv4Addr,
        ) -> Result<(), NetworkError> {
            let mut state = self.state();
            state.calls.push(format!(
                "in {}: {peer} -> eth0 {ip}/{prefix_len} via {gateway} mtu {mtu}",
                pod.display()
            ));
            if state.fail_configure {
                return Err(NetworkError::Config("configure failed (fake)".into()));
            }
            let address = PodAddress {
                ip,
                gateway,
                prefix_len,
            };
            state
                .configured
                .insert(peer.to_owned(), (pod.clone(), mtu, address));
            Ok(())
        }

        async fn pod_wired(
            &self,
            host: &str,
            bridge: u32,
            mtu: u32,
            pod: &PathBuf,
            address: PodAddress,
        ) -> Result<bool, NetworkError> {
            let state = self.state();
            let on_bridge = state
                .links
                .iter()
                .any(|l| l.1 == host && l.2 == Some(bridge));
            Ok(on_bridge
                && state.configured.get(&peer_of(host)) == Some(&(pod.clone(), mtu, address)))
        }

        async fn routes(&self) -> Result<BTreeMap<Ipv4Net, Option<Ipv4Addr>>, NetworkError> {
            Ok(self.state().routes.clone())
        }

        async fn replace_route(
            &self,
            destination: Ipv4Net,
            gateway: Ipv4Addr,
            onlink: Option<u32>,
        ) -> Result<(), NetworkError> {
            let mut state = self.state();
            let device = onlink
                .map(|d| format!(" dev {d} onlink"))
                .unwrap_or_default();
            state
                .calls
                .push(format!("route {destination} via {gateway}{device}"));
            state.routes.insert(destination, Some(gateway));
            Ok(())
        }

        async fn delete_route(&self, destination: Ipv4Net) -> Result<(), NetworkError> {
            let mut state = self.state();
            state.calls.push(format!("delete route {destination}"));
            state.routes.remove(&destination);
            Ok(())
        }

        async fn ensure_vxlan(
            &self,
            vxlan: &Vxlan,
            local: Ipv4Addr,
            address: Ipv4Addr,
            mtu: u32,
        ) -> Result<(u32, Vec<Vtep>), NetworkError> {
            let mut state = self.state();
            let settings = format!(
                "vni {} port {} local {local} address {address}/32 mtu {mtu}",
                vxlan.vni, vxlan.port
            );
            if let Some(link) = state.links.iter().find(|l| l.1 == vxlan.name)
                && state.vxlan_settings == settings
            {
                let (device, peers) = (link.0, state.tunnel.values().copied().collect());
                state.calls.push(format!("keep vxlan {}", vxlan.name));
                return Ok((device, peers));
            }
            state.calls.push(format!("vxlan {} {settings}", vxlan.name));
            state.links.retain(|l| l.1 != vxlan.name);
            state.tunnel.clear();
            state.vxlan_settings = settings;
            Ok((Self::add_link(&mut state, vxlan.name, None), Vec::new()))
        }

        async fn replace_vtep(&self, device: u32, peer: Vtep) -> Result<(), NetworkError> {
            let mut state = self.state();
            state
                .calls
                .push(format!("vtep {} at {} on {device}", peer.ip, peer.node_ip));
            state.tunnel.insert(peer.ip, peer);
            Ok(())
        }

        async fn delete_vtep(&self, device: u32, peer: Vtep) -> Result<(), NetworkError> {
            let mut state = self.state();
            state.calls.push(format!(
                "delete vtep {} at {} on {device}",
                peer.ip, peer.node_ip
            ));
            state.tunnel.remove(&peer.ip);
            Ok(())
        }
    }
}
