//! `bulwark bench rbac`: what authorization adds to a request, end to end.
//! A user authorized by one RoleBinding (not `system:masters`, which skips
//! RBAC) GETs a ConfigMap from several clients; the same again after
//! 1,000 Roles and 1,000 RoleBindings for other users exist in the same
//! namespace (and as many in another). Rounds alternate (measure, add the
//! objects, measure, delete them), so load on the machine falls on both
//! alike; the figure is the overhead of the median.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};

use super::api::Child;
use super::{ms, percentile};

/// Sizes of the RBAC workload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RbacWorkload {
    /// Roles and RoleBindings added (each).
    pub(crate) objects: usize,
    /// GETs per round.
    pub(crate) requests: usize,
    /// Rounds of each kind (alternating).
    pub(crate) rounds: usize,
}

const NAMESPACE: &str = "bench";
const CLIENTS: usize = 4;

pub(crate) async fn run(workload: RbacWorkload) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("bulwark-bench-rbac-")
        .tempdir()?;
    let port = bulwark_testkit::free_loopback_port()?;
    let _server = Child(
        std::process::Command::new(std::env::current_exe()?)
            .args(["server", "--disable-agent", "--port", &port.to_string()])
            .args(["--disable-scheduler", "--disable-controller-manager"])
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting bulwark server")?,
    );
    let admin = client_for(&dir.path().join("admin.kubeconfig")).await?;
    let user = {
        let pki = bulwark_apiserver::Pki::load_or_create(dir.path(), &[])?;
        let (cert, key) = pki.issue_client("bench-user", &[])?;
        let path = dir.path().join("bench-user.kubeconfig");
        std::fs::write(
            &path,
            pki.kubeconfig(
                &format!("https://127.0.0.1:{port}"),
                "bench-user",
                &cert,
                &key,
            ),
        )?;
        client_for(&path).await?
    };

    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for ns in [NAMESPACE, "bench-other"] {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?,
            )
            .await?;
    }
    let maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NAMESPACE);
    maps.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "target"}}))?,
    )
    .await?;
    grant(&admin, NAMESPACE, "reader", "bench-user", &["get"], false).await?;
    let user_maps: Api<ConfigMap> = Api::namespaced(user.clone(), NAMESPACE);
    wait_allowed(&user_maps).await?;

    let mut without = Vec::new();
    let mut with = Vec::new();
    // The same GETs as system:masters (never evaluated by RBAC): what the
    // added objects cost everything else (the store, the caches).
    let admin_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NAMESPACE);
    let (mut control_without, mut control_with) = (Vec::new(), Vec::new());
    // Warm up connections and caches.
    measure(&user_maps, workload.requests / 4).await?;
    let last = format!("other-{}", workload.objects.saturating_sub(1));
    for round in 0..workload.rounds {
        without.extend(measure(&user_maps, workload.requests).await?);
        control_without.extend(measure(&admin_maps, workload.requests).await?);
        eprintln!(
            "round {}: creating {} Roles and {} RoleBindings in each of two namespaces …",
            round + 1,
            workload.objects,
            workload.objects
        );
        for ns in [NAMESPACE, "bench-other"] {
            for i in 0..workload.objects {
                grant(
                    &admin,
                    ns,
                    &format!("r-{i}"),
                    &format!("other-{i}"),
                    &["get", "list"],
                    true,
                )
                .await?;
            }
        }
        wait_for_access(&admin, &last, true).await?;
        with.extend(measure(&user_maps, workload.requests).await?);
        control_with.extend(measure(&admin_maps, workload.requests).await?);
        for ns in [NAMESPACE, "bench-other"] {
            let params = kube::api::DeleteParams::default();
            let list = kube::api::ListParams::default().labels("bench=extra");
            Api::<RoleBinding>::namespaced(admin.clone(), ns)
                .delete_collection(&params, &list)
                .await?;
            Api::<Role>::namespaced(admin.clone(), ns)
                .delete_collection(&params, &list)
                .await?;
        }
        wait_for_access(&admin, &last, false).await?;
    }
    let p50_without = percentile(&mut without, 50.0);
    let p50_with = percentile(&mut with, 50.0);
    let overhead =
        (p50_with.as_secs_f64() - p50_without.as_secs_f64()) / p50_without.as_secs_f64() * 100.0;
    println!(
        "| measure | without | with {} Roles + {} RoleBindings per namespace |",
        workload.objects, workload.objects
    );
    println!("| --- | --- | --- |");
    println!(
        "| GET as an RBAC-authorized user, p50 | {} | {} |",
        ms(p50_without),
        ms(p50_with)
    );
    println!(
        "| GET as an RBAC-authorized user, p99 | {} | {} |",
        ms(percentile(&mut without, 99.0)),
        ms(percentile(&mut with, 99.0))
    );
    let c_without = percentile(&mut control_without, 50.0);
    let c_with = percentile(&mut control_with, 50.0);
    println!(
        "| GET as system:masters (no RBAC evaluation), p50 | {} | {} |",
        ms(c_without),
        ms(c_with)
    );
    let rbac_share = ((p50_with.as_secs_f64() - p50_without.as_secs_f64())
        - (c_with.as_secs_f64() - c_without.as_secs_f64()))
        / p50_without.as_secs_f64()
        * 100.0;
    println!("| overhead of the median | | {overhead:+.1}% |");
    println!(
        "| of which RBAC (the RBAC user's change minus system:masters') | | {rbac_share:+.1}% (goal ≤ 5%) |"
    );
    Ok(())
}

async fn client_for(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(file) = kube::config::Kubeconfig::read_from(kubeconfig) {
            let config = kube::Config::from_custom_kubeconfig(file, &Default::default()).await?;
            let client = kube::Client::try_from(config)?;
            if client.apiserver_version().await.is_ok() {
                return Ok(client);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "the server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Role allowing `verbs` on ConfigMaps, bound to `user`.
async fn grant(
    admin: &kube::Client,
    namespace: &str,
    name: &str,
    user: &str,
    verbs: &[&str],
    extra: bool,
) -> anyhow::Result<()> {
    let labels = if extra {
        serde_json::json!({"bench": "extra"})
    } else {
        serde_json::json!({})
    };
    let roles: Api<Role> = Api::namespaced(admin.clone(), namespace);
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": labels},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}],
            }))?,
        )
        .await?;
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), namespace);
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
            }))?,
        )
        .await?;
    Ok(())
}

/// Waits until a SubjectAccessReview for `user` getting ConfigMaps in the
/// other namespace answers `allowed`.
async fn wait_for_access(admin: &kube::Client, user: &str, allowed: bool) -> anyhow::Result<()> {
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    let reviews: Api<SubjectAccessReview> = Api::all(admin.clone());
    let review: SubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": {"user": user, "resourceAttributes": {
            "namespace": "bench-other", "verb": "get", "resource": "configmaps"}},
    }))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer = reviews.create(&PostParams::default(), &review).await?;
        if answer.status.is_some_and(|s| s.allowed == allowed) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "RBAC changes never took effect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_allowed(maps: &Api<ConfigMap>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while maps.get("target").await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the user was never allowed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// `requests` GETs from [`CLIENTS`] concurrent callers; their latencies.
async fn measure(maps: &Api<ConfigMap>, requests: usize) -> anyhow::Result<Vec<Duration>> {
    let per_client = requests.div_ceil(CLIENTS);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let maps = maps.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let t = Instant::now();
                    maps.get("target").await?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(requests);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}
