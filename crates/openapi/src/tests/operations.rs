//! Operations as upstream lays them out, one snapshot each.

use super::document;
use expect_test::{Expect, expect};
use serde_json::Value;

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
    // A proxy's PATCH names the options kind, not Node: kubectl's
    // validate=strict never mistakes it for the Node's own PATCH.
    check(
        "",
        "v1",
        "/api/v1/nodes/{name}/proxy",
        "patch",
        expect![[r#"
            patch /api/v1/nodes/{name}/proxy
              id: connectCoreV1PatchNodeProxy
              action: connect
              gvk: /v1/NodeProxyOptions
              path params: name, pretty
              params: path
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
