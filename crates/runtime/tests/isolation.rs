//! Escape attempts from inside hardened busybox containers (root required):
//! each must fail.

mod common;

use common::fixture::{Fixture, lines, run_script};

#[test]
fn missing_command_fails_like_upstream() {
    let f = Fixture::new();
    let mut cfg = f.config("");
    cfg.command = Some(vec!["foo".into()]);
    let err = f.runtime.create(&cfg).expect_err("foo does not exist");
    assert_eq!(
        err.to_string(),
        r#"exec: "foo": executable file not found in $PATH"#
    );
    assert!(
        f.runtime.list().expect("list").is_empty(),
        "a failed create leaves nothing"
    );
}

#[test]
fn host_processes_are_invisible() {
    let host_pid = std::process::id();
    let (status, out) = run_script(&format!(
        "test -e /proc/{host_pid} && echo host-visible; echo procs=$(ls -d /proc/[0-9]* | wc -l); echo pid1=$(cat /proc/1/comm)"
    ));
    assert_eq!(status.code, 0, "{out:?}");
    assert!(!out.iter().any(|l| l.contains("host-visible")), "{out:?}");
    assert!(out.contains(&"stdout: pid1=sh".to_string()), "{out:?}");
    let procs: usize = out
        .iter()
        .find_map(|l| l.strip_prefix("stdout: procs="))
        .and_then(|n| n.trim().parse().ok())
        .expect("procs line");
    assert!(procs <= 4, "only the container's own processes: {out:?}");
}

#[test]
fn mounting_is_refused() {
    let (_, out) =
        run_script("mount -t tmpfs none /tmp; echo rc=$?; mount --bind / /tmp; echo rc=$?");
    assert_eq!(
        out.iter().filter(|l| *l == "stdout: rc=1").count(),
        2,
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.contains("permission denied")),
        "{out:?}"
    );
}

#[test]
fn proc_sys_is_read_only_and_sensitive_proc_files_are_masked() {
    let (_, out) = run_script(
        "echo 3 > /proc/sys/vm/drop_caches; echo rc=$?; \
         echo keys=$(cat /proc/keys | wc -c) timers=$(cat /proc/timer_list | wc -c); \
         echo firmware=$(ls /sys/firmware | wc -l)",
    );
    assert!(out.contains(&"stdout: rc=1".to_string()), "{out:?}");
    assert!(
        out.iter().any(|l| l.contains("Read-only file system")),
        "{out:?}"
    );
    assert!(
        out.contains(&"stdout: keys=0 timers=0".to_string()),
        "{out:?}"
    );
    assert!(out.contains(&"stdout: firmware=0".to_string()), "{out:?}");
}

#[test]
fn user_namespaces_are_blocked_by_seccomp() {
    let (_, out) = run_script("unshare -U true; echo rc=$?; unshare -U -r id; echo rc=$?");
    assert_eq!(
        out.iter().filter(|l| *l == "stdout: rc=1").count(),
        2,
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.contains("Operation not permitted")),
        "{out:?}"
    );
}

#[test]
fn kernel_modules_cannot_be_loaded() {
    let (_, out) = run_script("echo junk > /tmp/x.ko; insmod /tmp/x.ko; echo rc=$?");
    assert!(out.contains(&"stdout: rc=1".to_string()), "{out:?}");
}

#[test]
fn host_files_are_unreachable_through_proc_and_no_fd_leaks() {
    let host = tempfile::tempdir().expect("tempdir");
    let marker = host.path().join("secret");
    std::fs::write(&marker, "host-secret").expect("marker");
    let (_, out) = run_script(&format!(
        "cat /proc/1/root{m} 2>&1; cat /proc/self/root{m} 2>&1; \
         for fd in /proc/self/fd/*; do echo fd=$fd:$(readlink $fd); done",
        m = marker.display()
    ));
    assert!(!out.iter().any(|l| l.contains("host-secret")), "{out:?}");
    let fds: Vec<&String> = out
        .iter()
        .filter(|l| l.starts_with("stdout: fd="))
        .collect();
    // 0 stdin, 1 stdout, 2 stderr and the directory the glob read (3) at most.
    for fd in &fds {
        let n: u32 = fd["stdout: fd=/proc/self/fd/".len()..]
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("fd number");
        assert!(n <= 3, "leaked fd {fd}: {out:?}");
    }
    assert!(fds.len() >= 3, "{out:?}");
}

#[test]
fn default_capabilities_no_new_privs_and_seccomp_are_in_force() {
    let (_, out) = run_script("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status");
    assert_eq!(
        out,
        [
            "stdout: CapEff:\t00000000a80425fb",
            "stdout: CapBnd:\t00000000a80425fb",
            "stdout: NoNewPrivs:\t1",
            "stdout: Seccomp:\t2",
        ]
    );
}

