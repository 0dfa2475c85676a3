//! The StatefulSet controller (upstream's `statefulset-controller`): pods
//! with stable identities `<set>-<ordinal>` (ordinals from
//! `spec.ordinals.start`), each with `hostname` = its name and `subdomain`
//! = `spec.serviceName`, labelled `statefulset.kubernetes.io/pod-name`,
//! `apps.kubernetes.io/pod-index` and `controller-revision-hash`.
//!
//! `OrderedReady` creates ordinal *i* only once ordinals below it are
//! Running and Ready and scales down from the highest ordinal, one pod at a
//! time, waiting for each deletion; `Parallel` does all at once. Template
//! history is kept as ControllerRevisions (status `currentRevision` and
//! `updateRevision` name them); `RollingUpdate` replaces pods from the
//! highest ordinal down to `partition` within `maxUnavailable` (default 1);
//! `OnDelete` leaves that to the user. Failed and succeeded pods are deleted
//! and made again. The decisions are in `decide.rs`.
//!
//! Not done: `volumeClaimTemplates` are ignored (Bulwark has no storage
//! yet, so no PersistentVolumeClaims are made or retained), as are
//! `minReadySeconds` (available = ready) and revision hash collisions
//! (`collisionCount` is reported, never raised).

mod decide;

use std::collections::HashSet;
use std::sync::Arc;

use bulwark_client::events::{EventType, reference};
use decide::{Action, PodState, Slot, Update};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::daemonset::decide::{revisions_to_prune, scaled, template_hash};
use crate::informer::{Change, Informer};
use crate::owned;
use crate::ownership::{self, Claim};
use crate::queue::{Next, WorkQueue, run_workers};
use crate::revisions::{self, REVISION_HASH};

const POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
const POD_INDEX: &str = "apps.kubernetes.io/pod-index";

