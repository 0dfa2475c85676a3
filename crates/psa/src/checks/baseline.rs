//! The Baseline controls (upstream `policy/check_*.go`, level baseline).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::pod::{PodView, array, boolean, field, path, string};
use crate::render::{Violation, containers, go_quote, join_quote, pluralize};

/// `setters must not set …`: "pod", then `containers "a"`, joined by " and ".
fn setters(pod_bad: bool, bad_containers: &[&str]) -> Vec<String> {
    let mut setters = Vec::new();
    if pod_bad {
        setters.push("pod".to_owned());
    }
    if !bad_containers.is_empty() {
        setters.push(containers(bad_containers));
    }
    setters
}

pub(super) fn windows_host_process(pod: &PodView<'_>) -> Option<Violation> {
    let host_process = |sc: Option<&Value>| {
        sc.and_then(|sc| path(sc, &["windowsOptions", "hostProcess"]))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let bad: Vec<&str> = pod
        .containers()
        .filter(|c| host_process(c.security_context()))
        .map(|c| c.name)
        .collect();
    let setters = setters(host_process(pod.security_context()), &bad);
    (!setters.is_empty()).then(|| {
        Violation::new(
            "hostProcess",
            format!(
                "{} must not set securityContext.windowsOptions.hostProcess=true",
                setters.join(" and ")
            ),
        )
    })
}

pub(super) fn host_namespaces(pod: &PodView<'_>) -> Option<Violation> {
    let set: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|key| boolean(pod.spec, key) == Some(true))
        .map(|key| format!("{key}=true"))
        .collect();
    (!set.is_empty()).then(|| Violation::new("host namespaces", set.join(", ")))
}

pub(super) fn privileged(pod: &PodView<'_>) -> Option<Violation> {
    let bad: Vec<&str> = pod
        .containers()
        .filter(|c| c.sc("privileged").and_then(Value::as_bool) == Some(true))
        .map(|c| c.name)
        .collect();
    (!bad.is_empty()).then(|| {
        Violation::new(
            "privileged",
            format!(
                "{} must not set securityContext.privileged=true",
                containers(&bad)
            ),
        )
    })
}

const CAPABILITIES_ALLOWED: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

pub(super) fn capabilities(pod: &PodView<'_>) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut forbidden = BTreeSet::new();
    for c in pod.containers() {
        let Some(caps) = c.sc("capabilities") else {
            continue;
        };
        let mut valid = true;
        for cap in array(caps, "add") {
            let cap = cap.as_str().unwrap_or("");
            if !CAPABILITIES_ALLOWED.contains(&cap) {
                valid = false;
                forbidden.insert(cap);
            }
        }
        if !valid {
            bad.push(c.name);
        }
    }
    (!bad.is_empty()).then(|| {
        Violation::new(
            "non-default capabilities",
            format!(
                "{} must not include {} in securityContext.capabilities.add",
                containers(&bad),
                join_quote(&forbidden)
            ),
        )
    })
}

pub(super) fn host_path_volumes(pod: &PodView<'_>) -> Option<Violation> {
    let bad: Vec<&str> = array(pod.spec, "volumes")
        .iter()
        .filter(|v| field(v, "hostPath").is_some())
        .map(|v| string(v, "name"))
        .collect();
    (!bad.is_empty()).then(|| {
        Violation::new(
            "hostPath volumes",
            format!(
                "{} {}",
                pluralize("volume", "volumes", bad.len()),
                join_quote(&bad)
            ),
        )
    })
}

pub(super) fn host_ports(pod: &PodView<'_>) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for c in pod.containers() {
        let mut valid = true;
        for port in array(c.value, "ports") {
            match port.get("hostPort").and_then(Value::as_i64) {
                None | Some(0) => {}
                Some(p) => {
                    valid = false;
                    // Go's sets.String sorts the decimal text, not the number.
                    ports.insert(p.to_string());
                }
            }
        }
        if !valid {
            bad.push(c.name);
        }
    }
    (!bad.is_empty()).then(|| {
        let ports: Vec<String> = ports.into_iter().collect();
        Violation::new(
            "hostPort",
            format!(
                "{} {} {} {}",
                containers(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize("hostPort", "hostPorts", ports.len()),
                ports.join(", ")
            ),
        )
    })
}

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

