//! End-to-end: NetworkPolicy on two nodes (`bulwark server` with its agent
//! as node-a, a joined `bulwark agent` as node-b, each in a network
//! namespace the test makes). busybox httpd pods serve, clients probe with
//! `timeout 3 wget` (the static busybox's `wget -T` segfaults), and
//! policies go in with `kubectl apply`, as a user's would.
//! One cluster; each step is a function named for what it shows. Root only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // harness code: a panic is the failure report

mod support;
use std::time::Instant;

use support::netns::{Cluster, IMAGE, start};

/// prod/web (node-a): httpd on 8080 (container port `http`) and 8081.
/// prod/client (node-b, role=client), prod/other (node-a): clients.
/// dev/outsider (node-a): an httpd in another namespace, labelled
/// role=client too — the compromised pod of the attack.
const PODS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec:
  nodeSelector: {kubernetes.io/hostname: node-a}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: IMAGE
    ports: [{name: http, containerPort: 8080}, {name: alt, containerPort: 8081}]
    command: [sh, -c, "mkdir -p /tmp/www && echo served > /tmp/www/index.html && httpd -p 8081 -h /tmp/www && exec httpd -f -p 8080 -h /tmp/www"]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: prod, labels: {role: client}}
spec:
  nodeSelector: {kubernetes.io/hostname: node-b}
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: IMAGE, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: prod}
spec:
  nodeSelector: {kubernetes.io/hostname: node-a}
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: IMAGE, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: outsider, namespace: dev, labels: {role: client}}
spec:
  nodeSelector: {kubernetes.io/hostname: node-a}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: IMAGE
    command: [sh, -c, "mkdir -p /tmp/www && echo served > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
"#;

struct Env {
    cluster: Cluster,
    web: String,
    outsider: String,
}

impl Env {
    fn apply(&self, name: &str, yaml: &str) {
        let path = self.cluster.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        self.cluster.ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    /// `wget` from `ns/pod`: Ok when it got `served`, else what it said.
    fn probe(&self, from: &str, ip: &str, port: u16) -> Result<(), String> {
        let (ns, pod) = from.split_once('/').unwrap();
        let url = format!("http://{ip}:{port}/");
        let out = self.cluster.kubectl(&[
            "exec", "-n", ns, pod, "--", "busybox", "timeout", "3", "wget", "-q", "-O", "-", &url,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && stdout == "served\n" {
            Ok(())
        } else {
            Err(format!(
                "{}: {stdout:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Waits until `from` reaches (or not) `ip:port`; returns how long the
    /// change took to show.
    fn expect(&self, from: &str, ip: &str, port: u16, allowed: bool) -> std::time::Duration {
        let started = Instant::now();
        let what = format!(
            "{from} {} {ip}:{port}",
            if allowed { "reaching" } else { "kept from" }
        );
        self.cluster.eventually(&what, 30, || {
            let probe = self.probe(from, ip, port);
            if probe.is_ok() == allowed {
                Ok(())
            } else {
                Err(format!(
                    "{probe:?}\npolicies:\n{}",
                    String::from_utf8_lossy(
                        &self.cluster.kubectl(&["get", "networkpolicy", "-A"]).stdout
                    )
                ))
            }
        });
        started.elapsed()
    }
}

fn pod_ip(cluster: &Cluster, ns: &str, pod: &str) -> String {
    cluster.eventually(&format!("{ns}/{pod} Running"), 120, || {
        let phase = cluster.jsonpath(&["pod", "-n", ns, pod], "{.status.phase}");
        let ip = cluster.jsonpath(&["pod", "-n", ns, pod], "{.status.podIP}");
        if phase == "Running" && !ip.is_empty() {
            Ok(ip)
        } else {
            Err(format!("{phase} {ip:?}"))
        }
    })
}

fn policy(name: &str, ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}"
    )
}

#[test]
fn network_policies_are_enforced_across_two_nodes() {
    if !bulwark_testkit::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let cluster = start("p", 47);
    let path = cluster.dir.path().join("pods.yaml");
    std::fs::write(&path, PODS.replace("IMAGE", IMAGE)).unwrap();
    cluster.ok(&["apply", "-f", path.to_str().unwrap()]);
    let web = pod_ip(&cluster, "prod", "web");
    let outsider = pod_ip(&cluster, "dev", "outsider");
    for (ns, pod) in [("prod", "client"), ("prod", "other")] {
        pod_ip(&cluster, ns, pod);
    }
    let env = Env {
        cluster,
        web,
        outsider,
    };
    // Without policies, everything is open.
    for from in ["prod/client", "prod/other", "dev/outsider"] {
        env.expect(from, &env.web, 8080, true);
    }
    env.expect("prod/other", &env.outsider, 8080, true);

    default_deny_ingress_blocks_pods_on_both_nodes(&env);
    a_pod_selector_rule_lets_only_the_labelled_client_in_on_its_port(&env);
    a_compromised_pod_in_another_namespace_cannot_reach_prods_pods(&env);
    a_namespace_label_opens_and_closes_access_within_seconds(&env);
    relabelling_the_client_revokes_its_access(&env);
    an_ip_block_with_except_admits_one_nodes_pods_only(&env);
    egress_default_deny_blocks_outgoing_connections(&env);
}

fn default_deny_ingress_blocks_pods_on_both_nodes(env: &Env) {
    env.apply(
        "deny",
        &policy(
            "default-deny",
            "prod",
            "  podSelector: {}\n  policyTypes: [Ingress]\n",
        ),
    );
    env.expect("prod/client", &env.web, 8080, false); // from node-b
    env.expect("prod/other", &env.web, 8080, false); // from node-a
}

fn a_pod_selector_rule_lets_only_the_labelled_client_in_on_its_port(env: &Env) {
    // By the container port's name, resolved on the web pod.
    env.apply(
        "allow-client",
        &policy(
            "allow-client",
            "prod",
            "  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {role: client}}}]\n    ports: [{port: http}]\n",
        ),
    );
    env.expect("prod/client", &env.web, 8080, true);
    env.expect("prod/client", &env.web, 8081, false);
    env.expect("prod/other", &env.web, 8080, false);
}

fn a_compromised_pod_in_another_namespace_cannot_reach_prods_pods(env: &Env) {
    // dev/outsider carries role=client, as a compromised pod may claim any
    // label of its own: a podSelector peer selects in the policy's
    // namespace only, so it stays out — on the same node as web, with no
    // node in between to stop it.
    env.expect("dev/outsider", &env.web, 8080, false);
    env.expect("dev/outsider", &env.web, 8081, false);
}

fn a_namespace_label_opens_and_closes_access_within_seconds(env: &Env) {
    env.apply(
        "allow-trusted",
        &policy(
            "allow-trusted",
            "prod",
            "  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: trusted}}}]\n",
        ),
    );
    env.expect("dev/outsider", &env.web, 8080, false);
    env.cluster
        .ok(&["label", "namespace", "dev", "team=trusted"]);
    let took = env.expect("dev/outsider", &env.web, 8080, true);
    eprintln!("namespace label → access: {took:?}");
    env.cluster.ok(&["label", "namespace", "dev", "team-"]);
    env.expect("dev/outsider", &env.web, 8080, false);
}

fn relabelling_the_client_revokes_its_access(env: &Env) {
    env.cluster.ok(&[
        "label",
        "pod",
        "-n",
        "prod",
        "client",
        "role=retired",
        "--overwrite",
    ]);
    env.expect("prod/client", &env.web, 8080, false);
}

fn an_ip_block_with_except_admits_one_nodes_pods_only(env: &Env) {
    let node_b = env.cluster.jsonpath(&["node", "node-b"], "{.spec.podCIDR}");
    env.apply(
        "allow-block",
        &policy(
            "allow-block",
            "prod",
            &format!(
                "  podSelector: {{matchLabels: {{app: web}}}}\n  ingress:\n  - from: [{{ipBlock: {{cidr: 10.42.0.0/16, except: [{node_b}]}}}}]\n"
            ),
        ),
    );
    env.expect("prod/other", &env.web, 8080, true); // node-a's pod
    env.expect("prod/client", &env.web, 8080, false); // node-b's, excepted
}

fn egress_default_deny_blocks_outgoing_connections(env: &Env) {
    env.apply(
        "deny-egress",
        &policy(
            "deny-egress",
            "prod",
            "  podSelector: {}\n  policyTypes: [Egress]\n",
        ),
    );
    env.expect("prod/other", &env.outsider, 8080, false);
    env.expect("prod/web", &env.outsider, 8080, false);
}