pub(crate) async fn run(cx: Context) {
    let sets = cx.informers.get::<StatefulSet>();
    let pods = cx.informers.get::<Pod>();
    let revisions = cx.informers.get::<ControllerRevision>();
    let queue = WorkQueue::<String>::new();
    let (mut set_changes, mut pod_changes) = (sets.subscribe(), pods.subscribe());
    sets.ready().await;
    pods.ready().await;
    revisions.ready().await;
    let enqueue_all = sets.enqueue_all(&queue, owned::key_of);
    enqueue_all();
    let feeder = {
        let (queue, sets) = (Arc::clone(&queue), sets.clone());
        async move {
            loop {
                tokio::select! {
                    change = set_changes.next() => match change {
                        Some(Change::Applied(set) | Change::Deleted(set)) => queue.add(owned::key_of(set.as_ref())),
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                    change = pod_changes.next() => match change {
                        Some(Change::Applied(pod) | Change::Deleted(pod)) => pod_changed(&pod, &sets, &queue),
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                }
            }
        }
    };
    let controller = Arc::new(StatefulSetController {
        cx,
        sets,
        pods,
        revisions,
    });
    let reconcile = move |key: String| {
        let controller = Arc::clone(&controller);
        async move { controller.reconcile(&key).await }
    };
    tokio::join!(
        feeder,
        run_workers("statefulset-controller", queue, 2, reconcile)
    );
}

/// Queues the set controlling `pod`, or every set that could adopt it.
fn pod_changed(pod: &Pod, sets: &Informer<StatefulSet>, queue: &WorkQueue<String>) {
    let namespace = pod.namespace().unwrap_or_default();
    if let Some(owner) = ownership::controller_of(&pod.metadata) {
        if owner.kind == "StatefulSet" && owner.api_version.starts_with("apps/") {
            queue.add(format!("{namespace}/{}", owner.name));
        }
        return;
    }
    for set in sets.store().state() {
        if set.namespace().as_deref() == Some(namespace.as_str())
            && set.spec.as_ref().is_some_and(|s| {
                ownership::matches(&ownership::selector(&s.selector), &pod.metadata)
            })
        {
            queue.add(owned::key_of(set.as_ref()));
        }
    }
}

struct StatefulSetController {
    cx: Context,
    sets: Informer<StatefulSet>,
    pods: Informer<Pod>,
    revisions: Informer<ControllerRevision>,
}

/// The revisions a sync works with: (name, template).
struct Revisions {
    current: (String, PodTemplateSpec),
    update: (String, PodTemplateSpec),
}

impl StatefulSetController {
    async fn reconcile(&self, key: &str) -> Result<Next, kube::Error> {
        let (namespace, name) = owned::split_key(key);
        let Some(set) = self
            .sets
            .store()
            .get(&ObjectRef::new(name).within(namespace))
        else {
            return Ok(Next::Done);
        };
        let spec = set.spec.clone().unwrap_or_default();
        let pods = self.claim(&set).await?;
        if set.metadata.deletion_timestamp.is_some() {
            return Ok(Next::Done);
        }
        let live_hashes: HashSet<String> = pods
            .iter()
            .filter_map(|p| p.labels().get(REVISION_HASH).cloned())
            .collect();
        let revisions = self.ensure_revisions(&set, &live_hashes).await?;
        let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
        let replicas = spec.replicas.unwrap_or(1).max(0);
        let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        let update = if strategy.type_.as_deref() == Some("OnDelete") {
            Update::OnDelete
        } else {
            let rolling = strategy.rolling_update.unwrap_or_default();
            let wanted = usize::try_from(replicas).unwrap_or(0);
            Update::Rolling {
                partition: usize::try_from(rolling.partition.unwrap_or(0)).unwrap_or(0),
                max_unavailable: scaled(rolling.max_unavailable.as_ref(), wanted).max(1),
            }
        };
        let slot_of = |ordinal: i32, pod: Option<&Pod>| Slot {
            ordinal,
            state: pod.map_or(PodState::Missing, state),
            updated: pod
                .is_some_and(|p| p.labels().get(REVISION_HASH) == Some(&revisions.update.0)),
        };
        let by_ordinal = |ordinal: i32| {
            pods.iter()
                .find(|p| decide::ordinal_of(name, &p.name_any()) == Some(ordinal))
                .map(AsRef::as_ref)
        };
        let wanted: Vec<Slot> = (start..start.saturating_add(replicas))
            .map(|o| slot_of(o, by_ordinal(o)))
            .collect();
        let condemned: Vec<Slot> = pods
            .iter()
            .filter_map(|p| {
                let o = decide::ordinal_of(name, &p.name_any())?;
                (o < start || o >= start.saturating_add(replicas)).then(|| slot_of(o, Some(p)))
            })
            .collect();

        let api: Api<Pod> = Api::namespaced(self.cx.client.clone(), namespace);
        for action in decide::plan(&wanted, &condemned, ordered, update) {
            match action {
                Action::Create(ordinal) => {
                    let index = usize::try_from(ordinal - start).unwrap_or(0);
                    let (revision, template) = if decide::uses_update_revision(index, update) {
                        &revisions.update
                    } else {
                        &revisions.current
                    };
                    let pod = pod_for(&set, ordinal, revision, template);
                    self.create_pod(&set, &api, &pod).await?;
                }
                Action::Delete(ordinal) => {
                    if let Some(pod) = by_ordinal(ordinal) {
                        self.delete_pod(&set, &api, pod).await?;
                    }
                }
            }
        }

        let mut status = status(&set, &pods, &revisions);
        if status.updated_replicas == Some(replicas)
            && status.ready_replicas == Some(replicas)
            && status.replicas == replicas
            && matches!(update, Update::Rolling { .. })
        {
            status.current_revision = status.update_revision.clone();
            status.current_replicas = status.updated_replicas;
        }
        if set.status.as_ref() != Some(&status) {
            let mut updated = (*set).clone();
            updated.status = Some(status);
            let sets: Api<StatefulSet> = Api::namespaced(self.cx.client.clone(), namespace);
            match sets
                .replace_status(name, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => {}
                // Changed (or gone) under us: the change queues another sync.
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
                Err(err) => return Err(err),
            }
        }
        Ok(Next::Done)
    }

    /// Adopts orphans that match the selector, releases pods that stopped
    /// matching; returns the set's pods (as `<set>-<ordinal>` or not).
    async fn claim(&self, set: &StatefulSet) -> Result<Vec<Arc<Pod>>, kube::Error> {
        let namespace = set.namespace().unwrap_or_default();
        let spec = set.spec.clone().unwrap_or_default();
        let selector = ownership::selector(&spec.selector);
        let uid = set.uid().unwrap_or_default();
        let deleting = set.metadata.deletion_timestamp.is_some();
        let api: Api<Pod> = Api::namespaced(self.cx.client.clone(), &namespace);
        let mut owned = Vec::new();
        for pod in self.pods.store().state() {
            if pod.namespace().as_deref() != Some(namespace.as_str()) {
                continue;
            }
            let pod_uid = pod.uid().unwrap_or_default();
            let (patch, adopting) = match ownership::claim(&uid, deleting, &selector, &pod.metadata)
            {
                Claim::Keep => {
                    owned.push(pod);
                    continue;
                }
                Claim::Adopt if pod.metadata.deletion_timestamp.is_none() => (
                    ownership::adopt_patch(&ownership::controller_ref(set), &pod_uid),
                    true,
                ),
                Claim::Ignore | Claim::Adopt => continue,
                Claim::Release => (ownership::release_patch(&uid, &pod_uid), false),
            };
            match api
                .patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
            {
                Ok(changed) if adopting => owned.push(Arc::new(changed)),
                Ok(_) => {}
                Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409 | 422) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(owned)
    }

    /// Makes sure a ControllerRevision holds the current template, prunes
    /// old ones, and returns the current and update revisions.
    async fn ensure_revisions(
        &self,
        set: &StatefulSet,
        live_hashes: &HashSet<String>,
    ) -> Result<Revisions, kube::Error> {
        let namespace = set.namespace().unwrap_or_default();
        let template = set
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let template_json = serde_json::to_value(&template).unwrap_or_default();
        let collisions = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let hash = template_hash(&template_json, collisions);
        let update_name = format!("{}-{hash}", set.name_any());
        let revisions =
            revisions::owned_by(&self.revisions, &namespace, set.metadata.uid.as_deref());
        let api: Api<ControllerRevision> = Api::namespaced(self.cx.client.clone(), &namespace);
        revisions::record(&api, set, &revisions, &template, &hash).await?;
        let current_name = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .filter(|c| c != &update_name);
        let current = current_name
            .and_then(|name| {
                let found = revisions.iter().find(|r| r.name_any() == name)?;
                Some((name, template_of(found)?))
            })
            .unwrap_or_else(|| (update_name.clone(), template.clone()));
        // Keep what the pods use and the current revision.
        let mut keep = live_hashes.clone();
        keep.insert(current.0.clone());
        let history: Vec<(String, i64, String)> = revisions
            .iter()
            .map(|r| (r.name_any(), r.revision, r.name_any()))
            .collect();
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        for old in revisions_to_prune(
            &history,
            &update_name,
            &keep,
            usize::try_from(limit).unwrap_or(0),
        ) {
            if let Err(err) = api.delete(&old, &DeleteParams::default()).await {
                tracing::debug!(revision = %old, error = %err, "pruning a statefulset revision");
            }
        }
        Ok(Revisions {
            current,
            update: (update_name, template),
        })
    }

    async fn create_pod(
        &self,
        set: &StatefulSet,
        api: &Api<Pod>,
        pod: &Pod,
    ) -> Result<(), kube::Error> {
        let pod_name = pod.name_any();
        match api.create(&PostParams::default(), pod).await {
            Ok(_) => {
                self.record(set, "create", &pod_name, None).await;
                Ok(())
            }
            // Made already: the cache is behind.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(err) => {
                self.record(set, "create", &pod_name, Some(&err)).await;
                Err(err)
            }
        }
    }

    async fn delete_pod(
        &self,
        set: &StatefulSet,
        api: &Api<Pod>,
        pod: &Pod,
    ) -> Result<(), kube::Error> {
        let pod_name = pod.name_any();
        // Only the pod seen: never a successor with the same name.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&pod_name, &params).await {
            Ok(_) => {
                self.record(set, "delete", &pod_name, None).await;
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(err) => {
                self.record(set, "delete", &pod_name, Some(&err)).await;
                Err(err)
            }
        }
    }

    /// Upstream's `recordPodEvent`: `SuccessfulCreate` "create Pod web-0 in
    /// StatefulSet web successful", or `FailedCreate` with the error.
    async fn record(&self, set: &StatefulSet, verb: &str, pod: &str, err: Option<&kube::Error>) {
        let title = format!("{}{}", verb[..1].to_uppercase(), &verb[1..]);
        let (kind, reason, message) = match err {
            None => (
                EventType::Normal,
                format!("Successful{title}"),
                format!(
                    "{verb} Pod {pod} in StatefulSet {} successful",
                    set.name_any()
                ),
            ),
            Some(err) => (
                EventType::Warning,
                format!("Failed{title}"),
                format!(
                    "{verb} Pod {pod} in StatefulSet {} failed error: {err}",
                    set.name_any()
                ),
            ),
        };
        self.cx
            .recorder
            .publish(&reference(set), kind, &reason, &message)
            .await;
    }
}

/// A pod's state as the decisions see it.
fn state(pod: &Pod) -> PodState {
    if pod.metadata.deletion_timestamp.is_some() {
        PodState::Terminating
    } else if matches!(owned::phase(pod), "Failed" | "Succeeded") {
        PodState::Finished
    } else if owned::phase(pod) == "Running" && owned::is_ready(pod) {
        PodState::Ready
    } else {
        PodState::Starting
    }
}

/// The template a revision holds.
fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision
        .data
        .as_ref()?
        .0
        .get("spec")?
        .get("template")?
        .clone();
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

/// The pod for `ordinal`, from `template` of revision `revision`.
fn pod_for(set: &StatefulSet, ordinal: i32, revision: &str, template: &PodTemplateSpec) -> Pod {
    let name = format!("{}-{ordinal}", set.name_any());
    let meta = template.metadata.clone().unwrap_or_default();
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(POD_NAME.into(), name.clone());
    labels.insert(POD_INDEX.into(), ordinal.to_string());
    labels.insert(REVISION_HASH.into(), revision.to_owned());
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owned::controller_ref(set)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The status the set's pods give it (upstream's counting in
/// `updateStatefulSet`); revisions as this sync saw them.
fn status(set: &StatefulSet, pods: &[Arc<Pod>], revisions: &Revisions) -> StatefulSetStatus {
    let count = |f: &dyn Fn(&Pod) -> bool| {
        let n = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && f(p))
            .count();
        i32::try_from(n).unwrap_or(i32::MAX)
    };
    let revision_is =
        |p: &Pod, r: &str| p.labels().get(REVISION_HASH).map(String::as_str) == Some(r);
    let ready = count(&|p| state(p) == PodState::Ready);
    StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: count(&|_| true),
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        current_replicas: Some(count(&|p| revision_is(p, &revisions.current.0))),
        updated_replicas: Some(count(&|p| revision_is(p, &revisions.update.0))),
        current_revision: Some(revisions.current.0.clone()),
        update_revision: Some(revisions.update.0.clone()),
        collision_count: Some(
            set.status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
        ),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    }
}
