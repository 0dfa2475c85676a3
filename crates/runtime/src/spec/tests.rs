//! Snapshot tests of rendered specs (`UPDATE_EXPECT=1` refreshes them).
use super::*;
use crate::config::{Mount, Resources, SecurityConfig};
use expect_test::{Expect, expect};

fn busybox() -> RunConfig {
    RunConfig {
        env: Some(vec!["PATH=/bin".into(), "LANG=C".into()]),
        cmd: Some(vec!["sh".into()]),
        ..RunConfig::default()
    }
}

/// Renders and trims the bulky but fixed parts so the snapshot shows what varies.
fn check(cfg: ContainerConfig, expect: Expect) {
    let actual = match plan_process(&cfg, &busybox(), &[])
        .and_then(|plan| render(&cfg, &plan, Path::new("/run/c/rootfs")))
    {
        Ok(mut spec) => {
            if let Some(s) = spec["linux"].get_mut("seccomp") {
                *s = json!(format!(
                    "<{} rules>",
                    s["syscalls"].as_array().map_or(0, Vec::len)
                ));
            }
            for key in ["maskedPaths", "readonlyPaths"] {
                if let Some(p) = spec["linux"].get_mut(key) {
                    *p = json!(format!("<{} paths>", p.as_array().map_or(0, Vec::len)));
                }
            }
            let mounts = spec["mounts"].as_array_mut().expect("mounts");
            mounts.retain(|m| m["type"] == "bind" || m["destination"] == "/sys");
            serde_json::to_string_pretty(&spec).expect("json")
        }
        Err(e) => format!("error: {e}"),
    };
    expect.assert_eq(&actual);
}

fn cfg(id: &str) -> ContainerConfig {
    ContainerConfig {
        id: id.into(),
        image: "busybox".into(),
        ..ContainerConfig::default()
    }
}

