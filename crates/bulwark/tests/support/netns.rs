//! The two-node harness: `bulwark server` (with its own agent) in one
//! network namespace and a `bulwark agent` joined from another, the two
//! joined by a veth pair the test creates, so the host's own network is
//! never touched. Root only. Each test passes its own `tag` and `subnet`
//! (10.251.<subnet>.0/24) so tests can run in parallel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const IMAGE: &str = "bulwark.test/busybox:multinode";

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
pub(crate) struct Link {
    pub(crate) a: String,
    pub(crate) b: String,
}

impl Link {
    pub(crate) fn new(tag: &str, subnet: u8) -> Link {
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

    pub(crate) fn exec(ns: &str, program: &str) -> Command {
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

pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) link: Link,
    pub(crate) server: Option<Child>,
    pub(crate) agent: Option<Child>,
    pub(crate) subnet: u8,
}

impl Cluster {
    pub(crate) fn server_ip(&self) -> String {
        format!("10.251.{}.1", self.subnet)
    }

    pub(crate) fn agent_ip(&self) -> String {
        format!("10.251.{}.2", self.subnet)
    }

    pub(crate) fn data(&self, which: &str) -> PathBuf {
        self.dir.path().join(which)
    }

    pub(crate) fn log(&self, which: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{which}.log"))).unwrap_or_default()
    }

    pub(crate) fn kubectl(&self, args: &[&str]) -> Output {
        Link::exec(&self.link.a, "kubectl")
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args)
            .env("KUBECONFIG", self.data("server").join("admin.kubeconfig"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        let expr = format!("jsonpath={path}");
        args.extend(["-o", &expr]);
        String::from_utf8_lossy(&self.kubectl(&args).stdout).into_owned()
    }

    pub(crate) fn eventually<T>(
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

    pub(crate) fn start_agent(&mut self) {
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

    pub(crate) fn stop_agent(&mut self) {
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

pub(crate) fn import_busybox(scratch: &Path, data: &Path) {
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

pub(crate) fn start(tag: &str, subnet: u8) -> Cluster {
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
            // The `kubernetes` Service's endpoint (the netns has no
            // default route to guess it from).
            "--advertise-address",
            &cluster.server_ip(),
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
