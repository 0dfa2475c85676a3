//! Running more in a container: exec (with a timeout, or on a terminal) and
//! attaching to the main process.

use std::fs;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ContainerStatus, EXEC_PID_FILE_ENV, Runtime, RuntimeError, io_ctx, paths, state_name};
use crate::rootfs::find_executable;
use crate::spec::SpecError;

/// What an [`Runtime::exec`]'d process printed and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (128 + signal when killed; 126 when it could not start).
    pub code: i32,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

/// Tells concurrent streaming execs' pid files apart.
static EXEC_SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A process running inside a container with piped standard streams
/// ([`Runtime::exec_streaming`]).
#[derive(Debug)]
pub struct StreamingExec {
    child: Child,
    pid_file: std::path::PathBuf,
    /// The container's cgroup: only a process in it is ever killed.
    cgroup_path: Option<String>,
}

impl StreamingExec {
    /// The process's stdin (`None` unless asked for); drop it to close.
    pub fn stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// The process's stdout, to read on its own thread.
    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The process's stderr, to read on its own thread.
    pub fn stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits for the process to end; returns its exit code.
    pub fn wait(&mut self) -> Result<i32, RuntimeError> {
        let status = self.child.wait().map_err(io_ctx("waiting for exec"))?;
        let _ = fs::remove_file(&self.pid_file);
        Ok(status.code().unwrap_or(crate::shim::EXEC_FAILED))
    }
}

impl Drop for StreamingExec {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // The process in the container first (it would outlive the
            // shim), then the shim.
            if let Some(pid) = fs::read_to_string(&self.pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .filter(|pid| {
                    self.cgroup_path
                        .as_deref()
                        .is_some_and(|cgroup| super::pid_in_cgroup(*pid, cgroup))
                })
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = fs::remove_file(&self.pid_file);
    }
}

/// A process running on a terminal inside a container ([`Runtime::exec_tty`]).
#[derive(Debug)]
pub struct TtyExec {
    terminal: fs::File,
    child: Child,
}

impl TtyExec {
    /// The terminal's controlling side: read the process's output from it,
    /// write its input to it.
    pub fn terminal(&self) -> &fs::File {
        &self.terminal
    }

    /// Changes the terminal's size (the process gets SIGWINCH).
    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        let size = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&self.terminal, size)
            .map_err(|e| io_ctx("resizing the terminal")(e.into()))
    }

    /// Waits for the process to end; returns its exit code.
    pub fn wait(mut self) -> Result<i32, RuntimeError> {
        let status = self.child.wait().map_err(io_ctx("waiting for exec"))?;
        Ok(status.code().unwrap_or(crate::shim::EXEC_FAILED))
    }
}

