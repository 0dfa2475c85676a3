use expect_test::{Expect, expect};

use super::*;
use crate::event::{ObjectRef, UserInfo};

/// Evaluates `policy` for each case and renders `case => level`.
///
/// A case is `user groups,… verb target`, where target is a path for a
/// non-resource request or `group:resource[/sub]:namespace/name` for a
/// resource request (`-` for no groups; empty group is the core group).
fn check(policy: &str, cases: &str, expect: Expect) {
    let policy = Policy::from_yaml(policy).expect("test policy is valid");
    let mut out = String::new();
    for case in cases.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let info = parse_case(case);
        let d = policy.decide(&info);
        let mut line = format!("{case:<60} => {:?}", d.level);
        if !d.omit_stages.is_empty() {
            line += &format!(" omit={:?}", d.omit_stages);
        }
        if d.omit_managed_fields {
            line += " omitManagedFields";
        }
        out += line.trim_end();
        out += "\n";
    }
    expect.assert_eq(&out);
}

fn parse_case(case: &str) -> RequestInfo {
    let parts: Vec<&str> = case.split_whitespace().collect();
    let [user, groups, verb, target] = parts[..] else {
        panic!("bad case {case:?}");
    };
    let user = UserInfo {
        username: user.to_owned(),
        groups: if groups == "-" {
            Vec::new()
        } else {
            groups.split(',').map(str::to_owned).collect()
        },
        ..UserInfo::default()
    };
    if target.starts_with('/') {
        return RequestInfo::new(verb, target, user);
    }
    let [group, resource, place] = target.split(':').collect::<Vec<_>>()[..] else {
        panic!("bad target {target:?}");
    };
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let (namespace, name) = place.split_once('/').unwrap_or((place, ""));
    let mut info = RequestInfo::new(verb, "/api/v1/somewhere", user);
    info.object_ref = Some(ObjectRef {
        resource: resource.to_owned(),
        subresource: subresource.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        api_group: group.to_owned(),
        ..ObjectRef::default()
    });
    info
}

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
  - level: None
    userGroups: ["system:nodes"]
    nonResourceURLs: ["/healthz*", "/version"]
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["pods/log", "*/status"]
  - level: Request
    resources:
      - group: apps
        resources: ["deployments/*"]
  - level: Metadata
    resources:
      - group: ""
        resources: ["configmaps"]
        resourceNames: ["controller-leader"]
    omitStages: [ResponseStarted]
  - level: Request
    namespaces: ["kube-system"]
    omitManagedFields: true
  - level: RequestResponse
    resources:
      - group: rbac.authorization.k8s.io
  - level: Metadata
    nonResourceURLs: ["/metrics"]
  - level: Metadata
    resources:
      - group: ""
        resources: ["*"]
"#;

