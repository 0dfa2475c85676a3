//! `bulwark`: the single binary. Argument parsing and wiring only; every
//! component lives in its own library crate (see `ARCHITECTURE.md`).

mod bench;
mod image;
mod secrets;

use clap::{Parser, Subcommand};

/// jemalloc rather than glibc's malloc: with many threads glibc keeps most
/// of what a large LIST freed (a server grew 150 MiB for 22 MiB of pods),
/// and jemalloc's size classes are also faster on the create path. Its
/// decay settings are in `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bulwark: a Kubernetes-compatible, secure-by-default container orchestrator.
#[derive(Debug, Parser)]
#[command(name = "bulwark", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
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
    /// Secrets at rest: `rotate` moves every Secret to a new key.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Measure Bulwark's parts against their peers in the same run.
    #[command(subcommand)]
    Bench(Bench),
    /// Join a cluster as a node: run the node agent for this machine.
    Agent(AgentArgs),
    /// Register kwok-style fake nodes that heartbeat and run the pods bound
    /// to them on paper (for trying the scheduler and controllers at scale
    /// without machines). Runs until interrupted; the Node objects stay.
    FakeNodes {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        count: usize,
        /// Name prefix (`<prefix><index>`).
        #[arg(long, default_value = "fake-node-")]
        prefix: String,
        /// CPU capacity per node.
        #[arg(long, default_value = "32")]
        cpu: String,
        /// Memory capacity per node.
        #[arg(long, default_value = "256Gi")]
        memory: String,
        /// Pod capacity per node.
        #[arg(long, default_value_t = 110)]
        pods: u32,
        /// The kubeconfig to use (default: the admin kubeconfig of the data
        /// dir).
        #[arg(long)]
        kubeconfig: Option<std::path::PathBuf>,
        /// Bulwark's data directory.
        #[arg(long, default_value = "/var/lib/bulwark", env = "BULWARK_DATA_DIR")]
        data_dir: std::path::PathBuf,
    },
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
    /// Do not run the controller manager in this server.
    #[arg(long)]
    disable_controller_manager: bool,
    /// Do not run the scheduler in this server.
    #[arg(long)]
    disable_scheduler: bool,
    /// How long a leader's Lease (scheduler, controller manager) holds
    /// without renewal before another server takes over.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    leader_elect_lease_duration: std::time::Duration,
    /// The range Services take cluster IPs from; its first address is the
    /// `kubernetes` Service's, its tenth the cluster DNS Service's.
    #[arg(long, default_value = bulwark_apiserver::DEFAULT_SERVICE_CIDR)]
    service_cluster_ip_range: bulwark_apiserver::Ipv4Cidr,
    /// The NodePort range, `first-last`.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    service_node_port_range: (u16, u16),
    /// The address the `kubernetes` Service's endpoints name. Default: the
    /// bind address, or when bound to 0.0.0.0 the source address of the
    /// default route.
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// How long a node may go without renewing its Lease before it is
    /// marked NotReady/Unknown and tainted (upstream's 50 s).
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// The longest validity of a certificate signed for a
    /// CertificateSigningRequest (a shorter `spec.expirationSeconds` wins),
    /// as kube-controller-manager's flag: agents renew theirs at 70–90 %.
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    cluster_signing_duration: std::time::Duration,
    /// How many terminated pods (Succeeded or Failed) may remain before
    /// the oldest are deleted (upstream's 12,500); 0 keeps them all.
    #[arg(long, default_value_t = 12_500)]
    terminated_pod_gc_threshold: usize,
    /// Do not run a node agent in this server (a control-plane-only node).
    /// Without root the agent cannot run and is left out with a warning.
    #[arg(long)]
    disable_agent: bool,
    /// An AdmissionConfiguration (apiserver.config.k8s.io/v1) file; its
    /// PodSecurity entry replaces Bulwark's defaults (enforce baseline, warn
    /// and audit restricted) and sets exemptions.
    #[arg(long)]
    admission_control_config_file: Option<std::path::PathBuf>,
    /// How long a request that is not long-running (watch, exec, attach,
    /// port-forward, logs) may take before it is answered 504.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    request_timeout: std::time::Duration,
    /// Serve profiling data. Bulwark has no profiling endpoint: this stays
    /// false (as CIS 1.2.15 asks) and `true` is refused.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    profiling: bool,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// The API server, e.g. https://10.0.0.1:6443.
    #[arg(long, env = "BULWARK_SERVER", required_unless_present = "cleanup")]
    server: Option<String>,
    /// Remove what a stopped agent left in this host's network — pods'
    /// veth pairs, the bridge, the VXLAN device, routes to other nodes,
    /// the nftables tables (pod network, NetworkPolicy, service proxy) and
    /// the IPAM state — then exit. Containers are not stopped.
    #[arg(long)]
    cleanup: bool,
    /// The node token `bulwark server` wrote to <data-dir>/node-token.
    #[arg(long, env = "BULWARK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the node token.
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// Where the agent keeps its credentials, images, containers and pods.
    #[arg(long, default_value = "/var/lib/bulwark", env = "BULWARK_DATA_DIR")]
    data_dir: std::path::PathBuf,
    #[command(flatten)]
    node: NodeArgs,
}

