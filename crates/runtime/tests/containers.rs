//! Real containers (root required): busybox in its own namespaces and cgroups.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bulwark_runtime::{ContainerConfig, ContainerStatus, ExitStatus, ImageStore, Runtime};

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
    // Each stream keeps its order; the two streams interleave as they are read.
    let mut got = lines(&log);
    got.sort();
    assert_eq!(got, ["stderr: oops", "stdout: hello"]);
    let first = log
        .lines()
        .find(|l| l.contains(" stdout "))
        .expect("a stdout line");
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

/// Runs `script` in a default (hardened) busybox container; returns its log lines.
fn run_script(script: &str) -> (ExitStatus, Vec<String>) {
    let f = Fixture::new();
    let (status, log) = f.run(f.config(script));
    (status, lines(&log))
}

#[test]
fn missing_command_fails_like_upstream() {
    let f = Fixture::new();
    let mut cfg = f.config("");
    cfg.command = Some(vec!["foo".into()]);
    let err = f.runtime.create(&cfg).expect_err("foo does not exist");
    assert_eq!(
        err.to_string(),
        r#"exec: "foo": executable file not found in $PATH"#
    );
    assert!(
        f.runtime.list().expect("list").is_empty(),
        "a failed create leaves nothing"
    );
}

#[test]
fn host_processes_are_invisible() {
    let host_pid = std::process::id();
    let (status, out) = run_script(&format!(
        "test -e /proc/{host_pid} && echo host-visible; echo procs=$(ls -d /proc/[0-9]* | wc -l); echo pid1=$(cat /proc/1/comm)"
    ));
    assert_eq!(status.code, 0, "{out:?}");
    assert!(!out.iter().any(|l| l.contains("host-visible")), "{out:?}");
    assert!(out.contains(&"stdout: pid1=sh".to_string()), "{out:?}");
    let procs: usize = out
        .iter()
        .find_map(|l| l.strip_prefix("stdout: procs="))
        .and_then(|n| n.trim().parse().ok())
        .expect("procs line");
    assert!(procs <= 4, "only the container's own processes: {out:?}");
}

#[test]
fn mounting_is_refused() {
    let (_, out) =
        run_script("mount -t tmpfs none /tmp; echo rc=$?; mount --bind / /tmp; echo rc=$?");
    assert_eq!(
        out.iter().filter(|l| *l == "stdout: rc=1").count(),
        2,
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.contains("permission denied")),
        "{out:?}"
    );
}

#[test]
fn proc_sys_is_read_only_and_sensitive_proc_files_are_masked() {
    let (_, out) = run_script(
        "echo 3 > /proc/sys/vm/drop_caches; echo rc=$?; \
         echo keys=$(cat /proc/keys | wc -c) timers=$(cat /proc/timer_list | wc -c); \
         echo firmware=$(ls /sys/firmware | wc -l)",
    );
    assert!(out.contains(&"stdout: rc=1".to_string()), "{out:?}");
    assert!(
        out.iter().any(|l| l.contains("Read-only file system")),
        "{out:?}"
    );
    assert!(
        out.contains(&"stdout: keys=0 timers=0".to_string()),
        "{out:?}"
    );
    assert!(out.contains(&"stdout: firmware=0".to_string()), "{out:?}");
}

#[test]
fn user_namespaces_are_blocked_by_seccomp() {
    let (_, out) = run_script("unshare -U true; echo rc=$?; unshare -U -r id; echo rc=$?");
    assert_eq!(
        out.iter().filter(|l| *l == "stdout: rc=1").count(),
        2,
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.contains("Operation not permitted")),
        "{out:?}"
    );
}

#[test]
fn kernel_modules_cannot_be_loaded() {
    let (_, out) = run_script("echo junk > /tmp/x.ko; insmod /tmp/x.ko; echo rc=$?");
    assert!(out.contains(&"stdout: rc=1".to_string()), "{out:?}");
}

