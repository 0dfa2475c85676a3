//! Reconciling stored bootstrap objects with their defaults at start.

use serde_json::{Map, Value, json};

use super::AUTOUPDATE_ANNOTATION;
use crate::escalation::covers;
use crate::rule::PolicyRule;

/// What reconciling one bootstrap object asks the caller to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Reconcile {
    /// The object is missing: create this.
    Create(Value),
    /// The object lacks some of the defaults: write this (a superset of what is stored).
    Update(Value),
    /// A ClusterRoleBinding's roleRef differs (immutable): delete it and create this.
    Recreate(Value),
    /// The stored object already holds everything.
    Unchanged,
    /// The stored object lacks defaults but is annotated `autoupdate: "false"`.
    Protected,
}

/// Reconciles a stored ClusterRole with its default, as upstream's
/// `computeReconciledRole` with extra permissions kept: labels and
/// annotations merged (stored values win), missing rules appended, missing
/// aggregation selectors appended.
pub fn reconcile_cluster_role(existing: Option<&Value>, expected: &Value) -> Reconcile {
    let Some(existing) = existing else {
        return Reconcile::Create(expected.clone());
    };
    let mut result = existing.clone();
    let mut changed = merge_metadata(&mut result, expected);
    let have = PolicyRule::list_from(existing).unwrap_or_default();
    let want = PolicyRule::list_from(expected).unwrap_or_default();
    let (_, missing) = covers(&have, &want);
    if !missing.is_empty() {
        let mut rules = have;
        rules.extend(missing);
        set(
            &mut result,
            "rules",
            serde_json::to_value(rules).unwrap_or(Value::Null),
        );
        changed = true;
    }
    let want_selectors = selectors(expected);
    if expected.get("aggregationRule").is_some() {
        let mut have_selectors = selectors(existing);
        let before = have_selectors.len();
        for s in want_selectors {
            if !have_selectors.contains(&s) {
                have_selectors.push(s);
            }
        }
        if have_selectors.len() != before {
            set(
                &mut result,
                "aggregationRule",
                json!({"clusterRoleSelectors": have_selectors}),
            );
            changed = true;
        }
    }
    finish(existing, result, changed)
}

/// Reconciles a stored ClusterRoleBinding with its default: labels and
/// annotations merged, missing subjects appended, a changed roleRef recreated.
pub fn reconcile_cluster_role_binding(existing: Option<&Value>, expected: &Value) -> Reconcile {
    let Some(existing) = existing else {
        return Reconcile::Create(expected.clone());
    };
    let mut result = existing.clone();
    let mut changed = merge_metadata(&mut result, expected);
    let mut subjects = existing
        .get("subjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let before = subjects.len();
    for s in expected
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !subjects.contains(s) {
            subjects.push(s.clone());
        }
    }
    if subjects.len() != before {
        set(&mut result, "subjects", Value::Array(subjects));
        changed = true;
    }
    if existing.get("roleRef") != expected.get("roleRef") {
        if protected(existing) {
            return Reconcile::Protected;
        }
        set(&mut result, "roleRef", expected["roleRef"].clone());
        return Reconcile::Recreate(result);
    }
    finish(existing, result, changed)
}

fn finish(existing: &Value, result: Value, changed: bool) -> Reconcile {
    match (changed, protected(existing)) {
        (false, _) => Reconcile::Unchanged,
        (true, true) => Reconcile::Protected,
        (true, false) => Reconcile::Update(result),
    }
}

fn protected(object: &Value) -> bool {
    object
        .pointer(&format!(
            "/metadata/annotations/{}",
            AUTOUPDATE_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        == Some("false")
}

/// Adds the expected labels and annotations the stored object lacks.
fn merge_metadata(result: &mut Value, expected: &Value) -> bool {
    let mut changed = false;
    for field in ["labels", "annotations"] {
        let Some(want) = expected["metadata"][field].as_object() else {
            continue;
        };
        let Some(metadata) = result.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        let have = metadata
            .entry(field)
            .or_insert_with(|| Value::Object(Map::new()));
        if !have.is_object() {
            *have = Value::Object(Map::new());
        }
        if let Some(have) = have.as_object_mut() {
            for (k, v) in want {
                if !have.contains_key(k) {
                    have.insert(k.clone(), v.clone());
                    changed = true;
                }
            }
        }
    }
    changed
}

fn set(object: &mut Value, field: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(field.to_owned(), value);
    }
}

fn selectors(role: &Value) -> Vec<Value> {
    role.pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// One object's outcome when reconciling all the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconcileStep {
    /// `ClusterRole` or `ClusterRoleBinding`.
    pub kind: &'static str,
    /// The object's name.
    pub name: String,
    /// What to do with it.
    pub action: Reconcile,
}

/// Reconciles every default ClusterRole, then every default
/// ClusterRoleBinding, against the stored ones (matched by name), as the API
/// server does at each start.
pub fn reconcile_defaults(stored_roles: &[Value], stored_bindings: &[Value]) -> Vec<ReconcileStep> {
    let find = |stored: &'_ [Value], name: &str| -> Option<Value> {
        stored
            .iter()
            .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
            .cloned()
    };
    let name_of = |o: &Value| {
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut steps = Vec::new();
    for expected in super::cluster_roles() {
        let name = name_of(&expected);
        let action = reconcile_cluster_role(find(stored_roles, &name).as_ref(), &expected);
        steps.push(ReconcileStep {
            kind: "ClusterRole",
            name,
            action,
        });
    }
    for expected in super::cluster_role_bindings() {
        let name = name_of(&expected);
        let action =
            reconcile_cluster_role_binding(find(stored_bindings, &name).as_ref(), &expected);
        steps.push(ReconcileStep {
            kind: "ClusterRoleBinding",
            name,
            action,
        });
    }
    steps
}
