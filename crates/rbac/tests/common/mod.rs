//! The world the tests authorize in: the bootstrap policy (aggregated) plus a
//! handful of users, roles and bindings, and a compact request syntax.
#![allow(dead_code)] // each test binary uses a different part of this module

use bulwark_rbac::{Attributes, RbacSnapshot, UserInfo, aggregate_cluster_roles, bootstrap};
use serde_json::{Value, json};

pub(crate) fn role(ns: &str, name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": ns}, "rules": rules})
}

pub(crate) fn cluster_role(name: &str, labels: Value, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels}, "rules": rules})
}

/// `subjects` are `User:alice`, `Group:g`, `ServiceAccount:ns/name` or `ServiceAccount:name`.
pub(crate) fn binding(ns: &str, name: &str, role_ref: &str, subjects: &[&str]) -> Value {
    let (kind, role) = role_ref.split_once(':').expect("Kind:name");
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|s| {
            let (kind, name) = s.split_once(':').expect("Kind:name");
            match (kind, name.split_once('/')) {
                ("ServiceAccount", Some((ns, name))) => {
                    json!({"kind": kind, "name": name, "namespace": ns})
                }
                ("ServiceAccount", None) => json!({"kind": kind, "name": name}),
                _ => json!({"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": name}),
            }
        })
        .collect();
    let mut b = json!({"apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": if ns.is_empty() { "ClusterRoleBinding" } else { "RoleBinding" },
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects});
    if !ns.is_empty() {
        b["metadata"]["namespace"] = json!(ns);
    }
    b
}

pub(crate) struct World {
    pub(crate) roles: Vec<Value>,
    pub(crate) cluster_roles: Vec<Value>,
    pub(crate) role_bindings: Vec<Value>,
    pub(crate) cluster_role_bindings: Vec<Value>,
}

impl World {
    pub(crate) fn snapshot(&self) -> RbacSnapshot {
        let cluster_roles = aggregate_cluster_roles(&self.cluster_roles);
        RbacSnapshot::new(
            &self.roles,
            &cluster_roles,
            &self.role_bindings,
            &self.cluster_role_bindings,
        )
        .expect("fixture objects are well-formed")
    }
}

