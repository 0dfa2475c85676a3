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
