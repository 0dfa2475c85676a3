//! One case per Baseline and Restricted control, passing and failing, each
//! failing case with upstream's exact message. Cases marked "upstream" carry
//! the expected detail from upstream's `policy/check_*_test.go`.

mod common;

use common::{check, check_at, restricted_pod};
use expect_test::expect;
use serde_json::json;

#[test]
fn baseline_allows_a_plain_pod() {
    check(
        "baseline",
        json!({"containers": [{"name": "c", "image": "nginx"}]}),
        expect![[r#"allowed"#]],
    );
}

#[test]
fn host_process() {
    check(
        "baseline",
        json!({
            "securityContext": {"windowsOptions": {"hostProcess": true}},
            "containers": [
                {"name": "a", "securityContext": {"windowsOptions": {"hostProcess": true}}},
                {"name": "b", "securityContext": {"windowsOptions": {"hostProcess": false}}},
            ],
        }),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": hostProcess (pod and container "a" must not set securityContext.windowsOptions.hostProcess=true)"#
        ]],
    );
}

#[test]
fn host_namespaces() {
    // upstream: `hostNetwork=true, hostPID=true, hostIPC=true`
    check(
        "baseline",
        json!({"hostIPC": true, "hostPID": true, "hostNetwork": true, "containers": [{"name": "c"}]}),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"#
        ]],
    );
    check(
        "baseline",
        json!({"hostNetwork": false, "containers": [{"name": "c"}]}),
        expect![[r#"allowed"#]],
    );
}

#[test]
fn privileged_in_every_kind_of_container() {
    check(
        "baseline",
        json!({
            "initContainers": [{"name": "init", "securityContext": {"privileged": true}}],
            "containers": [
                {"name": "a", "securityContext": {"privileged": false}},
                {"name": "b", "securityContext": {"privileged": true}},
            ],
            "ephemeralContainers": [{"name": "debug", "securityContext": {"privileged": true}}],
        }),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": privileged (containers "init", "b", "debug" must not set securityContext.privileged=true)"#
        ]],
    );
}

#[test]
fn baseline_capabilities() {
    // upstream: `containers "a", "b" must not include "BAR", "BAZ", "FOO" in securityContext.capabilities.add`
    check(
        "baseline",
        json!({"containers": [
            {"name": "a", "securityContext": {"capabilities": {"add": ["FOO", "BAR"]}}},
            {"name": "b", "securityContext": {"capabilities": {"add": ["BAR", "BAZ"]}}},
            {"name": "c", "securityContext": {"capabilities": {"add": ["CHOWN", "KILL", "NET_BIND_SERVICE"]}}},
        ]}),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": non-default capabilities (containers "a", "b" must not include "BAR", "BAZ", "FOO" in securityContext.capabilities.add)"#
        ]],
    );
}

#[test]
fn host_path_volumes() {
    // upstream: `volumes "a", "b"`
    check(
        "baseline",
        json!({"containers": [{"name": "c"}], "volumes": [
            {"name": "a", "hostPath": {"path": "/"}},
            {"name": "b", "hostPath": {"path": "/var/run/docker.sock"}},
            {"name": "c", "emptyDir": {}},
        ]}),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": hostPath volumes (volumes "a", "b")"#
        ]],
    );
}

#[test]
fn host_ports() {
    // upstream: `containers "b", "c" use hostPorts 10, 20, 30`
    check(
        "baseline",
        json!({"containers": [
            {"name": "a", "ports": [{"hostPort": 0}]},
            {"name": "b", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 20}]},
            {"name": "c", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 30}]},
        ]}),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": hostPort (containers "b", "c" use hostPorts 10, 20, 30)"#
        ]],
    );
    // upstream: `container "b" uses hostPort 20`
    check(
        "baseline",
        json!({"containers": [{"name": "a", "ports": [{"containerPort": 80}]}, {"name": "b", "ports": [{"hostPort": 20}]}]}),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": hostPort (container "b" uses hostPort 20)"#
        ]],
    );
}

