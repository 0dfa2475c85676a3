use expect_test::{Expect, expect};
use serde_json::json;

use super::*;

/// Runs one of the `is_*` checks and renders its messages, one per line.
fn check(f: fn(&str) -> Vec<String>, value: &str, expect: Expect) {
    let msgs = f(value);
    expect.assert_eq(&if msgs.is_empty() {
        "ok".to_owned()
    } else {
        msgs.join("\n")
    });
}

fn check_errors(errors: Vec<FieldError>, expect: Expect) {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| format!("{} {}", e.error_type.reason(), e))
        .collect();
    expect.assert_eq(&if lines.is_empty() {
        "ok".to_owned()
    } else {
        lines.join("\n")
    });
}

#[test]
fn dns1123_subdomain() {
    check(is_dns1123_subdomain, "example.com", expect!["ok"]);
    check(is_dns1123_subdomain, "a", expect!["ok"]);
    check(is_dns1123_subdomain, "0-a.b-1", expect!["ok"]);
    check(
        is_dns1123_subdomain,
        "Foo",
        expect![[
            r#"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
        ]],
    );
    for bad in ["", "-a", "a-", "a..b", ".a", "a.", "a_b", "a b"] {
        assert_eq!(is_dns1123_subdomain(bad).len(), 1, "{bad:?}");
    }
    check(
        is_dns1123_subdomain,
        &"a".repeat(254),
        expect!["must be no more than 253 characters"],
    );
    assert!(is_dns1123_subdomain(&"a".repeat(253)).is_empty());
}

#[test]
fn dns_labels() {
    check(is_dns1123_label, "my-name", expect!["ok"]);
    check(is_dns1123_label, "123-abc", expect!["ok"]);
    check(is_dns1123_label, "a.b", expect!["must not contain dots"]);
    check(
        is_dns1123_label,
        "-a",
        expect![[
            r#"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"#
        ]],
    );
    check(
        is_dns1123_label,
        &"a".repeat(64),
        expect!["must be no more than 63 characters"],
    );
    check(is_dns1035_label, "my-svc", expect!["ok"]);
    check(
        is_dns1035_label,
        "1svc",
        expect![[
            r#"a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#
        ]],
    );
}