#[test]
fn host_files_are_unreachable_through_proc_and_no_fd_leaks() {
    let host = tempfile::tempdir().expect("tempdir");
    let marker = host.path().join("secret");
    std::fs::write(&marker, "host-secret").expect("marker");
    let (_, out) = run_script(&format!(
        "cat /proc/1/root{m} 2>&1; cat /proc/self/root{m} 2>&1; \
         for fd in /proc/self/fd/*; do echo fd=$fd:$(readlink $fd); done",
        m = marker.display()
    ));
    assert!(!out.iter().any(|l| l.contains("host-secret")), "{out:?}");
    let fds: Vec<&String> = out
        .iter()
        .filter(|l| l.starts_with("stdout: fd="))
        .collect();
    // 0 stdin, 1 stdout, 2 stderr and the directory the glob read (3) at most.
    for fd in &fds {
        let n: u32 = fd["stdout: fd=/proc/self/fd/".len()..]
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("fd number");
        assert!(n <= 3, "leaked fd {fd}: {out:?}");
    }
    assert!(fds.len() >= 3, "{out:?}");
}

#[test]
fn default_capabilities_no_new_privs_and_seccomp_are_in_force() {
    let (_, out) = run_script("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status");
    assert_eq!(
        out,
        [
            "stdout: CapEff:\t00000000a80425fb",
            "stdout: CapBnd:\t00000000a80425fb",
            "stdout: NoNewPrivs:\t1",
            "stdout: Seccomp:\t2",
        ]
    );
}

#[test]
fn privilege_escalation_allowed_still_gets_seccomp_and_default_caps() {
    let f = Fixture::new();
    let mut cfg = f.config("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; unshare -U true; echo rc=$?");
    cfg.security.allow_privilege_escalation = true;
    let (_, log) = f.run(cfg);
    let out = lines(&log);
    let stdout: Vec<&String> = out.iter().filter(|l| l.starts_with("stdout:")).collect();
    assert_eq!(
        stdout[..4],
        [
            "stdout: CapEff:\t00000000a80425fb",
            "stdout: CapBnd:\t00000000a80425fb",
            // seccompiler sets no_new_privs with the filter (see README).
            "stdout: NoNewPrivs:\t1",
            "stdout: Seccomp:\t2",
        ]
    );
    assert!(out.contains(&"stdout: rc=1".to_string()), "{out:?}");
}

#[test]
fn read_only_root_and_run_as_user() {
    let f = Fixture::new();
    let mut cfg = f.config("id; touch /newfile; echo rc=$?");
    cfg.security.read_only_root_filesystem = true;
    cfg.security.run_as_user = Some(1000);
    cfg.security.run_as_group = Some(1000);
    let (_, log) = f.run(cfg);
    let out = lines(&log);
    assert!(
        out.contains(&"stdout: uid=1000 gid=1000".to_string()),
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.contains("Read-only file system")),
        "{out:?}"
    );
    assert!(out.contains(&"stdout: rc=1".to_string()), "{out:?}");
}

/// Polls `cond` every few milliseconds until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
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
fn cgroup_file(parent: &str, id: &str, v1_controller: &str, file: &str) -> std::path::PathBuf {
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let base = if unified {
        std::path::PathBuf::from("/sys/fs/cgroup")
    } else {
        std::path::Path::new("/sys/fs/cgroup").join(v1_controller)
    };
    base.join(parent).join(id).join(file)
}

#[test]
fn exceeding_the_memory_limit_is_reported_as_oom_killed() {
    let f = Fixture::new();
    // The main process itself allocates 64 MiB under a 32 MiB limit.
    let mut cfg = f.config("echo start; exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    cfg.resources.memory_limit_bytes = Some(32 << 20);
    let (status, log) = f.run(cfg);
    assert_eq!(status.reason, "OOMKilled", "{status:?} {log}");
    assert_eq!((status.code, status.signal), (137, Some(9)));
}

#[test]
fn a_fork_bomb_stays_inside_the_pids_limit() {
    let f = Fixture::new();
    let mut cfg = f.config("bomb() { bomb | bomb & }; bomb; sleep 60");
    cfg.resources.pids_limit = Some(16);
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    let current = cgroup_file(&f.cgroup_parent, &cfg.id, "pids", "pids.current");
    let events = cgroup_file(&f.cgroup_parent, &cfg.id, "pids", "pids.events");
    let read = |path: &std::path::Path, key: &str| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ').unwrap_or(("", l));
                (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
            })
            .unwrap_or(0)
    };
    let mut peak = 0;
    // The kernel counts every fork it refused at the limit in pids.events.
    let refused = eventually(Duration::from_secs(20), || {
        peak = peak.max(read(&current, ""));
        read(&events, "max") > 0
    });
    assert!(
        refused,
        "no fork was refused; pids.current peaked at {peak}"
    );
    assert!(peak <= 16, "pids.current exceeded the limit: {peak}");
    let limit = std::fs::read_to_string(cgroup_file(&f.cgroup_parent, &cfg.id, "pids", "pids.max"))
        .expect("pids.max");
    assert_eq!(limit.trim(), "16");
    f.runtime.remove(&cfg.id).expect("remove stops the bomb");
    assert!(!current.exists(), "the container's cgroup is removed");
}

