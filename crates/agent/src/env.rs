//! A container's environment, as the kubelet builds it: `envFrom` first,
//! then `env` in order, each value expanded with `$(VAR)` references to the
//! variables defined before it; values from ConfigMaps, Secrets, the pod's
//! own fields (downward API) and its resources.

use std::collections::BTreeMap;

use bulwark_api::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};

/// ConfigMaps and Secrets of the pod's namespace, by name, as the caller
/// fetched them (`None`: not found).
pub(crate) trait Sources {
    /// A ConfigMap's data (binaryData left out: env takes text).
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>>;
    /// A Secret's data, decoded.
    fn secret(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>>;
}

/// Why the environment could not be built: the container stays Waiting with
/// reason `CreateContainerConfigError` and this message, as upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvError {
    /// A referenced ConfigMap does not exist.
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    /// A referenced Secret does not exist.
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    /// A referenced key is missing.
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// The key.
        key: String,
    },
    /// A field or resource reference the agent does not know.
    #[error("unsupported {0}")]
    Unsupported(String),
}

/// Node facts the downward API may ask for.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeAllocatable {
    /// Allocatable CPU in millicores (the default for `limits.cpu`).
    pub(crate) cpu_millis: i64,
    /// Allocatable memory in bytes (the default for `limits.memory`).
    pub(crate) memory_bytes: i64,
    /// Allocatable ephemeral storage in bytes.
    pub(crate) ephemeral_storage_bytes: i64,
}

/// The environment of `container` in `pod`, in order.
pub(crate) fn resolve(
    pod: &Pod,
    container: &Container,
    sources: &dyn Sources,
    node: &NodeAllocatable,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, name: String, value: String| {
        if let Some(slot) = vars.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            vars.push((name, value));
        }
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_map(&r.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secret(&r.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(
                            &mut vars,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v).into_owned(),
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match value_of(pod, container, var, sources, node, &namespace)? {
            Some(value) => value,
            None => continue,
        };
        set(&mut vars, var.name.clone(), value);
    }
    Ok(vars)
}

fn value_of(
    pod: &Pod,
    container: &Container,
    var: &EnvVar,
    sources: &dyn Sources,
    node: &NodeAllocatable,
    namespace: &str,
) -> Result<Option<String>, EnvError> {
    let Some(from) = &var.value_from else {
        // Only literal values are expanded, against what came before —
        // including the service variables, as upstream.
        return Ok(Some(var.value.clone().unwrap_or_default()));
    };
    if let Some(r) = &from.config_map_key_ref {
        let optional = r.optional == Some(true);
        return match sources.config_map(&r.name) {
            Some(data) => match data.get(&r.key) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(EnvError::KeyNotFound {
                    kind: "ConfigMap",
                    namespace: namespace.to_owned(),
                    name: r.name.clone(),
                    key: r.key.clone(),
                }),
            },
            None if optional => Ok(None),
            None => Err(EnvError::ConfigMapNotFound(r.name.clone())),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let optional = r.optional == Some(true);
        return match sources.secret(&r.name) {
            Some(data) => match data.get(&r.key) {
                Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
                None if optional => Ok(None),
                None => Err(EnvError::KeyNotFound {
                    kind: "Secret",
                    namespace: namespace.to_owned(),
                    name: r.name.clone(),
                    key: r.key.clone(),
                }),
            },
            None if optional => Ok(None),
            None => Err(EnvError::SecretNotFound(r.name.clone())),
        };
    }
    if let Some(r) = &from.field_ref {
        return field(pod, &r.field_path).map(Some);
    }
    if let Some(r) = &from.resource_field_ref {
        let target = match r.container_name.as_deref() {
            Some(name) if !name.is_empty() => pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .find(|c| c.name == name)
                .unwrap_or(container),
            _ => container,
        };
        let divisor = r.divisor.as_ref().map(|d| d.0.as_str());
        return resource(target, &r.resource, divisor, node).map(Some);
    }
    Ok(Some(String::new()))
}

/// A pod field by its downward-API path (`metadata.name`,
/// `metadata.labels['app']`, `status.podIP`, …).
pub(crate) fn field(pod: &Pod, path: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let map_entry = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default()
    };
    if let Some(key) = subscript(path, "metadata.labels") {
        return Ok(map_entry(&meta.labels, key));
    }
    if let Some(key) = subscript(path, "metadata.annotations") {
        return Ok(map_entry(&meta.annotations, key));
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.hostIPs" => status
            .and_then(|s| s.host_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|ip| ip.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.podIPs" => status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|ip| ip.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        other => return Err(EnvError::Unsupported(format!("fieldPath {other:?}"))),
    })
}

fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?.strip_prefix("['")?;
    rest.strip_suffix("']")
}

