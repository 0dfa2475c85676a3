//! The audit policy: an `audit.k8s.io/v1` `Policy`, parsed, validated and
//! evaluated exactly as kube-apiserver's `pkg/audit/policy` does it — the
//! first rule that matches a request decides its level; no match means
//! `None`.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::event::RequestInfo;

/// How much of a request is recorded. Ordered: `None < Metadata < Request <
/// RequestResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Nothing is recorded.
    None,
    /// Who, what, when, and the response code — no bodies.
    Metadata,
    /// Metadata and the request body (never for non-resource URLs).
    Request,
    /// Metadata, the request body and the response body.
    RequestResponse,
}

/// The point in a request's life an event describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// The request has been received, before anything else is done.
    RequestReceived,
    /// Response headers are sent, the body is not (long-running requests:
    /// watch, exec, port-forward).
    ResponseStarted,
    /// The response is complete.
    ResponseComplete,
    /// The handler panicked.
    Panic,
}

impl Level {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "None" => Self::None,
            "Metadata" => Self::Metadata,
            "Request" => Self::Request,
            "RequestResponse" => Self::RequestResponse,
            _ => return None,
        })
    }
}

impl Stage {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "RequestReceived" => Self::RequestReceived,
            "ResponseStarted" => Self::ResponseStarted,
            "ResponseComplete" => Self::ResponseComplete,
            "Panic" => Self::Panic,
            _ => return None,
        })
    }
}

/// A validated audit policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    omit_stages: Vec<Stage>,
    omit_managed_fields: bool,
}

/// What the policy decides for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The level of the first matching rule, or `None`.
    pub level: Level,
    /// Stages not to record: the policy's and the rule's together.
    pub omit_stages: Vec<Stage>,
    /// Strip `metadata.managedFields` from logged bodies.
    pub omit_managed_fields: bool,
}

/// Why a policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("reading audit policy {path}: {source}")]
    Read {
        /// The policy file.
        path: String,
        /// The underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML/JSON of the Policy's shape (the message names
    /// the line and column).
    #[error("audit policy is malformed: {0}")]
    Syntax(#[source] serde_yaml_ng::Error),
    /// The policy parsed but some fields are invalid; every invalid field is
    /// listed, each named by its path (`rules[2].level: …`).
    #[error("audit policy is invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Policy {
    /// Parses and validates a policy written in YAML or JSON.
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        let raw: RawPolicy = serde_yaml_ng::from_str(text).map_err(PolicyError::Syntax)?;
        raw.validate()
    }

    /// Reads, parses and validates a policy file.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Evaluates the policy for a request: the first matching rule wins; no
    /// match means `Level::None`.
    pub fn decide(&self, info: &RequestInfo) -> Decision {
        let Some(rule) = self.rules.iter().find(|r| r.matches(info)) else {
            return Decision {
                level: Level::None,
                omit_stages: self.omit_stages.clone(),
                omit_managed_fields: self.omit_managed_fields,
            };
        };
        let mut omit_stages = self.omit_stages.clone();
        for stage in &rule.omit_stages {
            if !omit_stages.contains(stage) {
                omit_stages.push(*stage);
            }
        }
        Decision {
            level: rule.level,
            omit_stages,
            omit_managed_fields: rule.omit_managed_fields.unwrap_or(self.omit_managed_fields),
        }
    }
}

/// Bulwark's default policy, in YAML, with comments saying why each rule is
/// there. `default_policy()` is this text parsed.
pub fn default_policy_yaml() -> &'static str {
    include_str!("default-policy.yaml")
}

