use expect_test::{Expect, expect};

use super::*;
use crate::patch::test_util::render;

const LIVE: &str = r#"{"metadata":{"name":"x","labels":{"a/b":"1","c~d":"2"}},"spec":{"list":[1,2,3],"obj":{"k":"v"},"nil":null}}"#;

fn check(patch: &str, expect: Expect) {
    let live: Value = serde_json::from_str(LIVE).expect("test input is JSON");
    expect.assert_eq(&render(apply_json_patch(&live, patch.as_bytes())));
}

/// Renders only the `spec` of the result, for brevity.
fn check_spec(patch: &str, expect: Expect) {
    let live: Value = serde_json::from_str(LIVE).expect("test input is JSON");
    let out = apply_json_patch(&live, patch.as_bytes()).map(|v| v["spec"].clone());
    expect.assert_eq(&render(out));
}

#[test]
fn operations() {
    check_spec(
        r#"[{"op":"add","path":"/spec/new","value":{"a":1}}]"#,
        expect![[r#"{"list":[1,2,3],"new":{"a":1},"nil":null,"obj":{"k":"v"}}"#]],
    );
    check_spec(
        r#"[{"op":"add","path":"/spec/list/1","value":9},{"op":"add","path":"/spec/list/-","value":10}]"#,
        expect![[r#"{"list":[1,9,2,3,10],"nil":null,"obj":{"k":"v"}}"#]],
    );
    check_spec(
        r#"[{"op":"add","path":"/spec/list/-1","value":9}]"#,
        expect![[r#"{"list":[1,2,3,9],"nil":null,"obj":{"k":"v"}}"#]],
    );
    check_spec(
        r#"[{"op":"remove","path":"/spec/list/0"},{"op":"remove","path":"/spec/obj"}]"#,
        expect![[r#"{"list":[2,3],"nil":null}"#]],
    );
    check_spec(
        r#"[{"op":"remove","path":"/spec/list/-1"}]"#,
        expect![[r#"{"list":[1,2],"nil":null,"obj":{"k":"v"}}"#]],
    );
    check_spec(
        r#"[{"op":"replace","path":"/spec/list/2","value":"x"},{"op":"replace","path":"/spec/obj/k","value":"w"}]"#,
        expect![[r#"{"list":[1,2,"x"],"nil":null,"obj":{"k":"w"}}"#]],
    );
    check_spec(
        r#"[{"op":"move","from":"/spec/obj/k","path":"/spec/moved"}]"#,
        expect![[r#"{"list":[1,2,3],"moved":"v","nil":null,"obj":{}}"#]],
    );
    check_spec(
        r#"[{"op":"copy","from":"/spec/list","path":"/spec/obj/copy"}]"#,
        expect![[r#"{"list":[1,2,3],"nil":null,"obj":{"copy":[1,2,3],"k":"v"}}"#]],
    );
    check_spec(
        r#"[{"op":"test","path":"/spec/list","value":[1,2,3]},{"op":"test","path":"/spec/nil","value":null},{"op":"test","path":"/spec/absent"}]"#,
        expect![[r#"{"list":[1,2,3],"nil":null,"obj":{"k":"v"}}"#]],
    );
    // RFC 6901 escapes: `~1` is `/`, `~0` is `~`.
    check(
        r#"[{"op":"remove","path":"/metadata/labels/a~1b"},{"op":"replace","path":"/metadata/labels/c~0d","value":"3"}]"#,
        expect![[
            r#"{"metadata":{"labels":{"c~d":"3"},"name":"x"},"spec":{"list":[1,2,3],"nil":null,"obj":{"k":"v"}}}"#
        ]],
    );
    // Whole-document replace and test.
    check(
        r#"[{"op":"replace","path":"","value":{"kind":"X"}},{"op":"test","path":"","value":{"kind":"X"}}]"#,
        expect![[r#"{"kind":"X"}"#]],
    );
    check(
        r#"[]"#,
        expect![[
            r#"{"metadata":{"labels":{"a/b":"1","c~d":"2"},"name":"x"},"spec":{"list":[1,2,3],"nil":null,"obj":{"k":"v"}}}"#
        ]],
    );
    check(
        r#"null"#,
        expect![[
            r#"{"metadata":{"labels":{"a/b":"1","c~d":"2"},"name":"x"},"spec":{"list":[1,2,3],"nil":null,"obj":{"k":"v"}}}"#
        ]],
    );
}

#[test]
fn upstream_quirks() {
    // `replace` of a missing object key adds it.
    check_spec(
        r#"[{"op":"replace","path":"/spec/absent","value":1}]"#,
        expect![[r#"{"absent":1,"list":[1,2,3],"nil":null,"obj":{"k":"v"}}"#]],
    );
    // `copy` from a missing key copies null.
    check_spec(
        r#"[{"op":"copy","from":"/spec/absent","path":"/spec/c"}]"#,
        expect![[r#"{"c":null,"list":[1,2,3],"nil":null,"obj":{"k":"v"}}"#]],
    );
    // A path without a leading slash addresses from its second segment.
    check(
        r#"[{"op":"add","path":"spec/x","value":1}]"#,
        expect![[
            r#"{"metadata":{"labels":{"a/b":"1","c~d":"2"},"name":"x"},"spec":{"list":[1,2,3],"nil":null,"obj":{"k":"v"}},"x":1}"#
        ]],
    );
    // `add` without a value adds null.
    check_spec(
        r#"[{"op":"add","path":"/spec/v"}]"#,
        expect![[r#"{"list":[1,2,3],"nil":null,"obj":{"k":"v"},"v":null}"#]],
    );
}

#[test]
fn failures_are_422_with_upstream_detail() {
    check(
        r#"[{"op":"test","path":"/spec/list/0","value":2}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [testing value /spec/list/0 failed: test failed]"#
        ]],
    );
    check(
        r#"[{"op":"test","path":"/spec/obj","value":null}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [testing value /spec/obj failed: test failed]"#
        ]],
    );
    check(
        r#"[{"op":"test","path":"/spec/obj"}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [testing value /spec/obj failed: test failed]"#
        ]],
    );
    check(
        r#"[{"op":"add","path":"/missing/x","value":1}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [add operation does not apply: doc is missing path: "/missing/x": missing value]"#
        ]],
    );
    check(
        r#"[{"op":"add","path":"/spec/nil/x","value":1}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [add operation does not apply: doc is missing path: "/spec/nil/x": missing value]"#
        ]],
    );
    check(
        r#"[{"op":"add","path":"/spec/list/5","value":1}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [error in add for path: '/spec/list/5': Unable to access invalid index: 5: invalid index referenced]"#
        ]],
    );
    check(
        r#"[{"op":"add","path":"/spec/list/x","value":1}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [error in add for path: '/spec/list/x': value was not a proper array index: 'x': strconv.Atoi: parsing "x": invalid syntax]"#
        ]],
    );
    check(
        r#"[{"op":"remove","path":"/spec/absent"}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [error in remove for path: '/spec/absent': Unable to remove nonexistent key: absent: missing value]"#
        ]],
    );
    check(
        r#"[{"op":"remove","path":"/spec/list/3"}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [error in remove for path: '/spec/list/3': Unable to access invalid index: 3: invalid index referenced]"#
        ]],
    );
    check(
        r#"[{"op":"replace","path":"/spec/list/7","value":1}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [replace operation does not apply: doc is missing key: /spec/list/7: missing value]"#
        ]],
    );
    check(
        r#"[{"op":"replace","path":"","value":1}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [replace operation value must be object or array: %!w(<nil>)]"#
        ]],
    );
    check(
        r#"[{"op":"move","from":"/spec/absent","path":"/spec/x"}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [error in move for path: 'absent': Unable to remove nonexistent key: absent: missing value]"#
        ]],
    );
    check(
        r#"[{"op":"move","path":"/spec/x"}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [move operation failed to decode from: operation, missing from field: missing value]"#
        ]],
    );
    check(
        r#"[{"op":"remove"}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [remove operation failed to decode path: missing value]"#
        ]],
    );
    check(
        r#"[{"op":"replace","path":5}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [replace operation failed to decode path: json: cannot unmarshal number into Go value of type string]"#
        ]],
    );
    check(
        r#"[{"op":"frobnicate","path":"/a"}]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [Unexpected kind: frobnicate]"#
        ]],
    );
    check(
        r#"[null]"#,
        expect![[
            r#"422 Invalid: the server rejected our request due to an error in our request [Unexpected kind: unknown]"#
        ]],
    );
}

