//! Escalation prevention: a user may grant only what they hold
//! (upstream's `rbac/validation` `Covers` and `ConfirmNoEscalation`, and the
//! policy-based storage of roles and bindings).
//!
//! These checks run in the API layer on every write of a (Cluster)Role or
//! (Cluster)RoleBinding, whichever authorizer let the request through.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::attributes::{
    Attributes, SYSTEM_MASTERS_GROUP, UserInfo, forbidden_wrap, qualified_resource, status_403,
};
use crate::rule::{ALL, PolicyRule, go_quoted_list};
use crate::snapshot::{RBAC_GROUP, RbacSnapshot, go_aggregate, meta};

/// Which RBAC object a write is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RbacKind {
    /// A namespaced Role.
    Role,
    /// A ClusterRole.
    ClusterRole,
    /// A namespaced RoleBinding.
    RoleBinding,
    /// A ClusterRoleBinding.
    ClusterRoleBinding,
}

impl RbacKind {
    /// The resource name (`clusterroles`).
    pub fn resource(self) -> &'static str {
        match self {
            RbacKind::Role => "roles",
            RbacKind::ClusterRole => "clusterroles",
            RbacKind::RoleBinding => "rolebindings",
            RbacKind::ClusterRoleBinding => "clusterrolebindings",
        }
    }
}

/// A write refused because it would grant permissions the user does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Forbidden {
    /// The resource written (`clusterrolebindings`).
    pub resource: &'static str,
    /// The object's name.
    pub name: String,
    /// Upstream's message:
    /// `clusterroles.rbac.authorization.k8s.io "x" is forbidden: user "alice" (groups=["g"]) is attempting to grant RBAC permissions not currently held:\n…`.
    pub message: String,
}

impl Forbidden {
    /// The 403 `Status` body for this refusal.
    pub fn status(&self) -> Value {
        status_403(RBAC_GROUP, self.resource, &self.name, self.message.clone())
    }
}

/// Whether `owner` covers every permission in `requested`, and the
/// uncovered ones, each broken down to one group, resource, verb and name
/// (upstream's `Covers`).
pub fn covers(owner: &[PolicyRule], requested: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let uncovered: Vec<PolicyRule> = requested
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    (uncovered.is_empty(), uncovered)
}

impl RbacSnapshot {
    /// Whether `user` may create or update the Role or ClusterRole `object`
    /// (`old` is the stored object on update): members of `system:masters`
    /// may; so may holders of `escalate` on it; an update that changes only
    /// ownerReferences or finalizers may; otherwise the user's rules at the
    /// object's scope must cover the object's rules (all permissions, for a
    /// ClusterRole with an aggregationRule).
    pub fn check_role_write(
        &self,
        user: &UserInfo,
        kind: RbacKind,
        object: &Value,
        old: Option<&Value>,
    ) -> Result<(), Forbidden> {
        let (namespace, name) = meta(object, "role").unwrap_or_default();
        let forbidden = |err: &str| Forbidden {
            resource: kind.resource(),
            name: name.clone(),
            message: forbidden_wrap(&qualified_resource(RBAC_GROUP, kind.resource()), &name, err),
        };
        if user.in_group(SYSTEM_MASTERS_GROUP) {
            return Ok(());
        }
        let escalate = Attributes::resource(
            user.clone(),
            "escalate",
            RBAC_GROUP,
            kind.resource(),
            &namespace,
            &name,
        );
        if self.authorize(&escalate).is_allowed() || only_gc_fields_changed(object, old) {
            return Ok(());
        }
        let rules = if kind == RbacKind::ClusterRole
            && object.get("aggregationRule").is_some_and(|a| !a.is_null())
        {
            vec![
                PolicyRule::resource(&[ALL], &[ALL], &[ALL]),
                PolicyRule::non_resource(&[ALL], &[ALL]),
            ]
        } else {
            PolicyRule::list_from(object).map_err(|e| forbidden(&format!("invalid rules: {e}")))?
        };
        self.confirm_no_escalation(user, &namespace, &rules)
            .map_err(|err| forbidden(&err))
    }

