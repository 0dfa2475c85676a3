//! cgroups, behind a narrow trait: read and write one file of one
//! controller of one cgroup, and remove a cgroup.
//!
//! A container's own limits are written by the executor from the spec's
//! `linux.resources` (libcontainer's libcgroups, v1 or v2). The runtime uses
//! this module for what surrounds containers: pod-level parent cgroups and
//! their limits, OOM detection, usage statistics, and cleanup. What to write
//! is decided by pure functions ([`limit_writes`], [`exit_reason`],
//! [`stats`]) tested against a recording fake; [`SysfsCgroups`] is the thin
//! real layer. The layout is detected at run time: cgroup v2 (unified), v1,
//! or this machine's hybrid (v1 controllers plus an almost empty v2 mount),
//! which is driven as v1.

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::config::Resources;

/// The layout of the cgroup filesystem on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CgroupVersion {
    /// Per-controller hierarchies under `/sys/fs/cgroup/<controller>` (also hybrid).
    V1,
    /// One unified hierarchy at `/sys/fs/cgroup`.
    V2,
}

/// One machine's cgroups. `path` is relative to the hierarchy root, like the
/// spec's `cgroupsPath` (`/bulwark/web-1`); `controller` names the v1
/// hierarchy and is ignored on v2.
pub(crate) trait Cgroups {
    /// Which layout is in use.
    fn version(&self) -> CgroupVersion;
    /// Reads a cgroup file.
    fn read(&self, controller: &str, path: &str, file: &str) -> io::Result<String>;
    /// Writes a cgroup file, creating the cgroup (and on v2 enabling the
    /// controller in its ancestors) if needed.
    fn write(&self, controller: &str, path: &str, file: &str, value: &str) -> io::Result<()>;
    /// Removes the cgroup in every hierarchy (it must hold no processes).
    fn remove(&self, path: &str) -> io::Result<()>;
}

/// Resource usage of a container, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerStats {
    /// CPU time used, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory charged to the container, in bytes.
    pub memory_usage_bytes: u64,
    /// Memory usage less inactive file cache — what the kubelet reports and
    /// evicts on.
    pub memory_working_set_bytes: u64,
}

/// The files to write for `resources`: `(controller, file, value)`.
pub(crate) fn limit_writes(
    version: CgroupVersion,
    resources: &Resources,
) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    let period = resources.cpu_period_us.unwrap_or(100_000);
    match version {
        CgroupVersion::V1 => {
            if let Some(shares) = resources.cpu_shares {
                out.push(("cpu", "cpu.shares", shares.to_string()));
            }
            if let Some(quota) = resources.cpu_quota_us {
                out.push(("cpu", "cpu.cfs_period_us", period.to_string()));
                out.push(("cpu", "cpu.cfs_quota_us", quota.to_string()));
            }
            if let Some(limit) = resources.memory_limit_bytes {
                out.push(("memory", "memory.limit_in_bytes", limit.to_string()));
            }
            if let Some(pids) = resources.pids_limit {
                out.push(("pids", "pids.max", pids.to_string()));
            }
        }
        CgroupVersion::V2 => {
            if let Some(shares) = resources.cpu_shares {
                // The conversion runc and the kubelet use: [2, 262144] → [1, 10000].
                let shares = shares.clamp(2, 262_144);
                let weight = 1 + ((shares - 2) * 9999) / 262_142;
                out.push(("cpu", "cpu.weight", weight.to_string()));
            }
            if let Some(quota) = resources.cpu_quota_us {
                out.push(("cpu", "cpu.max", format!("{quota} {period}")));
            }
            if let Some(limit) = resources.memory_limit_bytes {
                out.push(("memory", "memory.max", limit.to_string()));
                out.push(("memory", "memory.swap.max", "0".into()));
            }
            if let Some(pids) = resources.pids_limit {
                out.push(("pids", "pids.max", pids.to_string()));
            }
        }
    }
    out
}

