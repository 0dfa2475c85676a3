//! The agent's Node: registration, status (capacity, conditions, addresses,
//! `nodeInfo`) and the heartbeat Lease in `kube-node-lease`, as the kubelet
//! keeps them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::{Value, json};

use crate::eviction::{Met, Signal, Thresholds};
use crate::host::HostFacts;
/// The Kubernetes version the agent speaks (`kubeletVersion`).
pub const KUBELET_VERSION: &str = "v1.33.0";
/// The port of the agent's own API (`daemonEndpoints.kubeletEndpoint`).
pub const AGENT_PORT: u16 = 10250;
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The kubelet's `nodeLeaseDurationSeconds`.
const LEASE_DURATION_SECONDS: i32 = 40;

/// What the node says about itself.
#[derive(Clone, Debug)]
pub(crate) struct NodeIdentity {
    /// Node name.
    pub(crate) name: String,
    /// Its address for other nodes and the API server.
    pub(crate) ip: IpAddr,
    /// Extra labels set at registration.
    pub(crate) labels: BTreeMap<String, String>,
    /// Taints set at registration (`--register-with-taints`).
    pub(crate) taints: Vec<Taint>,
    /// Maximum pods (`maxPods`, 110 by default).
    pub(crate) max_pods: u32,
    /// The directory whose filesystem holds pods' ephemeral storage.
    pub(crate) state_dir: PathBuf,
    /// The port of the agent's API.
    pub(crate) port: u16,
    /// Hard eviction thresholds (kept out of allocatable).
    pub(crate) thresholds: Thresholds,
}

/// Pressure the node is under, as its conditions report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pressure {
    /// A memory threshold is met.
    pub(crate) memory: bool,
    /// A nodefs or imagefs threshold is met.
    pub(crate) disk: bool,
    /// The pid threshold is met.
    pub(crate) pid: bool,
}

impl Pressure {
    /// The pressure the thresholds met amount to.
    pub(crate) fn from_met(met: &[Met]) -> Pressure {
        let any = |signals: &[Signal]| met.iter().any(|m| signals.contains(&m.signal));
        Pressure {
            memory: any(&[Signal::MemoryAvailable]),
            disk: any(&[
                Signal::NodefsAvailable,
                Signal::NodefsInodesFree,
                Signal::ImagefsAvailable,
                Signal::ImagefsInodesFree,
            ]),
            pid: any(&[Signal::PidAvailable]),
        }
    }

    /// Reads the node's pressure now.
    pub(crate) fn read(identity: &NodeIdentity) -> Pressure {
        let observed = crate::eviction::observe(&identity.state_dir, &identity.state_dir);
        Pressure::from_met(&identity.thresholds.met(&observed))
    }
}

/// The Node object the agent registers.
pub(crate) fn node_object(identity: &NodeIdentity, facts: &HostFacts) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), identity.name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        (
            "kubernetes.io/arch".to_owned(),
            facts.architecture.to_owned(),
        ),
        ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
        (
            "beta.kubernetes.io/arch".to_owned(),
            facts.architecture.to_owned(),
        ),
    ]);
    labels.extend(identity.labels.clone());
    Node {
        metadata: ObjectMeta {
            name: Some(identity.name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_owned(),
                "true".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!identity.taints.is_empty()).then(|| identity.taints.clone()),
            ..NodeSpec::default()
        }),
        status: None,
    }
}

