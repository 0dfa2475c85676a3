//! Pod Security Admission: the Kubernetes Pod Security Standards
//! (Baseline and Restricted), applied as upstream's
//! `k8s.io/pod-security-admission` applies them.
//!
//! This crate is pure logic over objects in their JSON API form: no IO,
//! no clock, no Kubernetes client. The API server's admission chain calls
//! it with the namespace's labels (and, for namespace updates, the
//! namespace's pods) and turns a [`Decision`] into a 403 `Forbidden`
//! Status, `Warning` headers and audit annotations. Messages, check order
//! and pluralization match upstream's word for word, so clients and
//! tooling that read them keep working.
//!
//! Per namespace, the labels `pod-security.kubernetes.io/{enforce,audit,warn}`
//! (`privileged`, `baseline`, `restricted`) and their `-version` labels
//! (`latest` or `v1.N`) select a [`LevelVersion`] for each mode; the
//! [`Config`] supplies defaults — Bulwark's are enforce `baseline`, warn and
//! audit `restricted` — and exemptions by username, runtime class and
//! namespace. Objects should be defaulted first, as upstream's admission
//! sees them; [`Config::kubernetes_minor`] caps `latest` at the Kubernetes
//! version the API server reports, as upstream's emulation version does.
//!
//! Inside: `checks` holds one function per control and the registry that
//! orders and versions them; `admission` the pod and workload decisions;
//! `namespace` the namespace-label decisions; `level` the labels and their
//! parsing; `pod` a panic-free view of the JSON; `render` upstream's
//! quoting and pluralization.
//!
//! ```
//! use std::collections::BTreeMap;
//! use bulwark_psa::{Config, evaluate_pod};
//!
//! let pod = serde_json::json!({
//!     "metadata": {"name": "p"},
//!     "spec": {"containers": [{"name": "c", "image": "nginx",
//!         "securityContext": {"privileged": true}}]}
//! });
//! let d = evaluate_pod(&Config::default(), "default", &BTreeMap::new(), "alice", &pod);
//! assert!(!d.allowed);
//! assert_eq!(
//!     d.forbidden_message.as_deref(),
//!     Some(r#"violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#),
//! );
//! ```

mod admission;
mod checks;
mod config;
mod level;
mod namespace;
mod pod;
mod render;

pub use admission::{
    Config, Decision, Exemptions, evaluate_pod, evaluate_pod_update, evaluate_workload,
};
pub use config::ConfigError;
pub use level::{LABEL_PREFIX, LabelError, Level, LevelVersion, Levels, ParseError, Version};
pub use namespace::{
    NamespaceDecision, evaluate_namespace_create, evaluate_namespace_update,
    pods_in_namespace_warnings,
};
