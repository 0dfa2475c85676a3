//! Levels, versions, and the namespace labels that select them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A Pod Security Standards level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// No restrictions.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Current pod hardening best practice.
    Restricted,
}

/// The version of the standards a level is checked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// The newest checks this crate knows.
    Latest,
    /// The checks as of Kubernetes `v1.<minor>`.
    V1(u64),
}

/// A level at a version, written `baseline:latest` or `restricted:v1.30`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    /// The level.
    pub level: Level,
    /// The version of that level.
    pub version: Version,
}

/// A label or configuration value that is not a level or a version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not `privileged`, `baseline` or `restricted`.
    #[error("must be one of privileged, baseline, restricted")]
    Level,
    /// Not `latest` or `v1.N`.
    #[error(r#"must be "latest" or "v1.x""#)]
    Version,
}

/// An invalid `pod-security.kubernetes.io/*` namespace label, as upstream's
/// field error: `metadata.labels[<key>]: Invalid value: "<value>": <why>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "metadata.labels[{label}]: Invalid value: {}: {error}",
    crate::render::go_quote(value)
)]
pub struct LabelError {
    /// The label key.
    pub label: String,
    /// The rejected value.
    pub value: String,
    /// Why it was rejected (already part of the message, so not a source).
    pub error: ParseError,
}

/// The namespace label prefix, also the audit annotation prefix.
pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

impl Level {
    /// The label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

impl FromStr for Level {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err(ParseError::Level),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Version {
    type Err = ParseError;
    /// `latest`, or `v1.N` with no leading zero (upstream's
    /// `^v1\.([0-9]|[1-9][0-9]*)$`).
    fn from_str(s: &str) -> Result<Self, ParseError> {
        if s == "latest" {
            return Ok(Version::Latest);
        }
        let minor = s.strip_prefix("v1.").ok_or(ParseError::Version)?;
        let digits = !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit());
        if !digits || (minor.len() > 1 && minor.starts_with('0')) {
            return Err(ParseError::Version);
        }
        minor
            .parse()
            .map(Version::V1)
            .map_err(|_| ParseError::Version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::V1(minor) => write!(f, "v1.{minor}"),
        }
    }
}

impl LevelVersion {
    /// `level` at `latest`.
    pub fn latest(level: Level) -> Self {
        LevelVersion {
            level,
            version: Version::Latest,
        }
    }
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level, self.version)
    }
}

/// The three modes' levels for one namespace (upstream's `Policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    /// Violations reject the pod.
    pub enforce: LevelVersion,
    /// Violations are recorded in the audit event.
    pub audit: LevelVersion,
    /// Violations are returned as warnings.
    pub warn: LevelVersion,
}

impl Default for Levels {
    /// Bulwark's cluster default: enforce `baseline`, audit and warn
    /// `restricted`, all at `latest` (upstream defaults to `privileged`).
    fn default() -> Self {
        Levels {
            enforce: LevelVersion::latest(Level::Baseline),
            audit: LevelVersion::latest(Level::Restricted),
            warn: LevelVersion::latest(Level::Restricted),
        }
    }
}

impl Levels {
    /// Every mode at `privileged:latest` (upstream's default).
    pub fn privileged() -> Self {
        let p = LevelVersion::latest(Level::Privileged);
        Levels {
            enforce: p,
            audit: p,
            warn: p,
        }
    }

    pub(crate) fn fully_privileged(&self) -> bool {
        [self.enforce, self.audit, self.warn]
            .iter()
            .all(|lv| lv.level == Level::Privileged)
    }

    /// Reads a namespace's labels over `defaults`, as upstream's
    /// `PolicyToEvaluate`: an invalid enforce level fails closed
    /// (`restricted`), an invalid audit or warn level fails open
    /// (`privileged`), an invalid version means `latest`; and a namespace
    /// that sets only a stricter enforce level warns at it too.
    pub fn from_labels(
        labels: &BTreeMap<String, String>,
        defaults: &Levels,
    ) -> (Levels, Vec<LabelError>) {
        let mut p = *defaults;
        let mut errors = Vec::new();

        let enforce = read::<Level>(labels, "enforce", &mut errors);
        let has_enforce_level = matches!(enforce, Some(Some(_)));
        if let Some(level) = enforce {
            p.enforce.level = level.unwrap_or(Level::Restricted);
        }
        if let Some(version) = read::<Version>(labels, "enforce-version", &mut errors) {
            p.enforce.version = version.unwrap_or(Version::Latest);
        }
        if let Some(level) = read::<Level>(labels, "audit", &mut errors) {
            p.audit.level = level.unwrap_or(Level::Privileged);
        }
        if let Some(version) = read::<Version>(labels, "audit-version", &mut errors) {
            p.audit.version = version.unwrap_or(Version::Latest);
        }
        let warn = read::<Level>(labels, "warn", &mut errors);
        if let Some(level) = warn {
            p.warn.level = level.unwrap_or(Level::Privileged);
        }
        let warn_version = read::<Version>(labels, "warn-version", &mut errors);
        if let Some(version) = warn_version {
            p.warn.version = version.unwrap_or(Version::Latest);
        }

        if warn.is_none() && has_enforce_level && p.enforce.level > p.warn.level {
            p.warn.level = p.enforce.level;
            if warn_version.is_none() {
                p.warn.version = p.enforce.version;
            }
        }
        (p, errors)
    }
}

/// Reads `pod-security.kubernetes.io/<suffix>`: `None` when absent,
/// `Some(None)` (and an error recorded) when invalid.
fn read<T: FromStr<Err = ParseError>>(
    labels: &BTreeMap<String, String>,
    suffix: &str,
    errors: &mut Vec<LabelError>,
) -> Option<Option<T>> {
    let label = format!("{LABEL_PREFIX}{suffix}");
    let value = labels.get(&label)?;
    Some(match value.parse() {
        Ok(v) => Some(v),
        Err(error) => {
            errors.push(LabelError {
                label,
                value: value.clone(),
                error,
            });
            None
        }
    })
}
