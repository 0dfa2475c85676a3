//! The ReplicaSet controller, against a real API server with fake nodes.

// Helpers outside #[test] fns unwrap too: a failed request fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{PATIENCE, with_nodes};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
            },
        },
    }))
    .unwrap()
}

/// The pods `rs` controls (active ones).
async fn owned_pods(pods: &Api<Pod>, rs: &ReplicaSet) -> Vec<Pod> {
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.owner_references()
                    .iter()
                    .any(|o| o.controller == Some(true) && Some(&o.uid) == rs.metadata.uid.as_ref())
        })
        .collect()
}

/// Waits until the status says `n` replicas, all ready and available, for
/// the current generation.
async fn wait_ready(sets: &Api<ReplicaSet>, name: &str, n: i32) -> ReplicaSet {
    bulwark_testkit::wait_for(&format!("{name} at {n} ready"), PATIENCE, || async {
        let rs = sets.get(name).await.map_err(|e| e.to_string())?;
        let status = rs.status.clone().unwrap_or_default();
        if status.replicas == n
            && status.ready_replicas == Some(n)
            && status.available_replicas == Some(n)
            && status.fully_labeled_replicas == Some(n)
            && status.observed_generation == rs.metadata.generation
        {
            Ok(rs)
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn scales_up_and_down_with_events() {
    let (harness, _nodes) = with_nodes(&["replicaset-controller"]).await;
    let client = harness.admin();
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    sets.create(&PostParams::default(), &replica_set("web", 3))
        .await
        .unwrap();
    let rs = wait_ready(&sets, "web", 3).await;
    let owned = owned_pods(&pods, &rs).await;
    assert_eq!(owned.len(), 3);
    for pod in &owned {
        assert!(pod.name_any().starts_with("web-"), "{}", pod.name_any());
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.block_owner_deletion),
            ("ReplicaSet", Some(true))
        );
    }

    let scale = |n: i32| Patch::Merge(json!({"spec": {"replicas": n}}));
    sets.patch("web", &PatchParams::default(), &scale(5))
        .await
        .unwrap();
    wait_ready(&sets, "web", 5).await;
    sets.patch("web", &PatchParams::default(), &scale(1))
        .await
        .unwrap();
    let rs = wait_ready(&sets, "web", 1).await;
    bulwark_testkit::wait_for("four pods gone", PATIENCE, || async {
        let n = owned_pods(&pods, &rs).await.len();
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    })
    .await
    .unwrap();

    let events: Api<Event> = Api::namespaced(client, "default");
    bulwark_testkit::wait_for("events", PATIENCE, || async {
        let events = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let about_web: Vec<_> = events
            .items
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("web"))
            .map(|e| {
                (
                    e.reason.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default(),
                    e.count.unwrap_or(1),
                )
            })
            .collect();
        let created: i32 = about_web
            .iter()
            .filter(|(r, m, _)| r == "SuccessfulCreate" && m.starts_with("Created pod: web-"))
            .map(|e| e.2)
            .sum();
        let deleted: i32 = about_web
            .iter()
            .filter(|(r, m, _)| r == "SuccessfulDelete" && m.starts_with("Deleted pod: web-"))
            .map(|e| e.2)
            .sum();
        if created == 5 && deleted == 4 {
            Ok(())
        } else {
            Err(format!("{about_web:?}"))
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn adopts_matching_orphans_and_releases_pods_that_stop_matching() {
    let (harness, _nodes) = with_nodes(&["replicaset-controller"]).await;
    let client = harness.admin();
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "api"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    sets.create(&PostParams::default(), &replica_set("api", 2))
        .await
        .unwrap();
    let rs = wait_ready(&sets, "api", 2).await;
    let owned = owned_pods(&pods, &rs).await;
    assert_eq!(owned.len(), 2, "the orphan counts toward the two");
    assert!(
        owned.iter().any(|p| p.name_any() == "orphan"),
        "orphan adopted"
    );

    // Relabel the adopted pod: it is released and replaced.
    pods.patch(
        "orphan",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "debug"}}})),
    )
    .await
    .unwrap();
    bulwark_testkit::wait_for("orphan released and replaced", PATIENCE, || async {
        let released = pods.get("orphan").await.map_err(|e| e.to_string())?;
        let owned = owned_pods(&pods, &rs).await;
        if released.owner_references().is_empty()
            && owned.len() == 2
            && owned.iter().all(|p| p.name_any() != "orphan")
        {
            Ok(())
        } else {
            Err(format!(
                "{} owned, orphan owners {:?}",
                owned.len(),
                released.owner_references()
            ))
        }
    })
    .await
    .unwrap();
    wait_ready(&sets, "api", 2).await;
}

#[tokio::test]
async fn pods_count_as_available_only_after_min_ready_seconds() {
    let (harness, _nodes) = with_nodes(&["replicaset-controller"]).await;
    let sets: Api<ReplicaSet> = Api::namespaced(harness.admin(), "default");
    let mut rs = replica_set("slow", 2);
    rs.spec.as_mut().unwrap().min_ready_seconds = Some(3);
    sets.create(&PostParams::default(), &rs).await.unwrap();
    let ready_at = std::time::Instant::now();
    let status = bulwark_testkit::wait_for("two ready", PATIENCE, || async {
        let status = sets
            .get("slow")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        if status.ready_replicas == Some(2) {
            Ok(status)
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await
    .unwrap();
    assert_eq!(
        status.available_replicas,
        Some(0),
        "ready, not yet available"
    );
    wait_ready(&sets, "slow", 2).await;
    assert!(ready_at.elapsed() >= std::time::Duration::from_secs(3));
}

#[tokio::test]
async fn a_hundred_replicas_are_created_once_each() {
    let (harness, _nodes) = with_nodes(&["replicaset-controller"]).await;
    let client = harness.admin();
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let start = std::time::Instant::now();
    sets.create(&PostParams::default(), &replica_set("many", 100))
        .await
        .unwrap();
    let rs = wait_ready(&sets, "many", 100).await;
    eprintln!("100 replicas ready in {:?}", start.elapsed());
    assert_eq!(owned_pods(&pods, &rs).await.len(), 100);
    let events: Api<Event> = Api::namespaced(client, "default");
    let created = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
        .count();
    assert_eq!(created, 100, "no pod created twice");
}

#[tokio::test]
async fn refused_creations_are_reported_as_replica_failure() {
    let (harness, _nodes) = with_nodes(&["replicaset-controller"]).await;
    let client = harness.admin();
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let mut rs = replica_set("priv", 3);
    // Pod Security (baseline by default) refuses privileged pods.
    let template = rs.spec.as_mut().unwrap().template.as_mut().unwrap();
    template.spec.as_mut().unwrap().containers[0].security_context =
        Some(serde_json::from_value(json!({"privileged": true})).unwrap());
    sets.create(&PostParams::default(), &rs).await.unwrap();
    let condition = bulwark_testkit::wait_for("ReplicaFailure", PATIENCE, || async {
        let status = sets
            .get("priv")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "ReplicaFailure")
            .cloned()
            .ok_or_else(|| format!("{status:?}"))
    })
    .await
    .unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_deref()),
        ("True", Some("FailedCreate"))
    );
    let events: Api<Event> = Api::namespaced(client, "default");
    let failed: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .filter_map(|e| e.message)
        .collect();
    assert!(
        failed
            .iter()
            .any(|m| m.starts_with("Error creating: ") && m.contains("PodSecurity")),
        "{failed:?}"
    );
}
