//! The ReplicaSet controller (upstream's `replicaset-controller`): keeps
//! `spec.replicas` active pods matching the selector, adopting orphans and
//! releasing pods that stopped matching, creating missing pods in
//! slow-start batches and deleting extras by upstream's ranking, and
//! reports what it sees in the status.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bulwark_client::events::{self, EventType};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt as _};
use tracing::Instrument as _;

use crate::Context;
use crate::expectations::Expectations;
use crate::informer::Change;
use crate::ownership::{self, Claim};
use crate::pods;
use crate::queue::{Next, WorkQueue, run_workers};

/// At most this many creations or deletions per sync (upstream's
/// `BurstReplicas`).
const BURST: usize = 500;

pub(crate) async fn run(cx: Context) {
    let sets = cx.informers.get::<ReplicaSet>();
    let pod_informer = cx.informers.get::<Pod>();
    let queue = WorkQueue::<String>::new();
    let expectations = Arc::new(Expectations::default());
    let (mut rs_changes, mut pod_changes) = (sets.subscribe(), pod_informer.subscribe());
    sets.ready().await;
    pod_informer.ready().await;
    tracing::debug!(controller = "replicaset-controller", "caches synced");
    let enqueue_all = sets.enqueue_all(&queue, |rs| key_of(&rs.metadata));
    enqueue_all();
    let seen: Mutex<HashSet<String>> = Mutex::new(uids(pod_informer.store()));
    let feeder = {
        let (queue, expectations, sets) = (
            Arc::clone(&queue),
            Arc::clone(&expectations),
            sets.store().clone(),
        );
        let pod_store = pod_informer.store().clone();
        async move {
            loop {
                tokio::select! {
                    change = rs_changes.next() => match change {
                        Some(Change::Applied(rs)) => queue.add(key_of(&rs.metadata)),
                        Some(Change::Deleted(rs)) => expectations.forget(&key_of(&rs.metadata)),
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                    change = pod_changes.next() => match change {
                        Some(Change::Applied(pod)) => {
                            let first = seen.lock().unwrap_or_else(PoisonError::into_inner)
                                .insert(pod.uid().unwrap_or_default());
                            pod_changed(&pod, first, false, &sets, &queue, &expectations);
                        }
                        Some(Change::Deleted(pod)) => {
                            seen.lock().unwrap_or_else(PoisonError::into_inner)
                                .remove(&pod.uid().unwrap_or_default());
                            pod_changed(&pod, false, true, &sets, &queue, &expectations);
                        }
                        Some(Change::Resynced) => {
                            *seen.lock().unwrap_or_else(PoisonError::into_inner) = uids(&pod_store);
                            enqueue_all();
                        }
                        None => return,
                    },
                }
            }
        }
    };
    let reconcile = move |key: String| {
        let sync = Sync {
            cx: cx.clone(),
            sets: sets.store().clone(),
            pods: pod_informer.store().clone(),
            expectations: Arc::clone(&expectations),
        };
        let span = tracing::debug_span!("sync", replicaset = %key);
        async move { sync.reconcile(&key).instrument(span).await }
    };
    tokio::join!(
        feeder,
        run_workers("replicaset-controller", queue, 5, reconcile)
    );
}

fn uids(pods: &Store<Pod>) -> HashSet<String> {
    pods.state().iter().filter_map(|p| p.uid()).collect()
}

/// `namespace/name`.
pub(crate) fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// The key of the ReplicaSet controlling `meta`, if one does.
fn owner_key(meta: &ObjectMeta) -> Option<String> {
    let owner = ownership::controller_of(meta)?;
    (owner.kind == "ReplicaSet" && owner.api_version.starts_with("apps/")).then(|| {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            owner.name
        )
    })
}

