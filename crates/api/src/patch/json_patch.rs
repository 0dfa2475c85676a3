//! JSON patch (RFC 6902, `application/json-patch+json`), with the semantics
//! and messages of the library kube-apiserver uses (`evanphx/json-patch` v4).
//!
//! Upstream departures from the RFC that clients can observe, kept here:
//! negative array indices count from the end; `replace` of a missing object
//! key adds it; `copy` from a missing object key copies `null`; a path not
//! starting with `/` addresses from its second segment; `test` treats a
//! missing key and `null` alike (a `test` without `value` of a missing path
//! passes; the v4.12 release kube-apiserver 1.33 ships crashes there, a
//! 500). The CVE-2019-1002100 guards are upstream's
//! too: at most [`MAX_OPERATIONS`] operations (413), and at most
//! [`MAX_COPY_BYTES`] bytes added by `copy` operations in one patch.

use serde_json::{Map, Value};

use super::{PatchError, decode_json, json_type_word};

/// The most operations one JSON patch may have (upstream's
/// `maxJSONPatchOperations`).
pub const MAX_OPERATIONS: usize = 10_000;

/// The most bytes (serialized JSON) `copy` operations may add in one patch:
/// upstream arms its patch library with `JSONPatchMaxCopyBytes`, the 3 MiB
/// request body limit.
pub const MAX_COPY_BYTES: usize = 3 * 1024 * 1024;

const MISSING: &str = "missing value";
const INVALID_INDEX: &str = "invalid index referenced";

/// Applies a JSON patch request body to a live object.
///
/// ```
/// use bulwark_api::patch::apply_json_patch;
/// use serde_json::json;
///
/// let live = json!({"spec": {"replicas": 1}});
/// let patch = br#"[{"op": "test", "path": "/spec/replicas", "value": 1},
///                  {"op": "replace", "path": "/spec/replicas", "value": 3}]"#;
/// assert_eq!(apply_json_patch(&live, patch).unwrap(), json!({"spec": {"replicas": 3}}));
///
/// let failing = br#"[{"op": "test", "path": "/spec/replicas", "value": 2}]"#;
/// assert_eq!(apply_json_patch(&live, failing).unwrap_err().code(), 422);
/// ```
pub fn apply_json_patch(original: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let ops = decode(patch)?;
    if ops.len() > MAX_OPERATIONS {
        return Err(PatchError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut doc = original.clone();
    let mut copied = 0usize;
    for op in &ops {
        apply_op(&mut doc, op, &mut copied).map_err(PatchError::unprocessable)?;
    }
    Ok(doc)
}

/// Decodes the body as upstream does into `[]map[string]*json.RawMessage`.
fn decode(patch: &[u8]) -> Result<Vec<Map<String, Value>>, PatchError> {
    let value = decode_json(patch)?;
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                json_type_word(&other)
            )));
        }
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(m) => Ok(m),
            // Go decodes a null operation into a nil map: an op of kind "unknown".
            Value::Null => Ok(Map::new()),
            other => Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                json_type_word(&other)
            ))),
        })
        .collect()
}

type Op = Map<String, Value>;

fn apply_op(doc: &mut Value, op: &Op, copied: &mut usize) -> Result<(), String> {
    let kind = match op.get("op") {
        Some(Value::String(s)) => s.as_str(),
        _ => "unknown",
    };
    match kind {
        "add" => add(doc, op),
        "remove" => remove(doc, op),
        "replace" => replace(doc, op),
        "move" => move_op(doc, op),
        "test" => test(doc, op),
        "copy" => copy(doc, op, copied),
        other => Err(format!("Unexpected kind: {other}")),
    }
}

/// A string field of the operation; `Err` is upstream's decoding error.
fn field(op: &Op, name: &str) -> Result<String, String> {
    match op.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if name == "path" => {
            Err(format!("operation missing path field: {MISSING}"))
        }
        None | Some(Value::Null) => Err(format!("operation, missing {name} field: {MISSING}")),
        Some(other) => Err(format!(
            "json: cannot unmarshal {} into Go value of type string",
            json_type_word(other)
        )),
    }
}

/// The operation's `value` (`null` when absent, as upstream's nil node).
fn value(op: &Op) -> Value {
    op.get("value").cloned().unwrap_or(Value::Null)
}

