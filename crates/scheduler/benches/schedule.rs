//! Throughput of the placement core: 10,000 pods onto 5,000 fake nodes,
//! each pod assumed before the next, as the scheduling loop does. Prints
//! pods per second (the goal is at least 1,000 on 2 cores).
//!
//! `cargo bench -p bulwark-scheduler --bench schedule [-- NODES PODS]`

#![allow(missing_docs, clippy::unwrap_used)] // a benchmark binary, not API

use std::time::Instant;

use bulwark_scheduler::{Scheduler, Snapshot};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let nodes = args.first().copied().unwrap_or(5_000);
    let pods = args.get(1).copied().unwrap_or(10_000);
    let mut snapshot = Snapshot::new();
    for i in 0..nodes {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("node-{i}"), "labels": {
                "kubernetes.io/hostname": format!("node-{i}"),
                "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
            "status": {"allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"}}
        }))
        .unwrap();
        snapshot.set_node(node);
    }
    let pods: Vec<Pod> = (0..pods)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("pod-{i}"), "namespace": "default", "labels": {"app": format!("app-{}", i % 50)}},
                "spec": {"containers": [{"name": "c", "image": "x",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
            }))
            .unwrap()
        })
        .collect();
    let mut scheduler = Scheduler::new();
    let start = Instant::now();
    let mut failed = 0;
    for pod in &pods {
        match scheduler.schedule(&snapshot, pod) {
            Ok(node) => snapshot.assume(pod, &node),
            Err(_) => failed += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "scheduled {} pods onto {nodes} nodes in {secs:.3}s: {:.0} pods/s ({failed} unschedulable)",
        pods.len(),
        pods.len() as f64 / secs
    );
}
