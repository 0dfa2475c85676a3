//! How big the documents are and how long they take to generate, for the
//! resources the API server serves. Run with `cargo bench -p bulwark-openapi`.
//!
//! A benchmark, not a test: it prints figures and asserts nothing.

use bulwark_openapi::{ResourceInfo, SubresourceInfo, discovery, group_version_document};
use std::time::{Duration, Instant};

const STATUS: &[SubresourceInfo<'static>] = &[("status", None)];
const SCALE: &[SubresourceInfo<'static>] = &[
    ("scale", Some(("autoscaling", "v1", "Scale"))),
    ("status", None),
];
const POD: &[SubresourceInfo<'static>] = &[
    ("binding", Some(("", "v1", "Binding"))),
    ("eviction", Some(("policy", "v1", "Eviction"))),
    ("exec", None),
    ("log", None),
    ("status", None),
];

/// (group, version, kind, plural, namespaced, subresources)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [SubresourceInfo<'static>],
);

const SERVED: &[Row] = &[
    ("", "v1", "Namespace", "namespaces", false, STATUS),
    ("", "v1", "Pod", "pods", true, POD),
    ("", "v1", "Node", "nodes", false, STATUS),
    ("", "v1", "Service", "services", true, STATUS),
    ("", "v1", "Endpoints", "endpoints", true, &[]),
    ("", "v1", "ConfigMap", "configmaps", true, &[]),
    ("", "v1", "Secret", "secrets", true, &[]),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, &[]),
    ("", "v1", "Event", "events", true, &[]),
    ("", "v1", "PodTemplate", "podtemplates", true, &[]),
    ("", "v1", "LimitRange", "limitranges", true, &[]),
    ("", "v1", "ResourceQuota", "resourcequotas", true, STATUS),
    ("apps", "v1", "Deployment", "deployments", true, SCALE),
    ("apps", "v1", "ReplicaSet", "replicasets", true, SCALE),
    ("apps", "v1", "StatefulSet", "statefulsets", true, SCALE),
    ("apps", "v1", "DaemonSet", "daemonsets", true, STATUS),
    (
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
        &[],
    ),
    ("batch", "v1", "Job", "jobs", true, STATUS),
    ("batch", "v1", "CronJob", "cronjobs", true, STATUS),
    ("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        &[],
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        STATUS,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &[],
    ),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        STATUS,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
    ),
    ("events.k8s.io", "v1", "Event", "events", true, &[]),
    (
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
        &[],
    ),
];

/// The fastest of `runs` runs of `f`, and its last result.
fn fastest<T>(runs: u32, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let start = Instant::now();
        out = Some(f());
        best = best.min(start.elapsed());
    }
    (best, out.expect("runs > 0"))
}

fn main() {
    let resources: Vec<ResourceInfo> = SERVED
        .iter()
        .map(
            |&(group, version, kind, plural, namespaced, subresources)| ResourceInfo {
                group,
                version,
                kind,
                plural,
                namespaced,
                subresources,
            },
        )
        .collect();
    let (took, root) = fastest(5, || discovery(&resources));
    println!("discovery (generates and hashes every document): {took:?}");
    println!(
        "{:<36} {:>8} {:>6} {:>10} {:>10}",
        "group-version", "schemas", "paths", "bytes", "time"
    );
    let mut total = 0;
    for key in root["paths"].as_object().expect("paths").keys() {
        let parts: Vec<&str> = key.split('/').collect();
        let (group, version) = match parts.as_slice() {
            ["api", version] => ("", *version),
            ["apis", group, version] => (*group, *version),
            _ => continue,
        };
        let (took, doc) = fastest(5, || group_version_document(&resources, group, version));
        let doc = doc.expect("served");
        let bytes = serde_json::to_vec(&doc).expect("serializes").len();
        total += bytes;
        let count = |p: &str| {
            doc.pointer(p)
                .and_then(|v| v.as_object())
                .map_or(0, |o| o.len())
        };
        println!(
            "{key:<36} {:>8} {:>6} {bytes:>10} {took:>10.2?}",
            count("/components/schemas"),
            count("/paths"),
        );
    }
    println!("total bytes: {total}");
}
