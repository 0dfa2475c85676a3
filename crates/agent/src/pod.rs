//! One pod's worker: level-triggered, it drives the pod's sandbox, volumes
//! and containers toward its spec on every change and every tick, and
//! reports what it sees as the pod's status. Its memory of the pod (which
//! container run is current, restart counts, back-offs) is a file in the
//! pod's directory, so a restarted agent picks up where it was.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bulwark_client::events::{EventType, Recorder};
use bulwark_runtime::{ContainerStatus, ImageStore, RegistryConfig, Runtime};
use k8s_openapi::api::core::v1::{ConfigMap, Container, ObjectReference, Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::container::{self, Inputs};
use crate::env::{self, NodeAllocatable};
use crate::probe::{self, Probes};
use crate::sandbox::{self, SandboxSpec};
use crate::status::{self, ContainerView, Exit, Observed};
use crate::volumes::{self, Fetched};

/// The upstream kubelet's restart back-off: 10 s doubling to 5 min.
const BACKOFF_INITIAL: u64 = 10;
const BACKOFF_MAX: u64 = 300;
/// A container that ran this long has its back-off reset.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How often a static pod's status is written to its mirror unchanged.
const STATIC_STATUS_REFRESH: Duration = Duration::from_secs(5);
/// How often a running pod is looked at (exits, probes) between changes.
const TICK: Duration = Duration::from_millis(500);

/// What every pod worker shares.
pub(crate) struct Ctx {
    /// The agent's API client (as `system:node:<name>`).
    pub(crate) client: kube::Client,
    /// The container runtime.
    pub(crate) runtime: Arc<Runtime>,
    /// Its image store.
    pub(crate) images: Arc<ImageStore>,
    /// Registry mirrors and credentials.
    pub(crate) registries: RegistryConfig,
    /// This node's name.
    #[allow(dead_code)] // the agent API (logs, exec) will name its node
    pub(crate) node_name: String,
    /// This node's address (`status.hostIP`, and hostNetwork pods' IP).
    pub(crate) node_ip: String,
    /// Defaults for downward-API resource references.
    pub(crate) allocatable: NodeAllocatable,
    /// `<agent root>/pods`.
    pub(crate) pods_dir: PathBuf,
    /// `<agent root>/seccomp`.
    pub(crate) seccomp_dir: PathBuf,
    /// Events.
    pub(crate) recorder: Recorder,
    /// Pod-level pids limit (`podPidsLimit`).
    pub(crate) pod_pids_limit: Option<i64>,
    /// The pod network, if the node has one.
    pub(crate) network: Option<Arc<bulwark_network::PodNetwork>>,
    /// The node-local cluster DNS address, if it answers.
    pub(crate) cluster_dns: Option<std::net::Ipv4Addr>,
    /// The cluster domain.
    pub(crate) cluster_domain: String,
    /// The node's pressure, as the eviction manager last saw it (new pods
    /// are admitted against it).
    pub(crate) pressure: watch::Receiver<crate::node::Pressure>,
    /// Pods the eviction manager chose: UID → the message to fail them
    /// with. Their workers stop them.
    pub(crate) evictions: std::sync::Mutex<HashMap<String, String>>,
}

/// The agent's memory of one pod, kept in `<pod dir>/record.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    namespace: String,
    name: String,
    start_time: Option<String>,
    containers: BTreeMap<String, ContainerRecord>,
    /// Set once the pod reached Succeeded or Failed: nothing runs again.
    terminal: Option<String>,
    /// First host id of the pod's user namespace (`hostUsers: false`).
    user_namespace: Option<u32>,
    /// Why the node failed the pod (refused at admission, or evicted under
    /// pressure): `status.reason` `Evicted` and this message.
    #[serde(default)]
    evicted: Option<Eviction>,
}

/// A pod the node failed under pressure.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Eviction {
    /// `status.message`.
    message: String,
    /// Evicted while running (a DisruptionTarget condition), rather than
    /// refused at admission.
    disruption: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ContainerRecord {
    /// The runtime id of the current run.
    current: Option<String>,
    /// The run before (`kubectl logs --previous`).
    previous: Option<String>,
    restart_count: i32,
    /// Seconds of the next back-off (0: restart at once).
    backoff: u64,
    /// How the previous run ended (`lastState`).
    last: Option<Exit>,
    /// The current run, when it never started: its command is not in the
    /// image (terminated, exit code 128, `StartError`, as containerd's).
    #[serde(default)]
    failed_start: Option<bulwark_runtime::ExitStatus>,
    image_id: Option<String>,
    spec_hash: Option<String>,
    /// Image pull back-off: seconds, and the earliest next attempt.
    pull_backoff: u64,
    pull_not_before: Option<i64>,
}

/// In-memory, per worker: what is waiting and why, probe state.
#[derive(Default)]
struct Live {
    waiting: BTreeMap<String, (String, Option<String>)>,
    probes: BTreeMap<String, Probes>,
    last_status: Option<Value>,
    /// When the status was last written.
    last_report: Option<std::time::Instant>,
    volumes: BTreeMap<String, PathBuf>,
    tokens: BTreeMap<String, (String, std::time::Instant, Duration)>,
}

fn now() -> String {
    crate::node::now()
}

