//! `audit.k8s.io/v1` events, in upstream's JSON shape (field names, order,
//! omitempty, microsecond timestamps), and the per-request facts they are
//! built from.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::{Level, Stage};

/// An authenticated identity, as `authentication.k8s.io/v1` `UserInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user's name (`system:serviceaccount:ns:sa`, a certificate CN, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// A unique id, when the authenticator has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The groups the user belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes from the authenticator.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The object a resource request acts on, as audit's `ObjectReference`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// The resource, plural (`pods`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// The namespace; empty for cluster-scoped resources.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The object's name; empty for list and create-without-name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The object's uid, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The API group; empty for the core group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// The API version (`v1`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// The object's resourceVersion, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// The subresource (`log`, `exec`, `status`), if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// What the API server knows about a request, filled in as it is handled.
/// `object_ref` is `Some` exactly for resource requests; `annotations`
/// (authorization decision, pod security, …) may be added before
/// `response_complete`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestInfo {
    /// The request's audit id (also sent in the `Audit-ID` header).
    pub audit_id: String,
    /// The authorization verb (`get`, `list`, `watch`, `create`, …).
    pub verb: String,
    /// The request URI, path and query.
    pub request_uri: String,
    /// The authenticated user (the policy matches on this one).
    pub user: UserInfo,
    /// The user impersonated through `Impersonate-*` headers, if any.
    pub impersonated: Option<UserInfo>,
    /// The client address, then any `X-Forwarded-For` addresses.
    pub source_ips: Vec<String>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The object acted on; `None` for non-resource URLs (`/healthz`).
    pub object_ref: Option<ObjectRef>,
    /// When the request arrived.
    pub received: Timestamp,
    /// Audit annotations (`authorization.k8s.io/decision`, …).
    pub annotations: BTreeMap<String, String>,
}

impl RequestInfo {
    /// A request received now, with a fresh random audit id and the rest
    /// empty.
    pub fn new(verb: &str, request_uri: &str, user: UserInfo) -> Self {
        Self {
            audit_id: uuid::Uuid::new_v4().to_string(),
            verb: verb.to_owned(),
            request_uri: request_uri.to_owned(),
            user,
            impersonated: None,
            source_ips: Vec::new(),
            user_agent: String::new(),
            object_ref: None,
            received: Timestamp::now(),
            annotations: BTreeMap::new(),
        }
    }
}

/// One `audit.k8s.io/v1` `Event`; a line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Always `Event`.
    pub kind: String,
    /// Always `audit.k8s.io/v1`.
    pub api_version: String,
    /// The level the policy chose.
    pub level: Level,
    /// The request's audit id.
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// The stage this event records.
    pub stage: Stage,
    /// The request URI.
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    /// The authorization verb.
    pub verb: String,
    /// The authenticated user.
    pub user: UserInfo,
    /// The impersonated user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    /// Client addresses.
    #[serde(default, rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    /// The `User-Agent` header.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    /// The object acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
    /// The response code and, for failures, the Status' reason and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    /// The request body (levels Request and RequestResponse only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    /// The response body (level RequestResponse only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    /// When the request arrived (RFC 3339, microseconds).
    #[serde(with = "micro_time")]
    pub request_received_timestamp: Timestamp,
    /// When this stage was reached (RFC 3339, microseconds).
    #[serde(with = "micro_time")]
    pub stage_timestamp: Timestamp,
    /// Audit annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The bounded part of a `meta/v1` `Status` upstream copies into
/// `responseStatus`: never the whole response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseStatus {
    /// Always `{}`, as upstream's empty ListMeta renders.
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    /// `Success` or `Failure`, when the response was a Status.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// The Status' message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The Status' reason (`Forbidden`, `NotFound`, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The Status' details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// The HTTP status code.
    pub code: u16,
}

impl ResponseStatus {
    fn new(code: u16, status: Option<&Value>) -> Self {
        let text = |field: &str| {
            status
                .and_then(|s| s.get(field))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            metadata: BTreeMap::new(),
            status: text("status"),
            message: text("message"),
            reason: text("reason"),
            details: status.and_then(|s| s.get("details")).cloned(),
            code,
        }
    }
}

/// The response side of an event.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Response<'a> {
    pub(crate) code: Option<u16>,
    pub(crate) status: Option<&'a Value>,
    pub(crate) request_body: Option<&'a Value>,
    pub(crate) response_body: Option<&'a Value>,
}

/// Builds the event for one stage. Bodies are attached only when the level
/// allows them and the request is a resource request; `managedFields` are
/// stripped when asked.
pub(crate) fn build(
    info: &RequestInfo,
    level: Level,
    stage: Stage,
    omit_managed_fields: bool,
    response: Response<'_>,
    now: Timestamp,
) -> Event {
    let resource_request = info.object_ref.is_some();
    let body = |v: Option<&Value>, min: Level| {
        if level < min || !resource_request {
            return None;
        }
        let mut v = v?.clone();
        if omit_managed_fields {
            strip_managed_fields(&mut v);
        }
        Some(v)
    };
    Event {
        kind: "Event".to_owned(),
        api_version: "audit.k8s.io/v1".to_owned(),
        level,
        audit_id: info.audit_id.clone(),
        stage,
        request_uri: info.request_uri.clone(),
        verb: info.verb.clone(),
        user: info.user.clone(),
        impersonated_user: info.impersonated.clone(),
        source_ips: info.source_ips.clone(),
        user_agent: info.user_agent.clone(),
        object_ref: info.object_ref.clone(),
        response_status: response
            .code
            .map(|code| ResponseStatus::new(code, response.status)),
        request_object: body(response.request_body, Level::Request),
        response_object: body(response.response_body, Level::RequestResponse),
        request_received_timestamp: info.received,
        stage_timestamp: now,
        annotations: info.annotations.clone(),
    }
}

/// Removes `metadata.managedFields` from an object, and from each item of a
/// list, as upstream's `removeManagedFields` does.
fn strip_managed_fields(v: &mut Value) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
        }
    }
}

/// `meta/v1` `MicroTime`: RFC 3339 in UTC with exactly six fractional digits.
mod micro_time {
    use jiff::Timestamp;
    use jiff::fmt::temporal::DateTimePrinter;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn format(t: &Timestamp) -> String {
        // Truncate (not round) to microseconds, as Go's Format does.
        let micros = t.as_microsecond();
        let t = Timestamp::from_microsecond(micros).unwrap_or(*t);
        DateTimePrinter::new()
            .precision(Some(6))
            .timestamp_to_string(&t)
    }

    pub(super) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
