//! LimitRanger, as upstream's admission plugin does it for pods: the
//! `Container` defaults of a namespace's LimitRanges (`default`,
//! `defaultRequest`) fill in what a new pod's containers leave out, then
//! every `Container` and `Pod` item's `min`, `max` and
//! `maxLimitRequestRatio` is checked, with upstream's messages
//! (`maximum cpu usage per Container is 1, but limit is 2`).
//!
//! The LimitRange objects are expected already defaulted (`default` from
//! `max`, `defaultRequest` from `default` or `min`, as the API server
//! stores them). Pure functions over JSON.
//!
//! ```
//! use bulwark_api::limitrange::{apply_defaults, violations};
//! use serde_json::json;
//!
//! let ranges = [json!({"spec": {"limits": [{"type": "Container",
//!     "max": {"cpu": "1"}, "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "500m"}}]}})];
//! let mut pod = json!({"spec": {"containers": [{"name": "app"}]}});
//! apply_defaults(&ranges, &mut pod);
//! assert_eq!(pod["spec"]["containers"][0]["resources"]["limits"]["cpu"], "500m");
//! pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!("2");
//! assert_eq!(violations(&ranges, &pod), ["maximum cpu usage per Container is 1, but limit is 2"]);
//! ```

use serde_json::{Map, Value, json};

use crate::quantity::Quantity;
use crate::quota::{ResourceList, pod_requests_and_limits, resource_list};

/// The annotation naming what LimitRanger filled in.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The items of type `kind` across all LimitRanges.
fn items<'a>(ranges: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    ranges
        .iter()
        .flat_map(|r| {
            r.pointer("/spec/limits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(move |item| item.get("type").and_then(Value::as_str) == Some(kind))
}

/// Fills in each container's missing requests and limits from the
/// `Container` items' `defaultRequest` and `default` (the first range that
/// names a resource wins), and records what it set in the
/// `kubernetes.io/limit-ranger` annotation. Returns whether it changed the pod.
pub fn apply_defaults(ranges: &[Value], pod: &mut Value) -> bool {
    let mut default_limits = ResourceList::new();
    let mut default_requests = ResourceList::new();
    for item in items(ranges, "Container") {
        for (name, q) in resource_list(item.get("default")) {
            default_limits.entry(name).or_insert(q);
        }
        for (name, q) in resource_list(item.get("defaultRequest")) {
            default_requests.entry(name).or_insert(q);
        }
    }
    if default_limits.is_empty() && default_requests.is_empty() {
        return false;
    }
    let mut notes = Vec::new();
    for (field, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(list) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for container in list {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let set_requests = fill(container, "requests", &default_requests);
            let set_limits = fill(container, "limits", &default_limits);
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {what} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
            }
        }
    }
    if notes.is_empty() {
        return false;
    }
    if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(
                ANNOTATION.into(),
                json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
            );
        }
    }
    true
}

/// Sets the defaults a container lacks under `resources.<field>`; returns
/// the names set, sorted.
fn fill(container: &mut Value, field: &str, defaults: &ResourceList) -> Vec<String> {
    if defaults.is_empty() {
        return Vec::new();
    }
    let Some(container) = container.as_object_mut() else {
        return Vec::new();
    };
    let resources = container
        .entry("resources")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(resources) = resources.as_object_mut() else {
        return Vec::new();
    };
    let list = resources
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(list) = list.as_object_mut() else {
        return Vec::new();
    };
    let mut set = Vec::new();
    for (name, q) in defaults {
        if !list.contains_key(name) {
            list.insert(name.clone(), json!(q.to_string()));
            set.push(name.clone());
        }
    }
    if list.is_empty() {
        resources.remove(field);
    }
    set
}

