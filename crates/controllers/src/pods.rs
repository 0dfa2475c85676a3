//! What controllers ask of pods, as upstream's `podutil` and
//! `controller_utils` answer it: is it active, ready, available; and which
//! pods to delete first when scaling down (`ActivePodsWithRanks`).

use std::cmp::Ordering;
use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

/// Not finished and not being deleted (upstream's `IsPodActive`).
pub(crate) fn is_active(pod: &Pod) -> bool {
    let phase = phase(pod);
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// When the pod's Ready condition last became True, if it is True.
pub(crate) fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// The Ready condition is True.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` (upstream's `IsPodAvailable`).
pub(crate) fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => {
            let needed = jiff::SignedDuration::from_secs(i64::from(min_ready_seconds));
            since
                .checked_add(needed)
                .is_ok_and(|available_at| available_at < now)
        }
    }
}

/// The `diff` pods to delete first out of `pods`, by upstream's ranking:
/// unscheduled, then pending/unknown, then not ready, then lower deletion
/// cost, then doubled up on a node with `related` pods, then ready for
/// less time, then more restarts, then newer (times compared on a
/// logarithmic scale, as with `LogarithmicScaleDown`).
pub(crate) fn to_delete<'a>(
    pods: &[&'a Pod],
    related: &[&Pod],
    diff: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for pod in related.iter().filter(|p| is_active(p)) {
        if let Some(node) = node_name(pod) {
            *on_node.entry(node).or_default() += 1;
        }
    }
    let mut ranked: Vec<(usize, &Pod)> = pods
        .iter()
        .map(|pod| {
            // A pod adopted in this very sync may not be among `related` yet.
            let rank = node_name(pod).and_then(|n| on_node.get(n)).copied();
            (rank.unwrap_or(0), *pod)
        })
        .collect();
    ranked.sort_by(|(rank_a, a), (rank_b, b)| delete_first(a, *rank_a, b, *rank_b, now));
    ranked.into_iter().take(diff).map(|(_, p)| p).collect()
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// `Less` when `a` should be deleted before `b`.
fn delete_first(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> Ordering {
    // 1. Unassigned first.
    let assigned = |p: &Pod| node_name(p).is_some();
    if assigned(a) != assigned(b) {
        return assigned(a).cmp(&assigned(b));
    }
    // 2. Pending < Unknown < Running.
    let ordinal = |p: &Pod| match phase(p) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    };
    if ordinal(a) != ordinal(b) {
        return ordinal(a).cmp(&ordinal(b));
    }
    // 3. Not ready first.
    if is_ready(a) != is_ready(b) {
        return is_ready(a).cmp(&is_ready(b));
    }
    // 4. Lower pod-deletion-cost first.
    if deletion_cost(a) != deletion_cost(b) {
        return deletion_cost(a).cmp(&deletion_cost(b));
    }
    // 5. Doubled up (more related pods on the node) first.
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    // 6. Ready for less time first.
    if let (Some(ready_a), Some(ready_b)) = (ready_since(a), ready_since(b))
        && ready_a != ready_b
    {
        return newer_first(ready_a, ready_b, now, a, b);
    }
    // 7. More restarts first.
    if restarts(a) != restarts(b) {
        return restarts(b).cmp(&restarts(a));
    }
    // 8. Newer first.
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if created(a) != created(b) {
        return newer_first(created(a), created(b), now, a, b);
    }
    Ordering::Equal
}

/// Zero times first, then newer by log2 of age; equal buckets by uid.
fn newer_first(
    a: Option<Timestamp>,
    b: Option<Timestamp>,
    now: Timestamp,
    pod_a: &Pod,
    pod_b: &Pod,
) -> Ordering {
    match (a, b) {
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(a), Some(b)) => match log2_age(a, now).cmp(&log2_age(b, now)) {
            Ordering::Equal => pod_a.metadata.uid.cmp(&pod_b.metadata.uid),
            other => other,
        },
    }
}

fn log2_age(t: Timestamp, now: Timestamp) -> i64 {
    let nanos = now.as_nanosecond() - t.as_nanosecond();
    if nanos <= 0 {
        -1
    } else {
        // floor(log2(nanos)) of a positive i128
        127 - i64::from(nanos.leading_zeros())
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    /// `node`, phase, ready since (seconds ago), created (seconds ago).
    fn pod(name: &str, node: &str, phase: &str, ready_ago: Option<i64>, age: i64) -> Pod {
        let at = |ago: i64| Time(now() - jiff::SignedDuration::from_secs(ago));
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                uid: Some(name.to_owned()),
                creation_timestamp: Some(at(age)),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_owned()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.to_owned()),
                conditions: ready_ago.map(|ago| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(at(ago)),
                        ..PodCondition::default()
                    }]
                }),
                ..PodStatus::default()
            }),
        }
    }

    fn check(pods: &[Pod], diff: usize, expected: &[&str]) {
        let refs: Vec<&Pod> = pods.iter().collect();
        let chosen: Vec<String> = to_delete(&refs, &refs, diff, now())
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(chosen, expected);
    }

    #[test]
    fn deletion_prefers_unscheduled_pending_unready_newer() {
        let ready_old = pod("ready-old", "n1", "Running", Some(5000), 6000);
        let ready_new = pod("ready-new", "n2", "Running", Some(10), 20);
        let not_ready = pod("not-ready", "n3", "Running", None, 7000);
        let pending = pod("pending", "n4", "Pending", None, 8000);
        let unscheduled = pod("unscheduled", "", "Pending", None, 9000);
        let all = [
            ready_old.clone(),
            ready_new.clone(),
            not_ready.clone(),
            pending.clone(),
            unscheduled.clone(),
        ];
        check(&all, 1, &["unscheduled"]);
        check(&all, 2, &["unscheduled", "pending"]);
        check(&all, 3, &["unscheduled", "pending", "not-ready"]);
        check(
            &all,
            4,
            &["unscheduled", "pending", "not-ready", "ready-new"],
        );
        // Doubled-up pods go before lone ones.
        let a = pod("a", "n1", "Running", Some(100), 100);
        let b = pod("b", "n1", "Running", Some(100), 100);
        let c = pod("c", "n2", "Running", Some(10), 10);
        check(&[c, a, b], 1, &["a"]);
    }

    #[test]
    fn candidates_need_not_be_among_the_related_pods() {
        let a = pod("a", "n1", "Running", Some(100), 100);
        let b = pod("b", "n2", "Running", Some(10), 10);
        let chosen = to_delete(&[&a, &b], &[&a], 1, now());
        assert_eq!(
            chosen[0].metadata.name.as_deref(),
            Some("a"),
            "doubled-up rank 1 beats 0"
        );
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        let p = pod("p", "n", "Running", Some(5), 10);
        assert!(is_available(&p, 0, now()));
        assert!(is_available(&p, 4, now()));
        assert!(!is_available(&p, 5, now()));
        assert!(!is_available(&pod("q", "n", "Running", None, 10), 0, now()));
    }

    #[test]
    fn log2_age_buckets() {
        let t = now();
        assert_eq!(log2_age(t, t), -1);
        assert_eq!(log2_age(t - jiff::SignedDuration::from_nanos(1), t), 0);
        assert_eq!(log2_age(t - jiff::SignedDuration::from_nanos(3), t), 1);
        assert_eq!(log2_age(t - jiff::SignedDuration::from_nanos(4), t), 2);
    }
}
