//! The Node authorizer: a kubelet (`system:node:<name>` in `system:nodes`)
//! may read only the Secrets, ConfigMaps, PersistentVolumeClaims and
//! PersistentVolumes of pods bound to its node, request tokens only for their
//! service accounts, and touch only its own Lease and CSINode; everything else
//! is checked against the static `system:node` rules. As upstream's
//! `plugin/pkg/auth/authorizer/node`, it never denies: requests it does not
//! allow fall through to RBAC, with a reason.

use serde_json::Value;

use crate::attributes::{Attributes, Decision, UserInfo};
use crate::bootstrap::node_rules;
use crate::rule::PolicyRule;

/// The group of node identities.
pub const NODES_GROUP: &str = "system:nodes";
/// The user-name prefix of node identities.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// What the authorizer needs to know about the cluster: the pods bound to a
/// node and what they reference. The API server answers from its watch cache.
pub trait NodeGraph {
    /// The pods whose `spec.nodeName` is `node`.
    fn pods_on_node(&self, node: &str) -> Vec<PodReferences>;
    /// The PersistentVolume bound to a claim, if any.
    fn volume_of_claim(&self, namespace: &str, claim: &str) -> Option<String>;
}

/// The objects one pod references.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodReferences {
    /// The pod's namespace; every reference below is in it.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's service account.
    pub service_account: String,
    /// Secrets: volumes, projected sources, env, envFrom, imagePullSecrets.
    pub secrets: Vec<String>,
    /// ConfigMaps: volumes, projected sources, env, envFrom.
    pub config_maps: Vec<String>,
    /// PersistentVolumeClaims: volumes (and generic ephemeral volumes' claims).
    pub claims: Vec<String>,
}

