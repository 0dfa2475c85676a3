//! Validation of the fields of particular kinds: ConfigMap and Secret keys,
//! sizes and immutability, label selectors, workload selectors against their
//! templates, and the pod spec basics (containers, names, images, restart
//! policy). A subset of upstream's checks, each with upstream's words.

use std::collections::HashSet;

use serde_json::Value;

use super::{
    ErrorType, FieldError, NameRule, is_dns1123_label, is_qualified_name, is_valid_label_value,
    validate_labels, validate_object_meta, validate_object_meta_update,
};
use crate::labels::LabelSelector;

/// The most bytes a ConfigMap's or Secret's data may hold.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

const IMMUTABLE: &str = "field is immutable when `immutable` is set";

/// A ConfigMap or Secret key (`IsConfigMapKey`).
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > super::DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(format!(
            "must be no more than {} characters",
            super::DNS1123_SUBDOMAIN_MAX_LENGTH
        ));
    }
    let valid = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !valid {
        errs.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_owned());
    }
    match value {
        "." => errs.push("must not be '.'".to_owned()),
        ".." => errs.push("must not be '..'".to_owned()),
        v if v.starts_with("..") => errs.push("must not start with '..'".to_owned()),
        _ => {}
    }
    errs
}

fn sorted_keys(m: Option<&Value>) -> Vec<(String, Value)> {
    let mut entries: Vec<(String, Value)> = m
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// The decoded length of a base64 value (`[]byte` fields travel as base64).
fn base64_len(v: &Value) -> usize {
    let s = v.as_str().unwrap_or_default();
    let padding = s.bytes().rev().take_while(|&c| c == b'=').count();
    (s.len() / 4 * 3).saturating_sub(padding)
}

/// `ValidateConfigMap`.
pub fn validate_config_map(obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        obj.get("metadata").unwrap_or(&Value::Null),
        true,
        NameRule::Dns1123Subdomain,
    );
    let binary = obj.get("binaryData").and_then(Value::as_object);
    let mut total = 0;
    for (key, value) in sorted_keys(obj.get("data")) {
        let path = format!("data[{key}]");
        for m in is_config_map_key(&key) {
            errs.push(FieldError::invalid(path.as_str(), key.as_str(), m));
        }
        if binary.is_some_and(|b| b.contains_key(&key)) {
            errs.push(FieldError::invalid(
                path.as_str(),
                key.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += value.as_str().map_or(0, str::len);
    }
    for (key, value) in sorted_keys(obj.get("binaryData")) {
        for m in is_config_map_key(&key) {
            errs.push(FieldError::invalid(
                format!("binaryData[{key}]"),
                key.as_str(),
                m,
            ));
        }
        total += base64_len(&value);
    }
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("", MAX_DATA_SIZE));
    }
    errs
}

/// `ValidateConfigMapUpdate`: an immutable ConfigMap keeps its data.
pub fn validate_config_map_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = meta_update(old, new);
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        if new.get("immutable").and_then(Value::as_bool) != Some(true) {
            errs.push(FieldError::forbidden("immutable", IMMUTABLE));
        }
        for field in ["data", "binaryData"] {
            if vacant_as_none(old.get(field)) != vacant_as_none(new.get(field)) {
                errs.push(FieldError::forbidden(field, IMMUTABLE));
            }
        }
    }
    errs.extend(validate_config_map(new));
    errs
}

/// `ValidateSecret`: keys, size, and the keys each type requires.
pub fn validate_secret(obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        obj.get("metadata").unwrap_or(&Value::Null),
        true,
        NameRule::Dns1123Subdomain,
    );
    let data = sorted_keys(obj.get("data"));
    let mut total = 0;
    for (key, value) in &data {
        for m in is_config_map_key(key) {
            errs.push(FieldError::invalid(format!("data[{key}]"), key.as_str(), m));
        }
        total += base64_len(value);
    }
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let has = |k: &str| data.iter().any(|(key, _)| key == k);
    let required =
        |errs: &mut Vec<FieldError>, path: &str| errs.push(FieldError::required(path, ""));
    match obj.get("type").and_then(Value::as_str).unwrap_or_default() {
        "kubernetes.io/service-account-token" => {
            let name = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if name.is_empty() {
                required(
                    &mut errs,
                    "metadata.annotations[kubernetes.io/service-account.name]",
                );
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => required(&mut errs, "data[.dockercfg]"),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            required(&mut errs, "data[.dockerconfigjson]");
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            // Upstream builds these paths from a format string it never fills.
            required(&mut errs, "data[%s][username]");
            required(&mut errs, "data[%s][password]");
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            required(&mut errs, "data[%s][ssh-privatekey]");
        }
        "kubernetes.io/tls" => {
            if !has("tls.crt") {
                required(&mut errs, "data[tls.crt]");
            }
            if !has("tls.key") {
                required(&mut errs, "data[tls.key]");
            }
        }
        _ => {}
    }
    errs
}

/// `ValidateSecretUpdate`: the type never changes; an immutable Secret keeps
/// its data.
pub fn validate_secret_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = meta_update(old, new);
    let old_type = old.get("type").cloned().unwrap_or(Value::Null);
    let new_type = match new.get("type") {
        None | Some(Value::Null) => old_type.clone(),
        Some(t) if t.as_str() == Some("") => old_type.clone(),
        Some(t) => t.clone(),
    };
    if new_type != old_type {
        errs.push(FieldError::invalid("type", new_type, "field is immutable"));
    }
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        if new.get("immutable").and_then(Value::as_bool) != Some(true) {
            errs.push(FieldError::forbidden("immutable", IMMUTABLE));
        }
        if vacant_as_none(old.get("data")) != vacant_as_none(new.get("data")) {
            errs.push(FieldError::forbidden("data", IMMUTABLE));
        }
    }
    errs.extend(validate_secret(new));
    errs
}