/// Every `min`, `max` and `maxLimitRequestRatio` a pod breaks, per
/// container (`Container` items) and for the whole pod (`Pod` items), in
/// upstream's words. Empty: the pod is within every range.
pub fn violations(ranges: &[Value], pod: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    for item in items(ranges, "Container") {
        for field in ["containers", "initContainers"] {
            for container in pod
                .pointer(&format!("/spec/{field}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let requests = resource_list(container.pointer("/resources/requests"));
                let limits = resource_list(container.pointer("/resources/limits"));
                check(item, "Container", &requests, &limits, &mut errors);
            }
        }
    }
    let pod_items: Vec<&Value> = items(ranges, "Pod").collect();
    if !pod_items.is_empty() {
        let (requests, limits) = pod_requests_and_limits(pod);
        for item in pod_items {
            check(item, "Pod", &requests, &limits, &mut errors);
        }
    }
    errors
}

/// Upstream's aggregate error text: one message as is, several as `[a, b]`.
pub fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

fn check(
    item: &Value,
    kind: &str,
    requests: &ResourceList,
    limits: &ResourceList,
    errors: &mut Vec<String>,
) {
    for (name, min) in resource_list(item.get("min")) {
        match (requests.get(&name), limits.get(&name)) {
            (None, _) => errors.push(format!(
                "minimum {name} usage per {kind} is {min}.  No request is specified"
            )),
            (Some(request), _) if *request < min => errors.push(format!(
                "minimum {name} usage per {kind} is {min}, but request is {request}"
            )),
            (_, Some(limit)) if *limit < min => errors.push(format!(
                "minimum {name} usage per {kind} is {min}, but limit is {limit}"
            )),
            _ => {}
        }
    }
    for (name, max) in resource_list(item.get("max")) {
        match (requests.get(&name), limits.get(&name)) {
            (_, None) => errors.push(format!(
                "maximum {name} usage per {kind} is {max}.  No limit is specified"
            )),
            (_, Some(limit)) if *limit > max => errors.push(format!(
                "maximum {name} usage per {kind} is {max}, but limit is {limit}"
            )),
            (Some(request), _) if *request > max => errors.push(format!(
                "maximum {name} usage per {kind} is {max}, but request is {request}"
            )),
            _ => {}
        }
    }
    for (name, ratio) in resource_list(item.get("maxLimitRequestRatio")) {
        let request = requests.get(&name).filter(|q| !q.is_zero());
        let limit = limits.get(&name).filter(|q| !q.is_zero());
        match (request, limit) {
            (None, _) => errors.push(format!(
                "{name} max limit to request ratio per {kind} is {ratio}, but no request is specified or request is 0"
            )),
            (_, None) => errors.push(format!(
                "{name} max limit to request ratio per {kind} is {ratio}, but no limit is specified or limit is 0"
            )),
            (Some(request), Some(limit)) => {
                let observed = milli(limit) / milli(request);
                if observed > milli(&ratio) / 1000.0 {
                    errors.push(format!(
                        "{name} max limit to request ratio per {kind} is {ratio}, but provided ratio is {observed:.6}"
                    ));
                }
            }
        }
    }
}

fn milli(q: &Quantity) -> f64 {
    q.milli_value() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges() -> Vec<Value> {
        vec![json!({"spec": {"limits": [
            {"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1", "memory": "1Gi"},
             "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "200m", "memory": "128Mi"},
             "maxLimitRequestRatio": {"cpu": "4"}},
            {"type": "Pod", "max": {"memory": "1Gi"}}
        ]}})]
    }

    #[test]
    fn defaults_fill_only_what_is_missing_and_are_annotated() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "800m"}, "requests": {"cpu": "300m"}}},
            {"name": "b"}
        ]}});
        assert!(apply_defaults(&ranges(), &mut pod));
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "800m", "memory": "256Mi"}, "requests": {"cpu": "300m", "memory": "128Mi"}})
        );
        assert_eq!(
            pod["spec"]["containers"][1]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "200m", "memory": "128Mi"}})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: memory request for container a; memory limit for container a; cpu, memory request for container b; cpu, memory limit for container b"
        );
        assert!(violations(&ranges(), &pod).is_empty());
    }

    #[test]
    fn min_max_and_ratio_use_upstreams_words() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"cpu": "50m", "memory": "1Gi"}}}
        ]}});
        assert_eq!(
            violations(&ranges(), &pod),
            [
                "minimum cpu usage per Container is 100m, but request is 50m",
                "maximum cpu usage per Container is 1, but limit is 2",
                "maximum memory usage per Container is 1Gi, but limit is 2Gi",
                "cpu max limit to request ratio per Container is 4, but provided ratio is 40.000000",
                "maximum memory usage per Pod is 1Gi, but limit is 2Gi",
            ]
        );
        let bare = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            violations(&ranges(), &bare),
            [
                "minimum cpu usage per Container is 100m.  No request is specified",
                "maximum cpu usage per Container is 1.  No limit is specified",
                "maximum memory usage per Container is 1Gi.  No limit is specified",
                "cpu max limit to request ratio per Container is 4, but no request is specified or request is 0",
                "maximum memory usage per Pod is 1Gi.  No limit is specified",
            ]
        );
        assert_eq!(aggregate(&["x".into()]), "x");
        assert_eq!(aggregate(&["x".into(), "y".into()]), "[x, y]");
    }
}
