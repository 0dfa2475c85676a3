//! The Deployment controller (with the ReplicaSet controller), against a
//! real API server with fake nodes.

// Helpers outside #[test] fns unwrap too: a failed request fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{PATIENCE, with_nodes};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};
use serde_json::{Value, json};

const BOTH: &[&str] = &["replicaset-controller", "deployment-controller"];

fn deployment(name: &str, replicas: i32, strategy: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.26"}]},
            },
        },
    }))
    .unwrap()
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

fn set_image(image: &str) -> Patch<Value> {
    Patch::Strategic(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
    )
}

/// Waits until the rollout is done as `kubectl rollout status` judges it,
/// with every active pod running `image`.
async fn wait_rolled_out(
    client: &kube::Client,
    name: &str,
    replicas: i32,
    image: &str,
) -> Deployment {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    bulwark_testkit::wait_for(
        &format!("{name} rolled out to {image}"),
        PATIENCE,
        || async {
            let d = deployments.get(name).await.map_err(|e| e.to_string())?;
            let status = d.status.clone().unwrap_or_default();
            let done = d.metadata.generation <= status.observed_generation
                && status.updated_replicas == Some(replicas)
                && status.replicas == Some(replicas)
                && status.available_replicas == Some(replicas);
            let images: Vec<String> = active_pods(&pods, name)
                .await
                .iter()
                .map(image_of)
                .collect();
            if done
                && images.len() == usize::try_from(replicas).unwrap()
                && images.iter().all(|i| i == image)
            {
                Ok(d)
            } else {
                Err(format!("{status:?} pods {images:?}"))
            }
        },
    )
    .await
    .unwrap()
}

async fn active_pods(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn image_of(pod: &Pod) -> String {
    pod.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Watches the pods of `app` and records the fewest ready and the most
/// present (not deleting) at any moment, and the images seen running
/// together.
struct PodWatch {
    fewest_ready: Arc<Mutex<usize>>,
    most_present: Arc<Mutex<usize>>,
    mixed_images: Arc<Mutex<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    fn start(client: kube::Client, app: &str) -> Self {
        let (fewest_ready, most_present, mixed_images) = (
            Arc::new(Mutex::new(usize::MAX)),
            Arc::new(Mutex::new(0)),
            Arc::new(Mutex::new(false)),
        );
        let (f, m, x) = (
            Arc::clone(&fewest_ready),
            Arc::clone(&most_present),
            Arc::clone(&mixed_images),
        );
        let config = watcher::Config::default().labels(&format!("app={app}"));
        let task = tokio::spawn(async move {
            let mut seen: BTreeMap<String, Pod> = BTreeMap::new();
            let stream =
                watcher(Api::<Pod>::namespaced(client, "default"), config).default_backoff();
            futures::pin_mut!(stream);
            let mut listing = true;
            while let Some(Ok(event)) = stream.next().await {
                match event {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        seen.insert(p.name_any(), p);
                    }
                    watcher::Event::Delete(p) => {
                        seen.remove(&p.name_any());
                    }
                    watcher::Event::Init => listing = true,
                    watcher::Event::InitDone => listing = false,
                }
                if listing {
                    continue;
                }
                let ready: Vec<&Pod> = seen.values().filter(|p| is_ready(p)).collect();
                let present = seen
                    .values()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .count();
                let mut f = f.lock().unwrap();
                *f = (*f).min(ready.len());
                let mut m = m.lock().unwrap();
                *m = (*m).max(present);
                let images: std::collections::BTreeSet<String> =
                    ready.iter().map(|p| image_of(p)).collect();
                if images.len() > 1 {
                    *x.lock().unwrap() = true;
                }
            }
        });
        PodWatch {
            fewest_ready,
            most_present,
            mixed_images,
            task,
        }
    }

    fn fewest_ready(&self) -> usize {
        *self.fewest_ready.lock().unwrap()
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn replica_sets(client: &kube::Client, d: &Deployment) -> Vec<ReplicaSet> {
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    sets.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == d.metadata.uid.as_ref())
        })
        .collect()
}

fn revision<K: kube::Resource>(object: &K) -> Option<String> {
    object
        .meta()
        .annotations
        .as_ref()?
        .get("deployment.kubernetes.io/revision")
        .cloned()
}

