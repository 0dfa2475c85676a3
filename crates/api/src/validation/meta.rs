//! `ObjectMeta` validation for creates, as upstream's `ValidateObjectMeta`.

use serde_json::Value;

use super::{
    FieldError, TOTAL_ANNOTATION_SIZE_LIMIT, is_dns1035_label, is_dns1123_label,
    is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
};

/// Which rule an object's name follows (upstream's `ValidateNameFunc`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// `NameIsDNSSubdomain`: most kinds.
    Dns1123Subdomain,
    /// `NameIsDNSLabel`: namespaces, stateful sets.
    Dns1123Label,
    /// `NameIsDNS1035Label`: services.
    Dns1035Label,
    /// `IsValidPathSegmentName`: RBAC roles and bindings.
    PathSegment,
}

impl NameRule {
    /// The rule upstream applies to names of a kind.
    pub fn for_kind(api_version: &str, kind: &str) -> NameRule {
        match (api_version, kind) {
            ("v1", "Namespace") | ("apps/v1", "StatefulSet") => NameRule::Dns1123Label,
            ("v1", "Service") => NameRule::Dns1035Label,
            (
                "rbac.authorization.k8s.io/v1",
                "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
            ) => NameRule::PathSegment,
            _ => NameRule::Dns1123Subdomain,
        }
    }

    /// Checks a name, or a `generateName` prefix (`prefix = true`), which may
    /// end with `-`.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        if self == NameRule::PathSegment {
            return path_segment(name, prefix);
        }
        let masked;
        let name = if prefix && name.len() > 1 && name.ends_with('-') {
            // Upstream replaces the last two bytes with "a" (bytes, so this
            // may cut a character: the name is invalid then anyway).
            let kept = &name.as_bytes()[..name.len() - 2];
            masked = format!("{}a", String::from_utf8_lossy(kept));
            masked.as_str()
        } else {
            name
        };
        match self {
            NameRule::Dns1123Label => is_dns1123_label(name),
            NameRule::Dns1035Label => is_dns1035_label(name),
            NameRule::Dns1123Subdomain | NameRule::PathSegment => is_dns1123_subdomain(name),
        }
    }
}

