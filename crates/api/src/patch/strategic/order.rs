//! Where merged list items go: upstream's ordering of patch items, live-only
//! items, and `$setElementOrder` lists.

use std::collections::HashMap;

use serde_json::Value;

use super::{DIRECTIVE, PatchError, bad_arg_type, is_delete_item, no_merge_key};
use crate::gofmt::GoKind;

/// The live list as upstream's ordering step sees it after merging.
///
/// Upstream merges the list in place: deleting items shifts the rest of the
/// Go slice's backing array left, and new items are appended into the freed
/// slots. Its ordering step then reads the live list through the original
/// slice header, i.e. the first `len` slots of that array. Where live-only
/// items are placed depends on this view, so we reproduce it.
pub(super) fn aliased_live_order(live: &[Value], patch: &[Value], merge_key: &str) -> Vec<Value> {
    let key_of = |v: &Value| v.as_object().and_then(|m| m.get(merge_key)).cloned();
    let directive = |v: &Value| v.get(DIRECTIVE).and_then(Value::as_str).map(str::to_owned);
    if patch
        .iter()
        .any(|v| directive(v).as_deref() == Some("replace"))
    {
        return live.to_vec();
    }
    // `view` is the backing array seen through the original header;
    // `current` is the slice as the merge grows and shrinks it.
    let mut view = live.to_vec();
    let mut current = live.to_vec();
    let same_key = |v: &Value, key: &Option<Value>| key.is_some() && key_of(v) == *key;
    for item in patch
        .iter()
        .filter(|v| directive(v).as_deref() == Some("delete"))
    {
        let key = key_of(item);
        while let Some(i) = current.iter().position(|v| same_key(v, &key)) {
            // Everything after `i` shifts left; the last slot keeps its value.
            for j in i..current.len() - 1 {
                view[j] = view[j + 1].clone();
            }
            current.remove(i);
        }
    }
    for item in patch.iter().filter(|v| directive(v).is_none()) {
        let key = key_of(item);
        if current.iter().any(|v| same_key(v, &key)) {
            continue;
        }
        if let Some(slot) = view.get_mut(current.len()) {
            *slot = item.clone();
        }
        current.push(item.clone());
    }
    view
}

/// Orders `patch_items` as in `patch_order` and `server_only` as in
/// `server_order`, then interleaves them, server-only items keeping their
/// live position relative to patch items where both are known.
pub(super) fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: GoKind,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, kind)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, kind)?;
    let index = OrderIndex::new(server_order, merge_key, kind);
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index.get(l), index.get(r)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

/// Stable sort of `items` by their position in `order`; `$patch: delete`
/// items go last.
fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: GoKind,
) -> Result<Vec<Value>, PatchError> {
    let (mut items, deletes) = if kind == GoKind::Map {
        for item in items.iter().chain(order) {
            let m = item
                .as_object()
                .ok_or_else(|| bad_arg_type(GoKind::Map, item))?;
            if !m.contains_key(merge_key) {
                return Err(no_merge_key(m, merge_key));
            }
        }
        let mut keep = Vec::new();
        let mut deletes = Vec::new();
        for item in items {
            if is_delete_item(&item)? {
                deletes.push(item);
            } else {
                keep.push(item);
            }
        }
        (keep, deletes)
    } else {
        (items, Vec::new())
    };
    let index = OrderIndex::new(order, merge_key, kind);
    let positions: Vec<Option<usize>> = items.iter().map(|i| index.get(i)).collect();
    if positions.iter().all(Option::is_some) {
        let mut paired: Vec<(Option<usize>, Value)> = positions.into_iter().zip(items).collect();
        paired.sort_by_key(|(p, _)| *p);
        items = paired.into_iter().map(|(_, v)| v).collect();
    } else {
        // Upstream's comparator says "less" whenever either side is unknown,
        // which is not an order; Go's stable sort then behaves as an insertion
        // sort over small lists, which we reproduce.
        let mut paired: Vec<(Option<usize>, Value)> = positions.into_iter().zip(items).collect();
        let less = |a: Option<usize>, b: Option<usize>| match (a, b) {
            (Some(a), Some(b)) => a < b,
            _ => true,
        };
        for i in 1..paired.len() {
            let mut j = i;
            while j > 0 && less(paired[j].0, paired[j - 1].0) {
                paired.swap(j, j - 1);
                j -= 1;
            }
        }
        items = paired.into_iter().map(|(_, v)| v).collect();
    }
    items.extend(deletes);
    Ok(items)
}

/// First position of each merge-key value (or scalar) in an order list.
struct OrderIndex<'a> {
    merge_key: &'a str,
    kind: GoKind,
    first: HashMap<String, usize>,
}

impl<'a> OrderIndex<'a> {
    fn new(order: &[Value], merge_key: &'a str, kind: GoKind) -> Self {
        let mut index = OrderIndex {
            merge_key,
            kind,
            first: HashMap::new(),
        };
        for (i, item) in order.iter().enumerate() {
            let key = index.key(item);
            index.first.entry(key).or_insert(i);
        }
        index
    }

    /// The identity upstream compares: the merge-key value of an object
    /// (nil when absent), the item itself otherwise.
    fn key(&self, item: &Value) -> String {
        if self.kind == GoKind::Map {
            match item.as_object().and_then(|m| m.get(self.merge_key)) {
                Some(v) => v.to_string(),
                None => "\u{0}nil".to_owned(),
            }
        } else {
            item.to_string()
        }
    }

    fn get(&self, item: &Value) -> Option<usize> {
        self.first.get(&self.key(item)).copied()
    }
}
