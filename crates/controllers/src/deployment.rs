//! The Deployment controller (upstream's `deployment-controller`): owns
//! one ReplicaSet per pod template, named `<deployment>-<pod-template-hash>`,
//! and moves replicas from the old ones to the new one — RollingUpdate
//! within maxSurge/maxUnavailable, or Recreate — recording revisions on
//! both, pruning history beyond `revisionHistoryLimit`, and reporting
//! progress in the status conditions `kubectl rollout status` reads. The
//! arithmetic lives in `logic.rs`, status and conditions in `progress.rs`;
//! this file reads caches and writes.

mod logic;
mod progress;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bulwark_client::events::{self, EventType};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt as _};
use tracing::Instrument as _;

use crate::Context;
use crate::informer::Change;
use crate::ownership::{self, Claim};
use crate::queue::{Next, WorkQueue, run_workers};
use crate::replicaset::key_of;

pub(crate) async fn run(cx: Context) {
    let deployments = cx.informers.get::<Deployment>();
    let sets = cx.informers.get::<ReplicaSet>();
    let pods = cx.informers.get::<Pod>();
    let queue = WorkQueue::<String>::new();
    let (mut d_changes, mut rs_changes, mut pod_changes) =
        (deployments.subscribe(), sets.subscribe(), pods.subscribe());
    deployments.ready().await;
    sets.ready().await;
    pods.ready().await;
    let enqueue_all = deployments.enqueue_all(&queue, |d| key_of(&d.metadata));
    enqueue_all();
    let feeder = {
        let (queue, d_store, rs_store) = (
            Arc::clone(&queue),
            deployments.store().clone(),
            sets.store().clone(),
        );
        async move {
            loop {
                tokio::select! {
                    change = d_changes.next() => match change {
                        Some(Change::Applied(d)) => queue.add(key_of(&d.metadata)),
                        Some(Change::Deleted(_)) => {}
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                    change = rs_changes.next() => match change {
                        Some(Change::Applied(rs) | Change::Deleted(rs)) => {
                            rs_changed(&rs, &d_store, &queue);
                        }
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                    // Recreate waits for the old pods to be gone.
                    change = pod_changes.next() => match change {
                        Some(Change::Deleted(pod)) => {
                            let owner = ownership::controller_of(&pod.metadata)
                                .filter(|o| o.kind == "ReplicaSet")
                                .and_then(|o| rs_store.get(&ObjectRef::new(&o.name).within(&pod.namespace().unwrap_or_default())));
                            if let Some(rs) = owner {
                                rs_changed(&rs, &d_store, &queue);
                            }
                        }
                        Some(_) => {}
                        None => return,
                    },
                }
            }
        }
    };
    let reconcile = move |key: String| {
        let sync = Sync {
            cx: cx.clone(),
            deployments: deployments.store().clone(),
            sets: sets.store().clone(),
            pods: pods.store().clone(),
        };
        let span = tracing::debug_span!("sync", deployment = %key);
        async move { sync.reconcile(&key).instrument(span).await }
    };
    tokio::join!(
        feeder,
        run_workers("deployment-controller", queue, 5, reconcile)
    );
}

/// Queues the Deployment controlling `rs`, or every one that could adopt it.
fn rs_changed(rs: &ReplicaSet, deployments: &Store<Deployment>, queue: &WorkQueue<String>) {
    let namespace = rs.namespace().unwrap_or_default();
    if let Some(owner) = ownership::controller_of(&rs.metadata) {
        if owner.kind == "Deployment" {
            queue.add(format!("{namespace}/{}", owner.name));
        }
        return;
    }
    for d in deployments.state() {
        if d.namespace().as_deref() == Some(namespace.as_str())
            && d.spec.as_ref().is_some_and(|s| {
                ownership::matches(&ownership::selector(&s.selector), &rs.metadata)
            })
        {
            queue.add(key_of(&d.metadata));
        }
    }
}

struct Sync {
    cx: Context,
    deployments: Store<Deployment>,
    sets: Store<ReplicaSet>,
    pods: Store<Pod>,
}

/// The new ReplicaSet (if any) and the old ones.
type Split = (Option<ReplicaSet>, Vec<ReplicaSet>);

impl Sync {
    async fn reconcile(&self, key: &str) -> Result<Next, kube::Error> {
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        let Some(cached) = self
            .deployments
            .get(&ObjectRef::new(name).within(namespace))
        else {
            return Ok(Next::Done);
        };
        let mut d = (*cached).clone();
        let spec = d.spec.clone().unwrap_or_default();
        if ownership::selects_everything(&spec.selector) {
            self.event(
                &d,
                EventType::Warning,
                "SelectorRequired",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            .await;
            let status = d.status.get_or_insert_with(Default::default);
            if status.observed_generation < d.metadata.generation {
                status.observed_generation = d.metadata.generation;
                self.write_status(&mut d).await?;
            }
            return Ok(Next::Done);
        }
        let sets = self.claim(&d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let split = self.revisions(&mut d, sets, false).await?;
            return self.sync_status(&mut d, split).await;
        }
        if let Some(condition) = progress::paused_condition(&d, self.cx.clock.now()) {
            progress::set_condition(d.status.get_or_insert_with(Default::default), condition);
            self.write_status(&mut d).await?;
        }
        if spec.paused == Some(true) || logic::is_scaling_event(&d, &sets) {
            return self.sync(&mut d, sets).await;
        }
        if logic::is_rolling(&d) {
            self.rolling(&mut d, sets).await
        } else {
            self.recreate(&mut d, sets).await
        }
    }

    /// Adopts matching orphan ReplicaSets and releases ours that stopped
    /// matching; returns ours.
    async fn claim(&self, d: &Deployment) -> Result<Vec<ReplicaSet>, kube::Error> {
        let namespace = d.namespace().unwrap_or_default();
        let spec = d.spec.clone().unwrap_or_default();
        let selector = ownership::selector(&spec.selector);
        let uid = d.uid().unwrap_or_default();
        let deleting = d.metadata.deletion_timestamp.is_some();
        let api = self.rs_api(d);
        let mut ours = Vec::new();
        for rs in self.sets.state() {
            if rs.namespace().as_deref() != Some(namespace.as_str()) {
                continue;
            }
            let rs_uid = rs.uid().unwrap_or_default();
            let patch = match ownership::claim(&uid, deleting, &selector, &rs.metadata) {
                Claim::Keep => {
                    ours.push((*rs).clone());
                    continue;
                }
                Claim::Ignore => continue,
                Claim::Adopt => ownership::adopt_patch(&ownership::controller_ref(d), &rs_uid),
                Claim::Release => ownership::release_patch(&uid, &rs_uid),
            };
            let adopting = ownership::controller_of(&rs.metadata).is_none();
            match api
                .patch(
                    &rs.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
            {
                Ok(patched) if adopting => ours.push(patched),
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 || s.code == 422 => {}
                Err(err) => return Err(err),
            }
        }
        Ok(ours)
    }

    /// Finds the new ReplicaSet (creating it if `create`), brings its
    /// revision and annotations up to date and records the revision on the
    /// Deployment (`getAllReplicaSetsAndSyncRevision`).
    async fn revisions(
        &self,
        d: &mut Deployment,
        mut sets: Vec<ReplicaSet>,
        create: bool,
    ) -> Result<Split, kube::Error> {
        let new = logic::find_new(d, &sets).map(|i| sets.remove(i));
        let olds = sets;
        let new_revision = logic::max_revision(&olds) + 1;
        if let Some(existing) = new {
            let mut copy = existing.clone();
            let changed = logic::set_new_rs_annotations(d, &mut copy, new_revision, true);
            let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let rs_spec = copy.spec.get_or_insert_with(Default::default);
            if changed || rs_spec.min_ready_seconds != min_ready {
                rs_spec.min_ready_seconds = min_ready;
                let updated = self
                    .rs_api(d)
                    .replace(&copy.name_any(), &PostParams::default(), &copy)
                    .await?;
                return Ok((Some(updated), olds));
            }
            let revision = logic::revision(&copy).to_string();
            let annotated = set_revision(d, &revision);
            let mut status_changed = false;
            let tracked = d
                .status
                .as_ref()
                .and_then(|s| progress::condition(s, "Progressing"))
                .is_some();
            if progress::has_progress_deadline(d) && !tracked {
                let message = format!("Found new replica set {:?}", copy.name_any());
                let c = progress::new_condition(
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    message,
                    self.cx.clock.now(),
                );
                progress::set_condition(d.status.get_or_insert_with(Default::default), c);
                status_changed = true;
            }
            self.save(d, annotated, status_changed).await?;
            return Ok((Some(copy), olds));
        }
        if !create {
            return Ok((None, olds));
        }
        let created = self.create_new(d, &olds, new_revision).await?;
        Ok((Some(created), olds))
    }

    async fn create_new(
        &self,
        d: &mut Deployment,
        olds: &[ReplicaSet],
        new_revision: i64,
    ) -> Result<ReplicaSet, kube::Error> {
        let spec = d.spec.clone().unwrap_or_default();
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = logic::template_hash(&spec.template, collision_count);
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(logic::HASH_LABEL.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(logic::HASH_LABEL.into(), hash.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", d.name_any())),
                namespace: d.namespace(),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: Some(vec![ownership::controller_ref(d)]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = olds.iter().chain([&rs]).collect();
        let replicas = logic::new_rs_target(d, &all, &rs);
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(replicas);
        }
        logic::set_new_rs_annotations(d, &mut rs, new_revision, false);
        let api = self.rs_api(d);
        let (created, existed) = match api.create(&PostParams::default(), &rs).await {
            Ok(created) => (created, false),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = api.get(&rs.name_any()).await?;
                let ours = ownership::controller_of(&existing.metadata)
                    .is_some_and(|o| Some(&o.uid) == d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| logic::equal_ignore_hash(t, &spec.template));
                if !(ours && same) {
                    // A hash collision: the next try hashes differently.
                    let status = d.status.get_or_insert_with(Default::default);
                    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    self.write_status(d).await?;
                    return Err(kube::Error::Api(s));
                }
                (existing, true)
            }
            Err(err) => {
                let message = format!(
                    "Failed to create new replica set {:?}: {}",
                    rs.name_any(),
                    api_message(&err)
                );
                if progress::has_progress_deadline(d) {
                    let c = progress::new_condition(
                        "Progressing",
                        "False",
                        "ReplicaSetCreateError",
                        message.clone(),
                        self.cx.clock.now(),
                    );
                    progress::set_condition(d.status.get_or_insert_with(Default::default), c);
                    let _ = self.write_status(d).await;
                }
                self.event(d, EventType::Warning, "ReplicaSetCreateError", &message)
                    .await;
                return Err(err);
            }
        };
        if !existed && replicas > 0 {
            let message = format!(
                "Scaled up replica set {} from 0 to {replicas}",
                created.name_any()
            );
            self.event(d, EventType::Normal, "ScalingReplicaSet", &message)
                .await;
        }
        let annotated = set_revision(d, &new_revision.to_string());
        let mut status_changed = false;
        if !existed && progress::has_progress_deadline(d) {
            let message = format!("Created new replica set {:?}", created.name_any());
            let c = progress::new_condition(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                message,
                self.cx.clock.now(),
            );
            progress::set_condition(d.status.get_or_insert_with(Default::default), c);
            status_changed = true;
        }
        self.save(d, annotated, status_changed).await?;
        Ok(created)
    }

    /// `rolloutRolling`.
    async fn rolling(
        &self,
        d: &mut Deployment,
        sets: Vec<ReplicaSet>,
    ) -> Result<Next, kube::Error> {
        let (mut new, mut olds) = self.revisions(d, sets, true).await?;
        if let Some(rs) = new.as_ref() {
            let want = logic::replicas(d);
            let current = logic::rs_replicas(rs);
            let target = if current > want {
                want
            } else {
                let all: Vec<&ReplicaSet> = olds.iter().chain([rs]).collect();
                logic::new_rs_target(d, &all, rs)
            };
            if target != current {
                new = Some(self.scale(d, rs, target).await?);
                return self.rollout_status(d, (new, olds)).await;
            }
        }
        let targets = logic::old_targets(d, &olds, new.as_ref());
        let mut scaled = false;
        for (i, target) in targets.into_iter().enumerate() {
            if target != logic::rs_replicas(&olds[i]) {
                olds[i] = self.scale(d, &olds[i], target).await?;
                scaled = true;
            }
        }
        if !scaled && progress::complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &olds).await?;
        }
        self.rollout_status(d, (new, olds)).await
    }

    /// `rolloutRecreate`: all old pods gone before any new one starts.
    async fn recreate(
        &self,
        d: &mut Deployment,
        sets: Vec<ReplicaSet>,
    ) -> Result<Next, kube::Error> {
        let (new, mut olds) = self.revisions(d, sets, false).await?;
        let mut scaled = false;
        for old in &mut olds {
            if logic::rs_replicas(old) > 0 {
                *old = self.scale(d, old, 0).await?;
                scaled = true;
            }
        }
        if scaled || self.old_pods_running(new.as_ref(), &olds) {
            return self.rollout_status(d, (new, olds)).await;
        }
        let (new, olds) = match new {
            Some(new) => (Some(new), olds),
            None => self.revisions(d, olds, true).await?,
        };
        let new = match new {
            Some(rs) => Some(self.scale(d, &rs, logic::replicas(d)).await?),
            None => None,
        };
        if progress::complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &olds).await?;
        }
        self.rollout_status(d, (new, olds)).await
    }

    fn old_pods_running(&self, new: Option<&ReplicaSet>, olds: &[ReplicaSet]) -> bool {
        if olds
            .iter()
            .any(|rs| rs.status.as_ref().is_some_and(|s| s.replicas > 0))
        {
            return true;
        }
        let old_uids: HashSet<&str> = olds
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        let new_uid = new.and_then(|rs| rs.metadata.uid.as_deref());
        self.pods.state().iter().any(|pod| {
            let owner = ownership::controller_of(&pod.metadata).map(|o| o.uid.as_str());
            owner.is_some_and(|o| old_uids.contains(o) && Some(o) != new_uid)
                && !matches!(
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        })
    }

    /// A paused Deployment or a scaling event: resize proportionally, no
    /// rollout (`sync`).
    async fn sync(&self, d: &mut Deployment, sets: Vec<ReplicaSet>) -> Result<Next, kube::Error> {
        let (new, olds) = self.revisions(d, sets, false).await?;
        let mut all: Vec<ReplicaSet> = olds;
        let new_index = new.map(|rs| {
            all.push(rs);
            all.len() - 1
        });
        for (i, size) in logic::scale_plan(d, &all, new_index) {
            all[i] = self.scale(d, &all[i], size).await?;
        }
        let new = new_index.map(|i| all.remove(i));
        if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            self.cleanup(d, &all).await?;
        }
        self.sync_status(d, (new, all)).await
    }

    /// Writes `size` (and the size annotations) to `rs`, with upstream's
    /// ScalingReplicaSet event when the size changes.
    async fn scale(
        &self,
        d: &Deployment,
        rs: &ReplicaSet,
        size: i32,
    ) -> Result<ReplicaSet, kube::Error> {
        let from = logic::rs_replicas(rs);
        if from == size && !logic::replicas_annotations_stale(d, rs) {
            return Ok(rs.clone());
        }
        let mut copy = rs.clone();
        logic::set_replicas_annotations(d, &mut copy);
        copy.spec.get_or_insert_with(Default::default).replicas = Some(size);
        let updated = self
            .rs_api(d)
            .replace(&copy.name_any(), &PostParams::default(), &copy)
            .await?;
        if from != size {
            let direction = if from < size { "up" } else { "down" };
            let message = format!(
                "Scaled {direction} replica set {} from {from} to {size}",
                rs.name_any()
            );
            self.event(d, EventType::Normal, "ScalingReplicaSet", &message)
                .await;
        }
        Ok(updated)
    }

    /// Deletes old ReplicaSets beyond the history limit.
    async fn cleanup(&self, d: &Deployment, olds: &[ReplicaSet]) -> Result<(), kube::Error> {
        for i in logic::cleanup_victims(d, olds) {
            match self
                .rs_api(d)
                .delete(&olds[i].name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Status with progress conditions (`syncRolloutStatus`).
    async fn rollout_status(
        &self,
        d: &mut Deployment,
        (new, olds): Split,
    ) -> Result<Next, kube::Error> {
        let all: Vec<&ReplicaSet> = olds.iter().chain(new.as_ref()).collect();
        let (status, requeue) =
            progress::rollout_status(d, &all, new.as_ref(), self.cx.clock.now());
        if d.status.as_ref() != Some(&status) {
            d.status = Some(status);
            self.write_status(d).await?;
        }
        Ok(requeue.map_or(Next::Done, Next::After))
    }

    /// Status without touching progress (`syncDeploymentStatus`).
    async fn sync_status(
        &self,
        d: &mut Deployment,
        (new, olds): Split,
    ) -> Result<Next, kube::Error> {
        let all: Vec<&ReplicaSet> = olds.iter().chain(new.as_ref()).collect();
        let status = progress::calculate_status(d, &all, new.as_ref(), self.cx.clock.now());
        if d.status.as_ref() != Some(&status) {
            d.status = Some(status);
            self.write_status(d).await?;
        }
        Ok(Next::Done)
    }

    /// Writes the revision annotation (an update) and the status.
    async fn save(
        &self,
        d: &mut Deployment,
        annotations: bool,
        status: bool,
    ) -> Result<(), kube::Error> {
        if annotations {
            let wanted = d.status.clone();
            *d = self
                .deployment_api(d)
                .replace(&d.name_any(), &PostParams::default(), d)
                .await?;
            d.status = wanted;
        }
        if status {
            self.write_status(d).await?;
        }
        Ok(())
    }

    async fn write_status(&self, d: &mut Deployment) -> Result<(), kube::Error> {
        *d = self
            .deployment_api(d)
            .replace_status(&d.name_any(), &PostParams::default(), d)
            .await?;
        Ok(())
    }

    async fn event(&self, d: &Deployment, type_: EventType, reason: &str, message: &str) {
        self.cx
            .recorder
            .publish(&events::reference(d), type_, reason, message)
            .await;
    }

    fn rs_api(&self, d: &Deployment) -> Api<ReplicaSet> {
        Api::namespaced(self.cx.client.clone(), &d.namespace().unwrap_or_default())
    }

    fn deployment_api(&self, d: &Deployment) -> Api<Deployment> {
        Api::namespaced(self.cx.client.clone(), &d.namespace().unwrap_or_default())
    }
}

/// Sets the Deployment's revision annotation; whether it changed.
fn set_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(logic::REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(logic::REVISION.into(), revision.to_owned());
    true
}

fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}
