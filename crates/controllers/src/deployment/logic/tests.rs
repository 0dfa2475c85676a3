//! Tables of cases for the Deployment arithmetic.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use serde_json::json;

use super::*;

/// A Deployment with `replicas` and a RollingUpdate of `surge`/`unavailable`
/// (JSON: ints or percent strings).
pub(in crate::deployment) fn deployment(
    replicas: i32,
    surge: serde_json::Value,
    unavailable: serde_json::Value,
) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 2,
        },
    }))
    .unwrap()
}

/// A ReplicaSet `name` created `age` seconds before a fixed instant, with
/// spec replicas and available replicas.
pub(in crate::deployment) fn rs(name: &str, age: i64, replicas: i32, available: i32) -> ReplicaSet {
    let created: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let created = created - jiff::SignedDuration::from_secs(age);
    serde_json::from_value(json!({
        "metadata": {"name": name, "creationTimestamp": created.to_string(), "annotations": {}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available},
    }))
    .unwrap()
}

#[test]
fn hash_is_stable_and_safe_encoded() {
    let d = deployment(3, json!("25%"), json!("25%"));
    let template = d.spec.clone().unwrap().template;
    let hash = template_hash(&template, None);
    assert_eq!(hash, template_hash(&template, None), "stable");
    assert!(
        hash.chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{hash}"
    );
    assert_ne!(
        hash,
        template_hash(&template, Some(1)),
        "collisions change it"
    );
    // FNV-32a's published vectors, and upstream's encoding of a number.
    assert_eq!(fnv32a(b""), 0x811c_9dc5);
    assert_eq!(fnv32a(b"a"), 0xe40c_292c);
    // '0' is byte 48, 48 % 27 = 21: the 22nd character.
    assert_eq!(safe_encode("0123456789"), "456789bcdf");
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let cases = [
        // (replicas, surge, unavailable, expected)
        (10, json!("25%"), json!("25%"), (3, 2)),
        (4, json!("25%"), json!("25%"), (1, 1)),
        (1, json!("25%"), json!("25%"), (1, 0)),
        (3, json!(1), json!(0), (1, 0)),
        (3, json!(0), json!(0), (0, 1)),
        (3, json!("0%"), json!("10%"), (0, 1)),
        (5, json!("50%"), json!("50%"), (3, 2)),
    ];
    for (replicas, surge, unavailable, expected) in cases {
        let d = deployment(replicas, surge.clone(), unavailable.clone());
        assert_eq!(fenceposts(&d), expected, "{replicas} {surge} {unavailable}");
    }
    // maxUnavailable never exceeds the replicas.
    assert_eq!(max_unavailable(&deployment(2, json!(1), json!(5))), 2);
}

#[test]
fn the_new_replica_set_grows_within_the_surge() {
    let cases = [
        // (replicas, surge, old sizes, new size, expected new size)
        (3, json!(1), vec![3], 0, 1),
        (3, json!(1), vec![3], 1, 1), // at 4 pods already
        (3, json!(1), vec![2], 1, 2),
        (3, json!(2), vec![3], 0, 2),
        (3, json!(10), vec![3], 0, 3), // never beyond the desired count
        (3, json!(0), vec![2], 0, 1),
    ];
    for (replicas, surge, olds, new, expected) in cases {
        let d = deployment(replicas, surge.clone(), json!(1));
        let olds: Vec<ReplicaSet> = olds
            .iter()
            .enumerate()
            .map(|(i, n)| rs(&format!("old{i}"), 100, *n, *n))
            .collect();
        let new_rs = rs("new", 1, new, new);
        let all: Vec<&ReplicaSet> = olds.iter().chain([&new_rs]).collect();
        assert_eq!(
            new_rs_target(&d, &all, &new_rs),
            expected,
            "{replicas} {surge} {olds:?}"
        );
    }
}

