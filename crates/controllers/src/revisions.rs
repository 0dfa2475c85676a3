//! ControllerRevisions: the template history DaemonSets and StatefulSets
//! keep (`kubectl rollout history|undo`), one revision per distinct pod
//! template, named `<owner>-<hash>` and labelled with the hash.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt as _};

use crate::informer::Informer;
use crate::owned;

/// The label carrying a revision's (and its pods') template hash.
pub(crate) const REVISION_HASH: &str = "controller-revision-hash";

/// The revisions in `namespace` controlled by the object with `uid`, from
/// the cache.
pub(crate) fn owned_by(
    revisions: &Informer<ControllerRevision>,
    namespace: &str,
    uid: Option<&str>,
) -> Vec<Arc<ControllerRevision>> {
    revisions
        .store()
        .state()
        .into_iter()
        .filter(|r| {
            r.namespace().as_deref() == Some(namespace) && owned::controller_uid(r.as_ref()) == uid
        })
        .collect()
}

/// Makes `template` (whose hash is `hash`) the newest of `owner`'s
/// revisions (`owned`): its revision is created if missing, or — back to
/// an old template, a rollback — renumbered past the newest.
pub(crate) async fn record<K: Resource<DynamicType = ()>>(
    api: &Api<ControllerRevision>,
    owner: &K,
    owned: &[Arc<ControllerRevision>],
    template: &PodTemplateSpec,
    hash: &str,
) -> Result<(), kube::Error> {
    let name = format!("{}-{hash}", owner.name_any());
    let latest = owned.iter().map(|r| r.revision).max().unwrap_or(0);
    match owned.iter().find(|r| r.name_any() == name) {
        Some(existing) if existing.revision < latest => {
            let patch = serde_json::json!({"revision": latest + 1});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        }
        Some(_) => Ok(()),
        None => {
            let mut data = serde_json::to_value(template).unwrap_or_default();
            if let Some(map) = data.as_object_mut() {
                map.insert("$patch".into(), "replace".into());
            }
            let mut labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(REVISION_HASH.into(), hash.to_owned());
            let revision = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: owner.namespace(),
                    labels: Some(labels),
                    owner_references: Some(vec![owned::controller_ref(owner)]),
                    ..ObjectMeta::default()
                },
                data: Some(RawExtension(
                    serde_json::json!({"spec": {"template": data}}),
                )),
                revision: latest + 1,
            };
            match api.create(&PostParams::default(), &revision).await {
                Ok(_) => Ok(()),
                // Made already (the cache is behind).
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(err) => Err(err),
            }
        }
    }
}
