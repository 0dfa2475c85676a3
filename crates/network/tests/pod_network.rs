//! Kernel tests (root): the pod network inside network namespaces each test
//! creates (`ip netns add` with a unique name) and deletes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use bulwark_network::{NetworkConfig, NetworkError, Peer, PodAddress, PodNetwork, host_veth};
mod support;
use support::{TestNetns, ip, is_root};

fn config(node: &TestNetns, pod_cidr: &str, state: &Path) -> NetworkConfig {
    NetworkConfig {
        netns: Some(node.path()),
        ..NetworkConfig::new(
            pod_cidr.parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
            state.to_owned(),
        )
    }
}

/// Listens in `server`'s namespace, connects from `client`'s, and returns
/// the address the server saw the connection come from.
fn connect(client: &TestNetns, server: &TestNetns, server_ip: Ipv4Addr) -> SocketAddr {
    let listener = server.run(|| TcpListener::bind((server_ip, 0))).unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::thread::spawn(move || {
        let (mut stream, from) = listener.accept().unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        stream.write_all(&byte).unwrap();
        from
    });
    let mut stream = client
        .run(|| TcpStream::connect_timeout(&(server_ip, port).into(), Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("connecting to {server_ip}:{port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"x").unwrap();
    let mut echo = [0u8; 1];
    stream.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"x");
    accepted.join().unwrap()
}

#[tokio::test]
async fn pods_on_one_node_reach_each_other_and_keep_their_addresses() {
    if !is_root() {
        return;
    }
    let (node, pod_a, pod_b, pod_c) = (
        TestNetns::new("node"),
        TestNetns::new("a"),
        TestNetns::new("b"),
        TestNetns::new("c"),
    );
    let state = tempfile::tempdir().unwrap();
    let network = PodNetwork::new(config(&node, "10.42.3.0/24", state.path()))
        .await
        .unwrap();

    let a = network.attach("pod-a", &pod_a.path()).await.unwrap();
    let b = network.attach("pod-b", &pod_b.path()).await.unwrap();
    let gateway = Ipv4Addr::new(10, 42, 3, 1);
    assert_eq!(
        a,
        PodAddress {
            ip: Ipv4Addr::new(10, 42, 3, 2),
            gateway,
            prefix_len: 24
        }
    );
    assert_eq!(b.ip, Ipv4Addr::new(10, 42, 3, 3));

    // What a pod sees: eth0 with its address, a default route, lo up.
    let eth0 = pod_a.exec(&["ip", "-4", "addr", "show", "eth0"]);
    assert!(eth0.contains("inet 10.42.3.2/24"), "{eth0}");
    assert!(eth0.contains("mtu 1500"), "{eth0}");
    let mac = pod_a.exec(&["ip", "link", "show", "eth0"]);
    assert!(mac.contains("link/ether 0a:58:0a:2a:03:02"), "{mac}");
    assert!(
        pod_a
            .exec(&["ip", "route"])
            .contains("default via 10.42.3.1 dev eth0")
    );
    assert!(pod_a.exec(&["ip", "link", "show", "lo"]).contains("UP"));
    // What the node sees: the bridge with the gateway, the host end on it.
    assert!(
        node.exec(&["ip", "-4", "addr", "show", "bulwark0"])
            .contains("inet 10.42.3.1/24")
    );
    let host_end = node.exec(&["ip", "link", "show", &host_veth("pod-a")]);
    assert!(host_end.contains("master bulwark0"), "{host_end}");
    assert_eq!(
        node.run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap()),
        "1\n"
    );
    let table = node.exec(&["nft", "list", "table", "ip", "bulwark"]);
    assert!(
        table.contains("ip saddr 10.42.3.0/24 ip daddr != 10.42.0.0/16 masquerade"),
        "{table}"
    );

    let seen_from = connect(&pod_a, &pod_b, b.ip);
    assert_eq!(seen_from.ip(), a.ip, "no NAT between pods");

    // Attaching again gives the same address and leaves the wiring as it
    // was: the same veth (its index), so connections are not cut.
    let wire_of_a = || node.exec(&["ip", "-o", "link", "show", &host_veth("pod-a")]);
    let before = wire_of_a();
    assert_eq!(network.attach("pod-a", &pod_a.path()).await.unwrap(), a);
    assert_eq!(wire_of_a(), before);
    connect(&pod_b, &pod_a, a.ip);

    // A new PodNetwork (a restarted agent) on the same state keeps every
    // address, and a running pod's wiring.
    drop(network);
    let network = PodNetwork::new(config(&node, "10.42.3.0/24", state.path()))
        .await
        .unwrap();
    assert_eq!(network.address("pod-a").await, Some(a));
    assert_eq!(network.attach("pod-a", &pod_a.path()).await.unwrap(), a);
    assert_eq!(wire_of_a(), before);

    // Broken wiring (eth0 down, as if the agent died half-way) is rebuilt.
    pod_a.exec(&["ip", "link", "set", "eth0", "down"]);
    assert_eq!(network.attach("pod-a", &pod_a.path()).await.unwrap(), a);
    assert_ne!(wire_of_a(), before);
    connect(&pod_b, &pod_a, a.ip);
    let c = network.attach("pod-c", &pod_c.path()).await.unwrap();
    assert_eq!(c.ip, Ipv4Addr::new(10, 42, 3, 4));
    connect(&pod_c, &pod_a, a.ip);

    // Detach removes the veth (and eth0 in the pod) and frees the address.
    network.detach("pod-b").await.unwrap();
    assert!(!node.exec(&["ip", "link"]).contains(&host_veth("pod-b")));
    assert!(!pod_b.exec(&["ip", "link"]).contains("eth0"));
    assert_eq!(network.address("pod-b").await, None);
    network.detach("pod-b").await.unwrap(); // twice is fine

    // Cleanup leaves nothing of ours behind.
    network.cleanup().await.unwrap();
    let links = node.exec(&["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "only lo is left: {links}");
    assert_eq!(node.exec(&["nft", "list", "tables"]), "");
    assert!(!pod_a.exec(&["ip", "link"]).contains("eth0"));
    assert!(!state.path().join("ipam.json").exists());
}

#[tokio::test]
async fn pods_on_two_nodes_reach_each_other_through_peer_routes() {
    if !is_root() {
        return;
    }
    let (node1, node2) = (TestNetns::new("n1"), TestNetns::new("n2"));
    let (pod1, pod2) = (TestNetns::new("p1"), TestNetns::new("p2"));
    // The nodes' own L2 segment: a veth pair between their namespaces.
    ip(&[
        "link",
        "add",
        "uplink",
        "netns",
        &node1.name,
        "type",
        "veth",
        "peer",
        "name",
        "uplink",
        "netns",
        &node2.name,
    ]);
    for (node, address) in [(&node1, "192.168.77.1/24"), (&node2, "192.168.77.2/24")] {
        node.exec(&["ip", "addr", "add", address, "dev", "uplink"]);
        node.exec(&["ip", "link", "set", "uplink", "up"]);
    }
    let (state1, state2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let net1 = PodNetwork::new(config(&node1, "10.42.1.0/24", state1.path()))
        .await
        .unwrap();
    let net2 = PodNetwork::new(config(&node2, "10.42.2.0/24", state2.path()))
        .await
        .unwrap();
    let p1 = net1.attach("p1", &pod1.path()).await.unwrap();
    let p2 = net2.attach("p2", &pod2.path()).await.unwrap();

    let peers = [
        Peer {
            pod_cidr: "10.42.1.0/24".parse().unwrap(),
            node_ip: Ipv4Addr::new(192, 168, 77, 1),
        },
        Peer {
            pod_cidr: "10.42.2.0/24".parse().unwrap(),
            node_ip: Ipv4Addr::new(192, 168, 77, 2),
        },
    ];
    net1.sync_routes(&peers).await.unwrap();
    net2.sync_routes(&peers).await.unwrap();
    net1.sync_routes(&peers).await.unwrap(); // idempotent
    let routes = node1.exec(&["ip", "route", "show", "proto", "0x62"]);
    assert_eq!(
        routes.trim(),
        "10.42.2.0/24 via 192.168.77.2 dev uplink",
        "{routes}"
    );

    assert_eq!(
        connect(&pod1, &pod2, p2.ip).ip(),
        p1.ip,
        "pod to pod keeps the source"
    );
    assert_eq!(connect(&pod2, &pod1, p1.ip).ip(), p2.ip);

    // Leaving the cluster CIDR (here: to node 2's own address) is masqueraded.
    let uplink2 = Ipv4Addr::new(192, 168, 77, 2);
    assert_eq!(
        connect(&pod1, &node2, uplink2).ip(),
        Ipv4Addr::new(192, 168, 77, 1)
    );

    // A peer gone: its route goes, nobody else's is touched.
    net1.sync_routes(&[]).await.unwrap();
    assert_eq!(node1.exec(&["ip", "route", "show", "proto", "0x62"]), "");
    assert!(
        node1
            .exec(&["ip", "route"])
            .contains("192.168.77.0/24 dev uplink")
    );

    net2.sync_routes(&peers[..1]).await.unwrap();
    net2.cleanup().await.unwrap();
    assert_eq!(node2.exec(&["ip", "route", "show", "proto", "0x62"]), "");
    net1.cleanup().await.unwrap();
}

/// Two nodes on different subnets with a router between them: direct
/// peer routes cannot work (the peer is not on a shared link), VXLAN
/// carries pod traffic over the routed network.
#[tokio::test]
async fn pods_on_nodes_in_different_subnets_reach_each_other_through_vxlan() {
    if !is_root() {
        return;
    }
    let (node1, node2, router) = (
        TestNetns::new("n1"),
        TestNetns::new("n2"),
        TestNetns::new("r"),
    );
    let (pod1, pod2) = (TestNetns::new("p1"), TestNetns::new("p2"));
    for (node, router_end, subnet) in [(&node1, "to1", 1), (&node2, "to2", 2)] {
        ip(&[
            "link",
            "add",
            "uplink",
            "netns",
            &node.name,
            "type",
            "veth",
            "peer",
            "name",
            router_end,
            "netns",
            &router.name,
        ]);
        node.exec(&[
            "ip",
            "addr",
            "add",
            &format!("172.30.{subnet}.2/24"),
            "dev",
            "uplink",
        ]);
        node.exec(&["ip", "link", "set", "uplink", "up"]);
        node.exec(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &format!("172.30.{subnet}.1"),
        ]);
        router.exec(&[
            "ip",
            "addr",
            "add",
            &format!("172.30.{subnet}.1/24"),
            "dev",
            router_end,
        ]);
        router.exec(&["ip", "link", "set", router_end, "up"]);
    }
    router
        .run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))
        .unwrap();
    let (local1, local2) = (Ipv4Addr::new(172, 30, 1, 2), Ipv4Addr::new(172, 30, 2, 2));
    assert_eq!(
        bulwark_network::node_mtu(Some(&node1.path()), local1)
            .await
            .unwrap(),
        Some(1500)
    );

    let (state1, state2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let net1 = PodNetwork::new(config(&node1, "10.42.1.0/24", state1.path()).vxlan(local1, 1500))
        .await
        .unwrap();
    let net2 = PodNetwork::new(config(&node2, "10.42.2.0/24", state2.path()).vxlan(local2, 1500))
        .await
        .unwrap();
    let p1 = net1.attach("p1", &pod1.path()).await.unwrap();
    let p2 = net2.attach("p2", &pod2.path()).await.unwrap();
    let peers = [
        Peer {
            pod_cidr: "10.42.1.0/24".parse().unwrap(),
            node_ip: local1,
        },
        Peer {
            pod_cidr: "10.42.2.0/24".parse().unwrap(),
            node_ip: local2,
        },
    ];
    net1.sync_routes(&peers).await.unwrap();
    net2.sync_routes(&peers).await.unwrap();
    net1.sync_routes(&peers).await.unwrap(); // idempotent
    let routes = node1.exec(&["ip", "route", "show", "proto", "0x62"]);
    assert_eq!(
        routes.trim(),
        "10.42.2.0/24 via 10.42.2.0 dev bulwark.vxlan onlink",
        "{routes}"
    );
    let pod_mtu = pod1.exec(&["cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(pod_mtu.trim(), "1450", "room for the encapsulation");

    assert_eq!(
        connect(&pod1, &pod2, p2.ip).ip(),
        p1.ip,
        "pod to pod across the router keeps the source"
    );
    assert_eq!(connect(&pod2, &pod1, p1.ip).ip(), p2.ip);

    // A restarted agent keeps the device, its tunnel entries and routes:
    // pods talk across nodes before its first sync, and that sync
    // changes nothing.
    let device = || node1.exec(&["ip", "-o", "link", "show", "bulwark.vxlan"]);
    let before = device();
    drop(net1);
    let net1 = PodNetwork::new(config(&node1, "10.42.1.0/24", state1.path()).vxlan(local1, 1500))
        .await
        .unwrap();
    assert_eq!(device(), before, "the same device");
    assert_eq!(connect(&pod1, &pod2, p2.ip).ip(), p1.ip);
    net1.sync_routes(&peers).await.unwrap();
    assert_eq!(connect(&pod1, &pod2, p2.ip).ip(), p1.ip);

    // A device with other settings (the node's MTU changed) is made
    // afresh, and the next sync restores the path.
    drop(net1);
    let net1 = PodNetwork::new(config(&node1, "10.42.1.0/24", state1.path()).vxlan(local1, 1400))
        .await
        .unwrap();
    assert_ne!(device(), before, "a new device");
    net1.sync_routes(&peers).await.unwrap();
    assert_eq!(connect(&pod1, &pod2, p2.ip).ip(), p1.ip);

    // A peer gone: its route and tunnel entries go.
    net1.sync_routes(&peers[..1]).await.unwrap();
    assert_eq!(node1.exec(&["ip", "route", "show", "proto", "0x62"]), "");
    let fdb = node1.exec(&["bridge", "fdb", "show", "dev", "bulwark.vxlan"]);
    assert!(!fdb.contains("172.30.2.2"), "{fdb}");

    net1.cleanup().await.unwrap();
    net2.cleanup().await.unwrap();
    assert!(!node1.exec(&["ip", "link"]).contains("bulwark.vxlan"));
}

#[tokio::test]
async fn bad_input_is_a_clear_error() {
    if !is_root() {
        return;
    }
    let (node, pod_a, pod_b) = (
        TestNetns::new("node"),
        TestNetns::new("a"),
        TestNetns::new("b"),
    );
    let state = tempfile::tempdir().unwrap();
    // A /30: the gateway and one pod.
    let network = PodNetwork::new(config(&node, "10.42.9.0/30", state.path()))
        .await
        .unwrap();

    let err = network
        .attach("p", Path::new("/run/bulwark/netns/no-such-pod"))
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::Netns { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("network namespace /run/bulwark/netns/no-such-pod: "),
        "{err}"
    );
    let not_a_netns = state.path().join("plain-file");
    std::fs::write(&not_a_netns, "").unwrap();
    let err = network.attach("p", &not_a_netns).await.unwrap_err();
    assert!(err.to_string().contains("not a network namespace"), "{err}");
    assert_eq!(
        network.address("p").await,
        None,
        "a failed attach holds no address"
    );

    network.attach("a", &pod_a.path()).await.unwrap();
    let err = network.attach("b", &pod_b.path()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no free address left in pod CIDR 10.42.9.0/30: 1 addresses are in use"
    );
    assert!(!node.exec(&["ip", "link"]).contains(&host_veth("b")));

    // One PodNetwork per state dir; a restart with another pod CIDR is refused.
    let err = PodNetwork::new(config(&node, "10.42.9.0/30", state.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::StateInUse { .. }), "{err}");
    drop(network);
    let err = PodNetwork::new(config(&node, "10.42.10.0/24", state.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::CidrChanged { .. }), "{err}");

    let network = PodNetwork::new(config(&node, "10.42.9.0/30", state.path()))
        .await
        .unwrap();
    network.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_pod_cannot_pose_as_another_address_or_mac() {
    if !is_root() {
        return;
    }
    let (node, pod_a, pod_b) = (
        TestNetns::new("node"),
        TestNetns::new("a"),
        TestNetns::new("b"),
    );
    let state = tempfile::tempdir().unwrap();
    let network = PodNetwork::new(config(&node, "10.42.5.0/24", state.path()))
        .await
        .unwrap();
    let a = network.attach("a", &pod_a.path()).await.unwrap();
    let b = network.attach("b", &pod_b.path()).await.unwrap();

    let inbox = pod_b.run(|| UdpSocket::bind((b.ip, 0))).unwrap();
    inbox
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let to = inbox.local_addr().unwrap();
    let honest = pod_a.run(|| UdpSocket::bind((a.ip, 0))).unwrap();
    let receive = || {
        let mut buf = [0u8; 64];
        let (n, from) = inbox.recv_from(&mut buf).unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), from.ip())
    };
    honest.send_to(b"hello", to).unwrap();
    assert_eq!(receive(), ("hello".to_owned(), a.ip.into()));

    // Another source address (the gateway's, a free one): dropped at the
    // bridge port. The datagram sent after it arrives first.
    for forged in ["10.42.5.1", "10.42.5.99"] {
        pod_a.exec(&["ip", "addr", "add", &format!("{forged}/32"), "dev", "eth0"]);
        let liar = pod_a
            .run(|| UdpSocket::bind((forged.parse::<Ipv4Addr>().unwrap(), 0)))
            .unwrap();
        liar.send_to(b"forged", to).unwrap();
        honest.send_to(b"marker", to).unwrap();
        assert_eq!(
            receive(),
            ("marker".to_owned(), a.ip.into()),
            "sent from {forged}"
        );
    }

    // Its own address from another MAC: dropped too.
    pod_a.exec(&["ip", "link", "set", "eth0", "address", "0a:58:0a:2a:05:63"]);
    honest.send_to(b"forged", to).unwrap();
    pod_a.exec(&["ip", "link", "set", "eth0", "address", "0a:58:0a:2a:05:02"]);
    honest.send_to(b"marker", to).unwrap();
    assert_eq!(receive(), ("marker".to_owned(), a.ip.into()));

    network.cleanup().await.unwrap();
}