/// Upstream's add/update/delete pod handlers: observe expectations and
/// queue the owner, or every ReplicaSet that could adopt an orphan.
fn pod_changed(
    pod: &Pod,
    first_seen: bool,
    deleted: bool,
    sets: &Store<ReplicaSet>,
    queue: &WorkQueue<String>,
    expectations: &Expectations,
) {
    let pod_key = key_of(&pod.metadata);
    if let Some(owner) = owner_key(&pod.metadata) {
        if deleted || pod.metadata.deletion_timestamp.is_some() {
            expectations.deletion_observed(&owner, &pod_key);
        } else if first_seen {
            expectations.creation_observed(&owner);
        }
        queue.add(owner);
        return;
    }
    if deleted {
        return;
    }
    let namespace = pod.namespace().unwrap_or_default();
    for rs in sets.state() {
        if rs.namespace().as_deref() == Some(namespace.as_str())
            && rs.spec.as_ref().is_some_and(|s| {
                ownership::matches(&ownership::selector(&s.selector), &pod.metadata)
            })
        {
            queue.add(key_of(&rs.metadata));
        }
    }
}

/// One sync's view.
struct Sync {
    cx: Context,
    sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    expectations: Arc<Expectations>,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("creating pods: {0}")]
    Create(String),
    #[error("deleting pods: {0}")]
    Delete(String),
}

