//! Admission: Pod Security (upstream's PodSecurity admission, through
//! `bulwark-psa`) with Bulwark's default — enforce `baseline`, warn and
//! audit `restricted` — and each namespace's `pod-security.kubernetes.io/*`
//! labels.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bulwark_store::StoreExt as _;
use serde_json::Value;

use crate::discovery::KUBERNETES_VERSION;
use crate::request::ResourceRequest;
use crate::status::{ApiError, ApiResult};

/// The kinds whose pod templates Pod Security checks (warn and audit only).
pub(crate) const WORKLOAD_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "PodTemplate",
];

/// Whether `req` writes something Pod Security looks at.
pub(crate) fn wants_namespace_labels(req: &ResourceRequest) -> bool {
    req.subresource.is_none()
        && req.namespace.is_some()
        && (req.resource.kind == "Pod" || WORKLOAD_KINDS.contains(&req.resource.kind))
}

/// Bulwark's Pod Security configuration when no admission configuration
/// file replaces it: enforce `baseline`, warn and audit `restricted`, no
/// exemptions.
pub(crate) fn default_config() -> bulwark_psa::Config {
    bulwark_psa::Config {
        kubernetes_minor: KUBERNETES_VERSION.1.parse().ok(),
        ..bulwark_psa::Config::default()
    }
}

fn config() -> &'static bulwark_psa::Config {
    static CONFIG: OnceLock<bulwark_psa::Config> = OnceLock::new();
    CONFIG.get_or_init(default_config)
}

