//! Bootstrap tokens (upstream's `bootstrap.kubernetes.io/token` Secrets):
//! short-lived shared secrets a new node presents, as
//! `<id>.<secret>` bearer tokens, to ask for its certificate.
//!
//! A token `abcdef.0123456789abcdef` authenticates while the Secret
//! `kube-system/bootstrap-token-abcdef` exists with type
//! `bootstrap.kubernetes.io/token`, `token-secret` equal to the secret part
//! (compared in constant time), `usage-bootstrap-authentication: "true"`,
//! and no `expiration` in the past. The user is `system:bootstrap:<id>` in
//! `system:bootstrappers` plus the Secret's `auth-extra-groups` (each must
//! start with `system:bootstrappers:`).
//!
//! [`crate::Running::create_bootstrap_token`] makes one at server start.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::handlers::Api;

/// The namespace bootstrap-token Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// Their type.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The group every bootstrap token's user is in.
pub const GROUP: &str = "system:bootstrappers";

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A new random token: (id of 6, secret of 16, from `[a-z0-9]`).
pub fn generate() -> (String, String) {
    let pick = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    (pick(6), pick(16))
}

/// The Secret that makes `<id>.<secret>` a bootstrap token usable for
/// authentication (and signing, as kubeadm's are), expiring after `ttl`
/// (`None`: never) from `now` (Unix seconds).
pub fn secret_manifest(
    id: &str,
    secret: &str,
    ttl: Option<Duration>,
    now: i64,
    extra_groups: &[&str],
    description: &str,
) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let mut data = serde_json::Map::new();
    data.insert("token-id".into(), json!(b64(id)));
    data.insert("token-secret".into(), json!(b64(secret)));
    data.insert("usage-bootstrap-authentication".into(), json!(b64("true")));
    data.insert("usage-bootstrap-signing".into(), json!(b64("true")));
    if !description.is_empty() {
        data.insert("description".into(), json!(b64(description)));
    }
    if let Some(ttl) = ttl {
        let at = jiff::Timestamp::from_second(now + ttl.as_secs() as i64)
            .unwrap_or(jiff::Timestamp::MAX);
        data.insert("expiration".into(), json!(b64(&at.to_string())));
    }
    if !extra_groups.is_empty() {
        data.insert(
            "auth-extra-groups".into(),
            json!(b64(&extra_groups.join(","))),
        );
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": data,
    })
}

/// Whether `token` has a bootstrap token's shape, `[a-z0-9]{6}.[a-z0-9]{16}`.
pub(crate) fn looks_like(token: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    token
        .split_once('.')
        .is_some_and(|(id, secret)| ok(id, 6) && ok(secret, 16))
}

/// Authenticates a bootstrap token at `now` (Unix seconds).
pub(crate) async fn authenticate(api: &Api, token: &str, now: i64) -> Result<UserInfo, String> {
    let (id, secret) = token.split_once('.').ok_or("malformed bootstrap token")?;
    let key = format!("/registry/secrets/{NAMESPACE}/bootstrap-token-{id}");
    let object = crate::authn::lookup(api, &key)
        .await
        .map_err(|err| err.message)?
        .ok_or_else(|| format!("no bootstrap token secret for id {id}"))?;
    check(&object, id, secret, now)
}

/// The checks on a bootstrap-token Secret (pure, for tests).
pub(crate) fn check(object: &Value, id: &str, secret: &str, now: i64) -> Result<UserInfo, String> {
    if object.pointer("/metadata/deletionTimestamp").is_some() {
        return Err("bootstrap token secret is being deleted".into());
    }
    if object.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err("secret is not a bootstrap token".into());
    }
    let field = |name: &str| -> Option<String> {
        let encoded = object.pointer(&format!("/data/{name}"))?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        String::from_utf8(bytes).ok()
    };
    let stored = field("token-secret").unwrap_or_default();
    if !constant_time_eq(stored.as_bytes(), secret.as_bytes()) {
        return Err("bootstrap token secret does not match".into());
    }
    if field("token-id").as_deref() != Some(id) {
        return Err("bootstrap token id does not match".into());
    }
    if let Some(expiration) = field("expiration") {
        match expiration.parse::<jiff::Timestamp>() {
            Ok(at) if at.as_second() > now => {}
            _ => return Err("bootstrap token has expired".into()),
        }
    }
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err("bootstrap token is not for authentication".into());
    }
    let mut groups = vec![GROUP.to_owned()];
    for group in field("auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        if !valid_extra_group(group) {
            return Err(format!(
                "bootstrap token has an invalid extra group {group:?}"
            ));
        }
        if !groups.iter().any(|g| g == group) {
            groups.push(group.to_owned());
        }
    }
    groups.push("system:authenticated".to_owned());
    Ok(UserInfo::new(format!("system:bootstrap:{id}"), groups))
}

/// `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`, as upstream requires.
fn valid_extra_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Compares without leaking, through timing, how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn secret(ttl: Option<u64>, groups: &[&str]) -> Value {
        secret_manifest(
            "abcdef",
            "0123456789abcdef",
            ttl.map(Duration::from_secs),
            NOW,
            groups,
            "test",
        )
    }

    #[test]
    fn a_valid_token_authenticates_with_its_groups() {
        let user = check(
            &secret(
                Some(3600),
                &["system:bootstrappers:kubeadm:default-node-token"],
            ),
            "abcdef",
            "0123456789abcdef",
            NOW,
        )
        .unwrap();
        assert_eq!(user.username, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:kubeadm:default-node-token",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let s = secret(None, &[]);
        assert!(check(&s, "abcdef", "0123456789abcdee", NOW).is_err());
        assert!(check(&s, "abcdef", "0123456789abcde", NOW).is_err());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let s = secret(Some(60), &[]);
        assert!(check(&s, "abcdef", "0123456789abcdef", NOW + 59).is_ok());
        assert_eq!(
            check(&s, "abcdef", "0123456789abcdef", NOW + 61).unwrap_err(),
            "bootstrap token has expired"
        );
    }

    #[test]
    fn extra_groups_outside_system_bootstrappers_are_refused() {
        // The attack: a token Secret writer granting itself system:masters.
        let s = secret(None, &["system:masters"]);
        assert!(check(&s, "abcdef", "0123456789abcdef", NOW).is_err());
    }

    #[test]
    fn a_secret_not_for_authentication_or_of_another_type_is_refused() {
        let mut s = secret(None, &[]);
        s["data"]["usage-bootstrap-authentication"] = json!("ZmFsc2U=");
        assert!(check(&s, "abcdef", "0123456789abcdef", NOW).is_err());
        let mut s = secret(None, &[]);
        s["type"] = json!("Opaque");
        assert!(check(&s, "abcdef", "0123456789abcdef", NOW).is_err());
    }

    #[test]
    fn token_shapes() {
        let (id, secret) = generate();
        assert!(looks_like(&format!("{id}.{secret}")));
        assert!(!looks_like("ABCDEF.0123456789abcdef"));
        assert!(!looks_like("abcdef.0123456789abcde"));
        assert!(!looks_like("a.b.c"));
    }
}
