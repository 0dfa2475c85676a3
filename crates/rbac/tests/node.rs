//! The Node authorizer: a node reads only what its pods use.

use std::collections::HashMap;

mod common;

use bulwark_rbac::{Decision, NodeGraph, PodReferences, authorize_node};
use expect_test::{Expect, expect};
use serde_json::json;

/// Pods by node, and claim → volume bindings.
struct FakeGraph {
    pods: HashMap<String, Vec<PodReferences>>,
    volumes: HashMap<(String, String), String>,
}

impl NodeGraph for FakeGraph {
    fn pods_on_node(&self, node: &str) -> Vec<PodReferences> {
        self.pods.get(node).cloned().unwrap_or_default()
    }
    fn volume_of_claim(&self, namespace: &str, claim: &str) -> Option<String> {
        self.volumes
            .get(&(namespace.to_owned(), claim.to_owned()))
            .cloned()
    }
}

fn graph() -> FakeGraph {
    let web = json!({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "nodeName": "n1",
            "serviceAccountName": "web-sa",
            "imagePullSecrets": [{"name": "registry"}],
            "volumes": [
                {"name": "tls", "secret": {"secretName": "web-tls"}},
                {"name": "cfg", "configMap": {"name": "web-config"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
                {"name": "bundle", "projected": {"sources": [{"configMap": {"name": "ca-bundle"}}, {"secret": {"name": "api-key"}}]}}
            ],
            "containers": [{"name": "app",
                "env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db-password", "key": "pw"}}}],
                "envFrom": [{"configMapRef": {"name": "app-env"}}]}]
        }
    });
    let refs = PodReferences::from_pod(&web);
    let mut pods = HashMap::new();
    pods.insert("n1".to_owned(), vec![refs]);
    let mut volumes = HashMap::new();
    volumes.insert(
        ("shop".to_owned(), "web-data".to_owned()),
        "pv-1".to_owned(),
    );
    FakeGraph { pods, volumes }
}

/// `node verb resource[.group][/sub] ns|- name|-`; `alice …` for a non-node user.
fn check(requests: &str, expect: Expect) {
    let graph = graph();
    let mut out = String::new();
    for line in requests.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let spec = if line.starts_with("alice") {
            line.to_owned()
        } else {
            format!("node:{line}")
        };
        let attrs = common::request(&spec);
        let answer = match authorize_node(&graph, &attrs) {
            Decision::Allow(_) => "allow".to_owned(),
            Decision::Deny(r) => format!("deny: {r}"),
            Decision::NoOpinion(r) if r.is_empty() => "no opinion".to_owned(),
            Decision::NoOpinion(r) => format!("no opinion: {r}"),
        };
        out.push_str(&format!("{line:<55} {answer}\n"));
    }
    expect.assert_eq(&out);
}