// Multi-threaded: both controllers wait for the shared informers at once
// (once, one of them waited forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_with_max_unavailable_zero_keeps_every_replica_ready() {
    let (harness, _nodes) = with_nodes(BOTH).await;
    let client = harness.admin();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 4, rolling(json!(1), json!(0))),
        )
        .await
        .unwrap();
    let d = wait_rolled_out(&client, "web", 4, "nginx:1.26").await;
    assert_eq!(revision(&d).as_deref(), Some("1"));
    let first = replica_sets(&client, &d).await;
    assert_eq!(first.len(), 1);
    let hash = first[0].labels().get("pod-template-hash").cloned().unwrap();
    assert_eq!(first[0].name_any(), format!("web-{hash}"));

    let watch = PodWatch::start(client.clone(), "web");
    bulwark_testkit::wait_for("the watch sees four ready", PATIENCE, || async {
        let n = watch.fewest_ready();
        if n == 4 { Ok(()) } else { Err(format!("{n}")) }
    })
    .await
    .unwrap();
    deployments
        .patch("web", &PatchParams::default(), &set_image("nginx:1.27"))
        .await
        .unwrap();
    let d = wait_rolled_out(&client, "web", 4, "nginx:1.27").await;
    assert_eq!(
        watch.fewest_ready(),
        4,
        "never below the desired ready count"
    );
    assert!(
        *watch.most_present.lock().unwrap() <= 5,
        "never above replicas + maxSurge"
    );
    assert_eq!(revision(&d).as_deref(), Some("2"));

    let sets = replica_sets(&client, &d).await;
    assert_eq!(sets.len(), 2);
    let new = sets
        .iter()
        .find(|rs| revision(*rs).as_deref() == Some("2"))
        .unwrap();
    let old = sets
        .iter()
        .find(|rs| revision(*rs).as_deref() == Some("1"))
        .unwrap();
    assert_eq!(
        (
            new.spec.as_ref().unwrap().replicas,
            old.spec.as_ref().unwrap().replicas
        ),
        (Some(4), Some(0))
    );

    let status = d.status.unwrap();
    let condition = |t: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        condition("Available").reason.as_deref(),
        Some("MinimumReplicasAvailable")
    );
    let progressing = condition("Progressing");
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        progressing.message.unwrap(),
        format!(
            "ReplicaSet \"{}\" has successfully progressed.",
            new.name_any()
        )
    );

    let events: Api<Event> = Api::namespaced(client, "default");
    let messages: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Deployment")
                && e.reason.as_deref() == Some("ScalingReplicaSet")
        })
        .filter_map(|e| e.message)
        .collect();
    let expected = format!("Scaled up replica set {} from 0 to 1", new.name_any());
    assert!(messages.contains(&expected), "{messages:?}");
    let expected = format!("Scaled down replica set {} from 1 to 0", old.name_any());
    assert!(messages.contains(&expected), "{messages:?}");
}

#[tokio::test]
async fn scaling_and_rolling_back_restores_the_old_template() {
    let (harness, _nodes) = with_nodes(BOTH).await;
    let client = harness.admin();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("api", 2, rolling(json!("25%"), json!("25%"))),
        )
        .await
        .unwrap();
    wait_rolled_out(&client, "api", 2, "nginx:1.26").await;
    let scale = |n: i32| Patch::Merge(json!({"spec": {"replicas": n}}));
    deployments
        .patch("api", &PatchParams::default(), &scale(5))
        .await
        .unwrap();
    wait_rolled_out(&client, "api", 5, "nginx:1.26").await;
    deployments
        .patch("api", &PatchParams::default(), &scale(3))
        .await
        .unwrap();
    let d = wait_rolled_out(&client, "api", 3, "nginx:1.26").await;
    assert_eq!(
        revision(&d).as_deref(),
        Some("1"),
        "scaling is not a new revision"
    );
    let first_rs = replica_sets(&client, &d).await.remove(0);

    deployments
        .patch("api", &PatchParams::default(), &set_image("nginx:1.27"))
        .await
        .unwrap();
    wait_rolled_out(&client, "api", 3, "nginx:1.27").await;

    // What `kubectl rollout undo` does: the previous revision's template
    // (without its hash label) becomes the Deployment's.
    let mut template = serde_json::to_value(first_rs.spec.unwrap().template.unwrap()).unwrap();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    // (kubectl sends a JSON patch; a merge patch replaces the containers
    // list just the same.)
    let undo = json!({"spec": {"template": template}});
    deployments
        .patch("api", &PatchParams::default(), &Patch::Merge(undo))
        .await
        .unwrap();
    let d = wait_rolled_out(&client, "api", 3, "nginx:1.26").await;
    assert_eq!(revision(&d).as_deref(), Some("3"));
    let sets = replica_sets(&client, &d).await;
    assert_eq!(sets.len(), 2, "the old ReplicaSet is reused, not copied");
    let current = sets
        .iter()
        .find(|rs| rs.name_any() == first_rs.metadata.name.clone().unwrap())
        .unwrap();
    assert_eq!(revision(current).as_deref(), Some("3"));
    assert_eq!(
        current
            .annotations()
            .get("deployment.kubernetes.io/revision-history")
            .map(String::as_str),
        Some("1")
    );
}

