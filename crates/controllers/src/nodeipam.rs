//! Node IPAM: every Node gets a `spec.podCIDR` (and `spec.podCIDRs`) of
//! its own, carved from the cluster CIDR, as upstream's node-ipam-controller
//! does with the range allocator (`--allocate-node-cidrs`). Runs with the
//! `node-controller` service account, as upstream.
//!
//! The table of ranges in use lives only in memory and is rebuilt from the
//! Nodes at start (a node's podCIDR is its own record of the allocation),
//! so a restart never hands a range out twice. A deleted Node's range is
//! free again; when none is left, the Node gets upstream's
//! `CIDRNotAvailable` Event and waits for one to be freed.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::informer::Change;
use crate::queue::{Next, WorkQueue, run_workers};
use bulwark_client::events::EventType;

/// Why a cluster CIDR and node mask size cannot be used together.
pub(crate) fn validate(cluster: Ipv4Net, mask: u8) -> Result<(), String> {
    if mask < cluster.prefix_len() || mask > 30 {
        return Err(format!(
            "node CIDR mask size /{mask} must be between the cluster CIDR's /{} and /30",
            cluster.prefix_len()
        ));
    }
    // As upstream: at most 2^16 node ranges.
    if mask - cluster.prefix_len() > 16 {
        return Err(format!(
            "cluster CIDR {cluster} with node CIDR mask size /{mask} makes more than 65536 node ranges; use a larger mask size"
        ));
    }
    Ok(())
}

/// The node ranges of a cluster CIDR: which are taken, which comes next.
/// No IO.
#[derive(Debug)]
pub(crate) struct CidrSet {
    cluster: Ipv4Net,
    mask: u8,
    used: BTreeSet<u32>,
    /// Where the search for a free range starts: after the last one handed
    /// out, so a just-freed range is not reused at once.
    next: u32,
}

impl CidrSet {
    pub(crate) fn new(cluster: Ipv4Net, mask: u8) -> Self {
        Self {
            cluster: cluster.trunc(),
            mask,
            used: BTreeSet::new(),
            next: 0,
        }
    }

    fn count(&self) -> u32 {
        1 << (self.mask - self.cluster.prefix_len())
    }

    fn index(&self, range: Ipv4Net) -> Option<u32> {
        (range.prefix_len() == self.mask && self.cluster.contains(&range)).then(|| {
            (u32::from(range.network()) - u32::from(self.cluster.network())) >> (32 - self.mask)
        })
    }

    fn range(&self, index: u32) -> Ipv4Net {
        let network = u32::from(self.cluster.network()) + (index << (32 - self.mask));
        Ipv4Net::new(Ipv4Addr::from(network), self.mask).expect("mask was validated")
    }

    /// Marks `range` taken; false when it is not one of this set's ranges.
    pub(crate) fn occupy(&mut self, range: Ipv4Net) -> bool {
        self.index(range).map(|i| self.used.insert(i)).is_some()
    }

    pub(crate) fn release(&mut self, range: Ipv4Net) {
        if let Some(i) = self.index(range) {
            self.used.remove(&i);
        }
    }

    /// The next free range, now taken; `None` when every range is.
    pub(crate) fn allocate(&mut self) -> Option<Ipv4Net> {
        let count = self.count();
        let index = (0..count)
            .map(|offset| (self.next + offset) % count)
            .find(|i| !self.used.contains(i))?;
        self.used.insert(index);
        self.next = (index + 1) % count;
        Some(self.range(index))
    }
}

/// Which node holds which range.
#[derive(Debug)]
struct Allocations {
    set: CidrSet,
    by_node: HashMap<String, Ipv4Net>,
}

impl Allocations {
    /// `node` holds `range` (its spec says so).
    fn observe(&mut self, node: &str, range: Ipv4Net) {
        if let Some(previous) = self.by_node.insert(node.to_owned(), range)
            && previous != range
        {
            self.release_unless_held(previous);
        }
        if !self.set.occupy(range) {
            tracing::warn!(node, %range, cluster_cidr = %self.set.cluster, "node's podCIDR is not a range of the cluster CIDR");
        }
    }

