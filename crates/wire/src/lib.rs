//! Kubernetes protobuf request bodies, decoded into the JSON the API speaks.
//!
//! The real `kubectl` sends `application/vnd.kubernetes.protobuf` bodies from
//! its typed-client commands (`create configmap`, `create deployment`, `run`,
//! `drain`, `auth can-i`, `create token`, …). Bulwark's API server answers in
//! JSON and works on JSON objects; this crate turns such a body into the
//! `serde_json::Value` a JSON client would have sent for the same object,
//! with the field names of the JSON API, `apiVersion` and `kind` included.
//!
//! It sits beside `api` in the map: a pure library, no IO, used by
//! `apiserver` right after it reads a request body whose `Content-Type` is
//! [`MEDIA_TYPE`].
//!
//! ```
//! // `kubectl create configmap x --from-literal=a=b`, as the wire carries it.
//! let body = b"k8s\0\n\x0f\n\x02v1\x12\tConfigMap\x12\x0d\n\x03\n\x01x\x12\x06\n\x01a\x12\x01b\x1a\0\"\0";
//! let object = bulwark_wire::decode(body)?;
//! assert_eq!(object["kind"], "ConfigMap");
//! assert_eq!(object["metadata"]["name"], "x");
//! assert_eq!(object["data"]["a"], "b");
//! # Ok::<(), bulwark_wire::WireError>(())
//! ```
//!
//! # How it works
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` envelope
//! (`typeMeta{apiVersion, kind}`, `raw`, `contentEncoding`, `contentType`);
//! `raw` is the object's own protobuf encoding. A small hand-written reader
//! (`reader`) walks the wire format, and a schema table written in Rust
//! (`schema`) says, for every message, each field's number, JSON name and
//! type. Field numbers and names are upstream's (`generated.proto` in
//! `k8s.io/api` and `k8s.io/apimachinery`); which Go fields are pointers and
//! which carry `omitempty` is upstream's too (`types.go`), because Kubernetes'
//! proto2 encoding writes zero values of non-pointer fields that the JSON
//! form leaves out.
//!
//! Kubernetes' special types become what their JSON form is: `Time` and
//! `MicroTime` RFC 3339 strings, `Quantity` a string, `IntOrString` a number
//! or a string, `RawExtension` and `FieldsV1` embedded JSON, `[]byte` base64.
//!
//! # Unknown fields
//!
//! A field number the schema does not know (a field newer than our table) is
//! skipped, and its path is returned by [`decode_with_unknown`] so the server
//! can warn, or refuse under `fieldValidation=Strict`. Such a path names the
//! field by number, since the wire carries no name: `spec.containers[0].#42`.
//!
//! # Test fixtures
//!
//! `tests/fixtures/*.pb` are bodies captured from the real `kubectl` 1.32
//! (1.33 sends the same bytes); `tests/snapshots/` holds what they decode to.
//! For each `kubectl create …` body, `tests/fixtures/*.kubectl.json` is
//! kubectl's own JSON for the same object (`--dry-run=client -o json`), and
//! a test asserts the decoded body equals it.
//! To capture them again, run `python3 tests/capture/capture.py` from this
//! crate's directory: it starts a plain-HTTP fake API server on loopback,
//! points a temporary kubeconfig at it, runs each `kubectl` command listed in
//! the script and saves every protobuf body it receives. Then
//! `UPDATE_EXPECT=1 cargo test -p bulwark-wire` refreshes the snapshots.

mod decode;
mod reader;
mod schema;
mod time;

use serde_json::Value;

/// The media type of a Kubernetes protobuf body.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Decodes a `application/vnd.kubernetes.protobuf` body into the object as
/// the JSON API spells it, including `apiVersion` and `kind`. Fields the
/// schema does not know are skipped; [`decode_with_unknown`] reports them.
pub fn decode(body: &[u8]) -> Result<Value, WireError> {
    decode_with_unknown(body).map(|(object, _)| object)
}

