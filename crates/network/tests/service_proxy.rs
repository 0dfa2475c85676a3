//! Kernel tests (root): the service proxy's table in a node namespace the
//! test creates, with pods wired by `PodNetwork`. Plus the sync-time
//! benchmark (ignored; see docs/benchmarks.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bulwark_network::{
    Endpoint, HostPort, NetworkConfig, PROXY_TABLE, PodNetwork, Protocol, ProxyConfig, ServicePort,
    ServiceProxy,
};
mod support;
use support::{TestNetns, is_root};

/// A server in a pod: answers every connection with its name, forever
/// (the thread ends with the test process).
fn serve(pod: &TestNetns, name: &'static str) {
    let listener = pod.run(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, 8080)).unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let peer = stream.peer_addr().map(|a| a.ip().to_string());
            let _ = write!(stream, "{name} {}", peer.unwrap_or_default());
        }
    });
}

/// Connects from `client` and reads what the server said ("<name> <peer>").
fn ask(client: &TestNetns, ip: Ipv4Addr, port: u16) -> std::io::Result<String> {
    client.run(|| {
        let mut stream = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    })
}

const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 20);
const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);

fn service(endpoints: &[Ipv4Addr]) -> ServicePort {
    ServicePort {
        namespace: "shop".into(),
        name: "web".into(),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
        cluster_ip: CLUSTER_IP,
        port: 80,
        node_port: Some(30080),
        affinity_timeout: None,
        internal_local: false,
        external_local: false,
        endpoints: endpoints
            .iter()
            .map(|ip| Endpoint {
                ip: *ip,
                port: 8080,
                local: true,
            })
            .collect(),
    }
}

