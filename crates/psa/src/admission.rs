//! Admission decisions for pods and pod-template workloads (upstream's
//! `admission/admission.go`, `ValidatePod`, `ValidatePodController` and
//! `EvaluatePod`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::checks;
use crate::level::{LABEL_PREFIX, LabelError, Level, LevelVersion, Levels};
use crate::pod::{PodView, array, field, path, string};
use crate::render::{Violation, forbidden_detail};

/// The PodSecurity admission configuration (upstream's
/// `PodSecurityConfiguration`: defaults and exemptions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Levels for namespaces that do not set their own labels.
    pub defaults: Levels,
    /// Requests that are never checked.
    pub exemptions: Exemptions,
    /// The Kubernetes minor version the API server emulates (reports in
    /// `/version`), as upstream's emulation version: when it is older than
    /// the newest checks this crate knows, `latest` and newer versions
    /// evaluate as `v1.<this>`. `None` evaluates `latest` with every check.
    pub kubernetes_minor: Option<u64>,
}

/// Requests exempt from Pod Security (upstream's `PodSecurityExemptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exemptions {
    /// Authenticated usernames whose requests are exempt (not the users
    /// of controllers that create pods on their behalf).
    pub usernames: Vec<String>,
    /// Pods with one of these `spec.runtimeClassName`s are exempt.
    pub runtime_class_names: Vec<String>,
    /// Namespaces whose pods are exempt.
    pub namespaces: Vec<String>,
}

/// What admission answers for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// When denied: `violates PodSecurity "<level>:<version>": …`. The API
    /// server answers 403 with the message `pods "<name>" is forbidden: `
    /// followed by this (`pods is forbidden: …` without a name).
    pub forbidden_message: Option<String>,
    /// `Warning` headers, for the warn level.
    pub warnings: Vec<String>,
    /// Audit annotations, keys already prefixed `pod-security.kubernetes.io/`
    /// (`enforce-policy`, `audit-violations`, `exempt`, `error`).
    pub audit_annotations: BTreeMap<String, String>,
}

impl Decision {
    /// The 403 Status message for a denied pod, as upstream's
    /// `NewForbidden`: `pods "<name>" is forbidden: violates PodSecurity …`
    /// (`pods is forbidden: …` when the name is not known yet).
    pub fn forbidden_status_message(&self, pod_name: &str) -> Option<String> {
        let message = self.forbidden_message.as_deref()?;
        Some(if pod_name.is_empty() {
            format!("pods is forbidden: {message}")
        } else {
            format!("pods \"{pod_name}\" is forbidden: {message}")
        })
    }

    fn allowed() -> Self {
        Decision {
            allowed: true,
            ..Decision::default()
        }
    }

    fn exempt(reason: &str) -> Self {
        let mut d = Decision::allowed();
        d.annotate("exempt", reason.to_owned());
        d
    }

    fn annotate(&mut self, key: &str, value: String) {
        self.audit_annotations
            .insert(format!("{LABEL_PREFIX}{key}"), value);
    }
}

/// Decides a pod create in `namespace` (whose labels are given) by
/// `username`: enforce denies, audit annotates, warn warns.
///
/// The pod should be defaulted first, as upstream's admission sees it
/// (e.g. `hostPort` defaulted from `containerPort` under `hostNetwork`).
/// Upstream does not evaluate the pod subresources `exec`, `attach`,
/// `binding`, `eviction`, `log`, `portforward`, `proxy` and `status`;
/// other pod updates (`ephemeralcontainers` included) go through
/// [`evaluate_pod_update`].
pub fn evaluate_pod(
    config: &Config,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    username: &str,
    pod: &Value,
) -> Decision {
    if let Some(d) = exempt_request(config, namespace, username) {
        return d;
    }
    let (levels, errors) = Levels::from_labels(namespace_labels, &config.defaults);
    if errors.is_empty() && levels.fully_privileged() {
        let mut d = Decision::allowed();
        d.annotate(
            "enforce-policy",
            LevelVersion::latest(Level::Privileged).to_string(),
        );
        return d;
    }
    evaluate(config, &levels, &errors, &PodView::new(pod), true)
}

/// Decides a pod update: only a change of container images (or a new
/// ephemeral container) is checked again, as upstream; other updates are
/// allowed as they are.
pub fn evaluate_pod_update(
    config: &Config,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    username: &str,
    old_pod: &Value,
    pod: &Value,
) -> Decision {
    if let Some(d) = exempt_request(config, namespace, username) {
        return d;
    }
    let (levels, errors) = Levels::from_labels(namespace_labels, &config.defaults);
    if (errors.is_empty() && levels.fully_privileged()) || is_significant_update(old_pod, pod) {
        return evaluate_pod(config, namespace, namespace_labels, username, pod);
    }
    Decision::allowed()
}

/// Checks the pod template of a workload (Deployment, ReplicaSet,
/// StatefulSet, DaemonSet, Job, CronJob, ReplicationController,
/// PodTemplate) at the namespace's warn and audit levels. Never denies:
/// the pods it creates are checked at enforce when they are created. Any
/// other kind is not a pod-template resource and is allowed unexamined.
/// Upstream does not evaluate workload subresources (`scale`, `status`).
pub fn evaluate_workload(
    config: &Config,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    username: &str,
    object: &Value,
) -> Decision {
    let Some(template) = pod_template(object) else {
        return Decision::allowed();
    };
    if let Some(d) = exempt_request(config, namespace, username) {
        return d;
    }
    let (levels, errors) = Levels::from_labels(namespace_labels, &config.defaults);
    if errors.is_empty()
        && levels.warn.level == Level::Privileged
        && levels.audit.level == Level::Privileged
    {
        return Decision::allowed();
    }
    match template {
        Template::Absent => Decision::allowed(),
        Template::Present(t) => evaluate(config, &levels, &errors, &PodView::new(t), false),
    }
}

