//! ResourceQuota and LimitRanger against a real API server with the
//! resourcequota controller running: the controller keeps `status.used`
//! true, admission refuses what does not fit with upstream's messages, a
//! deleted object gives its share back, racing creates cannot overrun a
//! quota, and LimitRange defaults and limits apply to new pods.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod common;

use common::{Harness, PATIENCE};
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, Service, ServiceAccount,
};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};

async fn namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    // Pods need their namespace's default ServiceAccount (its controller
    // does not run here).
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    match accounts.create(&PostParams::default(), &sa).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(err) => panic!("creating the default ServiceAccount in {name}: {err}"),
    }
}

fn pod(name: &str, resources: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "busybox", "resources": resources}]},
    }))
    .unwrap()
}

/// The API error's message (panics if the call succeeded).
fn refused<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Waits until the quota's `status.used[name]` is `want`.
async fn used_becomes(quotas: &Api<ResourceQuota>, quota: &str, name: &str, want: &str) {
    bulwark_testkit::wait_for(&format!("{quota} used {name}={want}"), PATIENCE, || async {
        let q = quotas.get(quota).await.map_err(|e| e.to_string())?;
        let used = q
            .status
            .as_ref()
            .and_then(|s| s.used.as_ref())
            .and_then(|u| u.get(name))
            .map(|q| q.0.clone());
        if used.as_deref() == Some(want) {
            Ok(())
        } else {
            Err(format!("used {name} is {used:?}"))
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn compute_quota_is_charged_refused_and_given_back() {
    let harness = Harness::start(&["resourcequota-controller"]).await;
    let client = harness.admin();
    namespace(&client, "team-q").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "team-q");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "compute"},
        "spec": {"hard": {"pods": "2", "requests.cpu": "1", "limits.cpu": "2"}},
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    used_becomes(&quotas, "compute", "requests.cpu", "0").await;
    let hard = quotas
        .get("compute")
        .await
        .unwrap()
        .status
        .unwrap()
        .hard
        .unwrap();
    assert_eq!(
        hard.get("pods").unwrap().0,
        "2",
        "status.hard mirrors spec.hard"
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "team-q");
    let (code, message) = refused(
        pods.create(&PostParams::default(), &pod("bare", json!({})))
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"bare\" is forbidden: failed quota: compute: must specify limits.cpu for: app; requests.cpu for: app"
    );

    let sized = |name| {
        pod(
            name,
            json!({"requests": {"cpu": "600m"}, "limits": {"cpu": "1"}}),
        )
    };
    pods.create(&PostParams::default(), &sized("first"))
        .await
        .unwrap();
    // Charged by admission itself, before any controller pass.
    let used = quotas
        .get("compute")
        .await
        .unwrap()
        .status
        .unwrap()
        .used
        .unwrap();
    assert_eq!(used.get("requests.cpu").unwrap().0, "600m");
    assert_eq!(used.get("pods").unwrap().0, "1");

    let (code, message) = refused(pods.create(&PostParams::default(), &sized("second")).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"second\" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"
    );

    // Deleting the pod gives its share back (the controller recounts).
    pods.delete("first", &DeleteParams::default())
        .await
        .unwrap();
    used_becomes(&quotas, "compute", "requests.cpu", "0").await;
    pods.create(&PostParams::default(), &sized("second"))
        .await
        .unwrap();
    used_becomes(&quotas, "compute", "limits.cpu", "1").await;
}

#[tokio::test]
async fn racing_creates_cannot_overrun_a_quota() {
    let harness = Harness::start(&["resourcequota-controller"]).await;
    let client = harness.admin();
    namespace(&client, "race").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "race");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "objects"},
        "spec": {"hard": {"configmaps": "3"}},
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    used_becomes(&quotas, "objects", "configmaps", "0").await;

    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "race");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let maps = maps.clone();
        tasks.spawn(async move {
            let cm: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}})).unwrap();
            maps.create(&PostParams::default(), &cm).await
        });
    }
    let (mut created, mut refusals) = (0, Vec::new());
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Ok(_) => created += 1,
            Err(kube::Error::Api(s)) => refusals.push((s.code, s.message)),
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(created, 3, "exactly the quota's three fit: {refusals:?}");
    for (code, message) in &refusals {
        assert_eq!(*code, 403);
        assert!(
            message.ends_with(
                "is forbidden: exceeded quota: objects, requested: configmaps=1, used: configmaps=3, limited: configmaps=3"
            ),
            "{message}"
        );
    }
    let listed = maps.list(&Default::default()).await.unwrap().items.len();
    assert_eq!(listed, 3);
}

