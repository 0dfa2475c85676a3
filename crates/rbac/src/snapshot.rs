//! The RBAC authorizer over a point-in-time copy of the RBAC objects.
//!
//! Evaluation follows upstream's `rbac.RBACAuthorizer` and
//! `validation.DefaultRuleResolver.VisitRulesFor`: ClusterRoleBindings first,
//! then the RoleBindings of the request's namespace, each in list order, and the
//! first rule that allows wins. Upstream scans every binding; the snapshot
//! indexes bindings by the user and group names their subjects name, so a
//! request only looks at bindings that can apply to it.

use std::collections::HashMap;

use serde_json::Value;

use crate::attributes::{Attributes, Decision, SERVICE_ACCOUNT_USER_PREFIX, UserInfo};
use crate::error::RbacError;
use crate::rule::PolicyRule;

/// The API group of RBAC objects.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// A point-in-time, indexed copy of the cluster's Roles, ClusterRoles,
/// RoleBindings and ClusterRoleBindings.
#[derive(Clone, Debug, Default)]
pub struct RbacSnapshot {
    roles: HashMap<(String, String), Vec<PolicyRule>>,
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    cluster_role_bindings: Vec<Binding>,
    role_bindings: Vec<Binding>,
    cluster_index: SubjectIndex,
    namespace_index: HashMap<String, SubjectIndex>,
}

/// What `SelfSubjectRulesReview` reports: the rules a user holds in a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesReview {
    /// Rules naming resources.
    pub resource_rules: Vec<PolicyRule>,
    /// Rules naming non-resource URLs.
    pub non_resource_rules: Vec<PolicyRule>,
    /// True when some binding's role could not be resolved, so the list may be short.
    pub incomplete: bool,
    /// Why the list is incomplete, or empty.
    pub evaluation_error: String,
}

impl RbacSnapshot {
    /// Builds a snapshot from the objects as the API serves them (JSON,
    /// rbac.authorization.k8s.io/v1). Fails on the first object whose fields
    /// cannot be read, naming it.
    pub fn new(
        roles: &[Value],
        cluster_roles: &[Value],
        role_bindings: &[Value],
        cluster_role_bindings: &[Value],
    ) -> Result<Self, RbacError> {
        let mut snapshot = RbacSnapshot::default();
        for role in roles {
            let (namespace, name) = meta(role, "Role")?;
            let rules = rules_of(role, "Role", &name)?;
            snapshot.roles.insert((namespace, name), rules);
        }
        for role in cluster_roles {
            let (_, name) = meta(role, "ClusterRole")?;
            let rules = rules_of(role, "ClusterRole", &name)?;
            snapshot.cluster_roles.insert(name, rules);
        }
        for (i, value) in cluster_role_bindings.iter().enumerate() {
            let binding = Binding::parse(value, "ClusterRoleBinding")?;
            snapshot.cluster_index.add(i, &binding, "");
            snapshot.cluster_role_bindings.push(binding);
        }
        for (i, value) in role_bindings.iter().enumerate() {
            let binding = Binding::parse(value, "RoleBinding")?;
            snapshot
                .namespace_index
                .entry(binding.namespace.clone())
                .or_default()
                .add(i, &binding, &binding.namespace);
            snapshot.role_bindings.push(binding);
        }
        Ok(snapshot)
    }

