//! The Deployment controller's decisions, without IO (upstream's
//! `deployment/util` and the arithmetic of `rolling.go` and `sync.go`):
//! template hashes, surge and unavailability budgets, which ReplicaSet to
//! scale to what, revisions and their annotations. Status and conditions
//! are in `progress.rs`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The revision of a ReplicaSet (and the Deployment's latest).
pub(crate) const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a rolled-back-to ReplicaSet had.
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub(crate) const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Replicas plus surge when the ReplicaSet was last scaled.
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label (and selector term) that tells ReplicaSets of one Deployment apart.
pub(crate) const HASH_LABEL: &str = "pod-template-hash";
/// Longest `revision-history` annotation (upstream's default).
const MAX_REVISION_HISTORY_CHARS: usize = 2000;
/// Deployment annotations never copied onto its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// The pod-template-hash of a template: FNV-32a over its canonical JSON
/// (upstream hashes Go's printed struct, which we cannot reproduce; JSON
/// of the same defaulted object is as stable across restarts) and the
/// collision count as upstream appends it, rendered in upstream's
/// safe-encoding alphabet.
pub(crate) fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(template).expect("a PodTemplateSpec serializes");
    if let Some(count) = collision_count {
        let mut extra = [0u8; 8];
        extra[..4].copy_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(&extra);
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Upstream's `rand.SafeEncodeString`: each byte picks a character of an
/// alphabet without vowels or look-alikes.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// `spec.replicas` (defaulted to 1).
pub(crate) fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's `spec.replicas`.
pub(crate) fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub(crate) fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub(crate) fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub(crate) fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn created(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Older first; ties by name (upstream's `ReplicaSetsByCreationTimestamp`).
pub(crate) fn by_age(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The strategy is RollingUpdate (the default).
pub(crate) fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// An int, or a percent of `total` rounded up or down
/// (`GetScaledValueFromIntOrPercent`); a malformed percent counts as 0.
pub(crate) fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let scaled = percent * i64::from(total);
            let value = if round_up {
                scaled.div_euclid(100) + i64::from(scaled.rem_euclid(100) != 0)
            } else {
                scaled.div_euclid(100)
            };
            i32::try_from(value).unwrap_or(i32::MAX)
        }
    }
}

/// `(maxSurge, maxUnavailable)` resolved against the desired replicas;
/// never both zero (`ResolveFenceposts`).
pub(crate) fn fenceposts(d: &Deployment) -> (i32, i32) {
    let default = IntOrString::String("25%".into());
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = rolling
        .and_then(|r| r.max_surge.as_ref())
        .unwrap_or(&default);
    let unavailable = rolling
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&default);
    let desired = replicas(d);
    let surge = scaled_value(surge, desired, true);
    let unavailable = scaled_value(unavailable, desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// How many pods above the desired count a rollout may run.
pub(crate) fn max_surge(d: &Deployment) -> i32 {
    if is_rolling(d) { fenceposts(d).0 } else { 0 }
}

/// How many desired pods may be unavailable during a rollout.
pub(crate) fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// A ReplicaSet's revision (0 when absent or malformed).
pub(crate) fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Templates equal but for the pod-template-hash label (`EqualIgnoreHash`).
pub(crate) fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(HASH_LABEL);
        }
        t
    };
    strip(a) == strip(b)
}

/// The index of the oldest ReplicaSet running the Deployment's template.
pub(crate) fn find_new(d: &Deployment, sets: &[ReplicaSet]) -> Option<usize> {
    let template = d.spec.as_ref().map(|s| &s.template)?;
    let mut candidates: Vec<usize> = (0..sets.len())
        .filter(|i| {
            sets[*i]
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, template))
        })
        .collect();
    candidates.sort_by(|a, b| by_age(&sets[*a], &sets[*b]));
    candidates.first().copied()
}

/// The size the new ReplicaSet may grow to now (`NewRSNewReplicas`).
pub(crate) fn new_rs_target(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
    if !is_rolling(d) {
        return replicas(d);
    }
    let current: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let max_total = replicas(d) + max_surge(d);
    if current >= max_total {
        return rs_replicas(new);
    }
    let up = (max_total - current).min(replicas(d) - rs_replicas(new));
    rs_replicas(new) + up.max(0)
}