/// Admission reads quotas from the watch cache and remembers for a while
/// that a namespace had none: a quota created after that is still
/// enforced, and racing creates still cannot overrun it.
#[tokio::test]
async fn a_quota_created_after_creates_in_its_namespace_is_enforced() {
    let harness = Harness::start(&["resourcequota-controller"]).await;
    let client = harness.admin();
    namespace(&client, "late").await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "late");
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    // Creates with no quota yet: the namespace is now known to have none.
    for name in ["before-1", "before-2"] {
        maps.create(&PostParams::default(), &cm(name))
            .await
            .unwrap();
    }
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "late");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "objects"},
        "spec": {"hard": {"configmaps": "4"}},
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    used_becomes(&quotas, "objects", "configmaps", "2").await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let maps = maps.clone();
        let cm = cm(&format!("after-{i}"));
        tasks.spawn(async move { maps.create(&PostParams::default(), &cm).await });
    }
    let mut created = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Ok(_) => created += 1,
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 403, "{}", s.message);
                assert!(
                    s.message.contains("exceeded quota: objects"),
                    "{}",
                    s.message
                );
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(created, 2, "two more fit under a quota of four");
    let listed = maps.list(&Default::default()).await.unwrap().items.len();
    assert_eq!(listed, 4);
}

#[tokio::test]
async fn limit_ranges_default_and_bound_containers() {
    let harness = Harness::start(&["resourcequota-controller"]).await;
    let client = harness.admin();
    namespace(&client, "limits").await;
    let ranges: Api<LimitRange> = Api::namespaced(client.clone(), "limits");
    let range: LimitRange = serde_json::from_value(json!({
        "metadata": {"name": "cpu"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}, "default": {"cpu": "500m"},
                             "defaultRequest": {"cpu": "250m"}, "maxLimitRequestRatio": {"cpu": "4"}}]},
    }))
    .unwrap();
    ranges.create(&PostParams::default(), &range).await.unwrap();
    // A quota on CPU: the LimitRange's defaults satisfy its "must specify".
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "limits");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "cpu"},
        "spec": {"hard": {"requests.cpu": "2", "limits.cpu": "2"}},
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    used_becomes(&quotas, "cpu", "limits.cpu", "0").await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "limits");
    let created = pods
        .create(&PostParams::default(), &pod("defaulted", json!({})))
        .await
        .unwrap();
    let resources = created.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(resources.limits.unwrap().get("cpu").unwrap().0, "500m");
    assert_eq!(resources.requests.unwrap().get("cpu").unwrap().0, "250m");
    assert_eq!(
        created
            .metadata
            .annotations
            .unwrap()
            .get("kubernetes.io/limit-ranger")
            .unwrap(),
        "LimitRanger plugin set: cpu request for container app; cpu limit for container app"
    );
    used_becomes(&quotas, "cpu", "limits.cpu", "500m").await;

    let (code, message) = refused(
        pods.create(
            &PostParams::default(),
            &pod(
                "greedy",
                json!({"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}),
            ),
        )
        .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"greedy\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );
    let (_, message) = refused(
        pods.create(
            &PostParams::default(),
            &pod(
                "spiky",
                json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}),
            ),
        )
        .await,
    );
    assert_eq!(
        message,
        "pods \"spiky\" is forbidden: cpu max limit to request ratio per Container is 4, but provided ratio is 10.000000"
    );
}

#[tokio::test]
async fn an_update_is_charged_for_what_it_adds() {
    let harness = Harness::start(&["resourcequota-controller"]).await;
    let client = harness.admin();
    namespace(&client, "ports").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "ports");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "np"},
        "spec": {"hard": {"services.nodeports": "1", "services.loadbalancers": "0"}},
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    used_becomes(&quotas, "np", "services.nodeports", "0").await;
    let services: Api<Service> = Api::namespaced(client.clone(), "ports");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]},
    }))
    .unwrap();
    let created = services.create(&PostParams::default(), &svc).await.unwrap();
    // Turning it into a NodePort Service would take two node ports.
    let mut node_port = created.clone();
    node_port.spec.as_mut().unwrap().type_ = Some("NodePort".into());
    let (code, message) = refused(
        services
            .replace("web", &PostParams::default(), &node_port)
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "services \"web\" is forbidden: exceeded quota: np, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1"
    );
    let unchanged = services.get("web").await.unwrap();
    assert_eq!(unchanged.spec.unwrap().type_.as_deref(), Some("ClusterIP"));
}