pub(crate) fn world() -> World {
    let mut cluster_roles = bootstrap::cluster_roles();
    cluster_roles.extend([
        cluster_role(
            "widget-viewer",
            json!({"rbac.authorization.k8s.io/aggregate-to-view": "true"}),
            json!([{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list", "watch"]}]),
        ),
        cluster_role(
            "scaler",
            json!({}),
            json!([{"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["get", "update"]}]),
        ),
        cluster_role(
            "pod-lister",
            json!({}),
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]),
        ),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "monitoring"},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchExpressions": [{"key": "example.com/monitoring", "operator": "Exists"}]}]}}),
        cluster_role(
            "metrics-part",
            json!({"example.com/monitoring": "yes"}),
            json!([{"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]}]),
        ),
        cluster_role(
            "role-granter",
            json!({}),
            json!([
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create", "update"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
            ]),
        ),
        cluster_role(
            "escalator",
            json!({}),
            json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}]),
        ),
        cluster_role(
            "admin-binder",
            json!({}),
            json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["admin"]}]),
        ),
    ]);
    let roles = vec![
        role(
            "dev",
            "config-reader",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "update"], "resourceNames": ["app-config"]}]),
        ),
        role(
            "dev",
            "log-reader",
            json!([{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]),
        ),
        role(
            "dev",
            "builder",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]),
        ),
    ];
    let role_bindings = vec![
        binding("dev", "edit-eddie", "ClusterRole:edit", &["User:eddie"]),
        binding("dev", "admin-ada", "ClusterRole:admin", &["User:ada"]),
        binding("dev", "cora-config", "Role:config-reader", &["User:cora"]),
        binding("dev", "logan-logs", "Role:log-reader", &["User:logan"]),
        binding("dev", "scalers", "ClusterRole:scaler", &["Group:scalers"]),
        binding(
            "dev",
            "builder",
            "Role:builder",
            &["User:nobody", "ServiceAccount:builder"],
        ),
        binding("dev", "ghost", "Role:missing", &["User:ghost"]),
        binding(
            "dev",
            "granter",
            "ClusterRole:role-granter",
            &["User:grant"],
        ),
        binding(
            "dev",
            "escalator",
            "ClusterRole:escalator",
            &["User:grant-esc"],
        ),
        binding(
            "dev",
            "granter-esc",
            "ClusterRole:role-granter",
            &["User:grant-esc"],
        ),
        binding(
            "dev",
            "binder",
            "ClusterRole:admin-binder",
            &["User:binder"],
        ),
        binding(
            "dev",
            "granter-binder",
            "ClusterRole:role-granter",
            &["User:binder"],
        ),
    ];
    let mut cluster_role_bindings = bootstrap::cluster_role_bindings();
    cluster_role_bindings.extend([
        binding("", "vera-view", "ClusterRole:view", &["User:vera"]),
        binding("", "root", "ClusterRole:cluster-admin", &["User:root"]),
        binding(
            "",
            "ci-pods",
            "ClusterRole:pod-lister",
            &["Group:system:serviceaccounts:ci"],
        ),
        binding(
            "",
            "sa-without-ns",
            "ClusterRole:pod-lister",
            &["ServiceAccount:lost"],
        ),
        binding("", "mona", "ClusterRole:monitoring", &["User:mona"]),
        binding("", "ghost-cluster", "ClusterRole:gone", &["User:ghost"]),
    ]);
    World {
        roles,
        cluster_roles,
        role_bindings,
        cluster_role_bindings,
    }
}

/// `alice` (groups `system:authenticated`, plus `scalers` for `scaler-*`),
/// `sa:<ns>:<name>` for a service account, `masters:<name>` in `system:masters`,
/// `anon` for `system:anonymous`.
pub(crate) fn user(spec: &str) -> UserInfo {
    if let Some(rest) = spec.strip_prefix("sa:") {
        let (ns, name) = rest.split_once(':').expect("sa:ns:name");
        return UserInfo::service_account(ns, name);
    }
    if let Some(name) = spec.strip_prefix("masters:") {
        return UserInfo::new(name, &["system:masters", "system:authenticated"]);
    }
    if let Some(name) = spec.strip_prefix("node:") {
        return UserInfo::new(
            format!("system:node:{name}"),
            &["system:nodes", "system:authenticated"],
        );
    }
    if spec == "anon" {
        return UserInfo::new("system:anonymous", &["system:unauthenticated"]);
    }
    if spec.starts_with("scaler") {
        return UserInfo::new(spec, &["scalers", "system:authenticated"]);
    }
    UserInfo::new(spec, &["system:authenticated"])
}

/// One request, kubectl-like: `user verb resource[.group][/sub] [ns|-] [name|-]
/// [?fieldSelector]`, or `user verb /path` for a non-resource URL.
pub(crate) fn request(line: &str) -> Attributes {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (who, verb, what) = (words[0], words[1], words[2]);
    if what.starts_with('/') {
        return Attributes::non_resource(user(who), verb, what);
    }
    let (resource_group, sub) = what.split_once('/').unwrap_or((what, ""));
    let (resource, group) = resource_group
        .split_once('.')
        .unwrap_or((resource_group, ""));
    let arg = |i: usize| words.get(i).copied().filter(|w| *w != "-").unwrap_or("");
    let resource = if sub.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}/{sub}")
    };
    let mut attrs = Attributes::resource(user(who), verb, group, &resource, arg(3), arg(4));
    if let Some(selector) = words.get(5).and_then(|w| w.strip_prefix('?')) {
        attrs.field_selector = selector.to_owned();
    }
    attrs
}
