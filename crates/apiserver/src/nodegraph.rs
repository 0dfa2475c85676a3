//! The Node authorizer's graph: which pods are bound to which node, what each
//! references (Secrets, ConfigMaps, claims, its service account), and which
//! PersistentVolume each claim is bound to — kept current from store watches
//! of pods and PersistentVolumeClaims, as upstream's graph populator follows
//! its informers. `bulwark-rbac`'s `authorize_node` asks it through the
//! `NodeGraph` trait.
//!
//! Like upstream's, the graph trails the store by one watch event: a node
//! may see a 403 for a pod's Secret for a moment after the pod is bound.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use bulwark_rbac::{NodeGraph, PodReferences};
use bulwark_store::{EventKind, KeyValue, Range, Store};
use serde_json::Value;

const PODS: &str = "/registry/pods/";
const CLAIMS: &str = "/registry/persistentvolumeclaims/";

/// The graph, shared by the authorizer and the task that follows the store.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Pod key → (node name, what it references); pods without a node are
    /// not kept.
    pods: HashMap<String, (String, PodReferences)>,
    /// Node name → the keys of its pods.
    by_node: HashMap<String, BTreeMap<String, ()>>,
    /// Claim key (`<ns>/<name>`) → its bound volume.
    claims: HashMap<String, String>,
}

/// What the graph reads of a stored Pod: its name, namespace and spec.
/// The rest (its status, managedFields) is skipped while parsing, never
/// built: every pod write passes through here.
#[derive(serde::Deserialize)]
struct StoredPod {
    #[serde(default)]
    metadata: StoredMeta,
    #[serde(default)]
    spec: Value,
}

#[derive(serde::Deserialize, Default)]
struct StoredMeta {
    #[serde(default)]
    name: Value,
    #[serde(default)]
    namespace: Value,
}

impl StoredPod {
    /// The pod as JSON with just those parts, for `PodReferences`.
    fn into_value(self) -> Value {
        // Moved, not copied as `json!` would.
        let mut metadata = serde_json::Map::new();
        metadata.insert("name".to_owned(), self.metadata.name);
        metadata.insert("namespace".to_owned(), self.metadata.namespace);
        let mut pod = serde_json::Map::new();
        pod.insert("metadata".to_owned(), Value::Object(metadata));
        pod.insert("spec".to_owned(), self.spec);
        Value::Object(pod)
    }
}

impl State {
    fn remove_pod(&mut self, key: &str) {
        if let Some((node, _)) = self.pods.remove(key)
            && let Some(keys) = self.by_node.get_mut(&node)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_node.remove(&node);
            }
        }
    }

    fn put_pod(&mut self, key: &str, pod: &Value) {
        self.remove_pod(key);
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if node.is_empty() {
            return;
        }
        self.by_node
            .entry(node.to_owned())
            .or_default()
            .insert(key.to_owned(), ());
        self.pods.insert(
            key.to_owned(),
            (node.to_owned(), PodReferences::from_pod(pod)),
        );
    }

    fn put_claim(&mut self, key: &str, claim: &Value) {
        let id = claim_id(key);
        match claim.pointer("/spec/volumeName").and_then(Value::as_str) {
            Some(volume) if !volume.is_empty() => {
                self.claims.insert(id, volume.to_owned());
            }
            _ => {
                self.claims.remove(&id);
            }
        }
    }

    fn apply(&mut self, prefix: &str, kind: EventKind, kv: &KeyValue) {
        let value = || serde_json::from_slice::<Value>(&kv.value).ok();
        match (prefix, kind) {
            (PODS, EventKind::Put) => match serde_json::from_slice::<StoredPod>(&kv.value) {
                Ok(pod) => self.put_pod(&kv.key, &pod.into_value()),
                Err(_) => self.remove_pod(&kv.key),
            },
            (PODS, EventKind::Delete) => self.remove_pod(&kv.key),
            (_, EventKind::Put) => match value() {
                Some(claim) => self.put_claim(&kv.key, &claim),
                None => {
                    self.claims.remove(&claim_id(&kv.key));
                }
            },
            (_, EventKind::Delete) => {
                self.claims.remove(&claim_id(&kv.key));
            }
        }
    }
}

/// `/registry/persistentvolumeclaims/<ns>/<name>` → `<ns>/<name>`.
fn claim_id(key: &str) -> String {
    key.strip_prefix(CLAIMS).unwrap_or(key).to_owned()
}

