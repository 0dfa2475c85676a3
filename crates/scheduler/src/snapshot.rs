//! The scheduler's view of the cluster: every node with the pods assigned
//! to it and their summed requests, kept current incrementally as the
//! watches report changes (upstream's cache and `NodeInfo`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};

use crate::interpod::PodAffinityInfo;
use crate::resources::{Resources, pod_non_zero_requests, pod_requests};
use crate::selectors::Selector;
use crate::workloads::{Workloads, controller_kind};

/// Nodes and the pods assigned to them, with precomputed requests.
///
/// The scheduler reads it for every pod; writers (watch events, the
/// scheduler's own assumptions) update one node at a time.
#[derive(Debug, Default)]
pub struct Snapshot {
    nodes: Vec<NodeInfo>,
    by_name: HashMap<String, usize>,
    /// Pod key (`namespace/name`) → node name, for pods of known and
    /// not-yet-known nodes alike.
    pod_node: HashMap<String, String>,
    /// Pods whose node has not been seen (yet), by node name.
    orphans: HashMap<String, Vec<PodInfo>>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Pods nominated to a node by preemption, waiting for their victims to
    /// go: node name → pods, and pod key → node name.
    nominated: HashMap<String, Vec<PodInfo>>,
    nominated_of: HashMap<String, String>,
    /// Image name → how many nodes have it (ImageLocality's spread).
    image_nodes: HashMap<String, usize>,
    pub(crate) workloads: Workloads,
}

/// A node and what is assigned to it.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    pub(crate) node: Arc<Node>,
    pub(crate) name: String,
    pub(crate) allocatable: Resources,
    pub(crate) pods: Vec<PodInfo>,
    /// Sum of the pods' effective requests.
    pub(crate) requested: Resources,
    /// Sum of the pods' requests with missing CPU/memory counted as the
    /// scoring defaults.
    pub(crate) non_zero_requested: (i64, i64),
    /// Pods with any (anti-)affinity term, and with required anti-affinity.
    pub(crate) with_affinity: usize,
    pub(crate) with_required_anti_affinity: usize,
    /// `status.images`: each name → size in bytes (ImageLocality).
    pub(crate) images: HashMap<String, i64>,
}

/// A pod assigned to a node, with what the plugins need precomputed.
#[derive(Debug, Clone)]
pub(crate) struct PodInfo {
    pub(crate) pod: Arc<Pod>,
    pub(crate) key: String,
    pub(crate) requests: Resources,
    pub(crate) non_zero: (i64, i64),
    pub(crate) priority: i32,
    pub(crate) ports: Vec<HostPort>,
    pub(crate) affinity: Option<Arc<PodAffinityInfo>>,
}

/// A host port a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub(crate) ip: String,
    pub(crate) protocol: String,
    pub(crate) port: i32,
}

impl HostPort {
    /// Upstream's `HostPortInfo` conflict rule: same protocol and port, and
    /// the same IP or either side on the wildcard address.
    pub(crate) fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// The pod's `namespace/name`.
pub(crate) fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// `spec.priority`, 0 when unset.
pub(crate) fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

pub(crate) fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let mut out = Vec::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        for p in c.ports.iter().flatten() {
            if let Some(port) = p.host_port.filter(|p| *p > 0) {
                out.push(HostPort {
                    ip: p
                        .host_ip
                        .clone()
                        .filter(|ip| !ip.is_empty())
                        .unwrap_or_else(|| "0.0.0.0".into()),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    port,
                });
            }
        }
    }
    out
}

impl PodInfo {
    pub(crate) fn new(pod: Arc<Pod>) -> PodInfo {
        PodInfo {
            key: pod_key(&pod),
            requests: pod_requests(&pod),
            non_zero: pod_non_zero_requests(&pod),
            priority: priority(&pod),
            ports: host_ports(&pod),
            affinity: PodAffinityInfo::new(&pod).map(Arc::new),
            pod,
        }
    }

    pub(crate) fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    pub(crate) fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }

    pub(crate) fn terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }
}

