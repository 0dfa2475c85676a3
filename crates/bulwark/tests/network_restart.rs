//! End-to-end: an agent restart on a three-node cluster (node-a the
//! server's, node-b and node-c joined, each in its own network namespace
//! cabled to one bridge). With a Service and a NetworkPolicy in place,
//! node-b's agent is killed (SIGKILL, by PID) and started again on the same
//! data dir: its pods keep their addresses, clients keep reaching them
//! through the Service while it is down and after, the policy still holds,
//! and the restarted agent leaves exactly the rules and routes it had — no
//! duplicates. Root only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // harness code: a panic is the failure report

mod support;

use std::collections::BTreeMap;
use std::process::Output;

use support::netns::{Cluster, IMAGE, Link, start_nodes};

/// Two web pods on node-b behind the `web` Service; a policy admitting
/// only role=client pods to them; clients on node-b (the Service's DNAT and
/// the policy both on the restarted node) and node-c; an unlabelled
/// intruder on node-c.
const OBJECTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-clients}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: http}]
"#;

const WEB: [&str; 2] = ["web-1", "web-2"];

/// The Bulwark tables every node has.
const TABLES: [(&str, &str); 4] = [
    ("ip", "bulwark"),
    ("bridge", "bulwark"),
    ("ip", "bulwark_proxy"),
    ("inet", "bulwark_policy"),
];

fn pod_yaml(name: &str, node: &str, labels: &str, command: &str) -> String {
    format!(
        r#"---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{{labels}}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {IMAGE}
    ports: [{{name: http, containerPort: 8080}}]
    command: [sh, -c, "{command}"]
"#
    )
}

