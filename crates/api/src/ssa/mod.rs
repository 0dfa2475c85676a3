//! Server-side apply and field ownership (`metadata.managedFields`), after
//! structured-merge-diff and kube-apiserver's field manager.
//!
//! - [`apply`]: an `application/apply-patch+yaml` request: merges the applied
//!   configuration into the live object, drops the fields the manager applied
//!   last time and no longer does (unless someone else owns them), and
//!   refuses, unless forced, to change fields other managers own
//!   ([`ApplyError::Conflict`], a 409 with upstream's message).
//! - [`record_update`]: any other write (create, update, patch): the writer
//!   takes ownership of the fields it changed, others lose them; more than
//!   [`MAX_UPDATE_MANAGERS`] updaters merge into `ancient-changes`.
//! - [`field_set`] and [`FieldSet`]: the fields an object sets, and their
//!   `fieldsV1` encoding.
//!
//! Both strip the metadata paths kube-apiserver never records (name,
//! namespace, uid, resourceVersion, …), and a `kubectl` apply keeps the
//! client-side `last-applied-configuration` annotation in sync.
//!
//! Known simplifications: the schema is [`PatchSchema`]'s table (keyed lists,
//! sets, atomic lists and structs of the built-in kinds), so a map entry
//! holding an object is treated as a struct field and unknown kinds merge
//! with default rules; fields are not converted between API versions; the
//! caller decodes YAML, and resets fields a subresource may not touch.
//!
//! ```
//! use bulwark_api::patch::PatchSchema;
//! use bulwark_api::ssa::{apply, Writer};
//! use serde_json::json;
//!
//! let schema = PatchSchema::for_kind("apps/v1", "Deployment").expect("built-in");
//! let writer = Writer { manager: "kubectl", api_version: "apps/v1", subresource: "", time: "2026-01-01T00:00:00Z" };
//! // Creating through apply: the live object is empty.
//! let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
//! let applied = apply(&json!({}), &config, schema, &writer, false).unwrap();
//! assert_eq!(applied["spec"]["replicas"], 3);
//! assert_eq!(applied["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
//! ```

mod fieldpath;
mod typed;

use serde_json::{Map, Value, json};

pub use fieldpath::{FieldSet, FieldsV1Error, JsonText, Path, PathElement};
pub use typed::SchemaError;

use crate::patch::PatchSchema;
use crate::validation::go_quote;
use typed::{Comparison, Pos};

/// Who writes, as recorded in `managedFields`.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// The field manager (`?fieldManager=`, or derived from the user agent).
    pub manager: &'a str,
    /// The API version the request used, e.g. `apps/v1`.
    pub api_version: &'a str,
    /// `""`, or the subresource written (`status`, `scale`).
    pub subresource: &'a str,
    /// The time to record, RFC 3339 (`2026-01-01T00:00:00Z`).
    pub time: &'a str,
}

/// Why an apply or ownership update failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields the apply would change (409 `Conflict`).
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<Conflict>),
    /// The request is not a valid apply (400 `BadRequest`).
    #[error("{0}")]
    BadRequest(String),
    /// An object does not fit the schema of its kind (500, as upstream's
    /// field manager answers).
    #[error("{0}")]
    Schema(#[from] SchemaError),
    /// The live object's `managedFields` cannot be decoded (500).
    #[error("{0}")]
    ManagedFields(String),
}

/// One field another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owning manager's identifier (upstream's JSON encoding of its
    /// `managedFields` entry without fields and time).
    pub manager: String,
    /// The field.
    pub path: Path,
}

impl ApplyError {
    /// The `metav1.Status` kube-apiserver answers with.
    pub fn status(&self) -> Value {
        let (code, reason, details) = match self {
            ApplyError::Conflict(conflicts) => {
                let causes: Vec<Value> = conflicts
                    .iter()
                    .map(|c| {
                        json!({"reason": "FieldManagerConflict",
                               "message": format!("conflict with {}", print_manager(&c.manager)),
                               "field": c.path.to_string()})
                    })
                    .collect();
                (409, "Conflict", Some(json!({ "causes": causes })))
            }
            ApplyError::BadRequest(_) => (400, "BadRequest", None),
            ApplyError::Schema(_) | ApplyError::ManagedFields(_) => (500, "InternalError", None),
        };
        let mut status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.to_string(), "reason": reason, "code": code});
        if let Some(details) = details {
            status["details"] = details;
        }
        status
    }
}

/// The fields `obj` sets, as server-side apply counts them.
pub fn field_set(obj: &Value, schema: &PatchSchema) -> Result<FieldSet, SchemaError> {
    let mut set = FieldSet::new();
    typed::to_set(obj, Pos::root(schema), &Path::default(), &mut set)?;
    Ok(strip(&set))
}

