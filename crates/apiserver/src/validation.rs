//! Kind-specific validation: the required fields and the rules upstream's
//! `Validate*` functions enforce that users meet first. Every failure is
//! collected, so one 422 lists them all.

use std::collections::HashSet;

use bulwark_api::validation::{is_dns1123_label, is_dns1123_subdomain};
use serde_json::Value;

use crate::registry::ResourceType;
use crate::status::Cause;

fn required(field: impl Into<String>) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: field.into(),
    }
}

fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {detail}"),
        field: field.into(),
    }
}

fn duplicate(field: impl Into<String>, value: &Value) -> Cause {
    Cause {
        reason: "FieldValueDuplicate".into(),
        message: format!("Duplicate value: {value}"),
        field: field.into(),
    }
}

fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    Cause {
        reason: "FieldValueNotSupported".into(),
        message: format!(
            "Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ),
        field: field.into(),
    }
}

/// Validates an object of `resource`'s kind after defaulting.
pub(crate) fn validate(resource: &ResourceType, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match (resource.group, resource.kind) {
        ("", "Pod") => pod_spec(object.get("spec"), "spec", &mut causes),
        ("", "PodTemplate") => template(object.get("template"), "template", None, &mut causes),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            workload(object, &mut causes)
        }
        ("batch", "Job") => template(
            object.pointer("/spec/template"),
            "spec.template",
            None,
            &mut causes,
        ),
        ("batch", "CronJob") => {
            if object
                .pointer("/spec/schedule")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(required("spec.schedule"));
            }
            template(
                object.pointer("/spec/jobTemplate/spec/template"),
                "spec.jobTemplate.spec.template",
                None,
                &mut causes,
            );
        }
        ("", "Service") => service(object, &mut causes),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            causes.extend(crate::csr::validate(object));
        }
        ("", "ConfigMap") => from_api(
            bulwark_api::validation::validate_config_map(object),
            &mut causes,
        ),
        ("", "Secret") => from_api(
            bulwark_api::validation::validate_secret(object),
            &mut causes,
        ),
        _ => {}
    }
    causes
}

/// Field errors from `bulwark-api`'s kind validators, without the metadata
/// ones (reported already by the metadata check).
fn from_api(errors: Vec<bulwark_api::validation::FieldError>, causes: &mut Vec<Cause>) {
    for error in errors {
        let cause = error.to_cause();
        let field = cause["field"].as_str().unwrap_or_default().to_owned();
        if field.starts_with("metadata") {
            continue;
        }
        causes.push(Cause {
            reason: cause["reason"]
                .as_str()
                .unwrap_or("FieldValueInvalid")
                .to_owned(),
            message: cause["message"].as_str().unwrap_or_default().to_owned(),
            field,
        });
    }
}

fn workload(object: &Value, causes: &mut Vec<Cause>) {
    let selector = object.pointer("/spec/selector");
    let match_labels = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object);
    let has_expressions = selector
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty());
    if match_labels.is_none_or(|m| m.is_empty()) && !has_expressions {
        causes.push(required("spec.selector"));
    }
    if let Some(replicas) = object.pointer("/spec/replicas").and_then(Value::as_i64)
        && replicas < 0
    {
        causes.push(invalid(
            "spec.replicas",
            &Value::from(replicas),
            "must be greater than or equal to 0",
        ));
    }
    template(
        object.pointer("/spec/template"),
        "spec.template",
        match_labels,
        causes,
    );
}

fn template(
    template: Option<&Value>,
    path: &str,
    selector: Option<&serde_json::Map<String, Value>>,
    causes: &mut Vec<Cause>,
) {
    let Some(template) = template else {
        causes.push(required(path));
        return;
    };
    if let Some(selector) = selector.filter(|s| !s.is_empty()) {
        let labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let matches = selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        if !matches {
            causes.push(invalid(
                format!("{path}.metadata.labels"),
                &template
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(Value::Null),
                "`selector` does not match template `labels`",
            ));
        }
    }
    pod_spec(template.get("spec"), &format!("{path}.spec"), causes);
}

fn pod_spec(spec: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec else {
        causes.push(required(path));
        return;
    };
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        causes.push(required(format!("{path}.containers")));
    }
    let mut names = HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{path}.{list}[{i}]");
            match c
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                None => causes.push(required(format!("{at}.name"))),
                Some(name) => {
                    let errors = is_dns1123_label(name);
                    if let Some(first) = errors.first() {
                        causes.push(invalid(format!("{at}.name"), &Value::from(name), first));
                    } else if !names.insert(name.to_owned()) {
                        causes.push(duplicate(format!("{at}.name"), &Value::from(name)));
                    }
                }
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(|i| i.trim().is_empty())
            {
                causes.push(required(format!("{at}.image")));
            }
            if let Some(policy) = c.get("imagePullPolicy")
                && !matches!(policy.as_str(), Some("Always" | "IfNotPresent" | "Never"))
            {
                causes.push(not_supported(
                    format!("{at}.imagePullPolicy"),
                    policy,
                    &["Always", "IfNotPresent", "Never"],
                ));
            }
        }
    }
    if let Some(policy) = spec.get("restartPolicy")
        && !matches!(policy.as_str(), Some("Always" | "OnFailure" | "Never"))
    {
        causes.push(not_supported(
            format!("{path}.restartPolicy"),
            policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(node) = spec
        .get("nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        && let Some(first) = is_dns1123_subdomain(node).first()
    {
        causes.push(invalid(
            format!("{path}.nodeName"),
            &Value::from(node),
            first,
        ));
    }
}

fn service(object: &Value, causes: &mut Vec<Cause>) {
    let headless = object.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    let kind = object
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let ports = object.pointer("/spec/ports").and_then(Value::as_array);
    if ports.is_none_or(|p| p.is_empty()) && !headless && kind != "ExternalName" {
        causes.push(required("spec.ports"));
    }
    for (i, port) in ports.into_iter().flatten().enumerate() {
        match port.get("port").and_then(Value::as_i64) {
            Some(1..=65535) => {}
            Some(other) => causes.push(invalid(
                format!("spec.ports[{i}].port"),
                &Value::from(other),
                "must be between 1 and 65535, inclusive",
            )),
            None => causes.push(required(format!("spec.ports[{i}].port"))),
        }
    }
    if !matches!(
        kind,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        causes.push(not_supported(
            "spec.type",
            &Value::from(kind),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn check(group: &str, plural: &str, object: Value) -> Vec<String> {
        let registry = Registry::builtin();
        let resource = registry.get(group, "v1", plural).unwrap();
        validate(&resource, &object)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn pods_need_named_containers_with_images() {
        let errors = check(
            "",
            "pods",
            json!({"spec": {"containers": [{"name": ""}, {"name": "Web", "image": "x"}]}}),
        );
        assert_eq!(
            errors,
            vec![
                "spec.containers[0].name: Required value",
                "spec.containers[0].image: Required value",
                "spec.containers[1].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ]
        );
        assert_eq!(
            check("", "pods", json!({"spec": {}})),
            vec!["spec.containers: Required value"]
        );
    }

    #[test]
    fn deployments_need_a_selector_matching_the_template() {
        let errors = check(
            "apps",
            "deployments",
            json!({"spec": {"selector": {"matchLabels": {"app": "a"}},
                   "template": {"metadata": {"labels": {"app": "b"}},
                                "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        );
        assert_eq!(
            errors,
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"b\"}: `selector` does not match template `labels`"
            ]
        );
    }
}
