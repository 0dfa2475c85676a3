//! Node-pressure eviction, as the kubelet's eviction manager does it with
//! hard thresholds (`--eviction-hard`): every monitoring interval the
//! signals are observed and compared with the thresholds; a threshold met
//! sets the node's pressure condition (MemoryPressure, DiskPressure,
//! PIDPressure) and, for memory and disk, evicts one pod — BestEffort and
//! pods using more than they requested first, then by priority, then by
//! how far over their request they are — until the signal recovers. New
//! pods are refused at admission under pressure as upstream refuses them.
//!
//! The thresholds and the ranking are pure and unit-tested; [`observe`]
//! reads `/proc` and `statvfs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bulwark_api::quantity::Quantity;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt as _};
use tokio::sync::watch;

use crate::container::QosClass;
use crate::node::Pressure;

/// An eviction signal (upstream's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Signal {
    /// `memory.available`: memory available to the node (MemAvailable).
    MemoryAvailable,
    /// `nodefs.available`: free space on the agent's filesystem.
    NodefsAvailable,
    /// `nodefs.inodesFree`: free inodes there.
    NodefsInodesFree,
    /// `imagefs.available`: free space where images are kept.
    ImagefsAvailable,
    /// `imagefs.inodesFree`.
    ImagefsInodesFree,
    /// `pid.available`: process ids left.
    PidAvailable,
}

impl Signal {
    const ALL: [(Signal, &'static str); 6] = [
        (Signal::MemoryAvailable, "memory.available"),
        (Signal::NodefsAvailable, "nodefs.available"),
        (Signal::NodefsInodesFree, "nodefs.inodesFree"),
        (Signal::ImagefsAvailable, "imagefs.available"),
        (Signal::ImagefsInodesFree, "imagefs.inodesFree"),
        (Signal::PidAvailable, "pid.available"),
    ];

    /// Upstream's name.
    pub fn name(self) -> &'static str {
        Signal::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("", |(_, n)| n)
    }

    /// The resource an eviction for this signal reclaims, as the eviction
    /// message names it.
    fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodefsAvailable | Signal::ImagefsAvailable => "ephemeral-storage",
            Signal::NodefsInodesFree | Signal::ImagefsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
        }
    }
}

/// A threshold's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// An absolute amount (bytes, inodes, pids).
    Quantity(u64),
    /// A share of the capacity, in [0, 1].
    Percentage(f64),
}

impl Value {
    fn amount(self, capacity: u64) -> u64 {
        match self {
            Value::Quantity(q) => q,
            Value::Percentage(p) => (capacity as f64 * p) as u64,
        }
    }
}

/// Hard eviction thresholds: `signal < value`, each.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds(Vec<(Signal, Value)>);

impl Default for Thresholds {
    /// The kubelet's defaults, less `imagefs.available<15%`: Bulwark keeps
    /// images on the agent's own filesystem, which `nodefs` watches.
    fn default() -> Self {
        Thresholds(vec![
            (Signal::MemoryAvailable, Value::Quantity(100 * 1024 * 1024)),
            (Signal::NodefsAvailable, Value::Percentage(0.10)),
            (Signal::NodefsInodesFree, Value::Percentage(0.05)),
        ])
    }
}

/// Why `--eviction-hard` could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid eviction threshold {0:?}: {1}")]
pub struct ThresholdError(String, String);

impl std::str::FromStr for Thresholds {
    type Err = ThresholdError;

    /// `memory.available<100Mi,nodefs.available<10%`, as the kubelet's
    /// `--eviction-hard` (only `<`; a signal at most once). Signals not
    /// named have no threshold, as upstream: naming any replaces all the
    /// defaults.
    fn from_str(text: &str) -> Result<Thresholds, ThresholdError> {
        let mut out: Vec<(Signal, Value)> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = |why: &str| ThresholdError(item.to_owned(), why.to_owned());
            let (name, value) = item
                .split_once('<')
                .ok_or_else(|| bad("expected <signal><<quantity or percentage>"))?;
            let signal = Signal::ALL
                .iter()
                .find(|(_, n)| *n == name.trim())
                .map(|(s, _)| *s)
                .ok_or_else(|| {
                    bad(&format!(
                        "unknown signal; one of {}",
                        Signal::ALL.map(|(_, n)| n).join(", ")
                    ))
                })?;
            if out.iter().any(|(s, _)| *s == signal) {
                return Err(bad("the signal is given twice"));
            }
            let value = value.trim();
            let value = match value.strip_suffix('%') {
                Some(percent) => {
                    let p: f64 = percent
                        .parse()
                        .map_err(|_| bad("the percentage is not a number"))?;
                    if !(0.0..=100.0).contains(&p) {
                        return Err(bad("the percentage must be within 0% and 100%"));
                    }
                    Value::Percentage(p / 100.0)
                }
                None => {
                    let q = Quantity::parse(value).map_err(|e| bad(&e.to_string()))?;
                    Value::Quantity(
                        u64::try_from(q.value())
                            .map_err(|_| bad("the quantity must not be negative"))?,
                    )
                }
            };
            out.push((signal, value));
        }
        Ok(Thresholds(out))
    }
}

