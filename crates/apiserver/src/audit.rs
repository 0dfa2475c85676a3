//! The audit trail of every request, through `bulwark-audit`: who asked for
//! what, from where, and what they got — denied and unauthenticated
//! requests included — with the `Audit-ID` header tying a response to its
//! events.

use std::sync::Arc;

use bulwark_audit::{Auditor, ObjectRef, RequestInfo, UserInfo as AuditUser};
use http::Method;

use crate::auth::UserInfo;
use crate::request::Target;

/// Builds what the auditor needs to know about a request before it is
/// handled.
pub(crate) fn request_info(
    target: Option<&Target>,
    method: &Method,
    path: &str,
    query: &str,
    user: Option<&UserInfo>,
    peer: Option<std::net::SocketAddr>,
    headers: &http::HeaderMap,
) -> RequestInfo {
    let header = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    };
    let user_agent = header("User-Agent").into_iter().next().unwrap_or_default();
    let audit_user = match user {
        Some(user) => AuditUser {
            username: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
        },
        None => AuditUser {
            username: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..AuditUser::default()
        },
    };
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let verb = match target {
        Some(Target::Resource(req)) => req.verb.as_str().to_owned(),
        _ => method.as_str().to_ascii_lowercase(),
    };
    let mut info = RequestInfo::new(&verb, &uri, audit_user);
    info.source_ips = peer.map(|p| vec![p.ip().to_string()]).unwrap_or_default();
    info.user_agent = user_agent;
    if let Some(target) = header("Impersonate-User").into_iter().next() {
        info.impersonated = Some(AuditUser {
            username: target,
            groups: header("Impersonate-Group"),
            ..AuditUser::default()
        });
    }
    if let Some(Target::Resource(req)) = target {
        info.object_ref = Some(ObjectRef {
            resource: req.resource.plural.to_owned(),
            namespace: req.namespace.clone().unwrap_or_default(),
            name: req.name.clone().unwrap_or_default(),
            api_group: req.resource.group.to_owned(),
            api_version: req.resource.version.to_owned(),
            subresource: req.subresource.clone().unwrap_or_default(),
            ..ObjectRef::default()
        });
    }
    info
}

/// The auditor, if auditing is on.
pub(crate) type Audit = Option<Arc<Auditor>>;

/// Reads a complete response's JSON body for the audit log and gives the
/// response back unchanged. Responses of unknown length (streams: logs,
/// exec, port-forward) and bodies over the request limit are not read.
pub(crate) async fn read_response(
    response: axum::response::Response,
) -> (axum::response::Response, Option<serde_json::Value>) {
    use hyper::body::Body as _;
    let size = response.body().size_hint().exact();
    if size.is_none_or(|n| n == 0 || n > crate::request::MAX_BODY_BYTES as u64) {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, crate::request::MAX_BODY_BYTES).await {
        Ok(bytes) => {
            let value = serde_json::from_slice(&bytes).ok();
            (
                axum::response::Response::from_parts(parts, axum::body::Body::from(bytes)),
                value,
            )
        }
        Err(_) => (
            axum::response::Response::from_parts(parts, axum::body::Body::empty()),
            None,
        ),
    }
}
