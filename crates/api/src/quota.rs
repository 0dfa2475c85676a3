//! Resource quota arithmetic, as upstream's quota evaluators do it: what an
//! object uses of a `ResourceQuota` (`pods`, `requests.cpu`,
//! `count/deployments.apps`, …), whether a quota's scopes cover it, and
//! which compute resources a pod must declare once a quota tracks them.
//!
//! Shared by the API server's ResourceQuota admission (which charges a
//! create against `status.used`) and the controller manager's
//! resourcequota controller (which recomputes `status.used` from the
//! objects). Pure functions over JSON; nothing here does IO.
//!
//! ```
//! use bulwark_api::quota::{pretty, usage};
//! use serde_json::json;
//!
//! let pod = json!({"spec": {"containers": [
//!     {"name": "app", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}}
//! ]}});
//! assert_eq!(
//!     pretty(&usage("", "pods", &pod)),
//!     "count/pods=1,cpu=250m,limits.cpu=1,pods=1,requests.cpu=250m"
//! );
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::quantity::Quantity;

/// Resource name → quantity, sorted by name.
pub type ResourceList = BTreeMap<String, Quantity>;

/// The compute resources a container's requests and limits are checked for.
const STANDARD: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// The names a pod must declare for each container once a quota has a hard
/// limit on them (upstream's pod evaluator `Constraints`).
const REQUIRED_PER_CONTAINER: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Core kinds with a quota name of their own besides `count/<plural>`.
const LEGACY_COUNTS: &[&str] = &[
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
];

/// A `ResourceList` from JSON (`{"cpu": "1", …}`); unparsable entries are
/// skipped (validation refuses them before they are stored).
pub fn resource_list(value: Option<&Value>) -> ResourceList {
    value
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Quantity::from_json(v).ok().map(|q| (k.clone(), q)))
                .collect()
        })
        .unwrap_or_default()
}

/// The JSON form (canonical quantities).
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), json!(v.to_string())))
            .collect(),
    )
}

/// `a=1,b=2` in name order, as upstream's quota messages print lists.
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `count/<plural>` for the core group, `count/<plural>.<group>` otherwise.
pub fn object_count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// Whether the evaluator for `group`/`plural` accounts for quota resource
/// `name` (upstream's `MatchingResources`).
pub fn tracks(group: &str, plural: &str, name: &str) -> bool {
    if name == object_count_name(group, plural) {
        return true;
    }
    if !group.is_empty() {
        return false;
    }
    if LEGACY_COUNTS.contains(&plural) && name == plural {
        return true;
    }
    match plural {
        "pods" => is_compute_name(name),
        "services" => matches!(name, "services.loadbalancers" | "services.nodeports"),
        "persistentvolumeclaims" => {
            name == "requests.storage"
                || name.ends_with(".storageclass.storage.k8s.io/requests.storage")
                || name.ends_with(".storageclass.storage.k8s.io/persistentvolumeclaims")
        }
        _ => false,
    }
}

fn is_compute_name(name: &str) -> bool {
    STANDARD.contains(&name)
        || name.starts_with("requests.")
        || name.starts_with("limits.")
        || name.starts_with("hugepages-")
}

/// What one object of `group`/`plural` uses (upstream's evaluators'
/// `Usage`): its object count, and for pods their compute resources, for
/// Services their load balancers and node ports, for claims their storage.
pub fn usage(group: &str, plural: &str, object: &Value) -> ResourceList {
    let one = || Quantity::parse("1").expect("1 is a quantity");
    let mut used = ResourceList::new();
    used.insert(object_count_name(group, plural), one());
    if !group.is_empty() {
        return used;
    }
    match plural {
        "pods" if pod_counts(object) => {
            used.insert("pods".into(), one());
            let (requests, limits) = pod_requests_and_limits(object);
            used.extend(compute_usage(&requests, &limits));
        }
        "pods" => {}
        "services" => {
            used.insert("services".into(), one());
            let kind = object
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let ports = object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if kind == "LoadBalancer" {
                used.insert("services.loadbalancers".into(), one());
            }
            if matches!(kind, "NodePort" | "LoadBalancer") {
                let count = Quantity::parse(&ports.to_string()).expect("a count is a quantity");
                used.insert("services.nodeports".into(), count);
            }
        }
        "persistentvolumeclaims" => {
            used.insert(plural.into(), one());
            let storage = object.pointer("/spec/resources/requests/storage");
            let class = object
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            if let Some(class) = class {
                used.insert(
                    format!("{class}.storageclass.storage.k8s.io/persistentvolumeclaims"),
                    one(),
                );
            }
            if let Some(Ok(size)) = storage.map(Quantity::from_json) {
                if let Some(class) = class {
                    used.insert(
                        format!("{class}.storageclass.storage.k8s.io/requests.storage"),
                        size.clone(),
                    );
                }
                used.insert("requests.storage".into(), size);
            }
        }
        other if LEGACY_COUNTS.contains(&other) => {
            used.insert(other.into(), one());
        }
        _ => {}
    }
    used
}

