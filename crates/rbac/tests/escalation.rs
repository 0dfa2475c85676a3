//! Escalation prevention: who may write which roles and bindings, with the
//! messages the API server returns.

mod common;

use bulwark_rbac::{PolicyRule, RbacKind, covers};
use expect_test::{Expect, expect};
use serde_json::{Value, json};

/// Each case: user, kind, object (and the stored object for an update).
fn check(cases: &[(&str, RbacKind, Value, Option<Value>)], expect: Expect) {
    let rbac = common::world().snapshot();
    let mut out = String::new();
    for (who, kind, object, old) in cases {
        let user = common::user(who);
        let result = match kind {
            RbacKind::Role | RbacKind::ClusterRole => {
                rbac.check_role_write(&user, *kind, object, old.as_ref())
            }
            RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => {
                rbac.check_binding_write(&user, *kind, object, old.as_ref())
            }
        };
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let verdict = match result {
            Ok(()) => "allowed".to_owned(),
            Err(forbidden) => {
                assert_eq!(forbidden.status()["code"], 403);
                shorten(&forbidden.message)
            }
        };
        let op = if old.is_some() { "updates" } else { "creates" };
        out.push_str(&format!("{who} {op} {kind:?} {name}: {verdict}\n"));
    }
    expect.assert_eq(&out);
}

/// Keeps long lists of missing rules readable: the first three, then a count.
fn shorten(message: &str) -> String {
    let lines: Vec<&str> = message.lines().collect();
    if lines.len() <= 5 {
        return message.to_owned();
    }
    format!("{}\n… {} more", lines[..4].join("\n"), lines.len() - 4)
}

/// The object with an ownerReference and a finalizer added, as the garbage
/// collector writes it.
fn owned_by_gc(mut object: Value) -> Value {
    object["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u1"}]);
    object["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
    object
}

fn pods_and_secrets() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["db"]}
    ])
}

#[test]
fn roles_need_held_permissions_or_escalate() {
    use RbacKind::*;
    check(
        &[
            (
                "grant",
                Role,
                common::role(
                    "dev",
                    "reader",
                    json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
                ),
                None,
            ),
            (
                "grant",
                Role,
                common::role("dev", "more", pods_and_secrets()),
                None,
            ),
            (
                "grant-esc",
                Role,
                common::role("dev", "more", pods_and_secrets()),
                None,
            ),
            (
                "grant-esc",
                Role,
                common::role("prod", "more", pods_and_secrets()),
                None,
            ),
            (
                "ada",
                Role,
                common::role(
                    "dev",
                    "secrets",
                    json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]),
                ),
                None,
            ),
            (
                "ada",
                Role,
                common::role(
                    "dev",
                    "star",
                    json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]),
                ),
                None,
            ),
            (
                "ada",
                ClusterRole,
                common::cluster_role("agg", json!({}), json!(null))
                    .as_object()
                    .map(|o| {
                        let mut o = o.clone();
                        o.insert(
                            "aggregationRule".into(),
                            json!({"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}),
                        );
                        Value::Object(o)
                    })
                    .unwrap_or_default(),
                None,
            ),
            (
                "root",
                ClusterRole,
                common::cluster_role(
                    "anything",
                    json!({}),
                    json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
                ),
                None,
            ),
            (
                "masters:kubernetes-admin",
                ClusterRole,
                common::cluster_role(
                    "anything",
                    json!({}),
                    json!([{"nonResourceURLs": ["*"], "verbs": ["*"]}]),
                ),
                None,
            ),
            (
                "grant",
                Role,
                owned_by_gc(common::role("dev", "more", pods_and_secrets())),
                Some(common::role("dev", "more", pods_and_secrets())),
            ),
            (
                "ghost",
                Role,
                common::role(
                    "dev",
                    "r",
                    json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
                ),
                None,
            ),
        ],
        expect![[r#"
            grant creates Role reader: allowed
            grant creates Role more: roles.rbac.authorization.k8s.io "more" is forbidden: user "grant" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:[""], Resources:["pods"], Verbs:["delete"]}
            {APIGroups:[""], Resources:["secrets"], ResourceNames:["db"], Verbs:["get"]}
            grant-esc creates Role more: allowed
            grant-esc creates Role more: roles.rbac.authorization.k8s.io "more" is forbidden: user "grant-esc" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:[""], Resources:["pods"], Verbs:["get" "list" "delete"]}
            {APIGroups:[""], Resources:["secrets"], ResourceNames:["db"], Verbs:["get"]}
            ada creates Role secrets: allowed
            ada creates Role star: roles.rbac.authorization.k8s.io "star" is forbidden: user "ada" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:[""], Resources:["pods"], Verbs:["*"]}
            ada creates ClusterRole agg: clusterroles.rbac.authorization.k8s.io "agg" is forbidden: user "ada" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:["*"], Resources:["*"], Verbs:["*"]}
            {NonResourceURLs:["*"], Verbs:["*"]}
            root creates ClusterRole anything: allowed
            masters:kubernetes-admin creates ClusterRole anything: allowed
            grant updates Role more: allowed
            ghost creates Role r: roles.rbac.authorization.k8s.io "r" is forbidden: user "ghost" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:[""], Resources:["pods"], Verbs:["get"]}; resolution errors: [[clusterrole.rbac.authorization.k8s.io "gone" not found, role.rbac.authorization.k8s.io "missing" not found]]
        "#]],
    );
}

