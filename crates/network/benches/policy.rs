//! `cargo bench -p bulwark-network --bench policy`: how long one node takes
//! to turn the cluster's NetworkPolicies into its nftables rules — the
//! plan and the text (no IO), and, as root, applying them with `nft` in a
//! network namespace made for the run (from scratch, then after one pod's
//! label changes: the update-to-enforced time of the node). Sizes: 500
//! policies over 200 pods, and over 1,000 pods. Prints figures; asserts
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use bulwark_network::policy::{
    NamedPort, Peer, Plan, Policy, PolicyInput, PolicyPod, Port, PortRef, Protocol, Rule, Selector,
    render,
};
use bulwark_network::{NetworkConfig, PodNetwork};

const POLICIES: usize = 500;
const NAMESPACES: usize = 20;
const LOCAL: &str = "10.42.0.0/22";

fn labels(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn select(pairs: &[(&str, String)]) -> Selector {
    Selector {
        match_labels: labels(pairs),
        match_expressions: Vec::new(),
    }
}

/// `pods` pods, half of them on this node (10.42.0.0/22), spread over 20
/// namespaces and 10 apps (each app in each namespace); 500 policies of the shapes people write: an
/// app's ingress from another app (by name port), from a labelled
/// namespace, from an ipBlock with except, a port range, and egress.
fn cluster(pods: usize) -> PolicyInput {
    let pods: Vec<PolicyPod> = (0..pods)
        .map(|i| {
            let base = if (i / 3) % 2 == 0 {
                Ipv4Addr::new(10, 42, 0, 2)
            } else {
                Ipv4Addr::new(10, 42, 8, 2)
            };
            let ip = Ipv4Addr::from(u32::from(base) + i as u32);
            PolicyPod {
                namespace: format!("ns-{}", i % NAMESPACES),
                name: format!("pod-{i}"),
                labels: labels(&[
                    ("app", format!("app-{}", (i / NAMESPACES) % 10)),
                    ("tier", format!("t{}", i % 3)),
                ]),
                ip,
                ports: vec![NamedPort {
                    name: "http".into(),
                    protocol: Protocol::Tcp,
                    port: 8080,
                }],
            }
        })
        .collect();
    let namespaces = (0..NAMESPACES)
        .map(|n| {
            (
                format!("ns-{n}"),
                labels(&[("team", format!("team-{}", n % 4))]),
            )
        })
        .collect();
    let policies = (0..POLICIES)
        .map(|i| {
            let namespace = format!("ns-{}", i % NAMESPACES);
            let peers = match i % 4 {
                0 => vec![Peer::Pods {
                    namespaces: None,
                    pods: Some(select(&[(
                        "app",
                        format!("app-{}", (i / NAMESPACES + 1) % 10),
                    )])),
                }],
                1 => vec![Peer::Pods {
                    namespaces: Some(select(&[("team", format!("team-{}", i % 4))])),
                    pods: Some(select(&[("tier", format!("t{}", i % 3))])),
                }],
                2 => vec![Peer::IpBlock {
                    cidr: "10.0.0.0/8".parse().unwrap(),
                    except: vec![format!("10.42.{}.0/24", i % 16).parse().unwrap()],
                }],
                _ => Vec::new(),
            };
            let ports = match i % 3 {
                0 => vec![Port {
                    protocol: Protocol::Tcp,
                    port: Some(PortRef::Named("http".into())),
                }],
                1 => vec![Port {
                    protocol: Protocol::Tcp,
                    port: Some(PortRef::Range(9000, 9000 + (i % 50) as u16)),
                }],
                _ => vec![Port {
                    protocol: Protocol::Udp,
                    port: Some(PortRef::Range(53, 53)),
                }],
            };
            let rules = vec![Rule { ports, peers }];
            Policy {
                namespace,
                name: format!("policy-{i}"),
                pod_selector: select(&[("app", format!("app-{}", (i / NAMESPACES) % 10))]),
                ingress: Some(rules.clone()),
                egress: (i % 5 == 0).then_some(rules),
            }
        })
        .collect();
    PolicyInput {
        policies,
        pods,
        namespaces,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() {
    for pods in [200, 1_000] {
        let mut input = cluster(pods);
        let local = LOCAL.parse().unwrap();
        let mut plan_times = Vec::new();
        let mut text = String::new();
        for _ in 0..10 {
            let started = Instant::now();
            let plan = Plan::new(&input, local);
            text = render(&plan);
            plan_times.push(started.elapsed());
        }
        let plan = Plan::new(&input, local);
        println!(
            "{POLICIES} policies × {pods} pods: plan + render {:?} (median of 10), {} rules, {} KiB of nft text",
            median(plan_times),
            plan.rule_count(),
            text.len() / 1024
        );
        if !nix::unistd::geteuid().is_root() {
            println!("  (not root: nft apply not measured)");
            continue;
        }
        let netns = format!("bwbench{}-{pods}", std::process::id());
        assert!(
            Command::new("ip")
                .args(["netns", "add", &netns])
                .status()
                .unwrap()
                .success()
        );
        let state = tempfile::tempdir().unwrap();
        let network = PodNetwork::new(NetworkConfig {
            netns: Some(format!("/run/netns/{netns}").into()),
            ..NetworkConfig::new(
                local,
                "10.42.0.0/16".parse().unwrap(),
                state.path().to_owned(),
            )
        })
        .await
        .unwrap();
        let started = Instant::now();
        assert!(network.sync_policy(&input).await.unwrap());
        let scratch = started.elapsed();
        let mut updates = Vec::new();
        for round in 0..10 {
            // One pod's label changes: the node's rules follow.
            input.pods[0]
                .labels
                .insert("app".into(), format!("app-{}", round % 2 + 1));
            let started = Instant::now();
            assert!(network.sync_policy(&input).await.unwrap());
            updates.push(started.elapsed());
        }
        println!(
            "  nft from scratch: {scratch:?}; after one label change (plan + render + apply): {:?} (median of 10)",
            median(updates)
        );
        network.cleanup().await.unwrap();
        let _ = Command::new("ip").args(["netns", "del", &netns]).status();
    }
}
