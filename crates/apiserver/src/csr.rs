//! certificates.k8s.io/v1 CertificateSigningRequests: what upstream's CSR
//! registry strategy and its three admission plugins do.
//!
//! - Create: `spec.username`, `uid`, `groups` and `extra` come from the
//!   requester, never from the body; `status` starts empty.
//! - Updates: `spec` never changes; `/approval` writes only the conditions,
//!   `/status` everything but the Approved and Denied conditions.
//! - Validation: `spec.request` is a PEM `CERTIFICATE REQUEST`, a
//!   `signerName` and `usages` are required, `expirationSeconds` ≥ 600;
//!   Approved and Denied exclude each other and are never removed; a
//!   certificate, once issued, stays.
//! - Admission (upstream's CertificateApproval, CertificateSigning and
//!   CertificateSubjectRestriction): adding Approved or Denied needs the
//!   `approve` verb on `signers` for the signerName, issuing a certificate
//!   needs `sign`, and nobody may ask the kube-apiserver-client signer for
//!   a `system:masters` certificate.
//!
//! The signer and the auto-approver are controllers (`bulwark-controllers`'
//! `certificates.rs`); the API server only keeps the rules.

use serde_json::{Value, json};

use crate::request::ResourceRequest;
use crate::status::{ApiError, ApiResult, Cause};

/// The signer of client certificates for the API server.
pub(crate) const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";

/// The key usages a CSR may ask for (upstream's `KeyUsage` constants).
const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

fn conditions(csr: &Value) -> Vec<Value> {
    csr.pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn has_condition(csr: &Value, kind: &str) -> bool {
    conditions(csr).iter().any(|c| c["type"] == kind)
}

fn certificate(csr: &Value) -> &str {
    csr.pointer("/status/certificate")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `kubectl get csr`'s CONDITION column: `Pending`, `Approved`, `Denied`,
/// then `,Failed` and `,Issued` as upstream's printer builds it.
pub(crate) fn condition_summary(csr: &Value) -> String {
    let mut out = if has_condition(csr, "Denied") {
        "Denied".to_owned()
    } else if has_condition(csr, "Approved") {
        "Approved".to_owned()
    } else {
        "Pending".to_owned()
    };
    if has_condition(csr, "Failed") {
        out.push_str(",Failed");
    }
    if !certificate(csr).is_empty() {
        out.push_str(",Issued");
    }
    out
}

/// On create: the requester's identity goes into the spec; status starts empty.
pub(crate) fn prepare_create(req: &ResourceRequest, csr: &mut Value) {
    if req.resource.kind != "CertificateSigningRequest" {
        return;
    }
    let (username, groups) = req
        .user
        .as_ref()
        .map(|u| (u.username.clone(), u.groups.clone()))
        .unwrap_or_default();
    if let Some(spec) = csr.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("username".into(), json!(username));
        spec.insert("groups".into(), json!(groups));
        spec.remove("uid");
        spec.remove("extra");
    }
    if let Some(object) = csr.as_object_mut() {
        object.remove("status");
    }
}

/// On update: `spec` stays; through `/approval` only the conditions change,
/// through `/status` everything but the Approved and Denied conditions, and
/// the main resource changes neither.
pub(crate) fn prepare_update(
    subresource: Option<&str>,
    current: &Value,
    body: &Value,
    merged: &mut Value,
) {
    merged["spec"] = current.get("spec").cloned().unwrap_or(json!({}));
    let keep_decisions = |from_old: &Value, mut conditions: Vec<Value>| {
        conditions.retain(|c| c["type"] != "Approved" && c["type"] != "Denied");
        let kept = self::conditions(from_old)
            .into_iter()
            .filter(|c| c["type"] == "Approved" || c["type"] == "Denied");
        let mut out: Vec<Value> = kept.collect();
        out.extend(conditions);
        out
    };
    match subresource {
        Some("approval") => {
            let mut status = current.get("status").cloned().unwrap_or(json!({}));
            status["conditions"] = json!(stamp_conditions(
                &self::conditions(current),
                self::conditions(body)
            ));
            merged["status"] = status;
        }
        Some("status") => {
            let mut status = merged.get("status").cloned().unwrap_or(json!({}));
            let updated = keep_decisions(current, conditions(merged));
            status["conditions"] = json!(stamp_conditions(&self::conditions(current), updated));
            merged["status"] = status;
        }
        _ => merged["status"] = current.get("status").cloned().unwrap_or(json!({})),
    }
    if merged["status"]["conditions"]
        .as_array()
        .is_some_and(Vec::is_empty)
        && let Some(status) = merged["status"].as_object_mut()
    {
        status.remove("conditions");
    }
}

/// New conditions get `lastUpdateTime` / `lastTransitionTime` now, as
/// upstream's strategy populates them.
fn stamp_conditions(old: &[Value], mut new: Vec<Value>) -> Vec<Value> {
    let now = crate::objects::now();
    for condition in &mut new {
        let before = old.iter().find(|c| c["type"] == condition["type"]);
        if condition.get("lastUpdateTime").is_none_or(Value::is_null) {
            condition["lastUpdateTime"] = json!(now);
        }
        if condition
            .get("lastTransitionTime")
            .is_none_or(Value::is_null)
        {
            condition["lastTransitionTime"] = match before {
                Some(b) if b["status"] == condition["status"] => {
                    b.get("lastTransitionTime").cloned().unwrap_or(json!(now))
                }
                _ => json!(now),
            };
        }
    }
    new
}

fn required(field: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: field.into(),
    }
}

fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {detail}"),
        field: field.into(),
    }
}

/// The PEM-decoded DER of `spec.request` (itself base64 of PEM bytes).
pub(crate) fn request_der(csr: &Value) -> Result<Vec<u8>, &'static str> {
    use base64::Engine as _;
    let encoded = csr
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST")?;
    let mut reader = std::io::Cursor::new(pem);
    match rustls_pemfile::read_one(&mut reader) {
        Ok(Some(rustls_pemfile::Item::Csr(der))) => Ok(der.to_vec()),
        _ => Err("PEM block type must be CERTIFICATE REQUEST"),
    }
}

/// Field errors of a CSR (create and update).
pub(crate) fn validate(csr: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = csr.get("spec").cloned().unwrap_or(json!({}));
    match spec.get("request").and_then(Value::as_str) {
        None | Some("") => causes.push(required("spec.request")),
        Some(_) => match request_der(csr) {
            Ok(der) => {
                use x509_parser::prelude::FromDer as _;
                let parsed =
                    x509_parser::certification_request::X509CertificationRequest::from_der(&der);
                if parsed.is_err() {
                    causes.push(invalid(
                        "spec.request",
                        &json!("<omitted>"),
                        "invalid certificate request",
                    ));
                }
            }
            Err(why) => causes.push(invalid("spec.request", &json!("<omitted>"), why)),
        },
    }
    match spec.get("signerName").and_then(Value::as_str) {
        None | Some("") => causes.push(required("spec.signerName")),
        Some(signer) => {
            let valid = signer
                .split_once('/')
                .is_some_and(|(domain, path)| domain.contains('.') && !path.is_empty());
            if !valid {
                causes.push(invalid(
                    "spec.signerName",
                    &json!(signer),
                    "must be a fully qualified domain and path of the form 'example.com/signer-name'",
                ));
            }
        }
    }
    match spec.get("usages").and_then(Value::as_array) {
        None => causes.push(required("spec.usages")),
        Some(usages) if usages.is_empty() => causes.push(required("spec.usages")),
        Some(usages) => {
            let mut seen = std::collections::HashSet::new();
            for (i, usage) in usages.iter().enumerate() {
                let field = format!("spec.usages[{i}]");
                let text = usage.as_str().unwrap_or_default();
                if !USAGES.contains(&text) {
                    let list: Vec<String> = USAGES.iter().map(|s| format!("\"{s}\"")).collect();
                    causes.push(Cause {
                        reason: "FieldValueNotSupported".into(),
                        message: format!(
                            "Unsupported value: {usage}: supported values: {}",
                            list.join(", ")
                        ),
                        field,
                    });
                } else if !seen.insert(text) {
                    causes.push(Cause {
                        reason: "FieldValueDuplicate".into(),
                        message: format!("Duplicate value: {usage}"),
                        field,
                    });
                }
            }
        }
    }
    if let Some(seconds) = spec.get("expirationSeconds").and_then(Value::as_i64)
        && seconds < 600
    {
        causes.push(invalid(
            "spec.expirationSeconds",
            &json!(seconds),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    let approved = has_condition(csr, "Approved");
    let denied = has_condition(csr, "Denied");
    if approved && denied {
        causes.push(invalid(
            "status.conditions",
            &json!(conditions(csr)),
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    causes
}

/// Field errors of an update: decisions and certificates are final.
pub(crate) fn validate_update(current: &Value, merged: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for kind in ["Approved", "Denied"] {
        if has_condition(current, kind) && !has_condition(merged, kind) {
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                message: format!(
                    "Forbidden: updates may not remove a condition of type \"{kind}\""
                ),
                field: "status.conditions".into(),
            });
        }
    }
    let (before, after) = (certificate(current), certificate(merged));
    if !before.is_empty() && before != after {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: updates may not modify existing certificate content".into(),
            field: "status.certificate".into(),
        });
    }
    causes
}

/// The admission checks: approve / sign permission on the signer, and no
/// `system:masters` certificates from the kube-apiserver-client signer.
pub(crate) fn admit(req: &ResourceRequest, current: Option<&Value>, csr: &Value) -> ApiResult<()> {
    if req.resource.kind != "CertificateSigningRequest" {
        return Ok(());
    }
    let signer = csr
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = csr
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let forbidden = |why: String| ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!(
            "certificatesigningrequests.certificates.k8s.io \"{name}\" is forbidden: {why}"
        ),
        details: Some(
            json!({"name": name, "group": "certificates.k8s.io", "kind": "certificatesigningrequests"}),
        ),
    };
    let Some(current) = current else {
        if signer == KUBE_APISERVER_CLIENT && requests_masters(csr) {
            return Err(forbidden(format!(
                "use of {KUBE_APISERVER_CLIENT} signer with system:masters group is not allowed"
            )));
        }
        return Ok(());
    };
    let decided = |o: &Value| {
        conditions(o)
            .into_iter()
            .filter(|c| c["type"] == "Approved" || c["type"] == "Denied")
            .count()
    };
    match req.subresource.as_deref() {
        Some("approval") if decided(csr) > decided(current) && !may(req, "approve", signer) => {
            return Err(forbidden(format!(
                "user not permitted to approve requests with signerName \"{signer}\""
            )));
        }
        Some("status") if certificate(csr) != certificate(current) && !may(req, "sign", signer) => {
            return Err(forbidden(format!(
                "user not permitted to sign requests with signerName \"{signer}\""
            )));
        }
        _ => {}
    }
    Ok(())
}

/// Whether the requester holds `verb` on `signers` named `signer` or its
/// `<domain>/*` wildcard, as upstream's `IsAuthorizedForSignerName`.
fn may(req: &ResourceRequest, verb: &str, signer: &str) -> bool {
    let (Some(authorizer), Some(user)) = (&req.authorizer, &req.user) else {
        return true;
    };
    let user = bulwark_rbac::UserInfo {
        name: user.username.clone(),
        groups: user.groups.clone(),
        ..bulwark_rbac::UserInfo::default()
    };
    let ask = |name: &str| {
        authorizer
            .decide(&bulwark_rbac::Attributes::resource(
                user.clone(),
                verb,
                "certificates.k8s.io",
                "signers",
                "",
                name,
            ))
            .is_allowed()
    };
    ask(signer)
        || signer
            .split_once('/')
            .is_some_and(|(domain, _)| ask(&format!("{domain}/*")))
}

/// Whether the CSR's subject names the `system:masters` organization.
fn requests_masters(csr: &Value) -> bool {
    use x509_parser::prelude::FromDer as _;
    let Ok(der) = request_der(csr) else {
        return false;
    };
    let Ok((_, parsed)) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&der)
    else {
        return false;
    };
    parsed
        .certification_request_info
        .subject
        .iter_organization()
        .any(|o| o.as_str() == Ok("system:masters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_condition_column_reads_as_kubectl_prints_it() {
        let csr = |conditions: Value, certificate: &str| json!({"status": {"conditions": conditions, "certificate": certificate}});
        assert_eq!(condition_summary(&csr(json!([]), "")), "Pending");
        assert_eq!(
            condition_summary(&csr(json!([{"type": "Approved"}]), "x")),
            "Approved,Issued"
        );
        assert_eq!(
            condition_summary(&csr(json!([{"type": "Approved"}, {"type": "Failed"}]), "")),
            "Approved,Failed"
        );
        assert_eq!(
            condition_summary(&csr(json!([{"type": "Denied"}]), "")),
            "Denied"
        );
    }

    #[test]
    fn approval_writes_only_conditions_and_status_keeps_decisions() {
        let current = json!({"spec": {"signerName": "a/b"}, "status": {"conditions": [{"type": "Approved", "status": "True"}]}});
        // Through /status, a signer cannot drop or forge the decision.
        let body = json!({"spec": {"signerName": "evil/x"}, "status": {"certificate": "Y2VydA==", "conditions": [{"type": "Denied", "status": "True"}]}});
        let mut merged = body.clone();
        prepare_update(Some("status"), &current, &body, &mut merged);
        assert_eq!(merged["spec"]["signerName"], "a/b");
        let types: Vec<&Value> = merged["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .map(|c| &c["type"])
            .collect();
        assert_eq!(types, [&json!("Approved")]);
        assert_eq!(merged["status"]["certificate"], "Y2VydA==");
        // Through /approval, the certificate cannot be set.
        let mut merged = body.clone();
        prepare_update(Some("approval"), &current, &body, &mut merged);
        assert!(merged["status"].get("certificate").is_none());
        assert_eq!(merged["status"]["conditions"][0]["type"], "Denied");
        assert!(
            !validate_update(&current, &merged).is_empty(),
            "Approved may not be removed"
        );
    }
}
