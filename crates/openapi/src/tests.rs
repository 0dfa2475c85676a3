//! What kubectl needs from the documents, checked the way kubectl reads them.

use crate::{ResourceInfo, discovery, document_hash, group_version_document};
use expect_test::{Expect, expect};
use serde_json::Value;
use std::collections::BTreeSet;

type Sub = (
    &'static str,
    Option<(&'static str, &'static str, &'static str)>,
);

const STATUS: &[Sub] = &[("status", None)];
const NONE: &[Sub] = &[];
const SCALE_STATUS: &[Sub] = &[
    ("scale", Some(("autoscaling", "v1", "Scale"))),
    ("status", None),
];
const POD: &[Sub] = &[
    ("attach", None),
    ("binding", Some(("", "v1", "Binding"))),
    ("eviction", Some(("policy", "v1", "Eviction"))),
    ("exec", None),
    ("log", None),
    ("portforward", None),
    ("proxy", None),
    ("status", None),
];

const fn r(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    subresources: &'static [Sub],
) -> ResourceInfo<'static> {
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        namespaced,
        subresources,
    }
}

/// The resources the API server serves, and a custom resource.
const SERVED: &[ResourceInfo<'static>] = &[
    r(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &[("finalize", None), ("status", None)],
    ),
    r("", "v1", "Pod", "pods", true, POD),
    r(
        "",
        "v1",
        "Node",
        "nodes",
        false,
        &[("proxy", None), ("status", None)],
    ),
    r(
        "",
        "v1",
        "Service",
        "services",
        true,
        &[("proxy", None), ("status", None)],
    ),
    r("", "v1", "Endpoints", "endpoints", true, NONE),
    r("", "v1", "ConfigMap", "configmaps", true, NONE),
    r("", "v1", "Secret", "secrets", true, NONE),
    r(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &[(
            "token",
            Some(("authentication.k8s.io", "v1", "TokenRequest")),
        )],
    ),
    r("", "v1", "Event", "events", true, NONE),
    r("", "v1", "PodTemplate", "podtemplates", true, NONE),
    r("", "v1", "LimitRange", "limitranges", true, NONE),
    r("", "v1", "ResourceQuota", "resourcequotas", true, STATUS),
    r("", "v1", "Binding", "bindings", true, NONE),
    r(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        SCALE_STATUS,
    ),
    r(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        SCALE_STATUS,
    ),
    r(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        SCALE_STATUS,
    ),
    r("apps", "v1", "DaemonSet", "daemonsets", true, STATUS),
    r(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
        NONE,
    ),
    r("batch", "v1", "Job", "jobs", true, STATUS),
    r("batch", "v1", "CronJob", "cronjobs", true, STATUS),
    r("coordination.k8s.io", "v1", "Lease", "leases", true, NONE),
    r(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        NONE,
    ),
    r(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        STATUS,
    ),
    r(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        NONE,
    ),
    r(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        STATUS,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        NONE,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        NONE,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        NONE,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        NONE,
    ),
    r("events.k8s.io", "v1", "Event", "events", true, NONE),
    r(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
        NONE,
    ),
    r(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
        NONE,
    ),
    r(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        false,
        NONE,
    ),
    r(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        STATUS,
    ),
    r(
        "stable.example.com",
        "v1",
        "CronTab",
        "crontabs",
        true,
        STATUS,
    ),
];

fn served_group_versions() -> BTreeSet<(&'static str, &'static str)> {
    SERVED.iter().map(|r| (r.group, r.version)).collect()
}

fn document(group: &str, version: &str) -> Value {
    group_version_document(SERVED, group, version).expect("served")
}

