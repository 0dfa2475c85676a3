//! JSON merge patch (RFC 7386, `application/merge-patch+json`), as
//! `evanphx/json-patch`'s `MergePatch` applies it for kube-apiserver.

use serde_json::{Map, Value};

use super::PatchError;

/// Applies a JSON merge patch request body to a live object: objects merge
/// key by key, `null` deletes, anything else replaces.
///
/// ```
/// use bulwark_api::patch::apply_merge_patch;
/// use serde_json::json;
///
/// let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
/// let patched = apply_merge_patch(&live, br#"{"metadata": {"labels": {"a": null, "c": "3"}}}"#).unwrap();
/// assert_eq!(patched, json!({"metadata": {"labels": {"b": "2", "c": "3"}}}));
/// ```
pub fn apply_merge_patch(original: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let bad = || PatchError::BadRequest("Invalid JSON Patch".to_owned());
    let patch: Value = serde_json::from_slice(patch).map_err(|_| bad())?;
    match patch {
        Value::Object(p) => match original {
            Value::Object(o) => {
                let mut merged = o.clone();
                merge_objects(&mut merged, p);
                Ok(Value::Object(merged))
            }
            // A live value that is not an object is replaced by the patch.
            _ => Ok(Value::Object(pruned_object(p))),
        },
        // An array patch replaces the document (nulls inside objects pruned).
        Value::Array(mut items) => {
            items.iter_mut().for_each(prune_nulls);
            Ok(Value::Array(items))
        }
        // `null`, strings, numbers and booleans are not merge patches.
        _ => Err(bad()),
    }
}

fn merge_objects(doc: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        if v.is_null() {
            doc.remove(&k);
            continue;
        }
        match doc.get_mut(&k) {
            Some(current @ Value::Object(_)) => match v {
                Value::Object(p) => {
                    if let Value::Object(cur) = current {
                        merge_objects(cur, p);
                    }
                }
                // Upstream keeps nulls in a non-object value replacing an object.
                other => *current = other,
            },
            Some(current) if !current.is_null() => {
                let mut v = v;
                prune_nulls(&mut v);
                *current = v;
            }
            _ => {
                let mut v = v;
                prune_nulls(&mut v);
                doc.insert(k, v);
            }
        }
    }
}

fn pruned_object(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|_, v| !v.is_null());
    m.values_mut().for_each(prune_nulls);
    m
}

/// Removes null members of objects, recursively; nulls directly in lists stay.
fn prune_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;
    use crate::patch::test_util::render;

    fn check(live: &str, patch: &str, expect: Expect) {
        let live: Value = serde_json::from_str(live).expect("test input is JSON");
        expect.assert_eq(&render(apply_merge_patch(&live, patch.as_bytes())));
    }

    #[test]
    fn rfc7386_cases() {
        check(r#"{"a":"b"}"#, r#"{"a":"c"}"#, expect![[r#"{"a":"c"}"#]]);
        check(
            r#"{"a":"b"}"#,
            r#"{"b":"c"}"#,
            expect![[r#"{"a":"b","b":"c"}"#]],
        );
        check(r#"{"a":"b"}"#, r#"{"a":null}"#, expect![[r#"{}"#]]);
        check(
            r#"{"a":"b","b":"c"}"#,
            r#"{"a":null}"#,
            expect![[r#"{"b":"c"}"#]],
        );
        check(r#"{"a":["b"]}"#, r#"{"a":"c"}"#, expect![[r#"{"a":"c"}"#]]);
        check(
            r#"{"a":"c"}"#,
            r#"{"a":["b"]}"#,
            expect![[r#"{"a":["b"]}"#]],
        );
        check(
            r#"{"a":{"b":"c"}}"#,
            r#"{"a":{"b":"d","c":null}}"#,
            expect![[r#"{"a":{"b":"d"}}"#]],
        );
        check(
            r#"{"a":[{"b":"c"}]}"#,
            r#"{"a":[1]}"#,
            expect![[r#"{"a":[1]}"#]],
        );
        check(
            r#"{"e":null}"#,
            r#"{"a":1}"#,
            expect![[r#"{"a":1,"e":null}"#]],
        );
        check(
            r#"{}"#,
            r#"{"a":{"bb":{"ccc":null}}}"#,
            expect![[r#"{"a":{"bb":{}}}"#]],
        );
        check(r#"{"a":"b"}"#, r#"{}"#, expect![[r#"{"a":"b"}"#]]);
    }

    #[test]
    fn upstream_details() {
        // Nulls inside objects within a new list are pruned; nulls in the list stay.
        check(
            r#"{}"#,
            r#"{"a":[{"x":null,"y":1},null]}"#,
            expect![[r#"{"a":[{"y":1},null]}"#]],
        );
        // A live null is treated as absent.
        check(
            r#"{"a":null}"#,
            r#"{"a":{"b":null,"c":1}}"#,
            expect![[r#"{"a":{"c":1}}"#]],
        );
        // An array patch replaces the whole document.
        check(r#"{"a":1}"#, r#"[{"x":null},2]"#, expect![[r#"[{},2]"#]]);
        check(
            r#"{"a":1}"#,
            r#"null"#,
            expect![[r#"400 BadRequest: Invalid JSON Patch"#]],
        );
        check(
            r#"{"a":1}"#,
            r#""str""#,
            expect![[r#"400 BadRequest: Invalid JSON Patch"#]],
        );
        check(
            r#"{"a":1}"#,
            r#"{"a":"#,
            expect![[r#"400 BadRequest: Invalid JSON Patch"#]],
        );
    }
}