/// Whether a pod still uses its compute quota: terminal pods
/// (`Succeeded`, `Failed`) do not.
pub fn pod_counts(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// A pod's effective requests and limits (upstream's `PodRequests` /
/// `PodLimits`): the containers' sum plus restartable init containers
/// (sidecars), at least the largest one-off init container (with the
/// sidecars started before it), plus the pod overhead.
pub fn pod_requests_and_limits(pod: &Value) -> (ResourceList, ResourceList) {
    let each = |field: &str| -> ResourceList {
        let containers = containers(pod, "containers");
        let mut total = ResourceList::new();
        for c in &containers {
            add_into(
                &mut total,
                &resource_list(c.pointer(&format!("/resources/{field}"))),
            );
        }
        let mut sidecars = ResourceList::new();
        let mut init_peak = ResourceList::new();
        for c in containers_of(pod, "initContainers") {
            let own = resource_list(c.pointer(&format!("/resources/{field}")));
            if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
                add_into(&mut sidecars, &own);
                max_into(&mut init_peak, &sidecars);
            } else {
                let mut at = sidecars.clone();
                add_into(&mut at, &own);
                max_into(&mut init_peak, &at);
            }
        }
        add_into(&mut total, &sidecars);
        max_into(&mut total, &init_peak);
        add_into(&mut total, &resource_list(pod.pointer("/spec/overhead")));
        total
    };
    (each("requests"), each("limits"))
}

fn containers<'a>(pod: &'a Value, field: &str) -> Vec<&'a Value> {
    containers_of(pod, field).collect()
}

fn containers_of<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Adds `more` into `into`, name by name.
pub fn add_into(into: &mut ResourceList, more: &ResourceList) {
    for (name, q) in more {
        let sum = match into.get(name) {
            Some(have) => have.add(q),
            None => q.clone(),
        };
        into.insert(name.clone(), sum);
    }
}

fn max_into(into: &mut ResourceList, other: &ResourceList) {
    for (name, q) in other {
        if into.get(name).is_none_or(|have| q > have) {
            into.insert(name.clone(), q.clone());
        }
    }
}

/// The quota names a set of requests and limits charges
/// (`podComputeUsageHelper`): `cpu` and `requests.cpu` for a CPU request,
/// `limits.cpu` for a CPU limit, and so on.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut used = ResourceList::new();
    for (name, q) in requests {
        if STANDARD.contains(&name.as_str()) {
            used.insert(name.clone(), q.clone());
            used.insert(format!("requests.{name}"), q.clone());
        } else if name.starts_with("hugepages-") {
            used.insert(format!("requests.{name}"), q.clone());
        } else if name.contains('/') {
            // Extended resources are quota'd by their request only.
            used.insert(format!("requests.{name}"), q.clone());
        }
    }
    for (name, q) in limits {
        if STANDARD.contains(&name.as_str()) {
            used.insert(format!("limits.{name}"), q.clone());
        }
    }
    used
}

