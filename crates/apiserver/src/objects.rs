//! Object semantics shared by the write paths: type checking and pruning,
//! system metadata (uid, timestamps, generation, resourceVersion), and the
//! rules that keep an update from changing what it may not.

use serde_json::{Map, Value, json};

use crate::registry::{CodecError, ResourceType};
use crate::status::{ApiError, ApiResult, Cause};

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `fieldValidation`: what to do with unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn (upstream's default).
    Warn,
    /// Refuse the request.
    Strict,
}

impl FieldValidation {
    /// From the query parameter (upstream's default is Warn).
    pub(crate) fn parse(value: Option<&String>) -> ApiResult<Self> {
        match value.map(String::as_str) {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

/// Checks `object` against its kind's type and drops unknown fields.
/// Returns the warnings to send (for `Warn`).
pub(crate) fn check_type(
    resource: &ResourceType,
    object: &mut Value,
    validation: FieldValidation,
) -> ApiResult<Vec<String>> {
    let name = object_name(object).unwrap_or_default();
    let (typed, unknown) = match (resource.codec)(object) {
        Ok(ok) => ok,
        Err(err) => return Err(decode_error(resource, &name, &err)),
    };
    let messages: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    if validation == FieldValidation::Strict && !messages.is_empty() {
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            messages.join(", ")
        )));
    }
    *object = typed;
    Ok(if validation == FieldValidation::Warn {
        messages
    } else {
        Vec::new()
    })
}

/// A body that does not fit the type: a missing required field is a 422 with
/// the field's path; anything else a 400, as upstream's decoder reports it.
fn decode_error(resource: &ResourceType, name: &str, err: &CodecError) -> ApiError {
    if let Some(field) = err
        .message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let path = if err.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", err.path)
        };
        return ApiError::invalid(
            resource.kind,
            resource.group,
            name,
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: path,
            }],
        );
    }
    let at = if err.path.is_empty() {
        String::new()
    } else {
        format!(" at {}", err.path)
    };
    ApiError::bad_request(format!(
        "{} in version \"{}\" cannot be handled as a {}: {}{at}",
        resource.kind, resource.version, resource.kind, err.message
    ))
}

/// `metadata.name`, if set.
pub(crate) fn object_name(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// `metadata`, created if missing.
pub(crate) fn metadata(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// Checks `apiVersion`/`kind` against the resource, filling them if absent.
pub(crate) fn check_type_meta(resource: &ResourceType, object: &mut Value) -> ApiResult<()> {
    if !object.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request is not a JSON object",
        ));
    }
    let api_version = resource.api_version();
    match object.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => object["apiVersion"] = json!(api_version),
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match object.get("kind").and_then(Value::as_str) {
        None | Some("") => object["kind"] = json!(resource.kind),
        Some(k) if k == resource.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )));
        }
    }
    Ok(())
}