/// `IsValidPathSegmentName` (and its prefix variant).
fn path_segment(name: &str, prefix: bool) -> Vec<String> {
    if !prefix && let Some(bad) = [".", ".."].into_iter().find(|b| *b == name) {
        return vec![format!("may not be '{bad}'")];
    }
    ["/", "%"]
        .into_iter()
        .filter(|c| name.contains(c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

/// `metadata.labels`: keys are qualified names, values label values.
pub fn validate_labels(labels: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(labels) = labels.as_object() else {
        return errs;
    };
    let mut keys: Vec<&String> = labels.keys().collect();
    keys.sort();
    for k in keys {
        errs.extend(
            is_qualified_name(k)
                .into_iter()
                .map(|m| FieldError::invalid(path, k.as_str(), m)),
        );
        let v = labels[k.as_str()].as_str().unwrap_or_default();
        errs.extend(
            is_valid_label_value(v)
                .into_iter()
                .map(|m| FieldError::invalid(path, v, m)),
        );
    }
    errs
}

/// `metadata.annotations`: keys are qualified names (any case), and keys and
/// values together hold at most [`TOTAL_ANNOTATION_SIZE_LIMIT`] bytes.
pub fn validate_annotations(annotations: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(annotations) = annotations.as_object() else {
        return errs;
    };
    let mut keys: Vec<&String> = annotations.keys().collect();
    keys.sort();
    let mut total = 0usize;
    for k in keys {
        errs.extend(
            is_qualified_name(&k.to_lowercase())
                .into_iter()
                .map(|m| FieldError::invalid(path, k.as_str(), m)),
        );
        total += k.len() + annotations[k.as_str()].as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// `ValidateObjectMeta` for a create: name (or generateName), namespace,
/// generation, labels, annotations, owner references, finalizers.
pub fn validate_object_meta(meta: &Value, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let text = |k: &str| meta.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut errs = Vec::new();
    let generate_name = text("generateName");
    if !generate_name.is_empty() {
        errs.extend(
            rule.check(generate_name, true)
                .into_iter()
                .map(|m| FieldError::invalid("metadata.generateName", generate_name, m)),
        );
    }
    let name = text("name");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        errs.extend(
            rule.check(name, false)
                .into_iter()
                .map(|m| FieldError::invalid("metadata.name", name, m)),
        );
    }
    let namespace = text("namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            errs.extend(
                is_dns1123_label(namespace)
                    .into_iter()
                    .map(|m| FieldError::invalid("metadata.namespace", namespace, m)),
            );
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    if let Some(generation) = meta.get("generation").and_then(Value::as_i64)
        && generation < 0
    {
        errs.push(FieldError::invalid(
            "metadata.generation",
            generation,
            "must be greater than or equal to 0",
        ));
    }
    errs.extend(validate_labels(
        meta.get("labels").unwrap_or(&Value::Null),
        "metadata.labels",
    ));
    errs.extend(validate_annotations(
        meta.get("annotations").unwrap_or(&Value::Null),
        "metadata.annotations",
    ));
    errs.extend(validate_owner_references(meta.get("ownerReferences")));
    errs.extend(validate_finalizers(meta.get("finalizers")));
    errs
}

fn validate_owner_references(refs: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(refs) = refs.and_then(Value::as_array) else {
        return errs;
    };
    let mut first_controller: Option<String> = None;
    for (i, r) in refs.iter().enumerate() {
        let path = format!("metadata.ownerReferences[{i}]");
        let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
        let api_version = text("apiVersion");
        if api_version.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.apiVersion"),
                "must not be empty",
            ));
        } else if !valid_group_version(api_version) {
            errs.push(FieldError::invalid(
                format!("{path}.apiVersion"),
                api_version,
                "must be <group>/<version> or <version>",
            ));
        }
        for k in ["kind", "name", "uid"] {
            if text(k).is_empty() {
                errs.push(FieldError::required(
                    format!("{path}.{k}"),
                    "must not be empty",
                ));
            }
        }
        if api_version == "v1" && text("kind") == "Event" {
            errs.push(FieldError::invalid(
                path.as_str(),
                r.clone(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let this = format!("{}/{}", text("kind"), text("name"));
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    "metadata.ownerReferences",
                    Value::Array(refs.clone()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => first_controller = Some(this),
            }
        }
    }
    errs
}

/// `schema.ParseGroupVersion` accepts `v`, `g/v`; not more slashes, not an
/// empty version.
fn valid_group_version(s: &str) -> bool {
    match s.split('/').collect::<Vec<_>>().as_slice() {
        [v] => !v.is_empty(),
        [_, v] => !v.is_empty(),
        _ => false,
    }
}

fn validate_finalizers(finalizers: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(list) = finalizers.and_then(Value::as_array) else {
        return errs;
    };
    let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    for f in &names {
        errs.extend(
            is_qualified_name(f)
                .into_iter()
                .map(|m| FieldError::invalid("metadata.finalizers", *f, m)),
        );
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        errs.push(FieldError::invalid(
            "metadata.finalizers",
            Value::Array(list.clone()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// `ValidateObjectMetaUpdate`: what an update may not change in metadata.
/// (Upstream also requires `resourceVersion`; the server checks that.)
pub fn validate_object_meta_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let null = Value::Null;
    let get = |m: &'_ Value, k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    if !get(old, "deletionTimestamp").is_null() {
        let old_fin: Vec<&str> = old
            .get("finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut added: Vec<&str> = new
            .get("finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|f| !old_fin.contains(f))
            .collect();
        added.sort_unstable();
        added.dedup();
        if !added.is_empty() {
            let quoted: Vec<String> = added.iter().map(|f| super::go_quote(f)).collect();
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    quoted.join(", ")
                ),
            ));
        }
    }
    let generation = |m: &Value| m.get("generation").and_then(Value::as_i64).unwrap_or(0);
    if generation(new) < 0 {
        errs.push(FieldError::invalid(
            "metadata.generation",
            generation(new),
            "must be greater than or equal to 0",
        ));
    }
    if generation(new) < generation(old) {
        errs.push(FieldError::invalid(
            "metadata.generation",
            generation(new),
            "must not be decremented",
        ));
    }
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        let (o, n) = (get(old, field), get(new, field));
        let vacant = |v: &Value| v.is_null() || v.as_str() == Some("");
        if o != n && !(vacant(&o) && vacant(&n)) {
            errs.push(FieldError::invalid(
                format!("metadata.{field}"),
                n,
                "field is immutable",
            ));
        }
    }
    errs.extend(validate_labels(
        new.get("labels").unwrap_or(&null),
        "metadata.labels",
    ));
    errs.extend(validate_annotations(
        new.get("annotations").unwrap_or(&null),
        "metadata.annotations",
    ));
    errs.extend(validate_owner_references(new.get("ownerReferences")));
    errs
}
