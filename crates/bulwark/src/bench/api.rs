//! `bulwark bench api`: the API server over TLS, driven by kube-rs clients
//! as controllers drive it — creates from 64 concurrent clients, LIST of
//! every pod (from the store and from the watch cache), watch delivery to
//! many watchers, and memory with everything stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};

use super::{ms, percentile};

/// Sizes of the API workload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiWorkload {
    /// Pods created (by 64 clients) and then listed.
    pub(crate) pods: usize,
    /// Concurrent watchers.
    pub(crate) watchers: usize,
    /// Pods created while the watchers watch.
    pub(crate) watch_events: usize,
}

fn pod(name: &str, sent_nanos: u128) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "bench"},
                     "annotations": {"bench/sent": sent_nanos.to_string()}},
        "spec": {"containers": [{"name": "c", "image": "registry.local/app:1.0",
                                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
    }))
    .expect("a valid pod")
}

pub(super) fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:`, `VmHWM:`), 0 if unknown.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The RSS once the server is idle and its allocator has returned what it
/// gives back: polled until it has not fallen by a MiB for two seconds (at
/// most 20 s). Returns the figure and how long it took to settle.
pub(super) async fn settled_rss_kib(pid: u32) -> (u64, Duration) {
    let started = Instant::now();
    let mut lowest = rss_kib(pid);
    let mut lowest_at = Instant::now();
    while lowest_at.elapsed() < Duration::from_secs(2)
        && started.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = rss_kib(pid);
        if now + 1024 <= lowest {
            lowest = now;
            lowest_at = Instant::now();
        }
    }
    (lowest.min(rss_kib(pid)), lowest_at - started)
}

/// A `bulwark server` child process (so its memory is its own), killed on
/// drop.
pub(super) struct Child(pub(super) std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the API workload against a `bulwark server` started from this
/// binary on a temporary data dir, and prints the figures with the goals.
pub(crate) async fn run(workload: ApiWorkload) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("bulwark-bench-api-")
        .tempdir()?;
    let port = bulwark_testkit::free_loopback_port()?;
    let server = Child(
        std::process::Command::new(std::env::current_exe()?)
            .args([
                "server",
                "--disable-agent",
                "--port",
                &port.to_string(),
                "--data-dir",
            ])
            .arg(dir.path())
            // The API server alone: no scheduler writing conditions on the
            // benchmark's unschedulable pods, no controllers.
            .args(["--disable-scheduler", "--disable-controller-manager"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting bulwark server")?,
    );
    let pid = server.0.id();
    let kubeconfig_path = dir.path().join("admin.kubeconfig");
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
    // No ServiceAccount controller runs: create what it would, or
    // ServiceAccount admission refuses every pod.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::default_namespaced(client.clone());
    match accounts
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}}))?,
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(err) => return Err(err.into()),
    }
    let rss_before = rss_kib(pid);
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let epoch = Instant::now();

    eprintln!("creating {} pods from 64 clients …", workload.pods);
    let started = Instant::now();
    let per_client = workload.pods.div_ceil(64);
    let tasks: Vec<_> = (0..64)
        .map(|c| {
            let pods = pods.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let t = Instant::now();
                    pods.create(&PostParams::default(), &pod(&format!("p-{c}-{i}"), 0))
                        .await?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut create_latencies = Vec::new();
    for task in tasks {
        create_latencies.extend(task.await??);
    }
    let created = create_latencies.len();
    let creates_per_s = created as f64 / started.elapsed().as_secs_f64();
    let rss_created = rss_kib(pid);

    let mut list_store = Vec::new();
    let mut list_cache = Vec::new();
    let mut list_raw = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let request = http::Request::builder()
            .uri("/api/v1/namespaces/default/pods?resourceVersion=0")
            .body(Vec::new())?;
        let text = client.request_text(request).await?;
        list_raw.push(t.elapsed());
        anyhow::ensure!(text.len() > created * 100, "short raw list");
        let t = Instant::now();
        let listed = pods.list(&ListParams::default()).await?;
        list_store.push(t.elapsed());
        anyhow::ensure!(
            listed.items.len() == created,
            "listed {} of {created}",
            listed.items.len()
        );
        let t = Instant::now();
        let cached = pods.list(&ListParams::default().match_any()).await?;
        list_cache.push(t.elapsed());
        anyhow::ensure!(
            cached.items.len() == created,
            "cache listed {}",
            cached.items.len()
        );
    }

    let rss_listed = rss_kib(pid);

    eprintln!("starting {} watchers …", workload.watchers);
    let rv = pods
        .list(&ListParams::default().match_any().limit(1))
        .await?
        .metadata
        .resource_version
        .context("list RV")?;
    let events = workload.watch_events;
    let mut watchers = Vec::new();
    for _ in 0..workload.watchers {
        let stream = pods
            .watch(&WatchParams::default().timeout(290), &rv)
            .await?;
        watchers.push(tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut latencies = Vec::with_capacity(events);
            while latencies.len() < events {
                match stream.next().await {
                    Some(Ok(WatchEvent::Added(pod))) => {
                        let sent: u128 = pod
                            .metadata
                            .annotations
                            .and_then(|a| a.get("bench/sent").and_then(|s| s.parse().ok()))
                            .unwrap_or(0);
                        let now = epoch.elapsed().as_nanos();
                        latencies.push(Duration::from_nanos(now.saturating_sub(sent) as u64));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return Err(anyhow::anyhow!("watch failed: {err}")),
                    None => return Err(anyhow::anyhow!("watch ended early")),
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let pods_ref = Arc::new(pods.clone());
    for i in 0..events {
        let sent = epoch.elapsed().as_nanos();
        pods_ref
            .create(&PostParams::default(), &pod(&format!("w-{i}"), sent))
            .await?;
    }
    let mut delivery = Vec::new();
    for watcher in watchers {
        delivery.extend(watcher.await??);
    }
    let rss = rss_kib(pid);
    let (rss_settled, settle_time) = settled_rss_kib(pid).await;
    let peak = status_kib(pid, "VmHWM:");
    let stored_json: usize = pods
        .list(&ListParams::default().match_any())
        .await?
        .items
        .iter()
        .map(|p| serde_json::to_vec(p).map(|v| v.len()).unwrap_or(0))
        .sum();
    drop(server);

    println!("| measure | figure | goal |");
    println!("| --- | --- | --- |");
    println!("| creates/s, 64 clients ({created} pods) | {creates_per_s:.0} | ≥ 3,000 |");
    println!(
        "| create latency p50 / p99 | {} / {} | p99 ≤ 50 ms |",
        ms(percentile(&mut create_latencies, 50.0)),
        ms(percentile(&mut create_latencies, 99.0))
    );
    println!(
        "| LIST {created} pods, resourceVersion=0, bytes only (server + TLS + transfer), median | {} | ≤ 100 ms |",
        ms(percentile(&mut list_raw, 50.0))
    );
    println!(
        "| LIST {created} pods, consistent (store), decoded by kube-rs, median | {} | ≤ 100 ms |",
        ms(percentile(&mut list_store, 50.0))
    );
    println!(
        "| LIST {created} pods, resourceVersion=0 (watch cache), decoded by kube-rs, median | {} | ≤ 100 ms |",
        ms(percentile(&mut list_cache, 50.0))
    );
    println!(
        "| watch delivery p50 / p99, {} watchers × {events} events | {} / {} | p99 ≤ 100 ms |",
        workload.watchers,
        ms(percentile(&mut delivery, 50.0)),
        ms(percentile(&mut delivery, 99.0))
    );
    println!(
        "| server RSS (growth) / stored JSON | {} MiB ({} MiB) / {} MiB | RSS ≤ 2× stored |",
        rss / 1024,
        rss.saturating_sub(rss_before) / 1024,
        stored_json / (1024 * 1024)
    );
    println!(
        "| server RSS settled (idle, {:.1} s after the watchers) / peak | {} MiB / {} MiB | RSS ≤ 2× stored |",
        settle_time.as_secs_f64(),
        rss_settled / 1024,
        peak / 1024,
    );
    println!(
        "| server RSS growth after the creates / after the LISTs / with the watchers | {} MiB / {} MiB / {} MiB | (where it grows) |",
        rss_created.saturating_sub(rss_before) / 1024,
        rss_listed.saturating_sub(rss_before) / 1024,
        rss.saturating_sub(rss_before) / 1024,
    );
    Ok(())
}
