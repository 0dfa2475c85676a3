//! PodTopologySpread: `DoNotSchedule` constraints filter, `ScheduleAnyway`
//! constraints score, as upstream's `podtopologyspread` plugin does
//! (without the cluster-level default constraints).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

use crate::selectors::Selector;
use crate::snapshot::{NodeInfo, PodInfo};

pub(crate) const CONSTRAINTS_MISMATCH: &str =
    "node(s) didn't match pod topology spread constraints";
pub(crate) const MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const HOSTNAME: &str = "kubernetes.io/hostname";

type Pair = (String, String);

/// One parsed `TopologySpreadConstraint`.
#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: Selector,
    min_domains: i64,
    /// `nodeAffinityPolicy: Honor` (the default).
    pub(crate) honor_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default Ignore).
    pub(crate) honor_taints: bool,
}

/// The pod's constraints whose `whenUnsatisfiable` is `when`.
pub(crate) fn constraints(pod: &Pod, when: &str) -> Vec<Constraint> {
    let empty = Default::default();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    pod.spec
        .iter()
        .flat_map(|s| s.topology_spread_constraints.iter().flatten())
        .filter(|c| c.when_unsatisfiable == when)
        .map(|c| Constraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            selector: Selector::new(c.label_selector.as_ref()).with_label_keys(
                labels,
                c.match_label_keys.as_deref().unwrap_or_default(),
                &[],
            ),
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        })
        .collect()
}

fn has_all_keys(node: &NodeInfo, cs: &[Constraint]) -> bool {
    cs.iter()
        .all(|c| node.labels().contains_key(&c.topology_key))
}

fn count_matching(node: &NodeInfo, c: &Constraint, namespace: &str) -> i64 {
    node.pods
        .iter()
        .filter(|p| {
            !p.terminating() && p.namespace() == namespace && c.selector.matches(p.labels())
        })
        .count() as i64
}

/// Whether the node takes part in a constraint's counting
/// (`matchNodeInclusionPolicies`): `passes_affinity` and
/// `passes_taints` are the pod's node affinity and taint checks.
fn included(c: &Constraint, passes_affinity: bool, passes_taints: bool) -> bool {
    (!c.honor_affinity || passes_affinity) && (!c.honor_taints || passes_taints)
}

/// Match counts for the `DoNotSchedule` constraints (PreFilter).
#[derive(Debug, Clone)]
pub(crate) struct FilterState {
    constraints: Vec<Constraint>,
    counts: HashMap<Pair, i64>,
}

impl FilterState {
    /// `eligible(node)` → (passes node affinity, tolerates taints).
    pub(crate) fn new(
        pod: &PodInfo,
        constraints: Vec<Constraint>,
        nodes: &[NodeInfo],
        eligible: impl Fn(&NodeInfo) -> (bool, bool),
    ) -> Option<FilterState> {
        if constraints.is_empty() {
            return None;
        }
        let mut counts = HashMap::new();
        for node in nodes {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            let (aff, taints) = eligible(node);
            for c in &constraints {
                if !included(c, aff, taints) {
                    continue;
                }
                let pair = (
                    c.topology_key.clone(),
                    node.labels()[&c.topology_key].clone(),
                );
                *counts.entry(pair).or_default() += count_matching(node, c, pod.namespace());
            }
        }
        Some(FilterState {
            constraints,
            counts,
        })
    }

    /// Adjusts the counts for a pod leaving (`by` = -1) or joining a node.
    pub(crate) fn update(&mut self, pod: &PodInfo, existing: &PodInfo, node: &NodeInfo, by: i64) {
        if !has_all_keys(node, &self.constraints) || existing.namespace() != pod.namespace() {
            return;
        }
        for c in &self.constraints {
            if c.selector.matches(existing.labels()) {
                let pair = (
                    c.topology_key.clone(),
                    node.labels()[&c.topology_key].clone(),
                );
                if let Some(n) = self.counts.get_mut(&pair) {
                    *n += by;
                }
            }
        }
    }

    /// The filter: `Err(reason, unresolvable)` when the node is rejected.
    pub(crate) fn check(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), (&'static str, bool)> {
        for c in &self.constraints {
            let Some(value) = node.labels().get(&c.topology_key) else {
                return Err((MISSING_LABEL, true));
            };
            let mut domains = 0;
            let mut min: Option<i64> = None;
            for ((k, _), n) in &self.counts {
                if *k == c.topology_key {
                    domains += 1;
                    min = Some(min.map_or(*n, |m| m.min(*n)));
                }
            }
            let Some(mut min) = min else { continue };
            if domains < c.min_domains {
                min = 0;
            }
            let own = i64::from(c.selector.matches(pod.labels()));
            let have = self
                .counts
                .get(&(c.topology_key.clone(), value.clone()))
                .copied()
                .unwrap_or(0);
            if have + own - min > c.max_skew {
                return Err((CONSTRAINTS_MISMATCH, false));
            }
        }
        Ok(())
    }
}

