//! Walks over JSON objects guided by a [`PatchSchema`], as
//! structured-merge-diff's `typed` package walks typed values: the field set
//! an object sets, merging an applied configuration into a live object,
//! comparing two objects, and removing paths.
//!
//! The schema knows which lists are keyed (and by what), which are sets and
//! which are atomic, and which structs are atomic; every object not marked
//! atomic merges field by field.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::fieldpath::{FieldSet, JsonText, Path, PathElement};
use crate::patch::PatchSchema;
use crate::patch::schema::{FieldMeta, Strategy};

/// An object that does not fit the schema (a keyed list item without its
/// key, duplicate keys in an applied list, …), worded as upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

type Result<T> = std::result::Result<T, SchemaError>;

/// How a list is owned and merged.
enum ListKind {
    /// One value: replaced whole.
    Atomic,
    /// A set of scalars, items identified by value.
    Set,
    /// Items identified by these key fields (with defaults for absent ones).
    Keyed(Vec<&'static str>, &'static [(&'static str, &'static str)]),
}

/// Where a value sits: the schema of its type, and the tags of the field
/// holding it (none for list items and the root).
#[derive(Clone, Copy)]
pub(crate) struct Pos<'a> {
    schema: &'a PatchSchema,
    field: Option<&'a FieldMeta>,
}

impl<'a> Pos<'a> {
    /// The root of an object of this schema.
    pub(crate) fn root(schema: &'a PatchSchema) -> Self {
        Pos {
            schema,
            field: None,
        }
    }

    /// The value of field `k` of an object here.
    fn child(self, k: &str) -> Pos<'a> {
        let meta = self.schema.field(k);
        Pos {
            schema: &meta.schema,
            field: Some(meta),
        }
    }

    /// An item of a list here.
    fn item(self) -> Pos<'a> {
        Pos {
            schema: self.schema,
            field: None,
        }
    }

    fn atomic(self) -> bool {
        self.schema.atomic
    }

    fn list_kind(self) -> ListKind {
        let Some(meta) = self.field else {
            return ListKind::Atomic;
        };
        if meta.strategy != Strategy::Merge {
            ListKind::Atomic
        } else if !meta.list_keys.is_empty() {
            ListKind::Keyed(meta.list_keys.to_vec(), meta.key_defaults)
        } else if let Some(k) = meta.merge_key {
            ListKind::Keyed(vec![k], meta.key_defaults)
        } else {
            ListKind::Set
        }
    }
}

/// The path element naming a list item.
fn item_element(kind: &ListKind, item: &Value) -> Result<PathElement> {
    match kind {
        ListKind::Atomic | ListKind::Set => Ok(PathElement::Value(JsonText::new(item))),
        ListKind::Keyed(keys, defaults) => {
            let Some(m) = item.as_object() else {
                return Err(SchemaError(format!(
                    "expected map, got {}",
                    crate::patch::json_type_word(item)
                )));
            };
            let mut fields = Vec::new();
            for key in keys {
                let value = match m.get(*key) {
                    Some(v) => v.clone(),
                    None => match defaults.iter().find(|(k, _)| k == key) {
                        Some((_, d)) => Value::String((*d).to_owned()),
                        None => {
                            return Err(SchemaError(format!(
                                "associative list with keys has an element that omits key field {} (and doesn't have default value)",
                                crate::validation::go_quote(key)
                            )));
                        }
                    },
                };
                fields.push(((*key).to_owned(), JsonText::new(&value)));
            }
            fields.sort();
            Ok(PathElement::Key(fields))
        }
    }
}

fn is_empty_object(v: &Value) -> bool {
    v.as_object().is_some_and(Map::is_empty)
}

// ---- field sets ----

/// The paths an object sets (`ToFieldSet`): every leaf, every keyed or set
/// list item, atomic values whole, and empty or null fields.
pub(crate) fn to_set(v: &Value, pos: Pos<'_>, at: &Path, set: &mut FieldSet) -> Result<()> {
    match v {
        Value::Object(m) if !pos.atomic() => {
            for (k, child) in m {
                let p = at.child(PathElement::Field(k.clone()));
                to_set(child, pos.child(k), &p, set)?;
                if child.is_null() || is_empty_object(child) {
                    set.insert(p);
                }
            }
        }
        Value::Array(items) => {
            let kind = pos.list_kind();
            if matches!(kind, ListKind::Atomic) {
                set.insert(at.clone());
                return Ok(());
            }
            let item = pos.item();
            for (i, it) in items.iter().enumerate() {
                let pe = item_element(&kind, it)
                    .map_err(|e| SchemaError(format!("{at}: element {i}: {e}")))?;
                let p = at.child(pe);
                to_set(it, item, &p, set)?;
                set.insert(p);
            }
        }
        _ => set.insert(at.clone()),
    }
    Ok(())
}

// ---- merge ----

