//! `/stats/summary`: upstream's Summary API (`stats/v1alpha1`), the part
//! `kubectl top` needs through the API server's `metrics.k8s.io`: the
//! node's CPU and memory from `/proc`, each running container's from its
//! cgroup (`cpu.stat`, `memory.current`, `memory.stat` through the
//! runtime), pods as the sum of their containers. `/metrics/resource` gives
//! the same figures in Prometheus text, named as upstream's kubelet names
//! them.
//!
//! CPU usage in cores is a rate: it needs two samples. The last sample of
//! every counter is kept; a counter seen for the first time is sampled
//! again a moment later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};

use crate::server::{ApiState, Body, text};

/// A cumulative CPU counter read at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CpuSample {
    pub(crate) usage_ns: u64,
    pub(crate) at: Instant,
}

/// The last CPU samples, by counter ("node" or a container id).
#[derive(Default)]
pub(crate) struct CpuHistory {
    last: Mutex<HashMap<String, CpuSample>>,
}

/// How old a previous sample may be to give a rate.
const MAX_SAMPLE_AGE: Duration = Duration::from_secs(600);
/// The shortest interval a rate is computed over.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Nanocores used between two samples.
pub(crate) fn rate(before: CpuSample, now: CpuSample) -> Option<u64> {
    let elapsed = now.at.checked_duration_since(before.at)?;
    if elapsed < MIN_INTERVAL || now.usage_ns < before.usage_ns {
        return None;
    }
    let used = u128::from(now.usage_ns - before.usage_ns);
    u64::try_from(used * 1_000_000_000 / elapsed.as_nanos().max(1)).ok()
}

/// Memory figures of the node from `/proc/meminfo` (kB values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeMemory {
    pub(crate) available: u64,
    pub(crate) usage: u64,
    pub(crate) working_set: u64,
}

pub(crate) fn parse_meminfo(text: &str) -> NodeMemory {
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let total = field("MemTotal");
    let available = field("MemAvailable");
    NodeMemory {
        available,
        usage: total.saturating_sub(field("MemFree")),
        working_set: total.saturating_sub(available),
    }
}

/// Busy CPU time of the whole node in nanoseconds, from `/proc/stat`'s
/// first line (user nice system idle iowait irq softirq steal …, in
/// clock ticks): everything but idle and iowait.
pub(crate) fn parse_proc_stat(text: &str, ticks_per_second: u64) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| *t)
        .sum();
    Some(busy.saturating_mul(1_000_000_000 / ticks_per_second.max(1)))
}

/// One reading of every counter.
struct Reading {
    node_cpu: Option<CpuSample>,
    memory: NodeMemory,
    containers: HashMap<String, (CpuSample, bulwark_runtime::ContainerStats)>,
}

fn read_all(state: &ApiState, pods: &[crate::pod::RecordedPod]) -> Reading {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(100);
    let at = Instant::now();
    let node_cpu = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_proc_stat(&t, ticks))
        .map(|usage_ns| CpuSample { usage_ns, at });
    let memory = std::fs::read_to_string("/proc/meminfo")
        .map(|t| parse_meminfo(&t))
        .unwrap_or_default();
    let mut containers = HashMap::new();
    for pod in pods {
        for (_, id) in &pod.containers {
            if let Ok(stats) = state.runtime.stats(id) {
                let sample = CpuSample {
                    usage_ns: stats.cpu_usage_ns,
                    at: Instant::now(),
                };
                containers.insert(id.clone(), (sample, stats));
            }
        }
    }
    Reading {
        node_cpu,
        memory,
        containers,
    }
}

