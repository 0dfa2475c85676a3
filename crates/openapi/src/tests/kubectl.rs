//! kubectl's own reading of the documents: `--validate=strict` and `explain`.

use super::{SERVED, document};
use expect_test::{Expect, expect};
use serde_json::Value;

/// kubectl's `--validate=strict` (cli-runtime `query_param_verifier_v3.go`)
/// takes the first PATCH operation whose GVK is the object's and requires
/// `fieldValidation` among its parameters; it stops at the first match, so
/// every such operation must have it.
#[test]
fn every_served_kind_passes_kubectls_field_validation_check() {
    for res in SERVED {
        let doc = document(res.group, res.version);
        let mut patches = 0;
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let Some(op) = item.get("patch") else {
                continue;
            };
            let gvk = &op["x-kubernetes-group-version-kind"];
            if gvk["group"] != res.group || gvk["version"] != res.version || gvk["kind"] != res.kind
            {
                continue;
            }
            patches += 1;
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert!(names.contains(&"fieldValidation"), "{path}: {names:?}");
        }
        let create_only = ["Binding", "SelfSubjectAccessReview", "SelfSubjectReview"];
        assert_eq!(
            patches == 0,
            create_only.contains(&res.kind),
            "{}",
            res.kind
        );
    }
}

/// kubectl explain (kubectl `explain/v2/templates/plaintext.tmpl`) takes the
/// GVK from an operation on one of four paths of the resource, then the
/// schema whose `x-kubernetes-group-version-kind` contains it.
#[test]
fn explain_finds_every_served_kind() {
    for res in SERVED {
        let doc = document(res.group, res.version);
        let prefix = if res.group.is_empty() {
            "/api".to_owned()
        } else {
            format!("/apis/{}", res.group)
        };
        let (v, p) = (res.version, res.plural);
        let candidates = [
            format!("{prefix}/{v}/{p}"),
            format!("{prefix}/{v}/{p}/{{name}}"),
            format!("{prefix}/{v}/namespaces/{{namespace}}/{p}"),
            format!("{prefix}/{v}/namespaces/{{namespace}}/{p}/{{name}}"),
        ];
        let gvk = candidates
            .iter()
            .flat_map(|path| {
                ["get", "post", "put", "patch", "delete"].map(|m| &doc["paths"][path][m])
            })
            .map(|op| &op["x-kubernetes-group-version-kind"])
            .find(|gvk| !gvk.is_null())
            .unwrap_or_else(|| panic!("no GVK for {p}"));
        assert_eq!(gvk["kind"], res.kind);
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let found = schemas.values().filter(|s| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|all| all.contains(gvk))
        });
        assert_eq!(found.count(), 1, "{gvk}");
    }
}

/// The schema of the field at a dotted path below a named schema, found as
/// kubectl finds it: through properties, array items, `$ref`s and
/// single-element `allOf`s.
fn field(doc: &Value, schema_name: &str, field_path: &str) -> Value {
    let schemas = &doc["components"]["schemas"];
    // A field whose type is a named schema reads `{"allOf": [{"$ref": …}]}`.
    let resolve = |s: &Value| -> Value {
        let reference = s["$ref"].as_str().or(s["allOf"][0]["$ref"].as_str());
        match reference {
            Some(r) => {
                let name = r.strip_prefix("#/components/schemas/").expect("local ref");
                schemas[name].clone()
            }
            None => s.clone(),
        }
    };
    let mut schema = schemas[schema_name].clone();
    for name in field_path.split('.') {
        let mut resolved = resolve(&schema);
        while resolved.get("properties").is_none() && resolved.get("items").is_some() {
            resolved = resolve(&resolved["items"]);
        }
        schema = resolved["properties"][name].clone();
        assert!(!schema.is_null(), "no field {name} in {field_path}");
    }
    schema
}

/// What `kubectl explain <path>` prints first: the field's description.
fn explain(doc: &Value, schema_name: &str, field_path: &str) -> String {
    let schema = field(doc, schema_name, field_path);
    schema["description"].as_str().unwrap_or("").to_owned()
}

