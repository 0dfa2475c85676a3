//! Resource arithmetic: a pod's effective request as upstream's
//! `resourcehelper.PodRequests` computes it, and node allocatable.

use std::collections::BTreeMap;

use bulwark_api::quantity::Quantity as Parsed;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The CPU a container without a CPU request counts as when scoring
/// (`DefaultMilliCPURequest`).
pub(crate) const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory a container without a memory request counts as when scoring
/// (`DefaultMemoryRequest`, 200 MiB).
pub(crate) const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of resources: CPU in millicores, everything else in units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Resources {
    pub(crate) milli_cpu: i64,
    pub(crate) memory: i64,
    pub(crate) ephemeral_storage: i64,
    /// Only meaningful for allocatable (`AllowedPodNumber`).
    pub(crate) pods: i64,
    /// Extended resources, hugepages and other scalar resources.
    pub(crate) scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a resource list (requests, overhead, allocatable).
    pub(crate) fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list {
            r.set(name, q);
        }
        r
    }

    fn set(&mut self, name: &str, q: &Quantity) {
        let Ok(parsed) = Parsed::parse(q.0.trim()) else {
            // The API server validated the object; an unparsable quantity
            // counts as nothing rather than failing the whole pod.
            return;
        };
        match name {
            "cpu" => self.milli_cpu = parsed.milli_value(),
            "memory" => self.memory = parsed.value(),
            "ephemeral-storage" => self.ephemeral_storage = parsed.value(),
            "pods" => self.pods = parsed.value(),
            _ if is_scalar(name) => {
                self.scalar.insert(name.to_owned(), parsed.value());
            }
            _ => {}
        }
    }

    pub(crate) fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub(crate) fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    pub(crate) fn scalar(&self, name: &str) -> i64 {
        self.scalar.get(name).copied().unwrap_or(0)
    }
}

/// Upstream's `IsScalarResourceName`: extended resources (a domain
/// prefix), `kubernetes.io/`-prefixed native ones, hugepages.
fn is_scalar(name: &str) -> bool {
    name.contains('/') || name.starts_with("hugepages-")
}

/// A pod's effective request (`PodRequests`): the sum of its containers
/// and sidecars, or the largest init container (plus the sidecars started
/// before it) if that is more, plus the pod overhead.
pub(crate) fn pod_requests(pod: &Pod) -> Resources {
    aggregate(pod, |c| container_requests(c, false))
}

/// The request used for scoring: as [`pod_requests`], with a container's
/// missing CPU or memory request counted as 100m / 200Mi.
pub(crate) fn pod_non_zero_requests(pod: &Pod) -> (i64, i64) {
    let r = aggregate(pod, |c| container_requests(c, true));
    (r.milli_cpu, r.memory)
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = requests.map(Resources::from_list).unwrap_or_default();
    if non_zero {
        let has = |k: &str| requests.is_some_and(|m| m.contains_key(k));
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

fn aggregate(pod: &Pod, each: impl Fn(&Container) -> Resources) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&each(c));
    }
    let mut sidecars = Resources::default();
    let mut init = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let mut r = each(c);
        if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            r = sidecars.clone();
        } else {
            r.add(&sidecars);
        }
        init.max_with(&r);
    }
    reqs.max_with(&init);
    if let Some(overhead) = spec.overhead.as_ref() {
        reqs.add(&Resources::from_list(overhead));
    }
    reqs.pods = 0;
    reqs
}
