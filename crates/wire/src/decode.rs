//! Schema-driven decoding: the envelope, then the object's fields through
//! the schema table into a `serde_json::Value`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::WireError;
use crate::reader::{Reader, WireType};
use crate::schema::{self, Field, Message, Shape, Ty, one, rep};

/// The magic that opens every Kubernetes protobuf body.
const MAGIC: &[u8; 4] = b"k8s\0";

/// How many unknown-field paths are kept: enough to warn or refuse, and a
/// body of tiny unknown fields cannot make the list outgrow the body much.
pub(crate) const MAX_UNKNOWN: usize = 100;

/// How deep messages may nest. Our schema has no cycles, so this only
/// bounds objects embedded in `RawExtension`s inside each other.
const MAX_DEPTH: usize = 64;

/// Decodes a whole body: magic, envelope, object.
pub(crate) fn body(body: &[u8]) -> Result<(Value, Vec<String>), WireError> {
    let mut decoder = Decoder::default();
    let object = decoder.envelope(body, 0)?;
    let mut unknown = decoder.unknown;
    if decoder.unknown_dropped > 0 {
        unknown.push(format!(
            "… and {} more unknown fields",
            decoder.unknown_dropped
        ));
    }
    Ok((object, unknown))
}

/// The `runtime.Unknown` envelope, read by hand: it is not an API object.
#[derive(Default)]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: Option<Reader<'a>>,
    content_encoding: String,
}

/// One segment of a JSON path.
#[derive(Debug, Clone)]
enum Seg {
    Field(&'static str),
    Index(usize),
    Key(String),
}

#[derive(Default)]
struct Decoder {
    /// The path to the value being decoded.
    path: Vec<Seg>,
    /// Paths of skipped, unknown fields, at most [`MAX_UNKNOWN`].
    unknown: Vec<String>,
    /// How many more there were.
    unknown_dropped: usize,
    depth: usize,
}

// Helper messages: Kubernetes' special types on the wire.
static TIMESTAMP: Message = Message::new(
    "Timestamp",
    &[one(1, "seconds", Ty::I64), one(2, "nanos", Ty::I32)],
);
static QUANTITY: Message = Message::new("Quantity", &[one(1, "string", Ty::Str)]);
static INT_OR_STRING: Message = Message::new(
    "IntOrString",
    &[
        one(1, "type", Ty::I64),
        one(2, "intVal", Ty::I32),
        one(3, "strVal", Ty::Str),
    ],
);
static STR_LIST: Message = Message::new("StrList", &[rep(1, "items", Ty::Str)]);

impl Decoder {
    /// Decodes magic + envelope at `base` (non-zero for objects embedded in
    /// a `RawExtension`), returning the object with `apiVersion` and `kind`.
    fn envelope(&mut self, body: &[u8], base: usize) -> Result<Value, WireError> {
        let Some(rest) = body.strip_prefix(MAGIC) else {
            return Err(WireError::BadMagic);
        };
        let envelope = self.read_envelope(Reader::new(rest, base + MAGIC.len()))?;
        if !envelope.content_encoding.is_empty() {
            return Err(WireError::UnsupportedEncoding {
                encoding: envelope.content_encoding,
            });
        }
        if envelope.api_version.is_empty() {
            return Err(WireError::MissingTypeMeta {
                missing: "apiVersion",
            });
        }
        if envelope.kind.is_empty() {
            return Err(WireError::MissingTypeMeta { missing: "kind" });
        }
        let Some(message) = schema::lookup(&envelope.api_version, &envelope.kind) else {
            return Err(WireError::UnknownKind {
                api_version: envelope.api_version,
                kind: envelope.kind,
            });
        };
        let mut object = match envelope.raw {
            Some(raw) => self.message(message, raw)?,
            None => Map::new(),
        };
        object.insert("apiVersion".into(), Value::String(envelope.api_version));
        object.insert("kind".into(), Value::String(envelope.kind));
        Ok(Value::Object(object))
    }