impl Thresholds {
    /// The threshold for `signal` as an amount of `capacity`, if any.
    pub(crate) fn amount(&self, signal: Signal, capacity: u64) -> Option<u64> {
        self.0
            .iter()
            .find(|(s, _)| *s == signal)
            .map(|(_, v)| v.amount(capacity))
    }

    /// The thresholds `observed` meets.
    pub(crate) fn met(&self, observed: &Observations) -> Vec<Met> {
        self.0
            .iter()
            .filter_map(|(signal, value)| {
                let (available, capacity) = observed.get(*signal)?;
                let threshold = value.amount(capacity);
                (available < threshold).then_some(Met {
                    signal: *signal,
                    threshold,
                    available,
                })
            })
            .collect()
    }
}

/// A threshold met: the signal, the threshold and what is available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Met {
    pub(crate) signal: Signal,
    pub(crate) threshold: u64,
    pub(crate) available: u64,
}

impl Met {
    /// Upstream's eviction message for a pod evicted for this threshold
    /// (`pkg/kubelet/eviction/helpers.go`'s fragments, trailing spaces
    /// included), with the containers over their request.
    pub(crate) fn message(&self, containers: &[ContainerUsage]) -> String {
        let format = |n: u64| match self.signal {
            Signal::MemoryAvailable | Signal::NodefsAvailable | Signal::ImagefsAvailable => {
                binary_quantity(n)
            }
            _ => n.to_string(),
        };
        let mut message = format!(
            "The node was low on resource: {}. Threshold quantity: {}, available: {}. ",
            self.signal.resource(),
            format(self.threshold),
            format(self.available),
        );
        for c in containers.iter().filter(|c| c.usage > c.request) {
            message.push_str(&format!(
                "Container {} was using {}, request is {}, has larger consumption of {}. ",
                c.name,
                binary_quantity(c.usage),
                binary_quantity(c.request),
                self.signal.resource(),
            ));
        }
        message
    }
}

/// `n` bytes as a Kubernetes binary quantity (`100Mi`, `1536Ki`, `1000`).
pub(crate) fn binary_quantity(n: u64) -> String {
    if n > 0 && n.is_multiple_of(1024) {
        for (unit, size) in [
            ("Ei", 1u64 << 60),
            ("Pi", 1 << 50),
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if n.is_multiple_of(size) {
                return format!("{}{unit}", n / size);
            }
        }
    }
    n.to_string()
}

/// What the signals read now: (available, capacity) each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Observations {
    pub(crate) memory: Option<(u64, u64)>,
    pub(crate) nodefs: Option<(u64, u64)>,
    pub(crate) nodefs_inodes: Option<(u64, u64)>,
    pub(crate) imagefs: Option<(u64, u64)>,
    pub(crate) imagefs_inodes: Option<(u64, u64)>,
    pub(crate) pids: Option<(u64, u64)>,
}

impl Observations {
    fn get(&self, signal: Signal) -> Option<(u64, u64)> {
        match signal {
            Signal::MemoryAvailable => self.memory,
            Signal::NodefsAvailable => self.nodefs,
            Signal::NodefsInodesFree => self.nodefs_inodes,
            Signal::ImagefsAvailable => self.imagefs,
            Signal::ImagefsInodesFree => self.imagefs_inodes,
            Signal::PidAvailable => self.pids,
        }
    }
}

