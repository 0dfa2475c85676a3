//! Secrets are encrypted at rest by default: neither the embedded store's
//! files nor etcd ever hold a Secret's data in plaintext, and the data
//! reads back through the API after a restart.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod support;

use std::time::Duration;

use bulwark_store::{EtcdConfig, EtcdStore, Store as _, StoreExt};
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

/// The current value of every Secret in the embedded store (the server
/// must be stopped).
async fn stored_secrets(data: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let store = bulwark_store::SqliteStore::open(
        data.join("db").join("state.db"),
        bulwark_store::SqliteConfig::default(),
    )
    .unwrap();
    store
        .range(bulwark_store::Range::prefix("/registry/secrets/"))
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value.to_vec()))
        .collect()
}

#[tokio::test]
async fn rotation_moves_every_secret_to_a_new_key_while_the_server_runs() {
    let mut server = Server::start();
    let client = server.client().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    for i in 0..5 {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("s{i}")},
            "stringData": {"password": format!("{PLAINTEXT}-{i}")},
        }))
        .unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["secrets", "rotate", "--key-name", "key2", "--data-dir"])
        .arg(server.data())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rotate failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Written while the server still runs: under the new key at once.
    let late: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "late"}, "stringData": {"password": PLAINTEXT},
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &late).await.unwrap();
    server.kill();

    let config = std::fs::read_to_string(server.data().join("encryption-config.yaml")).unwrap();
    assert!(!config.contains("key1"), "the old key is gone:\n{config}");
    let stored = stored_secrets(&server.data()).await;
    assert!(stored.len() >= 6, "{} Secrets stored", stored.len());
    for (key, value) in &stored {
        assert!(
            value.starts_with(b"k8s:enc:secretbox:v1:key2:"),
            "{key} is not under the new key"
        );
    }

    server.spawn();
    let secrets: Api<Secret> = Api::default_namespaced(server.client().await);
    for i in 0..5 {
        let read = secrets.get(&format!("s{i}")).await.unwrap();
        let password = read.data.unwrap().remove("password").unwrap();
        assert_eq!(password.0, format!("{PLAINTEXT}-{i}").as_bytes());
    }
}

#[tokio::test]
async fn a_secret_no_key_decrypts_is_reported_not_fatal() {
    let mut server = Server::start();
    let secrets: Api<Secret> = Api::default_namespaced(server.client().await);
    secrets
        .create(&PostParams::default(), &secret())
        .await
        .unwrap();
    server.kill();
    // A value sealed with a key this server never had (e.g. restored from
    // another cluster's backup).
    {
        let store = bulwark_store::SqliteStore::open(
            server.data().join("db").join("state.db"),
            bulwark_store::SqliteConfig::default(),
        )
        .unwrap();
        store
            .write(bulwark_store::Write::put(
                "/registry/secrets/default/lost",
                &b"k8s:enc:secretbox:v1:key1:not-sealed-with-this-key-at-all-0123456789"[..],
            ))
            .await
            .unwrap();
    }
    server.spawn();
    let secrets: Api<Secret> = Api::default_namespaced(server.client().await);
    let kept = secrets.get("db-password").await.unwrap();
    assert!(kept.data.unwrap().contains_key("password"));
    match secrets.get("lost").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 500);
            assert!(
                status
                    .message
                    .contains("cannot decrypt /registry/secrets/default/lost"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 500, got {other:?}"),
    }
    let log = std::fs::read_to_string(server.data().parent().unwrap().join("server.log")).unwrap();
    assert!(
        log.contains("/registry/secrets/default/lost") && log.contains("cannot be decrypted"),
        "the start-up log names the object:\n{log}"
    );
}
