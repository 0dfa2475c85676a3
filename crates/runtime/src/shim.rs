//! The per-container shim: a small single-threaded process that creates the
//! container with libcontainer, owns its stdio, writes its log in the CRI
//! format, reaps it and records how it ended.
//!
//! It runs as its own process (never a fork of the agent: libcontainer
//! clones, and cloning a multi-threaded tokio process is unsound), in its own
//! process group, so the container survives the agent. Protocol with the
//! runtime: it is started with stdout on a pipe and writes one line — `ok
//! <pid>` or `error <message>` — then lets go of that pipe. On exit it writes
//! `exit.json` atomically into the container directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::wait::{WaitStatus, waitpid};
use oci_spec::runtime::Spec;
use seccompiler::BpfProgram;

use crate::attach::{self, Attachments, OutputStream};
use crate::cgroups::{Cgroups, SysfsCgroups, exit_reason, hit_memory_limit, oom_kills};
use crate::logs::{CriLog, DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, copy_stream};
use crate::runtime::{ExitStatus, paths};
use crate::spec::{ANNOTATION_LOG_MAX_BYTES, ANNOTATION_LOG_MAX_FILES, ANNOTATION_STDIN};

/// Entry point of the shim binary: `<shim> <container-dir> <state-root> <id>`.
/// Returns the process exit code.
pub fn shim_main(args: &[String]) -> i32 {
    let exec_args = match args {
        [mode, dir, state_root, id, command @ ..] if mode == "exec" => {
            Some((dir, state_root, id, None, command))
        }
        [mode, dir, state_root, id, console, command @ ..] if mode == "exec-tty" => {
            Some((dir, state_root, id, Some(Path::new(console)), command))
        }
        _ => None,
    };
    if let Some((dir, state_root, id, console, command)) = exec_args {
        init_tracing(Path::new(dir));
        return match exec(Path::new(dir), Path::new(state_root), id, console, command) {
            Ok(code) => code,
            Err(message) => {
                eprintln!("exec failed: {message}");
                EXEC_FAILED
            }
        };
    }
    let (dir, state_root, id, oci_runtime) = match args {
        [dir, state_root, id] => (dir, state_root, id, None),
        [dir, state_root, id, oci] => (dir, state_root, id, Some(PathBuf::from(oci))),
        _ => {
            eprintln!(
                "usage: bulwark-runtime-shim <container-dir> <state-root> <id> [<oci-runtime>]"
            );
            return 2;
        }
    };
    let dir = PathBuf::from(dir);
    init_tracing(&dir);
    match run(&dir, Path::new(state_root), id, oci_runtime) {
        Ok(()) => 0,
        Err(message) => {
            // Only reached before the report line was written.
            println!("error {message}");
            1
        }
    }
}

/// Logs go to `shim.log` through their own descriptor — never to fd 2, which
/// the container's init process inherits as the container's stderr.
/// `RUST_LOG` sets the verbosity (default `warn`).
fn init_tracing(dir: &Path) {
    let Ok(file) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(paths::SHIM_LOG))
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

