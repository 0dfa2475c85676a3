//! Seccomp: the RuntimeDefault profile (as OCI JSON, so any runc-compatible
//! executor can apply it) and its compilation to BPF with the pure-Rust
//! `seccompiler`, for the built-in executor (libcontainer is built without
//! libseccomp).
//!
//! RuntimeDefault is a deny-list with the effect of containerd's/Docker's
//! default profile for a container without CAP_SYS_ADMIN: no mounting, no new
//! namespaces (in particular user namespaces — CVE-2022-0185's door), no
//! keyrings, BPF, ptrace, kexec, module loading, clock or swap changes,
//! reboot, or kernel-memory tricks (userfaultfd, perf events, io_uring).
//! `clone3` answers ENOSYS so that libc falls back to `clone`, whose flags the
//! filter can inspect.

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Syscalls RuntimeDefault refuses with EPERM outright.
const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
];

/// `clone` flags that create namespaces; each makes `clone` fail with EPERM.
const CLONE_NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// The RuntimeDefault profile as the OCI `linux.seccomp` object.
pub(crate) fn runtime_default() -> Value {
    let eperm = libc::EPERM as u32;
    let mut syscalls = vec![
        json!({"names": DENIED, "action": "SCMP_ACT_ERRNO", "errnoRet": eperm}),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS as u32}),
    ];
    for flag in CLONE_NAMESPACE_FLAGS {
        syscalls.push(json!({
            "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": eperm,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": syscalls,
    })
}

/// Why a seccomp profile cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile uses an action the built-in executor cannot express.
    #[error(
        "seccomp profile: unsupported action {0} (supported: SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL*, SCMP_ACT_TRAP, SCMP_ACT_LOG)"
    )]
    UnsupportedAction(String),
    /// A syscall name not known for this architecture.
    #[error("seccomp profile: unknown syscall {0:?} on this architecture")]
    UnknownSyscall(String),
    /// seccompiler refused the filter.
    #[error("seccomp profile: {0}")]
    Compile(#[from] seccompiler::BackendError),
    /// This machine's architecture has no seccompiler backend.
    #[error("seccomp is not supported on {0}")]
    Arch(String),
}

/// Compiles an OCI seccomp object into BPF programs, to be installed in order.
///
/// seccompiler gives one filter a single match action, so the profile is
/// split per distinct action; the kernel applies the most restrictive result
/// of all installed filters, which keeps the profile's meaning.
pub(crate) fn compile(profile: &LinuxSeccomp) -> Result<Vec<BpfProgram>, SeccompError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SeccompError::Arch(std::env::consts::ARCH.into()))?;
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    // action → syscall number → rules; `None` matches the syscall always.
    type Rules = BTreeMap<i64, Option<Vec<SeccompRule>>>;
    let mut groups: BTreeMap<String, (SeccompAction, Rules)> = BTreeMap::new();
    for entry in profile.syscalls().iter().flatten() {
        let act = action(
            entry.action(),
            entry.errno_ret().or(Some(libc::EPERM as u32)),
        )?;
        if act == default {
            continue;
        }
        let mut conditions = Vec::new();
        for arg in entry.args().iter().flatten() {
            let (op, value) = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
                LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
                LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
                LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
                LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
                LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
                LinuxSeccompOperator::ScmpCmpMaskedEq => (
                    SeccompCmpOp::MaskedEq(arg.value()),
                    arg.value_two().unwrap_or(0),
                ),
            };
            let index = u8::try_from(arg.index()).unwrap_or(u8::MAX);
            conditions.push(SeccompCondition::new(
                index,
                SeccompCmpArgLen::Qword,
                op,
                value,
            )?);
        }
        let (_, rules) = groups
            .entry(format!("{act:?}"))
            .or_insert_with(|| (act.clone(), BTreeMap::new()));
        for name in entry.names() {
            let Some(nr) = syscall_number(name) else {
                // Like runc with libseccomp: names this architecture lacks are skipped.
                if KNOWN_ELSEWHERE.contains(&name.as_str()) {
                    continue;
                }
                return Err(SeccompError::UnknownSyscall(name.clone()));
            };
            if conditions.is_empty() {
                rules.insert(nr, None);
            } else {
                let slot = rules.entry(nr).or_insert_with(|| Some(Vec::new()));
                if let Some(list) = slot {
                    list.push(SeccompRule::new(conditions.clone())?);
                }
            }
        }
    }
    let mut programs = Vec::new();
    for (_, (act, rules)) in groups {
        let rules = rules
            .into_iter()
            .map(|(nr, r)| (nr, r.unwrap_or_default()))
            .collect();
        let filter = SeccompFilter::new(rules, default.clone(), act, arch)?;
        programs.push(BpfProgram::try_from(filter)?);
    }
    if programs.is_empty() && default != SeccompAction::Allow {
        let filter = SeccompFilter::new(BTreeMap::new(), default, SeccompAction::Allow, arch)?;
        programs.push(BpfProgram::try_from(filter)?);
    }
    Ok(programs)
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<SeccompAction, SeccompError> {
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => {
            SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32))
        }
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        other => return Err(SeccompError::UnsupportedAction(other.to_string())),
    })
}

