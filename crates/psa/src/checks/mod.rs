//! The check registry: which checks apply at a level and version, and in
//! which order their messages appear.
//!
//! As upstream's `policy/registry.go`: each check has versioned
//! implementations (the newest one whose minimum version is at most the
//! requested version applies); a restricted check may override a baseline
//! check from its version on; messages list baseline checks first, then
//! restricted ones, each group sorted by check id.

mod baseline;
mod restricted;

use crate::level::{Level, LevelVersion, Version};
use crate::pod::PodView;
use crate::render::Violation;

/// A check's verdict: `None` when the pod passes.
pub(crate) type CheckFn = fn(&PodView<'_>) -> Option<Violation>;

/// One implementation of a check, in force from `v1.<since>`.
pub(crate) struct Versioned {
    pub(crate) since: u64,
    pub(crate) check: CheckFn,
    /// Baseline check ids this (restricted) implementation replaces.
    pub(crate) overrides: &'static [&'static str],
}

/// A named control with its versioned implementations, oldest first.
pub(crate) struct Check {
    pub(crate) id: &'static str,
    pub(crate) level: Level,
    pub(crate) versions: &'static [Versioned],
}

const fn v(since: u64, check: CheckFn) -> Versioned {
    Versioned {
        since,
        check,
        overrides: &[],
    }
}

const fn v_over(since: u64, check: CheckFn, overrides: &'static [&'static str]) -> Versioned {
    Versioned {
        since,
        check,
        overrides,
    }
}

/// Every check, sorted by id within each level (the message order).
static CHECKS: &[Check] = &[
    // Baseline, sorted by id as Go's `slices.Sort` sorts (bytewise).
    Check {
        id: "appArmorProfile",
        level: Level::Baseline,
        versions: &[v(0, baseline::app_armor_profile)],
    },
    Check {
        id: "capabilities_baseline",
        level: Level::Baseline,
        versions: &[v(0, baseline::capabilities)],
    },
    Check {
        id: "hostNamespaces",
        level: Level::Baseline,
        versions: &[v(0, baseline::host_namespaces)],
    },
    Check {
        id: "hostPathVolumes",
        level: Level::Baseline,
        versions: &[v(0, baseline::host_path_volumes)],
    },
    Check {
        id: "hostPorts",
        level: Level::Baseline,
        versions: &[v(0, baseline::host_ports)],
    },
    Check {
        id: "hostProbesAndHostLifecycle",
        level: Level::Baseline,
        versions: &[v(34, baseline::host_probes_and_lifecycle)],
    },
    Check {
        id: "privileged",
        level: Level::Baseline,
        versions: &[v(0, baseline::privileged)],
    },
    Check {
        id: "procMount",
        level: Level::Baseline,
        versions: &[
            v(0, baseline::proc_mount),
            v(35, baseline::proc_mount_unless_user_namespace),
        ],
    },
    Check {
        id: "seLinuxOptions",
        level: Level::Baseline,
        versions: &[
            v(0, baseline::selinux_options_1_0),
            v(31, baseline::selinux_options_1_31),
        ],
    },
    Check {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        versions: &[
            v(0, baseline::seccomp_annotations),
            v(19, baseline::seccomp_profile),
        ],
    },
    Check {
        id: "sysctls",
        level: Level::Baseline,
        versions: &[
            v(0, baseline::sysctls_1_0),
            v(27, baseline::sysctls_1_27),
            v(29, baseline::sysctls_1_29),
            v(32, baseline::sysctls_1_32),
            v(37, baseline::sysctls_1_37),
        ],
    },
    Check {
        id: "windowsHostProcess",
        level: Level::Baseline,
        versions: &[v(0, baseline::windows_host_process)],
    },
    // Restricted, sorted by id.
    Check {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        versions: &[
            v(8, restricted::allow_privilege_escalation),
            v(25, restricted::allow_privilege_escalation_unless_windows),
        ],
    },
    Check {
        id: "capabilities_restricted",
        level: Level::Restricted,
        versions: &[
            v_over(22, restricted::capabilities, &["capabilities_baseline"]),
            v_over(
                25,
                restricted::capabilities_unless_windows,
                &["capabilities_baseline"],
            ),
        ],
    },
    Check {
        id: "procMount_restricted",
        level: Level::Restricted,
        versions: &[v_over(35, baseline::proc_mount, &["procMount"])],
    },
    Check {
        id: "restrictedVolumes",
        level: Level::Restricted,
        versions: &[v_over(0, restricted::volumes, &["hostPathVolumes"])],
    },
    Check {
        id: "runAsNonRoot",
        level: Level::Restricted,
        versions: &[
            v(0, restricted::run_as_non_root),
            v(35, restricted::run_as_non_root_unless_user_namespace),
        ],
    },
    Check {
        id: "runAsUser",
        level: Level::Restricted,
        versions: &[
            v(23, restricted::run_as_user),
            v(35, restricted::run_as_user_unless_user_namespace),
        ],
    },
    Check {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        versions: &[
            v_over(
                19,
                restricted::seccomp_profile,
                &["seccompProfile_baseline"],
            ),
            v_over(
                25,
                restricted::seccomp_profile_unless_windows,
                &["seccompProfile_baseline"],
            ),
        ],
    },
];

/// The newest minor version any check changes at; `latest` and newer
/// versions evaluate as this one.
pub(crate) fn max_minor() -> u64 {
    CHECKS
        .iter()
        .filter_map(|c| c.versions.last())
        .map(|v| v.since)
        .max()
        .unwrap_or(0)
}

/// The implementation of `check` in force at `minor`, if any.
fn at(check: &Check, minor: u64) -> Option<&Versioned> {
    check.versions.iter().rev().find(|v| v.since <= minor)
}

/// Runs every check of `lv` over the pod; the violations, in message order.
/// `emulated_minor`, when older than the newest checks, caps the version.
pub(crate) fn evaluate(
    lv: LevelVersion,
    pod: &PodView<'_>,
    emulated_minor: Option<u64>,
) -> Vec<Violation> {
    if lv.level == Level::Privileged {
        return Vec::new();
    }
    let max = emulated_minor.map_or(max_minor(), |e| e.min(max_minor()));
    let minor = match lv.version {
        Version::Latest => max,
        Version::V1(minor) => minor.min(max),
    };
    let overridden: Vec<&str> = if lv.level == Level::Restricted {
        CHECKS
            .iter()
            .filter(|c| c.level == Level::Restricted)
            .filter_map(|c| at(c, minor))
            .flat_map(|v| v.overrides.iter().copied())
            .collect()
    } else {
        Vec::new()
    };
    CHECKS
        .iter()
        .filter(|c| c.level <= lv.level && !overridden.contains(&c.id))
        .filter_map(|c| at(c, minor))
        .filter_map(|v| (v.check)(pod))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_in_upstream_message_order() {
        for level in [Level::Baseline, Level::Restricted] {
            let ids: Vec<&str> = CHECKS
                .iter()
                .filter(|c| c.level == level)
                .map(|c| c.id)
                .collect();
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            assert_eq!(ids, sorted);
        }
        let first_restricted = CHECKS.iter().position(|c| c.level == Level::Restricted);
        assert!(
            CHECKS[first_restricted.unwrap_or(0)..]
                .iter()
                .all(|c| c.level == Level::Restricted)
        );
    }

    #[test]
    fn versions_strictly_increase() {
        for c in CHECKS {
            assert!(
                c.versions.windows(2).all(|w| w[0].since < w[1].since),
                "{}",
                c.id
            );
        }
        assert_eq!(max_minor(), 37);
    }
}
