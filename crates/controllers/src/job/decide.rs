//! The Job controller's decisions, without IO: how many pods should run,
//! which indexes are pending, when the Job is finished, and how long a
//! failed pod's replacement waits.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Held on every pod until the Job has counted it.
pub(crate) const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// An Indexed Job's pod's index (annotation and label).
pub(crate) const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";

/// The first wait before a failed pod is replaced; doubles per failure.
const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest such wait.
const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(360);

/// Why and how a Job ends: first the interim condition
/// (`SuccessCriteriaMet` / `FailureTarget`), then, once no pod is left
/// running or uncounted, the terminal one (`Complete` / `Failed`) with the
/// same reason and message, as upstream since 1.31.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finish {
    pub(crate) success: bool,
    pub(crate) reason: String,
    pub(crate) message: String,
}

impl Finish {
    pub(crate) fn interim_type(&self) -> &'static str {
        if self.success {
            "SuccessCriteriaMet"
        } else {
            "FailureTarget"
        }
    }

    pub(crate) fn terminal_type(&self) -> &'static str {
        if self.success { "Complete" } else { "Failed" }
    }
}

/// What a reconcile counted.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    pub(crate) active: i32,
    /// Pods that succeeded, counted or not.
    pub(crate) succeeded: i32,
    /// Pods that failed, counted or not.
    pub(crate) failed: i32,
    /// For Indexed Jobs: how many distinct indexes succeeded.
    pub(crate) completed_indexes: i32,
}

/// How many pods should be active (upstream's `manageJob`).
pub(crate) fn want_active(job: &Job, counts: Counts) -> i32 {
    let spec = job.spec.as_ref();
    let parallelism = spec.and_then(|s| s.parallelism).unwrap_or(1).max(0);
    let succeeded = if is_indexed(job) {
        counts.completed_indexes
    } else {
        counts.succeeded
    };
    match spec.and_then(|s| s.completions) {
        // Work-queue Jobs: once one pod succeeded, start no more.
        None if succeeded > 0 => counts.active,
        None => parallelism,
        Some(completions) => (completions - succeeded).clamp(0, parallelism),
    }
}

/// Whether (and why) the Job is finished; an interim condition already in
/// its status is kept. `fail_job` is a failed pod's FailJob rule message.
pub(crate) fn finish(
    job: &Job,
    counts: Counts,
    fail_job: Option<&str>,
    now: jiff::Timestamp,
) -> Option<Finish> {
    if let Some(c) = conditions(job).iter().find(|c| {
        (c.type_ == "SuccessCriteriaMet" || c.type_ == "FailureTarget") && c.status == "True"
    }) {
        return Some(Finish {
            success: c.type_ == "SuccessCriteriaMet",
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        });
    }
    if let Some(message) = fail_job {
        return Some(failure("PodFailurePolicy", message));
    }
    let spec = job.spec.as_ref();
    let backoff_limit = spec.and_then(|s| s.backoff_limit).unwrap_or(6);
    if counts.failed > backoff_limit {
        return Some(failure(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ));
    }
    if past_deadline(job, now) {
        return Some(failure(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ));
    }
    let complete = match (spec.and_then(|s| s.completions), is_indexed(job)) {
        (Some(completions), true) => counts.completed_indexes >= completions,
        (Some(completions), false) => counts.succeeded >= completions,
        (None, _) => counts.succeeded > 0 && counts.active == 0,
    };
    complete.then(|| Finish {
        success: true,
        reason: "CompletionsReached".to_owned(),
        message: "Reached expected number of succeeded pods".to_owned(),
    })
}

fn failure(reason: &str, message: &str) -> Finish {
    Finish {
        success: false,
        reason: reason.to_owned(),
        message: message.to_owned(),
    }
}

/// What the Job's `podFailurePolicy` makes of a failed pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Counts toward `backoffLimit` (no rule matched, or `Count`).
    Count,
    /// Not counted (`Ignore`, e.g. a disruption).
    Ignore,
    /// Fails the Job, with this message.
    FailJob(String),
}

