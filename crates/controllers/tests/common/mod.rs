//! Shared by the controller tests: an in-process API server with the
//! controller manager running against it.

#![allow(dead_code)] // each test file uses what it needs

use std::sync::Arc;
use std::time::Duration;

use bulwark_testkit::TestCluster;

pub(crate) struct Harness {
    pub(crate) cluster: TestCluster,
    clock: Arc<dyn bulwark_client::Clock>,
    /// The test binder, when `with_nodes` started one.
    binder: Option<Binder>,
    only: Vec<String>,
    cluster_cidr: bulwark_controllers::Ipv4Net,
    manager: tokio::task::JoinHandle<()>,
}

/// The pod garbage collector's threshold in these tests: small, so a test
/// can cross it.
pub(crate) const TERMINATED_POD_GC_THRESHOLD: usize = 5;

impl Harness {
    /// A cluster running `only` these controllers (empty: all).
    pub(crate) async fn start(only: &[&str]) -> Self {
        Self::start_with_clock(only, Arc::new(bulwark_client::SystemClock)).await
    }

    /// The same, with the controllers reading time from `clock`.
    pub(crate) async fn start_with_clock(
        only: &[&str],
        clock: Arc<dyn bulwark_client::Clock>,
    ) -> Self {
        Self::start_with(only, clock, bulwark_controllers::default_cluster_cidr()).await
    }

    /// The same, with node IPAM carving `cluster_cidr`.
    pub(crate) async fn start_with_cluster_cidr(
        only: &[&str],
        cluster_cidr: bulwark_controllers::Ipv4Net,
    ) -> Self {
        Self::start_with(only, Arc::new(bulwark_client::SystemClock), cluster_cidr).await
    }

    async fn start_with(
        only: &[&str],
        clock: Arc<dyn bulwark_client::Clock>,
        cluster_cidr: bulwark_controllers::Ipv4Net,
    ) -> Self {
        if let Ok(filter) = std::env::var("BULWARK_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let cluster = TestCluster::start().await.expect("the API server starts");
        let only: Vec<String> = only.iter().map(|s| (*s).to_owned()).collect();
        let manager = spawn_manager(&cluster, &only, Arc::clone(&clock), cluster_cidr);
        Harness {
            cluster,
            clock,
            binder: None,
            only,
            cluster_cidr,
            manager,
        }
    }

    /// Stops the controller manager and starts a fresh one (empty caches,
    /// no memory), as a process restart would.
    pub(crate) fn restart_manager(&mut self) {
        self.manager.abort();
        self.manager = spawn_manager(
            &self.cluster,
            &self.only,
            Arc::clone(&self.clock),
            self.cluster_cidr,
        );
    }

    pub(crate) fn admin(&self) -> kube::Client {
        self.cluster.admin()
    }

    /// An admin client that reports 429s instead of retrying them (kube's
    /// default retries them with backoff).
    pub(crate) async fn admin_without_retries(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.cluster.kubeconfig())
            .expect("the admin kubeconfig");
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("a usable kubeconfig");
        config.default_retry = false;
        kube::Client::try_from(config).expect("a client")
    }
}

fn spawn_manager(
    cluster: &TestCluster,
    only: &[String],
    clock: Arc<dyn bulwark_client::Clock>,
    cluster_cidr: bulwark_controllers::Ipv4Net,
) -> tokio::task::JoinHandle<()> {
    let options = bulwark_controllers::Options {
        access: cluster.access().clone(),
        election: None,
        clock,
        only: with_service_accounts(only),
        node_monitor_grace_period: std::time::Duration::from_secs(3),
        terminated_pod_gc_threshold: TERMINATED_POD_GC_THRESHOLD,
        root_ca_pem: Some(cluster.ca_cert_pem()),
        csr_signer: None,
        cluster_cidr: Some(cluster_cidr),
        node_cidr_mask_size: bulwark_controllers::NODE_CIDR_MASK_SIZE,
    };
    tokio::spawn(async move {
        if let Err(err) = bulwark_controllers::run(options).await {
            panic!("controller manager stopped: {err}");
        }
    })
}

/// The controllers to run: those asked for plus the ServiceAccount
/// controller, without which ServiceAccount admission refuses every pod in a
/// new namespace (as it would upstream).
fn with_service_accounts(only: &[String]) -> Vec<String> {
    let mut names = only.to_vec();
    if !names.is_empty() && !names.iter().any(|n| n == "service-account-controller") {
        names.push("service-account-controller".to_owned());
    }
    names
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.manager.abort();
    }
}

/// How long a controller may take to act in these tests (generous: CI runs
/// many tests on two cores).
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// Plays the scheduler for tests (there is none yet): binds every pod
/// without a node to one of `nodes` — the node its required affinity names
/// with `matchFields metadata.name` (as DaemonSet pods ask), else round
/// robin. Stops when dropped.
pub(crate) fn bind_unscheduled(client: kube::Client, nodes: Vec<String>) -> Binder {
    use futures::StreamExt as _;
    use k8s_openapi::api::core::v1::Pod;
    use kube::ResourceExt as _;
    use kube::runtime::{WatchStreamExt as _, watcher};
    let task = tokio::spawn(async move {
        let pods: kube::Api<Pod> = kube::Api::all(client.clone());
        let stream = watcher(pods, watcher::Config::default())
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(stream);
        let mut next = 0usize;
        while let Some(pod) = stream.next().await {
            let Ok(pod) = pod else { continue };
            let spec = pod.spec.clone().unwrap_or_default();
            // Pods for another scheduler stay pending (a test's way to
            // stall a rollout).
            let ours = spec
                .scheduler_name
                .as_deref()
                .is_none_or(|n| n == "default-scheduler");
            if spec.node_name.is_some() || pod.metadata.deletion_timestamp.is_some() || !ours {
                continue;
            }
            let node = affinity_node(&spec).unwrap_or_else(|| {
                next += 1;
                nodes[next % nodes.len()].clone()
            });
            let binding = serde_json::json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pod.name_any()},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            let api: kube::Api<Pod> =
                kube::Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
            let _ = api
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &pod.name_any(),
                    &kube::api::PostParams::default(),
                    &binding,
                )
                .await;
        }
    });
    Binder(task)
}

fn affinity_node(spec: &k8s_openapi::api::core::v1::PodSpec) -> Option<String> {
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// The binder's task; aborted when dropped.
pub(crate) struct Binder(tokio::task::JoinHandle<()>);

impl Drop for Binder {
    fn drop(&mut self) {
        self.0.abort();
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
    let mut harness = harness;
    harness.binder = Some(bind_unscheduled(harness.admin(), nodes.names().to_vec()));
    (harness, nodes)
}

/// A clock the test sets.
#[derive(Debug)]
pub(crate) struct TestClock(std::sync::Mutex<jiff::Timestamp>);

impl TestClock {
    pub(crate) fn new(now: jiff::Timestamp) -> Arc<Self> {
        Arc::new(TestClock(std::sync::Mutex::new(now)))
    }

    pub(crate) fn set(&self, now: jiff::Timestamp) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
    }
}

impl bulwark_client::Clock for TestClock {
    fn now(&self) -> jiff::Timestamp {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
