//! PodDisruptionBudgets and the Eviction API: an eviction that would take
//! the healthy count below the budget is refused with 429 until allowed.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod common;

use bulwark_testkit::{FakeNodeConfig, FakeNodes, wait_for};
use common::{Harness, PATIENCE};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::{EvictParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn evictions_spend_the_budget_and_are_refused_beyond_it() {
    let harness = Harness::start(&["disruption-controller"]).await;
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
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("web-{i}"), "labels": {"app": "web"}},
            "spec": {"nodeName": fake.names()[0], "containers": [{"name": "c", "image": "nginx"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }))
    .unwrap();
    budgets.create(&PostParams::default(), &pdb).await.unwrap();
    wait_for("the budget allows one disruption", PATIENCE, || async {
        let status = budgets
            .get("web")
            .await
            .map_err(|e| e.to_string())?
            .status
            .ok_or("no status")?;
        if status.disruptions_allowed == 1 && status.current_healthy == 3 {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await
    .unwrap();
    pods.evict("web-0", &EvictParams::default()).await.unwrap();
    let impatient: Api<Pod> = Api::namespaced(harness.admin_without_retries().await, "default");
    let refused = impatient
        .evict("web-1", &EvictParams::default())
        .await
        .unwrap_err();
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 429);
            assert_eq!(
                status.message,
                "Cannot evict pod as it would violate the pod's disruption budget."
            );
        }
        other => panic!("{other}"),
    }
    assert!(
        pods.get("web-1")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none(),
        "the refused pod stays"
    );
}