/// `GET /stats/summary`.
pub(crate) async fn summary(state: std::sync::Arc<ApiState>) -> Response<Body> {
    let pods = {
        let dir = state.pods_dir.clone();
        tokio::task::spawn_blocking(move || crate::pod::recorded_pods(&dir))
            .await
            .unwrap_or_default()
    };
    let read = |state: std::sync::Arc<ApiState>, pods: Vec<crate::pod::RecordedPod>| async move {
        tokio::task::spawn_blocking(move || read_all(&state, &pods))
            .await
            .ok()
    };
    let Some(mut reading) = read(state.clone(), pods.clone()).await else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading statistics failed",
        );
    };
    let mut previous: HashMap<String, CpuSample> = state
        .cpu_history
        .last
        .lock()
        .map(|h| h.clone())
        .unwrap_or_default();
    let usable = |p: Option<&CpuSample>, now: Option<CpuSample>| matches!((p, now), (Some(p), Some(n)) if n.at.saturating_duration_since(p.at) <= MAX_SAMPLE_AGE && rate(*p, n).is_some());
    let missing = !usable(previous.get("node"), reading.node_cpu)
        || reading
            .containers
            .iter()
            .any(|(id, (s, _))| !usable(previous.get(id), Some(*s)));
    if missing {
        // First sight of some counter: this reading becomes the previous one.
        if let Some(n) = reading.node_cpu {
            previous.insert("node".into(), n);
        }
        for (id, (s, _)) in &reading.containers {
            previous.insert(id.clone(), *s);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(again) = read(state.clone(), pods.clone()).await else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading statistics failed",
            );
        };
        reading = again;
    }
    if let Ok(mut last) = state.cpu_history.last.lock() {
        last.clear();
        if let Some(n) = reading.node_cpu {
            last.insert("node".into(), n);
        }
        for (id, (s, _)) in &reading.containers {
            last.insert(id.clone(), *s);
        }
    }
    let body = render(&state.node_name, &pods, &reading, &previous);
    let mut response = Response::new(
        Full::new(Bytes::from(serde_json::to_vec(&body).unwrap_or_default())).boxed(),
    );
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// `GET /metrics/resource`: the same figures as upstream's kubelet
/// exposes them to Prometheus (cumulative CPU seconds, working sets).
pub(crate) async fn resource_metrics(state: std::sync::Arc<ApiState>) -> Response<Body> {
    let pods = {
        let dir = state.pods_dir.clone();
        tokio::task::spawn_blocking(move || crate::pod::recorded_pods(&dir))
            .await
            .unwrap_or_default()
    };
    let reading = {
        let (state, pods) = (state.clone(), pods.clone());
        tokio::task::spawn_blocking(move || read_all(&state, &pods)).await
    };
    let Ok(reading) = reading else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading statistics failed",
        );
    };
    let mut response = Response::new(Full::new(Bytes::from(prometheus(&pods, &reading))).boxed());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// A Prometheus label value, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn prometheus(pods: &[crate::pod::RecordedPod], reading: &Reading) -> String {
    use std::fmt::Write as _;
    let seconds = |ns: u64| ns as f64 / 1e9;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let mut container_cpu = Vec::new();
    let mut container_memory = Vec::new();
    let mut pod_cpu = Vec::new();
    let mut pod_memory = Vec::new();
    for pod in pods {
        let (ns, name) = (label(&pod.namespace), label(&pod.name));
        let (mut cpu, mut memory, mut any) = (0u64, 0u64, false);
        for (container, id) in &pod.containers {
            let Some((sample, stats)) = reading.containers.get(id) else {
                continue;
            };
            any = true;
            let labels = format!(
                "{{container=\"{}\",namespace=\"{ns}\",pod=\"{name}\"}}",
                label(container)
            );
            container_cpu.push((labels.clone(), seconds(sample.usage_ns)));
            container_memory.push((labels, stats.memory_working_set_bytes as f64));
            cpu += sample.usage_ns;
            memory += stats.memory_working_set_bytes;
        }
        if any {
            let labels = format!("{{namespace=\"{ns}\",pod=\"{name}\"}}");
            pod_cpu.push((labels.clone(), seconds(cpu)));
            pod_memory.push((labels, memory as f64));
        }
    }
    family(
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
        container_cpu,
    );
    family(
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
        container_memory,
    );
    family(
        "node_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the node in core-seconds",
        reading
            .node_cpu
            .map(|n| (String::new(), seconds(n.usage_ns)))
            .into_iter()
            .collect(),
    );
    family(
        "node_memory_working_set_bytes",
        "gauge",
        "Current working set of the node in bytes",
        vec![(String::new(), reading.memory.working_set as f64)],
    );
    family(
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
        pod_cpu,
    );
    family(
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
        pod_memory,
    );
    out
}

