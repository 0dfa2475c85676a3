//! `cargo bench -p bulwark-runtime --bench runtime` (as root): create + start +
//! wait for `/bin/true` in a busybox container, Bulwark's built-in executor
//! against runc and crun on the same bundle, p50/p99 over
//! `BULWARK_BENCH_RUNS` runs (default 100).
//!
//! Bulwark's figure is the whole `Runtime` path up to a known exit status:
//! overlay mount, spec rendering, the shim, libcontainer, seccomp, exit
//! record (removal is not timed). runc/crun run the very bundle Bulwark
//! rendered (same spec, seccomp profile and mounted rootfs) with
//! `<runtime> run`, which creates, starts, waits and deletes. Runs are
//! interleaved (one of each per round) so that load from elsewhere on the
//! machine hits every runtime alike.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_runtime::{ContainerConfig, ImageStore, Runtime};

fn main() {
    let runs: usize = std::env::var("BULWARK_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().expect("tempdir");
    let images = Arc::new(ImageStore::open(dir.path().join("images")).expect("store"));
    images
        .import_rootfs(&common::busybox_rootfs_tar(dir.path()), "busybox")
        .expect("import busybox");
    let runtime = Runtime::new(
        dir.path().join("state"),
        images,
        env!("CARGO_BIN_EXE_bulwark-runtime-shim"),
    )
    .expect("runtime");
    let parent = common::unique("bulwark-bench");
    let config = |id: String| ContainerConfig {
        id,
        image: "busybox".into(),
        command: Some(vec!["/bin/true".into()]),
        cgroup_parent: Some(parent.clone()),
        ..ContainerConfig::default()
    };

    // One bundle for the peers: the spec and rootfs Bulwark rendered.
    let bundle_cfg = config("bench-bundle".into());
    runtime.create(&bundle_cfg).expect("create bundle");
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&bundle).expect("bundle dir");
    std::fs::copy(
        runtime.spec_path(&bundle_cfg.id),
        bundle.join("config.json"),
    )
    .expect("spec");

    let mut ours = Vec::with_capacity(runs);
    let (mut creates, mut starts, mut waits) = (Vec::new(), Vec::new(), Vec::new());
    let mut peers: Vec<(&str, Option<Vec<Duration>>)> =
        vec![("crun", Some(Vec::new())), ("runc", Some(Vec::new()))];
    for i in 0..runs {
        let cfg = config(format!("bench-{i}"));
        let t0 = Instant::now();
        runtime.create(&cfg).expect("create");
        let t1 = Instant::now();
        runtime.start(&cfg.id).expect("start");
        let t2 = Instant::now();
        let status = runtime
            .wait(&cfg.id, Duration::from_secs(30))
            .expect("wait");
        ours.push(t0.elapsed());
        creates.push(t1 - t0);
        starts.push(t2 - t1);
        waits.push(t2.elapsed());
        assert_eq!(status.code, 0);
        runtime.remove(&cfg.id).expect("remove");

        for (peer, times) in &mut peers {
            let Some(list) = times else { continue };
            match peer_run(peer, &bundle, dir.path(), i) {
                Ok(elapsed) => list.push(elapsed),
                Err(message) => {
                    println!("{peer}: {message}");
                    *times = None;
                }
            }
        }
    }
    runtime.remove(&bundle_cfg.id).expect("remove bundle");

    // Memory of a shim while its container runs.
    let idle = ContainerConfig {
        command: Some(vec!["sleep".into(), "60".into()]),
        ..config("bench-rss".into())
    };
    runtime.create(&idle).expect("create");
    let pid = runtime.start(&idle.id).expect("start");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let shim = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .map(|p| p.trim().to_string())
        .expect("PPid");
    let shim_status = std::fs::read_to_string(format!("/proc/{shim}/status")).expect("shim status");
    let field = |name: &str| {
        shim_status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    println!(
        "shim memory while its container runs: VmRSS {} (anon {}, file {}, shmem {})",
        field("VmRSS:"),
        field("RssAnon:"),
        field("RssFile:"),
        field("RssShmem:")
    );
    runtime.remove(&idle.id).expect("remove");
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(hierarchy.path().join(&parent));
    }

    println!(
        "bulwark phases, p50 ms: create {:.2} (overlay, spec), start {:.2} (shim, libcontainer), wait {:.2} (exit record)",
        percentile(&creates, 50.0),
        percentile(&starts, 50.0),
        percentile(&waits, 50.0)
    );
    println!("create+start+wait of /bin/true, {runs} interleaved runs");
    println!(
        "{:<24} {:>9} {:>9} {:>9}",
        "runtime", "p50 ms", "p99 ms", "mean ms"
    );
    let base = percentile(&ours, 50.0);
    let mut results = vec![("bulwark (libcontainer)", Some(ours))];
    results.extend(peers);
    for (name, durations) in &results {
        match durations {
            Some(d) if !d.is_empty() => {
                let p50 = percentile(d, 50.0);
                println!(
                    "{name:<24} {p50:>9.2} {:>9.2} {:>9.2}  ({:.2}x bulwark's p50)",
                    percentile(d, 99.0),
                    d.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / d.len() as f64,
                    p50 / base
                );
            }
            _ => println!("{name:<24} did not run here (see above)"),
        }
    }
}

/// Times one `<peer> run` of the bundle.
fn peer_run(peer: &str, bundle: &Path, tmp: &Path, i: usize) -> Result<Duration, String> {
    let state = tmp.join(format!("{peer}-state"));
    let id = format!("bench-{peer}-{i}");
    let t0 = Instant::now();
    let output = Command::new(peer)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    let elapsed = t0.elapsed();
    if output.status.success() {
        return Ok(elapsed);
    }
    let _ = Command::new(peer)
        .arg("--root")
        .arg(&state)
        .args(["delete", "-f", &id])
        .output();
    Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
}

fn percentile(durations: &[Duration], p: f64) -> f64 {
    let mut ms: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (ms.len() - 1) as f64).round() as usize;
    ms[rank.min(ms.len() - 1)]
}