#[test]
fn old_replica_sets_shrink_within_the_availability_budget() {
    let cases = [
        // (replicas, unavailable, olds (age, size, available), new (size, available), expected)
        // maxUnavailable 0: only as many as the new RS made available.
        (3, json!(0), vec![(100, 3, 3)], (1, 0), vec![3]),
        (3, json!(0), vec![(100, 3, 3)], (1, 1), vec![2]),
        // maxUnavailable 1 lets one go before any new pod is ready.
        (3, json!(1), vec![(100, 3, 3)], (1, 0), vec![2]),
        // Unhealthy old pods go first, oldest RS first.
        (
            3,
            json!(0),
            vec![(200, 2, 0), (100, 2, 2)],
            (1, 1),
            vec![0, 2],
        ),
        (
            4,
            json!(1),
            vec![(200, 2, 2), (100, 2, 2)],
            (1, 1),
            vec![0, 2],
        ),
        // Nothing old left.
        (3, json!(1), vec![(100, 0, 0)], (3, 3), vec![0]),
    ];
    for (replicas, unavailable, olds, (new_size, new_available), expected) in cases {
        let d = deployment(replicas, json!(1), unavailable.clone());
        let olds: Vec<ReplicaSet> = olds
            .iter()
            .enumerate()
            .map(|(i, (age, n, a))| rs(&format!("old{i}"), *age, *n, *a))
            .collect();
        let new_rs = rs("new", 1, new_size, new_available);
        assert_eq!(
            old_targets(&d, &olds, Some(&new_rs)),
            expected,
            "{replicas} {unavailable} {olds:?}"
        );
    }
}

#[test]
fn scaling_events_resize_proportionally() {
    let sized = |name: &str, age: i64, n: i32, max: i32| {
        let mut r = rs(name, age, n, n);
        r.metadata.annotations = Some(BTreeMap::from([
            (DESIRED_REPLICAS.to_owned(), "10".to_owned()),
            (MAX_REPLICAS.to_owned(), max.to_string()),
        ]));
        r
    };
    // One active ReplicaSet takes everything.
    let d = deployment(5, json!(1), json!(0));
    assert_eq!(
        scale_plan(&d, &[sized("a", 10, 10, 11)], Some(0)),
        vec![(0, 5)]
    );
    // Mid-rollout 10 → 20 (surge 3 at 10): old 8 + new 5 of 13 allowed;
    // at 20 with surge 5, 25 allowed: +12 split by max-replicas share.
    let d = deployment(20, json!("25%"), json!(0));
    let all = [sized("old", 10, 8, 13), sized("new", 1, 5, 13)];
    let plan = scale_plan(&d, &all, Some(1));
    let total: i32 = plan.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 25, "{plan:?}");
    assert_eq!(plan, vec![(0, 15), (1, 10)]);
}

#[test]
fn revision_annotations_follow_upstream() {
    let mut d = deployment(3, json!(1), json!(0));
    d.metadata.annotations = Some(BTreeMap::from([
        (
            "kubernetes.io/change-cause".to_owned(),
            "set image".to_owned(),
        ),
        (REVISION.to_owned(), "4".to_owned()),
    ]));
    let mut new_rs = rs("new", 1, 0, 0);
    assert!(set_new_rs_annotations(&d, &mut new_rs, 5, false));
    let a = new_rs.metadata.annotations.clone().unwrap();
    assert_eq!(a.get(REVISION).map(String::as_str), Some("5"));
    assert_eq!(
        a.get("kubernetes.io/change-cause").map(String::as_str),
        Some("set image")
    );
    assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("3"));
    assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("4"));
    assert!(
        !set_new_rs_annotations(&d, &mut new_rs, 5, true),
        "nothing to change"
    );
    // Rolled back to: the old revision is remembered.
    assert!(set_new_rs_annotations(&d, &mut new_rs, 7, true));
    let a = new_rs.metadata.annotations.clone().unwrap();
    assert_eq!(a.get(REVISION).map(String::as_str), Some("7"));
    assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("5"));
}

#[test]
fn history_beyond_the_limit_is_pruned_lowest_revision_first() {
    let d = deployment(3, json!(1), json!(0));
    let old = |name: &str, revision: i64, replicas: i32| {
        let mut r = rs(name, 100 - revision, replicas, replicas);
        r.metadata.annotations = Some(BTreeMap::from([(
            REVISION.to_owned(),
            revision.to_string(),
        )]));
        r
    };
    let olds = [
        old("r3", 3, 0),
        old("r1", 1, 0),
        old("r2", 2, 1),
        old("r4", 4, 0),
    ];
    // Limit 2 of 4: the two lowest revisions, but r2 still has a replica.
    assert_eq!(cleanup_victims(&d, &olds), vec![1]);
}
