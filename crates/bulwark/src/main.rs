//! `bulwark`: the single binary. Argument parsing and wiring only; every
//! component lives in its own library crate (see `ARCHITECTURE.md`).

mod bench;
mod image;

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
    /// Run the control plane: the API server on the embedded store (or etcd).
    Server(ServerArgs),
    /// Print a kubeconfig for a user, with a client certificate signed by the
    /// cluster CA (CN = user, O = groups), for the server in the data dir.
    Kubeconfig {
        /// Bulwark's data directory (where the CA is).
        #[arg(long, default_value = "/var/lib/bulwark", env = "BULWARK_DATA_DIR")]
        data_dir: std::path::PathBuf,
        /// The user name.
        #[arg(long)]
        user: String,
        /// Groups (repeat or comma-separate).
        #[arg(long = "group", value_delimiter = ',')]
        groups: Vec<String>,
    },
    /// Manage the node's images: pull, import, ls, rm, prune.
    Image {
        /// The image store (default: <data-dir>/images).
        #[arg(long)]
        image_dir: Option<std::path::PathBuf>,
        /// Bulwark's data directory.
        #[arg(long, default_value = "/var/lib/bulwark", env = "BULWARK_DATA_DIR")]
        data_dir: std::path::PathBuf,
        #[command(subcommand)]
        command: image::ImageCommand,
    },
    /// Measure Bulwark's parts against their peers in the same run.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// Where certificates, kubeconfigs and the embedded store live.
    #[arg(long, default_value = "/var/lib/bulwark", env = "BULWARK_DATA_DIR")]
    data_dir: std::path::PathBuf,
    /// Address the API server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: std::net::IpAddr,
    /// Port the API server listens on.
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Use a real etcd cluster instead of the embedded store (comma-separated
    /// client URLs).
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Key prefix in etcd.
    #[arg(long, default_value = "/bulwark")]
    etcd_prefix: String,
    /// Extra names or addresses for the serving certificate.
    #[arg(long = "tls-san", value_delimiter = ',')]
    tls_sans: Vec<String>,
    /// An EncryptionConfiguration (apiserver.config.k8s.io/v1) file. Default:
    /// <data-dir>/encryption-config.yaml, created at first start with a
    /// random secretbox key for Secrets.
    #[arg(long)]
    encryption_provider_config: Option<std::path::PathBuf>,
    /// The audit log (JSON lines). Default: <data-dir>/audit/audit.log.
    #[arg(long)]
    audit_log_path: Option<std::path::PathBuf>,
    /// An audit.k8s.io/v1 Policy file. Default: Bulwark's (Metadata for
    /// every request, never request or response bodies).
    #[arg(long)]
    audit_policy_file: Option<std::path::PathBuf>,
    /// Turn the audit log off (insecure: requests leave no trace).
    #[arg(long)]
    insecure_no_audit_log: bool,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// The API server over TLS with kube-rs clients: creates, LIST, watch
    /// delivery, memory.
    Api {
        /// Pods created by 64 clients, then listed.
        #[arg(long, default_value_t = 10_000)]
        pods: usize,
        /// Concurrent watchers.
        #[arg(long, default_value_t = 1_000)]
        watchers: usize,
        /// Pods created while the watchers watch.
        #[arg(long, default_value_t = 100)]
        watch_events: usize,
    },
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
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Version => {
            println!("bulwark {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Server(args) => runtime()?.block_on(server(args)),
        Command::Kubeconfig {
            data_dir,
            user,
            groups,
        } => {
            let pki = bulwark_apiserver::Pki::load_or_create(&data_dir, &[])?;
            let admin =
                std::fs::read_to_string(data_dir.join("admin.kubeconfig")).map_err(|err| {
                    anyhow::anyhow!(
                        "{}: {err} (start bulwark server first)",
                        data_dir.join("admin.kubeconfig").display()
                    )
                })?;
            let server = admin
                .lines()
                .find_map(|l| l.trim().strip_prefix("server: "))
                .ok_or_else(|| anyhow::anyhow!("no server in the admin kubeconfig"))?;
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            let (cert, key) = pki.issue_client(&user, &groups)?;
            print!("{}", pki.kubeconfig(server, &user, &cert, &key));
            Ok(())
        }
        Command::Image {
            image_dir,
            data_dir,
            command,
        } => image::run(
            &image_dir.unwrap_or_else(|| data_dir.join("images")),
            command,
        ),
        Command::Bench(Bench::Api {
            pods,
            watchers,
            watch_events,
        }) => runtime()?.block_on(bench::api::run(bench::api::ApiWorkload {
            pods,
            watchers,
            watch_events,
        })),
        Command::Bench(Bench::Store {
            etcd_endpoint,
            sequential,
            per_writer,
            watch_events,
        }) => {
            let workload = bench::store::StoreWorkload {
                sequential,
                per_writer,
                watch_events,
            };
            runtime()?.block_on(bench::store::store(workload, etcd_endpoint))
        }
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let store = if args.etcd_endpoints.is_empty() {
        bulwark_apiserver::StoreChoice::Embedded
    } else {
        let mut etcd = bulwark_store::EtcdConfig::new(args.etcd_endpoints);
        etcd.prefix = args.etcd_prefix;
        bulwark_apiserver::StoreChoice::Etcd(etcd)
    };
    let running = bulwark_apiserver::start(bulwark_apiserver::Config {
        data_dir: args.data_dir,
        bind_address: args.bind_address,
        port: args.port,
        store,
        extra_sans: args.tls_sans,
        encryption_config: args.encryption_provider_config,
        audit_log: if args.insecure_no_audit_log {
            eprintln!("WARNING: --insecure-no-audit-log: API requests are not audited");
            bulwark_apiserver::AuditLog::Off
        } else {
            bulwark_apiserver::AuditLog::File {
                path: args.audit_log_path,
                policy: args.audit_policy_file,
            }
        },
    })
    .await?;
    println!("Bulwark API server listening on {}", running.url);
    println!("kubeconfig: {}", running.kubeconfig.display());
    println!("  export KUBECONFIG={}", running.kubeconfig.display());
    tokio::select! {
        result = running.wait() => result,
        _ = tokio::signal::ctrl_c() => {
            println!("shutting down");
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