/// The node's status: capacity, allocatable, conditions, addresses, info.
pub(crate) fn node_status(
    identity: &NodeIdentity,
    facts: &HostFacts,
    pressure: Pressure,
    now: &str,
    transitions: &BTreeMap<String, (String, String)>,
) -> Value {
    let capacity = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", facts.memory_bytes / 1024),
        "ephemeral-storage": format!("{}Ki", facts.ephemeral_storage_bytes / 1024),
        "pods": identity.max_pods.to_string(),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    });
    let thresholds = &identity.thresholds;
    let memory = facts.memory_bytes.saturating_sub(
        thresholds
            .amount(Signal::MemoryAvailable, facts.memory_bytes)
            .unwrap_or(0),
    );
    let storage = facts.ephemeral_storage_bytes.saturating_sub(
        thresholds
            .amount(Signal::NodefsAvailable, facts.ephemeral_storage_bytes)
            .unwrap_or(0),
    );
    let allocatable = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", memory / 1024),
        "ephemeral-storage": storage.to_string(),
        "pods": identity.max_pods.to_string(),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    });
    let condition = |type_: &str, bad: bool, good: (&str, &str), worse: (&str, &str)| {
        let (reason, message) = if bad { worse } else { good };
        let status = if type_ == "Ready" {
            if bad { "False" } else { "True" }
        } else if bad {
            "True"
        } else {
            "False"
        };
        // lastTransitionTime moves only when the status does.
        let transition = match transitions.get(type_) {
            Some((old_status, time)) if old_status == status => time.clone(),
            _ => now.to_owned(),
        };
        json!({
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": transition,
        })
    };
    let conditions = vec![
        condition(
            "MemoryPressure",
            pressure.memory,
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
        ),
        condition(
            "DiskPressure",
            pressure.disk,
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
        ),
        condition(
            "PIDPressure",
            pressure.pid,
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
        ),
        condition(
            "Ready",
            false,
            ("KubeletReady", "kubelet is posting ready status"),
            ("KubeletNotReady", "kubelet is not ready"),
        ),
    ];
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": identity.ip.to_string()},
            {"type": "Hostname", "address": identity.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": identity.port}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.machine_id,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version,
            "osImage": facts.os_image,
            "containerRuntimeVersion": concat!("bulwark://", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": facts.architecture,
        },
    })
}

/// Registers the node (creating it, or taking over the existing object of
/// the same name, as a re-registering kubelet does) and writes its status.
pub(crate) async fn register(
    client: &kube::Client,
    identity: &NodeIdentity,
    facts: &HostFacts,
) -> Result<Node, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let wanted = node_object(identity, facts);
    match nodes.create(&PostParams::default(), &wanted).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {
            // The node exists: bring our labels onto it (others' stay).
            let patch = json!({"metadata": {"labels": wanted.metadata.labels}});
            nodes
                .patch(
                    &identity.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
        }
        Err(err) => return Err(err),
    }
    let status = node_status(
        identity,
        facts,
        Pressure::read(identity),
        &now(),
        &BTreeMap::new(),
    );
    nodes
        .patch_status(
            &identity.name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
}

/// Keeps the node's status current: conditions every `interval` (written
/// when they change, and at least every minute as a heartbeat for readers
/// that do not watch Leases).
pub(crate) async fn report_status(
    client: kube::Client,
    identity: NodeIdentity,
    facts: HostFacts,
    interval: Duration,
    mut pressures: tokio::sync::watch::Receiver<Pressure>,
) {
    let nodes: Api<Node> = Api::all(client);
    let mut last: Option<(Pressure, std::time::Instant)> = None;
    let mut transitions = BTreeMap::new();
    loop {
        // The eviction manager's observations, as they change.
        tokio::select! {
            changed = pressures.changed() => if changed.is_err() {
                tokio::time::sleep(interval).await;
            },
            () = tokio::time::sleep(interval) => {}
        }
        let pressure = *pressures.borrow_and_update();
        let due = match last {
            Some((old, at)) => old != pressure || at.elapsed() >= Duration::from_secs(60),
            None => true,
        };
        if !due {
            continue;
        }
        if let Ok(node) = nodes.get(&identity.name).await {
            transitions = current_transitions(&node);
        }
        let status = node_status(&identity, &facts, pressure, &now(), &transitions);
        match nodes
            .patch_status(
                &identity.name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await
        {
            Ok(_) => last = Some((pressure, std::time::Instant::now())),
            Err(err) => tracing::warn!(error = %err, "updating node status"),
        }
    }
}

fn current_transitions(node: &Node) -> BTreeMap<String, (String, String)> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|conditions| {
            conditions
                .iter()
                .filter_map(|c| {
                    let time = c.last_transition_time.as_ref()?;
                    Some((
                        c.type_.clone(),
                        (
                            c.status.clone(),
                            time.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        ),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Renews the node's Lease every `interval` (the kubelet's 10 s), creating
/// it owned by the Node so it goes with it.
pub(crate) async fn renew_lease(client: kube::Client, node: Node, interval: Duration) {
    let leases: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let name = node.name_any();
    loop {
        if let Err(err) = renew_once(&leases, &node, &name).await {
            tracing::warn!(error = %err, "renewing the node lease");
        }
        tokio::time::sleep(interval).await;
    }
}

async fn renew_once(leases: &Api<Lease>, node: &Node, name: &str) -> Result<(), kube::Error> {
    let now = MicroTime(jiff::Timestamp::now());
    match leases.get_opt(name).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(now);
            spec.holder_identity = Some(name.to_owned());
            spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
            leases
                .replace(name, &PostParams::default(), &lease)
                .await
                .map(drop)
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(LEASE_NAMESPACE.to_owned()),
                    owner_references: node.metadata.uid.as_ref().map(|uid| {
                        vec![OwnerReference {
                            api_version: "v1".to_owned(),
                            kind: "Node".to_owned(),
                            name: name.to_owned(),
                            uid: uid.clone(),
                            ..OwnerReference::default()
                        }]
                    }),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.to_owned()),
                    lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                    renew_time: Some(now),
                    ..LeaseSpec::default()
                }),
            };
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(drop)
        }
    }
}

