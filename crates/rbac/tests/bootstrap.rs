//! The bootstrap policy: what the default roles grant once aggregated, and
//! how reconciliation treats objects a user changed.

use bulwark_rbac::bootstrap::{
    self, Reconcile, reconcile_cluster_role, reconcile_cluster_role_binding,
};
use bulwark_rbac::{Attributes, RbacSnapshot, UserInfo, aggregate_cluster_roles, selector_matches};
use expect_test::expect;
use serde_json::{Value, json};

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

#[test]
fn every_default_object_is_labelled_and_auto_updated() {
    let roles = bootstrap::cluster_roles();
    let bindings = bootstrap::cluster_role_bindings();
    let mut out = String::new();
    for object in roles.iter().chain(&bindings) {
        assert_eq!(
            object["metadata"]["labels"]["kubernetes.io/bootstrapping"],
            "rbac-defaults"
        );
        assert_eq!(
            object["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
            "true"
        );
        let subjects: Vec<String> = object["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                format!(
                    "{}:{}",
                    s["kind"].as_str().unwrap_or_default(),
                    s["name"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let detail = match object["kind"].as_str() {
            Some("ClusterRoleBinding") => format!(
                " -> {} {}",
                object["roleRef"]["name"].as_str().unwrap_or_default(),
                subjects.join(",")
            ),
            _ => object["rules"]
                .as_array()
                .map(|r| format!(" ({} rules)", r.len()))
                .unwrap_or_default(),
        };
        let line = format!(
            "{} {}{}",
            object["kind"].as_str().unwrap_or_default(),
            name(object),
            detail
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    expect![[r#"
        ClusterRole admin (0 rules)
        ClusterRole cluster-admin (2 rules)
        ClusterRole edit (0 rules)
        ClusterRole system:aggregate-to-admin (2 rules)
        ClusterRole system:aggregate-to-edit (13 rules)
        ClusterRole system:aggregate-to-view (10 rules)
        ClusterRole system:aggregated-metrics-reader (1 rules)
        ClusterRole system:auth-delegator (2 rules)
        ClusterRole system:basic-user (2 rules)
        ClusterRole system:bulwark-dns (2 rules)
        ClusterRole system:bulwark-network-policy (2 rules)
        ClusterRole system:certificates.k8s.io:certificatesigningrequests:nodeclient (1 rules)
        ClusterRole system:certificates.k8s.io:certificatesigningrequests:selfnodeclient (1 rules)
        ClusterRole system:certificates.k8s.io:kube-apiserver-client-approver (1 rules)
        ClusterRole system:certificates.k8s.io:kube-apiserver-client-kubelet-approver (1 rules)
        ClusterRole system:certificates.k8s.io:kubelet-serving-approver (1 rules)
        ClusterRole system:certificates.k8s.io:legacy-unknown-approver (1 rules)
        ClusterRole system:controller:certificate-controller (6 rules)
        ClusterRole system:controller:clusterrole-aggregation-controller (1 rules)
        ClusterRole system:controller:cronjob-controller (6 rules)
        ClusterRole system:controller:daemon-set-controller (8 rules)
        ClusterRole system:controller:deployment-controller (6 rules)
        ClusterRole system:controller:disruption-controller (7 rules)
        ClusterRole system:controller:endpoint-controller (4 rules)
        ClusterRole system:controller:endpointslice-controller (4 rules)
        ClusterRole system:controller:generic-garbage-collector (2 rules)
        ClusterRole system:controller:job-controller (5 rules)
        ClusterRole system:controller:namespace-controller (3 rules)
        ClusterRole system:controller:node-controller (5 rules)
        ClusterRole system:controller:pod-garbage-collector (3 rules)
        ClusterRole system:controller:replicaset-controller (5 rules)
        ClusterRole system:controller:resourcequota-controller (3 rules)
        ClusterRole system:controller:root-ca-cert-publisher (2 rules)
        ClusterRole system:controller:service-account-controller (2 rules)
        ClusterRole system:controller:service-controller (2 rules)
        ClusterRole system:controller:statefulset-controller (10 rules)
        ClusterRole system:controller:ttl-after-finished-controller (2 rules)
        ClusterRole system:discovery (1 rules)
        ClusterRole system:kube-controller-manager (11 rules)
        ClusterRole system:kube-dns (1 rules)
        ClusterRole system:kube-scheduler (18 rules)
        ClusterRole system:kubelet-api-admin (3 rules)
        ClusterRole system:monitoring (1 rules)
        ClusterRole system:node (22 rules)
        ClusterRole system:node-bootstrapper (1 rules)
        ClusterRole system:node-proxier (4 rules)
        ClusterRole system:public-info-viewer (1 rules)
        ClusterRole system:service-account-issuer-discovery (1 rules)
        ClusterRole system:volume-scheduler (3 rules)
        ClusterRole view (0 rules)
        ClusterRoleBinding cluster-admin -> cluster-admin Group:system:masters
        ClusterRoleBinding system:basic-user -> system:basic-user Group:system:authenticated
        ClusterRoleBinding system:certificates.k8s.io:certificatesigningrequests:nodeclient -> system:certificates.k8s.io:certificatesigningrequests:nodeclient Group:system:bootstrappers
        ClusterRoleBinding system:certificates.k8s.io:certificatesigningrequests:selfnodeclient -> system:certificates.k8s.io:certificatesigningrequests:selfnodeclient Group:system:nodes
        ClusterRoleBinding system:discovery -> system:discovery Group:system:authenticated
        ClusterRoleBinding system:kube-controller-manager -> system:kube-controller-manager User:system:kube-controller-manager
        ClusterRoleBinding system:bulwark-dns -> system:bulwark-dns User:system:bulwark-dns,User:system:kube-proxy
        ClusterRoleBinding system:bulwark-network-policy -> system:bulwark-network-policy User:system:kube-proxy
        ClusterRoleBinding system:kube-dns -> system:kube-dns ServiceAccount:kube-dns
        ClusterRoleBinding system:kube-scheduler -> system:kube-scheduler User:system:kube-scheduler
        ClusterRoleBinding system:kube-apiserver-kubelet-client -> system:kubelet-api-admin User:kube-apiserver-kubelet-client
        ClusterRoleBinding system:monitoring -> system:monitoring Group:system:monitoring
        ClusterRoleBinding system:node -> system:node
        ClusterRoleBinding system:node-bootstrapper -> system:node-bootstrapper Group:system:bootstrappers
        ClusterRoleBinding system:node-proxier -> system:node-proxier User:system:kube-proxy
        ClusterRoleBinding system:public-info-viewer -> system:public-info-viewer Group:system:authenticated,Group:system:unauthenticated
        ClusterRoleBinding system:service-account-issuer-discovery -> system:service-account-issuer-discovery Group:system:serviceaccounts
        ClusterRoleBinding system:volume-scheduler -> system:volume-scheduler User:system:kube-scheduler
        ClusterRoleBinding system:controller:clusterrole-aggregation-controller -> system:controller:clusterrole-aggregation-controller ServiceAccount:clusterrole-aggregation-controller
        ClusterRoleBinding system:controller:certificate-controller -> system:controller:certificate-controller ServiceAccount:certificate-controller
        ClusterRoleBinding system:controller:cronjob-controller -> system:controller:cronjob-controller ServiceAccount:cronjob-controller
        ClusterRoleBinding system:controller:daemon-set-controller -> system:controller:daemon-set-controller ServiceAccount:daemon-set-controller
        ClusterRoleBinding system:controller:deployment-controller -> system:controller:deployment-controller ServiceAccount:deployment-controller
        ClusterRoleBinding system:controller:disruption-controller -> system:controller:disruption-controller ServiceAccount:disruption-controller
        ClusterRoleBinding system:controller:endpoint-controller -> system:controller:endpoint-controller ServiceAccount:endpoint-controller
        ClusterRoleBinding system:controller:endpointslice-controller -> system:controller:endpointslice-controller ServiceAccount:endpointslice-controller
        ClusterRoleBinding system:controller:generic-garbage-collector -> system:controller:generic-garbage-collector ServiceAccount:generic-garbage-collector
        ClusterRoleBinding system:controller:job-controller -> system:controller:job-controller ServiceAccount:job-controller
        ClusterRoleBinding system:controller:namespace-controller -> system:controller:namespace-controller ServiceAccount:namespace-controller
        ClusterRoleBinding system:controller:node-controller -> system:controller:node-controller ServiceAccount:node-controller
        ClusterRoleBinding system:controller:pod-garbage-collector -> system:controller:pod-garbage-collector ServiceAccount:pod-garbage-collector
        ClusterRoleBinding system:controller:replicaset-controller -> system:controller:replicaset-controller ServiceAccount:replicaset-controller
        ClusterRoleBinding system:controller:resourcequota-controller -> system:controller:resourcequota-controller ServiceAccount:resourcequota-controller
        ClusterRoleBinding system:controller:root-ca-cert-publisher -> system:controller:root-ca-cert-publisher ServiceAccount:root-ca-cert-publisher
        ClusterRoleBinding system:controller:service-account-controller -> system:controller:service-account-controller ServiceAccount:service-account-controller
        ClusterRoleBinding system:controller:service-controller -> system:controller:service-controller ServiceAccount:service-controller
        ClusterRoleBinding system:controller:statefulset-controller -> system:controller:statefulset-controller ServiceAccount:statefulset-controller
        ClusterRoleBinding system:controller:ttl-after-finished-controller -> system:controller:ttl-after-finished-controller ServiceAccount:ttl-after-finished-controller
    "#]].assert_eq(&out);
}

/// What one user bound (cluster-wide) to each aggregated default role may do.
#[test]
fn aggregated_admin_edit_view() {
    let roles = aggregate_cluster_roles(&bootstrap::cluster_roles());
    let bind = |role: &str| {
        json!({"metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "name": role}]})
    };
    let bindings = [bind("view"), bind("edit"), bind("admin")];
    let rbac = RbacSnapshot::new(&[], &roles, &[], &bindings).expect("well-formed");
    let probes = [
        ("get", "", "pods"),
        ("get", "", "pods/log"),
        ("get", "", "secrets"),
        ("create", "", "secrets"),
        ("create", "", "pods/exec"),
        ("impersonate", "", "serviceaccounts"),
        ("create", "", "serviceaccounts/token"),
        ("update", "apps", "deployments/scale"),
        ("list", "rbac.authorization.k8s.io", "roles"),
        ("create", "rbac.authorization.k8s.io", "rolebindings"),
        (
            "create",
            "authorization.k8s.io",
            "localsubjectaccessreviews",
        ),
        ("update", "", "resourcequotas"),
        ("delete", "", "namespaces"),
    ];
    let mut out = format!("{:<60} view edit admin\n", "");
    for (verb, group, resource) in probes {
        let qualified = if group.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}.{group}")
        };
        let mut row = format!("{:<60}", format!("{verb} {qualified}"));
        for role in ["view", "edit", "admin"] {
            let attrs =
                Attributes::resource(UserInfo::new(role, &[]), verb, group, resource, "ns", "x");
            row.push_str(if rbac.authorize(&attrs).is_allowed() {
                "  yes"
            } else {
                "   - "
            });
        }
        out.push_str(row.trim_end());
        out.push('\n');
    }
    expect![[r#"
                                                                     view edit admin
        get pods                                                      yes  yes  yes
        get pods/log                                                  yes  yes  yes
        get secrets                                                    -   yes  yes
        create secrets                                                 -   yes  yes
        create pods/exec                                               -   yes  yes
        impersonate serviceaccounts                                    -   yes  yes
        create serviceaccounts/token                                   -   yes  yes
        update deployments/scale.apps                                  -   yes  yes
        list roles.rbac.authorization.k8s.io                           -    -   yes
        create rolebindings.rbac.authorization.k8s.io                  -    -   yes
        create localsubjectaccessreviews.authorization.k8s.io          -    -   yes
        update resourcequotas                                          -    -    -
        delete namespaces                                              -    -    -
    "#]]
    .assert_eq(&out);
}

#[test]
fn label_selectors() {
    let labels = json!({"tier": "web", "env": "prod"});
    let labels = labels.as_object();
    let cases = [
        json!({}),
        json!({"matchLabels": {"tier": "web"}}),
        json!({"matchLabels": {"tier": "db"}}),
        json!({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]}]}),
        json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}),
        json!({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}),
        json!({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}),
        json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}], "matchLabels": {"env": "dev"}}),
        json!({"matchExpressions": [{"key": "tier", "operator": "Bogus"}]}),
    ];
    let out: String = cases
        .iter()
        .map(|s| format!("{s} => {}\n", selector_matches(s, labels)))
        .collect();
    expect![[r#"
        {} => true
        {"matchLabels":{"tier":"web"}} => true
        {"matchLabels":{"tier":"db"}} => false
        {"matchExpressions":[{"key":"env","operator":"In","values":["prod","stage"]}]} => true
        {"matchExpressions":[{"key":"env","operator":"NotIn","values":["prod"]}]} => false
        {"matchExpressions":[{"key":"team","operator":"NotIn","values":["a"]}]} => true
        {"matchExpressions":[{"key":"team","operator":"DoesNotExist"}]} => true
        {"matchExpressions":[{"key":"tier","operator":"Exists"}],"matchLabels":{"env":"dev"}} => false
        {"matchExpressions":[{"key":"tier","operator":"Bogus"}]} => false
    "#]].assert_eq(&out);
}

fn find<'a>(objects: &'a [Value], wanted: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| name(o) == wanted)
        .expect("bootstrap object exists")
}