/// Go compares maps where nil and empty are equal after a round trip.
fn vacant_as_none(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !(v.is_null() || v.as_object().is_some_and(|m| m.is_empty())))
}

fn meta_update(old: &Value, new: &Value) -> Vec<FieldError> {
    validate_object_meta_update(
        old.get("metadata").unwrap_or(&Value::Null),
        new.get("metadata").unwrap_or(&Value::Null),
    )
}

/// `ValidateLabelSelector` for a `metav1.LabelSelector` at `path`.
pub fn validate_label_selector(selector: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = validate_labels(
        selector.get("matchLabels").unwrap_or(&Value::Null),
        &format!("{path}.matchLabels"),
    );
    let exprs = selector.get("matchExpressions").and_then(Value::as_array);
    for (i, expr) in exprs.into_iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        let values = expr.get("values").and_then(Value::as_array);
        let has_values = values.is_some_and(|v| !v.is_empty());
        match expr
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "In" | "NotIn" if !has_values => errs.push(FieldError::required(
                format!("{at}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if has_values => errs.push(FieldError::forbidden(
                format!("{at}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                format!("{at}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
        errs.extend(
            is_qualified_name(key)
                .into_iter()
                .map(|m| FieldError::invalid(format!("{at}.key"), key, m)),
        );
        for (j, v) in values.into_iter().flatten().enumerate() {
            let v = v.as_str().unwrap_or_default();
            errs.extend(
                is_valid_label_value(v)
                    .into_iter()
                    .map(|m| FieldError::invalid(format!("{at}.values[{j}]"), v, m)),
            );
        }
    }
    errs
}

/// The selector and template checks of Deployments, ReplicaSets,
/// StatefulSets and DaemonSets (`spec.selector`, `spec.template`,
/// `spec.replicas`), and the template's pod spec basics.
pub fn validate_workload_spec(kind: &str, spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(replicas) = spec.get("replicas").and_then(Value::as_i64)
        && replicas < 0
    {
        errs.push(FieldError::invalid(
            "spec.replicas",
            replicas,
            "must be greater than or equal to 0",
        ));
    }
    let selector = spec.get("selector").filter(|s| !s.is_null());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(s) => {
            errs.extend(validate_label_selector(s, "spec.selector"));
            let empty = s
                .get("matchLabels")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
                && s.get("matchExpressions")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
            if empty {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    s.clone(),
                    // Upstream's ReplicaSet check says "deployment" too.
                    format!(
                        "empty selector is invalid for {}",
                        match kind {
                            "ReplicaSet" => "deployment".to_owned(),
                            other => other.to_lowercase(),
                        }
                    ),
                ));
            }
        }
    }
    let labels = spec
        .pointer("/template/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(s) = selector
        && let Ok(sel) = LabelSelector::from_object(s)
        && !sel.is_empty()
        && !sel.matches(labels.as_object().unwrap_or(&serde_json::Map::new()))
    {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            labels.clone(),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(template_spec) = spec.pointer("/template/spec") {
        errs.extend(validate_pod_spec(template_spec, "spec.template.spec"));
        // Controllers restart pods themselves: only `Always` (Jobs: never).
        let allowed: &[&str] = if kind == "Job" {
            &["OnFailure", "Never"]
        } else {
            &["Always"]
        };
        let policy = template_spec
            .get("restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !policy.is_empty() && !allowed.contains(&policy) {
            errs.push(FieldError::not_supported(
                "spec.template.spec.restartPolicy",
                policy,
                allowed,
            ));
        }
    }
    errs
}

/// The basics of `ValidatePodSpec`: at least one container, container
/// names (DNS labels, unique), images, restart and DNS policies.
pub fn validate_pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names = HashSet::new();
    for key in ["initContainers", "containers"] {
        let list = spec.get(key).and_then(Value::as_array);
        for (i, c) in list.into_iter().flatten().enumerate() {
            let at = format!("{path}.{key}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                errs.push(FieldError::required(format!("{at}.name"), ""));
            } else {
                errs.extend(
                    is_dns1123_label(name)
                        .into_iter()
                        .map(|m| FieldError::invalid(format!("{at}.name"), name, m)),
                );
                if !names.insert(name.to_owned()) {
                    errs.push(FieldError::new(
                        ErrorType::Duplicate,
                        format!("{at}.name"),
                        Value::String(name.to_owned()),
                        "",
                    ));
                }
            }
            if c.get("image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .is_empty()
            {
                errs.push(FieldError::required(format!("{at}.image"), ""));
            }
        }
    }
    let policies: [(&str, &[&str]); 2] = [
        ("restartPolicy", &["Always", "OnFailure", "Never"]),
        (
            "dnsPolicy",
            &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        ),
    ];
    for (field, allowed) in policies {
        match spec.get(field).and_then(Value::as_str) {
            None | Some("") => errs.push(FieldError::required(format!("{path}.{field}"), "")),
            Some(v) if !allowed.contains(&v) => {
                errs.push(FieldError::not_supported(
                    format!("{path}.{field}"),
                    v,
                    allowed,
                ));
            }
            Some(_) => {}
        }
    }
    errs
}
