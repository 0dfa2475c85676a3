//! `metrics.k8s.io/v1beta1` (NodeMetrics, PodMetrics) for `kubectl top`,
//! built in: Bulwark has no aggregation layer, so instead of a
//! metrics-server the API server asks the agents' `/stats/summary` through
//! the same CA-verified client that carries `pods/log` and `exec`
//! (`nodeproxy.rs`), and answers in metrics-server's shapes. Authorization
//! is ordinary RBAC on `get`/`list` of `nodes` and `pods` in the
//! `metrics.k8s.io` group (the bootstrap `system:aggregated-metrics-reader`
//! role aggregates them into view, edit and admin, as upstream's
//! metrics-server manifests do).

use std::collections::HashMap;

use axum::response::{IntoResponse as _, Response};
use bulwark_store::{Range, Store};
use serde_json::{Value, json};

use crate::nodeproxy::KubeletClient;
use crate::status::ApiError;

/// The group and version served.
pub(crate) const GROUP: &str = "metrics.k8s.io";
const VERSION: &str = "v1beta1";

/// A metrics request: which resource, where, which object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MetricsRequest {
    /// `nodes` or `pods`.
    pub(crate) resource: &'static str,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
}

impl MetricsRequest {
    /// `get` for one object, else `list`.
    pub(crate) fn verb(&self) -> &'static str {
        if self.name.is_some() { "get" } else { "list" }
    }
}

/// Recognizes `/apis/metrics.k8s.io/v1beta1/{nodes[/n] | pods |
/// namespaces/{ns}/pods[/p]}`.
pub(crate) fn parse(path: &str) -> Option<MetricsRequest> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.as_slice() {
        ["apis", GROUP, VERSION, rest @ ..] if !rest.is_empty() => rest,
        _ => return None,
    };
    let owned = |s: &&str| Some((*s).to_owned());
    Some(match rest {
        ["nodes"] => MetricsRequest {
            resource: "nodes",
            namespace: None,
            name: None,
        },
        ["nodes", name] => MetricsRequest {
            resource: "nodes",
            namespace: None,
            name: owned(name),
        },
        ["pods"] => MetricsRequest {
            resource: "pods",
            namespace: None,
            name: None,
        },
        ["namespaces", ns, "pods"] => MetricsRequest {
            resource: "pods",
            namespace: owned(ns),
            name: None,
        },
        ["namespaces", ns, "pods", name] => MetricsRequest {
            resource: "pods",
            namespace: owned(ns),
            name: owned(name),
        },
        _ => return None,
    })
}

/// Serves a metrics request.
pub(crate) async fn serve(
    kubelet: &KubeletClient,
    store: &dyn Store,
    req: &MetricsRequest,
    query: &HashMap<String, String>,
) -> Response {
    match answer(kubelet, store, req, query).await {
        Ok(body) => (
            [(http::header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&body).unwrap_or_default(),
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}

async fn answer(
    kubelet: &KubeletClient,
    store: &dyn Store,
    req: &MetricsRequest,
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let selector = match query.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            bulwark_api::labels::LabelSelector::parse(s)
                .map_err(|e| ApiError::bad_request(format!("invalid labelSelector: {}", e.0)))?,
        ),
        None => None,
    };
    let nodes = list(store, "/registry/nodes/").await?;
    let selected = |object: &Value| {
        selector.as_ref().is_none_or(|s| {
            let labels = object
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            s.matches(&labels)
        })
    };
    if req.resource == "nodes" {
        let mut items = Vec::new();
        for node in nodes.iter().filter(|n| selected(n)) {
            let name = node.pointer("/metadata/name").and_then(Value::as_str);
            if req.name.is_some() && name != req.name.as_deref() {
                continue;
            }
            // A node whose agent does not answer is left out, as
            // metrics-server leaves out nodes it could not scrape.
            let Ok(summary) = crate::nodeproxy::agent_get(kubelet, node, "/stats/summary").await
            else {
                continue;
            };
            if let Some(item) = node_metrics(node, &summary) {
                items.push(item);
            }
        }
        return single_or_list(req, items, "NodeMetrics", "NodeMetricsList", "nodes");
    }
    let prefix = match &req.namespace {
        Some(ns) => format!("/registry/pods/{ns}/"),
        None => "/registry/pods/".to_owned(),
    };
    let pods: Vec<Value> = list(store, &prefix)
        .await?
        .into_iter()
        .filter(|p| {
            req.name.is_none()
                || p.pointer("/metadata/name").and_then(Value::as_str) == req.name.as_deref()
        })
        .filter(|p| selected(p))
        .collect();
    let wanted_nodes: std::collections::BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.pointer("/spec/nodeName").and_then(Value::as_str))
        .collect();
    let mut by_uid: HashMap<String, Value> = HashMap::new();
    for node in nodes.iter().filter(|n| {
        n.pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_some_and(|name| wanted_nodes.contains(name))
    }) {
        let Ok(summary) = crate::nodeproxy::agent_get(kubelet, node, "/stats/summary").await else {
            continue;
        };
        for stats in summary["pods"].as_array().into_iter().flatten() {
            if let Some(uid) = stats.pointer("/podRef/uid").and_then(Value::as_str) {
                by_uid.insert(uid.to_owned(), stats.clone());
            }
        }
    }
    let items: Vec<Value> = pods
        .iter()
        .filter_map(|pod| {
            let uid = pod.pointer("/metadata/uid").and_then(Value::as_str)?;
            pod_metrics(pod, by_uid.get(uid)?)
        })
        .collect();
    single_or_list(req, items, "PodMetrics", "PodMetricsList", "pods")
}

