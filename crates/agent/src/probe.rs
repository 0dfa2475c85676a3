//! Liveness, readiness and startup probes (exec, tcpSocket, httpGet, grpc) with
//! upstream's timing fields, and lifecycle hooks (exec, httpGet, sleep).
//!
//! Network probes connect from inside the pod's network namespace (a
//! dedicated thread joins it and ends afterwards), to the pod's address or
//! its loopback, so they work before and without a pod network.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_runtime::Runtime;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Where network probes and hooks connect.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The pod's pinned network namespace; `None` for hostNetwork pods.
    pub(crate) netns: Option<PathBuf>,
    /// The host to connect to: the pod IP, or loopback.
    pub(crate) host: String,
}

#[derive(Debug)]
struct ProbeState {
    probe: Probe,
    successes: i32,
    failures: i32,
    last: Option<Instant>,
    passed: bool,
}

impl ProbeState {
    fn new(probe: Probe, passed: bool) -> Self {
        ProbeState {
            probe,
            successes: 0,
            failures: 0,
            last: None,
            passed,
        }
    }

    fn due(&self, running_for: Duration) -> bool {
        let initial =
            Duration::from_secs(self.probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        let period = Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64);
        running_for >= initial && self.last.is_none_or(|t| t.elapsed() >= period)
    }

    /// Records a result; returns whether the verdict flipped to failed.
    fn record(&mut self, ok: bool) -> bool {
        self.last = Some(Instant::now());
        if ok {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                self.passed = true;
            }
            false
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) && self.passed {
                self.passed = false;
                return true;
            }
            if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                return true;
            }
            false
        }
    }
}

/// The probes of one container run.
#[derive(Debug)]
pub(crate) struct Probes {
    startup: Option<ProbeState>,
    liveness: Option<ProbeState>,
    readiness: Option<ProbeState>,
    ports: Vec<(String, i32)>,
}

/// What one round of probing asks of the worker.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Events to record (reason, message).
    pub(crate) events: Vec<(&'static str, String)>,
    /// Restart the container (liveness or startup failed).
    pub(crate) kill: bool,
}

impl Probes {
    /// Fresh probe state for a container that just started.
    pub(crate) fn new(c: &Container) -> Probes {
        Probes {
            startup: c.startup_probe.clone().map(|p| ProbeState::new(p, false)),
            liveness: c.liveness_probe.clone().map(|p| ProbeState::new(p, true)),
            readiness: c.readiness_probe.clone().map(|p| ProbeState::new(p, false)),
            ports: c
                .ports
                .iter()
                .flatten()
                .filter_map(|p| Some((p.name.clone()?, p.container_port)))
                .collect(),
        }
    }

    /// Startup done (no startup probe, or it passed).
    pub(crate) fn started(&self) -> bool {
        self.startup.as_ref().is_none_or(|s| s.passed)
    }

    /// Readiness (no readiness probe: ready once started).
    pub(crate) fn ready(&self) -> bool {
        self.readiness.as_ref().is_none_or(|s| s.passed)
    }

    /// Runs the probes that are due.
    pub(crate) async fn run(
        &mut self,
        runtime: &Arc<Runtime>,
        id: &str,
        started_at: &str,
        target: &Target,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let running_for = started_at
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| {
                let secs = jiff::Timestamp::now().as_second() - t.as_second();
                Duration::from_secs(secs.max(0) as u64)
            })
            .unwrap_or_default();
        let ports = self.ports.clone();
        if let Some(startup) = self.startup.as_mut().filter(|s| !s.passed) {
            if startup.due(running_for) {
                let result = check(runtime, id, &startup.probe, target, &ports).await;
                if let Err(message) = &result {
                    outcome
                        .events
                        .push(("Unhealthy", format!("Startup probe failed: {message}")));
                }
                if startup.record(result.is_ok()) {
                    outcome.kill = true;
                }
            }
            return outcome;
        }
        if let Some(liveness) = self.liveness.as_mut()
            && liveness.due(running_for)
        {
            let result = check(runtime, id, &liveness.probe, target, &ports).await;
            if let Err(message) = &result {
                outcome
                    .events
                    .push(("Unhealthy", format!("Liveness probe failed: {message}")));
            }
            if liveness.record(result.is_ok()) {
                outcome.kill = true;
            }
        }
        if let Some(readiness) = self.readiness.as_mut()
            && readiness.due(running_for)
        {
            let result = check(runtime, id, &readiness.probe, target, &ports).await;
            if let Err(message) = &result {
                outcome
                    .events
                    .push(("Unhealthy", format!("Readiness probe failed: {message}")));
            }
            readiness.record(result.is_ok());
        }
        outcome
    }
}

/// The grace period of a liveness kill: the probe's own, else the pod's.
pub(crate) fn liveness_grace(c: &Container, pod: &Pod) -> u64 {
    c.liveness_probe
        .as_ref()
        .and_then(|p| p.termination_grace_period_seconds)
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0) as u64
}

fn port(port: &IntOrString, named: &[(String, i32)]) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .or_else(|| name.parse().ok())
            .ok_or_else(|| format!("couldn't find port: {name}"))?,
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

