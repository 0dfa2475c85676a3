//! Cases for the Deployment's status and conditions.

use serde_json::json;

use super::*;
use crate::deployment::logic::tests::{deployment, rs};

#[test]
fn rollout_conditions() {
    let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
    let mut d = deployment(3, json!(1), json!(0));
    let new_rs = rs("web-abc", 1, 3, 3);
    let (status, requeue) = rollout_status(&d, &[&new_rs], Some(&new_rs), now);
    let progressing = condition(&status, "Progressing").unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        progressing.message.as_deref(),
        Some("ReplicaSet \"web-abc\" has successfully progressed.")
    );
    let available = condition(&status, "Available").unwrap();
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
    assert_eq!(requeue, None);

    // Stuck: updated but never available, past the deadline.
    let stuck = rs("web-def", 1, 3, 0);
    let old_update = now - jiff::SignedDuration::from_secs(700);
    d.status = Some(DeploymentStatus {
        replicas: Some(3),
        updated_replicas: Some(3),
        conditions: Some(vec![new_condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            String::new(),
            old_update,
        )]),
        ..Default::default()
    });
    let (status, _) = rollout_status(&d, &[&stuck], Some(&stuck), now);
    let progressing = condition(&status, "Progressing").unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("False", Some("ProgressDeadlineExceeded"))
    );
    assert_eq!(
        progressing.message.as_deref(),
        Some("ReplicaSet \"web-def\" has timed out progressing.")
    );
    let available = condition(&status, "Available").unwrap();
    assert_eq!(
        available.reason.as_deref(),
        Some("MinimumReplicasUnavailable")
    );

    // Not yet at the deadline: look again when it passes.
    d.status.as_mut().unwrap().conditions = Some(vec![new_condition(
        "Progressing",
        "True",
        "ReplicaSetUpdated",
        String::new(),
        now,
    )]);
    let (_, requeue) = rollout_status(&d, &[&stuck], Some(&stuck), now);
    assert_eq!(requeue, Some(Duration::from_secs(601)));
}

#[test]
fn pausing_and_resuming_set_progressing_unknown() {
    let now = Timestamp::now();
    let mut d = deployment(3, json!(1), json!(0));
    d.spec.as_mut().unwrap().paused = Some(true);
    let c = paused_condition(&d, now).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("Unknown", Some("DeploymentPaused"))
    );
    d.status = Some(DeploymentStatus {
        conditions: Some(vec![c]),
        ..Default::default()
    });
    assert!(paused_condition(&d, now).is_none());
    d.spec.as_mut().unwrap().paused = Some(false);
    let c = paused_condition(&d, now).unwrap();
    assert_eq!(c.reason.as_deref(), Some("DeploymentResumed"));
}

#[test]
fn a_replica_set_failure_shows_on_the_deployment() {
    let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
    let d = deployment(3, json!(1), json!(0));
    let mut failing = rs("web-abc", 1, 3, 0);
    failing.status.as_mut().unwrap().conditions = Some(vec![serde_json::from_value(json!({
        "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
        "message": "pods \"web-abc-x\" is forbidden", "lastTransitionTime": "2026-01-01T00:09:00Z",
    }))
    .unwrap()]);
    let (status, _) = rollout_status(&d, &[&failing], Some(&failing), now);
    let c = condition(&status, "ReplicaFailure").unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("True", Some("FailedCreate"))
    );
    let healthy = rs("web-abc", 1, 3, 3);
    let mut d = d;
    d.status = Some(status);
    let (status, _) = rollout_status(&d, &[&healthy], Some(&healthy), now);
    assert!(
        condition(&status, "ReplicaFailure").is_none(),
        "cleared once the failure is gone"
    );
}
