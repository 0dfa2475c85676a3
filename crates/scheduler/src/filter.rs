//! One scheduling cycle's view of the incoming pod, and the filter
//! plugins in upstream's order: NodeUnschedulable, NodeName,
//! TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit,
//! PodTopologySpread, InterPodAffinity.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{NodeSelectorTerm, Pod, PodSpec, Taint, Toleration};

use crate::interpod;
use crate::selectors::{node_matches_term, tolerated};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};
use crate::spread;

pub(crate) const UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub(crate) const NODE_NAME_MISMATCH: &str = "node(s) didn't match the requested node name";
pub(crate) const AFFINITY_MISMATCH: &str = "node(s) didn't match Pod's node affinity/selector";
pub(crate) const PORTS_IN_USE: &str = "node(s) didn't have free ports for the requested pod ports";

/// Why a node was rejected: upstream's `Status` with its reasons and code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) reasons: Vec<Cow<'static, str>>,
    /// `UnschedulableAndUnresolvable`: preemption cannot help on this node.
    pub(crate) unresolvable: bool,
}

impl Rejection {
    pub(crate) fn new(reason: impl Into<Cow<'static, str>>, unresolvable: bool) -> Rejection {
        Rejection {
            reasons: vec![reason.into()],
            unresolvable,
        }
    }
}

impl From<(&'static str, bool)> for Rejection {
    fn from((reason, unresolvable): (&'static str, bool)) -> Rejection {
        Rejection::new(reason, unresolvable)
    }
}

/// The incoming pod and the state its PreFilter step computed.
pub(crate) struct Cycle<'a> {
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) pod: PodInfo,
    pub(crate) interpod: Option<interpod::FilterState>,
    pub(crate) spread: Option<spread::FilterState>,
}

static EMPTY_SPEC: std::sync::LazyLock<PodSpec> = std::sync::LazyLock::new(PodSpec::default);

