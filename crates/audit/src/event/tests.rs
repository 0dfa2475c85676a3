use expect_test::{Expect, expect};
use serde_json::json;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

fn pod_get() -> RequestInfo {
    RequestInfo {
        audit_id: "5d3c0b8e-3f4c-4a57-9c8e-1f2a3b4c5d6e".to_owned(),
        verb: "get".to_owned(),
        request_uri: "/api/v1/namespaces/prod/pods/web".to_owned(),
        user: UserInfo {
            username: "alice".to_owned(),
            uid: String::new(),
            groups: vec!["dev".to_owned(), "system:authenticated".to_owned()],
            extra: BTreeMap::new(),
        },
        impersonated: None,
        source_ips: vec!["10.0.0.7".to_owned()],
        user_agent: "kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef".to_owned(),
        object_ref: Some(ObjectRef {
            resource: "pods".to_owned(),
            namespace: "prod".to_owned(),
            name: "web".to_owned(),
            api_version: "v1".to_owned(),
            ..ObjectRef::default()
        }),
        received: at("2026-01-01T12:00:00.123456789Z"),
        annotations: BTreeMap::new(),
    }
}

/// Builds the event and renders it as the log line it becomes.
fn check(info: &RequestInfo, level: Level, stage: Stage, omf: bool, r: Response<'_>, e: Expect) {
    let event = build(info, level, stage, omf, r, at("2026-01-01T12:00:00.2Z"));
    let line = serde_json::to_string(&event).expect("events serialize");
    // The line parses back to an event that renders the same line.
    let back: Event = serde_json::from_str(&line).expect("events deserialize");
    assert_eq!(
        serde_json::to_string(&back).expect("events serialize"),
        line
    );
    e.assert_eq(&line);
}

#[test]
fn metadata_event_has_upstream_shape() {
    let ok = Response {
        code: Some(200),
        request_body: Some(&json!({"kind": "Pod"})),
        response_body: Some(&json!({"kind": "Pod"})),
        ..Response::default()
    };
    check(
        &pod_get(),
        Level::Metadata,
        Stage::ResponseComplete,
        false,
        ok,
        expect![[
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"5d3c0b8e-3f4c-4a57-9c8e-1f2a3b4c5d6e","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/pods/web","verb":"get","user":{"username":"alice","groups":["dev","system:authenticated"]},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef","objectRef":{"resource":"pods","namespace":"prod","name":"web","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-01-01T12:00:00.123456Z","stageTimestamp":"2026-01-01T12:00:00.200000Z"}"#
        ]],
    );
}

#[test]
fn request_received_has_no_response_status() {
    check(
        &pod_get(),
        Level::Metadata,
        Stage::RequestReceived,
        false,
        Response::default(),
        expect![[
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"5d3c0b8e-3f4c-4a57-9c8e-1f2a3b4c5d6e","stage":"RequestReceived","requestURI":"/api/v1/namespaces/prod/pods/web","verb":"get","user":{"username":"alice","groups":["dev","system:authenticated"]},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef","objectRef":{"resource":"pods","namespace":"prod","name":"web","apiVersion":"v1"},"requestReceivedTimestamp":"2026-01-01T12:00:00.123456Z","stageTimestamp":"2026-01-01T12:00:00.200000Z"}"#
        ]],
    );
}

#[test]
fn impersonation_and_annotations_are_recorded() {
    let mut info = pod_get();
    info.impersonated = Some(UserInfo {
        username: "system:serviceaccount:prod:builder".to_owned(),
        groups: vec!["system:serviceaccounts".to_owned()],
        extra: BTreeMap::from([("scopes".to_owned(), vec!["view".to_owned()])]),
        ..UserInfo::default()
    });
    info.annotations = BTreeMap::from([
        (
            "authorization.k8s.io/decision".to_owned(),
            "allow".to_owned(),
        ),
        (
            "authorization.k8s.io/reason".to_owned(),
            "RBAC: allowed by ClusterRoleBinding \"impersonators\"".to_owned(),
        ),
    ]);
    let ok = Response {
        code: Some(200),
        ..Response::default()
    };
    check(
        &info,
        Level::Metadata,
        Stage::ResponseComplete,
        false,
        ok,
        expect![[
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"5d3c0b8e-3f4c-4a57-9c8e-1f2a3b4c5d6e","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/pods/web","verb":"get","user":{"username":"alice","groups":["dev","system:authenticated"]},"impersonatedUser":{"username":"system:serviceaccount:prod:builder","groups":["system:serviceaccounts"],"extra":{"scopes":["view"]}},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef","objectRef":{"resource":"pods","namespace":"prod","name":"web","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-01-01T12:00:00.123456Z","stageTimestamp":"2026-01-01T12:00:00.200000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding \"impersonators\""}}"#
        ]],
    );
}

