//! Real containers (root required): busybox in its own namespaces and cgroups.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bulwark_runtime::{ContainerConfig, ExitStatus, ImageStore, Runtime};

/// A runtime on temp dirs with a busybox image; removes its containers on drop.
struct Fixture {
    runtime: Runtime,
    /// This fixture's parent cgroup, removed on drop.
    cgroup_parent: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let images = ImageStore::open(dir.path().join("images")).expect("store");
        let tarball = common::busybox_rootfs_tar(dir.path());
        images
            .import_rootfs(&tarball, "busybox")
            .expect("import busybox");
        let runtime = Runtime::new(
            dir.path().join("state"),
            Arc::new(images),
            env!("CARGO_BIN_EXE_bulwark-runtime-shim"),
        )
        .expect("runtime");
        Fixture {
            runtime,
            cgroup_parent: common::unique("bulwark-test"),
            _dir: dir,
        }
    }

    fn config(&self, script: &str) -> ContainerConfig {
        ContainerConfig {
            id: common::unique("c"),
            image: "busybox".into(),
            command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
            cgroup_parent: Some(self.cgroup_parent.clone()),
            ..ContainerConfig::default()
        }
    }

    /// Runs to completion; returns (exit status, the container's log text).
    fn run(&self, cfg: ContainerConfig) -> (ExitStatus, String) {
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
fn lines(log: &str) -> Vec<String> {
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

#[test]
fn runs_a_command_and_records_output_and_exit_code() {
    let f = Fixture::new();
    let (status, log) = f.run(f.config("echo hello; echo oops >&2; exit 3"));
    assert_eq!(status.code, 3);
    assert_eq!(status.reason, "Error");
    assert_eq!(lines(&log), ["stdout: hello", "stderr: oops"]);
    let first = log.lines().next().expect("a line");
    assert!(first.ends_with(" stdout F hello"), "{first}");
    assert!(
        first.as_bytes()[..30]
            .iter()
            .filter(|&&b| b == b'-')
            .count()
            == 2,
        "{first}"
    );
}