/// An operation as one reads it: id, action, GVK, parameters (the path
/// item's first), request and response content types.
fn summary(doc: &Value, path: &str, method: &str) -> String {
    let item = &doc["paths"][path];
    let op = &item[method];
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|p| p["name"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .into_iter()
            .flat_map(|o| o.keys().cloned())
            .collect()
    };
    let gvk = &op["x-kubernetes-group-version-kind"];
    let mut out = format!(
        "{method} {path}\n  id: {}\n  action: {}\n  gvk: {}/{}/{}\n  path params: {}\n  params: {}\n",
        op["operationId"].as_str().unwrap_or("-"),
        op["x-kubernetes-action"].as_str().unwrap_or("-"),
        gvk["group"].as_str().unwrap_or("-"),
        gvk["version"].as_str().unwrap_or("-"),
        gvk["kind"].as_str().unwrap_or("-"),
        names(&item["parameters"]).join(", "),
        names(&op["parameters"]).join(", "),
    );
    if let Some(body) = op.get("requestBody") {
        let content = &body["content"];
        let schema = keys(content).first().map(|t| {
            content[t]["schema"]["$ref"]
                .as_str()
                .unwrap_or("-")
                .to_owned()
        });
        out += &format!(
            "  request: {} of {}\n",
            keys(content).join(", "),
            schema.unwrap_or_default()
        );
    }
    for code in keys(&op["responses"]) {
        let content = &op["responses"][code.as_str()]["content"];
        let schema = keys(content).first().map(|t| {
            let s = &content[t]["schema"];
            s["$ref"]
                .as_str()
                .or(s["type"].as_str())
                .unwrap_or("-")
                .to_owned()
        });
        out += &format!(
            "  {code}: {} of {}\n",
            keys(content).join(", "),
            schema.unwrap_or_default()
        );
    }
    out
}

fn check_operation(group: &str, version: &str, path: &str, method: &str, expect: Expect) {
    expect.assert_eq(&summary(&document(group, version), path, method));
}