impl PodReferences {
    /// Reads what a Pod (JSON, v1) references.
    pub fn from_pod(pod: &Value) -> Self {
        let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let list = |v: &Value, p: &str| {
            v.pointer(p)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let mut refs = PodReferences {
            namespace: text(pod, "/metadata/namespace").unwrap_or_default(),
            name: text(pod, "/metadata/name").unwrap_or_default(),
            service_account: text(pod, "/spec/serviceAccountName")
                .unwrap_or_else(|| "default".into()),
            ..PodReferences::default()
        };
        let pod_name = text(pod, "/metadata/name").unwrap_or_default();
        for s in list(pod, "/spec/imagePullSecrets") {
            refs.secrets.extend(text(&s, "/name"));
        }
        for volume in list(pod, "/spec/volumes") {
            refs.secrets.extend(text(&volume, "/secret/secretName"));
            refs.config_maps.extend(text(&volume, "/configMap/name"));
            refs.claims
                .extend(text(&volume, "/persistentVolumeClaim/claimName"));
            if volume.pointer("/ephemeral").is_some()
                && let Some(v) = text(&volume, "/name")
            {
                refs.claims.push(format!("{pod_name}-{v}"));
            }
            for source in list(&volume, "/projected/sources") {
                refs.secrets.extend(text(&source, "/secret/name"));
                refs.config_maps.extend(text(&source, "/configMap/name"));
            }
            for p in [
                "/csi/nodePublishSecretRef/name",
                "/cephfs/secretRef/name",
                "/rbd/secretRef/name",
                "/iscsi/secretRef/name",
                "/flexVolume/secretRef/name",
                "/azureFile/secretName",
            ] {
                refs.secrets.extend(text(&volume, p));
            }
        }
        for kind in [
            "/spec/containers",
            "/spec/initContainers",
            "/spec/ephemeralContainers",
        ] {
            for container in list(pod, kind) {
                for env in list(&container, "/env") {
                    refs.secrets
                        .extend(text(&env, "/valueFrom/secretKeyRef/name"));
                    refs.config_maps
                        .extend(text(&env, "/valueFrom/configMapKeyRef/name"));
                }
                for from in list(&container, "/envFrom") {
                    refs.secrets.extend(text(&from, "/secretRef/name"));
                    refs.config_maps.extend(text(&from, "/configMapRef/name"));
                }
            }
        }
        refs
    }
}

/// The node a user is, if it is a node identity (upstream's `NodeIdentity`):
/// `Some("")` for a member of `system:nodes` whose name lacks the prefix.
pub fn node_identity(user: &UserInfo) -> Option<&str> {
    if !user.in_group(NODES_GROUP) {
        return None;
    }
    Some(user.name.strip_prefix(NODE_USER_PREFIX).unwrap_or_default())
}

/// Authorizes a request from a node identity; `NoOpinion` with an empty reason
/// for everyone else.
pub fn authorize_node(graph: &dyn NodeGraph, attrs: &Attributes) -> Decision {
    let Some(node) = node_identity(&attrs.user) else {
        return Decision::NoOpinion(String::new());
    };
    if node.is_empty() {
        return Decision::NoOpinion(format!("unknown node for user {:?}", attrs.user.name));
    }
    let check = NodeCheck { graph, node, attrs };
    if attrs.resource_request {
        match (attrs.api_group.as_str(), attrs.resource.as_str()) {
            ("", "secrets") => return check.read_namespaced(Kind::Secret),
            ("", "configmaps") => return check.read_namespaced(Kind::ConfigMap),
            ("", "persistentvolumeclaims") if attrs.subresource == "status" => {
                return check.status_update(Kind::Claim);
            }
            ("", "persistentvolumeclaims") => return check.get(Kind::Claim),
            ("", "persistentvolumes") => return check.get(Kind::Volume),
            ("", "serviceaccounts") => return check.create_token(),
            ("coordination.k8s.io", "leases") => return check.lease(),
            ("storage.k8s.io", "csinodes") => return check.csi_node(),
            ("", "nodes") => return check.node(),
            ("", "pods") => return check.pod(),
            _ => {}
        }
    }
    if node_rules()
        .iter()
        .any(|rule: &PolicyRule| rule.allows(attrs))
    {
        Decision::Allow(String::new())
    } else {
        Decision::NoOpinion(String::new())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Secret,
    ConfigMap,
    Claim,
    Volume,
    ServiceAccount,
    Pod,
}

struct NodeCheck<'a> {
    graph: &'a dyn NodeGraph,
    node: &'a str,
    attrs: &'a Attributes,
}

impl NodeCheck<'_> {
    fn no(&self, reason: &str) -> Decision {
        Decision::NoOpinion(reason.to_owned())
    }

    fn read_namespaced(&self, kind: Kind) -> Decision {
        match self.attrs.verb.as_str() {
            "get" | "list" | "watch" => {}
            _ => return self.no("can only read resources of this type"),
        }
        if !self.attrs.subresource.is_empty() {
            return self.no("cannot read subresource");
        }
        if self.attrs.namespace.is_empty() {
            return self.no("can only read namespaced object of this type");
        }
        self.related(kind)
    }

    fn get(&self, kind: Kind) -> Decision {
        if self.attrs.verb != "get" {
            return self.no("can only get individual resources of this type");
        }
        if !self.attrs.subresource.is_empty() {
            return self.no("cannot get subresource");
        }
        self.related(kind)
    }

    fn status_update(&self, kind: Kind) -> Decision {
        match self.attrs.verb.as_str() {
            "update" | "patch" => {}
            _ => return self.no("can only get/update/patch this type"),
        }
        if self.attrs.subresource != "status" {
            return self.no("can only update status subresource");
        }
        self.related(kind)
    }

    fn create_token(&self) -> Decision {
        if self.attrs.verb != "create" || self.attrs.name.is_empty() {
            return self.no("can only create tokens for individual service accounts");
        }
        if self.attrs.subresource != "token" {
            return self.no("can only create token subresource of serviceaccount");
        }
        self.related(Kind::ServiceAccount)
    }