fn add(doc: &mut Value, op: &Op) -> Result<(), String> {
    let path =
        field(op, "path").map_err(|_| format!("add operation failed to decode path: {MISSING}"))?;
    let (parent, key) = find_parent(doc, &path).ok_or_else(|| {
        format!("add operation does not apply: doc is missing path: \"{path}\": {MISSING}")
    })?;
    insert(parent, &key, value(op)).map_err(|e| format!("error in add for path: '{path}': {e}"))
}

fn remove(doc: &mut Value, op: &Op) -> Result<(), String> {
    let path = field(op, "path")
        .map_err(|_| format!("remove operation failed to decode path: {MISSING}"))?;
    let (parent, key) = find_parent(doc, &path).ok_or_else(|| {
        format!("remove operation does not apply: doc is missing path: \"{path}\": {MISSING}")
    })?;
    delete(parent, &key)
        .map(drop)
        .map_err(|e| format!("error in remove for path: '{path}': {e}"))
}

fn replace(doc: &mut Value, op: &Op) -> Result<(), String> {
    let path =
        field(op, "path").map_err(|e| format!("replace operation failed to decode path: {e}"))?;
    if path.is_empty() {
        let v = value(op);
        if !(v.is_object() || v.is_array()) {
            // Upstream wraps a nil error here, which Go prints this way.
            return Err("replace operation value must be object or array: %!w(<nil>)".to_owned());
        }
        *doc = v;
        return Ok(());
    }
    let (parent, key) = find_parent(doc, &path).ok_or_else(|| {
        format!("replace operation does not apply: doc is missing path: {path}: {MISSING}")
    })?;
    match parent {
        Value::Object(m) => {
            // Upstream's lookup of a missing key succeeds: replace adds it.
            m.insert(key, value(op));
            Ok(())
        }
        Value::Array(items) => {
            let i = array_index(items.len(), &key).map_err(|_| {
                format!("replace operation does not apply: doc is missing key: {path}: {MISSING}")
            })?;
            items[i] = value(op);
            Ok(())
        }
        _ => Err(format!(
            "replace operation does not apply: doc is missing path: {path}: {MISSING}"
        )),
    }
}

fn move_op(doc: &mut Value, op: &Op) -> Result<(), String> {
    let from =
        field(op, "from").map_err(|e| format!("move operation failed to decode from: {e}"))?;
    let (parent, key) = find_parent(doc, &from).ok_or_else(|| {
        format!("move operation does not apply: doc is missing from path: {from}: {MISSING}")
    })?;
    if let Value::Array(items) = &*parent {
        array_index(items.len(), &key)
            .map_err(|e| format!("error in move for path: '{key}': {e}"))?;
    }
    let moved =
        delete(parent, &key).map_err(|e| format!("error in move for path: '{key}': {e}"))?;
    let path =
        field(op, "path").map_err(|e| format!("move operation failed to decode path: {e}"))?;
    let (parent, key) = find_parent(doc, &path).ok_or_else(|| {
        format!("move operation does not apply: doc is missing destination path: {path}: {MISSING}")
    })?;
    insert(parent, &key, moved).map_err(|e| format!("error in move for path: '{path}': {e}"))
}

fn test(doc: &mut Value, op: &Op) -> Result<(), String> {
    let path =
        field(op, "path").map_err(|e| format!("test operation failed to decode path: {e}"))?;
    let failed = || format!("testing value {path} failed: test failed");
    if path.is_empty() {
        return if *doc == value(op) {
            Ok(())
        } else {
            Err(failed())
        };
    }
    let (parent, key) = find_parent(doc, &path).ok_or_else(|| {
        format!("test operation does not apply: is missing path: {path}: {MISSING}")
    })?;
    let actual = match parent {
        Value::Object(m) => m.get(&key).cloned().unwrap_or(Value::Null),
        Value::Array(items) => {
            let i = array_index(items.len(), &key)
                .map_err(|e| format!("error in test for path: '{path}': {e}"))?;
            items[i].clone()
        }
        _ => Value::Null,
    };
    // A missing value and null are alike; an absent `value` is null too,
    // except that it never equals a present non-null value.
    match (actual.is_null(), op.get("value")) {
        (true, None | Some(Value::Null)) => Ok(()),
        (false, None) => Err(failed()),
        _ if actual == value(op) => Ok(()),
        _ => Err(failed()),
    }
}