    /// Authorizes a request as upstream's RBAC authorizer does: `Allow` with
    /// the binding that granted it, or `NoOpinion` (RBAC never denies), whose
    /// reason lists roles that bindings name but that do not exist.
    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        let mut errors = Vec::new();
        let mut allowed = None;
        self.visit_rules(
            &attrs.user,
            &attrs.namespace,
            &mut |source, rule| match rule {
                Err(err) => {
                    errors.push(err);
                    true
                }
                Ok(rule) if rule.allows(attrs) => {
                    allowed = Some(source.describe());
                    false
                }
                Ok(_) => true,
            },
        );
        if let Some(source) = allowed {
            return Decision::Allow(format!("RBAC: allowed by {source}"));
        }
        if errors.is_empty() {
            Decision::NoOpinion(String::new())
        } else {
            Decision::NoOpinion(format!("RBAC: {}", go_aggregate(&errors)))
        }
    }

    /// The rules `user` holds in `namespace` (cluster-wide ones included), for
    /// SelfSubjectRulesReview and escalation checks.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesReview {
        let (rules, errors) = self.collect_rules(user, namespace);
        let mut review = RulesReview::default();
        for rule in rules {
            if !rule.resources.is_empty() {
                review.resource_rules.push(PolicyRule {
                    non_resource_urls: Vec::new(),
                    ..rule.clone()
                });
            }
            if !rule.non_resource_urls.is_empty() {
                review.non_resource_rules.push(PolicyRule {
                    verbs: rule.verbs.clone(),
                    non_resource_urls: rule.non_resource_urls.clone(),
                    ..PolicyRule::default()
                });
            }
        }
        if !errors.is_empty() {
            review.incomplete = true;
            review.evaluation_error = go_aggregate(&errors);
        }
        review
    }

    /// Every rule `user` holds in `namespace`, and the resolution errors met
    /// (upstream's `RulesFor`).
    pub(crate) fn collect_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit_rules(user, namespace, &mut |_, rule| {
            match rule {
                Ok(rule) => rules.push(rule.clone()),
                Err(err) => errors.push(err),
            }
            true
        });
        (rules, errors)
    }

    /// The rules of the role a binding refers to (upstream's `GetRoleReferenceRules`).
    pub(crate) fn role_ref_rules(
        &self,
        kind: &str,
        name: &str,
        binding_namespace: &str,
    ) -> Result<&[PolicyRule], String> {
        match kind {
            "Role" => self
                .roles
                .get(&(binding_namespace.to_owned(), name.to_owned()))
                .map(Vec::as_slice)
                .ok_or_else(|| format!("role.{RBAC_GROUP} {name:?} not found")),
            "ClusterRole" => self
                .cluster_roles
                .get(name)
                .map(Vec::as_slice)
                .ok_or_else(|| format!("clusterrole.{RBAC_GROUP} {name:?} not found")),
            other => Err(format!("unsupported role reference kind: {other:?}")),
        }
    }

    /// Calls `visit` with each rule (or resolution error) that applies to
    /// `user` in `namespace`, in upstream's order, until `visit` returns false.
    fn visit_rules<'a>(
        &'a self,
        user: &UserInfo,
        namespace: &str,
        visit: &mut dyn FnMut(Source<'a>, Result<&'a PolicyRule, String>) -> bool,
    ) {
        if self
            .visit_scope(
                &self.cluster_index,
                &self.cluster_role_bindings,
                user,
                "",
                visit,
            )
            .is_none()
            || namespace.is_empty()
        {
            return;
        }
        if let Some(index) = self.namespace_index.get(namespace) {
            let _ = self.visit_scope(index, &self.role_bindings, user, namespace, visit);
        }
    }

    /// Visits one scope's bindings; `None` when the visitor asked to stop.
    fn visit_scope<'a>(
        &'a self,
        index: &SubjectIndex,
        bindings: &'a [Binding],
        user: &UserInfo,
        namespace: &str,
        visit: &mut dyn FnMut(Source<'a>, Result<&'a PolicyRule, String>) -> bool,
    ) -> Option<()> {
        for i in index.candidates(user) {
            let Some(binding) = bindings.get(i) else {
                continue;
            };
            let Some(subject) = binding
                .subjects
                .iter()
                .find(|s| s.applies_to(user, namespace))
            else {
                continue;
            };
            let source = Source { binding, subject };
            match self.role_ref_rules(&binding.role_kind, &binding.role_name, &binding.namespace) {
                Err(err) => {
                    if !visit(source, Err(err)) {
                        return None;
                    }
                }
                Ok(rules) => {
                    for rule in rules {
                        if !visit(source, Ok(rule)) {
                            return None;
                        }
                    }
                }
            }
        }
        Some(())
    }
}

/// A (Cluster)RoleBinding, parsed.
#[derive(Clone, Debug)]
struct Binding {
    kind: &'static str,
    name: String,
    namespace: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

/// One subject of a binding.
#[derive(Clone, Debug, serde::Deserialize)]
struct Subject {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: String,
}

/// The binding and subject that granted a rule, for the `allowed by` reason.
#[derive(Clone, Copy)]
struct Source<'a> {
    binding: &'a Binding,
    subject: &'a Subject,
}

