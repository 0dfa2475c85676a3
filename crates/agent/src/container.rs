//! Translation of a pod's container into the runtime's terms: command,
//! environment, mounts, security context and resources. QoS classes and
//! their cgroup parents, as the kubelet lays them out.

use std::path::{Path, PathBuf};

use bulwark_api::quantity::Quantity;
use bulwark_runtime::{
    ContainerConfig, IdMapping, Mount, NamespaceKind, Resources, SeccompProfile, SecurityConfig,
};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodSecurityContext, SeccompProfile as K8sSeccomp,
};
use sha2::{Digest as _, Sha256};

/// A pod's Quality of Service class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QosClass {
    /// Every container has equal CPU and memory requests and limits.
    Guaranteed,
    /// Some requests or limits.
    Burstable,
    /// None at all.
    BestEffort,
}

impl QosClass {
    /// Upstream's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// The QoS class of `pod`, as upstream's `GetPodQOS`.
pub(crate) fn qos_class(pod: &Pod) -> QosClass {
    let Some(spec) = &pod.spec else {
        return QosClass::BestEffort;
    };
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let r = c.resources.as_ref();
        let requests = r.and_then(|r| r.requests.as_ref());
        let limits = r.and_then(|r| r.limits.as_ref());
        for resource in ["cpu", "memory"] {
            let request = requests
                .and_then(|m| m.get(resource))
                .and_then(|q| Quantity::parse(&q.0).ok())
                .filter(|q| q.milli_value() != 0);
            let limit = limits
                .and_then(|m| m.get(resource))
                .and_then(|q| Quantity::parse(&q.0).ok())
                .filter(|q| q.milli_value() != 0);
            if request.is_some() || limit.is_some() {
                any = true;
            }
            match (request, limit) {
                (Some(r), Some(l)) if r.milli_value() == l.milli_value() => {}
                (None, Some(_)) => {} // the request defaults to the limit
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        QosClass::BestEffort
    } else if guaranteed {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// The pod's cgroup (relative to the hierarchy roots): under
/// `bulwark/kubepods`, in its QoS class's parent as upstream's
/// `kubepods/burstable/pod<uid>`.
pub(crate) fn pod_cgroup(pod: &Pod) -> String {
    let uid = pod
        .metadata
        .uid
        .clone()
        .unwrap_or_default()
        .replace('-', "_");
    match qos_class(pod) {
        QosClass::Guaranteed => format!("bulwark/kubepods/pod{uid}"),
        QosClass::Burstable => format!("bulwark/kubepods/burstable/pod{uid}"),
        QosClass::BestEffort => format!("bulwark/kubepods/besteffort/pod{uid}"),
    }
}

/// The pod-level limits: the sum of the containers' limits when every one
/// sets it (else unlimited), CPU weight from the summed requests.
pub(crate) fn pod_resources(pod: &Pod, pids_limit: Option<i64>) -> Resources {
    let containers: Vec<&Container> = pod.spec.iter().flat_map(|s| s.containers.iter()).collect();
    let sum_limits = |resource: &str, milli: bool| -> Option<i64> {
        let mut total = 0i64;
        for c in &containers {
            let q = c
                .resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .and_then(|l| l.get(resource))
                .and_then(|q| Quantity::parse(&q.0).ok())?;
            total = total.saturating_add(if milli { q.milli_value() } else { q.value() });
        }
        (!containers.is_empty()).then_some(total)
    };
    let cpu_requests: i64 = containers.iter().filter_map(|c| request_milli_cpu(c)).sum();
    let cpu_limit = sum_limits("cpu", true);
    Resources {
        memory_limit_bytes: sum_limits("memory", false),
        pids_limit,
        cpu_shares: Some(milli_cpu_to_shares(cpu_requests)),
        cpu_quota_us: cpu_limit.map(milli_cpu_to_quota),
        cpu_period_us: cpu_limit.map(|_| 100_000),
    }
}

fn request_milli_cpu(c: &Container) -> Option<i64> {
    let r = c.resources.as_ref()?;
    let q = r
        .requests
        .as_ref()
        .and_then(|m| m.get("cpu"))
        .or_else(|| r.limits.as_ref().and_then(|m| m.get("cpu")))?;
    Quantity::parse(&q.0).ok().map(|q| q.milli_value())
}

/// Upstream's `MilliCPUToShares`: 1024 per CPU, at least 2.
fn milli_cpu_to_shares(milli: i64) -> u64 {
    ((milli * 1024) / 1000).max(2) as u64
}

/// Upstream's `MilliCPUToQuota` with a 100 ms period (at least 1 ms).
fn milli_cpu_to_quota(milli: i64) -> i64 {
    ((milli * 100_000) / 1000).max(1000)
}

/// A container's own limits.
pub(crate) fn container_resources(c: &Container) -> Resources {
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let limit = |name: &str| {
        limits
            .and_then(|l| l.get(name))
            .and_then(|q| Quantity::parse(&q.0).ok())
    };
    let cpu_limit = limit("cpu").map(|q| q.milli_value());
    Resources {
        memory_limit_bytes: limit("memory").map(|q| q.value()),
        pids_limit: None,
        cpu_shares: Some(milli_cpu_to_shares(request_milli_cpu(c).unwrap_or(0))),
        cpu_quota_us: cpu_limit.map(milli_cpu_to_quota),
        cpu_period_us: cpu_limit.map(|_| 100_000),
    }
}

/// The runtime id of a container run: opaque, unique per pod, container
/// and attempt, and valid as a runtime id.
pub(crate) fn runtime_id(pod_uid: &str, container: &str, attempt: i32) -> String {
    let digest = Sha256::digest(format!("{pod_uid}/{container}").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{attempt}")
}

/// A stable hash of a container's spec: a change (a new image) restarts it.
pub(crate) fn spec_hash(c: &Container) -> String {
    let bytes = serde_json::to_vec(c).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Everything [`config`] needs beyond the pod and container.
pub(crate) struct Inputs<'a> {
    /// The runtime id.
    pub(crate) id: String,
    /// Resolved environment.
    pub(crate) env: Vec<(String, String)>,
    /// Bind mounts from the container's volumeMounts.
    pub(crate) mounts: Vec<Mount>,
    /// Namespaces to join (the sandbox's).
    pub(crate) namespaces: Vec<(NamespaceKind, PathBuf)>,
    /// The pod's cgroup.
    pub(crate) cgroup_parent: String,
    /// The pod's `/etc/hosts` and `/etc/resolv.conf` files.
    pub(crate) etc_dir: &'a Path,
    /// Where Localhost seccomp profiles live.
    pub(crate) seccomp_dir: &'a Path,
    /// A user-namespace mapping when the pod has `hostUsers: false`.
    pub(crate) user_namespace: Option<IdMapping>,
}

/// Why a container cannot be configured (`CreateContainerConfigError`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConfigError(pub String);

/// The runtime's description of `container` in `pod`.
pub(crate) fn config(
    pod: &Pod,
    container: &Container,
    inputs: Inputs<'_>,
) -> Result<ContainerConfig, ConfigError> {
    let pod_sc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged == Some(true);
    let run_as_user = sc.run_as_user.or(pod_sc.run_as_user);
    let run_as_group = sc.run_as_group.or(pod_sc.run_as_group);
    if sc.run_as_non_root.or(pod_sc.run_as_non_root) == Some(true) && run_as_user == Some(0) {
        return Err(ConfigError(
            "container's runAsUser breaks non-root policy".to_owned(),
        ));
    }
    let seccomp = seccomp_profile(
        sc.seccomp_profile
            .as_ref()
            .or(pod_sc.seccomp_profile.as_ref()),
        inputs.seccomp_dir,
    )?;
    let capabilities = sc.capabilities.clone().unwrap_or_default();
    let to_u32 = |v: i64, what: &str| {
        u32::try_from(v).map_err(|_| ConfigError(format!("{what} {v} is out of range")))
    };
    let security = SecurityConfig {
        privileged,
        run_as_user: run_as_user.map(|u| to_u32(u, "runAsUser")).transpose()?,
        run_as_group: run_as_group.map(|g| to_u32(g, "runAsGroup")).transpose()?,
        supplemental_groups: supplemental_groups(&pod_sc)?,
        read_only_root_filesystem: sc.read_only_root_filesystem == Some(true),
        // Secure by default: no_new_privs unless asked for (or privileged).
        allow_privilege_escalation: privileged || sc.allow_privilege_escalation == Some(true),
        capabilities_add: capabilities.add.unwrap_or_default(),
        capabilities_drop: capabilities.drop.unwrap_or_default(),
        seccomp,
        user_namespace: inputs.user_namespace,
    };
    let mut mounts = inputs.mounts;
    let destinations: Vec<&str> = mounts.iter().map(|m| m.destination.as_str()).collect();
    let mut extra = Vec::new();
    for (file, destination) in [("hosts", "/etc/hosts"), ("resolv.conf", "/etc/resolv.conf")] {
        let source = inputs.etc_dir.join(file);
        if source.exists() && !destinations.contains(&destination) {
            extra.push(Mount {
                source,
                destination: destination.to_owned(),
                read_only: false,
            });
        }
    }
    mounts.extend(extra);
    let hostname = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone());
    Ok(ContainerConfig {
        id: inputs.id,
        image: container.image.clone().unwrap_or_default(),
        command: container
            .command
            .clone()
            .filter(|c| !c.is_empty())
            .map(|c| expand_all(&c, &inputs.env)),
        args: container
            .args
            .clone()
            .filter(|a| !a.is_empty())
            .map(|a| expand_all(&a, &inputs.env)),
        env: inputs.env,
        working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
        hostname,
        mounts,
        resources: container_resources(container),
        security,
        join_namespaces: inputs.namespaces,
        cgroup_parent: Some(inputs.cgroup_parent),
        log: bulwark_runtime::LogConfig::default(),
        stdin: container.stdin == Some(true),
        tty: container.tty == Some(true),
    })
}

fn expand_all(items: &[String], env: &[(String, String)]) -> Vec<String> {
    items.iter().map(|s| crate::env::expand(s, env)).collect()
}

fn supplemental_groups(pod_sc: &PodSecurityContext) -> Result<Vec<u32>, ConfigError> {
    let mut groups = Vec::new();
    for g in pod_sc
        .supplemental_groups
        .iter()
        .flatten()
        .copied()
        .chain(pod_sc.fs_group)
    {
        let g = u32::try_from(g).map_err(|_| ConfigError(format!("group {g} is out of range")))?;
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    Ok(groups)
}

fn seccomp_profile(
    profile: Option<&K8sSeccomp>,
    dir: &Path,
) -> Result<SeccompProfile, ConfigError> {
    let Some(profile) = profile else {
        // Bulwark's default: RuntimeDefault, not upstream's Unconfined.
        return Ok(SeccompProfile::RuntimeDefault);
    };
    match profile.type_.as_str() {
        "RuntimeDefault" => Ok(SeccompProfile::RuntimeDefault),
        "Unconfined" => Ok(SeccompProfile::Unconfined),
        "Localhost" => {
            let name = profile.localhost_profile.clone().unwrap_or_default();
            let rel = Path::new(&name);
            if name.is_empty()
                || rel.is_absolute()
                || rel
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(ConfigError(format!("invalid localhostProfile {name:?}")));
            }
            Ok(SeccompProfile::Localhost(dir.join(rel)))
        }
        other => Err(ConfigError(format!(
            "unknown seccomp profile type {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements, SecurityContext};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn with(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let list = |items: &[(&str, &str)]| {
            (!items.is_empty()).then(|| {
                items
                    .iter()
                    .map(|(k, v)| (k.to_string(), Q(v.to_string())))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        Container {
            name: "c".into(),
            image: Some("busybox".into()),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..ResourceRequirements::default()
            }),
            ..Container::default()
        }
    }

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                uid: Some("1234-5678".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers,
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(&pod(vec![with(&[], &[])])), QosClass::BestEffort);
        assert_eq!(
            qos_class(&pod(vec![with(&[], &[("cpu", "1"), ("memory", "1Gi")])])),
            QosClass::Guaranteed
        );
        assert_eq!(
            qos_class(&pod(vec![with(&[("cpu", "100m")], &[])])),
            QosClass::Burstable
        );
        assert_eq!(
            pod_cgroup(&pod(vec![with(&[("cpu", "100m")], &[])])),
            "bulwark/kubepods/burstable/pod1234_5678"
        );
    }

    #[test]
    fn limits_become_cgroup_values() {
        let r = container_resources(&with(
            &[("cpu", "250m")],
            &[("cpu", "500m"), ("memory", "64Mi")],
        ));
        assert_eq!(r.memory_limit_bytes, Some(64 * 1024 * 1024));
        assert_eq!(r.cpu_shares, Some(256));
        assert_eq!(r.cpu_quota_us, Some(50_000));
        let p = pod_resources(
            &pod(vec![with(&[], &[("memory", "64Mi")]), with(&[], &[])]),
            Some(1024),
        );
        assert_eq!(
            p.memory_limit_bytes, None,
            "one container without a limit: pod unlimited"
        );
        assert_eq!(p.pids_limit, Some(1024));
    }

    #[test]
    fn security_defaults_are_hardened_and_explicit_settings_win() {
        let dir = Path::new("/tmp");
        let inputs = || Inputs {
            id: "x-0".into(),
            env: vec![("WHO".into(), "world".into())],
            mounts: Vec::new(),
            namespaces: Vec::new(),
            cgroup_parent: "bulwark/kubepods/besteffort/podx".into(),
            etc_dir: dir,
            seccomp_dir: dir,
            user_namespace: None,
        };
        let mut c = with(&[], &[]);
        c.args = Some(vec!["hello $(WHO)".into()]);
        let cfg = config(&pod(vec![c.clone()]), &c, inputs()).unwrap();
        assert!(!cfg.security.allow_privilege_escalation);
        assert_eq!(cfg.security.seccomp, SeccompProfile::RuntimeDefault);
        assert_eq!(cfg.args, Some(vec!["hello world".to_owned()]));
        c.security_context = Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(0),
            ..SecurityContext::default()
        });
        assert!(config(&pod(vec![c.clone()]), &c, inputs()).is_err());
        c.security_context = Some(SecurityContext {
            seccomp_profile: Some(K8sSeccomp {
                type_: "Localhost".into(),
                localhost_profile: Some("../../etc/shadow".into()),
            }),
            ..SecurityContext::default()
        });
        assert!(config(&pod(vec![c.clone()]), &c, inputs()).is_err());
    }

    #[test]
    fn runtime_ids_are_stable_and_distinct() {
        assert_eq!(runtime_id("u", "c", 0), runtime_id("u", "c", 0));
        assert_ne!(runtime_id("u", "c", 0), runtime_id("u", "d", 0));
        assert!(runtime_id("u", "c", 12).ends_with("-12"));
    }
}
