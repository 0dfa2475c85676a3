//! End-to-end: NetworkPolicy as a truth table on three nodes, the way
//! upstream's network-policy e2e suite checks it. Six pods in three
//! namespaces, spread over node-a (the server's), node-b and node-c (each
//! in its own network namespace, cabled to one bridge), each serving on
//! ports 80 and 81; every pod probes every pod on both ports and the whole
//! matrix is compared with the expected one after each policy change and
//! after a pod's and a namespace's labels change. Root only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // harness code: a panic is the failure report

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::netns::{Cluster, IMAGE, start_nodes};

/// The pods: (namespace, name, node). Each namespace `n` carries the label
/// `team=n`; each pod `pod=<name>` and `app=matrix`.
const PODS: [(&str, &str, &str); 6] = [
    ("x", "a", "node-a"),
    ("x", "b", "node-b"),
    ("x", "c", "node-c"),
    ("y", "a", "node-b"),
    ("y", "b", "node-c"),
    ("z", "a", "node-a"),
];

const PORTS: [u16; 2] = [80, 81];

/// How long a policy change may take to show in the whole matrix (they
/// apply within a second; the rest is probing on a busy machine).
const ENFORCED_WITHIN: u64 = 45;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pod {
    ns: &'static str,
    name: &'static str,
}

impl std::fmt::Display for Pod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ns, self.name)
    }
}

/// (client, server, port) → reached.
type Matrix = BTreeMap<(usize, usize, u16), bool>;

/// (client, server, port) → what a failed probe said (exit code, output).
type Said = BTreeMap<(usize, usize, u16), String>;

struct Env {
    cluster: Cluster,
    pods: Vec<Pod>,
    ips: Vec<String>,
    /// Each pod's pinned network namespace.
    nets: Vec<PathBuf>,
}

