//! Strategic merge patch (`application/strategic-merge-patch+json`).
//!
//! Behaves as upstream's `strategicpatch.StrategicMergeMapPatch` with the
//! options kube-apiserver uses (parallel deletion lists merged, unmatched
//! nulls ignored):
//!
//! - `null` deletes a field; objects merge key by key unless tagged
//!   `replace`; lists are replaced unless tagged `merge`, then lists of
//!   objects merge by their merge key and lists of scalars are a set union.
//! - `$patch: replace` replaces the enclosing object or list,
//!   `$patch: delete` deletes it (or the list item with that merge key).
//! - `$retainKeys: [..]` drops the keys of the live object not listed.
//! - `$deleteFromPrimitiveList/<f>: [..]` removes scalars from list `<f>`.
//! - `$setElementOrder/<f>: [..]` fixes the order of list `<f>`; items are
//!   otherwise ordered as in the patch, live-only items keeping their place.
//!
//! Errors are classified as the API server does (`interpretStrategicMergePatchError`):
//! malformed directives are 400, lists of lists 422, the rest 500 with the
//! library's message.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::schema::{FieldMeta, PatchSchema, Strategy};
use super::{PatchError, decode_json, json_type_word};
use crate::gofmt::{self, GoKind};
use order::{aliased_live_order, normalize_element_order};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList";

type Object = Map<String, Value>;

/// Applies a strategic merge patch request body to a live object.
///
/// `schema` says which fields merge and by which key: use
/// [`PatchSchema::for_kind`] for the object's kind.
///
/// ```
/// use bulwark_api::patch::{apply_strategic_merge_patch, PatchSchema};
/// use serde_json::json;
///
/// let live = json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}});
/// let patch = br#"{"spec": {"containers": [{"name": "b", "image": "b:2"}]}}"#;
/// let pod = PatchSchema::for_kind("v1", "Pod").expect("built-in kind");
/// let patched = apply_strategic_merge_patch(&live, patch, pod).unwrap();
/// assert_eq!(patched["spec"]["containers"][1]["image"], "b:2");
/// assert_eq!(patched["spec"]["containers"][0]["image"], "a:1");
/// ```
pub fn apply_strategic_merge_patch(
    original: &Value,
    patch: &[u8],
    schema: &PatchSchema,
) -> Result<Value, PatchError> {
    let patch = decode_json(patch)?;
    strategic_merge(original, &patch, schema)
}

/// [`apply_strategic_merge_patch`] over an already decoded patch.
pub fn strategic_merge(
    original: &Value,
    patch: &Value,
    schema: &PatchSchema,
) -> Result<Value, PatchError> {
    let patch = match patch {
        Value::Object(m) => m.clone(),
        // Go decodes `null` into a nil map: an empty patch.
        Value::Null => Object::new(),
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_type_word(other)
            )));
        }
    };
    let Value::Object(original) = original else {
        return Err(bad_arg_type(GoKind::Map, original));
    };
    merge_map(original.clone(), patch, schema).map(Value::Object)
}

// ---- errors, worded as upstream's `mergepatch` package words them ----

fn bad_arg_type(expected: GoKind, actual: &Value) -> PatchError {
    PatchError::Unclassified(format!(
        "expected a {}, but received a {}",
        gofmt::type_name(expected),
        gofmt::type_name(gofmt::kind(actual))
    ))
}

fn no_merge_key(m: &Object, key: &str) -> PatchError {
    PatchError::Unclassified(format!(
        "map: {} does not contain declared merge key: {key}",
        gofmt::v(&Value::Object(m.clone()))
    ))
}

fn bad_patch_type(directive: &Value, m: &Object) -> PatchError {
    PatchError::Unclassified(format!(
        "unknown patch type: {} in map: {}",
        gofmt::s(directive),
        gofmt::v(&Value::Object(m.clone()))
    ))
}

fn not_identical(lists: &[&[Value]]) -> PatchError {
    PatchError::Unclassified(format!(
        "list element types are not identical: {}",
        gofmt::v_lists(lists)
    ))
}

fn extract_key(key: &str, prefix: &str) -> Result<String, PatchError> {
    match key.split_once('/') {
        Some((head, rest)) if head == prefix => Ok(rest.to_owned()),
        _ if prefix == SET_ORDER_PREFIX => Err(PatchError::BadRequest(
            "invalid patch format of setElementOrder list".to_owned(),
        )),
        _ => Err(PatchError::BadRequest(
            "invalid patch format of primitive list".to_owned(),
        )),
    }
}

// ---- maps ----