impl NodeInfo {
    fn new(node: Arc<Node>) -> NodeInfo {
        let allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .map(Resources::from_list)
            .unwrap_or_default();
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            allocatable,
            images: node_images(&node),
            node,
            pods: Vec::new(),
            requested: Resources::default(),
            non_zero_requested: (0, 0),
            with_affinity: 0,
            with_required_anti_affinity: 0,
        }
    }

    pub(crate) fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.node.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }

    pub(crate) fn add_pod(&mut self, info: PodInfo) {
        self.requested.add(&info.requests);
        self.non_zero_requested.0 += info.non_zero.0;
        self.non_zero_requested.1 += info.non_zero.1;
        if let Some(a) = &info.affinity {
            self.with_affinity += 1;
            if !a.required_anti.is_empty() {
                self.with_required_anti_affinity += 1;
            }
        }
        self.pods.push(info);
    }

    pub(crate) fn remove_pod(&mut self, key: &str) -> Option<PodInfo> {
        let at = self.pods.iter().position(|p| p.key == key)?;
        let info = self.pods.swap_remove(at);
        self.requested.sub(&info.requests);
        self.non_zero_requested.0 -= info.non_zero.0;
        self.non_zero_requested.1 -= info.non_zero.1;
        if let Some(a) = &info.affinity {
            self.with_affinity -= 1;
            if !a.required_anti.is_empty() {
                self.with_required_anti_affinity -= 1;
            }
        }
        Some(info)
    }
}

impl Snapshot {
    /// An empty cluster.
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Adds a node, or replaces it keeping its pods. Returns whether the
    /// change can make a pod schedulable (a new node, or a change of its
    /// allocatable, labels, taints or `unschedulable`), so that heartbeats
    /// do not wake every waiting pod.
    pub fn set_node(&mut self, node: Node) -> bool {
        let mut info = NodeInfo::new(Arc::new(node));
        for name in info.images.keys() {
            *self.image_nodes.entry(name.clone()).or_default() += 1;
        }
        match self.by_name.get(&info.name) {
            Some(&i) => {
                let old = &mut self.nodes[i];
                for name in old.images.keys() {
                    forget_image(&mut self.image_nodes, name);
                }
                old.images = info.images;
                let spec = |n: &Node| n.spec.as_ref().map(|s| (s.taints.clone(), s.unschedulable));
                let relevant = old.allocatable != info.allocatable
                    || old.node.metadata.labels != info.node.metadata.labels
                    || spec(&old.node) != spec(&info.node);
                old.allocatable = info.allocatable;
                old.node = info.node;
                relevant
            }
            None => {
                for p in self.orphans.remove(&info.name).unwrap_or_default() {
                    info.add_pod(p);
                }
                self.by_name.insert(info.name.clone(), self.nodes.len());
                self.nodes.push(info);
                true
            }
        }
    }

