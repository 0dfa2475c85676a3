//! The DaemonSet controller's decisions, without IO: which nodes should
//! run a daemon pod (node selector, required node affinity, taints against
//! tolerations), the tolerations every daemon pod gets, the template hash,
//! and which old pods a rolling update may delete.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

/// Whether a node should run the daemon pod, and whether a pod already
/// there may stay (an untolerated `NoSchedule` taint keeps out new pods
/// only; `NoExecute` evicts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    pub(crate) should_run: bool,
    pub(crate) may_stay: bool,
}

const NOWHERE: Placement = Placement {
    should_run: false,
    may_stay: false,
};

/// Upstream's `NodeShouldRunDaemonPod`, for a pod spec that already carries
/// the default tolerations.
pub(crate) fn placement(node: &Node, spec: &PodSpec) -> Placement {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if spec.node_name.as_deref().is_some_and(|n| n != name) {
        return NOWHERE;
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if let Some(selector) = &spec.node_selector
        && !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return NOWHERE;
    }
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice());
    if let Some(terms) = terms
        && !terms.iter().any(|t| term_matches(t, name, &labels))
    {
        return NOWHERE;
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let mut placement = Placement {
        should_run: true,
        may_stay: true,
    };
    for taint in node.spec.iter().flat_map(|s| s.taints.iter().flatten()) {
        if tolerations.iter().any(|t| tolerates(t, taint)) {
            continue;
        }
        match taint.effect.as_str() {
            "NoExecute" => return NOWHERE,
            "NoSchedule" => placement.should_run = false,
            _ => {}
        }
    }
    placement
}

fn term_matches(term: &NodeSelectorTerm, name: &str, labels: &BTreeMap<String, String>) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let fields_map = BTreeMap::from([("metadata.name".to_owned(), name.to_owned())]);
    expressions.iter().all(|r| requirement(r, labels))
        && fields.iter().all(|r| requirement(r, &fields_map))
}

fn requirement(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let value = labels.get(&r.key);
    let number = |v: Option<&String>| v.and_then(|v| v.parse::<i64>().ok());
    let bound = values.first().and_then(|v| v.parse::<i64>().ok());
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => matches!((number(value), bound), (Some(v), Some(b)) if v > b),
        "Lt" => matches!((number(value), bound), (Some(v), Some(b)) if v < b),
        _ => false,
    }
}

/// Whether `toleration` tolerates `taint`, as upstream's `ToleratesTaint`.
pub(crate) fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// Adds the tolerations upstream gives every daemon pod (node problems do
/// not evict them; pressure and cordons do not keep them out), unless the
/// template has them already.
pub(crate) fn add_default_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_default();
    for (key, effect) in wanted {
        let present = tolerations.iter().any(|t| {
            t.key.as_deref() == Some(key)
                && t.effect.as_deref() == Some(effect)
                && t.operator.as_deref() == Some("Exists")
        });
        if !present {
            tolerations.push(Toleration {
                key: Some(key.to_owned()),
                operator: Some("Exists".to_owned()),
                effect: Some(effect.to_owned()),
                ..Toleration::default()
            });
        }
    }
}