impl Record {
    fn load(dir: &Path) -> Record {
        std::fs::read(dir.join("record.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join("record.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).unwrap_or_default())?;
        std::fs::rename(tmp, dir.join("record.json"))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// Runs one pod until it is gone: `rx` carries its latest object, `None`
/// once the API no longer has it.
pub(crate) async fn worker(ctx: Arc<Ctx>, uid: String, mut rx: watch::Receiver<Option<Arc<Pod>>>) {
    let dir = ctx.pods_dir.join(&uid);
    let mut live = Live::default();
    loop {
        let pod = rx.borrow_and_update().clone();
        let wait = match pod {
            None => {
                teardown(&ctx, &uid, &dir, None, &mut live).await;
                return;
            }
            Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                teardown(&ctx, &uid, &dir, Some(&pod), &mut live).await;
                finish_delete(&ctx, &pod).await;
                Duration::from_secs(1)
            }
            Some(pod) => match sync(&ctx, &pod, &dir, &mut live).await {
                Ok(wait) => wait,
                Err(err) => {
                    tracing::warn!(pod = %pod.name_any(), error = %err, "pod sync");
                    let message = format!("Failed to create pod sandbox: {err}");
                    event(
                        &ctx,
                        &pod,
                        None,
                        EventType::Warning,
                        "FailedCreatePodSandBox",
                        &message,
                    )
                    .await;
                    Duration::from_secs(2)
                }
            },
        };
        tokio::select! {
            changed = rx.changed() => if changed.is_err() {
                // The agent is shutting down: containers keep running.
                return;
            },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn pod_ref(pod: &Pod, container: Option<&str>) -> ObjectReference {
    let mut r = bulwark_client::events::reference(pod);
    if let Some(name) = container {
        let spec = pod.spec.as_ref();
        let init = spec
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|i| i.iter().any(|c| c.name == name));
        r.field_path = Some(if init {
            format!("spec.initContainers{{{name}}}")
        } else {
            format!("spec.containers{{{name}}}")
        });
    }
    r
}

async fn event(
    ctx: &Ctx,
    pod: &Pod,
    container: Option<&str>,
    t: EventType,
    reason: &str,
    message: &str,
) {
    ctx.recorder
        .publish(&pod_ref(pod, container), t, reason, message)
        .await;
}

/// Reads what the pod's volumes and env refer to.
async fn fetch(ctx: &Ctx, pod: &Pod, live: &mut Live) -> Fetched {
    let ns = pod.namespace().unwrap_or_default();
    let (config_maps, secrets) = volumes::references(pod);
    let mut fetched = Fetched::default();
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    fetched.config_maps = fetch_all(&cms, config_maps, "configmap", &mut fetched.errors, |cm| {
        key_bytes(
            cm.data
                .map(|d| d.into_iter().map(|(k, v)| (k, v.into_bytes()))),
            cm.binary_data.map(|d| d.into_iter().map(|(k, v)| (k, v.0))),
        )
    })
    .await;
    let ss: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    fetched.secrets = fetch_all(&ss, secrets, "secret", &mut fetched.errors, |s| {
        key_bytes(
            s.data.map(|d| d.into_iter().map(|(k, v)| (k, v.0))),
            s.string_data
                .map(|d| d.into_iter().map(|(k, v)| (k, v.into_bytes()))),
        )
    })
    .await;
    fetched.tokens = tokens(ctx, pod, live).await;
    fetched
}

/// Reads each named object: its data, `None` if it does not exist; an
/// error reading one is noted (`what "name": error`) and the name left out.
async fn fetch_all<K>(
    api: &Api<K>,
    names: impl IntoIterator<Item = String>,
    what: &str,
    errors: &mut Vec<String>,
    data: impl Fn(K) -> BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Option<BTreeMap<String, Vec<u8>>>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = BTreeMap::new();
    for name in names {
        match api.get_opt(&name).await {
            Ok(found) => {
                out.insert(name, found.map(&data));
            }
            Err(err) => errors.push(format!("{what} \"{name}\": {err}")),
        }
    }
    out
}

/// An object's keys and bytes from its two maps (`data` and
/// `binaryData`, or `data` and `stringData`); the second wins a tie.
fn key_bytes(
    first: Option<impl Iterator<Item = (String, Vec<u8>)>>,
    second: Option<impl Iterator<Item = (String, Vec<u8>)>>,
) -> BTreeMap<String, Vec<u8>> {
    first
        .into_iter()
        .flatten()
        .chain(second.into_iter().flatten())
        .collect()
}

/// Bound service-account tokens for projected volumes, requested through
/// `serviceaccounts/token` and refreshed at 80% of their lifetime.
async fn tokens(ctx: &Ctx, pod: &Pod, live: &mut Live) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(spec) = &pod.spec else { return out };
    let sa = spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let ns = pod.namespace().unwrap_or_default();
    for volume in spec.volumes.iter().flatten() {
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            let Some(token) = &source.service_account_token else {
                continue;
            };
            let key = format!("{}/{}", volume.name, token.path);
            if let Some((value, at, ttl)) = live.tokens.get(&key)
                && at.elapsed() < ttl.mul_f32(0.8)
            {
                out.insert(key, value.clone());
                continue;
            }
            let expiration = token.expiration_seconds.unwrap_or(3600);
            let request = json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "audiences": token.audience.iter().collect::<Vec<_>>(),
                    "expirationSeconds": expiration,
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": pod.name_any(),
                        "uid": pod.metadata.uid,
                    },
                },
            });
            let request = if token.audience.as_deref().unwrap_or_default().is_empty() {
                let mut r = request;
                r["spec"]["audiences"] = json!([]);
                r
            } else {
                request
            };
            let api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
                Api::namespaced(ctx.client.clone(), &ns);
            match api
                .create_subresource::<Value, Value>("token", &sa, &PostParams::default(), &request)
                .await
            {
                Ok(response) => {
                    if let Some(value) = response["status"]["token"].as_str() {
                        live.tokens.insert(
                            key.clone(),
                            (
                                value.to_owned(),
                                std::time::Instant::now(),
                                Duration::from_secs(expiration.max(60) as u64),
                            ),
                        );
                        out.insert(key, value.to_owned());
                    }
                }
                Err(err) => tracing::debug!(pod = %pod.name_any(), error = %err, "token request"),
            }
        }
    }
    out
}