/// The first `podFailurePolicy` rule matching the failed `pod`, as
/// upstream's `matchPodFailurePolicy` (`FailIndex` counts, as
/// `backoffLimitPerIndex` is not implemented).
pub(crate) fn on_failure(job: &Job, pod: &Pod) -> OnFailure {
    let Some(policy) = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
    else {
        return OnFailure::Count;
    };
    let status = pod.status.clone().unwrap_or_default();
    let pod_name = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(codes) = &rule.on_exit_codes {
            let containers = status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten());
            containers
                .filter(|c| codes.container_name.as_ref().is_none_or(|n| *n == c.name))
                .find_map(|c| {
                    let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
                    let listed = codes.values.contains(&code);
                    let hit = code != 0 && (listed == (codes.operator == "In"));
                    hit.then(|| format!("Container {} for pod {pod_name} failed with exit code {code} matching {} rule at index {index}", c.name, rule.action))
                })
        } else {
            let patterns = rule.on_pod_conditions.as_deref().unwrap_or_default();
            status.conditions.iter().flatten().find_map(|c| {
                patterns
                    .iter()
                    .any(|p| p.type_ == c.type_ && p.status == c.status)
                    .then(|| {
                        format!(
                            "Pod {pod_name} has condition {} matching {} rule at index {index}",
                            c.type_, rule.action
                        )
                    })
            })
        };
        let Some(message) = matched else { continue };
        return match rule.action.as_str() {
            "Ignore" => OnFailure::Ignore,
            "FailJob" => OnFailure::FailJob(message),
            _ => OnFailure::Count,
        };
    }
    OnFailure::Count
}

/// Whether only failed pods are replaced (`podReplacementPolicy: Failed`,
/// the default with a `podFailurePolicy`): a pod being deleted counts as
/// failed only once its phase says so, and no replacement starts before.
pub(crate) fn only_replace_failed(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.pod_replacement_policy.as_deref())
        == Some("Failed")
}

/// Time left before `activeDeadlineSeconds` runs out (`None`: no deadline).
pub(crate) fn deadline_left(job: &Job, now: jiff::Timestamp) -> Option<Duration> {
    let seconds = job.spec.as_ref()?.active_deadline_seconds?;
    if is_suspended(job) {
        return None;
    }
    let start = job.status.as_ref()?.start_time.as_ref()?.0;
    let end = start
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .ok()?;
    Some(Duration::try_from(end.duration_since(now)).unwrap_or(Duration::ZERO))
}

fn past_deadline(job: &Job, now: jiff::Timestamp) -> bool {
    deadline_left(job, now).is_some_and(|left| left.is_zero())
}

pub(crate) fn conditions(job: &Job) -> &[JobCondition] {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

/// Complete or Failed.
pub(crate) fn is_finished(job: &Job) -> bool {
    conditions(job)
        .iter()
        .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

pub(crate) fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

pub(crate) fn is_suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

/// Sets (or adds) a true condition; returns whether anything changed.
pub(crate) fn set_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> bool {
    ensure_condition(conditions, type_, "True", reason, message, now)
}

/// Upstream's `ensureJobConditionStatus`: sets the condition's status (a
/// false one is never added, only flipped); returns whether it changed.
pub(crate) fn ensure_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> bool {
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status == status {
            return false;
        }
        c.status = status.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(Time(now));
        c.last_transition_time = Some(Time(now));
        return true;
    }
    if status != "True" {
        return false;
    }
    conditions.push(JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}

/// The pod's completion index, if it has a valid one.
pub(crate) fn pod_index(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(INDEX_KEY)?
        .parse()
        .ok()
        .filter(|i| *i >= 0)
}

/// Parses `status.completedIndexes` ("1,3-5").
pub(crate) fn parse_indexes(text: &str) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    set.extend(a..=b);
                }
            }
            None => set.extend(part.parse::<i32>().ok()),
        }
    }
    set
}

/// Formats indexes as upstream: ascending, consecutive runs as `a-b`.
pub(crate) fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// The lowest `count` indexes below `completions` that neither succeeded
/// nor have an active pod.
pub(crate) fn pending_indexes(
    completions: i32,
    completed: &BTreeSet<i32>,
    active: &BTreeSet<i32>,
    count: usize,
) -> Vec<i32> {
    (0..completions)
        .filter(|i| !completed.contains(i) && !active.contains(i))
        .take(count)
        .collect()
}

