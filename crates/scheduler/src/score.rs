//! Score plugins with upstream's default weights: TaintToleration 3,
//! NodeAffinity 2, NodeResourcesFit (LeastAllocated) 1, PodTopologySpread
//! 2, InterPodAffinity 2, NodeResourcesBalancedAllocation 1. Each plugin
//! scores 0..=100 after its normalisation.

use crate::filter::Cycle;
use crate::interpod;
use crate::selectors::{node_matches_term, tolerated};
use crate::snapshot::NodeInfo;
use crate::spread;

const MAX_NODE_SCORE: i64 = 100;

/// Total weighted scores of `feasible` (indices into the snapshot), in the
/// same order.
pub(crate) fn score(cycle: &Cycle<'_>, feasible: &[usize]) -> Vec<i64> {
    let nodes = cycle.snapshot.nodes();
    let feasible_nodes = || feasible.iter().map(|&i| &nodes[i]);
    let mut total = vec![0i64; feasible.len()];
    let mut add = |scores: &[i64], weight: i64| {
        for (t, s) in total.iter_mut().zip(scores) {
            *t += s * weight;
        }
    };

    // TaintToleration (weight 3).
    let prefer: Vec<_> = cycle
        .tolerations()
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .cloned()
        .collect();
    let mut taints: Vec<i64> = feasible_nodes()
        .map(|n| {
            n.node
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .map_or(0, |ts| {
                    ts.iter()
                        .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&prefer, t))
                        .count() as i64
                })
        })
        .collect();
    default_normalize(&mut taints, true);
    add(&taints, 3);

    // NodeAffinity (weight 2).
    let preferred = cycle
        .spec()
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
    if let Some(terms) = preferred.filter(|t| !t.is_empty()) {
        let mut scores: Vec<i64> = feasible_nodes()
            .map(|n| {
                terms
                    .iter()
                    .filter(|t| t.weight != 0 && node_matches_term(&n.node, &t.preference))
                    .map(|t| i64::from(t.weight))
                    .sum()
            })
            .collect();
        default_normalize(&mut scores, false);
        add(&scores, 2);
    }

    // NodeResourcesFit, LeastAllocated over cpu and memory (weight 1).
    let fit: Vec<i64> = feasible_nodes()
        .map(|n| least_allocated(cycle, n))
        .collect();
    add(&fit, 1);

    // PodTopologySpread (weight 2): the pod's own soft constraints, or
    // the cluster defaults when it has none at all.
    let own = cycle
        .spec()
        .topology_spread_constraints
        .as_ref()
        .is_some_and(|c| !c.is_empty());
    let (constraints, require_all) = if own {
        (spread::constraints(&cycle.pod.pod, "ScheduleAnyway"), true)
    } else {
        let defaults = cycle
            .snapshot
            .workloads
            .default_selector(&cycle.pod)
            .map(spread::default_constraints)
            .unwrap_or_default();
        (defaults, false)
    };
    if let Some(state) = spread::ScoreState::new(
        &cycle.pod,
        constraints,
        require_all,
        feasible_nodes(),
        nodes,
        |n| cycle.inclusion(n),
    ) {
        let mut raw: Vec<Option<i64>> = feasible_nodes()
            .map(|n| state.score(&cycle.pod, n))
            .collect();
        add(&spread::normalize(&mut raw), 2);
    }

    // InterPodAffinity (weight 2).
    if let Some(state) = interpod::score_state(&cycle.pod, cycle.snapshot) {
        let mut raw: Vec<i64> = feasible_nodes()
            .map(|n| interpod::score(&state, n))
            .collect();
        interpod::normalize(&mut raw);
        add(&raw, 2);
    }

    // ImageLocality (weight 1).
    if cycle.snapshot.has_images() {
        let images: Vec<i64> = feasible_nodes().map(|n| image_locality(cycle, n)).collect();
        add(&images, 1);
    }

    // NodeResourcesBalancedAllocation (weight 1), skipped for pods that
    // request nothing.
    let r = &cycle.pod.requests;
    if r.milli_cpu != 0 || r.memory != 0 {
        let balanced: Vec<i64> = feasible_nodes().map(|n| balanced(cycle, n)).collect();
        add(&balanced, 1);
    }
    total
}

const MB: i64 = 1024 * 1024;
/// Below this, the images on a node do not count (`minThreshold`).
const MIN_IMAGE_THRESHOLD: i64 = 23 * MB;
/// Per container, more than this counts as this (`maxContainerThreshold`).
const MAX_CONTAINER_IMAGE_THRESHOLD: i64 = 1000 * MB;

/// Upstream's ImageLocality: the sizes of the pod's images already on the
/// node, each scaled by the share of nodes that have it.
fn image_locality(cycle: &Cycle<'_>, node: &NodeInfo) -> i64 {
    let spec = cycle.spec();
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    let all = cycle.snapshot.node_count() as f64;
    let mut sum = 0i64;
    let mut count = 0i64;
    for c in containers {
        count += 1;
        let Some(image) = c.image.as_deref() else {
            continue;
        };
        let name = normalized_image(image);
        if let Some(size) = node.images.get(name.as_ref()) {
            let spread = cycle.snapshot.image_node_count(&name) as f64 / all;
            sum += (*size as f64 * spread) as i64;
        }
    }
    let max = MAX_CONTAINER_IMAGE_THRESHOLD * count;
    if max <= MIN_IMAGE_THRESHOLD {
        return 0;
    }
    let sum = sum.clamp(MIN_IMAGE_THRESHOLD, max);
    MAX_NODE_SCORE * (sum - MIN_IMAGE_THRESHOLD) / (max - MIN_IMAGE_THRESHOLD)
}

/// `nginx` → `nginx:latest`; names with a tag (or digest) stay.
fn normalized_image(name: &str) -> std::borrow::Cow<'_, str> {
    // As upstream's `LastIndex` comparison (absent sorts first).
    if name.rfind(':') <= name.rfind('/') {
        format!("{name}:latest").into()
    } else {
        name.into()
    }
}

fn least_allocated(cycle: &Cycle<'_>, node: &NodeInfo) -> i64 {
    let (cpu, mem) = cycle.pod.non_zero;
    let pairs = [
        (node.non_zero_requested.0 + cpu, node.allocatable.milli_cpu),
        (node.non_zero_requested.1 + mem, node.allocatable.memory),
    ];
    let (mut sum, mut weights) = (0, 0);
    for (requested, capacity) in pairs {
        if capacity == 0 {
            continue;
        }
        sum += if requested > capacity {
            0
        } else {
            (capacity - requested) * MAX_NODE_SCORE / capacity
        };
        weights += 1;
    }
    if weights == 0 { 0 } else { sum / weights }
}

fn balanced(cycle: &Cycle<'_>, node: &NodeInfo) -> i64 {
    let r = &cycle.pod.requests;
    let pairs = [
        (
            node.requested.milli_cpu + r.milli_cpu,
            node.allocatable.milli_cpu,
        ),
        (node.requested.memory + r.memory, node.allocatable.memory),
    ];
    let fractions: Vec<f64> = pairs
        .iter()
        .filter(|(_, a)| *a != 0)
        .map(|(q, a)| (*q as f64 / *a as f64).min(1.0))
        .collect();
    let std = match fractions.as_slice() {
        [a, b] => ((a - b) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// Upstream's `DefaultNormalizeScore`.
fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max <= 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}
