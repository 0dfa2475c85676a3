//! Field selectors (`fieldSelector=a=b,c!=d`), parsed and matched as
//! `k8s.io/apimachinery/pkg/fields` does, plus the per-kind table of the
//! field labels kube-apiserver accepts and how to read them from an object.
//!
//! ```
//! use bulwark_api::fields::{object_fields, FieldSelector};
//! use serde_json::json;
//!
//! let pod = json!({"metadata": {"name": "p", "namespace": "default"},
//!                  "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
//! let s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
//! s.check_supported("v1", "Pod").unwrap();
//! let fields = object_fields("v1", "Pod", &pod);
//! assert!(s.matches(|f| fields.get(f).map(String::as_str)));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::labels::SelectorError;

/// A conjunction of `field=value` / `field!=value` terms. The empty selector
/// matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<Term>,
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The field label, e.g. `spec.nodeName`.
    pub field: String,
    /// `true` for `!=`.
    pub negated: bool,
    /// The value, unescaped.
    pub value: String,
}

impl FieldSelector {
    /// Parses the string form. `=` and `==` mean the same; `\` escapes `\`,
    /// `,` and `=` in values.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(selector);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, value)) = split_term(part) else {
                return Err(SelectorError(format!(
                    "invalid selector: '{selector}'; can't understand '{part}'"
                )));
            };
            terms.push(Term {
                field: field.to_owned(),
                negated: op == "!=",
                value: unescape(value)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the selector places no restriction.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, sorted as upstream sorts them.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Whether an object whose field labels `lookup` returns matches; a field
    /// the object lacks reads as `""`, as upstream's `Fields.Get` does.
    pub fn matches<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.terms.iter().all(|t| {
            let actual = lookup(&t.field).unwrap_or_default();
            (actual == t.value) != t.negated
        })
    }

    /// The value field `field` must have, if a `=` term pins it.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }

    /// Refuses field labels the API server does not support for this kind,
    /// with upstream's message (answered as 400 `BadRequest`).
    pub fn check_supported(&self, api_version: &str, kind: &str) -> Result<(), SelectorError> {
        let supported = supported_fields(api_version, kind);
        for t in &self.terms {
            if supported.contains(&t.field.as_str()) {
                continue;
            }
            return Err(SelectorError(if has_custom_fields(api_version, kind) {
                format!("field label not supported: {}", t.field)
            } else {
                format!(
                    "\"{}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                    t.field
                )
            }));
        }
        Ok(())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                let op = if t.negated { "!=" } else { "=" };
                format!("{}{op}{}", t.field, escape(&t.value))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Splits on commas not escaped by a backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The first operator in the term (`!=`, then `==`, then `=` at each place).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if rest.starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

fn unescape(s: &str) -> Result<String, SelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune as its code point here.
            ',' | '=' => {
                return Err(SelectorError(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError(
            "invalid field selector: invalid escape sequence: \\".to_owned(),
        ));
    }
    Ok(out)
}

// ---- the field labels of the built-in kinds ----

const META: [&str; 2] = ["metadata.name", "metadata.namespace"];

/// Extra field labels by kind, as upstream registers them
/// (`AddFieldLabelConversionFunc` in each group's `conversion.go`).
fn extra_fields(api_version: &str, kind: &str) -> Option<&'static [&'static str]> {
    Some(match (api_version, kind) {
        ("v1", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("v1", "Node") => &["spec.unschedulable"],
        ("v1", "ReplicationController") => &["status.replicas"],
        ("v1", "Namespace") => &["status.phase"],
        ("v1", "Secret") => &["type"],
        ("v1", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("v1", "PersistentVolume" | "Service") => &[],
        ("apps/v1", "ReplicaSet") => &["status.replicas"],
        ("batch/v1", "Job") => &["status.successful"],
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => &["spec.signerName"],
        _ => return None,
    })
}

/// Whether upstream registers a conversion function (and so the "field
/// label not supported" wording) for the kind.
fn has_custom_fields(api_version: &str, kind: &str) -> bool {
    extra_fields(api_version, kind).is_some()
}

/// The field labels a field selector may use for a kind.
pub fn supported_fields(api_version: &str, kind: &str) -> Vec<&'static str> {
    let mut all = META.to_vec();
    all.extend(extra_fields(api_version, kind).unwrap_or_default());
    all
}

/// Reads the supported field labels of an object, as upstream's `GetAttrs`
/// functions do (booleans and counts as their Go text).
pub fn object_fields(api_version: &str, kind: &str, obj: &Value) -> BTreeMap<String, String> {
    supported_fields(api_version, kind)
        .into_iter()
        .map(|field| (field.to_owned(), object_field_value(obj, field)))
        .collect()
}

/// The value of one supported field label of an object, as upstream's
/// `GetAttrs` functions read it (booleans and counts as their Go text; an
/// unset field is empty).
pub fn object_field_value(obj: &Value, field: &str) -> String {
    match field {
        // The first pod IP; upstream indexes `status.podIPs` by it too.
        "status.podIPs" => lookup(obj, "status.podIPs")
            .and_then(|v| v.get(0))
            .and_then(|ip| ip.get("ip"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        "status.podIP" => lookup(obj, "status.podIP")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        "source" => lookup(obj, "source.component")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        "spec.hostNetwork" | "spec.unschedulable" => lookup(obj, field)
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        "status.replicas" | "status.successful" => lookup(obj, field)
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        _ => match lookup(obj, field) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        },
    }
}

fn lookup<'a>(obj: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(obj, |v, k| v.get(k))
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};
    use serde_json::json;

    use super::*;

    fn check(selector: &str, expect: Expect) {
        expect.assert_eq(&match FieldSelector::parse(selector) {
            Ok(s) => format!("ok: {s}"),
            Err(e) => format!("error: {e}"),
        });
    }

    #[test]
    fn parsing() {
        check("", expect!["ok: "]);
        check("a=b", expect!["ok: a=b"]);
        check("a==b", expect!["ok: a=b"]);
        check("a!=b", expect!["ok: a!=b"]);
        check("b=2,a=1", expect!["ok: a=1,b=2"]);
        check("a=", expect!["ok: a="]);
        check("a=b,,", expect!["ok: a=b"]);
        check(r"a=x\,y\=z\\", expect![[r"ok: a=x\,y\=z\\"]]);
        check(
            "a",
            expect!["error: invalid selector: 'a'; can't understand 'a'"],
        );
        check(
            "x=1,b",
            expect!["error: invalid selector: 'x=1,b'; can't understand 'b'"],
        );
        check(
            "a=b=c",
            expect!["error: invalid field selector: unescaped character in value: 61"],
        );
        check(
            r"a=\x",
            expect![[r"error: invalid field selector: invalid escape sequence: \x"]],
        );
        check(
            r"a=x\",
            expect![[r"error: invalid field selector: invalid escape sequence: \"]],
        );
        check(
            "a!==b",
            expect!["error: invalid field selector: unescaped character in value: 61"],
        );
    }

    #[test]
    fn matching_pods_and_events() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": "n1", "hostNetwork": true},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]}});
        let fields = object_fields("v1", "Pod", &pod);
        let get = |f: &str| fields.get(f).map(String::as_str);
        let results: Vec<String> = [
            "spec.nodeName=n1",
            "spec.nodeName=n2",
            "spec.nodeName!=n2,status.phase=Running",
            "spec.nodeName=",
            "spec.hostNetwork=true",
            "status.podIPs=10.0.0.1",
            "metadata.name=p,metadata.namespace=ns",
            "spec.restartPolicy=",
        ]
        .iter()
        .map(|s| {
            let sel = FieldSelector::parse(s).expect("valid");
            format!("{s}: {}", sel.matches(get))
        })
        .collect();
        expect![[r#"
            spec.nodeName=n1: true
            spec.nodeName=n2: false
            spec.nodeName!=n2,status.phase=Running: true
            spec.nodeName=: false
            spec.hostNetwork=true: true
            status.podIPs=10.0.0.1: true
            metadata.name=p,metadata.namespace=ns: true
            spec.restartPolicy=: true"#]]
        .assert_eq(&results.join("\n"));

        let event = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p", "uid": "u1"},
            "reason": "Started", "source": {"component": "kubelet"}, "type": "Normal"});
        expect![[r#"{"involvedObject.apiVersion": "", "involvedObject.fieldPath": "", "involvedObject.kind": "Pod", "involvedObject.name": "p", "involvedObject.namespace": "", "involvedObject.resourceVersion": "", "involvedObject.uid": "u1", "metadata.name": "e", "metadata.namespace": "", "reason": "Started", "reportingComponent": "", "source": "kubelet", "type": "Normal"}"#]]
        .assert_eq(&format!("{:?}", object_fields("v1", "Event", &event)));
    }

    #[test]
    fn unsupported_labels() {
        let check_kind =
            |selector: &str, api_version: &str, kind: &str| match FieldSelector::parse(selector)
                .and_then(|s| s.check_supported(api_version, kind))
            {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.to_string(),
            };
        let out = [
            check_kind("spec.nodeName=x", "v1", "Pod"),
            check_kind("spec.foo=x", "v1", "Pod"),
            check_kind("metadata.name=x", "v1", "ConfigMap"),
            check_kind("data.x=y", "v1", "ConfigMap"),
            check_kind("spec.x=y", "v1", "Service"),
            check_kind("spec.replicas=1", "apps/v1", "Deployment"),
            check_kind("status.replicas=1", "apps/v1", "ReplicaSet"),
        ];
        expect![[r#"
            ok
            field label not supported: spec.foo
            ok
            "data.x" is not a known field selector: only "metadata.name", "metadata.namespace"
            field label not supported: spec.x
            "spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"
            ok"#]]
        .assert_eq(&out.join("\n"));
    }
}
