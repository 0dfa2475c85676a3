//! Kubernetes authorization semantics for Bulwark: RBAC, escalation
//! prevention, aggregated ClusterRoles, the bootstrap policy and the Node
//! authorizer — a pure library over rbac.authorization.k8s.io/v1 objects as
//! JSON (`serde_json::Value`), with no IO.
//!
//! Where it sits: the API server builds an [`RbacSnapshot`] from its watch
//! cache of Roles, ClusterRoles and bindings, runs [`authorize`] (system:masters,
//! then [`authorize_node`], then [`RbacSnapshot::authorize`]) for each
//! request, answers 403 with
//! [`forbidden_status`], and calls [`RbacSnapshot::check_role_write`] /
//! [`RbacSnapshot::check_binding_write`] before storing RBAC objects. At start
//! it reconciles [`bootstrap`] objects; a controller keeps aggregated
//! ClusterRoles filled with [`aggregate_cluster_roles`]. Upstream's behaviour
//! (`plugin/pkg/auth/authorizer/rbac`, `pkg/registry/rbac/validation`) is the
//! spec, messages included.
//!
//! ```
//! use bulwark_rbac::{Attributes, Decision, RbacSnapshot, UserInfo, forbidden_message};
//! use serde_json::json;
//!
//! let role = json!({"metadata": {"name": "reader", "namespace": "dev"},
//!     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
//! let binding = json!({"metadata": {"name": "alice-reads", "namespace": "dev"},
//!     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
//!     "subjects": [{"kind": "User", "name": "alice"}]});
//! let rbac = RbacSnapshot::new(&[role], &[], &[binding], &[])?;
//!
//! let alice = UserInfo::new("alice", &["system:authenticated"]);
//! let list = Attributes::resource(alice.clone(), "list", "", "pods", "dev", "");
//! assert_eq!(
//!     rbac.authorize(&list),
//!     Decision::Allow(r#"RBAC: allowed by RoleBinding "alice-reads/dev" of Role "reader" to User "alice""#.into())
//! );
//! let delete = Attributes::resource(alice, "delete", "", "pods", "dev", "web");
//! assert!(!rbac.authorize(&delete).is_allowed());
//! assert_eq!(
//!     forbidden_message(&delete, ""),
//!     r#"pods "web" is forbidden: User "alice" cannot delete resource "pods" in API group "" in the namespace "dev""#
//! );
//! # Ok::<(), bulwark_rbac::RbacError>(())
//! ```

mod aggregation;
mod attributes;
pub mod bootstrap;
mod chain;
mod error;
mod escalation;
mod node;
mod rule;
mod snapshot;

pub use aggregation::{aggregate_cluster_roles, selector_matches};
pub use attributes::{
    ALL_SERVICE_ACCOUNTS_GROUP, Attributes, Decision, SERVICE_ACCOUNT_USER_PREFIX,
    SYSTEM_MASTERS_GROUP, UserInfo, forbidden_message, forbidden_status,
};
pub use chain::authorize;
pub use error::RbacError;
pub use escalation::{Forbidden, RbacKind, covers};
pub use node::{
    NODE_USER_PREFIX, NODES_GROUP, NodeGraph, PodReferences, authorize_node, node_identity,
};
pub use rule::PolicyRule;
pub use snapshot::{RBAC_GROUP, RbacSnapshot, RulesReview};