fn render(
    node_name: &str,
    pods: &[crate::pod::RecordedPod],
    reading: &Reading,
    previous: &HashMap<String, CpuSample>,
) -> Value {
    let time = jiff::Timestamp::now().to_string();
    let cpu = |usage_ns: u64, nano_cores: Option<u64>| {
        let mut v = json!({"time": time, "usageCoreNanoSeconds": usage_ns});
        if let Some(n) = nano_cores {
            v["usageNanoCores"] = json!(n);
        }
        v
    };
    let node_cpu = reading
        .node_cpu
        .map(|n| cpu(n.usage_ns, previous.get("node").and_then(|p| rate(*p, n))));
    let mut pod_items = Vec::new();
    for pod in pods {
        let mut containers = Vec::new();
        let (mut cpu_ns, mut cores, mut usage, mut working) = (0u64, 0u64, 0u64, 0u64);
        for (name, id) in &pod.containers {
            let Some((sample, stats)) = reading.containers.get(id) else {
                continue;
            };
            let nano = previous.get(id).and_then(|p| rate(*p, *sample));
            cpu_ns += sample.usage_ns;
            cores += nano.unwrap_or(0);
            usage += stats.memory_usage_bytes;
            working += stats.memory_working_set_bytes;
            containers.push(json!({
                "name": name,
                "startTime": pod.start_time,
                "cpu": cpu(sample.usage_ns, nano),
                "memory": {
                    "time": time,
                    "usageBytes": stats.memory_usage_bytes,
                    "workingSetBytes": stats.memory_working_set_bytes,
                },
            }));
        }
        pod_items.push(json!({
            "podRef": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
            "startTime": pod.start_time,
            "containers": containers,
            "cpu": cpu(cpu_ns, Some(cores)),
            "memory": {"time": time, "usageBytes": usage, "workingSetBytes": working},
        }));
    }
    json!({
        "node": {
            "nodeName": node_name,
            "cpu": node_cpu,
            "memory": {
                "time": time,
                "availableBytes": reading.memory.available,
                "usageBytes": reading.memory.usage,
                "workingSetBytes": reading.memory.working_set,
            },
        },
        "pods": pod_items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_rates_come_from_two_samples() {
        let t0 = Instant::now();
        let before = CpuSample {
            usage_ns: 1_000_000_000,
            at: t0,
        };
        let after = CpuSample {
            usage_ns: 1_500_000_000,
            at: t0 + Duration::from_secs(2),
        };
        // Half a second of CPU over two seconds: a quarter core.
        assert_eq!(rate(before, after), Some(250_000_000));
        // Too close together, or a counter that went back (a new container).
        let close = CpuSample {
            usage_ns: 2_000_000_000,
            at: t0 + Duration::from_millis(10),
        };
        assert_eq!(rate(before, close), None);
        let reset = CpuSample {
            usage_ns: 5,
            at: t0 + Duration::from_secs(2),
        };
        assert_eq!(rate(before, reset), None);
    }

    #[test]
    fn resource_metrics_render_as_prometheus_text() {
        let pods = vec![crate::pod::RecordedPod {
            namespace: "shop".into(),
            name: "we\"b".into(),
            uid: "u".into(),
            start_time: None,
            containers: vec![("app".into(), "c1".into())],
        }];
        let at = Instant::now();
        let reading = Reading {
            node_cpu: Some(CpuSample {
                usage_ns: 2_500_000_000,
                at,
            }),
            memory: NodeMemory {
                working_set: 1024,
                ..NodeMemory::default()
            },
            containers: HashMap::from([(
                "c1".to_owned(),
                (
                    CpuSample {
                        usage_ns: 500_000_000,
                        at,
                    },
                    bulwark_runtime::ContainerStats {
                        cpu_usage_ns: 500_000_000,
                        memory_usage_bytes: 4096,
                        memory_working_set_bytes: 2048,
                    },
                ),
            )]),
        };
        let text = prometheus(&pods, &reading);
        for line in [
            "# TYPE container_cpu_usage_seconds_total counter",
            "container_cpu_usage_seconds_total{container=\"app\",namespace=\"shop\",pod=\"we\\\"b\"} 0.5",
            "container_memory_working_set_bytes{container=\"app\",namespace=\"shop\",pod=\"we\\\"b\"} 2048",
            "node_cpu_usage_seconds_total 2.5",
            "node_memory_working_set_bytes 1024",
            "pod_memory_working_set_bytes{namespace=\"shop\",pod=\"we\\\"b\"} 2048",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn node_figures_come_from_proc() {
        let meminfo = "MemTotal:       16000000 kB\nMemFree:         4000000 kB\nMemAvailable:   10000000 kB\nBuffers: 1 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            NodeMemory {
                available: 10_000_000 * 1024,
                usage: 12_000_000 * 1024,
                working_set: 6_000_000 * 1024,
            }
        );
        let stat = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n";
        // user+nice+system+irq+softirq+steal = 160 ticks of 10 ms.
        assert_eq!(parse_proc_stat(stat, 100), Some(1_600_000_000));
        assert_eq!(parse_proc_stat("intr 1 2 3", 100), None);
    }
}