    /// Removes a node; its pods wait for it to come back (or for their own
    /// deletion).
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.by_name.remove(name) else {
            return;
        };
        let info = self.nodes.swap_remove(i);
        for name in info.images.keys() {
            forget_image(&mut self.image_nodes, name);
        }
        if let Some(moved) = self.nodes.get(i) {
            self.by_name.insert(moved.name.clone(), i);
        }
        if !info.pods.is_empty() {
            self.orphans.insert(info.name, info.pods);
        }
    }

    /// Records a pod assigned to a node (`spec.nodeName` set), replacing an
    /// earlier version of it. Pods without a node are ignored.
    pub fn add_pod(&mut self, pod: Pod) {
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return;
        };
        let info = PodInfo::new(Arc::new(pod));
        self.remove_key(&info.key);
        self.pod_node.insert(info.key.clone(), node.clone());
        match self.by_name.get(&node) {
            Some(&i) => self.nodes[i].add_pod(info),
            None => self.orphans.entry(node).or_default().push(info),
        }
    }

    /// Records `pod` as running on `node` before the API says so (the
    /// scheduler's assumption while it binds).
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        let mut pod = pod.clone();
        pod.spec.get_or_insert_default().node_name = Some(node.to_owned());
        self.add_pod(pod);
    }

    /// Forgets a pod (deleted, finished, or an assumption that failed).
    pub fn remove_pod(&mut self, namespace: &str, name: &str) {
        self.remove_key(&format!("{namespace}/{name}"));
    }

    /// Whether the snapshot holds the pod, and on which node.
    pub fn node_of(&self, namespace: &str, name: &str) -> Option<&str> {
        self.pod_node
            .get(&format!("{namespace}/{name}"))
            .map(String::as_str)
    }

    /// Records a namespace's labels (for affinity terms' `namespaceSelector`).
    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) {
        self.namespaces.insert(name.to_owned(), labels);
    }

    /// Records a Service's selector (for default topology spreading).
    pub fn set_service(&mut self, service: &Service) {
        self.workloads.set_service(
            service.metadata.namespace.as_deref().unwrap_or("default"),
            service.metadata.name.as_deref().unwrap_or(""),
            service.spec.as_ref().and_then(|s| s.selector.clone()),
        );
    }

    /// Forgets a Service.
    pub fn remove_service(&mut self, namespace: &str, name: &str) {
        self.workloads.remove_service(namespace, name);
    }

    /// Records the selector of a workload controlling pods — a
    /// ReplicaSet, StatefulSet or ReplicationController — for default
    /// topology spreading. Other kinds are ignored.
    pub fn set_controller<K>(&mut self, controller: &K)
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize,
    {
        let Some(kind) = controller_kind(&K::api_version(&()), &K::kind(&())) else {
            return;
        };
        // The three kinds keep their selector at `spec.selector`: a label
        // selector, or (ReplicationController) a map of labels.
        let selector = serde_json::to_value(controller)
            .ok()
            .and_then(|v| v.pointer("/spec/selector").cloned());
        let selector = match selector {
            Some(serde_json::Value::Object(m)) if kind == "ReplicationController" => {
                let labels: BTreeMap<String, String> = m
                    .into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                    .collect();
                Selector::from_labels(&labels)
            }
            Some(v) => Selector::new(serde_json::from_value(v).ok().as_ref()),
            None => Selector::nothing(),
        };
        let meta = controller.meta();
        self.workloads.set_controller(
            kind,
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or(""),
            selector,
        );
    }

    /// Forgets a workload recorded by [`Snapshot::set_controller`].
    pub fn remove_controller<K>(&mut self, namespace: &str, name: &str)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        if let Some(kind) = controller_kind(&K::api_version(&()), &K::kind(&())) {
            self.workloads.remove_controller(kind, namespace, name);
        }
    }

    /// Forgets a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Records that a pending pod waits for room on `node` (its
    /// `status.nominatedNodeName`), or that it no longer does (`None`).
    /// Pods of lower priority are scheduled as if it were there already.
    pub fn nominate(&mut self, pod: &Pod, node: Option<&str>) {
        let key = pod_key(pod);
        self.clear_nomination(&key);
        if let Some(node) = node.filter(|n| !n.is_empty()) {
            self.nominated_of.insert(key, node.to_owned());
            self.nominated
                .entry(node.to_owned())
                .or_default()
                .push(PodInfo::new(Arc::new(pod.clone())));
        }
    }

    fn clear_nomination(&mut self, key: &str) {
        if let Some(node) = self.nominated_of.remove(key)
            && let Some(list) = self.nominated.get_mut(&node)
        {
            list.retain(|p| p.key != key);
            if list.is_empty() {
                self.nominated.remove(&node);
            }
        }
    }

    pub(crate) fn nominated_on(&self, node: &str) -> &[PodInfo] {
        if self.nominated.is_empty() {
            return &[];
        }
        self.nominated.get(node).map_or(&[], Vec::as_slice)
    }

    fn remove_key(&mut self, key: &str) {
        self.clear_nomination(key);
        let Some(node) = self.pod_node.remove(key) else {
            return;
        };
        match self.by_name.get(&node) {
            Some(&i) => {
                self.nodes[i].remove_pod(key);
            }
            None => {
                if let Some(list) = self.orphans.get_mut(&node) {
                    list.retain(|p| p.key != key);
                    if list.is_empty() {
                        self.orphans.remove(&node);
                    }
                }
            }
        }
    }

    pub(crate) fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn namespace_labels(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(name)
    }
}

impl Snapshot {
    pub(crate) fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.name.as_str())
    }

    /// How many nodes have the image; 0 when none does.
    pub(crate) fn image_node_count(&self, name: &str) -> usize {
        self.image_nodes.get(name).copied().unwrap_or(0)
    }

    pub(crate) fn has_images(&self) -> bool {
        !self.image_nodes.is_empty()
    }

    pub(crate) fn node_of_key(&self, key: &str) -> Option<&str> {
        self.pod_node.get(key).map(String::as_str)
    }

    pub(crate) fn pod_keys(&self) -> impl Iterator<Item = &str> {
        self.pod_node.keys().map(String::as_str)
    }
}

fn node_images(node: &Node) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for image in node.status.iter().flat_map(|s| s.images.iter().flatten()) {
        for name in image.names.iter().flatten() {
            out.insert(name.clone(), image.size_bytes.unwrap_or(0));
        }
    }
    out
}

fn forget_image(counts: &mut HashMap<String, usize>, name: &str) {
    if let Some(n) = counts.get_mut(name) {
        *n -= 1;
        if *n == 0 {
            counts.remove(name);
        }
    }
}
