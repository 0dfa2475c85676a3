//! The Job controller's pods: the pod a Job runs, which to delete first,
//! and the tracking finalizer.

use std::collections::HashSet;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt as _};

use super::decide::{INDEX_KEY, TRACKING_FINALIZER};
use crate::owned;

/// The key of the Job controlling `pod`.
pub(super) fn job_key(pod: &Pod) -> Option<String> {
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.kind == "Job" && o.controller == Some(true))?;
    Some(format!(
        "{}/{}",
        pod.namespace().unwrap_or_default(),
        owner.name
    ))
}

pub(super) fn has_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

/// The pods to delete first, as upstream: unscheduled, then pending, then
/// not ready, then the rest.
pub(super) fn pick_for_deletion<'a>(active: &[&'a Pod], count: usize) -> Vec<&'a Pod> {
    let mut sorted = active.to_vec();
    sorted.sort_by_key(|p| {
        let unscheduled = p.spec.as_ref().is_none_or(|s| s.node_name.is_none());
        (
            !unscheduled,
            owned::phase(p) != "Pending",
            owned::is_ready(p),
        )
    });
    sorted.truncate(count);
    sorted
}

/// Removes the tracking finalizer from `pods`; returns the uids released
/// (a pod already gone counts as released).
pub(super) async fn remove_finalizers(
    api: &Api<Pod>,
    pods: &[&Pod],
) -> Result<HashSet<String>, kube::Error> {
    let mut released = HashSet::new();
    let mut failure = None;
    for pod in pods {
        let keep: Vec<&String> = pod
            .finalizers()
            .iter()
            .filter(|f| *f != TRACKING_FINALIZER)
            .collect();
        let patch = serde_json::json!({"metadata": {
            "finalizers": keep,
            "resourceVersion": pod.metadata.resource_version,
        }});
        match api
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(err) => {
                failure = Some(err);
                continue;
            }
        }
        released.insert(pod.metadata.uid.clone().unwrap_or_default());
    }
    match failure {
        Some(err) if released.is_empty() => Err(err),
        _ => Ok(released),
    }
}

/// A new pod for `job` (at `index` for Indexed Jobs).
pub(super) fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut meta = template.metadata.unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let name = job.name_any();
    let mut prefix = format!("{name}-");
    if let Some(index) = index {
        let index = index.to_string();
        prefix = format!("{name}-{index}-");
        meta.annotations
            .get_or_insert_default()
            .insert(INDEX_KEY.into(), index.clone());
        meta.labels
            .get_or_insert_default()
            .insert(INDEX_KEY.into(), index.clone());
        if spec.hostname.is_none() {
            spec.hostname = Some(format!("{name}-{index}"));
        }
        let env = EnvVar {
            name: "JOB_COMPLETION_INDEX".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.annotations['{INDEX_KEY}']"),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        };
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.env.get_or_insert_default().push(env.clone());
        }
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix),
            namespace: job.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: Some(vec![TRACKING_FINALIZER.to_owned()]),
            owner_references: Some(vec![owned::controller_ref(job)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}
