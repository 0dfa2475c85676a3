//! Turning an HTTP request into what the API server acts on: the resource,
//! namespace, name and subresource from the path (kube-apiserver's URL
//! layout), the verb, the query parameters, and the decoded body.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::Value;

use crate::registry::{Registry, ResourceType};
use crate::status::{ApiError, ApiResult};

/// The largest request body accepted (upstream's limit for JSON/YAML).
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A request for a resource.
#[derive(Debug, Clone)]
pub(crate) struct ResourceRequest {
    /// The resource addressed.
    pub resource: Arc<ResourceType>,
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
    /// The object name in the path, if any.
    pub name: Option<String>,
    /// The subresource in the path, if any.
    pub subresource: Option<String>,
    /// The Kubernetes verb.
    pub verb: Verb,
    /// Query parameters (last value wins, as in Go's `url.Values.Get`).
    pub query: HashMap<String, String>,
    /// Who asks (set once authenticated).
    pub user: Option<crate::auth::UserInfo>,
    /// The namespace's labels, fetched for the admission checks that read
    /// them (Pod Security).
    pub namespace_labels: Option<std::collections::BTreeMap<String, String>>,
    /// The authorizer, for the checks writes of RBAC objects need.
    pub authorizer: Option<std::sync::Arc<crate::authz::Authorizer>>,
    /// Pod Security's configuration (`None`: Bulwark's defaults).
    pub pod_security: Option<std::sync::Arc<bulwark_psa::Config>>,
}

/// The verbs of the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    /// GET one object.
    Get,
    /// GET a collection.
    List,
    /// GET a collection with `watch=true`.
    Watch,
    /// POST to a collection (or to a create-only subresource).
    Create,
    /// PUT one object.
    Update,
    /// PATCH one object.
    Patch,
    /// DELETE one object.
    Delete,
    /// DELETE a collection.
    DeleteCollection,
}

impl Verb {
    /// The verb as RBAC and audit name it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// What a path addresses.
#[derive(Debug)]
pub(crate) enum Target {
    /// A resource, its collection or subresource.
    Resource(Box<ResourceRequest>),
    /// Something else (discovery, health, …): handled by path.
    Other,
}

/// Parses `path` (without the query) and the method into a target.
pub(crate) fn parse(
    registry: &Registry,
    method: &Method,
    path: &str,
    query: &str,
) -> ApiResult<Target> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", "v1", rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return Ok(Target::Other),
    };
    if crate::resourcemetrics::parse(path).is_some() {
        // Served from the agents, nothing stored (`resourcemetrics.rs`).
        return Ok(Target::Other);
    }
    let query = parse_query(query);
    // `namespaces/{ns}/{resource}…` names a namespaced resource, unless the
    // third segment is a subresource of the namespace itself.
    let (namespace, rest): (Option<String>, &[&str]) = match rest {
        ["namespaces", ns, resource, ..]
            if registry
                .get(group, version, resource)
                .is_some_and(|r| r.namespaced) =>
        {
            (Some((*ns).to_owned()), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, sub] => (*plural, Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return Err(ApiError::no_route()),
    };
    let Some(resource) = registry.get(group, version, plural) else {
        // Not a stored resource: reviews and other endpoints, or a 404.
        return Ok(Target::Other);
    };
    if let Some(sub) = &subresource
        && resource.subresource(sub).is_none()
    {
        return Err(ApiError::no_route());
    }
    if namespace.is_none() && resource.namespaced && name.is_some() {
        // A namespaced object addressed without its namespace.
        return Err(ApiError::no_route());
    }
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (method.as_str(), name.is_some(), subresource.as_deref()) {
        // Streams are authorized as `create` however they arrive (a
        // WebSocket exec is a GET), as upstream since 1.30.
        (_, true, Some("exec" | "attach" | "portforward")) => Verb::Create,
        ("GET", false, _) if watch => Verb::Watch,
        ("GET", false, _) => Verb::List,
        ("GET", true, _) => Verb::Get,
        ("POST", false, _) => Verb::Create,
        ("POST", true, Some("binding" | "eviction" | "token")) => Verb::Create,
        ("PUT", true, _) => Verb::Update,
        ("PATCH", true, _) => Verb::Patch,
        ("DELETE", true, _) => Verb::Delete,
        ("DELETE", false, _) => Verb::DeleteCollection,
        (method, _, _) => return Err(ApiError::method_not_allowed(method)),
    };
    Ok(Target::Resource(Box::new(ResourceRequest {
        resource,
        namespace,
        name,
        subresource,
        verb,
        query,
        user: None,
        namespace_labels: None,
        authorizer: None,
        pod_security: None,
    })))
}

/// Decodes `a=b&c=d` (percent-decoding, `+` as space).
pub(crate) fn parse_query(query: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(key), percent_decode(value));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The media type of a body, without parameters.
pub(crate) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decodes a JSON, YAML or Kubernetes-protobuf body into a value.
pub(crate) fn decode_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    Ok(decode_body_checked(headers, body)?.0)
}

/// Like [`decode_body`], also returning what strict decoding objects to:
/// fields a JSON body repeats, or fields the protobuf decoder did not know
/// (unknown fields of JSON and YAML bodies are found when the object is
/// checked against its type).
pub(crate) fn decode_body_checked(
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<(Value, Vec<String>)> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(
            "Request entity too large: limit is 3145728",
        ));
    }
    let media = content_type(headers);
    match media.as_str() {
        "application/json" | "" => serde_json::from_slice(body)
            .map(|v| (v, bulwark_api::strict::duplicate_fields(body)))
            .map_err(|err| ApiError::bad_request(format!("error decoding JSON body: {err}"))),
        "application/yaml" | "application/apply-patch+yaml" => {
            decode_yaml(body).map(|v| (v, Vec::new()))
        }
        bulwark_wire::MEDIA_TYPE => bulwark_wire::decode_with_unknown(body)
            .map(|(value, unknown)| {
                let messages = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                (value, messages)
            })
            .map_err(|err| match err {
                bulwark_wire::WireError::UnknownKind { .. } => {
                    ApiError::unsupported_media_type(bulwark_wire::MEDIA_TYPE)
                }
                other => ApiError::bad_request(format!("error decoding protobuf body: {other}")),
            }),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Decodes YAML (JSON is YAML too).
pub(crate) fn decode_yaml(body: &Bytes) -> ApiResult<Value> {
    serde_yaml_ng::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("error decoding YAML body: {err}")))
}

/// What the client accepts: a Table (human `kubectl get`), partial metadata,
/// or plain objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Representation {
    /// The objects themselves.
    Object,
    /// `meta.k8s.io/v1 Table`.
    Table,
}

/// Chooses the response representation from `Accept`: the first acceptable
/// entry wins; protobuf alone is not acceptable.
pub(crate) fn representation(headers: &HeaderMap) -> ApiResult<Representation> {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: HashMap<&str, &str> = parts.filter_map(|p| p.split_once('=')).collect();
        match (media, params.get("as").copied()) {
            ("application/json" | "*/*" | "application/*", Some("Table"))
                if params.get("g").copied().unwrap_or("meta.k8s.io") == "meta.k8s.io" =>
            {
                return Ok(Representation::Table);
            }
            ("application/json" | "*/*" | "application/*" | "application/yaml", None) => {
                return Ok(Representation::Object);
            }
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(
        "only the following media types are accepted: application/json, application/yaml",
    ))
}