/// Applies `config` (the decoded `apply-patch+yaml` body) to `live` (an
/// empty object when creating) for `writer`, and returns the new object with
/// its `metadata.managedFields`. `force` takes over conflicting fields.
pub fn apply(
    live: &Value,
    config: &Value,
    schema: &PatchSchema,
    writer: &Writer<'_>,
    force: bool,
) -> Result<Value, ApplyError> {
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".to_owned(),
        ));
    }
    // The configuration must fit the schema before anything else happens.
    let new_set = field_set(config, schema)?;
    let mut managers = decode_managed(live)?;
    let live = without_managed_fields(live);
    let pos = Pos::root(schema);
    if managers.is_empty() {
        // Fields an object had before it was first applied to belong to
        // `before-first-apply`, so the apply conflicts with them.
        let before = Writer {
            manager: "before-first-apply",
            ..*writer
        };
        update_ownership(&mut managers, &json!({}), &live, pos, &before)?;
    }
    let merged = typed::merge(Some(&live), Some(config), pos)?.unwrap_or_else(|| json!({}));
    let id = identifier(
        writer.manager,
        "Apply",
        writer.api_version,
        writer.subresource,
    );
    let last_set = managers
        .iter()
        .find(|m| m.id == id)
        .map(|m| m.set.clone())
        .unwrap_or_default();
    set_manager(&mut managers, &id, writer, "Apply", new_set);
    let pruned = prune(merged, &managers, &last_set, pos)?;
    let cmp = compare(&live, &pruned, pos)?;
    take_over(&mut managers, &id, &cmp, force)?;
    let mut pruned = pruned;
    if writer.manager == "kubectl" {
        sync_last_applied(&mut pruned, config);
    }
    Ok(with_managed_fields(pruned, &managers, &id, writer.time))
}

/// The annotation client-side `kubectl apply` keeps its last configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Upstream's `lastAppliedUpdater`: when kubectl applies server-side to an
/// object that client-side apply managed, the annotation is rewritten to the
/// new configuration, so a later client-side apply computes the right patch.
fn sync_last_applied(obj: &mut Value, config: &Value) {
    let Some(annotations) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if !annotations.contains_key(LAST_APPLIED_ANNOTATION) {
        return;
    }
    let mut applied = config.clone();
    if let Some(a) = applied
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED_ANNOTATION);
    }
    // Encoded as Go's json.Encoder does: compact, keys sorted, a newline.
    let text = format!("{}\n", fieldpath::canonical(&applied));
    annotations.insert(LAST_APPLIED_ANNOTATION.to_owned(), Value::String(text));
}

/// Records a non-apply write of `new` over `old` (an empty object for a
/// create) by `writer`: `new`'s `managedFields` are replaced in place (no
/// copy of the object is made); on an error `new` is left as it was.
pub fn record_update(
    old: &Value,
    new: &mut Value,
    schema: &PatchSchema,
    writer: &Writer<'_>,
) -> Result<(), ApplyError> {
    let mut managers = decode_managed(old)?;
    // Upstream starts tracking an existing object only once it is applied
    // to: an update of an object without managedFields records nothing.
    let existing = old
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .is_some_and(|uid| !uid.is_empty());
    if managers.is_empty() && existing {
        set_managed_fields(new, Vec::new());
        return Ok(());
    }
    // The comparison passes over `metadata.managedFields` on both sides.
    let touched = update_ownership(&mut managers, old, new, Pos::root(schema), writer)?;
    let touched = touched.unwrap_or_default();
    set_managed_fields(new, managed_fields(&managers, &touched, writer.time));
    Ok(())
}

/// The ownership changes of a non-apply write of `new` over `old`; returns
/// the writer's identifier if the write changed anything.
fn update_ownership(
    managers: &mut Vec<Manager>,
    old: &Value,
    new: &Value,
    pos: Pos<'_>,
    writer: &Writer<'_>,
) -> Result<Option<String>, ApplyError> {
    let cmp = compare(old, new, pos)?;
    let id = identifier(
        writer.manager,
        "Update",
        writer.api_version,
        writer.subresource,
    );
    // Upstream records the write under a temporary manager, so the writer's
    // own earlier entry loses removed fields like anyone's; only if the
    // write changed something does the writer gain fields and a new time.
    take_over(managers, "", &cmp, true)?;
    let changed = strip(&cmp.modified.union(&cmp.added));
    let touched = if changed.is_empty() {
        None
    } else {
        let before = managers
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.set.clone())
            .unwrap_or_default();
        set_manager(managers, &id, writer, "Update", before.union(&changed));
        Some(id)
    };
    cap_update_managers(managers);
    managers.retain(|m| !m.set.is_empty());
    Ok(touched)
}

