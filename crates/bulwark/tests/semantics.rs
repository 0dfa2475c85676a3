//! End-to-end API semantics through kube-rs, as the upstream conformance
//! tests check them: finalizers and graceful deletion, status
//! subresources, generation, immutability, namespaces, dry run, watches
//! with selectors and in concurrent order, and the error statuses.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod support;

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use support::Server;

fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// The server's `/metrics` text.
async fn metrics(client: &kube::Client) -> String {
    let request = http::Request::builder()
        .uri("/metrics")
        .body(Vec::new())
        .unwrap();
    client.request_text(request).await.unwrap()
}

fn status_of<T: std::fmt::Debug>(result: kube::Result<T>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error status, got {other:?}"),
    }
}

#[tokio::test]
async fn finalizers_hold_a_deletion_until_removed() {
    let server = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client().await);
    let held = from(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}));
    api.create(&PostParams::default(), &held).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = api.get("held").await.unwrap();
    assert!(
        marked.metadata.deletion_timestamp.is_some(),
        "marked, not removed"
    );
    // While it is being deleted, the finalizer list may only shrink to done.
    let patch = json!({"metadata": {"finalizers": null}});
    api.patch("held", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(
        status_of(api.get("held").await).code,
        404,
        "gone once the finalizer is removed"
    );
}

