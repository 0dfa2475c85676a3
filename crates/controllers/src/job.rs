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
mod observe;
mod pods;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use bulwark_client::events::{EventType, reference};
use decide::{Backoff, Counts, Finish};
use k8s_openapi::api::batch::v1::{Job, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};
use observe::{Finished, Observed};
use pods::{has_finalizer, job_key, pick_for_deletion, pod_for, remove_finalizers};

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

        let Observed {
            mut active,
            mut terminating,
            finished: new_finished,
            ignored,
            fail_job,
        } = observe::observe(job, pods, &unseen.deleted, |uid| {
            counted.contains(uid)
                || un_ok.iter().any(|u| u == uid)
                || un_failed.iter().any(|u| u == uid)
        });
        for f in &new_finished {
            let uid = f.pod.metadata.uid.clone().unwrap_or_default();
            if f.succeeded {
                un_ok.push(uid);
            } else {
                un_failed.push(uid);
            }
        }
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
