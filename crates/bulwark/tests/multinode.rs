//! End-to-end: two nodes. `bulwark server` (with its own agent) runs in one
//! network namespace and `bulwark agent` joins it from another, the two
//! joined by a veth pair the test creates — the host's own network is never
//! touched. Root only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // harness code: a panic is the failure report

mod support;
use support::netns::{IMAGE, Link, start};

#[test]
fn an_agent_joins_with_the_token_runs_pods_and_its_pods_move_when_it_stops() {
    if !bulwark_testkit::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut cluster = start("j", 41);

    // The joined node authenticates as itself, through a certificate the
    // cluster issued from its CSR.
    let csrs = cluster.ok(&["get", "csr"]);
    assert!(
        csrs.contains("kubernetes.io/kube-apiserver-client-kubelet"),
        "{csrs}"
    );
    assert!(csrs.contains("Approved,Issued"), "{csrs}");
    let key_mode = std::fs::metadata(cluster.data("agent").join("agent/pki/client.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
        0o600
    );

    // A pod pinned to the joined node runs there; logs and exec reach it
    // through the API server and that node's agent.
    cluster.ok(&[
        "run", "remote", "--image", IMAGE, "--restart=Never",
        "--overrides", r#"{"spec":{"nodeSelector":{"kubernetes.io/hostname":"node-b"},"terminationGracePeriodSeconds":1}}"#,
        "--", "sh", "-c", "echo from-b; mkdir -p /tmp/www && echo across > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
    ]);
    cluster.eventually("the pod Running on node-b", 90, || {
        let phase = cluster.jsonpath(&["pod", "remote"], "{.status.phase}");
        let node = cluster.jsonpath(&["pod", "remote"], "{.spec.nodeName}");
        if phase == "Running" && node == "node-b" {
            Ok(())
        } else {
            Err(format!(
                "{phase} on {node:?}: {}\n{}",
                cluster.jsonpath(&["pod", "remote"], "{.status}"),
                String::from_utf8_lossy(&cluster.kubectl(&["get", "events"]).stdout)
            ))
        }
    });
    assert_eq!(
        cluster.jsonpath(&["pod", "remote"], "{.status.hostIP}"),
        cluster.agent_ip()
    );
    cluster.eventually("its log through node-b's agent", 30, || {
        let out = cluster.kubectl(&["logs", "remote"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text == "from-b\n" {
            Ok(())
        } else {
            Err(format!("{text:?} {}", String::from_utf8_lossy(&out.stderr)))
        }
    });
    assert_eq!(
        cluster.ok(&["exec", "remote", "--", "hostname"]),
        "remote\n"
    );

    // The pod network: each node hands out addresses from its own podCIDR,
    // and a pod on one node reaches a pod on the other through the routes
    // the agents keep between them.
    let cidr_b = cluster.jsonpath(&["node", "node-b"], "{.spec.podCIDR}");
    let cidr_a = cluster.jsonpath(&["node", "node-a"], "{.spec.podCIDR}");
    assert!(
        cidr_a.starts_with("10.42.") && cidr_b.starts_with("10.42.") && cidr_a != cidr_b,
        "{cidr_a} {cidr_b}"
    );
    let ip_b = cluster.jsonpath(&["pod", "remote"], "{.status.podIP}");
    let prefix_b = cidr_b.rsplit_once('.').unwrap().0;
    assert!(ip_b.starts_with(prefix_b), "pod IP {ip_b} not in {cidr_b}");
    cluster.ok(&[
        "run", "local", "--image", IMAGE, "--restart=Never",
        "--overrides", r#"{"spec":{"nodeSelector":{"kubernetes.io/hostname":"node-a"},"terminationGracePeriodSeconds":1}}"#,
        "--", "sleep", "600",
    ]);
    cluster.eventually("the pod Running on node-a", 90, || {
        let phase = cluster.jsonpath(&["pod", "local"], "{.status.phase}");
        if phase == "Running" {
            Ok(())
        } else {
            Err(phase)
        }
    });
    let request = format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip_b} 8080");
    cluster.eventually("a pod on node-a reaching a pod on node-b", 30, || {
        let out = cluster.kubectl(&["exec", "local", "--", "sh", "-c", &request]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("200 OK") && text.ends_with("across\n") {
            Ok(())
        } else {
            Err(format!("{text:?} {}", String::from_utf8_lossy(&out.stderr)))
        }
    });
    // By default the way between nodes is VXLAN.
    let routes = Link::exec(&cluster.link.a, "ip")
        .args(["route", "show", "proto", "0x62"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(
        routes.contains(&format!("{cidr_b} via ")) && routes.contains("dev bulwark.vxlan onlink"),
        "{routes}"
    );

    // Cluster DNS, answered on each node at the kube-dns address: Service
    // names resolve from pods on both nodes, through ClusterFirst's
    // resolv.conf.
    let resolv = cluster.ok(&["exec", "local", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.43.0.10"), "{resolv}");
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    for pod in ["local", "remote"] {
        cluster.eventually(&format!("kubernetes.default from {pod}"), 30, || {
            let out = cluster.kubectl(&[
                "exec",
                pod,
                "--",
                "nslookup",
                "kubernetes.default.svc.cluster.local",
            ]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.contains("10.43.0.1") {
                Ok(())
            } else {
                Err(format!("{text} {}", String::from_utf8_lossy(&out.stderr)))
            }
        });
    }

    // A Deployment tolerating unreachability briefly: when node-b's agent
    // stops, the node goes NotReady and its pods come back on node-a.
    cluster.ok(&[
        "create",
        "deployment",
        "spread",
        "--image",
        IMAGE,
        "--replicas=2",
        "--",
        "sleep",
        "600",
    ]);
    cluster.ok(&[
        "patch", "deployment", "spread", "--type=merge", "-p",
        r#"{"spec":{"template":{"spec":{"terminationGracePeriodSeconds":1,"tolerations":[{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":2},{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":2}]}}}}"#,
    ]);
    cluster.eventually("2 available replicas", 90, || {
        let available = cluster.jsonpath(&["deployment", "spread"], "{.status.availableReplicas}");
        if available == "2" {
            Ok(())
        } else {
            Err(format!("available {available:?}"))
        }
    });
    cluster.stop_agent();
    cluster.eventually("node-b NotReady/Unknown", 90, || {
        let ready = cluster.jsonpath(
            &["node", "node-b"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        );
        if ready != "True" {
            Ok(())
        } else {
            Err(format!("Ready={ready:?}"))
        }
    });
    cluster.eventually("both replicas running on node-a", 120, || {
        let out = cluster.ok(&[
            "get", "pods", "-l", "app=spread", "--field-selector", "status.phase=Running",
            "-o", "jsonpath={range .items[*]}{.spec.nodeName}{\" \"}{.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ]);
        let on_a = out.lines().filter(|l| l.trim() == "node-a").count();
        if on_a >= 2 { Ok(()) } else { Err(out) }
    });
}