fn merge_map(
    mut original: Object,
    mut patch: Object,
    schema: &PatchSchema,
) -> Result<Object, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Object::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, schema)?;

    for (key, patch_value) in patch {
        let (key, is_delete_list) = if key.starts_with(DELETE_PRIMITIVE_PREFIX) {
            (extract_key(&key, DELETE_PRIMITIVE_PREFIX)?, true)
        } else {
            (key, false)
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(current) = original.get_mut(&key) else {
            if !is_delete_list {
                insert_patch_value(&mut original, key, patch_value);
            }
            continue;
        };
        if gofmt::kind(current) != gofmt::kind(&patch_value) {
            if !is_delete_list {
                insert_patch_value(&mut original, key, patch_value);
            }
            continue;
        }
        let field = schema.field(&key);
        match (current.take(), patch_value) {
            (Value::Object(cur), Value::Object(p)) => {
                *current = Value::Object(if field.strategy == Strategy::Replace {
                    p
                } else {
                    merge_map(cur, p, &field.schema)?
                });
            }
            (Value::Array(cur), Value::Array(p)) => {
                *current = Value::Array(merge_list_field(cur, p, field, is_delete_list)?);
            }
            (_, scalar) => {
                *current = scalar;
            }
        }
    }
    Ok(original)
}

/// Takes a patch value for a field the live object lacks (or has with
/// another type): nulls inside it mean nothing, directives are dropped.
fn insert_patch_value(original: &mut Object, key: String, mut value: Value) {
    discard_nulls(&mut value);
    match remove_directives(value) {
        Some(v) => {
            original.insert(key, v);
        }
        None => {
            original.remove(&key);
        }
    }
}

fn discard_nulls(value: &mut Value) {
    match value {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Drops every object carrying `$patch` (anywhere below); `None` if `value`
/// itself is one.
fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || PatchError::BadRequest("invalid patch format of retainKeys".to_owned());
    let Value::Array(retain) = retain else {
        return Err(bad());
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_PRIMITIVE_PREFIX) || k.starts_with(SET_ORDER_PREFIX)
        {
            continue;
        }
        if !listed(k) {
            return Err(bad());
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// Handles every `$setElementOrder/<f>` of `patch`: merges list `<f>` and
/// orders it, then removes both from `patch`.
fn merge_set_element_order(
    original: &mut Object,
    patch: &mut Object,
    schema: &PatchSchema,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER_PREFIX))
        .cloned()
        .collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad_arg_type(GoKind::Slice, &order));
        };
        let list_key = extract_key(&key, SET_ORDER_PREFIX)?;
        let original_list = take_list(original, &list_key)?;
        let patch_list = take_list(patch, &list_key)?;
        let field = schema.field(&list_key);
        let merge_key = field.merge_key.unwrap_or("");
        validate_patch_with_set_order(patch_list.as_deref().unwrap_or(&[]), &order, merge_key)?;

        let merged = match (&original_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => match remove_directives(Value::Array(p.clone())) {
                Some(Value::Array(items)) => items,
                _ => continue,
            },
            (Some(o), Some(p)) => merge_list_field(o.clone(), p.clone(), field, false)?,
            (None, None) => continue,
        };
        let (in_order, server_only) = partition(merged, &order, merge_key)?;
        let original_list = original_list.unwrap_or_default();
        let kind = slice_element_type(&[&original_list, patch_list.as_deref().unwrap_or(&[])])?;
        let server_order = match &patch_list {
            Some(p) if field.strategy == Strategy::Merge && kind == GoKind::Map => {
                aliased_live_order(&original_list, p, merge_key)
            }
            _ => original_list,
        };
        let ordered = normalize_element_order(
            in_order,
            server_only,
            &order,
            &server_order,
            merge_key,
            kind,
        )?;
        original.insert(list_key, Value::Array(ordered));
    }
    Ok(())
}

/// Removes `key` from `m` and returns it as a list, if present.
fn take_list(m: &mut Object, key: &str) -> Result<Option<Vec<Value>>, PatchError> {
    match m.remove(key) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(bad_arg_type(GoKind::Slice, &other)),
    }
}

/// Checks that the patch list's items appear in the `$setElementOrder` list,
/// in the same relative order (deletions ignored).
fn validate_patch_with_set_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: &str,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let kept: Vec<&Value> = if merge_key.is_empty() {
        patch_list.iter().collect()
    } else {
        let mut kept = Vec::new();
        for item in patch_list {
            if !is_delete_item(item)? {
                kept.push(item);
            }
        }
        kept
    };
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if kept[p]
            .as_object()
            .is_some_and(|m| m.contains_key(DIRECTIVE))
        {
            p += 1;
            continue;
        }
        if merge_key_value_equal(kept[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() && o >= order.len() {
        return Err(PatchError::Unclassified(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ORDER_PREFIX} list:\n{}\n",
            gofmt::v(&Value::Array(patch_list.to_vec())),
            gofmt::v(&Value::Array(order.to_vec())),
        )));
    }
    Ok(())
}

fn merge_key_value_equal(left: &Value, right: &Value, key: &str) -> Result<bool, PatchError> {
    if key.is_empty() {
        return Ok(left == right);
    }
    let l = left
        .as_object()
        .ok_or_else(|| bad_arg_type(GoKind::Map, left))?;
    let r = right
        .as_object()
        .ok_or_else(|| bad_arg_type(GoKind::Map, right))?;
    let lv = l.get(key).ok_or_else(|| no_merge_key(l, key))?;
    let rv = r.get(key).ok_or_else(|| no_merge_key(r, key))?;
    Ok(lv == rv)
}