/// kubectl's client-side apply computes its strategic merge patch from
/// these schemas (`buildStrategicMergePatchFromOpenAPIV3`): without the
/// tags it sends whole lists, and fields removed inside a container stay.
#[test]
fn apply_finds_upstreams_merge_keys_along_a_kinds_paths() {
    let check = |group: &str, version: &str, schema: &str, path: &str, expect: Expect| {
        let doc = document(group, version);
        let f = field(&doc, schema, path);
        let tag = |k: &str| f[k].as_str().unwrap_or("-").to_owned();
        expect.assert_eq(&format!(
            "strategy={} key={}",
            tag("x-kubernetes-patch-strategy"),
            tag("x-kubernetes-patch-merge-key")
        ));
    };
    let deployment = "io.k8s.api.apps.v1.Deployment";
    let pod = "io.k8s.api.core.v1.Pod";
    check(
        "apps",
        "v1",
        deployment,
        "spec.template.spec.containers",
        expect!["strategy=merge key=name"],
    );
    check(
        "apps",
        "v1",
        deployment,
        "spec.template.spec.containers.env",
        expect!["strategy=merge key=name"],
    );
    check(
        "apps",
        "v1",
        deployment,
        "spec.template.spec.containers.ports",
        expect!["strategy=merge key=containerPort"],
    );
    check(
        "apps",
        "v1",
        deployment,
        "spec.template.spec.volumes",
        expect!["strategy=merge,retainKeys key=name"],
    );
    check(
        "apps",
        "v1",
        deployment,
        "spec.template.spec.tolerations",
        expect!["strategy=- key=-"],
    );
    check(
        "apps",
        "v1",
        deployment,
        "spec.strategy",
        expect!["strategy=retainKeys key=-"],
    );
    check(
        "apps",
        "v1",
        deployment,
        "metadata.finalizers",
        expect!["strategy=merge key=-"],
    );
    check(
        "apps",
        "v1",
        deployment,
        "status.conditions",
        expect!["strategy=merge key=type"],
    );
    check(
        "",
        "v1",
        pod,
        "spec.containers.args",
        expect!["strategy=- key=-"],
    );
    check(
        "",
        "v1",
        pod,
        "metadata.ownerReferences",
        expect!["strategy=merge key=uid"],
    );
    check(
        "",
        "v1",
        "io.k8s.api.core.v1.Service",
        "spec.ports",
        expect!["strategy=merge key=port"],
    );
    check(
        "batch",
        "v1",
        "io.k8s.api.batch.v1.CronJob",
        "spec.jobTemplate.spec.template.spec.containers",
        expect!["strategy=merge key=name"],
    );
    check(
        "policy",
        "v1",
        "io.k8s.api.policy.v1.PodDisruptionBudget",
        "spec.selector",
        expect!["strategy=replace key=-"],
    );
}

#[test]
fn explain_pod_spec_containers_reads_descriptions() {
    let doc = document("", "v1");
    let check = |path: &str, expect: Expect| {
        let description = explain(&doc, "io.k8s.api.core.v1.Pod", path);
        let first_sentence = description.split(". ").next().unwrap_or_default();
        expect.assert_eq(first_sentence);
    };
    check(
        "spec",
        expect!["Specification of the desired behavior of the pod"],
    );
    check(
        "spec.containers",
        expect!["List of containers belonging to the pod"],
    );
    check("spec.containers.image", expect!["Container image name"]);
    check(
        "spec.containers.resources.limits",
        expect!["Limits describes the maximum amount of compute resources allowed"],
    );
}

/// kubectl explain prints the description beside a `$ref`'s target, not
/// beside the `$ref`: a field's own description must sit beside an `allOf`.
#[test]
fn fields_of_named_types_keep_their_own_description() {
    let doc = document("apps", "v1");
    let max_surge = &doc["components"]["schemas"]["io.k8s.api.apps.v1.RollingUpdateDeployment"]["properties"]
        ["maxSurge"];
    let keys: Vec<&String> = max_surge.as_object().expect("schema").keys().collect();
    assert_eq!(keys, ["allOf", "description"]);
    assert_eq!(
        max_surge["allOf"],
        serde_json::json!([{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}])
    );
    // Without siblings a `$ref` stays as it is.
    let containers = &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
        ["items"];
    assert_eq!(
        containers,
        &serde_json::json!({"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"})
    );
}

/// A property may be named `$ref` (JSONSchemaProps): it is not a reference.
#[test]
fn a_property_named_ref_is_left_alone() {
    let doc = document("apiextensions.k8s.io", "v1");
    let props = &doc["components"]["schemas"]["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"]
        ["properties"];
    assert_eq!(props["$ref"]["type"], "string");
}

#[test]
fn container_image_has_a_description() {
    let doc = document("", "v1");
    let container = &doc["components"]["schemas"]["io.k8s.api.core.v1.Container"];
    let image = container["properties"]["image"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(image.starts_with("Container image name."), "{image}");
    assert_eq!(
        doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]["items"]
            ["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.Container"
    );
}