#[test]
fn denied_request_copies_the_bounded_status_fields() {
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "pods \"web\" is forbidden: User \"alice\" cannot get resource \"pods\" in API group \"\" in the namespace \"prod\"",
        "reason": "Forbidden",
        "details": {"name": "web", "kind": "pods"},
        "code": 403
    });
    let denied = Response {
        code: Some(403),
        status: Some(&status),
        response_body: Some(&status),
        ..Response::default()
    };
    check(
        &pod_get(),
        Level::Metadata,
        Stage::ResponseComplete,
        false,
        denied,
        expect![[
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"5d3c0b8e-3f4c-4a57-9c8e-1f2a3b4c5d6e","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/pods/web","verb":"get","user":{"username":"alice","groups":["dev","system:authenticated"]},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef","objectRef":{"resource":"pods","namespace":"prod","name":"web","apiVersion":"v1"},"responseStatus":{"metadata":{},"status":"Failure","message":"pods \"web\" is forbidden: User \"alice\" cannot get resource \"pods\" in API group \"\" in the namespace \"prod\"","reason":"Forbidden","details":{"kind":"pods","name":"web"},"code":403},"requestReceivedTimestamp":"2026-01-01T12:00:00.123456Z","stageTimestamp":"2026-01-01T12:00:00.200000Z"}"#
        ]],
    );
}

#[test]
fn request_response_level_logs_bodies_without_managed_fields() {
    let mut info = pod_get();
    info.verb = "create".to_owned();
    info.request_uri = "/api/v1/namespaces/prod/pods".to_owned();
    if let Some(o) = info.object_ref.as_mut() {
        o.name = String::new();
    }
    let body = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "managedFields": [{"manager": "kubectl"}]}
    });
    let list = json!({
        "kind": "PodList",
        "items": [{"metadata": {"name": "a", "managedFields": [{"manager": "x"}]}}]
    });
    let created = Response {
        code: Some(201),
        request_body: Some(&body),
        response_body: Some(&list),
        ..Response::default()
    };
    check(
        &info,
        Level::RequestResponse,
        Stage::ResponseComplete,
        true,
        created,
        expect![[
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"5d3c0b8e-3f4c-4a57-9c8e-1f2a3b4c5d6e","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/pods","verb":"create","user":{"username":"alice","groups":["dev","system:authenticated"]},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef","objectRef":{"resource":"pods","namespace":"prod","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"}},"responseObject":{"items":[{"metadata":{"name":"a"}}],"kind":"PodList"},"requestReceivedTimestamp":"2026-01-01T12:00:00.123456Z","stageTimestamp":"2026-01-01T12:00:00.200000Z"}"#
        ]],
    );
    // Request level: the request body only, managedFields kept when not asked.
    check(
        &info,
        Level::Request,
        Stage::ResponseComplete,
        false,
        created,
        expect![[
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"5d3c0b8e-3f4c-4a57-9c8e-1f2a3b4c5d6e","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/pods","verb":"create","user":{"username":"alice","groups":["dev","system:authenticated"]},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef","objectRef":{"resource":"pods","namespace":"prod","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"apiVersion":"v1","kind":"Pod","metadata":{"managedFields":[{"manager":"kubectl"}],"name":"web"}},"requestReceivedTimestamp":"2026-01-01T12:00:00.123456Z","stageTimestamp":"2026-01-01T12:00:00.200000Z"}"#
        ]],
    );
}

#[test]
fn non_resource_requests_never_log_bodies() {
    let mut info = pod_get();
    info.request_uri = "/healthz?verbose=1".to_owned();
    info.object_ref = None;
    let ok = Response {
        code: Some(200),
        request_body: Some(&json!({"x": 1})),
        response_body: Some(&json!("ok")),
        ..Response::default()
    };
    check(
        &info,
        Level::RequestResponse,
        Stage::ResponseComplete,
        false,
        ok,
        expect![[
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"5d3c0b8e-3f4c-4a57-9c8e-1f2a3b4c5d6e","stage":"ResponseComplete","requestURI":"/healthz?verbose=1","verb":"get","user":{"username":"alice","groups":["dev","system:authenticated"]},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef","responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-01-01T12:00:00.123456Z","stageTimestamp":"2026-01-01T12:00:00.200000Z"}"#
        ]],
    );
}

#[test]
fn timestamps_are_truncated_to_microseconds() {
    let t = at("2026-03-04T05:06:07.999999999Z");
    expect!["2026-03-04T05:06:07.999999Z"].assert_eq(&micro_time::format(&t));
    let t = at("2026-03-04T05:06:07Z");
    expect!["2026-03-04T05:06:07.000000Z"].assert_eq(&micro_time::format(&t));
}
