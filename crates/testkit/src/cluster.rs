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
        let cluster = TestCluster {
            running: Some(running),
            access,
            _dir: dir,
        };
        cluster.create_default_service_accounts().await?;
        Ok(cluster)
    }

    /// What the ServiceAccount controller would do for the namespaces every
    /// cluster starts with: component tests that run no controllers can then
    /// create pods there (ServiceAccount admission refuses pods whose
    /// ServiceAccount does not exist).
    async fn create_default_service_accounts(
        &self,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        use k8s_openapi::api::core::v1::ServiceAccount;
        let admin = self.admin();
        for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let accounts: kube::Api<ServiceAccount> =
                kube::Api::namespaced(admin.clone(), namespace);
            let account: ServiceAccount =
                serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}}))?;
            match accounts.create(&Default::default(), &account).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_cert_pem(&self) -> String {
        self.running
            .as_ref()
            .map(|r| r.pki.ca_cert_pem.clone())
            .unwrap_or_default()
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.running
            .as_ref()
            .map(|r| r.url.clone())
            .unwrap_or_default()
    }

    /// The running API server (for what only it can do, e.g. bootstrap
    /// tokens).
    pub fn server(&self) -> Option<&bulwark_apiserver::Running> {
        self.running.as_ref()
    }

    /// The data dir (certificates, the service-account signing key).
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
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
