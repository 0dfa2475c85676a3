//! ServiceAccount admission (upstream's `plugin/pkg/admission/serviceaccount`,
//! on by default, CIS 1.2.12), for new pods:
//! - `spec.serviceAccountName` defaults to `default`;
//! - the ServiceAccount must exist, else 403 `error looking up service
//!   account <ns>/<name>: serviceaccount "<name>" not found` (the `default`
//!   one is waited for a little, since its controller creates it with the
//!   namespace);
//! - unless the pod or its ServiceAccount says `automountServiceAccountToken:
//!   false`, a projected `kube-api-access-<5>` volume (token, the cluster CA
//!   from `kube-root-ca.crt`, the namespace) is added and mounted read-only
//!   at `/var/run/secrets/kubernetes.io/serviceaccount` in every container
//!   and init container that has nothing mounted there yet;
//! - the ServiceAccount's `imagePullSecrets` apply when the pod has none.
//!
//! Mirror pods (the kubelet's static pods) are left alone but may reference
//! neither service accounts, nor Secrets, nor token projections.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::handlers::Api;
use crate::request::ResourceRequest;
use crate::status::{ApiError, ApiResult};

/// Where the token volume is mounted.
pub(crate) const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token volume's name prefix.
const VOLUME_PREFIX: &str = "kube-api-access-";
/// The projected token's lifetime (upstream's `WarnOnlyBoundTokenExpirationSeconds`).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// The kubelet's annotation on mirror pods.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Admits a pod being created (other requests pass untouched).
pub(crate) async fn admit(api: &Api, req: &ResourceRequest, pod: &mut Value) -> ApiResult<()> {
    if req.resource.kind != "Pod" || !req.resource.group.is_empty() || req.subresource.is_some() {
        return Ok(());
    }
    let namespace = req.namespace.clone().unwrap_or_default();
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let forbidden =
        |why: String| ApiError::forbidden(format!("pods \"{pod_name}\" is forbidden: {why}"));
    if pod
        .pointer(&format!(
            "/metadata/annotations/{}",
            MIRROR_ANNOTATION.replace('/', "~1")
        ))
        .is_some()
    {
        return check_mirror_pod(pod).map_err(|why| forbidden(why.to_owned()));
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let account_name = match spec.get("serviceAccountName").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => {
            spec.insert("serviceAccountName".into(), json!("default"));
            "default".to_owned()
        }
    };
    let Some(account) = find_account(api, &namespace, &account_name).await? else {
        return Err(forbidden(format!(
            "error looking up service account {namespace}/{account_name}: serviceaccount \"{account_name}\" not found"
        )));
    };
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            account
                .get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if automount {
        mount_token(spec);
    }
    let has_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    if !has_pull_secrets
        && let Some(secrets) = account.get("imagePullSecrets").and_then(Value::as_array)
        && !secrets.is_empty()
    {
        let names: Vec<Value> = secrets
            .iter()
            .filter_map(|s| s.get("name"))
            .map(|name| json!({"name": name}))
            .collect();
        spec.insert("imagePullSecrets".into(), Value::Array(names));
    }
    Ok(())
}

/// The ServiceAccount, from the watch cache or the store; `default` is
/// retried for up to about two seconds, as upstream does, because the
/// ServiceAccount controller creates it just after its namespace.
async fn find_account(api: &Api, namespace: &str, name: &str) -> ApiResult<Option<Arc<Value>>> {
    let key = format!("/registry/serviceaccounts/{namespace}/{name}");
    let attempts = if name == "default" { 10 } else { 1 };
    let interval = Duration::from_millis(100 + rand::random_range(0..100));
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(interval).await;
        }
        if let Some(account) = crate::authn::lookup(api, &key).await? {
            return Ok(Some(account));
        }
    }
    Ok(None)
}