#[test]
fn privilege_escalation_allowed_still_gets_seccomp_and_default_caps() {
    let f = Fixture::new();
    let mut cfg = f.config("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; unshare -U true; echo rc=$?");
    cfg.security.allow_privilege_escalation = true;
    let (_, log) = f.run(cfg);
    let out = lines(&log);
    let stdout: Vec<&String> = out.iter().filter(|l| l.starts_with("stdout:")).collect();
    assert_eq!(
        stdout[..4],
        [
            "stdout: CapEff:\t00000000a80425fb",
            "stdout: CapBnd:\t00000000a80425fb",
            // seccompiler sets no_new_privs with the filter (see README).
            "stdout: NoNewPrivs:\t1",
            "stdout: Seccomp:\t2",
        ]
    );
    assert!(out.contains(&"stdout: rc=1".to_string()), "{out:?}");
}

#[test]
fn read_only_root_and_run_as_user() {
    let f = Fixture::new();
    let mut cfg = f.config("id; touch /newfile; echo rc=$?");
    cfg.security.read_only_root_filesystem = true;
    cfg.security.run_as_user = Some(1000);
    cfg.security.run_as_group = Some(1000);
    let (_, log) = f.run(cfg);
    let out = lines(&log);
    assert!(
        out.contains(&"stdout: uid=1000 gid=1000".to_string()),
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.contains("Read-only file system")),
        "{out:?}"
    );
    assert!(out.contains(&"stdout: rc=1".to_string()), "{out:?}");
}

#[test]
fn the_runtime_binary_is_a_sealed_copy_that_cannot_be_overwritten() {
    let f = Fixture::new();
    let cfg = f.config("sleep 60");
    f.runtime.create(&cfg).expect("create");
    let pid = f.runtime.start(&cfg.id).expect("start");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let shim = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .map(|p| p.trim().to_string())
        .expect("PPid");
    // What a container process reaching /proc/<shim>/exe (or its own before
    // exec) would get: an in-memory copy, sealed against writes.
    let exe = std::fs::read_link(format!("/proc/{shim}/exe")).expect("readlink");
    assert!(
        exe.to_string_lossy()
            .starts_with("/memfd:bulwark-runtime-shim"),
        "{exe:?}"
    );
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{shim}/exe"))
        .and_then(|mut file| std::io::Write::write_all(&mut file, b"pwned"));
    assert!(write.is_err(), "wrote to the shim's executable");
    // Only the loadable part is copied (no debug sections, no section table).
    let copy = std::fs::metadata(format!("/proc/{shim}/exe"))
        .expect("memfd")
        .len();
    let file = std::fs::metadata(env!("CARGO_BIN_EXE_bulwark-runtime-shim"))
        .expect("shim")
        .len();
    assert!(copy < file, "copy {copy} bytes of a {file}-byte binary");
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn seccomp_unconfined_and_localhost_profiles() {
    let f = Fixture::new();
    let mut unconfined = f.config("grep '^Seccomp:' /proc/self/status");
    unconfined.security.seccomp = bulwark_runtime::SeccompProfile::Unconfined;
    let (_, log) = f.run(unconfined);
    assert_eq!(lines(&log), ["stdout: Seccomp:\t0"]);

    let profile = f.dir.path().join("deny-chroot.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .expect("profile");
    let mut localhost = f.config("chroot / true; echo rc=$?; grep '^Seccomp:' /proc/self/status");
    localhost.security.seccomp = bulwark_runtime::SeccompProfile::Localhost(profile);
    let (_, log) = f.run(localhost);
    let out = lines(&log);
    assert!(out.contains(&"stdout: rc=1".to_string()), "{out:?}");
    assert!(out.contains(&"stdout: Seccomp:\t2".to_string()), "{out:?}");
    assert!(
        out.iter().any(|l| l.contains("Operation not permitted")),
        "{out:?}"
    );
}

#[test]
fn privileged_only_when_asked() {
    let f = Fixture::new();
    let mut cfg = f.config(
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; mount -t tmpfs none /tmp && echo mounted",
    );
    cfg.security.privileged = true;
    let (_, log) = f.run(cfg);
    let out = lines(&log);
    // Everything the runtime itself holds.
    let host = std::fs::read_to_string("/proc/self/status").expect("status");
    let bounding = host
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .expect("CapBnd")
        .trim();
    assert!(
        out.contains(&format!("stdout: CapEff:\t{bounding}")),
        "{out:?}"
    );
    assert!(out.contains(&"stdout: Seccomp:\t0".to_string()), "{out:?}");
    assert!(out.contains(&"stdout: mounted".to_string()), "{out:?}");
}

#[test]
fn user_namespaces_make_container_root_unprivileged_on_the_host() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    // The container's root must be able to reach its rootfs.
    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let mapping = bulwark_runtime::IdMapping {
        host_id: 200_000,
        size: 65_536,
    };
    let mut cfg = f.config("id; cat /proc/self/uid_map; echo hi > /tmp/file && echo wrote; mkdir /data && echo made; echo x > /etc/passwd || echo refused");
    cfg.security.user_namespace = Some(mapping);
    let (status, log) = f.run(cfg);
    let out = lines(&log);
    assert_eq!(status.code, 0, "{out:?}");
    assert!(
        out.contains(&"stdout: uid=0(root) gid=0(root)".to_string()),
        "{out:?}"
    );
    assert!(
        out.iter().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["stdout:", "0", "200000", "65536"]
        ),
        "{out:?}"
    );
    assert!(out.contains(&"stdout: wrote".to_string()), "{out:?}");
    assert!(
        out.contains(&"stdout: made".to_string()),
        "its own root directory: {out:?}"
    );
    assert!(
        out.contains(&"stdout: refused".to_string()),
        "host-root files stay read-only: {out:?}"
    );

    // Seen from the host, the container's root is uid 200000.
    let mut idle = f.config("sleep 60");
    idle.security.user_namespace = Some(mapping);
    f.runtime.create(&idle).expect("create");
    let pid = f.runtime.start(&idle.id).expect("start");
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid = host_view
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line");
    assert_eq!(uid.split_whitespace().next(), Some("200000"));
    f.runtime.remove(&idle.id).expect("remove");
}

