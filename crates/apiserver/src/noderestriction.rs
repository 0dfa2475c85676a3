//! NodeRestriction admission (upstream's `plugin/pkg/admission/noderestriction`):
//! the Node authorizer lets any node write Nodes, pods' status, mirror pods
//! and Leases; this narrows each write to the node's own objects — its own
//! Node (without touching its taints or the labels that steer workloads),
//! its own Lease, the status of and evictions of pods bound to it, and
//! mirror pods bound to it that reference nothing secret.
//!
//! Called from the write paths in `handlers.rs` with the object before and
//! after; members of `system:nodes` only, everyone else passes untouched.
//! Messages are upstream's.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::request::ResourceRequest;
use crate::status::{ApiError, ApiResult};

/// The annotation that marks a mirror pod (a static pod's API copy).
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Labels under this namespace are set only by administrators, so that
/// workloads can be steered to nodes a node cannot claim to be.
const NODE_RESTRICTION_NAMESPACE: &str = "node-restriction.kubernetes.io";
/// The `kubernetes.io` / `k8s.io` labels a kubelet may set itself
/// (upstream's `kubeletapis.IsKubeletLabel`).
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
];
/// Label namespaces a kubelet may set anything under.
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

/// What the request does to the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// A create (`new` is the object).
    Create,
    /// An update or patch (`old` and `new`).
    Update,
    /// A delete or eviction (`old` is the stored object).
    Delete,
}

/// Admits (or refuses with 403) a write by a node identity.
pub(crate) fn admit(
    req: &ResourceRequest,
    operation: Operation,
    old: Option<&Value>,
    new: Option<&Value>,
) -> ApiResult<()> {
    let Some(user) = &req.user else { return Ok(()) };
    if !user.groups.iter().any(|g| g == bulwark_rbac::NODES_GROUP) {
        return Ok(());
    }
    let check = Check {
        req,
        node: user
            .username
            .strip_prefix(bulwark_rbac::NODE_USER_PREFIX)
            .unwrap_or_default(),
        operation,
        old,
        new,
    };
    if check.node.is_empty() {
        return Err(check.forbidden(&format!(
            "could not determine node from user \"{}\"",
            user.username
        )));
    }
    match (req.resource.group, req.resource.plural) {
        ("", "pods") => match req.subresource.as_deref() {
            None => check.pod(),
            Some("status") => check.pod_status(),
            Some("eviction") => check.pod_eviction(),
            Some(other) => Err(check.forbidden(&format!(
                "unexpected pod subresource \"{other}\", only 'status' and 'eviction' are allowed"
            ))),
        },
        ("", "nodes") => check.node(),
        ("", "persistentvolumeclaims") => match req.subresource.as_deref() {
            Some("status") => check.claim_status(),
            _ => Err(check.forbidden("may only update PVC status")),
        },
        ("coordination.k8s.io", "leases") => check.named_like_node(
            "can only access leases in the \"kube-node-lease\" system namespace",
            "can only access node lease with the same name as the requesting node",
            Some("kube-node-lease"),
        ),
        ("storage.k8s.io", "csinodes") => check.named_like_node(
            "",
            "can only access CSINode with the same name as the requesting node",
            None,
        ),
        _ => Ok(()),
    }
}

/// The rest of NodeRestriction for a mirror pod a node creates, which needs
/// the store: an owner reference to the node must carry the node's UID
/// (not an earlier Node's of the same name), as upstream checks.
pub(crate) async fn admit_mirror_owner(
    api: &crate::handlers::Api,
    req: &ResourceRequest,
    pod: &Value,
) -> ApiResult<()> {
    use bulwark_store::StoreExt as _;
    let Some(user) = &req.user else { return Ok(()) };
    let Some(node) = user.username.strip_prefix(bulwark_rbac::NODE_USER_PREFIX) else {
        return Ok(());
    };
    let is_node = user.groups.iter().any(|g| g == bulwark_rbac::NODES_GROUP);
    let creates_pod =
        req.resource.group.is_empty() && req.resource.plural == "pods" && req.subresource.is_none();
    // `admit` has already refused anything but one owner, this node.
    let owner_uid = pod
        .pointer("/metadata/ownerReferences/0/uid")
        .and_then(Value::as_str);
    let (true, true, Some(owner_uid)) = (is_node, creates_pod, owner_uid) else {
        return Ok(());
    };
    let stored = match api.store.get(&format!("/registry/nodes/{node}")).await? {
        Some(kv) => crate::handlers::decode_stored(&kv.value, kv.mod_revision)?,
        None => return Err(ApiError::not_found("nodes", "", node)),
    };
    let uid = text(Some(&stored), "/metadata/uid");
    if owner_uid != uid {
        let check = Check {
            req,
            node,
            operation: Operation::Create,
            old: None,
            new: Some(pod),
        };
        return Err(check.forbidden(&format!(
            "node {node} UID mismatch: expected {owner_uid} got {uid}"
        )));
    }
    Ok(())
}

