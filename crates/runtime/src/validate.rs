//! Checking a [`ContainerConfig`] before anything is created: every problem
//! is collected, as Kubernetes' `Invalid` status lists all its causes.

use crate::config::ContainerConfig;
use crate::reference::Reference;
use crate::spec::{SpecError, normalize_cap, validate_id};

impl ContainerConfig {
    /// Checks the description; the error lists every field that is wrong.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut causes = Vec::new();
        if let Err(e) = validate_id(&self.id) {
            causes.push(format!("id: {e}"));
        }
        if let Err(e) = Reference::parse(&self.image) {
            causes.push(format!("image: {e}"));
        }
        for (i, m) in self.mounts.iter().enumerate() {
            if !m.destination.starts_with('/') || m.destination.split('/').any(|c| c == "..") {
                causes.push(format!(
                    "mounts[{i}].destination: {:?} must be an absolute path without ..",
                    m.destination
                ));
            }
            if !m.source.is_absolute() {
                causes.push(format!(
                    "mounts[{i}].source: {} must be an absolute path",
                    m.source.display()
                ));
            }
        }
        for (i, (key, _)) in self.env.iter().enumerate() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                causes.push(format!("env[{i}]: invalid name {key:?}"));
            }
        }
        if let Some(dir) = &self.working_dir
            && !dir.starts_with('/')
        {
            causes.push(format!("working_dir: {dir:?} must be an absolute path"));
        }
        if let Some(name) = &self.hostname {
            let ok = !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                causes.push(format!(
                    "hostname: {name:?} must be 1-63 letters, digits, '-' or '.'"
                ));
            }
        }
        let sec = &self.security;
        for (field, list) in [
            ("capabilities_add", &sec.capabilities_add),
            ("capabilities_drop", &sec.capabilities_drop),
        ] {
            for cap in list {
                if !cap.eq_ignore_ascii_case("ALL") && normalize_cap(cap).is_err() {
                    causes.push(format!("security.{field}: unknown capability {cap:?}"));
                }
            }
        }
        if let Some(map) = sec.user_namespace
            && (map.size == 0 || map.host_id.checked_add(map.size).is_none())
        {
            causes.push("security.user_namespace: the id range is empty or overflows".into());
        }
        let r = &self.resources;
        if r.memory_limit_bytes.is_some_and(|m| m < 4 << 20) {
            causes.push("resources.memory_limit_bytes: must be at least 4 MiB".into());
        }
        if r.pids_limit.is_some_and(|p| p < 1) {
            causes.push("resources.pids_limit: must be positive".into());
        }
        if r.cpu_shares.is_some_and(|s| !(2..=262_144).contains(&s)) {
            causes.push("resources.cpu_shares: must be between 2 and 262144".into());
        }
        if r.cpu_quota_us.is_some_and(|q| q < 1000) {
            causes.push("resources.cpu_quota_us: must be at least 1000".into());
        }
        if r.cpu_period_us
            .is_some_and(|p| !(1000..=1_000_000).contains(&p))
        {
            causes.push("resources.cpu_period_us: must be between 1000 and 1000000".into());
        }
        if self.log.max_bytes == 0 || self.log.max_files == 0 {
            causes.push("log: max_bytes and max_files must be positive".into());
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(SpecError::InvalidConfig(causes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mount;
    use expect_test::{Expect, expect};

    fn check(change: impl FnOnce(&mut ContainerConfig), expect: Expect) {
        let mut cfg = ContainerConfig {
            id: "web".into(),
            image: "busybox".into(),
            ..ContainerConfig::default()
        };
        change(&mut cfg);
        let actual = match cfg.validate() {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn valid_and_invalid_descriptions() {
        check(|_| {}, expect!["ok"]);
        check(
            |c| {
                c.resources.cpu_shares = Some(1024);
                c.hostname = Some("web-0.svc".into());
                c.security.capabilities_drop = vec!["ALL".into()];
                c.security.capabilities_add = vec!["net_bind_service".into()];
            },
            expect!["ok"],
        );
        check(
            |c| c.id = "a/b".into(),
            expect![[
                r#"invalid container config: id: invalid container id "a/b": use 1-64 characters of [A-Za-z0-9_.-], starting alphanumeric"#
            ]],
        );
        // Every cause is listed, not just the first.
        check(
            |c| {
                c.image = "Bad Image".into();
                c.mounts = vec![Mount {
                    source: "relative".into(),
                    destination: "/data/../etc".into(),
                    read_only: true,
                }];
                c.env = vec![("A=B".into(), "x".into())];
                c.working_dir = Some("tmp".into());
                c.security.capabilities_add = vec!["SYS_WIZARD".into()];
                c.resources.memory_limit_bytes = Some(1024);
                c.resources.cpu_shares = Some(1);
            },
            expect![[
                r#"invalid container config: image: invalid reference format: repository name "library/Bad Image" must be lowercase letters, digits and separators (. _ __ - /); mounts[0].destination: "/data/../etc" must be an absolute path without ..; mounts[0].source: relative must be an absolute path; env[0]: invalid name "A=B"; working_dir: "tmp" must be an absolute path; security.capabilities_add: unknown capability "SYS_WIZARD"; resources.memory_limit_bytes: must be at least 4 MiB; resources.cpu_shares: must be between 2 and 262144"#
            ]],
        );
    }
}
