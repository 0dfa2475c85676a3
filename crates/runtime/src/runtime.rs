//! Containers: create (bundle + overlay rootfs), start (through the shim),
//! wait, kill, remove, and re-adoption from what is on disk.
//!
//! Everything about a container lives in `<root>/containers/<id>/`:
//!
//! ```text
//! config.json     the OCI runtime spec, as rendered
//! upper/ work/    the writable overlay layer
//! rootfs/         overlay mount point (image layers read-only + upper)
//! exec/           the executor's copy of the spec (written by the shim)
//! pid             the container's init pid (written by the shim)
//! container.log   stdout/stderr in the CRI log format
//! exit.json       exit code and reason (written by the shim, atomically)
//! shim.log        the shim's own diagnostics
//! ```
//!
//! All state is in files, so a restarted agent builds a new [`Runtime`] on
//! the same root and finds its containers where it left them.

use std::fs;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, umount2};
use serde::{Deserialize, Serialize};

use crate::ContainerConfig;
use crate::cgroups::{self, Cgroups, ContainerStats, SysfsCgroups};
use crate::images::{ImageError, ImageStore};
use crate::rootfs::{ensure_dir, find_executable, mount_overlay};
use crate::spec::{self, SpecError};

/// Environment variable telling `shim exec` where to write the exec'd pid.
pub(crate) const EXEC_PID_FILE_ENV: &str = "BULWARK_EXEC_PID_FILE";

mod exec;
pub use exec::{ExecOutput, StreamingExec, TtyExec};

pub(crate) mod paths {
    pub(crate) const SPEC: &str = "config.json";
    pub(crate) const EXEC_BUNDLE: &str = "exec";
    pub(crate) const ROOTFS: &str = "rootfs";
    pub(crate) const UPPER: &str = "upper";
    pub(crate) const WORK: &str = "work";
    pub(crate) const PID: &str = "pid";
    pub(crate) const LOG: &str = "container.log";
    pub(crate) const EXIT: &str = "exit.json";
    pub(crate) const SHIM_LOG: &str = "shim.log";
    pub(crate) const SHIM_PID: &str = "shim.pid";
    pub(crate) const IMAGE: &str = "image";
    pub(crate) const STARTED: &str = "started";
}

/// How a container's main process ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code; 128 + signal number when killed by a signal.
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// `Completed`, `Error` or `OOMKilled` (Kubernetes' terminated reasons).
    pub reason: String,
    /// When the process started, RFC 3339 UTC ("" if unknown).
    #[serde(default)]
    pub started_at: String,
    /// When it ended, RFC 3339 UTC ("" if unknown).
    #[serde(default)]
    pub finished_at: String,
}

/// Where a container is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Created, not started.
    Created,
    /// Running, with this init pid (in the host's pid namespace).
    Running {
        /// The container's init process.
        pid: i32,
        /// When it started, RFC 3339 UTC.
        started_at: String,
    },
    /// Its main process has ended.
    Exited(ExitStatus),
}

/// What went wrong with a container operation.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image could not be resolved.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The description cannot become a runtime spec.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The command is not in the image (upper-case-free, as Docker says it).
    #[error("exec: {0:?}: executable file not found in $PATH")]
    ExecutableNotFound(String),
    /// A container with this id exists already.
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    /// No container with this id.
    #[error("container {0:?} not found")]
    NotFound(String),
    /// The operation needs a different state (e.g. start of a running container).
    #[error("container {id:?} is {state}, cannot {action}")]
    WrongState {
        /// The container.
        id: String,
        /// Its state.
        state: &'static str,
        /// What was asked.
        action: &'static str,
    },
    /// The shim or the executor failed to create/start the container.
    #[error("starting container {id:?}: {message}")]
    Start {
        /// The container.
        id: String,
        /// The shim's report.
        message: String,
    },
    /// Waiting took longer than allowed.
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        /// What was awaited (`container "web" to exit`, `exec in container "web"`).
        waiting_for: String,
        /// The time allowed.
        after: Duration,
    },
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