/// One pass over a live pod; returns how long until the next look.
async fn sync(ctx: &Ctx, pod: &Pod, dir: &Path, live: &mut Live) -> Result<Duration, String> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut record = Record::load(dir);
    record.namespace = pod.namespace().unwrap_or_default();
    record.name = pod.name_any();
    // Admission: under pressure a new pod is refused as upstream refuses
    // it (failed, reason Evicted), before anything of it is made.
    if record.start_time.is_none() && record.terminal.is_none() {
        let pressure = *ctx.pressure.borrow();
        if let Err(message) = crate::eviction::admit(pod, pressure.memory, pressure.disk) {
            event(ctx, pod, None, EventType::Warning, "Evicted", &message).await;
            record.start_time = Some(now());
            record.terminal = Some("Failed".to_owned());
            record.evicted = Some(Eviction {
                message: format!("Pod was rejected: {message}"),
                disruption: false,
            });
            report(ctx, pod, &record, live, false, None).await;
            record
                .save(dir)
                .map_err(|e| format!("saving the pod record: {e}"))?;
            return Ok(TICK);
        }
    }
    if record.start_time.is_none() {
        record.start_time = Some(now());
    }
    // Chosen by the eviction manager: stopped at once and failed.
    let evicted = ctx
        .evictions
        .lock()
        .ok()
        .and_then(|mut evictions| evictions.remove(&uid));
    if let Some(message) = evicted
        && record.terminal.is_none()
    {
        event(ctx, pod, None, EventType::Warning, "Evicted", &message).await;
        let spec = pod.spec.clone().unwrap_or_default();
        let mut stops = Vec::new();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            if matches!(
                observe(ctx, &record, &c.name).await,
                Some(ContainerStatus::Running { .. })
            ) {
                stops.push(stop_container(ctx, pod, &record, c, Duration::ZERO));
            }
        }
        futures::future::join_all(stops).await;
        record.terminal = Some("Failed".to_owned());
        record.evicted = Some(Eviction {
            message,
            disruption: true,
        });
    }
    let spec = pod.spec.clone().unwrap_or_default();
    let restart_policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let host_network = spec.host_network == Some(true);

    // The sandbox: pinned namespaces, /etc/hosts, resolv.conf, pod cgroup.
    let hostname = spec.hostname.clone().unwrap_or_else(|| pod.name_any());
    let sandbox_spec = SandboxSpec {
        network: !host_network,
        uts: !host_network,
        ipc: spec.host_ipc != Some(true),
    };
    let sandbox = {
        let ns_dir = dir.join("ns");
        let hostname = hostname.clone();
        blocking(move || sandbox::ensure(&ns_dir, sandbox_spec, &hostname))
            .await
            .ok_or("sandbox task failed")?
            .map_err(|e| format!("creating the pod sandbox: {e}"))?
    };
    let pod_ip = if host_network {
        Some(ctx.node_ip.clone())
    } else if let (Some(network), Some(netns)) = (&ctx.network, sandbox.network()) {
        let address = network
            .attach(&uid, netns)
            .await
            .map_err(|e| format!("connecting the pod to the network: {e}"))?;
        Some(address.ip.to_string())
    } else {
        None
    };
    let resolv = resolv_conf(pod, ctx.cluster_dns, &ctx.cluster_domain);
    write_etc(dir, &hostname, pod_ip.as_deref(), host_network, &resolv)
        .map_err(|e| format!("writing /etc files: {e}"))?;
    let cgroup = container::pod_cgroup(pod);
    {
        let runtime = ctx.runtime.clone();
        let limits = container::pod_resources(pod, ctx.pod_pids_limit);
        let cgroup = cgroup.clone();
        blocking(move || runtime.set_pod_limits(&cgroup, &limits))
            .await
            .ok_or("cgroup task failed")?
            .map_err(|e| format!("pod cgroup: {e}"))?;
    }
    if spec.host_users == Some(false) && record.user_namespace.is_none() {
        record.user_namespace = Some(allocate_user_namespace(&ctx.pods_dir, &uid));
    }

    // Volumes (refreshed every pass, so configMap/secret updates arrive).
    let fetched = fetch(ctx, pod, live).await;
    let prepared = if fetched.errors.is_empty() {
        let pod = pod.clone();
        let dir = dir.to_path_buf();
        let fetched = fetched.clone();
        let allocatable = ctx.allocatable.clone();
        blocking(move || volumes::prepare(&pod, &dir, &fetched, &allocatable))
            .await
            .ok_or("volume task failed")?
    } else {
        Err(volumes::VolumeError::Fetch(fetched.errors.join("; ")))
    };
    match prepared {
        Ok(v) => live.volumes = v,
        Err(err) => {
            let message = err.to_string();
            event(ctx, pod, None, EventType::Warning, "FailedMount", &message).await;
            for c in spec
                .init_containers
                .iter()
                .flatten()
                .chain(spec.containers.iter())
            {
                if record
                    .containers
                    .get(&c.name)
                    .and_then(|r| r.current.as_ref())
                    .is_none()
                {
                    live.waiting
                        .insert(c.name.clone(), ("ContainerCreating".into(), None));
                }
            }
            report(ctx, pod, &record, live, true, pod_ip.as_deref()).await;
            record.save(dir).map_err(|e| e.to_string())?;
            return Ok(Duration::from_secs(2));
        }
    }

    let inputs = Prepared {
        namespaces: sandbox.namespaces.clone(),
        cgroup,
        etc_dir: dir.join("etc"),
        fetched,
        user_namespace: record
            .user_namespace
            .map(|host_id| bulwark_runtime::IdMapping {
                host_id,
                size: 65536,
            }),
    };

    if record.terminal.is_none() {
        // Init containers, in order: each must succeed before the next.
        let mut init_done = true;
        for c in spec.init_containers.iter().flatten() {
            let state = observe(ctx, &record, &c.name).await;
            match state {
                Some(ContainerStatus::Exited(e)) if e.code == 0 => continue,
                Some(ContainerStatus::Running { .. }) | Some(ContainerStatus::Created) => {
                    init_done = false;
                    break;
                }
                Some(ContainerStatus::Exited(_)) if restart_policy == "Never" => {
                    init_done = false;
                    break;
                }
                _ => {
                    step(ctx, pod, dir, &mut record, live, c, &inputs, true).await;
                    init_done = false;
                    break;
                }
            }
        }
        for c in &spec.containers {
            if !init_done {
                if record
                    .containers
                    .get(&c.name)
                    .and_then(|r| r.current.as_ref())
                    .is_none()
                {
                    live.waiting
                        .insert(c.name.clone(), ("PodInitializing".into(), None));
                }
                continue;
            }
            let state = observe(ctx, &record, &c.name).await;
            let restart = match &state {
                None => true,
                Some(ContainerStatus::Exited(e)) => match restart_policy.as_str() {
                    "Always" => true,
                    "OnFailure" => e.code != 0,
                    _ => false,
                },
                _ => false,
            };
            let changed = record
                .containers
                .get(&c.name)
                .and_then(|r| r.spec_hash.clone())
                .is_some_and(|h| h != container::spec_hash(c));
            if changed && matches!(state, Some(ContainerStatus::Running { .. })) {
                let message = format!("Container {} definition changed, will be restarted", c.name);
                event(
                    ctx,
                    pod,
                    Some(&c.name),
                    EventType::Normal,
                    "Killing",
                    &message,
                )
                .await;
                stop_container(
                    ctx,
                    pod,
                    &record,
                    c,
                    Duration::from_secs(grace_seconds(pod)),
                )
                .await;
                step(ctx, pod, dir, &mut record, live, c, &inputs, false).await;
            } else if restart {
                step(ctx, pod, dir, &mut record, live, c, &inputs, false).await;
            }
        }
        probe_all(ctx, pod, dir, &record, live, &spec.containers).await;
    }
    let phase = report(ctx, pod, &record, live, true, pod_ip.as_deref()).await;
    if matches!(phase, "Succeeded" | "Failed") && record.terminal.is_none() {
        record.terminal = Some(phase.to_owned());
    }
    record
        .save(dir)
        .map_err(|e| format!("saving the pod record: {e}"))?;
    Ok(TICK)
}

