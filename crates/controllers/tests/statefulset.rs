//! The StatefulSet controller, against a real API server with fake nodes.

// Helpers outside #[test] fns unwrap too: a failed request fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{PATIENCE, with_nodes};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt as _};
use serde_json::json;

const CONTROLLER: &str = "statefulset-controller";

fn stateful_set(name: &str, replicas: i32, scheduler: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "schedulerName": scheduler,
                    "containers": [{"name": "c", "image": "nginx:1.27"}],
                },
            },
        },
    }))
    .unwrap()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Names of the live (not deleting) pods, sorted.
async fn live_pods(pods: &Api<Pod>) -> Vec<String> {
    let mut names: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .collect();
    names.sort();
    names
}

/// Waits until the status shows `n` replicas, all ready, for the current
/// generation, and `updated` of them on the update revision.
async fn wait_status(sets: &Api<StatefulSet>, name: &str, n: i32, updated: i32) -> StatefulSet {
    bulwark_testkit::wait_for(&format!("{name} at {n} ready"), PATIENCE, || async {
        let set = sets.get(name).await.map_err(|e| e.to_string())?;
        let status = set.status.clone().unwrap_or_default();
        if status.replicas == n
            && status.ready_replicas == Some(n)
            && status.available_replicas == Some(n)
            && status.updated_replicas == Some(updated)
            && status.observed_generation == set.metadata.generation
        {
            Ok(set)
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await
    .unwrap()
}

/// What a pod watch saw: for each pod of the set first seen with ordinal
/// i > 0, whether ordinal i-1 was Ready then; and the order of deletions.
#[derive(Default)]
struct Seen {
    ready: BTreeMap<String, bool>,
    created: Vec<(String, bool)>,
    deleted: Vec<String>,
}

fn watch_pods(
    pods: Api<Pod>,
    set: &'static str,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let task = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let stream = watcher(pods, watcher::Config::default());
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let Ok(event) = event else { continue };
                let mut seen = seen.lock().unwrap();
                match event {
                    watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                        let name = pod.name_any();
                        let ordinal: i32 =
                            name.trim_start_matches(&format!("{set}-")).parse().unwrap();
                        if !seen.ready.contains_key(&name) {
                            let before = seen
                                .ready
                                .get(&format!("{set}-{}", ordinal - 1))
                                .copied()
                                .unwrap_or(ordinal == 0);
                            seen.created.push((name.clone(), before));
                        }
                        let ready = is_ready(&pod) && pod.metadata.deletion_timestamp.is_none();
                        seen.ready.insert(name, ready);
                    }
                    watcher::Event::Delete(pod) => {
                        let name = pod.name_any();
                        seen.ready.remove(&name);
                        seen.deleted.push(name);
                    }
                    _ => {}
                }
            }
        })
    };
    (seen, task)
}

