//! What a request asks for, who asks, and what an authorizer answers.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The prefix of every service-account user name: `system:serviceaccount:<ns>:<name>`.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";
/// The group every service account belongs to.
pub const ALL_SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The group whose members bypass RBAC and escalation checks.
pub const SYSTEM_MASTERS_GROUP: &str = "system:masters";

/// An authenticated identity, as upstream's `user.Info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`alice`, `system:node:n1`, `system:serviceaccount:ns:sa`).
    pub name: String,
    /// The groups, including `system:authenticated` when the authenticator adds it.
    pub groups: Vec<String>,
    /// A unique id, if the authenticator has one.
    pub uid: String,
    /// Extra attributes (token claims, scopes).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with a name and groups.
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..UserInfo::default()
        }
    }

    /// The identity a service-account token authenticates as: its user name and
    /// the groups `system:serviceaccounts`, `system:serviceaccounts:<ns>` and
    /// `system:authenticated`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            name: format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}"),
            groups: vec![
                ALL_SERVICE_ACCOUNTS_GROUP.to_owned(),
                format!("{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}"),
                "system:authenticated".to_owned(),
            ],
            ..UserInfo::default()
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// A request as the authorizers see it (upstream's `authorizer.Attributes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Who asks.
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or a special verb (`bind`, `escalate`, `impersonate`, …).
    pub verb: String,
    /// The namespace, empty for cluster-scoped requests.
    pub namespace: String,
    /// The API group, empty for the core group.
    pub api_group: String,
    /// The API version.
    pub api_version: String,
    /// The resource (`pods`).
    pub resource: String,
    /// The subresource (`log` for `pods/log`), or empty.
    pub subresource: String,
    /// The object's name, empty for create and collection requests. For list
    /// and watch the API server fills it from a `metadata.name=` field
    /// selector, as upstream's `RequestInfoFactory` does, so rules limited by
    /// resourceNames can allow watching one object.
    pub name: String,
    /// The request's field selector (`spec.nodeName=n1`), as given; the
    /// Node authorizer lets a node list only its own pods with it.
    pub field_selector: String,
    /// The URL path of a non-resource request (`/healthz`).
    pub path: String,
    /// True for requests on API resources, false for non-resource URLs.
    pub resource_request: bool,
}

impl Attributes {
    /// A resource request; `resource` may be `pods/log` to name a subresource.
    pub fn resource(
        user: UserInfo,
        verb: &str,
        api_group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Attributes {
            user,
            verb: verb.to_owned(),
            namespace: namespace.to_owned(),
            api_group: api_group.to_owned(),
            api_version: "*".to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            name: name.to_owned(),
            field_selector: String::new(),
            path: String::new(),
            resource_request: true,
        }
    }

    /// A non-resource request on `path`.
    pub fn non_resource(user: UserInfo, verb: &str, path: &str) -> Self {
        Attributes {
            user,
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Attributes::default()
        }
    }

    /// `resource` or `resource/subresource`, as rules name it.
    pub(crate) fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// An authorizer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request is allowed; the reason says by what.
    Allow(String),
    /// The request is denied outright; later authorizers are not asked.
    Deny(String),
    /// This authorizer has no opinion; the next one is asked. The reason may be
    /// empty, or say why nothing matched (`RBAC: clusterrole… not found`).
    NoOpinion(String),
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The reason, possibly empty.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) | Decision::NoOpinion(r) => r,
        }
    }
}

/// The message of the 403 the API server returns when no authorizer allows a
/// request, built as upstream's `responsewriters.Forbidden` and
/// `errors.NewForbidden` build it:
/// `pods "x" is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "default"`.
/// A non-empty `reason` is appended after a colon.
pub fn forbidden_message(attrs: &Attributes, reason: &str) -> String {
    let mut err = if attrs.resource_request {
        let resource = attrs.combined_resource();
        if attrs.namespace.is_empty() {
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
                attrs.user.name, attrs.verb, resource, attrs.api_group
            )
        } else {
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
                attrs.user.name, attrs.verb, resource, attrs.api_group, attrs.namespace
            )
        }
    } else {
        format!(
            "User {:?} cannot {} path {:?}",
            attrs.user.name, attrs.verb, attrs.path
        )
    };
    if !reason.is_empty() {
        err = format!("{err}: {reason}");
    }
    let qualified = qualified_resource(&attrs.api_group, &attrs.resource);
    forbidden_wrap(&qualified, &attrs.name, &err)
}

/// The `Status` body (kind `Status`, code 403, reason `Forbidden`) carrying
/// [`forbidden_message`], with `details` as upstream fills them.
pub fn forbidden_status(attrs: &Attributes, reason: &str) -> Value {
    status_403(
        &attrs.api_group,
        &attrs.resource,
        &attrs.name,
        forbidden_message(attrs, reason),
    )
}

/// `resource.group`, or `resource` for the core group (upstream's `GroupResource.String`).
pub(crate) fn qualified_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

/// Upstream's `NewForbidden` message: `<qualified> "<name>" is forbidden: <err>`.
pub(crate) fn forbidden_wrap(qualified: &str, name: &str, err: &str) -> String {
    if qualified.is_empty() {
        format!("forbidden: {err}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {err}")
    } else {
        format!("{qualified} {name:?} is forbidden: {err}")
    }
}

/// A 403 `Status` object.
pub(crate) fn status_403(group: &str, resource: &str, name: &str, message: String) -> Value {
    let mut details = serde_json::Map::new();
    if !name.is_empty() {
        details.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        details.insert("group".into(), json!(group));
    }
    if !resource.is_empty() {
        details.insert("kind".into(), json!(resource));
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    })
}
