//! Pod garbage collection (upstream's podgc controller): once more pods
//! have terminated (phase Succeeded or Failed) than the threshold
//! (`--terminated-pod-gc-threshold`, 12,500 by default; 0 turns this off),
//! the oldest of them beyond it are deleted; and a pod being deleted that
//! was never bound to a node is deleted at once, since no node agent will
//! ever confirm its end. (Pods bound to nodes that no longer exist are the
//! node lifecycle controller's.)
//!
//! It runs when pods change, at most once a second.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt as _};

use crate::Context;

/// The shortest time between two collections.
const MIN_PERIOD: Duration = Duration::from_secs(1);

pub(crate) async fn run(cx: Context) {
    let pods = cx.informers.get::<Pod>();
    let mut changes = pods.subscribe();
    pods.ready().await;
    loop {
        let snapshot = pods.store().state();
        for (namespace, name) in collectable(&snapshot, cx.terminated_pod_gc_threshold) {
            let api: Api<Pod> = Api::namespaced(cx.client.clone(), &namespace);
            match api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await
            {
                Ok(_) => tracing::info!(pod = %name, %namespace, "pod garbage-collected"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(err) => tracing::debug!(pod = %name, error = %err, "pod gc"),
            }
        }
        tokio::time::sleep(MIN_PERIOD).await;
        // Wait for a change (and take all that came meanwhile).
        match changes.next().await {
            Some(_) => {}
            None => return,
        }
        changes.drain();
    }
}

/// The pods to delete, as (namespace, name): terminated pods beyond the
/// threshold, oldest first, and unbound pods already being deleted.
fn collectable(pods: &[std::sync::Arc<Pod>], threshold: usize) -> Vec<(String, String)> {
    let terminated_phase = |pod: &Pod| {
        matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    };
    let key = |pod: &Pod| (pod.namespace().unwrap_or_default(), pod.name_any());
    let mut out = Vec::new();
    if threshold > 0 {
        let mut terminated: Vec<&Pod> = pods
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| terminated_phase(p) && p.metadata.deletion_timestamp.is_none())
            .collect();
        if terminated.len() > threshold {
            terminated.sort_by(|a, b| {
                let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                created(a)
                    .cmp(&created(b))
                    .then_with(|| key(a).cmp(&key(b)))
            });
            let excess = terminated.len() - threshold;
            out.extend(terminated[..excess].iter().map(|p| key(p)));
        }
    }
    out.extend(
        pods.iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_some()
                    && p.spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .is_none()
            })
            .map(|p| key(p)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pod(name: &str, created: i64, phase: &str, node: Option<&str>, deleting: bool) -> Arc<Pod> {
        let mut value = serde_json::json!({
            "metadata": {"name": name, "namespace": "ns",
                         "creationTimestamp": jiff::Timestamp::from_second(created).unwrap().to_string()},
            "spec": {"containers": []},
            "status": {"phase": phase},
        });
        if let Some(node) = node {
            value["spec"]["nodeName"] = node.into();
        }
        if deleting {
            value["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        Arc::new(serde_json::from_value(value).unwrap_or_default())
    }

    fn names(found: Vec<(String, String)>) -> Vec<String> {
        found.into_iter().map(|(_, name)| name).collect()
    }

    #[test]
    fn the_oldest_terminated_pods_beyond_the_threshold_go() {
        let pods = vec![
            pod("new-done", 300, "Succeeded", Some("n"), false),
            pod("old-failed", 100, "Failed", Some("n"), false),
            pod("running", 50, "Running", Some("n"), false),
            pod("mid-done", 200, "Succeeded", Some("n"), false),
        ];
        assert_eq!(names(collectable(&pods, 1)), ["old-failed", "mid-done"]);
        assert!(collectable(&pods, 3).is_empty());
        // 0: terminated pods are kept however many there are.
        assert!(collectable(&pods, 0).is_empty());
    }

    #[test]
    fn an_unbound_pod_being_deleted_goes_at_once() {
        let pods = vec![
            pod("never-scheduled", 1, "Pending", None, true),
            pod("on-a-node", 1, "Running", Some("n"), true),
            pod("pending", 1, "Pending", None, false),
        ];
        assert_eq!(names(collectable(&pods, 12_500)), ["never-scheduled"]);
    }
}
