//! Defaulting: upstream's `SetDefaults_*` (in `bulwark-api`), plus what
//! upstream's registry strategies fill in on create, so `kubectl get -o
//! yaml` shows what a Kubernetes user expects.

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// Fills defaults into a new or updated object of `resource`'s kind:
/// upstream's `SetDefaults_*` (from `bulwark-api`), then what upstream's
/// registry strategies set on top (pod and namespace status, namespace
/// finalizers and name label, Secrets' `stringData`).
pub(crate) fn apply(resource: &ResourceType, object: &mut Value) {
    bulwark_api::defaults::apply_defaults(&resource.api_version(), resource.kind, object);
    match (resource.group, resource.kind) {
        ("", "Pod") => {
            set_if_absent(object, "status", json!({}));
            set_if_absent(&mut object["status"], "phase", json!("Pending"));
            let qos = qos_class(&object["spec"]);
            set_if_absent(&mut object["status"], "qosClass", json!(qos));
        }
        ("", "Namespace") => {
            let name = object
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(labels) = labels.as_object_mut() {
                    labels.insert("kubernetes.io/metadata.name".into(), name);
                }
            }
            set_if_absent(object, "spec", json!({}));
            set_if_absent(&mut object["spec"], "finalizers", json!(["kubernetes"]));
            set_if_absent(object, "status", json!({}));
            set_if_absent(&mut object["status"], "phase", json!("Active"));
        }
        ("", "Service") => set_if_absent(object, "status", json!({"loadBalancer": {}})),
        ("", "Secret") => secret(object),
        _ => {}
    }
}

/// What upstream's strategies do to a new object once it has its uid
/// (`PrepareForCreate` and the Job strategy's selector generation): a Job
/// without `manualSelector: true` selects its own pods by its uid, and its
/// template carries the labels that make them match.
pub(crate) fn on_create(resource: &ResourceType, object: &mut Value) {
    if (resource.group, resource.kind) == ("batch", "Job") {
        job_selector(object);
    }
}

fn job_selector(object: &mut Value) {
    if object.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let uid = object
        .pointer("/metadata/uid")
        .cloned()
        .unwrap_or(Value::Null);
    let name = object
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = spec.entry("template").or_insert_with(|| json!({}));
    set_if_absent(template, "metadata", json!({}));
    set_if_absent(&mut template["metadata"], "labels", json!({}));
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.insert("batch.kubernetes.io/controller-uid".into(), uid.clone());
        labels.insert("batch.kubernetes.io/job-name".into(), name.clone());
        labels.insert("controller-uid".into(), uid);
        labels.insert("job-name".into(), name);
    }
}

fn set_if_absent(object: &mut Value, field: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.entry(field).or_insert(value);
    }
}

/// The QoS class upstream derives from requests and limits.
pub(crate) fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c.pointer("/resources/requests");
        let limits = c.pointer("/resources/limits");
        for resource in ["cpu", "memory"] {
            let req = requests.and_then(|r| r.get(resource));
            let lim = limits.and_then(|l| l.get(resource));
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// `stringData` is write-only: merged into `data` (base64) and dropped.
fn secret(object: &mut Value) {
    use base64::Engine as _;
    set_if_absent(object, "type", json!("Opaque"));
    let Some(Value::Object(string_data)) =
        object.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    set_if_absent(object, "data", json!({}));
    if let Some(data) = object["data"].as_object_mut() {
        for (key, value) in string_data {
            let text = value.as_str().unwrap_or_default();
            data.insert(
                key,
                json!(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        let best = json!({"containers": [{"name": "a"}]});
        let guaranteed = json!({"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]});
        let burstable =
            json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(&best), "BestEffort");
        assert_eq!(qos_class(&guaranteed), "Guaranteed");
        assert_eq!(qos_class(&burstable), "Burstable");
    }

    #[test]
    fn a_job_selects_its_pods_by_uid_unless_the_selector_is_manual() {
        let mut job = json!({"metadata": {"name": "pi", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "pi"}}}}});
        job_selector(&mut job);
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}})
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"app": "pi", "batch.kubernetes.io/controller-uid": "u1",
                "batch.kubernetes.io/job-name": "pi", "controller-uid": "u1", "job-name": "pi"})
        );
        let mut manual = json!({"metadata": {"name": "m", "uid": "u2"},
            "spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}});
        let before = manual.clone();
        job_selector(&mut manual);
        assert_eq!(manual, before);
    }
}