/// Reads the signals: memory from `/proc/meminfo`, the filesystems of
/// `state_dir` (nodefs) and `image_dir` (imagefs) by `statvfs`, pids from
/// `pid_max` and `/proc/loadavg`.
pub(crate) fn observe(state_dir: &Path, image_dir: &Path) -> Observations {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = match (
        crate::host::meminfo_field(&meminfo, "MemAvailable"),
        crate::host::meminfo_total(&meminfo),
    ) {
        (Some(available), Some(total)) => Some((available, total)),
        _ => None,
    };
    let fs = |dir: &Path| {
        let s = nix::sys::statvfs::statvfs(dir).ok()?;
        let block = s.fragment_size();
        Some((
            (s.blocks_available() * block, s.blocks() * block),
            (s.files_available(), s.files()),
        ))
    };
    let nodefs = fs(state_dir);
    let imagefs = fs(image_dir);
    let read_u64 = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let running = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .and_then(|f| f.split('/').nth(1).and_then(|n| n.parse::<u64>().ok()));
    let pids = match (read_u64("/proc/sys/kernel/pid_max"), running) {
        (Some(max), Some(running)) => Some((max.saturating_sub(running), max)),
        _ => None,
    };
    Observations {
        memory,
        nodefs: nodefs.map(|(space, _)| space),
        nodefs_inodes: nodefs.map(|(_, inodes)| inodes),
        imagefs: imagefs.map(|(space, _)| space),
        imagefs_inodes: imagefs.map(|(_, inodes)| inodes),
        pids,
    }
}

/// One container's use of the resource being reclaimed, and its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContainerUsage {
    pub(crate) name: String,
    pub(crate) usage: u64,
    pub(crate) request: u64,
}

/// A pod that may be evicted.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub(crate) uid: String,
    pub(crate) name: String,
    pub(crate) priority: i32,
    pub(crate) containers: Vec<ContainerUsage>,
}

impl Candidate {
    fn usage(&self) -> u64 {
        self.containers.iter().map(|c| c.usage).sum()
    }

    fn request(&self) -> u64 {
        self.containers.iter().map(|c| c.request).sum()
    }
}

/// Upstream's `SystemCriticalPriority`: pods at or above it are never
/// evicted.
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// Whether the kubelet treats `pod` as critical (never evicted, admitted
/// under pressure): static and mirror pods, and system-critical priority.
pub(crate) fn is_critical(pod: &Pod) -> bool {
    let annotations = pod.metadata.annotations.as_ref();
    let source = annotations.and_then(|a| a.get("kubernetes.io/config.source"));
    let mirror = annotations.is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    mirror
        || source.is_some_and(|s| s != "api")
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.priority)
            .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
}

/// Orders candidates for eviction, first to go first: those using more
/// than they requested (BestEffort pods request nothing), then lower
/// priority, then the most over their request (upstream's
/// `rankMemoryPressure` and `rankDiskPressureFunc`).
pub(crate) fn rank(candidates: &mut [Candidate]) {
    candidates.sort_by(|a, b| {
        let exceeds = |c: &Candidate| c.usage() > c.request();
        let over = |c: &Candidate| i128::from(c.usage()) - i128::from(c.request());
        exceeds(b)
            .cmp(&exceeds(a))
            .then(a.priority.cmp(&b.priority))
            .then(over(b).cmp(&over(a)))
    });
}

/// The signals whose pressure refuses new pods, and the condition each
/// sets: memory refuses BestEffort pods (unless they tolerate the
/// memory-pressure taint), disk refuses every pod; critical pods pass.
/// Returns upstream's rejection message, if refused.
pub(crate) fn admit(pod: &Pod, memory: bool, disk: bool) -> Result<(), String> {
    if is_critical(pod) {
        return Ok(());
    }
    let message = |condition: &str| format!("The node had condition: [{condition}]. ");
    if disk {
        return Err(message("DiskPressure"));
    }
    if memory && crate::container::qos_class(pod) == QosClass::BestEffort {
        let tolerated = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_ref())
            .is_some_and(|ts| {
                ts.iter().any(|t| {
                    let key_ok = match t.operator.as_deref() {
                        Some("Exists") => t
                            .key
                            .as_deref()
                            .is_none_or(|k| k.is_empty() || k == MEMORY_PRESSURE_TAINT),
                        _ => t.key.as_deref() == Some(MEMORY_PRESSURE_TAINT),
                    };
                    let effect_ok = t
                        .effect
                        .as_deref()
                        .is_none_or(|e| e.is_empty() || e == "NoSchedule");
                    key_ok && effect_ok
                })
            });
        if !tolerated {
            return Err(message("MemoryPressure"));
        }
    }
    Ok(())
}

/// The taint the node lifecycle controller puts on a node under memory
/// pressure.
const MEMORY_PRESSURE_TAINT: &str = "node.kubernetes.io/memory-pressure";