/// Creates `path` (a pod-level parent) and applies `resources` to it.
pub(crate) fn apply_limits(
    cgroups: &dyn Cgroups,
    path: &str,
    resources: &Resources,
) -> io::Result<()> {
    for (controller, file, value) in limit_writes(cgroups.version(), resources) {
        cgroups.write(controller, path, file, &value)?;
    }
    Ok(())
}

/// How many processes the OOM killer has killed in the cgroup.
pub(crate) fn oom_kills(cgroups: &dyn Cgroups, path: &str) -> io::Result<u64> {
    let text = match cgroups.version() {
        CgroupVersion::V2 => cgroups.read("memory", path, "memory.events")?,
        CgroupVersion::V1 => cgroups.read("memory", path, "memory.oom_control")?,
    };
    Ok(parse_key(&text, "oom_kill").unwrap_or(0))
}

/// Whether the cgroup ever reached its memory limit (the precondition of an
/// OOM kill): v1 `memory.failcnt`, v2 `memory.events` `max`/`oom`.
pub(crate) fn hit_memory_limit(cgroups: &dyn Cgroups, path: &str) -> bool {
    match cgroups.version() {
        CgroupVersion::V1 => cgroups
            .read("memory", path, "memory.failcnt")
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0),
        CgroupVersion::V2 => cgroups
            .read("memory", path, "memory.events")
            .ok()
            .is_some_and(|t| {
                parse_key(&t, "max").unwrap_or(0) > 0 || parse_key(&t, "oom").unwrap_or(0) > 0
            }),
    }
}