    /// `node` is gone: its range is free unless another node claims it too.
    fn forget(&mut self, node: &str) -> bool {
        match self.by_node.remove(node) {
            Some(range) => {
                self.release_unless_held(range);
                true
            }
            None => false,
        }
    }

    fn release_unless_held(&mut self, range: Ipv4Net) {
        if !self.by_node.values().any(|r| *r == range) {
            self.set.release(range);
        }
    }

    /// The range for `node`: the one already picked for it, or a new one.
    fn allocate(&mut self, node: &str) -> Option<Ipv4Net> {
        if let Some(range) = self.by_node.get(node) {
            return Some(*range);
        }
        let range = self.set.allocate()?;
        self.by_node.insert(node.to_owned(), range);
        Some(range)
    }
}

/// The node's IPv4 pod CIDR, if its spec names one.
fn pod_cidr(node: &Node) -> Option<Ipv4Net> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidrs
        .iter()
        .flatten()
        .chain(spec.pod_cidr.iter())
        .find_map(|c| c.parse::<Ipv4Net>().ok())
}

pub(crate) async fn run(cx: Context) {
    let Some(cluster) = cx.cluster_cidr else {
        // Not allocating node CIDRs (upstream: --allocate-node-cidrs=false).
        return std::future::pending().await;
    };
    let mask = cx.node_cidr_mask_size;
    let nodes = cx.informers.get::<Node>();
    let mut changes = nodes.subscribe();
    nodes.ready().await;
    let allocations = Arc::new(Mutex::new(Allocations {
        set: CidrSet::new(cluster, mask),
        by_node: HashMap::new(),
    }));
    let queue = WorkQueue::<String>::new();
    // Every range in use is known before the first is handed out.
    let observe_all = {
        let (queue, nodes, allocations) =
            (Arc::clone(&queue), nodes.clone(), Arc::clone(&allocations));
        move || {
            let all = nodes.store().state();
            let mut table = allocations.lock().unwrap_or_else(PoisonError::into_inner);
            for node in &all {
                if let Some(range) = pod_cidr(node) {
                    table.observe(&node.name_any(), range);
                }
            }
            let known: Vec<String> = table.by_node.keys().cloned().collect();
            drop(table);
            for node in &all {
                if pod_cidr(node).is_none() {
                    queue.add(node.name_any());
                }
            }
            // Nodes that may have been deleted while the watch was down.
            for name in known {
                queue.add(name);
            }
        }
    };
    observe_all();
    let feeder = {
        let (queue, allocations) = (Arc::clone(&queue), Arc::clone(&allocations));
        async move {
            loop {
                match changes.next().await {
                    Some(Change::Applied(node)) => match pod_cidr(&node) {
                        Some(range) => allocations
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .observe(&node.name_any(), range),
                        None => queue.add(node.name_any()),
                    },
                    Some(Change::Deleted(node)) => queue.add(node.name_any()),
                    Some(Change::Resynced) => observe_all(),
                    None => return,
                }
            }
        }
    };
    let reconcile = {
        let queue = Arc::clone(&queue);
        move |name: String| {
            let (cx, nodes, allocations, queue) = (
                cx.clone(),
                nodes.clone(),
                Arc::clone(&allocations),
                Arc::clone(&queue),
            );
            async move { reconcile(&cx, &nodes, &allocations, &queue, &name).await }
        }
    };
    tokio::join!(
        feeder,
        run_workers("node-ipam-controller", queue, 1, reconcile)
    );
}