#[test]
fn cpu_and_memory_limits_are_written_to_the_cgroup() {
    let f = Fixture::new();
    let mut cfg = f.config("sleep 60");
    cfg.resources.memory_limit_bytes = Some(64 << 20);
    cfg.resources.cpu_shares = Some(512);
    cfg.resources.cpu_quota_us = Some(50_000);
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    let read = |controller: &str, file: &str| {
        std::fs::read_to_string(cgroup_file(&f.cgroup_parent, &cfg.id, controller, file))
            .unwrap_or_else(|e| format!("{file}: {e}"))
            .trim()
            .to_string()
    };
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(read("", "memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(
            read("memory", "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    }
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn a_new_runtime_readopts_a_running_container() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = Arc::new(ImageStore::open(dir.path().join("images")).expect("store"));
    images
        .import_rootfs(&common::busybox_rootfs_tar(dir.path()), "busybox")
        .expect("import");
    let shim = env!("CARGO_BIN_EXE_bulwark-runtime-shim");
    let state = dir.path().join("state");
    let parent = common::unique("bulwark-test");
    let cfg = ContainerConfig {
        id: common::unique("readopt"),
        image: "busybox".into(),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo before; trap 'echo got-term; exit 7' TERM; while true; do sleep 0.05; done"
                .into(),
        ]),
        cgroup_parent: Some(parent.clone()),
        ..ContainerConfig::default()
    };
    let pid = {
        let first = Runtime::new(&state, Arc::clone(&images), shim).expect("runtime");
        first.create(&cfg).expect("create");
        first.start(&cfg.id).expect("start")
        // The first runtime (the "agent") goes away here.
    };
    let second = Runtime::new(&state, images, shim).expect("runtime");
    assert_eq!(
        second.status(&cfg.id).expect("status"),
        ContainerStatus::Running { pid }
    );
    let log = second.log_path(&cfg.id);
    assert!(eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("stdout F before"))
    }));
    second
        .kill(&cfg.id, nix::sys::signal::Signal::SIGTERM)
        .expect("kill");
    let status = second.wait(&cfg.id, Duration::from_secs(10)).expect("wait");
    assert_eq!(status.code, 7);
    assert!(
        std::fs::read_to_string(&log)
            .expect("log")
            .contains("stdout F got-term")
    );
    second.remove(&cfg.id).expect("remove");
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(hierarchy.path().join(&parent));
    }
}

/// Env var that turns this test binary into a throwaway "agent" process.
const AGENT_ROLE: &str = "BULWARK_TEST_AGENT_STATE";

#[test]
fn containers_outlive_a_killed_agent_and_are_readopted() {
    use std::io::BufRead;
    if let Ok(dir) = std::env::var(AGENT_ROLE) {
        // Child role: start a container, report, then wait to be killed.
        let dir = std::path::PathBuf::from(dir);
        let images = Arc::new(ImageStore::open(dir.join("images")).expect("store"));
        images
            .import_rootfs(&common::busybox_rootfs_tar(&dir), "busybox")
            .expect("import");
        let runtime = Runtime::new(
            dir.join("state"),
            images,
            env!("CARGO_BIN_EXE_bulwark-runtime-shim"),
        )
        .expect("runtime");
        let cfg = ContainerConfig {
            id: common::unique("orphan"),
            image: "busybox".into(),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.02; done".into(),
            ]),
            cgroup_parent: Some(std::env::var("BULWARK_TEST_CGROUP").expect("cgroup parent")),
            ..ContainerConfig::default()
        };
        runtime.create(&cfg).expect("create");
        runtime.start(&cfg.id).expect("start");
        println!("started {}", cfg.id);
        loop {
            std::thread::park();
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let parent = common::unique("bulwark-test");
    let mut agent = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "containers_outlive_a_killed_agent_and_are_readopted",
            "--nocapture",
        ])
        .env(AGENT_ROLE, dir.path())
        .env("BULWARK_TEST_CGROUP", &parent)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let stdout = agent.stdout.take().expect("agent stdout");
    let id = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("started ").map(str::to_string))
        .expect("agent started a container");
    agent.kill().expect("kill agent");
    agent.wait().expect("reap agent");

    let images = Arc::new(ImageStore::open(dir.path().join("images")).expect("store"));
    let runtime = Runtime::new(
        dir.path().join("state"),
        images,
        env!("CARGO_BIN_EXE_bulwark-runtime-shim"),
    )
    .expect("runtime");
    assert!(matches!(
        runtime.status(&id).expect("status"),
        ContainerStatus::Running { .. }
    ));
    // Logs keep flowing with the agent gone.
    let ticks = || {
        std::fs::read_to_string(runtime.log_path(&id))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let after_kill = ticks();
    assert!(
        eventually(Duration::from_secs(10), || ticks() > after_kill + 5),
        "log stopped growing at {after_kill} lines"
    );
    runtime.remove(&id).expect("remove");
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(hierarchy.path().join(&parent));
    }
}