/// Syscalls that exist only on some architectures (absent here is fine).
const KNOWN_ELSEWHERE: &[&str] = &[
    "create_module",
    "get_kernel_syms",
    "ioperm",
    "iopl",
    "nfsservctl",
    "query_module",
    "uselib",
    "ustat",
    "vm86",
    "vm86old",
    "stime",
    "umount",
    "_sysctl",
];

/// The number of a syscall by name, for the names profiles here use.
fn syscall_number(name: &str) -> Option<i64> {
    let nr = match name {
        "acct" => libc::SYS_acct,
        "add_key" => libc::SYS_add_key,
        "bpf" => libc::SYS_bpf,
        "clock_adjtime" => libc::SYS_clock_adjtime,
        "clock_settime" => libc::SYS_clock_settime,
        "clone" => libc::SYS_clone,
        "clone3" => libc::SYS_clone3,
        "delete_module" => libc::SYS_delete_module,
        "finit_module" => libc::SYS_finit_module,
        "fsconfig" => libc::SYS_fsconfig,
        "fsmount" => libc::SYS_fsmount,
        "fsopen" => libc::SYS_fsopen,
        "fspick" => libc::SYS_fspick,
        "get_mempolicy" => libc::SYS_get_mempolicy,
        "init_module" => libc::SYS_init_module,
        "io_uring_enter" => libc::SYS_io_uring_enter,
        "io_uring_register" => libc::SYS_io_uring_register,
        "io_uring_setup" => libc::SYS_io_uring_setup,
        "kcmp" => libc::SYS_kcmp,
        "kexec_file_load" => libc::SYS_kexec_file_load,
        "kexec_load" => libc::SYS_kexec_load,
        "keyctl" => libc::SYS_keyctl,
        "lookup_dcookie" => libc::SYS_lookup_dcookie,
        "mbind" => libc::SYS_mbind,
        "mount" => libc::SYS_mount,
        "mount_setattr" => libc::SYS_mount_setattr,
        "move_mount" => libc::SYS_move_mount,
        "move_pages" => libc::SYS_move_pages,
        "name_to_handle_at" => libc::SYS_name_to_handle_at,
        "open_by_handle_at" => libc::SYS_open_by_handle_at,
        "open_tree" => libc::SYS_open_tree,
        "perf_event_open" => libc::SYS_perf_event_open,
        "personality" => libc::SYS_personality,
        "pivot_root" => libc::SYS_pivot_root,
        "process_vm_readv" => libc::SYS_process_vm_readv,
        "process_vm_writev" => libc::SYS_process_vm_writev,
        "ptrace" => libc::SYS_ptrace,
        "quotactl" => libc::SYS_quotactl,
        "reboot" => libc::SYS_reboot,
        "request_key" => libc::SYS_request_key,
        "set_mempolicy" => libc::SYS_set_mempolicy,
        "setns" => libc::SYS_setns,
        "settimeofday" => libc::SYS_settimeofday,
        "swapoff" => libc::SYS_swapoff,
        "swapon" => libc::SYS_swapon,
        "syslog" => libc::SYS_syslog,
        "umount2" => libc::SYS_umount2,
        "unshare" => libc::SYS_unshare,
        "userfaultfd" => libc::SYS_userfaultfd,
        "vhangup" => libc::SYS_vhangup,
        "chroot" => libc::SYS_chroot,
        "mknodat" => libc::SYS_mknodat,
        "getpid" => libc::SYS_getpid,
        _ => return x86_64_only(name),
    };
    Some(nr)
}

#[cfg(target_arch = "x86_64")]
fn x86_64_only(name: &str) -> Option<i64> {
    Some(match name {
        "ioperm" => libc::SYS_ioperm,
        "iopl" => libc::SYS_iopl,
        "nfsservctl" => libc::SYS_nfsservctl,
        "uselib" => libc::SYS_uselib,
        "ustat" => libc::SYS_ustat,
        "_sysctl" => libc::SYS__sysctl,
        "mknod" => libc::SYS_mknod,
        "fork" => libc::SYS_fork,
        "vfork" => libc::SYS_vfork,
        _ => return None,
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_64_only(_name: &str) -> Option<i64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> LinuxSeccomp {
        serde_json::from_value(runtime_default()).expect("RuntimeDefault is a valid OCI object")
    }

    #[test]
    fn runtime_default_compiles_into_one_filter_per_errno() {
        let programs = compile(&profile()).expect("compiles");
        assert_eq!(programs.len(), 2, "EPERM and ENOSYS filters");
        assert!(programs.iter().all(|p| !p.is_empty()));
    }

    #[test]
    fn unknown_syscalls_and_actions_are_reported() {
        let p: LinuxSeccomp = serde_json::from_value(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"}],
        }))
        .expect("valid");
        assert_eq!(
            compile(&p).expect_err("unknown name").to_string(),
            r#"seccomp profile: unknown syscall "no_such_call" on this architecture"#
        );
        let p: LinuxSeccomp = serde_json::from_value(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}],
        }))
        .expect("valid");
        assert!(
            compile(&p)
                .expect_err("notify")
                .to_string()
                .contains("unsupported action")
        );
    }
}
