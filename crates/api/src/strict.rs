//! Field validation (`?fieldValidation=Strict|Warn|Ignore`): the duplicate
//! and unknown fields of a request body, worded as kube-apiserver's strict
//! decoder (`sigs.k8s.io/json`) words them.
//!
//! Duplicates need the raw bytes (a decoded map keeps only one value);
//! unknown fields are what a typed decode drops, so they are found by
//! comparing the body with its round trip through the typed object.
//!
//! ```
//! use bulwark_api::strict::{duplicate_fields, strict_decoding_error, unknown_fields};
//! use serde_json::json;
//!
//! let body = br#"{"spec": {"replicas": 1, "replicas": 2, "bogus": true}}"#;
//! let mut errors = duplicate_fields(body);
//! let sent: serde_json::Value = serde_json::from_slice(body).unwrap();
//! errors.extend(unknown_fields(&sent, &json!({"spec": {"replicas": 2}})));
//! assert_eq!(strict_decoding_error(&errors), r#"strict decoding error: duplicate field "spec.replicas", unknown field "spec.bogus""#);
//! ```

use std::collections::HashSet;

use serde_json::Value;

/// `duplicate field "<path>"` for every key repeated in one object of
/// `body`, in document order, each once. Empty for malformed JSON (which
/// fails decoding anyway).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut scan = Scanner {
        b: body,
        pos: 0,
        path: Vec::new(),
        found: Vec::new(),
    };
    scan.value();
    let mut seen = HashSet::new();
    scan.found
        .into_iter()
        .filter(|p| seen.insert(p.clone()))
        .map(|p| format!("duplicate field {}", crate::validation::go_quote(&p)))
        .collect()
}

/// `unknown field "<path>"` for every field of `sent` that `decoded` (its
/// round trip through the typed object) lacks, in key order (upstream
/// reports them in document order). Null and empty values are not
/// reported, since a typed decode may drop them.
pub fn unknown_fields(sent: &Value, decoded: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(sent, decoded, "", &mut out);
    out.into_iter()
        .map(|p| format!("unknown field {}", crate::validation::go_quote(&p)))
        .collect()
}

/// The strict errors of a JSON patch body: fields of an operation other
/// than `op`, `path`, `from`, `value`, and repeated ones, each prefixed
/// `json patch` as upstream words them (`json patch unknown field "[0].valu"`).
pub fn json_patch_errors(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(Value::Array(ops)) = serde_json::from_slice::<Value>(body) {
        for (i, op) in ops.iter().enumerate() {
            let Some(m) = op.as_object() else {
                continue;
            };
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                if !matches!(k.as_str(), "op" | "path" | "from" | "value") {
                    let path = format!("[{i}].{k}");
                    out.push(format!(
                        "json patch unknown field {}",
                        crate::validation::go_quote(&path)
                    ));
                }
            }
        }
    }
    out.extend(
        duplicate_fields(body)
            .into_iter()
            .map(|e| format!("json patch {e}")),
    );
    out
}

/// The message of the strict decoding error upstream builds from these.
pub fn strict_decoding_error(errors: &[String]) -> String {
    format!("strict decoding error: {}", errors.join(", "))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(sent: &Value, decoded: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, decoded) {
        (Value::Object(s), Value::Object(d)) => {
            let mut keys: Vec<&String> = s.keys().collect();
            keys.sort();
            for k in keys {
                let p = join(path, k);
                match d.get(k.as_str()) {
                    Some(dv) => walk(&s[k.as_str()], dv, &p, out),
                    // A typed decode may drop what carries no value.
                    None if is_vacant(&s[k.as_str()]) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(s), Value::Array(d)) => {
            for (i, (sv, dv)) in s.iter().zip(d).enumerate() {
                walk(sv, dv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_vacant(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A minimal JSON reader that records the paths of repeated keys.
struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    path: Vec<String>,
    found: Vec<String>,
}

impl Scanner<'_> {
    fn skip_space(&mut self) {
        while self.pos < self.b.len() && matches!(self.b[self.pos], b' ' | b'\t' | b'\r' | b'\n') {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Reads one value; `None` stops the scan (malformed input).
    fn value(&mut self) -> Option<()> {
        if self.path.len() > 10_000 {
            return None;
        }
        self.skip_space();
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(drop),
            _ => {
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.pos += 1;
                }
                Some(())
            }
        }
    }

    fn object(&mut self) -> Option<()> {
        self.pos += 1;
        let mut keys = HashSet::new();
        loop {
            self.skip_space();
            match self.peek()? {
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                b',' => self.pos += 1,
                b'"' => {
                    let key = self.string()?;
                    let here = self.current_path(&key);
                    if !keys.insert(key.clone()) {
                        self.found.push(here);
                    }
                    self.skip_space();
                    if self.peek()? != b':' {
                        return None;
                    }
                    self.pos += 1;
                    self.path.push(key);
                    let r = self.value();
                    self.path.pop();
                    r?;
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self) -> Option<()> {
        self.pos += 1;
        let mut i = 0;
        loop {
            self.skip_space();
            match self.peek()? {
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                b',' => self.pos += 1,
                _ => {
                    self.path.push(format!("[{i}]"));
                    let r = self.value();
                    self.path.pop();
                    r?;
                    i += 1;
                }
            }
        }
    }

    /// Reads a string literal and returns its decoded text.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        self.pos += 1;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'\\' => self.pos += 1,
                b'"' => {
                    return serde_json::from_slice::<String>(&self.b[start..self.pos]).ok();
                }
                _ => {}
            }
        }
        None
    }

    /// The path of `key` in the current object: keys joined by `.`,
    /// indices as `[i]`.
    fn current_path(&self, key: &str) -> String {
        let mut out = String::new();
        for part in &self.path {
            if !part.starts_with('[') && !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
        join(&out, key)
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use serde_json::json;

    use super::*;

    #[test]
    fn duplicates() {
        let body = br#"{"metadata": {"name": "a", "name": "b", "labels": {"x": "1", "x": "2", "x": "3"}},
            "spec": {"containers": [{"name": "c", "image": "i", "image": "j"}, {"name": "d"}], "replicas": 1},
            "spec": {}, "we\"ird": 1, "we\"ird": 2}"#;
        expect![[r#"
            duplicate field "metadata.name"
            duplicate field "metadata.labels.x"
            duplicate field "spec.containers[0].image"
            duplicate field "spec"
            duplicate field "we\"ird""#]]
        .assert_eq(&duplicate_fields(body).join("\n"));
        assert!(duplicate_fields(br#"{"a": [1, {"b": 2}], "c": {"b": 3}}"#).is_empty());
        assert!(duplicate_fields(b"{\"a\": ").is_empty());
        assert!(duplicate_fields(b"[[[[[").is_empty());
    }

    #[test]
    fn json_patch_ops() {
        let body = br#"[{"op": "add", "path": "/a", "valu": 1}, {"op": "test", "op": "remove", "path": "/b"}]"#;
        expect![[r#"
            json patch unknown field "[0].valu"
            json patch duplicate field "[1].op""#]]
        .assert_eq(&json_patch_errors(body).join("\n"));
    }

    #[test]
    fn unknowns() {
        let sent = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1},
            "spec": {"containers": [{"name": "c", "imagePullPolicyy": "Always", "resources": {}}],
                     "nodeName": null, "extra": {"a": 1}}});
        let decoded = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]}});
        expect![[r#"
            unknown field "metadata.bogus"
            unknown field "spec.containers[0].imagePullPolicyy"
            unknown field "spec.extra""#]]
        .assert_eq(&unknown_fields(&sent, &decoded).join("\n"));
    }
}
