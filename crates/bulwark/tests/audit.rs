//! The audit log, on by default: allowed and unauthenticated requests are
//! recorded with who, what and the answer; the `Audit-ID` header names the
//! event; Secret data never reaches the log.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::Value;
use support::Server;

fn events(server: &Server) -> Vec<Value> {
    std::fs::read_to_string(server.data().join("audit/audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls the log (written off the request path) until `pred` holds.
fn wait_for_event(server: &Server, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(event) = events(server).into_iter().find(|e| pred(e)) {
            return event;
        }
        assert!(
            Instant::now() < deadline,
            "no matching audit event in {:?}",
            events(server)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn requests_are_audited_without_secret_data() {
    let server = Server::start();
    let client = server.client().await;

    let request = http::Request::builder()
        .uri("/api/v1/namespaces/default/configmaps")
        .body(Vec::new())
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    let audit_id = response.headers()["Audit-ID"].to_str().unwrap().to_owned();
    let event = wait_for_event(&server, |e| e["auditID"] == audit_id.as_str());
    assert_eq!(event["verb"], "list");
    assert_eq!(event["user"]["username"], "bulwark-admin");
    assert_eq!(event["objectRef"]["resource"], "configmaps");
    assert_eq!(event["responseStatus"]["code"], 200);
    assert_eq!(event["sourceIPs"][0], "127.0.0.1");

    let secrets: Api<Secret> = Api::default_namespaced(client);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "s"}, "stringData": {"token": "audit-must-not-see-this"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let created = wait_for_event(&server, |e| {
        e["verb"] == "create" && e["objectRef"]["resource"] == "secrets"
    });
    assert_eq!(created["level"], "Metadata");
    assert!(created.get("requestObject").is_none() && created.get("responseObject").is_none());
    let log = std::fs::read_to_string(server.data().join("audit/audit.log")).unwrap();
    assert!(!log.contains("audit-must-not-see-this"));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(server.data().join("audit/audit.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn unauthenticated_requests_are_audited_too() {
    let server = Server::start();
    let _ = server.client().await; // wait until it serves
    // The server's own CA, but a forged bearer token instead of a certificate.
    let kubeconfig =
        kube::config::Kubeconfig::read_from(server.data().join("admin.kubeconfig")).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some("forged".to_owned().into()),
        ..Default::default()
    };
    let anonymous = kube::Client::try_from(config).unwrap();
    let api: Api<Secret> = Api::default_namespaced(anonymous);
    match api.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let event = wait_for_event(&server, |e| e["responseStatus"]["code"] == 401);
    assert_eq!(event["user"]["username"], "system:anonymous");
    assert_eq!(event["user"]["groups"][0], "system:unauthenticated");
    assert_eq!(event["objectRef"]["resource"], "secrets");
}

#[tokio::test]
async fn impersonation_is_recorded() {
    let server = Server::start();
    let client = server.client().await;
    let request = http::Request::builder()
        .uri("/api/v1/namespaces/default/pods")
        .header("Impersonate-User", "bob")
        .header("Impersonate-Group", "qa")
        .body(Vec::new())
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "bob may not list pods");
    let audit_id = response.headers()["Audit-ID"].to_str().unwrap().to_owned();
    let event = wait_for_event(&server, |e| e["auditID"] == audit_id.as_str());
    assert_eq!(event["user"]["username"], "bulwark-admin", "who asked");
    assert_eq!(event["impersonatedUser"]["username"], "bob", "as whom");
    assert_eq!(event["impersonatedUser"]["groups"][0], "qa");
    assert_eq!(
        event["responseStatus"]["code"], 403,
        "denied requests are audited"
    );
}

#[tokio::test]
async fn request_and_response_levels_record_the_bodies_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  resources: [{group: \"\", resources: [secrets]}]
- level: RequestResponse
  resources: [{group: \"\", resources: [configmaps]}]
- level: Request
  resources: [{group: \"\", resources: [services]}]
- level: Metadata
",
    )
    .unwrap();
    let server = Server::start_with(&["--audit-policy-file", policy.to_str().unwrap()]);
    let client = server.client().await;

    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::default_namespaced(client.clone());
    let cm = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "settings"}, "data": {"mode": "fast"}
    }))
    .unwrap();
    configmaps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let event = wait_for_event(&server, |e| {
        e["verb"] == "create" && e["objectRef"]["resource"] == "configmaps"
    });
    assert_eq!(event["level"], "RequestResponse");
    assert_eq!(event["requestObject"]["data"]["mode"], "fast");
    assert_eq!(event["responseObject"]["metadata"]["name"], "settings");
    assert!(
        event["responseObject"]["metadata"]["uid"].is_string(),
        "the server's answer, not the request: {event}"
    );

    // A failure's Status reaches the event's responseStatus.
    let again = configmaps.create(&PostParams::default(), &cm).await;
    assert!(matches!(again, Err(kube::Error::Api(ref s)) if s.code == 409));
    let conflict = wait_for_event(&server, |e| {
        e["objectRef"]["resource"] == "configmaps" && e["responseStatus"]["code"] == 409
    });
    assert_eq!(conflict["responseStatus"]["reason"], "AlreadyExists");

    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::default_namespaced(client.clone());
    let svc = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let event = wait_for_event(&server, |e| {
        e["verb"] == "create" && e["objectRef"]["resource"] == "services"
    });
    assert_eq!(event["level"], "Request");
    assert_eq!(event["requestObject"]["spec"]["ports"][0]["port"], 80);
    assert!(event.get("responseObject").is_none(), "{event}");

    // Secrets stay at Metadata by this policy: no data in the log.
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "s"}, "stringData": {"token": "audit-must-not-see-this"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    wait_for_event(&server, |e| {
        e["verb"] == "create" && e["objectRef"]["resource"] == "secrets"
    });
    let log = std::fs::read_to_string(server.data().join("audit/audit.log")).unwrap();
    assert!(!log.contains("audit-must-not-see-this"));
}