/// Bulwark's default policy: Metadata for everything (so no request or
/// response body — of Secrets, ConfigMaps, TokenReviews or anything else —
/// ever reaches the log), interactive access (`pods/exec`, `pods/attach`,
/// `pods/portforward`, proxies) recorded explicitly, `RequestReceived`
/// omitted.
pub fn default_policy() -> Policy {
    Policy::from_yaml(default_policy_yaml()).expect("the built-in policy is valid (tested)")
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    level: Level,
    users: Vec<String>,
    user_groups: Vec<String>,
    verbs: Vec<String>,
    resources: Vec<GroupResources>,
    namespaces: Vec<String>,
    non_resource_urls: Vec<String>,
    omit_stages: Vec<Stage>,
    omit_managed_fields: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

impl Rule {
    /// Upstream's `ruleMatches` (pkg/audit/policy/checker.go).
    fn matches(&self, info: &RequestInfo) -> bool {
        if !self.users.is_empty() && !self.users.contains(&info.user.username) {
            return false;
        }
        if !self.user_groups.is_empty()
            && !info
                .user
                .groups
                .iter()
                .any(|g| self.user_groups.contains(g))
        {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.contains(&info.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(info);
        }
        if !self.non_resource_urls.is_empty() {
            return self.matches_non_resource(info);
        }
        true
    }

    fn matches_resource(&self, info: &RequestInfo) -> bool {
        let Some(obj) = &info.object_ref else {
            return false;
        };
        // Cluster-scoped resources have the empty namespace.
        if !self.namespaces.is_empty() && !self.namespaces.contains(&obj.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let combined = if obj.subresource.is_empty() {
            obj.resource.clone()
        } else {
            format!("{}/{}", obj.resource, obj.subresource)
        };
        self.resources
            .iter()
            .filter(|gr| gr.group == obj.api_group)
            .any(|gr| {
                if gr.resources.is_empty() {
                    return true;
                }
                if !gr.resource_names.is_empty() && !gr.resource_names.contains(&obj.name) {
                    return false;
                }
                gr.resources.iter().any(|res| {
                    res == "*"
                        || *res == combined
                        || (!obj.subresource.is_empty()
                            && res.strip_prefix("*/") == Some(obj.subresource.as_str()))
                        || res.strip_suffix("/*") == Some(obj.resource.as_str())
                })
            })
    }

    fn matches_non_resource(&self, info: &RequestInfo) -> bool {
        if info.object_ref.is_some() {
            return false;
        }
        let path = info.request_uri.split('?').next().unwrap_or_default();
        self.non_resource_urls.iter().any(|spec| {
            spec == "*"
                || spec == path
                || spec
                    .strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
    }
}

// ---------------------------------------------------------------------------
// The wire form and its validation (upstream pkg/apis/audit/validation).

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicy {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // accepted, as upstream's ObjectMeta, and ignored
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    omit_stages: Vec<String>,
    #[serde(default)]
    omit_managed_fields: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    level: Option<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
    #[serde(default)]
    omit_stages: Vec<String>,
    omit_managed_fields: Option<bool>,
}

struct Errors(Vec<String>);

impl Errors {
    fn push(&mut self, path: impl fmt::Display, msg: impl fmt::Display) {
        self.0.push(format!("{path}: {msg}"));
    }
}

impl RawPolicy {
    fn validate(self) -> Result<Policy, PolicyError> {
        let mut errs = Errors(Vec::new());
        match self.api_version.as_deref() {
            Some("audit.k8s.io/v1") => {}
            other => errs.push(
                "apiVersion",
                format!(
                    "Unsupported value: {:?}: supported values: \"audit.k8s.io/v1\"",
                    other.unwrap_or_default()
                ),
            ),
        }
        match self.kind.as_deref() {
            Some("Policy") => {}
            other => errs.push(
                "kind",
                format!(
                    "Unsupported value: {:?}: supported values: \"Policy\"",
                    other.unwrap_or_default()
                ),
            ),
        }
        let omit_stages = validate_stages(&self.omit_stages, "omitStages", &mut errs);
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, raw) in self.rules.into_iter().enumerate() {
            if let Some(rule) = raw.validate(&format!("rules[{i}]"), &mut errs) {
                rules.push(rule);
            }
        }
        if !errs.0.is_empty() {
            return Err(PolicyError::Invalid(errs.0));
        }
        Ok(Policy {
            rules,
            omit_stages,
            omit_managed_fields: self.omit_managed_fields,
        })
    }
}

impl RawRule {
    fn validate(self, path: &str, errs: &mut Errors) -> Option<Rule> {
        let before = errs.0.len();
        let level = match self.level.as_deref() {
            None | Some("") => {
                errs.push(format!("{path}.level"), "Required value");
                None
            }
            Some(s) => {
                let level = Level::parse(s);
                if level.is_none() {
                    errs.push(
                        format!("{path}.level"),
                        format!(
                            "Unsupported value: {s:?}: supported values: \"None\", \"Metadata\", \"Request\", \"RequestResponse\""
                        ),
                    );
                }
                level
            }
        };
        let omit_stages = validate_stages(&self.omit_stages, &format!("{path}.omitStages"), errs);
        let resource_rule = !self.resources.is_empty() || !self.namespaces.is_empty();
        if resource_rule && !self.non_resource_urls.is_empty() {
            errs.push(
                format!("{path}.nonResourceURLs"),
                "rules cannot apply to both regular resources and non-resource URLs",
            );
        }
        for (i, url) in self.non_resource_urls.iter().enumerate() {
            if url == "*" {
                continue;
            }
            let field = format!("{path}.nonResourceURLs[{i}]");
            if !url.starts_with('/') {
                errs.push(
                    &field,
                    format!("Invalid value: {url:?}: non-resource URL rules must begin with a '/' character"),
                );
            }
            let mut all_but_last = url.chars();
            all_but_last.next_back();
            if all_but_last.as_str().contains('*') {
                errs.push(
                    &field,
                    format!("Invalid value: {url:?}: non-resource URL wildcards '*' must be the final character of the rule"),
                );
            }
        }
        for (i, gr) in self.resources.iter().enumerate() {
            let field = format!("{path}.resources[{i}]");
            if !gr.group.is_empty() && !is_dns_subdomain(&gr.group) {
                errs.push(
                    format!("{field}.group"),
                    format!("Invalid value: {:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character", gr.group),
                );
            }
            if !gr.resource_names.is_empty() && gr.resources.is_empty() {
                errs.push(
                    format!("{field}.resourceNames"),
                    "using resourceNames requires at least one resource",
                );
            }
            for (j, res) in gr.resources.iter().enumerate() {
                if res.is_empty() || res.split('/').count() > 2 || res.split('/').any(str::is_empty)
                {
                    errs.push(
                        format!("{field}.resources[{j}]"),
                        format!("Invalid value: {res:?}: must be \"resource\", \"resource/subresource\", \"*\", \"*/subresource\" or \"resource/*\""),
                    );
                }
            }
        }
        if errs.0.len() != before {
            return None;
        }
        Some(Rule {
            level: level?,
            users: self.users,
            user_groups: self.user_groups,
            verbs: self.verbs,
            resources: self.resources,
            namespaces: self.namespaces,
            non_resource_urls: self.non_resource_urls,
            omit_stages,
            omit_managed_fields: self.omit_managed_fields,
        })
    }
}

fn validate_stages(stages: &[String], path: &str, errs: &mut Errors) -> Vec<Stage> {
    let mut out = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        match Stage::parse(s) {
            Some(stage) => out.push(stage),
            None => errs.push(
                format!("{path}[{i}]"),
                format!(
                    "Unsupported value: {s:?}: supported values: \"RequestReceived\", \"ResponseStarted\", \"ResponseComplete\", \"Panic\""
                ),
            ),
        }
    }
    out
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests;