impl NodeGraph for Graph {
    fn pods_on_node(&self, node: &str) -> Vec<PodReferences> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .by_node
            .get(node)
            .map(|keys| {
                keys.keys()
                    .filter_map(|key| state.pods.get(key).map(|(_, refs)| refs.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn volume_of_claim(&self, namespace: &str, claim: &str) -> Option<String> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.claims.get(&format!("{namespace}/{claim}")).cloned()
    }
}

impl Graph {
    /// Loads the graph from the store and starts the tasks that keep it
    /// current (they end when the graph is dropped).
    pub(crate) async fn start(
        store: Arc<dyn Store>,
    ) -> Result<Arc<Self>, bulwark_store::StoreError> {
        let graph = Arc::new(Graph::default());
        for prefix in [PODS, CLAIMS] {
            let from = graph.load(&*store, prefix).await?;
            tokio::spawn(follow(Arc::downgrade(&graph), store.clone(), prefix, from));
        }
        Ok(graph)
    }

    /// Replaces everything under `prefix` with the store's current state;
    /// returns the revision to watch from.
    async fn load(
        &self,
        store: &dyn Store,
        prefix: &str,
    ) -> Result<i64, bulwark_store::StoreError> {
        let page = store.range(Range::prefix(prefix)).await?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if prefix == PODS {
            state.pods.clear();
            state.by_node.clear();
        } else {
            state.claims.clear();
        }
        for kv in &page.kvs {
            state.apply(prefix, EventKind::Put, kv);
        }
        Ok(page.revision + 1)
    }
}

/// Applies every change under `prefix` from revision `from`; relists when
/// the watch ends (compaction, a slow-watcher cut-off).
async fn follow(
    graph: std::sync::Weak<Graph>,
    store: Arc<dyn Store>,
    prefix: &'static str,
    mut from: i64,
) {
    loop {
        match store.watch(Range::prefix(prefix), from).await {
            Ok(mut stream) => {
                while let Some(Ok(event)) = stream.next_event().await {
                    let Some(graph) = graph.upgrade() else { return };
                    from = event.revision() + 1;
                    graph
                        .state
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .apply(prefix, event.kind, &event.kv);
                }
            }
            Err(err) => tracing::warn!(%err, prefix, "node graph watch failed; relisting"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let Some(graph) = graph.upgrade() else { return };
        match graph.load(&*store, prefix).await {
            Ok(next) => from = next,
            Err(err) => tracing::warn!(%err, prefix, "node graph relist failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv(key: &str, value: &Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: serde_json::to_vec(value).expect("json").into(),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
        }
    }

    #[test]
    fn pods_follow_their_node_and_claims_their_volume() {
        let graph = Graph::default();
        let pod = |node: &str| {
            json!({"metadata": {"namespace": "ns", "name": "p",
                    "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
                "spec": {"nodeName": node, "volumes": [{"name": "v", "secret": {"secretName": "s"}}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready"}]}})
        };
        let key = "/registry/pods/ns/p";
        {
            let mut state = graph.state.write().expect("lock");
            state.apply(PODS, EventKind::Put, &kv(key, &pod("")));
        }
        assert!(
            graph.pods_on_node("n1").is_empty(),
            "an unbound pod is on no node"
        );
        {
            let mut state = graph.state.write().expect("lock");
            state.apply(PODS, EventKind::Put, &kv(key, &pod("n1")));
        }
        let on_node = graph.pods_on_node("n1");
        assert_eq!(on_node[0].secrets, vec!["s".to_owned()]);
        assert_eq!(
            (on_node[0].namespace.as_str(), on_node[0].name.as_str()),
            ("ns", "p")
        );
        {
            // A value that is not a pod's shape takes the pod out, and
            // panics nothing.
            let mut state = graph.state.write().expect("lock");
            state.apply(
                PODS,
                EventKind::Put,
                &kv(key, &json!({"metadata": 7, "spec": "x"})),
            );
        }
        assert!(graph.pods_on_node("n1").is_empty());
        {
            let mut state = graph.state.write().expect("lock");
            state.apply(PODS, EventKind::Put, &kv(key, &pod("n1")));
        }
        {
            let mut state = graph.state.write().expect("lock");
            state.apply(PODS, EventKind::Delete, &kv(key, &json!(null)));
        }
        assert!(
            graph.pods_on_node("n1").is_empty(),
            "a deleted pod leaves the graph"
        );

        let claim_key = "/registry/persistentvolumeclaims/ns/c";
        {
            let mut state = graph.state.write().expect("lock");
            state.apply(
                CLAIMS,
                EventKind::Put,
                &kv(claim_key, &json!({"spec": {"volumeName": "pv1"}})),
            );
        }
        assert_eq!(graph.volume_of_claim("ns", "c").as_deref(), Some("pv1"));
        {
            let mut state = graph.state.write().expect("lock");
            state.apply(CLAIMS, EventKind::Delete, &kv(claim_key, &json!(null)));
        }
        assert_eq!(graph.volume_of_claim("ns", "c"), None);
    }
}
