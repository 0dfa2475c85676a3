//! Writes to the API server: the binding, the `PodScheduled` condition,
//! preemption's deletions and nomination, and core/v1 Events (through
//! `bulwark-client`'s recorder, which folds repeats as upstream's does).

use std::sync::Arc;

use bulwark_client::events::{EventType, Recorder, reference};
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::preempt::Preemption;
use crate::schedule::ScheduleError;

/// The component events and conditions name (`source.component`).
pub(crate) const COMPONENT: &str = "default-scheduler";

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

/// `POST pods/<name>/binding`.
pub(crate) async fn bind(client: &kube::Client, pod: &Pod, node: &str) -> kube::Result<()> {
    let binding = Binding {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_owned()),
            ..ObjectReference::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace(pod));
    let _: serde_json::Value = api
        .create_subresource("binding", name(pod), &PostParams::default(), &binding)
        .await?;
    Ok(())
}

/// The `Scheduled` event.
pub(crate) async fn scheduled(recorder: &Recorder, pod: &Pod, node: &str) {
    let message = format!(
        "Successfully assigned {}/{} to {node}",
        namespace(pod),
        name(pod)
    );
    recorder
        .publish(&reference(pod), EventType::Normal, "Scheduled", &message)
        .await;
}

/// After a failed attempt: preemption's work if it found a node, the
/// `PodScheduled=False` condition, and a `FailedScheduling` event.
pub(crate) async fn report_failure(
    client: kube::Client,
    recorder: Recorder,
    pod: Arc<Pod>,
    err: ScheduleError,
    preemption: Option<Preemption>,
) {
    let message = err.to_string();
    let mut status = json!({});
    if let Some(p) = &preemption {
        preempt(&client, &recorder, &pod, p).await;
        status["nominatedNodeName"] = json!(p.node);
    }
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    let same = current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(err.reason())
            && c.message.as_deref() == Some(&message)
    });
    if !same {
        status["conditions"] = json!([{
            "type": "PodScheduled",
            "status": "False",
            "reason": err.reason(),
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now()),
        }]);
    }
    if status.as_object().is_some_and(|s| !s.is_empty()) {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace(&pod));
        let patch = json!({"status": status});
        if let Err(e) = api
            .patch_status(
                name(&pod),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            tracing::warn!(pod = name(&pod), error = %e, "updating PodScheduled failed");
        }
    }
    recorder
        .publish(
            &reference(&*pod),
            EventType::Warning,
            "FailedScheduling",
            &message,
        )
        .await;
}

/// Marks each victim as a disruption target, deletes it, and tells it why.
async fn preempt(client: &kube::Client, recorder: &Recorder, pod: &Pod, p: &Preemption) {
    for (ns, victim) in &p.victims {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let condition = json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": format!("{COMPONENT}: preempting to accommodate a higher priority pod"),
            "lastTransitionTime": jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now()),
        }]}});
        if let Err(e) = api
            .patch_status(
                victim,
                &PatchParams::default(),
                &Patch::Strategic(condition),
            )
            .await
        {
            tracing::debug!(pod = victim, error = %e, "marking a preemption victim failed");
        }
        match api.delete(victim, &DeleteParams::default()).await {
            Ok(either) => {
                if let Some(v) = either.left() {
                    let msg = format!(
                        "Preempted by pod {} on node {}",
                        pod.metadata.uid.as_deref().unwrap_or(""),
                        p.node
                    );
                    recorder
                        .publish(&reference(&v), EventType::Normal, "Preempted", &msg)
                        .await;
                }
            }
            Err(e) => {
                tracing::warn!(pod = victim, error = %e, "deleting a preemption victim failed")
            }
        }
    }
}
