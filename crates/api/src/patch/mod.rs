//! The three client patch formats of `PATCH` requests, applied as
//! kube-apiserver applies them.
//!
//! | Content-Type | function |
//! | --- | --- |
//! | `application/json-patch+json` (RFC 6902) | [`apply_json_patch`] |
//! | `application/merge-patch+json` (RFC 7386) | [`apply_merge_patch`] |
//! | `application/strategic-merge-patch+json` | [`apply_strategic_merge_patch`] |
//!
//! ([`PatchType`] names them; server-side apply is in [`crate::ssa`].)
//!
//! Each takes the live object (as JSON) and the raw request body, and returns
//! the patched object or a [`PatchError`] that carries the HTTP status, the
//! `Status` reason and the message upstream would answer with. Upstream's
//! quirks are kept on purpose (they are what clients observe): a JSON patch
//! `replace` of a missing object key adds it, a failed `test` answers 422
//! with a generic message, unclassified strategic-merge errors answer 500.

mod json_patch;
mod merge;
pub(crate) mod schema;
mod strategic;

pub use json_patch::{MAX_COPY_BYTES, MAX_OPERATIONS, apply_json_patch};
pub use merge::apply_merge_patch;
pub use schema::PatchSchema;
pub use strategic::{apply_strategic_merge_patch, strategic_merge};

/// A `PATCH` request's format, named by its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json` (built-in kinds only).
    StrategicMerge,
    /// `application/apply-patch+yaml`: server-side apply (see [`crate::ssa`]).
    Apply,
}

impl PatchType {
    /// Every type, in the order upstream lists them in its 415 message.
    pub const ALL: [PatchType; 4] = [
        PatchType::Json,
        PatchType::Merge,
        PatchType::StrategicMerge,
        PatchType::Apply,
    ];

    /// The types custom resources accept (no strategic merge).
    pub const FOR_CUSTOM_RESOURCES: [PatchType; 3] =
        [PatchType::Json, PatchType::Merge, PatchType::Apply];

    /// The type of a Content-Type header value (parameters ignored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        PatchType::ALL
            .into_iter()
            .find(|t| t.media_type().eq_ignore_ascii_case(media))
    }

    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// The message of the 415 `UnsupportedMediaType` answer to a `PATCH` whose
/// Content-Type is not one of `accepted`.
pub fn unsupported_media_type_message(accepted: &[PatchType]) -> String {
    let types: Vec<&str> = accepted.iter().map(|t| t.media_type()).collect();
    format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        types.join(", ")
    )
}

/// Why a patch could not be applied, shaped as the `metav1.Status` that
/// kube-apiserver answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// 400 `BadRequest`: the body is not a well-formed patch of this type
    /// (not JSON, wrong shape, malformed directive).
    #[error("{0}")]
    BadRequest(String),
    /// 422 `Invalid`: the patch is well formed but does not apply to this
    /// object (a failed `test`, a missing path, a list of lists). Upstream puts
    /// only a generic message on the wire; `detail` says what went wrong, for
    /// logs.
    #[error("the server rejected our request due to an error in our request")]
    Unprocessable {
        /// The underlying reason, as the upstream patch library words it.
        detail: String,
    },
    /// 413 `RequestEntityTooLarge`: the patch asks for more work than a
    /// request may (too many JSON patch operations, too many bytes copied).
    #[error("Request entity too large: {0}")]
    TooLarge(String),
    /// 500 with an empty reason: an error upstream does not classify, which
    /// its API server answers as an internal error with this message.
    #[error("{0}")]
    Unclassified(String),
}

impl PatchError {
    /// The HTTP status code of the answer.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::Unprocessable { .. } => 422,
            PatchError::TooLarge(_) => 413,
            PatchError::Unclassified(_) => 500,
        }
    }

    /// The `reason` field of the `Status` (`""` where upstream leaves it empty).
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::BadRequest(_) => "BadRequest",
            PatchError::Unprocessable { .. } => "Invalid",
            PatchError::TooLarge(_) => "RequestEntityTooLarge",
            PatchError::Unclassified(_) => "",
        }
    }

    /// The `metav1.Status` body of the answer.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        })
    }

    pub(crate) fn unprocessable(detail: impl Into<String>) -> Self {
        PatchError::Unprocessable {
            detail: detail.into(),
        }
    }
}

/// Decodes a request body as Go's `encoding/json` would, with its syntax
/// error messages, as a 400.
pub(crate) fn decode_json(body: &[u8]) -> Result<serde_json::Value, PatchError> {
    crate::gojson::check_valid(body).map_err(PatchError::BadRequest)?;
    serde_json::from_slice(body).map_err(|e| PatchError::BadRequest(e.to_string()))
}

/// Go's `encoding/json` names a JSON value's type this way in its
/// "cannot unmarshal X into Go value of type Y" errors.
pub(crate) fn json_type_word(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        expect_test::expect![[r#"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"#]]
            .assert_eq(&unsupported_media_type_message(&PatchType::FOR_CUSTOM_RESOURCES));
        let err = PatchError::TooLarge("x".to_owned());
        expect_test::expect![[r#"{"apiVersion":"v1","code":413,"kind":"Status","message":"Request entity too large: x","metadata":{},"reason":"RequestEntityTooLarge","status":"Failure"}"#]]
            .assert_eq(&test_util::canonical(&err.status()));
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use serde_json::Value;

    /// Renders a value as compact JSON with object keys sorted, whatever map
    /// type serde_json was built with, so snapshots do not depend on features.
    pub(crate) fn canonical(v: &Value) -> String {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let fields: Vec<String> = keys
                    .into_iter()
                    .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k.as_str()])))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(canonical).collect();
                format!("[{}]", items.join(","))
            }
            scalar => scalar.to_string(),
        }
    }

    /// `Ok(json)` or `Err(code reason: message [detail])`, one line.
    pub(crate) fn render(result: Result<Value, super::PatchError>) -> String {
        match result {
            Ok(v) => canonical(&v),
            Err(e @ super::PatchError::Unprocessable { .. }) => {
                let super::PatchError::Unprocessable { detail } = &e else {
                    unreachable!("matched above")
                };
                format!("{} {}: {e} [{detail}]", e.code(), e.reason())
            }
            Err(e) => format!("{} {}: {e}", e.code(), e.reason()),
        }
    }
}