/// `wget` of `url` from `pod`'s network namespace (not `kubectl exec`,
/// which goes through the pod's agent), within 3 s: what it served, or
/// why not.
fn fetch(cluster: &Cluster, pod: &str, url: &str) -> Result<String, String> {
    let out: Output = cluster
        .in_pod("default", pod, "timeout")
        .args(["3", "busybox", "wget", "-q", "-O", "-", url])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && WEB.contains(&stdout.trim()) {
        Ok(stdout.trim().to_owned())
    } else {
        Err(format!(
            "{}: {stdout:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Each nftables table in `ns` (family, name) with its number of rules.
fn rules(ns: &str) -> BTreeMap<(String, String), usize> {
    let out = Link::exec(ns, "nft")
        .args(["-j", "list", "ruleset"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tables = BTreeMap::new();
    let mut table_entries = 0;
    for item in json["nftables"].as_array().unwrap() {
        if let Some(table) = item.get("table") {
            table_entries += 1;
            let key = (
                table["family"].as_str().unwrap().to_owned(),
                table["name"].as_str().unwrap().to_owned(),
            );
            assert!(
                tables.insert(key, 0).is_none(),
                "table listed twice: {table}"
            );
        }
        if let Some(rule) = item.get("rule") {
            let key = (
                rule["family"].as_str().unwrap().to_owned(),
                rule["table"].as_str().unwrap().to_owned(),
            );
            *tables.get_mut(&key).expect("a rule in a listed table") += 1;
        }
    }
    assert_eq!(table_entries, tables.len());
    tables
}

/// Checks that `ns` has each Bulwark table exactly once, and no others
/// named like them; returns the rule counts.
fn bulwark_rules(ns: &str) -> BTreeMap<(String, String), usize> {
    let all = rules(ns);
    let ours: BTreeMap<_, _> = all
        .into_iter()
        .filter(|((_, name), _)| name.starts_with("bulwark"))
        .collect();
    let names: Vec<(&str, &str)> = ours
        .keys()
        .map(|(family, name)| (family.as_str(), name.as_str()))
        .collect();
    let mut want = TABLES.to_vec();
    want.sort_unstable();
    assert_eq!(names, want, "Bulwark's tables");
    ours
}

/// Bulwark's routes in `ns` (`proto 0x62`), one per line.
fn routes(ns: &str) -> Vec<String> {
    let out = Link::exec(ns, "ip")
        .args(["route", "show", "proto", "0x62"])
        .output()
        .unwrap();
    let routes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut unique = routes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), routes.len(), "duplicate routes: {routes:?}");
    routes
}

fn pod_ips(cluster: &Cluster) -> Vec<String> {
    WEB.iter()
        .map(|pod| cluster.jsonpath(&["pod", pod], "{.status.podIP}"))
        .collect()
}

#[test]
fn an_agent_restart_keeps_pod_connectivity_and_leaves_no_duplicate_rules() {
    if !bulwark_testkit::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut cluster = start_nodes("r", 53, 3);
    let serve =
        "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www";
    let mut yaml = OBJECTS.to_owned();
    for pod in WEB {
        yaml.push_str(&pod_yaml(pod, "node-b", "app: web", serve));
    }
    yaml.push_str(&pod_yaml(
        "client-b",
        "node-b",
        "role: client",
        "exec sleep 3600",
    ));
    yaml.push_str(&pod_yaml(
        "client-c",
        "node-c",
        "role: client",
        "exec sleep 3600",
    ));
    yaml.push_str(&pod_yaml(
        "intruder",
        "node-c",
        "role: other",
        "exec sleep 3600",
    ));
    let path = cluster.dir.path().join("objects.yaml");
    std::fs::write(&path, yaml).unwrap();
    cluster.ok(&["apply", "-f", path.to_str().unwrap()]);
    for pod in WEB.iter().chain(&["client-b", "client-c", "intruder"]) {
        cluster.eventually(&format!("{pod} Ready"), 120, || {
            let ready = cluster.jsonpath(
                &["pod", pod],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            );
            if ready == "True" {
                Ok(())
            } else {
                Err(format!("Ready={ready:?}"))
            }
        });
    }
    let cluster_ip = cluster.jsonpath(&["service", "web"], "{.spec.clusterIP}");
    let url = format!("http://{cluster_ip}/");
    let node_b = cluster.link.nodes[1].clone();

    // Before: both clients served through the Service, the intruder kept
    // out by the policy.
    let reaches = |cluster: &Cluster, when: &str| {
        for client in ["client-b", "client-c"] {
            cluster.eventually(&format!("{client} reaching web {when}"), 30, || {
                fetch(cluster, client, &url).map_err(|why| {
                    // What the client's network namespace holds, and its node's.
                    let show = |mut command: std::process::Command| {
                        let out = command.output().unwrap();
                        String::from_utf8_lossy(&out.stdout).into_owned()
                            + &String::from_utf8_lossy(&out.stderr)
                    };
                    let mut pod = cluster.in_pod("default", client, "ip");
                    pod.args(["-br", "addr"]);
                    let mut routes = cluster.in_pod("default", client, "ip");
                    routes.arg("route");
                    let mut node = Link::exec(&cluster.link.nodes[1], "ip");
                    node.args(["-br", "link"]);
                    format!(
                        "{why}\n{} {}:\n{}{}node-b:\n{}",
                        client,
                        cluster.pod_netns("default", client).display(),
                        show(pod),
                        show(routes),
                        show(node)
                    )
                })
            });
        }
    };
    let kept_out = |cluster: &Cluster, when: &str| {
        cluster.eventually(
            &format!("the intruder kept out {when}"),
            30,
            || match fetch(cluster, "intruder", &url) {
                Ok(served) => Err(format!("served {served:?}")),
                Err(_) => Ok(()),
            },
        );
    };
    reaches(&cluster, "before the restart");
    kept_out(&cluster, "before the restart");
    let ips = pod_ips(&cluster);
    let rules_before = bulwark_rules(&node_b);
    let routes_before = routes(&node_b);
    assert!(
        routes_before.iter().any(|r| r.contains("bulwark.vxlan")),
        "{routes_before:?}"
    );

    // The agent crashes: what it programmed stays, and so does the way to
    // its pods.
    let pid = cluster.agent_pid(1).expect("node-b's agent runs");
    let log_before = cluster.log("agent").len();
    cluster.stop_agent_on(1);
    eprintln!("killed node-b's agent, PID {pid}");
    reaches(&cluster, "while node-b's agent is down");
    kept_out(&cluster, "while node-b's agent is down");

    // Started again on the same data dir: once it has synced its service
    // proxy and its policy rules, they are what they were.
    cluster.start_agent_on(1);
    cluster.eventually("the restarted agent's first syncs", 60, || {
        let log = cluster.log("agent");
        let since = log.get(log_before..).unwrap_or_default();
        if since.contains("service proxy synced") && since.contains("network policy rules applied")
        {
            Ok(())
        } else {
            Err("not synced yet".into())
        }
    });
    cluster.eventually("the same rules as before the restart", 30, || {
        let now = bulwark_rules(&node_b);
        if now == rules_before {
            Ok(())
        } else {
            Err(format!("before {rules_before:?}, now {now:?}"))
        }
    });
    // The VXLAN device is made afresh at start, and the routes through it
    // with the next route sync.
    cluster.eventually("the same routes as before the restart", 30, || {
        let now = routes(&node_b);
        if now == routes_before {
            Ok(())
        } else {
            Err(format!("before {routes_before:?}, now {now:?}"))
        }
    });
    assert_eq!(pod_ips(&cluster), ips, "the web pods' addresses");
    reaches(&cluster, "after the restart");
    kept_out(&cluster, "after the restart");
    // Still exactly as many after the agent has run a while.
    assert_eq!(bulwark_rules(&node_b), rules_before);
}
