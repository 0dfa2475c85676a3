//! `Running::create_bootstrap_token`, the helper the node-join flow calls at
//! server start: the token it returns authenticates (kube-rs, bearer only),
//! as `system:bootstrap:<id>` with the groups asked for.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness

use std::time::Duration;

use serde_json::{Value, json};

async fn whoami(server: &bulwark_apiserver::Running, token: &str) -> Result<Value, kube::Error> {
    let mut config = kube::Config::new(server.url.parse().unwrap());
    config.root_cert = Some(vec![
        rustls_pemfile::certs(&mut server.pki.ca_cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec(),
    ]);
    config.auth_info.token = Some(token.to_owned().into());
    let client = kube::Client::try_from(config).unwrap();
    let request = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header("Content-Type", "application/json")
        .body(
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
                .to_string()
                .into_bytes(),
        )
        .unwrap();
    let review: Value = client.request(request).await?;
    Ok(review["status"]["userInfo"].clone())
}

#[tokio::test]
async fn a_created_bootstrap_token_authenticates_with_its_groups() {
    let dir = tempfile::tempdir().unwrap();
    let server = bulwark_apiserver::start(bulwark_apiserver::Config {
        data_dir: dir.path().join("data"),
        port: 0,
        audit_log: bulwark_apiserver::AuditLog::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let token = server
        .create_bootstrap_token(
            Some(Duration::from_secs(3600)),
            &["system:bootstrappers:kubeadm:default-node-token"],
            "node join",
        )
        .await
        .unwrap();
    let (id, secret) = token.split_once('.').unwrap();
    assert_eq!((id.len(), secret.len()), (6, 16));
    let user = whoami(&server, &token).await.unwrap();
    assert_eq!(user["username"], format!("system:bootstrap:{id}"));
    assert_eq!(
        user["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:kubeadm:default-node-token",
            "system:authenticated"
        ])
    );
    // The secret part is what authenticates.
    let wrong = format!("{id}.{}", "0".repeat(16));
    match whoami(&server, &wrong).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401),
        other => panic!("a wrong secret was not refused: {other:?}"),
    }
    server.stop();
}
