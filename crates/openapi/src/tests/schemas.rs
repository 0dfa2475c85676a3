//! `components.schemas`: references, OpenAPI 3.0 shape, GVK tags.

use super::{document, served_group_versions};
use expect_test::{Expect, expect};
use serde_json::Value;

/// Every `$ref` in `v`, with where it was found.
fn refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                // A string: a reference; an object: a property named `$ref`
                // (JSONSchemaProps has one).
                if let (true, Some(reference)) = (k == "$ref", x.as_str()) {
                    out.push((at.clone(), reference));
                } else {
                    refs(x, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_ref_resolves_inside_its_document() {
    for (group, version) in served_group_versions() {
        let doc = document(group, version);
        let mut found = Vec::new();
        refs(&doc, String::new(), &mut found);
        assert!(!found.is_empty());
        for (at, reference) in found {
            let pointer = reference.strip_prefix('#').unwrap_or("<not local>");
            assert!(
                reference.starts_with("#/components/schemas/") && doc.pointer(pointer).is_some(),
                "{group}/{version}: {at}: {reference}"
            );
        }
    }
}

/// What kube-openapi's Go types cannot read (kubectl parses the documents
/// with them): boolean schemas, `type` arrays, JSON Schema 2020-12 words.
#[test]
fn schemas_are_openapi_3_0() {
    fn walk(v: &Value, at: &str) {
        let Value::Object(o) = v else { return };
        for key in ["$defs", "definitions", "const", "prefixItems", "$schema"] {
            assert!(!o.contains_key(key), "{at}: {key}");
        }
        if let Some(t) = o.get("type") {
            assert!(t.is_string(), "{at}: type {t}");
        }
        for key in ["properties", "patternProperties"] {
            for (name, s) in o.get(key).and_then(Value::as_object).into_iter().flatten() {
                assert!(s.is_object(), "{at}/{key}/{name}");
                walk(s, &format!("{at}/{key}/{name}"));
            }
        }
        for key in ["items", "additionalProperties", "not"] {
            if let Some(s) = o.get(key) {
                assert!(s.is_object() || key == "additionalProperties", "{at}/{key}");
                walk(s, &format!("{at}/{key}"));
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for (i, s) in o
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                assert!(s.is_object(), "{at}/{key}/{i}");
                walk(s, &format!("{at}/{key}/{i}"));
            }
        }
    }
    for (group, version) in served_group_versions() {
        let doc = document(group, version);
        assert_eq!(doc["openapi"], "3.0.0");
        for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
            walk(schema, name);
        }
    }
}

#[test]
fn kinds_and_lists_are_tagged_with_their_gvk() {
    let doc = document("apps", "v1");
    let schemas = &doc["components"]["schemas"];
    let gvks = |name: &str| -> Vec<String> {
        schemas[name]["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                format!(
                    "{}/{}/{}",
                    g["group"].as_str().unwrap_or("?"),
                    g["version"].as_str().unwrap_or("?"),
                    g["kind"].as_str().unwrap_or("?")
                )
            })
            .collect()
    };
    let check = |name: &str, expect: Expect| expect.assert_debug_eq(&gvks(name));
    check(
        "io.k8s.api.apps.v1.Deployment",
        expect![[r#"
        [
            "apps/v1/Deployment",
        ]
    "#]],
    );
    check(
        "io.k8s.api.apps.v1.DeploymentList",
        expect![[r#"
        [
            "apps/v1/DeploymentList",
        ]
    "#]],
    );
    check(
        "io.k8s.api.autoscaling.v1.Scale",
        expect![[r#"
        [
            "autoscaling/v1/Scale",
        ]
    "#]],
    );
    check(
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        expect![[r#"
        [
            "/v1/DeleteOptions",
            "apps/v1/DeleteOptions",
        ]
    "#]],
    );
    check(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        expect![[r#"
        [
            "/v1/Status",
        ]
    "#]],
    );
    check(
        "io.k8s.api.apps.v1.DeploymentSpec",
        expect![[r#"
        []
    "#]],
    );
    let list = &schemas["io.k8s.api.apps.v1.DeploymentList"];
    assert_eq!(
        list["properties"]["items"]["items"]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.Deployment"
    );
    assert_eq!(list["required"], serde_json::json!(["items"]));
}

#[test]
fn custom_kinds_get_a_permissive_schema() {
    let doc = document("stable.example.com", "v1");
    let schema = &doc["components"]["schemas"]["com.example.stable.v1.CronTab"];
    assert_eq!(schema["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(
        schema["properties"]["metadata"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_eq!(
        schema["x-kubernetes-group-version-kind"][0]["kind"],
        "CronTab"
    );
}

/// A connect subresource's options kind names no schema, even when the
/// server spells it out.
#[test]
fn connect_options_add_no_schema() {
    let pods = [crate::ResourceInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        subresources: &[("exec", Some(("", "v1", "PodExecOptions")))],
    }];
    let doc = crate::group_version_document(&pods, "", "v1").expect("served");
    let exec = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/exec"]["get"];
    assert_eq!(
        exec["x-kubernetes-group-version-kind"]["kind"],
        "PodExecOptions"
    );
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    assert!(schemas.keys().all(|name| !name.contains("PodExecOptions")));
}