struct Prepared {
    namespaces: Vec<(bulwark_runtime::NamespaceKind, PathBuf)>,
    cgroup: String,
    etc_dir: PathBuf,
    fetched: Fetched,
    user_namespace: Option<bulwark_runtime::IdMapping>,
}

/// Picks the first 65536-id range (above the host's first 65536) no other
/// pod of this node uses.
fn allocate_user_namespace(pods_dir: &Path, _uid: &str) -> u32 {
    let used: Vec<u32> = std::fs::read_dir(pods_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let record: Record =
                serde_json::from_slice(&std::fs::read(e.path().join("record.json")).ok()?).ok()?;
            record.user_namespace
        })
        .collect();
    (1..u32::MAX / 65536)
        .map(|i| i * 65536)
        .find(|id| !used.contains(id))
        .unwrap_or(65536)
}

/// The pod's `/etc/resolv.conf` per its `dnsPolicy` and `dnsConfig`, as the
/// kubelet writes it: ClusterFirst (the default) searches the pod's
/// namespace, `svc` and the cluster domain through the cluster DNS with
/// `ndots:5`; Default is the node's; None is `dnsConfig` alone.
pub(crate) fn resolv_conf(
    pod: &Pod,
    cluster_dns: Option<std::net::Ipv4Addr>,
    domain: &str,
) -> Vec<u8> {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network) == Some(true);
    let policy = spec
        .and_then(|s| s.dns_policy.clone())
        .unwrap_or_else(|| "ClusterFirst".into());
    let node = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let field = |key: &str| -> Vec<String> {
        node.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .flat_map(|rest| rest.split_whitespace().map(str::to_owned))
            .collect()
    };
    let cluster = match (policy.as_str(), cluster_dns) {
        ("ClusterFirstWithHostNet", Some(_)) => true,
        ("ClusterFirst", Some(_)) => !host_network,
        _ => false,
    };
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) =
        if cluster {
            let ns = pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            (
                vec![cluster_dns.map(|ip| ip.to_string()).unwrap_or_default()],
                vec![
                    format!("{ns}.svc.{domain}"),
                    format!("svc.{domain}"),
                    domain.to_owned(),
                ],
                vec!["ndots:5".to_owned()],
            )
        } else if policy == "None" {
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            (field("nameserver"), field("search"), field("options"))
        };
    if let Some(config) = spec.and_then(|s| s.dns_config.as_ref()) {
        servers.extend(config.nameservers.iter().flatten().cloned());
        searches.extend(config.searches.iter().flatten().cloned());
        for option in config.options.iter().flatten() {
            let text = match &option.value {
                Some(v) => format!("{}:{v}", option.name.clone().unwrap_or_default()),
                None => option.name.clone().unwrap_or_default(),
            };
            options.retain(|o| o.split(':').next() != text.split(':').next());
            options.push(text);
        }
    }
    servers.dedup();
    servers.truncate(3);
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for server in servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out.into_bytes()
}

fn write_etc(
    dir: &Path,
    hostname: &str,
    ip: Option<&str>,
    host_network: bool,
    resolv: &[u8],
) -> std::io::Result<()> {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc)?;
    let hosts = if host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        let mut hosts = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        if let Some(ip) = ip {
            hosts.push_str(&format!("{ip}\t{hostname}\n"));
        }
        hosts
    };
    write_if_changed(&etc.join("hosts"), hosts.as_bytes())?;
    write_if_changed(&etc.join("resolv.conf"), resolv)
}

fn write_if_changed(path: &Path, content: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(content) {
        return Ok(());
    }
    std::fs::write(path, content)
}

async fn observe(ctx: &Ctx, record: &Record, name: &str) -> Option<ContainerStatus> {
    let entry = record.containers.get(name)?;
    if entry.current.is_none()
        && let Some(failed) = &entry.failed_start
    {
        return Some(ContainerStatus::Exited(failed.clone()));
    }
    let id = entry.current.clone()?;
    let runtime = ctx.runtime.clone();
    blocking(move || runtime.status(&id).ok()).await.flatten()
}

fn grace_seconds(pod: &Pod) -> u64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0) as u64
}

