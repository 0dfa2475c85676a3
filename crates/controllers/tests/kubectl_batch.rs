//! The batch controllers driven by the real kubectl (`create job`, `create
//! cronjob`, `create job --from=cronjob/…`), as a user would, against a
//! server with fake nodes. Needs kubectl on the PATH (or `BULWARK_KUBECTL`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bulwark_testkit::{FakeNodeConfig, FakeNodes, wait_for};
use common::{Harness, PATIENCE, bind_unscheduled};

struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(kubeconfig: &Path) -> Self {
        Kubectl {
            kubeconfig: kubeconfig.to_owned(),
        }
    }

    /// Runs kubectl; returns stdout, or stdout and stderr as the error.
    async fn run(&self, args: &[&str]) -> Result<String, String> {
        let kubectl = std::env::var("BULWARK_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let cache = self
            .kubeconfig
            .parent()
            .map(|d| d.join("kube-cache"))
            .unwrap_or_default();
        let mut command = Command::new(kubectl);
        command
            .args(args)
            .arg("--cache-dir")
            .arg(cache)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("kubectl does not run: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        match self.run(args).await {
            Ok(out) => out,
            Err(err) => panic!("kubectl {args:?} failed: {err}"),
        }
    }

    /// Waits until `kubectl get … -o jsonpath=<path>` prints `want`.
    async fn wait_jsonpath(&self, object: &str, path: &str, want: &str) {
        let jsonpath = format!("jsonpath={path}");
        wait_for(&format!("{object} {path} = {want}"), PATIENCE, || async {
            let got = self.run(&["get", object, "-o", &jsonpath]).await?;
            (got == want).then_some(()).ok_or(got)
        })
        .await
        .expect("kubectl shows what is expected");
    }
}

#[tokio::test]
async fn kubectl_create_job_and_cronjob() {
    let harness = Harness::start(&["job-controller", "cronjob-controller"]).await;
    let client = harness.admin();
    let nodes = FakeNodes::start(
        client.clone(),
        FakeNodeConfig {
            count: 2,
            job_pod_run_time: Duration::from_millis(200),
            ..FakeNodeConfig::default()
        },
    )
    .await
    .unwrap();
    let _binder = bind_unscheduled(client, nodes.names().to_vec());
    let kubectl = Kubectl::new(&harness.cluster.kubeconfig());

    kubectl
        .ok(&[
            "create",
            "job",
            "pi",
            "--image=busybox",
            "--",
            "echo",
            "3.14",
        ])
        .await;
    kubectl
        .ok(&[
            "wait",
            "--for=condition=complete",
            "job/pi",
            "--timeout=30s",
        ])
        .await;
    kubectl
        .wait_jsonpath("job/pi", "{.status.succeeded}/{.status.failed}", "1/0")
        .await;
    let table = kubectl.ok(&["get", "job", "pi"]).await;
    assert!(
        table.contains("Complete") && table.contains("1/1"),
        "{table}"
    );
    let events = kubectl
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=pi",
        ])
        .await;
    assert!(events.contains("Created pod: pi-"), "{events}");
    assert!(events.contains("Job completed"), "{events}");

    kubectl
        .ok(&[
            "create",
            "cronjob",
            "tick",
            "--image=busybox",
            "--schedule=0 0 1 1 *",
            "--",
            "date",
        ])
        .await;
    let table = kubectl.ok(&["get", "cronjob", "tick"]).await;
    assert!(table.contains("0 0 1 1 *"), "{table}");
    // A manual run from the CronJob's template, as users trigger one.
    kubectl
        .ok(&["create", "job", "tick-manual", "--from=cronjob/tick"])
        .await;
    kubectl
        .ok(&[
            "wait",
            "--for=condition=complete",
            "job/tick-manual",
            "--timeout=30s",
        ])
        .await;
    kubectl
        .wait_jsonpath(
            "job/tick-manual",
            "{.metadata.ownerReferences[0].name}",
            "tick",
        )
        .await;
}