/// Like [`decode`], and also returns the paths of skipped fields whose
/// numbers the schema does not know (e.g. `spec.template.spec.#99`), in
/// the order met: at most 100 of them, then one entry `… and N more
/// unknown fields` if there were more.
pub fn decode_with_unknown(body: &[u8]) -> Result<(Value, Vec<String>), WireError> {
    decode::body(body)
}

/// Whether [`decode`] knows this top-level kind, so a server can answer
/// 415 Unsupported Media Type up front for the others.
pub fn is_supported(api_version: &str, kind: &str) -> bool {
    schema::lookup(api_version, kind).is_some()
}

/// What was wrong with a protobuf body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The body does not start with `k8s\0`.
    #[error("not a Kubernetes protobuf body: it must start with the magic bytes \"k8s\\0\"")]
    BadMagic,
    /// The body ends inside a value.
    #[error("truncated {what} at byte {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it starts, counted from the body's first byte.
        offset: usize,
    },
    /// A varint runs past ten bytes or 64 bits.
    #[error("varint at byte {offset} is longer than 64 bits")]
    VarintOverflow {
        /// Where it starts.
        offset: usize,
    },
    /// A field key uses a wire type Kubernetes never writes (groups, or 6 and 7).
    #[error("unsupported wire type {wire_type} ({}) at byte {offset}", wire_type_name(*.wire_type))]
    UnsupportedWireType {
        /// The wire type in the key.
        wire_type: u8,
        /// Where the key starts.
        offset: usize,
    },
    /// A field key carries field number 0 or one past protobuf's range.
    #[error("invalid field number {number} at byte {offset}")]
    BadFieldNumber {
        /// The number in the key.
        number: u64,
        /// Where the key starts.
        offset: usize,
    },
    /// The envelope names no `apiVersion` or no `kind`.
    #[error("the protobuf envelope names no {missing}")]
    MissingTypeMeta {
        /// `apiVersion` or `kind`.
        missing: &'static str,
    },
    /// The envelope names a kind this decoder has no schema for.
    #[error("unknown kind {api_version} {kind}: send it as application/json")]
    UnknownKind {
        /// The envelope's `apiVersion`.
        api_version: String,
        /// The envelope's `kind`.
        kind: String,
    },
    /// The envelope says `raw` is compressed or otherwise encoded.
    #[error("unsupported content encoding {encoding:?}: send the object unencoded")]
    UnsupportedEncoding {
        /// The envelope's `contentEncoding`.
        encoding: String,
    },
    /// A known field arrived with a wire type its type cannot have.
    #[error(
        "wrong wire type for field {path}: expected {expected}, found {found} at byte {offset}"
    )]
    WrongWireType {
        /// The field's JSON path, e.g. `spec.replicas`.
        path: String,
        /// The wire type its schema type needs.
        expected: &'static str,
        /// The wire type the body used.
        found: &'static str,
        /// Where the value starts.
        offset: usize,
    },
    /// A string field is not UTF-8.
    #[error("field {path} is not valid UTF-8 (at byte {offset})")]
    InvalidUtf8 {
        /// The field's JSON path.
        path: String,
        /// Where the string starts.
        offset: usize,
    },
    /// A value is well-formed protobuf but no valid value of its type.
    #[error("invalid value for field {path}: {reason}")]
    InvalidValue {
        /// The field's JSON path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Objects nest deeper than any real object does (embedded objects
    /// inside embedded objects).
    #[error("field {path} nests more than {limit} objects deep")]
    TooDeep {
        /// Where the limit was hit.
        path: String,
        /// The limit.
        limit: usize,
    },
}

fn wire_type_name(wire_type: u8) -> &'static str {
    match wire_type {
        3 => "groups",
        4 => "end of group",
        _ => "no such wire type",
    }
}

#[cfg(test)]
mod tests;
