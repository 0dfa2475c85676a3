//! `bulwark bench control-plane`: the scheduler and controllers at scale on
//! kwok-style fake nodes, against a `bulwark server` child process (so its
//! memory and CPU are its own):
//!
//! 1. a Deployment of 3,000 replicas on 100 fake nodes, from create to all
//!    available, with the server's RSS and CPU at idle and under that load;
//! 2. scheduling throughput: 10,000 pods onto 5,000 fake nodes, pods bound
//!    per second (upstream's scheduler_perf SchedulingBasic case).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};

use super::api::{Child, rss_kib, settled_rss_kib};

/// Sizes of the control-plane workload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ControlPlaneWorkload {
    /// Fake nodes for the Deployment run.
    pub(crate) deployment_nodes: usize,
    /// The Deployment's replicas.
    pub(crate) replicas: usize,
    /// Fake nodes for the scheduling run.
    pub(crate) scheduling_nodes: usize,
    /// Pods for the scheduling run.
    pub(crate) scheduling_pods: usize,
}

/// A server and an admin client for it.
async fn start_server(dir: &std::path::Path) -> anyhow::Result<(Child, kube::Client)> {
    let port = bulwark_testkit::free_loopback_port()?;
    let server = Child(
        std::process::Command::new(std::env::current_exe()?)
            .args([
                "server",
                "--disable-agent",
                "--cluster-cidr",
                "10.0.0.0/8",
                "--port",
                &port.to_string(),
                "--data-dir",
            ])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting bulwark server")?,
    );
    let kubeconfig_path = dir.join("admin.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(kubeconfig) = kube::config::Kubeconfig::read_from(&kubeconfig_path) {
            let config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
            let client = kube::Client::try_from(config)?;
            if client.apiserver_version().await.is_ok() {
                return Ok((server, client));
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "the server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// Runs both parts and prints a table with the goals.
pub(crate) async fn run(workload: ControlPlaneWorkload) -> anyhow::Result<()> {
    let mut rows: Vec<(String, String, &str)> = Vec::new();

    // 1. Deployment on 100 nodes.
    let dir = tempfile::Builder::new()
        .prefix("bulwark-bench-cp-")
        .tempdir()?;
    let (server, client) = start_server(dir.path()).await?;
    let pid = server.0.id();
    eprintln!("registering {} fake nodes …", workload.deployment_nodes);
    let nodes = bulwark_testkit::FakeNodes::start(
        client.clone(),
        bulwark_testkit::FakeNodeConfig {
            count: workload.deployment_nodes,
            ..Default::default()
        },
    )
    .await?;
    eprintln!("idling 10 s …");
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = (cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64();
    let idle_rss = rss_kib(pid);
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": workload.replicas,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "registry.local/app:1.0",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
            },
        },
    }))?;
    eprintln!("creating a Deployment of {} replicas …", workload.replicas);
    let (cpu0, started) = (cpu_seconds(pid), Instant::now());
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let mut peak_rss = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        peak_rss = peak_rss.max(rss_kib(pid));
        let available = deployments
            .get_status("bench")
            .await?
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        if usize::try_from(available).unwrap_or(0) >= workload.replicas {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the Deployment never became available ({available})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rollout = started.elapsed();
    let load_cpu = (cpu_seconds(pid) - cpu0) / rollout.as_secs_f64();
    let loaded_rss = rss_kib(pid);
    let (settled_rss, _) = settled_rss_kib(pid).await;
    rows.push((
        format!(
            "Deployment of {} replicas on {} fake nodes: create → all available",
            workload.replicas, workload.deployment_nodes
        ),
        format!("{:.1} s", rollout.as_secs_f64()),
        "(report)",
    ));
    rows.push((
        format!("server RSS idle, {} nodes", workload.deployment_nodes),
        mib(idle_rss),
        "(report)",
    ));
    rows.push((
        format!(
            "server RSS with {} nodes and {} pods running: settled / when all available / peak during the rollout",
            workload.deployment_nodes, workload.replicas
        ),
        format!(
            "{} / {} / {}",
            mib(settled_rss),
            mib(loaded_rss),
            mib(peak_rss)
        ),
        "< 300 MiB",
    ));
    rows.push((
        "server CPU idle (cores)".into(),
        format!("{idle_cpu:.2}"),
        "(report)",
    ));
    rows.push((
        "server CPU during the rollout (cores)".into(),
        format!("{load_cpu:.2}"),
        "(report)",
    ));
    drop(nodes);
    drop(server);

    // 2. Scheduling throughput: with kwok-style kubelets marking every
    // bound pod Running, then as upstream's scheduler_perf runs it (nodes
    // with Leases, no kubelet: bound pods stay as they are).
    for kubelets in [true, false] {
        let dir = tempfile::Builder::new()
            .prefix("bulwark-bench-sched-")
            .tempdir()?;
        let (server, client) = start_server(dir.path()).await?;
        let pid = server.0.id();
        eprintln!("registering {} fake nodes …", workload.scheduling_nodes);
        let registering = Instant::now();
        let nodes = bulwark_testkit::FakeNodes::start(
            client.clone(),
            bulwark_testkit::FakeNodeConfig {
                count: workload.scheduling_nodes,
                run_pods: kubelets,
                ..Default::default()
            },
        )
        .await?;
        eprintln!("  {:.1} s", registering.elapsed().as_secs_f64());
        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        // Count bindings as the watch sees them.
        let total = workload.scheduling_pods;
        let watch_pods = pods.clone();
        let bound = tokio::spawn(async move {
            let mut seen = HashSet::new();
            let stream = watcher(watch_pods, watcher::Config::default().labels("app=sched"))
                .default_backoff()
                .applied_objects();
            futures::pin_mut!(stream);
            while let Some(pod) = stream.next().await {
                let Ok(pod) = pod else { continue };
                if pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some()
                {
                    if seen.insert(pod.metadata.name.unwrap_or_default())
                        && seen.len() % (total / 10).max(1) == 0
                    {
                        eprintln!("  {} bound", seen.len());
                    }
                    if seen.len() >= total {
                        return Instant::now();
                    }
                }
            }
            Instant::now()
        });
        eprintln!("creating {total} pods from 64 clients …");
        let started = Instant::now();
        let stamps = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                eprintln!("  {:.0} s", started.elapsed().as_secs_f64());
            }
        });
        let per_client = total.div_ceil(64);
        let tasks: Vec<_> = (0..64)
            .map(|c| {
                let pods = pods.clone();
                tokio::spawn(async move {
                    for i in 0..per_client {
                        if c * per_client + i >= total {
                            break;
                        }
                        let pod: Pod = serde_json::from_value(serde_json::json!({
                            "metadata": {"name": format!("s-{c}-{i}"), "labels": {"app": "sched"}},
                            "spec": {"containers": [{"name": "c", "image": "registry.local/app:1.0",
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
                        }))?;
                        pods.create(&PostParams::default(), &pod).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        let created = started.elapsed();
        eprintln!("  all created");
        let done = tokio::time::timeout(Duration::from_secs(600), bound)
            .await
            .context("not every pod was bound within 10 minutes")??;
        let scheduling = done.duration_since(started);
        stamps.abort();
        let rss = rss_kib(pid);
        let case = if kubelets {
            "with fake kubelets"
        } else {
            "no kubelets, as scheduler_perf"
        };
        rows.push((
            format!("pods created/s ({total} pods, 64 clients, while scheduling; {case})"),
            format!("{:.0}", total as f64 / created.as_secs_f64()),
            "(report)",
        ));
        rows.push((
            format!(
                "scheduling throughput: {total} pods onto {} fake nodes, first create → last bound ({case})",
                workload.scheduling_nodes
            ),
            format!(
                "{:.0} pods/s ({:.1} s)",
                total as f64 / scheduling.as_secs_f64(),
                scheduling.as_secs_f64()
            ),
            "≥ 1,000 pods/s",
        ));
        rows.push((
            format!(
                "server RSS with {} nodes and {total} pods ({case})",
                workload.scheduling_nodes
            ),
            mib(rss),
            "(report)",
        ));
        drop(nodes);
        drop(server);
    }

    println!("| measure | figure | goal |");
    println!("| --- | --- | --- |");
    for (measure, figure, goal) in rows {
        println!("| {measure} | {figure} | {goal} |");
    }
    Ok(())
}