#[tokio::test]
async fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let (harness, _nodes) = with_nodes(BOTH).await;
    let client = harness.admin();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("batch", 3, json!({"type": "Recreate"})),
        )
        .await
        .unwrap();
    wait_rolled_out(&client, "batch", 3, "nginx:1.26").await;
    let watch = PodWatch::start(client.clone(), "batch");
    deployments
        .patch("batch", &PatchParams::default(), &set_image("nginx:1.27"))
        .await
        .unwrap();
    wait_rolled_out(&client, "batch", 3, "nginx:1.27").await;
    assert!(
        !*watch.mixed_images.lock().unwrap(),
        "old and new pods never ran together"
    );
}

#[tokio::test]
async fn a_paused_deployment_does_not_roll_out_until_resumed_and_history_is_pruned() {
    let (harness, _nodes) = with_nodes(BOTH).await;
    let client = harness.admin();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("cache", 2, rolling(json!(1), json!(0)));
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    wait_rolled_out(&client, "cache", 2, "nginx:1.26").await;

    let pause = |paused: bool| Patch::Merge(json!({"spec": {"paused": paused}}));
    deployments
        .patch("cache", &PatchParams::default(), &pause(true))
        .await
        .unwrap();
    deployments
        .patch("cache", &PatchParams::default(), &set_image("nginx:1.27"))
        .await
        .unwrap();
    let d = bulwark_testkit::wait_for("paused condition", PATIENCE, || async {
        let d = deployments.get("cache").await.map_err(|e| e.to_string())?;
        let status = d.status.clone().unwrap_or_default();
        let reason = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing")
            .and_then(|c| c.reason.clone());
        if status.observed_generation == d.metadata.generation
            && reason.as_deref() == Some("DeploymentPaused")
        {
            Ok(d)
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await
    .unwrap();
    assert_eq!(
        replica_sets(&client, &d).await.len(),
        1,
        "no new ReplicaSet while paused"
    );

    deployments
        .patch("cache", &PatchParams::default(), &pause(false))
        .await
        .unwrap();
    wait_rolled_out(&client, "cache", 2, "nginx:1.27").await;
    deployments
        .patch("cache", &PatchParams::default(), &set_image("nginx:1.28"))
        .await
        .unwrap();
    let d = wait_rolled_out(&client, "cache", 2, "nginx:1.28").await;
    assert_eq!(revision(&d).as_deref(), Some("3"));
    bulwark_testkit::wait_for("history pruned to one old ReplicaSet", PATIENCE, || async {
        let revisions: Vec<_> = replica_sets(&client, &d)
            .await
            .iter()
            .map(revision)
            .collect();
        if revisions.len() == 2 && !revisions.contains(&Some("1".to_owned())) {
            Ok(())
        } else {
            Err(format!("{revisions:?}"))
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_stalled_rollout_exceeds_its_progress_deadline() {
    let (harness, _nodes) = with_nodes(BOTH).await;
    let client = harness.admin();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("stuck", 2, rolling(json!(1), json!(0)));
    let spec = d.spec.as_mut().unwrap();
    spec.progress_deadline_seconds = Some(1);
    // No scheduler serves it: the pods stay pending.
    spec.template.spec.as_mut().unwrap().scheduler_name = Some("nobody".into());
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let d = bulwark_testkit::wait_for("deadline exceeded", PATIENCE, || async {
        let d = deployments.get("stuck").await.map_err(|e| e.to_string())?;
        let status = d.status.clone().unwrap_or_default();
        let progressing = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing")
            .cloned();
        match progressing {
            Some(c) if c.reason.as_deref() == Some("ProgressDeadlineExceeded") => Ok(d),
            _ => Err(format!("{status:?}")),
        }
    })
    .await
    .unwrap();
    let status = d.status.unwrap();
    let available = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("False", Some("MinimumReplicasUnavailable"))
    );
    assert_eq!(status.unavailable_replicas, Some(2));
}

#[tokio::test]
async fn a_restarted_controller_finds_its_replica_set_again() {
    let (mut harness, _nodes) = with_nodes(BOTH).await;
    let client = harness.admin();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("steady", 2, rolling(json!(1), json!(0))),
        )
        .await
        .unwrap();
    let d = wait_rolled_out(&client, "steady", 2, "nginx:1.26").await;
    let before = replica_sets(&client, &d).await;
    harness.restart_manager();
    // The new manager must act on the Deployment to scale it.
    let scale = Patch::Merge(json!({"spec": {"replicas": 3}}));
    deployments
        .patch("steady", &PatchParams::default(), &scale)
        .await
        .unwrap();
    let d = wait_rolled_out(&client, "steady", 3, "nginx:1.26").await;
    let after = replica_sets(&client, &d).await;
    assert_eq!(after.len(), 1, "no second ReplicaSet for the same template");
    assert_eq!(after[0].metadata.uid, before[0].metadata.uid);
    assert_eq!(revision(&d).as_deref(), Some("1"));
}
