//! Preemption (upstream's DefaultPreemption PostFilter): find a node where
//! evicting lower-priority pods lets the pod fit, with the fewest and least
//! important victims.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::filter::{Cycle, Rejection};
use crate::schedule::{FitError, Scheduler};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Where the pod will go once the victims are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preemption {
    /// The node to nominate (`status.nominatedNodeName`).
    pub node: String,
    /// The pods to delete, as (namespace, name).
    pub victims: Vec<(String, String)>,
}

struct Candidate {
    node: usize,
    victims: Vec<PodInfo>,
}

impl Scheduler {
    /// Tries preemption for a pod that did not fit. On failure, records
    /// upstream's `preemption: …` message in `error`, which then shows in
    /// its `Display`.
    pub fn preempt(
        &self,
        snapshot: &Snapshot,
        pod: &Pod,
        error: &mut FitError,
    ) -> Option<Preemption> {
        let cycle = Cycle::new(snapshot, Arc::new(pod.clone()));
        match find(&cycle, error) {
            Ok(p) => Some(p),
            Err(msg) => {
                error.post_filter = Some(format!("preemption: {msg}"));
                None
            }
        }
    }
}

fn find(cycle: &Cycle<'_>, error: &FitError) -> Result<Preemption, String> {
    let spec = cycle.spec();
    if spec.preemption_policy.as_deref() == Some("Never") {
        return Err("not eligible due to preemptionPolicy=Never.".into());
    }
    let nodes = cycle.snapshot.nodes();
    let priority = cycle.pod.priority;
    // While earlier victims on the nominated node are still terminating,
    // wait for them rather than preempting more.
    let nominated = cycle
        .pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .and_then(|n| cycle.snapshot.index_of(n));
    if let Some(i) = nominated
        && nodes[i]
            .pods
            .iter()
            .any(|p| p.priority < priority && p.terminating())
    {
        return Err("not eligible due to a terminating pod on the nominated node.".into());
    }
    let potential: Vec<usize> = error
        .statuses
        .iter()
        .filter(|(_, r)| !r.unresolvable)
        .map(|(i, _)| *i)
        .collect();
    let mut statuses: Vec<(usize, Rejection)> = Vec::new();
    let mut candidates = Vec::new();
    for &i in &potential {
        // The error's node indices are the snapshot's at scheduling time;
        // a caller that changed the snapshot since gets fewer candidates,
        // not a panic.
        let Some(node) = nodes.get(i) else { continue };
        match victims_on(cycle, node) {
            Ok(victims) => candidates.push(Candidate { node: i, victims }),
            Err(r) => statuses.push((i, r)),
        }
    }
    if candidates.is_empty() {
        return Err(FitError::histogram(
            nodes.len(),
            &statuses,
            Some(NOT_HELPFUL),
        ));
    }
    let best = pick(candidates);
    Ok(Preemption {
        node: nodes[best.node].name.clone(),
        victims: best
            .victims
            .iter()
            .map(|p| {
                (
                    p.namespace().to_owned(),
                    p.pod.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect(),
    })
}

/// Upstream's `SelectVictimsOnNode`: remove every lower-priority pod; if
/// the pod then fits, add them back most important first while it still
/// fits; the rest are the victims.
fn victims_on(cycle: &Cycle<'_>, node: &NodeInfo) -> Result<Vec<PodInfo>, Rejection> {
    let mut node = node.clone();
    let mut interpod = cycle.interpod.clone();
    let mut spread = cycle.spread.clone();
    let lower: Vec<String> = node
        .pods
        .iter()
        .filter(|p| p.priority < cycle.pod.priority)
        .map(|p| p.key.clone())
        .collect();
    if lower.is_empty() {
        return Err(Rejection::new(NO_VICTIMS, true));
    }
    let mut removed = Vec::new();
    for key in &lower {
        if let Some(p) = node.remove_pod(key) {
            if let Some(s) = interpod.as_mut() {
                s.update(&cycle.pod, &p, &node, cycle.snapshot, -1);
            }
            if let Some(s) = spread.as_mut() {
                s.update(&cycle.pod, &p, &node, -1);
            }
            removed.push(p);
        }
    }
    cycle.filter_with(&node, interpod.as_ref(), spread.as_ref())?;
    // Most important first: higher priority, then earlier start.
    removed.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| start_time(a).cmp(&start_time(b)))
    });
    let mut victims = Vec::new();
    for p in removed {
        let key = p.key.clone();
        if let Some(s) = interpod.as_mut() {
            s.update(&cycle.pod, &p, &node, cycle.snapshot, 1);
        }
        if let Some(s) = spread.as_mut() {
            s.update(&cycle.pod, &p, &node, 1);
        }
        node.add_pod(p);
        if cycle
            .filter_with(&node, interpod.as_ref(), spread.as_ref())
            .is_err()
        {
            let p = node.remove_pod(&key).expect("the pod was just added");
            if let Some(s) = interpod.as_mut() {
                s.update(&cycle.pod, &p, &node, cycle.snapshot, -1);
            }
            if let Some(s) = spread.as_mut() {
                s.update(&cycle.pod, &p, &node, -1);
            }
            victims.push(p);
        }
    }
    Ok(victims)
}

/// Start time as a sortable key; pods not started sort last.
fn start_time(p: &PodInfo) -> (bool, Option<jiff::Timestamp>) {
    let t = p
        .pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0);
    (t.is_none(), t)
}

/// Upstream's `pickOneNodeForPreemption`, without disruption budgets: the
/// lowest highest-victim priority, then the lowest sum of priorities, then
/// the fewest victims, then the first.
fn pick(mut candidates: Vec<Candidate>) -> Candidate {
    let key = |c: &Candidate| {
        let highest = c
            .victims
            .iter()
            .map(|p| p.priority)
            .max()
            .unwrap_or(i32::MIN);
        // Shifted so that negative priorities still add up as costs.
        let sum: i64 = c
            .victims
            .iter()
            .map(|p| i64::from(p.priority) + i64::from(i32::MAX) + 1)
            .sum();
        (highest, sum, c.victims.len())
    };
    let mut best = 0;
    for i in 1..candidates.len() {
        if key(&candidates[i]) < key(&candidates[best]) {
            best = i;
        }
    }
    candidates.swap_remove(best)
}
