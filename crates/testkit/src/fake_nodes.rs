//! kwok-style fake nodes: Node objects with capacity that heartbeat through
//! Leases and play the kubelet's part for the pods bound to them (Running
//! and Ready at once; Job pods Succeeded after a while; deleted pods gone at
//! once), so the scheduler and controllers can be tested and measured at
//! scale without real machines. A node can be silenced to exercise node
//! lifecycle: it stops heartbeating and stops touching its pods.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeSpec, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};
use serde_json::json;

/// What the fake nodes look like.
#[derive(Clone, Debug)]
pub struct FakeNodeConfig {
    /// How many.
    pub count: usize,
    /// Names are `<prefix><index>`.
    pub prefix: String,
    /// CPU capacity (= allocatable), as a quantity.
    pub cpu: String,
    /// Memory capacity, as a quantity.
    pub memory: String,
    /// Pod capacity.
    pub pods: u32,
    /// Extra labels on every node (`kubernetes.io/hostname`, os and arch
    /// are always set).
    pub labels: BTreeMap<String, String>,
    /// How often Leases are renewed (the kubelet's 10 s).
    pub lease_interval: Duration,
    /// How long a Job's pod runs before it Succeeds.
    pub job_pod_run_time: Duration,
    /// Whether the nodes play the kubelet for pods bound to them (mark them
    /// Running and Ready). Scheduler benchmarks, like upstream's
    /// scheduler_perf, run without.
    pub run_pods: bool,
}

impl Default for FakeNodeConfig {
    fn default() -> Self {
        FakeNodeConfig {
            count: 3,
            prefix: "fake-node-".to_owned(),
            cpu: "32".to_owned(),
            memory: "256Gi".to_owned(),
            pods: 110,
            labels: BTreeMap::new(),
            lease_interval: Duration::from_secs(10),
            job_pod_run_time: Duration::from_secs(1),
            run_pods: true,
        }
    }
}

/// Running fake nodes; their loops stop when this is dropped (the Node
/// objects stay).
pub struct FakeNodes {
    names: Vec<String>,
    silent: Arc<Mutex<HashSet<String>>>,
    /// Revived nodes whose Ready condition is to be posted again.
    revived: Arc<Mutex<HashSet<String>>>,
    tasks: tokio::task::JoinSet<()>,
}

impl std::fmt::Debug for FakeNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeNodes")
            .field("count", &self.names.len())
            .finish_non_exhaustive()
    }
}

/// How many requests the fake nodes have in flight at once.
const CONCURRENCY: usize = 32;

impl FakeNodes {
    /// Registers the nodes (Ready, with Leases) and starts their loops.
    /// `client` needs to write nodes, leases and pods (an admin).
    pub async fn start(client: kube::Client, config: FakeNodeConfig) -> Result<Self, kube::Error> {
        let names: Vec<String> = (0..config.count)
            .map(|i| format!("{}{i}", config.prefix))
            .collect();
        futures::stream::iter(names.iter().enumerate())
            .map(|(index, name)| register(client.clone(), &config, index, name))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let silent = Arc::new(Mutex::new(HashSet::new()));
        let mut tasks = tokio::task::JoinSet::new();
        let revived = Arc::new(Mutex::new(HashSet::new()));
        tasks.spawn(heartbeat(
            client.clone(),
            names.clone(),
            Arc::clone(&silent),
            Arc::clone(&revived),
            config.lease_interval,
        ));
        if config.run_pods {
            tasks.spawn(kubelet(
                client,
                names.iter().cloned().collect(),
                Arc::clone(&silent),
                config.job_pod_run_time,
            ));
        }
        Ok(FakeNodes {
            names,
            silent,
            revived,
            tasks,
        })
    }

    /// The nodes' names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// `node` stops renewing its Lease and touching its pods, as a machine
    /// that lost power.
    pub fn silence(&self, node: &str) {
        self.silent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node.to_owned());
    }

    /// `node` comes back: it renews its Lease and posts Ready again.
    pub fn revive(&self, node: &str) {
        self.silent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(node);
        self.revived
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node.to_owned());
    }

    /// Stops every loop.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

fn is_silent(silent: &Mutex<HashSet<String>>, node: &str) -> bool {
    silent
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(node)
}

async fn register(
    client: kube::Client,
    config: &FakeNodeConfig,
    index: usize,
    name: &str,
) -> Result<(), kube::Error> {
    let mut labels = config.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), name.to_owned());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), "amd64".into());
    labels.insert("type".into(), "fake".into());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "kwok.x-k8s.io/node".to_owned(),
                "fake".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: None,
    };
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(err) => return Err(err),
    }
    let now = jiff::Timestamp::now().to_string();
    let capacity = json!({"cpu": config.cpu, "memory": config.memory, "pods": config.pods.to_string(), "ephemeral-storage": "100Gi"});
    let status = json!({"status": {
        "capacity": capacity,
        "allocatable": capacity,
        "addresses": [{"type": "InternalIP", "address": node_ip(index)}, {"type": "Hostname", "address": name}],
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status (fake)", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastHeartbeatTime": now, "lastTransitionTime": now},
        ],
        "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v1.33.0-fake", "kubeProxyVersion": "", "containerRuntimeVersion": "fake://0", "kernelVersion": "", "osImage": "fake", "machineID": "", "systemUUID": "", "bootID": ""},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    renew(&client, name).await
}

/// 10.0.x.y for node `index`.
fn node_ip(index: usize) -> String {
    format!("10.0.{}.{}", (index / 250) % 256, index % 250 + 1)
}

