//! What `PodNetwork` does, over any `Kernel`: the order of the steps, the
//! undoing of a failed attach, which routes to keep. Unit-tested with the
//! recording fake kernel.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::ipam::{Ipam, IpamStore};
use crate::kernel::{Kernel, Vtep, Vxlan};
use crate::policy::{self, Plan, PolicyInput};
use crate::{
    Backend, Ipv4Net, NetworkConfig, NetworkError, Peer, PodAddress, VXLAN_DEVICE, VXLAN_PORT,
    VXLAN_VNI, host_veth, is_veth_name, link, nft, peer_veth, vtep_mac,
};

/// The VXLAN device every node makes for the `Vxlan` backend.
const VXLAN: Vxlan = Vxlan {
    name: VXLAN_DEVICE,
    vni: VXLAN_VNI,
    port: VXLAN_PORT,
};

/// Removes the links, routes and nftables tables the crate makes (the
/// service proxy's table too) — everything but the IPAM state.
pub(crate) async fn remove_wiring<K: Kernel>(kernel: &K, bridge: &str) -> Result<(), NetworkError> {
    for destination in kernel.routes().await?.keys() {
        kernel.delete_route(*destination).await?;
    }
    let bridge_index = kernel.link_index(bridge).await?;
    for (_, name, controller) in kernel.links().await? {
        if (bridge_index.is_some() && controller == bridge_index) || is_veth_name(&name) {
            kernel.delete_link(&name).await?;
        }
    }
    kernel.delete_link(bridge).await?;
    kernel.delete_link(VXLAN_DEVICE).await?;
    let tables = format!("{}{}", nft::render_delete(), policy::render_delete());
    kernel.apply_nft(tables).await
}

/// What `PodNetwork` does, over any `Kernel` (the unit tests' is a fake).
#[derive(Debug)]
pub(crate) struct Network<K> {
    config: NetworkConfig,
    pod_cidr: Ipv4Net,
    gateway: Ipv4Addr,
    kernel: K,
    ipam: Mutex<IpamStore>,
    /// The VXLAN device's index (`Vxlan` backend).
    vxlan: Option<u32>,
    /// The peers' VTEPs the VXLAN device has entries for, by pod CIDR.
    vteps: Mutex<BTreeMap<Ipv4Addr, Vtep>>,
    /// The network policy table last applied.
    policy: Mutex<Option<String>>,
}

impl<K: Kernel> Network<K> {
    pub(crate) async fn start(config: NetworkConfig, kernel: K) -> Result<Self, NetworkError> {
        let pod_cidr = config.pod_cidr.trunc();
        let ipam = IpamStore::open(&config.state_dir, pod_cidr)?;
        let mut network = Self {
            gateway: Ipam::gateway(pod_cidr),
            config,
            pod_cidr,
            kernel,
            ipam: Mutex::new(ipam),
            vxlan: None,
            vteps: Mutex::new(BTreeMap::new()),
            policy: Mutex::new(None),
        };
        let bridge = &network.config.bridge;
        network
            .kernel
            .ensure_bridge(
                bridge,
                network.config.mtu,
                network.gateway,
                pod_cidr.prefix_len(),
            )
            .await?;
        network.kernel.enable_forwarding().await?;
        match network.config.backend {
            // Kept when it is as configured (a restarted agent's pods keep
            // talking across nodes), with the peers it tunnels to, which
            // the first route sync corrects; else made afresh.
            Backend::Vxlan { local } => {
                let (device, peers) = network
                    .kernel
                    .ensure_vxlan(&VXLAN, local, pod_cidr.network(), network.config.mtu)
                    .await?;
                network.vxlan = Some(device);
                *network.vteps.get_mut() = peers.into_iter().map(|v| (v.ip, v)).collect();
            }
            Backend::HostGw => network.kernel.delete_link(VXLAN_DEVICE).await?,
        }
        {
            let ipam = network.ipam.lock().await;
            network.kernel.apply_nft(network.ruleset(&ipam)).await?;
        }
        info!(%bridge, %pod_cidr, gateway = %network.gateway, "pod network ready");
        Ok(network)
    }

