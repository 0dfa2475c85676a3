//! Admission: Pod Security (upstream's PodSecurity admission, through
//! `bulwark-psa`) with Bulwark's default — enforce `baseline`, warn and
//! audit `restricted` — and each namespace's `pod-security.kubernetes.io/*`
//! labels.

use std::collections::BTreeMap;
use std::sync::OnceLock;

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

fn config() -> &'static bulwark_psa::Config {
    static CONFIG: OnceLock<bulwark_psa::Config> = OnceLock::new();
    CONFIG.get_or_init(|| bulwark_psa::Config {
        kubernetes_minor: KUBERNETES_VERSION.1.parse().ok(),
        ..bulwark_psa::Config::default()
    })
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
    let decision = match (req.resource.kind, old) {
        ("Pod", None) => bulwark_psa::evaluate_pod(config(), namespace, labels, username, object),
        ("Pod", Some(old)) => {
            bulwark_psa::evaluate_pod_update(config(), namespace, labels, username, old, object)
        }
        _ => bulwark_psa::evaluate_workload(config(), namespace, labels, username, object),
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
