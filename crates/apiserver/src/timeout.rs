//! Request timeouts (`--request-timeout`, CIS 1.2.20): a request that is
//! not long-running must be answered within the server's limit (or the
//! shorter `?timeout=` the client asks for), else it is answered 504 with
//! upstream's Status — so a client that stalls its body, or a request that
//! waits on something slow, does not hold a connection and its memory
//! forever. Long-running requests (watches; pods' exec, attach,
//! port-forward, logs; proxies) are exempt, as upstream's
//! `longRunningRequestCheck` makes them.

use std::time::Duration;

use axum::response::{IntoResponse as _, Response};

use crate::request::{Target, Verb};
use crate::status::ApiError;

/// Subresources whose requests stream for as long as the client wants.
const LONG_RUNNING_SUBRESOURCES: &[&str] = &["attach", "exec", "log", "portforward", "proxy"];

/// The limit for `target`, or `None` for a long-running request.
pub(crate) fn limit(target: &Target, server_limit: Duration) -> Option<Duration> {
    let Target::Resource(req) = target else {
        return Some(server_limit);
    };
    if req.verb == Verb::Watch
        || req
            .subresource
            .as_deref()
            .is_some_and(|s| LONG_RUNNING_SUBRESOURCES.contains(&s))
    {
        return None;
    }
    let asked = req
        .query
        .get("timeout")
        .and_then(|t| parse_go_duration(t))
        .filter(|t| !t.is_zero());
    Some(asked.map_or(server_limit, |asked| asked.min(server_limit)))
}

/// Upstream's answer when the limit passes.
pub(crate) fn response() -> Response {
    let mut err = ApiError::timeout(
        "Timeout: request did not complete within requested timeout - context deadline exceeded",
    );
    err.details = Some(serde_json::json!({}));
    err.into_response()
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `1h`); `None` if malformed.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(number * seconds).ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("abc"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
