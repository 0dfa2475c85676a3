//! `POST …/serviceaccounts/{name}/token`: TokenRequest
//! (authentication.k8s.io/v1), what `kubectl create token` and the kubelet's
//! projected volumes ask for. Upstream's `pkg/registry/core/serviceaccount/
//! storage/token.go` in effect: audiences default to the API's, lifetime to
//! an hour (at least ten minutes), and a token bound to a Pod, Secret or
//! Node carries its name and UID so that it dies with the object.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};

use crate::handlers::{Api, Reply};
use crate::request::ResourceRequest;
use crate::status::{ApiError, ApiResult, Cause};
use crate::tokens::{API_AUDIENCE, ISSUER};

/// Upstream's default `expirationSeconds`.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a client may ask for.
const MIN_EXPIRATION_SECONDS: i64 = 600;

/// Issues a token for the service account the request names.
pub(crate) async fn create(
    api: &Api,
    req: &ResourceRequest,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Reply> {
    let namespace = req.namespace.clone().unwrap_or_default();
    let name = req.name.clone().ok_or_else(ApiError::no_route)?;
    let request = if body.is_empty() {
        json!({})
    } else {
        crate::request::decode_body(headers, body)?
    };
    if let Some(kind) = request.get("kind").and_then(Value::as_str)
        && kind != "TokenRequest"
    {
        return Err(ApiError::bad_request(format!(
            "the body of the request was in an unknown format: expected a TokenRequest, got {kind}"
        )));
    }
    crate::noderestriction::admit_token_request(api, req, &request).await?;
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(API_AUDIENCE.to_owned());
    }
    let expiration = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    validate_expiration(expiration)?;

    let account = fetch(
        api,
        &format!("/registry/serviceaccounts/{namespace}/{name}"),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("serviceaccounts", "", &name))?;
    let account_uid = uid_of(&account);

    let now = crate::authn::now();
    let mut private = json!({
        "namespace": namespace,
        "serviceaccount": {"name": name, "uid": account_uid},
    });
    let mut bound = spec.get("boundObjectRef").cloned().filter(|r| !r.is_null());
    if let Some(reference) = bound.as_mut() {
        bind(api, &namespace, &name, reference, &mut private).await?;
    }
    let claims = json!({
        "iss": ISSUER,
        "aud": audiences,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "iat": now,
        "nbf": now,
        "exp": now + expiration,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": private,
    });
    let token = api.tokens.sign(&claims);
    let timestamp = |seconds: i64| {
        jiff::Timestamp::from_second(seconds)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let mut spec_out = json!({"audiences": audiences, "expirationSeconds": expiration});
    if let Some(reference) = bound {
        spec_out["boundObjectRef"] = reference;
    }
    let body = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": timestamp(now),
        },
        "spec": spec_out,
        "status": {"token": token, "expirationTimestamp": timestamp(now + expiration)},
    });
    Ok(Reply {
        code: 201,
        body,
        warnings: Vec::new(),
        list: None,
    })
}

fn validate_expiration(seconds: i64) -> ApiResult<()> {
    let invalid = |message: &str| {
        ApiError::invalid(
            "TokenRequest",
            "authentication.k8s.io",
            "",
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {seconds}: {message}"),
                field: "spec.expirationSeconds".into(),
            }],
        )
    };
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(invalid("may not specify a duration less than 10 minutes"));
    }
    if seconds > i64::from(u32::MAX) {
        return Err(invalid(
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    Ok(())
}

/// Checks the object a token is bound to (it must exist, with the UID the
/// reference gives if any) and records it in the token's private claims
/// and the reference (its UID filled in).
async fn bind(
    api: &Api,
    namespace: &str,
    account: &str,
    reference: &mut Value,
    private: &mut Value,
) -> ApiResult<()> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let (kind, api_version, name, uid) = (
        text(reference, "kind"),
        text(reference, "apiVersion"),
        text(reference, "name"),
        text(reference, "uid"),
    );
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group.to_owned(), version.to_owned()),
        None => (String::new(), api_version.clone()),
    };
    let (key, resource, claim) = match (group.as_str(), kind.as_str()) {
        ("", "Pod") => (format!("/registry/pods/{namespace}/{name}"), "pods", "pod"),
        ("", "Secret") => (
            format!("/registry/secrets/{namespace}/{name}"),
            "secrets",
            "secret",
        ),
        ("", "Node") => (format!("/registry/nodes/{name}"), "nodes", "node"),
        _ => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {account:?} to object of type {group}/{version}, Kind={kind}"
            )));
        }
    };
    let object = fetch(api, &key)
        .await?
        .ok_or_else(|| ApiError::not_found(resource, "", &name))?;
    let found_uid = uid_of(&object);
    if !uid.is_empty() && uid != found_uid {
        return Err(ApiError::conflict(
            &kind,
            "",
            &name,
            &format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    reference["uid"] = json!(found_uid);
    private[claim] = json!({"name": name, "uid": found_uid});
    if claim == "pod" {
        let runs_as = object
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or("default");
        if runs_as != account {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
            )));
        }
        // The node the pod runs on, as upstream embeds it (1.32+).
        if let Some(node) = object.pointer("/spec/nodeName").and_then(Value::as_str)
            && !node.is_empty()
        {
            let node_uid = fetch(api, &format!("/registry/nodes/{node}"))
                .await?
                .map(|n| uid_of(&n));
            if let Some(node_uid) = node_uid {
                private["node"] = json!({"name": node, "uid": node_uid});
            }
        }
    }
    Ok(())
}

async fn fetch(api: &Api, key: &str) -> ApiResult<Option<Value>> {
    use bulwark_store::StoreExt as _;
    match api.store.get(key).await? {
        Some(kv) => Ok(Some(crate::handlers::decode_stored(
            &kv.value,
            kv.mod_revision,
        )?)),
        None => Ok(None),
    }
}

fn uid_of(object: &Value) -> String {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_below_ten_minutes_are_invalid() {
        assert!(validate_expiration(600).is_ok());
        let err = validate_expiration(599).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .contains("may not specify a duration less than 10 minutes"),
            "{}",
            err.message
        );
        assert!(validate_expiration(i64::from(u32::MAX) + 1).is_err());
    }
}
