//! Go-style rendering of decoded JSON values, for error messages.
//!
//! Upstream builds many error messages with `fmt.Sprintf("%v", value)` over
//! the `interface{}` tree that `encoding/json` decodes (maps print as
//! `map[k:v …]` with sorted keys, lists as `[a b]`, nil as `<nil>`). Clients
//! and tests compare these strings, so we render them the same way.

use serde_json::Value;

/// The Go dynamic type a decoded JSON value has on the upstream server, which
/// decodes integers as `int64` and other numbers as `float64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GoKind {
    Nil,
    Bool,
    Int,
    Float,
    String,
    Slice,
    Map,
}

pub(crate) fn kind(v: &Value) -> GoKind {
    match v {
        Value::Null => GoKind::Nil,
        Value::Bool(_) => GoKind::Bool,
        Value::Number(n) if n.is_i64() => GoKind::Int,
        Value::Number(_) => GoKind::Float,
        Value::String(_) => GoKind::String,
        Value::Array(_) => GoKind::Slice,
        Value::Object(_) => GoKind::Map,
    }
}

/// `reflect.TypeOf(v).String()` as `%s` prints it.
pub(crate) fn type_name(k: GoKind) -> &'static str {
    match k {
        GoKind::Nil => "%!s(<nil>)",
        GoKind::Bool => "bool",
        GoKind::Int => "int64",
        GoKind::Float => "float64",
        GoKind::String => "string",
        GoKind::Slice => "[]interface {}",
        GoKind::Map => "map[string]interface {}",
    }
}

/// `fmt.Sprintf("%v", v)`.
pub(crate) fn v(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value, Verb::V);
    out
}

/// `fmt.Sprintf("%s", v)`: like `%v` for strings, and `%!s(type=value)` for
/// the scalars `%s` does not apply to.
pub(crate) fn s(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value, Verb::S);
    out
}

/// `fmt.Sprint(slices)` for a `[][]interface{}`.
pub(crate) fn v_lists(lists: &[&[Value]]) -> String {
    let inner: Vec<String> = lists.iter().map(|l| v(&Value::Array(l.to_vec()))).collect();
    format!("[{}]", inner.join(" "))
}

#[derive(Clone, Copy)]
enum Verb {
    V,
    S,
}

fn write(out: &mut String, value: &Value, verb: Verb) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write(out, item, verb);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write(out, &map[k.as_str()], verb);
            }
            out.push(']');
        }
        scalar => {
            let plain = scalar_v(scalar);
            match verb {
                Verb::V => out.push_str(&plain),
                Verb::S if scalar.is_null() => out.push_str("%!s(<nil>)"),
                Verb::S => {
                    out.push_str(&format!("%!s({}={plain})", type_name(kind(scalar))));
                }
            }
        }
    }
}

fn scalar_v(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => float(f),
            (None, None) => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// `%v` of a float64, which is `strconv.FormatFloat(f, 'g', -1, 64)`: the
/// shortest digits, in exponent form when the decimal exponent is below -4 or
/// at least 6 (Go decides with precision 6 when the precision is shortest).
fn float(f: f64) -> String {
    if f == 0.0 {
        return "0".to_owned();
    }
    let exp = f.abs().log10().floor() as i32;
    if !(-4..6).contains(&exp) {
        // Rust prints `1e21`; Go prints `1e+21` (sign, two digits at least).
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_like_go() {
        assert_eq!(
            v(&json!({"b": [1, "x", null], "a": {"c": true}})),
            "map[a:map[c:true] b:[1 x <nil>]]"
        );
        assert_eq!(s(&json!("merge")), "merge");
        assert_eq!(s(&json!(1)), "%!s(int64=1)");
        assert_eq!(s(&json!(1.5)), "%!s(float64=1.5)");
        assert_eq!(s(&json!(null)), "%!s(<nil>)");
        assert_eq!(v(&json!(0.5)), "0.5");
        assert_eq!(v(&json!(1e21)), "1e+21");
        assert_eq!(v(&json!(1e6)), "1e+06");
        assert_eq!(v(&json!(123456.0)), "123456");
        assert_eq!(v(&json!(1234567.5)), "1.2345675e+06");
        assert_eq!(v(&json!(1e-7)), "1e-07");
        assert_eq!(v_lists(&[&[json!("a")], &[json!(1)]]), "[[a] [1]]");
    }
}