#[tokio::test]
async fn cluster_ips_and_node_ports_reach_endpoints_and_empty_services_are_refused() {
    if !is_root() {
        return;
    }
    let (node, pod_a, pod_b, client, outside) = (
        TestNetns::new("node"),
        TestNetns::new("a"),
        TestNetns::new("b"),
        TestNetns::new("c"),
        TestNetns::new("out"),
    );
    // The node's uplink to a host outside the cluster, and a default
    // route, as a real host has (node-local connections to a cluster IP
    // need one before DNAT).
    node.exec(&[
        "ip",
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "up1",
        "netns",
        &outside.name,
    ]);
    outside.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{OUTSIDE_IP}/24"),
        "dev",
        "up1",
    ]);
    outside.exec(&["ip", "link", "set", "up1", "up"]);
    outside.exec(&["ip", "link", "set", "lo", "up"]);
    node.exec(&["ip", "addr", "add", &format!("{NODE_IP}/24"), "dev", "up0"]);
    node.exec(&["ip", "link", "set", "up0", "up"]);
    node.exec(&["ip", "link", "set", "lo", "up"]);
    node.exec(&["ip", "route", "add", "default", "via", "192.168.77.254"]);
    let state = tempfile::tempdir().unwrap();
    let network = PodNetwork::new(NetworkConfig {
        netns: Some(node.path()),
        ..NetworkConfig::new(
            "10.42.3.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
            state.path().to_owned(),
        )
    })
    .await
    .unwrap();
    let a = network.attach("a", &pod_a.path()).await.unwrap().ip;
    let b = network.attach("b", &pod_b.path()).await.unwrap().ip;
    let c = network.attach("c", &client.path()).await.unwrap().ip;
    serve(&pod_a, "a");
    serve(&pod_b, "b");

    let proxy = ServiceProxy::new(Some(&node.path())).unwrap();
    let config = ProxyConfig {
        node_ips: vec![NODE_IP],
        cluster_cidr: "10.42.0.0/16".parse().unwrap(),
    };
    proxy.sync(&config, &[service(&[a, b])], &[]).unwrap();

    // From a pod: both endpoints answer, each seeing the client's own
    // address (same-node replies are un-NATed on the bridge).
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..40 {
        let answer = ask(&client, CLUSTER_IP, 80).unwrap();
        let (name, peer) = answer.split_once(' ').unwrap();
        assert_eq!(peer, c.to_string(), "{answer}");
        *seen.entry(name.to_owned()).or_default() += 1;
    }
    assert_eq!(seen.len(), 2, "both endpoints chosen: {seen:?}");

    // From the node itself, to the cluster IP and to the NodePort.
    for (ip, port) in [(CLUSTER_IP, 80), (NODE_IP, 30080)] {
        let answer = node.run(|| ask_here(ip, port)).unwrap();
        assert!(
            answer.starts_with("a ") || answer.starts_with("b "),
            "{answer}"
        );
    }

    // A NodePort from outside the cluster: masqueraded (the endpoint sees
    // the node), or with externalTrafficPolicy Local, the client's own
    // address kept.
    proxy.sync(&config, &[service(&[a])], &[]).unwrap();
    assert_eq!(ask(&outside, NODE_IP, 30080).unwrap(), "a 10.42.3.1");
    let mut local = service(&[a]);
    local.external_local = true;
    proxy.sync(&config, &[local], &[]).unwrap();
    assert_eq!(
        ask(&outside, NODE_IP, 30080).unwrap(),
        format!("a {OUTSIDE_IP}")
    );

    // Hairpin: a pod reaching itself through its Service is masqueraded
    // (to the bridge's address), or its reply would never match.
    proxy.sync(&config, &[service(&[a])], &[]).unwrap();
    let answer = ask(&pod_a, CLUSTER_IP, 80).unwrap();
    assert_eq!(answer, "a 10.42.3.1");

    // A hostPort: pod b published at the node's address, reached from
    // another pod and (hairpin) from itself; not on 127.0.0.1.
    let host_port = HostPort {
        namespace: "shop".into(),
        pod: "b".into(),
        protocol: Protocol::Tcp,
        host_ip: None,
        host_port: 9090,
        pod_ip: b,
        container_port: 8080,
    };
    proxy.sync(&config, &[service(&[a])], &[host_port]).unwrap();
    assert_eq!(ask(&client, NODE_IP, 9090).unwrap(), format!("b {c}"));
    assert_eq!(ask(&pod_b, NODE_IP, 9090).unwrap(), "b 10.42.3.1");
    assert!(node.run(|| ask_here(Ipv4Addr::LOCALHOST, 9090)).is_err());

    // ClientIP affinity: the client sticks to one endpoint, and a later
    // sync keeps what the table remembers.
    let mut sticky = service(&[a, b]);
    sticky.affinity_timeout = Some(600);
    proxy.sync(&config, &[sticky.clone()], &[]).unwrap();
    let first = ask(&client, CLUSTER_IP, 80).unwrap();
    for _ in 0..10 {
        assert_eq!(ask(&client, CLUSTER_IP, 80).unwrap(), first);
    }
    let mut other = service(&[a]);
    other.name = "other".into();
    other.cluster_ip = Ipv4Addr::new(10, 43, 0, 21);
    other.node_port = None;
    proxy.sync(&config, &[sticky, other], &[]).unwrap();
    let sets = node.exec(&["nft", "list", "sets", "table", "ip", PROXY_TABLE]);
    assert!(sets.contains(&c.to_string()), "{sets}");
    assert_eq!(ask(&client, CLUSTER_IP, 80).unwrap(), first);

    // No endpoints: refused at once, not a hang — from a pod, from the
    // node, and at the NodePort.
    proxy.sync(&config, &[service(&[])], &[]).unwrap();
    let started = Instant::now();
    let err = ask(&client, CLUSTER_IP, 80).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    for (ip, port) in [(CLUSTER_IP, 80), (NODE_IP, 30080)] {
        let err = node.run(|| ask_here(ip, port)).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::ConnectionRefused,
            "{ip}:{port}: {err}"
        );
    }

    // 127.0.0.1 never serves NodePorts (route_localnet stays off).
    proxy.sync(&config, &[service(&[a])], &[]).unwrap();
    assert!(node.run(|| ask_here(Ipv4Addr::LOCALHOST, 30080)).is_err());
    for conf in ["all", "default", "bulwark0"] {
        let path = format!("/proc/sys/net/ipv4/conf/{conf}/route_localnet");
        let value = node.run(|| std::fs::read_to_string(&path).unwrap());
        assert_eq!(value.trim(), "0", "{path}");
    }

    // A restarted agent's proxy (no memory of the table) rewrites it:
    // the same rules, none twice, still serving.
    let before = node.exec(&["nft", "list", "table", "ip", PROXY_TABLE]);
    let restarted = ServiceProxy::new(Some(&node.path())).unwrap();
    restarted.sync(&config, &[service(&[a])], &[]).unwrap();
    let after = node.exec(&["nft", "list", "table", "ip", PROXY_TABLE]);
    assert_eq!(after, before);
    assert!(ask(&client, CLUSTER_IP, 80).unwrap().starts_with("a "));

    // The longest names Kubernetes allows still make valid nftables names.
    let mut long = service(&[a]);
    long.namespace = "n".repeat(63);
    long.name = "s".repeat(63);
    long.port_name = "p".repeat(15);
    long.affinity_timeout = Some(60);
    let long_pod = HostPort {
        namespace: "n".repeat(63),
        pod: "p".repeat(253),
        protocol: Protocol::Udp,
        host_ip: Some(NODE_IP),
        host_port: 5353,
        pod_ip: a,
        container_port: 53,
    };
    proxy.sync(&config, &[long], &[long_pod]).unwrap();

    proxy.cleanup().unwrap();
    let tables = node.exec(&["nft", "list", "tables"]);
    assert!(!tables.contains(PROXY_TABLE), "{tables}");
    network.cleanup().await.unwrap();
}

