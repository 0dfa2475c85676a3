//! What a Job's pods say, without IO: which are active, which are
//! terminating, which finished and still need counting, and what the
//! Job's pod failure policy makes of the failures.

use std::collections::HashSet;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use super::decide::{self, OnFailure};
use super::pods::has_finalizer;
use crate::owned;

/// A finished pod the Job has yet to count.
pub(super) struct Finished<'a> {
    pub(super) pod: &'a Pod,
    pub(super) succeeded: bool,
}

/// The Job's pods, sorted.
pub(super) struct Observed<'a> {
    /// Neither finished nor being deleted.
    pub(super) active: Vec<&'a Pod>,
    /// Being deleted, not finished.
    pub(super) terminating: usize,
    /// Finished, to be counted (without the ignored failures).
    pub(super) finished: Vec<Finished<'a>>,
    /// Uids of failures the policy ignores: let go, never counted.
    pub(super) ignored: HashSet<String>,
    /// A FailJob rule's message, if a failure matched one.
    pub(super) fail_job: Option<String>,
}

/// Sorts `pods`; `deleted` are uids the controller deleted that the cache
/// may still show as live, `counted(uid)` whether a pod is counted already.
pub(super) fn observe<'a>(
    job: &Job,
    pods: &[&'a Pod],
    deleted: &HashSet<String>,
    counted: impl Fn(&str) -> bool,
) -> Observed<'a> {
    let mut seen = Observed {
        active: Vec::new(),
        terminating: 0,
        finished: Vec::new(),
        ignored: HashSet::new(),
        fail_job: None,
    };
    for pod in pods {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let phase = owned::phase(pod);
        let terminal = matches!(phase, "Succeeded" | "Failed");
        let deleting = pod.metadata.deletion_timestamp.is_some() || deleted.contains(&uid);
        if deleting && !terminal {
            seen.terminating += 1;
        } else if !terminal {
            seen.active.push(pod);
        }
        let succeeded = match phase {
            "Succeeded" => true,
            "Failed" => false,
            // Upstream's default podReplacementPolicy counts a deleted pod
            // as failed at once.
            _ if pod.metadata.deletion_timestamp.is_some() && !decide::only_replace_failed(job) => {
                false
            }
            _ => continue,
        };
        if !has_finalizer(pod) || counted(&uid) {
            continue;
        }
        if !succeeded {
            match decide::on_failure(job, pod) {
                OnFailure::Ignore => {
                    seen.ignored.insert(uid);
                    continue;
                }
                OnFailure::FailJob(message) => {
                    seen.fail_job.get_or_insert(message);
                }
                OnFailure::Count => {}
            }
        }
        seen.finished.push(Finished { pod, succeeded });
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, phase: &str, deleting: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": uid, "uid": uid,
                "finalizers": ["batch.kubernetes.io/job-tracking"],
                "deletionTimestamp": deleting.then_some("2030-01-01T00:00:00Z"),
            },
            "status": {"phase": phase},
        }))
        .expect("a pod")
    }

    fn job(replacement: &str) -> Job {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "j"}, "spec": {
            "template": {}, "podReplacementPolicy": replacement,
        }}))
        .expect("a Job")
    }

    #[test]
    fn pods_sort_into_active_terminating_and_finished() {
        let pods = [
            pod("running", "Running", false),
            pod("done", "Succeeded", false),
            pod("crashed", "Failed", false),
            pod("deleted", "Running", true),
            pod("counted", "Succeeded", false),
            pod("deleting-unseen", "Running", false),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let deleted = ["deleting-unseen".to_owned()].into_iter().collect();
        let finished = |j: &Job| {
            let seen = observe(j, &refs, &deleted, |uid| uid == "counted");
            let names: Vec<(String, bool)> = seen
                .finished
                .iter()
                .map(|f| (f.pod.metadata.name.clone().unwrap_or_default(), f.succeeded))
                .collect();
            (seen.active.len(), seen.terminating, names)
        };
        let (active, terminating, names) = finished(&job("TerminatingOrFailed"));
        assert_eq!((active, terminating), (1, 2));
        assert_eq!(
            names,
            [
                ("done".into(), true),
                ("crashed".into(), false),
                ("deleted".into(), false)
            ]
        );
        // Only failed pods are replaced: a deleted pod is not failed yet.
        let (_, _, names) = finished(&job("Failed"));
        assert_eq!(names, [("done".into(), true), ("crashed".into(), false)]);
    }
}