#[tokio::test]
async fn bound_pods_are_deleted_gracefully() {
    let server = Server::start();
    let api: Api<Pod> = Api::default_namespaced(server.client().await);
    let pod = from(json!({"metadata": {"name": "p"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]}}));
    api.create(&PostParams::default(), &pod).await.unwrap();
    api.delete("p", &DeleteParams::default()).await.unwrap();
    let terminating = api.get("p").await.unwrap();
    assert_eq!(
        terminating.metadata.deletion_grace_period_seconds,
        Some(30),
        "the pod's own grace"
    );
    // A node agent (or a forced delete) finishes it.
    api.delete(
        "p",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(status_of(api.get("p").await).code, 404);
    // Unbound pods go at once.
    let pod = from(
        json!({"metadata": {"name": "q"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    api.create(&PostParams::default(), &pod).await.unwrap();
    api.delete("q", &DeleteParams::default()).await.unwrap();
    assert_eq!(status_of(api.get("q").await).code, 404);
}

#[tokio::test]
async fn status_and_spec_are_written_apart_and_generation_follows_spec() {
    let server = Server::start();
    let api: Api<Deployment> = Api::default_namespaced(server.client().await);
    let deployment = from(json!({"metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}));
    let created = api
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    // The main resource ignores status.
    let patch = json!({"status": {"replicas": 7}, "metadata": {"labels": {"x": "y"}}});
    let labelled = api
        .patch("d", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(labelled.status.and_then(|s| s.replicas), None);
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    // The status subresource writes only status.
    let patch =
        json!({"status": {"replicas": 7, "observedGeneration": 1}, "spec": {"replicas": 9}});
    let status = api
        .patch_status("d", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(status.status.unwrap().replicas, Some(7));
    assert_eq!(
        status.spec.unwrap().replicas,
        Some(1),
        "spec untouched through /status"
    );
    let patch = json!({"spec": {"replicas": 3}});
    let scaled = api
        .patch("d", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(
        scaled.metadata.generation,
        Some(2),
        "spec changes bump the generation"
    );
}

#[tokio::test]
async fn immutable_config_maps_keep_their_data() {
    let server = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client().await);
    let cm = from(json!({"metadata": {"name": "frozen"}, "data": {"a": "1"}, "immutable": true}));
    api.create(&PostParams::default(), &cm).await.unwrap();
    let patch = json!({"data": {"a": "2"}});
    let status = status_of(
        api.patch("frozen", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .contains("field is immutable when `immutable` is set"),
        "{}",
        status.message
    );
    // Labels may still change.
    let patch = json!({"metadata": {"labels": {"ok": "yes"}}});
    api.patch("frozen", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test]
async fn namespaces_must_exist_and_dry_runs_write_nothing() {
    let server = Server::start();
    let client = server.client().await;
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let cm: ConfigMap = from(json!({"metadata": {"name": "a"}}));
    let status = status_of(missing.create(&PostParams::default(), &cm).await);
    assert_eq!(status.code, 404);
    assert_eq!(status.message, "namespaces \"nope\" not found");

    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answered = api.create(&dry, &cm).await.unwrap();
    assert_eq!(answered.metadata.name.as_deref(), Some("a"));
    assert_eq!(
        status_of(api.get("a").await).code,
        404,
        "a dry run stores nothing"
    );
}

#[tokio::test]
async fn a_watch_with_a_selector_sees_objects_leave_it() {
    let server = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client().await);
    let params = WatchParams::default().labels("team=a").timeout(10);
    let mut stream = api.watch(&params, "0").await.unwrap().boxed();
    let cm = from(json!({"metadata": {"name": "m", "labels": {"team": "a"}}}));
    api.create(&PostParams::default(), &cm).await.unwrap();
    let patch = json!({"metadata": {"labels": {"team": "b"}}});
    api.patch("m", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(_)))) => kinds.push("ADDED"),
            Ok(Ok(Some(WatchEvent::Deleted(cm)))) => {
                assert_eq!(
                    cm.metadata.labels.unwrap()["team"],
                    "b",
                    "the object as it left"
                );
                kinds.push("DELETED");
            }
            Ok(Ok(Some(WatchEvent::Bookmark(_)))) => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED", "DELETED"]);
}

#[tokio::test]
async fn concurrent_watchers_see_the_same_order() {
    let server = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client().await);
    let start = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watchers = Vec::new();
    for _ in 0..3 {
        let stream = api
            .watch(&WatchParams::default().timeout(20), &start)
            .await
            .unwrap();
        watchers.push(tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut seen = Vec::new();
            while seen.len() < 30 {
                if let Some(Ok(
                    WatchEvent::Added(cm) | WatchEvent::Modified(cm) | WatchEvent::Deleted(cm),
                )) = stream.next().await
                {
                    seen.push(cm.metadata.resource_version.unwrap());
                }
            }
            seen
        }));
    }
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let api = api.clone();
            tokio::spawn(async move {
                for i in 0..5 {
                    let name = format!("w{w}-{i}");
                    let cm: ConfigMap = from(json!({"metadata": {"name": name}}));
                    api.create(&PostParams::default(), &cm).await.unwrap();
                    api.delete(&name, &DeleteParams::default()).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut orders = Vec::new();
    for watcher in watchers {
        orders.push(
            tokio::time::timeout(Duration::from_secs(20), watcher)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "{orders:?}");
}

/// A watcher that stops reading while thousands of changes go by (more
/// than the watch cache keeps) still gets every one of them, in order and
/// without a 410 that would make its client relist: the server catches it
/// up from the store's history.
#[tokio::test]
async fn a_watcher_that_falls_far_behind_still_gets_every_event() {
    const CREATES: usize = 3_500;
    let server = Server::start_with(&["--disable-controller-manager"]);
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let start = api
        .list(&kube::api::ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(300), &start)
        .await
        .unwrap()
        .boxed();
    // Large objects fill the connection's buffers after a few hundred
    // events; from then on the server's side of the watch waits while the
    // cache moves on past its window.
    let data = "x".repeat(16 * 1024);
    futures::stream::iter(0..CREATES)
        .for_each_concurrent(8, |i| {
            let (api, data) = (api.clone(), data.clone());
            async move {
                let cm =
                    from(json!({"metadata": {"name": format!("c{i:05}")}, "data": {"d": data}}));
                api.create(&PostParams::default(), &cm).await.unwrap();
            }
        })
        .await;
    let mut seen = std::collections::HashSet::new();
    let mut last = 0u64;
    while seen.len() < CREATES {
        match tokio::time::timeout(Duration::from_secs(60), stream.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(cm)))) => {
                let rv: u64 = cm.metadata.resource_version.unwrap().parse().unwrap();
                assert!(rv > last, "out of order: {rv} after {last}");
                last = rv;
                assert!(seen.insert(cm.metadata.name.unwrap()), "repeated");
            }
            Ok(Ok(Some(WatchEvent::Bookmark(_)))) => {}
            other => panic!("after {} events: {other:?}", seen.len()),
        }
    }
    // And it did fall behind: the server says so.
    let text = metrics(&client).await;
    assert!(
        text.contains(r#"apiserver_watch_cache_catch_ups_total{kind="ConfigMap"}"#),
        "the watcher never fell behind the window"
    );
}

/// Updates start from the watch cache's copy of the object, which may be a
/// step behind the store: no write may be lost to a stale copy. (The
/// handlers' unit tests make the copy stale on purpose.)
#[tokio::test]
async fn concurrent_writers_to_one_object_lose_nothing() {
    let server = Server::start_with(&["--disable-controller-manager"]);
    let api: Api<ConfigMap> = Api::default_namespaced(server.client().await);
    let cm = from(json!({"metadata": {"name": "counter"}, "data": {"n": "0"}}));
    api.create(&PostParams::default(), &cm).await.unwrap();
    // A watch makes the server keep a watch cache of ConfigMaps.
    let _watch = api
        .watch(&WatchParams::default().timeout(120), "0")
        .await
        .unwrap()
        .boxed();

    // Blind merge patches of distinct keys, and read-modify-write
    // increments with the read's resourceVersion, all at once.
    let patches = futures::future::join_all((0..24).map(|i| {
        let api = api.clone();
        async move {
            let patch = json!({"data": {format!("k{i}"): "v"}});
            api.patch("counter", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    }));
    let increments = futures::future::join_all((0..4).map(|_| {
        let api = api.clone();
        async move {
            for _ in 0..10 {
                loop {
                    let mut cm = api.get("counter").await.unwrap();
                    let data = cm.data.get_or_insert_default();
                    let n: u32 = data["n"].parse().unwrap();
                    data.insert("n".into(), (n + 1).to_string());
                    match api.replace("counter", &PostParams::default(), &cm).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 409 => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }
    }));
    futures::join!(patches, increments);
    let data = api.get("counter").await.unwrap().data.unwrap();
    assert_eq!(data["n"], "40", "an increment was lost");
    for i in 0..24 {
        assert_eq!(
            data.get(&format!("k{i}")).map(String::as_str),
            Some("v"),
            "k{i}"
        );
    }
}

#[tokio::test]
async fn malformed_requests_get_upstream_statuses() {
    // No controllers: the root CA publisher would write (and its informer
    // watch) ConfigMaps too.
    let server = Server::start_with(&["--disable-controller-manager"]);
    let client = server.client().await;
    let request = |method: &str, uri: &str, content_type: &str, body: Vec<u8>| {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header("Content-Type", content_type)
            .body(body)
            .unwrap()
    };
    let path = "/api/v1/namespaces/default/configmaps";
    let status = status_of(
        client
            .request_text(request(
                "POST",
                path,
                "application/json",
                b"{not json".to_vec(),
            ))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    let status = status_of(
        client
            .request_text(request("POST", path, "text/csv", b"a,b".to_vec()))
            .await,
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    let big = format!(
        r#"{{"metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
        "x".repeat(4 * 1024 * 1024)
    );
    let status = status_of(
        client
            .request_text(request("POST", path, "application/json", big.into_bytes()))
            .await,
    );
    assert_eq!(status.code, 413);
    let status = status_of(
        client
            .request_text(request("PUT", path, "application/json", b"{}".to_vec()))
            .await,
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (405, "MethodNotAllowed")
    );
    let status = status_of(
        client
            .request_text(request(
                "GET",
                "/api/v1/frobs",
                "application/json",
                Vec::new(),
            ))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    // Nothing half-written, and the server still serves.
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    assert!(
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn config_maps_and_secrets_refuse_an_empty_key() {
    let server = Server::start();
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = from(json!({"metadata": {"name": "empty-key"}, "data": {"": "value"}}));
    let status = status_of(cms.create(&PostParams::default(), &cm).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .contains("a valid config key must consist of alphanumeric characters"),
        "{}",
        status.message
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(client);
    let secret = from(json!({"metadata": {"name": "empty-key"}, "data": {"": "dmFsdWU="}}));
    let status = status_of(secrets.create(&PostParams::default(), &secret).await);
    assert_eq!(status.code, 422);
}

#[tokio::test]
async fn leases_and_events_live_and_die() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Event;
    let server = Server::start();
    let client = server.client().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = from(json!({"metadata": {"name": "node-1"},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "renewTime": "2026-01-01T00:00:00.000000Z"}}));
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let patch = json!({"spec": {"renewTime": "2026-01-01T00:00:10.000000Z"}});
    let renewed = leases
        .patch("node-1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(
        renewed.spec.unwrap().renew_time.unwrap().0.to_string(),
        "2026-01-01T00:00:10Z"
    );
    leases
        .delete("node-1", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status_of(leases.get("node-1").await).code, 404);

    let events: Api<Event> = Api::default_namespaced(client);
    let event = from(json!({"metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Testing", "message": "hello", "type": "Normal"}));
    events.create(&PostParams::default(), &event).await.unwrap();
    let found = events
        .list(&kube::api::ListParams::default().fields("involvedObject.name=web,reason=Testing"))
        .await
        .unwrap();
    assert_eq!(
        found.items.len(),
        1,
        "events select by involvedObject fields, as describe does"
    );
    events.delete("e1", &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn metrics_count_requests_watches_and_store_calls() {
    // No controllers: the root CA publisher would write (and its informer
    // watch) ConfigMaps too.
    let server = Server::start_with(&["--disable-controller-manager"]);
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let _watch = api
        .watch(&WatchParams::default().timeout(30), "0")
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &from(json!({"metadata": {"name": "m"}})),
    )
    .await
    .unwrap();
    let text = metrics(&client).await;
    assert!(
        text.contains(
            r#"apiserver_request_total{verb="create",resource="configmaps",code="201"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"apiserver_registered_watchers{kind="ConfigMap"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"etcd_request_duration_seconds_count{operation="write"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn strict_validation_refuses_duplicate_fields() {
    let server = Server::start();
    let client = server.client().await;
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1","a":"2"}}"#;
    let request = http::Request::builder()
        .method("POST")
        .uri("/api/v1/namespaces/default/configmaps?fieldValidation=Strict")
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .unwrap();
    let status = status_of(client.request_text(request).await);
    assert_eq!(status.code, 400);
    assert!(
        status
            .message
            .contains(r#"strict decoding error: duplicate field "data.a""#),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn subject_access_reviews_answer_for_other_users() {
    let server = Server::start();
    let client = server.client().await;
    let review = |path: &str, body: serde_json::Value| {
        http::Request::builder()
            .method("POST")
            .uri(path)
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap()
    };
    let ask = |user: &str, group: &str, namespace: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "spec": {"user": user, "groups": [group],
                        "resourceAttributes": {"verb": "list", "resource": "pods", "namespace": namespace}}})
    };
    let answer = |text: String| -> serde_json::Value { serde_json::from_str(&text).unwrap() };
    let path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let admin = answer(
        client
            .request_text(review(path, ask("root", "system:masters", "default")))
            .await
            .unwrap(),
    );
    assert_eq!(admin["status"]["allowed"], true);
    let nobody = answer(
        client
            .request_text(review(
                path,
                ask("mallory", "system:authenticated", "default"),
            ))
            .await
            .unwrap(),
    );
    assert_eq!(nobody["status"]["allowed"], false);
    // A local review is bound to its URL's namespace.
    let local = "/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews";
    let mut wrong = ask("root", "system:masters", "kube-system");
    wrong["kind"] = json!("LocalSubjectAccessReview");
    assert_eq!(
        status_of(client.request_text(review(local, wrong)).await).code,
        422
    );
    let mut right = ask("root", "system:masters", "");
    right["kind"] = json!("LocalSubjectAccessReview");
    let local_answer = answer(client.request_text(review(local, right)).await.unwrap());
    assert_eq!(local_answer["kind"], "LocalSubjectAccessReview");
    assert_eq!(local_answer["status"]["allowed"], true);
    // Neither user nor group: refused.
    let empty = json!({"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}});
    assert_eq!(
        status_of(client.request_text(review(path, empty)).await).code,
        422
    );
}

#[tokio::test]
async fn pods_get_their_priority_and_default_tolerations_at_admission() {
    use k8s_openapi::api::scheduling::v1::PriorityClass;
    let server = Server::start();
    let client = server.client().await;
    let classes: Api<PriorityClass> = Api::all(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client);
    let pod = |name: &str, class: Option<&str>| -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
        if let Some(class) = class {
            spec["priorityClassName"] = json!(class);
        }
        from(json!({"metadata": {"name": name}, "spec": spec}))
    };
    let create = |p: Pod| {
        let pods = pods.clone();
        async move { pods.create(&PostParams::default(), &p).await }
    };
    // No class anywhere: priority 0, and upstream's 300 s tolerations.
    let plain = create(pod("plain", None)).await.unwrap().spec.unwrap();
    assert_eq!(plain.priority, Some(0));
    let tolerated: Vec<_> = plain
        .tolerations
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.toleration_seconds == Some(300))
        .filter_map(|t| t.key)
        .collect();
    assert_eq!(
        tolerated,
        [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable"
        ]
    );
    // Built-in and global-default classes.
    let critical = create(pod("critical", Some("system-cluster-critical")))
        .await
        .unwrap();
    assert_eq!(critical.spec.unwrap().priority, Some(2_000_000_000));
    let default: PriorityClass =
        from(json!({"metadata": {"name": "normal"}, "value": 1000, "globalDefault": true}));
    classes
        .create(&PostParams::default(), &default)
        .await
        .unwrap();
    let defaulted = bulwark_testkit::wait_for(
        "the global default applies",
        Duration::from_secs(10),
        || async {
            let name = format!(
                "d-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            );
            let spec = create(pod(&name, None))
                .await
                .map_err(|e| e.to_string())?
                .spec
                .unwrap();
            let priority = spec.priority;
            (priority == Some(1000))
                .then_some(spec)
                .ok_or_else(|| format!("{priority:?}"))
        },
    )
    .await
    .unwrap();
    assert_eq!(defaulted.priority_class_name.as_deref(), Some("normal"));
    // An unknown class is refused, in upstream's words.
    let err = create(pod("lost", Some("no-such-class")))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403);
            assert!(
                status
                    .message
                    .contains("no PriorityClass with name no-such-class was found"),
                "{}",
                status.message
            );
        }
        other => panic!("{other}"),
    }
}