/// The eviction manager: observes the signals every `interval`, publishes
/// the pressure they amount to, and while a memory or disk threshold is
/// met hands one pod per interval to its worker to be evicted.
pub(crate) async fn manage(
    ctx: Arc<crate::pod::Ctx>,
    thresholds: Thresholds,
    root: PathBuf,
    interval: Duration,
    pressure: watch::Sender<Pressure>,
) {
    loop {
        tokio::time::sleep(interval).await;
        let observed = {
            let root = root.clone();
            tokio::task::spawn_blocking(move || observe(&root, &root))
                .await
                .unwrap_or_default()
        };
        let met = thresholds.met(&observed);
        let now = Pressure::from_met(&met);
        pressure.send_if_modified(|p| std::mem::replace(p, now) != now);
        // Memory first: it runs out fastest.
        let reclaim = met
            .iter()
            .find(|m| m.signal == Signal::MemoryAvailable)
            .or_else(|| {
                met.iter().find(|m| {
                    matches!(m.signal, Signal::NodefsAvailable | Signal::ImagefsAvailable)
                })
            });
        let Some(met) = reclaim.copied() else {
            continue;
        };
        tracing::info!(
            signal = met.signal.name(),
            threshold = met.threshold,
            available = met.available,
            "eviction threshold met"
        );
        match choose(&ctx, met).await {
            Ok(Some((uid, name, message))) => {
                tracing::warn!(pod = %name, signal = met.signal.name(), "evicting");
                if let Ok(mut evictions) = ctx.evictions.lock() {
                    evictions.insert(uid, message);
                }
            }
            Ok(None) => {
                tracing::warn!(signal = met.signal.name(), "no pod to evict under pressure")
            }
            Err(err) => tracing::warn!(error = %err, "listing pods to evict"),
        }
    }
}