/// When the pod finished: its containers' latest `finishedAt`, else its
/// `Ready` condition's last change.
pub(crate) fn finish_time(pod: &Pod) -> Option<jiff::Timestamp> {
    let status = pod.status.as_ref()?;
    let finished = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    finished.or_else(|| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
    })
}

/// Failures since the last success, for the replacement backoff
/// (upstream's `backoffRecord`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) failures: u32,
    pub(crate) last_failure: Option<jiff::Timestamp>,
}

impl Backoff {
    /// The record after newly finished pods, each `(finish time, succeeded)`.
    pub(crate) fn after(mut self, mut finished: Vec<(jiff::Timestamp, bool)>) -> Backoff {
        finished.sort();
        for (at, succeeded) in finished {
            if succeeded {
                if self.last_failure.is_none_or(|last| at >= last) {
                    self = Backoff::default();
                }
            } else {
                self.failures += 1;
                self.last_failure = Some(self.last_failure.map_or(at, |last| last.max(at)));
            }
        }
        self
    }

    /// How long a new pod must still wait: 10 s doubling per failure since
    /// the last success, capped at 6 min, counted from the last failure.
    pub(crate) fn remaining(&self, now: jiff::Timestamp) -> Duration {
        let Some(last) = self.last_failure.filter(|_| self.failures > 0) else {
            return Duration::ZERO;
        };
        let wait = POD_FAILURE_BACKOFF
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(MAX_POD_FAILURE_BACKOFF);
        let since = Duration::try_from(now.duration_since(last)).unwrap_or(Duration::ZERO);
        wait.saturating_sub(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobSpec, JobStatus};

    fn job(completions: Option<i32>, parallelism: i32, mode: &str) -> Job {
        Job {
            spec: Some(JobSpec {
                completions,
                parallelism: Some(parallelism),
                completion_mode: Some(mode.into()),
                backoff_limit: Some(2),
                ..JobSpec::default()
            }),
            ..Job::default()
        }
    }

    fn counts(active: i32, succeeded: i32, failed: i32, indexes: i32) -> Counts {
        Counts {
            active,
            succeeded,
            failed,
            completed_indexes: indexes,
        }
    }

    #[test]
    fn active_pods_wanted() {
        let cases = [
            // (completions, parallelism, mode, counts, want)
            (Some(5), 2, "NonIndexed", counts(0, 0, 0, 0), 2),
            (Some(5), 2, "NonIndexed", counts(2, 4, 0, 0), 1),
            (Some(5), 2, "NonIndexed", counts(1, 5, 0, 0), 0),
            (Some(3), 10, "NonIndexed", counts(0, 1, 3, 0), 2),
            (None, 3, "NonIndexed", counts(0, 0, 0, 0), 3),
            (None, 3, "NonIndexed", counts(2, 1, 0, 0), 2),
            // Indexed: distinct indexes count, not pods.
            (Some(3), 3, "Indexed", counts(0, 3, 0, 1), 2),
        ];
        for (completions, parallelism, mode, c, want) in cases {
            let j = job(completions, parallelism, mode);
            assert_eq!(
                want_active(&j, c),
                want,
                "{completions:?} {parallelism} {c:?}"
            );
        }
    }

    #[test]
    fn finishing_decisions() {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        let mut deadline = job(Some(1), 1, "NonIndexed");
        deadline.spec.as_mut().unwrap().active_deadline_seconds = Some(10);
        deadline.status = Some(JobStatus {
            start_time: Some(Time(now - jiff::SignedDuration::from_secs(10))),
            ..JobStatus::default()
        });
        let cases = [
            (job(Some(2), 1, "NonIndexed"), counts(1, 1, 2, 0), None),
            (
                job(Some(2), 1, "NonIndexed"),
                counts(0, 1, 3, 0),
                Some("BackoffLimitExceeded"),
            ),
            (
                job(Some(2), 1, "NonIndexed"),
                counts(0, 2, 0, 0),
                Some("CompletionsReached"),
            ),
            (job(None, 2, "NonIndexed"), counts(1, 1, 0, 0), None),
            (
                job(None, 2, "NonIndexed"),
                counts(0, 1, 0, 0),
                Some("CompletionsReached"),
            ),
            (job(Some(2), 2, "Indexed"), counts(0, 2, 0, 1), None),
            (
                job(Some(2), 2, "Indexed"),
                counts(0, 2, 0, 2),
                Some("CompletionsReached"),
            ),
            (deadline, counts(1, 0, 0, 0), Some("DeadlineExceeded")),
        ];
        for (j, c, want) in cases {
            assert_eq!(
                finish(&j, c, None, now).map(|f| f.reason),
                want.map(str::to_owned),
                "{c:?}"
            );
        }
    }

    #[test]
    fn an_interim_condition_decides() {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        let mut j = job(Some(1), 1, "NonIndexed");
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            "FailureTarget",
            "BackoffLimitExceeded",
            "m",
            now,
        );
        j.status = Some(JobStatus {
            conditions: Some(conditions),
            ..JobStatus::default()
        });
        let f = finish(&j, counts(0, 1, 0, 0), None, now).unwrap();
        assert!(!f.success);
        assert_eq!(f.terminal_type(), "Failed");
    }

