//! From a [`ContainerConfig`] and its image to an OCI runtime spec.
//!
//! The spec is built as JSON and parsed into `oci_spec::runtime::Spec`, so the
//! rendered text (what the snapshot tests compare) is exactly what an
//! executor — the built-in one, runc or crun — reads as `config.json`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::config::{
    ContainerConfig, DEFAULT_CAPABILITIES, MASKED_PATHS, NamespaceKind, READONLY_PATHS,
    SeccompProfile,
};
use crate::images::RunConfig;
use crate::seccomp;

/// Spec annotations carrying log rotation settings to the shim.
pub(crate) const ANNOTATION_LOG_MAX_BYTES: &str = "io.bulwark.log.max-bytes";
pub(crate) const ANNOTATION_LOG_MAX_FILES: &str = "io.bulwark.log.max-files";
/// Spec annotation asking the shim to keep stdin open for attach clients.
pub(crate) const ANNOTATION_STDIN: &str = "io.bulwark.stdin";

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a container description cannot become a runtime spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Neither the description nor the image names a command.
    #[error("no command specified: image has no entrypoint or cmd and the container sets none")]
    NoCommand,
    /// The container id has characters outside `[A-Za-z0-9_.-]` (or is empty/too long).
    #[error(
        "invalid container id {0:?}: use 1-64 characters of [A-Za-z0-9_.-], starting alphanumeric"
    )]
    InvalidId(String),
    /// The image's user names an account missing from its /etc/passwd.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// A mount destination is not an absolute path, or leaves the root.
    #[error("invalid mount destination {0:?}: must be an absolute path without ..")]
    BadMountDestination(String),
    /// A capability name is not a Linux capability.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    /// The Localhost seccomp profile cannot be read or parsed.
    #[error("seccomp profile {path}: {reason}")]
    SeccompProfile {
        /// The profile's path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The description has invalid fields; every cause is listed.
    #[error("invalid container config: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    /// The rendered JSON is not a valid OCI spec (a bug in the renderer).
    #[error("rendered spec is invalid: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// The process to run, resolved from the description and the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProcessPlan {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) cwd: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) additional_gids: Vec<u32>,
}

/// Resolves argv (Kubernetes semantics for command/args over
/// entrypoint/cmd), environment, working directory and user.
pub(crate) fn plan_process(
    cfg: &ContainerConfig,
    image: &RunConfig,
    layers: &[PathBuf],
) -> Result<ProcessPlan, SpecError> {
    let entrypoint = image.entrypoint.clone().unwrap_or_default();
    let cmd = image.cmd.clone().unwrap_or_default();
    let args = match (&cfg.command, &cfg.args) {
        (Some(command), args) => {
            let mut v = command.clone();
            v.extend(args.clone().unwrap_or_default());
            v
        }
        (None, Some(args)) => entrypoint.into_iter().chain(args.clone()).collect(),
        (None, None) => entrypoint.into_iter().chain(cmd).collect(),
    };
    if args.is_empty() || args[0].is_empty() {
        return Err(SpecError::NoCommand);
    }

    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(key, _)| key == k) {
        Some(entry) => entry.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    set("PATH", DEFAULT_PATH);
    set("HOSTNAME", cfg.hostname.as_deref().unwrap_or(&cfg.id));
    for kv in image.env.iter().flatten() {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k, v);
    }
    for (k, v) in &cfg.env {
        set(k, v);
    }
    let env = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    let cwd = cfg
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());

    let (image_uid, image_gid) = resolve_image_user(image.user.as_deref().unwrap_or(""), layers)?;
    let uid = cfg.security.run_as_user.unwrap_or(image_uid);
    let gid = match (cfg.security.run_as_group, cfg.security.run_as_user) {
        (Some(g), _) => g,
        (None, Some(u)) if u != image_uid => primary_gid(u, layers).unwrap_or(0),
        _ => image_gid,
    };
    Ok(ProcessPlan {
        args,
        env,
        cwd,
        uid,
        gid,
        additional_gids: cfg.security.supplemental_groups.clone(),
    })
}