/// Scoring state for the `ScheduleAnyway` constraints (PreScore).
#[derive(Debug)]
pub(crate) struct ScoreState {
    constraints: Vec<Constraint>,
    counts: HashMap<Pair, i64>,
    weights: Vec<f64>,
    /// The pod's own constraints need every topology key on a node; the
    /// cluster defaults score what a node has.
    require_all: bool,
}

/// Upstream's default constraints (`systemDefaulted`): hostname with skew
/// 3 and zone with skew 5, both `ScheduleAnyway`, over the selector of the
/// pod's Services and controller.
pub(crate) fn default_constraints(selector: Selector) -> Vec<Constraint> {
    [(HOSTNAME, 3), ("topology.kubernetes.io/zone", 5)]
        .into_iter()
        .map(|(key, skew)| Constraint {
            max_skew: skew,
            topology_key: key.to_owned(),
            selector: selector.clone(),
            min_domains: 1,
            honor_affinity: true,
            honor_taints: false,
        })
        .collect()
}

/// The value of `key` on the node; with `require_all` off a missing label
/// counts as the empty value, as upstream's map lookup does.
fn value<'n>(node: &'n NodeInfo, key: &str) -> &'n str {
    node.labels().get(key).map_or("", String::as_str)
}

impl ScoreState {
    /// `feasible` are the nodes that passed the filters; `all` every node.
    pub(crate) fn new<'a>(
        pod: &PodInfo,
        constraints: Vec<Constraint>,
        require_all: bool,
        feasible: impl Iterator<Item = &'a NodeInfo>,
        all: &[NodeInfo],
        eligible: impl Fn(&NodeInfo) -> (bool, bool),
    ) -> Option<ScoreState> {
        if constraints.is_empty() {
            return None;
        }
        let mut counts: HashMap<Pair, i64> = HashMap::new();
        let mut sizes = vec![0usize; constraints.len()];
        let mut hosts = 0usize;
        for node in feasible {
            if require_all && !has_all_keys(node, &constraints) {
                continue;
            }
            hosts += 1;
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == HOSTNAME {
                    continue;
                }
                let pair = (
                    c.topology_key.clone(),
                    value(node, &c.topology_key).to_owned(),
                );
                if let std::collections::hash_map::Entry::Vacant(e) = counts.entry(pair) {
                    e.insert(0);
                    sizes[i] += 1;
                }
            }
        }
        let weights = constraints
            .iter()
            .zip(&sizes)
            .map(|(c, size)| {
                let size = if c.topology_key == HOSTNAME {
                    hosts
                } else {
                    *size
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        for node in all {
            if require_all && !has_all_keys(node, &constraints) {
                continue;
            }
            let (aff, taints) = eligible(node);
            for c in &constraints {
                if c.topology_key == HOSTNAME || !included(c, aff, taints) {
                    continue;
                }
                let pair = (
                    c.topology_key.clone(),
                    value(node, &c.topology_key).to_owned(),
                );
                if let Some(n) = counts.get_mut(&pair) {
                    *n += count_matching(node, c, pod.namespace());
                }
            }
        }
        Some(ScoreState {
            constraints,
            counts,
            weights,
            require_all,
        })
    }

    /// The raw score, `None` for a node lacking a topology key (ignored).
    pub(crate) fn score(&self, pod: &PodInfo, node: &NodeInfo) -> Option<i64> {
        if self.require_all && !has_all_keys(node, &self.constraints) {
            return None;
        }
        let mut score = 0.0;
        for (c, w) in self.constraints.iter().zip(&self.weights) {
            let Some(value) = node.labels().get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == HOSTNAME {
                count_matching(node, c, pod.namespace())
            } else {
                self.counts
                    .get(&(c.topology_key.clone(), value.clone()))
                    .copied()
                    .unwrap_or(0)
            };
            score += count as f64 * w + (c.max_skew - 1) as f64;
        }
        Some(score.round() as i64)
    }
}

/// Upstream's normalisation: fewer matching pods scores higher; ignored
/// nodes score 0.
pub(crate) fn normalize(scores: &mut [Option<i64>]) -> Vec<i64> {
    let valid = scores.iter().flatten();
    let min = valid.clone().copied().min().unwrap_or(0);
    let max = valid.copied().max().unwrap_or(0);
    scores
        .iter()
        .map(|s| match s {
            None => 0,
            Some(_) if max == 0 => 100,
            Some(s) => 100 * (max + min - s) / max,
        })
        .collect()
}