/// Now, in the API's second-precision RFC 3339.
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> NodeIdentity {
        NodeIdentity {
            name: "n1".into(),
            ip: IpAddr::from([10, 0, 0, 5]),
            labels: BTreeMap::from([("role".into(), "edge".into())]),
            taints: Vec::new(),
            max_pods: 110,
            state_dir: PathBuf::from("/"),
            port: AGENT_PORT,
            thresholds: Thresholds::default(),
        }
    }

    fn facts() -> HostFacts {
        HostFacts {
            cpus: 4,
            memory_bytes: 8 * 1024 * 1024 * 1024,
            ephemeral_storage_bytes: 100 * 1024 * 1024 * 1024,
            kernel_version: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            machine_id: "abc".into(),
            boot_id: "def".into(),
            architecture: "amd64",
        }
    }

    #[test]
    fn allocatable_keeps_the_eviction_thresholds_out() {
        let status = node_status(
            &identity(),
            &facts(),
            Pressure::default(),
            "2026-01-01T00:00:00Z",
            &BTreeMap::new(),
        );
        assert_eq!(status["capacity"]["memory"], "8388608Ki");
        assert_eq!(status["allocatable"]["memory"], "8286208Ki");
        assert_eq!(status["allocatable"]["cpu"], "4");
        assert_eq!(status["allocatable"]["pods"], "110");
        assert_eq!(status["nodeInfo"]["kubeletVersion"], KUBELET_VERSION);
        assert_eq!(status["addresses"][0]["address"], "10.0.0.5");
    }

    #[test]
    fn conditions_say_what_upstream_says_and_keep_transition_times() {
        let transitions = BTreeMap::from([(
            "MemoryPressure".to_owned(),
            ("False".to_owned(), "2025-01-01T00:00:00Z".to_owned()),
        )]);
        let status = node_status(
            &identity(),
            &facts(),
            Pressure {
                disk: true,
                ..Pressure::default()
            },
            "2026-01-01T00:00:00Z",
            &transitions,
        );
        let conditions = status["conditions"].as_array().unwrap();
        let get = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap();
        assert_eq!(get("Ready")["status"], "True");
        assert_eq!(get("Ready")["reason"], "KubeletReady");
        assert_eq!(get("MemoryPressure")["status"], "False");
        assert_eq!(
            get("MemoryPressure")["lastTransitionTime"],
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(get("DiskPressure")["status"], "True");
        assert_eq!(get("DiskPressure")["reason"], "KubeletHasDiskPressure");
    }

    #[test]
    fn the_node_carries_the_well_known_labels() {
        let node = node_object(&identity(), &facts());
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        assert_eq!(labels["role"], "edge");
    }
}