/// Renders the OCI runtime spec (`config.json`).
pub(crate) fn render(
    cfg: &ContainerConfig,
    plan: &ProcessPlan,
    rootfs: &Path,
) -> Result<Value, SpecError> {
    validate_id(&cfg.id)?;
    let sec = &cfg.security;
    let caps = capabilities(cfg)?;
    let mut mounts = default_mounts(sec.privileged);
    for m in &cfg.mounts {
        if !m.destination.starts_with('/') || m.destination.split('/').any(|c| c == "..") {
            return Err(SpecError::BadMountDestination(m.destination.clone()));
        }
        let mut options = vec!["rbind", "rprivate", "nosuid", "nodev"];
        if m.read_only {
            options.push("ro");
        }
        mounts.push(json!({
            "destination": m.destination, "type": "bind",
            "source": m.source, "options": options,
        }));
    }

    let mut namespaces = Vec::new();
    for (kind, name) in [
        (Some(NamespaceKind::Pid), "pid"),
        (Some(NamespaceKind::Ipc), "ipc"),
        (Some(NamespaceKind::Uts), "uts"),
        (None, "mount"),
        (Some(NamespaceKind::Network), "network"),
        (None, "cgroup"),
    ] {
        let joined = kind.and_then(|k| cfg.join_namespaces.iter().find(|(j, _)| *j == k));
        namespaces.push(match joined {
            Some((_, path)) => json!({"type": name, "path": path}),
            None => json!({"type": name}),
        });
    }

    if sec.user_namespace.is_some() {
        namespaces.push(json!({"type": "user"}));
    }

    let parent = cfg.cgroup_parent.as_deref().unwrap_or("bulwark");
    let mut linux = json!({
        "cgroupsPath": format!("/{}/{}", parent.trim_matches('/'), cfg.id),
        "namespaces": namespaces,
        "resources": resources(cfg),
    });
    if let Some(map) = sec.user_namespace {
        let mapping = json!([{"containerID": 0, "hostID": map.host_id, "size": map.size}]);
        linux["uidMappings"] = mapping.clone();
        linux["gidMappings"] = mapping;
    }
    if !sec.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        if let Some(profile) = seccomp_profile(&sec.seccomp)? {
            linux["seccomp"] = profile;
        }
    }

    let mut user = json!({"uid": plan.uid, "gid": plan.gid});
    if !plan.additional_gids.is_empty() {
        user["additionalGids"] = json!(plan.additional_gids);
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": cfg.tty,
            "user": user,
            "args": plan.args,
            "env": plan.env,
            "cwd": plan.cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "noNewPrivileges": !sec.allow_privilege_escalation && !sec.privileged,
        },
        "root": {"path": rootfs, "readonly": sec.read_only_root_filesystem},
        "mounts": mounts,
        "linux": linux,
        "annotations": {
            ANNOTATION_LOG_MAX_BYTES: cfg.log.max_bytes.to_string(),
            ANNOTATION_LOG_MAX_FILES: cfg.log.max_files.to_string(),
        },
    });
    if cfg.stdin {
        spec["annotations"][ANNOTATION_STDIN] = json!("true");
    }
    // A container joining a sandbox's UTS namespace keeps the sandbox's name.
    if !cfg
        .join_namespaces
        .iter()
        .any(|(k, _)| *k == NamespaceKind::Uts)
    {
        spec["hostname"] = json!(cfg.hostname.as_deref().unwrap_or(&cfg.id));
    }
    // Round-trip through oci-spec to be sure every field has the right shape.
    let typed: oci_spec::runtime::Spec = serde_json::from_value(spec.clone())?;
    drop(typed);
    Ok(spec)
}

pub(crate) fn validate_id(id: &str) -> Result<(), SpecError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(SpecError::InvalidId(id.to_string()))
    }
}

fn default_mounts(privileged: bool) -> Vec<Value> {
    let sys_opts: &[&str] = if privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ]
}

