//! Node lifecycle with fake nodes: a node that goes silent becomes
//! Unknown and tainted, its pods are evicted after their toleration, and
//! the taints go when it comes back.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod common;

use std::time::Duration;

use bulwark_testkit::{FakeNodeConfig, FakeNodes, wait_for};
use common::{Harness, PATIENCE};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

fn pod(name: &str, node: &str, toleration_seconds: Option<i64>) -> Pod {
    let mut spec = json!({"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]});
    if let Some(seconds) = toleration_seconds {
        spec["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}]);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

#[tokio::test]
async fn a_silent_node_is_tainted_and_its_pods_evicted_after_their_toleration() {
    let harness = Harness::start(&["node-controller"]).await;
    let client = harness.admin();
    let fake = FakeNodes::start(
        client.clone(),
        FakeNodeConfig {
            count: 2,
            lease_interval: Duration::from_millis(500),
            ..FakeNodeConfig::default()
        },
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let victim = &fake.names()[0];
    pods.create(&PostParams::default(), &pod("short", victim, Some(1)))
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("default-toleration", victim, None),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("elsewhere", &fake.names()[1], Some(1)),
    )
    .await
    .unwrap();
    // The server gave the pod without its own toleration upstream's 300 s.
    let defaulted = pods.get("default-toleration").await.unwrap();
    let tolerations = defaulted.spec.unwrap().tolerations.unwrap_or_default();
    assert!(
        tolerations.iter().any(
            |t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")
                && t.toleration_seconds == Some(300)
        ),
        "{tolerations:?}"
    );

    fake.silence(victim);
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(
        "the silent node is Unknown and tainted",
        PATIENCE,
        || async {
            let node = nodes.get(victim).await.map_err(|e| e.to_string())?;
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .map(|c| (c.status.clone(), c.reason.clone()));
            let taints: Vec<String> = node
                .spec
                .and_then(|s| s.taints)
                .unwrap_or_default()
                .iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect();
            if ready == Some(("Unknown".into(), Some("NodeStatusUnknown".into())))
                && taints.contains(&"node.kubernetes.io/unreachable:NoExecute".to_owned())
            {
                Ok(())
            } else {
                Err(format!("{ready:?} {taints:?}"))
            }
        },
    )
    .await
    .unwrap();
    wait_for("the pod tolerating 1 s is evicted", PATIENCE, || async {
        let p = pods.get("short").await.map_err(|e| e.to_string())?;
        p.metadata
            .deletion_timestamp
            .map(|_| ())
            .ok_or_else(|| "not evicted".to_owned())
    })
    .await
    .unwrap();
    assert!(
        pods.get("default-toleration")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none(),
        "300 s have not passed"
    );
    assert!(
        pods.get("elsewhere")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none(),
        "the healthy node's pods stay"
    );

    fake.revive(victim);
    wait_for("the taints are gone", PATIENCE, || async {
        let node = nodes.get(victim).await.map_err(|e| e.to_string())?;
        let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
        if taints.is_empty() {
            Ok(())
        } else {
            Err(format!("{taints:?}"))
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn pods_of_a_deleted_node_are_removed() {
    let harness = Harness::start(&["node-controller"]).await;
    let client = harness.admin();
    let fake = FakeNodes::start(
        client.clone(),
        FakeNodeConfig {
            count: 1,
            ..FakeNodeConfig::default()
        },
    )
    .await
    .unwrap();
    let node = fake.names()[0].clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("orphan", &node, None))
        .await
        .unwrap();
    drop(fake);
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.delete(&node, &Default::default()).await.unwrap();
    wait_for("the orphaned pod is deleted", PATIENCE, || async {
        match pods.get_opt("orphan").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(p) => Err(format!("{:?}", p.metadata.deletion_timestamp)),
        }
    })
    .await
    .unwrap();
}