#[test]
fn malformed_bodies_are_400() {
    check(
        r#"{"op":"add"}"#,
        expect![[
            r#"400 BadRequest: json: cannot unmarshal object into Go value of type jsonpatch.Patch"#
        ]],
    );
    check(
        r#"["add"]"#,
        expect![[
            r#"400 BadRequest: json: cannot unmarshal string into Go value of type jsonpatch.Operation"#
        ]],
    );
    check(
        r#"[{"op":"#,
        expect!["400 BadRequest: unexpected end of JSON input"],
    );
}

#[test]
fn denial_of_service_guards() {
    // CVE-2019-1002100: too many operations is refused before any is applied.
    let op = r#"{"op":"add","path":"/x","value":"y"}"#;
    let huge = format!("[{}]", vec![op; MAX_OPERATIONS + 1].join(","));
    check(
        &huge,
        expect![[
            r#"413 RequestEntityTooLarge: Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"#
        ]],
    );
    let ok = format!("[{}]", vec![op; MAX_OPERATIONS].join(","));
    assert!(apply_json_patch(&serde_json::json!({}), ok.as_bytes()).is_ok());

    // Doubling a value with copies stops at the copy budget, long before
    // memory runs out.
    let mut ops = vec![
        r#"{"op":"add","path":"/a","value":"0123456789012345678901234567890123456789"}"#.to_owned(),
    ];
    for i in 0..40 {
        ops.push(format!(r#"{{"op":"add","path":"/l{i}","value":[]}}"#));
        let prev = if i == 0 {
            "/a".to_owned()
        } else {
            format!("/l{}", i - 1)
        };
        ops.push(format!(
            r#"{{"op":"copy","from":"{prev}","path":"/l{i}/-"}}"#
        ));
        ops.push(format!(
            r#"{{"op":"copy","from":"{prev}","path":"/l{i}/-"}}"#
        ));
    }
    let err = apply_json_patch(
        &serde_json::json!({}),
        format!("[{}]", ops.join(",")).as_bytes(),
    )
    .expect_err("copy budget exceeded");
    expect![[r#"Unprocessable { detail: "Unable to complete the copy, the accumulated size increase of copy is 4423497, exceeding the limit 3145728" }"#]]
        .assert_eq(&format!("{err:?}"));
}

/// Random operation sequences must never panic.
#[test]
fn random_operations_never_panic() {
    let ops = ["add", "remove", "replace", "move", "copy", "test", "bogus"];
    let paths = [
        "",
        "/",
        "/spec",
        "/spec/list/0",
        "/spec/list/-",
        "/spec/list/-1",
        "/spec/list/-9",
        "/spec/list/99",
        "/spec/list/x",
        "/spec/obj/k",
        "/spec/nil/x",
        "a/b",
        "/metadata/labels/a~1b",
        "/spec/list/99999999999999999999999",
    ];
    let values = [r#"1"#, r#"null"#, r#"{"a":[1]}"#, r#"[]"#];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let live: Value = serde_json::from_str(LIVE).expect("JSON");
    for _ in 0..3000 {
        let n = next() % 4 + 1;
        let mut list = Vec::new();
        for _ in 0..n {
            let pick = |r: u64, len: usize| (r % len as u64) as usize;
            list.push(format!(
                r#"{{"op":"{}","path":"{}","from":"{}","value":{}}}"#,
                ops[pick(next(), ops.len())],
                paths[pick(next(), paths.len())],
                paths[pick(next(), paths.len())],
                values[pick(next(), values.len())]
            ));
        }
        let _ = apply_json_patch(&live, format!("[{}]", list.join(",")).as_bytes());
    }
}