    pub(crate) async fn attach(
        &self,
        pod_id: &str,
        netns: &Path,
    ) -> Result<PodAddress, NetworkError> {
        let pod_netns = self.kernel.open_netns(netns)?;
        let (ip, new) = {
            let mut ipam = self.ipam.lock().await;
            let new = ipam.get(pod_id).is_none();
            let ip = ipam.allocate(pod_id)?;
            // The pod's anti-spoofing entries exist before its veth does.
            if let Err(e) = self.kernel.apply_nft(self.ruleset(&ipam)).await {
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
                if let Err(undo) = self.kernel.delete_link(&host_veth(pod_id)).await {
                    warn!(pod_id, error = %undo, "removing the veth of a failed attach");
                }
                if new {
                    let mut ipam = self.ipam.lock().await;
                    ipam.release(pod_id)?;
                    self.kernel.apply_nft(self.ruleset(&ipam)).await?;
                }
                Err(e)
            }
        }
    }

    async fn wire(
        &self,
        pod_id: &str,
        pod_netns: &K::PodNetns,
        address: PodAddress,
    ) -> Result<(), NetworkError> {
        let (host, peer) = (host_veth(pod_id), peer_veth(pod_id));
        let bridge = self
            .kernel
            .link_index(&self.config.bridge)
            .await?
            .ok_or_else(|| {
                NetworkError::Config(format!(
                    "bridge {} is gone; create a new PodNetwork to set it up again",
                    self.config.bridge
                ))
            })?;
        let mtu = self.config.mtu;
        // A running pod (a restarted agent's, or the next sync of one) keeps
        // its wiring untouched: rebuilding it would cut its connections.
        if self
            .kernel
            .pod_wired(&host, bridge, mtu, pod_netns, address)
            .await?
        {
            return Ok(());
        }
        // Start clean: deleting an old host end takes its peer (the old
        // eth0, or a half-made pair) with it.
        self.kernel.delete_link(&host).await?;
        self.kernel.delete_link(&peer).await?;
        self.kernel
            .create_veth(&host, &peer, bridge, mtu, pod_netns)
            .await?;
        self.kernel
            .configure_pod(
                pod_netns,
                &peer,
                mtu,
                address.ip,
                address.prefix_len,
                address.gateway,
            )
            .await
    }

    pub(crate) async fn detach(&self, pod_id: &str) -> Result<(), NetworkError> {
        self.kernel.delete_link(&host_veth(pod_id)).await?;
        self.kernel.delete_link(&peer_veth(pod_id)).await?;
        let mut ipam = self.ipam.lock().await;
        let released = ipam.release(pod_id)?;
        if released.is_some() {
            self.kernel.apply_nft(self.ruleset(&ipam)).await?;
        }
        debug!(pod_id, ?released, "pod detached");
        Ok(())
    }

    pub(crate) async fn sync_routes(&self, peers: &[Peer]) -> Result<(), NetworkError> {
        let peers = desired_routes(self.pod_cidr, peers)?;
        // Through the tunnel, a peer's pod CIDR is routed via its VTEP, the
        // CIDR's network address on its VXLAN device.
        let desired: BTreeMap<Ipv4Net, Ipv4Addr> = peers
            .iter()
            .map(|(cidr, node_ip)| match self.vxlan {
                Some(_) => (*cidr, cidr.network()),
                None => (*cidr, *node_ip),
            })
            .collect();
        let current = self.kernel.routes().await?;
        for (destination, gateway) in &current {
            if desired.get(destination) != gateway.as_ref() {
                self.kernel.delete_route(*destination).await?;
            }
        }
        if let Some(device) = self.vxlan {
            let mut vteps = self.vteps.lock().await;
            // By VTEP address: the network address of a peer's pod CIDR
            // (CIDRs do not overlap, so neither do these).
            let wanted: BTreeMap<Ipv4Addr, Vtep> = peers
                .iter()
                .map(|(cidr, node_ip)| {
                    let vtep = Vtep {
                        ip: cidr.network(),
                        mac: vtep_mac(*node_ip),
                        node_ip: *node_ip,
                    };
                    (vtep.ip, vtep)
                })
                .collect();
            let stale: Vec<Vtep> = vteps
                .values()
                .filter(|vtep| wanted.get(&vtep.ip) != Some(vtep))
                .copied()
                .collect();
            for vtep in stale {
                self.kernel.delete_vtep(device, vtep).await?;
                vteps.remove(&vtep.ip);
            }
            for (ip, vtep) in wanted {
                if vteps.get(&ip) != Some(&vtep) {
                    self.kernel.replace_vtep(device, vtep).await?;
                    vteps.insert(ip, vtep);
                }
            }
        }
        for (destination, gateway) in &desired {
            if current.get(destination).copied().flatten() != Some(*gateway) {
                self.kernel
                    .replace_route(*destination, *gateway, self.vxlan)
                    .await?;
            }
        }
        debug!(routes = desired.len(), "peer routes synced");
        Ok(())
    }