/// Starts the next run of `c` if its back-offs allow; records why not.
#[allow(clippy::too_many_arguments)]
async fn step(
    ctx: &Ctx,
    pod: &Pod,
    dir: &Path,
    record: &mut Record,
    live: &mut Live,
    c: &Container,
    inputs: &Prepared,
    init: bool,
) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let entry = record.containers.entry(c.name.clone()).or_default();
    // Account for the run that ended (or never started).
    if entry.current.is_some() || entry.failed_start.is_some() {
        let current = entry.current.clone().unwrap_or_default();
        let status = match entry.failed_start.clone() {
            Some(failed) => Some(ContainerStatus::Exited(failed)),
            None => {
                let runtime = ctx.runtime.clone();
                let id = current.clone();
                blocking(move || runtime.status(&id).ok()).await.flatten()
            }
        };
        if let Some(ContainerStatus::Exited(e)) = status {
            // A run that never started never ran long enough to reset
            // the back-off.
            let ran = match entry.failed_start {
                Some(_) => Duration::ZERO,
                None => run_time(&e.started_at, &e.finished_at),
            };
            if ran >= BACKOFF_RESET {
                entry.backoff = 0;
            }
            let ready_at = parse_time(&e.finished_at).unwrap_or(0) + entry.backoff as i64;
            if entry.backoff > 0 && jiff::Timestamp::now().as_second() < ready_at {
                let message = format!(
                    "back-off {}s restarting failed container={} pod={}_{}({})",
                    entry.backoff,
                    c.name,
                    pod.name_any(),
                    pod.namespace().unwrap_or_default(),
                    uid
                );
                if live.waiting.get(&c.name).map(|(r, _)| r.as_str()) != Some("CrashLoopBackOff") {
                    event(
                        ctx,
                        pod,
                        Some(&c.name),
                        EventType::Warning,
                        "BackOff",
                        "Back-off restarting failed container",
                    )
                    .await;
                }
                live.waiting
                    .insert(c.name.clone(), ("CrashLoopBackOff".into(), Some(message)));
                return;
            }
            entry.backoff = next_backoff(entry.backoff);
            entry.last = Some(exit_of(&current, &e));
            // Only the run before stays, for `logs --previous`.
            if entry.failed_start.take().is_none()
                && let Some(old) = entry.previous.replace(current)
            {
                let runtime = ctx.runtime.clone();
                blocking(move || runtime.remove(&old)).await;
            }
            entry.current = None;
            entry.restart_count += 1;
        } else if status.is_some() {
            return;
        } else {
            entry.current = None;
        }
    }
    // The image.
    let image = c.image.clone().unwrap_or_default();
    let policy = c
        .image_pull_policy
        .clone()
        .unwrap_or_else(|| "IfNotPresent".into());
    let present = {
        let images = ctx.images.clone();
        let image = image.clone();
        blocking(move || images.get(&image).ok()).await.flatten()
    };
    let resolved = match (policy.as_str(), present) {
        ("Never", None) => {
            let message =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            event(
                ctx,
                pod,
                Some(&c.name),
                EventType::Warning,
                "ErrImageNeverPull",
                &message,
            )
            .await;
            live.waiting
                .insert(c.name.clone(), ("ErrImageNeverPull".into(), Some(message)));
            return;
        }
        ("Always", _) | (_, None) => {
            let now_s = jiff::Timestamp::now().as_second();
            if entry.pull_not_before.is_some_and(|t| now_s < t) {
                let message = format!("Back-off pulling image \"{image}\"");
                if live.waiting.get(&c.name).map(|(r, _)| r.as_str()) != Some("ImagePullBackOff") {
                    event(
                        ctx,
                        pod,
                        Some(&c.name),
                        EventType::Normal,
                        "BackOff",
                        &message,
                    )
                    .await;
                }
                live.waiting
                    .insert(c.name.clone(), ("ImagePullBackOff".into(), Some(message)));
                return;
            }
            event(
                ctx,
                pod,
                Some(&c.name),
                EventType::Normal,
                "Pulling",
                &format!("Pulling image \"{image}\""),
            )
            .await;
            let (registries, missing) =
                crate::pullsecrets::registries_for(&ctx.client, pod, &ctx.registries).await;
            if !missing.is_empty() {
                let message = format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    missing.join(", ")
                );
                event(
                    ctx,
                    pod,
                    None,
                    EventType::Warning,
                    "FailedToRetrieveImagePullSecret",
                    &message,
                )
                .await;
            }
            let started = std::time::Instant::now();
            let images = ctx.images.clone();
            let name = image.clone();
            let pulled = blocking(move || images.pull(&name, &registries)).await;
            match pulled {
                Some(Ok(img)) => {
                    entry.pull_backoff = 0;
                    entry.pull_not_before = None;
                    let message = format!(
                        "Successfully pulled image \"{image}\" in {:.3}s",
                        started.elapsed().as_secs_f64()
                    );
                    event(
                        ctx,
                        pod,
                        Some(&c.name),
                        EventType::Normal,
                        "Pulled",
                        &message,
                    )
                    .await;
                    img
                }
                Some(Err(err)) => {
                    entry.pull_backoff = next_backoff(entry.pull_backoff);
                    entry.pull_not_before = Some(now_s + entry.pull_backoff as i64);
                    let message = format!("Failed to pull image \"{image}\": {err}");
                    event(
                        ctx,
                        pod,
                        Some(&c.name),
                        EventType::Warning,
                        "Failed",
                        &message,
                    )
                    .await;
                    event(
                        ctx,
                        pod,
                        Some(&c.name),
                        EventType::Warning,
                        "Failed",
                        "Error: ErrImagePull",
                    )
                    .await;
                    live.waiting
                        .insert(c.name.clone(), ("ErrImagePull".into(), Some(message)));
                    return;
                }
                None => return,
            }
        }
        (_, Some(img)) => {
            if entry.current.is_none() && entry.restart_count == 0 {
                let message = format!("Container image \"{image}\" already present on machine");
                event(
                    ctx,
                    pod,
                    Some(&c.name),
                    EventType::Normal,
                    "Pulled",
                    &message,
                )
                .await;
            }
            img
        }
    };
    entry.image_id = Some(format!(
        "{}/{}@{}",
        resolved.reference.registry(),
        resolved.reference.repository(),
        resolved.manifest_digest
    ));
    // The configuration.
    let env = match env::build(pod, c, &inputs.fetched, &ctx.allocatable) {
        Ok(env) => env,
        Err(err) => {
            refuse(
                ctx,
                pod,
                live,
                &c.name,
                "CreateContainerConfigError",
                err.to_string(),
            )
            .await;
            return;
        }
    };
    let mounts = {
        let dir = dir.to_path_buf();
        let c2 = c.clone();
        let volumes = live.volumes.clone();
        let env = env.clone();
        blocking(move || volumes::container_mounts(&dir, &c2, &volumes, &env)).await
    };
    let mounts = match mounts {
        Some(Ok(m)) => m,
        Some(Err(err)) => {
            refuse(
                ctx,
                pod,
                live,
                &c.name,
                "CreateContainerConfigError",
                err.to_string(),
            )
            .await;
            return;
        }
        None => return,
    };
    let id = container::runtime_id(&uid, &c.name, entry.restart_count);
    let config = container::config(
        pod,
        c,
        Inputs {
            id: id.clone(),
            env,
            mounts,
            namespaces: inputs.namespaces.clone(),
            cgroup_parent: inputs.cgroup.clone(),
            etc_dir: &inputs.etc_dir,
            seccomp_dir: &ctx.seccomp_dir,
            user_namespace: inputs.user_namespace,
        },
    );
    let config = match config {
        Ok(config) => config,
        Err(err) => {
            refuse(
                ctx,
                pod,
                live,
                &c.name,
                "CreateContainerConfigError",
                err.to_string(),
            )
            .await;
            return;
        }
    };
    // A leftover of a crashed attempt with the same id goes first.
    let runtime = ctx.runtime.clone();
    let created = blocking(move || {
        let _ = runtime.remove(&config.id);
        runtime.create(&config)?;
        runtime.start(&config.id)
    })
    .await;
    match created {
        Some(Ok(_pid)) => {
            event(
                ctx,
                pod,
                Some(&c.name),
                EventType::Normal,
                "Created",
                &format!("Created container: {}", c.name),
            )
            .await;
            event(
                ctx,
                pod,
                Some(&c.name),
                EventType::Normal,
                "Started",
                &format!("Started container {}", c.name),
            )
            .await;
            entry.current = Some(id);
            entry.spec_hash = Some(container::spec_hash(c));
            live.waiting.remove(&c.name);
            live.probes.insert(c.name.clone(), Probes::new(c));
            if !init && let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref())
            {
                let current = entry.current.clone().unwrap_or_default();
                if let Err(message) =
                    probe::run_hook(&ctx.runtime, &current, handler, &target(dir, pod)).await
                {
                    let message = format!("PostStartHook failed: {message}");
                    event(
                        ctx,
                        pod,
                        Some(&c.name),
                        EventType::Warning,
                        "FailedPostStartHook",
                        &message,
                    )
                    .await;
                    let runtime = ctx.runtime.clone();
                    blocking(move || runtime.kill(&current, nix::sys::signal::Signal::SIGKILL))
                        .await;
                }
            }
        }
        // The command is not in the image: a run that ended at once, as
        // containerd reports it (the pod's restartPolicy decides what next).
        Some(Err(err @ bulwark_runtime::RuntimeError::ExecutableNotFound(_))) => {
            let message = format!("failed to start container {:?}: {err}", c.name);
            event(
                ctx,
                pod,
                Some(&c.name),
                EventType::Warning,
                "Failed",
                &format!("Error: {message}"),
            )
            .await;
            live.waiting.remove(&c.name);
            entry.spec_hash = Some(container::spec_hash(c));
            entry.failed_start = Some(bulwark_runtime::ExitStatus {
                code: 128,
                signal: None,
                reason: "StartError".into(),
                started_at: "1970-01-01T00:00:00Z".into(),
                finished_at: now(),
            });
        }
        Some(Err(err)) => {
            refuse(
                ctx,
                pod,
                live,
                &c.name,
                "CreateContainerError",
                err.to_string(),
            )
            .await;
            // Counted as a failed run for the back-off.
            entry.backoff = next_backoff(entry.backoff);
        }
        None => {}
    }
}