/// Why a container's main process ended, in Kubernetes' words.
pub(crate) fn exit_reason(code: i32, path: &str, cgroups: &dyn Cgroups) -> &'static str {
    // An OOM kill anywhere in the container's cgroup marks the container, as
    // containerd's OOM event does, whatever the main process's status.
    if oom_kills(cgroups, path).unwrap_or(0) > 0 {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// CPU and memory usage of the cgroup.
pub(crate) fn stats(cgroups: &dyn Cgroups, path: &str) -> io::Result<ContainerStats> {
    let number = |s: String| {
        s.trim()
            .parse::<u64>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    };
    let (cpu, usage, inactive) = match cgroups.version() {
        CgroupVersion::V1 => {
            let stat = cgroups.read("memory", path, "memory.stat")?;
            (
                number(cgroups.read("cpuacct", path, "cpuacct.usage")?)?,
                number(cgroups.read("memory", path, "memory.usage_in_bytes")?)?,
                parse_key(&stat, "total_inactive_file").unwrap_or(0),
            )
        }
        CgroupVersion::V2 => {
            let cpu_stat = cgroups.read("cpu", path, "cpu.stat")?;
            let stat = cgroups.read("memory", path, "memory.stat")?;
            (
                parse_key(&cpu_stat, "usage_usec").unwrap_or(0) * 1000,
                number(cgroups.read("memory", path, "memory.current")?)?,
                parse_key(&stat, "inactive_file").unwrap_or(0),
            )
        }
    };
    Ok(ContainerStats {
        cpu_usage_ns: cpu,
        memory_usage_bytes: usage,
        memory_working_set_bytes: usage.saturating_sub(inactive),
    })
}

/// `key value` lines, as in memory.events, memory.stat and memory.oom_control.
fn parse_key(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The kernel's cgroup filesystem.
#[derive(Debug)]
pub(crate) struct SysfsCgroups {
    root: PathBuf,
    version: CgroupVersion,
}

impl SysfsCgroups {
    /// Detects the layout under `/sys/fs/cgroup`.
    pub(crate) fn detect() -> Self {
        let root = PathBuf::from("/sys/fs/cgroup");
        // Unified iff the root itself is cgroup2 (it then has cgroup.controllers).
        let version = if root.join("cgroup.controllers").exists() {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        };
        SysfsCgroups { root, version }
    }

    fn dir(&self, controller: &str, path: &str) -> PathBuf {
        let rel = path.trim_start_matches('/');
        match self.version {
            CgroupVersion::V2 => self.root.join(rel),
            CgroupVersion::V1 => self.root.join(controller).join(rel),
        }
    }

    /// On v2 a controller's files exist only where the parent enabled it.
    fn enable_v2_controller(&self, controller: &str, path: &str) -> io::Result<()> {
        let mut dir = self.root.clone();
        for component in path
            .trim_start_matches('/')
            .split('/')
            .filter(|c| !c.is_empty())
        {
            let control = dir.join("cgroup.subtree_control");
            let enabled = fs::read_to_string(&control).unwrap_or_default();
            if !enabled.split_whitespace().any(|c| c == controller) {
                fs::write(&control, format!("+{controller}"))?;
            }
            dir.push(component);
            fs::create_dir_all(&dir)?;
        }
        Ok(())
    }
}

impl Cgroups for SysfsCgroups {
    fn version(&self) -> CgroupVersion {
        self.version
    }

    fn read(&self, controller: &str, path: &str, file: &str) -> io::Result<String> {
        fs::read_to_string(self.dir(controller, path).join(file))
    }

    fn write(&self, controller: &str, path: &str, file: &str, value: &str) -> io::Result<()> {
        let dir = self.dir(controller, path);
        match self.version {
            CgroupVersion::V2 => self.enable_v2_controller(controller, path)?,
            CgroupVersion::V1 => fs::create_dir_all(&dir)?,
        }
        fs::write(dir.join(file), value)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        let dirs: Vec<PathBuf> = match self.version {
            CgroupVersion::V2 => vec![self.dir("", path)],
            CgroupVersion::V1 => fs::read_dir(&self.root)?
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path().join(path.trim_start_matches('/')))
                .collect(),
        };
        for dir in dirs {
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Answers reads from a table and records every call.
    pub(crate) struct FakeCgroups {
        pub(crate) version: CgroupVersion,
        /// `"controller path file"` → content.
        pub(crate) files: HashMap<String, String>,
        pub(crate) calls: Mutex<Vec<String>>,
    }

    impl FakeCgroups {
        pub(crate) fn new(version: CgroupVersion) -> Self {
            FakeCgroups {
                version,
                files: HashMap::new(),
                calls: Mutex::new(Vec::new()),
            }
        }

        pub(crate) fn with(mut self, controller: &str, path: &str, file: &str, text: &str) -> Self {
            self.files
                .insert(format!("{controller} {path} {file}"), text.into());
            self
        }

        pub(crate) fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }

        fn record(&self, call: String) {
            self.calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(call);
        }
    }

    impl Cgroups for FakeCgroups {
        fn version(&self) -> CgroupVersion {
            self.version
        }
        fn read(&self, controller: &str, path: &str, file: &str) -> io::Result<String> {
            let key = format!("{controller} {path} {file}");
            self.record(format!("read {key}"));
            self.files
                .get(&key)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, key))
        }
        fn write(&self, controller: &str, path: &str, file: &str, value: &str) -> io::Result<()> {
            self.record(format!("write {controller} {path} {file} = {value}"));
            Ok(())
        }
        fn remove(&self, path: &str) -> io::Result<()> {
            self.record(format!("remove {path}"));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeCgroups;
    use super::*;
    use expect_test::expect;

    #[test]
    fn exit_reasons() {
        let v1 = FakeCgroups::new(CgroupVersion::V1)
            .with(
                "memory",
                "/p/hog",
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
            )
            .with(
                "memory",
                "/p/ok",
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            );
        let v2 = FakeCgroups::new(CgroupVersion::V2).with(
            "memory",
            "/p/hog",
            "memory.events",
            "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n",
        );
        let cases: [(&dyn Cgroups, i32, &str, &str); 6] = [
            (&v1, 0, "/p/ok", "Completed"),
            (&v1, 1, "/p/ok", "Error"),
            (&v1, 137, "/p/hog", "OOMKilled"),
            (&v1, 0, "/p/hog", "OOMKilled"),
            (&v2, 137, "/p/hog", "OOMKilled"),
            (&v2, 137, "/p/gone", "Error"),
        ];
        for (cg, code, path, want) in cases {
            assert_eq!(exit_reason(code, path, cg), want, "{code} {path}");
        }
        assert_eq!(
            v2.calls(),
            [
                "read memory /p/hog memory.events",
                "read memory /p/gone memory.events"
            ]
        );
    }

    #[test]
    fn memory_limit_hits() {
        let v1 = FakeCgroups::new(CgroupVersion::V1)
            .with("memory", "/hit", "memory.failcnt", "12\n")
            .with("memory", "/calm", "memory.failcnt", "0\n");
        let v2 = FakeCgroups::new(CgroupVersion::V2)
            .with(
                "memory",
                "/hit",
                "memory.events",
                "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n",
            )
            .with(
                "memory",
                "/calm",
                "memory.events",
                "low 0\nhigh 0\nmax 0\noom 0\n",
            );
        for cg in [&v1 as &dyn Cgroups, &v2] {
            assert!(hit_memory_limit(cg, "/hit"));
            assert!(!hit_memory_limit(cg, "/calm"));
            assert!(!hit_memory_limit(cg, "/gone"));
        }
    }

    #[test]
    fn pod_limits_per_cgroup_version() {
        let resources = Resources {
            memory_limit_bytes: Some(256 << 20),
            pids_limit: Some(1024),
            cpu_shares: Some(1024),
            cpu_quota_us: Some(150_000),
            cpu_period_us: None,
        };
        for (version, want) in [
            (
                CgroupVersion::V1,
                expect![[r#"
                    write cpu /kubepods/pod-1 cpu.shares = 1024
                    write cpu /kubepods/pod-1 cpu.cfs_period_us = 100000
                    write cpu /kubepods/pod-1 cpu.cfs_quota_us = 150000
                    write memory /kubepods/pod-1 memory.limit_in_bytes = 268435456
                    write pids /kubepods/pod-1 pids.max = 1024"#]],
            ),
            (
                CgroupVersion::V2,
                expect![[r#"
                    write cpu /kubepods/pod-1 cpu.weight = 39
                    write cpu /kubepods/pod-1 cpu.max = 150000 100000
                    write memory /kubepods/pod-1 memory.max = 268435456
                    write memory /kubepods/pod-1 memory.swap.max = 0
                    write pids /kubepods/pod-1 pids.max = 1024"#]],
            ),
        ] {
            let cg = FakeCgroups::new(version);
            apply_limits(&cg, "/kubepods/pod-1", &resources).expect("apply");
            want.assert_eq(&cg.calls().join("\n"));
        }
        let cg = FakeCgroups::new(CgroupVersion::V2);
        apply_limits(&cg, "/p", &Resources::default()).expect("apply");
        assert!(cg.calls().is_empty(), "no limits, no writes");
    }

    #[test]
    fn stats_subtract_inactive_file_cache() {
        let v1 = FakeCgroups::new(CgroupVersion::V1)
            .with("cpuacct", "/c", "cpuacct.usage", "5000\n")
            .with("memory", "/c", "memory.usage_in_bytes", "1000\n")
            .with(
                "memory",
                "/c",
                "memory.stat",
                "cache 10\ntotal_inactive_file 300\n",
            );
        let v2 = FakeCgroups::new(CgroupVersion::V2)
            .with("cpu", "/c", "cpu.stat", "usage_usec 7\nuser_usec 5\n")
            .with("memory", "/c", "memory.current", "2000\n")
            .with("memory", "/c", "memory.stat", "anon 1\ninactive_file 500\n");
        assert_eq!(
            stats(&v1, "/c").expect("v1"),
            ContainerStats {
                cpu_usage_ns: 5000,
                memory_usage_bytes: 1000,
                memory_working_set_bytes: 700
            }
        );
        assert_eq!(
            stats(&v2, "/c").expect("v2"),
            ContainerStats {
                cpu_usage_ns: 7000,
                memory_usage_bytes: 2000,
                memory_working_set_bytes: 1500
            }
        );
    }
}
