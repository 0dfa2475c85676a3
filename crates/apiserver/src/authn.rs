//! Bearer-token authentication, as kube-apiserver's token authenticators
//! do it: a service-account JWT this cluster signed (upstream's
//! `pkg/serviceaccount` validator) or a bootstrap token
//! (`bootstrap_token.rs`). Also TokenReview, which asks the same question
//! on someone else's behalf.
//!
//! A service-account token is accepted only while what it names still
//! exists: the ServiceAccount with the UID in the token and, for a bound
//! token, the Pod or Secret with its UID — so a token stolen from a pod
//! dies with the pod. Lookups go to the watch caches (the store only when a
//! cache has not seen the object, e.g. just after its creation).
//!
//! Failures are answered with a bare 401 `Unauthorized`; the reason goes to
//! the debug log, never the token.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::handlers::Api;
use crate::status::{ApiError, ApiResult};
use crate::tokens::{API_AUDIENCE, ISSUER};

/// Clock skew tolerated on `exp`, `nbf` and `iat` (go-jose's default).
const LEEWAY_SECONDS: i64 = 60;

/// An object deleted longer ago than this (still present only because of
/// finalizers or grace) no longer vouches for its tokens.
const DELETION_GRACE_SECONDS: i64 = 60;

/// The `extra` keys upstream puts on service-account users.
pub(crate) const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
pub(crate) const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
pub(crate) const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
pub(crate) const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
pub(crate) const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// A token that authenticated: who, and for which of the audiences asked.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub(crate) user: UserInfo,
    pub(crate) audiences: Vec<String>,
}

/// The bearer token of a request, if it carries one.
pub(crate) fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Authenticates `token` for `audiences` (the API's own when empty).
pub(crate) async fn authenticate(
    api: &Api,
    token: &str,
    audiences: &[String],
    now: i64,
) -> Result<Authenticated, String> {
    let api_audiences = [API_AUDIENCE.to_owned()];
    let audiences = if audiences.is_empty() {
        &api_audiences[..]
    } else {
        audiences
    };
    if crate::bootstrap_token::looks_like(token) {
        // Bootstrap tokens are not audience-scoped: they are for the API.
        let user = crate::bootstrap_token::authenticate(api, token, now).await?;
        if !audiences.iter().any(|a| a == API_AUDIENCE) {
            return Err("bootstrap tokens are valid only for the API server".into());
        }
        return Ok(Authenticated {
            user,
            audiences: vec![API_AUDIENCE.to_owned()],
        });
    }
    if !crate::tokens::looks_like_jwt(token) {
        return Err("not a token this server issued".into());
    }
    let claims = api.tokens.verify(token).map_err(|err| err.to_string())?;
    let checked = check_claims(&claims, audiences, now)?;
    let user = check_objects(api, &checked, now).await?;
    Ok(Authenticated {
        user,
        audiences: checked.audiences,
    })
}

/// The parts of a service-account token's claims that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceAccountClaims {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) pod: Option<(String, String)>,
    pub(crate) secret: Option<(String, String)>,
    pub(crate) node: Option<(String, String)>,
    pub(crate) jti: Option<String>,
    /// The token's audiences that were asked for.
    pub(crate) audiences: Vec<String>,
}

/// Checks what a verified token says, at time `now`: issuer, lifetime (with
/// leeway), audience, and the `kubernetes.io` private claims.
pub(crate) fn check_claims(
    claims: &Value,
    audiences: &[String],
    now: i64,
) -> Result<ServiceAccountClaims, String> {
    if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) {
        return Err("token issued by another issuer".into());
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    let Some(exp) = time("exp") else {
        return Err("token has no expiry".into());
    };
    if now > exp + LEEWAY_SECONDS {
        return Err("token has expired".into());
    }
    if time("nbf").is_some_and(|nbf| now + LEEWAY_SECONDS < nbf) {
        return Err("token not valid yet".into());
    }
    if time("iat").is_some_and(|iat| now + LEEWAY_SECONDS < iat) {
        return Err("token issued in the future".into());
    }
    let token_audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let matched: Vec<String> = audiences
        .iter()
        .filter(|a| token_audiences.contains(&a.as_str()))
        .cloned()
        .collect();
    if matched.is_empty() {
        return Err(format!(
            "token audiences {token_audiences:?} is invalid for the target audiences {audiences:?}"
        ));
    }
    let private = claims
        .get("kubernetes.io")
        .ok_or("token lacks the kubernetes.io claims")?;
    let text = |path: &str| {
        private
            .pointer(path)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let reference = |kind: &str| {
        Some((
            text(&format!("/{kind}/name"))?,
            text(&format!("/{kind}/uid"))?,
        ))
    };
    let namespace = text("/namespace").ok_or("token names no namespace")?;
    let (name, uid) = reference("serviceaccount").ok_or("token names no service account")?;
    let expected_subject = format!("system:serviceaccount:{namespace}:{name}");
    if claims.get("sub").and_then(Value::as_str) != Some(expected_subject.as_str()) {
        return Err("token subject does not match its service account".into());
    }
    Ok(ServiceAccountClaims {
        namespace,
        name,
        uid,
        pod: reference("pod"),
        secret: reference("secret"),
        node: reference("node"),
        jti: claims.get("jti").and_then(Value::as_str).map(str::to_owned),
        audiences: matched,
    })
}

/// Checks that the objects a token names still exist with its UIDs, and
/// builds the user.
async fn check_objects(
    api: &Api,
    claims: &ServiceAccountClaims,
    now: i64,
) -> Result<UserInfo, String> {
    let ns = &claims.namespace;
    let expect = |object: Option<Arc<Value>>, what: &str, uid: &str| -> Result<(), String> {
        let Some(object) = object else {
            return Err(format!("{what} no longer exists"));
        };
        if object.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
            return Err(format!("{what} was recreated (UID differs)"));
        }
        if deleted_long_ago(&object, now) {
            return Err(format!("{what} is being deleted"));
        }
        Ok(())
    };
    let get = |key: String| async move { lookup(api, &key).await.map_err(|err| err.message) };
    expect(
        get(format!("/registry/serviceaccounts/{ns}/{}", claims.name)).await?,
        &format!("service account {ns}/{}", claims.name),
        &claims.uid,
    )?;
    if let Some((pod, uid)) = &claims.pod {
        expect(
            get(format!("/registry/pods/{ns}/{pod}")).await?,
            &format!("pod {ns}/{pod}"),
            uid,
        )?;
    } else if let Some((node, uid)) = &claims.node {
        expect(
            get(format!("/registry/nodes/{node}")).await?,
            &format!("node {node}"),
            uid,
        )?;
    }
    if let Some((secret, uid)) = &claims.secret {
        expect(
            get(format!("/registry/secrets/{ns}/{secret}")).await?,
            &format!("secret {ns}/{secret}"),
            uid,
        )?;
    }
    let mut user = UserInfo::new(
        format!("system:serviceaccount:{ns}:{}", claims.name),
        vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".to_owned(),
        ],
    );
    user.uid = claims.uid.clone();
    let mut extra = BTreeMap::new();
    if let Some((pod, uid)) = &claims.pod {
        extra.insert(EXTRA_POD_NAME.to_owned(), vec![pod.clone()]);
        extra.insert(EXTRA_POD_UID.to_owned(), vec![uid.clone()]);
    }
    if let Some((node, uid)) = &claims.node {
        extra.insert(EXTRA_NODE_NAME.to_owned(), vec![node.clone()]);
        extra.insert(EXTRA_NODE_UID.to_owned(), vec![uid.clone()]);
    }
    if let Some(jti) = &claims.jti {
        extra.insert(EXTRA_CREDENTIAL_ID.to_owned(), vec![format!("JTI={jti}")]);
    }
    user.extra = extra;
    Ok(user)
}

