//! The Job controller (upstream's `job-controller`): runs a Job's pods to
//! completion — `parallelism` at a time, `completions` in all (NonIndexed or
//! Indexed), replacing failed pods after a growing backoff until
//! `backoffLimit`, stopping at `activeDeadlineSeconds`.
//!
//! Pods are counted as upstream counts them: every pod carries the
//! `batch.kubernetes.io/job-tracking` finalizer; a finished pod's uid goes to
//! `status.uncountedTerminatedPods` first, then its finalizer is removed,
//! then it moves into `succeeded` / `failed`. So a pod is counted exactly
//! once even if it is deleted right after it finished. Orphan adoption is
//! not done: the controller only sees pods it created (controller
//! reference).

mod decide;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use bulwark_client::events::{EventType, reference};
use decide::{Backoff, Counts, Finish, INDEX_KEY, OnFailure, TRACKING_FINALIZER};
use k8s_openapi::api::batch::v1::{Job, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::informer::{Change, Informer};
use crate::owned::{self, Expectations};
use crate::queue::{Next, WorkQueue, run_workers};

/// Pods created or deleted per Job per reconcile at most (upstream's
/// `MaxPodCreateDeletePerSync`).
const MAX_PODS_PER_SYNC: usize = 500;

pub(crate) async fn run(cx: Context) {
    let jobs = cx.informers.get::<Job>();
    let pods = cx.informers.get::<Pod>();
    let queue = WorkQueue::<String>::new();
    let (mut job_changes, mut pod_changes) = (jobs.subscribe(), pods.subscribe());
    jobs.ready().await;
    pods.ready().await;
    let enqueue_all = {
        let (queue, jobs, pods) = (Arc::clone(&queue), jobs.clone(), pods.clone());
        move || {
            for job in jobs.store().state() {
                queue.add(owned::key_of(job.as_ref()));
            }
            // Pods still held for a Job that may be gone.
            for pod in pods.store().state() {
                if let Some(key) = job_key(&pod).filter(|_| has_finalizer(&pod)) {
                    queue.add(key);
                }
            }
        }
    };
    enqueue_all();
    let feeder = {
        let queue = Arc::clone(&queue);
        async move {
            loop {
                tokio::select! {
                    change = job_changes.next() => match change {
                        Some(Change::Applied(job) | Change::Deleted(job)) => queue.add(owned::key_of(job.as_ref())),
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                    change = pod_changes.next() => match change {
                        Some(Change::Applied(pod) | Change::Deleted(pod)) => {
                            if let Some(key) = job_key(&pod) {
                                queue.add(key);
                            }
                        }
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                }
            }
        }
    };
    let controller = Arc::new(JobController {
        cx,
        jobs,
        pods,
        expectations: Expectations::default(),
        memory: Mutex::default(),
    });
    let reconcile = move |key: String| {
        let controller = Arc::clone(&controller);
        async move { controller.reconcile(&key).await }
    };
    tokio::join!(feeder, run_workers("job-controller", queue, 4, reconcile));
}

struct JobController {
    cx: Context,
    jobs: Informer<Job>,
    pods: Informer<Pod>,
    expectations: Expectations,
    /// Per Job key: the failure backoff and the uids already counted (whose
    /// finalizer we removed, though the cache may still show it).
    memory: Mutex<HashMap<String, Memory>>,
}

#[derive(Default)]
struct Memory {
    backoff: Backoff,
    counted: HashSet<String>,
}

/// A pod the Job has yet to count.
struct Finished<'a> {
    pod: &'a Pod,
    succeeded: bool,
}

impl JobController {
    async fn reconcile(&self, key: &str) -> Result<Next, kube::Error> {
        let (namespace, name) = owned::split_key(key);
        let job = self
            .jobs
            .store()
            .get(&ObjectRef::new(name).within(namespace));
        let uid = job.as_ref().and_then(|j| j.metadata.uid.clone());
        let all = self.pods.store().state();
        let api: Api<Pod> = Api::namespaced(self.cx.client.clone(), namespace);
        // Pods whose Job is gone (or was replaced by one of the same name)
        // are counted by no one: let them go, or they could never be
        // deleted.
        let orphans: Vec<&Pod> = all
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| p.namespace().as_deref() == Some(namespace) && has_finalizer(p))
            .filter(|p| {
                p.owner_references().iter().any(|o| {
                    o.kind == "Job"
                        && o.controller == Some(true)
                        && o.name == name
                        && Some(&o.uid) != uid.as_ref()
                })
            })
            .collect();
        remove_finalizers(&api, &orphans).await?;
        let Some(job) = job else {
            self.expectations.forget(key);
            self.memory().remove(key);
            return Ok(Next::Done);
        };
        let uid = uid.unwrap_or_default();
        let pods: Vec<&Pod> = all
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| p.namespace().as_deref() == Some(namespace))
            .filter(|p| owned::controller_uid(*p) == Some(uid.as_str()))
            .filter(|p| {
                let selector = job.spec.as_ref().and_then(|s| s.selector.as_ref());
                owned::selector_matches(selector, p.labels())
            })
            .collect();
        if decide::is_finished(&job) {
            // Nothing left to count; let go of any pod still held.
            let held: Vec<&Pod> = pods.into_iter().filter(|p| has_finalizer(p)).collect();
            remove_finalizers(&api, &held).await?;
            return Ok(Next::Done);
        }
        self.sync(key, &job, &pods, &api).await
    }

    async fn sync(
        &self,
        key: &str,
        job: &Job,
        pods: &[&Pod],
        api: &Api<Pod>,
    ) -> Result<Next, kube::Error> {
        let now = self.cx.clock.now();
        let unseen = self.expectations.settle(key, pods);
        let mut status = job.status.clone().unwrap_or_default();
        let mut uncounted = status.uncounted_terminated_pods.take().unwrap_or_default();
        let (mut un_ok, mut un_failed) = (
            uncounted.succeeded.take().unwrap_or_default(),
            uncounted.failed.take().unwrap_or_default(),
        );
        if status.start_time.is_none() && !decide::is_suspended(job) {
            status.start_time = Some(Time(now));
        }
        let counted = self
            .memory()
            .get(key)
            .map(|m| m.counted.clone())
            .unwrap_or_default();

        // Which pods are active, terminating, newly finished.
        let mut active: Vec<&Pod> = Vec::new();
        let mut terminating = 0;
        let mut new_finished = Vec::new();
        for pod in pods {
            let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
            let phase = owned::phase(pod);
            let deleting =
                pod.metadata.deletion_timestamp.is_some() || unseen.deleted.contains(&pod_uid);
            if deleting && !matches!(phase, "Succeeded" | "Failed") {
                terminating += 1;
            } else if !matches!(phase, "Succeeded" | "Failed") {
                active.push(pod);
            }
            let finished = match phase {
                "Succeeded" => Some(true),
                "Failed" => Some(false),
                // Upstream's default podReplacementPolicy counts a deleted
                // pod as failed at once.
                _ if pod.metadata.deletion_timestamp.is_some()
                    && !decide::only_replace_failed(job) =>
                {
                    Some(false)
                }
                _ => None,
            };
            if let Some(succeeded) = finished
                && has_finalizer(pod)
                && !counted.contains(&pod_uid)
                && !un_ok.contains(&pod_uid)
                && !un_failed.contains(&pod_uid)
            {
                new_finished.push(Finished { pod, succeeded });
            }
        }
        // The pod failure policy may ignore a failure or fail the Job.
        let mut ignored = HashSet::new();
        let mut fail_job = None;
        for f in &new_finished {
            let uid = f.pod.metadata.uid.clone().unwrap_or_default();
            if f.succeeded {
                un_ok.push(uid);
                continue;
            }
            match decide::on_failure(job, f.pod) {
                OnFailure::Ignore => {
                    ignored.insert(uid);
                    continue;
                }
                OnFailure::FailJob(message) => {
                    fail_job.get_or_insert(message);
                }
                OnFailure::Count => {}
            }
            un_failed.push(uid);
        }
        new_finished
            .retain(|f| !ignored.contains(f.pod.metadata.uid.as_deref().unwrap_or_default()));
        self.note_backoff(key, &new_finished, now);

        // Completed indexes (Indexed Jobs): every succeeded pod's index.
        let completions = job.spec.as_ref().and_then(|s| s.completions);
        let mut completed =
            decide::parse_indexes(status.completed_indexes.as_deref().unwrap_or(""));
        if decide::is_indexed(job) {
            completed.extend(
                pods.iter()
                    .filter(|p| owned::phase(p) == "Succeeded")
                    .filter_map(|p| decide::pod_index(p))
                    .filter(|i| completions.is_none_or(|c| *i < c)),
            );
        }
        let counts = Counts {
            active: i32::try_from(active.len() + unseen.created.len()).unwrap_or(i32::MAX),
            succeeded: status.succeeded.unwrap_or(0) + len32(&un_ok),
            failed: status.failed.unwrap_or(0) + len32(&un_failed),
            completed_indexes: i32::try_from(completed.len()).unwrap_or(i32::MAX),
        };
        let finish = decide::finish(job, counts, fail_job.as_deref(), now);

        // Create or delete pods.
        let mut next = Next::Done;
        if finish.is_some() || decide::is_suspended(job) {
            terminating += self.delete_pods(key, job, api, &active).await?;
            active.clear();
        } else {
            let want = decide::want_active(job, counts);
            if counts.active > want {
                let excess = usize::try_from(counts.active - want).unwrap_or(0);
                let victims = pick_for_deletion(&active, excess);
                terminating += self.delete_pods(key, job, api, &victims).await?;
            } else if counts.active < want {
                let wait = self.backoff(key).remaining(now);
                if wait.is_zero() {
                    // With `podReplacementPolicy: Failed`, pods still
                    // terminating hold their place.
                    let holding = if decide::only_replace_failed(job) {
                        i32::try_from(terminating).unwrap_or(i32::MAX)
                    } else {
                        0
                    };
                    let count = usize::try_from(want - counts.active - holding)
                        .unwrap_or(0)
                        .min(MAX_PODS_PER_SYNC);
                    let mut busy: BTreeSet<i32> =
                        active.iter().filter_map(|p| decide::pod_index(p)).collect();
                    busy.extend(
                        unseen
                            .created
                            .iter()
                            .flatten()
                            .filter_map(|t| t.parse::<i32>().ok()),
                    );
                    let indexes: Vec<Option<i32>> = if decide::is_indexed(job) {
                        decide::pending_indexes(completions.unwrap_or(0), &completed, &busy, count)
                            .into_iter()
                            .map(Some)
                            .collect()
                    } else {
                        vec![None; count]
                    };
                    self.create_pods(key, job, api, &indexes).await?;
                } else {
                    next = Next::After(wait);
                }
            }
        }

        // The status, counted as upstream: flush new uncounted uids, remove
        // finalizers, then move them into the counters.
        let active_now = active.len() + unseen.created.len();
        status.active = Some(i32::try_from(active_now).unwrap_or(i32::MAX));
        let ready = active.iter().filter(|p| owned::is_ready(p)).count();
        status.ready = Some(i32::try_from(ready).unwrap_or(i32::MAX));
        status.terminating = Some(i32::try_from(terminating).unwrap_or(i32::MAX));
        if decide::is_indexed(job) {
            status.completed_indexes = Some(decide::format_indexes(&completed));
        }
        let mut conditions = status.conditions.take().unwrap_or_default();
        if let Some(f) = &finish {
            decide::set_condition(
                &mut conditions,
                f.interim_type(),
                &f.reason,
                &f.message,
                now,
            );
        } else if decide::is_suspended(job) {
            let (reason, message) = ("JobSuspended", "Job suspended");
            if decide::set_condition(&mut conditions, "Suspended", reason, message, now) {
                let r = reference(job);
                self.cx
                    .recorder
                    .publish(&r, EventType::Normal, "Suspended", message)
                    .await;
            }
        } else {
            let (reason, message) = ("JobResumed", "Job resumed");
            if decide::ensure_condition(&mut conditions, "Suspended", "False", reason, message, now)
            {
                // A resumed Job's deadline counts from now, as upstream.
                status.start_time = Some(Time(now));
                let r = reference(job);
                self.cx
                    .recorder
                    .publish(&r, EventType::Normal, "Resumed", message)
                    .await;
            }
        }
        status.conditions = (!conditions.is_empty()).then_some(conditions);
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: Some(un_ok.clone()),
            failed: Some(un_failed.clone()),
        });
        let mut job = self.write_status(job, &status, now).await?;

        let held: Vec<&Pod> = pods
            .iter()
            .copied()
            .filter(|p| has_finalizer(p))
            .filter(|p| {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                un_ok.contains(&uid)
                    || un_failed.contains(&uid)
                    || ignored.contains(&uid)
                    || finish.is_some() && !owned::is_active(p)
            })
            .collect();
        let released = remove_finalizers(api, &held).await;
        let released_uids: HashSet<String> = match &released {
            Ok(uids) => uids.clone(),
            Err(_) => HashSet::new(),
        };
        // Uids whose pods are gone count as released too.
        let present: HashSet<String> = pods
            .iter()
            .filter(|p| has_finalizer(p))
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let gone = |uid: &String| released_uids.contains(uid) || !present.contains(uid);
        {
            let mut memory = self.memory();
            memory
                .entry(key.to_owned())
                .or_default()
                .counted
                .extend(released_uids.iter().cloned());
        }
        let (moved_ok, left_ok): (Vec<String>, Vec<String>) = un_ok.into_iter().partition(gone);
        let (moved_failed, left_failed): (Vec<String>, Vec<String>) =
            un_failed.into_iter().partition(gone);
        let mut status = job.status.clone().unwrap_or_default();
        status.succeeded = Some(status.succeeded.unwrap_or(0) + len32(&moved_ok));
        status.failed = Some(status.failed.unwrap_or(0) + len32(&moved_failed));
        let all_counted = left_ok.is_empty() && left_failed.is_empty();
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: Some(left_ok),
            failed: Some(left_failed),
        });
        let mut terminal = None;
        if let Some(f) = &finish
            && all_counted
            && terminating == 0
        {
            let mut conditions = status.conditions.take().unwrap_or_default();
            decide::set_condition(
                &mut conditions,
                f.terminal_type(),
                &f.reason,
                &f.message,
                now,
            );
            status.conditions = Some(conditions);
            if f.success {
                status.completion_time = Some(Time(now));
            }
            terminal = Some(f.clone());
        }
        job = self.write_status(&job, &status, now).await?;
        released?;
        if let Some(f) = terminal {
            self.record_finished(&job, &f).await;
            return Ok(Next::Done);
        }
        if let Some(left) = decide::deadline_left(&job, now)
            && finish.is_none()
        {
            next = match next {
                Next::After(d) => Next::After(d.min(left)),
                Next::Done => Next::After(left),
            };
        }
        Ok(next)
    }

    async fn create_pods(
        &self,
        key: &str,
        job: &Job,
        api: &Api<Pod>,
        indexes: &[Option<i32>],
    ) -> Result<usize, kube::Error> {
        let mut created = 0;
        for index in indexes {
            let pod = pod_for(job, *index);
            let made = match api.create(&PostParams::default(), &pod).await {
                Ok(made) => made,
                Err(err) => {
                    self.cx
                        .recorder
                        .publish(
                            &reference(job),
                            EventType::Warning,
                            "FailedCreate",
                            &format!("Error creating: {err}"),
                        )
                        .await;
                    return Err(err);
                }
            };
            let name = made.name_any();
            self.expectations
                .created(key, &name, index.map(|i| i.to_string()));
            self.cx
                .recorder
                .publish(
                    &reference(job),
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created pod: {name}"),
                )
                .await;
            created += 1;
        }
        Ok(created)
    }

    /// Deletes `pods` (keeping their finalizers: they are counted as they
    /// go); returns how many are now terminating.
    async fn delete_pods(
        &self,
        key: &str,
        job: &Job,
        api: &Api<Pod>,
        pods: &[&Pod],
    ) -> Result<usize, kube::Error> {
        let mut deleted = 0;
        for pod in pods.iter().take(MAX_PODS_PER_SYNC) {
            let name = pod.name_any();
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(err) => return Err(err),
            }
            self.expectations
                .deleted(key, pod.metadata.uid.as_deref().unwrap_or_default());
            self.cx
                .recorder
                .publish(
                    &reference(job),
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                )
                .await;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Writes `status` if it differs from the Job's; returns the Job as
    /// written (or as it was).
    async fn write_status(
        &self,
        job: &Job,
        status: &JobStatus,
        _now: jiff::Timestamp,
    ) -> Result<Job, kube::Error> {
        if job.status.as_ref() == Some(status) {
            return Ok(job.clone());
        }
        let mut updated = job.clone();
        updated.status = Some(status.clone());
        let api: Api<Job> =
            Api::namespaced(self.cx.client.clone(), &job.namespace().unwrap_or_default());
        api.replace_status(&job.name_any(), &PostParams::default(), &updated)
            .await
    }

    async fn record_finished(&self, job: &Job, finish: &Finish) {
        let r = reference(job);
        if finish.success {
            let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
            if job
                .spec
                .as_ref()
                .and_then(|s| s.completions)
                .is_some_and(|c| succeeded > c)
            {
                self.cx
                    .recorder
                    .publish(
                        &r,
                        EventType::Warning,
                        "TooManySucceededPods",
                        "Too many succeeded pods running after completion count reached",
                    )
                    .await;
            }
            self.cx
                .recorder
                .publish(&r, EventType::Normal, "Completed", "Job completed")
                .await;
        } else {
            self.cx
                .recorder
                .publish(&r, EventType::Warning, &finish.reason, &finish.message)
                .await;
        }
    }

    fn note_backoff(&self, key: &str, finished: &[Finished<'_>], now: jiff::Timestamp) {
        if finished.is_empty() {
            return;
        }
        let events = finished
            .iter()
            .map(|f| (decide::finish_time(f.pod).unwrap_or(now), f.succeeded))
            .collect();
        let mut memory = self.memory();
        let entry = memory.entry(key.to_owned()).or_default();
        entry.backoff = entry.backoff.after(events);
    }

    fn backoff(&self, key: &str) -> Backoff {
        self.memory()
            .get(key)
            .map(|m| m.backoff)
            .unwrap_or_default()
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<String, Memory>> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn len32<T>(items: &[T]) -> i32 {
    i32::try_from(items.len()).unwrap_or(i32::MAX)
}

/// The key of the Job controlling `pod`.
fn job_key(pod: &Pod) -> Option<String> {
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

fn has_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

/// The pods to delete first, as upstream: unscheduled, then pending, then
/// not ready, then the rest.
fn pick_for_deletion<'a>(active: &[&'a Pod], count: usize) -> Vec<&'a Pod> {
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
async fn remove_finalizers(api: &Api<Pod>, pods: &[&Pod]) -> Result<HashSet<String>, kube::Error> {
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
fn pod_for(job: &Job, index: Option<i32>) -> Pod {
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