#[test]
fn a_working_directory_through_a_leaked_fd_is_refused() {
    // CVE-2024-21626: `workdir: /proc/self/fd/N` reaching a runtime fd that
    // points at a host directory.
    let f = Fixture::new();
    for n in 3..10 {
        let mut cfg = f.config("pwd; ls /proc/self/cwd/../../..");
        cfg.working_dir = Some(format!("/proc/self/fd/{n}"));
        f.runtime.create(&cfg).expect("create");
        match f.runtime.start(&cfg.id) {
            Err(e) => assert!(e.to_string().contains("starting container"), "{e}"),
            Ok(_) => {
                let exit = f
                    .runtime
                    .wait(&cfg.id, std::time::Duration::from_secs(10))
                    .expect("wait");
                let log = std::fs::read_to_string(f.runtime.log_path(&cfg.id)).unwrap_or_default();
                panic!("started with cwd /proc/self/fd/{n}: {exit:?} {log}");
            }
        }
        f.runtime.remove(&cfg.id).expect("remove");
    }
}

/// A static setuid-root program that prints its effective uid, compiled
/// with the toolchain's C compiler, in an image next to busybox.
fn build_suid_image(f: &Fixture) {
    let dir = f.dir.path();
    std::fs::write(
        dir.join("euid.c"),
        "#include <stdio.h>\n#include <unistd.h>\nint main(void){printf(\"euid=%d\\n\",(int)geteuid());return 0;}\n",
    )
    .expect("source");
    let built = std::process::Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(dir.join("euid"))
        .arg(dir.join("euid.c"))
        .status()
        .expect("cc (the toolchain's linker) runs");
    assert!(built.success(), "cc -static failed (libc6-dev is needed)");
    let program = std::fs::read(dir.join("euid")).expect("binary");
    let tar = common::busybox_rootfs_bytes_with(&[("bin/euid", &program, 0o4755)]);
    std::fs::write(dir.join("suid.tar"), tar).expect("tar");
    let images = bulwark_runtime::ImageStore::open(dir.join("images")).expect("store");
    images
        .import_rootfs(&dir.join("suid.tar"), "suid")
        .expect("import");
}

#[test]
fn a_setuid_binary_gains_nothing_under_no_new_privs() {
    let f = Fixture::new();
    build_suid_image(&f);
    let run_as_user = |allow_escalation: bool, seccomp: bulwark_runtime::SeccompProfile| {
        let mut cfg = f.config("/bin/euid");
        cfg.image = "suid".into();
        cfg.security.run_as_user = Some(1000);
        cfg.security.run_as_group = Some(1000);
        cfg.security.allow_privilege_escalation = allow_escalation;
        cfg.security.seccomp = seccomp;
        let (_, log) = f.run(cfg);
        lines(&log)
    };
    use bulwark_runtime::SeccompProfile::{RuntimeDefault, Unconfined};
    // Default: no_new_privs, the setuid bit is ignored.
    assert_eq!(run_as_user(false, RuntimeDefault), ["stdout: euid=1000"]);
    assert_eq!(run_as_user(false, Unconfined), ["stdout: euid=1000"]);
    // Only when escalation is explicitly allowed (and no filter forces
    // no_new_privs) does the bit work — the control experiment.
    assert_eq!(run_as_user(true, Unconfined), ["stdout: euid=0"]);
}

#[test]
fn the_runtime_environment_does_not_reach_the_container() {
    // `cargo test` gives this process CARGO_* variables; none may leak.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
    let f = Fixture::new();
    let mut cfg = f.config("env | sort");
    cfg.env = vec![("GREETING".into(), "hi".into())];
    let (_, log) = f.run(cfg);
    let mut names: Vec<String> = lines(&log)
        .iter()
        .filter_map(|l| l.strip_prefix("stdout: "))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    names.sort();
    // busybox sh adds PWD and SHLVL itself.
    assert_eq!(
        names,
        ["GREETING", "HOME", "HOSTNAME", "PATH", "PWD", "SHLVL"]
    );
}