/// NodeRestriction for TokenRequests (`serviceaccounts/<name>/token`): a
/// node's token must be bound, by UID, to a pod scheduled on that node —
/// so a node cannot mint tokens for pods it does not run.
pub(crate) async fn admit_token_request(
    api: &crate::handlers::Api,
    req: &ResourceRequest,
    request: &Value,
) -> ApiResult<()> {
    use bulwark_store::StoreExt as _;
    let Some(user) = &req.user else { return Ok(()) };
    if !user.groups.iter().any(|g| g == bulwark_rbac::NODES_GROUP) {
        return Ok(());
    }
    let check = Check {
        req,
        node: user
            .username
            .strip_prefix(bulwark_rbac::NODE_USER_PREFIX)
            .unwrap_or_default(),
        operation: Operation::Create,
        old: None,
        new: None,
    };
    if check.node.is_empty() {
        return Err(check.forbidden(&format!(
            "could not determine node from user \"{}\"",
            user.username
        )));
    }
    let reference = request.pointer("/spec/boundObjectRef");
    let field = |f: &str| text(reference, &format!("/{f}"));
    if field("apiVersion") != "v1" || field("kind") != "Pod" || field("name").is_empty() {
        return Err(check.forbidden("node requested token not bound to a pod"));
    }
    if field("uid").is_empty() {
        return Err(check.forbidden("node requested token with a pod binding without a uid"));
    }
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let key = format!("/registry/pods/{namespace}/{}", field("name"));
    let pod = match api.store.get(&key).await? {
        Some(kv) => crate::handlers::decode_stored(&kv.value, kv.mod_revision)?,
        None => return Err(ApiError::not_found("pods", "", field("name"))),
    };
    let uid = text(Some(&pod), "/metadata/uid");
    if field("uid") != uid {
        return Err(check.forbidden(&format!(
            "the UID in the bound object reference ({}) does not match the UID in record ({uid}). The object might have been deleted and then recreated",
            field("uid")
        )));
    }
    if node_name(Some(&pod)) != check.node {
        return Err(
            check.forbidden("node requested token bound to a pod scheduled on a different node")
        );
    }
    Ok(())
}

struct Check<'a> {
    req: &'a ResourceRequest,
    node: &'a str,
    operation: Operation,
    old: Option<&'a Value>,
    new: Option<&'a Value>,
}

fn text<'v>(object: Option<&'v Value>, pointer: &str) -> &'v str {
    object
        .and_then(|o| o.pointer(pointer))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn node_name(object: Option<&Value>) -> &str {
    text(object, "/spec/nodeName")
}

fn labels(object: Option<&Value>) -> BTreeMap<String, String> {
    crate::admission::labels_of(object.unwrap_or(&Value::Null))
}

