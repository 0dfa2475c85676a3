//! The node agent — Bulwark's kubelet. It registers its Node, renews the
//! node's Lease, and runs the pods bound to the node with Bulwark's runtime,
//! reporting their status through the API server.
//!
//! - `node`: registration, status (capacity, allocatable, conditions,
//!   `nodeInfo`) and the heartbeat Lease; `host`: the facts behind them.
//! - `pod`: one level-triggered worker per pod; its memory of the pod is a
//!   file, so a restarted agent re-adopts running containers.
//! - `sandbox`: the namespaces a pod's containers share, pinned without an
//!   infrastructure container.
//! - `volumes`, `env`, `container`: a pod's volumes, environment and
//!   container configuration in the runtime's terms; `probe`: probes and
//!   lifecycle hooks; `status`: upstream's phase and condition rules.

mod container;
mod env;
pub mod eviction;
mod grpc;
mod host;
pub mod join;
mod netpol;
mod node;
mod pod;
mod portforward;
mod probe;
mod proxy;
mod pullsecrets;
mod remotecommand;
pub mod rotation;
mod sandbox;
mod server;
mod spdy;
mod static_pods;
mod stats;
mod status;
mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bulwark_runtime::{ImageStore, RegistryConfig, Runtime};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Pod, Taint};
use kube::runtime::watcher;
use kube::{Api, ResourceExt as _};
use tokio::sync::watch;

pub use host::{HostFacts, default_node_ip, default_node_name};
pub use node::{AGENT_PORT, KUBELET_VERSION};
pub use server::ServingConfig;

/// How an agent runs.
#[derive(Clone)]
pub struct AgentOptions {
    /// A client authenticated as `system:node:<node_name>`.
    pub client: kube::Client,
    /// A client for the node's network part, as `system:kube-proxy`
    /// (reads every Node for routes; a node may read only its own).
    pub proxy_client: kube::Client,
    /// The node's name.
    pub node_name: String,
    /// The node's address.
    pub node_ip: IpAddr,
    /// The agent's state directory (pods, seccomp profiles).
    pub root: PathBuf,
    /// The container runtime.
    pub runtime: Arc<Runtime>,
    /// Its image store.
    pub images: Arc<ImageStore>,
    /// Registry mirrors and credentials.
    pub registries: RegistryConfig,
    /// Extra node labels.
    pub labels: BTreeMap<String, String>,
    /// Taints to register with.
    pub taints: Vec<Taint>,
    /// `maxPods`.
    pub max_pods: u32,
    /// Pod-level pids limit (`podPidsLimit`).
    pub pod_pids_limit: Option<i64>,
    /// How often the Lease is renewed (10 s).
    pub lease_interval: Duration,
    /// How often node conditions are checked (10 s).
    pub status_interval: Duration,
    /// The port the agent's API is published at (`daemonEndpoints`).
    pub agent_port: u16,
    /// The agent's own API (logs, exec); `None` serves none.
    pub serving: Option<ServingConfig>,
    /// The pod network: the cluster CIDR (this node's part of it comes from
    /// its Node's `spec.podCIDR`); `None`: pods get only loopback.
    pub cluster_cidr: Option<bulwark_network::Ipv4Net>,
    /// Pod traffic to other nodes goes through VXLAN (works across routed
    /// networks) rather than direct routes (nodes on one L2 segment).
    pub vxlan: bool,
    /// The cluster DNS Service's address (`kube-dns`, 10.43.0.10): the
    /// agent answers there itself, on its bridge, NodeLocal-DNSCache style;
    /// pods with `dnsPolicy: ClusterFirst` resolve through it.
    pub cluster_dns: Option<std::net::Ipv4Addr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Hard eviction thresholds (`--eviction-hard`).
    pub eviction_hard: eviction::Thresholds,
    /// A directory of static pod manifests (`--pod-manifest-path`).
    pub pod_manifest_path: Option<PathBuf>,
}