fn single_or_list(
    req: &MetricsRequest,
    mut items: Vec<Value>,
    kind: &str,
    list_kind: &str,
    resource: &str,
) -> Result<Value, ApiError> {
    if let Some(name) = &req.name {
        let mut item = items
            .pop()
            .ok_or_else(|| ApiError::not_found(resource, GROUP, name))?;
        item["kind"] = json!(kind);
        item["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
        return Ok(item);
    }
    Ok(json!({
        "kind": list_kind,
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {},
        "items": items,
    }))
}

async fn list(store: &dyn Store, prefix: &str) -> Result<Vec<Value>, ApiError> {
    let found = store.range(Range::prefix(prefix)).await?;
    Ok(found
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect())
}

/// Usage as metrics-server writes it: CPU in nanocores (`123n`), memory
/// in kibibytes (`456Ki`).
fn usage(stats: &Value) -> Option<Value> {
    let cores = stats
        .pointer("/cpu/usageNanoCores")
        .and_then(Value::as_u64)?;
    let memory = stats
        .pointer("/memory/workingSetBytes")
        .and_then(Value::as_u64)?;
    Some(json!({"cpu": format!("{cores}n"), "memory": format!("{}Ki", memory / 1024)}))
}

fn object_meta(object: &Value) -> Value {
    let meta = &object["metadata"];
    let mut out = json!({
        "name": meta["name"],
        "creationTimestamp": meta["creationTimestamp"],
    });
    if meta.get("namespace").is_some() {
        out["namespace"] = meta["namespace"].clone();
    }
    if meta.get("labels").is_some() {
        out["labels"] = meta["labels"].clone();
    }
    out
}

/// A NodeMetrics from the node and its agent's summary.
pub(crate) fn node_metrics(node: &Value, summary: &Value) -> Option<Value> {
    let stats = &summary["node"];
    Some(json!({
        "metadata": object_meta(node),
        "timestamp": stats.pointer("/cpu/time").cloned().unwrap_or(Value::Null),
        "window": "10s",
        "usage": usage(stats)?,
    }))
}

/// A PodMetrics from the pod and its entry in its agent's summary.
pub(crate) fn pod_metrics(pod: &Value, stats: &Value) -> Option<Value> {
    let containers: Vec<Value> = stats["containers"]
        .as_array()?
        .iter()
        .filter_map(|c| Some(json!({"name": c["name"], "usage": usage(c)?})))
        .collect();
    if containers.is_empty() {
        return None;
    }
    Some(json!({
        "metadata": object_meta(pod),
        "timestamp": stats.pointer("/cpu/time").cloned().unwrap_or(Value::Null),
        "window": "10s",
        "containers": containers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_resource_namespace_and_object() {
        let p = |path: &str| {
            parse(path).map(|r| (r.resource, r.namespace.clone(), r.name.clone(), r.verb()))
        };
        assert_eq!(
            p("/apis/metrics.k8s.io/v1beta1/nodes"),
            Some(("nodes", None, None, "list"))
        );
        assert_eq!(
            p("/apis/metrics.k8s.io/v1beta1/nodes/n1"),
            Some(("nodes", None, Some("n1".into()), "get"))
        );
        assert_eq!(
            p("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web"),
            Some(("pods", Some("shop".into()), Some("web".into()), "get"))
        );
        assert_eq!(
            p("/apis/metrics.k8s.io/v1beta1/pods"),
            Some(("pods", None, None, "list"))
        );
        // The group/version document itself is discovery's.
        assert_eq!(p("/apis/metrics.k8s.io/v1beta1"), None);
        assert_eq!(p("/apis/metrics.k8s.io/v1/nodes"), None);
        assert_eq!(p("/apis/metrics.k8s.io/v1beta1/secrets"), None);
    }

    #[test]
    fn summaries_become_metrics_server_shapes() {
        let summary = json!({
            "node": {"cpu": {"time": "2026-01-01T00:00:00Z", "usageNanoCores": 250_000_000u64},
                     "memory": {"workingSetBytes": 2_097_152u64}},
            "pods": [],
        });
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2025-01-01T00:00:00Z", "labels": {"a": "b"}}});
        assert_eq!(
            node_metrics(&node, &summary).unwrap(),
            json!({
                "metadata": {"name": "n1", "creationTimestamp": "2025-01-01T00:00:00Z", "labels": {"a": "b"}},
                "timestamp": "2026-01-01T00:00:00Z",
                "window": "10s",
                "usage": {"cpu": "250000000n", "memory": "2048Ki"},
            })
        );
        let pod =
            json!({"metadata": {"name": "web", "namespace": "shop", "creationTimestamp": null}});
        let stats = json!({
            "cpu": {"time": "t"},
            "containers": [
                {"name": "app", "cpu": {"usageNanoCores": 5u64}, "memory": {"workingSetBytes": 4096u64}},
                {"name": "no-figures-yet", "cpu": {}, "memory": {}},
            ],
        });
        let metrics = pod_metrics(&pod, &stats).unwrap();
        assert_eq!(
            metrics["containers"],
            json!([{"name": "app", "usage": {"cpu": "5n", "memory": "4Ki"}}])
        );
        assert_eq!(metrics["metadata"]["namespace"], "shop");
    }
}
