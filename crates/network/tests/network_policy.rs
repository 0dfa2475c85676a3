//! Kernel test (root): NetworkPolicy rules on a node made of network
//! namespaces this test creates and deletes. A denied TCP connection is
//! dropped; an allowed one and its replies pass; replies to a connection
//! a pod was allowed to open pass even where that pod is isolated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use bulwark_network::policy::{
    Peer, Policy, PolicyInput, PolicyPod, Port, PortRef, Protocol, Rule, Selector,
};
use bulwark_network::{NetworkConfig, PodNetwork};
mod support;
use support::{TestNetns, is_root};

/// Whether `client` can open a TCP connection to `server_ip:port` in
/// `server`'s namespace and get a byte echoed back (a reply).
fn echoes(client: &TestNetns, server: &TestNetns, server_ip: Ipv4Addr, port: u16) -> bool {
    let listener = server.run(|| TcpListener::bind((server_ip, port))).unwrap();
    listener.set_nonblocking(true).unwrap();
    let accepted = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok((mut stream, _)) = listener.accept() {
                stream.set_nonblocking(false).unwrap();
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).unwrap();
                stream.write_all(&byte).unwrap();
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
    let echoed = client
        .run(|| TcpStream::connect_timeout(&(server_ip, port).into(), Duration::from_secs(2)))
        .is_ok_and(|mut stream| {
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut echo = [0u8; 1];
            stream.write_all(b"x").is_ok() && stream.read_exact(&mut echo).is_ok()
        });
    let _ = accepted.join();
    echoed
}

fn pod(name: &str, ip: Ipv4Addr, role: &str) -> PolicyPod {
    PolicyPod {
        namespace: "prod".into(),
        name: name.into(),
        labels: BTreeMap::from([("role".to_owned(), role.to_owned())]),
        ip,
        ports: Vec::new(),
    }
}

fn select(role: &str) -> Selector {
    Selector {
        match_labels: BTreeMap::from([("role".to_owned(), role.to_owned())]),
        match_expressions: Vec::new(),
    }
}

#[tokio::test]
async fn denied_connections_are_dropped_and_allowed_ones_get_their_replies() {
    if !is_root() {
        return;
    }
    let (node, server, friend, stranger) = (
        TestNetns::new("node"),
        TestNetns::new("server"),
        TestNetns::new("friend"),
        TestNetns::new("stranger"),
    );
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
    let server_address = network.attach("server", &server.path()).await.unwrap();
    let (server_ip, gateway) = (server_address.ip, server_address.gateway);
    let friend_ip = network.attach("friend", &friend.path()).await.unwrap().ip;
    let stranger_ip = network
        .attach("stranger", &stranger.path())
        .await
        .unwrap()
        .ip;
    assert!(
        echoes(&stranger, &server, server_ip, 8080),
        "no policy yet: open"
    );

    // The server takes TCP 8080 from `friend`s only; the friend may send
    // nothing out but to the server.
    let mut input = PolicyInput {
        policies: vec![
            Policy {
                namespace: "prod".into(),
                name: "server".into(),
                pod_selector: select("server"),
                ingress: Some(vec![Rule {
                    ports: vec![Port {
                        protocol: Protocol::Tcp,
                        port: Some(PortRef::Range(8080, 8080)),
                    }],
                    peers: vec![Peer::Pods {
                        namespaces: None,
                        pods: Some(select("friend")),
                    }],
                }]),
                egress: None,
            },
            Policy {
                namespace: "prod".into(),
                name: "friend".into(),
                pod_selector: select("friend"),
                ingress: None,
                egress: Some(vec![Rule {
                    ports: Vec::new(),
                    peers: vec![Peer::Pods {
                        namespaces: None,
                        pods: Some(select("server")),
                    }],
                }]),
            },
        ],
        pods: vec![
            pod("server", server_ip, "server"),
            pod("friend", friend_ip, "friend"),
            pod("stranger", stranger_ip, "stranger"),
        ],
        namespaces: BTreeMap::new(),
    };
    assert!(network.sync_policy(&input).await.unwrap());
    assert!(
        !network.sync_policy(&input).await.unwrap(),
        "nothing changed"
    );

    assert!(
        echoes(&friend, &server, server_ip, 8080),
        "allowed, reply passes"
    );
    assert!(!echoes(&friend, &server, server_ip, 8081), "another port");
    assert!(!echoes(&stranger, &server, server_ip, 8080), "not a friend");
    assert!(
        !echoes(&friend, &stranger, stranger_ip, 8080),
        "friend's egress"
    );
    // The stranger is not isolated: the friend's replies to it pass,
    // although the friend may not open connections to it.
    assert!(
        echoes(&stranger, &friend, friend_ip, 8080),
        "replies of an allowed connection"
    );
    // The server is not isolated for egress, nor the stranger for ingress.
    assert!(echoes(&server, &stranger, stranger_ip, 8080));

    // The node always reaches its pods (probes); a pod's egress policy
    // covers the node too.
    assert!(echoes(&node, &server, server_ip, 8080), "node to pod");
    assert!(echoes(&stranger, &node, gateway, 8080), "not isolated");
    assert!(
        !echoes(&friend, &node, gateway, 8080),
        "friend's egress to its node"
    );

    // Relabelling the stranger a friend lets it in.
    input.pods[2].labels.insert("role".into(), "friend".into());
    assert!(network.sync_policy(&input).await.unwrap());
    assert!(echoes(&stranger, &server, server_ip, 8080), "relabelled");

    network.cleanup().await.unwrap();
    let tables = node.run(|| {
        Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap()
    });
    assert_eq!(
        String::from_utf8_lossy(&tables.stdout),
        "",
        "cleanup leaves no table"
    );
}
