//! The pod garbage collector against an in-process API server: terminated
//! pods beyond the threshold go, oldest first; running pods stay.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod common;

use bulwark_testkit::wait_for;
use common::{Harness, PATIENCE, TERMINATED_POD_GC_THRESHOLD};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn pod(name: &str, node: Option<&str>) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let Some(node) = node {
        spec["nodeName"] = node.into();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

async fn finish(pods: &Api<Pod>, name: &str, phase: &str) {
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": phase}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn terminated_pods_beyond_the_threshold_are_deleted_oldest_first() {
    let harness = Harness::start(&["pod-garbage-collector"]).await;
    let pods: Api<Pod> = Api::namespaced(harness.admin(), "default");
    let total = TERMINATED_POD_GC_THRESHOLD + 3;
    for i in 0..total {
        let name = format!("done-{i}");
        pods.create(&PostParams::default(), &pod(&name, Some("node-1")))
            .await
            .unwrap();
        let phase = if i % 2 == 0 { "Succeeded" } else { "Failed" };
        finish(&pods, &name, phase).await;
        // Creation timestamps have a resolution of one second: space the
        // oldest apart so "oldest first" is decided by them.
        if i < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
    }
    pods.create(&PostParams::default(), &pod("running", Some("node-1")))
        .await
        .unwrap();
    finish(&pods, "running", "Running").await;

    let left = wait_for("the excess terminated pods deleted", PATIENCE, || async {
        let names: Vec<String> = pods
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        if names.len() == TERMINATED_POD_GC_THRESHOLD + 1 {
            Ok(names)
        } else {
            Err(format!("{names:?}"))
        }
    })
    .await
    .unwrap();
    for gone in ["done-0", "done-1", "done-2"] {
        assert!(!left.contains(&gone.to_owned()), "{gone} kept: {left:?}");
    }
    assert!(left.contains(&"running".to_owned()), "{left:?}");
}
