//! What the runtime reads from cgroups, behind a narrow trait.
//!
//! Limits are written by the executor from the spec's `linux.resources`
//! (libcontainer's libcgroups, v1 or v2); the runtime itself only needs to
//! learn whether the kernel OOM-killed something in a container's cgroup,
//! read usage, and remove what an executor left behind. The real
//! implementation detects the layout at run time: cgroup v2 (unified), v1,
//! or this machine's hybrid (v1 controllers plus an almost empty v2 mount).

use std::fs;
use std::io;
use std::path::PathBuf;

/// The layout of the cgroup filesystem on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CgroupVersion {
    /// Per-controller hierarchies under `/sys/fs/cgroup/<controller>` (also hybrid).
    V1,
    /// One unified hierarchy at `/sys/fs/cgroup`.
    V2,
}

/// Read access to one machine's cgroups. `path` is the spec's `cgroupsPath`
/// (e.g. `/bulwark/web-1`).
pub(crate) trait Cgroups {
    /// How many processes the OOM killer has killed in the cgroup.
    fn oom_kills(&self, path: &str) -> io::Result<u64>;
    /// Removes the cgroup in every hierarchy (it must hold no processes).
    fn remove(&self, path: &str) -> io::Result<()>;
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
}

impl Cgroups for SysfsCgroups {
    fn oom_kills(&self, path: &str) -> io::Result<u64> {
        let file = match self.version {
            CgroupVersion::V2 => self.dir("", path).join("memory.events"),
            CgroupVersion::V1 => self.dir("memory", path).join("memory.oom_control"),
        };
        let text = fs::read_to_string(file)?;
        Ok(parse_key(&text, "oom_kill").unwrap_or(0))
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

/// `key value` lines, as in memory.events and memory.oom_control.
fn parse_key(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Why a container's main process ended, in Kubernetes' words.
pub(crate) fn exit_reason(code: i32, path: &str, cgroups: &dyn Cgroups) -> &'static str {
    // An OOM kill anywhere in the container's cgroup marks the container, as
    // containerd's OOM event does, whatever the main process's status.
    if cgroups.oom_kills(path).unwrap_or(0) > 0 {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Records calls and answers from a table.
    #[derive(Default)]
    pub(crate) struct FakeCgroups {
        pub(crate) oom: HashMap<String, u64>,
        pub(crate) calls: Mutex<Vec<String>>,
    }

    impl Cgroups for FakeCgroups {
        fn oom_kills(&self, path: &str) -> io::Result<u64> {
            self.record(format!("oom_kills {path}"));
            Ok(self.oom.get(path).copied().unwrap_or(0))
        }
        fn remove(&self, path: &str) -> io::Result<()> {
            self.record(format!("remove {path}"));
            Ok(())
        }
    }

    impl FakeCgroups {
        fn record(&self, call: String) {
            self.calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(call);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeCgroups;
    use super::*;

    #[test]
    fn exit_reasons() {
        let mut cg = FakeCgroups::default();
        cg.oom.insert("/bulwark/hog".into(), 1);
        let cases = [
            (0, "/bulwark/ok", "Completed"),
            (1, "/bulwark/ok", "Error"),
            (137, "/bulwark/hog", "OOMKilled"),
            (0, "/bulwark/hog", "OOMKilled"),
        ];
        for (code, path, want) in cases {
            assert_eq!(exit_reason(code, path, &cg), want, "{code} {path}");
        }
        let calls = cg.calls.lock().expect("calls").clone();
        assert_eq!(calls.len(), 4);
        assert_eq!(calls[2], "oom_kills /bulwark/hog");
    }

    #[test]
    fn parses_v1_and_v2_oom_counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        let v2 = "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_key(v1, "oom_kill"), Some(3));
        assert_eq!(parse_key(v2, "oom_kill"), Some(2));
        assert_eq!(parse_key("", "oom_kill"), None);
    }
}
