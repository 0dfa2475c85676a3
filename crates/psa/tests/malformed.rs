//! Fuzz-ish: objects of any shape never panic any entry point.

use std::collections::BTreeMap;

use bulwark_psa::{
    Config, Exemptions, Level, LevelVersion, Levels, evaluate_namespace_update, evaluate_pod,
    evaluate_pod_update, evaluate_workload, pods_in_namespace_warnings,
};
use serde_json::{Value, json};

/// Values of every JSON type, including ones with the wrong shape for any
/// field they might land in.
fn odd_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(u64::MAX),
        json!(""),
        json!("\u{0}\n\"\\"),
        json!([]),
        json!([null, 1, "x", {}]),
        json!({}),
        json!({"type": 7, "name": [], "host": {}}),
    ]
}

/// Every field path a check reads, so each can be replaced by an odd value.
const PATHS: &[&[&str]] = &[
    &["metadata"],
    &["metadata", "annotations"],
    &["metadata", "ownerReferences"],
    &["spec"],
    &["spec", "hostNetwork"],
    &["spec", "hostUsers"],
    &["spec", "os"],
    &["spec", "runtimeClassName"],
    &["spec", "volumes"],
    &["spec", "securityContext"],
    &["spec", "securityContext", "sysctls"],
    &["spec", "securityContext", "seLinuxOptions"],
    &["spec", "securityContext", "seccompProfile"],
    &["spec", "securityContext", "appArmorProfile"],
    &["spec", "securityContext", "windowsOptions"],
    &["spec", "securityContext", "runAsUser"],
    &["spec", "containers"],
    &["spec", "initContainers"],
    &["spec", "ephemeralContainers"],
];

const CONTAINER_KEYS: &[&str] = &[
    "name",
    "image",
    "ports",
    "securityContext",
    "livenessProbe",
    "lifecycle",
];

fn set(object: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *object = value;
        return;
    };
    let mut cur = object;
    for key in parents {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = &mut cur[*key];
    }
    if !cur.is_object() {
        *cur = json!({});
    }
    cur[*last] = value;
}

fn every_entry_point(pod: &Value) {
    let config = Config {
        defaults: Levels::default(),
        exemptions: Exemptions {
            runtime_class_names: vec!["kata".into()],
            ..Exemptions::default()
        },
        kubernetes_minor: None,
    };
    let ns = BTreeMap::new();
    for level in [Level::Baseline, Level::Restricted] {
        let labels: BTreeMap<String, String> = [
            (
                "pod-security.kubernetes.io/enforce".to_owned(),
                level.to_string(),
            ),
            (
                "pod-security.kubernetes.io/enforce-version".to_owned(),
                "v1.18".to_owned(),
            ),
        ]
        .into();
        let _ = evaluate_pod(&config, "ns", &labels, "u", pod);
    }
    let _ = evaluate_pod(&config, "ns", &ns, "u", pod);
    let _ = evaluate_pod_update(&config, "ns", &ns, "u", pod, &json!({}));
    let _ = evaluate_pod_update(&config, "ns", &ns, "u", &json!({}), pod);
    for kind in [
        "Deployment",
        "CronJob",
        "PodTemplate",
        "ReplicationController",
    ] {
        let _ = evaluate_workload(
            &config,
            "ns",
            &ns,
            "u",
            &json!({"kind": kind, "spec": pod, "template": pod}),
        );
        let _ = evaluate_workload(
            &config,
            "ns",
            &ns,
            "u",
            &json!({"kind": kind, "spec": {"template": pod, "jobTemplate": {"spec": {"template": pod}}}}),
        );
    }
    let pods = [pod.clone(), pod.clone()];
    let _ = pods_in_namespace_warnings(
        &config,
        "ns",
        LevelVersion::latest(Level::Restricted),
        &pods,
    );
    let _ = evaluate_namespace_update(
        &config,
        "ns",
        &ns,
        &[(
            "pod-security.kubernetes.io/enforce".to_owned(),
            "restricted".to_owned(),
        )]
        .into(),
        &pods,
    );
}

#[test]
fn odd_values_anywhere_never_panic() {
    for value in odd_values() {
        every_entry_point(&value);
        for path in PATHS {
            let mut pod =
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
            set(&mut pod, path, value.clone());
            every_entry_point(&pod);
        }
        for key in CONTAINER_KEYS {
            for list in ["containers", "initContainers", "ephemeralContainers"] {
                let mut pod = json!({"spec": {(list): [{"name": "c"}, value.clone()]}});
                pod["spec"][list][0][*key] = value.clone();
                every_entry_point(&pod);
                let mut sc = json!({"spec": {(list): [{"name": "c", "securityContext": {}}]}});
                for field in [
                    "privileged",
                    "capabilities",
                    "procMount",
                    "seccompProfile",
                    "appArmorProfile",
                    "seLinuxOptions",
                    "runAsNonRoot",
                    "runAsUser",
                    "allowPrivilegeEscalation",
                    "windowsOptions",
                ] {
                    sc["spec"][list][0]["securityContext"][field] = value.clone();
                }
                every_entry_point(&sc);
            }
        }
    }
}

#[test]
fn deeply_odd_documents_never_panic() {
    // A small deterministic generator: nested values of every type.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    fn random_value(next: &mut dyn FnMut() -> u64, depth: u32) -> Value {
        const KEYS: &[&str] = &[
            "metadata",
            "spec",
            "containers",
            "securityContext",
            "capabilities",
            "add",
            "drop",
            "name",
            "volumes",
            "hostPath",
            "ports",
            "hostPort",
            "type",
            "sysctls",
            "annotations",
            "seccompProfile",
            "runAsUser",
            "livenessProbe",
            "httpGet",
            "host",
            "os",
        ];
        match (next() % if depth > 4 { 5 } else { 8 }) as u8 {
            0 => Value::Null,
            1 => json!(next().is_multiple_of(2)),
            2 => json!(next() as i64 % 100_000),
            3 => json!(KEYS[(next() % KEYS.len() as u64) as usize]),
            4 => json!("ALL"),
            5 | 6 => {
                let mut map = serde_json::Map::new();
                for _ in 0..next() % 5 {
                    map.insert(
                        KEYS[(next() % KEYS.len() as u64) as usize].to_owned(),
                        random_value(next, depth + 1),
                    );
                }
                Value::Object(map)
            }
            _ => Value::Array(
                (0..next() % 4)
                    .map(|_| random_value(next, depth + 1))
                    .collect(),
            ),
        }
    }
    for _ in 0..2000 {
        let doc = random_value(&mut next, 0);
        every_entry_point(&doc);
        every_entry_point(
            &json!({"spec": {"containers": [doc.clone()], "volumes": [doc.clone()], "securityContext": doc}}),
        );
    }
}
