//! The container description the agent hands to the runtime.
//!
//! Plain data, in the runtime's own terms (no Kubernetes types). The
//! defaults are the secure ones: RuntimeDefault seccomp, containerd's default
//! capabilities, no privilege escalation, not privileged.

use std::path::PathBuf;

/// Everything needed to create one container.
#[derive(Clone, Debug, Default)]
pub struct ContainerConfig {
    /// Unique id: `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`.
    pub id: String,
    /// Image name, resolved in the [`crate::ImageStore`].
    pub image: String,
    /// Replaces the image's entrypoint (Kubernetes `command`).
    pub command: Option<Vec<String>>,
    /// Replaces the image's cmd (Kubernetes `args`).
    pub args: Option<Vec<String>>,
    /// Extra environment, applied over the image's.
    pub env: Vec<(String, String)>,
    /// Working directory; the image's (or `/`) when unset.
    pub working_dir: Option<String>,
    /// Hostname inside the container (its own UTS namespace); the id when unset.
    pub hostname: Option<String>,
    /// Bind mounts from the host.
    pub mounts: Vec<Mount>,
    /// cgroup limits.
    pub resources: Resources,
    /// Isolation and privilege settings.
    pub security: SecurityConfig,
    /// Namespaces to join instead of creating (a pod sandbox's), by path
    /// such as `/proc/<pid>/ns/net`.
    pub join_namespaces: Vec<(NamespaceKind, PathBuf)>,
    /// Parent cgroup (relative to each hierarchy's root) for pod-level limits.
    /// Default `bulwark`.
    pub cgroup_parent: Option<String>,
    /// Log rotation.
    pub log: LogConfig,
    /// Keep the main process's stdin open for [`crate::Runtime::attach`]
    /// clients to write to (Kubernetes `stdin: true`); otherwise it reads
    /// `/dev/null`.
    pub stdin: bool,
    /// Give the main process a terminal (Kubernetes `tty: true`); attach
    /// clients then talk to it and can resize it. Built-in executor only.
    pub tty: bool,
}

/// When the container's log is rotated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Size at which the log is rotated (default 10 MiB, as the kubelet).
    pub max_bytes: u64,
    /// Files kept, the current one included (default 5).
    pub max_files: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_bytes: crate::logs::DEFAULT_MAX_BYTES,
            max_files: crate::logs::DEFAULT_MAX_FILES,
        }
    }
}

/// A bind mount from the host into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    /// Mount read-only.
    pub read_only: bool,
}

/// cgroup limits; `None` means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Memory limit in bytes (swap is not allowed beyond it).
    pub memory_limit_bytes: Option<i64>,
    /// Maximum number of processes/threads.
    pub pids_limit: Option<i64>,
    /// Relative CPU weight, in cgroup v1 shares (2–262144; v2 weight is derived).
    pub cpu_shares: Option<u64>,
    /// CPU quota in microseconds per `cpu_period_us`.
    pub cpu_quota_us: Option<i64>,
    /// CPU period in microseconds (default 100000).
    pub cpu_period_us: Option<u64>,
}

/// Which namespace a [`ContainerConfig::join_namespaces`] entry joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceKind {
    /// Network.
    Network,
    /// System V IPC and POSIX message queues.
    Ipc,
    /// Hostname.
    Uts,
    /// Process ids (a pod with `shareProcessNamespace`).
    Pid,
}

/// The seccomp profile a container runs under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SeccompProfile {
    /// Bulwark's default deny-list (containerd's RuntimeDefault equivalent).
    #[default]
    RuntimeDefault,
    /// No filter. Only when explicitly asked.
    Unconfined,
    /// An OCI/Docker seccomp JSON profile from the node's disk.
    Localhost(PathBuf),
}

/// Privilege and isolation settings. `Default` is the hardened setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Run with all capabilities, no seccomp, no masked paths, host devices.
    pub privileged: bool,
    /// User id; the image's user (or 0) when unset.
    pub run_as_user: Option<u32>,
    /// Group id; the user's primary group when unset.
    pub run_as_group: Option<u32>,
    /// Supplementary groups.
    pub supplemental_groups: Vec<u32>,
    /// Mount the root filesystem read-only.
    pub read_only_root_filesystem: bool,
    /// Allow setuid binaries and file capabilities to raise privileges
    /// (`no_new_privs` is set when false).
    pub allow_privilege_escalation: bool,
    /// Capabilities added to the default set (`NET_ADMIN` or `CAP_NET_ADMIN`).
    pub capabilities_add: Vec<String>,
    /// Capabilities removed from the default set (`ALL` drops everything).
    pub capabilities_drop: Vec<String>,
    /// Seccomp profile.
    pub seccomp: SeccompProfile,
    /// Run in a user namespace (Kubernetes `hostUsers: false`): container
    /// ids `0..size` map to host ids `host_id..host_id+size`, so container
    /// root is an unprivileged user on the host.
    pub user_namespace: Option<IdMapping>,
}

/// A user-namespace id mapping, the same for users and groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMapping {
    /// First host uid/gid of the range.
    pub host_id: u32,
    /// Number of ids mapped (65536 gives a container the usual range).
    pub size: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            privileged: false,
            run_as_user: None,
            run_as_group: None,
            supplemental_groups: Vec::new(),
            read_only_root_filesystem: false,
            allow_privilege_escalation: false,
            capabilities_add: Vec::new(),
            capabilities_drop: Vec::new(),
            seccomp: SeccompProfile::RuntimeDefault,
            user_namespace: None,
        }
    }
}

/// containerd's default capability set (the 14 of `oci.WithDefaultSpec`).
pub(crate) const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// containerd's masked paths: bind-mounted over with /dev/null or an empty tmpfs.
pub(crate) const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// containerd's read-only paths.
pub(crate) const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
