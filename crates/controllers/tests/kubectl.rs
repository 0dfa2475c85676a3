//! The real kubectl's Deployment workflow against the in-process server
//! with the workload controllers and fake nodes: create, scale, set image,
//! rollout status/history/undo/restart/pause/resume. Skipped (passes
//! vacuously, with a note) when `/usr/bin/kubectl` is absent;
//! `BULWARK_KUBECTL` names another binary.

// Helpers outside #[test] fns unwrap too: a failed command fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{PATIENCE, with_nodes};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

fn kubectl_binary() -> Option<PathBuf> {
    let path = std::env::var("BULWARK_KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".into());
    Path::new(&path).exists().then(|| PathBuf::from(path))
}

/// Runs kubectl (killed after two minutes); returns (success, stdout, stderr).
async fn kubectl(binary: &Path, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn ok(binary: &Path, kubeconfig: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = kubectl(binary, kubeconfig, args).await;
    assert!(success, "kubectl {args:?} failed: {stdout}{stderr}");
    stdout
}

/// Images of the pods of `web` that are not being deleted.
async fn images(client: &kube::Client) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut images: Vec<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.spec.unwrap().containers[0].image.clone().unwrap())
        .collect();
    images.sort();
    images
}

async fn wait_images(client: &kube::Client, expected: &[&str]) {
    bulwark_testkit::wait_for(&format!("pods {expected:?}"), PATIENCE, || async {
        let images = images(client).await;
        if images == expected {
            Ok(())
        } else {
            Err(format!("{images:?}"))
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_scale_set_image_rollout_undo() {
    let Some(bin) = kubectl_binary() else {
        eprintln!("skipped: no kubectl");
        return;
    };
    let (harness, _nodes) = with_nodes(&["replicaset-controller", "deployment-controller"]).await;
    let client = harness.admin();
    let config = harness.cluster.kubeconfig();
    let (bin, config) = (bin.as_path(), config.as_path());
    let status = ["rollout", "status", "deployment/web", "--timeout=60s"];

    let out = ok(
        bin,
        config,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.26",
            "--replicas=2",
        ],
    )
    .await;
    assert_eq!(out.trim(), "deployment.apps/web created");
    let out = ok(bin, config, &status).await;
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    wait_images(&client, &["nginx:1.26"; 2]).await;

    let out = ok(bin, config, &["scale", "deployment/web", "--replicas=4"]).await;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    ok(bin, config, &status).await;
    wait_images(&client, &["nginx:1.26"; 4]).await;

    let out = ok(
        bin,
        config,
        &["set", "image", "deployment/web", "nginx=nginx:1.27"],
    )
    .await;
    assert_eq!(out.trim(), "deployment.apps/web image updated");
    let out = ok(bin, config, &status).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_images(&client, &["nginx:1.27"; 4]).await;

    let history = ok(bin, config, &["rollout", "history", "deployment/web"]).await;
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    let out = ok(bin, config, &["rollout", "undo", "deployment/web"]).await;
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    ok(bin, config, &status).await;
    wait_images(&client, &["nginx:1.26"; 4]).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = deployments.get("web").await.unwrap();
    let revision = |d: &Deployment| {
        d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"].clone()
    };
    assert_eq!(revision(&d), "3");

    let out = ok(bin, config, &["rollout", "restart", "deployment/web"]).await;
    assert_eq!(out.trim(), "deployment.apps/web restarted");
    ok(bin, config, &status).await;
    let d = deployments.get("web").await.unwrap();
    assert_eq!(revision(&d), "4");
    let template_annotations = d
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert!(template_annotations.contains_key("kubectl.kubernetes.io/restartedAt"));

    let out = ok(bin, config, &["rollout", "pause", "deployment/web"]).await;
    assert_eq!(out.trim(), "deployment.apps/web paused");
    ok(
        bin,
        config,
        &["set", "image", "deployment/web", "nginx=nginx:1.28"],
    )
    .await;
    let (success, _, stderr) = kubectl(bin, config, &["rollout", "undo", "deployment/web"]).await;
    assert!(
        !success && stderr.contains("you cannot rollback a paused deployment"),
        "{stderr}"
    );
    let out = ok(bin, config, &["rollout", "resume", "deployment/web"]).await;
    assert_eq!(out.trim(), "deployment.apps/web resumed");
    ok(bin, config, &status).await;
    wait_images(&client, &["nginx:1.28"; 4]).await;

    // What `get` and `describe` show.
    let row = ok(bin, config, &["get", "deployment", "web", "--no-headers"]).await;
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[..4], ["web", "4/4", "4", "4"], "{row}");
    let described = ok(bin, config, &["describe", "deployment", "web"]).await;
    for expected in [
        "Replicas:               4 desired | 4 updated | 4 total | 4 available | 0 unavailable",
        "Available      True    MinimumReplicasAvailable",
        "Progressing    True    NewReplicaSetAvailable",
        "ScalingReplicaSet",
    ] {
        assert!(
            described.contains(expected),
            "{expected:?} not in {described}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_status_reports_an_exceeded_deadline() {
    let Some(bin) = kubectl_binary() else {
        eprintln!("skipped: no kubectl");
        return;
    };
    let (harness, _nodes) = with_nodes(&["replicaset-controller", "deployment-controller"]).await;
    let config = harness.cluster.kubeconfig();
    let manifest = harness.cluster.kubeconfig().with_file_name("stuck.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: stuck}\nspec:\n  replicas: 1\n  progressDeadlineSeconds: 1\n  selector: {matchLabels: {app: stuck}}\n  template:\n    metadata: {labels: {app: stuck}}\n    spec:\n      schedulerName: nobody\n      containers: [{name: c, image: nginx}]\n",
    )
    .unwrap();
    ok(&bin, &config, &["apply", "-f", manifest.to_str().unwrap()]).await;
    let (success, _, stderr) = kubectl(
        &bin,
        &config,
        &["rollout", "status", "deployment/stuck", "--timeout=60s"],
    )
    .await;
    assert!(!success, "{stderr}");
    assert!(
        stderr.contains("deployment \"stuck\" exceeded its progress deadline"),
        "{stderr}"
    );
}