impl Source<'_> {
    /// `ClusterRoleBinding "b" of ClusterRole "r" to Group "g"`, as upstream's describers.
    fn describe(&self) -> String {
        let b = self.binding;
        let binding = if b.namespace.is_empty() {
            format!("{} {:?}", b.kind, b.name)
        } else {
            format!("{} {:?}", b.kind, format!("{}/{}", b.name, b.namespace))
        };
        let s = self.subject;
        let subject = if s.kind == "ServiceAccount" {
            let ns = if s.namespace.is_empty() {
                &b.namespace
            } else {
                &s.namespace
            };
            format!("{} {:?}", s.kind, format!("{}/{}", s.name, ns))
        } else {
            format!("{} {:?}", s.kind, s.name)
        };
        format!(
            "{binding} of {} {:?} to {subject}",
            b.role_kind, b.role_name
        )
    }
}

impl Subject {
    /// Upstream's `appliesToUser`. A ServiceAccount subject without a namespace
    /// takes the binding's; in a ClusterRoleBinding it then matches no one.
    fn applies_to(&self, user: &UserInfo, namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.in_group(&self.name),
            "ServiceAccount" => match self.user_name(namespace) {
                Some(name) => user.name == name,
                None => false,
            },
            _ => false,
        }
    }

    /// The user name a ServiceAccount subject stands for.
    fn user_name(&self, binding_namespace: &str) -> Option<String> {
        let ns = if self.namespace.is_empty() {
            binding_namespace
        } else {
            &self.namespace
        };
        (!ns.is_empty()).then(|| format!("{SERVICE_ACCOUNT_USER_PREFIX}{ns}:{}", self.name))
    }
}

impl Binding {
    fn parse(value: &Value, kind: &'static str) -> Result<Self, RbacError> {
        let (namespace, name) = meta(value, kind)?;
        let invalid = |reason: String| RbacError::InvalidObject {
            kind,
            name: name.clone(),
            reason,
        };
        let role_ref = value
            .get("roleRef")
            .ok_or_else(|| invalid("roleRef is missing".into()))?;
        let field = |f: &str| {
            role_ref
                .get(f)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("roleRef.{f} is missing")))
        };
        let role_kind = field("kind")?;
        let role_name = field("name")?;
        let subjects = match value.get("subjects") {
            None | Some(Value::Null) => Vec::new(),
            Some(s) => {
                serde_json::from_value(s.clone()).map_err(|e| invalid(format!("subjects: {e}")))?
            }
        };
        Ok(Binding {
            kind,
            name: name.clone(),
            namespace,
            role_kind,
            role_name,
            subjects,
        })
    }
}

/// Binding positions by the user and group names their subjects name.
/// ServiceAccount subjects are indexed under the user name they stand for.
#[derive(Clone, Debug, Default)]
struct SubjectIndex {
    users: HashMap<String, Vec<usize>>,
    groups: HashMap<String, Vec<usize>>,
}

impl SubjectIndex {
    fn add(&mut self, position: usize, binding: &Binding, namespace: &str) {
        for subject in &binding.subjects {
            let (map, key) = match subject.kind.as_str() {
                "User" => (&mut self.users, subject.name.clone()),
                "Group" => (&mut self.groups, subject.name.clone()),
                "ServiceAccount" => match subject.user_name(namespace) {
                    Some(name) => (&mut self.users, name),
                    None => continue,
                },
                _ => continue,
            };
            let positions = map.entry(key).or_default();
            if positions.last() != Some(&position) {
                positions.push(position);
            }
        }
    }

    /// Positions of the bindings that may apply to `user`, in list order.
    fn candidates(&self, user: &UserInfo) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        if let Some(p) = self.users.get(&user.name) {
            out.extend(p);
        }
        for group in &user.groups {
            if let Some(p) = self.groups.get(group) {
                out.extend(p);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// `metadata.namespace` (or empty) and `metadata.name` of an object.
pub(crate) fn meta(value: &Value, kind: &'static str) -> Result<(String, String), RbacError> {
    let metadata = value.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .ok_or(RbacError::MissingName { kind })?;
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok((namespace.to_owned(), name.to_owned()))
}

fn rules_of(value: &Value, kind: &'static str, name: &str) -> Result<Vec<PolicyRule>, RbacError> {
    PolicyRule::list_from(value).map_err(|e| RbacError::InvalidObject {
        kind,
        name: name.to_owned(),
        reason: format!("rules: {e}"),
    })
}

/// Go's `utilerrors.NewAggregate(errs).Error()`: one message alone, several in brackets.
pub(crate) fn go_aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}
