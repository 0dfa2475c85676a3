//! The DaemonSet controller, against a real API server with fake nodes (and
//! the test binding pods where their node affinity says, as the scheduler
//! will).

mod common;

use std::collections::BTreeMap;

use bulwark_testkit::{FakeNodeConfig, FakeNodes, wait_for};
use common::{Harness, PATIENCE, bind_unscheduled};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

fn daemonset(name: &str, image: &str, node_selector: Option<serde_json::Value>) -> DaemonSet {
    let mut spec = json!({"containers": [{"name": "agent", "image": image}]});
    if let Some(selector) = node_selector {
        spec["nodeSelector"] = selector;
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }))
    .expect("a DaemonSet")
}

/// Node name → image of the daemon pod on it (bound, not being deleted).
async fn placed(client: &kube::Client, app: &str) -> BTreeMap<String, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("pods list");
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let spec = p.spec?;
            Some((
                spec.node_name?,
                spec.containers[0].image.clone().unwrap_or_default(),
            ))
        })
        .collect()
}

async fn wait_placed(client: &kube::Client, app: &str, want: &[(&str, &str)]) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(n, i)| ((*n).to_owned(), (*i).to_owned()))
        .collect();
    wait_for(&format!("{app} on {want:?}"), PATIENCE, || async {
        let got = placed(client, app).await;
        (got == want).then_some(()).ok_or(format!("{got:?}"))
    })
    .await
    .expect("the pods are where they belong");
}

async fn wait_status(sets: &Api<DaemonSet>, name: &str, desired: i32, updated: i32) {
    wait_for(&format!("{name} status"), PATIENCE, || async {
        let ds = sets.get(name).await.map_err(|e| e.to_string())?;
        let s = ds.status.clone().unwrap_or_default();
        let ok = s.desired_number_scheduled == desired
            && s.current_number_scheduled == desired
            && s.number_ready == desired
            && s.number_available.unwrap_or(0) == desired
            && s.updated_number_scheduled.unwrap_or(0) == updated
            && s.number_misscheduled == 0
            && s.observed_generation == ds.metadata.generation;
        ok.then_some(()).ok_or(format!("{s:?}"))
    })
    .await
    .expect("the status settles");
}

