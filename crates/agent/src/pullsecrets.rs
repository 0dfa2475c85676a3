//! `imagePullSecrets`: registry credentials from `kubernetes.io/dockerconfigjson`
//! (and the older `kubernetes.io/dockercfg`) Secrets a pod names — the
//! ServiceAccount admission has already copied its account's into the pod.
//! The node reads them as itself (the Node authorizer lets it read exactly
//! the secrets its pods reference) and adds them, for that pull only, to the
//! node's registries configuration, keyed by the endpoint host the runtime
//! authenticates to.

use base64::Engine as _;
use bulwark_runtime::{AuthConfig, RegistryConfig};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use serde_json::Value;

/// Docker Hub's names in docker config files, and the host images are
/// pulled from.
const DOCKER_HUB_KEYS: [&str; 3] = ["index.docker.io", "docker.io", "registry-1.docker.io"];
const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

/// The registries configuration for pulling `pod`'s images: `base` with the
/// credentials of the pod's pull secrets (which win over the node's for the
/// same host: the pod asked for them). The second value names the secrets
/// that could not be read, for upstream's warning event.
pub(crate) async fn registries_for(
    client: &kube::Client,
    pod: &Pod,
    base: &RegistryConfig,
) -> (RegistryConfig, Vec<String>) {
    let names: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return (base.clone(), Vec::new());
    }
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut config = base.clone();
    let mut missing = Vec::new();
    let mut added: Vec<String> = Vec::new();
    for name in names {
        let found = match secrets.get_opt(&name).await {
            Ok(Some(secret)) => credentials(&secret),
            _ => Err(()),
        };
        let Ok(found) = found else {
            missing.push(name);
            continue;
        };
        for (host, auth) in found {
            // The first secret naming a host wins, as upstream tries them in order.
            if added.contains(&host) {
                continue;
            }
            added.push(host.clone());
            let entry = config.configs.entry(host).or_default();
            entry.auth = Some(auth);
        }
    }
    (config, missing)
}

/// The (endpoint host, credentials) pairs of a docker config Secret.
pub(crate) fn credentials(secret: &Secret) -> Result<Vec<(String, AuthConfig)>, ()> {
    let data = secret.data.as_ref().ok_or(())?;
    let auths: Value = match secret.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => {
            let raw = data.get(".dockerconfigjson").ok_or(())?;
            let json: Value = serde_json::from_slice(&raw.0).map_err(|_| ())?;
            json.get("auths").cloned().unwrap_or(Value::Null)
        }
        Some("kubernetes.io/dockercfg") => {
            let raw = data.get(".dockercfg").ok_or(())?;
            serde_json::from_slice(&raw.0).map_err(|_| ())?
        }
        _ => return Err(()),
    };
    let mut out = Vec::new();
    for (key, entry) in auths.as_object().into_iter().flatten() {
        let Some(auth) = entry_auth(entry) else {
            continue;
        };
        let host = registry_host(key);
        if DOCKER_HUB_KEYS.contains(&host.as_str()) {
            out.push((DOCKER_HUB_ENDPOINT.to_owned(), auth));
        } else if !host.is_empty() {
            out.push((host, auth));
        }
    }
    Ok(out)
}

/// `username`/`password`, or `auth` (base64 of `user:password`).
fn entry_auth(entry: &Value) -> Option<AuthConfig> {
    let field = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or("");
    if !field("username").is_empty() || !field("password").is_empty() {
        return Some(AuthConfig {
            username: field("username").to_owned(),
            password: field("password").to_owned(),
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(field("auth"))
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(AuthConfig {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// The host (and port) a docker config key names: keys may be bare hosts
/// or URLs (`https://index.docker.io/v1/`).
fn registry_host(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or("").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(kind: &str, key: &str, json: &str) -> Secret {
        Secret {
            type_: Some(kind.into()),
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(json.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn docker_config_secrets_yield_credentials_per_endpoint_host() {
        let auth = base64::engine::general_purpose::STANDARD.encode("robot:t0ken");
        let s = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &format!(
                r#"{{"auths": {{
                    "127.0.0.1:5000": {{"username": "bulwark", "password": "s3cret"}},
                    "https://index.docker.io/v1/": {{"auth": "{auth}"}},
                    "https://Registry.Example.com/path": {{"auth": "bm8tY29sb24="}}
                }}}}"#
            ),
        );
        let mut found: Vec<(String, String, String)> = credentials(&s)
            .unwrap()
            .into_iter()
            .map(|(h, a)| (h, a.username, a.password))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                ("127.0.0.1:5000".into(), "bulwark".into(), "s3cret".into()),
                (
                    "registry-1.docker.io".into(),
                    "robot".into(),
                    "t0ken".into()
                ),
            ]
        );
        let old = secret(
            "kubernetes.io/dockercfg",
            ".dockercfg",
            r#"{"quay.io": {"username": "u", "password": "p"}}"#,
        );
        assert_eq!(credentials(&old).unwrap()[0].0, "quay.io");
    }

    #[test]
    fn other_secrets_are_not_credentials() {
        assert!(credentials(&secret("Opaque", ".dockerconfigjson", "{}")).is_err());
        assert!(
            credentials(&secret(
                "kubernetes.io/dockerconfigjson",
                ".dockerconfigjson",
                "not json"
            ))
            .is_err()
        );
    }
}