    fn read_envelope<'a>(&mut self, mut r: Reader<'a>) -> Result<Envelope<'a>, WireError> {
        let mut envelope = Envelope::default();
        while !r.is_empty() {
            let (number, wire_type) = r.key()?;
            match number {
                1 => {
                    self.path.push(Seg::Field("typeMeta"));
                    let mut type_meta = self.len(wire_type, &mut r)?;
                    while !type_meta.is_empty() {
                        let (number, wire_type) = type_meta.key()?;
                        match number {
                            1 => {
                                envelope.api_version =
                                    self.envelope_string("apiVersion", wire_type, &mut type_meta)?
                            }
                            2 => {
                                envelope.kind =
                                    self.envelope_string("kind", wire_type, &mut type_meta)?
                            }
                            _ => type_meta.skip(wire_type)?,
                        }
                    }
                    self.path.pop();
                }
                2 => {
                    self.path.push(Seg::Field("raw"));
                    envelope.raw = Some(self.len(wire_type, &mut r)?);
                    self.path.pop();
                }
                3 => {
                    envelope.content_encoding =
                        self.envelope_string("contentEncoding", wire_type, &mut r)?
                }
                // contentType is informative only: raw is this envelope's encoding.
                _ => r.skip(wire_type)?,
            }
        }
        Ok(envelope)
    }

    fn envelope_string(
        &mut self,
        name: &'static str,
        wire_type: WireType,
        r: &mut Reader<'_>,
    ) -> Result<String, WireError> {
        self.path.push(Seg::Field(name));
        let value = self.string(wire_type, r);
        self.path.pop();
        value
    }

    /// Decodes one message into a JSON object.
    fn message(
        &mut self,
        message: &'static Message,
        mut r: Reader<'_>,
    ) -> Result<Map<String, Value>, WireError> {
        if self.depth >= MAX_DEPTH {
            return Err(WireError::TooDeep {
                path: self.render(),
                limit: MAX_DEPTH,
            });
        }
        self.depth += 1;
        let mut object = Map::new();
        while !r.is_empty() {
            let (number, wire_type) = r.key()?;
            match message.field(number) {
                Some(field) => self.field(field, wire_type, &mut r, &mut object)?,
                None => {
                    self.skipped(number);
                    r.skip(wire_type)?;
                }
            }
        }
        self.depth -= 1;
        Ok(object)
    }

    /// Decodes one occurrence of a field into `object`.
    fn field(
        &mut self,
        field: &'static Field,
        wire_type: WireType,
        r: &mut Reader<'_>,
        object: &mut Map<String, Value>,
    ) -> Result<(), WireError> {
        match field.shape {
            Shape::One if field.inline => {
                // An embedded struct: its fields are the parent's.
                if let Some(Value::Object(fields)) = self.value(field.ty, wire_type, r)? {
                    object.extend(fields);
                }
            }
            Shape::One => {
                self.path.push(Seg::Field(field.name));
                let value = self.value(field.ty, wire_type, r)?;
                self.path.pop();
                match value {
                    Some(value) if !(field.omit_zero && is_zero(&value)) => {
                        merge(object, field.name, value)
                    }
                    _ => {
                        object.remove(field.name);
                    }
                }
            }
            Shape::Repeated => {
                let mut items = match object.remove(field.name) {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                self.path.push(Seg::Field(field.name));
                let result = self.repeated(field.ty, wire_type, r, &mut items);
                self.path.pop();
                result?;
                if !items.is_empty() {
                    object.insert(field.name.to_owned(), Value::Array(items));
                }
            }
            Shape::Map => {
                let mut entries = match object.remove(field.name) {
                    Some(Value::Object(entries)) => entries,
                    _ => Map::new(),
                };
                self.path.push(Seg::Field(field.name));
                let result = self.map_entry(field.ty, wire_type, r, &mut entries);
                self.path.pop();
                result?;
                object.insert(field.name.to_owned(), Value::Object(entries));
            }
        }
        Ok(())
    }

    /// One occurrence of a repeated field: one element, or for numbers a
    /// packed run of them.
    fn repeated(
        &mut self,
        ty: Ty,
        wire_type: WireType,
        r: &mut Reader<'_>,
        items: &mut Vec<Value>,
    ) -> Result<(), WireError> {
        let packable = matches!(ty, Ty::I32 | Ty::I64 | Ty::Bool);
        if packable && wire_type == WireType::Len {
            let mut packed = r.len_delimited()?;
            while !packed.is_empty() {
                self.path.push(Seg::Index(items.len()));
                let value = self.value(ty, WireType::Varint, &mut packed);
                self.path.pop();
                items.push(value?.unwrap_or(Value::Null));
            }
            return Ok(());
        }
        self.path.push(Seg::Index(items.len()));
        let value = self.value(ty, wire_type, r);
        self.path.pop();
        items.push(value?.unwrap_or(Value::Null));
        Ok(())
    }

    /// One map entry: `{key = 1, value = 2}`, either possibly absent.
    fn map_entry(
        &mut self,
        ty: Ty,
        wire_type: WireType,
        r: &mut Reader<'_>,
        entries: &mut Map<String, Value>,
    ) -> Result<(), WireError> {
        let mut entry = self.len(wire_type, r)?;
        let mut key = String::new();
        let mut value_at = None;
        while !entry.is_empty() {
            let (number, wire_type) = entry.key()?;
            match number {
                1 => key = self.string(wire_type, &mut entry)?,
                2 => {
                    // The key may come after the value: decode it once the
                    // key (and so the path) is known.
                    value_at = Some((wire_type, entry.clone()));
                    entry.skip(wire_type)?;
                }
                number => {
                    self.skipped(number);
                    entry.skip(wire_type)?;
                }
            }
        }
        self.path.push(Seg::Key(key.clone()));
        let value = match value_at {
            Some((wire_type, mut at)) => self.value(ty, wire_type, &mut at),
            None => Ok(Some(zero(ty))),
        };
        self.path.pop();
        entries.insert(key, value?.unwrap_or(Value::Null));
        Ok(())
    }

    /// One value of a type; `None` where the JSON form has none (a zero `Time`,
    /// an empty `RawExtension`).
    fn value(
        &mut self,
        ty: Ty,
        wire_type: WireType,
        r: &mut Reader<'_>,
    ) -> Result<Option<Value>, WireError> {
        let value = match ty {
            Ty::Str => Value::String(self.string(wire_type, r)?),
            Ty::Bytes => {
                let bytes = self.len(wire_type, r)?.rest();
                Value::String(BASE64.encode(bytes))
            }
            // int32 travels as a sign-extended varint; keep the low 32 bits.
            Ty::I32 => Value::from(self.varint(wire_type, r)? as i32),
            Ty::I64 => Value::from(self.varint(wire_type, r)? as i64),
            Ty::Bool => Value::Bool(self.varint(wire_type, r)? != 0),
            Ty::Time | Ty::MicroTime => {
                let sub = self.len(wire_type, r)?;
                if sub.is_empty() {
                    // Upstream marshals a zero Time as nothing; JSON says null.
                    return Ok(None);
                }
                let fields = self.message(&TIMESTAMP, sub)?;
                let seconds = fields.get("seconds").and_then(Value::as_i64).unwrap_or(0);
                let nanos = fields.get("nanos").and_then(Value::as_i64).unwrap_or(0);
                let micro = matches!(ty, Ty::MicroTime);
                // metav1.Time drops nanos when it unmarshals; MicroTime keeps them.
                let nanos = if micro { nanos } else { 0 };
                match crate::time::format(seconds, nanos, micro) {
                    Ok(Some(text)) => Value::String(text),
                    Ok(None) => return Ok(None),
                    Err(reason) => return Err(self.invalid(reason)),
                }
            }
            Ty::Quantity => {
                let sub = self.len(wire_type, r)?;
                let mut fields = self.message(&QUANTITY, sub)?;
                fields
                    .remove("string")
                    .unwrap_or_else(|| Value::String("0".into()))
            }
            Ty::IntOrString => {
                let sub = self.len(wire_type, r)?;
                let fields = self.message(&INT_OR_STRING, sub)?;
                match fields.get("type").and_then(Value::as_i64).unwrap_or(0) {
                    0 => fields.get("intVal").cloned().unwrap_or(Value::from(0)),
                    1 => fields
                        .get("strVal")
                        .cloned()
                        .unwrap_or(Value::String(String::new())),
                    other => {
                        return Err(self.invalid(format!(
                            "IntOrString type {other} is neither 0 (int) nor 1 (string)"
                        )));
                    }
                }
            }
            Ty::Raw | Ty::FieldsV1 => return self.embedded_json(wire_type, r),
            Ty::StrList => {
                let sub = self.len(wire_type, r)?;
                let mut fields = self.message(&STR_LIST, sub)?;
                fields.remove("items").unwrap_or(Value::Array(Vec::new()))
            }
            Ty::Msg(message) => {
                let sub = self.len(wire_type, r)?;
                Value::Object(self.message(message, sub)?)
            }
        };
        Ok(Some(value))
    }

    /// `RawExtension` / `FieldsV1`: `{raw = 1}` holding JSON, or (rarely) a
    /// whole protobuf object of its own.
    fn embedded_json(
        &mut self,
        wire_type: WireType,
        r: &mut Reader<'_>,
    ) -> Result<Option<Value>, WireError> {
        let mut sub = self.len(wire_type, r)?;
        let mut raw: Option<(&[u8], usize)> = None;
        while !sub.is_empty() {
            let (number, wire_type) = sub.key()?;
            if number == 1 {
                self.path.push(Seg::Field("raw"));
                let result = self.len(wire_type, &mut sub);
                self.path.pop();
                let mut bytes = result?;
                let offset = bytes.offset();
                raw = Some((bytes.rest(), offset));
            } else {
                self.skipped(number);
                sub.skip(wire_type)?;
            }
        }
        let Some((bytes, offset)) = raw.filter(|(bytes, _)| !bytes.is_empty()) else {
            return Ok(None);
        };
        if bytes.starts_with(MAGIC) {
            self.depth += 1;
            let result = if self.depth >= MAX_DEPTH {
                Err(WireError::TooDeep {
                    path: self.render(),
                    limit: MAX_DEPTH,
                })
            } else {
                let saved = std::mem::take(&mut self.path);
                let result = self.envelope(bytes, offset);
                self.path = saved;
                result
            };
            self.depth -= 1;
            return result.map(Some);
        }
        serde_json::from_slice(bytes).map(Some).map_err(|err| {
            self.invalid(format!(
                "embedded object is neither JSON nor protobuf: {err}"
            ))
        })
    }

    fn string(&mut self, wire_type: WireType, r: &mut Reader<'_>) -> Result<String, WireError> {
        let mut sub = self.len(wire_type, r)?;
        let offset = sub.offset();
        String::from_utf8(sub.rest().to_vec()).map_err(|_| WireError::InvalidUtf8 {
            path: self.render(),
            offset,
        })
    }

    fn len<'a>(
        &mut self,
        wire_type: WireType,
        r: &mut Reader<'a>,
    ) -> Result<Reader<'a>, WireError> {
        self.expect(WireType::Len, wire_type, r)?;
        r.len_delimited()
    }

    fn varint(&mut self, wire_type: WireType, r: &mut Reader<'_>) -> Result<u64, WireError> {
        self.expect(WireType::Varint, wire_type, r)?;
        r.varint()
    }

    fn expect(&self, expected: WireType, found: WireType, r: &Reader<'_>) -> Result<(), WireError> {
        if expected == found {
            return Ok(());
        }
        Err(WireError::WrongWireType {
            path: self.render(),
            expected: expected.name(),
            found: found.name(),
            offset: r.offset(),
        })
    }

    fn invalid(&self, reason: String) -> WireError {
        WireError::InvalidValue {
            path: self.render(),
            reason,
        }
    }

    /// The current path, as `spec.containers[0].name`.
    fn render(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Seg::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Seg::Index(index) => out.push_str(&format!("[{index}]")),
                Seg::Key(key) => out.push_str(&format!("[{key:?}]")),
            }
        }
        if out.is_empty() {
            "(object)".to_owned()
        } else {
            out
        }
    }

    /// Records an unknown field number at the current path.
    fn skipped(&mut self, number: u64) {
        if self.unknown.len() < MAX_UNKNOWN {
            let path = self.render_child(&format!("#{number}"));
            self.unknown.push(path);
        } else {
            self.unknown_dropped += 1;
        }
    }

    fn render_child(&self, child: &str) -> String {
        if self.path.is_empty() {
            child.to_owned()
        } else {
            format!("{}.{child}", self.render())
        }
    }
}

/// Sets `object[name]`; a message field seen twice merges, as protobuf's
/// own decoders do.
fn merge(object: &mut Map<String, Value>, name: &str, value: Value) {
    match (object.get_mut(name), value) {
        (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
        (_, value) => {
            object.insert(name.to_owned(), value);
        }
    }
}

/// Whether a scalar is its type's zero value (dropped for `omitempty`).
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// The value of a map entry that carries no value field.
fn zero(ty: Ty) -> Value {
    match ty {
        Ty::Str | Ty::Bytes => Value::String(String::new()),
        Ty::I32 | Ty::I64 | Ty::IntOrString => Value::from(0),
        Ty::Bool => Value::Bool(false),
        Ty::Quantity => Value::String("0".into()),
        Ty::StrList => Value::Array(Vec::new()),
        Ty::Msg(_) => Value::Object(Map::new()),
        Ty::Time | Ty::MicroTime | Ty::Raw | Ty::FieldsV1 => Value::Null,
    }
}
