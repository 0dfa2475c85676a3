//! A Deployment's status and conditions, without IO (upstream's
//! `progress.go` and the status half of `sync.go`): the replica counts,
//! Available, Progressing (with the progress deadline), ReplicaFailure,
//! and the paused/resumed marks.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::logic::{
    max_unavailable, replicas, rs_available, rs_ready, rs_replicas, rs_status_replicas,
};

/// A Deployment condition by type.
pub(crate) fn condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// A new condition stamped `now`.
pub(crate) fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    let now = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Upstream's `SetDeploymentCondition`: no change for the same status and
/// reason; the transition time survives a change of reason only.
pub(crate) fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = condition_of(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_.clone());
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

fn condition_of<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    condition(status, type_)
}

/// Drops a condition.
pub(crate) fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}

fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

/// Whether progress is tracked (`HasProgressDeadline`).
pub(crate) fn has_progress_deadline(d: &Deployment) -> bool {
    progress_deadline(d).is_some()
}

/// Counts and the Available condition (`calculateStatus`).
pub(crate) fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let available: i32 = all.iter().map(|rs| rs_available(rs)).sum();
    let total: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|rs| rs_status_replicas(rs)).sum()),
        updated_replicas: Some(new.map_or(0, rs_status_replicas)),
        ready_replicas: Some(all.iter().map(|rs| rs_ready(rs)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };
    let condition = if available >= replicas(d) - max_unavailable(d) {
        new_condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut status, condition);
    status
}

/// Every desired replica is updated and available, and nothing else runs.
pub(crate) fn complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = Some(replicas(d));
    status.updated_replicas == want
        && status.replicas == want
        && status.available_replicas == want
        && status.observed_generation >= d.metadata.generation
}

/// Something moved since the last status (`DeploymentProgressing`).
fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    n(new.updated_replicas) > n(old.updated_replicas)
        || n(new.replicas) - n(new.updated_replicas) < n(old.replicas) - n(old.updated_replicas)
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// When the Progressing condition runs out (`None`: no deadline applies).
fn deadline(d: &Deployment, status: &DeploymentStatus) -> Option<Timestamp> {
    let seconds = progress_deadline(d)?;
    let current = condition(status, "Progressing")?;
    if matches!(
        current.reason.as_deref(),
        Some("NewReplicaSetAvailable" | "ProgressDeadlineExceeded")
    ) {
        return None;
    }
    let from = current.last_update_time.as_ref()?.0;
    from.checked_add(jiff::SignedDuration::from_secs(i64::from(seconds)))
        .ok()
}

/// Upstream's `syncRolloutStatus` without the write: the new status, and
/// when to look again for a deadline.
pub(crate) fn rollout_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> (DeploymentStatus, Option<Duration>) {
    let mut status = calculate_status(d, all, new, now);
    if !has_progress_deadline(d) {
        remove_condition(&mut status, "Progressing");
    }
    let current = condition(&status, "Progressing").cloned();
    let settled = status.replicas == status.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some("NewReplicaSetAvailable");
    let name = |what: &str| match new {
        Some(rs) => format!(
            "ReplicaSet {:?} {what}",
            rs.metadata.name.as_deref().unwrap_or_default()
        ),
        None => format!(
            "Deployment {:?} {what}",
            d.metadata.name.as_deref().unwrap_or_default()
        ),
    };
    if has_progress_deadline(d) && !settled {
        if complete(d, &status) {
            let c = new_condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                name("has successfully progressed."),
                now,
            );
            set_condition(&mut status, c);
        } else if progressing(d, &status) {
            let mut c = new_condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                name("is progressing."),
                now,
            );
            if let Some(current) = current.as_ref().filter(|c| c.status == "True") {
                c.last_transition_time = current.last_transition_time.clone();
            }
            remove_condition(&mut status, "Progressing");
            set_condition(&mut status, c);
        } else if deadline(d, &status).is_some_and(|at| at < now) {
            let c = new_condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                name("has timed out progressing."),
                now,
            );
            set_condition(&mut status, c);
        }
    }
    match replica_failure(all, new) {
        Some(failure) => set_condition(&mut status, failure),
        None => remove_condition(&mut status, "ReplicaFailure"),
    }
    let requeue = if complete(d, &status) {
        None
    } else {
        deadline(d, &status).map(|at| {
            let left = at.duration_since(now);
            if left < jiff::SignedDuration::from_secs(1) {
                Duration::ZERO
            } else {
                Duration::try_from(left).unwrap_or_default() + Duration::from_secs(1)
            }
        })
    };
    (status, requeue)
}

/// A ReplicaSet's ReplicaFailure (the new one's first), as the
/// Deployment's (`getReplicaFailures`).
fn replica_failure(all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    new.into_iter().chain(all.iter().copied()).find_map(|rs| {
        let c = rs
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "ReplicaFailure")?;
        Some(DeploymentCondition {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_update_time: c.last_transition_time.clone(),
            last_transition_time: c.last_transition_time.clone(),
        })
    })
}

/// The Progressing condition a pause or resume sets (`checkPausedConditions`).
pub(crate) fn paused_condition(d: &Deployment, now: Timestamp) -> Option<DeploymentCondition> {
    if !has_progress_deadline(d) {
        return None;
    }
    let status = d.status.clone().unwrap_or_default();
    let reason = condition(&status, "Progressing").and_then(|c| c.reason.clone());
    if reason.as_deref() == Some("ProgressDeadlineExceeded") {
        return None;
    }
    let paused_now = reason.as_deref() == Some("DeploymentPaused");
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if paused && !paused_now {
        Some(new_condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            now,
        ))
    } else if !paused && paused_now {
        Some(new_condition(
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed".into(),
            now,
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