/// The next restart or pull back-off: at once the first time, then 10 s
/// doubling to 5 min, as the kubelet's.
fn next_backoff(current: u64) -> u64 {
    if current == 0 {
        BACKOFF_INITIAL
    } else {
        (current * 2).min(BACKOFF_MAX)
    }
}

/// A container that cannot be started now: a Warning `Failed` event and the
/// waiting reason its status shows until the next attempt.
async fn refuse(
    ctx: &Ctx,
    pod: &Pod,
    live: &mut Live,
    container: &str,
    reason: &str,
    message: String,
) {
    event(
        ctx,
        pod,
        Some(container),
        EventType::Warning,
        "Failed",
        &format!("Error: {message}"),
    )
    .await;
    live.waiting
        .insert(container.to_owned(), (reason.to_owned(), Some(message)));
}

fn exit_of(id: &str, e: &bulwark_runtime::ExitStatus) -> Exit {
    Exit {
        code: e.code,
        signal: e.signal,
        reason: e.reason.clone(),
        started_at: e.started_at.clone(),
        finished_at: e.finished_at.clone(),
        container_id: id.to_owned(),
    }
}

fn parse_time(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

fn run_time(started: &str, finished: &str) -> Duration {
    match (parse_time(started), parse_time(finished)) {
        (Some(a), Some(b)) if b > a => Duration::from_secs((b - a) as u64),
        _ => Duration::ZERO,
    }
}

async fn probe_all(
    ctx: &Ctx,
    pod: &Pod,
    dir: &Path,
    record: &Record,
    live: &mut Live,
    containers: &[Container],
) {
    for c in containers {
        let Some(id) = record
            .containers
            .get(&c.name)
            .and_then(|r| r.current.clone())
        else {
            continue;
        };
        let Some(ContainerStatus::Running { started_at, .. }) = observe(ctx, record, &c.name).await
        else {
            continue;
        };
        let probes = live
            .probes
            .entry(c.name.clone())
            .or_insert_with(|| Probes::new(c));
        let outcome = probes
            .run(&ctx.runtime, &id, &started_at, &target(dir, pod))
            .await;
        for (reason, message) in outcome.events {
            event(
                ctx,
                pod,
                Some(&c.name),
                EventType::Warning,
                reason,
                &message,
            )
            .await;
        }
        if outcome.kill {
            let message = format!(
                "Container {} failed liveness probe, will be restarted",
                c.name
            );
            event(
                ctx,
                pod,
                Some(&c.name),
                EventType::Normal,
                "Killing",
                &message,
            )
            .await;
            stop_container(
                ctx,
                pod,
                record,
                c,
                Duration::from_secs(probe::liveness_grace(c, pod)),
            )
            .await;
            live.probes.insert(c.name.clone(), Probes::new(c));
        }
    }
}

/// preStop, SIGTERM, then SIGKILL after `grace`.
async fn stop_container(ctx: &Ctx, pod: &Pod, record: &Record, c: &Container, grace: Duration) {
    let Some(id) = record
        .containers
        .get(&c.name)
        .and_then(|r| r.current.clone())
    else {
        return;
    };
    let deadline = tokio::time::Instant::now() + grace;
    if let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
        let target = target(
            &ctx.pods_dir
                .join(pod.metadata.uid.clone().unwrap_or_default()),
            pod,
        );
        let hook = probe::run_hook(&ctx.runtime, &id, handler, &target);
        if let Ok(Err(message)) = tokio::time::timeout_at(deadline, hook).await {
            let message = format!("PreStopHook failed: {message}");
            event(
                ctx,
                pod,
                Some(&c.name),
                EventType::Warning,
                "FailedPreStopHook",
                &message,
            )
            .await;
        }
    }
    let runtime = ctx.runtime.clone();
    let target = id.clone();
    blocking(move || runtime.kill(&target, nix::sys::signal::Signal::SIGTERM)).await;
    loop {
        let runtime = ctx.runtime.clone();
        let target = id.clone();
        let status = blocking(move || runtime.status(&target).ok())
            .await
            .flatten();
        if !matches!(status, Some(ContainerStatus::Running { .. })) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let runtime = ctx.runtime.clone();
            let target = id.clone();
            blocking(move || runtime.kill(&target, nix::sys::signal::Signal::SIGKILL)).await;
            let runtime = ctx.runtime.clone();
            let target = id.clone();
            blocking(move || runtime.wait(&target, Duration::from_secs(10))).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops every container of the pod (preStop, grace, SIGKILL), removes
/// them, the volumes, the sandbox and the pod's directory. With `pod`
/// given (graceful deletion), reports the final status first.
async fn teardown(ctx: &Ctx, uid: &str, dir: &Path, pod: Option<&Pod>, live: &mut Live) {
    let mut record = Record::load(dir);
    if let Some(pod) = pod {
        let grace = Duration::from_secs(grace_seconds(pod));
        let spec = pod.spec.clone().unwrap_or_default();
        let mut stops = Vec::new();
        for c in &spec.containers {
            if matches!(
                observe(ctx, &record, &c.name).await,
                Some(ContainerStatus::Running { .. })
            ) {
                let message = format!("Stopping container {}", c.name);
                event(
                    ctx,
                    pod,
                    Some(&c.name),
                    EventType::Normal,
                    "Killing",
                    &message,
                )
                .await;
                stops.push(stop_container(ctx, pod, &record, c, grace));
            }
        }
        futures::future::join_all(stops).await;
        if record.terminal.is_none() {
            record.terminal = Some(String::new());
        }
        report(ctx, pod, &record, live, false, None).await;
    } else {
        // Gone from the API: nothing to report to; stop at once.
        for r in record.containers.values() {
            if let Some(id) = r.current.clone() {
                let runtime = ctx.runtime.clone();
                blocking(move || {
                    if matches!(runtime.status(&id), Ok(ContainerStatus::Running { .. })) {
                        let _ = runtime.kill(&id, nix::sys::signal::Signal::SIGKILL);
                        let _ = runtime.wait(&id, Duration::from_secs(10));
                    }
                })
                .await;
            }
        }
    }
    if let Some(network) = &ctx.network
        && let Err(err) = network.detach(uid).await
    {
        tracing::warn!(pod = uid, error = %err, "disconnecting the pod from the network");
    }
    let ids: Vec<String> = record
        .containers
        .values()
        .flat_map(|r| r.current.iter().chain(r.previous.iter()).cloned())
        .collect();
    let runtime = ctx.runtime.clone();
    let dir_owned = dir.to_path_buf();
    let pod_cgroup = pod.map(container::pod_cgroup);
    let done = blocking(move || -> Result<(), String> {
        for id in ids {
            match runtime.remove(&id) {
                Ok(()) | Err(bulwark_runtime::RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(format!("removing container {id}: {e}")),
            }
        }
        volumes::remove_all(&dir_owned).map_err(|e| format!("removing volumes: {e}"))?;
        sandbox::remove(&dir_owned.join("ns")).map_err(|e| format!("removing the sandbox: {e}"))?;
        if let Some(cgroup) = pod_cgroup {
            let _ = runtime.remove_pod_cgroup(&cgroup);
        }
        Ok(())
    })
    .await;
    match done {
        Some(Ok(())) if pod.is_none() => {
            if let Err(err) = std::fs::remove_dir_all(dir) {
                tracing::warn!(pod = uid, error = %err, "removing the pod directory");
            }
        }
        Some(Ok(())) => {
            record.containers.values_mut().for_each(|r| {
                r.previous = None;
            });
            let _ = record.save(dir);
        }
        Some(Err(err)) => tracing::warn!(pod = uid, error = %err, "tearing down the pod"),
        None => {}
    }
}

/// The final delete of a gracefully deleted pod, once its containers are
/// gone (the kubelet's part of graceful deletion).
async fn finish_delete(ctx: &Ctx, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    if let Err(err) = delete_now(&api, pod).await {
        tracing::warn!(pod = %pod.name_any(), error = %err, "deleting the pod");
    }
}

/// Deletes this very pod (its UID) at once; one already gone or replaced
/// by another of the same name is fine.
pub(crate) async fn delete_now(api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(err) => Err(err),
    }
}

/// Computes and writes the pod's status if it changed; returns the phase.
async fn report(
    ctx: &Ctx,
    pod: &Pod,
    record: &Record,
    live: &mut Live,
    sandbox_ready: bool,
    pod_ip: Option<&str>,
) -> &'static str {
    let spec = pod.spec.clone().unwrap_or_default();
    let restart_policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let mut init = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        init.push(view(ctx, record, live, c, true).await);
    }
    let mut containers = Vec::new();
    for c in &spec.containers {
        containers.push(view(ctx, record, live, c, false).await);
    }
    let phase = match record.terminal.as_deref() {
        Some(p @ ("Succeeded" | "Failed")) => {
            if p == "Succeeded" {
                "Succeeded"
            } else {
                "Failed"
            }
        }
        _ => status::phase(&restart_policy, &init, &containers),
    };
    let previous: Vec<Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let now = now();
    let mut conditions =
        status::conditions(sandbox_ready, phase, &init, &containers, &previous, &now);
    let ours = [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ];
    for c in &previous {
        if !ours.iter().any(|t| c["type"] == *t) {
            conditions.push(c.clone());
        }
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": ctx.node_ip,
        "hostIPs": [{"ip": ctx.node_ip}],
        "startTime": record.start_time,
        "qosClass": container::qos_class(pod).as_str(),
        "containerStatuses": containers.iter().map(ContainerView::to_json).collect::<Vec<_>>(),
    });
    if !init.is_empty() {
        status["initContainerStatuses"] =
            json!(init.iter().map(ContainerView::to_json).collect::<Vec<_>>());
    }
    if let Some(ip) = pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if let Some(eviction) = &record.evicted {
        status["reason"] = json!("Evicted");
        status["message"] = json!(eviction.message);
        if eviction.disruption
            && let Some(conditions) = status["conditions"].as_array_mut()
            && !conditions.iter().any(|c| c["type"] == "DisruptionTarget")
        {
            conditions.push(json!({
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "TerminationByKubelet",
                "message": eviction.message,
                "lastTransitionTime": now,
            }));
        }
    }
    // Unchanged: nothing to write — but a static pod's mirror may have
    // been replaced by a new one without it, so its status is written
    // again every little while.
    let mirror_due = crate::static_pods::is_static(pod)
        && live
            .last_report
            .is_none_or(|at| at.elapsed() >= STATIC_STATUS_REFRESH);
    if live.last_status.as_ref() == Some(&status) && !mirror_due {
        return phase;
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    // A static pod's status goes to its mirror, which has a UID of its own.
    let patch = if crate::static_pods::is_static(pod) {
        json!({ "status": status })
    } else {
        json!({
            "metadata": {"uid": pod.metadata.uid},
            "status": status,
        })
    };
    match api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            live.last_status = Some(status);
            live.last_report = Some(std::time::Instant::now());
        }
        Err(err) => tracing::debug!(pod = %pod.name_any(), error = %err, "pod status"),
    }
    phase
}