    pub(crate) async fn cleanup(&self) -> Result<(), NetworkError> {
        remove_wiring(&self.kernel, &self.config.bridge).await?;
        *self.policy.lock().await = None;
        self.ipam.lock().await.remove()?;
        info!(bridge = %self.config.bridge, "pod network removed");
        Ok(())
    }

    /// Replaces the network policy table with `input`'s rules for this
    /// node's pods, unless it already holds them; true when it changed.
    pub(crate) async fn sync_policy(&self, input: &PolicyInput) -> Result<bool, NetworkError> {
        let text = policy::render(&Plan::new(input, self.pod_cidr));
        let mut last = self.policy.lock().await;
        if last.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        self.kernel.apply_nft(text.clone()).await?;
        *last = Some(text);
        Ok(true)
    }

    pub(crate) async fn address(&self, pod_id: &str) -> Option<PodAddress> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::fake::Fake;
    use expect_test::expect;

    async fn fake_network(state: &Path) -> Network<Fake> {
        let config = NetworkConfig::new(
            "10.42.3.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
            state.to_owned(),
        );
        Network::start(config, Fake::default()).await.unwrap()
    }

    #[tokio::test]
    async fn start_sets_up_the_bridge_forwarding_and_tables() {
        let dir = tempfile::tempdir().unwrap();
        let network = fake_network(dir.path()).await;
        expect![[r#"
            [
                "bridge bulwark0 mtu 1500 10.42.3.1/24",
                "ip_forward=1",
                "nft: no pods",
            ]
        "#]]
        .assert_debug_eq(&network.kernel.take_calls());
    }

    #[tokio::test]
    async fn attach_lets_the_pod_in_before_its_veth_exists_and_detach_after_it_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let network = fake_network(dir.path()).await;
        network.kernel.take_calls();
        let address = network
            .attach("pod-a", Path::new("/run/netns/a"))
            .await
            .unwrap();
        assert_eq!(address.ip, Ipv4Addr::new(10, 42, 3, 2));
        expect![[r#"
            [
                "nft: elements = { \"bw9bb860b4a6e\" . 10.42.3.2 }",
                "veth bw9bb860b4a6e (bridge 2) / bp9bb860b4a6e -> /run/netns/a mtu 1500",
                "in /run/netns/a: bp9bb860b4a6e -> eth0 10.42.3.2/24 via 10.42.3.1 mtu 1500",
            ]
        "#]]
        .assert_debug_eq(&network.kernel.take_calls());

        // Again (the next sync, a restarted agent): same address, and the
        // wiring, being whole, is left alone.
        assert_eq!(
            network
                .attach("pod-a", Path::new("/run/netns/a"))
                .await
                .unwrap(),
            address
        );
        expect![[r#"
            [
                "nft: elements = { \"bw9bb860b4a6e\" . 10.42.3.2 }",
            ]
        "#]]
        .assert_debug_eq(&network.kernel.take_calls());

        // A pair left half-made (an agent killed between creating it and
        // configuring eth0) is rebuilt.
        network.kernel.state().configured.clear();
        network
            .attach("pod-a", Path::new("/run/netns/a"))
            .await
            .unwrap();
        expect![[r#"
            [
                "nft: elements = { \"bw9bb860b4a6e\" . 10.42.3.2 }",
                "delete link bw9bb860b4a6e",
                "veth bw9bb860b4a6e (bridge 2) / bp9bb860b4a6e -> /run/netns/a mtu 1500",
                "in /run/netns/a: bp9bb860b4a6e -> eth0 10.42.3.2/24 via 10.42.3.1 mtu 1500",
            ]
        "#]]
        .assert_debug_eq(&network.kernel.take_calls());

        network.detach("pod-a").await.unwrap();
        expect![[r#"
            [
                "delete link bw9bb860b4a6e",
                "nft: no pods",
            ]
        "#]]
        .assert_debug_eq(&network.kernel.take_calls());
        network.detach("pod-a").await.unwrap();
        assert_eq!(
            network.kernel.take_calls(),
            Vec::<String>::new(),
            "nothing left to do"
        );
    }

    #[tokio::test]
    async fn a_failed_attach_leaves_no_veth_and_no_address() {
        let dir = tempfile::tempdir().unwrap();
        let network = fake_network(dir.path()).await;
        network.kernel.state().fail_configure = true;
        network.kernel.take_calls();
        let err = network
            .attach("pod-a", Path::new("/run/netns/a"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid network configuration: configure failed (fake)"
        );
        expect![[r#"
            [
                "nft: elements = { \"bw9bb860b4a6e\" . 10.42.3.2 }",
                "veth bw9bb860b4a6e (bridge 2) / bp9bb860b4a6e -> /run/netns/a mtu 1500",
                "in /run/netns/a: bp9bb860b4a6e -> eth0 10.42.3.2/24 via 10.42.3.1 mtu 1500",
                "delete link bw9bb860b4a6e",
                "nft: no pods",
            ]
        "#]]
        .assert_debug_eq(&network.kernel.take_calls());
        assert_eq!(network.address("pod-a").await, None);
        assert!(!network.kernel.state().nft.contains("10.42.3.2"));
    }

    #[tokio::test]
    async fn sync_routes_changes_only_what_differs() {
        let dir = tempfile::tempdir().unwrap();
        let network = fake_network(dir.path()).await;
        network.kernel.take_calls();
        let peers = [
            peer("10.42.4.0/24", "192.168.0.4"),
            peer("10.42.5.0/24", "192.168.0.5"),
        ];
        network.sync_routes(&peers).await.unwrap();
        network.sync_routes(&peers).await.unwrap();
        let moved = [peer("10.42.4.0/24", "192.168.0.40")];
        network.sync_routes(&moved).await.unwrap();
        expect![[r#"
            [
                "route 10.42.4.0/24 via 192.168.0.4",
                "route 10.42.5.0/24 via 192.168.0.5",
                "delete route 10.42.4.0/24",
                "delete route 10.42.5.0/24",
                "route 10.42.4.0/24 via 192.168.0.40",
            ]
        "#]]
        .assert_debug_eq(&network.kernel.take_calls());
    }

    #[tokio::test]
    async fn through_vxlan_peers_are_routed_via_their_vteps_with_entries_kept_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let config = NetworkConfig::new(
            "10.42.3.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
            dir.path().to_owned(),
        )
        .vxlan("192.168.0.3".parse().unwrap(), 1500);
        let network = Network::start(config, Fake::default()).await.unwrap();
        let peers = [
            peer("10.42.4.0/24", "192.168.9.4"),
            peer("10.42.5.0/24", "192.168.9.5"),
        ];
        network.sync_routes(&peers).await.unwrap();
        network.sync_routes(&peers).await.unwrap();
        // One peer gone, the other moved to a new address.
        network
            .sync_routes(&[peer("10.42.4.0/24", "192.168.9.40")])
            .await
            .unwrap();
        network.cleanup().await.unwrap();
        expect![[r#"
            [
                "bridge bulwark0 mtu 1450 10.42.3.1/24",
                "ip_forward=1",
                "vxlan bulwark.vxlan vni 1 port 8472 local 192.168.0.3 address 10.42.3.0/32 mtu 1450",
                "nft: no pods",
                "vtep 10.42.4.0 at 192.168.9.4 on 3",
                "vtep 10.42.5.0 at 192.168.9.5 on 3",
                "route 10.42.4.0/24 via 10.42.4.0 dev 3 onlink",
                "route 10.42.5.0/24 via 10.42.5.0 dev 3 onlink",
                "delete route 10.42.5.0/24",
                "delete vtep 10.42.4.0 at 192.168.9.4 on 3",
                "delete vtep 10.42.5.0 at 192.168.9.5 on 3",
                "vtep 10.42.4.0 at 192.168.9.40 on 3",
                "delete route 10.42.4.0/24",
                "delete link bulwark0",
                "delete link bulwark.vxlan",
                "nft: delete tables",
            ]
        "#]]
        .assert_debug_eq(&network.kernel.take_calls());
    }

    #[tokio::test]
    async fn a_restart_keeps_the_vxlan_device_and_corrects_its_peers() {
        let dir = tempfile::tempdir().unwrap();
        let config = || {
            NetworkConfig::new(
                "10.42.3.0/24".parse().unwrap(),
                "10.42.0.0/16".parse().unwrap(),
                dir.path().to_owned(),
            )
            .vxlan("192.168.0.3".parse().unwrap(), 1500)
        };
        let network = Network::start(config(), Fake::default()).await.unwrap();
        network
            .sync_routes(&[
                peer("10.42.4.0/24", "192.168.9.4"),
                peer("10.42.5.0/24", "192.168.9.5"),
            ])
            .await
            .unwrap();
        network.kernel.take_calls();

        // The agent restarts; meanwhile the node of 10.42.5.0/24 left.
        let Network { kernel, ipam, .. } = network;
        drop(ipam); // the IPAM state's lock
        let network = Network::start(config(), kernel).await.unwrap();
        network
            .sync_routes(&[peer("10.42.4.0/24", "192.168.9.4")])
            .await
            .unwrap();
        expect![[r#"
            [
                "bridge bulwark0 mtu 1450 10.42.3.1/24",
                "ip_forward=1",
                "keep vxlan bulwark.vxlan",
                "nft: no pods",
                "delete route 10.42.5.0/24",
                "delete vtep 10.42.5.0 at 192.168.9.5 on 3",
            ]
        "#]]
        .assert_debug_eq(&network.kernel.take_calls());
    }

    #[tokio::test]
    async fn cleanup_removes_routes_veths_bridge_and_tables() {
        let dir = tempfile::tempdir().unwrap();
        let network = fake_network(dir.path()).await;
        network
            .attach("pod-a", Path::new("/run/netns/a"))
            .await
            .unwrap();
        network
            .sync_routes(&[peer("10.42.4.0/24", "192.168.0.4")])
            .await
            .unwrap();
        network.kernel.take_calls();
        network.cleanup().await.unwrap();
        expect![[r#"
            [
                "delete route 10.42.4.0/24",
                "delete link bw9bb860b4a6e",
                "delete link bulwark0",
                "nft: delete tables",
            ]
        "#]]
        .assert_debug_eq(&network.kernel.take_calls());
        assert!(network.kernel.state().links.is_empty());
        assert_eq!(network.address("pod-a").await, None);
    }

    #[tokio::test]
    async fn policy_rules_are_applied_only_when_they_change_and_cleanup_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let network = fake_network(dir.path()).await;
        network.kernel.take_calls();
        let mut input = crate::policy::PolicyInput::default();
        assert!(network.sync_policy(&input).await.unwrap());
        assert!(
            network
                .kernel
                .state()
                .nft
                .contains("table inet bulwark_policy {")
        );
        // The same rules again (an unrelated pod update): no transaction.
        assert!(!network.sync_policy(&input).await.unwrap());
        input.pods.push(crate::policy::PolicyPod {
            namespace: "a".into(),
            name: "p".into(),
            labels: Default::default(),
            ip: Ipv4Addr::new(10, 42, 3, 9),
            ports: Vec::new(),
        });
        // A pod no policy selects changes nothing either.
        assert!(!network.sync_policy(&input).await.unwrap());
        input.policies.push(crate::policy::Policy {
            namespace: "a".into(),
            name: "deny".into(),
            pod_selector: Default::default(),
            ingress: Some(Vec::new()),
            egress: None,
        });
        assert!(network.sync_policy(&input).await.unwrap());
        network.cleanup().await.unwrap();
        let calls = network.kernel.take_calls();
        assert_eq!(
            calls.iter().filter(|c| c.starts_with("nft")).count(),
            3,
            "{calls:?}"
        );
        assert!(
            network
                .kernel
                .state()
                .nft
                .contains("delete table inet bulwark_policy")
        );
        // After a cleanup the next sync applies again.
        assert!(network.sync_policy(&input).await.unwrap());
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
}