/// Makes `metadata.namespace` agree with the request path.
pub(crate) fn check_namespace(
    resource: &ResourceType,
    object: &mut Value,
    namespace: Option<&str>,
) -> ApiResult<()> {
    let meta = metadata(object);
    if !resource.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let Some(namespace) = namespace else {
        return Err(ApiError::bad_request(
            "a namespace is required for this resource",
        ));
    };
    match meta.get("namespace").and_then(Value::as_str) {
        None | Some("") => {
            meta.insert("namespace".into(), json!(namespace));
            Ok(())
        }
        Some(ns) if ns == namespace => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
}

/// Sets a generated name from `generateName` when no name was given.
pub(crate) fn generate_name(object: &mut Value) {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let meta = metadata(object);
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if has_name {
        return;
    }
    if let Some(base) = meta.get("generateName").and_then(Value::as_str) {
        let base: String = base.chars().take(58).collect();
        let suffix: String = (0..5)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect();
        meta.insert("name".into(), json!(format!("{base}{suffix}")));
    }
}

/// Validates metadata (name rules, labels, annotations) and returns the
/// field errors as causes.
pub(crate) fn validate_metadata(resource: &ResourceType, object: &Value) -> Vec<Cause> {
    use bulwark_api::validation::{NameRule, validate_object_meta};
    let rule = match resource.kind {
        "Namespace" | "Service" => NameRule::Dns1123Label,
        _ => NameRule::Dns1123Subdomain,
    };
    let meta = object.get("metadata").cloned().unwrap_or(json!({}));
    validate_object_meta(&meta, resource.namespaced, rule)
        .iter()
        .map(|e| {
            let cause = e.to_cause();
            Cause {
                reason: cause["reason"]
                    .as_str()
                    .unwrap_or("FieldValueInvalid")
                    .to_owned(),
                message: cause["message"].as_str().unwrap_or_default().to_owned(),
                field: cause["field"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

/// Stamps the system fields of a new object.
pub(crate) fn initialize(resource: &ResourceType, object: &mut Value) {
    let has_spec = object.get("spec").is_some();
    let meta = metadata(object);
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(field);
    }
    if resource.has_spec_generation() && has_spec {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
}

/// Carries over what an update may not change and bumps `generation` when
/// the spec changed.
pub(crate) fn preserve_on_update(resource: &ResourceType, old: &Value, new: &mut Value) {
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old.pointer(&format!("/metadata/{field}")) {
            Some(value) => {
                metadata(new).insert(field.into(), value.clone());
            }
            None => {
                metadata(new).remove(field);
            }
        }
    }
    if resource.has_spec_generation() && old.get("spec") != new.get("spec") {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        metadata(new).insert("generation".into(), json!(generation + 1));
    }
}

/// Sets `metadata.resourceVersion` from the store revision.
pub(crate) fn set_resource_version(object: &mut Value, revision: i64) {
    metadata(object).insert("resourceVersion".into(), json!(revision.to_string()));
}

/// ConfigMaps and Secrets marked `immutable: true` keep their data; Jobs
/// their selector and completion mode; Nodes their pod CIDRs.
pub(crate) fn check_immutable(resource: &ResourceType, old: &Value, new: &Value) -> ApiResult<()> {
    let kind_rules = match (resource.group, resource.kind) {
        ("batch", "Job") => Some(job_immutable as fn(&Value, &Value) -> Vec<Cause>),
        ("", "Node") => Some(node_immutable as fn(&Value, &Value) -> Vec<Cause>),
        _ => None,
    };
    if let Some(rules) = kind_rules {
        let causes = rules(old, new);
        if causes.is_empty() {
            return Ok(());
        }
        let name = object_name(new).unwrap_or_default();
        return Err(ApiError::invalid(
            resource.kind,
            resource.group,
            &name,
            causes,
        ));
    }
    if !matches!(resource.kind, "ConfigMap" | "Secret")
        || old.get("immutable") != Some(&json!(true))
    {
        return Ok(());
    }
    let mut causes = Vec::new();
    for field in ["data", "binaryData", "stringData"] {
        if old.get(field) != new.get(field) {
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: field is immutable when `immutable` is set".into(),
                field: field.into(),
            });
        }
    }
    if new.get("immutable") != Some(&json!(true)) {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: field is immutable when `immutable` is set".into(),
            field: "immutable".into(),
        });
    }
    if causes.is_empty() {
        Ok(())
    } else {
        let name = object_name(new).unwrap_or_default();
        Err(ApiError::invalid(
            resource.kind,
            resource.group,
            &name,
            causes,
        ))
    }
}

/// A stored object as a list item: `resourceVersion` stamped, `kind` and
/// `apiVersion` dropped (as upstream lists items), without decoding more
/// than the top level and `metadata`.
pub(crate) fn list_item_json(
    stored: &[u8],
    revision: i64,
) -> Result<bytes::Bytes, serde_json::Error> {
    use serde_json::value::RawValue;
    use std::collections::BTreeMap;
    let mut top: BTreeMap<&str, &RawValue> = serde_json::from_slice(stored)?;
    top.remove("apiVersion");
    top.remove("kind");
    let mut meta: BTreeMap<&str, &RawValue> = match top.get("metadata") {
        Some(raw) => serde_json::from_str(raw.get())?,
        None => BTreeMap::new(),
    };
    let rv = RawValue::from_string(format!("\"{revision}\""))?;
    meta.insert("resourceVersion", &rv);
    let meta = RawValue::from_string(serde_json::to_string(&meta)?)?;
    top.insert("metadata", &meta);
    serde_json::to_vec(&top).map(bytes::Bytes::from)
}

/// An object (already stamped) as a list item.
pub(crate) fn value_list_item(object: &Value) -> bytes::Bytes {
    let mut text = match object {
        Value::Object(members) => serde_json::to_vec(&WithoutTypeMeta(members)),
        other => serde_json::to_vec(other),
    }
    .unwrap_or_default();
    // Kept for as long as the object is cached: no spare capacity.
    text.shrink_to_fit();
    bytes::Bytes::from(text)
}

/// An object's members but `kind` and `apiVersion`, serialized without
/// copying the object first.
struct WithoutTypeMeta<'a>(&'a serde_json::Map<String, Value>);

