//! A real etcd (Debian's `etcd-server`), one member on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_loopback_port;

/// Why etcd could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No `etcd` binary was found.
    #[error("etcd not found at {0} or on PATH: install Debian's etcd-server (scripts/test does)")]
    NotInstalled(String),
    /// Starting it or preparing its directory failed.
    #[error("cannot start etcd: {0}")]
    Io(#[from] std::io::Error),
    /// It started but never answered its health check.
    #[error("etcd did not become healthy within {0:?}; its log: {1}")]
    NotHealthy(Duration, String),
}

/// A running etcd member, killed (SIGKILL) when dropped, its data removed.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    binary: PathBuf,
    tls: Option<EtcdServerTls>,
}

/// PEM files for an etcd that serves clients over TLS and requires client
/// certificates signed by `ca`.
#[derive(Debug, Clone)]
pub struct EtcdServerTls {
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// The server certificate (with 127.0.0.1 among its names).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

impl EtcdServer {
    /// Starts a fresh single-member etcd on free loopback ports.
    pub fn start() -> Result<Self, EtcdError> {
        Self::start_with(None)
    }

    /// Starts a fresh member serving clients over TLS only, with client
    /// certificates required (`--client-cert-auth`).
    pub fn start_tls(tls: EtcdServerTls) -> Result<Self, EtcdError> {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<EtcdServerTls>) -> Result<Self, EtcdError> {
        let binary = find_binary()?;
        let dir = tempfile::Builder::new().prefix("bulwark-etcd-").tempdir()?;
        let mut server = EtcdServer {
            child: None,
            dir,
            client_port: free_loopback_port()?,
            peer_port: free_loopback_port()?,
            binary,
            tls,
        };
        server.spawn()?;
        Ok(server)
    }

    /// The client URL, e.g. `http://127.0.0.1:40123` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The member's process ID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the member with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the member (SIGKILL) and starts it again on the same data and
    /// ports; returns once it is healthy.
    pub fn restart(&mut self) -> Result<(), EtcdError> {
        self.kill();
        self.spawn()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn spawn(&mut self) -> Result<(), EtcdError> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut command = Command::new(&self.binary);
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cert-file={}", tls.cert.display()))
                .arg(format!("--key-file={}", tls.key.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca.display()))
                .arg("--client-cert-auth");
        }
        let child = command
            .arg("--name=bulwark-test")
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=bulwark-test={peer}"))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.wait_healthy(Duration::from_secs(30))
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), EtcdError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(EtcdError::NotHealthy(
                    timeout,
                    format!("exited with {status}: {}", read_log(&self.log_path())),
                ));
            }
            let ready = match self.tls {
                // The plain health check cannot speak TLS; a listening port
                // is as far as the harness checks (callers retry their first
                // request).
                Some(_) => TcpStream::connect(("127.0.0.1", self.client_port)).is_ok(),
                None => healthy(self.client_port),
            };
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(EtcdError::NotHealthy(timeout, read_log(&self.log_path())))
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn find_binary() -> Result<PathBuf, EtcdError> {
    let default = Path::new("/usr/bin/etcd");
    if default.exists() {
        return Ok(default.to_owned());
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("etcd"))
                .find(|candidate| candidate.exists())
        })
        .ok_or_else(|| EtcdError::NotInstalled(default.display().to_string()))
}

/// Asks etcd's `/health` endpoint, which reports true once the member has a
/// leader and serves requests.
fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.") && response.contains("\"health\":\"true\"")
}

fn read_log(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}