impl Sync {
    async fn reconcile(&self, key: &str) -> Result<Next, SyncError> {
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        let Some(rs) = self.sets.get(&ObjectRef::new(name).within(namespace)) else {
            self.expectations.forget(key);
            return Ok(Next::Done);
        };
        let needs_sync = self.expectations.satisfied(key);
        let spec = rs.spec.clone().unwrap_or_default();
        let active: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace) && pods::is_active(p))
            .collect();
        let owned = self.claim(&rs, &spec.selector, active).await?;
        let mut manage = Ok(());
        if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            manage = self.manage(key, &rs, &owned).await;
        }
        let now = self.cx.clock.now();
        let status = status(&rs, &owned, manage.as_ref().err(), now);
        let status = self.write_status(&rs, status).await?;
        manage?;
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if min_ready > 0
            && status.ready_replicas == Some(status.replicas)
            && status.available_replicas != Some(status.replicas)
        {
            return Ok(Next::After(Duration::from_secs(
                u64::try_from(min_ready).unwrap_or(0),
            )));
        }
        Ok(Next::Done)
    }

    /// Adopts and releases; returns the pods that are ours.
    async fn claim(
        &self,
        rs: &ReplicaSet,
        selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
        active: Vec<Arc<Pod>>,
    ) -> Result<Vec<Arc<Pod>>, kube::Error> {
        let selector = ownership::selector(selector);
        let uid = rs.uid().unwrap_or_default();
        let deleting = rs.metadata.deletion_timestamp.is_some();
        let api: Api<Pod> =
            Api::namespaced(self.cx.client.clone(), &rs.namespace().unwrap_or_default());
        let mut owned = Vec::new();
        for pod in active {
            let pod_uid = pod.uid().unwrap_or_default();
            match ownership::claim(&uid, deleting, &selector, &pod.metadata) {
                Claim::Keep => owned.push(pod),
                Claim::Ignore => {}
                Claim::Adopt => {
                    let patch = ownership::adopt_patch(&ownership::controller_ref(rs), &pod_uid);
                    match api
                        .patch(
                            &pod.name_any(),
                            &PatchParams::default(),
                            &Patch::Strategic(&patch),
                        )
                        .await
                    {
                        Ok(adopted) => owned.push(Arc::new(adopted)),
                        // Gone, or changed under us: the next sync decides again.
                        Err(kube::Error::Api(s))
                            if s.code == 404 || s.code == 409 || s.code == 422 => {}
                        Err(err) => return Err(err),
                    }
                }
                Claim::Release => {
                    let patch = ownership::release_patch(&uid, &pod_uid);
                    match api
                        .patch(
                            &pod.name_any(),
                            &PatchParams::default(),
                            &Patch::Strategic(&patch),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(kube::Error::Api(s))
                            if s.code == 404 || s.code == 409 || s.code == 422 => {}
                        Err(err) => return Err(err),
                    }
                }
            }
        }
        Ok(owned)
    }

    /// Creates or deletes pods toward `spec.replicas`.
    async fn manage(
        &self,
        key: &str,
        rs: &ReplicaSet,
        owned: &[Arc<Pod>],
    ) -> Result<(), SyncError> {
        let want =
            usize::try_from(rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)).unwrap_or(0);
        let reference = events::reference(rs);
        let namespace = rs.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.cx.client.clone(), &namespace);
        if owned.len() < want {
            let count = (want - owned.len()).min(BURST);
            self.expectations.expect_creations(key, count);
            let template = new_pod(rs);
            let (created, error) = slow_start(count, |_| {
                let (api, template, reference) = (api.clone(), template.clone(), reference.clone());
                async move {
                    match api.create(&PostParams::default(), &template).await {
                        Ok(pod) => {
                            let message = format!("Created pod: {}", pod.name_any());
                            self.cx
                                .recorder
                                .publish(
                                    &reference,
                                    EventType::Normal,
                                    "SuccessfulCreate",
                                    &message,
                                )
                                .await;
                            Ok(())
                        }
                        Err(err) => {
                            let message = format!("Error creating: {}", api_message(&err));
                            self.cx
                                .recorder
                                .publish(&reference, EventType::Warning, "FailedCreate", &message)
                                .await;
                            Err(message)
                        }
                    }
                }
            })
            .await;
            // Those never created will never be seen.
            for _ in created..count {
                self.expectations.creation_observed(key);
            }
            return error.map_or(Ok(()), |e| Err(SyncError::Create(e)));
        }
        if owned.len() > want {
            let diff = (owned.len() - want).min(BURST);
            let related = self.related_pods(rs, &namespace);
            let candidates: Vec<&Pod> = owned.iter().map(AsRef::as_ref).collect();
            let related: Vec<&Pod> = related.iter().map(AsRef::as_ref).collect();
            let doomed = pods::to_delete(&candidates, &related, diff, self.cx.clock.now());
            self.expectations
                .expect_deletions(key, doomed.iter().map(|p| key_of(&p.metadata)));
            let results = futures::future::join_all(doomed.iter().map(|pod| {
                let (api, reference) = (api.clone(), reference.clone());
                async move {
                    let name = pod.name_any();
                    match api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {
                            let message = format!("Deleted pod: {name}");
                            self.cx
                                .recorder
                                .publish(
                                    &reference,
                                    EventType::Normal,
                                    "SuccessfulDelete",
                                    &message,
                                )
                                .await;
                            Ok(())
                        }
                        Err(err) => {
                            self.expectations
                                .deletion_observed(key, &key_of(&pod.metadata));
                            if matches!(&err, kube::Error::Api(s) if s.code == 404) {
                                return Ok(());
                            }
                            let message = format!("Error deleting: {}", api_message(&err));
                            self.cx
                                .recorder
                                .publish(&reference, EventType::Warning, "FailedDelete", &message)
                                .await;
                            Err(message)
                        }
                    }
                }
            }))
            .await;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                return Err(SyncError::Delete(e));
            }
        }
        Ok(())
    }

    /// Pods of this ReplicaSet and of its siblings (same controller), for
    /// the "doubled up on a node" ranking.
    fn related_pods(&self, rs: &ReplicaSet, namespace: &str) -> Vec<Arc<Pod>> {
        let mut owners: HashSet<String> = HashSet::from([rs.name_any()]);
        if let Some(parent) = ownership::controller_of(&rs.metadata) {
            for sibling in self.sets.state() {
                if sibling.namespace().as_deref() == Some(namespace)
                    && ownership::controller_of(&sibling.metadata)
                        .is_some_and(|o| o.uid == parent.uid)
                {
                    owners.insert(sibling.name_any());
                }
            }
        }
        self.pods
            .state()
            .into_iter()
            .filter(|p| {
                p.namespace().as_deref() == Some(namespace)
                    && owner_key(&p.metadata)
                        .and_then(|k| k.split_once('/').map(|(_, n)| n.to_owned()))
                        .is_some_and(|n| owners.contains(&n))
            })
            .collect()
    }

    /// Writes `status` (with `observedGeneration`) if it differs; on a
    /// conflict reads the ReplicaSet again once.
    async fn write_status(
        &self,
        rs: &ReplicaSet,
        mut status: ReplicaSetStatus,
    ) -> Result<ReplicaSetStatus, kube::Error> {
        status.observed_generation = rs.metadata.generation;
        if rs.status.as_ref() == Some(&status) {
            return Ok(status);
        }
        let api: Api<ReplicaSet> =
            Api::namespaced(self.cx.client.clone(), &rs.namespace().unwrap_or_default());
        let mut updated = rs.clone();
        updated.status = Some(status.clone());
        match api
            .replace_status(&rs.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(status),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let mut fresh = api.get(&rs.name_any()).await?;
                fresh.status = Some(status.clone());
                api.replace_status(&rs.name_any(), &PostParams::default(), &fresh)
                    .await?;
                Ok(status)
            }
            Err(err) => Err(err),
        }
    }
}

fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// The pod a ReplicaSet creates (upstream's `GetPodFromTemplate`).
fn new_pod(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![ownership::controller_ref(rs)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Runs `count` calls of `f` in batches of 1, 2, 4, … (upstream's
/// `slowStartBatch`), stopping after a batch with a failure. Returns how
/// many succeeded and the first failure.
async fn slow_start<F, Fut, E>(count: usize, f: F) -> (usize, Option<E>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let (mut done, mut batch) = (0, 1.min(count));
    while batch > 0 {
        let results = futures::future::join_all((done..done + batch).map(&f)).await;
        let mut error = None;
        let mut succeeded = 0;
        for result in results {
            match result {
                Ok(()) => succeeded += 1,
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        if error.is_some() {
            return (done + succeeded, error);
        }
        done += batch;
        batch = (2 * batch).min(count - done);
    }
    (done, None)
}

/// The status a ReplicaSet's owned active pods give it (upstream's
/// `calculateStatus`), keeping its other fields.
fn status(
    rs: &ReplicaSet,
    owned: &[Arc<Pod>],
    failure: Option<&SyncError>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let template_labels = spec
        .template
        .and_then(|t| t.metadata)
        .and_then(|m| m.labels)
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(owned.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let mut status = rs.status.clone().unwrap_or_default();
    status.replicas = count(&|_| true);
    status.fully_labeled_replicas = Some(count(&|p| {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }));
    status.ready_replicas = Some(count(&|p| pods::is_ready(p)));
    status.available_replicas = Some(count(&|p| pods::is_available(p, min_ready, now)));
    let mut conditions: Vec<ReplicaSetCondition> = status
        .conditions
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "ReplicaFailure" || failure.is_some())
        .collect();
    if let Some(failure) = failure
        && !conditions.iter().any(|c| c.type_ == "ReplicaFailure")
    {
        {
            let (reason, message) = match failure {
                SyncError::Delete(m) => ("FailedDelete", m.clone()),
                SyncError::Create(m) => ("FailedCreate", m.clone()),
                SyncError::Api(e) => ("FailedCreate", e.to_string()),
            };
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_transition_time: Some(Time(now)),
            });
        }
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    status
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn slow_start_doubles_and_stops_at_a_failing_batch() {
        let calls = AtomicUsize::new(0);
        let (done, err) = slow_start(10, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), ()>(()) }
        })
        .await;
        assert_eq!((done, err, calls.load(Ordering::SeqCst)), (10, None, 10));
        // Every call fails: only the first batch (of one) is tried.
        let calls = AtomicUsize::new(0);
        let (done, err) = slow_start(10, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("quota") }
        })
        .await;
        assert_eq!(
            (done, err, calls.load(Ordering::SeqCst)),
            (0, Some("quota"), 1)
        );
        // The 4th call fails: batches 1, 2 then 4 (of which 3 succeed).
        let calls = AtomicUsize::new(0);
        let (done, err) = slow_start(10, |i| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { if i == 3 { Err("no") } else { Ok(()) } }
        })
        .await;
        assert_eq!(
            (done, err, calls.load(Ordering::SeqCst)),
            (6, Some("no"), 7)
        );
    }
}
