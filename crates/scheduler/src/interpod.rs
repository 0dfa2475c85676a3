//! InterPodAffinity: required pod affinity and anti-affinity (the
//! incoming pod's and the existing pods'), and the preferred terms'
//! score, as upstream's `interpodaffinity` plugin computes them.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};

use crate::selectors::Selector;
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

pub(crate) const AFFINITY_MISMATCH: &str = "node(s) didn't match pod affinity rules";
pub(crate) const ANTI_AFFINITY_MISMATCH: &str = "node(s) didn't match pod anti-affinity rules";
pub(crate) const EXISTING_ANTI_AFFINITY_MISMATCH: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// Upstream's `hardPodAffinityWeight` default.
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

type Labels = BTreeMap<String, String>;
type Pair = (String, String);

/// A pod's parsed affinity terms.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodAffinityInfo {
    pub(crate) required_affinity: Vec<AffinityTerm>,
    pub(crate) required_anti: Vec<AffinityTerm>,
    pub(crate) preferred_affinity: Vec<(i64, AffinityTerm)>,
    pub(crate) preferred_anti: Vec<(i64, AffinityTerm)>,
}

/// One `PodAffinityTerm` with its namespaces resolved.
#[derive(Debug, Clone)]
pub(crate) struct AffinityTerm {
    namespaces: Vec<String>,
    namespace_selector: Option<Selector>,
    selector: Selector,
    pub(crate) topology_key: String,
}

impl AffinityTerm {
    fn new(term: &PodAffinityTerm, namespace: &str, labels: &Labels) -> AffinityTerm {
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.push(namespace.to_owned());
        }
        AffinityTerm {
            namespaces,
            namespace_selector: term
                .namespace_selector
                .as_ref()
                .map(|s| Selector::new(Some(s))),
            selector: Selector::new(term.label_selector.as_ref()).with_label_keys(
                labels,
                term.match_label_keys.as_deref().unwrap_or_default(),
                term.mismatch_label_keys.as_deref().unwrap_or_default(),
            ),
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether `pod` (namespace, labels) is selected by this term.
    pub(crate) fn matches(&self, namespace: &str, labels: &Labels, snapshot: &Snapshot) -> bool {
        let ns_ok = self.namespaces.iter().any(|n| n == namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                s.matches(
                    snapshot
                        .namespace_labels(namespace)
                        .unwrap_or(&Labels::new()),
                )
            });
        ns_ok && self.selector.matches(labels)
    }

    fn matches_pod(&self, pod: &PodInfo, snapshot: &Snapshot) -> bool {
        self.matches(pod.namespace(), pod.labels(), snapshot)
    }
}

