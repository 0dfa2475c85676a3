//! `cargo bench -p bulwark-rbac`: authorize() against 1,000 Roles, 1,000
//! ClusterRoles, 1,000 RoleBindings and 1,000 ClusterRoleBindings (plus the
//! bootstrap policy), for an allowed request found late, a denied request
//! (which visits every applicable binding), and a group-bound allow. Prints
//! nanoseconds per call; no assertion on time.

use std::hint::black_box;
use std::time::Instant;

use bulwark_rbac::{Attributes, RbacSnapshot, UserInfo, aggregate_cluster_roles, bootstrap};
use serde_json::{Value, json};

const N: usize = 1_000;

fn main() {
    let build = Instant::now();
    let snapshot = world();
    println!("snapshot built in {:?}", build.elapsed());

    let user = UserInfo::new("user-999", &["team-999", "system:authenticated"]);
    let cases = [
        (
            "allow via RoleBinding (last of 1,000)",
            Attributes::resource(user.clone(), "get", "", "configmaps", "ns-9", "cm"),
        ),
        (
            "deny (all applicable bindings visited)",
            Attributes::resource(user.clone(), "delete", "", "nodes", "", "n1"),
        ),
        (
            "allow via group ClusterRoleBinding",
            Attributes::resource(user.clone(), "list", "apps", "deployments", "ns-3", ""),
        ),
        (
            "allow non-resource via system:discovery",
            Attributes::non_resource(user, "get", "/apis/apps/v1"),
        ),
    ];
    for (label, attrs) in &cases {
        let iterations = 200_000;
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(snapshot.authorize(black_box(attrs)));
        }
        let per_call = start.elapsed().as_nanos() / iterations;
        println!(
            "{label}: {per_call} ns/call ({:?})",
            snapshot.authorize(attrs).is_allowed()
        );
    }
}

fn world() -> RbacSnapshot {
    let rule = |verbs: &[&str], resources: &[&str]| {
        json!([{"apiGroups": ["", "apps"], "resources": resources, "verbs": verbs},
               {"apiGroups": ["example.com"], "resources": ["widgets", "gadgets/status"], "verbs": ["get"]}])
    };
    let roles: Vec<Value> = (0..N)
        .map(|i| {
            json!({"metadata": {"name": format!("role-{i}"), "namespace": format!("ns-{}", i % 10)},
                "rules": rule(&["get", "list"], &["configmaps", "pods", "pods/log"])})
        })
        .collect();
    let mut cluster_roles = bootstrap::cluster_roles();
    cluster_roles.extend((0..N).map(|i| {
        json!({"metadata": {"name": format!("cluster-role-{i}")},
            "rules": rule(&["list", "watch"], &["deployments", "services", "secrets"])})
    }));
    let start = Instant::now();
    let cluster_roles = aggregate_cluster_roles(&cluster_roles);
    println!(
        "aggregated {} ClusterRoles in {:?}",
        cluster_roles.len(),
        start.elapsed()
    );
    let role_bindings: Vec<Value> = (0..N)
        .map(|i| {
            json!({"metadata": {"name": format!("rb-{i}"), "namespace": format!("ns-{}", i % 10)},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("role-{i}")},
                "subjects": [{"kind": "User", "name": format!("user-{i}")},
                             {"kind": "Group", "name": "everyone-in-ns"}]})
        })
        .collect();
    let mut cluster_role_bindings = bootstrap::cluster_role_bindings();
    cluster_role_bindings.extend((0..N).map(|i| {
        json!({"metadata": {"name": format!("crb-{i}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("cluster-role-{i}")},
            "subjects": [{"kind": "Group", "name": format!("team-{i}")},
                         {"kind": "ServiceAccount", "name": "sa", "namespace": format!("ns-{i}")}]})
    }));
    RbacSnapshot::new(
        &roles,
        &cluster_roles,
        &role_bindings,
        &cluster_role_bindings,
    )
    .expect("generated objects are well-formed")
}
