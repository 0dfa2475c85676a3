//! Modes, defaults, namespace labels, exemptions and workloads: the whole
//! decision (denial, warnings, audit annotations) for each case.

mod common;

use std::collections::BTreeMap;

use bulwark_psa::{
    Config, Exemptions, Level, LevelVersion, Levels, Version, evaluate_pod, evaluate_pod_update,
    evaluate_workload,
};
use common::{labels, render, restricted_pod};
use expect_test::{Expect, expect};
use serde_json::{Value, json};

fn privileged_pod() -> Value {
    json!({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "nginx", "securityContext": {"privileged": true}}]}})
}

fn plain_pod() -> Value {
    json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
}

/// Evaluates `pod` in namespace "ns" with the given labels, Bulwark's
/// default config plus `exemptions`, as user "alice".
fn check_pod(ns_labels: &[(&str, &str)], pod: Value, expect: Expect) {
    let d = evaluate_pod(&Config::default(), "ns", &labels(ns_labels), "alice", &pod);
    expect.assert_eq(&render(&d));
}

#[test]
fn bulwark_defaults_enforce_baseline_and_warn_restricted() {
    check_pod(
        &[],
        plain_pod(),
        expect![[r#"
            allowed
            warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")
            audit pod-security.kubernetes.io/audit-violations: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")
            audit pod-security.kubernetes.io/enforce-policy: baseline:latest
        "#]],
    );
    check_pod(
        &[],
        restricted_pod(),
        expect![[r#"
            allowed
            audit pod-security.kubernetes.io/enforce-policy: baseline:latest
        "#]],
    );
}

#[test]
fn a_denied_pod_gets_no_warnings_but_is_audited() {
    check_pod(
        &[],
        privileged_pod(),
        expect![[r#"
            denied: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)
            audit pod-security.kubernetes.io/audit-violations: would violate PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")
            audit pod-security.kubernetes.io/enforce-policy: baseline:latest
        "#]],
    );
}

#[test]
fn the_forbidden_status_message_names_the_pod() {
    let d = evaluate_pod(
        &Config::default(),
        "ns",
        &BTreeMap::new(),
        "alice",
        &privileged_pod(),
    );
    expect![[r#"
        Some(
            "pods \"p\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)",
        )
    "#]]
    .assert_debug_eq(&d.forbidden_status_message("p"));
    assert_eq!(
        d.forbidden_status_message("")
            .as_deref()
            .map(|m| m.split(':').next()),
        Some(Some("pods is forbidden"))
    );
    let ok = evaluate_pod(
        &Config::default(),
        "ns",
        &BTreeMap::new(),
        "alice",
        &plain_pod(),
    );
    assert_eq!(ok.forbidden_status_message("p"), None);
}

#[test]
fn a_privileged_namespace_skips_evaluation() {
    check_pod(
        &[
            ("enforce", "privileged"),
            ("warn", "privileged"),
            ("audit", "privileged"),
        ],
        privileged_pod(),
        expect![[r#"
            allowed
            audit pod-security.kubernetes.io/enforce-policy: privileged:latest
        "#]],
    );
    // Only enforce relaxed: the defaults still warn and audit.
    check_pod(
        &[("enforce", "privileged"), ("enforce-version", "v1.25")],
        privileged_pod(),
        expect![[r#"
            allowed
            warning: would violate PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")
            audit pod-security.kubernetes.io/audit-violations: would violate PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")
            audit pod-security.kubernetes.io/enforce-policy: privileged:v1.25
        "#]],
    );
}

#[test]
fn enforce_alone_raises_warn_to_match() {
    let upstream_defaults = Config {
        defaults: Levels::privileged(),
        ..Config::default()
    };
    let d = evaluate_pod(
        &upstream_defaults,
        "ns",
        &labels(&[("enforce", "baseline"), ("enforce-version", "v1.30")]),
        "alice",
        &json!({"spec": {"hostPID": true, "containers": [{"name": "c"}]}}),
    );
    expect![[r#"
        denied: violates PodSecurity "baseline:v1.30": host namespaces (hostPID=true)
        audit pod-security.kubernetes.io/enforce-policy: baseline:v1.30
    "#]]
    .assert_eq(&render(&d));
    let (levels, errors) = Levels::from_labels(
        &labels(&[("enforce", "baseline"), ("enforce-version", "v1.30")]),
        &Levels::privileged(),
    );
    assert!(errors.is_empty());
    assert_eq!(
        levels.warn,
        LevelVersion {
            level: Level::Baseline,
            version: Version::V1(30)
        }
    );
}

#[test]
fn invalid_labels_fail_closed_for_enforce_and_open_for_warn_and_audit() {
    check_pod(
        &[
            ("enforce", "strict"),
            ("warn", "loud"),
            ("audit-version", "v1.05"),
        ],
        plain_pod(),
        expect![[r#"
            denied: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")
            audit pod-security.kubernetes.io/audit-violations: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")
            audit pod-security.kubernetes.io/enforce-policy: restricted:latest
            audit pod-security.kubernetes.io/error: Failed to parse policy: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted, metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: "v1.05": must be "latest" or "v1.x", metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "loud": must be one of privileged, baseline, restricted]
        "#]],
    );
}

#[test]
fn label_parsing() {
    fn show(pairs: &[(&str, &str)]) -> String {
        let (levels, errors) = Levels::from_labels(&labels(pairs), &Levels::default());
        let mut out = format!(
            "enforce={} audit={} warn={}\n",
            levels.enforce, levels.audit, levels.warn
        );
        for e in errors {
            out.push_str(&format!("{e}\n"));
        }
        out
    }
    expect![[r#"
        enforce=baseline:latest audit=restricted:latest warn=restricted:latest
    "#]]
    .assert_eq(&show(&[]));
    expect![[r#"
        enforce=restricted:v1.0 audit=privileged:v1.29 warn=baseline:latest
    "#]]
    .assert_eq(&show(&[
        ("enforce", "restricted"),
        ("enforce-version", "v1.0"),
        ("audit", "privileged"),
        ("audit-version", "v1.29"),
        ("warn", "baseline"),
    ]));
    expect![[r#"
        enforce=baseline:latest audit=restricted:latest warn=restricted:latest
        metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "1.30": must be "latest" or "v1.x"
        metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "v2.0": must be "latest" or "v1.x"
    "#]]
    .assert_eq(&show(&[
        ("enforce-version", "1.30"),
        ("warn-version", "v2.0"),
    ]));
    expect![[r#"
        enforce=restricted:latest audit=privileged:latest warn=restricted:latest
        metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "Baseline": must be one of privileged, baseline, restricted
        metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "": must be one of privileged, baseline, restricted
    "#]]
    .assert_eq(&show(&[("enforce", "Baseline"), ("audit", "")]));
    for bad in [
        "v1.",
        "v1.-1",
        "v1.x",
        "V1.2",
        "v1.2.3",
        " latest",
        "v1.99999999999999999999",
    ] {
        assert!(bad.parse::<Version>().is_err(), "{bad}");
    }
    assert_eq!("v1.10".parse::<Version>(), Ok(Version::V1(10)));
}

#[test]
fn exemptions() {
    let config = Config {
        defaults: Levels::default(),
        exemptions: Exemptions {
            usernames: vec!["system:serviceaccount:kube-system:installer".into()],
            runtime_class_names: vec!["kata".into()],
            namespaces: vec!["kube-system".into()],
        },
        kubernetes_minor: None,
    };
    let none = BTreeMap::new();
    let show =
        |ns: &str, user: &str, pod: &Value| render(&evaluate_pod(&config, ns, &none, user, pod));
    expect![[r#"
        allowed
        audit pod-security.kubernetes.io/exempt: namespace
    "#]]
    .assert_eq(&show("kube-system", "alice", &privileged_pod()));
    expect![[r#"
        allowed
        audit pod-security.kubernetes.io/exempt: user
    "#]]
    .assert_eq(&show(
        "ns",
        "system:serviceaccount:kube-system:installer",
        &privileged_pod(),
    ));
    let mut kata = privileged_pod();
    kata["spec"]["runtimeClassName"] = json!("kata");
    expect![[r#"
        allowed
        audit pod-security.kubernetes.io/exempt: runtimeClass
    "#]]
    .assert_eq(&show("ns", "alice", &kata));
    // Exemptions match exactly; nothing else is exempt.
    kata["spec"]["runtimeClassName"] = json!("kata2");
    assert!(!evaluate_pod(&config, "kube-system2", &none, "alice", &kata).allowed);
}

#[test]
fn pod_updates_are_checked_only_when_images_change() {
    let config = Config::default();
    let none = BTreeMap::new();
    let old = privileged_pod();
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"] = json!({"a": "b"});
    expect![[r#"
        allowed
    "#]]
    .assert_eq(&render(&evaluate_pod_update(
        &config,
        "ns",
        &none,
        "alice",
        &old,
        &relabelled,
    )));
    let mut new_image = old.clone();
    new_image["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert!(!evaluate_pod_update(&config, "ns", &none, "alice", &old, &new_image).allowed);
    let mut debug = old.clone();
    debug["spec"]["ephemeralContainers"] = json!([{"name": "dbg", "image": "busybox"}]);
    assert!(!evaluate_pod_update(&config, "ns", &none, "alice", &old, &debug).allowed);
}

fn check_workload(object: Value, expect: Expect) {
    let d = evaluate_workload(&Config::default(), "ns", &BTreeMap::new(), "alice", &object);
    expect.assert_eq(&render(&d));
}

#[test]
fn workloads_warn_and_audit_through_their_template_but_never_deny() {
    check_workload(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                   "hostNetwork": true,
                   "containers": [{"name": "web", "image": "nginx", "securityContext": {"privileged": true}}]}}}}),
        expect![[r#"
            allowed
            warning: would violate PodSecurity "restricted:latest": host namespaces (hostNetwork=true), privileged (container "web" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "web" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "web" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "web" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "web" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")
            audit pod-security.kubernetes.io/audit-violations: would violate PodSecurity "restricted:latest": host namespaces (hostNetwork=true), privileged (container "web" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "web" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "web" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "web" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "web" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")
        "#]],
    );
    check_workload(
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
               "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
                   "restartPolicy": "Never",
                   "containers": [{"name": "job", "image": "busybox",
                       "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true,
                           "seccompProfile": {"type": "RuntimeDefault"}, "capabilities": {"drop": ["ALL"]}}}]}}}}}}),
        expect![[r#"
            allowed
        "#]],
    );
    check_workload(
        json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
            "volumes": [{"name": "v", "hostPath": {"path": "/"}}],
            "containers": [{"name": "j", "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"}, "capabilities": {"drop": ["ALL"]}}}]}}}}),
        expect![[r#"
            allowed
            warning: would violate PodSecurity "restricted:latest": restricted volume types (volume "v" uses restricted volume type "hostPath")
            audit pod-security.kubernetes.io/audit-violations: would violate PodSecurity "restricted:latest": restricted volume types (volume "v" uses restricted volume type "hostPath")
        "#]],
    );
    // Not a pod-template resource; a ReplicationController without a template.
    check_workload(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}),
        expect![[r#"
            allowed
        "#]],
    );
    check_workload(
        json!({"apiVersion": "v1", "kind": "ReplicationController", "spec": {}}),
        expect![[r#"
            allowed
        "#]],
    );
}

#[test]
fn workloads_in_a_namespace_that_only_enforces_are_not_evaluated() {
    let d = evaluate_workload(
        &Config::default(),
        "ns",
        &labels(&[
            ("enforce", "restricted"),
            ("warn", "privileged"),
            ("audit", "privileged"),
        ]),
        "alice",
        &json!({"kind": "StatefulSet", "spec": {"template": privileged_pod()}}),
    );
    expect![[r#"
        allowed
    "#]]
    .assert_eq(&render(&d));
}

#[test]
fn an_emulated_kubernetes_version_caps_latest() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
        "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}]}});
    let labels = labels(&[("warn", "privileged"), ("audit", "privileged")]);
    let show = |kubernetes_minor| {
        let config = Config {
            kubernetes_minor,
            ..Config::default()
        };
        render(&evaluate_pod(&config, "ns", &labels, "alice", &pod))
    };
    // The probe-host control arrived in v1.34.
    expect![[r#"
        allowed
        audit pod-security.kubernetes.io/enforce-policy: baseline:latest
    "#]]
    .assert_eq(&show(Some(33)));
    expect![[r#"
        denied: violates PodSecurity "baseline:latest": probe or lifecycle host (container "c" uses probe or lifecycle host "10.0.0.1")
        audit pod-security.kubernetes.io/enforce-policy: baseline:latest
    "#]]
    .assert_eq(&show(Some(34)));
    assert_eq!(show(None), show(Some(99)));
}

#[test]
fn configuration_files() {
    let show = |v: Value| match Config::from_configuration(&v) {
        Ok(c) => format!(
            "enforce={} audit={} warn={}\nexempt users={:?} runtimeClasses={:?} namespaces={:?}\n",
            c.defaults.enforce,
            c.defaults.audit,
            c.defaults.warn,
            c.exemptions.usernames,
            c.exemptions.runtime_class_names,
            c.exemptions.namespaces
        ),
        Err(e) => e.errors.join("\n") + "\n",
    };
    expect![[r#"
        enforce=restricted:v1.30 audit=restricted:latest warn=restricted:latest
        exempt users=["system:serviceaccount:kube-system:installer"] runtimeClasses=["kata.io"] namespaces=["kube-system"]
    "#]]
    .assert_eq(&show(json!({
        "apiVersion": "pod-security.admission.config.k8s.io/v1",
        "kind": "PodSecurityConfiguration",
        "defaults": {"enforce": "restricted", "enforce-version": "v1.30"},
        "exemptions": {
            "usernames": ["system:serviceaccount:kube-system:installer"],
            "runtimeClasses": ["kata.io"],
            "namespaces": ["kube-system"],
        },
    })));
    // Nothing set: Bulwark's defaults, not upstream's privileged.
    expect![[r#"
        enforce=baseline:latest audit=restricted:latest warn=restricted:latest
        exempt users=[] runtimeClasses=[] namespaces=[]
    "#]]
    .assert_eq(&show(json!({
        "apiVersion": "pod-security.admission.config.k8s.io/v1beta1",
        "kind": "PodSecurityConfiguration",
    })));
    expect![[r#"
        defaults.enforce: Invalid value: "strict": must be one of privileged, baseline, restricted
        defaults.warn-version: Invalid value: "1.30": must be "latest" or "v1.x"
        defaults.audit: must be a string
        exemptions.usernames[0]: Invalid value: "": username must not be empty
        exemptions.usernames[2]: Duplicate value: "bob"
        exemptions.runtimeClasses[0]: Invalid value: "Kata": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')
        exemptions.namespaces[0]: Invalid value: "kube.system": must not contain dots
    "#]]
    .assert_eq(&show(json!({
        "apiVersion": "pod-security.admission.config.k8s.io/v1",
        "kind": "PodSecurityConfiguration",
        "defaults": {"enforce": "strict", "warn-version": "1.30", "audit": 3},
        "exemptions": {
            "usernames": ["", "bob", "bob"],
            "runtimeClasses": ["Kata"],
            "namespaces": ["kube.system"],
        },
    })));
    expect![[r#"
        apiVersion/kind: must be pod-security.admission.config.k8s.io/v1 PodSecurityConfiguration, not v1/ConfigMap
    "#]]
    .assert_eq(&show(json!({"apiVersion": "v1", "kind": "ConfigMap"})));
}