fn resources(cfg: &ContainerConfig) -> Value {
    let r = &cfg.resources;
    let mut out = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(limit) = r.memory_limit_bytes {
        // swap = limit: no swap beyond the memory limit.
        out["memory"] = json!({"limit": limit, "swap": limit});
    }
    if let Some(pids) = r.pids_limit {
        out["pids"] = json!({"limit": pids});
    }
    let mut cpu = serde_json::Map::new();
    if let Some(shares) = r.cpu_shares {
        cpu.insert("shares".into(), json!(shares));
    }
    if let Some(quota) = r.cpu_quota_us {
        cpu.insert("quota".into(), json!(quota));
        cpu.insert("period".into(), json!(r.cpu_period_us.unwrap_or(100_000)));
    }
    if !cpu.is_empty() {
        out["cpu"] = Value::Object(cpu);
    }
    out
}

fn seccomp_profile(profile: &SeccompProfile) -> Result<Option<Value>, SpecError> {
    match profile {
        SeccompProfile::RuntimeDefault => Ok(Some(seccomp::runtime_default())),
        SeccompProfile::Unconfined => Ok(None),
        SeccompProfile::Localhost(path) => {
            let err = |reason: String| SpecError::SeccompProfile {
                path: path.clone(),
                reason,
            };
            let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
            let typed: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_value(value.clone()).map_err(|e| err(e.to_string()))?;
            seccomp::compile(&typed).map_err(|e| err(e.to_string()))?;
            Ok(Some(value))
        }
    }
}

/// Every capability Linux 6.x knows, in kernel bit order, for `privileged`
/// and `add: ["ALL"]`.
pub(crate) const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub(crate) fn normalize_cap(name: &str) -> Result<String, SpecError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPABILITIES.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::UnknownCapability(name.to_string()))
    }
}

fn capabilities(cfg: &ContainerConfig) -> Result<Vec<String>, SpecError> {
    let sec = &cfg.security;
    if sec.privileged {
        return Ok(ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect());
    }
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let mut caps: Vec<String> = if sec.capabilities_drop.iter().any(is_all) {
        Vec::new()
    } else {
        let drop = sec
            .capabilities_drop
            .iter()
            .map(|c| normalize_cap(c))
            .collect::<Result<Vec<_>, _>>()?;
        DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    for add in &sec.capabilities_add {
        let added: Vec<String> = if is_all(add) {
            ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect()
        } else {
            vec![normalize_cap(add)?]
        };
        for cap in added {
            if !caps.contains(&cap) {
                caps.push(cap);
            }
        }
    }
    Ok(caps)
}

/// `user`, `uid`, `user:group`, `uid:gid` → numeric ids, looking names up in
/// the image's /etc/passwd and /etc/group (topmost layer that has them).
fn resolve_image_user(user: &str, layers: &[PathBuf]) -> Result<(u32, u32), SpecError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_image_file(layers, "etc/passwd");
    let (uid, primary) = match u.parse::<u32>() {
        Ok(uid) => (uid, primary_gid(uid, layers)),
        Err(_) => {
            let entry = passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 4 && f[0] == u)
                .ok_or_else(|| SpecError::UnknownUser(u.to_string()))?;
            (entry[2].parse().unwrap_or(0), entry[3].parse().ok())
        }
    };
    let gid = match g {
        None => primary.unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => read_image_file(layers, "etc/group")
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| SpecError::UnknownUser(format!("group {g}")))?,
        },
    };
    Ok((uid, gid))
}

fn primary_gid(uid: u32, layers: &[PathBuf]) -> Option<u32> {
    let uid = uid.to_string();
    read_image_file(layers, "etc/passwd")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[2] == uid)
        .and_then(|f| f[3].parse().ok())
}

fn read_image_file(layers: &[PathBuf], rel: &str) -> String {
    for layer in layers.iter().rev() {
        let path = layer.join(rel);
        // Only a regular file counts (a whiteout or symlink is not followed).
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.is_file()
        {
            return std::fs::read_to_string(path).unwrap_or_default();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests;
