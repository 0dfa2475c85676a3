//! What kubectl needs from the documents, checked the way kubectl reads them.
//!
//! `mod.rs` holds the served resources every test generates documents for.

mod discovery;
mod kubectl;
mod operations;
mod schemas;

use crate::{ResourceInfo, group_version_document};
use serde_json::Value;
use std::collections::BTreeSet;

type Sub = crate::SubresourceInfo<'static>;

const STATUS: &[Sub] = &[("status", None)];
const NONE: &[Sub] = &[];
const SCALE_STATUS: &[Sub] = &[
    ("scale", Some(("autoscaling", "v1", "Scale"))),
    ("status", None),
];
const POD: &[Sub] = &[
    ("attach", None),
    ("binding", Some(("", "v1", "Binding"))),
    ("eviction", Some(("policy", "v1", "Eviction"))),
    ("exec", None),
    ("log", None),
    ("portforward", None),
    ("proxy", None),
    ("status", None),
];

const fn r(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    subresources: &'static [Sub],
) -> ResourceInfo<'static> {
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        namespaced,
        subresources,
    }
}

/// The resources the API server serves, and a custom resource.
pub(super) const SERVED: &[ResourceInfo<'static>] = &[
    r(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &[("finalize", None), ("status", None)],
    ),
    r("", "v1", "Pod", "pods", true, POD),
    r(
        "",
        "v1",
        "Node",
        "nodes",
        false,
        &[("proxy", None), ("status", None)],
    ),
    r(
        "",
        "v1",
        "Service",
        "services",
        true,
        &[("proxy", None), ("status", None)],
    ),
    r("", "v1", "Endpoints", "endpoints", true, NONE),
    r("", "v1", "ConfigMap", "configmaps", true, NONE),
    r("", "v1", "Secret", "secrets", true, NONE),
    r(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &[(
            "token",
            Some(("authentication.k8s.io", "v1", "TokenRequest")),
        )],
    ),
    r("", "v1", "Event", "events", true, NONE),
    r("", "v1", "PodTemplate", "podtemplates", true, NONE),
    r("", "v1", "LimitRange", "limitranges", true, NONE),
    r("", "v1", "ResourceQuota", "resourcequotas", true, STATUS),
    r("", "v1", "Binding", "bindings", true, NONE),
    r(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        SCALE_STATUS,
    ),
    r(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        SCALE_STATUS,
    ),
    r(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        SCALE_STATUS,
    ),
    r("apps", "v1", "DaemonSet", "daemonsets", true, STATUS),
    r(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
        NONE,
    ),
    r("batch", "v1", "Job", "jobs", true, STATUS),
    r("batch", "v1", "CronJob", "cronjobs", true, STATUS),
    r("coordination.k8s.io", "v1", "Lease", "leases", true, NONE),
    r(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        NONE,
    ),
    r(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        STATUS,
    ),
    r(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        NONE,
    ),
    r(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        STATUS,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        NONE,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        NONE,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        NONE,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        NONE,
    ),
    r("events.k8s.io", "v1", "Event", "events", true, NONE),
    r(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
        NONE,
    ),
    r(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
        NONE,
    ),
    r(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        false,
        NONE,
    ),
    r(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        STATUS,
    ),
    r(
        "stable.example.com",
        "v1",
        "CronTab",
        "crontabs",
        true,
        STATUS,
    ),
];

pub(super) fn served_group_versions() -> BTreeSet<(&'static str, &'static str)> {
    SERVED.iter().map(|r| (r.group, r.version)).collect()
}

pub(super) fn document(group: &str, version: &str) -> Value {
    group_version_document(SERVED, group, version).expect("served")
}