/// Merges `rhs` (the applied configuration) over `lhs` (the live object).
pub(crate) fn merge(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    pos: Pos<'_>,
) -> Result<Option<Value>> {
    let leaf = || Ok(rhs.or(lhs).cloned());
    let all = |f: fn(&Value) -> bool| lhs.is_none_or(f) && rhs.is_none_or(f);
    if all(Value::is_object) {
        let empty = lhs.is_none_or(is_empty_object) && rhs.is_none_or(is_empty_object);
        if pos.atomic() || empty {
            return leaf();
        }
        let (l, r) = (as_map(lhs), as_map(rhs));
        let mut out = Map::new();
        for k in l.keys().chain(r.keys().filter(|k| !l.contains_key(*k))) {
            if let Some(v) = merge(l.get(k), r.get(k), pos.child(k))? {
                out.insert(k.clone(), v);
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Object(out)));
    }
    if all(Value::is_array) {
        let kind = pos.list_kind();
        let empty = lhs.is_none_or(|v| as_list(Some(v)).is_empty())
            && rhs.is_none_or(|v| as_list(Some(v)).is_empty());
        if matches!(kind, ListKind::Atomic) || empty {
            return leaf();
        }
        return merge_list(as_list(lhs), as_list(rhs), &kind, pos);
    }
    leaf()
}

static EMPTY_MAP: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

fn as_map(v: Option<&Value>) -> &Map<String, Value> {
    v.and_then(Value::as_object).unwrap_or(&EMPTY_MAP)
}

fn as_list(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

type Indexed<'a> = (Vec<PathElement>, HashMap<PathElement, &'a Value>);

/// Path elements of a list's items, in order, and the item of each.
/// Duplicates are an error in an applied list; in the live list the first
/// stands for a duplicated element, as null.
fn index<'a>(items: &'a [Value], kind: &ListKind, allow_duplicates: bool) -> Result<Indexed<'a>> {
    static NULL: Value = Value::Null;
    let mut pes = Vec::with_capacity(items.len());
    let mut seen: HashMap<PathElement, &Value> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        let pe = item_element(kind, it).map_err(|e| SchemaError(format!("element {i}: {e}")))?;
        if seen.contains_key(&pe) {
            if !allow_duplicates {
                return Err(SchemaError(format!("duplicate entries for key {pe}")));
            }
            seen.insert(pe.clone(), &NULL);
        } else {
            seen.insert(pe.clone(), it);
        }
        pes.push(pe);
    }
    Ok((pes, seen))
}