impl Env {
    fn apply(&self, name: &str, yaml: &str) {
        let path = self.cluster.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        self.cluster.ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    /// `command` (the host's tools) in `pod`'s network namespace, killed
    /// after 30 s (a hang is a failed probe, not a stuck test). Not `kubectl
    /// exec`: the probes test the network, not the exec path.
    fn exec(&self, pod: Pod, command: &[&str]) -> Output {
        let i = self.pods.iter().position(|p| *p == pod).unwrap();
        Command::new("timeout")
            .arg("30")
            .arg("nsenter")
            .arg(format!("--net={}", self.nets[i].display()))
            .arg("--")
            .args(command)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// Every client's row of the matrix: one shell per client (in parallel
    /// threads) in its network namespace, probing every server × port at
    /// once. A row whose shell failed is an error.
    fn probe_all(&self) -> Result<(Matrix, Said), String> {
        let mut targets = String::new();
        for ip in &self.ips {
            for port in PORTS {
                write!(targets, " {ip}:{port}").unwrap();
            }
        }
        let script = format!(
            "for t in{targets}; do (r=$(busybox timeout 3 wget -q -O - http://$t/ 2>&1); \
             echo \"$t $? $(echo $r)\") & done; wait"
        );
        type Row = Vec<(usize, u16, Result<(), String>)>;
        let rows: Vec<Result<Row, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .pods
                .iter()
                .map(|&client| {
                    let script = &script;
                    s.spawn(move || self.row(client, script))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut matrix = Matrix::new();
        let mut said = Said::new();
        for (client, row) in rows.into_iter().enumerate() {
            for (server, port, probe) in row? {
                matrix.insert((client, server, port), probe.is_ok());
                if let Err(why) = probe {
                    said.insert((client, server, port), why);
                }
            }
        }
        Ok((matrix, said))
    }

    /// One client's probes: per server and port, Ok when it was served,
    /// else the exit code and what wget said.
    #[allow(clippy::type_complexity)] // a row, as probe_all reads it
    fn row(
        &self,
        client: Pod,
        script: &str,
    ) -> Result<Vec<(usize, u16, Result<(), String>)>, String> {
        let out = self.exec(client, &["sh", "-c", script]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut row = Vec::new();
        for line in stdout.lines() {
            let parsed = line.split_once(' ').and_then(|(target, said)| {
                let (ip, port) = target.split_once(':')?;
                let server = self.ips.iter().position(|i| i == ip)?;
                let probe = if said == "0 served" {
                    Ok(())
                } else {
                    Err(said.to_owned())
                };
                Some((server, port.parse().ok()?, probe))
            });
            row.push(parsed.ok_or_else(|| format!("{client}: unexpected line {line:?}"))?);
        }
        if out.status.success() && row.len() == self.ips.len() * PORTS.len() {
            Ok(row)
        } else {
            Err(format!(
                "probing from {client}: {} {stdout:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The matrix `allowed` describes; a pod always reaches itself (the
    /// traffic never leaves its network namespace).
    fn expected(&self, allowed: impl Fn(Pod, Pod, u16) -> bool) -> Matrix {
        let mut matrix = Matrix::new();
        for (c, &client) in self.pods.iter().enumerate() {
            for (s, &server) in self.pods.iter().enumerate() {
                for port in PORTS {
                    let reached = c == s || allowed(client, server, port);
                    matrix.insert((c, s, port), reached);
                }
            }
        }
        matrix
    }

    /// Probes until the observed matrix is `expected`'s; on timeout prints
    /// both whole matrices.
    fn check(&self, step: &str, allowed: impl Fn(Pod, Pod, u16) -> bool) {
        let expected = self.expected(allowed);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(ENFORCED_WITHIN);
        // A probe that got through is proof; one that failed may be a
        // probe too slow on a busy machine. So a cell that should be
        // reachable passes once reached after the change (upstream's probes
        // retry likewise), while every cell that should be blocked must be
        // blocked in the same, last round.
        let mut reached = std::collections::BTreeSet::new();
        let mut last = Err("never probed".to_owned());
        while Instant::now() < deadline {
            last = self.probe_all().map(|(mut observed, said)| {
                for (key, cell) in &mut observed {
                    if *cell {
                        reached.insert(*key);
                    } else if expected.get(key) == Some(&true) && reached.contains(key) {
                        *cell = true;
                    }
                }
                (observed, said)
            });
            if last
                .as_ref()
                .is_ok_and(|(observed, _)| *observed == expected)
            {
                eprintln!("{step}: matrix as expected after {:?}", started.elapsed());
                return;
            }
        }
        let observed = match &last {
            Ok((observed, said)) => {
                let mut text = self.render(observed, Some(&expected));
                for (&(c, s, port), why) in said {
                    if expected.get(&(c, s, port)) == Some(&true) {
                        let (from, to) = (self.pods[c], self.pods[s]);
                        writeln!(text, "{from} -> {to}:{port}: {why}").unwrap();
                    }
                }
                text
            }
            Err(why) => why.clone(),
        };
        panic!(
            "{step}: the matrix did not become the expected one within {ENFORCED_WITHIN}s \
             (rows: from, columns: to; . reached, X blocked, * differs)\n\
             --- expected ---\n{}--- observed ---\n{observed}\npolicies:\n{}",
            self.render(&expected, None),
            String::from_utf8_lossy(
                &self
                    .cluster
                    .kubectl(&["get", "networkpolicy", "-A", "-o", "yaml"])
                    .stdout
            )
        );
    }

    fn render(&self, matrix: &Matrix, against: Option<&Matrix>) -> String {
        let mut out = format!("{:8}", "");
        for server in &self.pods {
            for port in PORTS {
                write!(out, "{:>9}", format!("{server}:{port}")).unwrap();
            }
        }
        out.push('\n');
        for (c, client) in self.pods.iter().enumerate() {
            write!(out, "{:8}", client.to_string()).unwrap();
            for s in 0..self.pods.len() {
                for port in PORTS {
                    let key = (c, s, port);
                    let cell = match matrix.get(&key) {
                        Some(true) => ".",
                        Some(false) => "X",
                        None => "?",
                    };
                    let differs = against.is_some_and(|e| e.get(&key) != matrix.get(&key));
                    write!(
                        out,
                        "{:>9}",
                        format!("{cell}{}", if differs { "*" } else { "" })
                    )
                    .unwrap();
                }
            }
            out.push('\n');
        }
        out
    }

    fn delete_policies(&self) {
        self.cluster
            .ok(&["delete", "networkpolicy", "--all", "-A", "--wait=false"]);
    }
}

fn setup_yaml() -> String {
    let mut yaml = String::new();
    for ns in ["x", "y", "z"] {
        writeln!(
            yaml,
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: \"{ns}\", labels: {{team: \"{ns}\"}}}}\n---"
        )
        .unwrap();
    }
    for (ns, name, node) in PODS {
        writeln!(
            yaml,
            r#"apiVersion: v1
kind: Pod
metadata: {{name: "{name}", namespace: "{ns}", labels: {{pod: "{name}", app: matrix}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: serve
    image: {IMAGE}
    ports: [{{name: serve-80, containerPort: 80}}, {{name: serve-81, containerPort: 81}}]
    command: [sh, -c, "mkdir -p /tmp/www && echo served > /tmp/www/index.html && httpd -p 81 -h /tmp/www && exec httpd -f -p 80 -h /tmp/www"]
---"#
        )
        .unwrap();
    }
    // A headless Service over namespace x's pods.
    yaml.push_str(
        "apiVersion: v1\nkind: Service\nmetadata: {name: all, namespace: x}\n\
         spec: {clusterIP: None, selector: {app: matrix}, ports: [{port: 80}]}\n",
    );
    yaml
}

fn policy(name: &str, ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: \"{ns}\"}}\nspec:\n{spec}"
    )
}

#[test]
fn network_policy_truth_tables_on_three_nodes() {
    if !bulwark_testkit::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let started = Instant::now();
    let cluster = start_nodes("m", 51, 3);
    let path = cluster.dir.path().join("pods.yaml");
    std::fs::write(&path, setup_yaml()).unwrap();
    cluster.ok(&["apply", "-f", path.to_str().unwrap()]);
    let pods: Vec<Pod> = PODS.iter().map(|&(ns, name, _)| Pod { ns, name }).collect();
    let ips = pods
        .iter()
        .map(|pod| {
            cluster.eventually(&format!("{pod} Ready with an IP"), 120, || {
                let what = ["pod", "-n", pod.ns, pod.name];
                let ready =
                    cluster.jsonpath(&what, "{.status.conditions[?(@.type==\"Ready\")].status}");
                let ip = cluster.jsonpath(&what, "{.status.podIP}");
                if ready == "True" && !ip.is_empty() {
                    Ok(ip)
                } else {
                    Err(format!("Ready={ready:?} {ip:?}"))
                }
            })
        })
        .collect();
    let nets = pods
        .iter()
        .map(|pod| cluster.pod_netns(pod.ns, pod.name))
        .collect();
    let env = Env {
        cluster,
        pods,
        ips,
        nets,
    };
    eprintln!("cluster and pods up after {:?}", started.elapsed());

    env.check("no policy", |_, _, _| true);
    headless_service_names_every_ready_pod(&env);
    default_deny_ingress(&env);
    default_deny_egress(&env);
    allow_from_a_namespace_and_after_its_label_changes(&env);
    allow_from_pods_in_a_namespace_and_after_a_pod_label_changes(&env);
    ip_block_with_except(&env);
    named_port(&env);
    port_ranges(&env);
    eprintln!("done after {:?}", started.elapsed());
}

/// `all.x.svc.cluster.local` answers with the address of each of x's pods,
/// asked from a pod in another namespace on another node.
fn headless_service_names_every_ready_pod(env: &Env) {
    let mut want: Vec<&str> = env
        .pods
        .iter()
        .zip(&env.ips)
        .filter(|(pod, _)| pod.ns == "x")
        .map(|(_, ip)| ip.as_str())
        .collect();
    want.sort_unstable();
    let from = Pod { ns: "y", name: "b" };
    env.cluster
        .eventually("the headless Service's A records", 30, || {
            let out = env.exec(
                from,
                &[
                    "busybox",
                    "nslookup",
                    "all.x.svc.cluster.local",
                    "10.43.0.10",
                ],
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // busybox nslookup: the server's address first, then the answers.
            let mut got: Vec<&str> = text
                .split("Name:")
                .skip(1)
                .flat_map(|answer| answer.lines())
                .filter_map(|l| l.strip_prefix("Address:"))
                .map(str::trim)
                .collect();
            got.sort_unstable();
            got.dedup();
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "want {want:?}, got {got:?}: {text} {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        });
}

fn default_deny_ingress(env: &Env) {
    env.apply(
        "deny-in",
        &policy(
            "deny-in",
            "x",
            "  podSelector: {}\n  policyTypes: [Ingress]\n",
        ),
    );
    env.check("default-deny ingress in x", |_, to, _| to.ns != "x");
    env.delete_policies();
}

fn default_deny_egress(env: &Env) {
    env.apply(
        "deny-out",
        &policy(
            "deny-out",
            "x",
            "  podSelector: {}\n  policyTypes: [Egress]\n",
        ),
    );
    env.check("default-deny egress in x", |from, _, _| from.ns != "x");
    env.delete_policies();
}

fn allow_from_a_namespace_and_after_its_label_changes(env: &Env) {
    env.apply(
        "from-y",
        &policy(
            "from-y",
            "x",
            "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: \"y\"}}}]\n",
        ),
    );
    env.check("ingress to x from namespace y", |from, to, _| {
        to.ns != "x" || from.ns == "y"
    });
    env.cluster
        .ok(&["label", "namespace", "z", "team=y", "--overwrite"]);
    env.check("… after z is labelled team=y", |from, to, _| {
        to.ns != "x" || from.ns != "x"
    });
    env.cluster
        .ok(&["label", "namespace", "z", "team=z", "--overwrite"]);
    env.check("… after z is labelled team=z again", |from, to, _| {
        to.ns != "x" || from.ns == "y"
    });
    env.delete_policies();
}

fn allow_from_pods_in_a_namespace_and_after_a_pod_label_changes(env: &Env) {
    // Both selectors in one peer: pods labelled pod=b in namespaces
    // labelled team=y — not x/b, not all of y.
    env.apply(
        "from-y-b",
        &policy(
            "from-y-b",
            "x",
            "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: \"y\"}}, podSelector: {matchLabels: {pod: \"b\"}}}]\n",
        ),
    );
    let y_b = |from: Pod| from.ns == "y" && from.name == "b";
    env.check("ingress to x from y's pod=b", |from, to, _| {
        to.ns != "x" || y_b(from)
    });
    env.cluster
        .ok(&["label", "pod", "-n", "y", "a", "pod=b", "--overwrite"]);
    env.check("… after y/a is labelled pod=b", |from, to, _| {
        to.ns != "x" || from.ns == "y"
    });
    env.cluster
        .ok(&["label", "pod", "-n", "y", "a", "pod=a", "--overwrite"]);
    env.check("… after y/a is labelled pod=a again", |from, to, _| {
        to.ns != "x" || y_b(from)
    });
    env.delete_policies();
}

fn ip_block_with_except(env: &Env) {
    let node_c = env.cluster.jsonpath(&["node", "node-c"], "{.spec.podCIDR}");
    assert!(node_c.starts_with("10.42."), "{node_c:?}");
    env.apply(
        "block",
        &policy(
            "block",
            "x",
            &format!(
                "  podSelector: {{}}\n  ingress:\n  - from: [{{ipBlock: {{cidr: 10.42.0.0/16, except: [{node_c}]}}}}]\n"
            ),
        ),
    );
    let on_node_c = |pod: Pod| {
        PODS.iter()
            .any(|&(ns, name, node)| ns == pod.ns && name == pod.name && node == "node-c")
    };
    env.check(
        "ingress to x from the pod CIDR except node-c's",
        |from, to, _| to.ns != "x" || !on_node_c(from),
    );
    env.delete_policies();
}

fn named_port(env: &Env) {
    // Resolved on each selected pod from its container port's name.
    env.apply(
        "named",
        &policy(
            "named",
            "x",
            "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {}}]\n    ports: [{port: serve-81}]\n",
        ),
    );
    env.check("ingress to x on port serve-81 only", |_, to, port| {
        to.ns != "x" || port == 81
    });
    env.delete_policies();
}

fn port_ranges(env: &Env) {
    // x admits 81–82: 80 is below the range. y admits 79–80: 81 is above.
    for (ns, from, to) in [("x", 81, 82), ("y", 79, 80)] {
        env.apply(
            &format!("range-{ns}"),
            &policy(
                "range",
                ns,
                &format!(
                    "  podSelector: {{}}\n  ingress:\n  - ports: [{{protocol: TCP, port: {from}, endPort: {to}}}]\n"
                ),
            ),
        );
    }
    env.check(
        "ingress to x on 81-82, to y on 79-80",
        |_, to, port| match to.ns {
            "x" => port == 81,
            "y" => port == 80,
            _ => true,
        },
    );
    env.delete_policies();
}