/// The sizes the old ReplicaSets may shrink to now, in the order given
/// (`reconcileOldReplicaSets`: first unhealthy replicas, then as far as
/// the availability budget allows, oldest first).
pub(crate) fn old_targets(
    d: &Deployment,
    olds: &[ReplicaSet],
    new: Option<&ReplicaSet>,
) -> Vec<i32> {
    let mut targets: Vec<i32> = olds.iter().map(rs_replicas).collect();
    let old_pods: i32 = targets.iter().sum();
    if old_pods == 0 {
        return targets;
    }
    let new_replicas = new.map_or(0, rs_replicas);
    let all_pods = old_pods + new_replicas;
    let min_available = replicas(d) - max_unavailable(d);
    let new_unavailable = new.map_or(0, |n| rs_replicas(n) - rs_available(n));
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return targets;
    }
    let mut order: Vec<usize> = (0..olds.len()).collect();
    order.sort_by(|a, b| by_age(&olds[*a], &olds[*b]));
    let mut cleaned = 0;
    for &i in &order {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = targets[i] - rs_available(&olds[i]);
        if targets[i] == 0 || unhealthy <= 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        targets[i] -= down;
        cleaned += down;
    }
    let available: i32 = olds.iter().map(rs_available).sum::<i32>() + new.map_or(0, rs_available);
    if available <= min_available {
        return targets;
    }
    let budget = available - min_available;
    let mut scaled = 0;
    for &i in &order {
        if scaled >= budget {
            break;
        }
        if targets[i] == 0 {
            continue;
        }
        let down = targets[i].min(budget - scaled);
        targets[i] -= down;
        scaled += down;
    }
    targets
}

/// What a scaling event (or a paused Deployment's resize) does to each
/// ReplicaSet of `all` (`scale`): `(index, size)` for those to write.
pub(crate) fn scale_plan(
    d: &Deployment,
    all: &[ReplicaSet],
    new: Option<usize>,
) -> Vec<(usize, i32)> {
    let want = replicas(d);
    let active: Vec<usize> = (0..all.len())
        .filter(|i| rs_replicas(&all[*i]) > 0)
        .collect();
    // One active (or none: the newest) takes everything.
    let mut olds: Vec<usize> = (0..all.len()).filter(|i| Some(*i) != new).collect();
    olds.sort_by(|a, b| by_age(&all[*b], &all[*a]));
    let only = match active.len() {
        0 => new.or(olds.first().copied()),
        1 => Some(active[0]),
        _ => None,
    };
    if let Some(i) = only {
        return if rs_replicas(&all[i]) == want {
            vec![]
        } else {
            vec![(i, want)]
        };
    }
    // A saturated new ReplicaSet: the old ones go to zero.
    if let Some(n) = new {
        let rs = &all[n];
        let desired = annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok());
        if rs_replicas(rs) == want && desired == Some(want) && rs_available(rs) == want {
            return active
                .into_iter()
                .filter(|i| *i != n)
                .map(|i| (i, 0))
                .collect();
        }
    }
    if !is_rolling(d) {
        return vec![];
    }
    // Proportionally, largest first.
    let total: i32 = active.iter().map(|i| rs_replicas(&all[*i])).sum();
    let allowed = if want > 0 { want + max_surge(d) } else { 0 };
    let to_add = allowed - total;
    let mut order = active;
    order.sort_by(|a, b| {
        let (ra, rb) = (&all[*a], &all[*b]);
        rs_replicas(rb).cmp(&rs_replicas(ra)).then_with(|| {
            if to_add > 0 {
                by_age(rb, ra)
            } else {
                by_age(ra, rb)
            }
        })
    });
    let mut added = 0;
    let mut sizes: Vec<(usize, i32)> = order
        .iter()
        .map(|&i| {
            let proportion = if to_add == 0 {
                0
            } else {
                proportion(d, &all[i], to_add, added)
            };
            added += proportion;
            (i, rs_replicas(&all[i]) + proportion)
        })
        .collect();
    if let Some(first) = sizes.first_mut().filter(|_| to_add != 0) {
        first.1 = (first.1 + to_add - added).max(0);
    }
    sizes
}

