//! Secrets are encrypted at rest by default: neither the embedded store's
//! files nor etcd ever hold a Secret's data in plaintext, and the data
//! reads back through the API after a restart.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod support;

use std::time::Duration;

use bulwark_store::{EtcdConfig, EtcdStore, StoreExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use support::Server;

const PLAINTEXT: &str = "correct-horse-battery-staple-4711";

fn secret() -> Secret {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db-password"},
        "stringData": {"password": PLAINTEXT},
    }))
    .unwrap()
}

fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut found = false;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found |= files_contain(&path, needle);
        } else if let Ok(bytes) = std::fs::read(&path) {
            found |= bytes.windows(needle.len()).any(|w| w == needle);
        }
    }
    found
}

#[tokio::test]
async fn the_embedded_store_never_holds_secret_plaintext() {
    let mut server = Server::start();
    let client = server.client().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    secrets
        .create(&PostParams::default(), &secret())
        .await
        .unwrap();

    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(PLAINTEXT);
    let db = server.data().join("db");
    assert!(
        !files_contain(&db, PLAINTEXT.as_bytes()),
        "plaintext found in {}",
        db.display()
    );
    assert!(
        !files_contain(&db, encoded.as_bytes()),
        "base64 plaintext found in {}",
        db.display()
    );
    assert!(
        files_contain(&db, b"k8s:enc:secretbox:v1:key1:"),
        "values carry upstream's provider prefix"
    );

    server.kill();
    server.spawn();
    let secrets: Api<Secret> = Api::default_namespaced(server.client().await);
    let read = secrets.get("db-password").await.unwrap();
    let password = read.data.unwrap().remove("password").unwrap();
    assert_eq!(
        password.0,
        PLAINTEXT.as_bytes(),
        "the same key decrypts after a restart"
    );
}

#[tokio::test]
async fn etcd_never_holds_secret_plaintext() {
    let etcd = bulwark_testkit::EtcdServer::start().expect("etcd starts (install etcd-server)");
    let mut server = Server::start_with(&["--etcd-endpoints", &etcd.endpoint()]);
    let client = server.client().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    secrets
        .create(&PostParams::default(), &secret())
        .await
        .unwrap();

    let mut config = EtcdConfig::new([etcd.endpoint()]);
    config.prefix = "/bulwark".into();
    let raw = EtcdStore::connect(config).unwrap();
    let stored = tokio::time::timeout(
        Duration::from_secs(10),
        raw.get("/registry/secrets/default/db-password"),
    )
    .await
    .unwrap()
    .unwrap()
    .expect("the secret is in etcd under the cluster's prefix");
    assert!(stored.value.starts_with(b"k8s:enc:secretbox:v1:key1:"));
    assert!(
        !stored
            .value
            .windows(PLAINTEXT.len())
            .any(|w| w == PLAINTEXT.as_bytes())
    );
    server.kill();
}
