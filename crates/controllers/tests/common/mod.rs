//! Shared by the controller tests: an in-process API server with the
//! controller manager running against it.

#![allow(dead_code)] // each test file uses what it needs

use std::sync::Arc;
use std::time::Duration;

use bulwark_testkit::TestCluster;

pub(crate) struct Harness {
    pub(crate) cluster: TestCluster,
    only: Vec<String>,
    manager: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// A cluster running `only` these controllers (empty: all).
    pub(crate) async fn start(only: &[&str]) -> Self {
        if let Ok(filter) = std::env::var("BULWARK_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let cluster = TestCluster::start().await.expect("the API server starts");
        let only: Vec<String> = only.iter().map(|s| (*s).to_owned()).collect();
        let manager = spawn_manager(&cluster, &only);
        Harness {
            cluster,
            only,
            manager,
        }
    }

    /// Stops the controller manager and starts a fresh one (empty caches,
    /// no memory), as a process restart would.
    pub(crate) fn restart_manager(&mut self) {
        self.manager.abort();
        self.manager = spawn_manager(&self.cluster, &self.only);
    }

    pub(crate) fn admin(&self) -> kube::Client {
        self.cluster.admin()
    }

    /// An admin client that reports 429s instead of retrying them (kube's
    /// default retries them with backoff).
    pub(crate) async fn admin_without_retries(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.cluster.kubeconfig()).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        config.default_retry = false;
        kube::Client::try_from(config).unwrap()
    }
}

fn spawn_manager(cluster: &TestCluster, only: &[String]) -> tokio::task::JoinHandle<()> {
    let options = bulwark_controllers::Options {
        access: cluster.access().clone(),
        election: None,
        clock: Arc::new(bulwark_client::SystemClock),
        only: only.to_vec(),
        node_monitor_grace_period: std::time::Duration::from_secs(3),
    };
    tokio::spawn(async move {
        if let Err(err) = bulwark_controllers::run(options).await {
            panic!("controller manager stopped: {err}");
        }
    })
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.manager.abort();
    }
}

/// How long a controller may take to act in these tests (generous: CI runs
/// many tests on two cores).
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// Plays the scheduler for tests (there is none on this branch): binds
/// every pod without a node to one of `nodes`, round-robin, through
/// `pods/binding`. Runs until dropped.
pub(crate) async fn bind_unscheduled(client: kube::Client, nodes: Vec<String>) {
    use futures::StreamExt as _;
    use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
    use kube::ResourceExt as _;
    use kube::runtime::{WatchStreamExt as _, watcher};

    let mut next = 0usize;
    let stream = watcher(
        kube::Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    futures::pin_mut!(stream);
    while let Some(pod) = stream.next().await {
        let Ok(pod) = pod else { continue };
        // Pods for another scheduler stay pending (a test's way to stall a rollout).
        let unbound = pod.spec.as_ref().is_some_and(|s| {
            s.node_name.is_none()
                && s.scheduler_name
                    .as_deref()
                    .is_none_or(|n| n == "default-scheduler")
        });
        if !unbound || pod.metadata.deletion_timestamp.is_some() || nodes.is_empty() {
            continue;
        }
        let node = nodes[next % nodes.len()].clone();
        next += 1;
        let binding = Binding {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(pod.name_any()),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node),
                ..Default::default()
            },
        };
        let api: kube::Api<Pod> =
            kube::Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        // A conflict means it was bound already; a 404 that it is gone.
        let _ = api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &pod.name_any(),
                &Default::default(),
                &binding,
            )
            .await;
    }
}

/// A cluster with `only` these controllers, three fake nodes and the test
/// binder.
pub(crate) async fn with_nodes(only: &[&str]) -> (Harness, bulwark_testkit::FakeNodes) {
    let harness = Harness::start(only).await;
    let nodes = bulwark_testkit::FakeNodes::start(
        harness.admin(),
        bulwark_testkit::FakeNodeConfig::default(),
    )
    .await
    .expect("fake nodes register");
    tokio::spawn(bind_unscheduled(harness.admin(), nodes.names().to_vec()));
    (harness, nodes)
}