pub(crate) fn nix_ctx(context: impl Into<String>) -> impl FnOnce(nix::Error) -> RuntimeError {
    let context = context.into();
    move |e| RuntimeError::Io {
        context,
        source: io::Error::from(e),
    }
}

/// The container runtime of one node.
pub struct Runtime {
    root: PathBuf,
    images: Arc<ImageStore>,
    /// A sealed in-memory copy of the shim binary; shims are executed from
    /// it (`/proc/self/fd/N`), so `/proc/<pid>/exe` of a shim — and of a
    /// container process before its own exec — is a read-only memfd, never
    /// the host file (the CVE-2019-5736 class).
    sealed_shim: fs::File,
    shim: PathBuf,
    /// A runc-compatible binary to run containers with instead of the
    /// built-in executor.
    oci_runtime: Option<PathBuf>,
    /// Shims this process started, reaped when they have exited.
    children: Mutex<Vec<Child>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("root", &self.root).finish()
    }
}

impl Runtime {
    /// A runtime keeping container state under `root`, taking images from
    /// `images`, and starting `shim` (a binary whose `main` calls
    /// [`crate::shim_main`]) for each container.
    pub fn new(
        root: impl Into<PathBuf>,
        images: Arc<ImageStore>,
        shim: impl Into<PathBuf>,
    ) -> Result<Self, RuntimeError> {
        let root = root.into();
        for dir in ["containers", "executor"] {
            fs::create_dir_all(root.join(dir))
                .map_err(io_ctx(format!("creating {}", root.join(dir).display())))?;
        }
        let shim = shim.into();
        let sealed_shim = seal_copy(&shim)?;
        Ok(Runtime {
            root,
            images,
            sealed_shim,
            shim,
            oci_runtime: None,
            children: Mutex::new(Vec::new()),
        })
    }

    /// Runs containers with a runc-compatible binary (`/usr/sbin/runc`,
    /// `crun`) instead of the built-in executor. The shim still owns stdio,
    /// logs and the exit record; the binary gets the same bundle.
    pub fn with_oci_runtime(mut self, binary: impl Into<PathBuf>) -> Self {
        self.oci_runtime = Some(binary.into());
        self
    }

