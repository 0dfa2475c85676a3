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

/// `kubectl` against `server`, which must succeed; its stdout.
fn kubectl(server: &Server, args: &[&str]) -> String {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.data().join("admin.kubeconfig"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// kube-rs's `Recorder` writes events.k8s.io/v1 Events; `kubectl get
/// events` and `kubectl describe` read core/v1. As upstream, both are one
/// set of Events in two shapes.
#[tokio::test]
async fn events_recorded_through_either_api_show_in_both() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    use kube::Resource as _;
    use kube::runtime::events::{Event as Record, EventType, Recorder, Reporter};

    let server = Server::start();
    let client = server.client().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let watched = maps
        .create(&PostParams::default(), &config_map("watched", "1"))
        .await
        .unwrap();
    let reporter = Reporter {
        controller: "test-operator".into(),
        instance: Some("test-operator-0".into()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let record = Record {
        type_: EventType::Warning,
        reason: "Drifted".into(),
        note: Some("the config map drifted from its source".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder
        .publish(&record, &watched.object_ref(&()))
        .await
        .unwrap();

    // core/v1, as kubectl reads it.
    let listed: serde_json::Value = serde_json::from_str(&kubectl(
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=watched",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    let event = &listed["items"][0];
    assert_eq!(event["apiVersion"], "v1", "{listed}");
    assert_eq!(event["message"], "the config map drifted from its source");
    assert_eq!(event["reason"], "Drifted");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["involvedObject"]["kind"], "ConfigMap");
    assert_eq!(event["reportingComponent"], "test-operator");
    assert!(event.get("note").is_none() && event.get("regarding").is_none());
    let described = kubectl(&server, &["describe", "configmap", "watched"]);
    assert!(
        described.contains("Drifted") && described.contains("drifted from its source"),
        "{described}"
    );

    // The same event again: the Recorder patches its series (through
    // events.k8s.io), which core/v1 readers see too.
    recorder
        .publish(&record, &watched.object_ref(&()))
        .await
        .unwrap();
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let name = event["metadata"]["name"].as_str().unwrap();
    let again = core.get(name).await.unwrap();
    assert_eq!(again.series.and_then(|s| s.count), Some(2));

    // And the other way: a core/v1 Event read (and watched) through
    // events.k8s.io/v1.
    let new: Api<Event> = Api::namespaced(client.clone(), "default");
    let now = new.list(&ListParams::default()).await.unwrap();
    let mut watch = new
        .watch(
            &kube::api::WatchParams::default(),
            now.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    let core_event: CoreEvent = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "from-core"},
        "involvedObject": {"kind": "ConfigMap", "name": "watched", "namespace": "default"},
        "reason": "Touched", "message": "touched by hand", "type": "Normal",
        "source": {"component": "kubectl-user"},
    }))
    .unwrap();
    core.create(&PostParams::default(), &core_event)
        .await
        .unwrap();
    let watched_event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match watch.next().await {
                Some(Ok(kube::api::WatchEvent::Added(e)))
                    if e.metadata.name.as_deref() == Some("from-core") =>
                {
                    return e;
                }
                Some(Ok(_)) => {}
                other => panic!("the watch ended: {other:?}"),
            }
        }
    })
    .await
    .expect("the core/v1 Event arrives on the events.k8s.io/v1 watch");
    assert_eq!(watched_event.note.as_deref(), Some("touched by hand"));
    let seen = new.get("from-core").await.unwrap();
    assert_eq!(seen.note.as_deref(), Some("touched by hand"));
    assert_eq!(
        seen.regarding.and_then(|r| r.name).as_deref(),
        Some("watched")
    );
    assert_eq!(
        seen.deprecated_source.and_then(|s| s.component).as_deref(),
        Some("kubectl-user")
    );
    let all = new.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 2, "one set of Events");
    let shown = kubectl(&server, &["get", "events.v1.events.k8s.io"]);
    assert!(
        shown.contains("Touched") && shown.contains("Drifted"),
        "{shown}"
    );

    // Deleted through one, gone from the other.
    new.delete("from-core", &DeleteParams::default())
        .await
        .unwrap();
    assert!(core.get_opt("from-core").await.unwrap().is_none());
}