#[test]
fn qualified_names_and_label_values() {
    check(is_qualified_name, "app", expect!["ok"]);
    check(is_qualified_name, "app.kubernetes.io/name", expect!["ok"]);
    check(is_qualified_name, "My_Name.1", expect!["ok"]);
    check(
        is_qualified_name,
        "/name",
        expect!["prefix part must be non-empty"],
    );
    check(
        is_qualified_name,
        "Example.com/name",
        expect![[
            r#"prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
        ]],
    );
    check(
        is_qualified_name,
        "a/b/c",
        expect![[
            r#"a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"#
        ]],
    );
    check(
        is_qualified_name,
        "example.com/",
        expect![[r#"name part must be non-empty
name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#]],
    );
    check(
        is_qualified_name,
        &"a".repeat(64),
        expect!["name part must be no more than 63 characters"],
    );
    check(is_valid_label_value, "", expect!["ok"]);
    check(is_valid_label_value, "v1.2_x-y", expect!["ok"]);
    check(
        is_valid_label_value,
        "-bad",
        expect![[
            r#"a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#
        ]],
    );
}

#[test]
fn object_meta() {
    check_errors(
        validate_object_meta(
            &json!({"name": "web", "namespace": "default", "labels": {"app": "web"}}),
            true,
            NameRule::Dns1123Subdomain,
        ),
        expect!["ok"],
    );
    check_errors(
        validate_object_meta(&json!({}), true, NameRule::Dns1123Subdomain),
        expect![[r#"
            FieldValueRequired metadata.name: Required value: name or generateName is required
            FieldValueRequired metadata.namespace: Required value"#]],
    );
    check_errors(
        validate_object_meta(
            &json!({"name": "n", "namespace": "x"}),
            false,
            NameRule::Dns1123Label,
        ),
        expect!["FieldValueForbidden metadata.namespace: Forbidden: not allowed on this type"],
    );
    // generateName may end with '-'.
    check_errors(
        validate_object_meta(
            &json!({"generateName": "web-", "name": "web-x1", "namespace": "d"}),
            true,
            NameRule::Dns1123Subdomain,
        ),
        expect!["ok"],
    );
    check_errors(
        validate_object_meta(
            &json!({"name": "n", "namespace": "d", "generation": -1,
                    "labels": {"bad key": "-v"}, "annotations": {"Example.com/Ok": "x", "a/b/c": ""},
                    "finalizers": ["orphan", "foregroundDeletion", "bad/fin/x"],
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1", "controller": true},
                                        {"apiVersion": "a/b/c", "kind": "K", "name": "n", "uid": "2", "controller": true}]}),
            true,
            NameRule::Dns1123Subdomain,
        ),
        expect![[r#"
            FieldValueInvalid metadata.generation: Invalid value: -1: must be greater than or equal to 0
            FieldValueInvalid metadata.labels: Invalid value: "bad key": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')
            FieldValueInvalid metadata.labels: Invalid value: "-v": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')
            FieldValueInvalid metadata.annotations: Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')
            FieldValueInvalid metadata.ownerReferences[0]: Invalid value: {"apiVersion":"v1","controller":true,"kind":"Event","name":"e","uid":"1"}: /v1, Kind=Event is disallowed from being an owner
            FieldValueInvalid metadata.ownerReferences[1].apiVersion: Invalid value: "a/b/c": must be <group>/<version> or <version>
            FieldValueInvalid metadata.ownerReferences: Invalid value: [{"apiVersion":"v1","controller":true,"kind":"Event","name":"e","uid":"1"},{"apiVersion":"a/b/c","controller":true,"kind":"K","name":"n","uid":"2"}]: Only one reference can have Controller set to true. Found "true" in references for Event/e and K/n
            FieldValueInvalid metadata.finalizers: Invalid value: "bad/fin/x": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')
            FieldValueInvalid metadata.finalizers: Invalid value: ["orphan","foregroundDeletion","bad/fin/x"]: finalizer orphan and foregroundDeletion cannot be both set"#]],
    );
}

#[test]
fn annotation_size_limit() {
    let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 1);
    check_errors(
        validate_annotations(&json!({ "a": big }), "metadata.annotations"),
        expect!["ok"],
    );
    let too_big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
    check_errors(
        validate_annotations(&json!({ "a": too_big }), "metadata.annotations"),
        expect![
            "FieldValueTooLong metadata.annotations: Too long: may not be more than 262144 bytes"
        ],
    );
}

#[test]
fn invalid_status_shape() {
    let errors = validate_object_meta(
        &json!({"name": "Foo", "namespace": "default"}),
        true,
        NameRule::Dns1123Subdomain,
    );
    let status = invalid_status("apps", "Deployment", "Foo", &errors);
    expect![[r#"
        {
          "apiVersion": "v1",
          "code": 422,
          "details": {
            "causes": [
              {
                "field": "metadata.name",
                "message": "Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "reason": "FieldValueInvalid"
              }
            ],
            "group": "apps",
            "kind": "Deployment",
            "name": "Foo"
          },
          "kind": "Status",
          "message": "Deployment.apps \"Foo\" is invalid: metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
          "metadata": {},
          "reason": "Invalid",
          "status": "Failure"
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&status).expect("JSON"));
    // Two errors: bracketed, comma-separated; repeats once.
    let two = vec![
        FieldError::required("spec.a", ""),
        FieldError::not_supported("spec.b", "x", &["Always", "Never"]),
        FieldError::required("spec.a", ""),
    ];
    assert_eq!(
        invalid_status("", "Pod", "p", &two)["message"],
        r#"Pod "p" is invalid: [spec.a: Required value, spec.b: Unsupported value: "x": supported values: "Always", "Never"]"#
    );
    assert_eq!(go_quote("a\"b\\\u{1}"), r#""a\"b\\\x01""#);
}

#[test]
fn config_maps_and_secrets() {
    let meta = json!({"name": "c", "namespace": "d"});
    check_errors(
        validate_config_map(
            &json!({"metadata": meta, "data": {"": "x", "..a": "y", "ok.key": "z", "both": "1"},
            "binaryData": {"both": "AA==", "bad/key": "AA=="}}),
        ),
        expect![[r#"
            FieldValueInvalid data[]: Invalid value: "": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')
            FieldValueInvalid data[..a]: Invalid value: "..a": must not start with '..'
            FieldValueInvalid data[both]: Invalid value: "both": duplicate of key present in binaryData
            FieldValueInvalid binaryData[bad/key]: Invalid value: "bad/key": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"#]],
    );
    let big = "x".repeat(MAX_DATA_SIZE + 1);
    check_errors(
        validate_config_map(&json!({"metadata": meta, "data": {"k": big}})),
        expect![[r#"FieldValueTooLong : Too long: may not be more than 1048576 bytes"#]],
    );
    let old = json!({"metadata": meta, "immutable": true, "data": {"k": "1"}});
    check_errors(
        validate_config_map_update(
            &old,
            &json!({"metadata": meta, "immutable": false, "data": {"k": "2"}}),
        ),
        expect![[r#"
            FieldValueForbidden immutable: Forbidden: field is immutable when `immutable` is set
            FieldValueForbidden data: Forbidden: field is immutable when `immutable` is set"#]],
    );
    check_errors(
        validate_config_map_update(
            &old,
            &json!({"metadata": meta, "immutable": true, "data": {"k": "1"}}),
        ),
        expect!["ok"],
    );
    check_errors(
        validate_secret(
            &json!({"metadata": meta, "type": "kubernetes.io/tls", "data": {"tls.crt": "AA=="}}),
        ),
        expect!["FieldValueRequired data[tls.key]: Required value"],
    );
    check_errors(
        validate_secret_update(
            &json!({"metadata": meta, "type": "Opaque", "immutable": true, "data": {"a": "AA=="}}),
            &json!({"metadata": meta, "type": "kubernetes.io/tls", "immutable": true, "data": {"a": "AQ=="}}),
        ),
        expect![[r#"
            FieldValueInvalid type: Invalid value: "kubernetes.io/tls": field is immutable
            FieldValueForbidden data: Forbidden: field is immutable when `immutable` is set
            FieldValueRequired data[tls.crt]: Required value
            FieldValueRequired data[tls.key]: Required value"#]],
    );
}

#[test]
fn metadata_updates() {
    check_errors(
        validate_object_meta_update(
            &json!({"name": "a", "namespace": "d", "uid": "1", "generation": 3,
                    "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"]}),
            &json!({"name": "b", "namespace": "d", "uid": "1", "generation": 2,
                    "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x", "z", "y"]}),
        ),
        expect![[r#"
            FieldValueForbidden metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"y", "z"}
            FieldValueInvalid metadata.generation: Invalid value: 2: must not be decremented
            FieldValueInvalid metadata.name: Invalid value: "b": field is immutable"#]],
    );
}

#[test]
fn workloads_and_pods() {
    let pod_spec = json!({"restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
        "containers": [{"name": "web", "image": "nginx"}]});
    check_errors(
        validate_workload_spec(
            "Deployment",
            &json!({"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}}),
        ),
        expect!["ok"],
    );
    check_errors(
        validate_workload_spec(
            "ReplicaSet",
            &json!({"template": {"metadata": {"labels": {"app": "frontend"}}, "spec": pod_spec}}),
        ),
        expect!["FieldValueRequired spec.selector: Required value"],
    );
    check_errors(
        validate_workload_spec(
            "Deployment",
            &json!({"replicas": -1, "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}},
                "spec": {"restartPolicy": "Never", "dnsPolicy": "Sometimes",
                         "containers": [{"name": "Web", "image": ""}, {"name": "x"}, {"name": "x", "image": "i"}, {}]}}}),
        ),
        expect![[r#"
            FieldValueInvalid spec.replicas: Invalid value: -1: must be greater than or equal to 0
            FieldValueInvalid spec.template.metadata.labels: Invalid value: {"app":"b"}: `selector` does not match template `labels`
            FieldValueInvalid spec.template.spec.containers[0].name: Invalid value: "Web": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')
            FieldValueRequired spec.template.spec.containers[0].image: Required value
            FieldValueRequired spec.template.spec.containers[1].image: Required value
            FieldValueDuplicate spec.template.spec.containers[2].name: Duplicate value: "x"
            FieldValueRequired spec.template.spec.containers[3].name: Required value
            FieldValueRequired spec.template.spec.containers[3].image: Required value
            FieldValueNotSupported spec.template.spec.dnsPolicy: Unsupported value: "Sometimes": supported values: "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"
            FieldValueNotSupported spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#]],
    );
    check_errors(
        validate_workload_spec(
            "StatefulSet",
            &json!({"selector": {}, "template": {"spec": pod_spec}}),
        ),
        expect![[
            r#"FieldValueInvalid spec.selector: Invalid value: {}: empty selector is invalid for statefulset"#
        ]],
    );
    check_errors(
        validate_pod_spec(
            &json!({"restartPolicy": "Sometimes", "dnsPolicy": "ClusterFirst"}),
            "spec",
        ),
        expect![[r#"
            FieldValueRequired spec.containers: Required value
            FieldValueNotSupported spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#]],
    );
    check_errors(
        validate_label_selector(
            &json!({"matchLabels": {"ok": "-bad"}, "matchExpressions": [
                {"key": "a", "operator": "In"}, {"key": "b", "operator": "Exists", "values": ["x"]},
                {"key": "c", "operator": "Like", "values": ["x"]}]}),
            "spec.selector",
        ),
        expect![[r#"
            FieldValueInvalid spec.selector.matchLabels: Invalid value: "-bad": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')
            FieldValueRequired spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'
            FieldValueForbidden spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'
            FieldValueInvalid spec.selector.matchExpressions[2].operator: Invalid value: "Like": not a valid selector operator"#]],
    );
}

#[test]
fn name_rules_by_kind() {
    let cases = [
        ("v1", "Namespace", "a.b"),
        ("v1", "Service", "1svc"),
        ("apps/v1", "StatefulSet", "web.v2"),
        ("apps/v1", "Deployment", "web.v2"),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "system:controller:x",
        ),
        ("rbac.authorization.k8s.io/v1", "Role", "a/b%c"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", ".."),
    ];
    let out: Vec<String> = cases
        .iter()
        .map(|(v, k, n)| format!("{k} {n:?}: {:?}", NameRule::for_kind(v, k).check(n, false)))
        .collect();
    expect![[r#"
        Namespace "a.b": ["must not contain dots"]
        Service "1svc": ["a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]
        StatefulSet "web.v2": ["must not contain dots"]
        Deployment "web.v2": []
        ClusterRole "system:controller:x": []
        Role "a/b%c": ["may not contain '/'", "may not contain '%'"]
        RoleBinding "..": ["may not be '..'"]"#]].assert_eq(&out.join("\n"));
    // A generateName prefix may end with '-', even after a multi-byte char.
    assert!(NameRule::Dns1123Subdomain.check("web-", true).is_empty());
    assert_eq!(NameRule::Dns1123Subdomain.check("\u{e9}-", true).len(), 1);
}