impl Runtime {
    /// Runs `command` inside a running container (its namespaces, cgroup,
    /// user, capabilities and seccomp profile) and collects its output.
    ///
    /// After `timeout` the process is killed (SIGKILL, inside the container
    /// too) and [`RuntimeError::Timeout`] returned — an exec probe's timeout.
    #[tracing::instrument(level = "debug", skip(self, timeout), fields(container = %id))]
    pub fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        self.check_exec(id, command)?;
        // Where the exec'd process's pid is written, for a timeout to kill it.
        let pid_file = self.exec_pid_file(id);
        let mut cmd = self.exec_command(id, &pid_file);
        let mut child = cmd
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_ctx(format!("spawning shim {}", self.shim.display())))?;
        let stdout = read_all(child.stdout.take());
        let stderr = read_all(child.stderr.take());
        let deadline = Instant::now() + timeout;
        let mut interval = Duration::from_micros(100);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(io_ctx("waiting for exec"))? {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(interval);
            interval = (interval * 2).min(Duration::from_millis(10));
        };
        let Some(status) = status else {
            // Kill the process in the container first (it would outlive the
            // shim), then the shim.
            if let Some(pid) = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .filter(|pid| self.pid_in_container(id, *pid))
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = fs::remove_file(&pid_file);
            return Err(RuntimeError::Timeout {
                waiting_for: format!("{:?} in container {id:?}", command.join(" ")),
                after: timeout,
            });
        };
        let _ = fs::remove_file(&pid_file);
        Ok(ExecOutput {
            code: status.code().unwrap_or(crate::shim::EXEC_FAILED),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    /// The command that runs a process in container `id` (the arguments
    /// follow), writing its pid to `pid_file`.
    fn exec_command(&self, id: &str, pid_file: &std::path::Path) -> Command {
        let dir = self.dir(id);
        match &self.oci_runtime {
            Some(oci) => {
                let mut cmd = Command::new(oci);
                cmd.arg("--root")
                    .arg(self.root.join("executor").join("oci"))
                    .arg("exec")
                    .arg("--pid-file")
                    .arg(pid_file)
                    .arg(id);
                cmd
            }
            None => {
                let mut cmd = self.shim_command();
                cmd.env(EXEC_PID_FILE_ENV, pid_file)
                    .arg("exec")
                    .arg(&dir)
                    .arg(self.root.join("executor"))
                    .arg(id);
                cmd
            }
        }
    }

    /// Runs `command` inside a running container with its standard streams
    /// piped to the caller (stdin only when `stdin`, else empty), for a
    /// streaming `kubectl exec`. The caller reads and waits; dropping the
    /// returned [`StreamingExec`] kills the process if it still runs.
    #[tracing::instrument(level = "debug", skip(self), fields(container = %id))]
    pub fn exec_streaming(
        &self,
        id: &str,
        command: &[String],
        stdin: bool,
    ) -> Result<StreamingExec, RuntimeError> {
        self.check_exec(id, command)?;
        let pid_file = self.exec_pid_file(id);
        let child = self
            .exec_command(id, &pid_file)
            .args(command)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_ctx(format!("spawning shim {}", self.shim.display())))?;
        Ok(StreamingExec {
            child,
            pid_file,
            cgroup_path: self.cgroup_path(id),
        })
    }

    /// Attaches to the main process of a running container: its output from
    /// now on, and its stdin if the container was created with `stdin: true`.
    #[tracing::instrument(level = "debug", skip(self), fields(container = %id))]
    pub fn attach(&self, id: &str) -> Result<crate::Attach, RuntimeError> {
        if !matches!(self.status(id)?, ContainerStatus::Running { .. }) {
            let state = state_name(&self.status(id)?);
            return Err(RuntimeError::WrongState {
                id: id.into(),
                state,
                action: "attach",
            });
        }
        crate::attach::Attach::connect(&self.dir(id))
            .map_err(io_ctx(format!("attaching to container {id:?}")))
    }

    /// Runs `command` inside a running container on a new terminal of size
    /// `rows`×`cols` (the pseudo-terminal is created inside the container and
    /// handed back through a private socket). Read and write the returned
    /// session's terminal; [`TtyExec::resize`] changes its size.
    #[tracing::instrument(level = "debug", skip(self, rows, cols), fields(container = %id))]
    pub fn exec_tty(
        &self,
        id: &str,
        command: &[String],
        rows: u16,
        cols: u16,
    ) -> Result<TtyExec, RuntimeError> {
        self.check_exec(id, command)?;
        if self.oci_runtime.is_some() {
            return Err(RuntimeError::Start {
                id: id.into(),
                message: "exec with a terminal is only supported by the built-in executor".into(),
            });
        }
        let dir = self.dir(id);
        // A private directory (0700) keeps anyone else from connecting first.
        let private = tempfile::Builder::new()
            .prefix("bulwark-tty-")
            .tempdir()
            .map_err(io_ctx("creating the console socket directory"))?;
        let socket = private.path().join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket)
            .map_err(io_ctx(format!("binding {}", socket.display())))?;
        let mut child = self
            .shim_command()
            .arg("exec-tty")
            .arg(&dir)
            .arg(self.root.join("executor"))
            .arg(id)
            .arg(&socket)
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_ctx(format!("spawning shim {}", self.shim.display())))?;
        let terminal = match crate::tty::receive_terminal(&listener, &mut child) {
            Ok(fd) => fs::File::from(fd),
            Err(message) => {
                let _ = child.kill();
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                let _ = child.wait();
                return Err(RuntimeError::Start {
                    id: id.into(),
                    message: format!("{message} {}", stderr.trim()),
                });
            }
        };
        let session = TtyExec { terminal, child };
        session.resize(rows, cols)?;
        Ok(session)
    }

    /// Refuses an exec into a container that is not running, of no command,
    /// or of a program its image does not have.
    fn check_exec(&self, id: &str, command: &[String]) -> Result<(), RuntimeError> {
        let status = self.status(id)?;
        if !matches!(status, ContainerStatus::Running { .. }) {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                state: state_name(&status),
                action: "exec",
            });
        }
        let Some(program) = command.first() else {
            return Err(SpecError::NoCommand.into());
        };
        find_executable(
            &self.dir(id).join(paths::ROOTFS),
            program,
            &self.path_var(id)?,
        )?;
        Ok(())
    }

    /// Where one exec writes its process's pid: unique per call, so
    /// concurrent execs into one container (two exec probes) never share it.
    fn exec_pid_file(&self, id: &str) -> std::path::PathBuf {
        self.dir(id).join(format!(
            "exec-{}-{}.pid",
            std::process::id(),
            EXEC_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ))
    }

    fn path_var(&self, id: &str) -> Result<String, RuntimeError> {
        let spec: serde_json::Value = serde_json::from_slice(
            &fs::read(self.dir(id).join(paths::SPEC)).map_err(io_ctx("reading config.json"))?,
        )
        .map_err(SpecError::from)?;
        Ok(spec["process"]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str()?.strip_prefix("PATH="))
            .next()
            .unwrap_or("")
            .to_string())
    }
}

/// Reads a pipe to its end on a thread.
fn read_all<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}