impl Check<'_> {
    /// Upstream's `admission.NewForbidden`: `pods "x" is forbidden: <why>`.
    fn forbidden(&self, why: &str) -> ApiError {
        let name = self
            .req
            .name
            .clone()
            .or_else(|| {
                self.new
                    .and_then(|o| o.pointer("/metadata/name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let resource = &self.req.resource;
        let qualified = if resource.group.is_empty() {
            resource.plural.to_owned()
        } else {
            format!("{}.{}", resource.plural, resource.group)
        };
        ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!("{qualified} \"{name}\" is forbidden: {why}"),
            details: Some(json!({"name": name, "group": resource.group, "kind": resource.plural})),
        }
    }

    fn pod(&self) -> ApiResult<()> {
        let node = self.node;
        match self.operation {
            Operation::Create => self.mirror_pod_create(),
            Operation::Delete if node_name(self.old) != node => Err(self.forbidden(
                &format!("node \"{node}\" can only delete pods with spec.nodeName set to itself"),
            )),
            Operation::Delete => Ok(()),
            Operation::Update => Err(self.forbidden(&format!(
                "unexpected operation \"UPDATE\", node \"{node}\" can only create and delete mirror pods"
            ))),
        }
    }

    fn mirror_pod_create(&self) -> ApiResult<()> {
        let node = self.node;
        let pod = self.new.unwrap_or(&Value::Null);
        let annotated = pod
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION));
        if !annotated {
            return Err(self.forbidden(&format!(
                "pod does not have \"{MIRROR_POD_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"
            )));
        }
        if node_name(Some(pod)) != node {
            return Err(self.forbidden(&format!(
                "node \"{node}\" can only create pods with spec.nodeName set to itself"
            )));
        }
        let owners = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if owners.len() > 1 {
            return Err(self.forbidden(&format!(
                "node \"{node}\" can only create pods with a single owner reference set to itself"
            )));
        }
        if let Some(owner) = owners.first() {
            let field = |f: &str| owner.get(f).and_then(Value::as_str).unwrap_or_default();
            if field("apiVersion") != "v1" || field("kind") != "Node" || field("name") != node {
                return Err(self.forbidden(&format!(
                    "node \"{node}\" can only create pods with an owner reference set to itself"
                )));
            }
            if owner.get("controller").and_then(Value::as_bool) != Some(true) {
                return Err(self.forbidden(&format!(
                    "node \"{node}\" can only create pods with a controller owner reference set to itself"
                )));
            }
            if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
                return Err(self.forbidden(&format!(
                    "node \"{node}\" must not set blockOwnerDeletion on an owner reference"
                )));
            }
        }
        // A mirror pod may reference nothing the node could not read anyway.
        if !text(Some(pod), "/spec/serviceAccountName").is_empty() {
            return Err(self.forbidden(&format!(
                "node \"{node}\" can not create pods that reference a service account"
            )));
        }
        let refs = bulwark_rbac::PodReferences::from_pod(pod);
        for (list, what) in [
            (&refs.secrets, "secrets"),
            (&refs.config_maps, "configmaps"),
            (&refs.claims, "persistentvolumeclaims"),
        ] {
            if !list.is_empty() {
                return Err(self.forbidden(&format!(
                    "node \"{node}\" can not create pods that reference {what}"
                )));
            }
        }
        Ok(())
    }

    fn pod_status(&self) -> ApiResult<()> {
        let node = self.node;
        if self.operation != Operation::Update {
            return Err(self.forbidden("unexpected operation"));
        }
        if node_name(self.old) != node {
            return Err(self.forbidden(&format!(
                "node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"
            )));
        }
        if labels(self.old) != labels(self.new) {
            return Err(self.forbidden(&format!(
                "node \"{node}\" cannot update labels through pod status"
            )));
        }
        Ok(())
    }

    fn pod_eviction(&self) -> ApiResult<()> {
        if node_name(self.old) != self.node {
            return Err(self.forbidden(&format!(
                "node {} can only evict pods with spec.nodeName set to itself",
                self.node
            )));
        }
        Ok(())
    }

    fn claim_status(&self) -> ApiResult<()> {
        let node = self.node;
        if self.operation != Operation::Update {
            return Err(self.forbidden("unexpected operation"));
        }
        // Only status.capacity and status.conditions may change.
        let strip = |object: Option<&Value>| {
            let mut object = object.cloned().unwrap_or(Value::Null);
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
                meta.remove("managedFields");
            }
            if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
                status.remove("capacity");
                status.remove("conditions");
            }
            object
        };
        if strip(self.old) != strip(self.new) {
            return Err(self.forbidden(&format!(
                "node \"{node}\" is not allowed to update fields other than status.capacity and status.conditions"
            )));
        }
        Ok(())
    }

    fn node(&self) -> ApiResult<()> {
        let node = self.node;
        let requested = match self.operation {
            Operation::Create => text(self.new, "/metadata/name"),
            _ => self.req.name.as_deref().unwrap_or_default(),
        };
        if self.operation == Operation::Create {
            let forbidden = forbidden_labels(&labels(self.new), &BTreeMap::new());
            if !forbidden.is_empty() {
                return Err(self.forbidden(&format!(
                    "node \"{node}\" is not allowed to set the following labels: {}",
                    forbidden.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if requested != node {
            return Err(self.forbidden(&format!(
                "node \"{node}\" is not allowed to modify node \"{requested}\""
            )));
        }
        if self.operation == Operation::Update {
            let taints = |o: Option<&Value>| {
                o.and_then(|o| o.pointer("/spec/taints"))
                    .cloned()
                    .filter(|t| t.as_array().is_some_and(|a| !a.is_empty()))
            };
            if taints(self.old) != taints(self.new) {
                return Err(
                    self.forbidden(&format!("node \"{node}\" is not allowed to modify taints"))
                );
            }
            let forbidden = forbidden_labels(&labels(self.new), &labels(self.old));
            if !forbidden.is_empty() {
                return Err(self.forbidden(&format!(
                    "is not allowed to modify labels: {}",
                    forbidden.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Leases and CSINodes: named after the node (and, for leases, in
    /// `namespace`).
    fn named_like_node(
        &self,
        namespace_message: &str,
        name_message: &str,
        namespace: Option<&str>,
    ) -> ApiResult<()> {
        if let Some(namespace) = namespace
            && self.req.namespace.as_deref() != Some(namespace)
        {
            return Err(self.forbidden(namespace_message));
        }
        let name = match self.operation {
            Operation::Create => text(self.new, "/metadata/name"),
            _ => self.req.name.as_deref().unwrap_or_default(),
        };
        if name != self.node {
            return Err(self.forbidden(name_message));
        }
        Ok(())
    }
}

/// The label keys added, changed or removed that a node may not touch:
/// `node-restriction.kubernetes.io/` ones, and `kubernetes.io` / `k8s.io`
/// ones outside the kubelet's own set.
fn forbidden_labels(
    new: &BTreeMap<String, String>,
    old: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let modified = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, _)| k)
        .chain(old.keys().filter(|k| !new.contains_key(*k)));
    modified
        .filter(|key| {
            let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
            let under =
                |ns: &str, parent: &str| ns == parent || ns.ends_with(&format!(".{parent}"));
            let restricted = under(namespace, NODE_RESTRICTION_NAMESPACE);
            let kubernetes = under(namespace, "kubernetes.io") || under(namespace, "k8s.io");
            let kubelet = KUBELET_LABELS.contains(&key.as_str())
                || KUBELET_LABEL_NAMESPACES
                    .iter()
                    .any(|parent| under(namespace, parent));
            restricted || (kubernetes && !kubelet)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn labels_a_node_may_not_touch() {
        let old = map(&[("kubernetes.io/hostname", "n1"), ("team", "a")]);
        let new = map(&[
            ("kubernetes.io/hostname", "n1"),
            ("team", "b"),
            ("node-restriction.kubernetes.io/pci", "true"),
            ("example.node-restriction.kubernetes.io/x", "1"),
            ("node-role.kubernetes.io/control-plane", ""),
            ("node.kubernetes.io/instance-type", "big"),
            ("kubelet.kubernetes.io/anything", "ok"),
            ("topology.kubernetes.io/zone", "z1"),
        ]);
        let forbidden: Vec<String> = forbidden_labels(&new, &old).into_iter().collect();
        assert_eq!(
            forbidden,
            [
                "example.node-restriction.kubernetes.io/x",
                "node-restriction.kubernetes.io/pci",
                "node-role.kubernetes.io/control-plane",
            ]
        );
        // Removing a restricted label is a modification too.
        let removed = forbidden_labels(
            &map(&[]),
            &map(&[("node-restriction.kubernetes.io/pci", "")]),
        );
        assert_eq!(removed.len(), 1);
    }
}