/// `key="value"` lines, sorted, as the downward API writes maps.
pub(crate) fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A container resource by its downward-API name (`limits.cpu`,
/// `requests.memory`, …), divided by `divisor` and rounded up; unset limits
/// are the node's allocatable, as upstream.
pub(crate) fn resource(
    container: &Container,
    name: &str,
    divisor: Option<&str>,
    node: &NodeAllocatable,
) -> Result<String, EnvError> {
    let resources = container.resources.as_ref();
    let (section, resource) = name
        .split_once('.')
        .ok_or_else(|| EnvError::Unsupported(format!("resource {name:?}")))?;
    let list = match section {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => return Err(EnvError::Unsupported(format!("resource {name:?}"))),
    };
    let set = list
        .and_then(|l| l.get(resource))
        .and_then(|q| Quantity::parse(&q.0).ok());
    let cpu = resource == "cpu";
    // In milli-units for CPU, units otherwise.
    let value: i64 = match (set, resource) {
        (Some(q), "cpu") => q.milli_value(),
        (Some(q), _) => q.value(),
        (None, "cpu") if section == "limits" => node.cpu_millis,
        (None, "memory") if section == "limits" => node.memory_bytes,
        (None, "ephemeral-storage") if section == "limits" => node.ephemeral_storage_bytes,
        (None, _) => 0,
    };
    let divisor = divisor
        .and_then(|d| Quantity::parse(d).ok())
        .map(|q| if cpu { q.milli_value() } else { q.value() })
        .filter(|d| *d > 0)
        .unwrap_or(if cpu { 1000 } else { 1 });
    Ok(((value + divisor - 1) / divisor).to_string())
}

/// Expands `$(VAR)` references in `text` from `vars` (unknown references
/// stay as written; `$$` escapes a `$`), as upstream's `expansion` package.
pub(crate) fn expand(text: &str, vars: &[(String, String)]) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = text[i + 2..].find(')') {
                        let name = &text[i + 2..i + 2 + end];
                        match vars.iter().rev().find(|(n, _)| n == name) {
                            Some((_, value)) => out.push_str(value),
                            None => out.push_str(&text[i..i + 3 + end]),
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Resolves the environment and expands `$(VAR)` in literal values.
pub(crate) fn build(
    pod: &Pod,
    container: &Container,
    sources: &dyn Sources,
    node: &NodeAllocatable,
) -> Result<Vec<(String, String)>, EnvError> {
    let resolved = resolve(pod, container, sources, node)?;
    // Literal `value`s see only what precedes them.
    let literal: std::collections::HashSet<&str> = container
        .env
        .iter()
        .flatten()
        .filter(|v| v.value_from.is_none())
        .map(|v| v.name.as_str())
        .collect();
    let mut done: Vec<(String, String)> = Vec::with_capacity(resolved.len());
    for (name, value) in resolved {
        let value = if literal.contains(name.as_str()) {
            expand(&value, &done)
        } else {
            value
        };
        done.push((name, value));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvFromSource, EnvVarSource, ObjectFieldSelector, PodSpec,
        ResourceFieldSelector, ResourceRequirements, SecretEnvSource,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    struct Fixed;
    impl Sources for Fixed {
        fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
            (name == "cm").then(|| BTreeMap::from([("color".into(), "blue".into())]))
        }
        fn secret(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
            (name == "s").then(|| BTreeMap::from([("PASSWORD".into(), b"hunter2".to_vec())]))
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    #[test]
    fn env_is_ordered_expanded_and_overrides_env_from() {
        let container = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: "s".into(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            }]),
            env: Some(vec![
                var("A", "one"),
                var("B", "$(A)-two $(MISSING) $$(A)"),
                EnvVar {
                    name: "COLOR".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "cm".into(),
                            key: "color".into(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                },
                EnvVar {
                    name: "NODE".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "spec.nodeName".into(),
                            api_version: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                },
                var("PASSWORD", "overridden"),
            ]),
            ..Container::default()
        };
        let env = build(&pod(), &container, &Fixed, &NodeAllocatable::default()).unwrap();
        assert_eq!(
            env,
            vec![
                ("PASSWORD".into(), "overridden".into()),
                ("A".into(), "one".into()),
                ("B".into(), "one-two $(MISSING) $(A)".into()),
                ("COLOR".into(), "blue".into()),
                ("NODE".into(), "n1".into()),
            ]
        );
    }

    #[test]
    fn missing_sources_are_errors_unless_optional() {
        let refer = |optional| Container {
            name: "c".into(),
            env: Some(vec![EnvVar {
                name: "X".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "absent".into(),
                        key: "k".into(),
                        optional,
                    }),
                    ..EnvVarSource::default()
                }),
            }]),
            ..Container::default()
        };
        let err = build(&pod(), &refer(None), &Fixed, &NodeAllocatable::default()).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"absent\" not found");
        let env = build(
            &pod(),
            &refer(Some(true)),
            &Fixed,
            &NodeAllocatable::default(),
        )
        .unwrap();
        assert!(env.is_empty());
    }

    #[test]
    fn downward_api_fields_and_resources() {
        assert_eq!(field(&pod(), "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field(&pod(), "metadata.labels").unwrap(), "app=\"web\"");
        assert!(field(&pod(), "spec.secret").is_err());
        let container = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([(
                    "memory".into(),
                    K8sQuantity("64Mi".into()),
                )])),
                requests: Some(BTreeMap::from([("cpu".into(), K8sQuantity("250m".into()))])),
                ..ResourceRequirements::default()
            }),
            ..Container::default()
        };
        let node = NodeAllocatable {
            cpu_millis: 4000,
            memory_bytes: 1 << 30,
            ephemeral_storage_bytes: 0,
        };
        assert_eq!(
            resource(&container, "limits.memory", Some("1Mi"), &node).unwrap(),
            "64"
        );
        assert_eq!(
            resource(&container, "requests.cpu", None, &node).unwrap(),
            "1"
        );
        assert_eq!(
            resource(&container, "requests.cpu", Some("1m"), &node).unwrap(),
            "250"
        );
        assert_eq!(
            resource(&container, "limits.cpu", None, &node).unwrap(),
            "4"
        );
        let _ = ResourceFieldSelector::default();
    }
}
