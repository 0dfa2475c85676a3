//! The scheduler against a real in-process API server and fake nodes:
//! binding, the Unschedulable condition and events in upstream's words,
//! preemption, and `schedulerName`.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

use std::time::Duration;

use bulwark_client::Identity;
use bulwark_testkit::{FakeNodeConfig, FakeNodes, TestCluster, wait_for};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(30);

fn pod(name: &str, cpu: &str, extra: serde_json::Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": cpu}}}]}
    });
    for (k, val) in extra.as_object().into_iter().flatten() {
        v["spec"][k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

async fn node_of(pods: &Api<Pod>, name: &str) -> Result<String, String> {
    let p = pods.get(name).await.map_err(|e| e.to_string())?;
    p.spec.and_then(|s| s.node_name).ok_or_else(|| {
        format!(
            "{name} not bound: {:?}",
            p.status.and_then(|s| s.conditions)
        )
    })
}

async fn event(events: &Api<Event>, pod: &str, reason: &str) -> Result<String, String> {
    let list = events
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    list.items
        .into_iter()
        .find(|e| {
            e.involved_object.name.as_deref() == Some(pod) && e.reason.as_deref() == Some(reason)
        })
        .and_then(|e| e.message)
        .ok_or_else(|| format!("no {reason} event for {pod}"))
}

#[tokio::test]
async fn binds_reports_preempts_and_leaves_other_schedulers_pods_alone() {
    if let Ok(filter) = std::env::var("BULWARK_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let cluster = TestCluster::start().await.unwrap();
    let admin = cluster.admin();
    let config = FakeNodeConfig {
        count: 3,
        cpu: "2".into(),
        memory: "4Gi".into(),
        ..FakeNodeConfig::default()
    };
    let _nodes = FakeNodes::start(admin.clone(), config).await.unwrap();
    // As upstream's scheduler identity, so its RBAC role is exercised too.
    let client = cluster
        .access()
        .client(&Identity::user("system:kube-scheduler", &[]))
        .unwrap();
    let scheduler = tokio::spawn(bulwark_scheduler::run(client, Default::default()));

    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let events: Api<Event> = Api::namespaced(admin.clone(), "default");
    let pp = PostParams::default();
    for name in ["a", "b", "c"] {
        pods.create(&pp, &pod(name, "1500m", json!({})))
            .await
            .unwrap();
    }
    let mut placed = Vec::new();
    for name in ["a", "b", "c"] {
        let node = wait_for(&format!("{name} bound"), PATIENCE, || node_of(&pods, name))
            .await
            .unwrap();
        placed.push(node);
    }
    placed.sort();
    placed.dedup();
    assert_eq!(placed.len(), 3, "one pod per node: {placed:?}");
    let msg = wait_for("Scheduled event", PATIENCE, || {
        event(&events, "a", "Scheduled")
    })
    .await
    .unwrap();
    assert!(
        msg.starts_with("Successfully assigned default/a to fake-node-"),
        "{msg}"
    );

    // Too big for any node, and nothing to preempt.
    pods.create(&pp, &pod("big", "3", json!({}))).await.unwrap();
    let expected = "0/3 nodes are available: 3 Insufficient cpu. \
                    preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..";
    let condition = wait_for("big unschedulable", PATIENCE, || async {
        let p = pods.get("big").await.map_err(|e| e.to_string())?;
        p.status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .ok_or_else(|| "no PodScheduled=False".to_owned())
    })
    .await
    .unwrap();
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(condition.message.as_deref(), Some(expected));
    let msg = wait_for("FailedScheduling event", PATIENCE, || {
        event(&events, "big", "FailedScheduling")
    })
    .await
    .unwrap();
    assert_eq!(msg, expected);

    // Another scheduler's pod is not ours to touch.
    pods.create(
        &pp,
        &pod("theirs", "1m", json!({"schedulerName": "other-scheduler"})),
    )
    .await
    .unwrap();

    // A higher-priority pod preempts one of the three.
    let classes: Api<PriorityClass> = Api::all(admin.clone());
    let high: PriorityClass =
        serde_json::from_value(json!({"metadata": {"name": "high"}, "value": 1000})).unwrap();
    classes.create(&pp, &high).await.unwrap();
    // spec.priority as the Priority admission plugin would set it: the
    // scheduler's role cannot read PriorityClasses.
    pods.create(
        &pp,
        &pod(
            "vip",
            "1500m",
            json!({"priorityClassName": "high", "priority": 1000}),
        ),
    )
    .await
    .unwrap();
    let node = wait_for("vip bound", PATIENCE, || node_of(&pods, "vip"))
        .await
        .unwrap();
    let vip = pods.get("vip").await.unwrap();
    assert_eq!(
        vip.status.and_then(|s| s.nominated_node_name).as_deref(),
        Some(node.as_str())
    );
    let remaining = pods.list(&ListParams::default()).await.unwrap();
    let on_node: Vec<String> = remaining
        .items
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(on_node, ["vip"], "the victim is gone from {node}");

    let theirs = pods.get("theirs").await.unwrap();
    assert!(theirs.spec.and_then(|s| s.node_name).is_none());
    assert!(
        theirs
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .is_empty()
    );
    assert!(!scheduler.is_finished(), "the scheduler is still running");
    scheduler.abort();
}