    fn lease(&self) -> Decision {
        let verb = self.attrs.verb.as_str();
        if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
            return self.no("can only get, create, update, patch, or delete a node lease");
        }
        if self.attrs.namespace != "kube-node-lease" {
            return self.no("can only access leases in the \"kube-node-lease\" system namespace");
        }
        if verb != "create" && self.attrs.name != self.node {
            return self.no("can only access node lease with the same name as the requesting node");
        }
        Decision::Allow(String::new())
    }

    fn csi_node(&self) -> Decision {
        let verb = self.attrs.verb.as_str();
        if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
            return self.no("can only get, create, update, patch, or delete a CSINode");
        }
        if !self.attrs.subresource.is_empty() {
            return self.no("cannot authorize CSINode subresources");
        }
        if verb != "create" && self.attrs.name != self.node {
            return self.no("can only access CSINode with the same name as the requesting node");
        }
        Decision::Allow(String::new())
    }

    /// Nodes (upstream's `AuthorizeNodeWithSelectors`, on by default since
    /// 1.32): a node reads only its own Node; creating and updating any Node
    /// is left to NodeRestriction admission.
    fn node(&self) -> Decision {
        let verb = self.attrs.verb.as_str();
        match (self.attrs.subresource.as_str(), verb) {
            ("", "create" | "update" | "patch") | ("status", "update" | "patch") => {
                Decision::Allow(String::new())
            }
            ("", "get" | "list" | "watch") => match self.attrs.name.as_str() {
                name if name == self.node => Decision::Allow(String::new()),
                "" => self.no(&format!(
                    "node '{}' cannot read all nodes, only its own Node object",
                    self.node
                )),
                other => self.no(&format!(
                    "node '{}' cannot read '{other}', only its own Node object",
                    self.node
                )),
            },
            _ => self.no(""),
        }
    }

    /// Pods: get one of its pods, list/watch with `spec.nodeName=<node>`;
    /// create/delete (mirror pods), status and eviction are left to
    /// NodeRestriction admission.
    fn pod(&self) -> Decision {
        let verb = self.attrs.verb.as_str();
        match (self.attrs.subresource.as_str(), verb) {
            ("", "get") => self.related(Kind::Pod),
            ("", "list" | "watch") => {
                let scoped = self.attrs.field_selector.split(',').any(|term| {
                    let term = term.trim();
                    let value = term
                        .strip_prefix("spec.nodeName==")
                        .or_else(|| term.strip_prefix("spec.nodeName="));
                    value == Some(self.node)
                });
                if scoped {
                    Decision::Allow(String::new())
                } else if !self.attrs.name.is_empty() {
                    self.related(Kind::Pod)
                } else {
                    self.no("can only list/watch pods with spec.nodeName field selector")
                }
            }
            ("", "create" | "delete") | ("status", "update" | "patch") | ("eviction", "create") => {
                Decision::Allow(String::new())
            }
            _ => self.no(""),
        }
    }

    /// Allows when a pod on this node references the named object.
    fn related(&self, kind: Kind) -> Decision {
        let (ns, name) = (self.attrs.namespace.as_str(), self.attrs.name.as_str());
        if name.is_empty() {
            return self.no("No Object name found");
        }
        let pods = self.graph.pods_on_node(self.node);
        let found = pods.iter().any(|pod| {
            let same_ns = pod.namespace == ns;
            let has = |list: &[String]| list.iter().any(|n| n == name);
            match kind {
                Kind::Secret => same_ns && has(&pod.secrets),
                Kind::ConfigMap => same_ns && has(&pod.config_maps),
                Kind::Claim => same_ns && has(&pod.claims),
                Kind::ServiceAccount => same_ns && pod.service_account == name,
                Kind::Pod => same_ns && pod.name == name,
                Kind::Volume => pod.claims.iter().any(|claim| {
                    self.graph.volume_of_claim(&pod.namespace, claim).as_deref() == Some(name)
                }),
            }
        });
        if found {
            Decision::Allow(String::new())
        } else {
            self.no(&format!(
                "no relationship found between node '{}' and this object",
                self.node
            ))
        }
    }
}