#[test]
fn bindings_need_the_role_or_bind() {
    use RbacKind::*;
    let rb = |ns, name, role_ref| common::binding(ns, name, role_ref, &["User:mallory"]);
    check(
        &[
            (
                "grant",
                RoleBinding,
                rb("dev", "take-over", "ClusterRole:cluster-admin"),
                None,
            ),
            (
                "grant",
                ClusterRoleBinding,
                rb("", "take-over", "ClusterRole:cluster-admin"),
                None,
            ),
            (
                "grant",
                RoleBinding,
                rb("dev", "builder", "Role:builder"),
                None,
            ),
            (
                "binder",
                RoleBinding,
                rb("dev", "admins", "ClusterRole:admin"),
                None,
            ),
            (
                "binder",
                RoleBinding,
                rb("prod", "admins", "ClusterRole:admin"),
                None,
            ),
            (
                "binder",
                ClusterRoleBinding,
                rb("", "admins", "ClusterRole:admin"),
                None,
            ),
            (
                "binder",
                RoleBinding,
                rb("dev", "editors", "ClusterRole:edit"),
                None,
            ),
            (
                "eddie",
                RoleBinding,
                rb("dev", "viewers", "ClusterRole:view"),
                None,
            ),
            (
                "eddie",
                RoleBinding,
                rb("dev", "admins", "ClusterRole:admin"),
                None,
            ),
            (
                "ada",
                RoleBinding,
                rb("dev", "admins", "ClusterRole:admin"),
                None,
            ),
            (
                "ada",
                RoleBinding,
                rb("dev", "nothing", "ClusterRole:nope"),
                None,
            ),
            (
                "grant",
                RoleBinding,
                common::binding(
                    "dev",
                    "admin-ada",
                    "ClusterRole:admin",
                    &["User:ada", "User:mallory"],
                ),
                Some(common::binding(
                    "dev",
                    "admin-ada",
                    "ClusterRole:admin",
                    &["User:ada"],
                )),
            ),
            (
                "grant",
                RoleBinding,
                owned_by_gc(common::binding(
                    "dev",
                    "admin-ada",
                    "ClusterRole:admin",
                    &["User:ada"],
                )),
                Some(common::binding(
                    "dev",
                    "admin-ada",
                    "ClusterRole:admin",
                    &["User:ada"],
                )),
            ),
            (
                "masters:kubernetes-admin",
                ClusterRoleBinding,
                rb("", "take-over", "ClusterRole:cluster-admin"),
                None,
            ),
        ],
        expect![[r#"
            grant creates RoleBinding take-over: rolebindings.rbac.authorization.k8s.io "take-over" is forbidden: user "grant" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:["*"], Resources:["*"], Verbs:["*"]}
            {NonResourceURLs:["*"], Verbs:["*"]}
            grant creates ClusterRoleBinding take-over: clusterrolebindings.rbac.authorization.k8s.io "take-over" is forbidden: user "grant" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:["*"], Resources:["*"], Verbs:["*"]}
            {NonResourceURLs:["*"], Verbs:["*"]}
            grant creates RoleBinding builder: allowed
            binder creates RoleBinding admins: allowed
            binder creates RoleBinding admins: rolebindings.rbac.authorization.k8s.io "admins" is forbidden: user "binder" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:[""], Resources:["bindings"], Verbs:["get" "list" "watch"]}
            {APIGroups:[""], Resources:["configmaps"], Verbs:["create" "delete" "deletecollection" "patch" "update" "get" "list" "watch"]}
            {APIGroups:[""], Resources:["endpoints"], Verbs:["get" "list" "watch"]}
            … 70 more
            binder creates ClusterRoleBinding admins: clusterrolebindings.rbac.authorization.k8s.io "admins" is forbidden: user "binder" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:[""], Resources:["bindings"], Verbs:["get" "list" "watch"]}
            {APIGroups:[""], Resources:["configmaps"], Verbs:["create" "delete" "deletecollection" "patch" "update" "get" "list" "watch"]}
            {APIGroups:[""], Resources:["endpoints"], Verbs:["get" "list" "watch"]}
            … 70 more
            binder creates RoleBinding editors: rolebindings.rbac.authorization.k8s.io "editors" is forbidden: user "binder" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:[""], Resources:["bindings"], Verbs:["get" "list" "watch"]}
            {APIGroups:[""], Resources:["configmaps"], Verbs:["create" "delete" "deletecollection" "patch" "update" "get" "list" "watch"]}
            {APIGroups:[""], Resources:["endpoints"], Verbs:["get" "list" "watch"]}
            … 67 more
            eddie creates RoleBinding viewers: allowed
            eddie creates RoleBinding admins: rolebindings.rbac.authorization.k8s.io "admins" is forbidden: user "eddie" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:["authorization.k8s.io"], Resources:["localsubjectaccessreviews"], Verbs:["create"]}
            {APIGroups:["rbac.authorization.k8s.io"], Resources:["rolebindings"], Verbs:["create" "delete" "deletecollection" "get" "list" "patch" "update" "watch"]}
            {APIGroups:["rbac.authorization.k8s.io"], Resources:["roles"], Verbs:["create" "delete" "deletecollection" "get" "list" "patch" "update" "watch"]}
            ada creates RoleBinding admins: allowed
            ada creates RoleBinding nothing: rolebindings.rbac.authorization.k8s.io "nothing" is forbidden: clusterrole.rbac.authorization.k8s.io "nope" not found
            grant updates RoleBinding admin-ada: rolebindings.rbac.authorization.k8s.io "admin-ada" is forbidden: user "grant" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
            {APIGroups:[""], Resources:["bindings"], Verbs:["get" "list" "watch"]}
            {APIGroups:[""], Resources:["configmaps"], Verbs:["create" "delete" "deletecollection" "patch" "update" "get" "list" "watch"]}
            {APIGroups:[""], Resources:["endpoints"], Verbs:["get" "list" "watch"]}
            … 70 more
            grant updates RoleBinding admin-ada: allowed
            masters:kubernetes-admin creates ClusterRoleBinding take-over: allowed
        "#]],
    );
}