impl<'a> Cycle<'a> {
    /// PreFilter: precomputes what the filters need for this pod.
    pub(crate) fn new(snapshot: &'a Snapshot, pod: Arc<Pod>) -> Cycle<'a> {
        let pod = PodInfo::new(pod);
        let mut cycle = Cycle {
            snapshot,
            interpod: None,
            spread: None,
            pod,
        };
        let constraints = spread::constraints(&cycle.pod.pod, "DoNotSchedule");
        cycle.spread = spread::FilterState::new(&cycle.pod, constraints, snapshot.nodes(), |n| {
            cycle.inclusion(n)
        });
        cycle.interpod = interpod::FilterState::new(&cycle.pod, snapshot);
        cycle
    }

    pub(crate) fn spec(&self) -> &PodSpec {
        self.pod.pod.spec.as_ref().unwrap_or(&EMPTY_SPEC)
    }

    pub(crate) fn tolerations(&self) -> &[Toleration] {
        self.spec().tolerations.as_deref().unwrap_or_default()
    }

    fn required_terms(&self) -> Option<&[NodeSelectorTerm]> {
        let na = self.spec().affinity.as_ref()?.node_affinity.as_ref()?;
        na.required_during_scheduling_ignored_during_execution
            .as_ref()
            .map(|s| s.node_selector_terms.as_slice())
    }

    /// For topology spread's node inclusion policies: (matches the pod's
    /// node affinity and selector, tolerates the node's hard taints).
    pub(crate) fn inclusion(&self, node: &NodeInfo) -> (bool, bool) {
        (
            self.matches_node_affinity(node),
            untolerated_taint(node, self.tolerations()).is_none(),
        )
    }

    /// Runs the filters in order; the first rejection wins. Pods
    /// nominated to the node with at least this pod's priority count as
    /// if they were there (upstream's `RunFilterPluginsWithNominatedPods`).
    pub(crate) fn filter(&self, node: &NodeInfo) -> Result<(), Rejection> {
        let nominated = self.snapshot.nominated_on(&node.name);
        if nominated
            .iter()
            .any(|p| p.key != self.pod.key && p.priority >= self.pod.priority)
        {
            let mut with = node.clone();
            let mut interpod = self.interpod.clone();
            let mut spread = self.spread.clone();
            for p in nominated
                .iter()
                .filter(|p| p.key != self.pod.key && p.priority >= self.pod.priority)
            {
                if let Some(s) = interpod.as_mut() {
                    s.update(&self.pod, p, &with, self.snapshot, 1);
                }
                if let Some(s) = spread.as_mut() {
                    s.update(&self.pod, p, &with, 1);
                }
                with.add_pod(p.clone());
            }
            self.filter_with(&with, interpod.as_ref(), spread.as_ref())?;
        }
        self.filter_with(node, self.interpod.as_ref(), self.spread.as_ref())
    }

    /// As [`Cycle::filter`], with the pod-counting states given (preemption
    /// passes states with its victims removed).
    pub(crate) fn filter_with(
        &self,
        node: &NodeInfo,
        interpod: Option<&interpod::FilterState>,
        spread: Option<&spread::FilterState>,
    ) -> Result<(), Rejection> {
        let spec = self.spec();
        // NodeUnschedulable
        if node.node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            let taint = Taint {
                key: "node.kubernetes.io/unschedulable".into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            };
            if !tolerated(self.tolerations(), &taint) {
                return Err(Rejection::new(UNSCHEDULABLE, true));
            }
        }
        // NodeName
        if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty())
            && name != node.name
        {
            return Err(Rejection::new(NODE_NAME_MISMATCH, true));
        }
        // TaintToleration
        if let Some(taint) = untolerated_taint(node, self.tolerations()) {
            return Err(Rejection::new(
                format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    taint.key,
                    taint.value.as_deref().unwrap_or("")
                ),
                true,
            ));
        }
        // NodeAffinity
        if !self.matches_node_affinity(node) {
            return Err(Rejection::new(AFFINITY_MISMATCH, true));
        }
        // NodePorts
        if !self.pod.ports.is_empty()
            && node
                .pods
                .iter()
                .flat_map(|p| &p.ports)
                .any(|used| self.pod.ports.iter().any(|want| want.conflicts(used)))
        {
            return Err(Rejection::new(PORTS_IN_USE, false));
        }
        // NodeResourcesFit
        fits_resources(&self.pod, node)?;
        // PodTopologySpread
        if let Some(s) = spread {
            s.check(&self.pod, node)?;
        }
        // InterPodAffinity
        if let Some(s) = interpod {
            s.check(&self.pod, node, self.snapshot)?;
        }
        Ok(())
    }

    /// `spec.nodeSelector` and required node affinity (upstream's
    /// `RequiredNodeAffinity.Match`).
    pub(crate) fn matches_node_affinity(&self, node: &NodeInfo) -> bool {
        let spec = self.spec();
        if let Some(sel) = spec.node_selector.as_ref()
            && !labels_match(sel, node.labels())
        {
            return false;
        }
        match self.required_terms() {
            None => true,
            Some(terms) => terms.iter().any(|t| node_matches_term(&node.node, t)),
        }
    }
}

fn labels_match(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The first `NoSchedule`/`NoExecute` taint the tolerations do not cover.
pub(crate) fn untolerated_taint<'n>(
    node: &'n NodeInfo,
    tolerations: &[Toleration],
) -> Option<&'n Taint> {
    node.node.spec.as_ref()?.taints.as_ref()?.iter().find(|t| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tolerations, t)
    })
}

/// NodeResourcesFit's filter (`fitsRequest`): every shortage is a reason.
pub(crate) fn fits_resources(pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
    let mut reasons: Vec<Cow<'static, str>> = Vec::new();
    let mut unresolvable = false;
    if node.pods.len() as i64 + 1 > node.allocatable.pods {
        reasons.push("Too many pods".into());
    }
    let want = &pod.requests;
    let alloc = &node.allocatable;
    let used = &node.requested;
    let mut check = |name: &'static str, want: i64, alloc: i64, used: i64| {
        if want > 0 && want > alloc - used {
            reasons.push(Cow::Borrowed(name));
            unresolvable |= want > alloc;
        }
    };
    check(
        "Insufficient cpu",
        want.milli_cpu,
        alloc.milli_cpu,
        used.milli_cpu,
    );
    check(
        "Insufficient memory",
        want.memory,
        alloc.memory,
        used.memory,
    );
    check(
        "Insufficient ephemeral-storage",
        want.ephemeral_storage,
        alloc.ephemeral_storage,
        used.ephemeral_storage,
    );
    for (name, &q) in &want.scalar {
        let (a, u) = (alloc.scalar(name), used.scalar(name));
        if q > 0 && q > a - u {
            reasons.push(format!("Insufficient {name}").into());
            unresolvable |= q > a;
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            reasons,
            unresolvable,
        })
    }
}
