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

#[test]
fn resource_names_and_subresources() {
    let rbac = common::world().snapshot();
    check(
        &rbac,
        "
        cora get configmaps dev app-config
        cora update configmaps dev app-config
        cora get configmaps dev other
        cora list configmaps dev
        cora get configmaps/status dev app-config
        logan get pods/log dev web
        logan get pods dev web
        logan get pods/exec dev web
        vera create pods/exec dev web
        eddie create pods/exec dev web
        ",
        expect![[r#"
            cora get configmaps dev app-config
                allow: RBAC: allowed by RoleBinding "cora-config/dev" of Role "config-reader" to User "cora"
            cora update configmaps dev app-config
                allow: RBAC: allowed by RoleBinding "cora-config/dev" of Role "config-reader" to User "cora"
            cora get configmaps dev other
                403: configmaps "other" is forbidden: User "cora" cannot get resource "configmaps" in API group "" in the namespace "dev"
            cora list configmaps dev
                403: configmaps is forbidden: User "cora" cannot list resource "configmaps" in API group "" in the namespace "dev"
            cora get configmaps/status dev app-config
                403: configmaps "app-config" is forbidden: User "cora" cannot get resource "configmaps/status" in API group "" in the namespace "dev"
            logan get pods/log dev web
                allow: RBAC: allowed by RoleBinding "logan-logs/dev" of Role "log-reader" to User "logan"
            logan get pods dev web
                403: pods "web" is forbidden: User "logan" cannot get resource "pods" in API group "" in the namespace "dev"
            logan get pods/exec dev web
                403: pods "web" is forbidden: User "logan" cannot get resource "pods/exec" in API group "" in the namespace "dev"
            vera create pods/exec dev web
                403: pods "web" is forbidden: User "vera" cannot create resource "pods/exec" in API group "" in the namespace "dev"
            eddie create pods/exec dev web
                allow: RBAC: allowed by RoleBinding "edit-eddie/dev" of ClusterRole "edit" to User "eddie"
        "#]],
    );
}

#[test]
fn wildcards_and_non_resource_urls() {
    let rbac = common::world().snapshot();
    check(
        &rbac,
        "
        scaler-sam update deployments.apps/scale dev web
        scaler-sam get statefulsets.apps/scale dev db
        scaler-sam update deployments.apps dev web
        scaler-sam update deployments.extensions/scale dev web
        scaler-sam update deployments.apps/scale prod web
        root create widgets.example.com/status prod w
        root escalate clusterroles.rbac.authorization.k8s.io - admin
        mona get /metrics
        mona get /debug/pprof/heap
        mona get /debugger
        mona post /metrics
        eddie get /healthz
        eddie get /healthz/etcd
        ",
        expect![[r#"
            scaler-sam update deployments.apps/scale dev web
                allow: RBAC: allowed by RoleBinding "scalers/dev" of ClusterRole "scaler" to Group "scalers"
            scaler-sam get statefulsets.apps/scale dev db
                allow: RBAC: allowed by RoleBinding "scalers/dev" of ClusterRole "scaler" to Group "scalers"
            scaler-sam update deployments.apps dev web
                403: deployments.apps "web" is forbidden: User "scaler-sam" cannot update resource "deployments" in API group "apps" in the namespace "dev"
            scaler-sam update deployments.extensions/scale dev web
                403: deployments.extensions "web" is forbidden: User "scaler-sam" cannot update resource "deployments/scale" in API group "extensions" in the namespace "dev"
            scaler-sam update deployments.apps/scale prod web
                403: deployments.apps "web" is forbidden: User "scaler-sam" cannot update resource "deployments/scale" in API group "apps" in the namespace "prod"
            root create widgets.example.com/status prod w
                allow: RBAC: allowed by ClusterRoleBinding "root" of ClusterRole "cluster-admin" to User "root"
            root escalate clusterroles.rbac.authorization.k8s.io - admin
                allow: RBAC: allowed by ClusterRoleBinding "root" of ClusterRole "cluster-admin" to User "root"
            mona get /metrics
                allow: RBAC: allowed by ClusterRoleBinding "mona" of ClusterRole "monitoring" to User "mona"
            mona get /debug/pprof/heap
                allow: RBAC: allowed by ClusterRoleBinding "mona" of ClusterRole "monitoring" to User "mona"
            mona get /debugger
                403: forbidden: User "mona" cannot get path "/debugger"
            mona post /metrics
                403: forbidden: User "mona" cannot post path "/metrics"
            eddie get /healthz
                allow: RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated"
            eddie get /healthz/etcd
                403: forbidden: User "eddie" cannot get path "/healthz/etcd"
        "#]],
    );
}

#[test]
fn service_account_subjects() {
    let rbac = common::world().snapshot();
    check(
        &rbac,
        "
        sa:dev:builder list pods dev
        sa:prod:builder list pods dev
        sa:dev:builder list pods prod
        sa:ci:runner list pods prod
        sa:ci:runner get pods prod web
        sa:lost:lost list pods dev
        ",
        expect![[r#"
            sa:dev:builder list pods dev
                allow: RBAC: allowed by RoleBinding "builder/dev" of Role "builder" to ServiceAccount "builder/dev"
            sa:prod:builder list pods dev
                403: pods is forbidden: User "system:serviceaccount:prod:builder" cannot list resource "pods" in API group "" in the namespace "dev"
            sa:dev:builder list pods prod
                403: pods is forbidden: User "system:serviceaccount:dev:builder" cannot list resource "pods" in API group "" in the namespace "prod"
            sa:ci:runner list pods prod
                allow: RBAC: allowed by ClusterRoleBinding "ci-pods" of ClusterRole "pod-lister" to Group "system:serviceaccounts:ci"
            sa:ci:runner get pods prod web
                403: pods "web" is forbidden: User "system:serviceaccount:ci:runner" cannot get resource "pods" in API group "" in the namespace "prod"
            sa:lost:lost list pods dev
                403: pods is forbidden: User "system:serviceaccount:lost:lost" cannot list resource "pods" in API group "" in the namespace "dev"
        "#]],
    );
}

#[test]
fn missing_roles_are_reported_not_fatal() {
    let rbac = common::world().snapshot();
    check(
        &rbac,
        "
        ghost get pods dev
        ghost get pods prod
        ghost get /api
        ",
        expect![[r#"
            ghost get pods dev
                403: pods is forbidden: User "ghost" cannot get resource "pods" in API group "" in the namespace "dev": RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, role.rbac.authorization.k8s.io "missing" not found]
            ghost get pods prod
                403: pods is forbidden: User "ghost" cannot get resource "pods" in API group "" in the namespace "prod": RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found
            ghost get /api
                allow: RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated"
        "#]],
    );
}

#[test]
fn system_masters_is_bound_to_cluster_admin() {
    let rbac = common::world().snapshot();
    check(
        &rbac,
        "
        masters:kubernetes-admin delete namespaces - kube-system
        ",
        expect![[r#"
            masters:kubernetes-admin delete namespaces - kube-system
                allow: RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group "system:masters"
        "#]],
    );
}

#[test]
fn rules_review() {
    let rbac = common::world().snapshot();
    let render = |user: &str, ns: &str| {
        let review = rbac.rules_for(&common::user(user), ns);
        let mut out = format!("{user} in {ns:?}: incomplete={}", review.incomplete);
        if !review.evaluation_error.is_empty() {
            out.push_str(&format!(" ({})", review.evaluation_error));
        }
        out.push('\n');
        for rule in review
            .resource_rules
            .iter()
            .chain(&review.non_resource_rules)
        {
            out.push_str(&format!("  {}\n", rule.compact_string()));
        }
        out
    };
    let out = [
        render("cora", "dev"),
        render("ghost", "dev"),
        render("sa:dev:builder", "dev"),
    ]
    .concat();
    expect![[r#"
        cora in "dev": incomplete=false
          {APIGroups:["authorization.k8s.io"], Resources:["selfsubjectaccessreviews" "selfsubjectrulesreviews"], Verbs:["create"]}
          {APIGroups:["authentication.k8s.io"], Resources:["selfsubjectreviews"], Verbs:["create"]}
          {APIGroups:[""], Resources:["configmaps"], ResourceNames:["app-config"], Verbs:["get" "list" "update"]}
          {NonResourceURLs:["/api" "/api/*" "/apis" "/apis/*" "/healthz" "/livez" "/openapi" "/openapi/*" "/readyz" "/version" "/version/"], Verbs:["get"]}
          {NonResourceURLs:["/healthz" "/livez" "/readyz" "/version" "/version/"], Verbs:["get"]}
        ghost in "dev": incomplete=true ([clusterrole.rbac.authorization.k8s.io "gone" not found, role.rbac.authorization.k8s.io "missing" not found])
          {APIGroups:["authorization.k8s.io"], Resources:["selfsubjectaccessreviews" "selfsubjectrulesreviews"], Verbs:["create"]}
          {APIGroups:["authentication.k8s.io"], Resources:["selfsubjectreviews"], Verbs:["create"]}
          {NonResourceURLs:["/api" "/api/*" "/apis" "/apis/*" "/healthz" "/livez" "/openapi" "/openapi/*" "/readyz" "/version" "/version/"], Verbs:["get"]}
          {NonResourceURLs:["/healthz" "/livez" "/readyz" "/version" "/version/"], Verbs:["get"]}
        sa:dev:builder in "dev": incomplete=false
          {APIGroups:["authorization.k8s.io"], Resources:["selfsubjectaccessreviews" "selfsubjectrulesreviews"], Verbs:["create"]}
          {APIGroups:["authentication.k8s.io"], Resources:["selfsubjectreviews"], Verbs:["create"]}
          {APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}
          {NonResourceURLs:["/api" "/api/*" "/apis" "/apis/*" "/healthz" "/livez" "/openapi" "/openapi/*" "/readyz" "/version" "/version/"], Verbs:["get"]}
          {NonResourceURLs:["/healthz" "/livez" "/readyz" "/version" "/version/"], Verbs:["get"]}
          {NonResourceURLs:["/.well-known/openid-configuration" "/openid/v1/jwks"], Verbs:["get"]}
    "#]].assert_eq(&out);
}

#[test]
fn controllers_run_with_least_privilege() {
    let rbac = common::world().snapshot();
    check(
        &rbac,
        "
        sa:kube-system:deployment-controller create replicasets.apps prod
        sa:kube-system:deployment-controller update deployments.apps/status prod web
        sa:kube-system:deployment-controller get secrets prod db
        sa:kube-system:replicaset-controller create pods prod
        sa:kube-system:replicaset-controller create pods/exec prod web
        sa:kube-system:generic-garbage-collector delete widgets.example.com prod w
        sa:kube-system:generic-garbage-collector create pods prod
        sa:default:deployment-controller create replicasets.apps prod
        system:kube-scheduler create pods/binding prod web
        system:kube-scheduler update leases.coordination.k8s.io kube-system kube-scheduler
        system:kube-scheduler update leases.coordination.k8s.io kube-system other
        ",
        expect![[r#"
            sa:kube-system:deployment-controller create replicasets.apps prod
                allow: RBAC: allowed by ClusterRoleBinding "system:controller:deployment-controller" of ClusterRole "system:controller:deployment-controller" to ServiceAccount "deployment-controller/kube-system"
            sa:kube-system:deployment-controller update deployments.apps/status prod web
                allow: RBAC: allowed by ClusterRoleBinding "system:controller:deployment-controller" of ClusterRole "system:controller:deployment-controller" to ServiceAccount "deployment-controller/kube-system"
            sa:kube-system:deployment-controller get secrets prod db
                403: secrets "db" is forbidden: User "system:serviceaccount:kube-system:deployment-controller" cannot get resource "secrets" in API group "" in the namespace "prod"
            sa:kube-system:replicaset-controller create pods prod
                allow: RBAC: allowed by ClusterRoleBinding "system:controller:replicaset-controller" of ClusterRole "system:controller:replicaset-controller" to ServiceAccount "replicaset-controller/kube-system"
            sa:kube-system:replicaset-controller create pods/exec prod web
                403: pods "web" is forbidden: User "system:serviceaccount:kube-system:replicaset-controller" cannot create resource "pods/exec" in API group "" in the namespace "prod"
            sa:kube-system:generic-garbage-collector delete widgets.example.com prod w
                allow: RBAC: allowed by ClusterRoleBinding "system:controller:generic-garbage-collector" of ClusterRole "system:controller:generic-garbage-collector" to ServiceAccount "generic-garbage-collector/kube-system"
            sa:kube-system:generic-garbage-collector create pods prod
                403: pods is forbidden: User "system:serviceaccount:kube-system:generic-garbage-collector" cannot create resource "pods" in API group "" in the namespace "prod"
            sa:default:deployment-controller create replicasets.apps prod
                403: replicasets.apps is forbidden: User "system:serviceaccount:default:deployment-controller" cannot create resource "replicasets" in API group "apps" in the namespace "prod"
            system:kube-scheduler create pods/binding prod web
                allow: RBAC: allowed by ClusterRoleBinding "system:kube-scheduler" of ClusterRole "system:kube-scheduler" to User "system:kube-scheduler"
            system:kube-scheduler update leases.coordination.k8s.io kube-system kube-scheduler
                allow: RBAC: allowed by ClusterRoleBinding "system:kube-scheduler" of ClusterRole "system:kube-scheduler" to User "system:kube-scheduler"
            system:kube-scheduler update leases.coordination.k8s.io kube-system other
                403: leases.coordination.k8s.io "other" is forbidden: User "system:kube-scheduler" cannot update resource "leases" in API group "coordination.k8s.io" in the namespace "kube-system"
        "#]],
    );
}