impl std::fmt::Debug for AgentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentOptions")
            .field("node_name", &self.node_name)
            .field("node_ip", &self.node_ip)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The API refused the node's registration.
    #[error("registering node {node}: {source}")]
    Register {
        /// The node.
        node: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the agent until the returned future is dropped. Containers keep
/// running when it stops; the next agent on the same root re-adopts them.
pub async fn run(options: AgentOptions) -> Result<(), AgentError> {
    let pods_dir = options.root.join("pods");
    let seccomp_dir = options.root.join("seccomp");
    for dir in [&pods_dir, &seccomp_dir] {
        std::fs::create_dir_all(dir).map_err(|source| AgentError::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
    }
    let identity = node::NodeIdentity {
        name: options.node_name.clone(),
        ip: options.node_ip,
        labels: options.labels.clone(),
        taints: options.taints.clone(),
        max_pods: options.max_pods,
        state_dir: options.root.clone(),
        port: options.agent_port,
        thresholds: options.eviction_hard.clone(),
    };
    let facts = HostFacts::read(&options.root);
    let registered = node::register(&options.client, &identity, &facts)
        .await
        .map_err(|source| AgentError::Register {
            node: options.node_name.clone(),
            source,
        })?;
    tracing::info!(node = %options.node_name, ip = %options.node_ip, "node registered");
    let lease = tokio::spawn(node::renew_lease(
        options.client.clone(),
        registered,
        options.lease_interval,
    ));
    let (pressure_tx, pressure_rx) = watch::channel(node::Pressure::read(&identity));
    let status = tokio::spawn(node::report_status(
        options.client.clone(),
        identity,
        facts.clone(),
        options.status_interval,
        pressure_rx.clone(),
    ));
    let api = options.serving.clone().map(|serving| {
        let state = Arc::new(server::ApiState::new(
            options.client.clone(),
            options.node_name.clone(),
            options.runtime.clone(),
            pods_dir.clone(),
        ));
        tokio::spawn(async move {
            if let Err(err) = server::serve(serving, state).await {
                tracing::error!(error = %err, "agent API");
            }
        })
    });
    let network = match options.cluster_cidr {
        Some(cluster_cidr) => match pod_network(&options, cluster_cidr).await {
            Ok(network) => Some(network),
            Err(err) => {
                tracing::error!(error = %err, "the pod network is not available: pods get only loopback");
                None
            }
        },
        None => None,
    };
    let dns = match (&network, options.cluster_dns) {
        (Some(_), Some(ip)) => match node_local_dns(&options, ip).await {
            Ok(task) => Some(task),
            Err(err) => {
                tracing::error!(error = %err, "the node-local cluster DNS is not available");
                None
            }
        },
        _ => None,
    };
    let dns_ready = dns.is_some();
    let routes = network.clone().map(|network| {
        tokio::spawn(peer_routes(
            options.proxy_client.clone(),
            options.node_name.clone(),
            network,
        ))
    });
    // NetworkPolicy: this node's rules, from every policy, pod and namespace.
    let policy = network.clone().map(|network| {
        tokio::spawn(netpol::enforce(
            options.proxy_client.clone(),
            options.node_name.clone(),
            network,
        ))
    });
    let proxy = network
        .as_ref()
        .and_then(|_| service_proxy(&options, dns_ready));
    let _guards = (
        AbortOnDrop(lease),
        AbortOnDrop(status),
        api.map(AbortOnDrop),
        routes.map(AbortOnDrop),
        dns.map(AbortOnDrop),
        policy.map(AbortOnDrop),
        proxy.map(AbortOnDrop),
    );
    let ctx = Arc::new(pod::Ctx {
        client: options.client.clone(),
        runtime: options.runtime.clone(),
        images: options.images.clone(),
        registries: options.registries.clone(),
        node_name: options.node_name.clone(),
        node_ip: options.node_ip.to_string(),
        allocatable: env::NodeAllocatable {
            cpu_millis: facts.cpus as i64 * 1000,
            memory_bytes: facts.memory_bytes.saturating_sub(
                options
                    .eviction_hard
                    .amount(eviction::Signal::MemoryAvailable, facts.memory_bytes)
                    .unwrap_or(0),
            ) as i64,
            ephemeral_storage_bytes: facts.ephemeral_storage_bytes as i64,
        },
        pods_dir: pods_dir.clone(),
        seccomp_dir,
        recorder: bulwark_client::events::Recorder::new(options.client.clone(), "kubelet")
            .with_host(&options.node_name),
        pod_pids_limit: options.pod_pids_limit,
        network,
        cluster_dns: options.cluster_dns.filter(|_| dns_ready),
        cluster_domain: options.cluster_domain.clone(),
        pressure: pressure_rx,
        evictions: std::sync::Mutex::new(HashMap::new()),
    });
    let _evictions = AbortOnDrop(tokio::spawn(eviction::manage(
        ctx.clone(),
        options.eviction_hard.clone(),
        options.root.clone(),
        options.status_interval,
        pressure_tx,
    )));
    // Static pods: known before the API's pods are, so that none of them
    // is taken for a pod the API no longer has.
    let static_uids = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let (static_tx, static_rx) = tokio::sync::mpsc::channel(64);
    let _static_pods = options.pod_manifest_path.clone().map(|dir| {
        let initial = static_pods::read_dir(&dir, &options.node_name);
        if let Ok(mut known) = static_uids.lock() {
            *known = initial.keys().cloned().collect();
        }
        AbortOnDrop(tokio::spawn(static_pods::run(
            options.client.clone(),
            dir,
            options.node_name.clone(),
            static_tx,
            static_uids.clone(),
        )))
    });
    watch_pods(ctx, &options, static_rx, static_uids).await;
    Ok(())
}

/// Waits for the node's `spec.podCIDR` (the node IPAM controller's), then
/// sets up the node's side of the pod network.
async fn pod_network(
    options: &AgentOptions,
    cluster_cidr: bulwark_network::Ipv4Net,
) -> Result<Arc<bulwark_network::PodNetwork>, String> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(options.client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let pod_cidr = loop {
        let cidr = nodes
            .get(&options.node_name)
            .await
            .ok()
            .and_then(|n| n.spec.and_then(|s| s.pod_cidr));
        if let Some(cidr) = cidr {
            break cidr
                .parse::<bulwark_network::Ipv4Net>()
                .map_err(|e| format!("the node's podCIDR {cidr:?}: {e}"))?;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(
                "the node got no spec.podCIDR within 60 s (is the controller manager running?)"
                    .into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut config =
        bulwark_network::NetworkConfig::new(pod_cidr, cluster_cidr, options.root.join("network"));
    if options.vxlan {
        let std::net::IpAddr::V4(local) = options.node_ip else {
            return Err(format!(
                "the VXLAN backend needs an IPv4 node address, not {}",
                options.node_ip
            ));
        };
        let node_mtu = bulwark_network::node_mtu(None, local)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or(1500);
        config = config.vxlan(local, node_mtu);
    }
    let network = bulwark_network::PodNetwork::new(config)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(%pod_cidr, "pod network ready");
    Ok(Arc::new(network))
}

/// Puts the cluster DNS address on the pod bridge (a /32: pods reach it
/// through their gateway, and only this node answers) and serves DNS there.
async fn node_local_dns(
    options: &AgentOptions,
    ip: std::net::Ipv4Addr,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| e.to_string())?;
    let conn = tokio::spawn(connection);
    let result = async {
        let mut links = handle
            .link()
            .get()
            .match_name(bulwark_network::DEFAULT_BRIDGE.to_owned())
            .execute();
        let link = futures::TryStreamExt::try_next(&mut links)
            .await
            .map_err(|e| format!("finding {}: {e}", bulwark_network::DEFAULT_BRIDGE))?
            .ok_or_else(|| format!("no {} bridge", bulwark_network::DEFAULT_BRIDGE))?;
        match handle
            .address()
            .add(link.header.index, std::net::IpAddr::V4(ip), 32)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            // Already there (an agent restart).
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -17 => Ok(()),
            Err(e) => Err(format!("adding {ip} to the bridge: {e}")),
        }
    }
    .await;
    conn.abort();
    result?;
    let mut config = bulwark_dns::DnsConfig::new(vec![std::net::SocketAddr::from((ip, 53))]);
    config.domain = options.cluster_domain.clone();
    let server = bulwark_dns::DnsServer::bind(config, options.proxy_client.clone())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(%ip, "cluster DNS listening");
    Ok(tokio::spawn(server.run()))
}

/// Starts the service proxy (as `system:kube-proxy`). The `kube-dns`
/// Service is left alone while this node answers at its address itself.
fn service_proxy(options: &AgentOptions, dns_ready: bool) -> Option<tokio::task::JoinHandle<()>> {
    let cluster_cidr = options.cluster_cidr?;
    let proxy = match bulwark_network::ServiceProxy::new(None) {
        Ok(proxy) => Arc::new(proxy),
        Err(err) => {
            tracing::error!(error = %err, "the service proxy is not available: Services are not reachable");
            return None;
        }
    };
    let node_ips = match options.node_ip {
        IpAddr::V4(ip) => vec![ip],
        IpAddr::V6(_) => Vec::new(),
    };
    let skip = if dns_ready {
        ["kube-system/kube-dns".to_owned()].into()
    } else {
        Default::default()
    };
    let proxy_options = proxy::ProxyOptions {
        node_name: options.node_name.clone(),
        config: bulwark_network::ProxyConfig {
            node_ips,
            cluster_cidr,
        },
        skip,
    };
    Some(tokio::spawn(proxy::run(
        options.proxy_client.clone(),
        options.client.clone(),
        proxy,
        proxy_options,
    )))
}

/// Keeps a route to every other node's pod CIDR via its address.
async fn peer_routes(
    client: kube::Client,
    node_name: String,
    network: Arc<bulwark_network::PodNetwork>,
) {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client);
    let mut last: Option<Vec<bulwark_network::Peer>> = None;
    loop {
        let listed = nodes.list(&Default::default()).await;
        if let Err(err) = &listed {
            tracing::warn!(error = %err, "listing nodes for routes to their pods");
        }
        if let Ok(list) = listed {
            let mut peers: Vec<bulwark_network::Peer> = list
                .items
                .iter()
                .filter(|n| n.metadata.name.as_deref() != Some(node_name.as_str()))
                .filter_map(|n| {
                    let cidr = n.spec.as_ref()?.pod_cidr.as_ref()?.parse().ok()?;
                    let ip = n
                        .status
                        .as_ref()?
                        .addresses
                        .as_ref()?
                        .iter()
                        .find(|a| a.type_ == "InternalIP")?
                        .address
                        .parse()
                        .ok()?;
                    Some(bulwark_network::Peer {
                        pod_cidr: cidr,
                        node_ip: ip,
                    })
                })
                .collect();
            peers.sort();
            if last.as_ref() != Some(&peers) {
                match network.sync_routes(&peers).await {
                    Ok(()) => last = Some(peers),
                    Err(err) => tracing::warn!(error = %err, "routes to other nodes' pods"),
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// A pod worker: its feed of the pod's latest object, and its task.
type Worker = (watch::Sender<Option<Arc<Pod>>>, tokio::task::JoinHandle<()>);

/// Registers (or updates) the Node for this host — what [`run`] does first;
/// a joining agent does it early, so its serving certificate request can
/// be checked against the Node's addresses.
pub async fn register_node(
    client: &kube::Client,
    name: &str,
    ip: IpAddr,
    root: &std::path::Path,
    port: u16,
    max_pods: u32,
) -> Result<(), AgentError> {
    std::fs::create_dir_all(root).map_err(|source| AgentError::Io {
        context: format!("creating {}", root.display()),
        source,
    })?;
    let identity = node::NodeIdentity {
        name: name.to_owned(),
        ip,
        labels: BTreeMap::new(),
        taints: Vec::new(),
        max_pods,
        state_dir: root.to_path_buf(),
        port,
        thresholds: eviction::Thresholds::default(),
    };
    node::register(client, &identity, &HostFacts::read(root))
        .await
        .map(drop)
        .map_err(|source| AgentError::Register {
            node: name.to_owned(),
            source,
        })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Feeds each pod bound to this node to its worker, and the static pods
/// from `statics`; pods found on disk but neither in the API nor static
/// (deleted while the agent was away) are torn down. Mirror pods are the
/// API's view of static pods, never run themselves.
async fn watch_pods(
    ctx: Arc<pod::Ctx>,
    options: &AgentOptions,
    mut statics: tokio::sync::mpsc::Receiver<(String, Option<Arc<Pod>>)>,
    static_uids: Arc<std::sync::Mutex<HashSet<String>>>,
) {
    let api: Api<Pod> = Api::all(options.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", options.node_name));
    let mut stream = watcher(api, config).boxed();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut seen_in_listing: Vec<String> = Vec::new();
    let spawn = |workers: &mut HashMap<_, _>, uid: String, pod: Option<Arc<Pod>>| {
        let (tx, rx) = watch::channel(pod);
        let handle = tokio::spawn(pod::worker(ctx.clone(), uid.clone(), rx));
        workers.insert(uid, (tx, handle));
    };
    let mut statics_open = true;
    loop {
        let event = tokio::select! {
            event = stream.next() => match event {
                Some(event) => event,
                None => break,
            },
            change = statics.recv(), if statics_open => {
                workers.retain(|_, (_, handle)| !handle.is_finished());
                match change {
                    Some((uid, pod)) => match (workers.get(&uid), pod) {
                        (Some((tx, _)), pod) => {
                            let _ = tx.send(pod);
                        }
                        (None, Some(pod)) => spawn(&mut workers, uid, Some(pod)),
                        (None, None) => {}
                    },
                    None => statics_open = false,
                }
                continue;
            }
        };
        workers.retain(|_, (_, handle)| !handle.is_finished());
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(error = %err, "watching pods");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match event {
            watcher::Event::Init => seen_in_listing.clear(),
            watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                let Some(uid) = pod.metadata.uid.clone() else {
                    continue;
                };
                if static_pods::is_mirror(&pod) {
                    continue;
                }
                seen_in_listing.push(uid.clone());
                let pod = Arc::new(pod);
                match workers.get(&uid) {
                    Some((tx, _)) => {
                        let _ = tx.send(Some(pod));
                    }
                    None => spawn(&mut workers, uid, Some(pod)),
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.clone()
                    && let Some((tx, _)) = workers.get(&uid)
                {
                    let _ = tx.send(None);
                }
                tracing::debug!(pod = %pod.name_any(), "pod gone");
            }
            watcher::Event::InitDone => {
                // Pods the API no longer has: tear them down.
                let statics = static_uids.lock().map(|s| s.clone()).unwrap_or_default();
                let listed: HashSet<&String> = seen_in_listing.iter().chain(&statics).collect();
                for (uid, (tx, _)) in &workers {
                    if !listed.contains(uid) {
                        let _ = tx.send(None);
                    }
                }
                let on_disk: Vec<String> = std::fs::read_dir(&ctx.pods_dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                for uid in on_disk {
                    if !listed.contains(&uid) && !workers.contains_key(&uid) {
                        spawn(&mut workers, uid, None);
                    }
                }
            }
        }
    }
}