fn copy(doc: &mut Value, op: &Op, copied: &mut usize) -> Result<(), String> {
    let from =
        field(op, "from").map_err(|e| format!("copy operation failed to decode from: {e}"))?;
    let (parent, key) = find_parent(doc, &from).ok_or_else(|| {
        format!("copy operation does not apply: doc is missing from path: {from}: {MISSING}")
    })?;
    let source = match parent {
        Value::Object(m) => m.get(&key).cloned().unwrap_or(Value::Null),
        Value::Array(items) => {
            let i = array_index(items.len(), &key)
                .map_err(|e| format!("error in copy for from: '{from}': {e}"))?;
            items[i].clone()
        }
        _ => Value::Null,
    };
    let path = field(op, "path")
        .map_err(|_| format!("copy operation failed to decode path: {MISSING}"))?;
    let (parent, key) = find_parent(doc, &path).ok_or_else(|| {
        format!("copy operation does not apply: doc is missing destination path: {path}: {MISSING}")
    })?;
    *copied = copied.saturating_add(serialized_len(&source));
    if *copied > MAX_COPY_BYTES {
        return Err(format!(
            "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_COPY_BYTES}"
        ));
    }
    insert(parent, &key, source).map_err(|e| format!("error while adding value during copy: {e}"))
}

fn serialized_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// Walks to the container of the last path segment, as upstream's
/// `findObject`: every step must exist, be non-null, and be an object or a
/// list. Returns the container and the (unescaped) last segment.
fn find_parent<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let segments: Vec<&str> = path.split('/').collect();
    let (last, steps) = segments.split_last()?;
    if steps.is_empty() {
        return None;
    }
    let mut current = doc;
    for step in &steps[1..] {
        let key = unescape(step);
        let next = match current {
            Value::Object(m) => m.get_mut(&key)?,
            Value::Array(items) => {
                let i = array_index(items.len(), &key).ok()?;
                &mut items[i]
            }
            _ => return None,
        };
        if !(next.is_object() || next.is_array()) {
            return None;
        }
        current = next;
    }
    if !(current.is_object() || current.is_array()) {
        return None;
    }
    Some((current, unescape(last)))
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// `strconv.Atoi` as Go words its failures.
fn atoi(key: &str) -> Result<i64, String> {
    key.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("strconv.Atoi: parsing {key:?}: {why}")
    })
}

/// An existing element's index; negative indices count from the end.
fn array_index(len: usize, key: &str) -> Result<usize, String> {
    let idx = atoi(key)?;
    let invalid = || format!("Unable to access invalid index: {idx}: {INVALID_INDEX}");
    let len_i = i64::try_from(len).map_err(|_| invalid())?;
    let resolved = if idx < 0 {
        if idx < -len_i {
            return Err(invalid());
        }
        idx + len_i
    } else {
        idx
    };
    if resolved >= len_i {
        return Err(invalid());
    }
    usize::try_from(resolved).map_err(|_| invalid())
}

/// Upstream's `add` into a container.
fn insert(parent: &mut Value, key: &str, v: Value) -> Result<(), String> {
    match parent {
        Value::Object(m) => {
            m.insert(key.to_owned(), v);
            Ok(())
        }
        Value::Array(items) => {
            if key == "-" {
                items.push(v);
                return Ok(());
            }
            let idx = atoi(key)
                .map_err(|e| format!("value was not a proper array index: '{key}': {e}"))?;
            let invalid = || format!("Unable to access invalid index: {idx}: {INVALID_INDEX}");
            let size = i64::try_from(items.len() + 1).map_err(|_| invalid())?;
            if idx >= size {
                return Err(invalid());
            }
            let resolved = if idx < 0 {
                if idx < -size {
                    return Err(invalid());
                }
                idx + size
            } else {
                idx
            };
            let at = usize::try_from(resolved).map_err(|_| invalid())?;
            items.insert(at, v);
            Ok(())
        }
        _ => Err("unknown object type".to_owned()),
    }
}

/// Upstream's `remove` from a container; returns the removed value.
fn delete(parent: &mut Value, key: &str) -> Result<Value, String> {
    match parent {
        Value::Object(m) => m
            .remove(key)
            .ok_or_else(|| format!("Unable to remove nonexistent key: {key}: {MISSING}")),
        Value::Array(items) => {
            let i = array_index(items.len(), key)?;
            Ok(items.remove(i))
        }
        _ => Err("unknown object type".to_owned()),
    }
}

#[cfg(test)]
mod tests;
