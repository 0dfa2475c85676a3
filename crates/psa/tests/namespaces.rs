//! Namespace creates and updates: invalid labels, exempt namespaces, and
//! the warnings for existing pods when enforce is raised.

mod common;

use std::collections::BTreeMap;

use bulwark_psa::{
    Config, Exemptions, Level, LevelVersion, NamespaceDecision, evaluate_namespace_create,
    evaluate_namespace_update, pods_in_namespace_warnings,
};
use common::labels;
use expect_test::expect;
use serde_json::{Value, json};

fn render(d: &NamespaceDecision) -> String {
    let mut out = String::from(if d.allowed { "allowed\n" } else { "invalid\n" });
    for e in &d.invalid {
        out.push_str(&format!("cause: {e}\n"));
    }
    for w in &d.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

fn pod(name: &str, controller: Option<&str>, spec: Value) -> Value {
    let mut meta = json!({"name": name, "namespace": "team"});
    if let Some(uid) = controller {
        meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "rs", "uid": uid, "controller": true}]);
    }
    json!({"metadata": meta, "spec": spec})
}

fn exempting(namespace: &str) -> Config {
    Config {
        exemptions: Exemptions {
            namespaces: vec![namespace.to_owned()],
            ..Exemptions::default()
        },
        ..Config::default()
    }
}

#[test]
fn create_refuses_invalid_labels() {
    let d = evaluate_namespace_create(
        &Config::default(),
        "team",
        &labels(&[("enforce", "restrcted"), ("warn-version", "v1.3x")]),
    );
    expect![[r#"
        invalid
        cause: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "restrcted": must be one of privileged, baseline, restricted
        cause: metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "v1.3x": must be "latest" or "v1.x"
    "#]]
    .assert_eq(&render(&d));
    let d = evaluate_namespace_create(
        &Config::default(),
        "team",
        &labels(&[("enforce", "restricted")]),
    );
    expect![[r#"
        allowed
    "#]]
    .assert_eq(&render(&d));
}

#[test]
fn exempt_namespaces_are_told_their_policy_is_ignored() {
    let d = evaluate_namespace_create(
        &exempting("kube-system"),
        "kube-system",
        &labels(&[("enforce", "restricted"), ("audit-version", "v1.30")]),
    );
    expect![[r#"
        allowed
        warning: namespace "kube-system" is exempt from Pod Security, and the policy (enforce=restricted:latest, audit=restricted:v1.30) will be ignored
    "#]]
    .assert_eq(&render(&d));
    // The default policy, or a fully privileged one, says nothing.
    let d = evaluate_namespace_create(
        &exempting("kube-system"),
        "kube-system",
        &labels(&[("enforce", "baseline")]),
    );
    expect![[r#"
        allowed
    "#]]
    .assert_eq(&render(&d));
}

#[test]
fn raising_enforce_warns_about_existing_pods() {
    let restricted_ok = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]});
    let pods = vec![
        pod(
            "web-2",
            Some("rs-1"),
            json!({"containers": [{"name": "c"}]}),
        ),
        pod(
            "web-1",
            Some("rs-1"),
            json!({"containers": [{"name": "c"}]}),
        ),
        pod(
            "web-3",
            Some("rs-1"),
            json!({"containers": [{"name": "c"}]}),
        ),
        pod(
            "db",
            None,
            json!({"hostNetwork": true, "containers": [{"name": "c"}]}),
        ),
        pod("ok", None, restricted_ok),
        pod(
            "tool",
            None,
            json!({"containers": [{"name": "c", "securityContext": {"runAsUser": 0}}]}),
        ),
    ];
    let d = evaluate_namespace_update(
        &Config::default(),
        "team",
        &labels(&[("enforce", "baseline")]),
        &labels(&[("enforce", "restricted")]),
        &pods,
    );
    expect![[r#"
        allowed
        warning: existing pods in namespace "team" violate the new PodSecurity enforce level "restricted:latest"
        warning: db: host namespaces, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile
        warning: tool: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, runAsUser=0, seccompProfile
        warning: web-1 (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile
    "#]]
    .assert_eq(&render(&d));

    // Lowering enforce, or keeping it, checks nothing.
    for (old, new) in [
        ("restricted", "baseline"),
        ("baseline", "baseline"),
        ("baseline", "privileged"),
    ] {
        let d = evaluate_namespace_update(
            &Config::default(),
            "team",
            &labels(&[("enforce", old)]),
            &labels(&[("enforce", new)]),
            &pods,
        );
        assert_eq!(render(&d), "allowed\n", "{old} -> {new}");
    }
    // A version change at the same level is checked.
    let d = evaluate_namespace_update(
        &Config::default(),
        "team",
        &labels(&[("enforce", "baseline"), ("enforce-version", "v1.20")]),
        &labels(&[("enforce", "baseline")]),
        &pods,
    );
    expect![[r#"
        allowed
        warning: existing pods in namespace "team" violate the new PodSecurity enforce level "baseline:latest"
        warning: db: host namespaces
    "#]]
    .assert_eq(&render(&d));
}

#[test]
fn update_keeps_already_invalid_labels_but_refuses_new_ones() {
    let bad = labels(&[("enforce", "nope")]);
    let d = evaluate_namespace_update(&Config::default(), "team", &bad, &bad, &[]);
    assert!(d.allowed);
    let d = evaluate_namespace_update(&Config::default(), "team", &BTreeMap::new(), &bad, &[]);
    expect![[r#"
        invalid
        cause: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "nope": must be one of privileged, baseline, restricted
    "#]]
    .assert_eq(&render(&d));
}

#[test]
fn at_most_3000_pods_are_checked() {
    let pods: Vec<Value> = (0..3002)
        .map(|i| {
            pod(
                &format!("p{i:04}"),
                None,
                json!({"hostPID": true, "containers": [{"name": "c"}]}),
            )
        })
        .collect();
    let warnings = pods_in_namespace_warnings(
        &Config::default(),
        "big",
        LevelVersion::latest(Level::Baseline),
        &pods,
    );
    expect![[r#"
        [
            "new PodSecurity enforce level only checked against the first 3000 of 3002 existing pods",
            "existing pods in namespace \"big\" violate the new PodSecurity enforce level \"baseline:latest\"",
            "p0000 (and 2999 other pods): host namespaces",
        ]
    "#]]
    .assert_debug_eq(&warnings);
}
