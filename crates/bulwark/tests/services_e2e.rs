//! End-to-end: Services through each node's service proxy, on the two-node
//! harness (`bulwark server` with its agent in one network namespace, a
//! joined `bulwark agent` in another). Root only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // harness code: a panic is the failure report

mod support;

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Instant;

use support::netns::{Cluster, IMAGE, Link, start};

/// `kubectl exec <pod> -- <command>`, killed after `secs` (a hang is a
/// failure the caller sees, not a stuck test).
fn exec_within(cluster: &Cluster, secs: u64, pod: &str, command: &[&str]) -> Output {
    Link::exec(&cluster.link.a, "timeout")
        .arg(secs.to_string())
        .arg("kubectl")
        .arg("--cache-dir")
        .arg(cluster.dir.path().join("kube-cache"))
        .args(["exec", pod, "--"])
        .args(command)
        .env(
            "KUBECONFIG",
            cluster.data("server").join("admin.kubeconfig"),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The names of the `web` Deployment's running pods.
fn web_pods(cluster: &Cluster) -> BTreeSet<String> {
    cluster
        .jsonpath(
            &[
                "pods",
                "-l",
                "app=web",
                "--field-selector",
                "status.phase=Running",
            ],
            "{.items[*].metadata.name}",
        )
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `wget` from a node's network namespace (the host's busybox), killed
/// after 10 s.
fn wget_from_node(ns: &str, url: &str) -> Output {
    Link::exec(ns, "timeout")
        .args(["10", "busybox", "wget", "-qO-", url])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn services_reach_their_endpoints_from_pods_and_from_other_nodes() {
    if !bulwark_testkit::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let cluster = start("s", 43);

    // Three httpd pods, each serving its own name, and a Service.
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image",
        IMAGE,
        "--replicas=3",
        "--",
        "sh",
        "-c",
        "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
    ]);
    cluster.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"terminationGracePeriodSeconds":1}}}}"#,
    ]);
    cluster.ok(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    // The client, on node-b.
    cluster.ok(&[
        "run", "client", "--image", IMAGE, "--restart=Never",
        "--overrides", r#"{"spec":{"nodeSelector":{"kubernetes.io/hostname":"node-b"},"terminationGracePeriodSeconds":1}}"#,
        "--", "sleep", "3600",
    ]);
    cluster.eventually("3 web pods and the client running", 120, || {
        let phase = cluster.jsonpath(&["pod", "client"], "{.status.phase}");
        let web = web_pods(&cluster);
        if phase == "Running" && web.len() == 3 {
            Ok(())
        } else {
            Err(format!("client {phase}, web {web:?}"))
        }
    });

    // By DNS name from a pod on the other node: answered, and spread over
    // more than one endpoint.
    let url = "http://web.default.svc.cluster.local:80";
    let mut answered = BTreeSet::new();
    cluster.eventually("answers from 2 endpoints", 60, || {
        let out = exec_within(&cluster, 15, "client", &["wget", "-qO-", url]);
        let (stdout, stderr) = text(&out);
        if out.status.success() {
            answered.insert(stdout.trim().to_owned());
        }
        if answered.len() >= 2 {
            Ok(())
        } else {
            Err(format!("{answered:?}; last: {stdout:?} {stderr:?}"))
        }
    });
    let pods = web_pods(&cluster);
    assert!(answered.is_subset(&pods), "{answered:?} not among {pods:?}");

    // Scaled to 0: refused at once, not a hang.
    cluster.ok(&["scale", "deployment", "web", "--replicas=0"]);
    cluster.eventually("the Service refusing connections", 60, || {
        let started = Instant::now();
        let out = exec_within(&cluster, 15, "client", &["wget", "-qO-", url]);
        let (stdout, stderr) = text(&out);
        if !out.status.success() && stderr.contains("refused") {
            Ok(started.elapsed())
        } else {
            Err(format!("{stdout:?} {stderr:?}"))
        }
    });
    // Scaled back: answered again once a pod is ready.
    cluster.ok(&["scale", "deployment", "web", "--replicas=2"]);
    cluster.eventually("answers after scaling back", 90, || {
        let out = exec_within(&cluster, 15, "client", &["wget", "-qO-", url]);
        let (stdout, stderr) = text(&out);
        if out.status.success() && stdout.starts_with("web-") {
            Ok(())
        } else {
            Err(format!("{stdout:?} {stderr:?}"))
        }
    });

    // A NodePort, reached on node-a's address from node-b's namespace
    // (a node, not a pod: masqueraded on the way to any endpoint).
    cluster.ok(&[
        "patch",
        "service",
        "web",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    let node_port: u16 = cluster
        .jsonpath(&["service", "web"], "{.spec.ports[0].nodePort}")
        .parse()
        .unwrap();
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    cluster.eventually("the NodePort answering", 30, || {
        let url = format!("http://{}:{node_port}/", cluster.server_ip());
        let out = wget_from_node(&cluster.link.b, &url);
        let (stdout, stderr) = text(&out);
        if out.status.success() && stdout.starts_with("web-") {
            Ok(())
        } else {
            Err(format!("{stdout:?} {stderr:?}"))
        }
    });

    // A hostPort (Pod Security's baseline forbids them: a privileged
    // namespace), reached on node-a's address from node-b's namespace.
    cluster.ok(&["create", "namespace", "hp"]);
    cluster.ok(&[
        "label",
        "namespace",
        "hp",
        "pod-security.kubernetes.io/enforce=privileged",
    ]);
    let overrides = serde_json::json!({"spec": {
        "nodeSelector": {"kubernetes.io/hostname": "node-a"},
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "hp",
            "image": IMAGE,
            "command": ["sh", "-c", "mkdir -p /tmp/www && echo published > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"],
            "ports": [{"containerPort": 8080, "hostPort": 18080}],
        }],
    }})
    .to_string();
    cluster.ok(&[
        "run",
        "hp",
        "-n",
        "hp",
        "--image",
        IMAGE,
        "--restart=Never",
        "--overrides",
        &overrides,
    ]);
    cluster.eventually("the hostPort answering", 90, || {
        let url = format!("http://{}:18080/", cluster.server_ip());
        let out = wget_from_node(&cluster.link.b, &url);
        let (stdout, stderr) = text(&out);
        if out.status.success() && stdout == "published\n" {
            Ok(())
        } else {
            Err(format!("{stdout:?} {stderr:?}"))
        }
    });

    // The `kubernetes` Service reaches the API server from a pod on either
    // node: any answer of its TLS server proves the path — an HTTP status,
    // or the TLS alert it sends busybox's wget, whose cipher suites rustls
    // does not accept (the API server's refusal, not a network error).
    cluster.ok(&[
        "run", "client-a", "--image", IMAGE, "--restart=Never",
        "--overrides", r#"{"spec":{"nodeSelector":{"kubernetes.io/hostname":"node-a"},"terminationGracePeriodSeconds":1}}"#,
        "--", "sleep", "3600",
    ]);
    cluster.eventually("client-a running", 90, || {
        let phase = cluster.jsonpath(&["pod", "client-a"], "{.status.phase}");
        if phase == "Running" {
            Ok(())
        } else {
            Err(phase)
        }
    });
    for pod in ["client", "client-a"] {
        cluster.eventually(&format!("the API server from {pod}"), 30, || {
            let out = exec_within(
                &cluster,
                15,
                pod,
                &[
                    "wget",
                    "--no-check-certificate",
                    "-qO-",
                    "https://kubernetes.default.svc/version",
                ],
            );
            let (stdout, stderr) = text(&out);
            let http = stderr.contains("HTTP/1.1 40") || stdout.contains("\"kind\"");
            let tls_alert = stderr.contains("TLS error from peer");
            if http || tls_alert {
                Ok(())
            } else {
                Err(format!("{stdout:?} {stderr:?}"))
            }
        });
    }
}
