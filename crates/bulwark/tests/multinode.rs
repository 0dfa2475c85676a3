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

/// Runs `bulwark agent` for `node_name` with a fresh data dir in node-b's
/// namespace and returns its output once it exits (it must, within 60 s).
fn join_as(
    cluster: &support::netns::Cluster,
    node_name: &str,
    data_dir: &std::path::Path,
) -> (bool, String) {
    let log = data_dir.with_extension("log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Link::exec(&cluster.link.b, env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "agent",
            "--server",
            &format!("https://{}:6443", cluster.server_ip()),
        ])
        .arg("--token-file")
        .arg(cluster.data("server").join("node-token"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--node-name", node_name, "--node-ip", &cluster.agent_ip()])
        .args(support::netns::TEST_EVICTION)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let status = cluster.eventually(
        &format!("the agent posing as {node_name} to exit"),
        60,
        || match child.try_wait().unwrap() {
            Some(status) => Ok(status),
            None => Err(std::fs::read_to_string(&log).unwrap_or_default()),
        },
    );
    (status.success(), std::fs::read_to_string(&log).unwrap())
}

#[test]
fn a_second_agent_with_a_taken_node_name_is_refused_and_the_node_itself_rejoins() {
    if !bulwark_testkit::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut cluster = start("d", 45);
    let fingerprint = cluster.jsonpath(
        &["node", "node-b"],
        "{.metadata.annotations.bulwark\\.io/node-identity-fingerprint}",
    );
    assert!(fingerprint.starts_with("sha256:"), "{fingerprint:?}");

    // Another machine (a fresh data dir, the same token) claiming node-b,
    // then node-a (the server's own node): both refused, by name.
    for taken in ["node-b", "node-a"] {
        let dir = cluster.dir.path().join(format!("impostor-{taken}"));
        let (ok, out) = join_as(&cluster, taken, &dir);
        assert!(!ok, "{out}");
        assert!(
            out.contains(&format!("node \"{taken}\" is already registered"))
                && out.contains("duplicate name is refused"),
            "{out}"
        );
        assert!(
            !dir.join("agent/pki/client.crt").exists(),
            "the impostor got no certificate"
        );
    }
    let denied = cluster.ok(&["get", "csr"]);
    assert_eq!(denied.matches("Denied").count(), 2, "{denied}");

    // The real node-b, having lost its certificate, joins again with its
    // node identity and runs on.
    cluster.stop_agent();
    let pki = cluster.data("agent").join("agent/pki");
    std::fs::remove_file(pki.join("client.crt")).unwrap();
    cluster.start_agent();
    cluster.eventually("node-b's new client certificate", 60, || {
        if pki.join("client.crt").exists() {
            Ok(())
        } else {
            Err(cluster.log("agent"))
        }
    });
    cluster.ok(&[
        "run", "after", "--image", IMAGE, "--restart=Never",
        "--overrides", r#"{"spec":{"nodeSelector":{"kubernetes.io/hostname":"node-b"},"terminationGracePeriodSeconds":1}}"#,
        "--", "sleep", "600",
    ]);
    cluster.eventually("a pod Running on the rejoined node-b", 90, || {
        let phase = cluster.jsonpath(&["pod", "after"], "{.status.phase}");
        if phase == "Running" {
            Ok(())
        } else {
            Err(phase)
        }
    });
    assert_eq!(
        cluster.jsonpath(
            &["node", "node-b"],
            "{.metadata.annotations.bulwark\\.io/node-identity-fingerprint}",
        ),
        fingerprint
    );
}

#[test]
fn a_running_agent_renews_its_certificates_before_they_expire() {
    if !bulwark_testkit::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // Every certificate signed for a CSR lives 30 s.
    let mut cluster =
        support::netns::start_with("c", 46, 2, &["--cluster-signing-duration", "30s"]);
    // By now node-b's first certificates exist; they expire within 30 s.
    let first_expired = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pki = cluster.data("agent").join("agent/pki");
    let read = |file: &str| std::fs::read_to_string(pki.join(file)).unwrap_or_default();
    let first: Vec<String> = ["client.crt", "serving.crt", "proxy.crt"]
        .iter()
        .map(|f| read(f))
        .collect();
    cluster.ok(&[
        "run", "renewed", "--image", IMAGE, "--restart=Never",
        "--overrides", r#"{"spec":{"nodeSelector":{"kubernetes.io/hostname":"node-b"},"terminationGracePeriodSeconds":1}}"#,
        "--", "sh", "-c", "echo still-here; exec sleep 600",
    ]);

    // Each is replaced on disk, twice (the second renewal is asked for
    // under the first renewed client certificate).
    let mut seen: Vec<Vec<String>> = first.iter().map(|c| vec![c.clone()]).collect();
    cluster.eventually("two renewals of each certificate", 120, || {
        for (i, file) in ["client.crt", "serving.crt", "proxy.crt"]
            .iter()
            .enumerate()
        {
            let now = read(file);
            if !now.is_empty() && !seen[i].contains(&now) {
                seen[i].push(now);
            }
        }
        if seen.iter().all(|s| s.len() >= 3) && std::time::Instant::now() > first_expired {
            Ok(())
        } else {
            Err(format!(
                "versions seen: {:?}",
                seen.iter().map(Vec::len).collect::<Vec<_>>()
            ))
        }
    });
    // The same agent process all along, with no error to show for it.
    assert!(
        cluster.agents[0]
            .as_mut()
            .unwrap()
            .try_wait()
            .unwrap()
            .is_none(),
        "the agent exited: {}",
        cluster.log("agent")
    );

    // Past the first certificates' expiry the node still heartbeats, and
    // the API server still reaches its agent (the renewed serving one).
    let lease = || {
        cluster.jsonpath(
            &["lease", "-n", "kube-node-lease", "node-b"],
            "{.spec.renewTime}",
        )
    };
    let before = lease();
    cluster.eventually("node-b's Lease renewed again", 30, || {
        let now = lease();
        if now != before && !now.is_empty() {
            Ok(())
        } else {
            Err(now)
        }
    });
    assert_eq!(
        cluster.jsonpath(
            &["node", "node-b"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ),
        "True"
    );
    cluster.eventually("the pod's log through node-b's agent", 30, || {
        let out = cluster.kubectl(&["logs", "renewed"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text == "still-here\n" {
            Ok(())
        } else {
            Err(format!("{text:?} {}", String::from_utf8_lossy(&out.stderr)))
        }
    });
    // Renewals were asked for by the node itself.
    let requesters = cluster.ok(&[
        "get",
        "csr",
        "-o",
        "jsonpath={range .items[*]}{.spec.signerName} {.spec.username}{\"\\n\"}{end}",
    ]);
    let renewals = requesters
        .lines()
        .filter(|l| *l == "kubernetes.io/kube-apiserver-client-kubelet system:node:node-b")
        .count();
    assert!(renewals >= 2, "{requesters}");
}