/// Adds the token volume and its mounts (upstream's `mountServiceAccountToken`).
fn mount_token(spec: &mut serde_json::Map<String, Value>) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|volumes| {
            volumes
                .iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .find(|name| name.starts_with(VOLUME_PREFIX))
                .map(str::to_owned)
        });
    let volume_name = existing.clone().unwrap_or_else(|| {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let suffix: String = (0..5)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect();
        format!("{VOLUME_PREFIX}{suffix}")
    });
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers {
            let Some(container) = container.as_object_mut() else {
                continue;
            };
            let mounts = container
                .entry("volumeMounts")
                .or_insert_with(|| Value::Array(Vec::new()));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            let taken = mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH));
            if !taken {
                mounts.push(mount.clone());
                mounted = true;
            }
        }
    }
    if existing.is_none() && mounted {
        let volumes = spec
            .entry("volumes")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(volumes) = volumes.as_array_mut() {
            volumes.push(token_volume(&volume_name));
        }
    }
}

/// The projected volume upstream's `TokenVolumeSource` describes.
fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_EXPIRATION_SECONDS}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// What a mirror pod may not reference.
fn check_mirror_pod(pod: &Value) -> Result<(), &'static str> {
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    if spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        return Err("a mirror pod may not reference service accounts");
    }
    let volumes = spec
        .get("volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let projections = || {
        volumes
            .iter()
            .filter_map(|v| v.pointer("/projected/sources").and_then(Value::as_array))
            .flatten()
    };
    let container_secret_refs = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|list| spec.get(*list).and_then(Value::as_array))
        .flatten()
        .any(|c| {
            let env = c.get("env").and_then(Value::as_array);
            let env_from = c.get("envFrom").and_then(Value::as_array);
            env.into_iter()
                .flatten()
                .any(|e| e.pointer("/valueFrom/secretKeyRef").is_some())
                || env_from
                    .into_iter()
                    .flatten()
                    .any(|e| e.get("secretRef").is_some())
        });
    let has_secrets = volumes.iter().any(|v| v.get("secret").is_some())
        || projections().any(|p| p.get("secret").is_some())
        || spec
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .is_some_and(|s| !s.is_empty())
        || container_secret_refs;
    if has_secrets {
        return Err("a mirror pod may not reference secrets");
    }
    if projections().any(|p| p.get("serviceAccountToken").is_some()) {
        return Err("a mirror pod may not use ServiceAccountToken volume projections");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn every_container_mounts_one_token_volume() {
        let mut s = spec(json!({
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "x", "mountPath": "/data"}]}],
        }));
        mount_token(&mut s);
        let volumes = s["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 1);
        let name = volumes[0]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(volumes[0], token_volume(name));
        for c in s["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(s["containers"].as_array().unwrap())
        {
            let mounts = c["volumeMounts"].as_array().unwrap();
            assert_eq!(
                mounts.last().unwrap(),
                &json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH})
            );
        }
    }

    #[test]
    fn a_container_with_its_own_mount_there_keeps_it() {
        let own = json!({"name": "mine", "mountPath": TOKEN_MOUNT_PATH});
        let mut s = spec(json!({"containers": [{"name": "a", "volumeMounts": [own]}]}));
        mount_token(&mut s);
        assert!(s.get("volumes").is_none(), "no container needs the volume");
        assert_eq!(s["containers"][0]["volumeMounts"], json!([own]));
    }

    #[test]
    fn mirror_pods_may_not_reference_accounts_or_secrets() {
        let pod = |spec: Value| json!({"spec": spec});
        assert!(check_mirror_pod(&pod(json!({"containers": [{"name": "a"}]}))).is_ok());
        assert!(check_mirror_pod(&pod(json!({"serviceAccountName": "x"}))).is_err());
        assert!(
            check_mirror_pod(&pod(
                json!({"volumes": [{"name": "s", "secret": {"secretName": "x"}}]})
            ))
            .is_err()
        );
        assert!(
            check_mirror_pod(&pod(json!({"volumes": [{"name": "t", "projected": {"sources": [token_volume("v")["projected"]["sources"][0]]}}]})))
                .is_err()
        );
    }
}