async fn view(ctx: &Ctx, record: &Record, live: &Live, c: &Container, init: bool) -> ContainerView {
    let r = record.containers.get(&c.name).cloned().unwrap_or_default();
    let observed = observe(ctx, record, &c.name).await;
    let waiting = live.waiting.get(&c.name).cloned();
    let state = match (&observed, waiting) {
        (Some(ContainerStatus::Running { started_at, .. }), _) => Observed::Running {
            started_at: started_at.clone(),
        },
        (Some(ContainerStatus::Exited(e)), None) => {
            Observed::Terminated(exit_of(r.current.as_deref().unwrap_or_default(), e))
        }
        (_, Some((reason, message))) => Observed::Waiting { reason, message },
        (Some(ContainerStatus::Created), None) | (None, None) => Observed::Waiting {
            reason: if init {
                "PodInitializing"
            } else {
                "ContainerCreating"
            }
            .into(),
            message: None,
        },
    };
    let probes = live.probes.get(&c.name);
    let running = matches!(state, Observed::Running { .. });
    let started = probes.is_none_or(Probes::started);
    let ready = running && started && probes.is_none_or(Probes::ready) && !init;
    ContainerView {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: r.image_id.clone(),
        container_id: r.current.clone().filter(|_| observed.is_some()),
        state,
        last: r.last.clone(),
        restart_count: r.restart_count,
        ready,
        started,
    }
}