    /// Whether `user` may create or update the RoleBinding or
    /// ClusterRoleBinding `object` (`old` is the stored object on update):
    /// members of `system:masters` may; an update that changes only
    /// ownerReferences or finalizers may; so may holders of `bind` on the
    /// referenced role; otherwise the user must hold the role's permissions at
    /// the binding's scope. Adding a subject to an existing binding is checked
    /// like a create: it grants the role to someone new.
    pub fn check_binding_write(
        &self,
        user: &UserInfo,
        kind: RbacKind,
        object: &Value,
        old: Option<&Value>,
    ) -> Result<(), Forbidden> {
        let (namespace, name) = meta(object, "binding").unwrap_or_default();
        let forbidden = |err: &str| Forbidden {
            resource: kind.resource(),
            name: name.clone(),
            message: forbidden_wrap(&qualified_resource(RBAC_GROUP, kind.resource()), &name, err),
        };
        if user.in_group(SYSTEM_MASTERS_GROUP) {
            return Ok(());
        }
        if only_gc_fields_changed(object, old) {
            return Ok(());
        }
        let role_ref = object.get("roleRef");
        let field = |f: &str| {
            role_ref
                .and_then(|r| r.get(f))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let (role_kind, role_name, role_group) = (field("kind"), field("name"), field("apiGroup"));
        let role_resource = if role_kind == "Role" {
            "roles"
        } else {
            "clusterroles"
        };
        let bind = Attributes::resource(
            user.clone(),
            "bind",
            role_group,
            role_resource,
            &namespace,
            role_name,
        );
        if self.authorize(&bind).is_allowed() {
            return Ok(());
        }
        let rules = self
            .role_ref_rules(role_kind, role_name, &namespace)
            .map_err(|err| forbidden(&err))?;
        self.confirm_no_escalation(user, &namespace, rules)
            .map_err(|err| forbidden(&err))
    }

    /// Upstream's `ConfirmNoEscalation`: the user's rules in `namespace` must
    /// cover `rules`; the error lists the missing ones, compacted and sorted.
    pub fn confirm_no_escalation(
        &self,
        user: &UserInfo,
        namespace: &str,
        rules: &[PolicyRule],
    ) -> Result<(), String> {
        let (owner, errors) = self.collect_rules(user, namespace);
        let (ok, missing) = covers(&owner, rules);
        if ok {
            return Ok(());
        }
        let descriptions: BTreeSet<String> = compact(missing)
            .iter()
            .map(PolicyRule::compact_string)
            .collect();
        let mut msg = format!(
            "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            user.name,
            go_quoted_list(&user.groups),
            descriptions.into_iter().collect::<Vec<_>>().join("\n")
        );
        if !errors.is_empty() {
            // Upstream prints a one-element []error holding RulesFor's aggregate.
            msg.push_str(&format!("; resolution errors: [{}]", go_aggregate(&errors)));
        }
        Err(msg)
    }
}

/// Upstream's `IsOnlyMutatingGCFields`: the update touches nothing but
/// `metadata.ownerReferences` and `metadata.finalizers`, which the garbage
/// collector must be able to change without holding the object's permissions.
fn only_gc_fields_changed(object: &Value, old: Option<&Value>) -> bool {
    let Some(old) = old else {
        return false;
    };
    let mut expected = old.clone();
    if let Some(metadata) = expected.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["ownerReferences", "finalizers"] {
            match object.pointer(&format!("/metadata/{field}")) {
                Some(v) => {
                    metadata.insert(field.to_owned(), v.clone());
                }
                None => {
                    metadata.remove(field);
                }
            }
        }
    }
    &expected == object
}

/// One rule per group × resource × verb (× name), and per URL × verb.
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    verbs: vec![verb.clone()],
                    api_groups: vec![group.clone()],
                    resources: vec![resource.clone()],
                    ..PolicyRule::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for name in &rule.resource_names {
                        out.push(PolicyRule {
                            resource_names: vec![name.clone()],
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

/// `*` covers all; `*/sub` covers the `sub` subresource of any resource.
fn resources_cover_all(owner: &[String], requested: &[String]) -> bool {
    if has(owner, ALL) || has_all(owner, requested) {
        return true;
    }
    requested.iter().all(|path| {
        has(owner, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
    })
}

fn non_resource_url_covers(owner: &str, path: &str) -> bool {
    owner == path || (owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*')))
}

/// Upstream's `ruleCovers`.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, ALL) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resources_cover_all(&owner.resources, &sub.resources);
    let urls = sub.non_resource_urls.iter().all(|path| {
        owner
            .non_resource_urls
            .iter()
            .any(|o| non_resource_url_covers(o, path))
    });
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && names && urls
}

/// Upstream's `CompactRules`: rules for one group, resource and (at most one)
/// name are merged, their verbs concatenated.
fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let mut simple: BTreeMap<(String, String, Option<String>), PolicyRule> = BTreeMap::new();
    for rule in rules {
        let key = match (
            rule.api_groups.as_slice(),
            rule.resources.as_slice(),
            rule.resource_names.as_slice(),
            rule.non_resource_urls.is_empty(),
        ) {
            ([group], [resource], [] | [_], true) => (
                group.clone(),
                resource.clone(),
                rule.resource_names.first().cloned(),
            ),
            _ => {
                out.push(rule);
                continue;
            }
        };
        match simple.get_mut(&key) {
            Some(existing) => existing.verbs.extend(rule.verbs),
            None => {
                simple.insert(key, rule);
            }
        }
    }
    out.extend(simple.into_values());
    out
}
