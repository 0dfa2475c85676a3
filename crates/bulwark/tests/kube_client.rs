//! End-to-end through the `kube` crate (kube-rs), the client Rust
//! controllers use: typed calls, optimistic concurrency, and a
//! `kube::runtime::watcher` that survives a server crash and a 410.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use support::Server;

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "data": {"key": value},
    }))
    .unwrap()
}

#[tokio::test]
async fn typed_calls_and_optimistic_concurrency() {
    let server = Server::start();
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    let mut first = created.clone();
    first.data = Some([("key".to_owned(), "2".to_owned())].into());
    let replaced = api
        .replace("a", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );

    // A second writer still holding the old resourceVersion loses.
    let mut stale = created.clone();
    stale.data = Some([("key".to_owned(), "stale".to_owned())].into());
    match api.replace("a", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
            assert!(
                status.message.contains("the object has been modified"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 409 Conflict, got {other:?}"),
    }

    let patch = serde_json::json!({"data": {"other": "x"}});
    let patched = api
        .patch("a", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap().len(), 2);

    for i in 0..7 {
        api.create(
            &PostParams::default(),
            &config_map(&format!("page-{i}"), "v"),
        )
        .await
        .unwrap();
    }
    // Paging: every item exactly once across pages.
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(3);
    loop {
        let page = api.list(&params).await.unwrap();
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    // Every namespace also has the root CA publisher's ConfigMap.
    names.retain(|n| n != "kube-root-ca.crt");
    assert_eq!(names.len(), 8, "{names:?}");

    api.delete("a", &DeleteParams::default()).await.unwrap();
    match api.get("a").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

/// A watcher keeps delivering across a server crash: it reconnects, gets a
/// 410 for a resourceVersion the new server no longer serves, relists, and
/// goes on.
#[tokio::test]
async fn watcher_survives_a_crash_and_a_410() {
    let mut server = Server::start();
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let config = watcher::Config::default().timeout(5);
    let mut events = Box::pin(watcher(api.clone(), config));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let names: Vec<String> = match event {
                Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                    vec![cm.metadata.name.unwrap_or_default()]
                }
                // Errors are retried by the watcher itself (with backoff).
                Err(err) => {
                    eprintln!("watcher: {err:?}");
                    continue;
                }
                _ => continue,
            };
            for name in names {
                if tx.send(name).is_err() {
                    return;
                }
            }
        }
    });
    api.create(&PostParams::default(), &config_map("before", "1"))
        .await
        .unwrap();
    wait_for("before", &mut rx).await;

    // Writes elsewhere move the revision past what the watcher last saw, so
    // the restarted server's cache answers its resume with 410 Expired.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret: Secret =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "s"}})).unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    server.kill();
    server.spawn();
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    assert!(
        api.get("before").await.is_ok(),
        "acknowledged writes survive the crash"
    );
    api.create(&PostParams::default(), &config_map("after", "2"))
        .await
        .unwrap();
    wait_for("after", &mut rx).await;
}

/// Waits (up to a minute) until the watcher delivers `name`.
async fn wait_for(name: &str, rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(seen)) if seen == name => return,
            Ok(Some(_)) => continue,
            _ => panic!("the watcher never delivered {name}"),
        }
    }
}