/// `bulwark agent --cleanup`: with the agent gone, everything it made in
/// the node's namespace goes, the service proxy's table included; while a
/// pod network holds the state, it is refused.
#[tokio::test]
async fn cleanup_node_removes_the_pod_network_and_the_proxy_table() {
    if !is_root() {
        return;
    }
    let (node, pod) = (TestNetns::new("cnode"), TestNetns::new("cpod"));
    let state = tempfile::tempdir().unwrap();
    let network = PodNetwork::new(NetworkConfig {
        netns: Some(node.path()),
        ..NetworkConfig::new(
            "10.42.9.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
            state.path().to_owned(),
        )
    })
    .await
    .unwrap();
    let ip = network.attach("p", &pod.path()).await.unwrap().ip;
    let proxy = ServiceProxy::new(Some(&node.path())).unwrap();
    let config = ProxyConfig {
        node_ips: vec![NODE_IP],
        cluster_cidr: "10.42.0.0/16".parse().unwrap(),
    };
    proxy.sync(&config, &[service(&[ip])], &[]).unwrap();

    let refused = bulwark_network::cleanup_node(Some(&node.path()), state.path()).await;
    assert!(refused.is_err(), "{refused:?}");
    drop(network);
    bulwark_network::cleanup_node(Some(&node.path()), state.path())
        .await
        .unwrap();
    let tables = node.exec(&["nft", "list", "tables"]);
    assert_eq!(tables.trim(), "", "{tables}");
    let links = node.exec(&["ip", "-o", "link"]);
    assert!(
        !links.contains("bulwark0") && !links.contains(" bw"),
        "{links}"
    );
    assert!(!state.path().join("ipam.json").exists());
}