#[test]
fn exec_runs_inside_the_container_with_its_restrictions() {
    let f = Fixture::new();
    let mut cfg = f.config("echo $$ > /tmp/init-pid; sleep 60");
    cfg.security.run_as_user = Some(1000);
    cfg.security.run_as_group = Some(1000);
    cfg.env = vec![("GREETING".into(), "hi".into())];
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    let run = |script: &str| {
        let out = f
            .runtime
            .exec(&cfg.id, &["sh".into(), "-c".into(), script.into()])
            .expect("exec");
        (
            out.code,
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    assert!(eventually(Duration::from_secs(10), || run(
        "cat /tmp/init-pid"
    )
    .1 == "1"));
    let (code, out, _) =
        run("id; echo $GREETING; hostname; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "uid=1000 gid=1000\nhi\n{}\nNoNewPrivs:\t1\nSeccomp:\t2",
            cfg.id
        )
    );
    let (code, _, err) = run("unshare -U true");
    assert_eq!(code, 1, "{err}");
    assert_eq!(run("exit 42").0, 42, "exit codes propagate");
    let err = f
        .runtime
        .exec(&cfg.id, &["nonesuch".into()])
        .expect_err("missing command");
    assert_eq!(
        err.to_string(),
        r#"exec: "nonesuch": executable file not found in $PATH"#
    );
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn the_runtime_binary_is_a_sealed_copy_that_cannot_be_overwritten() {
    let f = Fixture::new();
    let cfg = f.config("sleep 60");
    f.runtime.create(&cfg).expect("create");
    let pid = f.runtime.start(&cfg.id).expect("start");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let shim = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .map(|p| p.trim().to_string())
        .expect("PPid");
    // What a container process reaching /proc/<shim>/exe (or its own before
    // exec) would get: an in-memory copy, sealed against writes.
    let exe = std::fs::read_link(format!("/proc/{shim}/exe")).expect("readlink");
    assert!(
        exe.to_string_lossy()
            .starts_with("/memfd:bulwark-runtime-shim"),
        "{exe:?}"
    );
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{shim}/exe"))
        .and_then(|mut file| std::io::Write::write_all(&mut file, b"pwned"));
    assert!(write.is_err(), "wrote to the shim's executable");
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn pod_limits_bind_every_container_of_the_pod_and_stats_are_read() {
    let f = Fixture::new();
    let pod = format!("{}/{}", f.cgroup_parent, common::unique("pod"));
    f.runtime
        .set_pod_limits(
            &pod,
            &bulwark_runtime::Resources {
                memory_limit_bytes: Some(32 << 20),
                ..Default::default()
            },
        )
        .expect("pod cgroup");
    // The container has no limit of its own; the pod's 32 MiB applies.
    let mut hog = f.config("exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    hog.cgroup_parent = Some(pod.clone());
    let (status, _) = f.run(hog);
    assert_eq!(status.reason, "OOMKilled", "{status:?}");

    let mut idle = f.config("sleep 60");
    idle.cgroup_parent = Some(pod.clone());
    f.runtime.create(&idle).expect("create");
    f.runtime.start(&idle.id).expect("start");
    let stats = f.runtime.stats(&idle.id).expect("stats");
    assert!(stats.memory_usage_bytes > 0, "{stats:?}");
    assert!(stats.memory_working_set_bytes <= stats.memory_usage_bytes);
    assert!(stats.cpu_usage_ns > 0, "{stats:?}");
    f.runtime.remove(&idle.id).expect("remove");
    f.runtime
        .remove_pod_cgroup(&pod)
        .expect("remove pod cgroup");
}

#[test]
fn containers_of_a_pod_share_the_sandbox_namespaces() {
    use bulwark_runtime::NamespaceKind;
    let f = Fixture::new();
    let mut sandbox = f.config("sleep 60");
    sandbox.hostname = Some("pod-a".into());
    f.runtime.create(&sandbox).expect("create sandbox");
    let pid = f.runtime.start(&sandbox.id).expect("start sandbox");
    let ns = |kind: &str| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).expect("ns link");

    let mut app = f.config("hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; readlink /proc/self/ns/mnt");
    app.join_namespaces = ["net", "ipc", "uts"]
        .iter()
        .zip([
            NamespaceKind::Network,
            NamespaceKind::Ipc,
            NamespaceKind::Uts,
        ])
        .map(|(name, kind)| {
            (
                kind,
                std::path::PathBuf::from(format!("/proc/{pid}/ns/{name}")),
            )
        })
        .collect();
    let (status, log) = f.run(app);
    assert_eq!(status.code, 0, "{log}");
    let out = lines(&log);
    assert_eq!(out[0], "stdout: pod-a");
    assert_eq!(out[1], format!("stdout: {}", ns("net").display()));
    assert_eq!(out[2], format!("stdout: {}", ns("ipc").display()));
    assert_ne!(
        out[3],
        format!("stdout: {}", ns("mnt").display()),
        "own mount namespace"
    );
    f.runtime.remove(&sandbox.id).expect("remove sandbox");
}

#[test]
fn seccomp_unconfined_and_localhost_profiles() {
    let f = Fixture::new();
    let mut unconfined = f.config("grep '^Seccomp:' /proc/self/status");
    unconfined.security.seccomp = bulwark_runtime::SeccompProfile::Unconfined;
    let (_, log) = f.run(unconfined);
    assert_eq!(lines(&log), ["stdout: Seccomp:\t0"]);

    let profile = f._dir.path().join("deny-chroot.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .expect("profile");
    let mut localhost = f.config("chroot / true; echo rc=$?; grep '^Seccomp:' /proc/self/status");
    localhost.security.seccomp = bulwark_runtime::SeccompProfile::Localhost(profile);
    let (_, log) = f.run(localhost);
    let out = lines(&log);
    assert!(out.contains(&"stdout: rc=1".to_string()), "{out:?}");
    assert!(out.contains(&"stdout: Seccomp:\t2".to_string()), "{out:?}");
    assert!(
        out.iter().any(|l| l.contains("Operation not permitted")),
        "{out:?}"
    );
}

#[test]
fn privileged_only_when_asked() {
    let f = Fixture::new();
    let mut cfg = f.config(
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; mount -t tmpfs none /tmp && echo mounted",
    );
    cfg.security.privileged = true;
    let (_, log) = f.run(cfg);
    let out = lines(&log);
    // Everything the runtime itself holds.
    let host = std::fs::read_to_string("/proc/self/status").expect("status");
    let bounding = host
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .expect("CapBnd")
        .trim();
    assert!(
        out.contains(&format!("stdout: CapEff:\t{bounding}")),
        "{out:?}"
    );
    assert!(out.contains(&"stdout: Seccomp:\t0".to_string()), "{out:?}");
    assert!(out.contains(&"stdout: mounted".to_string()), "{out:?}");
}

#[test]
fn logs_rotate_by_size() {
    let f = Fixture::new();
    let mut cfg = f.config("i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done");
    cfg.log = bulwark_runtime::LogConfig {
        max_bytes: 2000,
        max_files: 3,
    };
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    f.runtime
        .wait(&cfg.id, Duration::from_secs(30))
        .expect("wait");
    let log = f.runtime.log_path(&cfg.id);
    let read = |suffix: &str| {
        std::fs::read_to_string(format!("{}{suffix}", log.display())).unwrap_or_default()
    };
    let (current, older, oldest) = (read(""), read(".1"), read(".2"));
    assert!(read(".3").is_empty(), "at most 3 files");
    for file in [&current, &older, &oldest] {
        assert!(
            !file.is_empty() && file.len() <= 2000,
            "{} bytes",
            file.len()
        );
    }
    assert!(current.ends_with("stdout F line-199\n"), "{current}");
    f.runtime.remove(&cfg.id).expect("remove");
}
