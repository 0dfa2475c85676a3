//! The node IPAM controller, against a real API server.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod common;

use common::{Harness, PATIENCE};
use k8s_openapi::api::core::v1::{Event, Node};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};

async fn create_node(nodes: &Api<Node>, name: &str) {
    let node: Node =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
}

/// Waits until `name` has a pod CIDR and returns it, checking that
/// `podCIDRs` says the same.
async fn pod_cidr(nodes: &Api<Node>, name: &str) -> String {
    bulwark_testkit::wait_for(&format!("a pod CIDR for {name}"), PATIENCE, || async {
        let node = nodes.get(name).await.map_err(|e| e.to_string())?;
        let spec = node.spec.unwrap_or_default();
        match spec.pod_cidr {
            Some(cidr) => {
                assert_eq!(spec.pod_cidrs, Some(vec![cidr.clone()]));
                Ok(cidr)
            }
            None => Err("none yet".to_owned()),
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn every_node_gets_its_own_range_even_across_a_restart() {
    let mut harness = Harness::start(&["node-ipam-controller"]).await;
    let nodes: Api<Node> = Api::all(harness.admin());
    create_node(&nodes, "n1").await;
    create_node(&nodes, "n2").await;
    let (n1, n2) = (pod_cidr(&nodes, "n1").await, pod_cidr(&nodes, "n2").await);
    assert_ne!(n1, n2);
    for cidr in [&n1, &n2] {
        assert!(
            cidr.starts_with("10.42.") && cidr.ends_with(".0/24"),
            "{cidr}"
        );
    }

    // Once given, a range stays: nobody (a node's own credentials
    // included) can move a node onto another node's range.
    let steal = serde_json::json!({"spec": {"podCIDR": n1, "podCIDRs": [n1]}});
    let err = nodes
        .patch("n2", &PatchParams::default(), &Patch::Merge(&steal))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "Node \"n2\" is invalid: spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid"
    );

    // A restarted controller knows the ranges in use from the Nodes alone.
    harness.restart_manager();
    create_node(&nodes, "n3").await;
    let n3 = pod_cidr(&nodes, "n3").await;
    assert!(
        n3 != n1 && n3 != n2,
        "n3 got {n3}, already held by n1 ({n1}) or n2 ({n2})"
    );
    // And it leaves ranges already given alone.
    assert_eq!(pod_cidr(&nodes, "n1").await, n1);
}

#[tokio::test]
async fn an_exhausted_cluster_cidr_is_reported_and_a_deleted_node_frees_its_range() {
    // Two /24s: two nodes.
    let harness = Harness::start_with_cluster_cidr(
        &["node-ipam-controller"],
        "10.42.0.0/23".parse().unwrap(),
    )
    .await;
    let client = harness.admin();
    let nodes: Api<Node> = Api::all(client.clone());
    create_node(&nodes, "a").await;
    let a = pod_cidr(&nodes, "a").await;
    create_node(&nodes, "b").await;
    pod_cidr(&nodes, "b").await;
    create_node(&nodes, "c").await;

    let events: Api<Event> = Api::namespaced(client, "default");
    let event = bulwark_testkit::wait_for("a CIDRNotAvailable event for c", PATIENCE, || async {
        events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("CIDRNotAvailable"))
            .ok_or_else(|| "no event yet".to_owned())
    })
    .await
    .unwrap();
    assert_eq!(event.involved_object.kind.as_deref(), Some("Node"));
    assert_eq!(event.involved_object.name.as_deref(), Some("c"));
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    assert_eq!(
        event.message.as_deref(),
        Some("Node c status is now: CIDRNotAvailable")
    );
    assert_eq!(
        event.source.and_then(|s| s.component).as_deref(),
        Some("cidrAllocator")
    );
    assert!(
        nodes
            .get("c")
            .await
            .unwrap()
            .spec
            .unwrap_or_default()
            .pod_cidr
            .is_none()
    );

    nodes.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(pod_cidr(&nodes, "c").await, a, "c gets the range a freed");
}
