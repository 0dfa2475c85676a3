//! Matching: label selectors, node selector terms, tolerations.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorTerm, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

type Labels = BTreeMap<String, String>;

/// A parsed `metav1.LabelSelector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selector {
    /// `None` selects nothing (a nil selector).
    reqs: Option<Vec<Requirement>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" => Op::Gt,
            "Lt" => Op::Lt,
            _ => return None,
        })
    }
}

impl Requirement {
    fn matches(&self, value: Option<&str>) -> bool {
        match (self.op, value) {
            (Op::In, Some(v)) => self.values.iter().any(|x| x == v),
            (Op::NotIn, Some(v)) => !self.values.iter().any(|x| x == v),
            (Op::NotIn | Op::DoesNotExist, None) => true,
            (Op::Exists, v) => v.is_some(),
            (Op::DoesNotExist, Some(_)) => false,
            (Op::Gt | Op::Lt, Some(v)) => {
                let (Ok(have), Some(Ok(bound))) = (
                    v.parse::<i64>(),
                    self.values.first().map(|b| b.parse::<i64>()),
                ) else {
                    return false;
                };
                if self.op == Op::Gt {
                    have > bound
                } else {
                    have < bound
                }
            }
            (Op::In | Op::Gt | Op::Lt, None) => false,
        }
    }
}

impl Selector {
    /// Selects nothing.
    pub(crate) fn nothing() -> Selector {
        Selector { reqs: None }
    }

    /// A `LabelSelector`; `None` selects nothing, `{}` everything. An
    /// invalid operator selects nothing, as a failed conversion does
    /// upstream.
    pub(crate) fn new(selector: Option<&LabelSelector>) -> Selector {
        let Some(s) = selector else {
            return Selector::nothing();
        };
        let mut reqs = Vec::new();
        for (k, v) in s.match_labels.iter().flatten() {
            reqs.push(Requirement {
                key: k.clone(),
                op: Op::In,
                values: vec![v.clone()],
            });
        }
        for e in s.match_expressions.iter().flatten() {
            let Some(op) = Op::parse(&e.operator).filter(|o| !matches!(o, Op::Gt | Op::Lt)) else {
                return Selector::nothing();
            };
            reqs.push(Requirement {
                key: e.key.clone(),
                op,
                values: e.values.clone().unwrap_or_default(),
            });
        }
        Selector { reqs: Some(reqs) }
    }

    /// Adds `key In (labels[key])` for each `matchLabelKeys` key the pod
    /// has, and `NotIn` for `mismatchLabelKeys`, as upstream merges them
    /// into the selector.
    pub(crate) fn with_label_keys(
        mut self,
        labels: &Labels,
        match_keys: &[String],
        mismatch_keys: &[String],
    ) -> Selector {
        if let Some(reqs) = self.reqs.as_mut() {
            for (keys, op) in [(match_keys, Op::In), (mismatch_keys, Op::NotIn)] {
                for k in keys {
                    if let Some(v) = labels.get(k) {
                        reqs.push(Requirement {
                            key: k.clone(),
                            op,
                            values: vec![v.clone()],
                        });
                    }
                }
            }
        }
        self
    }

    /// `key = value` for each label (`labels.Set.AsSelector`).
    pub(crate) fn from_labels(labels: &Labels) -> Selector {
        Selector {
            reqs: Some(
                labels
                    .iter()
                    .map(|(k, v)| Requirement {
                        key: k.clone(),
                        op: Op::In,
                        values: vec![v.clone()],
                    })
                    .collect(),
            ),
        }
    }

    /// Both selectors' requirements.
    pub(crate) fn and(mut self, other: &Selector) -> Selector {
        // A nil selector has no requirements to add (upstream's
        // `Requirements()` of `Nothing` is empty).
        if let (Some(mine), Some(theirs)) = (&mut self.reqs, &other.reqs) {
            mine.extend(theirs.iter().cloned());
        }
        self
    }

    /// Whether it has no requirements (and so selects everything).
    pub(crate) fn is_empty(&self) -> bool {
        self.reqs.as_ref().is_some_and(Vec::is_empty)
    }

    pub(crate) fn matches(&self, labels: &Labels) -> bool {
        match &self.reqs {
            None => false,
            Some(reqs) => reqs
                .iter()
                .all(|r| r.matches(labels.get(&r.key).map(String::as_str))),
        }
    }
}

/// Whether a node matches a `NodeSelectorTerm`; an empty term matches
/// nothing.
pub(crate) fn node_matches_term(node: &Node, term: &NodeSelectorTerm) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let empty = Labels::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let requirement = |e: &k8s_openapi::api::core::v1::NodeSelectorRequirement| {
        Op::parse(&e.operator).map(|op| Requirement {
            key: e.key.clone(),
            op,
            values: e.values.clone().unwrap_or_default(),
        })
    };
    for e in exprs {
        match requirement(e) {
            Some(r) if r.matches(labels.get(&r.key).map(String::as_str)) => {}
            _ => return false,
        }
    }
    for f in fields {
        // Only `metadata.name` is a supported field (In / NotIn).
        match requirement(f) {
            Some(r)
                if f.key == "metadata.name"
                    && matches!(r.op, Op::In | Op::NotIn)
                    && r.matches(node.metadata.name.as_deref()) => {}
            _ => return false,
        }
    }
    true
}

/// Upstream's `Toleration.ToleratesTaint`.
pub(crate) fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

pub(crate) fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}