/// The labels of a namespace object.
pub(crate) fn labels_of(namespace: &Value) -> BTreeMap<String, String> {
    namespace
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a pod (or a workload's template) being written; returns the
/// warnings to send, or the 403 upstream answers when `enforce` forbids it.
pub(crate) fn pod_security(
    req: &ResourceRequest,
    old: Option<&Value>,
    object: &Value,
) -> ApiResult<Vec<String>> {
    let (Some(labels), Some(namespace)) = (&req.namespace_labels, &req.namespace) else {
        return Ok(Vec::new());
    };
    let username = req.user.as_ref().map_or("", |u| u.username.as_str());
    let psa: &bulwark_psa::Config = match req.pod_security.as_deref() {
        Some(configured) => configured,
        None => config(),
    };
    let decision = match (req.resource.kind, old) {
        ("Pod", None) => bulwark_psa::evaluate_pod(psa, namespace, labels, username, object),
        ("Pod", Some(old)) => {
            bulwark_psa::evaluate_pod_update(psa, namespace, labels, username, old, object)
        }
        _ => bulwark_psa::evaluate_workload(psa, namespace, labels, username, object),
    };
    if !decision.allowed {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let message = decision
            .forbidden_status_message(name)
            .unwrap_or_else(|| format!("pods \"{name}\" is forbidden by PodSecurity"));
        return Err(ApiError::forbidden(message));
    }
    Ok(decision.warnings)
}

/// DenyServiceExternalIPs (CVE-2020-8554): a Service may not gain
/// `externalIPs` (anyone who may create Services could otherwise intercept
/// traffic to any address). IPs a Service already had may stay.
pub(crate) fn deny_external_ips(
    req: &ResourceRequest,
    old: Option<&Value>,
    object: &Value,
) -> ApiResult<()> {
    if req.resource.kind != "Service" || !req.resource.group.is_empty() {
        return Ok(());
    }
    let ips = |o: Option<&Value>| -> Vec<String> {
        o.and_then(|o| o.pointer("/spec/externalIPs"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = ips(old);
    if ips(Some(object)).iter().any(|ip| !before.contains(ip)) {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(ApiError::forbidden(format!(
            "services \"{name}\" is forbidden: externalIPs have been disabled"
        )));
    }
    Ok(())
}

/// How long pods tolerate a not-ready or unreachable node before the taint
/// eviction controller evicts them (DefaultTolerationSeconds, 300 s).
const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// DefaultTolerationSeconds (upstream's admission plugin, on by default):
/// a new pod without its own toleration of the `not-ready` / `unreachable`
/// NoExecute taints tolerates them for 300 s.
pub(crate) fn default_toleration_seconds(req: &ResourceRequest, pod: &mut Value) {
    if req.resource.kind != "Pod" || !req.resource.group.is_empty() {
        return;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let covered = list.iter().any(|t| {
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let tkey = t.get("key").and_then(Value::as_str).unwrap_or("");
            let exists_all =
                tkey.is_empty() && t.get("operator").and_then(Value::as_str) == Some("Exists");
            (tkey == key || exists_all) && (effect.is_empty() || effect == "NoExecute")
        });
        if !covered {
            list.push(serde_json::json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

/// The built-in PriorityClasses every cluster has (upstream creates them
/// as objects too; their values are fixed).
const SYSTEM_PRIORITIES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// Priority (upstream's admission plugin, on by default): a new pod's
/// `spec.priority` comes from its `priorityClassName` (or the global
/// default class, or 0); a pod may not set a priority of its own that
/// disagrees, and a class that does not exist is refused.
pub(crate) async fn pod_priority(
    api: &crate::handlers::Api,
    req: &ResourceRequest,
    pod: &mut Value,
) -> ApiResult<()> {
    let store = &*api.store;
    if req.resource.kind != "Pod" || !req.resource.group.is_empty() {
        return Ok(());
    }
    let class = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let (name, value, policy) = match class {
        Some(name) => {
            if let Some((_, value)) = SYSTEM_PRIORITIES.iter().find(|(n, _)| *n == name) {
                (Some(name), *value, None)
            } else {
                let kv = store
                    .get(&format!("/registry/priorityclasses/{name}"))
                    .await?
                    .ok_or_else(|| {
                        ApiError::forbidden(format!(
                            "pods \"{}\" is forbidden: no PriorityClass with name {name} was found",
                            pod.pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                        ))
                    })?;
                let class: Value = serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
                (
                    Some(name),
                    class.get("value").and_then(Value::as_i64).unwrap_or(0),
                    class.get("preemptionPolicy").cloned(),
                )
            }
        }
        None => match global_default(api).await? {
            Some((name, value, policy)) => (Some(name), value, policy),
            None => (None, 0, None),
        },
    };
    if let Some(given) = pod.pointer("/spec/priority").and_then(Value::as_i64)
        && given != value
    {
        return Err(ApiError::forbidden(format!(
            "pods \"{}\" is forbidden: the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name",
            pod.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        )));
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if let Some(name) = name {
        spec.insert("priorityClassName".into(), Value::String(name));
    }
    spec.insert("priority".into(), Value::from(value));
    if let Some(policy) = policy {
        spec.entry("preemptionPolicy").or_insert(policy);
    }
    Ok(())
}

/// The PriorityClass marked `globalDefault`, from the watch cache (every
/// pod create without a class asks; the store is read only if the cache is
/// somehow not started).
async fn global_default(
    api: &crate::handlers::Api,
) -> ApiResult<Option<(String, i64, Option<Value>)>> {
    const PREFIX: &str = "/registry/priorityclasses/";
    let classes: Vec<Arc<Value>> = match api.caches.objects(PREFIX) {
        Some(cached) => cached.iter().map(|c| Arc::new(c.value())).collect(),
        None => api
            .store
            .range(bulwark_store::Range::prefix(PREFIX))
            .await?
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok().map(Arc::new))
            .collect(),
    };
    for class in classes {
        if class.get("globalDefault").and_then(Value::as_bool) == Some(true) {
            let name = class
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            return Ok(Some((
                name,
                class.get("value").and_then(Value::as_i64).unwrap_or(0),
                class.get("preemptionPolicy").cloned(),
            )));
        }
    }
    Ok(None)
}
