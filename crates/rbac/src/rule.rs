//! Policy rules and how one matches a request (upstream's `rbac.RuleAllows`).

use serde::{Deserialize, Serialize};

use crate::attributes::Attributes;

/// `*` in verbs, apiGroups, resources and nonResourceURLs.
pub(crate) const ALL: &str = "*";

/// One rule of a Role or ClusterRole (rbac.authorization.k8s.io/v1 `PolicyRule`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Verbs, or `*`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub verbs: Vec<String>,
    /// API groups (`""` is core), or `*`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub api_groups: Vec<String>,
    /// Resources: `pods`, `pods/log`, `*`, `*/scale`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub resources: Vec<String>,
    /// Object names the rule is limited to; empty means all.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub resource_names: Vec<String>,
    /// Non-resource URL paths; a trailing `*` matches any suffix.
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

impl PolicyRule {
    /// A resource rule.
    pub fn resource(verbs: &[&str], api_groups: &[&str], resources: &[&str]) -> Self {
        PolicyRule {
            verbs: owned(verbs),
            api_groups: owned(api_groups),
            resources: owned(resources),
            ..PolicyRule::default()
        }
    }

    /// A non-resource rule.
    pub fn non_resource(verbs: &[&str], urls: &[&str]) -> Self {
        PolicyRule {
            verbs: owned(verbs),
            non_resource_urls: owned(urls),
            ..PolicyRule::default()
        }
    }

    /// The same rule limited to `names`.
    pub fn names(mut self, names: &[&str]) -> Self {
        self.resource_names = owned(names);
        self
    }

    /// Whether this rule allows the request (upstream's `RuleAllows`).
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if attrs.resource_request {
            verb_matches(self, &attrs.verb)
                && api_group_matches(self, &attrs.api_group)
                && resource_matches(self, &attrs.resource, &attrs.subresource)
                && resource_name_matches(self, &attrs.name)
        } else {
            verb_matches(self, &attrs.verb) && non_resource_url_matches(self, &attrs.path)
        }
    }

    /// Upstream's `CompactString`, used in escalation messages:
    /// `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
    pub fn compact_string(&self) -> String {
        let mut parts = Vec::new();
        for (label, values) in [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ] {
            if !values.is_empty() {
                parts.push(format!("{label}:{}", go_quoted_list(values)));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }

    /// Parses the `rules` field of a Role or ClusterRole; `null` or absent is no rules.
    pub(crate) fn list_from(
        object: &serde_json::Value,
    ) -> Result<Vec<PolicyRule>, serde_json::Error> {
        match object.get("rules") {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(rules) => Vec::<PolicyRule>::deserialize(rules),
        }
    }
}

fn owned(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(crate) fn go_quoted_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == ALL || g == group)
}

/// `*` matches everything; `pods/log` matches exactly; `*/log` matches the
/// `log` subresource of any resource.
fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == ALL
            || is_combined(r, resource, subresource)
            || (!subresource.is_empty()
                && r.len() == subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(subresource))
    })
}

/// A rule without names matches any name; a rule with names matches only a
/// request that names one of them, so never list, watch, create or
/// deletecollection without a name.
fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

/// Whether `rule_resource` is `resource` (no subresource) or `resource/subresource`,
/// without building the combined string on the hot path.
fn is_combined(rule_resource: &str, resource: &str, subresource: &str) -> bool {
    if subresource.is_empty() {
        return rule_resource == resource;
    }
    rule_resource.len() == resource.len() + 1 + subresource.len()
        && rule_resource.starts_with(resource)
        && rule_resource[resource.len()..].starts_with('/')
        && rule_resource.ends_with(subresource)
}

fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|u| {
        u == ALL || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
    })
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::PolicyRule;
    use crate::attributes::{Attributes, UserInfo};

    /// Each line: `verb resource[/sub] name` or `verb /path`, against one rule.
    fn check(rule: PolicyRule, requests: &str, expect: Expect) {
        let mut out = String::new();
        for line in requests.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let user = UserInfo::new("u", &[]);
            let attrs = if words[1].starts_with('/') {
                Attributes::non_resource(user, words[0], words[1])
            } else {
                let name = words.get(2).copied().unwrap_or("");
                Attributes::resource(user, words[0], "", words[1], "ns", name)
            };
            out.push_str(&format!("{line:<28} {}\n", rule.allows(&attrs)));
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn subresource_forms() {
        check(
            PolicyRule::resource(&["get"], &[""], &["*/scale", "pods/*", "services/proxy"]),
            "
            get deployments/scale
            get scale
            get pods/log
            get pods/*
            get services/proxy
            get services
            GET services/proxy
            ",
            expect![[r#"
                get deployments/scale        true
                get scale                    false
                get pods/log                 false
                get pods/*                   true
                get services/proxy           true
                get services                 false
                GET services/proxy           false
            "#]],
        );
    }

    #[test]
    fn resource_names() {
        check(
            PolicyRule::resource(&["*"], &[""], &["configmaps"]).names(&["a"]),
            "
            get configmaps a
            delete configmaps a
            get configmaps b
            list configmaps
            create configmaps
            deletecollection configmaps
            ",
            expect![[r#"
                get configmaps a             true
                delete configmaps a          true
                get configmaps b             false
                list configmaps              false
                create configmaps            false
                deletecollection configmaps  false
            "#]],
        );
    }

    #[test]
    fn non_resource_prefixes() {
        check(
            PolicyRule::non_resource(&["get"], &["/healthz*", "/api/*", "/version"]),
            "
            get /healthz
            get /healthzfoo
            get /api
            get /api/v1
            get /version
            get /version/
            post /healthz
            ",
            expect![[r#"
                get /healthz                 true
                get /healthzfoo              true
                get /api                     false
                get /api/v1                  true
                get /version                 true
                get /version/                false
                post /healthz                false
            "#]],
        );
    }
}
