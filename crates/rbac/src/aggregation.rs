//! Aggregated ClusterRoles: a ClusterRole with an `aggregationRule` gets the
//! union of the rules of the ClusterRoles its label selectors pick, as
//! upstream's clusterrole-aggregation controller writes them.

use serde_json::{Map, Value};

use crate::rule::PolicyRule;

/// Returns `cluster_roles` with the `rules` of every aggregated ClusterRole
/// recomputed: for each selector in order, the matching ClusterRoles sorted
/// by name (the role itself skipped), each rule added once. Aggregated roles
/// that select other aggregated roles (`admin` ← `edit` ← `view`) see their
/// computed rules, as the controller converges to after a few passes.
/// A selector that cannot be read selects nothing.
pub fn aggregate_cluster_roles(cluster_roles: &[Value]) -> Vec<Value> {
    let mut roles: Vec<Value> = cluster_roles.to_vec();
    let mut by_name: Vec<usize> = (0..roles.len()).collect();
    by_name.sort_by(|&a, &b| name_of(&roles[a]).cmp(name_of(&roles[b])));
    let aggregated: Vec<(usize, Vec<Value>)> = by_name
        .iter()
        .filter_map(|&i| selectors_of(&roles[i]).map(|s| (i, s)))
        .collect();
    // Each pass settles at least one more level of nesting; a chain can be no
    // longer than the number of aggregated roles.
    for _ in 0..=aggregated.len() {
        let mut changed = false;
        for (i, selectors) in &aggregated {
            let mut rules: Vec<PolicyRule> = Vec::new();
            for selector in selectors {
                for &j in &by_name {
                    if j == *i
                        || name_of(&roles[j]) == name_of(&roles[*i])
                        || !selector_matches(selector, labels_of(&roles[j]))
                    {
                        continue;
                    }
                    for rule in PolicyRule::list_from(&roles[j]).unwrap_or_default() {
                        if !rules.contains(&rule) {
                            rules.push(rule);
                        }
                    }
                }
            }
            let new_rules = serde_json::to_value(&rules).unwrap_or(Value::Array(Vec::new()));
            if roles[*i].get("rules") != Some(&new_rules)
                && let Some(object) = roles[*i].as_object_mut()
            {
                object.insert("rules".into(), new_rules);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    roles
}

/// Whether a `metav1.LabelSelector` (matchLabels and matchExpressions with
/// In, NotIn, Exists, DoesNotExist) selects an object with `labels`. An empty
/// selector selects everything; one that cannot be read selects nothing.
pub fn selector_matches(selector: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    if let Some(match_labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, want) in match_labels {
            if want.as_str().is_none() || label(key) != want.as_str() {
                return false;
            }
        }
    }
    let Some(expressions) = selector.get("matchExpressions") else {
        return true;
    };
    if expressions.is_null() {
        return true;
    }
    let Some(expressions) = expressions.as_array() else {
        return false;
    };
    expressions.iter().all(|expr| {
        let Some(key) = expr.get("key").and_then(Value::as_str) else {
            return false;
        };
        let values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let current = label(key);
        match expr.get("operator").and_then(Value::as_str) {
            Some("In") => !values.is_empty() && current.is_some_and(|c| values.contains(&c)),
            Some("NotIn") => !values.is_empty() && current.is_none_or(|c| !values.contains(&c)),
            Some("Exists") => values.is_empty() && current.is_some(),
            Some("DoesNotExist") => values.is_empty() && current.is_none(),
            _ => false,
        }
    })
}

fn name_of(role: &Value) -> &str {
    role.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn labels_of(role: &Value) -> Option<&Map<String, Value>> {
    role.pointer("/metadata/labels").and_then(Value::as_object)
}

fn selectors_of(role: &Value) -> Option<Vec<Value>> {
    role.pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
        .cloned()
}
