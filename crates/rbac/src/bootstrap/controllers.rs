//! The `system:controller:*` ClusterRoles: one per controller, bound to the
//! service account `kube-system/<controller>` the controller runs as, so each
//! holds only what it needs (upstream's `controller_policy.go`). Only the
//! controllers Bulwark runs or plans to run are listed.

use super::{EVENT_WRITE, READ, r};
use crate::rule::PolicyRule;

/// Verbs a controller uses on the objects it owns.
const OWN: &[&str] = &["get", "list", "update", "watch"];
/// Verbs a controller uses on the objects it creates.
const MANAGE: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const POD_MANAGE: &[&str] = &["create", "delete", "list", "patch", "watch"];

/// `(controller name, rules)`; every controller may also write events.
pub(super) fn controller_roles() -> Vec<(&'static str, Vec<PolicyRule>)> {
    let apps = &["apps", "extensions"];
    let mut roles = vec![
        (
            "clusterrole-aggregation-controller",
            vec![r(
                &["escalate", "get", "list", "patch", "update", "watch"],
                &["rbac.authorization.k8s.io"],
                &["clusterroles"],
            )],
        ),
        (
            "certificate-controller",
            vec![
                r(
                    &["delete", "get", "list", "watch"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                r(
                    &["update"],
                    &["certificates.k8s.io"],
                    &[
                        "certificatesigningrequests/approval",
                        "certificatesigningrequests/status",
                    ],
                ),
                // Bulwark also approves a node's own serving certificate.
                r(&["approve"], &["certificates.k8s.io"], &["signers"]).names(&[
                    "kubernetes.io/kube-apiserver-client",
                    "kubernetes.io/kube-apiserver-client-kubelet",
                    "kubernetes.io/kubelet-serving",
                ]),
                r(&["sign"], &["certificates.k8s.io"], &["signers"]).names(&[
                    "kubernetes.io/kube-apiserver-client",
                    "kubernetes.io/kube-apiserver-client-kubelet",
                    "kubernetes.io/kubelet-serving",
                    "kubernetes.io/legacy-unknown",
                ]),
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        (
            "cronjob-controller",
            vec![
                r(OWN, &["batch"], &["cronjobs"]),
                r(MANAGE, &["batch"], &["jobs"]),
                r(&["update"], &["batch"], &["cronjobs/status"]),
                r(&["update"], &["batch"], &["cronjobs/finalizers"]),
                r(&["delete", "list", "watch"], &[""], &["pods"]),
            ],
        ),
        (
            "daemon-set-controller",
            vec![
                r(READ, apps, &["daemonsets"]),
                r(&["update"], apps, &["daemonsets/status"]),
                r(&["update"], apps, &["daemonsets/finalizers"]),
                r(&["list", "watch"], &[""], &["nodes"]),
                r(POD_MANAGE, &[""], &["pods"]),
                r(&["create"], &[""], &["pods/binding"]),
                r(MANAGE, &["apps"], &["controllerrevisions"]),
            ],
        ),
        (
            "deployment-controller",
            vec![
                r(OWN, apps, &["deployments"]),
                r(&["update"], apps, &["deployments/status"]),
                r(&["update"], apps, &["deployments/finalizers"]),
                r(MANAGE, apps, &["replicasets"]),
                r(OWN, &[""], &["pods"]),
            ],
        ),
        (
            "disruption-controller",
            vec![
                r(READ, apps, &["deployments", "replicasets"]),
                r(READ, &[""], &["replicationcontrollers", "pods"]),
                r(READ, &["apps"], &["statefulsets"]),
                r(READ, &["policy"], &["poddisruptionbudgets"]),
                r(&["update"], &["policy"], &["poddisruptionbudgets/status"]),
                r(&["get"], &["*"], &["*/scale"]),
            ],
        ),
        (
            "endpoint-controller",
            vec![
                r(READ, &[""], &["pods", "services"]),
                r(
                    &["create", "delete", "get", "list", "update", "watch"],
                    &[""],
                    &["endpoints"],
                ),
                r(&["create"], &[""], &["endpoints/restricted"]),
            ],
        ),
        (
            "endpointslice-controller",
            vec![
                r(READ, &[""], &["nodes", "pods", "services"]),
                r(&["update"], &[""], &["services/finalizers"]),
                r(
                    &["create", "delete", "get", "list", "update", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![r(
                &["delete", "get", "list", "patch", "update", "watch"],
                &["*"],
                &["*"],
            )],
        ),
        (
            "job-controller",
            vec![
                r(
                    &["get", "list", "patch", "update", "watch"],
                    &["batch"],
                    &["jobs"],
                ),
                r(&["update"], &["batch"], &["jobs/status"]),
                r(&["update"], &["batch"], &["jobs/finalizers"]),
                r(POD_MANAGE, &[""], &["pods"]),
            ],
        ),
        (
            "namespace-controller",
            vec![
                r(&["delete", "get", "list", "watch"], &[""], &["namespaces"]),
                r(
                    &["update"],
                    &[""],
                    &["namespaces/finalize", "namespaces/status"],
                ),
                r(
                    &["delete", "deletecollection", "get", "list", "watch"],
                    &["*"],
                    &["*"],
                ),
            ],
        ),
        (
            "node-controller",
            vec![
                r(
                    &["delete", "get", "list", "patch", "update", "watch"],
                    &[""],
                    &["nodes"],
                ),
                r(&["patch", "update"], &[""], &["nodes/status"]),
                r(&["patch", "update"], &[""], &["pods/status"]),
                r(&["delete", "get", "list", "watch"], &[""], &["pods"]),
            ],
        ),
        (
            "pod-garbage-collector",
            vec![
                r(&["delete", "list", "watch"], &[""], &["pods"]),
                r(READ, &[""], &["nodes"]),
                r(&["patch"], &[""], &["pods/status"]),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                r(OWN, apps, &["replicasets"]),
                r(&["update"], apps, &["replicasets/status"]),
                r(&["update"], apps, &["replicasets/finalizers"]),
                r(POD_MANAGE, &[""], &["pods"]),
            ],
        ),
        (
            "resourcequota-controller",
            vec![
                r(&["list", "watch"], &["*"], &["*"]),
                r(&["update"], &[""], &["resourcequotas/status"]),
            ],
        ),
        (
            "root-ca-cert-publisher",
            vec![r(&["create", "update"], &[""], &["configmaps"])],
        ),
        (
            "service-account-controller",
            vec![r(&["create"], &[""], &["serviceaccounts"])],
        ),
        (
            "service-controller",
            vec![r(&["get", "list", "watch"], &[""], &["services"])],
        ),
        (
            "statefulset-controller",
            vec![
                r(&["list", "watch"], &[""], &["pods"]),
                r(READ, &["apps"], &["statefulsets"]),
                r(&["update"], &["apps"], &["statefulsets/status"]),
                r(&["update"], &["apps"], &["statefulsets/finalizers"]),
                r(
                    &["create", "delete", "get", "patch", "update"],
                    &[""],
                    &["pods"],
                ),
                r(MANAGE, &["apps"], &["controllerrevisions"]),
                r(
                    &["create", "get", "list", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                r(&["delete", "update"], &[""], &["persistentvolumeclaims"]),
                r(&["update"], &[""], &["pods/finalizers"]),
            ],
        ),
        (
            "ttl-after-finished-controller",
            vec![r(
                &["delete", "get", "list", "watch"],
                &["batch"],
                &["jobs"],
            )],
        ),
    ];
    // Upstream gives every controller event writes except these two.
    for (name, rules) in &mut roles {
        if !matches!(
            *name,
            "clusterrole-aggregation-controller" | "namespace-controller" | "pod-garbage-collector"
        ) {
            rules.push(r(EVENT_WRITE, &["", "events.k8s.io"], &["events"]));
        }
    }
    roles
}