// ---- managers ----

/// One decoded `managedFields` entry.
#[derive(Debug, Clone)]
struct Manager {
    id: String,
    manager: String,
    operation: String,
    api_version: String,
    subresource: String,
    time: Option<String>,
    set: FieldSet,
    /// `set` as it was read, while it has not changed: unchanged entries
    /// are written back without encoding them again.
    fields_v1: Option<Value>,
}

/// Upstream's `BuildManagerIdentifier`: the entry's JSON without fields and
/// time, and without the API version for appliers.
fn identifier(manager: &str, operation: &str, api_version: &str, subresource: &str) -> String {
    let mut out = format!(
        "{{\"manager\":{},\"operation\":{}",
        Value::String(manager.to_owned()),
        Value::String(operation.to_owned())
    );
    if operation != "Apply" && !api_version.is_empty() {
        out.push_str(&format!(
            ",\"apiVersion\":{}",
            Value::String(api_version.to_owned())
        ));
    }
    if !subresource.is_empty() {
        out.push_str(&format!(
            ",\"subresource\":{}",
            Value::String(subresource.to_owned())
        ));
    }
    out.push('}');
    out
}

/// Upstream's `printManager`: `"name"`, with ` with subresource "s"` and, for
/// updaters, ` using v`.
fn print_manager(id: &str) -> String {
    let Ok(entry) = serde_json::from_str::<Value>(id) else {
        return go_quote(id);
    };
    let text = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut out = go_quote(text("manager"));
    if !text("subresource").is_empty() {
        out.push_str(&format!(
            " with subresource {}",
            go_quote(text("subresource"))
        ));
    }
    if text("operation") == "Update" {
        out.push_str(&format!(" using {}", text("apiVersion")));
    }
    out
}

fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            print_manager(&only.manager),
            only.path
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {}:", print_manager(m)));
        for c in conflicts.iter().filter(|c| c.manager == m) {
            lines.push(format!("- {}", c.path));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

fn decode_managed(obj: &Value) -> Result<Vec<Manager>, ApplyError> {
    let Some(entries) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries {
        let text = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let fields = e.get("fieldsV1").cloned().unwrap_or_else(|| json!({}));
        let set = FieldSet::from_fields_v1(&fields).map_err(|err| {
            ApplyError::ManagedFields(format!("failed to decode managed fields: {err}"))
        })?;
        let (manager, operation, api_version, subresource) = (
            text("manager"),
            text("operation"),
            text("apiVersion"),
            text("subresource"),
        );
        out.push(Manager {
            id: identifier(&manager, &operation, &api_version, &subresource),
            manager,
            operation,
            api_version,
            subresource,
            time: e.get("time").and_then(Value::as_str).map(str::to_owned),
            set,
            fields_v1: Some(fields),
        });
    }
    Ok(out)
}

fn set_manager(
    managers: &mut Vec<Manager>,
    id: &str,
    writer: &Writer<'_>,
    operation: &str,
    set: FieldSet,
) {
    managers.retain(|m| m.id != id);
    managers.push(Manager {
        id: id.to_owned(),
        manager: writer.manager.to_owned(),
        operation: operation.to_owned(),
        api_version: writer.api_version.to_owned(),
        subresource: writer.subresource.to_owned(),
        time: Some(writer.time.to_owned()),
        set,
        fields_v1: None,
    });
}

/// Most `Update` entries kept; older ones merge into `ancient-changes`.
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// Upstream's `capManagersManager`: beyond [`MAX_UPDATE_MANAGERS`] update
/// entries, the oldest are merged, per API version, into an
/// `ancient-changes` entry.
fn cap_update_managers(managers: &mut Vec<Manager>) {
    let mut updaters: Vec<(Option<String>, String)> = managers
        .iter()
        .filter(|m| m.operation != "Apply")
        .map(|m| (m.time.clone(), m.id.clone()))
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort();
    let mut remaining = updaters.len();
    let mut first_of_version: Vec<(String, String)> = Vec::new();
    for (time, id) in updaters {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(index) = managers.iter().position(|m| m.id == id) else {
            continue;
        };
        let version = managers[index].api_version.clone();
        let bucket = identifier("ancient-changes", "Update", &version, "");
        match first_of_version.iter().find(|(v, _)| *v == version) {
            None => first_of_version.push((version, id)),
            Some((_, first)) => {
                let first = first.clone();
                if !managers.iter().any(|m| m.id == bucket)
                    && let Some(f) = managers.iter_mut().find(|m| m.id == first)
                {
                    f.id = bucket.clone();
                    f.manager = "ancient-changes".to_owned();
                    f.subresource = String::new();
                }
                let merged = managers.remove(index);
                if let Some(b) = managers.iter_mut().find(|m| m.id == bucket) {
                    b.set = b.set.union(&merged.set);
                    b.fields_v1 = None;
                    b.time = time;
                }
                remaining -= 1;
            }
        }
    }
}

/// The paths kube-apiserver never records as owned (`stripMeta`).
fn strip(set: &FieldSet) -> FieldSet {
    let mut stripped = FieldSet::new();
    for p in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ] {
        stripped.insert(Path::fields(p));
    }
    set.difference(&stripped)
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    obj
}