#[test]
fn default_container_is_hardened() {
    check(
        cfg("web-1"),
        expect![[r#"
            {
              "annotations": {
                "io.bulwark.log.max-bytes": "10485760",
                "io.bulwark.log.max-files": "5"
              },
              "hostname": "web-1",
              "linux": {
                "cgroupsPath": "/bulwark/web-1",
                "maskedPaths": "<11 paths>",
                "namespaces": [
                  {
                    "type": "pid"
                  },
                  {
                    "type": "ipc"
                  },
                  {
                    "type": "uts"
                  },
                  {
                    "type": "mount"
                  },
                  {
                    "type": "network"
                  },
                  {
                    "type": "cgroup"
                  }
                ],
                "readonlyPaths": "<5 paths>",
                "resources": {
                  "devices": [
                    {
                      "access": "rwm",
                      "allow": false
                    }
                  ]
                },
                "seccomp": "<9 rules>"
              },
              "mounts": [
                {
                  "destination": "/sys",
                  "options": [
                    "nosuid",
                    "noexec",
                    "nodev",
                    "ro"
                  ],
                  "source": "sysfs",
                  "type": "sysfs"
                }
              ],
              "ociVersion": "1.0.2",
              "process": {
                "args": [
                  "sh"
                ],
                "capabilities": {
                  "bounding": [
                    "CAP_CHOWN",
                    "CAP_DAC_OVERRIDE",
                    "CAP_FSETID",
                    "CAP_FOWNER",
                    "CAP_MKNOD",
                    "CAP_NET_RAW",
                    "CAP_SETGID",
                    "CAP_SETUID",
                    "CAP_SETFCAP",
                    "CAP_SETPCAP",
                    "CAP_NET_BIND_SERVICE",
                    "CAP_SYS_CHROOT",
                    "CAP_KILL",
                    "CAP_AUDIT_WRITE"
                  ],
                  "effective": [
                    "CAP_CHOWN",
                    "CAP_DAC_OVERRIDE",
                    "CAP_FSETID",
                    "CAP_FOWNER",
                    "CAP_MKNOD",
                    "CAP_NET_RAW",
                    "CAP_SETGID",
                    "CAP_SETUID",
                    "CAP_SETFCAP",
                    "CAP_SETPCAP",
                    "CAP_NET_BIND_SERVICE",
                    "CAP_SYS_CHROOT",
                    "CAP_KILL",
                    "CAP_AUDIT_WRITE"
                  ],
                  "permitted": [
                    "CAP_CHOWN",
                    "CAP_DAC_OVERRIDE",
                    "CAP_FSETID",
                    "CAP_FOWNER",
                    "CAP_MKNOD",
                    "CAP_NET_RAW",
                    "CAP_SETGID",
                    "CAP_SETUID",
                    "CAP_SETFCAP",
                    "CAP_SETPCAP",
                    "CAP_NET_BIND_SERVICE",
                    "CAP_SYS_CHROOT",
                    "CAP_KILL",
                    "CAP_AUDIT_WRITE"
                  ]
                },
                "cwd": "/",
                "env": [
                  "PATH=/bin",
                  "HOSTNAME=web-1",
                  "LANG=C"
                ],
                "noNewPrivileges": true,
                "terminal": false,
                "user": {
                  "gid": 0,
                  "uid": 0
                }
              },
              "root": {
                "path": "/run/c/rootfs",
                "readonly": false
              }
            }"#]],
    );
}

#[test]
fn limits_user_mounts_and_capability_changes() {
    let mut c = cfg("db");
    c.command = Some(vec!["/bin/sleep".into()]);
    c.args = Some(vec!["10".into()]);
    c.env = vec![("PATH".into(), "/usr/bin".into()), ("A".into(), "1".into())];
    c.working_dir = Some("/data".into());
    c.mounts = vec![Mount {
        source: "/srv/data".into(),
        destination: "/data".into(),
        read_only: true,
    }];
    c.resources = Resources {
        memory_limit_bytes: Some(64 << 20),
        pids_limit: Some(32),
        cpu_shares: Some(512),
        cpu_quota_us: Some(50_000),
        cpu_period_us: None,
    };
    c.security = SecurityConfig {
        run_as_user: Some(1000),
        run_as_group: Some(1000),
        supplemental_groups: vec![5],
        read_only_root_filesystem: true,
        capabilities_drop: vec!["ALL".into()],
        capabilities_add: vec!["net_bind_service".into()],
        seccomp: SeccompProfile::Unconfined,
        ..SecurityConfig::default()
    };
    c.join_namespaces = vec![(NamespaceKind::Network, "/proc/42/ns/net".into())];
    c.cgroup_parent = Some("/bulwark/pod-abc/".into());
    check(
        c,
        expect![[r#"
            {
              "annotations": {
                "io.bulwark.log.max-bytes": "10485760",
                "io.bulwark.log.max-files": "5"
              },
              "hostname": "db",
              "linux": {
                "cgroupsPath": "/bulwark/pod-abc/db",
                "maskedPaths": "<11 paths>",
                "namespaces": [
                  {
                    "type": "pid"
                  },
                  {
                    "type": "ipc"
                  },
                  {
                    "type": "uts"
                  },
                  {
                    "type": "mount"
                  },
                  {
                    "path": "/proc/42/ns/net",
                    "type": "network"
                  },
                  {
                    "type": "cgroup"
                  }
                ],
                "readonlyPaths": "<5 paths>",
                "resources": {
                  "cpu": {
                    "period": 100000,
                    "quota": 50000,
                    "shares": 512
                  },
                  "devices": [
                    {
                      "access": "rwm",
                      "allow": false
                    }
                  ],
                  "memory": {
                    "limit": 67108864,
                    "swap": 67108864
                  },
                  "pids": {
                    "limit": 32
                  }
                }
              },
              "mounts": [
                {
                  "destination": "/sys",
                  "options": [
                    "nosuid",
                    "noexec",
                    "nodev",
                    "ro"
                  ],
                  "source": "sysfs",
                  "type": "sysfs"
                },
                {
                  "destination": "/data",
                  "options": [
                    "rbind",
                    "rprivate",
                    "nosuid",
                    "nodev",
                    "ro"
                  ],
                  "source": "/srv/data",
                  "type": "bind"
                }
              ],
              "ociVersion": "1.0.2",
              "process": {
                "args": [
                  "/bin/sleep",
                  "10"
                ],
                "capabilities": {
                  "bounding": [
                    "CAP_NET_BIND_SERVICE"
                  ],
                  "effective": [
                    "CAP_NET_BIND_SERVICE"
                  ],
                  "permitted": [
                    "CAP_NET_BIND_SERVICE"
                  ]
                },
                "cwd": "/data",
                "env": [
                  "PATH=/usr/bin",
                  "HOSTNAME=db",
                  "LANG=C",
                  "A=1"
                ],
                "noNewPrivileges": true,
                "terminal": false,
                "user": {
                  "additionalGids": [
                    5
                  ],
                  "gid": 1000,
                  "uid": 1000
                }
              },
              "root": {
                "path": "/run/c/rootfs",
                "readonly": true
              }
            }"#]],
    );
}

#[test]
fn privileged_gets_everything_only_when_asked() {
    let mut c = cfg("priv");
    c.security.privileged = true;
    let plan = plan_process(&c, &busybox(), &[]).expect("plan");
    let spec = render(&c, &plan, Path::new("/r")).expect("render");
    assert_eq!(
        spec["process"]["capabilities"]["bounding"]
            .as_array()
            .map(Vec::len),
        Some(41)
    );
    assert!(spec["linux"].get("seccomp").is_none());
    assert!(spec["linux"].get("maskedPaths").is_none());
    assert_eq!(spec["process"]["noNewPrivileges"], false);
}

#[test]
fn bad_descriptions_are_refused_with_their_reason() {
    let mut c = cfg("x");
    c.command = Some(vec![]);
    check(
        c,
        expect![
            "error: no command specified: image has no entrypoint or cmd and the container sets none"
        ],
    );
    check(
        cfg("bad/id"),
        expect![[
            r#"error: invalid container id "bad/id": use 1-64 characters of [A-Za-z0-9_.-], starting alphanumeric"#
        ]],
    );
    let mut c = cfg("x");
    c.mounts = vec![Mount {
        source: "/a".into(),
        destination: "rel".into(),
        read_only: false,
    }];
    check(
        c,
        expect![[r#"error: invalid mount destination "rel": must be an absolute path without .."#]],
    );
    let mut c = cfg("x");
    c.security.capabilities_add = vec!["SYS_WIZARD".into()];
    check(c, expect![[r#"error: unknown capability "SYS_WIZARD""#]]);
}

#[test]
fn image_user_names_resolve_from_the_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    std::fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/home/app:/bin/sh\n",
    )
    .expect("passwd");
    std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").expect("group");
    let layers = vec![dir.path().to_path_buf()];
    let cases = [
        ("", "0:0"),
        ("app", "1001:1002"),
        ("1001", "1001:1002"),
        ("app:staff", "1001:50"),
        ("7:8", "7:8"),
        (
            "ghost",
            "error: unable to find user ghost: no matching entries in passwd file",
        ),
    ];
    for (user, want) in cases {
        let got = match resolve_image_user(user, &layers) {
            Ok((u, g)) => format!("{u}:{g}"),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, want, "user {user:?}");
    }
}

#[test]
fn user_namespace_maps_container_root_to_an_unprivileged_range() {
    let mut c = cfg("userns");
    c.security.user_namespace = Some(crate::config::IdMapping {
        host_id: 100_000,
        size: 65_536,
    });
    let plan = plan_process(&c, &busybox(), &[]).expect("plan");
    let spec = render(&c, &plan, Path::new("/r")).expect("render");
    expect![[r#"[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"network"},{"type":"cgroup"},{"type":"user"}] [{"containerID":0,"hostID":100000,"size":65536}] [{"containerID":0,"hostID":100000,"size":65536}]"#]]
    .assert_eq(&format!(
        "{} {} {}",
        spec["linux"]["namespaces"], spec["linux"]["uidMappings"], spec["linux"]["gidMappings"]
    ));
}
