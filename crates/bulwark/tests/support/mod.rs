//! The end-to-end harness shared by the kube-rs test files: a `bulwark
//! server` process on a free loopback port with a temporary data dir,
//! killed by PID when dropped (its log printed if the test failed).

#![allow(dead_code)] // each test file uses what it needs

pub(crate) mod netns;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub(crate) struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    args: Vec<String>,
}

impl Server {
    pub(crate) fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts with extra `bulwark server` arguments.
    pub(crate) fn start_with(args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bulwark-kube-")
            .tempdir()
            .unwrap();
        let port = bulwark_testkit::free_loopback_port().unwrap();
        let mut server = Server {
            child: None,
            dir,
            port,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.spawn();
        server
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args([
                "server",
                "--disable-agent",
                "--port",
                &self.port.to_string(),
                "--data-dir",
            ])
            .arg(self.data())
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("BULWARK_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL, as a crash.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) async fn client(&self) -> kube::Client {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(config) =
                kube::config::Kubeconfig::read_from(self.data().join("admin.kubeconfig"))
            {
                let options = kube::config::KubeConfigOptions::default();
                if let Ok(config) = kube::Config::from_custom_kubeconfig(config, &options).await {
                    let client = kube::Client::try_from(config).unwrap();
                    if client.apiserver_version().await.is_ok() {
                        return client;
                    }
                }
            }
            assert!(Instant::now() < deadline, "the server never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            eprintln!("--- server log ---\n{log}");
        }
        self.kill();
    }
}

/// Lazily unmounts every mount under `root`, deepest first: what a stopped
/// agent could not tear down (its pods' pinned namespaces and volumes), so
/// the test's temporary directory can go.
pub(crate) fn unmount_under(root: &std::path::Path) {
    let root = root.to_string_lossy().into_owned();
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

/// Imports the test busybox image (`bulwark_testkit::busybox_rootfs_tar`)
/// as `name` into a node's image store under `data`.
pub(crate) fn import_image(scratch: &std::path::Path, data: &std::path::Path, name: &str) {
    let tarball = bulwark_testkit::busybox_rootfs_tar(scratch).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["image", "--data-dir"])
        .arg(data)
        .args(["import", "--rootfs", "--name", name])
        .arg(&tarball)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "importing {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