fn run(
    dir: &Path,
    state_root: &Path,
    id: &str,
    oci_runtime: Option<PathBuf>,
) -> Result<(), String> {
    fs::write(dir.join(paths::SHIM_PID), std::process::id().to_string())
        .map_err(|e| format!("writing shim.pid: {e}"))?;
    let spec = Spec::load(dir.join(paths::SPEC)).map_err(|e| format!("reading spec: {e}"))?;
    let annotation = |key: &str| {
        spec.annotations()
            .as_ref()
            .and_then(|a| a.get(key))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let log_max_bytes = annotation(ANNOTATION_LOG_MAX_BYTES).unwrap_or(DEFAULT_MAX_BYTES);
    let log_max_files = annotation(ANNOTATION_LOG_MAX_FILES)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(DEFAULT_MAX_FILES);
    let cgroup_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .map(|p| p.display().to_string())
        .unwrap_or_default();

    let keep_stdin = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_STDIN))
        .is_some_and(|v| v == "true");
    let (stdin_r, stdin_w) = if keep_stdin {
        let (r, w) = pipe()?;
        (r, Some(File::from(w)))
    } else {
        let null = File::open("/dev/null").map_err(|e| format!("opening /dev/null: {e}"))?;
        (OwnedFd::from(null), None)
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let log = Arc::new(Mutex::new(
        CriLog::open(&dir.join(paths::LOG), log_max_bytes, log_max_files)
            .map_err(|e| format!("opening log: {e}"))?,
    ));
    let tty = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if tty && oci_runtime.is_some() {
        return Err("a terminal for the main process needs the built-in executor".into());
    }
    // libcontainer connects to this socket while it creates the container
    // and sends the terminal; it waits in the backlog until we accept.
    let console = if tty {
        let (dir_handle, path) = attach::short_socket_path(dir, "console.sock")
            .map_err(|e| format!("console socket: {e}"))?;
        let listener = std::os::unix::net::UnixListener::bind(path.as_str())
            .map_err(|e| format!("binding console socket: {e}"))?;
        Some((dir_handle, path, listener))
    } else {
        None
    };
    let mut io_threads = IoThreads {
        listener: attach::bind(dir).map_err(|e| format!("binding attach.sock: {e}"))?,
        stdin: stdin_w,
        stdout: out_r,
        stderr: err_r,
        log,
    };
    let stdio = Stdio3 {
        stdin: stdin_r,
        stdout: out_w,
        stderr: err_w,
    };
    // libcontainer clones this process: no thread may run yet (a lock held
    // by another thread at clone time would stay held in the child), so the
    // I/O threads start only once the container runs. runc is spawned with
    // fork+exec, which is safe with threads, and its early errors are read
    // from the stream into the log.
    let (mut running, copiers) = match oci_runtime {
        None => {
            let console_path = console.as_ref().map(|(_, path, _)| path.as_str());
            let running = start_builtin(dir, state_root, id, spec, stdio, console_path)?;
            if let Some((_, _, listener)) = &console {
                // The terminal replaces the pipes: its output is stdout, and
                // attach clients type into it.
                let terminal = crate::tty::receive_terminal_while(listener, || Ok(()))?;
                let reader = terminal.try_clone().map_err(|e| format!("terminal: {e}"))?;
                io_threads.stdout = reader;
                io_threads.stdin = Some(File::from(terminal));
            }
            (running, io_threads.spawn())
        }
        Some(runtime) => {
            let copiers = io_threads.spawn();
            (start_oci(dir, state_root, id, runtime, stdio)?, copiers)
        }
    };
    let pid = running.pid();
    let started_at = crate::logs::rfc3339_now();
    fs::write(dir.join(paths::STARTED), &started_at)
        .map_err(|e| format!("writing start time: {e}"))?;
    fs::write(dir.join(paths::PID), pid.to_string()).map_err(|e| format!("writing pid: {e}"))?;

    // Report, then let go of the runtime's pipe so it sees EOF.
    println!("ok {pid}");
    let _ = io::stdout().flush();
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }

    let (code, signal) = running.wait();
    let finished_at = crate::logs::rfc3339_now();
    for copier in copiers {
        let _ = copier.join();
    }
    let cgroups = SysfsCgroups::detect();
    if signal == Some(libc::SIGKILL) && hit_memory_limit(&cgroups, &cgroup_path) {
        // The OOM killer sends SIGKILL before it bumps the cgroup's counter;
        // give the kernel a moment to finish its accounting (only when the
        // limit was reached, so an ordinary kill is not delayed).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while oom_kills(&cgroups, &cgroup_path).unwrap_or(0) == 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    let reason = exit_reason(code, &cgroup_path, &cgroups);
    let status = ExitStatus {
        code,
        signal,
        reason: reason.to_string(),
        started_at,
        finished_at,
    };
    tracing::info!(code, ?signal, reason, "container exited");
    // Announce the exit as soon as it is known, then release the cgroup and
    // executor state; `Runtime::remove` waits for the shim to be gone.
    write_atomic(
        &dir.join(paths::EXIT),
        &serde_json::to_vec(&status).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("writing exit status: {e}"))?;
    running.delete();
    let _ = cgroups.remove(&cgroup_path);
    Ok(())
}

/// A started container, whichever executor runs it.
enum Running {
    /// libcontainer, in this process: the container's init is our child.
    BuiltIn(Box<libcontainer::container::Container>, nix::unistd::Pid),
    /// A runc-compatible binary running the bundle in the foreground (`run`):
    /// it is our child and exits with the container's status.
    Oci {
        runtime: PathBuf,
        state: PathBuf,
        id: String,
        child: std::process::Child,
        pid: i32,
    },
}

impl Running {
    fn pid(&self) -> i32 {
        match self {
            Running::BuiltIn(_, pid) => pid.as_raw(),
            Running::Oci { pid, .. } => *pid,
        }
    }

    /// Waits for the container's end: (exit code, killing signal).
    fn wait(&mut self) -> (i32, Option<i32>) {
        match self {
            Running::BuiltIn(_, pid) => loop {
                match waitpid(*pid, None) {
                    Ok(WaitStatus::Exited(_, code)) => break (code, None),
                    Ok(WaitStatus::Signaled(_, sig, _)) => {
                        break (128 + sig as i32, Some(sig as i32));
                    }
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => break (255, Some(-(e as i32))),
                }
            },
            Running::Oci { child, .. } => match child.wait().map(|s| s.code()) {
                // runc reports a container killed by signal N as 128 + N.
                Ok(Some(code)) if (129..=192).contains(&code) => (code, Some(code - 128)),
                Ok(Some(code)) => (code, None),
                _ => (255, None),
            },
        }
    }

