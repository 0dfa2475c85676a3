//! The served resources: a table built at start and extendable while the
//! server runs (CustomResourceDefinitions will add rows), never a `match`
//! over compiled-in kinds.
//!
//! Each row carries what discovery publishes (names, scope, verbs,
//! subresources) and a [`Codec`] that checks an object against its
//! `k8s-openapi` type: it drops fields the type does not know (as upstream
//! prunes them) and reports their paths for `fieldValidation`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Checks and normalizes an object of one kind.
pub(crate) type Codec = fn(&Value) -> Result<(Value, Vec<String>), CodecError>;

/// Why an object does not fit its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// Where, e.g. `spec.containers[0]` (empty at the top).
    pub path: String,
    /// What, as serde words it (e.g. ``missing field `name` ``).
    pub message: String,
}

/// One served resource, e.g. `apps/v1 deployments`.
#[derive(Debug)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version, e.g. `v1`.
    pub version: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Plural (the URL segment), e.g. `deployments`.
    pub plural: &'static str,
    /// Singular, e.g. `deployment`.
    pub singular: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// `kubectl` aliases, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Subresources served.
    pub subresources: &'static [Subresource],
    /// Type check and pruning.
    pub codec: Codec,
}

/// A subresource such as `status` or `scale`.
#[derive(Debug)]
pub struct Subresource {
    /// Its name, e.g. `scale`.
    pub name: &'static str,
    /// The group/version/kind it speaks; `None`: the parent's.
    pub kind: Option<(&'static str, &'static str, &'static str)>,
    /// Verbs served.
    pub verbs: &'static [&'static str],
}

/// The verbs every resource serves.
pub(crate) const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    /// `apiVersion` as written in objects: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage prefix for this resource, `/registry/<plural>/`.
    pub fn key_prefix(&self) -> String {
        format!("/registry/{}/", self.storage_name())
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/{name}", self.storage_name()),
            _ => format!("/registry/{}/{name}", self.storage_name()),
        }
    }

    /// The storage segment. events.k8s.io/v1 Events have their own key
    /// space here, which the store view in `event_versions` serves from
    /// core/v1's, converting between the two shapes (as upstream, one set
    /// of Events behind both APIs).
    fn storage_name(&self) -> String {
        if self.group == "events.k8s.io" {
            format!("{}/{}", self.group, self.plural)
        } else {
            self.plural.to_owned()
        }
    }

    /// The subresource called `name`, if served.
    pub fn subresource(&self, name: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether objects of this kind carry a `spec` whose changes bump
    /// `metadata.generation`.
    pub fn has_spec_generation(&self) -> bool {
        !matches!(
            self.kind,
            "ConfigMap"
                | "Secret"
                | "Event"
                | "Endpoints"
                | "EndpointSlice"
                | "ServiceAccount"
                | "ControllerRevision"
                | "Role"
                | "ClusterRole"
                | "RoleBinding"
                | "ClusterRoleBinding"
                | "PriorityClass"
                | "Lease"
                | "Namespace"
                | "Node"
        )
    }
}

/// The table of served resources.
#[derive(Debug, Default)]
pub struct Registry {
    by_path: RwLock<BTreeMap<(String, String, String), Arc<ResourceType>>>,
    order: RwLock<Vec<Arc<ResourceType>>>,
}

impl Registry {
    /// The built-in Kubernetes resources Bulwark serves.
    pub fn builtin() -> Self {
        let registry = Registry::default();
        for resource in builtin() {
            registry.add(resource);
        }
        registry
    }

    /// Serves a new resource from now on.
    pub fn add(&self, resource: ResourceType) {
        let resource = Arc::new(resource);
        let key = (
            resource.group.to_owned(),
            resource.version.to_owned(),
            resource.plural.to_owned(),
        );
        write(&self.by_path).insert(key, resource.clone());
        write(&self.order).push(resource);
    }

    /// The resource at `group/version/plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        read(&self.by_path)
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .cloned()
    }

    /// Every resource, in registration order.
    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        read(&self.order).clone()
    }

    /// The groups served, in order of first registration, with their
    /// versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.all() {
            match groups.iter_mut().find(|(g, _)| g == r.group) {
                Some((_, versions)) => {
                    if !versions.iter().any(|v| v == r.version) {
                        versions.push(r.version.to_owned());
                    }
                }
                None => groups.push((r.group.to_owned(), vec![r.version.to_owned()])),
            }
        }
        groups
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Round-trips `value` through `T`: what comes back is the object as the type
/// knows it, and every field path of `value` that did not survive.
pub(crate) fn roundtrip<T: DeserializeOwned + Serialize>(
    value: &Value,
) -> Result<(Value, Vec<String>), CodecError> {
    let typed: T = serde_path_to_error::deserialize(value.clone()).map_err(|err| CodecError {
        path: match err.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        },
        message: err.inner().to_string(),
    })?;
    let back = serde_json::to_value(&typed).map_err(|err| CodecError {
        path: String::new(),
        message: err.to_string(),
    })?;
    let mut unknown = Vec::new();
    dropped_fields(value, &back, String::new(), &mut unknown);
    Ok((back, unknown))
}

