//! The default ClusterRoles and ClusterRoleBindings every cluster starts with,
//! and how they are reconciled at each start.
//!
//! The rules follow upstream's bootstrap policy (`bootstrappolicy/policy.go`,
//! as rendered in its `testdata/cluster-roles.yaml`), lists sorted as there.
//! Reconciling adds what is missing and never removes what a user added; an
//! object annotated `rbac.authorization.kubernetes.io/autoupdate: "false"` is
//! left alone.

mod controllers;
mod reconcile;
mod rules;

use serde_json::{Map, Value, json};

use crate::rule::PolicyRule;
pub use reconcile::{
    Reconcile, ReconcileStep, reconcile_cluster_role, reconcile_cluster_role_binding,
    reconcile_defaults,
};
pub(crate) use rules::node_rules;
use rules::{
    aggregate_to_admin, aggregate_to_edit, aggregate_to_view, kube_controller_manager,
    kube_scheduler,
};

/// The label on every bootstrap object.
pub const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";
/// The annotation that, set to `"false"`, stops reconciliation of an object.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const EVENT_WRITE: &[&str] = &["create", "patch", "update"];

fn r(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule::resource(verbs, groups, resources)
}

fn urls(verbs: &[&str], paths: &[&str]) -> PolicyRule {
    PolicyRule::non_resource(verbs, paths)
}