fn describe(result: &Reconcile) -> String {
    match result {
        Reconcile::Create(v) => format!("create {}", name(v)),
        Reconcile::Update(v) => format!(
            "update {}: rules={} subjects={}",
            name(v),
            v["rules"],
            v["subjects"]
        ),
        Reconcile::Recreate(v) => format!("recreate {} -> {}", name(v), v["roleRef"]["name"]),
        Reconcile::Unchanged => "unchanged".into(),
        Reconcile::Protected => "protected (autoupdate=false)".into(),
    }
}

#[test]
fn reconciliation_adds_what_is_missing_and_keeps_user_changes() {
    let roles = bootstrap::cluster_roles();
    let bindings = bootstrap::cluster_role_bindings();
    let monitoring = find(&roles, "system:monitoring");
    let discovery = find(&bindings, "system:discovery");

    let mut trimmed = monitoring.clone();
    trimmed["rules"] = json!([
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
        {"nonResourceURLs": ["/custom"], "verbs": ["get"]}
    ]);
    let mut protected = trimmed.clone();
    protected["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] =
        json!("false");
    let mut fewer_subjects = discovery.clone();
    fewer_subjects["subjects"] =
        json!([{"kind": "Group", "name": "extra-group", "apiGroup": "rbac.authorization.k8s.io"}]);
    let mut other_role = discovery.clone();
    other_role["roleRef"]["name"] = json!("cluster-admin");
    let mut protected_binding = fewer_subjects.clone();
    protected_binding["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] =
        json!("false");
    let mut unlabelled = monitoring.clone();
    unlabelled["metadata"]["labels"] = json!({});

    let out = [
        describe(&reconcile_cluster_role(None, monitoring)),
        describe(&reconcile_cluster_role(Some(monitoring), monitoring)),
        describe(&reconcile_cluster_role(Some(&trimmed), monitoring)),
        describe(&reconcile_cluster_role(Some(&protected), monitoring)),
        describe(&reconcile_cluster_role(Some(&unlabelled), monitoring)),
        describe(&reconcile_cluster_role(
            Some(find(&roles, "admin")),
            find(&roles, "admin"),
        )),
        describe(&reconcile_cluster_role_binding(Some(discovery), discovery)),
        describe(&reconcile_cluster_role_binding(
            Some(&fewer_subjects),
            discovery,
        )),
        describe(&reconcile_cluster_role_binding(
            Some(&protected_binding),
            discovery,
        )),
        describe(&reconcile_cluster_role_binding(
            Some(&other_role),
            discovery,
        )),
    ]
    .join("\n");
    expect![[r#"
        create system:monitoring
        unchanged
        update system:monitoring: rules=[{"nonResourceURLs":["/metrics"],"verbs":["get"]},{"nonResourceURLs":["/custom"],"verbs":["get"]},{"nonResourceURLs":["/healthz"],"verbs":["get"]},{"nonResourceURLs":["/healthz/*"],"verbs":["get"]},{"nonResourceURLs":["/livez"],"verbs":["get"]},{"nonResourceURLs":["/livez/*"],"verbs":["get"]},{"nonResourceURLs":["/metrics/slis"],"verbs":["get"]},{"nonResourceURLs":["/readyz"],"verbs":["get"]},{"nonResourceURLs":["/readyz/*"],"verbs":["get"]}] subjects=null
        protected (autoupdate=false)
        update system:monitoring: rules=[{"nonResourceURLs":["/healthz","/healthz/*","/livez","/livez/*","/metrics","/metrics/slis","/readyz","/readyz/*"],"verbs":["get"]}] subjects=null
        unchanged
        unchanged
        update system:discovery: rules=null subjects=[{"apiGroup":"rbac.authorization.k8s.io","kind":"Group","name":"extra-group"},{"apiGroup":"rbac.authorization.k8s.io","kind":"Group","name":"system:authenticated"}]
        protected (autoupdate=false)
        recreate system:discovery -> "system:discovery""#]].assert_eq(&out);
}

#[test]
fn reconciling_all_defaults() {
    use bulwark_rbac::bootstrap::reconcile_defaults;
    let count = |steps: &[bootstrap::ReconcileStep]| {
        let mut created = 0;
        let mut unchanged = 0;
        let mut other = Vec::new();
        for step in steps {
            match &step.action {
                Reconcile::Create(_) => created += 1,
                Reconcile::Unchanged => unchanged += 1,
                action => other.push(format!("{} {}: {}", step.kind, step.name, describe(action))),
            }
        }
        format!("created={created} unchanged={unchanged} {other:?}")
    };
    let fresh = reconcile_defaults(&[], &[]);
    let mut roles = aggregate_cluster_roles(&bootstrap::cluster_roles());
    let bindings = bootstrap::cluster_role_bindings();
    let settled = reconcile_defaults(&roles, &bindings);
    roles.retain(|r| name(r) != "view");
    let view_deleted = reconcile_defaults(&roles, &bindings);
    expect![[r#"
        created=88 unchanged=0 []
        created=0 unchanged=88 []
        created=1 unchanged=87 []"#]]
    .assert_eq(&[count(&fresh), count(&settled), count(&view_deleted)].join("\n"));
}
