//! The CronJob controller (upstream's `cronjob-controller`, the v2 one):
//! creates a Job for each scheduled time (named `<cronjob>-<minutes since
//! the epoch>`), honouring `concurrencyPolicy`, `startingDeadlineSeconds`
//! and `suspend`; keeps `status.active`, `lastScheduleTime` and
//! `lastSuccessfulTime`; deletes finished Jobs beyond the history limits.
//!
//! Time comes from the context's clock. A CronJob without `timeZone` (or a
//! `CRON_TZ=` prefix) runs in the controller's local zone, as upstream.

mod schedule;

use std::sync::Arc;
use std::time::Duration;

use bulwark_client::events::{EventType, reference};
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::informer::{Change, Informer};
use crate::owned;
use crate::queue::{Next, WorkQueue, run_workers};
use schedule::Schedule;

/// The annotation upstream puts on each Job: its scheduled time.
const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream requeues a little after the next scheduled time.
const NEXT_SLACK: Duration = Duration::from_millis(100);

pub(crate) async fn run(cx: Context) {
    let cronjobs = cx.informers.get::<CronJob>();
    let jobs = cx.informers.get::<Job>();
    let queue = WorkQueue::<String>::new();
    let (mut cj_changes, mut job_changes) = (cronjobs.subscribe(), jobs.subscribe());
    cronjobs.ready().await;
    jobs.ready().await;
    let enqueue_all = cronjobs.enqueue_all(&queue, owned::key_of);
    enqueue_all();
    let feeder = {
        let queue = Arc::clone(&queue);
        async move {
            loop {
                tokio::select! {
                    change = cj_changes.next() => match change {
                        Some(Change::Applied(cj) | Change::Deleted(cj)) => queue.add(owned::key_of(cj.as_ref())),
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                    change = job_changes.next() => match change {
                        Some(Change::Applied(job) | Change::Deleted(job)) => {
                            if let Some(key) = owned::controller_key(job.as_ref(), "CronJob") {
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
    let controller = Arc::new(CronJobController { cx, cronjobs, jobs });
    let reconcile = move |key: String| {
        let controller = Arc::clone(&controller);
        async move { controller.reconcile(&key).await }
    };
    tokio::join!(
        feeder,
        run_workers("cronjob-controller", queue, 2, reconcile)
    );
}

struct CronJobController {
    cx: Context,
    cronjobs: Informer<CronJob>,
    jobs: Informer<Job>,
}

impl CronJobController {
    async fn reconcile(&self, key: &str) -> Result<Next, kube::Error> {
        let (namespace, name) = owned::split_key(key);
        let Some(cj) = self
            .cronjobs
            .store()
            .get(&ObjectRef::new(name).within(namespace))
        else {
            return Ok(Next::Done);
        };
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let mut jobs: Vec<Arc<Job>> = self
            .jobs
            .store()
            .state()
            .into_iter()
            .filter(|j| j.namespace().as_deref() == Some(namespace))
            .filter(|j| owned::controller_uid(j.as_ref()) == Some(uid.as_str()))
            .collect();
        jobs.sort_by_key(|j| start_time(j));
        let mut status = cj.status.clone().unwrap_or_default();
        self.sync_active(&cj, &jobs, &mut status).await?;
        self.clean_history(&cj, &jobs).await;
        let next = if cj.metadata.deletion_timestamp.is_some()
            || cj.spec.as_ref().and_then(|s| s.suspend) == Some(true)
        {
            Next::Done
        } else {
            self.schedule(&cj, &mut status).await?
        };
        if cj.status.as_ref() != Some(&status) {
            let mut updated = (*cj).clone();
            updated.status = Some(status);
            let api: Api<CronJob> = Api::namespaced(self.cx.client.clone(), namespace);
            api.replace_status(name, &PostParams::default(), &updated)
                .await?;
        }
        Ok(next)
    }

    /// Brings `status.active` and `lastSuccessfulTime` up to date with the
    /// CronJob's Jobs.
    async fn sync_active(
        &self,
        cj: &CronJob,
        jobs: &[Arc<Job>],
        status: &mut CronJobStatus,
    ) -> Result<(), kube::Error> {
        let mut active = status.active.take().unwrap_or_default();
        for job in jobs {
            let listed = active.iter().position(|r| r.uid == job.metadata.uid);
            match (finished(job), listed) {
                (Some(condition), Some(i)) => {
                    active.remove(i);
                    let message = format!(
                        "Saw completed job: {}, condition: {condition}",
                        job.name_any()
                    );
                    self.cx
                        .recorder
                        .publish(
                            &reference(cj),
                            EventType::Normal,
                            "SawCompletedJob",
                            &message,
                        )
                        .await;
                }
                (None, None) => active.push(job_reference(job)),
                _ => {}
            }
            if finished(job) == Some("Complete")
                && let Some(done) = job.status.as_ref().and_then(|s| s.completion_time.clone())
                && status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|t| t.0 < done.0)
            {
                status.last_successful_time = Some(done);
            }
        }
        // Listed Jobs the cache does not show: ask the server before
        // forgetting them.
        let api: Api<Job> =
            Api::namespaced(self.cx.client.clone(), &cj.namespace().unwrap_or_default());
        let mut kept = Vec::new();
        for r in active {
            let known = jobs.iter().any(|j| j.metadata.uid == r.uid);
            if known {
                kept.push(r);
                continue;
            }
            let name = r.name.clone().unwrap_or_default();
            match api.get_opt(&name).await? {
                Some(j) if j.metadata.uid == r.uid => kept.push(r),
                _ => {
                    let message = format!("Active job went missing: {name}");
                    self.cx
                        .recorder
                        .publish(&reference(cj), EventType::Warning, "MissingJob", &message)
                        .await;
                }
            }
        }
        status.active = (!kept.is_empty()).then_some(kept);
        Ok(())
    }

    /// Deletes the oldest finished Jobs beyond the history limits.
    async fn clean_history(&self, cj: &CronJob, jobs: &[Arc<Job>]) {
        let spec = cj.spec.as_ref();
        let limits = [
            (
                "Complete",
                spec.and_then(|s| s.successful_jobs_history_limit),
            ),
            ("Failed", spec.and_then(|s| s.failed_jobs_history_limit)),
        ];
        for (condition, limit) in limits {
            let Some(limit) = limit else { continue };
            let finished: Vec<&Arc<Job>> = jobs
                .iter()
                .filter(|j| finished(j) == Some(condition))
                .collect();
            let excess = finished
                .len()
                .saturating_sub(usize::try_from(limit).unwrap_or(0));
            for job in finished.into_iter().take(excess) {
                self.delete_job(cj, job).await;
            }
        }
    }

    async fn delete_job(&self, cj: &CronJob, job: &Job) -> bool {
        let api: Api<Job> =
            Api::namespaced(self.cx.client.clone(), &job.namespace().unwrap_or_default());
        match api
            .delete(&job.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(err) => {
                tracing::debug!(job = %job.name_any(), error = %err, "deleting a cronjob's job");
                return false;
            }
        }
        let message = format!("Deleted job {}", job.name_any());
        self.cx
            .recorder
            .publish(
                &reference(cj),
                EventType::Normal,
                "SuccessfulDelete",
                &message,
            )
            .await;
        true
    }

    /// Starts the Job for the latest scheduled time, if it is due; says
    /// when to look again.
    async fn schedule(
        &self,
        cj: &CronJob,
        status: &mut CronJobStatus,
    ) -> Result<Next, kube::Error> {
        let r = reference(cj);
        let spec = cj.spec.clone().unwrap_or_default();
        let schedule: Schedule = match spec.schedule.parse() {
            Ok(s) => s,
            Err(err) => {
                let message = format!("unparseable schedule: {:?} : {err}", spec.schedule);
                self.cx
                    .recorder
                    .publish(&r, EventType::Warning, "UnparseableSchedule", &message)
                    .await;
                return Ok(Next::Done);
            }
        };
        let zone = spec.time_zone.clone().or_else(|| schedule.zone.clone());
        let tz = match zone.as_deref().map(TimeZone::get) {
            None => TimeZone::system(),
            Some(Ok(tz)) => tz,
            Some(Err(err)) => {
                let message = format!("invalid timeZone: {:?}: {err}", zone.unwrap_or_default());
                self.cx
                    .recorder
                    .publish(&r, EventType::Warning, "UnknownTimeZone", &message)
                    .await;
                return Ok(Next::Done);
            }
        };
        let now = self.cx.clock.now();
        let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
        let mut earliest = status.last_schedule_time.as_ref().map_or(created, |t| t.0);
        if let Some(deadline) = spec.starting_deadline_seconds {
            let window_start = now - jiff::SignedDuration::from_secs(deadline);
            earliest = earliest.max(window_start);
        }
        let (scheduled, missed) = schedule::most_recent(&schedule, &tz, earliest, now);
        let next = match schedule.next_after(now, &tz) {
            Some(at) => Next::After(wait_until(now, at) + NEXT_SLACK),
            None => Next::Done,
        };
        if missed > schedule::TOO_MANY_MISSED {
            let message = format!(
                "too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
            );
            self.cx
                .recorder
                .publish(&r, EventType::Warning, "TooManyMissedTimes", &message)
                .await;
        }
        let Some(scheduled) = scheduled else {
            return Ok(next);
        };
        if let Some(deadline) = spec.starting_deadline_seconds
            && scheduled + jiff::SignedDuration::from_secs(deadline) < now
        {
            let message = format!(
                "Missed scheduled time to start a job: {}",
                scheduled.strftime("%a, %d %b %Y %H:%M:%S %z")
            );
            self.cx
                .recorder
                .publish(&r, EventType::Warning, "MissSchedule", &message)
                .await;
            return Ok(next);
        }
        let active = status.active.clone().unwrap_or_default();
        match spec.concurrency_policy.as_deref() {
            Some("Forbid") if !active.is_empty() => {
                self.cx
                    .recorder
                    .publish(&r, EventType::Normal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
                    .await;
                return Ok(next);
            }
            Some("Replace") => {
                let mut kept = Vec::new();
                for a in active {
                    let job = self.jobs.store().get(
                        &ObjectRef::new(a.name.as_deref().unwrap_or_default())
                            .within(&cj.namespace().unwrap_or_default()),
                    );
                    let gone = match job {
                        Some(job) if job.metadata.uid == a.uid => self.delete_job(cj, &job).await,
                        _ => true,
                    };
                    if !gone {
                        kept.push(a);
                    }
                }
                status.active = (!kept.is_empty()).then_some(kept);
            }
            _ => {}
        }
        let job = job_for(cj, scheduled);
        let api: Api<Job> =
            Api::namespaced(self.cx.client.clone(), &cj.namespace().unwrap_or_default());
        let made = match api.create(&PostParams::default(), &job).await {
            Ok(made) => {
                let message = format!("Created job {}", made.name_any());
                self.cx
                    .recorder
                    .publish(&r, EventType::Normal, "SuccessfulCreate", &message)
                    .await;
                made
            }
            // Made before (our status write failed or the cache is behind).
            Err(kube::Error::Api(s)) if s.code == 409 => {
                match api.get_opt(&job.name_any()).await? {
                    Some(existing)
                        if owned::controller_uid(&existing) == cj.metadata.uid.as_deref() =>
                    {
                        existing
                    }
                    _ => return Ok(next),
                }
            }
            Err(err) => {
                let message = format!("Error creating job: {err}");
                self.cx
                    .recorder
                    .publish(&r, EventType::Warning, "FailedCreate", &message)
                    .await;
                return Err(err);
            }
        };
        let mut active = status.active.take().unwrap_or_default();
        if finished(&made).is_none() && !active.iter().any(|a| a.uid == made.metadata.uid) {
            active.push(job_reference(&made));
        }
        status.active = (!active.is_empty()).then_some(active);
        status.last_schedule_time = Some(Time(scheduled));
        Ok(next)
    }
}

/// The Job for the run scheduled at `scheduled`.
fn job_for(cj: &CronJob, scheduled: jiff::Timestamp) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.to_owned(), scheduled.to_string());
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cj.name_any(), scheduled)),
            namespace: cj.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owned::controller_ref(cj)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// `<cronjob>-<scheduled time in minutes since the epoch>`, as upstream.
fn job_name(cronjob: &str, scheduled: jiff::Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// `Complete` or `Failed`, if the Job finished.
fn finished(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref())?;
    ["Complete", "Failed"].into_iter().find(|t| {
        conditions
            .iter()
            .any(|c| c.type_ == *t && c.status == "True")
    })
}

fn start_time(job: &Job) -> Option<jiff::Timestamp> {
    job.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(job.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

fn job_reference(job: &Job) -> ObjectReference {
    ObjectReference {
        resource_version: None,
        ..reference(job)
    }
}

fn wait_until(now: jiff::Timestamp, at: jiff::Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_count_minutes_since_the_epoch() {
        let t: jiff::Timestamp = "2024-05-01T10:05:00Z".parse().expect("valid");
        assert_eq!(job_name("backup", t), "backup-28575965");
    }
}
