//! One scheduling attempt: filter a sample of the nodes starting at a
//! rotating index, score the feasible ones, pick the best; or explain,
//! in upstream's words, why no node fits.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::filter::{Cycle, Rejection};
use crate::score;
use crate::snapshot::Snapshot;

/// Upstream's `minFeasibleNodesToFind`.
const MIN_FEASIBLE_NODES: usize = 100;
/// Upstream's `minFeasibleNodesPercentageToFind`.
const MIN_PERCENTAGE: usize = 5;

/// The placement algorithm, with the little state it keeps between pods
/// (where the next search starts).
#[derive(Debug, Default, Clone)]
pub struct Scheduler {
    next_start: usize,
    /// `percentageOfNodesToScore`; 0 is upstream's adaptive default.
    percentage_of_nodes_to_score: usize,
}

/// Why a pod could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cluster has no nodes.
    #[error("no nodes available to schedule pods")]
    NoNodes,
    /// No node passed the filters.
    #[error(transparent)]
    Unschedulable(#[from] FitError),
}

impl ScheduleError {
    /// The `PodScheduled` condition's reason: `Unschedulable` for a fit
    /// error, `SchedulerError` otherwise (as upstream).
    pub fn reason(&self) -> &'static str {
        match self {
            ScheduleError::NoNodes => "SchedulerError",
            ScheduleError::Unschedulable(_) => "Unschedulable",
        }
    }
}

/// No node fits the pod: why each node was rejected, and what preemption
/// made of it. `Display` is upstream's message, e.g. `0/3 nodes are
/// available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu.`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub(crate) num_all_nodes: usize,
    /// Rejections by node index.
    pub(crate) statuses: Vec<(usize, Rejection)>,
    /// The PostFilter (preemption) message, when preemption failed.
    pub(crate) post_filter: Option<String>,
}

impl FitError {
    /// Upstream's histogram of reasons, `"<count> <reason>"` sorted as
    /// strings; `absent` is the reason for nodes without a status.
    pub(crate) fn histogram(
        num_all_nodes: usize,
        statuses: &[(usize, Rejection)],
        absent: Option<&str>,
    ) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, r) in statuses {
            for reason in &r.reasons {
                *counts.entry(reason).or_default() += 1;
            }
        }
        if let Some(absent) = absent
            && statuses.len() < num_all_nodes
        {
            *counts.entry(absent).or_default() += num_all_nodes - statuses.len();
        }
        let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.sort();
        let mut msg = format!("0/{num_all_nodes} nodes are available:");
        if !parts.is_empty() {
            msg.push_str(&format!(" {}.", parts.join(", ")));
        }
        msg
    }
}

impl FitError {
    /// Whether a node failed on inter-pod affinity or topology spread, so
    /// that placing another pod may make this one schedulable.
    pub(crate) fn waits_for_pods(&self) -> bool {
        self.statuses.iter().flat_map(|(_, r)| &r.reasons).any(|r| {
            r.starts_with("node(s) didn't match pod topology spread")
                || r.contains("affinity rules")
        })
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&FitError::histogram(
            self.num_all_nodes,
            &self.statuses,
            None,
        ))?;
        if let Some(post) = &self.post_filter {
            write!(f, " {post}.")?;
        }
        Ok(())
    }
}

impl std::error::Error for FitError {}

impl Scheduler {
    /// A scheduler with upstream's defaults.
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// Sets `percentageOfNodesToScore` (0 = adaptive, 100 = every node).
    pub fn with_percentage_of_nodes_to_score(mut self, percentage: usize) -> Scheduler {
        self.percentage_of_nodes_to_score = percentage.min(100);
        self
    }

    /// Picks a node for `pod`, or says why none fits. Does not change the
    /// snapshot: the caller assumes the pod onto the node.
    pub fn schedule(&mut self, snapshot: &Snapshot, pod: &Pod) -> Result<String, ScheduleError> {
        self.schedule_arc(snapshot, Arc::new(pod.clone()))
    }

    pub(crate) fn schedule_arc(
        &mut self,
        snapshot: &Snapshot,
        pod: Arc<Pod>,
    ) -> Result<String, ScheduleError> {
        let nodes = snapshot.nodes();
        if nodes.is_empty() {
            return Err(ScheduleError::NoNodes);
        }
        let cycle = Cycle::new(snapshot, pod);
        let want = self.num_feasible_nodes_to_find(nodes.len());
        let mut feasible = Vec::with_capacity(want.min(nodes.len()));
        let mut statuses = Vec::new();
        let mut processed = 0;
        // A pod nominated to a node (after preemption) tries it first.
        if let Some(i) = cycle
            .pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .and_then(|n| snapshot.index_of(n))
            && cycle.filter(&nodes[i]).is_ok()
        {
            return Ok(nodes[i].name.clone());
        }
        while processed < nodes.len() && feasible.len() < want {
            let i = (self.next_start + processed) % nodes.len();
            processed += 1;
            match cycle.filter(&nodes[i]) {
                Ok(()) => feasible.push(i),
                Err(r) => statuses.push((i, r)),
            }
        }
        self.next_start = (self.next_start + processed) % nodes.len();
        match feasible.as_slice() {
            [] => Err(FitError {
                num_all_nodes: nodes.len(),
                statuses,
                post_filter: None,
            }
            .into()),
            [one] => Ok(nodes[*one].name.clone()),
            _ => {
                let scores = score::score(&cycle, &feasible);
                Ok(nodes[feasible[select(&scores)]].name.clone())
            }
        }
    }

    /// Upstream's `numFeasibleNodesToFind`.
    fn num_feasible_nodes_to_find(&self, all: usize) -> usize {
        if all < MIN_FEASIBLE_NODES {
            return all;
        }
        let mut percentage = self.percentage_of_nodes_to_score;
        if percentage == 0 {
            percentage = 50usize.saturating_sub(all / 125).max(MIN_PERCENTAGE);
        }
        (all * percentage / 100).max(MIN_FEASIBLE_NODES)
    }
}

/// The index of a highest score, chosen uniformly at random among equal
/// ones (upstream's `selectHost`, by reservoir sampling), so that pods
/// that score nodes alike spread over them instead of piling onto the
/// first in search order.
fn select(scores: &[i64]) -> usize {
    let mut best = 0;
    let mut ties = 1u32;
    for (k, score) in scores.iter().enumerate().skip(1) {
        if *score > scores[best] {
            best = k;
            ties = 1;
        } else if *score == scores[best] {
            ties += 1;
            if rand::random_range(0..ties) == 0 {
                best = k;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::Scheduler;

    #[test]
    fn nodes_to_find_follows_upstream() {
        let s = Scheduler::new();
        let cases = [
            (10, 10),
            (99, 99),
            (100, 100),
            (200, 100),
            (1_000, 420),
            (5_000, 500),
            (6_000, 300),
            (20_000, 1_000),
        ];
        for (all, want) in cases {
            assert_eq!(s.num_feasible_nodes_to_find(all), want, "{all} nodes");
        }
        let all = Scheduler::new().with_percentage_of_nodes_to_score(100);
        assert_eq!(all.num_feasible_nodes_to_find(5_000), 5_000);
    }
}