    fn delete(&mut self) {
        match self {
            Running::BuiltIn(container, _) => {
                if let Err(e) = container.delete(true) {
                    tracing::warn!(error = %e, "deleting container state");
                }
            }
            Running::Oci {
                runtime, state, id, ..
            } => {
                let _ = std::process::Command::new(runtime.as_path())
                    .arg("--root")
                    .arg(state.as_path())
                    .args(["delete", "--force", id.as_str()])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

/// What the shim's I/O threads serve: attach clients, the output copiers.
struct IoThreads {
    listener: std::os::unix::net::UnixListener,
    stdin: Option<File>,
    stdout: OwnedFd,
    stderr: OwnedFd,
    log: Arc<Mutex<CriLog>>,
}

impl IoThreads {
    /// Starts the threads; returns the copiers, which end with the streams.
    fn spawn(self) -> Vec<std::thread::JoinHandle<()>> {
        let attachments = Arc::new(Attachments::default());
        attach::serve(self.listener, Arc::clone(&attachments), self.stdin);
        [
            (self.stdout, OutputStream::Stdout),
            (self.stderr, OutputStream::Stderr),
        ]
        .into_iter()
        .map(|(fd, stream)| {
            let log = Arc::clone(&self.log);
            let attachments = Arc::clone(&attachments);
            std::thread::spawn(move || copy_stream(File::from(fd), stream, &log, &attachments))
        })
        .collect()
    }
}

/// The container's standard streams.
struct Stdio3 {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

fn start_builtin(
    dir: &Path,
    state_root: &Path,
    id: &str,
    spec: Spec,
    stdio: Stdio3,
    console: Option<&str>,
) -> Result<Running, String> {
    let (exec_spec, executor) = prepare(spec)?;
    let bundle = dir.join(paths::EXEC_BUNDLE);
    fs::create_dir_all(&bundle).map_err(|e| format!("creating {}: {e}", bundle.display()))?;
    exec_spec
        .save(bundle.join("config.json"))
        .map_err(|e| format!("writing executor spec: {e}"))?;
    let built = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(state_root)
        .map_err(|e| format!("executor state directory: {e}"))?
        .with_executor(executor)
        .with_console_socket(console)
        .with_stdin(stdio.stdin)
        .with_stdout(stdio.stdout)
        .with_stderr(stdio.stderr)
        .as_init(&bundle)
        .with_systemd(false)
        .with_detach(true)
        .build();
    let mut container = match built {
        Ok(c) => c,
        Err(e) => {
            let _ = fs::remove_dir_all(state_root.join(id));
            return Err(format!("creating container: {e}"));
        }
    };
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(format!("starting container: {e}"));
    }
    let Some(pid) = container.pid() else {
        let _ = container.delete(true);
        return Err("container started without a pid".into());
    };
    Ok(Running::BuiltIn(Box::new(container), pid))
}

/// Runs the bundle (the faithful spec, seccomp included) with a
/// runc-compatible binary, and waits for it to write the container's pid.
fn start_oci(
    dir: &Path,
    state_root: &Path,
    id: &str,
    runtime: PathBuf,
    stdio: Stdio3,
) -> Result<Running, String> {
    let state = state_root.join("oci");
    let pid_file = dir.join("oci.pid");
    let mut child = std::process::Command::new(&runtime)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(dir)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(id)
        .stdin(std::process::Stdio::from(stdio.stdin))
        .stdout(std::process::Stdio::from(stdio.stdout))
        .stderr(std::process::Stdio::from(stdio.stderr))
        .spawn()
        .map_err(|e| format!("running {}: {e}", runtime.display()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(pid) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            return Ok(Running::Oci {
                runtime,
                state,
                id: id.to_string(),
                child,
                pid,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(dir.join(paths::LOG)).unwrap_or_default();
            return Err(format!(
                "{} exited with {status} before the container started: {}",
                runtime.display(),
                log.trim()
            ));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("{} did not start the container", runtime.display()));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Exit code of `shim exec` when the process could not be started at all
/// (as runc and `kubectl exec` use 126/127 for "cannot run").
pub(crate) const EXEC_FAILED: i32 = 126;

/// `shim exec <dir> <state-root> <id> <command…>`: runs a process inside a
/// running container — its namespaces, cgroup, user, capabilities and
/// seccomp profile — with this process's stdio, and returns its exit code.
fn exec(
    dir: &Path,
    state_root: &Path,
    id: &str,
    console: Option<&Path>,
    command: &[String],
) -> Result<i32, String> {
    let spec = Spec::load(dir.join(paths::SPEC)).map_err(|e| format!("reading spec: {e}"))?;
    let process = spec.process().clone();
    let user = process.as_ref().map(|p| p.user().clone());
    let (_, executor) = prepare(spec)?;
    let base = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(state_root)
        .map_err(|e| format!("executor state directory: {e}"))?
        .with_executor(executor)
        .with_console_socket(console);
    let mut builder = base.as_tenant().with_detach(true);
    if let (Some(_), Some(mut process)) = (console, process) {
        // A terminal needs the whole process description (libcontainer
        // takes `terminal` only from one): the container's, with this command.
        process.set_args(Some(command.to_vec()));
        process.set_terminal(Some(true));
        let path = dir.join(format!("exec-{}.json", std::process::id()));
        let json = serde_json::to_vec(&process).map_err(|e| e.to_string())?;
        fs::write(&path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
        builder = builder.with_process(Some(&path));
    } else {
        builder = builder.with_container_args(command.to_vec());
        if let Some(user) = user {
            builder = builder
                .with_user(Some(user.uid()))
                .with_group(Some(user.gid()))
                .with_additional_gids(user.additional_gids().clone().unwrap_or_default());
        }
    }
    let built = builder.build();
    let _ = fs::remove_file(dir.join(format!("exec-{}.json", std::process::id())));
    let pid = built.map_err(|e| format!("{e}"))?;
    if let Some(pid_file) = std::env::var_os(crate::runtime::EXEC_PID_FILE_ENV) {
        let _ = fs::write(pid_file, pid.to_string());
    }
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("waiting for the exec'd process: {e}")),
        }
    }
}

/// Turns the faithful spec into what libcontainer (built without libseccomp)
/// runs: the seccomp profile moves into our executor.
///
/// Note: seccompiler sets no_new_privs whenever it installs a filter, so a
/// container under seccomp always runs with no_new_privs, even when privilege
/// escalation is allowed (stricter than runc; see README).
fn prepare(spec: Spec) -> Result<(Spec, BulwarkExecutor), String> {
    let mut spec = restrict_to_bounding_set(spec)?;
    let mut executor = BulwarkExecutor::default();
    if let Some(linux) = spec.linux_mut()
        && let Some(profile) = linux.seccomp().clone()
    {
        executor.filters = crate::seccomp::compile(&profile).map_err(|e| e.to_string())?;
        linux.set_seccomp(None);
    }
    Ok((spec, executor))
}

/// Drops capabilities this process cannot grant (those outside its own
/// bounding set — e.g. CAP_SYS_RESOURCE in a nested sandbox), as Docker does
/// for `--privileged`: a privileged container gets everything the runtime has.
fn restrict_to_bounding_set(spec: Spec) -> Result<Spec, String> {
    let status = fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or("no CapBnd in /proc/self/status")?;
    let allowed = |name: &str| {
        crate::spec::ALL_CAPABILITIES
            .iter()
            .position(|c| *c == name)
            .is_some_and(|bit| bounding & (1 << bit) != 0)
    };
    let mut value = serde_json::to_value(&spec).map_err(|e| e.to_string())?;
    let mut dropped = Vec::new();
    if let Some(caps) = value["process"]["capabilities"].as_object_mut() {
        for set in caps.values_mut() {
            if let Some(list) = set.as_array_mut() {
                list.retain(|c| {
                    let keep = c.as_str().is_some_and(allowed);
                    if !keep {
                        dropped.push(c.to_string());
                    }
                    keep
                });
            }
        }
    }
    if dropped.is_empty() {
        return Ok(spec);
    }
    dropped.sort();
    dropped.dedup();
    tracing::info!(?dropped, "capabilities outside the runtime's bounding set");
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Runs the container's process: installs the seccomp filters as the very
/// last step before exec, so nothing of the runtime runs under them.
#[derive(Clone, Default)]
struct BulwarkExecutor {
    filters: Vec<BpfProgram>,
}

impl Executor for BulwarkExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .ok_or(ExecutorError::InvalidArg)?;
        let argv = args
            .iter()
            .map(|a| std::ffi::CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ExecutorError::InvalidArg)?;
        let Some(program) = argv.first() else {
            return Err(ExecutorError::InvalidArg);
        };
        for filter in &self.filters {
            seccompiler::apply_filter(filter)
                .map_err(|e| ExecutorError::Other(format!("installing seccomp filter: {e}")))?;
        }
        let err = nix::unistd::execvp(program, &argv).err();
        Err(ExecutorError::Other(format!(
            "exec: {:?}: {}",
            args[0],
            err.map_or_else(|| "exec returned".into(), |e| e.desc().to_string())
        )))
    }

    fn validate(&self, _spec: &Spec) -> Result<(), ExecutorValidationError> {
        // The runtime resolved the executable in the rootfs before creating.
        Ok(())
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(tmp, path)
}