#[test]
fn covers_breaks_rules_down() {
    let owner = vec![
        PolicyRule::resource(&["get", "list"], &["", "apps"], &["pods", "*/scale"]),
        PolicyRule::resource(&["get"], &[""], &["secrets"]).names(&["a", "b"]),
        PolicyRule::non_resource(&["get"], &["/metrics", "/debug/*"]),
    ];
    let requested = vec![
        PolicyRule::resource(&["get"], &["apps"], &["deployments/scale", "pods"]),
        PolicyRule::resource(&["get"], &[""], &["secrets"]).names(&["a", "c"]),
        PolicyRule::resource(&["list"], &[""], &["secrets"]),
        PolicyRule::non_resource(&["get", "post"], &["/debug/pprof", "/metrics"]),
        PolicyRule::resource(&["watch"], &["*"], &["pods"]),
    ];
    let (ok, uncovered) = covers(&owner, &requested);
    let lines: Vec<String> = uncovered.iter().map(PolicyRule::compact_string).collect();
    expect![[r#"
        covered=false
        {APIGroups:[""], Resources:["secrets"], ResourceNames:["c"], Verbs:["get"]}
        {APIGroups:[""], Resources:["secrets"], Verbs:["list"]}
        {NonResourceURLs:["/debug/pprof"], Verbs:["post"]}
        {NonResourceURLs:["/metrics"], Verbs:["post"]}
        {APIGroups:["*"], Resources:["pods"], Verbs:["watch"]}
    "#]]
    .assert_eq(&format!("covered={ok}\n{}\n", lines.join("\n")));
}
