//! `bulwark bench store`: the embedded store against a real etcd, one
//! workload, one run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bulwark_store::{
    Durability, EtcdConfig, EtcdStore, Range, SqliteConfig, SqliteStore, Store, StoreExt,
    WriteOutcome,
};
use bulwark_testkit::EtcdServer;

use super::{ms, percentile};

/// What `bulwark bench store` measures, per backend.
#[derive(Debug, Default, Clone)]
struct StoreFigures {
    sequential_puts_per_s: f64,
    sequential_put_p50: Duration,
    concurrent_puts_per_s: f64,
    concurrent_put_p99: Duration,
    cas_updates_per_s: f64,
    range_10k: Duration,
    watch_p50: Duration,
    watch_p99: Duration,
}

/// Sizes of the store workload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreWorkload {
    /// Puts for the one-client test.
    pub(crate) sequential: usize,
    /// Puts per writer for the 64-writer test.
    pub(crate) per_writer: usize,
    /// Events written for the watch-latency test.
    pub(crate) watch_events: usize,
}

/// Runs the store workload on the embedded store (both durabilities) and a
/// real etcd started on loopback (or the one at `etcd_endpoint`), and prints
/// the figures and the ratios.
pub(crate) async fn store(
    workload: StoreWorkload,
    etcd_endpoint: Option<String>,
) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("bulwark-bench-")
        .tempdir()?;
    let mut rows = Vec::new();

    for (name, durability) in [
        ("sqlite (survives kill -9)", Durability::Process),
        ("sqlite (fsync per commit)", Durability::Fsync),
    ] {
        let path = dir.path().join(format!("{durability:?}.db"));
        let config = SqliteConfig {
            durability,
            ..SqliteConfig::default()
        };
        let store = SqliteStore::open(&path, config)?;
        eprintln!("measuring {name} …");
        rows.push((name, run(Arc::new(store.clone()), workload).await?));
        store.close();
    }

    let _server;
    let endpoint = match etcd_endpoint {
        Some(endpoint) => endpoint,
        None => match EtcdServer::start() {
            Ok(server) => {
                let endpoint = server.endpoint();
                _server = server;
                endpoint
            }
            Err(err) => {
                eprintln!("not comparing with etcd: {err}");
                print_table(&rows);
                return Ok(());
            }
        },
    };
    let mut config = EtcdConfig::new([endpoint]);
    config.prefix = format!("/bulwark-bench-{}", std::process::id());
    let etcd = EtcdStore::connect(config)?;
    eprintln!("measuring etcd …");
    rows.push((
        "etcd 3.4 (fsync per commit)",
        run(Arc::new(etcd), workload).await?,
    ));

    print_table(&rows);
    Ok(())
}