#[test]
fn first_matching_rule_wins() {
    check(
        POLICY,
        r#"
        system:kube-proxy - watch :endpoints:
        system:kube-proxy - list :endpoints:
        node1 system:nodes get /healthz
        node1 system:nodes get /healthz/etcd
        node1 system:nodes get /version
        node1 system:nodes get /versions
        alice system:authenticated get /healthz
        alice - get /metrics
        alice - get /metrics/extra
        alice - get :pods/log:prod/web
        alice - update :pods/status:prod/web
        alice - update :services/status:prod/web
        alice - get :pods:prod/web
        alice - patch apps:deployments/scale:prod/web
        alice - patch apps:deployments:prod/web
        alice - update :configmaps:kube-system/controller-leader
        alice - update :configmaps:kube-system/other
        alice - get apps:daemonsets:kube-system/proxy
        alice - create rbac.authorization.k8s.io:clusterroles:/admin
        alice - list storage.k8s.io:storageclasses:
        alice - list :nodes:
        "#,
        expect![[r#"
            system:kube-proxy - watch :endpoints:                        => None omit=[RequestReceived]
            system:kube-proxy - list :endpoints:                         => Metadata omit=[RequestReceived]
            node1 system:nodes get /healthz                              => None omit=[RequestReceived]
            node1 system:nodes get /healthz/etcd                         => None omit=[RequestReceived]
            node1 system:nodes get /version                              => None omit=[RequestReceived]
            node1 system:nodes get /versions                             => None omit=[RequestReceived]
            alice system:authenticated get /healthz                      => None omit=[RequestReceived]
            alice - get /metrics                                         => Metadata omit=[RequestReceived]
            alice - get /metrics/extra                                   => None omit=[RequestReceived]
            alice - get :pods/log:prod/web                               => RequestResponse omit=[RequestReceived]
            alice - update :pods/status:prod/web                         => RequestResponse omit=[RequestReceived]
            alice - update :services/status:prod/web                     => RequestResponse omit=[RequestReceived]
            alice - get :pods:prod/web                                   => Metadata omit=[RequestReceived]
            alice - patch apps:deployments/scale:prod/web                => Request omit=[RequestReceived]
            alice - patch apps:deployments:prod/web                      => Request omit=[RequestReceived]
            alice - update :configmaps:kube-system/controller-leader     => Metadata omit=[RequestReceived, ResponseStarted]
            alice - update :configmaps:kube-system/other                 => Request omit=[RequestReceived] omitManagedFields
            alice - get apps:daemonsets:kube-system/proxy                => Request omit=[RequestReceived] omitManagedFields
            alice - create rbac.authorization.k8s.io:clusterroles:/admin => RequestResponse omit=[RequestReceived]
            alice - list storage.k8s.io:storageclasses:                  => None omit=[RequestReceived]
            alice - list :nodes:                                         => Metadata omit=[RequestReceived]
        "#]],
    );
}

#[test]
fn default_policy_keeps_everything_at_metadata() {
    check(
        default_policy_yaml(),
        r#"
        alice - create :secrets:prod/db
        alice - get :secrets:prod/db
        alice - list :configmaps:prod
        alice - create authentication.k8s.io:tokenreviews:
        alice - create :serviceaccounts/token:prod/default
        alice - create :pods/exec:prod/web
        alice - create :pods/attach:prod/web
        alice - create :pods/portforward:prod/web
        alice - get :services/proxy:prod/web
        alice - create apps:deployments:prod/web
        system:anonymous - get /api
        "#,
        expect![[r#"
            alice - create :secrets:prod/db                              => Metadata omit=[RequestReceived] omitManagedFields
            alice - get :secrets:prod/db                                 => Metadata omit=[RequestReceived] omitManagedFields
            alice - list :configmaps:prod                                => Metadata omit=[RequestReceived] omitManagedFields
            alice - create authentication.k8s.io:tokenreviews:           => Metadata omit=[RequestReceived] omitManagedFields
            alice - create :serviceaccounts/token:prod/default           => Metadata omit=[RequestReceived] omitManagedFields
            alice - create :pods/exec:prod/web                           => Metadata omit=[RequestReceived] omitManagedFields
            alice - create :pods/attach:prod/web                         => Metadata omit=[RequestReceived] omitManagedFields
            alice - create :pods/portforward:prod/web                    => Metadata omit=[RequestReceived] omitManagedFields
            alice - get :services/proxy:prod/web                         => Metadata omit=[RequestReceived] omitManagedFields
            alice - create apps:deployments:prod/web                     => Metadata omit=[RequestReceived] omitManagedFields
            system:anonymous - get /api                                  => Metadata omit=[RequestReceived] omitManagedFields
        "#]],
    );
}

#[test]
fn no_rule_matches_means_none() {
    let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\n";
    check(
        policy,
        "alice - get :pods:prod/web\nalice - get /healthz",
        expect![[r#"
            alice - get :pods:prod/web                                   => None
            alice - get /healthz                                         => None
        "#]],
    );
}

#[test]
fn json_policies_parse_too() {
    let json = r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"Request","verbs":["create"]}]}"#;
    check(
        json,
        "alice - create :pods:prod/web\nalice - get :pods:prod/web",
        expect![[r#"
            alice - create :pods:prod/web                                => Request
            alice - get :pods:prod/web                                   => None
        "#]],
    );
}

fn check_invalid(policy: &str, expect: Expect) {
    let err = Policy::from_yaml(policy).expect_err("policy should be refused");
    expect.assert_eq(&err.to_string());
}

#[test]
fn malformed_policies_are_refused_naming_the_field() {
    check_invalid(
        r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [Received]
rules:
  - level: Metadata
  - level: Everything
  - verbs: [get]
  - level: Metadata
    resources: [{group: "", resources: [pods]}]
    nonResourceURLs: ["healthz", "/a*b"]
  - level: None
    resources: [{group: "Apps", resourceNames: [x]}]
"#,
        expect![[
            r#"audit policy is invalid: omitStages[0]: Unsupported value: "Received": supported values: "RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"; rules[1].level: Unsupported value: "Everything": supported values: "None", "Metadata", "Request", "RequestResponse"; rules[2].level: Required value; rules[3].nonResourceURLs: rules cannot apply to both regular resources and non-resource URLs; rules[3].nonResourceURLs[0]: Invalid value: "healthz": non-resource URL rules must begin with a '/' character; rules[3].nonResourceURLs[1]: Invalid value: "/a*b": non-resource URL wildcards '*' must be the final character of the rule; rules[4].resources[0].group: Invalid value: "Apps": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character; rules[4].resources[0].resourceNames: using resourceNames requires at least one resource"#
        ]],
    );
    check_invalid(
        "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\n",
        expect![[
            r#"audit policy is invalid: apiVersion: Unsupported value: "audit.k8s.io/v1beta1": supported values: "audit.k8s.io/v1""#
        ]],
    );
    check_invalid(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n    verb: [get]\n",
        expect![
            "audit policy is malformed: rules[0]: unknown field `verb`, expected one of `level`, `users`, `userGroups`, `verbs`, `resources`, `namespaces`, `nonResourceURLs`, `omitStages`, `omitManagedFields` at line 5 column 5"
        ],
    );
    check_invalid(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: ['/é', '/*é']\n",
        expect![[
            r#"audit policy is invalid: rules[0].nonResourceURLs[1]: Invalid value: "/*é": non-resource URL wildcards '*' must be the final character of the rule"#
        ]],
    );
    check_invalid(
        "rules: 3",
        expect![
            "audit policy is malformed: rules: invalid type: integer `3`, expected a sequence at line 1 column 8"
        ],
    );
}

#[test]
fn default_policy_parses() {
    let _ = default_policy();
}

#[test]
fn rule_settings_override_or_extend_the_policy() {
    let policy = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
omitManagedFields: true
rules:
  - level: RequestResponse
    namespaces: ["debug"]
    omitManagedFields: false
    omitStages: [ResponseStarted, RequestReceived]
  - level: Request
"#;
    check(
        policy,
        "alice - update :pods:debug/web\nalice - update :pods:prod/web",
        expect![[r#"
            alice - update :pods:debug/web                               => RequestResponse omit=[RequestReceived, ResponseStarted]
            alice - update :pods:prod/web                                => Request omit=[RequestReceived] omitManagedFields
        "#]],
    );
}
