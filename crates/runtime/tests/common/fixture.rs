//! A runtime on temp dirs with a busybox image, and helpers for container tests.

use std::sync::Arc;
use std::time::Duration;

use bulwark_runtime::{ContainerConfig, ExitStatus, ImageStore, Runtime};

/// A runtime on temp dirs with a busybox image; removes its containers on drop.
pub struct Fixture {
    pub runtime: Runtime,
    /// This fixture's parent cgroup, removed on drop.
    pub cgroup_parent: String,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with(|runtime| runtime)
    }

    /// A fixture whose runtime is adjusted by `adjust` (e.g. another executor).
    pub fn with(adjust: impl FnOnce(Runtime) -> Runtime) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let images = ImageStore::open(dir.path().join("images")).expect("store");
        let tarball = super::busybox_rootfs_tar(dir.path());
        images
            .import_rootfs(&tarball, "busybox")
            .expect("import busybox");
        let runtime = Runtime::new(
            dir.path().join("state"),
            Arc::new(images),
            env!("CARGO_BIN_EXE_bulwark-runtime-shim"),
        )
        .expect("runtime");
        let runtime = adjust(runtime);
        Fixture {
            runtime,
            cgroup_parent: super::unique("bulwark-test"),
            dir,
        }
    }

    pub fn config(&self, script: &str) -> ContainerConfig {
        ContainerConfig {
            id: super::unique("c"),
            image: "busybox".into(),
            command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
            cgroup_parent: Some(self.cgroup_parent.clone()),
            ..ContainerConfig::default()
        }
    }

    /// Runs to completion; returns (exit status, the container's log text).
    pub fn run(&self, cfg: ContainerConfig) -> (ExitStatus, String) {
        self.runtime.create(&cfg).expect("create");
        self.runtime.start(&cfg.id).expect("start");
        let status = self
            .runtime
            .wait(&cfg.id, Duration::from_secs(60))
            .expect("wait");
        let log = std::fs::read_to_string(self.runtime.log_path(&cfg.id)).unwrap_or_default();
        self.runtime.remove(&cfg.id).expect("remove");
        (status, log)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for id in self.runtime.list().unwrap_or_default() {
            let _ = self.runtime.remove(&id);
        }
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(hierarchy.path().join(&self.cgroup_parent));
        }
    }
}

/// The text of each log line (the CRI prefix stripped), `stream: text`.
pub fn lines(log: &str) -> Vec<String> {
    log.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let _time = parts.next();
            let stream = parts.next().unwrap_or("");
            let _tag = parts.next();
            format!("{stream}: {}", parts.next().unwrap_or(""))
        })
        .collect()
}

/// Runs `script` in a default (hardened) busybox container; returns its log lines.
pub fn run_script(script: &str) -> (ExitStatus, Vec<String>) {
    let f = Fixture::new();
    let (status, log) = f.run(f.config(script));
    (status, lines(&log))
}

/// Polls `cond` every few milliseconds until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// A cgroup file of a container, for cgroup v1 (`controller/…`) or v2.
pub fn cgroup_file(parent: &str, id: &str, v1_controller: &str, file: &str) -> std::path::PathBuf {
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let base = if unified {
        std::path::PathBuf::from("/sys/fs/cgroup")
    } else {
        std::path::Path::new("/sys/fs/cgroup").join(v1_controller)
    };
    base.join(parent).join(id).join(file)
}
