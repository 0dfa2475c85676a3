//! The semantics as truth tables, upstream's e2e way: every pod of a small
//! two-node cluster probes every other on a few ports; `.` is allowed, `X`
//! dropped. Each node's [`Plan`] is what its rules decide; a connection
//! passes when both nodes let it (the source's node checks egress, the
//! destination's ingress).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use expect_test::{Expect, expect};

use super::*;

const NODE_1: &str = "10.42.1.0/24";
const NODE_2: &str = "10.42.2.0/24";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn pod(namespace: &str, name: &str, ip: &str, l: &[(&str, &str)]) -> PolicyPod {
    PolicyPod {
        namespace: namespace.into(),
        name: name.into(),
        labels: labels(l),
        ip: ip.parse().unwrap(),
        ports: Vec::new(),
    }
}

/// prod: web (node 1, named port `http` = 8080/TCP, `dns` = 53/UDP), db
/// (node 1), cli (node 2); dev: cli (node 2), atk (node 1); and an address
/// outside the cluster.
fn cluster(policies: Vec<Policy>) -> PolicyInput {
    let mut web = pod("prod", "web", "10.42.1.10", &[("app", "web")]);
    web.ports = vec![
        NamedPort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 8080,
        },
        NamedPort {
            name: "dns".into(),
            protocol: Protocol::Udp,
            port: 53,
        },
    ];
    PolicyInput {
        policies,
        pods: vec![
            web,
            pod("prod", "db", "10.42.1.11", &[("app", "db")]),
            pod("prod", "cli", "10.42.2.20", &[("role", "client")]),
            pod("dev", "cli", "10.42.2.21", &[("role", "client")]),
            pod("dev", "atk", "10.42.1.30", &[("role", "attacker")]),
        ],
        namespaces: BTreeMap::from([
            (
                "prod".to_owned(),
                labels(&[("kubernetes.io/metadata.name", "prod"), ("env", "prod")]),
            ),
            (
                "dev".to_owned(),
                labels(&[("kubernetes.io/metadata.name", "dev"), ("team", "dev")]),
            ),
        ]),
    }
}

const ENDPOINTS: [(&str, &str); 6] = [
    ("web", "10.42.1.10"),
    ("db", "10.42.1.11"),
    ("p/cli", "10.42.2.20"),
    ("d/cli", "10.42.2.21"),
    ("atk", "10.42.1.30"),
    ("ext", "192.0.2.7"),
];

/// The matrix, rows the sources, columns the destinations, for each probe.
fn check(policies: Vec<Policy>, probes: &[(Protocol, u16)], want: Expect) {
    let input = cluster(policies);
    let plans = [
        Plan::new(&input, NODE_1.parse().unwrap()),
        Plan::new(&input, NODE_2.parse().unwrap()),
    ];
    let mut out = String::new();
    for &(protocol, port) in probes {
        out += &format!("{protocol:?}/{port:<5}");
        for (name, _) in ENDPOINTS {
            out += &format!(" {name:>5}");
        }
        out.push('\n');
        for (src_name, src) in ENDPOINTS {
            out += &format!("{src_name:<9}");
            let src: Ipv4Addr = src.parse().unwrap();
            for (_, dst) in ENDPOINTS {
                let dst: Ipv4Addr = dst.parse().unwrap();
                let mark = if src == dst {
                    "-"
                } else if plans.iter().all(|p| p.allows(src, dst, protocol, port)) {
                    "."
                } else {
                    "X"
                };
                out += &format!(" {mark:>5}");
            }
            out.push('\n');
        }
    }
    want.assert_eq(&out);
}

fn select(l: &[(&str, &str)]) -> Selector {
    Selector {
        match_labels: labels(l),
        match_expressions: Vec::new(),
    }
}

fn policy(namespace: &str, target: Selector) -> Policy {
    Policy {
        namespace: namespace.into(),
        name: "p".into(),
        pod_selector: target,
        ingress: None,
        egress: None,
    }
}

fn pods_peer(namespaces: Option<Selector>, pods: Option<Selector>) -> Peer {
    Peer::Pods { namespaces, pods }
}

fn from(peers: Vec<Peer>, ports: Vec<Port>) -> Rule {
    Rule { ports, peers }
}

fn tcp(port: u16) -> Port {
    Port {
        protocol: Protocol::Tcp,
        port: Some(PortRef::Range(port, port)),
    }
}

const TCP_8080: &[(Protocol, u16)] = &[(Protocol::Tcp, 8080)];