fn deleted_long_ago(object: &Value, now: i64) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .is_some_and(|t| t.as_second() + DELETION_GRACE_SECONDS < now)
}

/// One object by storage key: from its watch cache, or from the store when
/// the cache does not (yet) hold it.
pub(crate) async fn lookup(api: &Api, key: &str) -> ApiResult<Option<Arc<Value>>> {
    if let Some(Some(object)) = api.caches.object(key) {
        return Ok(Some(Arc::new(object.value())));
    }
    use bulwark_store::StoreExt as _;
    match api.store.get(key).await? {
        Some(kv) => Ok(Some(Arc::new(crate::handlers::decode_stored(
            &kv.value,
            kv.mod_revision,
        )?))),
        None => Ok(None),
    }
}

/// Now, in Unix seconds.
pub(crate) fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: does this token
/// authenticate, and as whom? The token is never logged.
pub(crate) async fn token_review(api: &Api, review: &Value) -> ApiResult<Value> {
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let audiences: Vec<String> = review
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let status = match authenticate(api, token, &audiences, now()).await {
        Ok(found) => json!({
            "authenticated": true,
            "user": found.user.to_json(),
            "audiences": found.audiences,
        }),
        Err(why) => {
            tracing::debug!(%why, "TokenReview: token not authenticated");
            json!({"user": {}, "error": "[invalid bearer token, Token has been invalidated]"})
        }
    };
    let mut spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        spec.insert("token".into(), json!(token));
    }
    Ok(json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn claims(exp: i64, aud: Value) -> Value {
        json!({
            "iss": ISSUER, "aud": aud, "exp": exp, "iat": exp - 3600, "nbf": exp - 3600,
            "sub": "system:serviceaccount:ns:sa", "jti": "j1",
            "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "u1"},
                              "pod": {"name": "p", "uid": "u2"}},
        })
    }

    fn api() -> Vec<String> {
        vec![API_AUDIENCE.to_owned()]
    }

    #[test]
    fn a_current_token_for_the_api_passes() {
        let checked = check_claims(&claims(NOW + 600, json!([API_AUDIENCE])), &api(), NOW).unwrap();
        assert_eq!(checked.name, "sa");
        assert_eq!(checked.pod, Some(("p".into(), "u2".into())));
        assert_eq!(checked.audiences, api());
    }

    #[test]
    fn an_expired_token_is_refused_past_the_leeway() {
        let c = claims(NOW - 30, json!([API_AUDIENCE]));
        assert!(
            check_claims(&c, &api(), NOW).is_ok(),
            "within a minute's skew"
        );
        let c = claims(NOW - 61, json!([API_AUDIENCE]));
        assert_eq!(
            check_claims(&c, &api(), NOW).unwrap_err(),
            "token has expired"
        );
    }

    #[test]
    fn a_token_for_another_audience_is_refused() {
        let c = claims(NOW + 600, json!(["vault"]));
        assert!(
            check_claims(&c, &api(), NOW)
                .unwrap_err()
                .contains("audiences")
        );
        // The same token is good for the audience it names.
        assert!(check_claims(&c, &["vault".to_owned()], NOW).is_ok());
    }

    #[test]
    fn a_token_from_another_issuer_or_mismatched_subject_is_refused() {
        let mut c = claims(NOW + 600, json!([API_AUDIENCE]));
        c["iss"] = json!("https://evil.example");
        assert!(check_claims(&c, &api(), NOW).is_err());
        let mut c = claims(NOW + 600, json!([API_AUDIENCE]));
        c["sub"] = json!("system:serviceaccount:kube-system:admin");
        assert!(check_claims(&c, &api(), NOW).is_err());
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", "Bearer abc.def".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc.def"));
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }
}