/// Merges keyed or set lists, keeping the applied order for the items it
/// names and the live position of the others, as upstream interleaves them.
fn merge_list(
    lhs: &[Value],
    rhs: &[Value],
    kind: &ListKind,
    pos: Pos<'_>,
) -> Result<Option<Value>> {
    let item = pos.item();
    let (rhs_pes, observed_rhs) = index(rhs, kind, false)?;
    let (lhs_pes, observed_lhs) = index(lhs, kind, true)?;
    let mut shared = rhs_pes
        .iter()
        .filter(|pe| observed_lhs.contains_key(*pe))
        .collect::<Vec<_>>()
        .into_iter();
    let mut next_shared = shared.next();
    let mut merged_rhs: HashSet<&PathElement> = HashSet::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lhs_pes.len() || ri < rhs_pes.len() {
        if li < lhs_pes.len() && ri < rhs_pes.len() {
            let pe = &lhs_pes[li];
            if *pe == rhs_pes[ri] {
                merged_rhs.insert(pe);
                out.extend(merge(
                    observed_lhs.get(pe).copied(),
                    observed_rhs.get(pe).copied(),
                    item,
                )?);
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if observed_rhs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lhs_pes.len() {
            let pe = &lhs_pes[li];
            if !observed_rhs.contains_key(pe) {
                out.extend(merge(Some(&lhs[li]), None, item)?);
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < rhs_pes.len() {
            let pe = &rhs_pes[ri];
            merged_rhs.insert(pe);
            out.extend(merge(
                observed_lhs.get(pe).copied(),
                observed_rhs.get(pe).copied(),
                item,
            )?);
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

// ---- compare ----

/// What changed between two objects, as paths.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: FieldSet,
    pub(crate) modified: FieldSet,
    pub(crate) removed: FieldSet,
}

/// Records the paths `rhs` adds, modifies and removes relative to `lhs`.
pub(crate) fn compare(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    pos: Pos<'_>,
    at: &Path,
    cmp: &mut Comparison,
) -> Result<()> {
    // A field a typed object always has (a Go value struct, a list without
    // omitempty) is never absent: compare it with an empty one rather than
    // report the field itself added or removed.
    let always = pos.field.is_some_and(|f| f.value_struct);
    let (empty_object, empty_list) = (Value::Object(Map::new()), Value::Array(Vec::new()));
    let empty_like = |v: Option<&Value>| match v {
        Some(Value::Object(_)) if always => Some(&empty_object),
        Some(Value::Array(_)) if always => Some(&empty_list),
        _ => None,
    };
    let lhs = lhs.or_else(|| empty_like(rhs));
    let rhs = rhs.or_else(|| empty_like(lhs));
    if let (Some(l), Some(r)) = (lhs, rhs)
        && l == r
    {
        // Nothing below differs: no path to record (and none to build).
        return Ok(());
    }
    let all = |f: fn(&Value) -> bool| lhs.is_none_or(f) && rhs.is_none_or(f);
    let mut in_leaf = false;
    if all(Value::is_object)
        && !pos.atomic()
        && !(lhs.is_none_or(is_empty_object) && rhs.is_none_or(is_empty_object))
    {
        let (l, r) = (as_map(lhs), as_map(rhs));
        for k in l.keys().chain(r.keys().filter(|k| !l.contains_key(*k))) {
            if k == "managedFields" && at.is_metadata() {
                // Ownership is never recorded of the record itself.
                continue;
            }
            let p = at.child(PathElement::Field(k.clone()));
            compare(l.get(k), r.get(k), pos.child(k), &p, cmp)?;
        }
    } else if all(Value::is_array)
        && !matches!(pos.list_kind(), ListKind::Atomic)
        && !(as_list(lhs).is_empty() && as_list(rhs).is_empty())
    {
        compare_list(as_list(lhs), as_list(rhs), &pos.list_kind(), pos, at, cmp)?;
    } else {
        in_leaf = true;
        match (lhs, rhs) {
            (None, _) => cmp.added.insert(at.clone()),
            (_, None) => cmp.removed.insert(at.clone()),
            (Some(l), Some(r)) if l != r => cmp.modified.insert(at.clone()),
            _ => {}
        }
    }
    if !in_leaf {
        if lhs.is_none() {
            cmp.added.insert(at.clone());
        } else if rhs.is_none() {
            cmp.removed.insert(at.clone());
        }
    }
    Ok(())
}

fn compare_list(
    lhs: &[Value],
    rhs: &[Value],
    kind: &ListKind,
    pos: Pos<'_>,
    at: &Path,
    cmp: &mut Comparison,
) -> Result<()> {
    let item = pos.item();
    let mut order: Vec<PathElement> = Vec::new();
    let mut l_items: HashMap<PathElement, Vec<&Value>> = HashMap::new();
    let mut r_items: HashMap<PathElement, Vec<&Value>> = HashMap::new();
    for (items, side) in [(lhs, &mut l_items), (rhs, &mut r_items)] {
        for (i, it) in items.iter().enumerate() {
            let pe =
                item_element(kind, it).map_err(|e| SchemaError(format!("element {i}: {e}")))?;
            let entry = side.entry(pe.clone()).or_default();
            if entry.is_empty() && !order.contains(&pe) {
                order.push(pe);
            }
            entry.push(it);
        }
    }
    for pe in order {
        let l = l_items.get(&pe).map_or(&[][..], Vec::as_slice);
        let r = r_items.get(&pe).map_or(&[][..], Vec::as_slice);
        let p = at.child(pe);
        match (l.len(), r.len()) {
            (0..=1, 0..=1) => compare(l.first().copied(), r.first().copied(), item, &p, cmp)?,
            (2.., 2..) => {
                if l != r {
                    cmp.modified.insert(p);
                }
            }
            (2.., _) => {
                if let Some(first) = r.first() {
                    compare(None, Some(first), item, &p, cmp)?;
                }
                cmp.removed.insert(p);
            }
            (_, _) => {
                if let Some(first) = l.first() {
                    compare(Some(first), None, item, &p, cmp)?;
                }
                cmp.added.insert(p);
            }
        }
    }
    Ok(())
}

// ---- removal ----

fn is_emptied(v: &Value) -> bool {
    is_empty_object(v) || v.as_array().is_some_and(Vec::is_empty)
}

/// Removes the value at `path` (and everything below it) from `v`.
pub(crate) fn remove(v: &mut Value, pos: Pos<'_>, path: &[PathElement]) -> Result<()> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    match (first, v) {
        (PathElement::Field(k), Value::Object(m)) => {
            if rest.is_empty() {
                m.remove(k);
            } else if let Some(child) = m.get_mut(k) {
                remove(child, pos.child(k), rest)?;
                // Upstream drops what the removal emptied.
                if is_emptied(child) {
                    m.remove(k);
                }
            }
        }
        (PathElement::Index(i), Value::Array(items)) => {
            if rest.is_empty() {
                if *i < items.len() {
                    items.remove(*i);
                }
            } else if let Some(child) = items.get_mut(*i) {
                remove(child, pos.item(), rest)?;
            }
        }
        (pe, Value::Array(items)) => {
            let kind = pos.list_kind();
            let mut found = None;
            for (i, it) in items.iter().enumerate() {
                if item_element(&kind, it).ok().as_ref() == Some(pe) {
                    found = Some(i);
                    break;
                }
            }
            if let Some(i) = found {
                if rest.is_empty() {
                    items.remove(i);
                } else {
                    remove(&mut items[i], pos.item(), rest)?;
                    if is_emptied(&items[i]) {
                        items.remove(i);
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}