/// How pods are networked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PodNetworkMode {
    /// A bridge and a veth pair per pod; routes to other nodes' pods.
    Bridge,
    /// Only loopback in each pod.
    None,
}

/// How pods reach pods on other nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PodNetworkBackend {
    /// VXLAN encapsulation (UDP 8472): nodes may be on different subnets.
    Vxlan,
    /// Direct routes via each node's address: nodes on one L2 segment.
    HostGw,
}

/// How the node agent presents its node.
#[derive(Debug, clap::Args)]
struct NodeArgs {
    /// The node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's address (default: the address of the default route).
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,
    /// Registry mirrors, credentials and TLS for image pulls.
    #[arg(long, default_value = "/etc/bulwark/registries.yaml")]
    registries: std::path::PathBuf,
    /// The cluster's pod CIDR; each node gets a /24 of it.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: bulwark_network::Ipv4Net,
    /// The pod network: `bridge` (a bridge and veth pair per pod, routes
    /// between nodes) or `none` (each pod only has loopback).
    #[arg(long, value_enum, default_value_t = PodNetworkMode::Bridge)]
    pod_network: PodNetworkMode,
    /// How pods reach other nodes' pods: `vxlan` (works across routed
    /// networks; every node must use the same) or `host-gw` (direct routes,
    /// no encapsulation, nodes on one L2 segment).
    #[arg(long, value_enum, default_value_t = PodNetworkBackend::Vxlan)]
    pod_network_backend: PodNetworkBackend,
    /// The cluster DNS Service's address, answered on every node.
    #[arg(long, default_value = "10.43.0.10")]
    cluster_dns: std::net::Ipv4Addr,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The port of the agent's own API (logs, exec for the API server).
    #[arg(long, default_value_t = bulwark_agent::AGENT_PORT)]
    agent_port: u16,
    /// Maximum pods on the node.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Maximum processes per pod.
    #[arg(long, default_value_t = 4096)]
    pod_pids_limit: i64,
    /// Hard eviction thresholds, as the kubelet's flag: `<signal><<amount
    /// or percentage>`, comma-separated, for memory.available,
    /// nodefs.available, nodefs.inodesFree, imagefs.available,
    /// imagefs.inodesFree and pid.available. Under a memory or disk
    /// threshold the node reports pressure and evicts pods, BestEffort
    /// first. Naming any replaces all the defaults.
    #[arg(
        long,
        default_value = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%"
    )]
    eviction_hard: bulwark_agent::eviction::Thresholds,
    /// A directory of static pod manifests: each Pod there runs on this
    /// node without the API server and is mirrored to it.
    #[arg(long)]
    pod_manifest_path: Option<std::path::PathBuf>,
}

fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?}: expected first-last, e.g. 30000-32767"))?;
    let first: u16 = first
        .trim()
        .parse()
        .map_err(|_| format!("{first:?} is not a port"))?;
    let last: u16 = last
        .trim()
        .parse()
        .map_err(|_| format!("{last:?} is not a port"))?;
    if first == 0 || first > last {
        return Err(format!("{text:?}: the range is empty"));
    }
    Ok((first, last))
}

/// `15s`, `500ms`, `2m`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (try 15s)"))?;
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "s" => Ok(std::time::Duration::from_secs(n)),
        "m" => Ok(std::time::Duration::from_secs(n * 60)),
        "h" => Ok(std::time::Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "invalid duration {text:?}: unit must be ms, s, m or h"
        )),
    }
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// With the server running: add a new key to the encryption
    /// configuration, make it the write key, rewrite every Secret under it,
    /// then remove the old key. The server reloads the file at each step.
    Rotate {
        /// Bulwark's data directory.
        #[arg(long, default_value = "/var/lib/bulwark", env = "BULWARK_DATA_DIR")]
        data_dir: std::path::PathBuf,
        /// The server's EncryptionConfiguration (default:
        /// <data-dir>/encryption-config.yaml).
        #[arg(long)]
        encryption_provider_config: Option<std::path::PathBuf>,
        /// An admin kubeconfig (default: <data-dir>/admin.kubeconfig).
        #[arg(long)]
        kubeconfig: Option<std::path::PathBuf>,
        /// The new key's name (default: key-<unix time>).
        #[arg(long)]
        key_name: Option<String>,
        /// How long to wait for the server to load each step.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
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
    /// Pod startup on one real node (create → Running, image local) and the
    /// memory of the server with its agent. Needs root.
    Agent {
        /// Pods to start.
        #[arg(long, default_value_t = 100)]
        pods: usize,
        /// Run the agent as its own `bulwark agent` process, joined to a
        /// `bulwark server --disable-agent`, and measure its memory alone.
        #[arg(long)]
        standalone: bool,
    },
    /// The scheduler and controllers on fake nodes: a large Deployment's
    /// rollout with the server's memory and CPU, and scheduling throughput.
    ControlPlane {
        /// Fake nodes for the Deployment.
        #[arg(long, default_value_t = 100)]
        deployment_nodes: usize,
        /// The Deployment's replicas.
        #[arg(long, default_value_t = 3_000)]
        replicas: usize,
        /// Fake nodes for the scheduling run.
        #[arg(long, default_value_t = 5_000)]
        scheduling_nodes: usize,
        /// Pods for the scheduling run.
        #[arg(long, default_value_t = 10_000)]
        scheduling_pods: usize,
    },
    /// What RBAC adds to a request: GETs by an RBAC-authorized user with
    /// and without 1,000 Roles and RoleBindings per namespace.
    Rbac {
        /// Roles and RoleBindings added per namespace (each).
        #[arg(long, default_value_t = 1_000)]
        objects: usize,
        /// GETs per measurement.
        #[arg(long, default_value_t = 4_000)]
        requests: usize,
        /// Rounds (measure, add, measure, delete).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
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
    // The runtime starts each container's shim as this very binary (from a
    // sealed copy) under the name `bulwark-runtime-shim`. It must be
    // dispatched before anything starts a thread: the shim clones.
    let mut args = std::env::args();
    if args.next().as_deref() == Some(SHIM_NAME) {
        let args: Vec<String> = args.collect();
        std::process::exit(bulwark_runtime::shim_main(&args));
    }
    // Not a shim: freed memory goes back to the kernel from jemalloc's own
    // threads, also while the process is idle.
    if let Err(err) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("bulwark: jemalloc background threads unavailable: {err}");
    }
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
        Command::Agent(args) => runtime()?.block_on(agent(args)),
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
        Command::Secrets(SecretsCommand::Rotate {
            data_dir,
            encryption_provider_config,
            kubeconfig,
            key_name,
            timeout,
        }) => runtime()?.block_on(secrets::rotate(secrets::RotateOptions {
            config: encryption_provider_config
                .unwrap_or_else(|| data_dir.join("encryption-config.yaml")),
            kubeconfig: kubeconfig.unwrap_or_else(|| data_dir.join("admin.kubeconfig")),
            key_name,
            timeout,
        })),
        Command::FakeNodes {
            count,
            prefix,
            cpu,
            memory,
            pods,
            kubeconfig,
            data_dir,
        } => runtime()?.block_on(fake_nodes(
            kubeconfig.unwrap_or_else(|| data_dir.join("admin.kubeconfig")),
            bulwark_testkit::FakeNodeConfig {
                count,
                prefix,
                cpu,
                memory,
                pods,
                ..bulwark_testkit::FakeNodeConfig::default()
            },
        )),
        Command::Bench(Bench::Api {
            pods,
            watchers,
            watch_events,
        }) => runtime()?.block_on(bench::api::run(bench::api::ApiWorkload {
            pods,
            watchers,
            watch_events,
        })),
        Command::Bench(Bench::Rbac {
            objects,
            requests,
            rounds,
        }) => runtime()?.block_on(bench::rbac::run(bench::rbac::RbacWorkload {
            objects,
            requests,
            rounds,
        })),
        Command::Bench(Bench::Agent { pods, standalone }) => {
            runtime()?.block_on(bench::agent::run(pods, standalone))
        }
        Command::Bench(Bench::ControlPlane {
            deployment_nodes,
            replicas,
            scheduling_nodes,
            scheduling_pods,
        }) => runtime()?.block_on(bench::control_plane::run(
            bench::control_plane::ControlPlaneWorkload {
                deployment_nodes,
                replicas,
                scheduling_nodes,
                scheduling_pods,
            },
        )),
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
    if args.profiling {
        anyhow::bail!(
            "--profiling=true: Bulwark serves no profiling endpoint (/debug/pprof); leave it off"
        );
    }
    let store = if args.etcd_endpoints.is_empty() {
        bulwark_apiserver::StoreChoice::Embedded
    } else {
        let mut etcd = bulwark_store::EtcdConfig::new(args.etcd_endpoints.clone());
        etcd.prefix = args.etcd_prefix.clone();
        bulwark_apiserver::StoreChoice::Etcd(etcd)
    };
    let running = bulwark_apiserver::start(bulwark_apiserver::Config {
        data_dir: args.data_dir.clone(),
        bind_address: args.bind_address,
        port: args.port,
        store,
        extra_sans: args.tls_sans.clone(),
        encryption_config: args.encryption_provider_config.clone(),
        service_ranges: bulwark_apiserver::ServiceRanges {
            cluster_ip_range: args.service_cluster_ip_range,
            node_ports: args.service_node_port_range,
        },
        advertise_address: args.advertise_address,
        admission_control_config: args.admission_control_config_file.clone(),
        request_timeout: args.request_timeout,
        audit_log: if args.insecure_no_audit_log {
            eprintln!("WARNING: --insecure-no-audit-log: API requests are not audited");
            bulwark_apiserver::AuditLog::Off
        } else {
            bulwark_apiserver::AuditLog::File {
                path: args.audit_log_path.clone(),
                policy: args.audit_policy_file.clone(),
            }
        },
    })
    .await?;
    let node_token = ensure_node_token(&running, &args.data_dir).await?;
    let components = start_components(&running, &args)?;
    println!("Bulwark API server listening on {}", running.url);
    println!("kubeconfig: {}", running.kubeconfig.display());
    println!("  export KUBECONFIG={}", running.kubeconfig.display());
    println!(
        "node token (for `bulwark agent --token-file`): {}",
        node_token.display()
    );
    tokio::select! {
        result = running.wait() => result,
        name = components => Err(anyhow::anyhow!("the {name} stopped")),
        _ = tokio::signal::ctrl_c() => {
            println!("shutting down");
            Ok(())
        }
    }
}