    /// Prepares a container: resolves its image, mounts its root filesystem,
    /// checks its command exists and writes its OCI spec. Nothing runs yet.
    #[tracing::instrument(level = "debug", skip_all, fields(container = %cfg.id, image = %cfg.image))]
    pub fn create(&self, cfg: &ContainerConfig) -> Result<(), RuntimeError> {
        cfg.validate()?;
        let image = self.images.get(&cfg.image)?;
        let plan = spec::plan_process(cfg, &image.config, &image.layers)?;
        let dir = self.dir(&cfg.id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::AlreadyExists(cfg.id.clone()));
            }
            Err(e) => return Err(io_ctx(format!("creating {}", dir.display()))(e)),
        }
        let result = (|| {
            let rootfs = dir.join(paths::ROOTFS);
            for sub in [paths::ROOTFS, paths::UPPER, paths::WORK] {
                fs::create_dir(dir.join(sub)).map_err(io_ctx(format!("creating {sub}")))?;
            }
            if let Some(map) = cfg.security.user_namespace {
                // Container root owns its writable layer (new files and the
                // root directory), not host root.
                for sub in [paths::UPPER, paths::WORK] {
                    std::os::unix::fs::lchown(dir.join(sub), Some(map.host_id), Some(map.host_id))
                        .map_err(io_ctx(format!("handing {sub} to the user namespace")))?;
                }
            }
            mount_overlay(&image.layers, &dir)?;
            let path_var = plan
                .env
                .iter()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or("");
            find_executable(&rootfs, &plan.args[0], path_var)?;
            ensure_dir(&rootfs, &plan.cwd)?;
            let spec = spec::render(cfg, &plan, &rootfs)?;
            let bytes = serde_json::to_vec_pretty(&spec).map_err(SpecError::from)?;
            fs::write(dir.join(paths::SPEC), bytes).map_err(io_ctx("writing config.json"))?;
            // Which image's layers this container's rootfs stands on (for GC).
            fs::write(dir.join(paths::IMAGE), &image.manifest_digest)
                .map_err(io_ctx("writing the image record"))?;
            Ok(())
        })();
        if result.is_err() {
            let _ = self.cleanup(&cfg.id);
        }
        result
    }

    /// Starts a created container; returns its init pid once it runs.
    #[tracing::instrument(level = "debug", skip(self), fields(container = %id))]
    pub fn start(&self, id: &str) -> Result<i32, RuntimeError> {
        match self.status(id)? {
            ContainerStatus::Created => {}
            other => {
                return Err(RuntimeError::WrongState {
                    id: id.into(),
                    state: state_name(&other),
                    action: "start",
                });
            }
        }
        let dir = self.dir(id);
        let shim_log =
            fs::File::create(dir.join(paths::SHIM_LOG)).map_err(io_ctx("creating shim.log"))?;
        let mut child = self
            .shim_command()
            .arg(&dir)
            .arg(self.root.join("executor"))
            .arg(id)
            .args(self.oci_runtime.iter())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(shim_log)
            // Its own process group: signals aimed at the agent's group
            // (Ctrl-C, a service manager's stop) do not reach containers.
            .process_group(0)
            .spawn()
            .map_err(io_ctx(format!("spawning shim {}", self.shim.display())))?;
        let mut report = String::new();
        if let Some(mut out) = child.stdout.take() {
            out.read_to_string(&mut report)
                .map_err(io_ctx("reading the shim's report"))?;
        }
        self.remember(child);
        let report = report.trim();
        if let Some(pid) = report.strip_prefix("ok ") {
            let pid = pid.parse().map_err(|_| RuntimeError::Start {
                id: id.into(),
                message: format!("shim reported {report:?}"),
            })?;
            tracing::info!(pid, "container started");
            return Ok(pid);
        }
        let log = fs::read_to_string(dir.join(paths::SHIM_LOG)).unwrap_or_default();
        let message = match report.strip_prefix("error ") {
            Some(m) if log.trim().is_empty() => m.to_string(),
            Some(m) => format!("{m}\nshim log:\n{}", log.trim()),
            None => format!("shim exited without a report: {}", log.trim()),
        };
        Err(RuntimeError::Start {
            id: id.into(),
            message,
        })
    }

    /// The container's current status, read from disk.
    pub fn status(&self, id: &str) -> Result<ContainerStatus, RuntimeError> {
        let dir = self.dir(id);
        if !dir.join(paths::SPEC).is_file() {
            return Err(RuntimeError::NotFound(id.into()));
        }
        if let Some(exit) = read_exit(&dir)? {
            return Ok(ContainerStatus::Exited(exit));
        }
        let pid = match fs::read_to_string(dir.join(paths::PID)) {
            Ok(pid) => pid
                .trim()
                .parse::<i32>()
                .map_err(|_| io_ctx("reading pid")(io::Error::other(format!("bad pid {pid:?}"))))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ContainerStatus::Created),
            Err(e) => return Err(io_ctx("reading pid")(e)),
        };
        let started_at = fs::read_to_string(dir.join(paths::STARTED)).unwrap_or_default();
        if self.shim_alive(id) || self.container_pid(id).is_some() {
            return Ok(ContainerStatus::Running { pid, started_at });
        }
        // Shim and container are both gone; the shim may have written the
        // record just now — otherwise it died before it could (killed).
        Ok(ContainerStatus::Exited(read_exit(&dir)?.unwrap_or(
            ExitStatus {
                code: 255,
                signal: None,
                reason: "Unknown".into(),
                started_at,
                finished_at: String::new(),
            },
        )))
    }

    /// Waits for the container to exit, polling its exit record, at most `timeout`.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<ExitStatus, RuntimeError> {
        let deadline = Instant::now() + timeout;
        // Fine polling first (most waits on short-lived processes end within
        // milliseconds), backing off to 20 ms.
        let mut interval = Duration::from_micros(50);
        loop {
            if let ContainerStatus::Exited(status) = self.status(id)? {
                self.reap();
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(RuntimeError::Timeout {
                    waiting_for: format!("container {id:?} to exit"),
                    after: timeout,
                });
            }
            std::thread::sleep(interval);
            interval = (interval * 2).min(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the container's init process.
    #[tracing::instrument(level = "debug", skip(self), fields(container = %id))]
    pub fn kill(&self, id: &str, signal: nix::sys::signal::Signal) -> Result<(), RuntimeError> {
        match self.status(id)? {
            ContainerStatus::Running { .. } => {
                // Only a pid still in the container's cgroup is signalled: a
                // recycled pid never is.
                let Some(pid) = self.container_pid(id) else {
                    return Ok(()); // exited; the shim is recording it
                };
                match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
                    Err(e) => Err(nix_ctx(format!("signalling pid {pid}"))(e)),
                }
            }
            other => Err(RuntimeError::WrongState {
                id: id.into(),
                state: state_name(&other),
                action: "kill",
            }),
        }
    }

    /// Stops the container if it runs (SIGKILL), unmounts its root
    /// filesystem and deletes its state.
    #[tracing::instrument(level = "debug", skip(self), fields(container = %id))]
    pub fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        if let ContainerStatus::Running { .. } = self.status(id)? {
            self.kill(id, nix::sys::signal::Signal::SIGKILL)?;
            self.wait(id, Duration::from_secs(30))?;
        }
        // The shim records the exit first and then releases the executor's
        // state and cgroup; let it finish.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut interval = Duration::from_micros(100);
        while self.shim_alive(id) && Instant::now() < deadline {
            std::thread::sleep(interval);
            interval = (interval * 2).min(Duration::from_millis(10));
        }
        self.reap();
        self.cleanup(id)
    }

    /// Creates the pod-level parent cgroup `cgroup_parent` (as given in
    /// [`ContainerConfig::cgroup_parent`]) with `resources`, so that the
    /// pod's containers share its limits (and the agent can place QoS
    /// classes above it).
    pub fn set_pod_limits(
        &self,
        cgroup_parent: &str,
        resources: &crate::Resources,
    ) -> Result<(), RuntimeError> {
        let path = format!("/{}", cgroup_parent.trim_matches('/'));
        cgroups::apply_limits(&SysfsCgroups::detect(), &path, resources)
            .map_err(io_ctx(format!("setting limits of cgroup {path}")))
    }

    /// Removes a pod-level parent cgroup once its containers are removed.
    pub fn remove_pod_cgroup(&self, cgroup_parent: &str) -> Result<(), RuntimeError> {
        let path = format!("/{}", cgroup_parent.trim_matches('/'));
        SysfsCgroups::detect()
            .remove(&path)
            .map_err(io_ctx(format!("removing cgroup {path}")))
    }

    /// CPU and memory usage of a running container.
    #[tracing::instrument(level = "debug", skip(self), fields(container = %id))]
    pub fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        let spec: serde_json::Value =
            serde_json::from_slice(&fs::read(self.dir(id).join(paths::SPEC)).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    RuntimeError::NotFound(id.into())
                } else {
                    io_ctx("reading config.json")(e)
                }
            })?)
            .map_err(SpecError::from)?;
        let path = spec["linux"]["cgroupsPath"].as_str().unwrap_or_default();
        cgroups::stats(&SysfsCgroups::detect(), path)
            .map_err(io_ctx(format!("reading the statistics of cgroup {path}")))
    }

    /// Garbage-collects the image store: deletes blobs and layers that no
    /// named image and no container of this runtime uses, sparing anything
    /// written in the last `grace` (pulls and imports in flight).
    #[tracing::instrument(level = "debug", skip(self))]
    pub fn prune_images(&self, grace: Duration) -> Result<usize, RuntimeError> {
        let mut in_use = Vec::new();
        for id in self.list()? {
            if let Ok(digest) = fs::read_to_string(self.dir(&id).join(paths::IMAGE)) {
                in_use.push(digest.trim().to_string());
            }
        }
        Ok(self.images.prune_keeping(&in_use, grace)?)
    }

    /// Ids of all containers under this runtime's root.
    pub fn list(&self) -> Result<Vec<String>, RuntimeError> {
        let mut ids = Vec::new();
        for entry in
            fs::read_dir(self.root.join("containers")).map_err(io_ctx("listing containers"))?
        {
            let entry = entry.map_err(io_ctx("listing containers"))?;
            ids.push(entry.file_name().to_string_lossy().into_owned());
        }
        ids.sort();
        Ok(ids)
    }

    /// The container's log, rotated files included, oldest first (what
    /// `kubectl logs` shows, for the agent to serve).
    pub fn logs(&self, id: &str) -> Result<Vec<crate::LogEntry>, RuntimeError> {
        if !self.dir(id).join(paths::SPEC).is_file() {
            return Err(RuntimeError::NotFound(id.into()));
        }
        crate::logs::read_cri_logs(&self.log_path(id))
            .map_err(io_ctx(format!("reading the log of container {id:?}")))
    }

    /// The container's log file (CRI format).
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(paths::LOG)
    }

    /// The rendered OCI spec (`config.json`) of a created container.
    pub fn spec_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(paths::SPEC)
    }

    /// A command running the sealed shim copy. The memfd is close-on-exec:
    /// the kernel resolves `/proc/self/fd/N` before it closes it.
    fn shim_command(&self) -> Command {
        use std::os::fd::AsRawFd;
        let mut command = Command::new(format!("/proc/self/fd/{}", self.sealed_shim.as_raw_fd()));
        command.arg0("bulwark-runtime-shim");
        // Nothing of the agent's environment (tokens, proxies) reaches the
        // shim — or, through a runtime that forgot to clear it, a container.
        command.env_clear();
        if let Some(level) = std::env::var_os("RUST_LOG") {
            command.env("RUST_LOG", level);
        }
        command
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// The container's init pid if that process is alive (not a zombie) and
    /// still in the container's cgroup.
    fn container_pid(&self, id: &str) -> Option<i32> {
        let pid: i32 = fs::read_to_string(self.dir(id).join(paths::PID))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        self.pid_in_container(id, pid).then_some(pid)
    }

    /// Whether `pid` is alive (not a zombie) and in the container's cgroup —
    /// never true of a recycled pid.
    fn pid_in_container(&self, id: &str, pid: i32) -> bool {
        self.cgroup_path(id)
            .is_some_and(|cgroup_path| pid_in_cgroup(pid, &cgroup_path))
    }

    /// Whether this container's shim process is alive.
    fn shim_alive(&self, id: &str) -> bool {
        let dir = self.dir(id);
        let Some(pid) = fs::read_to_string(dir.join(paths::SHIM_PID))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        else {
            return false;
        };
        // The shim's command line names the container directory, which a
        // recycled pid's would not.
        fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
            cmdline
                .split(|&b| b == 0)
                .any(|arg| arg == dir.as_os_str().as_encoded_bytes())
        })
    }

    pub(crate) fn cgroup_path(&self, id: &str) -> Option<String> {
        let spec: serde_json::Value =
            serde_json::from_slice(&fs::read(self.dir(id).join(paths::SPEC)).ok()?).ok()?;
        spec["linux"]["cgroupsPath"].as_str().map(str::to_string)
    }

    fn cleanup(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.dir(id);
        // Left behind only when a shim was killed before it could clean up;
        // its container's init, reparented, may still wait to be reaped
        // (a zombie pins its cgroup), so retry for a moment.
        if let Some(path) = self.cgroup_path(id) {
            let cgroups = SysfsCgroups::detect();
            let deadline = Instant::now() + Duration::from_secs(5);
            while cgroups.remove(&path).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let rootfs = dir.join(paths::ROOTFS);
        match umount2(&rootfs, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(nix_ctx(format!("unmounting {}", rootfs.display()))(e)),
        }
        let _ = fs::remove_dir_all(self.root.join("executor").join(id));
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_ctx(format!("removing {}", dir.display()))(e)),
        }
    }

    fn remember(&self, child: Child) {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        children.push(child);
        children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }

    fn reap(&self) {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }
}