/// The default ClusterRoles. Aggregated ones (`admin`, `edit`, `view`) carry
/// their aggregationRule and no rules; see [`crate::aggregate_cluster_roles`].
pub fn cluster_roles() -> Vec<Value> {
    let mut out = vec![
        aggregated("admin", None),
        role(
            "cluster-admin",
            &[r(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
            None,
        ),
        aggregated("edit", Some("admin")),
        role(
            "system:aggregate-to-admin",
            &aggregate_to_admin(),
            Some("admin"),
        ),
        role(
            "system:aggregate-to-edit",
            &aggregate_to_edit(),
            Some("edit"),
        ),
        role(
            "system:aggregate-to-view",
            &aggregate_to_view(),
            Some("view"),
        ),
        metrics_reader(),
        role(
            "system:auth-delegator",
            &[
                r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
            None,
        ),
        role(
            "system:basic-user",
            &[
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                r(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
            None,
        ),
        role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[r(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
            )],
            None,
        ),
        role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[r(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
            )],
            None,
        ),
        signer_approver("kube-apiserver-client"),
        signer_approver("kube-apiserver-client-kubelet"),
        signer_approver("kubelet-serving"),
        signer_approver("legacy-unknown"),
        role(
            "system:discovery",
            &[urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
            None,
        ),
        role(
            "system:kube-dns",
            &[r(&["list", "watch"], &[""], &["endpoints", "services"])],
            None,
        ),
        // Bulwark's cluster DNS server (crates/dns), run by each node's
        // agent: CoreDNS's own ClusterRole, less pods (it answers pod
        // names without looking them up, as `pods insecure` does).
        role(
            "system:bulwark-dns",
            &[
                r(&["list", "watch"], &[""], &["services", "namespaces"]),
                r(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
            None,
        ),
        // Each node's NetworkPolicy enforcement (crates/agent's netpol),
        // run with the node's network identity: read-only, as the
        // ClusterRoles of upstream's policy agents (Calico's calico-node,
        // kube-router) are for these three resources.
        role(
            "system:bulwark-network-policy",
            &[
                r(&["list", "watch"], &[""], &["pods", "namespaces"]),
                r(
                    &["list", "watch"],
                    &["networking.k8s.io"],
                    &["networkpolicies"],
                ),
            ],
            None,
        ),
        role(
            "system:kube-controller-manager",
            &kube_controller_manager(),
            None,
        ),
        role("system:kube-scheduler", &kube_scheduler(), None),
        role(
            "system:kubelet-api-admin",
            &[
                r(READ, &[""], &["nodes"]),
                r(&["proxy"], &[""], &["nodes"]),
                r(
                    &["*"],
                    &[""],
                    &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"],
                ),
            ],
            None,
        ),
        role(
            "system:monitoring",
            &[urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
            None,
        ),
        role("system:node", &node_rules(), None),
        role(
            "system:node-bootstrapper",
            &[r(
                &["create", "get", "list", "watch"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
            )],
            None,
        ),
        role(
            "system:node-proxier",
            &[
                r(&["list", "watch"], &[""], &["endpoints", "services"]),
                r(READ, &[""], &["nodes"]),
                r(EVENT_WRITE, &["", "events.k8s.io"], &["events"]),
                r(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
            None,
        ),
        role(
            "system:public-info-viewer",
            &[urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
            None,
        ),
        role(
            "system:service-account-issuer-discovery",
            &[urls(
                &["get"],
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
            )],
            None,
        ),
        role(
            "system:volume-scheduler",
            &[
                r(
                    &["get", "list", "patch", "update", "watch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                r(READ, &["storage.k8s.io"], &["storageclasses"]),
                r(
                    &["get", "list", "patch", "update", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
            ],
            None,
        ),
        aggregated("view", Some("edit")),
    ];
    for (controller, rules) in controllers::controller_roles() {
        out.push(role(
            &format!("system:controller:{controller}"),
            &rules,
            None,
        ));
    }
    out.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    out
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    let group = |name: &str| json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name});
    let user =
        |name: &str| json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name});
    let mut out = vec![
        binding(
            "cluster-admin",
            "cluster-admin",
            vec![group("system:masters")],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            vec![group("system:authenticated")],
        ),
        // Kubelet TLS bootstrap, bound as kubeadm binds it: bootstrap
        // tokens (group system:bootstrappers) may ask for node client
        // certificates, which the approver then approves; nodes may renew
        // their own.
        binding(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![group("system:bootstrappers")],
        ),
        binding(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![group("system:nodes")],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            vec![group("system:authenticated")],
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        binding(
            "system:bulwark-dns",
            "system:bulwark-dns",
            // Every node runs the DNS server with its network identity.
            vec![user("system:bulwark-dns"), user("system:kube-proxy")],
        ),
        binding(
            "system:bulwark-network-policy",
            "system:bulwark-network-policy",
            vec![user("system:kube-proxy")],
        ),
        binding(
            "system:kube-dns",
            "system:kube-dns",
            vec![json!({"kind": "ServiceAccount", "name": "kube-dns", "namespace": "kube-system"})],
        ),
        binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            vec![user("system:kube-scheduler")],
        ),
        // The API server's identity towards agents (`pods/log`, `exec`):
        // kubeadm binds its apiserver-kubelet-client the same way.
        binding(
            "system:kube-apiserver-kubelet-client",
            "system:kubelet-api-admin",
            vec![user("kube-apiserver-kubelet-client")],
        ),
        binding(
            "system:monitoring",
            "system:monitoring",
            vec![group("system:monitoring")],
        ),
        binding("system:node", "system:node", Vec::new()),
        binding(
            "system:node-bootstrapper",
            "system:node-bootstrapper",
            vec![group("system:bootstrappers")],
        ),
        binding(
            "system:node-proxier",
            "system:node-proxier",
            vec![user("system:kube-proxy")],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            vec![group("system:serviceaccounts")],
        ),
        binding(
            "system:volume-scheduler",
            "system:volume-scheduler",
            vec![user("system:kube-scheduler")],
        ),
    ];
    for (controller, _) in controllers::controller_roles() {
        let name = format!("system:controller:{controller}");
        out.push(binding(
            &name,
            &name,
            vec![json!({"kind": "ServiceAccount", "name": controller, "namespace": "kube-system"})],
        ));
    }
    out
}

fn metadata(name: &str, aggregate_to: Option<&str>) -> Value {
    let mut labels = Map::new();
    labels.insert(BOOTSTRAPPING_LABEL.into(), json!("rbac-defaults"));
    if let Some(target) = aggregate_to {
        labels.insert(
            format!("rbac.authorization.k8s.io/aggregate-to-{target}"),
            json!("true"),
        );
    }
    json!({
        "name": name,
        "labels": labels,
        "annotations": {AUTOUPDATE_ANNOTATION: "true"},
    })
}

/// `system:aggregated-metrics-reader`: reading `metrics.k8s.io` (what
/// `kubectl top` asks), aggregated into view, edit and admin as
/// metrics-server's manifests do (the API server serves the group itself).
fn metrics_reader() -> Value {
    let mut role = role(
        "system:aggregated-metrics-reader",
        &[r(READ, &["metrics.k8s.io"], &["nodes", "pods"])],
        Some("view"),
    );
    for target in ["edit", "admin"] {
        role["metadata"]["labels"][format!("rbac.authorization.k8s.io/aggregate-to-{target}")] =
            json!("true");
    }
    role
}

/// `system:certificates.k8s.io:<signer>-approver`: `approve` for one of
/// the `kubernetes.io/<signer>` signers.
fn signer_approver(signer: &str) -> Value {
    let name = format!("kubernetes.io/{signer}");
    role(
        &format!("system:certificates.k8s.io:{signer}-approver"),
        &[r(&["approve"], &["certificates.k8s.io"], &["signers"]).names(&[name.as_str()])],
        None,
    )
}

fn role(name: &str, rules: &[PolicyRule], aggregate_to: Option<&str>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, aggregate_to),
        "rules": rules,
    })
}

/// A ClusterRole that aggregates the ClusterRoles labelled
/// `rbac.authorization.k8s.io/aggregate-to-<name>`.
fn aggregated(name: &str, aggregate_to: Option<&str>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, aggregate_to),
        "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {format!("rbac.authorization.k8s.io/aggregate-to-{name}"): "true"}}
        ]},
        "rules": [],
    })
}

fn binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(name, None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}
