//! The TTL-after-finished controller (upstream's
//! `ttl-after-finished-controller`): deletes a finished Job (with its pods,
//! in the background) `ttlSecondsAfterFinished` after it finished.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::informer::Change;
use crate::owned;
use crate::queue::{Next, WorkQueue, run_workers};

pub(crate) async fn run(cx: Context) {
    let jobs = cx.informers.get::<Job>();
    let queue = WorkQueue::<String>::new();
    let mut changes = jobs.subscribe();
    jobs.ready().await;
    let enqueue_all = {
        let (queue, jobs) = (Arc::clone(&queue), jobs.clone());
        move || {
            for job in jobs.store().state() {
                if job
                    .spec
                    .as_ref()
                    .and_then(|s| s.ttl_seconds_after_finished)
                    .is_some()
                {
                    queue.add(owned::key_of(job.as_ref()));
                }
            }
        }
    };
    enqueue_all();
    let feeder = {
        let queue = Arc::clone(&queue);
        async move {
            loop {
                match changes.next().await {
                    Some(Change::Applied(job)) => {
                        if job
                            .spec
                            .as_ref()
                            .and_then(|s| s.ttl_seconds_after_finished)
                            .is_some()
                        {
                            queue.add(owned::key_of(job.as_ref()));
                        }
                    }
                    Some(Change::Deleted(_)) => {}
                    Some(Change::Resynced) => enqueue_all(),
                    None => return,
                }
            }
        }
    };
    let reconcile = move |key: String| {
        let (cx, jobs) = (cx.clone(), jobs.clone());
        async move {
            let (namespace, name) = owned::split_key(&key);
            let Some(job) = jobs.store().get(&ObjectRef::new(name).within(namespace)) else {
                return Ok::<_, kube::Error>(Next::Done);
            };
            let now = cx.clock.now();
            match left(&job, now) {
                None => return Ok(Next::Done),
                Some(left) if !left.is_zero() => return Ok(Next::After(left)),
                Some(_) => {}
            }
            // The cache may be behind (the TTL changed, the Job restarted):
            // decide again on the Job as the server has it.
            let api: Api<Job> = Api::namespaced(cx.client.clone(), namespace);
            let Some(fresh) = api.get_opt(name).await? else {
                return Ok(Next::Done);
            };
            match left(&fresh, now) {
                None => return Ok(Next::Done),
                Some(left) if !left.is_zero() => return Ok(Next::After(left)),
                Some(_) => {}
            }
            tracing::debug!(job = %key, "deleting a finished job past its TTL");
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: fresh.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match api.delete(name, &params).await {
                Ok(_) => Ok(Next::Done),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(Next::Done),
                Err(err) => Err(err),
            }
        }
    };
    tokio::join!(
        feeder,
        run_workers("ttl-after-finished-controller", queue, 2, reconcile)
    );
}

/// How long until a finished Job with a TTL expires (zero: now); `None`
/// when it has no TTL, is not finished or is being deleted.
fn left(job: &Job, now: jiff::Timestamp) -> Option<Duration> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished = job
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    let at = finished.last_transition_time.as_ref()?.0;
    let expires = at
        .checked_add(jiff::SignedDuration::from_secs(i64::from(ttl)))
        .ok()?;
    Some(Duration::try_from(expires.duration_since(now)).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(ttl: Option<i32>, finished: Option<(&str, &str)>) -> Job {
        let mut value = serde_json::json!({"metadata": {"name": "j"}, "spec": {
            "template": {}, "ttlSecondsAfterFinished": ttl,
        }});
        if let Some((type_, at)) = finished {
            value["status"] = serde_json::json!({"conditions": [
                {"type": type_, "status": "True", "lastTransitionTime": at},
            ]});
        }
        serde_json::from_value(value).expect("a Job")
    }

    #[test]
    fn finished_jobs_expire_after_their_ttl() {
        let now: jiff::Timestamp = "2030-01-01T10:00:00Z".parse().expect("valid");
        let cases = [
            (job(None, Some(("Complete", "2030-01-01T09:00:00Z"))), None),
            (job(Some(60), None), None),
            (
                job(
                    Some(60),
                    Some(("SuccessCriteriaMet", "2030-01-01T09:59:30Z")),
                ),
                None,
            ),
            (
                job(Some(60), Some(("Complete", "2030-01-01T09:59:30Z"))),
                Some(Duration::from_secs(30)),
            ),
            (
                job(Some(60), Some(("Failed", "2030-01-01T09:00:00Z"))),
                Some(Duration::ZERO),
            ),
            (
                job(Some(0), Some(("Complete", "2030-01-01T10:00:00Z"))),
                Some(Duration::ZERO),
            ),
        ];
        for (i, (j, want)) in cases.into_iter().enumerate() {
            assert_eq!(left(&j, now), want, "case {i}");
        }
    }
}
