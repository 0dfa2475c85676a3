//! End-to-end: two nodes. `bulwark server` (with its own agent) runs in one
//! network namespace and `bulwark agent` joins it from another, the two
//! joined by a veth pair the test creates — the host's own network is never
//! touched. Root only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // harness code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "bulwark.test/busybox:multinode";

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2's ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two named network namespaces joined by a veth pair, deleted on drop.
struct Link {
    a: String,
    b: String,
}

impl Link {
    fn new(tag: &str, subnet: u8) -> Link {
        let pid = std::process::id() % 100_000;
        let link = Link {
            a: format!("bw{tag}a{pid}"),
            b: format!("bw{tag}b{pid}"),
        };
        ip(&["netns", "add", &link.a]);
        ip(&["netns", "add", &link.b]);
        ip(&[
            "link", "add", "veth-a", "netns", &link.a, "type", "veth", "peer", "name", "veth-b",
            "netns", &link.b,
        ]);
        for (ns, dev, host) in [(&link.a, "veth-a", 1), (&link.b, "veth-b", 2)] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.251.{subnet}.{host}/24"),
                "dev",
                dev,
            ]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        link
    }

    fn exec(ns: &str, program: &str) -> Command {
        // nsenter joins only the network namespace: `ip netns exec` would
        // also remount /sys, hiding the cgroup filesystem from the agent.
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{ns}"))
            .arg("--")
            .arg(program);
        command
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    link: Link,
    server: Option<Child>,
    agent: Option<Child>,
    subnet: u8,
}

impl Cluster {
    fn server_ip(&self) -> String {
        format!("10.251.{}.1", self.subnet)
    }

    fn agent_ip(&self) -> String {
        format!("10.251.{}.2", self.subnet)
    }

    fn data(&self, which: &str) -> PathBuf {
        self.dir.path().join(which)
    }

    fn log(&self, which: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{which}.log"))).unwrap_or_default()
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Link::exec(&self.link.a, "kubectl")
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args)
            .env("KUBECONFIG", self.data("server").join("admin.kubeconfig"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        let expr = format!("jsonpath={path}");
        args.extend(["-o", &expr]);
        String::from_utf8_lossy(&self.kubectl(&args).stdout).into_owned()
    }

    fn eventually<T>(
        &self,
        what: &str,
        secs: u64,
        mut check: impl FnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = String::new();
        while Instant::now() < deadline {
            match check() {
                Ok(v) => return v,
                Err(why) => last = why,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "timed out waiting for {what}: {last}\n--- server log ---\n{}\n--- agent log ---\n{}",
            self.log("server"),
            self.log("agent")
        );
    }

    fn start_agent(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .unwrap();
        let server = format!("https://{}:6443", self.server_ip());
        let child = Link::exec(&self.link.b, env!("CARGO_BIN_EXE_bulwark"))
            .args(["agent", "--server", &server, "--token-file"])
            .arg(self.data("server").join("node-token"))
            .arg("--data-dir")
            .arg(self.data("agent"))
            .args(["--node-name", "node-b", "--node-ip", &self.agent_ip()])
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    fn stop_agent(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.server.is_some() {
            let _ = self.kubectl(&[
                "delete",
                "pods",
                "--all",
                "-A",
                "--grace-period=0",
                "--force",
                "--wait=false",
            ]);
            std::thread::sleep(Duration::from_secs(2));
        }
        if std::thread::panicking() {
            eprintln!(
                "--- server log ---\n{}\n--- agent log ---\n{}",
                self.log("server"),
                self.log("agent")
            );
        }
        self.stop_agent();
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for which in ["server", "agent"] {
            let containers = self.data(which).join("runtime/containers");
            for entry in std::fs::read_dir(&containers)
                .into_iter()
                .flatten()
                .flatten()
            {
                for file in ["pid", "shim.pid"] {
                    if let Ok(pid) = std::fs::read_to_string(entry.path().join(file)) {
                        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                    }
                }
            }
        }
        // What a stopped agent could not tear down: its pods' pinned
        // namespaces and volumes (all under the test's directory).
        let root = self.dir.path().to_string_lossy().into_owned();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = Command::new("umount").args(["-l", &mount]).status();
        }
    }
}

fn import_busybox(scratch: &Path, data: &Path) {
    let tarball = bulwark_testkit::busybox_rootfs_tar(scratch).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["image", "--data-dir"])
        .arg(data)
        .args(["import", "--rootfs", "--name", IMAGE])
        .arg(&tarball)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start(tag: &str, subnet: u8) -> Cluster {
    let dir = tempfile::Builder::new()
        .prefix("bulwark-multinode-")
        .tempdir()
        .unwrap();
    let link = Link::new(tag, subnet);
    let mut cluster = Cluster {
        dir,
        link,
        server: None,
        agent: None,
        subnet,
    };
    import_busybox(cluster.dir.path(), &cluster.data("server"));
    import_busybox(cluster.dir.path(), &cluster.data("agent"));
    let log = std::fs::File::create(cluster.dir.path().join("server.log")).unwrap();
    let server = Link::exec(&cluster.link.a, env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "server",
            "--bind-address",
            "0.0.0.0",
            "--port",
            "6443",
            "--data-dir",
        ])
        .arg(cluster.data("server"))
        .args(["--node-name", "node-a", "--node-ip", &cluster.server_ip()])
        .args([
            "--tls-san",
            &cluster.server_ip(),
            "--node-monitor-grace-period",
            "20s",
        ])
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    cluster.server = Some(server);
    cluster.eventually("the server's node token", 60, || {
        if cluster.data("server").join("node-token").exists() {
            Ok(())
        } else {
            Err("no token yet".into())
        }
    });
    cluster.start_agent();
    for node in ["node-a", "node-b"] {
        cluster.eventually(&format!("{node} Ready"), 90, || {
            let ready = cluster.jsonpath(
                &["node", node],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            );
            if ready == "True" {
                Ok(())
            } else {
                Err(format!("Ready={ready:?}"))
            }
        });
    }
    cluster
}

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
