//! Shared `check` helpers for the data-driven tests.
#![allow(dead_code, unreachable_pub)] // each test binary uses a subset

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bulwark_psa::{Config, Decision, Levels, evaluate_pod};
use expect_test::Expect;
use serde_json::{Value, json};

/// Namespace labels from `key=value` pairs, keys without the prefix.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("pod-security.kubernetes.io/{k}"), (*v).to_owned()))
        .collect()
}

/// Labels that enforce `level[:version]` and neither warn nor audit.
fn enforce_only(level_version: &str) -> BTreeMap<String, String> {
    let (level, version) = level_version
        .split_once(':')
        .unwrap_or((level_version, "latest"));
    labels(&[
        ("enforce", level),
        ("enforce-version", version),
        ("warn", "privileged"),
        ("audit", "privileged"),
    ])
}

/// Enforces `level[:version]` on a pod with this `spec`.
pub fn check(level_version: &str, spec: Value, expect: Expect) {
    check_at(
        level_version,
        json!({"metadata": {"name": "p"}, "spec": spec}),
        expect,
    );
}

/// Enforces `level[:version]` on a whole pod object.
pub fn check_at(level_version: &str, pod: Value, expect: Expect) {
    let config = Config {
        defaults: Levels::privileged(),
        ..Config::default()
    };
    let d = evaluate_pod(&config, "ns", &enforce_only(level_version), "alice", &pod);
    assert_eq!(d.allowed, d.forbidden_message.is_none());
    let shown = match d.forbidden_message {
        Some(m) => format!("denied: {m}"),
        None => "allowed".to_owned(),
    };
    expect.assert_eq(&shown);
}

/// Everything a decision says, one line each.
pub fn render(d: &Decision) -> String {
    let mut out = String::new();
    match &d.forbidden_message {
        None => out.push_str("allowed\n"),
        Some(m) => {
            let _ = writeln!(out, "denied: {m}");
        }
    }
    assert_eq!(d.allowed, d.forbidden_message.is_none());
    for w in &d.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for (k, v) in &d.audit_annotations {
        let _ = writeln!(out, "audit {k}: {v}");
    }
    out
}

/// A pod that passes every restricted control.
pub fn restricted_pod() -> Value {
    json!({
        "metadata": {"name": "p"},
        "spec": {
            "securityContext": {
                "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": "c",
                "image": "nginx",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                },
            }],
            "volumes": [
                {"name": "t", "emptyDir": {}},
                {"name": "s", "secret": {"secretName": "s"}},
                {"name": "p", "projected": {"sources": []}},
            ],
        },
    })
}
