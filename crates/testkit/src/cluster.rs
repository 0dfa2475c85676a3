//! An API server in this process, on a free loopback port, with a temporary
//! data dir — the component-test layer's cluster (DESIGN.md, tests).

use std::path::PathBuf;
use std::sync::Arc;

use bulwark_client::{ClusterAccess, Identity};

/// A running in-process API server; stopped when dropped.
pub struct TestCluster {
    running: Option<bulwark_apiserver::Running>,
    access: ClusterAccess,
    // Last: removed after the server stops.
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts an API server on the embedded store (audit log off: tests
    /// make many requests and nobody reads the log).
    pub async fn start() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let dir = tempfile::Builder::new()
            .prefix("bulwark-cluster-")
            .tempdir()?;
        let running = bulwark_apiserver::start(bulwark_apiserver::Config {
            data_dir: dir.path().join("data"),
            port: 0,
            audit_log: bulwark_apiserver::AuditLog::Off,
            ..bulwark_apiserver::Config::default()
        })
        .await
        .map_err(|err| format!("{err:#}"))?;
        let pki = running.pki.clone();
        let access = ClusterAccess::new(
            &running.url,
            &running.pki.ca_cert_pem,
            Arc::new(move |id: &Identity| {
                let groups: Vec<&str> = id.groups.iter().map(String::as_str).collect();
                pki.issue_client(&id.user, &groups)
                    .map_err(|err| Box::new(err) as Box<dyn std::error::Error + Send + Sync>)
            }),
        )?;
        Ok(TestCluster {
            running: Some(running),
            access,
            _dir: dir,
        })
    }

    /// Access for components (clients for any identity).
    pub fn access(&self) -> &ClusterAccess {
        &self.access
    }

    /// A client in `system:masters`.
    pub fn admin(&self) -> kube::Client {
        self.access
            .client(&Identity::user("test-admin", &["system:masters"]))
            .expect("the test CA signs certificates")
    }

    /// The admin kubeconfig (for kubectl).
    pub fn kubeconfig(&self) -> PathBuf {
        self.running
            .as_ref()
            .map(|r| r.kubeconfig.clone())
            .unwrap_or_default()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }
}