#[test]
fn no_policies_allow_everything() {
    check(
        vec![],
        TCP_8080,
        expect![[r#"
            Tcp/8080    web    db p/cli d/cli   atk   ext
            web           -     .     .     .     .     .
            db            .     -     .     .     .     .
            p/cli         .     .     -     .     .     .
            d/cli         .     .     .     -     .     .
            atk           .     .     .     .     -     .
            ext           .     .     .     .     .     -
        "#]],
    );
}

#[test]
fn default_deny_ingress_isolates_every_pod_of_the_namespace_only() {
    let mut deny = policy("prod", Selector::default());
    deny.ingress = Some(vec![]);
    check(
        vec![deny],
        TCP_8080,
        expect![[r#"
            Tcp/8080    web    db p/cli d/cli   atk   ext
            web           -     X     X     .     .     .
            db            X     -     X     .     .     .
            p/cli         X     X     -     .     .     .
            d/cli         X     X     X     -     .     .
            atk           X     X     X     .     -     .
            ext           X     X     X     .     .     -
        "#]],
    );
}

#[test]
fn the_compromised_pod_of_another_namespace_is_kept_out_by_a_namespace_rule() {
    // prod allows only itself in: dev's pods (atk on the same node as
    // web, cli on the other) cannot reach prod's.
    let mut own = policy("prod", Selector::default());
    own.ingress = Some(vec![from(
        vec![pods_peer(None, Some(Selector::default()))],
        vec![],
    )]);
    check(
        vec![own],
        TCP_8080,
        expect![[r#"
            Tcp/8080    web    db p/cli d/cli   atk   ext
            web           -     .     .     .     .     .
            db            .     -     .     .     .     .
            p/cli         .     .     -     .     .     .
            d/cli         X     X     X     -     .     .
            atk           X     X     X     .     -     .
            ext           X     X     X     .     .     -
        "#]],
    );
}

#[test]
fn pod_selector_namespace_selector_and_both_in_one_peer() {
    let target = select(&[("app", "web")]);
    let client = select(&[("role", "client")]);
    let dev = select(&[("team", "dev")]);
    let mut by_pod = policy("prod", target.clone());
    by_pod.ingress = Some(vec![from(
        vec![pods_peer(None, Some(client.clone()))],
        vec![],
    )]);
    let mut by_ns = policy("prod", target.clone());
    by_ns.ingress = Some(vec![from(vec![pods_peer(Some(dev.clone()), None)], vec![])]);
    let mut both = policy("prod", target.clone());
    both.ingress = Some(vec![from(vec![pods_peer(Some(dev), Some(client))], vec![])]);
    let mut union = String::new();
    for (name, p) in [("pod", by_pod), ("namespace", by_ns), ("both", both)] {
        let input = cluster(vec![p]);
        let plan = Plan::new(&input, NODE_1.parse().unwrap());
        let web: Ipv4Addr = "10.42.1.10".parse().unwrap();
        let allowed: Vec<&str> = ENDPOINTS
            .iter()
            .filter(|(_, ip)| plan.allows(ip.parse().unwrap(), web, Protocol::Tcp, 8080))
            .map(|(n, _)| *n)
            .filter(|n| *n != "web")
            .collect();
        union += &format!("{name}: {allowed:?}\n");
    }
    expect![[r#"
        pod: ["p/cli"]
        namespace: ["d/cli", "atk"]
        both: ["d/cli"]
    "#]]
    .assert_eq(&union);
}

#[test]
fn policies_combine_as_a_union() {
    let mut a = policy("prod", select(&[("app", "web")]));
    a.ingress = Some(vec![from(
        vec![pods_peer(None, Some(select(&[("app", "db")])))],
        vec![],
    )]);
    let mut b = policy("prod", select(&[("app", "web")]));
    b.name = "q".into();
    b.ingress = Some(vec![from(
        vec![pods_peer(
            Some(Selector::default()),
            Some(select(&[("role", "client")])),
        )],
        vec![],
    )]);
    check(
        vec![a, b],
        TCP_8080,
        expect![[r#"
            Tcp/8080    web    db p/cli d/cli   atk   ext
            web           -     .     .     .     .     .
            db            .     -     .     .     .     .
            p/cli         .     .     -     .     .     .
            d/cli         .     .     .     -     .     .
            atk           X     .     .     .     -     .
            ext           X     .     .     .     .     -
        "#]],
    );
}

#[test]
fn ports_protocols_ranges_and_named_ports() {
    let mut p = policy("prod", select(&[("app", "web")]));
    p.ingress = Some(vec![from(
        vec![],
        vec![
            Port {
                protocol: Protocol::Tcp,
                port: Some(PortRef::Named("http".into())),
            },
            Port {
                protocol: Protocol::Tcp,
                port: Some(PortRef::Range(9000, 9002)),
            },
            // web's `dns` is UDP: a TCP rule by that name matches nothing.
            Port {
                protocol: Protocol::Tcp,
                port: Some(PortRef::Named("dns".into())),
            },
            Port {
                protocol: Protocol::Udp,
                port: None,
            },
        ],
    )]);
    let input = cluster(vec![p]);
    let plan = Plan::new(&input, NODE_1.parse().unwrap());
    let cli: Ipv4Addr = "10.42.2.20".parse().unwrap();
    let web: Ipv4Addr = "10.42.1.10".parse().unwrap();
    let db: Ipv4Addr = "10.42.1.11".parse().unwrap();
    let mut out = String::new();
    for (protocol, port) in [
        (Protocol::Tcp, 8080),
        (Protocol::Tcp, 8081),
        (Protocol::Tcp, 8999),
        (Protocol::Tcp, 9000),
        (Protocol::Tcp, 9002),
        (Protocol::Tcp, 9003),
        (Protocol::Tcp, 53),
        (Protocol::Udp, 53),
        (Protocol::Udp, 5353),
        (Protocol::Sctp, 8080),
    ] {
        let to_web = plan.allows(cli, web, protocol, port);
        let to_db = plan.allows(cli, db, protocol, port);
        out += &format!("{protocol:?}/{port}: web {to_web} db {to_db}\n");
    }
    expect![[r#"
        Tcp/8080: web true db true
        Tcp/8081: web false db true
        Tcp/8999: web false db true
        Tcp/9000: web true db true
        Tcp/9002: web true db true
        Tcp/9003: web false db true
        Tcp/53: web false db true
        Udp/53: web true db true
        Udp/5353: web true db true
        Sctp/8080: web false db true
    "#]]
    .assert_eq(&out);
}

#[test]
fn egress_default_deny_and_named_ports_of_the_destination() {
    let mut deny = policy("dev", Selector::default());
    deny.egress = Some(vec![]);
    let mut allow = policy("dev", select(&[("role", "client")]));
    allow.name = "web".into();
    allow.egress = Some(vec![from(
        vec![],
        vec![Port {
            protocol: Protocol::Tcp,
            port: Some(PortRef::Named("http".into())),
        }],
    )]);
    check(
        vec![deny, allow],
        &[(Protocol::Tcp, 8080), (Protocol::Tcp, 80)],
        expect![[r#"
            Tcp/8080    web    db p/cli d/cli   atk   ext
            web           -     .     .     .     .     .
            db            .     -     .     .     .     .
            p/cli         .     .     -     .     .     .
            d/cli         .     X     X     -     X     X
            atk           X     X     X     X     -     X
            ext           .     .     .     .     .     -
            Tcp/80      web    db p/cli d/cli   atk   ext
            web           -     .     .     .     .     .
            db            .     -     .     .     .     .
            p/cli         .     .     -     .     .     .
            d/cli         X     X     X     -     X     X
            atk           X     X     X     X     -     X
            ext           .     .     .     .     .     -
        "#]],
    );
}

#[test]
fn ip_block_with_except() {
    let mut p = policy("prod", select(&[("app", "db")]));
    p.ingress = Some(vec![from(
        vec![Peer::IpBlock {
            cidr: "10.42.0.0/16".parse().unwrap(),
            except: vec![
                "10.42.2.0/24".parse().unwrap(),
                "10.42.1.30/32".parse().unwrap(),
            ],
        }],
        vec![],
    )]);
    p.egress = Some(vec![from(
        vec![Peer::IpBlock {
            cidr: "192.0.2.0/24".parse().unwrap(),
            except: vec![],
        }],
        vec![tcp(8080)],
    )]);
    check(
        vec![p],
        TCP_8080,
        expect![[r#"
            Tcp/8080    web    db p/cli d/cli   atk   ext
            web           -     .     .     .     .     .
            db            X     -     X     X     X     .
            p/cli         .     X     -     .     .     .
            d/cli         .     X     .     -     .     .
            atk           .     X     .     .     -     .
            ext           .     X     .     .     .     -
        "#]],
    );
}

#[test]
fn selectors_with_expressions() {
    let mut s = select(&[]);
    s.match_expressions = vec![
        Requirement {
            key: "app".into(),
            operator: Operator::In,
            values: vec!["web".into(), "db".into()],
        },
        Requirement {
            key: "tier".into(),
            operator: Operator::DoesNotExist,
            values: vec![],
        },
    ];
    assert!(s.matches(&labels(&[("app", "web")])));
    assert!(!s.matches(&labels(&[("app", "web"), ("tier", "x")])));
    assert!(!s.matches(&labels(&[("app", "cache")])));
    let not_in = Selector {
        match_labels: BTreeMap::new(),
        match_expressions: vec![Requirement {
            key: "app".into(),
            operator: Operator::NotIn,
            values: vec!["web".into()],
        }],
    };
    assert!(not_in.matches(&labels(&[])));
    assert!(!not_in.matches(&labels(&[("app", "web")])));
    let exists = Selector {
        match_labels: BTreeMap::new(),
        match_expressions: vec![Requirement {
            key: "app".into(),
            operator: Operator::Exists,
            values: vec![],
        }],
    };
    assert!(exists.matches(&labels(&[("app", "")])));
    assert!(!exists.matches(&labels(&[])));
}

#[test]
fn the_rendered_table() {
    let mut p = policy("prod", select(&[("app", "web")]));
    p.ingress = Some(vec![
        from(
            vec![
                pods_peer(None, Some(select(&[("role", "client")]))),
                Peer::IpBlock {
                    cidr: "192.0.2.0/24".parse().unwrap(),
                    except: vec!["192.0.2.128/25".parse().unwrap()],
                },
            ],
            vec![
                tcp(8080),
                Port {
                    protocol: Protocol::Tcp,
                    port: Some(PortRef::Named("http".into())),
                },
            ],
        ),
        // Peers that are nobody: no rule.
        from(
            vec![pods_peer(None, Some(select(&[("app", "none")])))],
            vec![],
        ),
    ]);
    p.egress = Some(vec![from(vec![], vec![])]);
    let mut deny = policy("dev", Selector::default());
    deny.name = "deny".into();
    deny.ingress = Some(vec![]);
    let input = cluster(vec![p, deny]);
    expect![[r#"
        table inet bulwark_policy
        delete table inet bulwark_policy
        table inet bulwark_policy {
        	set ingress_isolated {
        		type ipv4_addr
        		elements = { 10.42.1.10, 10.42.1.30 }
        	}
        	set egress_isolated {
        		type ipv4_addr
        		elements = { 10.42.1.10 }
        	}
        	set p0_targets {
        		type ipv4_addr
        		elements = { 10.42.1.30 }
        	}
        	set p1_targets {
        		type ipv4_addr
        		elements = { 10.42.1.10 }
        	}
        	set p1_in0_peers {
        		type ipv4_addr
        		flags interval
        		elements = { 10.42.2.20, 192.0.2.0-192.0.2.127 }
        	}
        	set p1_in0_named {
        		type ipv4_addr . inet_proto . inet_service
        		elements = { 10.42.1.10 . tcp . 8080 }
        	}
        	chain forward {
        		type filter hook forward priority filter; policy accept;
        		ct state established,related accept
        		ip saddr @egress_isolated jump egress
        		ip daddr @ingress_isolated jump ingress
        	}
        	chain input {
        		type filter hook input priority filter; policy accept;
        		ct state established,related accept
        		ip saddr @egress_isolated jump egress
        	}
        	chain ingress {
        		ip daddr @p1_targets ip saddr @p1_in0_peers meta l4proto tcp th dport 8080 return comment "prod/p ingress 0"
        		ip daddr @p1_targets ip saddr @p1_in0_peers ip daddr . meta l4proto . th dport @p1_in0_named return comment "prod/p ingress 0"
        		drop
        	}
        	chain egress {
        		ip saddr @p1_targets return comment "prod/p egress 0"
        		drop
        	}
        }
    "#]]
    .assert_eq(&render(&Plan::new(&input, NODE_1.parse().unwrap())));
    // Node 2 holds only dev/cli of the selected pods.
    let node_2 = render(&Plan::new(&input, NODE_2.parse().unwrap()));
    let elements: Vec<&str> = node_2.lines().filter(|l| l.contains("elements")).collect();
    assert_eq!(
        elements,
        [
            "\t\telements = { 10.42.2.21 }",
            "\t\telements = { 10.42.2.21 }"
        ],
        "{node_2}"
    );
}