#[test]
fn nodes_read_only_what_their_pods_use() {
    check(
        "
        n1 get secrets shop web-tls
        n1 get secrets shop registry
        n1 get secrets shop db-password
        n1 get secrets shop api-key
        n2 get secrets shop web-tls
        n1 get secrets shop other
        n1 get secrets other web-tls
        n1 list secrets shop
        n1 delete secrets shop web-tls
        n1 get configmaps shop web-config
        n1 watch configmaps shop app-env
        n1 get configmaps shop ca-bundle
        n2 get configmaps shop web-config
        n1 get persistentvolumeclaims shop web-data
        n1 update persistentvolumeclaims/status shop web-data
        n1 get persistentvolumes - pv-1
        n2 get persistentvolumes - pv-1
        n1 create serviceaccounts/token shop web-sa
        n1 create serviceaccounts/token shop default
        n1 get serviceaccounts shop web-sa
        ",
        expect![[r#"
            n1 get secrets shop web-tls                             allow
            n1 get secrets shop registry                            allow
            n1 get secrets shop db-password                         allow
            n1 get secrets shop api-key                             allow
            n2 get secrets shop web-tls                             no opinion: no relationship found between node 'n2' and this object
            n1 get secrets shop other                               no opinion: no relationship found between node 'n1' and this object
            n1 get secrets other web-tls                            no opinion: no relationship found between node 'n1' and this object
            n1 list secrets shop                                    no opinion: No Object name found
            n1 delete secrets shop web-tls                          no opinion: can only read resources of this type
            n1 get configmaps shop web-config                       allow
            n1 watch configmaps shop app-env                        allow
            n1 get configmaps shop ca-bundle                        allow
            n2 get configmaps shop web-config                       no opinion: no relationship found between node 'n2' and this object
            n1 get persistentvolumeclaims shop web-data             allow
            n1 update persistentvolumeclaims/status shop web-data   allow
            n1 get persistentvolumes - pv-1                         allow
            n2 get persistentvolumes - pv-1                         no opinion: no relationship found between node 'n2' and this object
            n1 create serviceaccounts/token shop web-sa             allow
            n1 create serviceaccounts/token shop default            no opinion: no relationship found between node 'n1' and this object
            n1 get serviceaccounts shop web-sa                      no opinion: can only create tokens for individual service accounts
        "#]],
    );
}

#[test]
fn node_rules_leases_and_others() {
    check(
        "
        n1 get pods shop web
        n1 update pods/status shop web
        n1 create events shop
        n1 patch nodes/status - n1
        n1 get leases.coordination.k8s.io kube-node-lease n1
        n1 update leases.coordination.k8s.io kube-node-lease n2
        n1 get leases.coordination.k8s.io kube-system n1
        n1 update csinodes.storage.k8s.io - n1
        n1 update csinodes.storage.k8s.io - n2
        n1 create certificatesigningrequests.certificates.k8s.io -
        n1 delete deployments.apps shop web
        n1 get nodes - n1
        n1 get nodes - n2
        n1 list nodes - -
        n1 watch nodes - n1
        n1 update nodes - n2
        n1 delete nodes - n1
        n1 get pods shop other
        n1 list pods - - ?spec.nodeName=n1
        n1 watch pods - - ?spec.nodeName=n2
        n1 list pods shop -
        n1 create pods shop -
        n1 create pods/eviction shop web
        n1 update pods shop web
        alice get secrets shop web-tls
        ",
        expect![[r#"
            n1 get pods shop web                                    allow
            n1 update pods/status shop web                          allow
            n1 create events shop                                   allow
            n1 patch nodes/status - n1                              allow
            n1 get leases.coordination.k8s.io kube-node-lease n1    allow
            n1 update leases.coordination.k8s.io kube-node-lease n2 no opinion: can only access node lease with the same name as the requesting node
            n1 get leases.coordination.k8s.io kube-system n1        no opinion: can only access leases in the "kube-node-lease" system namespace
            n1 update csinodes.storage.k8s.io - n1                  allow
            n1 update csinodes.storage.k8s.io - n2                  no opinion: can only access CSINode with the same name as the requesting node
            n1 create certificatesigningrequests.certificates.k8s.io - allow
            n1 delete deployments.apps shop web                     no opinion
            n1 get nodes - n1                                       allow
            n1 get nodes - n2                                       no opinion: node 'n1' cannot read 'n2', only its own Node object
            n1 list nodes - -                                       no opinion: node 'n1' cannot read all nodes, only its own Node object
            n1 watch nodes - n1                                     allow
            n1 update nodes - n2                                    allow
            n1 delete nodes - n1                                    no opinion
            n1 get pods shop other                                  no opinion: no relationship found between node 'n1' and this object
            n1 list pods - - ?spec.nodeName=n1                      allow
            n1 watch pods - - ?spec.nodeName=n2                     no opinion: can only list/watch pods with spec.nodeName field selector
            n1 list pods shop -                                     no opinion: can only list/watch pods with spec.nodeName field selector
            n1 create pods shop -                                   allow
            n1 create pods/eviction shop web                        allow
            n1 update pods shop web                                 no opinion
            alice get secrets shop web-tls                          no opinion
        "#]],
    );
}

/// The whole chain as the API server runs it, with the 403 it would send.
#[test]
fn chain_masters_node_rbac() {
    let graph = graph();
    let rbac = common::world().snapshot();
    let mut out = String::new();
    for line in [
        "node:n1 get secrets shop web-tls",
        "node:n2 get secrets shop web-tls",
        "node:n2 get nodes - n1",
        "masters:admin delete secrets shop web-tls",
        "eddie get secrets dev db",
        "ghost get secrets dev db",
    ] {
        let attrs = common::request(line);
        let answer = match bulwark_rbac::authorize(&graph, &rbac, &attrs) {
            Decision::Allow(reason) => format!("allow {reason}"),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                format!("403 {}", bulwark_rbac::forbidden_message(&attrs, &reason))
            }
        };
        out.push_str(&format!("{line}\n    {}\n", answer.trim_end()));
    }
    expect![[r#"
        node:n1 get secrets shop web-tls
            allow
        node:n2 get secrets shop web-tls
            403 secrets "web-tls" is forbidden: User "system:node:n2" cannot get resource "secrets" in API group "" in the namespace "shop": no relationship found between node 'n2' and this object
        node:n2 get nodes - n1
            403 nodes "n1" is forbidden: User "system:node:n2" cannot get resource "nodes" in API group "" at the cluster scope: node 'n2' cannot read 'n1', only its own Node object
        masters:admin delete secrets shop web-tls
            allow
        eddie get secrets dev db
            allow RBAC: allowed by RoleBinding "edit-eddie/dev" of ClusterRole "edit" to User "eddie"
        ghost get secrets dev db
            403 secrets "db" is forbidden: User "ghost" cannot get resource "secrets" in API group "" in the namespace "dev": RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, role.rbac.authorization.k8s.io "missing" not found]
    "#]].assert_eq(&out);
}
