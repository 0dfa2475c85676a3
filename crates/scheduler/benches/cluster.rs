//! End-to-end throughput through a real in-process API server: fake nodes,
//! pods created as fast as the server takes them, the scheduler binding
//! them. Prints pods per second from the first create to the last binding.
//!
//! `cargo bench -p bulwark-scheduler --bench cluster [-- NODES PODS]`
//! (defaults 5,000 nodes and 10,000 pods, the performance goal).

#![allow(missing_docs, clippy::unwrap_used)] // a benchmark binary, not API

use std::time::{Duration, Instant};

use bulwark_client::Identity;
use bulwark_testkit::{FakeNodeConfig, FakeNodes, TestCluster};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let nodes = args.first().copied().unwrap_or(5_000);
    let pods = args.get(1).copied().unwrap_or(10_000);
    let cluster = TestCluster::start().await.unwrap();
    let admin = cluster.admin();
    let config = FakeNodeConfig {
        count: nodes,
        lease_interval: Duration::from_secs(60),
        ..FakeNodeConfig::default()
    };
    let started = Instant::now();
    let _nodes = FakeNodes::start(admin.clone(), config).await.unwrap();
    println!(
        "{nodes} fake nodes registered in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let client = cluster
        .access()
        .client(&Identity::user("system:kube-scheduler", &[]))
        .unwrap();
    tokio::spawn(bulwark_scheduler::run(client, Default::default()));

    let api: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let start = Instant::now();
    let creating = futures::stream::iter(0..pods)
        .map(|i| {
            let api = api.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("pod-{i}")},
                    "spec": {"containers": [{"name": "c", "image": "x",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
                }))
                .unwrap();
                api.create(&PostParams::default(), &pod).await.unwrap();
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>();
    creating.await;
    let created = start.elapsed().as_secs_f64();
    // Count bindings from a watch: listing every pod again and again would
    // load the server more than the scheduler does.
    let mut seen = std::collections::HashSet::new();
    let mut events = std::pin::pin!(kube::runtime::watcher(api.clone(), Default::default()));
    while seen.len() < pods {
        if let Some(Ok(
            kube::runtime::watcher::Event::Apply(p) | kube::runtime::watcher::Event::InitApply(p),
        )) = events.next().await
            && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
        {
            seen.insert(p.metadata.name.unwrap_or_default());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{pods} pods created in {created:.1}s, all bound after {secs:.1}s: {:.0} pods/s end to end",
        pods as f64 / secs
    );
}