    #[test]
    fn pod_failure_policy_rules() {
        let mut j = job(Some(1), 1, "NonIndexed");
        j.spec.as_mut().unwrap().pod_failure_policy = Some(
            serde_json::from_value(serde_json::json!({"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0]}},
            ]}))
            .unwrap(),
        );
        let pod = |exit: i32, condition: Option<&str>| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "namespace": "ns"},
                "status": {
                    "phase": "Failed",
                    "conditions": condition.map(|c| vec![serde_json::json!({"type": c, "status": "True"})]),
                    "containerStatuses": [{"name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": exit}}}],
                },
            }))
            .unwrap()
        };
        assert_eq!(
            on_failure(&j, &pod(42, None)),
            OnFailure::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 0".into()
            )
        );
        assert_eq!(
            on_failure(&j, &pod(1, Some("DisruptionTarget"))),
            OnFailure::Ignore
        );
        assert_eq!(on_failure(&j, &pod(1, None)), OnFailure::Count);
        assert_eq!(
            on_failure(&job(Some(1), 1, "NonIndexed"), &pod(42, None)),
            OnFailure::Count
        );
    }

    #[test]
    fn a_false_condition_is_only_ever_flipped() {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        let mut conditions = Vec::new();
        assert!(!ensure_condition(
            &mut conditions,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert!(conditions.is_empty());
        assert!(ensure_condition(
            &mut conditions,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(!ensure_condition(
            &mut conditions,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(ensure_condition(
            &mut conditions,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert_eq!(conditions[0].reason.as_deref(), Some("JobResumed"));
    }

    #[test]
    fn indexes_round_trip() {
        for text in ["", "0", "0-2", "1,3-5,7", "0-1,9"] {
            assert_eq!(format_indexes(&parse_indexes(text)), text);
        }
        let completed = parse_indexes("0,2");
        let active = parse_indexes("1");
        assert_eq!(pending_indexes(6, &completed, &active, 2), vec![3, 4]);
    }

    #[test]
    fn failed_pods_are_replaced_after_a_growing_backoff() {
        let t = |s: i64| jiff::Timestamp::from_second(1_000_000 + s).unwrap();
        let b = Backoff::default().after(vec![(t(0), false)]);
        assert_eq!(b.remaining(t(0)), Duration::from_secs(10));
        assert_eq!(b.remaining(t(4)), Duration::from_secs(6));
        let b = b.after(vec![(t(20), false), (t(30), false)]);
        assert_eq!(b.failures, 3);
        assert_eq!(b.remaining(t(30)), Duration::from_secs(40));
        let many = Backoff {
            failures: 10,
            last_failure: Some(t(0)),
        };
        assert_eq!(many.remaining(t(0)), Duration::from_secs(360));
        // A success after the last failure resets it.
        assert_eq!(b.after(vec![(t(31), true)]), Backoff::default());
        assert_eq!(b.remaining(t(1000)), Duration::ZERO);
    }
}