/// A workload's pod template: `Absent` where upstream's is a nil pointer.
enum Template<'a> {
    Absent,
    Present(&'a Value),
}

static EMPTY: Value = Value::Null;

/// The pod template of a pod-template resource, by `kind`; `None` for
/// other kinds.
fn pod_template(object: &Value) -> Option<Template<'_>> {
    let kind = object.get("kind").and_then(Value::as_str)?;
    let present = |keys: &[&str]| Template::Present(path(object, keys).unwrap_or(&EMPTY));
    Some(match kind {
        "PodTemplate" => present(&["template"]),
        // Only here is the template a pointer upstream; a missing one is
        // not evaluated.
        "ReplicationController" => match path(object, &["spec", "template"]) {
            Some(t) => Template::Present(t),
            None => Template::Absent,
        },
        "ReplicaSet" | "Deployment" | "DaemonSet" | "StatefulSet" | "Job" => {
            present(&["spec", "template"])
        }
        "CronJob" => present(&["spec", "jobTemplate", "spec", "template"]),
        _ => return None,
    })
}

fn exempt_request(config: &Config, namespace: &str, username: &str) -> Option<Decision> {
    let ex = &config.exemptions;
    if !namespace.is_empty() && ex.namespaces.iter().any(|n| n == namespace) {
        return Some(Decision::exempt("namespace"));
    }
    if !username.is_empty() && ex.usernames.iter().any(|u| u == username) {
        return Some(Decision::exempt("user"));
    }
    None
}

pub(crate) fn exempt_runtime_class(config: &Config, pod: &PodView<'_>) -> bool {
    pod.runtime_class_name().is_some_and(|rc| {
        config
            .exemptions
            .runtime_class_names
            .iter()
            .any(|e| e == rc)
    })
}

/// Upstream's `EvaluatePod`: enforce (if asked), then audit, then warn,
/// reusing a result when two modes name the same level and version.
fn evaluate(
    config: &Config,
    levels: &Levels,
    errors: &[LabelError],
    pod: &PodView<'_>,
    enforce: bool,
) -> Decision {
    if exempt_runtime_class(config, pod) {
        return Decision::exempt("runtimeClass");
    }
    let mut d = Decision::allowed();
    if !errors.is_empty() {
        d.annotate(
            "error",
            format!("Failed to parse policy: {}", aggregate(errors)),
        );
    }
    let mut cache: Vec<(LevelVersion, Vec<Violation>)> = Vec::new();
    let mut run = |lv: LevelVersion| -> Vec<Violation> {
        if let Some((_, v)) = cache.iter().find(|(k, _)| *k == lv) {
            return v.clone();
        }
        let v = checks::evaluate(lv, pod, config.kubernetes_minor);
        cache.push((lv, v.clone()));
        v
    };
    if enforce {
        d.annotate("enforce-policy", levels.enforce.to_string());
        let violations = run(levels.enforce);
        if !violations.is_empty() {
            d.allowed = false;
            d.forbidden_message = Some(format!(
                "violates PodSecurity \"{}\": {}",
                levels.enforce,
                forbidden_detail(&violations)
            ));
        }
    }
    let violations = run(levels.audit);
    if !violations.is_empty() {
        d.annotate(
            "audit-violations",
            format!(
                "would violate PodSecurity \"{}\": {}",
                levels.audit,
                forbidden_detail(&violations)
            ),
        );
    }
    if d.allowed {
        let violations = run(levels.warn);
        if !violations.is_empty() {
            d.warnings.push(format!(
                "would violate PodSecurity \"{}\": {}",
                levels.warn,
                forbidden_detail(&violations)
            ));
        }
    }
    d
}

/// apimachinery's aggregate error text: one message alone, several
/// (deduplicated) as `[a, b]`.
pub(crate) fn aggregate(errors: &[LabelError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        let msg = e.to_string();
        if !seen.contains(&msg) {
            seen.push(msg);
        }
    }
    match seen.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Upstream's `isSignificantPodUpdate`: container counts or images changed,
/// or an ephemeral container was added or changed its image.
fn is_significant_update(old: &Value, new: &Value) -> bool {
    let spec = |p: &'_ Value| field(p, "spec").cloned().unwrap_or(Value::Null);
    let (old, new) = (spec(old), spec(new));
    for key in ["containers", "initContainers"] {
        let (o, n) = (array(&old, key), array(&new, key));
        if o.len() != n.len() || o.iter().zip(n).any(|(o, n)| image(o) != image(n)) {
            return true;
        }
    }
    let old_ephemeral = array(&old, "ephemeralContainers");
    array(&new, "ephemeralContainers").iter().any(|c| {
        match old_ephemeral
            .iter()
            .find(|o| string(o, "name") == string(c, "name"))
        {
            None => true,
            Some(o) => image(o) != image(c),
        }
    })
}

fn image(container: &Value) -> &str {
    string(container, "image")
}
