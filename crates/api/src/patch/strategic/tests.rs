use expect_test::{Expect, expect};
use serde_json::Value;

use super::*;
use crate::patch::test_util::render;

/// Applies `patch` to `live` with the schema of `kind` (`Pod`, `Deployment`,
/// … or `untagged`) and renders the result or the error.
fn check(kind: &str, live: &str, patch: &str, expect: Expect) {
    let schema = match kind {
        "untagged" => PatchSchema::untagged(),
        "Deployment" => PatchSchema::for_kind("apps/v1", kind).expect("built-in"),
        "PodDisruptionBudget" => PatchSchema::for_kind("policy/v1", kind).expect("built-in"),
        _ => PatchSchema::for_kind("v1", kind).expect("built-in"),
    };
    let live: Value = serde_json::from_str(live).expect("test input is JSON");
    let result = apply_strategic_merge_patch(&live, patch.as_bytes(), schema);
    expect.assert_eq(&render(result));
}

#[test]
fn fields_merge_and_null_deletes() {
    check(
        "Pod",
        r#"{"metadata":{"name":"p","labels":{"a":"1","b":"2"}},"spec":{"nodeName":"n1"}}"#,
        r#"{"metadata":{"labels":{"b":null,"c":"3"}},"spec":{"nodeName":"n2","hostname":"h"}}"#,
        expect![[
            r#"{"metadata":{"labels":{"a":"1","c":"3"},"name":"p"},"spec":{"hostname":"h","nodeName":"n2"}}"#
        ]],
    );
    // A null for a field the object lacks changes nothing.
    check(
        "Pod",
        r#"{"metadata":{"name":"p"}}"#,
        r#"{"metadata":{"annotations":null}}"#,
        expect![[r#"{"metadata":{"name":"p"}}"#]],
    );
    // Empty and null patches change nothing.
    check("Pod", r#"{"a":1}"#, "{}", expect![[r#"{"a":1}"#]]);
    check("Pod", r#"{"a":1}"#, "null", expect![[r#"{"a":1}"#]]);
    // A value of another type replaces, its nulls and directive objects dropped.
    check(
        "Pod",
        r#"{"spec":{"x":"str"}}"#,
        r#"{"spec":{"x":{"a":null,"b":1,"c":{"$patch":"delete"}}}}"#,
        expect![[r#"{"spec":{"x":{"b":1}}}"#]],
    );
    // A new field: the same.
    check(
        "Pod",
        r#"{}"#,
        r#"{"spec":{"a":null,"b":[1,null],"c":{"$patch":"replace","d":1}}}"#,
        expect![[r#"{"spec":{"b":[1,null]}}"#]],
    );
}

#[test]
fn lists_of_objects_merge_by_key() {
    let live = r#"{"spec":{"containers":[{"name":"a","image":"a:1"},{"name":"b","image":"b:1","env":[{"name":"X","value":"1"},{"name":"Y","value":"2"}]},{"name":"c","image":"c:1"}]}}"#;
    check(
        "Pod",
        live,
        r#"{"spec":{"containers":[{"name":"b","image":"b:2","env":[{"name":"Y","value":"3"},{"name":"Z","value":"4"}]}]}}"#,
        expect![[
            r#"{"spec":{"containers":[{"image":"a:1","name":"a"},{"env":[{"name":"X","value":"1"},{"name":"Y","value":"3"},{"name":"Z","value":"4"}],"image":"b:2","name":"b"},{"image":"c:1","name":"c"}]}}"#
        ]],
    );
    // New items go after the patch items they follow; live-only items keep
    // their place relative to patch items they were before.
    check(
        "Pod",
        live,
        r#"{"spec":{"containers":[{"name":"b","image":"b:2"},{"name":"new","image":"n"}]}}"#,
        expect![[
            r#"{"spec":{"containers":[{"image":"a:1","name":"a"},{"env":[{"name":"X","value":"1"},{"name":"Y","value":"2"}],"image":"b:2","name":"b"},{"image":"n","name":"new"},{"image":"c:1","name":"c"}]}}"#
        ]],
    );
    // `$patch: delete` removes by merge key; `$patch: replace` replaces the list.
    check(
        "Pod",
        live,
        r#"{"spec":{"containers":[{"name":"a","$patch":"delete"},{"name":"c","$patch":"delete"}]}}"#,
        expect![[
            r#"{"spec":{"containers":[{"env":[{"name":"X","value":"1"},{"name":"Y","value":"2"}],"image":"b:1","name":"b"}]}}"#
        ]],
    );
    check(
        "Pod",
        live,
        r#"{"spec":{"containers":[{"name":"z","image":"z"},{"$patch":"replace"}]}}"#,
        expect![[r#"{"spec":{"containers":[{"image":"z","name":"z"}]}}"#]],
    );
    // Ports merge by containerPort, ownerReferences by uid, conditions by type.
    // A new item whose place the live list cannot tell goes before the
    // live-only items (upstream's well-known "prepend").
    check(
        "Pod",
        r#"{"metadata":{"ownerReferences":[{"uid":"1","name":"rs"}]},"spec":{"containers":[{"name":"a","ports":[{"containerPort":80,"name":"http"}]}]},"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"PodScheduled","status":"True"}]}}"#,
        r#"{"metadata":{"ownerReferences":[{"uid":"2","name":"other"}]},"spec":{"containers":[{"name":"a","ports":[{"containerPort":80,"protocol":"TCP"},{"containerPort":443}]}]},"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
        expect![[
            r#"{"metadata":{"ownerReferences":[{"name":"other","uid":"2"},{"name":"rs","uid":"1"}]},"spec":{"containers":[{"name":"a","ports":[{"containerPort":80,"name":"http","protocol":"TCP"},{"containerPort":443}]}]},"status":{"conditions":[{"status":"True","type":"Ready"},{"status":"True","type":"PodScheduled"}]}}"#
        ]],
    );
}

#[test]
fn untagged_lists_are_replaced() {
    // tolerations and args carry no patch strategy upstream: atomic.
    check(
        "Pod",
        r#"{"spec":{"tolerations":[{"key":"a"}],"containers":[{"name":"c","args":["x","y"]}]}}"#,
        r#"{"spec":{"tolerations":[{"key":"b"}],"containers":[{"name":"c","args":["z"]}]}}"#,
        expect![[
            r#"{"spec":{"containers":[{"args":["z"],"name":"c"}],"tolerations":[{"key":"b"}]}}"#
        ]],
    );
    // Without a schema, even containers are replaced.
    check(
        "untagged",
        r#"{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}"#,
        r#"{"spec":{"containers":[{"name":"b","image":"x"}]}}"#,
        expect![[r#"{"spec":{"containers":[{"image":"x","name":"b"}]}}"#]],
    );
    // A `replace`-tagged object is replaced whole.
    check(
        "PodDisruptionBudget",
        r#"{"spec":{"selector":{"matchLabels":{"a":"1"}},"minAvailable":1}}"#,
        r#"{"spec":{"selector":{"matchExpressions":[{"key":"b","operator":"Exists"}]}}}"#,
        expect![[
            r#"{"spec":{"minAvailable":1,"selector":{"matchExpressions":[{"key":"b","operator":"Exists"}]}}}"#
        ]],
    );
}

#[test]
fn map_directives() {
    check(
        "Pod",
        r#"{"metadata":{"labels":{"a":"1","b":"2"}}}"#,
        r#"{"metadata":{"labels":{"$patch":"replace","c":"3"}}}"#,
        expect![[r#"{"metadata":{"labels":{"c":"3"}}}"#]],
    );
    check(
        "Pod",
        r#"{"metadata":{"labels":{"a":"1"},"name":"x"}}"#,
        r#"{"metadata":{"labels":{"$patch":"delete"}}}"#,
        expect![[r#"{"metadata":{"labels":{},"name":"x"}}"#]],
    );
    check(
        "Pod",
        r#"{"metadata":{"name":"x"},"spec":{}}"#,
        r#"{"$patch":"replace","kind":"Pod"}"#,
        expect![[r#"{"kind":"Pod"}"#]],
    );
    check(
        "Pod",
        r#"{"metadata":{"labels":{"a":"1"}}}"#,
        r#"{"metadata":{"labels":{"$patch":"merge","b":"2"}}}"#,
        expect![[r#"500 : unknown patch type: merge in map: map[$patch:merge b:2]"#]],
    );
    check(
        "Pod",
        r#"{"metadata":{"labels":{"a":"1"}}}"#,
        r#"{"metadata":{"labels":{"$patch":1}}}"#,
        expect![[r#"500 : unknown patch type: %!s(int64=1) in map: map[$patch:1]"#]],
    );
}

#[test]
fn primitive_lists() {
    // A merge-tagged list of scalars is a set union; patch order first where
    // the live order cannot tell.
    check(
        "Pod",
        r#"{"metadata":{"finalizers":["a","b"]}}"#,
        r#"{"metadata":{"finalizers":["c","a"]}}"#,
        expect![[r#"{"metadata":{"finalizers":["c","a","b"]}}"#]],
    );
    check(
        "Pod",
        r#"{"metadata":{"finalizers":["a","b","c"]}}"#,
        r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["b","x"]}}"#,
        expect![[r#"{"metadata":{"finalizers":["a","c"]}}"#]],
    );
    // Deleting from a list the object lacks is a no-op.
    check(
        "Pod",
        r#"{"metadata":{}}"#,
        r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["b"]}}"#,
        expect![[r#"{"metadata":{}}"#]],
    );
    check(
        "Pod",
        r#"{"metadata":{"finalizers":["a","b","c"]}}"#,
        r#"{"metadata":{"$setElementOrder/finalizers":["c","a","b"]}}"#,
        expect![[r#"{"metadata":{"finalizers":["c","a","b"]}}"#]],
    );
    check(
        "Pod",
        r#"{"metadata":{"finalizers":["a"]}}"#,
        r#"{"metadata":{"$deleteFromPrimitiveListfinalizers":["a"]}}"#,
        expect![[r#"400 BadRequest: invalid patch format of primitive list"#]],
    );
    check(
        "Pod",
        r#"{"metadata":{"finalizers":["a"]}}"#,
        r#"{"metadata":{"finalizers":[["b"]]}}"#,
        expect!["500 : list element types are not identical: [[a] [[b]]]"],
    );
    check(
        "Pod",
        r#"{"metadata":{"finalizers":["a"]}}"#,
        r#"{"metadata":{"finalizers":[1]}}"#,
        expect![[r#"500 : list element types are not identical: [[a] [1]]"#]],
    );
    check(
        "Pod",
        r#"{"metadata":{"finalizers":["a"]}}"#,
        r#"{"metadata":{"finalizers":[null]}}"#,
        expect![[r#"500 : list element types are not identical: [[a] [<nil>]]"#]],
    );
}

#[test]
fn retain_keys() {
    let live = r#"{"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}}"#;
    check(
        "Deployment",
        live,
        r#"{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}"#,
        expect![[r#"{"spec":{"strategy":{"type":"Recreate"}}}"#]],
    );
    check(
        "Deployment",
        live,
        r#"{"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{"maxSurge":2}}}}"#,
        expect![[r#"400 BadRequest: invalid patch format of retainKeys"#]],
    );
    check(
        "Deployment",
        live,
        r#"{"spec":{"strategy":{"$retainKeys":"type"}}}"#,
        expect![[r#"400 BadRequest: invalid patch format of retainKeys"#]],
    );
    // Volumes: kubectl sends `$retainKeys` in each item when the source changes.
    check(
        "Pod",
        r#"{"spec":{"volumes":[{"name":"v","emptyDir":{}},{"name":"w","emptyDir":{}}]}}"#,
        r#"{"spec":{"volumes":[{"$retainKeys":["configMap","name"],"configMap":{"name":"cm"},"name":"v"}]}}"#,
        expect![[
            r#"{"spec":{"volumes":[{"configMap":{"name":"cm"},"name":"v"},{"emptyDir":{},"name":"w"}]}}"#
        ]],
    );
}

#[test]
fn set_element_order() {
    let live = r#"{"spec":{"containers":[{"name":"a"},{"name":"b"},{"name":"c"}]}}"#;
    check(
        "Pod",
        live,
        r#"{"spec":{"$setElementOrder/containers":[{"name":"c"},{"name":"a"},{"name":"b"}]}}"#,
        expect![[r#"{"spec":{"containers":[{"name":"c"},{"name":"a"},{"name":"b"}]}}"#]],
    );
    // Items the order list omits are placed by their live position relative
    // to the ordered items (b was before c).
    check(
        "Pod",
        live,
        r#"{"spec":{"$setElementOrder/containers":[{"name":"c"},{"name":"a"}],"containers":[{"name":"c","image":"x"}]}}"#,
        expect![[
            r#"{"spec":{"containers":[{"name":"b"},{"image":"x","name":"c"},{"name":"a"}]}}"#
        ]],
    );
    check(
        "Pod",
        live,
        r#"{"spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"c"}],"containers":[{"name":"c","image":"x"},{"name":"a","image":"y"}]}}"#,
        expect![[r#"500 : The order in patch list:
[map[image:x name:c] map[image:y name:a]]
 doesn't match $setElementOrder list:
[map[name:a] map[name:c]]
"#]],
    );
    check(
        "Pod",
        live,
        r#"{"spec":{"$setElementOrder/containers":"a"}}"#,
        expect![[r#"500 : expected a []interface {}, but received a string"#]],
    );
    check(
        "Pod",
        live,
        r#"{"spec":{"$setElementOrderX":[]}}"#,
        expect![[r#"400 BadRequest: invalid patch format of setElementOrder list"#]],
    );
    // Deleting one item and adding another: upstream merges in place, so the
    // new item takes the freed slot in the live order it places live-only
    // items by (d stays before the new c).
    check(
        "Pod",
        r#"{"spec":{"containers":[{"name":"a"},{"name":"b","image":"x"},{"name":"d","image":"y"}]}}"#,
        r#"{"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"c"}],"containers":[{"name":"c"},{"$patch":"delete","name":"a"}]}}"#,
        expect![[
            r#"{"spec":{"containers":[{"image":"x","name":"b"},{"image":"y","name":"d"},{"name":"c"}]}}"#
        ]],
    );
    // A list the object lacks is created in the given order, directives dropped.
    check(
        "Pod",
        r#"{"spec":{}}"#,
        r#"{"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"}],"containers":[{"name":"a"},{"name":"b"},{"name":"z","$patch":"delete"}]}}"#,
        expect![[r#"
            500 : The order in patch list:
            [map[name:a] map[name:b] map[$patch:delete name:z]]
             doesn't match $setElementOrder list:
            [map[name:b] map[name:a]]
        "#]],
    );
}

#[test]
fn kubectl_apply_three_way_patches() {
    // What kubectl 1.32 sends after a sidecar, an env var and a field were
    // removed from a Deployment manifest and the image changed.
    let live = r#"{"metadata":{"name":"web","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"}},
      "spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"web"}},"spec":{
        "containers":[{"name":"web","image":"nginx:1.25","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"resources":{"limits":{"cpu":"1"}}},
                      {"name":"sidecar","image":"busybox"}],
        "restartPolicy":"Always"}}}}"#;
    check(
        "Deployment",
        live,
        r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"new\":1}"}},
            "spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"}],
              "containers":[{"$setElementOrder/env":[{"name":"A"}],"env":[{"$patch":"delete","name":"B"}],"image":"nginx:1.27","name":"web","resources":null},
                            {"$patch":"delete","name":"sidecar"}]}}}}"#,
        expect![[
            r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"new\":1}"},"name":"web"},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"env":[{"name":"A","value":"1"}],"image":"nginx:1.27","name":"web"}],"restartPolicy":"Always"}}}}"#
        ]],
    );
    // A removed top-level field becomes null; a new container is added in order.
    check(
        "Deployment",
        live,
        r#"{"spec":{"replicas":null,"template":{"spec":{"$setElementOrder/containers":[{"name":"init"},{"name":"web"},{"name":"sidecar"}],
            "containers":[{"name":"init","image":"alpine"}]}}}}"#,
        expect![[
            r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"},"name":"web"},"spec":{"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"alpine","name":"init"},{"env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"image":"nginx:1.25","name":"web","resources":{"limits":{"cpu":"1"}}},{"image":"busybox","name":"sidecar"}],"restartPolicy":"Always"}}}}"#
        ]],
    );
    // Label removal and an added port, as `kubectl apply` on a Pod.
    check(
        "Pod",
        r#"{"metadata":{"labels":{"app":"x","tier":"web"}},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":80}]}]}}"#,
        r#"{"metadata":{"labels":{"tier":null}},"spec":{"$setElementOrder/containers":[{"name":"c"}],"containers":[{"$setElementOrder/ports":[{"containerPort":80},{"containerPort":443}],"name":"c","ports":[{"containerPort":443}]}]}}"#,
        expect![[
            r#"{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"image":"i","name":"c","ports":[{"containerPort":80},{"containerPort":443}]}]}}"#
        ]],
    );
}

#[test]
fn malformed_patches_are_errors() {
    let live = r#"{"spec":{"containers":[{"name":"a"}]}}"#;
    check(
        "Pod",
        live,
        r#"{"spec":{"containers":[{"image":"x"}]}}"#,
        expect![[r#"500 : map: map[image:x] does not contain declared merge key: name"#]],
    );
    check(
        "Pod",
        live,
        r#"{"spec":{"containers":[{"$patch":"delete"}]}}"#,
        expect![[r#"500 : map: map[$patch:delete] does not contain declared merge key: name"#]],
    );
    check(
        "Pod",
        live,
        r#"{"spec":{"containers":[{"$patch":"merge","name":"a"}]}}"#,
        expect![[r#"500 : merging lists cannot yet be specified in the patch"#]],
    );
    check(
        "Pod",
        live,
        r#"{"spec":{"containers":[{"$patch":"nope","name":"a"}]}}"#,
        expect![[r#"500 : unknown patch type: nope in map: map[$patch:nope name:a]"#]],
    );
    check(
        "Pod",
        live,
        r#"{"spec":{"containers":["a"]}}"#,
        expect![[r#"500 : list element types are not identical: [[map[name:a]] [a]]"#]],
    );
    check(
        "Pod",
        r#"{"spec":{"tolerations":[{"key":"a"}]}}"#,
        r#"{"spec":{"$deleteFromPrimitiveList/tolerations":[{"key":"a"}]}}"#,
        expect![[r#"500 : cannot merge lists without merge key for struct"#]],
    );
    check(
        "Pod",
        live,
        r#"[{"op":"add"}]"#,
        expect![[
            r#"400 BadRequest: json: cannot unmarshal array into Go value of type map[string]interface {}"#
        ]],
    );
    check(
        "Pod",
        live,
        r#"{"spec":"#,
        expect!["400 BadRequest: unexpected end of JSON input"],
    );
}

/// Random patches built from the directive vocabulary must never panic.
#[test]
fn random_patches_never_panic() {
    let atoms = [
        r#"null"#,
        r#""x""#,
        r#"1"#,
        r#"1.5"#,
        r#"true"#,
        r#"[]"#,
        r#"[null]"#,
        r#"[["a"]]"#,
        r#"[{"name":"a"}]"#,
        r#"[{"name":"a","$patch":"delete"}]"#,
        r#"[{"$patch":"replace"}]"#,
        r#"[{"name":{"x":1}}]"#,
        r#"{"$patch":"delete"}"#,
        r#"{"$patch":"replace","a":1}"#,
        r#"{"$retainKeys":["a"],"a":1}"#,
        r#"["a","b"]"#,
        r#"[1,"a"]"#,
    ];
    let keys = [
        "containers",
        "finalizers",
        "$setElementOrder/containers",
        "$setElementOrder/finalizers",
        "$deleteFromPrimitiveList/finalizers",
        "$deleteFromPrimitiveList/containers",
        "$retainKeys",
        "$patch",
        "labels",
    ];
    let live: Value = serde_json::from_str(
        r#"{"metadata":{"finalizers":["a","b"],"labels":{"a":"b"}},"spec":{"containers":[{"name":"a"},{"name":"b","env":[{"name":"X"}]}],"finalizers":[1]}}"#,
    )
    .expect("JSON");
    let pod = PatchSchema::for_kind("v1", "Pod").expect("built-in");
    // A small deterministic generator: every pair of keys with every atom.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut patch = String::from("{");
        let n = next() % 3 + 1;
        for i in 0..n {
            if i > 0 {
                patch.push(',');
            }
            let key = keys[(next() % keys.len() as u64) as usize];
            let atom = atoms[(next() % atoms.len() as u64) as usize];
            patch.push_str(&format!("{key:?}:{atom}"));
        }
        patch.push('}');
        let wrapped = match next() % 3 {
            0 => patch,
            1 => format!(r#"{{"metadata":{patch}}}"#),
            _ => format!(r#"{{"spec":{patch}}}"#),
        };
        // Duplicate keys are fine: serde keeps the last, as Go does.
        let _ = apply_strategic_merge_patch(&live, wrapped.as_bytes(), pod);
    }
}
