//! Reading a `PodSecurityConfiguration` (the file the API server's
//! admission configuration points at), validated as upstream validates it.

use serde_json::Value;

use crate::admission::{Config, Exemptions};
use crate::level::{Level, LevelVersion, Levels, Version};
use crate::render::go_quote;

const GROUP: &str = "pod-security.admission.config.k8s.io";
const VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha1"];

/// A `PodSecurityConfiguration` that cannot be used: every problem found,
/// each as upstream's field error (`defaults.enforce: Invalid value: …`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid PodSecurityConfiguration: {}", .errors.join("; "))]
pub struct ConfigError {
    /// One message per invalid field.
    pub errors: Vec<String>,
}

impl Config {
    /// Reads a `PodSecurityConfiguration` in its JSON form
    /// (`pod-security.admission.config.k8s.io/v1`, `v1beta1` or `v1alpha1`).
    ///
    /// Unlike upstream, where an unset default level is `privileged`, an
    /// unset level or version here keeps Bulwark's default
    /// ([`Levels::default`]): relaxing pod security is always explicit.
    pub fn from_configuration(object: &Value) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let api_version = object.get("apiVersion").and_then(Value::as_str);
        let known = api_version
            .and_then(|v| v.strip_prefix(GROUP))
            .and_then(|v| v.strip_prefix('/'))
            .is_some_and(|v| VERSIONS.contains(&v));
        let kind = object.get("kind").and_then(Value::as_str);
        if !known || kind != Some("PodSecurityConfiguration") {
            errors.push(format!(
                "apiVersion/kind: must be {GROUP}/v1 PodSecurityConfiguration, not {}/{}",
                api_version.unwrap_or(""),
                kind.unwrap_or("")
            ));
        }

        let defaults = object.get("defaults").unwrap_or(&Value::Null);
        let mut levels = Levels::default();
        // Upstream's validation order: enforce, warn, audit.
        for (mode, lv) in [
            ("enforce", &mut levels.enforce),
            ("warn", &mut levels.warn),
            ("audit", &mut levels.audit),
        ] {
            read_mode(defaults, mode, lv, &mut errors);
        }

        let exemptions = object.get("exemptions").unwrap_or(&Value::Null);
        let exemptions = Exemptions {
            usernames: read_list(exemptions, "usernames", &mut errors, |u| {
                if u.is_empty() {
                    vec!["username must not be empty".to_owned()]
                } else {
                    Vec::new()
                }
            }),
            runtime_class_names: read_list(
                exemptions,
                "runtimeClasses",
                &mut errors,
                bulwark_api::validation::is_dns1123_subdomain,
            ),
            namespaces: read_list(
                exemptions,
                "namespaces",
                &mut errors,
                bulwark_api::validation::is_dns1123_label,
            ),
        };

        if errors.is_empty() {
            Ok(Config {
                defaults: levels,
                exemptions,
                kubernetes_minor: None,
            })
        } else {
            Err(ConfigError { errors })
        }
    }
}

/// Reads `defaults.<mode>` and `defaults.<mode>-version` into `lv`.
fn read_mode(defaults: &Value, mode: &str, lv: &mut LevelVersion, errors: &mut Vec<String>) {
    let version_key = format!("{mode}-version");
    if let Some(s) = read_string(defaults, mode, errors) {
        match s.parse::<Level>() {
            Ok(level) => lv.level = level,
            Err(e) => errors.push(invalid(&format!("defaults.{mode}"), s, &e.to_string())),
        }
    }
    if let Some(s) = read_string(defaults, &version_key, errors) {
        match s.parse::<Version>() {
            Ok(version) => lv.version = version,
            Err(e) => errors.push(invalid(
                &format!("defaults.{version_key}"),
                s,
                &e.to_string(),
            )),
        }
    }
}

/// A non-empty string field (empty or absent means "use the default").
fn read_string<'a>(object: &'a Value, key: &str, errors: &mut Vec<String>) -> Option<&'a str> {
    match object.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(format!("defaults.{key}: must be a string"));
            None
        }
    }
}

/// Reads `exemptions.<key>`: each entry checked by `validate`, duplicates
/// refused, as upstream's validation.
fn read_list(
    exemptions: &Value,
    key: &str,
    errors: &mut Vec<String>,
    validate: impl Fn(&str) -> Vec<String>,
) -> Vec<String> {
    let items = match exemptions.get(key) {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(format!("exemptions.{key}: must be a list of strings"));
            return Vec::new();
        }
    };
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("exemptions.{key}[{i}]");
        let Some(s) = item.as_str() else {
            errors.push(format!("{path}: must be a string"));
            continue;
        };
        let problems = validate(s);
        if !problems.is_empty() {
            errors.push(invalid(&path, s, &problems.join(", ")));
        } else if out.iter().any(|o| o == s) {
            errors.push(format!("{path}: Duplicate value: {}", go_quote(s)));
        } else {
            out.push(s.to_owned());
        }
    }
    out
}

fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {}: {detail}", go_quote(value))
}