async fn fake_nodes(
    kubeconfig: std::path::PathBuf,
    config: bulwark_testkit::FakeNodeConfig,
) -> anyhow::Result<()> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig)
        .map_err(|err| anyhow::anyhow!("{}: {err}", kubeconfig.display()))?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?,
    )?;
    let count = config.count;
    let nodes = bulwark_testkit::FakeNodes::start(client, config).await?;
    println!(
        "{count} fake nodes registered ({} … {}); Ctrl-C to stop",
        nodes.names().first().map_or("", String::as_str),
        nodes.names().last().map_or("", String::as_str)
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// Starts the control-plane components inside this server: each talks to
/// the API server over HTTPS as its own identity (DESIGN.md, invariant 1)
/// and campaigns for its Lease, so several servers on one etcd run one of
/// each. Resolves with the name of a component that stopped.
fn start_components(
    running: &bulwark_apiserver::Running,
    args: &ServerArgs,
) -> anyhow::Result<impl std::future::Future<Output = &'static str> + use<>> {
    let pki = running.pki.clone();
    let access = bulwark_client::ClusterAccess::new(
        &running.url,
        &running.pki.ca_cert_pem,
        std::sync::Arc::new(move |id: &bulwark_client::Identity| {
            let groups: Vec<&str> = id.groups.iter().map(String::as_str).collect();
            pki.issue_client(&id.user, &groups)
                .map_err(|err| Box::new(err) as Box<dyn std::error::Error + Send + Sync>)
        }),
    )?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "bulwark".to_owned());
    let holder = format!("{host}_{}", uuid::Uuid::new_v4());
    let election = |lease: &str| {
        bulwark_client::leader::LeaderElection::new(lease, &holder)
            .with_lease_duration(args.leader_elect_lease_duration)
    };
    let mut tasks = tokio::task::JoinSet::new();
    if !args.disable_controller_manager {
        let options = bulwark_controllers::Options {
            access: access.clone(),
            election: Some(election("kube-controller-manager")),
            clock: std::sync::Arc::new(bulwark_client::SystemClock),
            only: Vec::new(),
            node_monitor_grace_period: args.node_monitor_grace_period,
            terminated_pod_gc_threshold: args.terminated_pod_gc_threshold,
            root_ca_pem: Some(running.pki.ca_cert_pem.clone()),
            csr_signer: Some({
                let pki = running.pki.clone();
                let longest = args.cluster_signing_duration;
                bulwark_controllers::CsrSigner(std::sync::Arc::new(
                    move |csr: &str, usages: &[String], valid_for: std::time::Duration| {
                        pki.sign_request(csr, usages, valid_for.min(longest))
                            .map_err(|err| {
                                Box::new(err) as Box<dyn std::error::Error + Send + Sync>
                            })
                    },
                ))
            }),
            cluster_cidr: Some(args.node.cluster_cidr),
            node_cidr_mask_size: bulwark_controllers::NODE_CIDR_MASK_SIZE,
        };
        tasks.spawn(async move {
            if let Err(err) = bulwark_controllers::run(options).await {
                tracing::error!(error = %err, "controller manager");
            }
            "controller manager"
        });
    }
    if !args.disable_scheduler {
        let client = access.client(&bulwark_client::Identity::user(
            "system:kube-scheduler",
            &[],
        ))?;
        // The election has a connection of its own, so that renewals never
        // queue behind bindings.
        let elector = access.client(&bulwark_client::Identity::user(
            "system:kube-scheduler",
            &[],
        ))?;
        let election = election("kube-scheduler");
        tasks.spawn(async move {
            let result = bulwark_client::leader::run_elected(elector, election, move || {
                let client = client.clone();
                async move {
                    bulwark_scheduler::run(client, bulwark_scheduler::SchedulerOptions::default())
                        .await
                        .map_err(|err| {
                            Box::<dyn std::error::Error + Send + Sync>::from(format!("{err:#}"))
                        })
                }
            })
            .await;
            if let Err(err) = result {
                tracing::error!(error = %err, "scheduler");
            }
            "scheduler"
        });
    }
    if !args.disable_agent {
        if is_root() {
            let name = node_name(&args.node);
            let client = access.client(&bulwark_client::Identity::user(
                format!("system:node:{name}"),
                &["system:nodes"],
            ))?;
            let ip = args
                .node
                .node_ip
                .unwrap_or_else(bulwark_agent::default_node_ip);
            let (cert_pem, key_pem) = running
                .pki
                .issue_node_serving(&name, &[name.clone(), ip.to_string()])?;
            let serving = bulwark_agent::ServingConfig {
                listen: std::net::SocketAddr::new(ip, args.node.agent_port),
                cert: bulwark_agent::rotation::RotatingCert::new(&cert_pem, &key_pem)?,
                ca_pem: running.pki.ca_cert_pem.clone(),
            };
            let proxy_client =
                access.client(&bulwark_client::Identity::user("system:kube-proxy", &[]))?;
            let agent = start_agent(
                &args.data_dir,
                client,
                proxy_client,
                &args.node,
                Some(serving),
            )?;
            tasks.spawn(async move {
                if let Err(err) = agent.await {
                    tracing::error!(error = %format!("{err:#}"), "node agent");
                }
                "node agent"
            });
        } else {
            eprintln!(
                "WARNING: not running as root: this server runs no node agent, so pods stay Pending (run as root, or add nodes with `bulwark agent`)"
            );
        }
    }
    Ok(async move {
        match tasks.join_next().await {
            Some(Ok(name)) => name,
            Some(Err(_)) => "a component task",
            None => std::future::pending().await,
        }
    })
}

