//! The multi-node harness: `bulwark server` (with its own agent) as node-a
//! in one network namespace and `bulwark agent`s joined as node-b, node-c,
//! … each from its own, so the host's own network is never touched. Two
//! nodes are joined by a veth pair; more are cabled to a bridge in a
//! "switch" namespace of their own, as separate hosts on one L2 segment
//! would be. Root only. Each test passes its own `tag` and `subnet`
//! (10.251.<subnet>.0/24; node i has .i+1) so tests can run in parallel.

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

/// The letter naming node `i` (0 is the server's node, `a`).
pub(crate) fn letter(i: usize) -> char {
    char::from(b'a' + u8::try_from(i).expect("a few nodes"))
}

/// One named network namespace per node, cabled together (a veth pair for
/// two, a bridge in a switch namespace for more), all deleted on drop.
pub(crate) struct Link {
    /// node-a's namespace (the server's).
    pub(crate) a: String,
    /// node-b's namespace (the first joined agent's).
    pub(crate) b: String,
    /// Every node's namespace, node-a's first.
    pub(crate) nodes: Vec<String>,
    /// The namespace holding the bridge, when there is one.
    pub(crate) switch: Option<String>,
}

impl Link {
    /// Two namespaces joined by a veth pair.
    pub(crate) fn new(tag: &str, subnet: u8) -> Link {
        Self::with_nodes(tag, subnet, 2)
    }

    /// `n` namespaces (`n` ≥ 2): node i's interface is `veth-<letter>`
    /// with 10.251.<subnet>.<i+1>/24.
    pub(crate) fn with_nodes(tag: &str, subnet: u8, n: usize) -> Link {
        assert!(n >= 2, "a cluster of {n} nodes");
        let pid = std::process::id() % 100_000;
        let nodes: Vec<String> = (0..n)
            .map(|i| format!("bw{tag}{}{pid}", letter(i)))
            .collect();
        // Made before any namespace exists, so a failed step below still
        // deletes what was made.
        let mut link = Link {
            a: nodes[0].clone(),
            b: nodes[1].clone(),
            nodes: Vec::new(),
            switch: None,
        };
        for ns in &nodes {
            ip(&["netns", "add", ns]);
            link.nodes.push(ns.clone());
        }
        if n == 2 {
            ip(&[
                "link", "add", "veth-a", "netns", &nodes[0], "type", "veth", "peer", "name",
                "veth-b", "netns", &nodes[1],
            ]);
        } else {
            let switch = format!("bw{tag}sw{pid}");
            ip(&["netns", "add", &switch]);
            link.switch = Some(switch.clone());
            ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
            ip(&["-n", &switch, "link", "set", "br0", "up"]);
            for (i, ns) in nodes.iter().enumerate() {
                let port = format!("port-{}", letter(i));
                ip(&[
                    "link",
                    "add",
                    &format!("veth-{}", letter(i)),
                    "netns",
                    ns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &port,
                    "netns",
                    &switch,
                ]);
                ip(&["-n", &switch, "link", "set", &port, "master", "br0"]);
                ip(&["-n", &switch, "link", "set", &port, "up"]);
            }
        }
        for (i, ns) in nodes.iter().enumerate() {
            let dev = format!("veth-{}", letter(i));
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.251.{subnet}.{}/24", i + 1),
                "dev",
                &dev,
            ]);
            ip(&["-n", ns, "link", "set", &dev, "up"]);
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
        for ns in self.nodes.iter().chain(&self.switch) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) link: Link,
    pub(crate) server: Option<Child>,
    /// The joined agents, node-b's first (`None` while stopped).
    pub(crate) agents: Vec<Option<Child>>,
    pub(crate) subnet: u8,
}

impl Cluster {
    pub(crate) fn server_ip(&self) -> String {
        format!("10.251.{}.1", self.subnet)
    }

    pub(crate) fn agent_ip(&self) -> String {
        self.node_ip(1)
    }

    /// Node i's address (0 is node-a, the server's).
    pub(crate) fn node_ip(&self, i: usize) -> String {
        format!("10.251.{}.{}", self.subnet, i + 1)
    }

    pub(crate) fn node_name(i: usize) -> String {
        format!("node-{}", letter(i))
    }

    /// The name of node i's data dir and log: `server`, `agent` (node-b,
    /// as the two-node tests know it), `agent-c`, …
    pub(crate) fn which(i: usize) -> String {
        match i {
            0 => "server".into(),
            1 => "agent".into(),
            _ => format!("agent-{}", letter(i)),
        }
    }

    fn every_log(&self) -> String {
        (0..self.link.nodes.len())
            .map(|i| {
                let which = Self::which(i);
                format!("--- {which} log ---\n{}\n", self.log(&which))
            })
            .collect()
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
        panic!("timed out waiting for {what}: {last}\n{}", self.every_log());
    }