async fn renew(client: &kube::Client, node: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = MicroTime(jiff::Timestamp::now());
    let patch = json!({"spec": {"renewTime": now}});
    match leases
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.to_owned()),
                    namespace: Some("kube-node-lease".to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(node.to_owned()),
                    lease_duration_seconds: Some(40),
                    renew_time: Some(now),
                    ..LeaseSpec::default()
                }),
            };
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
        Err(err) => Err(err),
    }
}

async fn heartbeat(
    client: kube::Client,
    names: Vec<String>,
    silent: Arc<Mutex<HashSet<String>>>,
    revived: Arc<Mutex<HashSet<String>>>,
    interval: Duration,
) {
    // Revivals are noticed within a fraction of the lease interval.
    let mut tick = tokio::time::interval(interval.min(Duration::from_millis(500)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_renewal: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let back: Vec<String> = revived
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        for name in &back {
            let now = jiff::Timestamp::now().to_string();
            let ready = json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status (fake)", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastHeartbeatTime": now, "lastTransitionTime": now},
            ]}});
            let nodes: Api<Node> = Api::all(client.clone());
            let _ = nodes
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&ready))
                .await;
        }
        if last_renewal.is_some_and(|at| at.elapsed() < interval) && back.is_empty() {
            continue;
        }
        last_renewal = Some(tokio::time::Instant::now());
        futures::stream::iter(names.iter().filter(|n| !is_silent(&silent, n)))
            .for_each_concurrent(CONCURRENCY, |name| {
                let client = client.clone();
                async move {
                    if let Err(err) = renew(&client, name).await {
                        tracing::debug!(node = %name, error = %err, "fake node lease renewal failed");
                    }
                }
            })
            .await;
    }
}

/// Plays the kubelet for every pod bound to one of `nodes`.
async fn kubelet(
    client: kube::Client,
    nodes: HashSet<String>,
    silent: Arc<Mutex<HashSet<String>>>,
    job_run_time: Duration,
) {
    let pods: Api<Pod> = Api::all(client.clone());
    let ips = Arc::new(AtomicU32::new(0));
    let finishing = Arc::new(Mutex::new(HashSet::<String>::new()));
    let stream = watcher(pods, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    stream
        .for_each_concurrent(CONCURRENCY, |pod| {
            let (client, nodes, silent, ips, finishing) = (
                client.clone(),
                &nodes,
                &silent,
                Arc::clone(&ips),
                Arc::clone(&finishing),
            );
            async move {
                let Ok(pod) = pod else { return };
                let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                    return;
                };
                if !nodes.contains(&node) || is_silent(silent, &node) {
                    return;
                }
                if let Err(err) = act(&client, &pod, &ips, &finishing, job_run_time).await {
                    tracing::debug!(pod = %pod.name_any(), error = %err, "fake kubelet");
                }
            }
        })
        .await;
}

async fn act(
    client: &kube::Client,
    pod: &Pod,
    ips: &AtomicU32,
    finishing: &Arc<Mutex<HashSet<String>>>,
    job_run_time: Duration,
) -> Result<(), kube::Error> {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    if pod.metadata.deletion_timestamp.is_some() {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        return match api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(err) => Err(err),
        };
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match phase {
        None | Some("Pending") => {
            let n = ips.fetch_add(1, Ordering::Relaxed);
            let ip = format!("10.244.{}.{}", (n / 250) % 256, n % 250 + 1);
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&running_status(pod, &ip)),
            )
            .await?;
        }
        Some("Running") if owned_by_job(pod) => {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if !finishing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(uid.clone())
            {
                return Ok(());
            }
            let (api, finishing, pod) = (api.clone(), Arc::clone(finishing), pod.clone());
            tokio::spawn(async move {
                tokio::time::sleep(job_run_time).await;
                let _ = api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&succeeded_status(&pod)),
                    )
                    .await;
                finishing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&uid);
            });
        }
        _ => {}
    }
    Ok(())
}

fn owned_by_job(pod: &Pod) -> bool {
    pod.owner_references()
        .iter()
        .any(|o| o.kind == "Job" && o.controller == Some(true))
}

fn running_status(pod: &Pod, ip: &str) -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    let condition =
        |type_: &str| json!({"type": type_, "status": "True", "lastTransitionTime": now});
    let spec = pod.spec.clone().unwrap_or_default();
    let containers: Vec<_> = spec
        .containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "image": c.image, "imageID": "",
                "containerID": format!("fake://{}", c.name),
                "ready": true, "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    let init: Vec<_> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            json!({
                "name": c.name, "image": c.image, "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}},
            })
        })
        .collect();
    json!({"status": {
        "phase": "Running",
        "hostIP": "10.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "conditions": [
            condition("PodReadyToStartContainers"),
            condition("Initialized"),
            condition("Ready"),
            condition("ContainersReady"),
            condition("PodScheduled"),
        ],
        "containerStatuses": containers,
        "initContainerStatuses": init,
    }})
}

fn succeeded_status(pod: &Pod) -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    let not_ready = |type_: &str| json!({"type": type_, "status": "False", "reason": "PodCompleted", "lastTransitionTime": now});
    let containers: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            json!({
                "name": c.name, "image": c.image, "imageID": "",
                "containerID": format!("fake://{}", c.name),
                "ready": false, "started": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}},
            })
        })
        .collect();
    json!({"status": {
        "phase": "Succeeded",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "False", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "reason": "PodCompleted", "lastTransitionTime": now},
            not_ready("Ready"),
            not_ready("ContainersReady"),
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
        "containerStatuses": containers,
    }})
}