pub(super) fn app_armor_profile(pod: &PodView<'_>) -> Option<Violation> {
    let allowed_type = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let mut bad_values = BTreeSet::new();
    let mut pod_bad = false;
    if let Some(t) = app_armor_type(pod.security_context())
        && !allowed_type(t)
    {
        pod_bad = true;
        bad_values.insert(t.to_owned());
    }
    let mut bad = Vec::new();
    for c in pod.containers() {
        if let Some(t) = app_armor_type(c.security_context())
            && !allowed_type(t)
        {
            bad.push(c.name);
            bad_values.insert(t.to_owned());
        }
    }
    let mut setters = setters(pod_bad, &bad);
    let mut bad_value_list: Vec<String> = bad_values.into_iter().collect();
    let mut annotations: Vec<String> = pod
        .annotations()
        .filter(|(k, v)| {
            k.starts_with(APPARMOR_ANNOTATION_PREFIX)
                && !(v.is_empty() || *v == "runtime/default" || v.starts_with("localhost/"))
        })
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(pluralize("annotation", "annotations", annotations.len()).to_owned());
        bad_value_list.append(&mut annotations);
    }
    (!setters.is_empty()).then(|| {
        Violation::new(
            pluralize(
                "forbidden AppArmor profile",
                "forbidden AppArmor profiles",
                bad_value_list.len(),
            ),
            format!(
                "{} must not set AppArmor profile type to {}",
                setters.join(" and "),
                join_quote(&bad_value_list)
            ),
        )
    })
}

fn app_armor_type(sc: Option<&Value>) -> Option<&str> {
    sc.and_then(|sc| field(sc, "appArmorProfile"))
        .map(|p| string(p, "type"))
}

const SELINUX_TYPES_1_0: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t"];
const SELINUX_TYPES_1_31: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

pub(super) fn selinux_options_1_0(pod: &PodView<'_>) -> Option<Violation> {
    selinux_options(pod, SELINUX_TYPES_1_0)
}

pub(super) fn selinux_options_1_31(pod: &PodView<'_>) -> Option<Violation> {
    selinux_options(pod, SELINUX_TYPES_1_31)
}

fn selinux_options(pod: &PodView<'_>, allowed_types: &[&str]) -> Option<Violation> {
    let mut bad_types = BTreeSet::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut valid = |sc: Option<&Value>| {
        let Some(opts) = sc.and_then(|sc| field(sc, "seLinuxOptions")) else {
            return true;
        };
        let mut ok = true;
        let t = string(opts, "type");
        if !allowed_types.contains(&t) {
            ok = false;
            bad_types.insert(t.to_owned());
        }
        if !string(opts, "user").is_empty() {
            ok = false;
            set_user = true;
        }
        if !string(opts, "role").is_empty() {
            ok = false;
            set_role = true;
        }
        ok
    };
    let pod_bad = !valid(pod.security_context());
    let bad: Vec<&str> = pod
        .containers()
        .filter(|c| !valid(c.security_context()))
        .map(|c| c.name)
        .collect();
    let setters = setters(pod_bad, &bad);
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        data.push(format!(
            "{} {}",
            pluralize("type", "types", bad_types.len()),
            join_quote(&bad_types)
        ));
    }
    if set_user {
        data.push("user may not be set".to_owned());
    }
    if set_role {
        data.push("role may not be set".to_owned());
    }
    Some(Violation::new(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    ))
}

pub(super) fn proc_mount(pod: &PodView<'_>) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for c in pod.containers() {
        let Some(t) = c.sc("procMount") else { continue };
        let t = t.as_str().unwrap_or("");
        if t != "Default" {
            bad.push(c.name);
            types.insert(t);
        }
    }
    (!bad.is_empty()).then(|| {
        Violation::new(
            "procMount",
            format!(
                "{} must not set securityContext.procMount to {}",
                containers(&bad),
                join_quote(&types)
            ),
        )
    })
}