/// The node token at `<data-dir>/node-token` (0600): created with a
/// bootstrap token at first start, reused after. Deleting the bootstrap
/// token's Secret revokes it; deleting the file makes a new one.
async fn ensure_node_token(
    running: &bulwark_apiserver::Running,
    data_dir: &std::path::Path,
) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = data_dir.join("node-token");
    if path.exists() {
        return Ok(path);
    }
    let bootstrap = running
        .create_bootstrap_token(None, &[], "the node token of bulwark server")
        .await?;
    let token = bulwark_agent::join::node_token(&running.pki.ca_cert_pem, &bootstrap)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())?;
    Ok(path)
}

/// `bulwark agent`: joins with the node token (or reuses the credentials
/// of an earlier join), then runs the node agent.
async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    use bulwark_agent::join;
    if args.cleanup {
        let state = args.data_dir.join("agent").join("network");
        bulwark_network::cleanup_node(None, &state).await?;
        println!("removed the node's pod network, service proxy and policy rules");
        return Ok(());
    }
    let server = args
        .server
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--server is needed to join"))?;
    let creds = join::Credentials::at(&args.data_dir.join("agent"));
    let name = node_name(&args.node);
    let ip = args
        .node
        .node_ip
        .unwrap_or_else(bulwark_agent::default_node_ip);
    // A certificate about to expire is replaced at once; one valid for
    // longer is used, and renewed in time while the agent runs.
    let margin = std::time::Duration::from_secs(60);
    let node_key = join::NodeKey::load_or_create(&creds)?;
    let (ca_pem, cert_pem, key_pem) = match (
        creds.read("ca.crt"),
        creds.read("client.crt"),
        creds.read("client.key"),
    ) {
        (Some(ca), Some(cert), Some(key)) if join::valid_for(&cert, margin) => (ca, cert, key),
        _ => {
            let token = match (&args.token, &args.token_file) {
                (Some(token), _) => token.clone(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|err| anyhow::anyhow!("{}: {err}", file.display()))?,
                (None, None) => anyhow::bail!("--token or --token-file is needed to join"),
            };
            let token: join::NodeToken = token.parse()?;
            let ca = join::fetch_pinned_ca(&server, &token).await?;
            let bootstrap = join::client(&server, &ca, join::Auth::Token(&token.bootstrap)).await?;
            let (cert, key) = join::request_certificate(
                &bootstrap,
                &name,
                None,
                "kubernetes.io/kube-apiserver-client-kubelet",
                &["digital signature", "client auth"],
                &[],
                Some(&node_key),
                std::time::Duration::from_secs(120),
            )
            .await?;
            creds.write("ca.crt", &ca, 0o644)?;
            creds.write("client.key", &key, 0o600)?;
            creds.write("client.crt", &cert, 0o644)?;
            println!("joined {server} as system:node:{name}");
            (ca, cert, key)
        }
    };
    // Each certificate is renewed while the agent runs; clients and the
    // agent's API pick up the new one (`bulwark_agent::rotation`).
    let client_cert = RotatingCert::new(&cert_pem, &key_pem)?;
    let client = client_cert.client(&server, &ca_pem)?;
    let node_key = std::sync::Arc::new(node_key);
    let mut renewals = tokio::task::JoinSet::new();
    let renewal =
        |subject: Option<&str>, signer: &str, usages: &[&str], sans: &[String], file: &str| {
            bulwark_agent::rotation::Renewal {
                node: name.clone(),
                subject: subject.map(str::to_owned),
                signer: signer.to_owned(),
                usages: usages.iter().map(|u| (*u).to_owned()).collect(),
                sans: sans.to_vec(),
                files: (format!("{file}.crt"), format!("{file}.key")),
            }
        };
    renewals.spawn(bulwark_agent::rotation::renew(
        client_cert,
        client.clone(),
        creds.clone(),
        renewal(None, KUBELET_CLIENT, CLIENT_USAGES, &[], "client"),
        Some(node_key.clone()),
    ));
    // The serving certificate is approved for the names the Node has.
    bulwark_agent::register_node(
        &client,
        &name,
        ip,
        &args.data_dir.join("agent"),
        args.node.agent_port,
        args.node.max_pods,
    )
    .await?;
    join::record_identity(&client, &name, &node_key).await?;
    let serving_sans = [name.clone(), ip.to_string()];
    let serving_renewal = renewal(
        None,
        KUBELET_SERVING,
        SERVING_USAGES,
        &serving_sans,
        "serving",
    );
    let serving_cert = own_certificate(&client, &creds, &serving_renewal, margin).await?;
    renewals.spawn(bulwark_agent::rotation::renew(
        serving_cert.clone(),
        client.clone(),
        creds.clone(),
        serving_renewal,
        None,
    ));
    let serving = bulwark_agent::ServingConfig {
        listen: std::net::SocketAddr::new(ip, args.node.agent_port),
        cert: serving_cert,
        ca_pem: ca_pem.clone(),
    };
    // The network part runs as system:kube-proxy, as on upstream nodes.
    let proxy_renewal = renewal(
        Some("system:kube-proxy"),
        "kubernetes.io/kube-apiserver-client",
        CLIENT_USAGES,
        &[],
        "proxy",
    );
    let proxy_cert = own_certificate(&client, &creds, &proxy_renewal, margin).await?;
    let proxy_client = proxy_cert.client(&server, &ca_pem)?;
    renewals.spawn(bulwark_agent::rotation::renew(
        proxy_cert,
        client.clone(),
        creds.clone(),
        proxy_renewal,
        None,
    ));
    let agent = start_agent(
        &args.data_dir,
        client,
        proxy_client,
        &args.node,
        Some(serving),
    )?;
    tokio::select! {
        result = agent => result,
        _ = renewals.join_next() => Err(anyhow::anyhow!("certificate renewal stopped")),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
const CLIENT_USAGES: &[&str] = &["digital signature", "client auth"];
const SERVING_USAGES: &[&str] = &["digital signature", "server auth"];

use bulwark_agent::rotation::RotatingCert;

/// A certificate the node asks for as itself (serving, kube-proxy): the one
/// on disk while it is valid for `margin`, else a new one.
async fn own_certificate(
    client: &kube::Client,
    creds: &bulwark_agent::join::Credentials,
    renewal: &bulwark_agent::rotation::Renewal,
    margin: std::time::Duration,
) -> anyhow::Result<std::sync::Arc<RotatingCert>> {
    use bulwark_agent::join;
    let (cert_file, key_file) = &renewal.files;
    let (cert, key) = match (creds.read(cert_file), creds.read(key_file)) {
        (Some(cert), Some(key)) if join::valid_for(&cert, margin) => (cert, key),
        _ => {
            let usages: Vec<&str> = renewal.usages.iter().map(String::as_str).collect();
            let (cert, key) = join::request_certificate(
                client,
                &renewal.node,
                renewal.subject.as_deref(),
                &renewal.signer,
                &usages,
                &renewal.sans,
                None,
                std::time::Duration::from_secs(120),
            )
            .await?;
            creds.write(key_file, &key, 0o600)?;
            creds.write(cert_file, &cert, 0o644)?;
            (cert, key)
        }
    };
    Ok(RotatingCert::new(&cert, &key)?)
}

/// The name the runtime gives its shim processes (`argv[0]`).
const SHIM_NAME: &str = "bulwark-runtime-shim";

/// Starts the node agent for `data_dir` with `client` (as
/// `system:node:<name>`); resolves when it stops.
fn start_agent(
    data_dir: &std::path::Path,
    client: kube::Client,
    proxy_client: kube::Client,
    node: &NodeArgs,
    serving: Option<bulwark_agent::ServingConfig>,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>> + use<>> {
    let images = std::sync::Arc::new(bulwark_runtime::ImageStore::open(data_dir.join("images"))?);
    let shim = std::env::current_exe()?;
    let runtime = std::sync::Arc::new(bulwark_runtime::Runtime::new(
        data_dir.join("runtime"),
        images.clone(),
        shim,
    )?);
    let registries = if node.registries.exists() {
        bulwark_runtime::RegistryConfig::load(&node.registries)?
    } else {
        bulwark_runtime::RegistryConfig::default()
    };
    let options = bulwark_agent::AgentOptions {
        client,
        proxy_client,
        node_name: node_name(node),
        node_ip: node.node_ip.unwrap_or_else(bulwark_agent::default_node_ip),
        root: data_dir.join("agent"),
        runtime,
        images,
        registries,
        labels: Default::default(),
        taints: Vec::new(),
        max_pods: node.max_pods,
        pod_pids_limit: Some(node.pod_pids_limit).filter(|l| *l > 0),
        lease_interval: std::time::Duration::from_secs(10),
        status_interval: std::time::Duration::from_secs(10),
        agent_port: node.agent_port,
        serving,
        cluster_cidr: (node.pod_network == PodNetworkMode::Bridge).then_some(node.cluster_cidr),
        vxlan: node.pod_network_backend == PodNetworkBackend::Vxlan,
        cluster_dns: Some(node.cluster_dns),
        cluster_domain: node.cluster_domain.clone(),
        eviction_hard: node.eviction_hard.clone(),
        pod_manifest_path: node.pod_manifest_path.clone(),
    };
    Ok(async move { Ok(bulwark_agent::run(options).await?) })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

fn node_name(node: &NodeArgs) -> String {
    node.node_name
        .clone()
        .unwrap_or_else(bulwark_agent::default_node_name)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
