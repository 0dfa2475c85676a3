//! Field paths and sets of them, and their `FieldsV1` encoding in
//! `metadata.managedFields` (structured-merge-diff's `fieldpath`).
//!
//! A path steps through an object by field name (`f:spec`), by the key
//! fields of an item of a keyed list (`k:{"name":"web"}`), by the value of an
//! item of a set (`v:"a"`), or by index (`i:0`). In `FieldsV1` a set is a
//! tree of such steps; `{}` marks a member, and `".": {}` marks a member
//! that also has members below it.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::validation::go_quote;

/// A JSON value held in its compact text, so that paths can be ordered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JsonText(String);

impl JsonText {
    /// The text of a value.
    pub fn new(v: &Value) -> Self {
        JsonText(canonical(v))
    }

    /// The value back.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of an object: `.name`, `f:name`.
    Field(String),
    /// The item of a keyed list with these key field values (sorted by name).
    Key(Vec<(String, JsonText)>),
    /// The item of a set with this value.
    Value(JsonText),
    /// The item at this index of an atomic list (rare in field sets).
    Index(usize),
}

/// A path from the object root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Path(pub Vec<PathElement>);

/// A set of paths (a manager's fields, the fields an apply sets, …).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSet(BTreeSet<Path>);

/// A `FieldsV1` document that is not a valid field set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldsV1Error(String);

impl Path {
    /// Whether this is the path `metadata`.
    pub(crate) fn is_metadata(&self) -> bool {
        matches!(self.0.as_slice(), [PathElement::Field(f)] if f == "metadata")
    }

    /// This path extended by one step.
    pub fn child(&self, pe: PathElement) -> Path {
        let mut v = self.0.clone();
        v.push(pe);
        Path(v)
    }

    /// A path of field names.
    pub fn fields(names: &[&str]) -> Path {
        Path(
            names
                .iter()
                .map(|n| PathElement::Field((*n).to_owned()))
                .collect(),
        )
    }

    /// Whether `self` is `other` or below it.
    pub fn starts_with(&self, other: &Path) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for PathElement {
    /// As structured-merge-diff prints it: `.f`, `[k="v",n=1]`, `[="v"]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_string(&v.value())))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", value_string(&v.value())),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|pe| write!(f, "{pe}"))
    }
}

/// structured-merge-diff's `value.ToString`.
fn value_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", value_string(v)))
            .collect(),
        other => crate::gofmt::v(other),
    }
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        FieldSet::default()
    }

    /// Adds a path.
    pub fn insert(&mut self, p: Path) {
        self.0.insert(p);
    }

    /// Whether the path is a member.
    pub fn contains(&self, p: &Path) -> bool {
        self.0.contains(p)
    }

    /// How many paths it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The members, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }

    /// Members of either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// Members of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    /// Whether some member is `p` or below it.
    pub fn has_prefix(&self, p: &Path) -> bool {
        self.0
            .range(p.clone()..)
            .next()
            .is_some_and(|m| m.starts_with(p))
    }

    /// Decodes a `fieldsV1` object.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, FieldsV1Error> {
        let mut set = FieldSet::new();
        decode(v, &Path::default(), &mut set)?;
        Ok(set)
    }

    /// Encodes as a `fieldsV1` object.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        // Sorted paths share their first steps: each step is encoded into
        // one buffer and only a new key is allocated.
        let mut key = String::new();
        for path in &self.0 {
            let mut node = &mut root;
            for pe in &path.0 {
                key.clear();
                encode_element_into(pe, &mut key);
                if !node.contains_key(key.as_str()) {
                    node.insert(key.clone(), Value::Object(Map::new()));
                }
                let Some(Value::Object(next)) = node.get_mut(key.as_str()) else {
                    unreachable!("every node is an object")
                };
                node = next;
            }
            node.insert(MEMBER.to_owned(), Value::Null);
        }
        finish(&mut root);
        Value::Object(root)
    }
}

/// Marks a member leaf while the tree is built; removed by `finish`.
const MEMBER: &str = "\u{0}member";

/// Replaces the member markers: a member with children gets `"."`, a leaf
/// member stays `{}`.
fn finish(node: &mut Map<String, Value>) {
    let member = node.remove(MEMBER).is_some();
    let has_children = node.keys().any(|k| k != ".");
    if member && has_children {
        node.insert(".".to_owned(), Value::Object(Map::new()));
    }
    for (k, v) in node.iter_mut() {
        if k != "."
            && let Value::Object(child) = v
        {
            finish(child);
        }
    }
}

/// Appends the `fieldsV1` key of one step (`f:name`, `k:{…}`, `v:…`,
/// `i:n`) to `out`.
fn encode_element_into(pe: &PathElement, out: &mut String) {
    match pe {
        PathElement::Field(name) => {
            out.push_str("f:");
            out.push_str(name);
        }
        PathElement::Key(fields) => {
            out.push_str("k:{");
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                out.push_str(&v.0);
            }
            out.push('}');
        }
        PathElement::Value(v) => {
            out.push_str("v:");
            out.push_str(&v.0);
        }
        PathElement::Index(i) => {
            out.push_str("i:");
            out.push_str(&i.to_string());
        }
    }
}

fn decode(v: &Value, at: &Path, set: &mut FieldSet) -> Result<(), FieldsV1Error> {
    let Value::Object(m) = v else {
        return Err(FieldsV1Error(format!(
            "expected an object at {at}, found {v}"
        )));
    };
    for (k, child) in m {
        if k == "." {
            set.insert(at.clone());
            continue;
        }
        let p = at.child(decode_element(k)?);
        if child.as_object().is_some_and(Map::is_empty) {
            set.insert(p);
        } else {
            decode(child, &p, set)?;
        }
    }
    Ok(())
}

/// structured-merge-diff's `DeserializePathElement`, with its messages.
fn decode_element(s: &str) -> Result<PathElement, FieldsV1Error> {
    let bytes = s.as_bytes();
    if bytes.len() < 2 {
        return Err(FieldsV1Error("key must be 2 characters long:".to_owned()));
    }
    if bytes[1] != b':' {
        return Err(FieldsV1Error(format!("missing colon: {s}")));
    }
    let rest = &s[2..];
    let bad = |e: serde_json::Error| FieldsV1Error(e.to_string());
    match bytes[0] {
        b'f' => Ok(PathElement::Field(rest.to_owned())),
        b'v' => {
            let v: Value = serde_json::from_str(rest).map_err(bad)?;
            Ok(PathElement::Value(JsonText::new(&v)))
        }
        b'k' => {
            let m: Map<String, Value> = serde_json::from_str(rest).map_err(bad)?;
            let mut fields: Vec<(String, JsonText)> = m
                .iter()
                .map(|(k, v)| (k.clone(), JsonText::new(v)))
                .collect();
            fields.sort();
            Ok(PathElement::Key(fields))
        }
        b'i' => rest
            .parse::<usize>()
            .map(PathElement::Index)
            .map_err(|e| FieldsV1Error(e.to_string())),
        _ => Err(FieldsV1Error("unknown path element type".to_owned())),
    }
}

/// Compact JSON with object keys sorted, whatever map type serde_json uses.
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
