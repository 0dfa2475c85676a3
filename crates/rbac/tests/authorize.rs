//! The RBAC authorization matrix: one request per line, and what the API
//! server would answer — the RBAC reason when allowed, the 403 message when not.

mod common;

use bulwark_rbac::{Decision, RbacSnapshot, forbidden_message};
use expect_test::{Expect, expect};

fn check(snapshot: &RbacSnapshot, requests: &str, expect: Expect) {
    let mut out = String::new();
    for line in requests.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let attrs = common::request(line);
        let answer = match snapshot.authorize(&attrs) {
            Decision::Allow(reason) => format!("allow: {reason}"),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                format!("403: {}", forbidden_message(&attrs, &reason))
            }
        };
        out.push_str(&format!("{line}\n    {answer}\n"));
    }
    expect.assert_eq(&out);
}

#[test]
fn view_edit_admin_cluster_admin() {
    let rbac = common::world().snapshot();
    check(
        &rbac,
        "
        vera list pods dev
        vera get pods/log dev web
        vera get secrets dev db
        vera list roles.rbac.authorization.k8s.io dev
        vera create pods dev
        vera list widgets.example.com prod
        eddie get secrets dev db
        eddie create deployments.apps dev
        eddie update deployments.apps/scale dev web
        eddie create rolebindings.rbac.authorization.k8s.io dev
        eddie impersonate serviceaccounts dev default
        eddie list pods prod
        ada create rolebindings.rbac.authorization.k8s.io dev
        ada create localsubjectaccessreviews.authorization.k8s.io dev
        ada delete namespaces - dev
        root delete nodes - n1
        root get /logs/kube.log
        eddie get /api/v1
        anon get /version
        anon get /api
        ",
        expect![[r#"
            vera list pods dev
                allow: RBAC: allowed by ClusterRoleBinding "vera-view" of ClusterRole "view" to User "vera"
            vera get pods/log dev web
                allow: RBAC: allowed by ClusterRoleBinding "vera-view" of ClusterRole "view" to User "vera"
            vera get secrets dev db
                403: secrets "db" is forbidden: User "vera" cannot get resource "secrets" in API group "" in the namespace "dev"
            vera list roles.rbac.authorization.k8s.io dev
                403: roles.rbac.authorization.k8s.io is forbidden: User "vera" cannot list resource "roles" in API group "rbac.authorization.k8s.io" in the namespace "dev"
            vera create pods dev
                403: pods is forbidden: User "vera" cannot create resource "pods" in API group "" in the namespace "dev"
            vera list widgets.example.com prod
                allow: RBAC: allowed by ClusterRoleBinding "vera-view" of ClusterRole "view" to User "vera"
            eddie get secrets dev db
                allow: RBAC: allowed by RoleBinding "edit-eddie/dev" of ClusterRole "edit" to User "eddie"
            eddie create deployments.apps dev
                allow: RBAC: allowed by RoleBinding "edit-eddie/dev" of ClusterRole "edit" to User "eddie"
            eddie update deployments.apps/scale dev web
                allow: RBAC: allowed by RoleBinding "edit-eddie/dev" of ClusterRole "edit" to User "eddie"
            eddie create rolebindings.rbac.authorization.k8s.io dev
                403: rolebindings.rbac.authorization.k8s.io is forbidden: User "eddie" cannot create resource "rolebindings" in API group "rbac.authorization.k8s.io" in the namespace "dev"
            eddie impersonate serviceaccounts dev default
                allow: RBAC: allowed by RoleBinding "edit-eddie/dev" of ClusterRole "edit" to User "eddie"
            eddie list pods prod
                403: pods is forbidden: User "eddie" cannot list resource "pods" in API group "" in the namespace "prod"
            ada create rolebindings.rbac.authorization.k8s.io dev
                allow: RBAC: allowed by RoleBinding "admin-ada/dev" of ClusterRole "admin" to User "ada"
            ada create localsubjectaccessreviews.authorization.k8s.io dev
                allow: RBAC: allowed by RoleBinding "admin-ada/dev" of ClusterRole "admin" to User "ada"
            ada delete namespaces - dev
                403: namespaces "dev" is forbidden: User "ada" cannot delete resource "namespaces" in API group "" at the cluster scope
            root delete nodes - n1
                allow: RBAC: allowed by ClusterRoleBinding "root" of ClusterRole "cluster-admin" to User "root"
            root get /logs/kube.log
                allow: RBAC: allowed by ClusterRoleBinding "root" of ClusterRole "cluster-admin" to User "root"
            eddie get /api/v1
                allow: RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated"
            anon get /version
                allow: RBAC: allowed by ClusterRoleBinding "system:public-info-viewer" of ClusterRole "system:public-info-viewer" to Group "system:unauthenticated"
            anon get /api
                403: forbidden: User "system:anonymous" cannot get path "/api"
        "#]],
    );
}