#[tokio::test]
async fn ordered_ready_creates_in_order_and_scales_down_from_the_top() {
    let (harness, _nodes) = with_nodes(&[CONTROLLER]).await;
    let client = harness.admin();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (seen, watch) = watch_pods(pods.clone(), "web");
    // No binder serves this scheduler: web-0 stays Pending.
    sets.create(&PostParams::default(), &stateful_set("web", 3, "nobody"))
        .await
        .unwrap();
    bulwark_testkit::wait_for("web-0 created", PATIENCE, || async {
        let names = live_pods(&pods).await;
        (names == ["web-0"])
            .then_some(())
            .ok_or(format!("{names:?}"))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(live_pods(&pods).await, ["web-0"], "web-1 waits for web-0");

    // A schedulable template; the stuck web-0 is replaced by hand, as
    // upstream requires.
    let patch = json!({"spec": {"template": {"spec": {"schedulerName": "default-scheduler"}}}});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pods.delete("web-0", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let set = wait_status(&sets, "web", 3, 3).await;
    let status = set.status.clone().unwrap();
    assert_eq!(status.current_revision, status.update_revision);
    let revision = status.update_revision.clone().unwrap();
    assert!(revision.starts_with("web-"), "{revision}");
    for (ordinal, pod) in ["web-0", "web-1", "web-2"].into_iter().enumerate() {
        let pod = pods.get(pod).await.unwrap();
        let labels = pod.labels();
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], pod.name_any());
        assert_eq!(labels["apps.kubernetes.io/pod-index"], ordinal.to_string());
        assert_eq!(labels["controller-revision-hash"], revision);
        assert_eq!(labels["app"], "web");
        let spec = pod.spec.unwrap();
        assert_eq!(
            spec.hostname.as_deref(),
            Some(pod.metadata.name.as_deref().unwrap())
        );
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        let owner = pod.metadata.owner_references.unwrap();
        assert_eq!(owner[0].kind, "StatefulSet");
        assert_eq!(owner[0].controller, Some(true));
    }
    {
        let seen = seen.lock().unwrap();
        let order: Vec<&str> = seen.created.iter().map(|(n, _)| n.as_str()).collect();
        // web-0 twice: the stuck one, then its replacement.
        assert_eq!(
            order,
            ["web-0", "web-0", "web-1", "web-2"],
            "{:?}",
            seen.created
        );
        assert!(
            seen.created.iter().all(|(_, before)| *before),
            "{:?}",
            seen.created
        );
    }
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    bulwark_testkit::wait_for("creation events", PATIENCE, || async {
        let messages: HashSet<String> = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
            .filter_map(|e| e.message)
            .collect();
        (messages.contains("create Pod web-2 in StatefulSet web successful"))
            .then_some(())
            .ok_or(format!("{messages:?}"))
    })
    .await
    .unwrap();

    // Scale down: web-2 goes, then web-1.
    let patch = json!({"spec": {"replicas": 1}});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_status(&sets, "web", 1, 1).await;
    bulwark_testkit::wait_for("web-1 and web-2 gone", PATIENCE, || async {
        let names = live_pods(&pods).await;
        (names == ["web-0"])
            .then_some(())
            .ok_or(format!("{names:?}"))
    })
    .await
    .unwrap();
    bulwark_testkit::wait_for("deletions seen", PATIENCE, || async {
        let deleted = seen.lock().unwrap().deleted.clone();
        let ours: Vec<&String> = deleted.iter().filter(|n| *n != "web-0").collect();
        (ours == ["web-2", "web-1"])
            .then_some(())
            .ok_or(format!("{deleted:?}"))
    })
    .await
    .unwrap();
    watch.abort();
}

fn kubectl_binary() -> Option<std::path::PathBuf> {
    let path = std::env::var("BULWARK_KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".into());
    Path::new(&path)
        .exists()
        .then(|| std::path::PathBuf::from(path))
}

/// `kubectl rollout status statefulset/web` (no wait); returns its output.
async fn rollout_status(kubeconfig: &Path) -> Option<String> {
    let binary = kubectl_binary()?;
    let out = tokio::process::Command::new(binary)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["rollout", "status", "statefulset/web", "--timeout=60s"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubectl rollout status: {text}");
    Some(text)
}

#[tokio::test]
async fn rolling_update_respects_the_partition() {
    let (harness, _nodes) = with_nodes(&[CONTROLLER]).await;
    let client = harness.admin();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    sets.create(
        &PostParams::default(),
        &stateful_set("web", 3, "default-scheduler"),
    )
    .await
    .unwrap();
    let set = wait_status(&sets, "web", 3, 3).await;
    let old = set.status.unwrap().update_revision.unwrap();
    if let Some(out) = rollout_status(&harness.cluster.kubeconfig()).await {
        assert!(out.contains("rolling update complete"), "{out}");
    }

    let patch = json!({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.28"}]}},
    }});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let set = wait_status(&sets, "web", 3, 2).await;
    let status = set.status.unwrap();
    let new = status.update_revision.clone().unwrap();
    assert_ne!(new, old);
    assert_eq!(status.current_revision.as_deref(), Some(old.as_str()));
    assert_eq!(status.current_replicas, Some(1));
    let revision_of = |pod: Pod| pod.labels()["controller-revision-hash"].clone();
    let image_of = |pod: &Pod| {
        pod.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    let web0 = pods.get("web-0").await.unwrap();
    assert_eq!(image_of(&web0), "nginx:1.27");
    assert_eq!(revision_of(web0), old);
    for name in ["web-1", "web-2"] {
        let pod = pods.get(name).await.unwrap();
        assert_eq!(image_of(&pod), "nginx:1.28");
        assert_eq!(revision_of(pod), new);
    }
    if let Some(out) = rollout_status(&harness.cluster.kubeconfig()).await {
        assert!(out.contains("partitioned roll out complete"), "{out}");
    }

    // Partition 0: web-0 follows and the update revision becomes current.
    let patch = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let set = wait_status(&sets, "web", 3, 3).await;
    let status = set.status.unwrap();
    assert_eq!(status.current_revision.as_deref(), Some(new.as_str()));
    assert_eq!(image_of(&pods.get("web-0").await.unwrap()), "nginx:1.28");
    if let Some(out) = rollout_status(&harness.cluster.kubeconfig()).await {
        // With a partition set (even 0) kubectl reports a partitioned roll out.
        assert!(
            out.contains("partitioned roll out complete: 3 new pods"),
            "{out}"
        );
    }

    // kubectl undoes through the ControllerRevisions: back to the old one.
    if let Some(binary) = kubectl_binary() {
        let out = tokio::process::Command::new(binary)
            .arg("--kubeconfig")
            .arg(harness.cluster.kubeconfig())
            .args(["rollout", "undo", "statefulset/web"])
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        bulwark_testkit::wait_for("rolled back", PATIENCE, || async {
            let set = sets.get("web").await.map_err(|e| e.to_string())?;
            let status = set.status.clone().unwrap_or_default();
            (status.update_revision.as_deref() == Some(old.as_str())
                && status.current_revision.as_deref() == Some(old.as_str())
                && status.updated_replicas == Some(3)
                && status.ready_replicas == Some(3))
            .then_some(())
            .ok_or(format!("{status:?}"))
        })
        .await
        .unwrap();
        assert_eq!(image_of(&pods.get("web-0").await.unwrap()), "nginx:1.27");
    }
}

#[tokio::test]
async fn parallel_replaces_failed_pods_and_on_delete_waits_for_deletions() {
    let (harness, _nodes) = with_nodes(&[CONTROLLER]).await;
    let client = harness.admin();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut set = stateful_set("db", 3, "default-scheduler");
    let spec = set.spec.as_mut().unwrap();
    spec.pod_management_policy = Some("Parallel".into());
    spec.update_strategy.as_mut().unwrap().type_ = Some("OnDelete".into());
    spec.ordinals = Some(k8s_openapi::api::apps::v1::StatefulSetOrdinals { start: Some(5) });
    sets.create(&PostParams::default(), &set).await.unwrap();
    let set = wait_status(&sets, "db", 3, 3).await;
    assert_eq!(live_pods(&pods).await, ["db-5", "db-6", "db-7"]);
    let old = set.status.unwrap().update_revision.unwrap();

    // A failed pod is deleted and made again.
    let failed = pods.get("db-6").await.unwrap();
    let patch = json!({"status": {"phase": "Failed"}});
    pods.patch_status("db-6", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    bulwark_testkit::wait_for("db-6 replaced", PATIENCE, || async {
        let pod = pods.get("db-6").await.map_err(|e| e.to_string())?;
        (pod.metadata.uid != failed.metadata.uid && is_ready(&pod))
            .then_some(())
            .ok_or(format!("{:?}", pod.status.map(|s| s.phase)))
    })
    .await
    .unwrap();
    wait_status(&sets, "db", 3, 3).await;

    // OnDelete: a new template touches no pod until one is deleted.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.28"}]}}}});
    sets.patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let set = wait_status(&sets, "db", 3, 0).await;
    let status = set.status.unwrap();
    assert_ne!(status.update_revision.as_deref(), Some(old.as_str()));
    assert_eq!(status.current_revision.as_deref(), Some(old.as_str()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let db7 = pods.get("db-7").await.unwrap();
    assert_eq!(db7.labels()["controller-revision-hash"], old);
    pods.delete("db-7", &DeleteParams::default()).await.unwrap();
    wait_status(&sets, "db", 3, 1).await;
    let db7 = pods.get("db-7").await.unwrap();
    assert_eq!(
        db7.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.28")
    );
}