/// The template's hash as a `controller-revision-hash` label: FNV-1a over
/// its JSON (and the collision count), spelled with upstream's
/// `SafeEncodeString` alphabet (no vowels, no look-alikes).
pub(crate) fn template_hash(template: &serde_json::Value, collisions: i32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u32 = 0x811c_9dc5;
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let extra = if collisions > 0 {
        collisions.to_le_bytes().to_vec()
    } else {
        Vec::new()
    };
    for b in bytes.iter().chain(&extra) {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.to_string()
        .bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// Which revisions (`(name, revision, hash)`) to delete: the oldest beyond
/// `limit` among those neither current nor used by a pod.
pub(crate) fn revisions_to_prune(
    revisions: &[(String, i64, String)],
    current: &str,
    live: &std::collections::HashSet<String>,
    limit: usize,
) -> Vec<String> {
    let mut old: Vec<&(String, i64, String)> = revisions
        .iter()
        .filter(|(_, _, hash)| hash != current && !live.contains(hash))
        .collect();
    old.sort_by_key(|(_, revision, _)| *revision);
    let excess = old.len().saturating_sub(limit);
    old.into_iter()
        .take(excess)
        .map(|(name, _, _)| name.clone())
        .collect()
}

/// One node's daemon pod, as the rolling update sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodePod {
    /// Made from the current template.
    pub(crate) updated: bool,
    pub(crate) available: bool,
}

/// Which nodes' old pods to delete now (indexes into `nodes`), keeping at
/// most `max_unavailable` nodes without an available pod: old unavailable
/// pods go first (deleting them costs nothing), then old available ones
/// while the budget lasts. `None`: the node should run a pod but has none.
pub(crate) fn rolling_deletions(nodes: &[Option<NodePod>], max_unavailable: usize) -> Vec<usize> {
    let unavailable = nodes
        .iter()
        .filter(|n| n.is_none_or(|p| !p.available))
        .count();
    let mut budget = max_unavailable.saturating_sub(unavailable);
    let mut chosen = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if let Some(p) = node
            && !p.updated
            && !p.available
        {
            chosen.push(i);
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        if budget == 0 {
            break;
        }
        if let Some(p) = node
            && !p.updated
            && p.available
        {
            chosen.push(i);
            budget -= 1;
        }
    }
    chosen
}

/// `maxUnavailable` or `maxSurge` as a count of `desired` nodes
/// (percentages round up, as upstream; unset is 0).
pub(crate) fn scaled(
    value: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    desired: usize,
) -> usize {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match value {
        None => 0,
        Some(IntOrString::Int(n)) => usize::try_from(*n).unwrap_or(0),
        Some(IntOrString::String(s)) => {
            let percent: usize = s.trim_end_matches('%').parse().unwrap_or(0);
            (percent * desired).div_ceil(100)
        }
    }
}

/// A surging rollout (upstream's `maxSurge`): per node `(old pod, new pod)`
/// as `Some(available)`. Returns the nodes to start a new pod on (an
/// unavailable old pod is replaced at once; others while fewer than
/// `max_surge` nodes run two pods) and the nodes whose old pod may go (its
/// replacement is available).
pub(crate) fn surge_plan(
    nodes: &[(Option<bool>, Option<bool>)],
    max_surge: usize,
) -> (Vec<usize>, Vec<usize>) {
    let surging = nodes
        .iter()
        .filter(|(old, new)| old.is_some() && new.is_some())
        .count();
    let mut budget = max_surge.saturating_sub(surging);
    let (mut start, mut retire) = (Vec::new(), Vec::new());
    for (i, (old, new)) in nodes.iter().enumerate() {
        match (old, new) {
            (Some(_), Some(true)) => retire.push(i),
            (Some(false), None) => start.push(i),
            (Some(true), None) if budget > 0 => {
                budget -= 1;
                start.push(i);
            }
            _ => {}
        }
    }
    (start, retire)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector, NodeSpec};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        Node {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|(key, effect)| Taint {
                            key: (*key).into(),
                            effect: (*effect).into(),
                            ..Taint::default()
                        })
                        .collect(),
                ),
                ..NodeSpec::default()
            }),
            status: None,
        }
    }

    fn daemon_spec() -> PodSpec {
        let mut spec = PodSpec::default();
        add_default_tolerations(&mut spec);
        spec
    }

    #[test]
    fn which_nodes_run_a_daemon_pod() {
        let run = Placement {
            should_run: true,
            may_stay: true,
        };
        let stay = Placement {
            should_run: false,
            may_stay: true,
        };
        let mut selecting = daemon_spec();
        selecting.node_selector = Some([("disk".to_owned(), "ssd".to_owned())].into());
        let mut affine = daemon_spec();
        affine.affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "zone".into(),
                            operator: "In".into(),
                            values: Some(vec!["a".into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        });
        let cases = [
            (node("n", &[], &[]), daemon_spec(), run),
            (node("n", &[("disk", "ssd")], &[]), selecting.clone(), run),
            (node("n", &[("disk", "hdd")], &[]), selecting, NOWHERE),
            (node("n", &[("zone", "a")], &[]), affine.clone(), run),
            (node("n", &[("zone", "b")], &[]), affine, NOWHERE),
            // The default tolerations cover node problems and cordons.
            (
                node("n", &[], &[("node.kubernetes.io/not-ready", "NoExecute")]),
                daemon_spec(),
                run,
            ),
            (
                node(
                    "n",
                    &[],
                    &[("node.kubernetes.io/unschedulable", "NoSchedule")],
                ),
                daemon_spec(),
                run,
            ),
            // Other taints: NoSchedule keeps new pods out, NoExecute evicts.
            (
                node("n", &[], &[("dedicated", "NoSchedule")]),
                daemon_spec(),
                stay,
            ),
            (
                node("n", &[], &[("dedicated", "NoExecute")]),
                daemon_spec(),
                NOWHERE,
            ),
            (
                node("n", &[], &[("dedicated", "PreferNoSchedule")]),
                daemon_spec(),
                run,
            ),
        ];
        for (i, (n, spec, want)) in cases.into_iter().enumerate() {
            assert_eq!(placement(&n, &spec), want, "case {i}");
        }
    }

    #[test]
    fn tolerations_match_taints() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let t = |key: &str, op: &str, value: &str, effect: &str| Toleration {
            key: Some(key.into()),
            operator: Some(op.into()),
            value: Some(value.into()),
            effect: Some(effect.into()),
            ..Toleration::default()
        };
        assert!(tolerates(&t("k", "Equal", "v", "NoSchedule"), &taint));
        assert!(tolerates(&t("k", "Exists", "", ""), &taint));
        assert!(tolerates(&t("", "Exists", "", ""), &taint));
        assert!(!tolerates(&t("k", "Equal", "w", "NoSchedule"), &taint));
        assert!(!tolerates(&t("k", "Exists", "", "NoExecute"), &taint));
    }

    #[test]
    fn hashes_are_stable_and_safe() {
        let a = template_hash(
            &serde_json::json!({"spec": {"containers": [{"image": "a"}]}}),
            0,
        );
        let b = template_hash(
            &serde_json::json!({"spec": {"containers": [{"image": "b"}]}}),
            0,
        );
        assert_ne!(a, b);
        assert_eq!(
            a,
            template_hash(
                &serde_json::json!({"spec": {"containers": [{"image": "a"}]}}),
                0
            )
        );
        assert!(
            a.bytes()
                .all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c)),
            "{a}"
        );
    }

    #[test]
    fn rolling_updates_keep_within_max_unavailable() {
        let old = |available| {
            Some(NodePod {
                updated: false,
                available,
            })
        };
        let new = |available| {
            Some(NodePod {
                updated: true,
                available,
            })
        };
        type Case<'a> = (&'a [Option<NodePod>], usize, &'a [usize]);
        let cases: [Case<'_>; 5] = [
            (&[old(true), old(true), old(true)], 1, &[0]),
            (&[old(true), old(true), old(true)], 2, &[0, 1]),
            // One node is already down: nothing more may go.
            (&[None, old(true), old(true)], 1, &[]),
            (&[new(false), old(true), old(true)], 1, &[]),
            // Old and unavailable: deleted whatever the budget.
            (&[old(false), old(true), new(true)], 1, &[0]),
        ];
        for (nodes, max, want) in cases {
            assert_eq!(rolling_deletions(nodes, max), want, "{nodes:?} {max}");
        }
    }

    #[test]
    fn old_unused_revisions_are_pruned_beyond_the_limit() {
        let history: Vec<(String, i64, String)> = (1..=5)
            .map(|i| (format!("r{i}"), i, format!("h{i}")))
            .collect();
        let live = ["h2".to_owned()].into_iter().collect();
        assert_eq!(revisions_to_prune(&history, "h5", &live, 1), ["r1", "r3"]);
        assert!(revisions_to_prune(&history, "h5", &live, 10).is_empty());
        assert_eq!(
            revisions_to_prune(&history, "h1", &live, 0),
            ["r3", "r4", "r5"]
        );
    }

    #[test]
    fn counts_and_percentages_scale() {
        assert_eq!(scaled(None, 10), 0);
        assert_eq!(scaled(Some(&IntOrString::Int(3)), 10), 3);
        assert_eq!(scaled(Some(&IntOrString::String("25%".into())), 10), 3);
        assert_eq!(scaled(Some(&IntOrString::String("0%".into())), 10), 0);
    }

    #[test]
    fn surging_rollouts_start_new_pods_before_retiring_old_ones() {
        type Case<'a> = (
            &'a [(Option<bool>, Option<bool>)],
            usize,
            &'a [usize],
            &'a [usize],
        );
        let cases: [Case<'_>; 4] = [
            // Three old available pods, surge 1: one new pod at a time.
            (
                &[(Some(true), None), (Some(true), None), (Some(true), None)],
                1,
                &[0],
                &[],
            ),
            // Its replacement is up: the old one goes; the budget is spent
            // until then.
            (
                &[(Some(true), Some(true)), (Some(true), None)],
                1,
                &[],
                &[0],
            ),
            (
                &[(Some(true), Some(false)), (Some(true), None)],
                1,
                &[],
                &[],
            ),
            // An unavailable old pod is replaced whatever the budget.
            (
                &[(Some(true), Some(false)), (Some(false), None)],
                1,
                &[1],
                &[],
            ),
        ];
        for (nodes, surge, start, retire) in cases {
            let (s, r) = surge_plan(nodes, surge);
            assert_eq!((s.as_slice(), r.as_slice()), (start, retire), "{nodes:?}");
        }
    }
}