#[tokio::test]
async fn a_daemonset_follows_nodes_and_rolls_out_a_new_template() {
    let harness = Harness::start(&["daemon-set-controller"]).await;
    let client = harness.admin();
    let nodes = FakeNodes::start(
        client.clone(),
        FakeNodeConfig {
            count: 2,
            ..FakeNodeConfig::default()
        },
    )
    .await
    .unwrap();
    let _binder = bind_unscheduled(client.clone(), nodes.names().to_vec());
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    sets.create(&PostParams::default(), &daemonset("agent", "agent:1", None))
        .await
        .unwrap();
    wait_placed(
        &client,
        "agent",
        &[("fake-node-0", "agent:1"), ("fake-node-1", "agent:1")],
    )
    .await;
    wait_status(&sets, "agent", 2, 2).await;

    // Pods ask for their node through affinity, tolerate node problems,
    // and carry the revision hash of a ControllerRevision.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .remove(0);
    let spec = pod.spec.clone().unwrap();
    let term = &spec
        .affinity
        .unwrap()
        .node_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap()
        .node_selector_terms[0];
    let field = &term.match_fields.as_ref().unwrap()[0];
    assert_eq!(
        (field.key.as_str(), field.operator.as_str()),
        ("metadata.name", "In")
    );
    assert_eq!(
        field.values.as_ref().unwrap(),
        &[spec.node_name.clone().unwrap()]
    );
    let tolerated: Vec<_> = spec
        .tolerations
        .unwrap()
        .into_iter()
        .filter_map(|t| t.key)
        .collect();
    assert!(
        tolerated.contains(&"node.kubernetes.io/unreachable".to_owned()),
        "{tolerated:?}"
    );
    let hash = pod.labels()["controller-revision-hash"].clone();
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let revision = revisions.get(&format!("agent-{hash}")).await.unwrap();
    assert_eq!(revision.revision, 1);

    // A node joins: it gets a pod.
    let extra = FakeNodes::start(
        client.clone(),
        FakeNodeConfig {
            count: 1,
            prefix: "extra-".into(),
            ..FakeNodeConfig::default()
        },
    )
    .await
    .unwrap();
    wait_placed(
        &client,
        "agent",
        &[
            ("extra-0", "agent:1"),
            ("fake-node-0", "agent:1"),
            ("fake-node-1", "agent:1"),
        ],
    )
    .await;
    // A node leaves: its pod goes.
    let node_api: Api<Node> = Api::all(client.clone());
    node_api
        .delete("extra-0", &DeleteParams::default())
        .await
        .unwrap();
    wait_placed(
        &client,
        "agent",
        &[("fake-node-0", "agent:1"), ("fake-node-1", "agent:1")],
    )
    .await;
    wait_status(&sets, "agent", 2, 2).await;
    drop(extra);

    // A new template rolls out, one node at a time.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}});
    sets.patch("agent", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    wait_placed(
        &client,
        "agent",
        &[("fake-node-0", "agent:2"), ("fake-node-1", "agent:2")],
    )
    .await;
    wait_status(&sets, "agent", 2, 2).await;
    let history = revisions.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(history.len(), 2, "{history:?}");

    // Rolling back reuses the first revision, which becomes the latest.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:1"}]}}}});
    sets.patch("agent", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    wait_placed(
        &client,
        "agent",
        &[("fake-node-0", "agent:1"), ("fake-node-1", "agent:1")],
    )
    .await;
    let first = revisions.get(&format!("agent-{hash}")).await.unwrap();
    assert_eq!(first.revision, 3);
    assert_eq!(
        revisions
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let reasons: Vec<(String, String)> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("agent"))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|(r, m)| r == "SuccessfulCreate" && m.starts_with("Created pod: agent-")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(r, m)| r == "SuccessfulDelete" && m.starts_with("Deleted pod: agent-")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_daemonset_runs_only_on_the_nodes_it_selects() {
    let harness = Harness::start(&["daemon-set-controller"]).await;
    let client = harness.admin();
    let nodes = FakeNodes::start(
        client.clone(),
        FakeNodeConfig {
            count: 2,
            ..FakeNodeConfig::default()
        },
    )
    .await
    .unwrap();
    let _binder = bind_unscheduled(client.clone(), nodes.names().to_vec());
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    sets.create(
        &PostParams::default(),
        &daemonset("ssd", "probe:1", Some(json!({"disk": "ssd"}))),
    )
    .await
    .unwrap();
    wait_status(&sets, "ssd", 0, 0).await;
    let node_api: Api<Node> = Api::all(client.clone());
    let label = json!({"metadata": {"labels": {"disk": "ssd"}}});
    node_api
        .patch(
            "fake-node-1",
            &PatchParams::default(),
            &Patch::Merge(&label),
        )
        .await
        .unwrap();
    wait_placed(&client, "ssd", &[("fake-node-1", "probe:1")]).await;
    wait_status(&sets, "ssd", 1, 1).await;
    // A NoExecute taint the pod does not tolerate evicts it.
    let taint =
        json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]}});
    node_api
        .patch(
            "fake-node-1",
            &PatchParams::default(),
            &Patch::Merge(&taint),
        )
        .await
        .unwrap();
    wait_placed(&client, "ssd", &[]).await;
    wait_status(&sets, "ssd", 0, 0).await;
}

#[tokio::test]
async fn a_surging_daemonset_starts_the_new_pod_before_stopping_the_old() {
    let harness = Harness::start(&["daemon-set-controller"]).await;
    let client = harness.admin();
    let nodes = FakeNodes::start(
        client.clone(),
        FakeNodeConfig {
            count: 2,
            ..FakeNodeConfig::default()
        },
    )
    .await
    .unwrap();
    let _binder = bind_unscheduled(client.clone(), nodes.names().to_vec());
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let mut ds = daemonset("surge", "s:1", None);
    ds.spec.as_mut().unwrap().update_strategy = Some(
        serde_json::from_value(json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
        .unwrap(),
    );
    sets.create(&PostParams::default(), &ds).await.unwrap();
    wait_placed(
        &client,
        "surge",
        &[("fake-node-0", "s:1"), ("fake-node-1", "s:1")],
    )
    .await;
    wait_status(&sets, "surge", 2, 2).await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "s:2"}]}}}});
    sets.patch("surge", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    wait_placed(
        &client,
        "surge",
        &[("fake-node-0", "s:2"), ("fake-node-1", "s:2")],
    )
    .await;
    wait_status(&sets, "surge", 2, 2).await;
}