#[test]
fn deployment_patch_carries_its_gvk_and_field_validation() {
    check_operation(
        "apps",
        "v1",
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
        "patch",
        expect![[r#"
            patch /apis/apps/v1/namespaces/{namespace}/deployments/{name}
              id: patchAppsV1NamespacedDeployment
              action: patch
              gvk: apps/v1/Deployment
              path params: name, namespace, pretty
              params: dryRun, force, fieldManager, fieldValidation
              request: application/apply-patch+yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json of #/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch
              200: application/json of #/components/schemas/io.k8s.api.apps.v1.Deployment
              201: application/json of #/components/schemas/io.k8s.api.apps.v1.Deployment
        "#]],
    );
}

#[test]
fn operations_as_upstream_lays_them_out() {
    let check = check_operation;
    check(
        "",
        "v1",
        "/api/v1/namespaces/{namespace}/pods",
        "get",
        expect![[r#"
            get /api/v1/namespaces/{namespace}/pods
              id: listCoreV1NamespacedPod
              action: list
              gvk: /v1/Pod
              path params: namespace, pretty
              params: labelSelector, fieldSelector, watch, allowWatchBookmarks, resourceVersion, resourceVersionMatch, sendInitialEvents, timeoutSeconds, limit, continue
              200: application/json, application/json;stream=watch of #/components/schemas/io.k8s.api.core.v1.PodList
        "#]],
    );
    check(
        "",
        "v1",
        "/api/v1/pods",
        "get",
        expect![[r#"
            get /api/v1/pods
              id: listCoreV1PodForAllNamespaces
              action: list
              gvk: /v1/Pod
              path params: pretty
              params: labelSelector, fieldSelector, watch, allowWatchBookmarks, resourceVersion, resourceVersionMatch, sendInitialEvents, timeoutSeconds, limit, continue
              200: application/json, application/json;stream=watch of #/components/schemas/io.k8s.api.core.v1.PodList
        "#]],
    );
    check(
        "",
        "v1",
        "/api/v1/namespaces/{namespace}/pods",
        "post",
        expect![[r#"
            post /api/v1/namespaces/{namespace}/pods
              id: createCoreV1NamespacedPod
              action: post
              gvk: /v1/Pod
              path params: namespace, pretty
              params: dryRun, fieldManager, fieldValidation
              request: */* of #/components/schemas/io.k8s.api.core.v1.Pod
              200: application/json of #/components/schemas/io.k8s.api.core.v1.Pod
              201: application/json of #/components/schemas/io.k8s.api.core.v1.Pod
              202: application/json of #/components/schemas/io.k8s.api.core.v1.Pod
        "#]],
    );
    check(
        "",
        "v1",
        "/api/v1/namespaces/{namespace}/pods",
        "delete",
        expect![[r#"
            delete /api/v1/namespaces/{namespace}/pods
              id: deleteCoreV1CollectionNamespacedPod
              action: deletecollection
              gvk: /v1/Pod
              path params: namespace, pretty
              params: gracePeriodSeconds, orphanDependents, propagationPolicy, dryRun, labelSelector, fieldSelector, resourceVersion, resourceVersionMatch, timeoutSeconds, limit, continue
              request: */* of #/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions
              200: application/json of #/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Status
        "#]],
    );
    check(
        "",
        "v1",
        "/api/v1/nodes/{name}",
        "get",
        expect![[r#"
            get /api/v1/nodes/{name}
              id: readCoreV1Node
              action: get
              gvk: /v1/Node
              path params: name, pretty
              params: 
              200: application/json of #/components/schemas/io.k8s.api.core.v1.Node
        "#]],
    );
    check(
        "",
        "v1",
        "/api/v1/namespaces/{namespace}/pods/{name}/status",
        "patch",
        expect![[r#"
            patch /api/v1/namespaces/{namespace}/pods/{name}/status
              id: patchCoreV1NamespacedPodStatus
              action: patch
              gvk: /v1/Pod
              path params: name, namespace, pretty
              params: dryRun, force, fieldManager, fieldValidation
              request: application/apply-patch+yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json of #/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch
              200: application/json of #/components/schemas/io.k8s.api.core.v1.Pod
              201: application/json of #/components/schemas/io.k8s.api.core.v1.Pod
        "#]],
    );
    check(
        "",
        "v1",
        "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
        "post",
        expect![[r#"
            post /api/v1/namespaces/{namespace}/pods/{name}/eviction
              id: createCoreV1NamespacedPodEviction
              action: post
              gvk: policy/v1/Eviction
              path params: name, namespace, pretty
              params: dryRun, fieldManager, fieldValidation
              request: */* of #/components/schemas/io.k8s.api.policy.v1.Eviction
              200: application/json of #/components/schemas/io.k8s.api.policy.v1.Eviction
              201: application/json of #/components/schemas/io.k8s.api.policy.v1.Eviction
              202: application/json of #/components/schemas/io.k8s.api.policy.v1.Eviction
        "#]],
    );
    check(
        "",
        "v1",
        "/api/v1/namespaces/{namespace}/pods/{name}/exec",
        "post",
        expect![[r#"
            post /api/v1/namespaces/{namespace}/pods/{name}/exec
              id: connectCoreV1PostNamespacedPodExec
              action: connect
              gvk: /v1/PodExecOptions
              path params: name, namespace, pretty
              params: command, container, stdin, stdout, stderr, tty
              200: */* of string
        "#]],
    );
    check(
        "",
        "v1",
        "/api/v1/namespaces/{namespace}/pods/{name}/log",
        "get",
        expect![[r#"
            get /api/v1/namespaces/{namespace}/pods/{name}/log
              id: readCoreV1NamespacedPodLog
              action: get
              gvk: /v1/Pod
              path params: name, namespace, pretty
              params: container, follow, previous, sinceSeconds, sinceTime, tailLines, timestamps, limitBytes
              200: */* of string
        "#]],
    );
    check(
        "apps",
        "v1",
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
        "put",
        expect![[r#"
            put /apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale
              id: replaceAppsV1NamespacedDeploymentScale
              action: put
              gvk: autoscaling/v1/Scale
              path params: name, namespace, pretty
              params: dryRun, fieldManager, fieldValidation
              request: */* of #/components/schemas/io.k8s.api.autoscaling.v1.Scale
              200: application/json of #/components/schemas/io.k8s.api.autoscaling.v1.Scale
              201: application/json of #/components/schemas/io.k8s.api.autoscaling.v1.Scale
        "#]],
    );
    check(
        "authorization.k8s.io",
        "v1",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "post",
        expect![[r#"
            post /apis/authorization.k8s.io/v1/selfsubjectaccessreviews
              id: createAuthorizationV1SelfSubjectAccessReview
              action: post
              gvk: authorization.k8s.io/v1/SelfSubjectAccessReview
              path params: pretty
              params: dryRun, fieldManager, fieldValidation
              request: */* of #/components/schemas/io.k8s.api.authorization.v1.SelfSubjectAccessReview
              200: application/json of #/components/schemas/io.k8s.api.authorization.v1.SelfSubjectAccessReview
              201: application/json of #/components/schemas/io.k8s.api.authorization.v1.SelfSubjectAccessReview
              202: application/json of #/components/schemas/io.k8s.api.authorization.v1.SelfSubjectAccessReview
        "#]],
    );
    check(
        "stable.example.com",
        "v1",
        "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}",
        "patch",
        expect![[r#"
            patch /apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}
              id: patchStableExampleComV1NamespacedCronTab
              action: patch
              gvk: stable.example.com/v1/CronTab
              path params: name, namespace, pretty
              params: dryRun, force, fieldManager, fieldValidation
              request: application/apply-patch+yaml, application/json-patch+json, application/merge-patch+json of #/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch
              200: application/json of #/components/schemas/com.example.stable.v1.CronTab
              201: application/json of #/components/schemas/com.example.stable.v1.CronTab
        "#]],
    );
}

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

/// Follows `kubectl explain <path>` through properties, array items and
/// `$ref`s, and returns the description of the last field.
fn explain(doc: &Value, schema_name: &str, field_path: &str) -> String {
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
    let mut description = String::new();
    for field in field_path.split('.') {
        let mut resolved = resolve(&schema);
        while resolved.get("properties").is_none() && resolved.get("items").is_some() {
            resolved = resolve(&resolved["items"]);
        }
        schema = resolved["properties"][field].clone();
        assert!(!schema.is_null(), "no field {field} in {field_path}");
        description = schema["description"].as_str().unwrap_or("").to_owned();
    }
    description
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

#[test]
fn discovery_lists_exactly_the_served_group_versions() {
    let root = discovery(SERVED);
    let keys: Vec<&String> = root["paths"].as_object().expect("paths").keys().collect();
    expect![[r#"
        [
            "api/v1",
            "apis/apiextensions.k8s.io/v1",
            "apis/apps/v1",
            "apis/authentication.k8s.io/v1",
            "apis/authorization.k8s.io/v1",
            "apis/batch/v1",
            "apis/coordination.k8s.io/v1",
            "apis/discovery.k8s.io/v1",
            "apis/events.k8s.io/v1",
            "apis/networking.k8s.io/v1",
            "apis/policy/v1",
            "apis/rbac.authorization.k8s.io/v1",
            "apis/scheduling.k8s.io/v1",
            "apis/stable.example.com/v1",
        ]
    "#]]
    .assert_debug_eq(&keys);
    for (key, entry) in root["paths"].as_object().expect("paths") {
        let url = entry["serverRelativeURL"].as_str().expect("url");
        let (path, hash) = url.split_once("?hash=").expect("hash");
        assert_eq!(path, format!("/openapi/v3/{key}"));
        assert_eq!(hash.len(), 128);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }
    assert!(group_version_document(SERVED, "apps", "v2").is_none());
    assert!(group_version_document(SERVED, "autoscaling", "v1").is_none());
    assert_eq!(discovery(&[]), serde_json::json!({"paths": {}}));
}

#[test]
fn generation_is_deterministic_and_order_blind() {
    let first = discovery(SERVED);
    assert_eq!(first, discovery(SERVED));
    let mut reversed = SERVED.to_vec();
    reversed.reverse();
    assert_eq!(first, discovery(&reversed));
    let doc = document("", "v1");
    assert_eq!(
        first["paths"]["api/v1"]["serverRelativeURL"],
        format!("/openapi/v3/api/v1?hash={}", document_hash(&doc))
    );
}

#[test]
fn documents_hold_only_their_group_versions_paths() {
    for (group, version) in served_group_versions() {
        let doc = document(group, version);
        let prefix = if group.is_empty() {
            format!("/api/{version}/")
        } else {
            format!("/apis/{group}/{version}/")
        };
        for path in doc["paths"].as_object().expect("paths").keys() {
            assert!(path.starts_with(&prefix), "{path}");
        }
    }
}