fn is_delete_item(item: &Value) -> Result<bool, PatchError> {
    let m = item
        .as_object()
        .ok_or_else(|| bad_arg_type(GoKind::Map, item))?;
    Ok(m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete"))
}

// ---- lists ----

fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: &FieldMeta,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    // Deletion lists apply whatever the field's strategy.
    if field.strategy == Strategy::Merge || is_delete_list {
        merge_list(
            original,
            patch,
            &field.schema,
            field.merge_key.unwrap_or(""),
            is_delete_list,
        )
    } else {
        Ok(patch)
    }
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: &PatchSchema,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = slice_element_type(&[&original, &patch])?;
    let (merged, original, patch) = if kind != GoKind::Map {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let merged = dedup_scalars(original.iter().chain(patch.iter()).cloned());
        (merged, original, patch)
    } else {
        if merge_key.is_empty() {
            // Upstream names the Go kind of the item type here.
            return Err(PatchError::Unclassified(
                "cannot merge lists without merge key for struct".to_owned(),
            ));
        }
        let (original, patch) = apply_list_directives(original, patch, merge_key)?;
        let merged = merge_items_by_key(original.clone(), &patch, merge_key, schema)?;
        (merged, original, patch)
    };
    let (in_patch, server_only) = partition(merged, &patch, merge_key)?;
    normalize_element_order(in_patch, server_only, &patch, &original, merge_key, kind)
}

/// The Go type shared by every item of the lists, as upstream's
/// `sliceElementType` checks it.
fn slice_element_type(lists: &[&[Value]]) -> Result<GoKind, PatchError> {
    let mut seen: Option<GoKind> = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let k = gofmt::kind(item);
        match seen {
            // Upstream dereferences a nil type here and panics (a 500); we
            // answer the 500 without the panic.
            None if k == GoKind::Nil => return Err(not_identical(lists)),
            None if k == GoKind::Slice => {
                return Err(PatchError::unprocessable(
                    "lists of lists are not supported",
                ));
            }
            None => seen = Some(k),
            Some(prev) if prev != k => return Err(not_identical(lists)),
            Some(_) => {}
        }
    }
    seen.ok_or_else(|| {
        PatchError::Unclassified("no elements in any of the given slices".to_owned())
    })
}

fn dedup_scalars(items: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut seen = HashSet::new();
    items.filter(|v| seen.insert(v.to_string())).collect()
}

/// Applies the `$patch` items of a list patch: `delete` removes the live items
/// with that merge key, `replace` makes the rest of the patch the new list.
/// Returns the live list and the patch without directive items.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for item in patch {
        let Some(m) = item.as_object() else {
            return Err(bad_arg_type(GoKind::Map, &item));
        };
        let Some(directive) = m.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let value = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
                while let Some(i) = find_by_key(&original, merge_key, value)? {
                    original.remove(i);
                }
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::Unclassified(
                    "merging lists cannot yet be specified in the patch".to_owned(),
                ));
            }
            _ => return Err(bad_patch_type(directive, m)),
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

fn merge_items_by_key(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    schema: &PatchSchema,
) -> Result<Vec<Value>, PatchError> {
    for item in patch {
        let Some(m) = item.as_object() else {
            return Err(bad_arg_type(GoKind::Map, item));
        };
        let value = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
        match find_by_key(&original, merge_key, value)? {
            Some(i) => {
                let Value::Object(live) = original[i].take() else {
                    return Err(bad_arg_type(GoKind::Map, &original[i]));
                };
                original[i] = Value::Object(merge_map(live, m.clone(), schema)?);
            }
            None => original.push(item.clone()),
        }
    }
    Ok(original)
}

fn find_by_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>, PatchError> {
    for (i, item) in list.iter().enumerate() {
        let Some(m) = item.as_object() else {
            return Err(PatchError::Unclassified(format!(
                "value for key {i} is not a map"
            )));
        };
        if m.get(key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Splits `merged` into the items present in `by` and the others (by merge
/// key for objects, by value for scalars).
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    if merge_key.is_empty() {
        let keys: HashSet<String> = by.iter().map(Value::to_string).collect();
        for item in merged {
            if item.is_object() {
                // Upstream hashes the item and panics on a map: a 500.
                return Err(PatchError::Unclassified(format!(
                    "runtime error: hash of unhashable type map[string]interface {{}}: {}",
                    gofmt::v(&item)
                )));
            }
            if keys.contains(&item.to_string()) {
                present.push(item);
            } else {
                absent.push(item);
            }
        }
        return Ok((present, absent));
    }
    for item in merged {
        let m = item
            .as_object()
            .ok_or_else(|| bad_arg_type(GoKind::Map, &item))?;
        let value = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
        if find_by_key(by, merge_key, value)?.is_some() {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

mod order;
#[cfg(test)]
mod tests;