/// The pod to evict for `met`, ranked from the active pods bound to the
/// node: (uid, namespace/name, message).
async fn choose(
    ctx: &crate::pod::Ctx,
    met: Met,
) -> Result<Option<(String, String, String)>, kube::Error> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let params = ListParams::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let pods: Vec<Pod> = api
        .list(&params)
        .await?
        .items
        .into_iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            p.metadata.deletion_timestamp.is_none()
                && !matches!(phase, Some("Succeeded" | "Failed"))
                && !is_critical(p)
        })
        .collect();
    let memory = met.signal == Signal::MemoryAvailable;
    let runtime = ctx.runtime.clone();
    let pods_dir = ctx.pods_dir.clone();
    let candidates = tokio::task::spawn_blocking(move || {
        let recorded: HashMap<String, crate::pod::RecordedPod> =
            crate::pod::recorded_pods(&pods_dir)
                .into_iter()
                .map(|r| (r.uid.clone(), r))
                .collect();
        pods.iter()
            .filter_map(|pod| {
                let uid = pod.metadata.uid.clone()?;
                let spec = pod.spec.as_ref()?;
                let request = |c: &k8s_openapi::api::core::v1::Container, resource: &str| {
                    let r = c.resources.as_ref();
                    r.and_then(|r| r.requests.as_ref())
                        .and_then(|m| m.get(resource))
                        .or_else(|| {
                            r.and_then(|r| r.limits.as_ref())
                                .and_then(|m| m.get(resource))
                        })
                        .and_then(|q| Quantity::parse(&q.0).ok())
                        .and_then(|q| u64::try_from(q.value()).ok())
                        .unwrap_or(0)
                };
                let containers = if memory {
                    spec.containers
                        .iter()
                        .map(|c| {
                            let usage = recorded
                                .get(&uid)
                                .and_then(|r| r.containers.iter().find(|(n, _)| *n == c.name))
                                .and_then(|(_, id)| runtime.stats(id).ok())
                                .map_or(0, |s| s.memory_working_set_bytes);
                            ContainerUsage {
                                name: c.name.clone(),
                                usage,
                                request: request(c, "memory"),
                            }
                        })
                        .collect()
                } else {
                    // Disk: what the pod's directory (volumes, logs) holds.
                    vec![ContainerUsage {
                        name: String::new(),
                        usage: disk_usage(&pods_dir.join(&uid)),
                        request: spec
                            .containers
                            .iter()
                            .map(|c| request(c, "ephemeral-storage"))
                            .sum(),
                    }]
                };
                Some(Candidate {
                    uid,
                    name: format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()),
                    priority: spec.priority.unwrap_or(0),
                    containers,
                })
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut candidates = candidates;
    rank(&mut candidates);
    Ok(candidates.into_iter().next().map(|c| {
        let containers = if memory { c.containers.as_slice() } else { &[] };
        let message = met.message(containers);
        (c.uid, c.name, message)
    }))
}

/// Bytes a directory tree takes on disk (symlinks not followed, other
/// filesystems — tmpfs volumes, pinned namespaces — not entered).
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != top.dev() {
                continue;
            }
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_as_the_kubelet_flag() {
        let t: Thresholds = "memory.available<100Mi, nodefs.available<10%,pid.available<1k"
            .parse()
            .unwrap();
        assert_eq!(t.amount(Signal::MemoryAvailable, 1 << 30), Some(100 << 20));
        assert_eq!(t.amount(Signal::NodefsAvailable, 1000), Some(100));
        assert_eq!(t.amount(Signal::PidAvailable, 0), Some(1000));
        assert_eq!(
            t.amount(Signal::ImagefsAvailable, 1000),
            None,
            "named ones only"
        );
        for bad in [
            "memory.available>1Gi",
            "memory.free<1Gi",
            "memory.available<lots",
            "memory.available<150%",
            "memory.available<1Gi,memory.available<2Gi",
        ] {
            assert!(bad.parse::<Thresholds>().is_err(), "{bad}");
        }
        let defaults = Thresholds::default();
        assert_eq!(defaults.amount(Signal::MemoryAvailable, 0), Some(100 << 20));
    }

    #[test]
    fn a_threshold_is_met_below_it_and_says_so_as_upstream() {
        let t: Thresholds = "memory.available<100Mi".parse().unwrap();
        let observed = |available| Observations {
            memory: Some((available, 1 << 30)),
            ..Observations::default()
        };
        assert!(t.met(&observed(200 << 20)).is_empty());
        let met = t.met(&observed(50 << 20));
        assert_eq!(met.len(), 1);
        let containers = [
            ContainerUsage {
                name: "hog".into(),
                usage: 30 << 20,
                request: 0,
            },
            ContainerUsage {
                name: "calm".into(),
                usage: 1 << 20,
                request: 64 << 20,
            },
        ];
        assert_eq!(
            met[0].message(&containers),
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. \
             Container hog was using 30Mi, request is 0, has larger consumption of memory. "
        );
        let all: Thresholds = "memory.available<100%".parse().unwrap();
        assert_eq!(
            all.met(&observed(1 << 30)).len(),
            0,
            "all of it is not less"
        );
        assert_eq!(all.met(&observed((1 << 30) - 1)).len(), 1);
    }

    #[test]
    fn best_effort_and_pods_over_their_request_go_first() {
        let pod = |name: &str, priority: i32, usage: u64, request: u64| Candidate {
            uid: name.into(),
            name: name.into(),
            priority,
            containers: vec![ContainerUsage {
                name: "c".into(),
                usage,
                request,
            }],
        };
        let mut pods = vec![
            pod("guaranteed-big", 0, 500, 1000),
            pod("burstable-over", 0, 300, 100),
            pod("guaranteed-small", 0, 10, 1000),
            pod("best-effort", 0, 50, 0),
            pod("best-effort-important", 1000, 900, 0),
        ];
        rank(&mut pods);
        let order: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "burstable-over",
                "best-effort",
                "best-effort-important",
                "guaranteed-big",
                "guaranteed-small"
            ]
        );
    }

    #[test]
    fn under_memory_pressure_only_best_effort_pods_are_refused() {
        let pod = |yaml: &str| -> Pod { serde_json::from_str(yaml).unwrap() };
        let best_effort = pod(r#"{"spec":{"containers":[{"name":"c"}]}}"#);
        let guaranteed = pod(
            r#"{"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]}}"#,
        );
        let tolerating = pod(
            r#"{"spec":{"containers":[{"name":"c"}],"tolerations":[{"key":"node.kubernetes.io/memory-pressure","operator":"Exists","effect":"NoSchedule"}]}}"#,
        );
        let critical = pod(r#"{"spec":{"containers":[{"name":"c"}],"priority":2000001000}}"#);
        assert_eq!(
            admit(&best_effort, true, false),
            Err("The node had condition: [MemoryPressure]. ".into())
        );
        assert_eq!(admit(&guaranteed, true, false), Ok(()));
        assert_eq!(admit(&tolerating, true, false), Ok(()));
        assert_eq!(admit(&critical, true, true), Ok(()));
        assert_eq!(
            admit(&guaranteed, false, true),
            Err("The node had condition: [DiskPressure]. ".into())
        );
        assert_eq!(admit(&best_effort, false, false), Ok(()));
        assert_eq!(binary_quantity(1536 * 1024), "1536Ki");
        assert_eq!(binary_quantity(1000), "1000");
    }
}