#[test]
fn app_armor() {
    check(
        "baseline",
        json!({
            "securityContext": {"appArmorProfile": {"type": "Unconfined"}},
            "containers": [
                {"name": "a", "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}},
                {"name": "b", "securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}},
                {"name": "c", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
            ],
        }),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": forbidden AppArmor profile (pod and container "c" must not set AppArmor profile type to "Unconfined")"#
        ]],
    );
    check_at(
        "baseline",
        json!({
            "metadata": {"annotations": {
                "container.apparmor.security.beta.kubernetes.io/a": "unconfined",
                "container.apparmor.security.beta.kubernetes.io/b": "runtime/default",
                "container.apparmor.security.beta.kubernetes.io/c": "localhost/foo",
                "container.apparmor.security.beta.kubernetes.io/d": "",
                "container.apparmor.security.beta.kubernetes.io/e": "bad\"one",
            }},
            "spec": {"containers": [{"name": "a"}]},
        }),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": forbidden AppArmor profiles (annotations must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/a="unconfined"", "container.apparmor.security.beta.kubernetes.io/e="bad\"one"")"#
        ]],
    );
}

#[test]
fn selinux() {
    // upstream: `pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: types "bar", "foo"; user may not be set; role may not be set`
    check(
        "baseline",
        json!({
            "securityContext": {"seLinuxOptions": {"type": "foo", "user": "u", "role": "r"}},
            "containers": [
                {"name": "a", "securityContext": {"seLinuxOptions": {}}},
                {"name": "b", "securityContext": {"seLinuxOptions": {"type": "container_init_t"}}},
                {"name": "c", "securityContext": {"seLinuxOptions": {"type": "container_kvm_t"}}},
                {"name": "d", "securityContext": {"seLinuxOptions": {"type": "container_engine_t", "level": "s0:c1"}}},
                {"name": "e", "securityContext": {"seLinuxOptions": {"type": "bar"}}},
                {"name": "f", "securityContext": {"seLinuxOptions": {"user": "bar"}}},
                {"name": "g", "securityContext": {"seLinuxOptions": {"role": "baz"}}},
            ],
        }),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": seLinuxOptions (pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: types "bar", "foo"; user may not be set; role may not be set)"#
        ]],
    );
    // container_engine_t is allowed from v1.31 on.
    let engine = json!({"containers": [{"name": "d", "securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}]});
    check("baseline:v1.31", engine.clone(), expect![[r#"allowed"#]]);
    check(
        "baseline:v1.30",
        engine,
        expect![[
            r#"denied: violates PodSecurity "baseline:v1.30": seLinuxOptions (container "d" set forbidden securityContext.seLinuxOptions: type "container_engine_t")"#
        ]],
    );
}

#[test]
fn proc_mount() {
    let unmasked = json!({"containers": [
        {"name": "a", "securityContext": {"procMount": "Default"}},
        {"name": "b", "securityContext": {"procMount": "Unmasked"}},
    ]});
    check(
        "baseline",
        unmasked.clone(),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": procMount (container "b" must not set securityContext.procMount to "Unmasked")"#
        ]],
    );
    // From v1.35 baseline allows it in a user namespace; restricted never does.
    let mut in_userns = unmasked;
    in_userns["hostUsers"] = json!(false);
    check("baseline", in_userns.clone(), expect![[r#"allowed"#]]);
    check(
        "baseline:v1.34",
        in_userns,
        expect![[
            r#"denied: violates PodSecurity "baseline:v1.34": procMount (container "b" must not set securityContext.procMount to "Unmasked")"#
        ]],
    );
    let mut restricted = restricted_pod();
    restricted["spec"]["hostUsers"] = json!(false);
    restricted["spec"]["containers"][0]["securityContext"]["procMount"] = json!("Unmasked");
    check_at(
        "restricted",
        restricted,
        expect![[
            r#"denied: violates PodSecurity "restricted:latest": procMount (container "c" must not set securityContext.procMount to "Unmasked")"#
        ]],
    );
}

#[test]
fn seccomp_baseline() {
    check(
        "baseline",
        json!({
            "securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "containers": [
                {"name": "a", "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
                {"name": "b", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}},
                {"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
            ],
        }),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": seccompProfile (pod and container "c" must not set securityContext.seccompProfile.type to "Unconfined")"#
        ]],
    );
    check(
        "baseline",
        json!({"containers": [{"name": "a"}]}),
        expect![[r#"allowed"#]],
    );
    // Before v1.19, seccomp was configured by annotations.
    check_at(
        "baseline:v1.18",
        json!({
            "metadata": {"annotations": {
                "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
                "container.seccomp.security.alpha.kubernetes.io/a": "runtime/default",
                "container.seccomp.security.alpha.kubernetes.io/b": "unconfined",
                "container.seccomp.security.alpha.kubernetes.io/notacontainer": "unconfined",
            }},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        }),
        expect![[
            r#"denied: violates PodSecurity "baseline:v1.18": seccompProfile (forbidden annotations container.seccomp.security.alpha.kubernetes.io/b="unconfined", seccomp.security.alpha.kubernetes.io/pod="unconfined")"#
        ]],
    );
}

#[test]
fn sysctls_by_version() {
    let pod = json!({
        "securityContext": {"sysctls": [
            {"name": "kernel.shm_rmid_forced", "value": "0"},
            {"name": "net.ipv4.tcp_rmem", "value": "4096 87380 16777216"},
            {"name": "kernel.msgmax", "value": "1"},
        ]},
        "containers": [{"name": "a"}],
    });
    check(
        "baseline",
        pod.clone(),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": forbidden sysctls (kernel.msgmax)"#
        ]],
    );
    check(
        "baseline:v1.31",
        pod,
        expect![[
            r#"denied: violates PodSecurity "baseline:v1.31": forbidden sysctls (net.ipv4.tcp_rmem, kernel.msgmax)"#
        ]],
    );
    let reserved = json!({"securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_reserved_ports"}]}, "containers": [{"name": "a"}]});
    check("baseline:v1.27", reserved.clone(), expect![[r#"allowed"#]]);
    check(
        "baseline:v1.26",
        reserved,
        expect![[
            r#"denied: violates PodSecurity "baseline:v1.26": forbidden sysctls (net.ipv4.ip_local_reserved_ports)"#
        ]],
    );
    let keepalive = json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_keepalive_time"}, {"name": "net.ipv4.tcp_notsent_lowat"}]}, "containers": [{"name": "a"}]});
    check(
        "baseline:v1.29",
        keepalive.clone(),
        expect![[
            r#"denied: violates PodSecurity "baseline:v1.29": forbidden sysctls (net.ipv4.tcp_notsent_lowat)"#
        ]],
    );
    check("baseline:v1.37", keepalive, expect![[r#"allowed"#]]);
}

#[test]
fn probe_and_lifecycle_hosts() {
    // upstream: `container "a" uses probe or lifecycle hosts "127.0.0.1", "::1", "localhost"`
    let pod = json!({"containers": [{
        "name": "a",
        "livenessProbe": {"httpGet": {"host": "127.0.0.1", "port": 80}},
        "readinessProbe": {"tcpSocket": {"host": "::1", "port": 80}},
        "startupProbe": {"httpGet": {"host": "localhost", "port": 80}},
    }, {
        "name": "b",
        "lifecycle": {"preStop": {"httpGet": {"host": "localhost", "port": 80}}},
    }]});
    check(
        "baseline",
        pod.clone(),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": probe or lifecycle host (containers "a", "b" use probe or lifecycle hosts "127.0.0.1", "::1", "localhost")"#
        ]],
    );
    check("baseline:v1.33", pod, expect![[r#"allowed"#]]);
}

#[test]
fn restricted_allows_a_hardened_pod() {
    check_at("restricted", restricted_pod(), expect![[r#"allowed"#]]);
}

#[test]
fn restricted_names_every_failure_of_a_default_pod_in_order() {
    check(
        "restricted",
        json!({"containers": [{"name": "c", "image": "nginx"}]}),
        expect![[
            r#"denied: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
        ]],
    );
    // Baseline failures come first, then restricted ones.
    check(
        "restricted",
        json!({"hostNetwork": true, "containers": [{"name": "c", "securityContext": {"privileged": true, "runAsUser": 0}}],
               "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
        expect![[
            r#"denied: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true), privileged (container "c" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), restricted volume types (volume "h" uses restricted volume type "hostPath"), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), runAsUser=0 (container "c" must not set runAsUser=0), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
        ]],
    );
}

#[test]
fn restricted_volume_types() {
    let mut pod = restricted_pod();
    pod["spec"]["volumes"] = json!([
        {"name": "cm", "configMap": {"name": "x"}},
        {"name": "pvc", "persistentVolumeClaim": {"claimName": "x"}},
        {"name": "img", "image": {"reference": "x"}},
        {"name": "n", "nfs": {"server": "s", "path": "/"}},
        {"name": "g", "gitRepo": {"repository": "r"}},
        {"name": "h", "hostPath": {"path": "/"}},
        // No source (or only unknown ones) means emptyDir after defaulting.
        {"name": "u"},
        {"name": "future", "someNewSource": {}},
    ]);
    check_at(
        "restricted",
        pod,
        expect![[
            r#"denied: violates PodSecurity "restricted:latest": restricted volume types (volumes "n", "g", "h" use restricted volume types "gitRepo", "hostPath", "nfs")"#
        ]],
    );
}

#[test]
fn allow_privilege_escalation() {
    let mut pod = restricted_pod();
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    check_at(
        "restricted",
        pod.clone(),
        expect![[
            r#"denied: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false)"#
        ]],
    );
    // Not a control before v1.8.
    check_at("restricted:v1.7", pod, expect![[r#"allowed"#]]);
}

#[test]
fn run_as_non_root() {
    let mut pod = restricted_pod();
    pod["spec"]["securityContext"]["runAsNonRoot"] = json!(false);
    pod["spec"]["initContainers"] = json!([{"name": "i", "securityContext": {
        "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": false}}]);
    check_at(
        "restricted",
        pod,
        expect![[
            r#"denied: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod and container "i" must not set securityContext.runAsNonRoot=false)"#
        ]],
    );
    // Container-level true is enough when the pod says nothing.
    let mut pod = restricted_pod();
    pod["spec"]["securityContext"]
        .as_object_mut()
        .map(|sc| sc.remove("runAsNonRoot"));
    pod["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = json!(true);
    check_at("restricted", pod, expect![[r#"allowed"#]]);
}

#[test]
fn run_as_user() {
    let mut pod = restricted_pod();
    pod["spec"]["securityContext"]["runAsUser"] = json!(0);
    pod["spec"]["containers"][0]["securityContext"]["runAsUser"] = json!(0);
    check_at(
        "restricted",
        pod.clone(),
        expect![[
            r#"denied: violates PodSecurity "restricted:latest": runAsUser=0 (pod and container "c" must not set runAsUser=0)"#
        ]],
    );
    check_at("restricted:v1.22", pod.clone(), expect![[r#"allowed"#]]);
    // A pod in a user namespace may map root (v1.35+).
    pod["spec"]["hostUsers"] = json!(false);
    check_at("restricted", pod.clone(), expect![[r#"allowed"#]]);
    let mut pod = restricted_pod();
    pod["spec"]["securityContext"]["runAsUser"] = json!(1000);
    check_at("restricted", pod, expect![[r#"allowed"#]]);
}

#[test]
fn seccomp_restricted() {
    let mut pod = restricted_pod();
    pod["spec"]["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"});
    check_at(
        "restricted",
        pod,
        expect![[
            r#"denied: violates PodSecurity "restricted:latest": seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#
        ]],
    );
    // Container-level profiles suffice without a pod-level one.
    let mut pod = restricted_pod();
    pod["spec"]["securityContext"]
        .as_object_mut()
        .map(|sc| sc.remove("seccompProfile"));
    pod["spec"]["containers"][0]["securityContext"]["seccompProfile"] =
        json!({"type": "Localhost", "localhostProfile": "p.json"});
    check_at("restricted", pod.clone(), expect![[r#"allowed"#]]);
    pod["spec"]["initContainers"] = json!([{"name": "i", "securityContext": {
        "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]);
    check_at(
        "restricted",
        pod,
        expect![[
            r#"denied: violates PodSecurity "restricted:latest": seccompProfile (pod or container "i" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
        ]],
    );
}

#[test]
fn restricted_capabilities() {
    // upstream: `containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add`
    let mut pod = restricted_pod();
    pod["spec"]["containers"] = json!([
        {"name": "a", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add": ["FOO", "BAR"]}}},
        {"name": "b", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add": ["BAR", "BAZ"], "drop": ["NET_RAW"]}}},
        {"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL", "FOO"]}}},
        {"name": "d", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}}},
    ]);
    check_at(
        "restricted",
        pod.clone(),
        expect![[
            r#"denied: violates PodSecurity "restricted:latest": unrestricted capabilities (containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add)"#
        ]],
    );
    // Before v1.22 restricted used the baseline capability check.
    check_at(
        "restricted:v1.21",
        pod,
        expect![[
            r#"denied: violates PodSecurity "restricted:v1.21": non-default capabilities (containers "a", "b" must not include "BAR", "BAZ", "FOO" in securityContext.capabilities.add)"#
        ]],
    );
}

#[test]
fn windows_pods_skip_linux_only_restricted_controls() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {
        "os": {"name": "windows"},
        "securityContext": {"runAsNonRoot": true},
        "containers": [{"name": "c"}],
    }});
    check_at("restricted", pod.clone(), expect![[r#"allowed"#]]);
    check_at(
        "restricted:v1.24",
        pod,
        expect![[
            r#"denied: violates PodSecurity "restricted:v1.24": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
        ]],
    );
}

#[test]
fn versions_newer_than_known_evaluate_as_latest() {
    check(
        "baseline:v1.99",
        json!({"containers": [{"name": "c", "securityContext": {"privileged": true}}]}),
        expect![[
            r#"denied: violates PodSecurity "baseline:v1.99": privileged (container "c" must not set securityContext.privileged=true)"#
        ]],
    );
    check(
        "restricted:v1.0",
        json!({"containers": [{"name": "c"}]}),
        expect![[
            r#"denied: violates PodSecurity "restricted:v1.0": runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true)"#
        ]],
    );
}

#[test]
fn restricted_before_v1_19_checks_seccomp_annotations_not_fields() {
    let mut pod = restricted_pod();
    pod["spec"]["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"});
    check_at("restricted:v1.18", pod.clone(), expect![[r#"allowed"#]]);
    pod["metadata"]["annotations"] =
        json!({"seccomp.security.alpha.kubernetes.io/pod": "docker/default"});
    check_at("restricted:v1.18", pod.clone(), expect![[r#"allowed"#]]);
    pod["metadata"]["annotations"] =
        json!({"container.seccomp.security.alpha.kubernetes.io/c": "unconfined"});
    check_at(
        "restricted:v1.18",
        pod,
        expect![[
            r#"denied: violates PodSecurity "restricted:v1.18": seccompProfile (forbidden annotation container.seccomp.security.alpha.kubernetes.io/c="unconfined")"#
        ]],
    );
}

#[test]
fn app_armor_fields_and_annotations_together() {
    check_at(
        "baseline",
        json!({
            "metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/b": "unconfined"}},
            "spec": {"containers": [
                {"name": "a", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
                {"name": "b", "securityContext": {"appArmorProfile": {}}},
            ]},
        }),
        expect![[
            r#"denied: violates PodSecurity "baseline:latest": forbidden AppArmor profiles (containers "a", "b" and annotation must not set AppArmor profile type to "", "Unconfined", "container.apparmor.security.beta.kubernetes.io/b="unconfined"")"#
        ]],
    );
}
