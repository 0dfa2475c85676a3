//! cgroup limits (root required): memory (OOMKilled), pids, CPU, pod-level parents.

mod common;

use std::time::Duration;

use common::fixture::{Fixture, cgroup_file, eventually};

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
