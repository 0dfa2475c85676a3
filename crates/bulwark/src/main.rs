//! `bulwark`: the single binary. Argument parsing and wiring only; every
//! component lives in its own library crate (see `ARCHITECTURE.md`).

mod bench;

use clap::{Parser, Subcommand};

/// Bulwark: a Kubernetes-compatible, secure-by-default container orchestrator.
#[derive(Debug, Parser)]
#[command(name = "bulwark", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version of this binary.
    Version,
    /// Measure Bulwark's parts against their peers in the same run.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// The cluster store: embedded SQLite (both durabilities) against a real
    /// etcd started on loopback (needs Debian's etcd-server).
    Store {
        /// Use this etcd instead of starting one (e.g. http://127.0.0.1:2379).
        #[arg(long)]
        etcd_endpoint: Option<String>,
        /// Puts in the one-client test.
        #[arg(long, default_value_t = 5_000)]
        sequential: usize,
        /// Puts per writer in the 64-writer and CAS tests.
        #[arg(long, default_value_t = 500)]
        per_writer: usize,
        /// Events written in the watch-latency test.
        #[arg(long, default_value_t = 1_000)]
        watch_events: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Version => {
            println!("bulwark {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Bench(Bench::Store {
            etcd_endpoint,
            sequential,
            per_writer,
            watch_events,
        }) => {
            let workload = bench::StoreWorkload {
                sequential,
                per_writer,
                watch_events,
            };
            runtime()?.block_on(bench::store(workload, etcd_endpoint))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
