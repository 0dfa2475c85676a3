//! Admission of Namespace creates and updates: invalid labels are refused,
//! and raising the enforce level warns about existing pods that would
//! violate it (upstream's `ValidateNamespace`, `EvaluatePodsInNamespace`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::admission::{Config, aggregate, exempt_runtime_class};
use crate::checks;
use crate::level::{LABEL_PREFIX, LabelError, Level, LevelVersion, Levels};
use crate::pod::{PodView, array, field, string};
use crate::render::forbidden_reason;

/// Upstream checks at most this many existing pods on an enforce change.
const MAX_PODS_TO_CHECK: usize = 3000;

/// What admission answers for a Namespace create or update.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// When refused, the invalid labels; the API server answers 422
    /// Invalid, `Namespace "<name>" is invalid: <errors>`, one cause each.
    pub invalid: Vec<LabelError>,
    /// `Warning` headers.
    pub warnings: Vec<String>,
}

impl NamespaceDecision {
    /// The 422 Status message for refused labels, as upstream's
    /// `NewInvalid`: `Namespace "<name>" is invalid: <error>` (several
    /// errors as `[a, b]`).
    pub fn invalid_status_message(&self, name: &str) -> Option<String> {
        (!self.invalid.is_empty()).then(|| {
            format!(
                "Namespace \"{name}\" is invalid: {}",
                aggregate(&self.invalid)
            )
        })
    }

    fn allowed(warnings: Vec<String>) -> Self {
        NamespaceDecision {
            allowed: true,
            invalid: Vec::new(),
            warnings,
        }
    }

    fn invalid(invalid: Vec<LabelError>) -> Self {
        NamespaceDecision {
            allowed: false,
            invalid,
            warnings: Vec::new(),
        }
    }
}

/// Decides a Namespace create: invalid Pod Security labels are refused; an
/// exempt namespace that sets a policy is told it will be ignored.
pub fn evaluate_namespace_create(
    config: &Config,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> NamespaceDecision {
    let (levels, errors) = Levels::from_labels(labels, &config.defaults);
    if !errors.is_empty() {
        return NamespaceDecision::invalid(errors);
    }
    NamespaceDecision::allowed(
        exempt_namespace_warning(config, name, &levels, labels)
            .into_iter()
            .collect(),
    )
}

/// Decides a Namespace update. Newly invalid labels are refused (labels
/// that were already invalid in the same way are let through). When the
/// enforce level gets stricter, `pods` (the namespace's existing Pod
/// objects) are checked against it and each distinct violation is
/// returned as a warning.
pub fn evaluate_namespace_update(
    config: &Config,
    name: &str,
    old_labels: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    pods: &[Value],
) -> NamespaceDecision {
    let (new, new_errors) = Levels::from_labels(labels, &config.defaults);
    let (old, old_errors) = Levels::from_labels(old_labels, &config.defaults);
    if !new_errors.is_empty() && (old_errors.is_empty() || new_errors != old_errors) {
        return NamespaceDecision::invalid(new_errors);
    }
    if new.enforce == old.enforce
        || new.enforce.level == Level::Privileged
        || (new.enforce.version == old.enforce.version && new.enforce.level <= old.enforce.level)
    {
        return NamespaceDecision::allowed(Vec::new());
    }
    if is_exempt(config, name) {
        return NamespaceDecision::allowed(
            exempt_namespace_warning(config, name, &new, labels)
                .into_iter()
                .collect(),
        );
    }
    NamespaceDecision::allowed(pods_in_namespace_warnings(config, name, new.enforce, pods))
}

/// The warnings upstream gives when `enforce` is applied to a namespace's
/// existing `pods`: a summary line, then one line per distinct set of
/// failed controls naming the first pod (by name) and how many others.
/// Pods with an exempt runtime class are skipped; one pod per controller
/// is checked before the rest.
pub fn pods_in_namespace_warnings(
    config: &Config,
    namespace: &str,
    enforce: LevelVersion,
    pods: &[Value],
) -> Vec<String> {
    let prioritized = prioritize(config, pods);
    let total = prioritized.len();
    let checked = &prioritized[..total.min(MAX_PODS_TO_CHECK)];

    // Distinct warning text → (first pod name by order, smallest name, count).
    let mut order: Vec<String> = Vec::new();
    let mut counts: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for pod in checked {
        let violations = checks::evaluate(enforce, &PodView::new(pod), config.kubernetes_minor);
        if violations.is_empty() {
            continue;
        }
        let warning = forbidden_reason(&violations);
        let name = pod_name(pod);
        match counts.get_mut(&warning) {
            Some((first, count)) => {
                if name < first.as_str() {
                    *first = name.to_owned();
                }
                *count += 1;
            }
            None => {
                order.push(warning.clone());
                counts.insert(warning, (name.to_owned(), 1));
            }
        }
    }

    let mut warnings = Vec::new();
    if checked.len() < total {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {} of {total} existing pods",
            checked.len()
        ));
    }
    if !order.is_empty() {
        warnings.push(format!(
            "existing pods in namespace \"{namespace}\" violate the new PodSecurity enforce level \"{enforce}\""
        ));
    }
    let mut pod_warnings: Vec<String> = order
        .into_iter()
        .map(|w| {
            let (name, count) = counts.get(&w).cloned().unwrap_or_default();
            match count {
                0 => w,
                1 => format!("{name}: {w}"),
                2 => format!("{name} (and 1 other pod): {w}"),
                n => format!("{name} (and {} other pods): {w}", n - 1),
            }
        })
        .collect();
    pod_warnings.sort();
    warnings.extend(pod_warnings);
    warnings
}