/// Upstream's pod evaluator `Constraints`: with `hard` naming CPU or memory
/// (requests, limits or the bare names), every container must declare
/// them. Returns `must specify limits.cpu for: app; memory for: app,init`
/// when some do not.
pub fn pod_constraint_violation<'a>(
    hard: impl IntoIterator<Item = &'a String>,
    pod: &Value,
) -> Option<String> {
    let required: BTreeSet<&str> = hard
        .into_iter()
        .map(String::as_str)
        .filter(|name| REQUIRED_PER_CONTAINER.contains(name))
        .collect();
    if required.is_empty() {
        return None;
    }
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for c in containers_of(pod, "containers").chain(containers_of(pod, "initContainers")) {
        let declared = compute_usage(
            &resource_list(c.pointer("/resources/requests")),
            &resource_list(c.pointer("/resources/limits")),
        );
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        for r in &required {
            if !declared.contains_key(*r) {
                missing.entry(r).or_default().insert(name.to_owned());
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!(
                "{r} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// Whether `quota`'s scopes (`spec.scopes`, `spec.scopeSelector`) cover the
/// object. Only pods have scopes; a quota with any scope covers nothing else.
pub fn scopes_match(quota: &Value, group: &str, plural: &str, object: &Value) -> bool {
    let mut scopes: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_owned(), "Exists".to_owned(), Vec::new()))
        .collect();
    for expr in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |f: &str| expr.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
        let values = expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        scopes.push((field("scopeName"), field("operator"), values));
    }
    if scopes.is_empty() {
        return true;
    }
    if !(group.is_empty() && plural == "pods") {
        return false;
    }
    scopes
        .iter()
        .all(|(scope, op, values)| pod_matches_scope(object, scope, op, values))
}

fn pod_matches_scope(pod: &Value, scope: &str, op: &str, values: &[String]) -> bool {
    let terminating = pod
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0);
    let best_effort = {
        let (requests, limits) = pod_requests_and_limits(pod);
        !requests
            .keys()
            .chain(limits.keys())
            .any(|k| k == "cpu" || k == "memory")
    };
    match scope {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            match (op, class) {
                ("Exists", class) => class.is_some(),
                ("DoesNotExist", class) => class.is_none(),
                ("In", Some(class)) => values.iter().any(|v| v == class),
                ("NotIn", Some(class)) => !values.iter().any(|v| v == class),
                ("NotIn", None) => true,
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &ResourceList) -> String {
        pretty(list)
    }

    #[test]
    fn pod_usage_counts_containers_sidecars_init_and_overhead() {
        let pod = json!({"spec": {
            "overhead": {"cpu": "10m"},
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "setup", "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "1Gi"}}}
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m"}}}
            ]
        }});
        assert_eq!(
            names(&usage("", "pods", &pod)),
            "count/pods=1,cpu=2110m,limits.cpu=510m,limits.memory=1Gi,memory=64Mi,pods=1,requests.cpu=2110m,requests.memory=64Mi"
        );
    }

    #[test]
    fn terminal_pods_only_count_as_objects() {
        let pod = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]},
                         "status": {"phase": "Succeeded"}});
        assert_eq!(names(&usage("", "pods", &pod)), "count/pods=1");
    }

    #[test]
    fn services_count_load_balancers_and_node_ports() {
        let svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            names(&usage("", "services", &svc)),
            "count/services=1,services=1,services.loadbalancers=1,services.nodeports=2"
        );
        let deploy = json!({"spec": {}});
        assert_eq!(
            names(&usage("apps", "deployments", &deploy)),
            "count/deployments.apps=1"
        );
    }

    #[test]
    fn constraints_name_each_missing_resource_and_container() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1"}}},
            {"name": "b"}
        ]}});
        let hard: Vec<String> = ["limits.cpu", "limits.memory", "pods"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            pod_constraint_violation(&hard, &pod).as_deref(),
            Some("must specify limits.cpu for: b; limits.memory for: a,b")
        );
        let only_pods = vec!["pods".to_string()];
        assert_eq!(pod_constraint_violation(&only_pods, &pod), None);
    }

    #[test]
    fn scopes_select_pods_only() {
        let quota = json!({"spec": {"scopes": ["BestEffort"]}});
        let best_effort = json!({"spec": {"containers": [{"name": "a"}]}});
        let burstable = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}});
        assert!(scopes_match(&quota, "", "pods", &best_effort));
        assert!(!scopes_match(&quota, "", "pods", &burstable));
        assert!(!scopes_match(&quota, "", "services", &json!({})));
        let by_class = json!({"spec": {"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}
        ]}}});
        let high = json!({"spec": {"priorityClassName": "high", "containers": []}});
        assert!(scopes_match(&by_class, "", "pods", &high));
        assert!(!scopes_match(&by_class, "", "pods", &best_effort));
        assert!(tracks("", "pods", "requests.cpu"));
        assert!(!tracks("", "services", "requests.cpu"));
        assert!(tracks("apps", "deployments", "count/deployments.apps"));
    }
}
