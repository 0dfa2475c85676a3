//! The auditor end to end: policy, events and the log file together.

use std::path::{Path, PathBuf};

use serde_json::json;
use tempfile::TempDir;

use super::*;

const CANARY: &str = "CANARY-7f3e9b";
/// `CANARY-7f3e9b` base64-encoded, as it sits in a Secret's `data`.
const CANARY_B64: &str = "Q0FOQVJZLTdmM2U5Yg==";

fn auditor(policy: Policy) -> (TempDir, PathBuf, Auditor) {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("audit.log");
    let backend = LogBackend::open(LogConfig::new(&path)).expect("open log");
    (dir, path, Auditor::new(policy, backend))
}

fn alice() -> UserInfo {
    UserInfo {
        username: "alice".to_owned(),
        groups: vec!["system:authenticated".to_owned()],
        ..UserInfo::default()
    }
}

fn create(group: &str, resource: &str, uri: &str) -> RequestInfo {
    let mut info = RequestInfo::new("create", uri, alice());
    info.object_ref = Some(ObjectRef {
        resource: resource.to_owned(),
        namespace: "prod".to_owned(),
        api_group: group.to_owned(),
        api_version: "v1".to_owned(),
        ..ObjectRef::default()
    });
    info
}

fn events(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .expect("log is readable")
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is an event"))
        .collect()
}

/// Creates a Secret, a ConfigMap and a TokenReview whose bodies carry the
/// canary, through every stage, and returns the log's text.
fn log_sensitive_requests(policy: Policy) -> String {
    let (_dir, path, auditor) = auditor(policy);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod"},
        "data": {"password": CANARY_B64},
        "stringData": {"token": CANARY}
    });
    let configmap = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "prod"},
        "data": {"key": CANARY}
    });
    let review = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": CANARY}
    });
    let requests = [
        (
            create("", "secrets", "/api/v1/namespaces/prod/secrets"),
            secret,
        ),
        (
            create("", "configmaps", "/api/v1/namespaces/prod/configmaps"),
            configmap,
        ),
        (
            create(
                "authentication.k8s.io",
                "tokenreviews",
                "/apis/authentication.k8s.io/v1/tokenreviews",
            ),
            review,
        ),
    ];
    for (info, body) in &requests {
        auditor.request_received(info);
        auditor.response_started(info, 201);
        auditor.response_complete(info, 201, None, Some(body), Some(body));
        auditor.panicked(info, "boom");
    }
    auditor.flush();
    std::fs::read_to_string(&path).expect("log is readable")
}

#[test]
fn default_policy_never_logs_secret_data() {
    let log = log_sensitive_requests(default_policy());
    assert!(
        log.contains("\"resource\":\"secrets\""),
        "the requests are audited:\n{log}"
    );
    assert!(log.contains("\"resource\":\"tokenreviews\""), "{log}");
    assert!(!log.contains(CANARY), "canary in the log:\n{log}");
    assert!(
        !log.contains(CANARY_B64),
        "base64 canary in the log:\n{log}"
    );
    assert!(!log.contains("requestObject") && !log.contains("responseObject"));
}

/// The control for the test above: a policy that does log bodies puts the
/// canary in the file, so the grep would have caught a leak.
#[test]
fn a_request_response_policy_would_leak_and_the_grep_sees_it() {
    let all = Policy::from_yaml(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n",
    )
    .expect("valid");
    let log = log_sensitive_requests(all);
    assert!(log.contains(CANARY) && log.contains(CANARY_B64));
}

#[test]
fn stages_follow_the_policy() {
    let (_dir, path, auditor) = auditor(default_policy());
    let mut watch = RequestInfo::new("watch", "/api/v1/namespaces/prod/pods?watch=true", alice());
    watch.object_ref = Some(ObjectRef {
        resource: "pods".to_owned(),
        namespace: "prod".to_owned(),
        api_version: "v1".to_owned(),
        ..ObjectRef::default()
    });
    auditor.request_received(&watch); // omitted by the default policy
    auditor.response_started(&watch, 200);
    auditor.response_complete(&watch, 200, None, None, None);
    let denied = json!({"status": "Failure", "reason": "Forbidden", "message": "no", "code": 403});
    let mut exec = RequestInfo::new(
        "create",
        "/api/v1/namespaces/prod/pods/web/exec?command=sh",
        alice(),
    );
    exec.object_ref = Some(ObjectRef {
        resource: "pods".to_owned(),
        subresource: "exec".to_owned(),
        namespace: "prod".to_owned(),
        name: "web".to_owned(),
        api_version: "v1".to_owned(),
        ..ObjectRef::default()
    });
    auditor.response_complete(&exec, 403, Some(&denied), None, None);
    auditor.panicked(&exec, "index out of range");
    auditor.flush();

    let got: Vec<String> = events(&path)
        .iter()
        .map(|e| {
            let s = e.response_status.as_ref();
            format!(
                "{:?} {:?} {} {} {}",
                e.stage,
                e.level,
                e.verb,
                e.request_uri,
                s.map(|s| format!("{} {} {}", s.code, s.reason, s.message))
                    .unwrap_or_default()
            )
            .trim_end()
            .to_owned()
        })
        .collect();
    expect_test::expect![[r#"
        [
            "ResponseStarted Metadata watch /api/v1/namespaces/prod/pods?watch=true 200",
            "ResponseComplete Metadata watch /api/v1/namespaces/prod/pods?watch=true 200",
            "ResponseComplete Metadata create /api/v1/namespaces/prod/pods/web/exec?command=sh 403 Forbidden no",
            "Panic Metadata create /api/v1/namespaces/prod/pods/web/exec?command=sh 500 InternalError APIServer panic'd: index out of range",
        ]
    "#]].assert_debug_eq(&got);
    assert_eq!(
        auditor.metrics(),
        AuditMetrics {
            events_total: 4,
            errors_total: 0
        }
    );
}

#[test]
fn level_none_writes_nothing() {
    let policy = Policy::from_yaml(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: ['/healthz*']\n- level: Metadata\n",
    )
    .expect("valid");
    let (_dir, path, auditor) = auditor(policy);
    let health = RequestInfo::new("get", "/healthz", alice());
    assert_eq!(auditor.level(&health), Level::None);
    auditor.response_complete(&health, 200, None, None, None);
    auditor.flush();
    assert!(events(&path).is_empty());
    assert_eq!(auditor.metrics().events_total, 0);
    assert!(auditor.healthy());
}

#[test]
fn the_default_policy_yaml_round_trips() {
    // The YAML shown in the docs is the policy the server runs.
    assert_eq!(
        Policy::from_yaml(default_policy_yaml()).expect("valid"),
        default_policy()
    );
}

#[test]
fn the_auditor_is_shared_across_request_tasks() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Auditor>();
}
