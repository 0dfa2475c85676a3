//! The Restricted controls (upstream `policy/check_*.go`, level restricted).

use std::collections::BTreeSet;

use serde_json::Value;

use super::baseline::{seccomp_type, seccomp_violation, valid_seccomp};
use crate::pod::{PodView, array, field, string};
use crate::render::{Violation, containers, join_quote, pluralize};

pub(super) fn allow_privilege_escalation(pod: &PodView<'_>) -> Option<Violation> {
    let bad: Vec<&str> = pod
        .containers()
        .filter(|c| c.sc("allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false))
        .map(|c| c.name)
        .collect();
    (!bad.is_empty()).then(|| {
        Violation::new(
            "allowPrivilegeEscalation != false",
            format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                containers(&bad)
            ),
        )
    })
}

pub(super) fn allow_privilege_escalation_unless_windows(pod: &PodView<'_>) -> Option<Violation> {
    if pod.is_windows() {
        return None;
    }
    allow_privilege_escalation(pod)
}

pub(super) fn capabilities(pod: &PodView<'_>) -> Option<Violation> {
    let mut missing_drop_all = Vec::new();
    let mut adding_forbidden = Vec::new();
    let mut forbidden = BTreeSet::new();
    for c in pod.containers() {
        let Some(caps) = c.sc("capabilities") else {
            missing_drop_all.push(c.name);
            continue;
        };
        if !array(caps, "drop")
            .iter()
            .any(|d| d.as_str() == Some("ALL"))
        {
            missing_drop_all.push(c.name);
        }
        let mut added_forbidden = false;
        for cap in array(caps, "add") {
            let cap = cap.as_str().unwrap_or("");
            if cap != "NET_BIND_SERVICE" {
                added_forbidden = true;
                forbidden.insert(cap);
            }
        }
        if added_forbidden {
            adding_forbidden.push(c.name);
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            r#"{} must set securityContext.capabilities.drop=["ALL"]"#,
            containers(&missing_drop_all)
        ));
    }
    if !adding_forbidden.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers(&adding_forbidden),
            join_quote(&forbidden)
        ));
    }
    (!details.is_empty()).then(|| Violation::new("unrestricted capabilities", details.join("; ")))
}

pub(super) fn capabilities_unless_windows(pod: &PodView<'_>) -> Option<Violation> {
    if pod.is_windows() {
        return None;
    }
    capabilities(pod)
}

/// Volume sources the restricted level allows.
const ALLOWED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Volume sources named in the message, in upstream's order of precedence.
const NAMED_VOLUMES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

pub(super) fn volumes(pod: &PodView<'_>) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for volume in array(pod.spec, "volumes") {
        if ALLOWED_VOLUMES.iter().any(|k| field(volume, k).is_some()) {
            continue;
        }
        // A volume with no source at all is defaulted to emptyDir before
        // admission sees it, upstream; treat it so even if the caller has
        // not defaulted. Upstream's "unknown" is therefore unreachable.
        let Some(kind) = NAMED_VOLUMES
            .iter()
            .find(|k| field(volume, k).is_some())
            .copied()
        else {
            continue;
        };
        bad.push(string(volume, "name"));
        types.insert(kind);
    }
    (!bad.is_empty()).then(|| {
        Violation::new(
            "restricted volume types",
            format!(
                "{} {} {} {} {}",
                pluralize("volume", "volumes", bad.len()),
                join_quote(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize(
                    "restricted volume type",
                    "restricted volume types",
                    types.len()
                ),
                join_quote(&types)
            ),
        )
    })
}

pub(super) fn run_as_non_root(pod: &PodView<'_>) -> Option<Violation> {
    let mut pod_bad = false;
    let mut pod_non_root = false;
    match pod
        .security_context()
        .and_then(|sc| field(sc, "runAsNonRoot"))
        .and_then(Value::as_bool)
    {
        Some(false) => pod_bad = true,
        Some(true) => pod_non_root = true,
        None => {}
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in pod.containers() {
        match c.sc("runAsNonRoot").and_then(Value::as_bool) {
            Some(false) => explicit.push(c.name),
            Some(true) => {}
            None if !pod_non_root => implicit.push(c.name),
            None => {}
        }
    }
    let mut setters = Vec::new();
    if pod_bad {
        setters.push("pod".to_owned());
    }
    if !explicit.is_empty() {
        setters.push(containers(&explicit));
    }
    if !setters.is_empty() {
        return Some(Violation::new(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        ));
    }
    (!implicit.is_empty()).then(|| {
        Violation::new(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers(&implicit)
            ),
        )
    })
}

pub(super) fn run_as_non_root_unless_user_namespace(pod: &PodView<'_>) -> Option<Violation> {
    if pod.in_user_namespace() {
        return None;
    }
    run_as_non_root(pod)
}

pub(super) fn run_as_user(pod: &PodView<'_>) -> Option<Violation> {
    let root = |sc: Option<&Value>| {
        sc.and_then(|sc| field(sc, "runAsUser"))
            .and_then(Value::as_i64)
            == Some(0)
    };
    let mut setters = Vec::new();
    if root(pod.security_context()) {
        setters.push("pod".to_owned());
    }
    let bad: Vec<&str> = pod
        .containers()
        .filter(|c| root(c.security_context()))
        .map(|c| c.name)
        .collect();
    if !bad.is_empty() {
        setters.push(containers(&bad));
    }
    (!setters.is_empty()).then(|| {
        Violation::new(
            "runAsUser=0",
            format!("{} must not set runAsUser=0", setters.join(" and ")),
        )
    })
}

pub(super) fn run_as_user_unless_user_namespace(pod: &PodView<'_>) -> Option<Violation> {
    if pod.in_user_namespace() {
        return None;
    }
    run_as_user(pod)
}

pub(super) fn seccomp_profile(pod: &PodView<'_>) -> Option<Violation> {
    let mut bad_values = BTreeSet::new();
    let mut pod_bad = false;
    let mut pod_set = false;
    if let Some(t) = seccomp_type(pod.security_context()) {
        if valid_seccomp(t) {
            pod_set = true;
        } else {
            pod_bad = true;
            bad_values.insert(t);
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in pod.containers() {
        match seccomp_type(c.security_context()) {
            Some(t) if !valid_seccomp(t) => {
                explicit.push(c.name);
                bad_values.insert(t);
            }
            Some(_) => {}
            None if !pod_set => implicit.push(c.name),
            None => {}
        }
    }
    let mut setters = Vec::new();
    if pod_bad {
        setters.push("pod".to_owned());
    }
    if !explicit.is_empty() {
        setters.push(containers(&explicit));
    }
    if !setters.is_empty() {
        return Some(seccomp_violation(&setters, &bad_values));
    }
    (!implicit.is_empty()).then(|| {
        Violation::new(
            "seccompProfile",
            format!(
                r#"pod or {} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#,
                containers(&implicit)
            ),
        )
    })
}

pub(super) fn seccomp_profile_unless_windows(pod: &PodView<'_>) -> Option<Violation> {
    if pod.is_windows() {
        return None;
    }
    seccomp_profile(pod)
}