pub(super) fn proc_mount_unless_user_namespace(pod: &PodView<'_>) -> Option<Violation> {
    if pod.in_user_namespace() {
        return None;
    }
    proc_mount(pod)
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// Before v1.19 seccomp was set by annotations only.
pub(super) fn seccomp_annotations(pod: &PodView<'_>) -> Option<Violation> {
    let valid =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let mut forbidden = BTreeSet::new();
    if let Some(v) = pod.annotation(SECCOMP_POD_ANNOTATION)
        && !valid(v)
    {
        forbidden.insert(format!("{SECCOMP_POD_ANNOTATION}={}", go_quote(v)));
    }
    for c in pod.containers() {
        let key = format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", c.name);
        if let Some(v) = pod.annotation(&key)
            && !valid(v)
        {
            forbidden.insert(format!("{key}={}", go_quote(v)));
        }
    }
    (!forbidden.is_empty()).then(|| {
        let list: Vec<String> = forbidden.iter().cloned().collect();
        Violation::new(
            "seccompProfile",
            format!(
                "forbidden {} {}",
                pluralize("annotation", "annotations", forbidden.len()),
                list.join(", ")
            ),
        )
    })
}

/// `seccompProfile.type`, when a `seccompProfile` is set.
pub(super) fn seccomp_type(sc: Option<&Value>) -> Option<&str> {
    sc.and_then(|sc| field(sc, "seccompProfile"))
        .map(|p| string(p, "type"))
}

pub(super) fn valid_seccomp(t: &str) -> bool {
    t == "Localhost" || t == "RuntimeDefault"
}

pub(super) fn seccomp_profile(pod: &PodView<'_>) -> Option<Violation> {
    let mut bad_values = BTreeSet::new();
    let mut pod_bad = false;
    if let Some(t) = seccomp_type(pod.security_context())
        && !valid_seccomp(t)
    {
        pod_bad = true;
        bad_values.insert(t);
    }
    let mut bad = Vec::new();
    for c in pod.containers() {
        if let Some(t) = seccomp_type(c.security_context())
            && !valid_seccomp(t)
        {
            bad.push(c.name);
            bad_values.insert(t);
        }
    }
    let setters = setters(pod_bad, &bad);
    (!setters.is_empty()).then(|| seccomp_violation(&setters, &bad_values))
}

pub(super) fn seccomp_violation(setters: &[String], bad_values: &BTreeSet<&str>) -> Violation {
    Violation::new(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(bad_values)
        ),
    )
}

const SYSCTLS_1_0: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];
const SYSCTLS_1_27: &[&str] = &["net.ipv4.ip_local_reserved_ports"];
const SYSCTLS_1_29: &[&str] = &[
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SYSCTLS_1_32: &[&str] = &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];
const SYSCTLS_1_37: &[&str] = &[
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
];

pub(super) fn sysctls_1_0(pod: &PodView<'_>) -> Option<Violation> {
    sysctls(pod, &[SYSCTLS_1_0])
}
pub(super) fn sysctls_1_27(pod: &PodView<'_>) -> Option<Violation> {
    sysctls(pod, &[SYSCTLS_1_0, SYSCTLS_1_27])
}
pub(super) fn sysctls_1_29(pod: &PodView<'_>) -> Option<Violation> {
    sysctls(pod, &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29])
}
pub(super) fn sysctls_1_32(pod: &PodView<'_>) -> Option<Violation> {
    sysctls(
        pod,
        &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29, SYSCTLS_1_32],
    )
}
pub(super) fn sysctls_1_37(pod: &PodView<'_>) -> Option<Violation> {
    sysctls(
        pod,
        &[
            SYSCTLS_1_0,
            SYSCTLS_1_27,
            SYSCTLS_1_29,
            SYSCTLS_1_32,
            SYSCTLS_1_37,
        ],
    )
}

fn sysctls(pod: &PodView<'_>, allowed: &[&[&str]]) -> Option<Violation> {
    let sc = pod.security_context()?;
    let forbidden: Vec<&str> = array(sc, "sysctls")
        .iter()
        .map(|s| string(s, "name"))
        .filter(|name| !allowed.iter().any(|set| set.contains(name)))
        .collect();
    (!forbidden.is_empty()).then(|| Violation::new("forbidden sysctls", forbidden.join(", ")))
}

pub(super) fn host_probes_and_lifecycle(pod: &PodView<'_>) -> Option<Violation> {
    let mut bad = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for c in pod.containers() {
        let handlers = ["livenessProbe", "readinessProbe", "startupProbe"]
            .into_iter()
            .filter_map(|key| field(c.value, key))
            .chain(
                ["postStart", "preStop"]
                    .into_iter()
                    .filter_map(|key| path(c.value, &["lifecycle", key])),
            );
        for handler in handlers {
            for action in ["httpGet", "tcpSocket"] {
                let host = field(handler, action).map_or("", |a| string(a, "host"));
                if !host.is_empty() {
                    bad.insert(c.name);
                    hosts.insert(host);
                }
            }
        }
    }
    (!bad.is_empty()).then(|| {
        Violation::new(
            "probe or lifecycle host",
            format!(
                "{} {} {} {} {}",
                pluralize("container", "containers", bad.len()),
                join_quote(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize(
                    "probe or lifecycle host",
                    "probe or lifecycle hosts",
                    hosts.len()
                ),
                join_quote(&hosts)
            ),
        )
    })
}