async fn reconcile(
    cx: &Context,
    nodes: &crate::informer::Informer<Node>,
    allocations: &Mutex<Allocations>,
    queue: &Arc<WorkQueue<String>>,
    name: &str,
) -> Result<Next, kube::Error> {
    let api: Api<Node> = Api::all(cx.client.clone());
    let node = match nodes.store().get(&ObjectRef::new(name)) {
        Some(node) => node,
        // Absent from the cache: confirm before freeing its range.
        None => match api.get_opt(name).await? {
            Some(node) => Arc::new(node),
            None => {
                let freed = allocations
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .forget(name);
                if freed {
                    tracing::debug!(node = name, "node deleted; its pod CIDR is free");
                    wake_waiting(nodes, queue);
                }
                return Ok(Next::Done);
            }
        },
    };
    if let Some(range) = pod_cidr(&node) {
        allocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(name, range);
        return Ok(Next::Done);
    }
    if node.metadata.deletion_timestamp.is_some() {
        return Ok(Next::Done);
    }
    let Some(range) = allocations
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .allocate(name)
    else {
        let regarding = ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Node".to_owned()),
            name: Some(name.to_owned()),
            uid: node.metadata.uid.clone(),
            ..ObjectReference::default()
        };
        let message = format!("Node {name} status is now: CIDRNotAvailable");
        cx.recorder
            .publish(&regarding, EventType::Normal, "CIDRNotAvailable", &message)
            .await;
        tracing::info!(node = name, "no pod CIDR left for the node");
        return Ok(Next::Done);
    };
    // Pinned to the version read: if the node changed (another writer set
    // a podCIDR), the conflict sends it round again.
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "spec": {"podCIDR": range.to_string(), "podCIDRs": [range.to_string()]},
    });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(node = name, pod_cidr = %range, "allocated the node's pod CIDR");
            Ok(Next::Done)
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {
            allocations
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .forget(name);
            Ok(Next::Done)
        }
        // Keep the range picked for the node: the retry uses the same one.
        Err(err) => Err(err),
    }
}

/// A range was freed: nodes still waiting for one try again.
fn wake_waiting(nodes: &crate::informer::Informer<Node>, queue: &WorkQueue<String>) {
    for node in nodes.store().state() {
        if pod_cidr(&node).is_none() {
            queue.add(node.name_any());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_come_in_order_never_twice_and_run_out() {
        let mut set = CidrSet::new(net("10.42.0.0/22"), 24);
        assert!(set.occupy(net("10.42.1.0/24")));
        assert!(!set.occupy(net("10.43.0.0/24")), "outside the cluster CIDR");
        assert!(!set.occupy(net("10.42.0.0/25")), "not a node range");
        let got: Vec<_> = std::iter::from_fn(|| set.allocate()).collect();
        assert_eq!(
            got,
            [
                net("10.42.0.0/24"),
                net("10.42.2.0/24"),
                net("10.42.3.0/24")
            ]
        );
        set.release(net("10.42.2.0/24"));
        assert_eq!(set.allocate(), Some(net("10.42.2.0/24")));
        assert_eq!(set.allocate(), None);
    }

    #[test]
    fn a_freed_range_is_reused_after_the_others() {
        let mut set = CidrSet::new(net("10.42.0.0/16"), 24);
        let first = set.allocate().unwrap();
        set.release(first);
        assert_eq!(set.allocate(), Some(net("10.42.1.0/24")));
    }

    #[test]
    fn a_range_two_nodes_claim_stays_taken_until_both_are_gone() {
        let mut table = Allocations {
            set: CidrSet::new(net("10.42.0.0/23"), 24),
            by_node: HashMap::new(),
        };
        table.observe("a", net("10.42.0.0/24"));
        table.observe("b", net("10.42.0.0/24"));
        table.forget("a");
        assert_eq!(table.allocate("c"), Some(net("10.42.1.0/24")));
        assert_eq!(table.allocate("d"), None);
        table.forget("b");
        assert_eq!(table.allocate("d"), Some(net("10.42.0.0/24")));
        assert_eq!(
            table.allocate("d"),
            Some(net("10.42.0.0/24")),
            "same range on a retry"
        );
    }

    #[test]
    fn unusable_mask_sizes_are_refused() {
        assert!(validate(net("10.42.0.0/16"), 24).is_ok());
        assert_eq!(
            validate(net("10.42.0.0/16"), 8).unwrap_err(),
            "node CIDR mask size /8 must be between the cluster CIDR's /16 and /30"
        );
        assert!(
            validate(net("10.0.0.0/8"), 30)
                .unwrap_err()
                .contains("more than 65536")
        );
    }
}
