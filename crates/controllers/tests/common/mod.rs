//! Shared by the controller tests: an in-process API server with the
//! controller manager running against it.

#![allow(dead_code)] // each test file uses what it needs

use std::sync::Arc;
use std::time::Duration;

use bulwark_testkit::TestCluster;

pub(crate) struct Harness {
    pub(crate) cluster: TestCluster,
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
        let options = bulwark_controllers::Options {
            access: cluster.access().clone(),
            election: None,
            clock: Arc::new(bulwark_client::SystemClock),
            only: only.iter().map(|s| (*s).to_owned()).collect(),
        };
        let manager = tokio::spawn(async move {
            if let Err(err) = bulwark_controllers::run(options).await {
                panic!("controller manager stopped: {err}");
            }
        });
        Harness { cluster, manager }
    }

    pub(crate) fn admin(&self) -> kube::Client {
        self.cluster.admin()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.manager.abort();
    }
}

/// How long a controller may take to act in these tests (generous: CI runs
/// many tests on two cores).
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);