fn compare(old: &Value, new: &Value, pos: Pos<'_>) -> Result<Comparison, ApplyError> {
    let mut cmp = Comparison::default();
    typed::compare(Some(old), Some(new), pos, &Path::default(), &mut cmp)?;
    Ok(cmp)
}

/// Upstream's `update`: other managers owning changed fields conflict
/// (unless forced, when they lose them); everyone loses removed fields.
fn take_over(
    managers: &mut Vec<Manager>,
    id: &str,
    cmp: &Comparison,
    force: bool,
) -> Result<(), ApplyError> {
    let changed = cmp.modified.union(&cmp.added);
    if !force {
        let mut conflicts = Vec::new();
        for m in managers.iter().filter(|m| m.id != id) {
            for path in m.set.intersection(&changed).iter() {
                conflicts.push(Conflict {
                    manager: m.id.clone(),
                    path: path.clone(),
                });
            }
        }
        if !conflicts.is_empty() {
            conflicts.sort_by(|a, b| (&a.manager, &a.path).cmp(&(&b.manager, &b.path)));
            return Err(ApplyError::Conflict(conflicts));
        }
    }
    for m in managers.iter_mut().filter(|m| m.id != id) {
        let kept = m.set.difference(&changed).difference(&cmp.removed);
        if kept.len() != m.set.len() {
            m.set = kept;
            m.fields_v1 = None;
        }
    }
    managers.retain(|m| !m.set.is_empty() || m.id == id);
    Ok(())
}

/// Removes from `merged` what the applier owned last time and owns no more,
/// unless another manager owns it or something below it.
fn prune(
    mut merged: Value,
    managers: &[Manager],
    last: &FieldSet,
    pos: Pos<'_>,
) -> Result<Value, ApplyError> {
    let owned = managers
        .iter()
        .fold(FieldSet::new(), |acc, m| acc.union(&m.set));
    for path in last.difference(&owned).iter() {
        if owned.has_prefix(path) {
            continue;
        }
        typed::remove(&mut merged, pos, &path.0)?;
    }
    Ok(merged)
}

/// Sets `metadata.managedFields`, sorted as upstream sorts them.
fn with_managed_fields(mut obj: Value, managers: &[Manager], writer_id: &str, time: &str) -> Value {
    set_managed_fields(&mut obj, managed_fields(managers, writer_id, time));
    obj
}

/// The `managedFields` entries of `managers`, sorted as upstream sorts
/// them; `writer_id`'s gets `time`.
fn managed_fields(managers: &[Manager], writer_id: &str, time: &str) -> Vec<Value> {
    let mut sorted: Vec<&Manager> = managers.iter().filter(|m| !m.set.is_empty()).collect();
    sorted.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    sorted
        .into_iter()
        .map(|m| {
            let mut e = Map::new();
            e.insert("manager".to_owned(), json!(m.manager));
            e.insert("operation".to_owned(), json!(m.operation));
            e.insert("apiVersion".to_owned(), json!(m.api_version));
            let t = if m.id == writer_id {
                Some(time.to_owned())
            } else {
                m.time.clone()
            };
            if let Some(t) = t {
                e.insert("time".to_owned(), json!(t));
            }
            e.insert("fieldsType".to_owned(), json!("FieldsV1"));
            let fields = match &m.fields_v1 {
                Some(fields) => fields.clone(),
                None => m.set.to_fields_v1(),
            };
            e.insert("fieldsV1".to_owned(), fields);
            if !m.subresource.is_empty() {
                e.insert("subresource".to_owned(), json!(m.subresource));
            }
            Value::Object(e)
        })
        .collect()
}

/// Replaces `obj`'s `metadata.managedFields` with `entries` (removes it
/// when there are none).
fn set_managed_fields(obj: &mut Value, entries: Vec<Value>) {
    if !obj.is_object() {
        *obj = json!({});
    }
    let meta = obj
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})));
    if let Some(Value::Object(meta)) = meta {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_owned(), Value::Array(entries));
        }
    }
}

#[cfg(test)]
mod tests;