/// `ask` from the calling thread's namespace.
fn ask_here(ip: Ipv4Addr, port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Sync time at scale, from scratch and for one endpoint change (both
/// rewrite the whole table in one transaction). Run with
/// `cargo test --release -p bulwark-network --test service_proxy -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark"]
fn bench_sync_1000_services_with_10_endpoints() {
    if !is_root() {
        return;
    }
    let node = TestNetns::new("bench");
    let proxy = ServiceProxy::new(Some(&node.path())).unwrap();
    let config = ProxyConfig {
        node_ips: vec![NODE_IP],
        cluster_cidr: "10.42.0.0/16".parse().unwrap(),
    };
    let mut services: Vec<ServicePort> = (0..1000u32)
        .map(|i| {
            let mut s = service(&[]);
            s.name = format!("svc-{i}");
            s.cluster_ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 43, 16, 0)) + i);
            s.node_port = Some(30000 + i as u16);
            s.endpoints = (0..10u32)
                .map(|e| Endpoint {
                    ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 42, 0, 0)) + i * 10 + e),
                    port: 8080,
                    local: e % 3 == 0,
                })
                .collect();
            s
        })
        .collect();
    let started = Instant::now();
    proxy.sync(&config, &services, &[]).unwrap();
    let scratch = started.elapsed();
    let mut changes = Vec::new();
    for round in 0..5u32 {
        services[round as usize].endpoints[0].ip = Ipv4Addr::new(10, 99, 0, round as u8);
        let started = Instant::now();
        proxy.sync(&config, &services, &[]).unwrap();
        changes.push(started.elapsed());
    }
    changes.sort();
    let rules = node.exec(&["nft", "list", "table", "ip", PROXY_TABLE]);
    println!(
        "1000 services x 10 endpoints: from scratch {scratch:?}; one endpoint changed (median of 5) {:?}; table {} lines",
        changes[2],
        rules.lines().count()
    );
    proxy.cleanup().unwrap();
}

/// Request latency through a Service vs to the pod's address directly
/// (TCP connect + one-line answer, sequential). Run with
/// `cargo test --release -p bulwark-network --test service_proxy -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark"]
async fn bench_latency_through_a_service_vs_pod_ip() {
    if !is_root() {
        return;
    }
    let (node, server, client) = (
        TestNetns::new("lnode"),
        TestNetns::new("lsrv"),
        TestNetns::new("lcli"),
    );
    node.exec(&["ip", "link", "set", "lo", "up"]);
    let state = tempfile::tempdir().unwrap();
    let network = PodNetwork::new(NetworkConfig {
        netns: Some(node.path()),
        ..NetworkConfig::new(
            "10.42.7.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
            state.path().to_owned(),
        )
    })
    .await
    .unwrap();
    let pod = network.attach("srv", &server.path()).await.unwrap().ip;
    network.attach("cli", &client.path()).await.unwrap();
    serve(&server, "srv");
    let proxy = ServiceProxy::new(Some(&node.path())).unwrap();
    let config = ProxyConfig {
        node_ips: vec![NODE_IP],
        cluster_cidr: "10.42.0.0/16".parse().unwrap(),
    };
    proxy.sync(&config, &[service(&[pod])], &[]).unwrap();
    let measure = |ip: Ipv4Addr, port: u16| {
        client.run(|| {
            let mut times: Vec<Duration> = (0..2000)
                .map(|_| {
                    let started = Instant::now();
                    ask_here(ip, port).unwrap();
                    started.elapsed()
                })
                .collect();
            times.sort();
            (times[times.len() / 2], times[times.len() * 99 / 100])
        })
    };
    // Interleaved rounds, so load from elsewhere hits both alike.
    let mut direct = Vec::new();
    let mut service = Vec::new();
    for _ in 0..3 {
        direct.push(measure(pod, 8080));
        service.push(measure(CLUSTER_IP, 80));
    }
    direct.sort();
    service.sort();
    let (d, s) = (direct[1], service[1]);
    println!(
        "pod -> pod IP p50 {:?} p99 {:?}; pod -> Service p50 {:?} p99 {:?}; ratio p50 {:.2}",
        d.0,
        d.1,
        s.0,
        s.1,
        s.0.as_secs_f64() / d.0.as_secs_f64()
    );
    proxy.cleanup().unwrap();
    network.cleanup().await.unwrap();
}