impl PodAffinityInfo {
    /// The pod's terms, or `None` if it has none.
    pub(crate) fn new(pod: &Pod) -> Option<PodAffinityInfo> {
        let affinity = pod.spec.as_ref()?.affinity.as_ref()?;
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let empty = Labels::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(t, ns, labels))
                .collect()
        };
        let preferred = |terms: Option<&Vec<WeightedPodAffinityTerm>>| -> Vec<(i64, AffinityTerm)> {
            terms
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        i64::from(t.weight),
                        AffinityTerm::new(&t.pod_affinity_term, ns, labels),
                    )
                })
                .collect()
        };
        let a = affinity.pod_affinity.as_ref();
        let anti = affinity.pod_anti_affinity.as_ref();
        let info = PodAffinityInfo {
            required_affinity: required(a.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti: required(anti.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(a.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti: preferred(anti.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
        };
        let any = !(info.required_affinity.is_empty()
            && info.required_anti.is_empty()
            && info.preferred_affinity.is_empty()
            && info.preferred_anti.is_empty());
        any.then_some(info)
    }
}

/// Counts per topology pair, computed once per pod (PreFilter) and
/// adjusted when preemption removes victims.
#[derive(Debug, Clone, Default)]
pub(crate) struct FilterState {
    /// Existing pods' required anti-affinity terms that match the pod.
    existing_anti: HashMap<Pair, i64>,
    /// Existing pods matching all of the pod's required affinity terms.
    affinity: HashMap<Pair, i64>,
    /// Existing pods matching one of the pod's required anti-affinity terms.
    anti: HashMap<Pair, i64>,
}

fn bump(m: &mut HashMap<Pair, i64>, node: &NodeInfo, key: &str, by: i64) {
    if let Some(v) = node.labels().get(key) {
        let pair = (key.to_owned(), v.clone());
        let e = m.entry(pair.clone()).or_default();
        *e += by;
        if *e == 0 {
            m.remove(&pair);
        }
    }
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo, snapshot: &Snapshot) -> bool {
    terms.iter().all(|t| t.matches_pod(pod, snapshot))
}

impl FilterState {
    /// `None` when the filter has nothing to check for this pod.
    pub(crate) fn new(pod: &PodInfo, snapshot: &Snapshot) -> Option<FilterState> {
        let own = pod.affinity.as_deref();
        let has_required =
            own.is_some_and(|a| !a.required_affinity.is_empty() || !a.required_anti.is_empty());
        let mut state = FilterState::default();
        let mut any_existing = false;
        for node in snapshot.nodes() {
            if node.with_required_anti_affinity > 0 {
                any_existing = true;
            }
            if node.with_required_anti_affinity == 0 && !has_required {
                continue;
            }
            for existing in &node.pods {
                state.update(pod, existing, node, snapshot, 1);
            }
        }
        (has_required || any_existing).then_some(state)
    }

    /// Adds (`by` = 1) or removes (-1) an existing pod's contribution.
    pub(crate) fn update(
        &mut self,
        pod: &PodInfo,
        existing: &PodInfo,
        node: &NodeInfo,
        snapshot: &Snapshot,
        by: i64,
    ) {
        if let Some(theirs) = existing.affinity.as_deref() {
            for t in &theirs.required_anti {
                if t.matches_pod(pod, snapshot) {
                    bump(&mut self.existing_anti, node, &t.topology_key, by);
                }
            }
        }
        if let Some(own) = pod.affinity.as_deref() {
            if !own.required_affinity.is_empty()
                && matches_all(&own.required_affinity, existing, snapshot)
            {
                for t in &own.required_affinity {
                    bump(&mut self.affinity, node, &t.topology_key, by);
                }
            }
            for t in &own.required_anti {
                if t.matches_pod(existing, snapshot) {
                    bump(&mut self.anti, node, &t.topology_key, by);
                }
            }
        }
    }

    /// The filter: `Err(reason, unresolvable)` when the node is rejected.
    pub(crate) fn check(
        &self,
        pod: &PodInfo,
        node: &NodeInfo,
        snapshot: &Snapshot,
    ) -> Result<(), (&'static str, bool)> {
        let labels = node.labels();
        if let Some(own) = pod.affinity.as_deref() {
            let mut pods_exist = true;
            for t in &own.required_affinity {
                let Some(v) = labels.get(&t.topology_key) else {
                    return Err((AFFINITY_MISMATCH, true));
                };
                if self
                    .affinity
                    .get(&(t.topology_key.clone(), v.clone()))
                    .copied()
                    .unwrap_or(0)
                    <= 0
                {
                    pods_exist = false;
                }
            }
            // The first pod of a group with affinity to itself.
            let first_of_group =
                self.affinity.is_empty() && matches_all(&own.required_affinity, pod, snapshot);
            if !pods_exist && !first_of_group {
                return Err((AFFINITY_MISMATCH, true));
            }
            for t in &own.required_anti {
                if let Some(v) = labels.get(&t.topology_key)
                    && self
                        .anti
                        .get(&(t.topology_key.clone(), v.clone()))
                        .copied()
                        .unwrap_or(0)
                        > 0
                {
                    return Err((ANTI_AFFINITY_MISMATCH, false));
                }
            }
        }
        if !self.existing_anti.is_empty() {
            for (k, v) in labels {
                if self
                    .existing_anti
                    .get(&(k.clone(), v.clone()))
                    .copied()
                    .unwrap_or(0)
                    > 0
                {
                    return Err((EXISTING_ANTI_AFFINITY_MISMATCH, false));
                }
            }
        }
        Ok(())
    }
}

/// Preferred (anti-)affinity scores per topology pair (PreScore), or
/// `None` when nothing contributes.
pub(crate) fn score_state(pod: &PodInfo, snapshot: &Snapshot) -> Option<HashMap<Pair, i64>> {
    let own = pod.affinity.as_deref();
    let has_preferred =
        own.is_some_and(|a| !a.preferred_affinity.is_empty() || !a.preferred_anti.is_empty());
    let mut scores: HashMap<Pair, i64> = HashMap::new();
    let mut add = |node: &NodeInfo, key: &str, by: i64| {
        if let Some(v) = node.labels().get(key) {
            *scores.entry((key.to_owned(), v.clone())).or_default() += by;
        }
    };
    let mut any = false;
    for node in snapshot.nodes() {
        if (!has_preferred && node.with_affinity == 0) || node.labels().is_empty() {
            continue;
        }
        for existing in &node.pods {
            if let Some(own) = own {
                for (w, t) in &own.preferred_affinity {
                    if t.matches_pod(existing, snapshot) {
                        add(node, &t.topology_key, *w);
                        any = true;
                    }
                }
                for (w, t) in &own.preferred_anti {
                    if t.matches_pod(existing, snapshot) {
                        add(node, &t.topology_key, -*w);
                        any = true;
                    }
                }
            }
            if let Some(theirs) = existing.affinity.as_deref() {
                for t in &theirs.required_affinity {
                    if t.matches_pod(pod, snapshot) {
                        add(node, &t.topology_key, HARD_POD_AFFINITY_WEIGHT);
                        any = true;
                    }
                }
                for (w, t) in &theirs.preferred_affinity {
                    if t.matches_pod(pod, snapshot) {
                        add(node, &t.topology_key, *w);
                        any = true;
                    }
                }
                for (w, t) in &theirs.preferred_anti {
                    if t.matches_pod(pod, snapshot) {
                        add(node, &t.topology_key, -*w);
                        any = true;
                    }
                }
            }
        }
    }
    any.then_some(scores)
}

/// A node's raw score: the sum over its labels' topology pairs.
pub(crate) fn score(scores: &HashMap<Pair, i64>, node: &NodeInfo) -> i64 {
    // Iterate the (few) scored pairs rather than the node's labels.
    scores
        .iter()
        .filter(|((k, v), _)| node.labels().get(k) == Some(v))
        .map(|(_, s)| *s)
        .sum()
}

/// Min-max normalisation to 0..=100.
pub(crate) fn normalize(scores: &mut [i64]) {
    let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
        return;
    };
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            (100.0 * ((*s - min) as f64 / diff as f64)) as i64
        } else {
            0
        };
    }
}