/// `GetProportion`: this ReplicaSet's share of `to_add`, given `added` so far.
fn proportion(d: &Deployment, rs: &ReplicaSet, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == added {
        return 0;
    }
    let fraction = if replicas(d) == 0 {
        -rs_replicas(rs)
    } else {
        let deployment_max = replicas(d) + max_surge(d);
        let annotated = annotation(rs, MAX_REPLICAS)
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or_else(|| d.status.as_ref().map_or(0, |s| s.replicas.unwrap_or(0)));
        if annotated == 0 {
            0
        } else {
            let size =
                f64::from(rs_replicas(rs)) * f64::from(deployment_max) / f64::from(annotated);
            size.round() as i32 - rs_replicas(rs)
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// Whether a ReplicaSet's size annotations disagree with the Deployment.
pub(crate) fn replicas_annotations_stale(d: &Deployment, rs: &ReplicaSet) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(&replicas(d).to_string())
        || annotation(rs, MAX_REPLICAS) != Some(&(replicas(d) + max_surge(d)).to_string())
}

/// Sets the size annotations; whether anything changed.
pub(crate) fn set_replicas_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let stale = replicas_annotations_stale(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(DESIRED_REPLICAS.into(), replicas(d).to_string());
    annotations.insert(
        MAX_REPLICAS.into(),
        (replicas(d) + max_surge(d)).to_string(),
    );
    stale
}

/// Upstream's `SetNewReplicaSetAnnotations`: the Deployment's annotations,
/// the new revision (remembering an older one in `revision-history`) and,
/// for a ReplicaSet about to be created, the size annotations.
pub(crate) fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = annotations.get(REVISION).cloned();
    let old_number: i64 = match old.as_deref().map(str::parse) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return changed,
    };
    if old_number < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            let mut revisions: Vec<&str> = history.split(',').filter(|r| !r.is_empty()).collect();
            let mut length = history.len() + old.len() + 1;
            while length > MAX_REVISION_HISTORY_CHARS && !revisions.is_empty() {
                length -= revisions.remove(0).len() + 1;
            }
            revisions.push(&old);
            annotations.insert(REVISION_HISTORY.into(), revisions.join(","));
        }
    }
    if !exists {
        set_replicas_annotations(d, rs);
        changed = true;
    }
    changed
}

/// The largest revision among `sets`.
pub(crate) fn max_revision(sets: &[ReplicaSet]) -> i64 {
    sets.iter().map(revision).max().unwrap_or(0)
}

/// Whether any active ReplicaSet was sized for a different replica count
/// (`isScalingEvent`).
pub(crate) fn is_scaling_event(d: &Deployment, sets: &[ReplicaSet]) -> bool {
    sets.iter().filter(|rs| rs_replicas(rs) > 0).any(|rs| {
        annotation(rs, DESIRED_REPLICAS)
            .and_then(|v| v.parse::<i32>().ok())
            .is_some_and(|desired| desired != replicas(d))
    })
}

/// The old ReplicaSets beyond `revisionHistoryLimit` that may go: the
/// lowest revisions, scaled to zero and settled (`cleanupDeployment`).
pub(crate) fn cleanup_victims(d: &Deployment, olds: &[ReplicaSet]) -> Vec<usize> {
    let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
        return vec![];
    };
    let mut alive: Vec<usize> = (0..olds.len())
        .filter(|i| olds[*i].metadata.deletion_timestamp.is_none())
        .collect();
    let excess = alive
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    alive.sort_by(|a, b| {
        revision(&olds[*a])
            .cmp(&revision(&olds[*b]))
            .then_with(|| by_age(&olds[*a], &olds[*b]))
    });
    alive
        .into_iter()
        .take(excess)
        .filter(|i| {
            let rs = &olds[*i];
            rs_status_replicas(rs) == 0
                && rs_replicas(rs) == 0
                && rs.metadata.generation <= rs.status.as_ref().and_then(|s| s.observed_generation)
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests;