/// Copies `binary` into a memfd and seals it against any change.
fn seal_copy(binary: &Path) -> Result<fs::File, RuntimeError> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
    use std::os::fd::AsRawFd;
    let ctx = format!("sealing a copy of the shim {}", binary.display());
    let fd = memfd_create(
        c"bulwark-runtime-shim",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .map_err(nix_ctx(ctx.clone()))?;
    let mut copy = fs::File::from(fd);
    let mut original = fs::File::open(binary).map_err(io_ctx(ctx.clone()))?;
    // Only what the kernel loads: debug sections (most of a build's size)
    // would otherwise sit in memory for nothing.
    let loaded = elf_loaded_len(&mut original).map_err(io_ctx(ctx.clone()))?;
    io::Seek::rewind(&mut original).map_err(io_ctx(ctx.clone()))?;
    let mut original = io::Read::take(original, loaded.unwrap_or(u64::MAX));
    io::copy(&mut original, &mut copy).map_err(io_ctx(ctx.clone()))?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(copy.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).map_err(nix_ctx(ctx))?;
    Ok(copy)
}

/// For a 64-bit little-endian ELF file, the end of its last loadable
/// segment (what execve maps); `None` for anything else (copied whole).
fn elf_loaded_len(file: &mut fs::File) -> io::Result<Option<u64>> {
    let mut header = [0u8; 64];
    if file.read_exact(&mut header).is_err() || &header[..4] != b"\x7fELF" {
        return Ok(None);
    }
    if header[4] != 2 || header[5] != 1 {
        return Ok(None); // not ELFCLASS64 / ELFDATA2LSB
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at = |b: &[u8], o: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(v)
    };
    let phoff = u64_at(&header, 0x20);
    let phentsize = usize::from(u16_at(&header, 0x36));
    let phnum = usize::from(u16_at(&header, 0x38));
    if phentsize < 56 || phnum == 0 {
        return Ok(None);
    }
    let mut table = vec![0u8; phentsize * phnum];
    io::Seek::seek(file, io::SeekFrom::Start(phoff))?;
    file.read_exact(&mut table)?;
    let end = table
        .chunks(phentsize)
        .filter(|ph| u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == 1) // PT_LOAD
        .map(|ph| u64_at(ph, 8).saturating_add(u64_at(ph, 32))) // p_offset + p_filesz
        .max();
    // The program headers themselves must stay inside the copy.
    Ok(end.map(|e| e.max(phoff + table.len() as u64)))
}

fn state_name(s: &ContainerStatus) -> &'static str {
    match s {
        ContainerStatus::Created => "created",
        ContainerStatus::Running { .. } => "running",
        ContainerStatus::Exited(_) => "exited",
    }
}

fn read_exit(dir: &Path) -> Result<Option<ExitStatus>, RuntimeError> {
    match fs::read(dir.join(paths::EXIT)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io_ctx("reading exit.json")(io::Error::new(io::ErrorKind::InvalidData, e))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_ctx("reading exit.json")(e)),
    }
}

/// Whether `pid` is alive (not a zombie) and in cgroup `cgroup_path` —
/// never true of a recycled pid.
pub(crate) fn pid_in_cgroup(pid: i32, cgroup_path: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    if matches!(state, None | Some('Z') | Some('X')) {
        return false;
    }
    fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|cgroups| {
        cgroups
            .lines()
            .any(|l| l.ends_with(&format!(":{cgroup_path}")))
    })
}