fn pod_name(pod: &Value) -> &str {
    field(pod, "metadata").map_or("", |m| string(m, "name"))
}

/// Pods without a controller and the first pod of each controller, then
/// the other replicas; exempt runtime classes dropped.
fn prioritize<'a>(config: &Config, pods: &'a [Value]) -> Vec<&'a Value> {
    let mut first = Vec::new();
    let mut duplicates = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for pod in pods {
        if exempt_runtime_class(config, &PodView::new(pod)) {
            continue;
        }
        match controller_uid(pod) {
            None => first.push(pod),
            Some(uid) if seen.contains(&uid) => duplicates.push(pod),
            Some(uid) => {
                seen.push(uid);
                first.push(pod);
            }
        }
    }
    first.extend(duplicates);
    first
}

fn controller_uid(pod: &Value) -> Option<&str> {
    let metadata = field(pod, "metadata")?;
    array(metadata, "ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| string(r, "uid"))
}

fn is_exempt(config: &Config, name: &str) -> bool {
    !name.is_empty() && config.exemptions.namespaces.iter().any(|n| n == name)
}

/// `namespace "x" is exempt from Pod Security, and the policy (…) will be
/// ignored`, when an exempt namespace sets a non-default, non-privileged
/// policy.
fn exempt_namespace_warning(
    config: &Config,
    name: &str,
    levels: &Levels,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    if !is_exempt(config, name) || levels.fully_privileged() || equivalent(levels, &config.defaults)
    {
        return None;
    }
    let mut parts = Vec::new();
    for (mode, lv) in [
        ("enforce", levels.enforce),
        ("audit", levels.audit),
        ("warn", levels.warn),
    ] {
        let labelled = labels.contains_key(&format!("{LABEL_PREFIX}{mode}"))
            || labels.contains_key(&format!("{LABEL_PREFIX}{mode}-version"));
        if lv.level != Level::Privileged && labelled {
            parts.push(format!("{mode}={lv}"));
        }
    }
    Some(format!(
        "namespace \"{name}\" is exempt from Pod Security, and the policy ({}) will be ignored",
        parts.join(", ")
    ))
}

/// Upstream's `Policy.Equivalent`: privileged at any version is one policy.
fn equivalent(a: &Levels, b: &Levels) -> bool {
    let same = |x: LevelVersion, y: LevelVersion| {
        (x.level == Level::Privileged && y.level == Level::Privileged) || x == y
    };
    same(a.enforce, b.enforce) && same(a.audit, b.audit) && same(a.warn, b.warn)
}