/// Where the pod's network probes and hooks connect.
fn target(dir: &Path, pod: &Pod) -> probe::Target {
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    let host = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .filter(|ip| !ip.is_empty() && !host_network)
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    probe::Target {
        netns: (!host_network).then(|| dir.join("ns").join("net")),
        host,
    }
}

/// A pod this node runs, from its record (for `/stats/summary`).
#[derive(Clone, Debug)]
pub(crate) struct RecordedPod {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) start_time: Option<String>,
    /// (container name, runtime id of its current run).
    pub(crate) containers: Vec<(String, String)>,
}

/// The pods with records under `pods_dir` (their directories are named
/// by UID).
pub(crate) fn recorded_pods(pods_dir: &Path) -> Vec<RecordedPod> {
    let Ok(entries) = std::fs::read_dir(pods_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let record = Record::load(&entry.path());
            if record.name.is_empty() || record.terminal.is_some() {
                return None;
            }
            Some(RecordedPod {
                uid: entry.file_name().to_string_lossy().into_owned(),
                containers: record
                    .containers
                    .iter()
                    .filter_map(|(name, c)| Some((name.clone(), c.current.clone()?)))
                    .collect(),
                namespace: record.namespace,
                name: record.name,
                start_time: record.start_time,
            })
        })
        .collect()
}

/// The runtime id of a pod's container, current or previous run, found
/// from the pods' records (for the agent's API).
pub(crate) fn find_container(
    pods_dir: &Path,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Option<String> {
    std::fs::read_dir(pods_dir)
        .ok()?
        .flatten()
        .find_map(|entry| {
            let record = Record::load(&entry.path());
            if record.namespace != namespace || record.name != pod {
                return None;
            }
            let c = record.containers.get(container)?;
            if previous {
                c.previous.clone()
            } else {
                c.current.clone()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption, PodSpec};

    fn pod(policy: Option<&str>, host_network: bool, config: Option<PodDNSConfig>) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                namespace: Some("shop".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                dns_policy: policy.map(str::to_owned),
                host_network: Some(host_network),
                dns_config: config,
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn resolv_conf_follows_the_dns_policy() {
        let dns = Some(std::net::Ipv4Addr::new(10, 43, 0, 10));
        let text = |p: &Pod| String::from_utf8(resolv_conf(p, dns, "cluster.local")).unwrap();
        assert_eq!(
            text(&pod(None, false, None)),
            "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
        // hostNetwork pods fall back to the node's unless they ask.
        assert!(!text(&pod(None, true, None)).contains("10.43.0.10"));
        assert!(text(&pod(Some("ClusterFirstWithHostNet"), true, None)).contains("10.43.0.10"));
        let config = PodDNSConfig {
            nameservers: Some(vec!["1.1.1.1".into()]),
            searches: Some(vec!["example.com".into()]),
            options: Some(vec![PodDNSConfigOption {
                name: Some("ndots".into()),
                value: Some("2".into()),
            }]),
        };
        assert_eq!(
            text(&pod(Some("None"), false, Some(config.clone()))),
            "search example.com\nnameserver 1.1.1.1\noptions ndots:2\n"
        );
        let merged = text(&pod(None, false, Some(config)));
        assert!(
            merged.contains("nameserver 10.43.0.10\nnameserver 1.1.1.1"),
            "{merged}"
        );
        assert!(
            merged.contains("options ndots:2") && !merged.contains("ndots:5"),
            "{merged}"
        );
        // Without a cluster DNS, ClusterFirst is the node's.
        assert!(
            !String::from_utf8(resolv_conf(&pod(None, false, None), None, "cluster.local"))
                .unwrap()
                .contains("10.43.0.10")
        );
    }
}