async fn check(
    runtime: &Arc<Runtime>,
    id: &str,
    probe: &Probe,
    target: &Target,
    ports: &[(String, i32)],
) -> Result<(), String> {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        return exec_command(runtime, id, command, timeout).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = port(&tcp.port, ports)?;
        let host = tcp
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| target.host.clone());
        return in_netns(target.netns.clone(), move || {
            let addr = resolve(&host, port)?;
            TcpStream::connect_timeout(&addr, timeout)
                .map(drop)
                .map_err(|e| format!("dial tcp {addr}: connect: {}", e.to_string().to_lowercase()))
        })
        .await;
    }
    if let Some(http) = &probe.http_get {
        let port = port(&http.port, ports)?;
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| target.host.clone());
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        if http.scheme.as_deref() == Some("HTTPS") {
            return Err("HTTPS probes are not supported by this node yet".into());
        }
        return in_netns(target.netns.clone(), move || {
            http_get(&host, port, &path, &headers, timeout)
        })
        .await;
    }
    if let Some(grpc) = &probe.grpc {
        let port = u16::try_from(grpc.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port number: {}", grpc.port))?;
        let host = target.host.clone();
        let addr = resolve(&host, port)?;
        // Connected inside the pod's namespace; the call runs here.
        let stream = in_netns(target.netns.clone(), move || {
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
                format!(
                    "timeout: failed to connect service \"{addr}\" within {}s: {}",
                    timeout.as_secs(),
                    e.to_string().to_lowercase()
                )
            })
        })
        .await?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())?;
        let service = grpc.service.clone().unwrap_or_default();
        return crate::grpc::health_check(stream, &addr.to_string(), &service, timeout).await;
    }
    Ok(())
}

async fn exec_command(
    runtime: &Arc<Runtime>,
    id: &str,
    command: Vec<String>,
    timeout: Duration,
) -> Result<(), String> {
    let runtime = runtime.clone();
    let id = id.to_owned();
    let out = tokio::task::spawn_blocking(move || runtime.exec(&id, &command, timeout))
        .await
        .map_err(|e| e.to_string())?;
    match out {
        Ok(output) if output.code == 0 => Ok(()),
        Ok(output) => {
            let text = String::from_utf8_lossy(&output.stdout).trim().to_owned()
                + String::from_utf8_lossy(&output.stderr).trim();
            if text.is_empty() {
                Err(format!("command terminated with exit code {}", output.code))
            } else {
                Err(text)
            }
        }
        Err(bulwark_runtime::RuntimeError::Timeout { after, .. }) => {
            Err(format!("command timed out after {}s", after.as_secs()))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("no address for {host}"))
}

fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let addr = resolve(host, port)?;
    let url = format!("http://{addr}{path}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        format!(
            "Get \"{url}\": dial tcp {addr}: connect: {}",
            e.to_string().to_lowercase()
        )
    })?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream
            .read(&mut head[read..])
            .map_err(|_| format!("Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"))?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// Runs `f` on a fresh thread inside `netns` (or the agent's own), which
/// then ends: no pooled thread is ever left in a pod's namespace.
pub(crate) async fn in_netns<T, F>(netns: Option<PathBuf>, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("bulwark-probe".into())
        .spawn(move || {
            let result = (|| {
                if let Some(path) = netns {
                    let file = std::fs::File::open(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| format!("joining the pod's network: {e}"))?;
                }
                f()
            })();
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(e.to_string());
    }
    rx.await
        .unwrap_or_else(|_| Err("probe thread failed".into()))
}

/// Runs a lifecycle hook to completion.
pub(crate) async fn run_hook(
    runtime: &Arc<Runtime>,
    id: &str,
    handler: &LifecycleHandler,
    target: &Target,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        // Hooks are bounded by the caller (grace period); allow long runs.
        return exec_command(runtime, id, command, Duration::from_secs(3600)).await;
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
        return Ok(());
    }
    if let Some(http) = &handler.http_get {
        let port = port(&http.port, &[])?;
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| target.host.clone());
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        return in_netns(target.netns.clone(), move || {
            http_get(&host, port, &path, &[], Duration::from_secs(10))
        })
        .await;
    }
    Err("unsupported lifecycle handler".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(failure_threshold: i32) -> Probe {
        Probe {
            failure_threshold: Some(failure_threshold),
            period_seconds: Some(1),
            ..Probe::default()
        }
    }

    #[test]
    fn liveness_fails_only_after_the_threshold() {
        let mut state = ProbeState::new(probe(3), true);
        assert!(!state.record(false));
        assert!(!state.record(false));
        assert!(state.record(false), "third failure in a row");
        let mut state = ProbeState::new(probe(3), true);
        assert!(!state.record(false));
        assert!(!state.record(true));
        assert!(!state.record(false));
        assert!(!state.record(false), "a success resets the count");
    }

    #[test]
    fn readiness_starts_false_and_passes_after_success() {
        let c = Container {
            name: "c".into(),
            readiness_probe: Some(probe(1)),
            ..Container::default()
        };
        let mut probes = Probes::new(&c);
        assert!(!probes.ready());
        probes.readiness.as_mut().unwrap().record(true);
        assert!(probes.ready());
        probes.readiness.as_mut().unwrap().record(false);
        assert!(!probes.ready());
    }

    #[test]
    fn named_ports_resolve() {
        let named = vec![("http".to_owned(), 8080)];
        assert_eq!(port(&IntOrString::String("http".into()), &named), Ok(8080));
        assert_eq!(port(&IntOrString::Int(80), &named), Ok(80));
        assert!(port(&IntOrString::String("nope".into()), &named).is_err());
        assert!(port(&IntOrString::Int(70000), &named).is_err());
    }
}