impl serde::Serialize for WithoutTypeMeta<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.0 {
            if name != "kind" && name != "apiVersion" {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

/// What may not change in a Job's spec (upstream's `ValidateJobUpdate`,
/// the fields its controller relies on): the selector the server
/// generated and how it counts completions. (This runs before defaulting,
/// so an omitted `completionMode` is left to it.)
fn job_immutable(old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for field in ["selector", "completionMode"] {
        let before = old.pointer(&format!("/spec/{field}"));
        let after = new.pointer(&format!("/spec/{field}"));
        let defaulted_later = field == "completionMode" && after.is_none();
        if before != after && !defaulted_later {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {}: field is immutable",
                    after.cloned().unwrap_or(Value::Null)
                ),
                field: format!("spec.{field}"),
            });
        }
    }
    causes
}

/// A Node's pod CIDRs, once set, stay (upstream's `ValidateNodeUpdate`:
/// the node IPAM controller may assign them to a node that has none). The
/// pod network routes a range to the node holding it: a node that could
/// change its own range could take over another node's pods' traffic.
fn node_immutable(old: &Value, new: &Value) -> Vec<Cause> {
    // podCIDRs, or the single podCIDR a client that predates it sent.
    let cidrs = |node: &Value| -> Vec<Value> {
        match node.pointer("/spec/podCIDRs").and_then(Value::as_array) {
            Some(list) if !list.is_empty() => list.clone(),
            _ => node
                .pointer("/spec/podCIDR")
                .filter(|c| c.as_str().is_some_and(|c| !c.is_empty()))
                .cloned()
                .into_iter()
                .collect(),
        }
    };
    let before = cidrs(old);
    if before.is_empty() || before == cidrs(new) {
        return Vec::new();
    }
    vec![Cause {
        reason: "FieldValueForbidden".into(),
        message: "Forbidden: node updates may not change podCIDR except from \"\" to valid".into(),
        field: "spec.podCIDRs".into(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_keeps_its_pod_cidrs_once_set() {
        let node = |spec: Value| json!({"metadata": {"name": "n1"}, "spec": spec});
        let unset = node(json!({}));
        let set = node(json!({"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24"]}));
        assert!(
            node_immutable(&unset, &set).is_empty(),
            "from none to one is the IPAM controller's job"
        );
        assert!(node_immutable(&set, &set).is_empty());
        assert!(node_immutable(&set, &node(json!({"podCIDR": "10.42.1.0/24"}))).is_empty());
        for changed in [
            node(json!({"podCIDR": "10.42.2.0/24", "podCIDRs": ["10.42.2.0/24"]})),
            node(json!({})),
            node(json!({"podCIDRs": ["10.42.1.0/24", "fd00::/64"]})),
        ] {
            let causes = node_immutable(&set, &changed);
            assert_eq!(causes.len(), 1, "{changed}");
            assert_eq!(causes[0].field, "spec.podCIDRs");
            assert_eq!(
                causes[0].message,
                "Forbidden: node updates may not change podCIDR except from \"\" to valid"
            );
        }
    }

    #[test]
    fn list_items_are_stamped_and_untyped_without_full_decoding() {
        let stored = br#"{"apiVersion":"v1","data":{"a":"b"},"kind":"ConfigMap","metadata":{"name":"c","uid":"u"}}"#;
        let item = list_item_json(stored, 42).unwrap();
        let value: Value = serde_json::from_slice(&item).unwrap();
        assert_eq!(
            value,
            json!({"data": {"a": "b"}, "metadata": {"name": "c", "uid": "u", "resourceVersion": "42"}})
        );
        assert_eq!(
            value_list_item(&json!({"kind": "X", "apiVersion": "v1", "metadata": {}})),
            "{\"metadata\":{}}"
        );
    }

    #[test]
    fn a_job_keeps_its_selector() {
        let old = json!({"spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
            "completionMode": "NonIndexed", "parallelism": 1}});
        let mut scaled = old.clone();
        scaled["spec"]["parallelism"] = json!(3);
        assert!(job_immutable(&old, &scaled).is_empty());
        let replaced = json!({"spec": {"completionMode": "NonIndexed", "parallelism": 1}});
        let causes = job_immutable(&old, &replaced);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.selector");
        assert_eq!(causes[0].message, "Invalid value: null: field is immutable");
    }
}
