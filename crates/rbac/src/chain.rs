//! The authorizer chain the API server runs, in upstream's order: members of
//! `system:masters` are allowed outright, then the Node authorizer, then RBAC.

use crate::attributes::{Attributes, Decision, SYSTEM_MASTERS_GROUP};
use crate::node::{NodeGraph, authorize_node};
use crate::snapshot::RbacSnapshot;

/// Asks each authorizer in turn, as upstream's union authorizer: the first
/// `Allow` or `Deny` wins; when none has an opinion, their non-empty reasons
/// are joined by newlines (and belong in the 403 message).
pub fn authorize(graph: &dyn NodeGraph, rbac: &RbacSnapshot, attrs: &Attributes) -> Decision {
    if attrs.user.in_group(SYSTEM_MASTERS_GROUP) {
        return Decision::Allow(String::new());
    }
    let mut reasons = Vec::new();
    for decision in [authorize_node(graph, attrs), rbac.authorize(attrs)] {
        match decision {
            Decision::NoOpinion(reason) => {
                if !reason.is_empty() {
                    reasons.push(reason);
                }
            }
            decided => return decided,
        }
    }
    Decision::NoOpinion(reasons.join("\n"))
}