    /// The pinned network namespace of pod `ns/pod` (under its node's
    /// data dir: `…/pods/<uid>/ns/net`).
    pub(crate) fn pod_netns(&self, ns: &str, pod: &str) -> PathBuf {
        let uid = self.jsonpath(&["pod", "-n", ns, pod], "{.metadata.uid}");
        assert!(!uid.is_empty(), "no uid for {ns}/{pod}");
        let tail = Path::new("pods").join(&uid).join("ns/net");
        let mut dirs = vec![self.dir.path().to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let candidate = dir.join(&tail);
            if candidate.exists() {
                return candidate;
            }
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                // Not into container root filesystems or the pods' own dirs.
                if entry.file_type().is_ok_and(|t| t.is_dir())
                    && !path.ends_with("rootfs")
                    && !path.ends_with("pods")
                {
                    dirs.push(path);
                }
            }
        }
        panic!("no pinned network namespace for {ns}/{pod} ({uid})");
    }

    /// `program` in pod `ns/pod`'s network namespace (the host's files and
    /// tools: for probes that must not depend on `kubectl exec`, which goes
    /// through the pod's agent).
    pub(crate) fn in_pod(&self, ns: &str, pod: &str, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.pod_netns(ns, pod).display()))
            .arg("--")
            .arg(program);
        command
    }

    /// Starts node-b's agent.
    pub(crate) fn start_agent(&mut self) {
        self.start_agent_on(1);
    }

    /// Starts node i's agent (i ≥ 1) with its data dir, kept across
    /// restarts, and its log, appended to.
    pub(crate) fn start_agent_on(&mut self, i: usize) {
        let which = Self::which(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{which}.log")))
            .unwrap();
        let server = format!("https://{}:6443", self.server_ip());
        let child = Link::exec(&self.link.nodes[i], env!("CARGO_BIN_EXE_bulwark"))
            .args(["agent", "--server", &server, "--token-file"])
            .arg(self.data("server").join("node-token"))
            .arg("--data-dir")
            .arg(self.data(&which))
            .args(["--node-name", &Self::node_name(i), "--node-ip"])
            .arg(self.node_ip(i))
            .args(TEST_EVICTION)
            .env("RUST_LOG", "info,bulwark_agent::proxy=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agents[i - 1] = Some(child);
    }

    /// The PID of node i's running agent.
    pub(crate) fn agent_pid(&self, i: usize) -> Option<u32> {
        self.agents[i - 1].as_ref().map(Child::id)
    }

    /// Stops node-b's agent.
    pub(crate) fn stop_agent(&mut self) {
        self.stop_agent_on(1);
    }

    /// SIGKILL to node i's agent (by its PID), as a crash: what it
    /// programmed stays behind.
    pub(crate) fn stop_agent_on(&mut self, i: usize) {
        if let Some(mut child) = self.agents[i - 1].take() {
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
            eprintln!("{}", self.every_log());
        }
        for i in 1..=self.agents.len() {
            self.stop_agent_on(i);
        }
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for i in 0..self.link.nodes.len() {
            let containers = self.data(&Self::which(i)).join("runtime/containers");
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
        super::unmount_under(self.dir.path());
    }
}

pub(crate) fn import_busybox(scratch: &Path, data: &Path) {
    super::import_image(scratch, data, IMAGE);
}

/// Two nodes: node-a (the server's) and node-b, joined by a veth pair.
pub(crate) fn start(tag: &str, subnet: u8) -> Cluster {
    start_nodes(tag, subnet, 2)
}

/// `n` nodes, each Ready: node-a (the server's) and node-b, node-c, …
/// The agents' eviction thresholds: only memory, and 1 MiB of it, so that
/// how full this machine's disk is (upstream's default refuses pods below
/// 10% free) decides no test.
pub(crate) const TEST_EVICTION: [&str; 2] = ["--eviction-hard", "memory.available<1Mi"];

pub(crate) fn start_nodes(tag: &str, subnet: u8, n: usize) -> Cluster {
    start_with(tag, subnet, n, &[])
}

/// As [`start_nodes`], with extra `bulwark server` flags.
pub(crate) fn start_with(tag: &str, subnet: u8, n: usize, server_args: &[&str]) -> Cluster {
    let dir = tempfile::Builder::new()
        .prefix("bulwark-multinode-")
        .tempdir()
        .unwrap();
    let link = Link::with_nodes(tag, subnet, n);
    let mut cluster = Cluster {
        dir,
        link,
        server: None,
        agents: (1..n).map(|_| None).collect(),
        subnet,
    };
    for i in 0..n {
        import_busybox(cluster.dir.path(), &cluster.data(&Cluster::which(i)));
    }
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
        .args(TEST_EVICTION)
        .args(server_args)
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
    for i in 1..n {
        cluster.start_agent_on(i);
    }
    for i in 0..n {
        let node = Cluster::node_name(i);
        cluster.eventually(&format!("{node} Ready"), 90, || {
            let ready = cluster.jsonpath(
                &["node", &node],
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
