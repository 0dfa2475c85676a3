//! Upstream's message formatting: quoting, pluralization, aggregation.

use std::fmt::Write as _;

/// One failed check: a short reason and an optional detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) reason: String,
    pub(crate) detail: String,
}

impl Violation {
    pub(crate) fn new(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Violation {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// `reason (detail), reason (detail)` — upstream's `ForbiddenDetail()`.
pub(crate) fn forbidden_detail(violations: &[Violation]) -> String {
    let mut out = String::new();
    for (i, v) in violations.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&v.reason);
        if !v.detail.is_empty() {
            let _ = write!(out, " ({})", v.detail);
        }
    }
    out
}

/// `reason, reason` — upstream's `ForbiddenReason()`.
pub(crate) fn forbidden_reason(violations: &[Violation]) -> String {
    let reasons: Vec<&str> = violations.iter().map(|v| v.reason.as_str()).collect();
    reasons.join(", ")
}

/// `"a", "b"` — no escaping, as upstream's `joinQuote`.
pub(crate) fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let quoted: Vec<String> = items
        .into_iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect();
    quoted.join(", ")
}

pub(crate) fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 { singular } else { plural }
}

/// `containers "a", "b"` — the usual way a check names its offenders.
pub(crate) fn containers(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Go's `%q` for a string: double-quoted, with `"` and `\` escaped and
/// control characters written as escapes.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