async fn run<S: Store + ?Sized>(
    store: Arc<S>,
    workload: StoreWorkload,
) -> anyhow::Result<StoreFigures> {
    let value = vec![b'v'; 256];
    let mut figures = StoreFigures::default();

    // One client, one put at a time.
    let mut latencies = Vec::with_capacity(workload.sequential);
    let start = Instant::now();
    for i in 0..workload.sequential {
        let t = Instant::now();
        store.put(&format!("/bench/seq/{i}"), value.clone()).await?;
        latencies.push(t.elapsed());
    }
    figures.sequential_puts_per_s = workload.sequential as f64 / start.elapsed().as_secs_f64();
    figures.sequential_put_p50 = percentile(&mut latencies, 50.0);

    // 64 concurrent writers.
    let start = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(workload.per_writer);
                for i in 0..workload.per_writer {
                    let t = Instant::now();
                    store
                        .put(&format!("/bench/conc/{w}/{i}"), value.clone())
                        .await?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    figures.concurrent_puts_per_s =
        (64 * workload.per_writer) as f64 / start.elapsed().as_secs_f64();
    figures.concurrent_put_p99 = percentile(&mut latencies, 99.0);

    // Compare-and-swap updates on 1,000 hot keys from 64 writers, each
    // writer owning a slice of the keys (so a CAS fails only if broken).
    let mut revisions = Vec::with_capacity(1_000);
    for k in 0..1_000 {
        let outcome = store.put(&format!("/bench/hot/{k}"), value.clone()).await?;
        revisions.push(outcome.revision().context("put committed")?);
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            let mut mine: Vec<(usize, i64)> = revisions
                .iter()
                .enumerate()
                .filter(|(k, _)| k % 64 == w)
                .map(|(k, r)| (k, *r))
                .collect();
            tokio::spawn(async move {
                let mut done = 0usize;
                for round in 0..workload.per_writer {
                    let slot = round % mine.len();
                    let (k, rev) = mine[slot];
                    match store
                        .update(&format!("/bench/hot/{k}"), value.clone(), rev)
                        .await?
                    {
                        WriteOutcome::Committed { revision, .. } => {
                            mine[slot].1 = revision;
                            done += 1;
                        }
                        WriteOutcome::Failed { .. } => anyhow::bail!("CAS on an owned key failed"),
                    }
                }
                anyhow::Ok(done)
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await??;
    }
    figures.cas_updates_per_s = done as f64 / start.elapsed().as_secs_f64();

    // A prefix range over 10,000 keys.
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (w..10_000).step_by(16) {
                    store
                        .put(&format!("/bench/range/{i:05}"), vec![b'r'; 256])
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let page = store.range(Range::prefix("/bench/range/")).await?;
        latencies.push(t.elapsed());
        anyhow::ensure!(
            page.kvs.len() == 10_000,
            "range returned {} keys",
            page.kvs.len()
        );
    }
    figures.range_10k = percentile(&mut latencies, 50.0);

    // Watch delivery latency: 100 watchers on one prefix, one writer.
    let epoch = Instant::now();
    let mut watchers = Vec::new();
    for _ in 0..100 {
        let mut watch = store.watch(Range::prefix("/bench/watch/"), 0).await?;
        let events = workload.watch_events;
        watchers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(events);
            while latencies.len() < events {
                let event = watch.next_event().await.context("watch ended")??;
                let sent = u64::from_le_bytes(event.kv.value[..8].try_into()?);
                latencies.push(epoch.elapsed().saturating_sub(Duration::from_nanos(sent)));
            }
            anyhow::Ok(latencies)
        }));
    }
    // Let every watch reach its live phase before measuring.
    store.put("/bench/watch-warmup", value.clone()).await?;
    for i in 0..workload.watch_events {
        let sent = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut payload = sent.to_le_bytes().to_vec();
        payload.extend_from_slice(&value[8..]);
        store
            .put(&format!("/bench/watch/{}", i % 50), payload)
            .await?;
    }
    let mut latencies = Vec::new();
    for watcher in watchers {
        latencies.extend(watcher.await??);
    }
    figures.watch_p50 = percentile(&mut latencies, 50.0);
    figures.watch_p99 = percentile(&mut latencies, 99.0);
    Ok(figures)
}

fn print_table(rows: &[(&str, StoreFigures)]) {
    println!(
        "| backend | sequential puts/s (p50) | 64-writer puts/s (p99) | CAS updates/s, 1,000 hot keys | range of 10,000 keys | watch delivery p50 / p99, 100 watchers |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, f) in rows {
        println!(
            "| {name} | {:.0} ({}) | {:.0} ({}) | {:.0} | {} | {} / {} |",
            f.sequential_puts_per_s,
            ms(f.sequential_put_p50),
            f.concurrent_puts_per_s,
            ms(f.concurrent_put_p99),
            f.cas_updates_per_s,
            ms(f.range_10k),
            ms(f.watch_p50),
            ms(f.watch_p99),
        );
    }
    if let Some((_, etcd)) = rows.iter().find(|(name, _)| name.starts_with("etcd")) {
        println!();
        println!("Ratios to etcd (higher is better for throughput, lower for latency):");
        for (name, f) in rows.iter().filter(|(name, _)| !name.starts_with("etcd")) {
            println!(
                "- {name}: sequential puts ×{:.2}, 64-writer puts ×{:.2}, CAS ×{:.2}, range time ×{:.2}, watch p99 ×{:.2}",
                f.sequential_puts_per_s / etcd.sequential_puts_per_s,
                f.concurrent_puts_per_s / etcd.concurrent_puts_per_s,
                f.cas_updates_per_s / etcd.cas_updates_per_s,
                f.range_10k.as_secs_f64() / etcd.range_10k.as_secs_f64(),
                f.watch_p99.as_secs_f64() / etcd.watch_p99.as_secs_f64(),
            );
        }
    }
}
