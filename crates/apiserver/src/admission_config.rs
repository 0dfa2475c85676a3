//! `--admission-control-config-file`: an `AdmissionConfiguration`
//! (`apiserver.config.k8s.io/v1`, or `v1alpha1`/`v1beta1`) whose
//! `PodSecurity` plugin entry — inline `configuration` or a `path`
//! relative to the file — replaces Bulwark's Pod Security defaults and
//! exemptions. A file that does not parse, or a plugin configuration that
//! is invalid, stops the server from starting, naming the problem.

use std::path::Path;

use serde_json::Value;

use crate::discovery::KUBERNETES_VERSION;

/// Why the admission configuration was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdmissionConfigError {
    /// The file (or a plugin's file) could not be read.
    #[error("admission configuration {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML or JSON (the message names the line).
    #[error("admission configuration {path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with the line and column.
        message: String,
    },
    /// The content is not a valid AdmissionConfiguration.
    #[error("admission configuration {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

const GROUP: &str = "apiserver.config.k8s.io";
const VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha1"];

/// Reads the file; returns the Pod Security configuration it sets, or
/// `None` when it has no `PodSecurity` entry (Bulwark's defaults stay).
pub(crate) fn load(path: &Path) -> Result<Option<bulwark_psa::Config>, AdmissionConfigError> {
    let shown = path.display().to_string();
    let document = read_document(path)?;
    let invalid = |message: String| AdmissionConfigError::Invalid {
        path: shown.clone(),
        message,
    };
    let api_version = document
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = document.get("kind").and_then(Value::as_str).unwrap_or("");
    let known = api_version
        .strip_prefix(GROUP)
        .and_then(|v| v.strip_prefix('/'))
        .is_some_and(|v| VERSIONS.contains(&v));
    if !known || kind != "AdmissionConfiguration" {
        return Err(invalid(format!(
            "apiVersion/kind must be {GROUP}/v1 AdmissionConfiguration, not {api_version}/{kind}"
        )));
    }
    let plugins = match document.get("plugins") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(plugins)) => plugins,
        Some(_) => return Err(invalid("plugins: must be a list".into())),
    };
    let mut found = None;
    for (i, plugin) in plugins.iter().enumerate() {
        let name = plugin.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            return Err(invalid(format!("plugins[{i}].name: Required value")));
        }
        if name != "PodSecurity" {
            tracing::warn!(
                plugin = name,
                "admission configuration for a plugin Bulwark does not configure; ignored"
            );
            continue;
        }
        if found.is_some() {
            return Err(invalid(format!(
                "plugins[{i}]: Duplicate value: \"PodSecurity\""
            )));
        }
        let configuration = match (plugin.get("configuration"), plugin.get("path")) {
            (Some(inline), _) if !inline.is_null() => inline.clone(),
            (_, Some(Value::String(file))) => {
                let file = path.parent().unwrap_or(Path::new(".")).join(file);
                read_document(&file)?
            }
            _ => {
                return Err(invalid(format!(
                    "plugins[{i}]: PodSecurity needs a configuration or a path"
                )));
            }
        };
        let mut config =
            bulwark_psa::Config::from_configuration(&configuration).map_err(|err| {
                invalid(format!(
                    "plugins[{i}] (PodSecurity): {}",
                    err.errors.join("; ")
                ))
            })?;
        config.kubernetes_minor = KUBERNETES_VERSION.1.parse().ok();
        found = Some(config);
    }
    Ok(found)
}

/// A YAML (or JSON) file as JSON.
fn read_document(path: &Path) -> Result<Value, AdmissionConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| AdmissionConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    serde_yaml_ng::from_str::<Value>(&text).map_err(|err| AdmissionConfigError::Syntax {
        path: shown,
        message: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Option<bulwark_psa::Config>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admission.yaml");
        std::fs::write(&path, text).unwrap();
        load(&path).map_err(|e| e.to_string().replace(&path.display().to_string(), "FILE"))
    }

    #[test]
    fn a_pod_security_entry_sets_defaults_and_exemptions() {
        let config = load_text(
            "apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults: {enforce: restricted, enforce-version: latest}
    exemptions: {usernames: [ci-bot], namespaces: [legacy]}
",
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.exemptions.usernames, ["ci-bot"]);
        assert_eq!(config.exemptions.namespaces, ["legacy"]);
        assert!(config.kubernetes_minor.is_some());
    }

    #[test]
    fn broken_files_name_the_problem() {
        let syntax = load_text("apiVersion: apiserver.config.k8s.io/v1\nkind: [\n").unwrap_err();
        assert!(
            syntax.starts_with("admission configuration FILE: "),
            "{syntax}"
        );
        assert!(syntax.contains("line"), "{syntax}");
        let kind = load_text("apiVersion: v1\nkind: ConfigMap\n").unwrap_err();
        assert_eq!(
            kind,
            "admission configuration FILE: apiVersion/kind must be apiserver.config.k8s.io/v1 AdmissionConfiguration, not v1/ConfigMap"
        );
        let level = load_text(
            "apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults: {enforce: strictest}
",
        )
        .unwrap_err();
        assert!(level.contains("plugins[0] (PodSecurity): "), "{level}");
        assert!(level.contains("strictest"), "{level}");
        assert_eq!(
            load_text("apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\n")
                .unwrap()
                .map(|_| ()),
            None
        );
    }
}
