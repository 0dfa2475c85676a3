//! `bulwark bench agent`: pod startup latency on one real node — the time
//! from a pod's create to the agent reporting it Running, seen by a watch,
//! with the image already local (upstream's pod startup SLO measures the
//! same; its goal is p99 ≤ 5 s, Bulwark's ≤ 1 s) — and the memory of
//! `bulwark server` with its agent, idle and with the pods; with
//! `--standalone`, of a `bulwark agent` process on its own. Needs root.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};

use super::api::{Child, rss_kib};

const IMAGE: &str = "bench.local/busybox:1";

/// The busybox test image, imported into the store of the data dir
/// `data` (under the scratch `dir`).
fn import_busybox(dir: &std::path::Path, data: &str) -> anyhow::Result<()> {
    let tarball = bulwark_testkit::busybox_rootfs_tar(dir)?;
    let store = bulwark_runtime::ImageStore::open(dir.join(data).join("images"))?;
    store.import_rootfs(&tarball, IMAGE)?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Runs the benchmark with `pods` pods and prints its table.
pub(crate) async fn run(pods: usize, standalone: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        bulwark_testkit::is_root(),
        "bulwark bench agent runs real containers: it needs root"
    );
    let dir = tempfile::Builder::new()
        .prefix("bulwark-bench-agent-")
        .tempdir()?;
    // Where the node's images and containers live.
    let node_data = if standalone { "agent-data" } else { "data" };
    import_busybox(dir.path(), node_data)?;
    let port = bulwark_testkit::free_loopback_port()?;
    let agent_port = bulwark_testkit::free_loopback_port()?;
    let node = format!("bench-{}", std::process::id());
    let mut server = std::process::Command::new(std::env::current_exe()?);
    server
        .args(["server", "--port", &port.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--node-name",
            &node,
            "--agent-port",
            &agent_port.to_string(),
        ])
        .args(["--pod-network", "none"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null());
    if standalone {
        server.arg("--disable-agent");
    }
    let server = Child(server.spawn().context("starting bulwark server")?);
    let mut agent = None;
    if standalone {
        let token = dir.path().join("data/node-token");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !token.exists() {
            anyhow::ensure!(Instant::now() < deadline, "the server wrote no node token");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        agent = Some(Child(
            std::process::Command::new(std::env::current_exe()?)
                .args(["agent", "--server", &format!("https://127.0.0.1:{port}")])
                .arg("--token-file")
                .arg(&token)
                .arg("--data-dir")
                .arg(dir.path().join(node_data))
                .args(["--node-name", &node, "--node-ip", "127.0.0.1"])
                .args(["--agent-port", &agent_port.to_string()])
                .args(["--pod-network", "none"])
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .spawn()
                .context("starting bulwark agent")?,
        ));
    }
    // The process measured: the agent's own, or the server with its agent.
    let pid = agent.as_ref().map_or(server.0.id(), |a| a.0.id());
    let kubeconfig_path = dir.path().join("data/admin.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        if let Ok(kubeconfig) = kube::config::Kubeconfig::read_from(&kubeconfig_path) {
            let config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
            let client = kube::Client::try_from(config)?;
            if client.apiserver_version().await.is_ok() {
                break client;
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "the server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The node and the default ServiceAccount first.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::default_namespaced(client.clone());
    while nodes.get_opt(&node).await?.is_none() || accounts.get_opt("default").await?.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "the node never registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("idling 10 s …");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_rss = rss_kib(pid);

    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let running: std::sync::Arc<std::sync::Mutex<HashMap<String, Instant>>> = Default::default();
    let seen = running.clone();
    let watch = tokio::spawn(
        watcher(
            api.clone(),
            watcher::Config::default().labels("bench=agent"),
        )
        .applied_objects()
        .for_each(move |pod| {
            if let Ok(pod) = pod
                && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && let Some(name) = pod.metadata.name
                && let Ok(mut seen) = seen.lock()
            {
                seen.entry(name).or_insert_with(Instant::now);
            }
            async {}
        }),
    );
    eprintln!("creating {pods} pods …");
    let mut created: HashMap<String, Instant> = HashMap::new();
    let started = Instant::now();
    for i in 0..pods {
        let name = format!("bench-{i}");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"bench": "agent"}},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": false,
                "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}],
            },
        }))?;
        created.insert(name, Instant::now());
        api.create(&PostParams::default(), &pod).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = running.lock().map(|r| r.len()).unwrap_or(0);
        if done >= pods {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {pods} pods became Running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_running = started.elapsed();
    watch.abort();
    let busy_rss = rss_kib(pid);
    let mut latencies: Vec<Duration> = {
        let running = running.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        created
            .iter()
            .filter_map(|(name, at)| running.get(name).map(|r| r.duration_since(*at)))
            .collect()
    };
    latencies.sort();

    eprintln!("deleting the pods …");
    api.delete_collection(
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
        &ListParams::default().labels("bench=agent"),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    while !api
        .list(&ListParams::default().labels("bench=agent"))
        .await?
        .items
        .is_empty()
    {
        anyhow::ensure!(Instant::now() < deadline, "the pods were not all torn down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The API forgets a pod deleted with grace 0 at once; the agent tears
    // its containers down after. Wait for that before stopping the server.
    let containers = dir.path().join(node_data).join("runtime/containers");
    while std::fs::read_dir(&containers)
        .map(|d| d.count())
        .unwrap_or(0)
        > 0
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the agent did not remove every container"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(agent);
    drop(server);

    let mib = |kib: u64| format!("{:.0} MiB", kib as f64 / 1024.0);
    println!("pod startup on one node ({pods} pods, image local, created one after another):");
    println!("  {:<44} {:>10}   goal", "metric", "value");
    for (metric, value, goal) in [
        (
            "create → Running, p50",
            ms(percentile(&latencies, 0.50)),
            "",
        ),
        (
            "create → Running, p99",
            ms(percentile(&latencies, 0.99)),
            "≤ 1 s (upstream SLO ≤ 5 s)",
        ),
        ("create → Running, max", ms(percentile(&latencies, 1.0)), ""),
        ("all pods Running after", ms(all_running), ""),
        (
            if standalone {
                "agent RSS, idle"
            } else {
                "server + agent RSS, idle"
            },
            mib(idle_rss),
            "agent ≤ 50 MiB idle",
        ),
        (
            if standalone {
                "agent RSS, pods running"
            } else {
                "server + agent RSS, pods running"
            },
            mib(busy_rss),
            "",
        ),
    ] {
        println!("  {metric:<44} {value:>10}   {goal}");
    }
    Ok(())
}