/// Paths present (and not null) in `before` but missing in `after`.
fn dropped_fields(before: &Value, after: &Value, path: String, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (key, value) in b {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match a.get(key) {
                    Some(after_value) => dropped_fields(value, after_value, child, out),
                    None if !value.is_null() => out.push(child),
                    None => {}
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a.iter()).enumerate() {
                dropped_fields(bv, av, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

const STATUS: Subresource = Subresource {
    name: "status",
    kind: None,
    verbs: &["get", "patch", "update"],
};
const SCALE: Subresource = Subresource {
    name: "scale",
    kind: Some(("autoscaling", "v1", "Scale")),
    verbs: &["get", "patch", "update"],
};
const BINDING: Subresource = Subresource {
    name: "binding",
    kind: Some(("", "v1", "Binding")),
    verbs: &["create"],
};
/// `namespaces/finalize`: where the namespace controller removes
/// `spec.finalizers` once the namespace is empty.
const FINALIZE: Subresource = Subresource {
    name: "finalize",
    kind: None,
    verbs: &["update"],
};

/// `pods/log`: the container's log, from the node's agent.
const LOG: Subresource = Subresource {
    name: "log",
    kind: None,
    verbs: &["get"],
};
/// `pods/exec`, `pods/attach`, `pods/portforward`: streams through the
/// node's agent.
const EXEC: Subresource = Subresource {
    name: "exec",
    kind: Some(("", "v1", "PodExecOptions")),
    verbs: &["create", "get"],
};
const ATTACH: Subresource = Subresource {
    name: "attach",
    kind: Some(("", "v1", "PodAttachOptions")),
    verbs: &["create", "get"],
};
const PORTFORWARD: Subresource = Subresource {
    name: "portforward",
    kind: Some(("", "v1", "PodPortForwardOptions")),
    verbs: &["create", "get"],
};
const TOKEN: Subresource = Subresource {
    name: "token",
    kind: Some(("authentication.k8s.io", "v1", "TokenRequest")),
    verbs: &["create"],
};
/// `certificatesigningrequests/approval`: where Approved and Denied
/// conditions are written (by whoever may `approve` for the signer).
const APPROVAL: Subresource = Subresource {
    name: "approval",
    kind: None,
    verbs: &["get", "patch", "update"],
};

const EVICTION: Subresource = Subresource {
    name: "eviction",
    kind: Some(("policy", "v1", "Eviction")),
    verbs: &["create"],
};

macro_rules! resource {
    ($group:literal, $version:literal, $kind:literal, $plural:literal, $singular:literal,
     $namespaced:literal, $ty:ty, [$($short:literal),*], [$($cat:literal),*], [$($sub:expr),*]) => {
        ResourceType {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $namespaced,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
            codec: roundtrip::<$ty>,
        }
    };
}

fn builtin() -> Vec<ResourceType> {
    use k8s_openapi::api::{
        apps::v1 as apps, batch::v1 as batch, certificates::v1 as certificates,
        coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
        events::v1 as events, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
        scheduling::v1 as scheduling,
    };
    vec![
        resource!(
            "",
            "v1",
            "Namespace",
            "namespaces",
            "namespace",
            false,
            core::Namespace,
            ["ns"],
            [],
            [STATUS, FINALIZE]
        ),
        resource!(
            "",
            "v1",
            "Pod",
            "pods",
            "pod",
            true,
            core::Pod,
            ["po"],
            ["all"],
            [STATUS, BINDING, EVICTION, LOG, EXEC, ATTACH, PORTFORWARD]
        ),
        resource!(
            "",
            "v1",
            "Node",
            "nodes",
            "node",
            false,
            core::Node,
            ["no"],
            [],
            [STATUS]
        ),
        resource!(
            "",
            "v1",
            "Service",
            "services",
            "service",
            true,
            core::Service,
            ["svc"],
            ["all"],
            [STATUS]
        ),
        resource!(
            "",
            "v1",
            "Endpoints",
            "endpoints",
            "endpoints",
            true,
            core::Endpoints,
            ["ep"],
            [],
            []
        ),
        resource!(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            "configmap",
            true,
            core::ConfigMap,
            ["cm"],
            [],
            []
        ),
        resource!(
            "",
            "v1",
            "Secret",
            "secrets",
            "secret",
            true,
            core::Secret,
            [],
            [],
            []
        ),
        resource!(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            "serviceaccount",
            true,
            core::ServiceAccount,
            ["sa"],
            [],
            [TOKEN]
        ),
        resource!(
            "",
            "v1",
            "Event",
            "events",
            "event",
            true,
            core::Event,
            ["ev"],
            [],
            []
        ),
        resource!(
            "",
            "v1",
            "PodTemplate",
            "podtemplates",
            "podtemplate",
            true,
            core::PodTemplate,
            [],
            [],
            []
        ),
        resource!(
            "",
            "v1",
            "LimitRange",
            "limitranges",
            "limitrange",
            true,
            core::LimitRange,
            ["limits"],
            [],
            []
        ),
        resource!(
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            "resourcequota",
            true,
            core::ResourceQuota,
            ["quota"],
            [],
            [STATUS]
        ),
        resource!(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            "deployment",
            true,
            apps::Deployment,
            ["deploy"],
            ["all"],
            [SCALE, STATUS]
        ),
        resource!(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            "replicaset",
            true,
            apps::ReplicaSet,
            ["rs"],
            ["all"],
            [SCALE, STATUS]
        ),
        resource!(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            "statefulset",
            true,
            apps::StatefulSet,
            ["sts"],
            ["all"],
            [SCALE, STATUS]
        ),
        resource!(
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            "daemonset",
            true,
            apps::DaemonSet,
            ["ds"],
            ["all"],
            [STATUS]
        ),
        resource!(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            "controllerrevision",
            true,
            apps::ControllerRevision,
            [],
            [],
            []
        ),
        resource!(
            "batch",
            "v1",
            "Job",
            "jobs",
            "job",
            true,
            batch::Job,
            [],
            ["all"],
            [STATUS]
        ),
        resource!(
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            "cronjob",
            true,
            batch::CronJob,
            ["cj"],
            ["all"],
            [STATUS]
        ),
        resource!(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            "lease",
            true,
            coordination::Lease,
            [],
            [],
            []
        ),
        resource!(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            "endpointslice",
            true,
            discovery::EndpointSlice,
            [],
            [],
            []
        ),
        resource!(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            "poddisruptionbudget",
            true,
            policy::PodDisruptionBudget,
            ["pdb"],
            [],
            [STATUS]
        ),
        resource!(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            "networkpolicy",
            true,
            networking::NetworkPolicy,
            ["netpol"],
            [],
            []
        ),
        resource!(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            "ingress",
            true,
            networking::Ingress,
            ["ing"],
            [],
            [STATUS]
        ),
        resource!(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            "role",
            true,
            rbac::Role,
            [],
            [],
            []
        ),
        resource!(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            "rolebinding",
            true,
            rbac::RoleBinding,
            [],
            [],
            []
        ),
        resource!(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            "clusterrole",
            false,
            rbac::ClusterRole,
            [],
            [],
            []
        ),
        resource!(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            "clusterrolebinding",
            false,
            rbac::ClusterRoleBinding,
            [],
            [],
            []
        ),
        resource!(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            "event",
            true,
            events::Event,
            ["ev"],
            [],
            []
        ),
        resource!(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            "priorityclass",
            false,
            scheduling::PriorityClass,
            ["pc"],
            [],
            []
        ),
        resource!(
            "certificates.k8s.io",
            "v1",
            "CertificateSigningRequest",
            "certificatesigningrequests",
            "certificatesigningrequest",
            false,
            certificates::CertificateSigningRequest,
            ["csr"],
            [],
            [STATUS, APPROVAL]
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roundtrip_reports_unknown_fields_and_prunes_them() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "bogus": 1},
            "spec": {"containers": [{"name": "c", "image": "busybox", "imagePullPolcy": "Always"}]},
            "extra": null
        });
        let (back, unknown) = roundtrip::<k8s_openapi::api::core::v1::Pod>(&pod).unwrap();
        assert_eq!(
            unknown,
            vec!["metadata.bogus", "spec.containers[0].imagePullPolcy"]
        );
        assert!(back["metadata"].get("bogus").is_none());
        assert_eq!(back["spec"]["containers"][0]["image"], "busybox");
    }

    #[test]
    fn roundtrip_names_where_the_object_is_wrong() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 5}});
        let err = roundtrip::<k8s_openapi::api::core::v1::Pod>(&pod).unwrap_err();
        assert_eq!(err.path, "metadata.name");
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": 7}]}});
        let err = roundtrip::<k8s_openapi::api::core::v1::Pod>(&pod).unwrap_err();
        assert_eq!(err.path, "spec.containers[0].name");
    }

    #[test]
    fn storage_keys_follow_upstream_layout() {
        let registry = Registry::builtin();
        let pods = registry.get("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        let nodes = registry.get("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/registry/nodes/n1");
        // The two Event APIs: one stored set, the newer one a view of it.
        let core = registry.get("", "v1", "events").unwrap();
        let new = registry.get("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(core.key_prefix(), crate::event_versions::STORED_PREFIX);
        assert_eq!(new.key_prefix(), crate::event_versions::VIEW_PREFIX);
    }
}
