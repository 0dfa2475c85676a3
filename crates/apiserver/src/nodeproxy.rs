//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: the API
//! server forwards them to the agent of the pod's node (its HTTPS API on the
//! Node's `daemonEndpoints.kubeletEndpoint.Port`), authenticating with a
//! client certificate of its own (`kube-apiserver-kubelet-client`, bound to
//! `system:kubelet-api-admin`) and verifying the agent's serving certificate
//! against the cluster CA — the check upstream leaves off by default (CIS
//! 1.2.5 asks for it).
//!
//! Streams are passed through untouched: for an upgrade (WebSocket or SPDY)
//! the agent's `101 Switching Protocols` goes back to the client and bytes
//! are then copied both ways, so the protocol is the agent's business.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse as _, Response};
use bulwark_store::StoreExt as _;
use serde_json::Value;

use crate::pki::Pki;
use crate::request::ResourceRequest;
use crate::status::{ApiError, ApiResult};

/// The user the API server is to agents.
pub(crate) const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// How the API server reaches agents.
#[derive(Clone)]
pub(crate) struct KubeletClient {
    tls: tokio_rustls::TlsConnector,
}

impl KubeletClient {
    pub(crate) fn new(pki: &Pki) -> anyhow::Result<Self> {
        let (cert_pem, key_pem) = pki.issue_client(KUBELET_CLIENT_USER, &[])?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pki.ca_cert_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let certs =
            rustls_pemfile::certs(&mut cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())?
            .ok_or_else(|| anyhow::anyhow!("no key in the kubelet client key PEM"))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }
}

/// Whether `sub` is one of the subresources served by the pod's agent.
pub(crate) fn is_node_stream(sub: Option<&str>) -> bool {
    matches!(sub, Some("log" | "exec" | "attach" | "portforward"))
}

fn pod_containers(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a request means: `container=`, the
/// `kubectl.kubernetes.io/default-container` annotation, or the only one.
fn container(pod: &Value, query_container: Option<&str>, name: &str) -> ApiResult<String> {
    let names = pod_containers(pod);
    let init: Vec<String> = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(c) = query_container.filter(|c| !c.is_empty()) {
        if names.iter().chain(init.iter()).any(|n| n == c) {
            return Ok(c.to_owned());
        }
        return Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        )));
    }
    if let Some(default) = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str)
        && names.iter().any(|n| n == default)
    {
        return Ok(default.to_owned());
    }
    match names.as_slice() {
        [only] => Ok(only.clone()),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// The agent's address for `node`: its InternalIP and kubelet port.
fn node_endpoint(node: &Value) -> Option<(String, u16)> {
    let addresses = node.pointer("/status/addresses")?.as_array()?;
    let ip = addresses
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addresses.first())?["address"]
        .as_str()?
        .to_owned();
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(10250);
    Some((ip, port))
}

/// Forwards a pod stream request to the pod's agent.
pub(crate) async fn forward(
    client: &KubeletClient,
    store: &dyn bulwark_store::Store,
    req: &ResourceRequest,
    mut parts: http::request::Parts,
) -> ApiResult<Response> {
    let namespace = req.namespace.clone().unwrap_or_default();
    let name = req.name.clone().unwrap_or_default();
    let pod_key = req.resource.key(Some(&namespace), &name);
    let pod: Value = match store.get(&pod_key).await? {
        Some(kv) => serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("decoding pod: {e}")))?,
        None => return Err(ApiError::not_found("pods", "", &name)),
    };
    let Some(node_name) = pod.pointer("/spec/nodeName").and_then(Value::as_str) else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let node: Value = match store.get(&format!("/registry/nodes/{node_name}")).await? {
        Some(kv) => serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("decoding node: {e}")))?,
        None => {
            return Err(ApiError::bad_request(format!(
                "node {node_name} of pod {name} is not registered"
            )));
        }
    };
    let (ip, port) = node_endpoint(&node).ok_or_else(|| {
        ApiError::bad_request(format!(
            "node {node_name} has no address to reach its agent at"
        ))
    })?;
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let sub = req.subresource.as_deref().unwrap_or_default();
    let path = match sub {
        "portforward" => format!("/portForward/{namespace}/{name}"),
        _ => {
            let c = container(&pod, req.query.get("container").map(String::as_str), &name)?;
            let prefix = match sub {
                "log" => "containerLogs",
                "exec" => "exec",
                _ => "attach",
            };
            format!("/{prefix}/{namespace}/{name}/{c}")
        }
    };
    // The query goes along as the client wrote it (exec repeats `command`).
    let query: Vec<&str> = raw_query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("container="))
        .collect();
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };

    let mut sender = dial(client, node_name, &ip, port).await?;
    let mut backend = http::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .header(http::header::HOST, format!("{ip}:{port}"));
    for (key, value) in &parts.headers {
        let name = key.as_str();
        let forwarded = name.starts_with("sec-websocket")
            || name.starts_with("x-stream-protocol")
            || matches!(name, "connection" | "upgrade" | "accept" | "user-agent");
        if forwarded {
            backend = backend.header(key, value);
        }
    }
    let backend = backend
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut answer = sender
        .send_request(backend)
        .await
        .map_err(|e| agent_error(node_name, &e.to_string()))?;
    let status = answer.status();
    let mut response = Response::builder().status(status);
    for (key, value) in answer.headers() {
        response = response.header(key, value);
    }
    if status == http::StatusCode::SWITCHING_PROTOCOLS {
        let client_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| ApiError::bad_request("this request cannot be upgraded"))?;
        let agent_upgrade = hyper::upgrade::on(&mut answer);
        tokio::spawn(async move {
            let (Ok(client_io), Ok(agent_io)) = (client_upgrade.await, agent_upgrade.await) else {
                return;
            };
            let mut client_io = hyper_util::rt::TokioIo::new(client_io);
            let mut agent_io = hyper_util::rt::TokioIo::new(agent_io);
            let _ = tokio::io::copy_bidirectional(&mut client_io, &mut agent_io).await;
        });
        return response
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    if !status.is_success() {
        use http_body_util::BodyExt as _;
        let body = answer
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = String::from_utf8_lossy(&body).trim().to_owned();
        let error = match status.as_u16() {
            400 => ApiError::bad_request(message),
            401 | 403 => ApiError::forbidden(message),
            404 => ApiError::bad_request(message),
            _ => ApiError::internal(message),
        };
        return Ok(error.into_response());
    }
    response
        .body(Body::new(answer.into_body()))
        .map_err(|e| ApiError::internal(e.to_string()))
}

type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>;

/// An HTTP/1.1 connection to the agent at `ip:port`, its certificate
/// verified against the cluster CA.
async fn dial(client: &KubeletClient, node_name: &str, ip: &str, port: u16) -> ApiResult<Sender> {
    let tcp = tokio::net::TcpStream::connect((ip, port))
        .await
        .map_err(|e| agent_error(node_name, &format!("dial tcp {ip}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let server_name = rustls::pki_types::ServerName::try_from(ip.to_owned())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let tls = client
        .tls
        .connect(server_name, tcp)
        .await
        .map_err(|e| agent_error(node_name, &format!("TLS with the agent: {e}")))?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| agent_error(node_name, &e.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender)
}

/// `GET path` from the agent of `node` (its object): the JSON of a 200.
pub(crate) async fn agent_get(
    client: &KubeletClient,
    node: &Value,
    path: &str,
) -> ApiResult<Value> {
    use http_body_util::BodyExt as _;
    let node_name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (ip, port) = node_endpoint(node).ok_or_else(|| {
        ApiError::bad_request(format!(
            "node {node_name} has no address to reach its agent at"
        ))
    })?;
    let mut sender = dial(client, node_name, &ip, port).await?;
    let request = http::Request::get(path)
        .header(http::header::HOST, format!("{ip}:{port}"))
        .header(http::header::ACCEPT, "application/json")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| agent_error(node_name, &e.to_string()))?;
        let status = answer.status();
        let body = answer
            .into_body()
            .collect()
            .await
            .map_err(|e| agent_error(node_name, &e.to_string()))?
            .to_bytes();
        Ok::<_, ApiError>((status, body))
    })
    .await
    .map_err(|_| agent_error(node_name, &format!("no answer to GET {path} in 10s")))??;
    let (status, body) = answer;
    if !status.is_success() {
        return Err(agent_error(
            node_name,
            &format!(
                "GET {path}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| agent_error(node_name, &format!("GET {path}: {e}")))
}

fn agent_error(node: &str, message: &str) -> ApiError {
    ApiError::internal(format!(
        "error talking to the agent of node {node}: {message}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_is_chosen_as_kubectl_expects() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(container(&one, None, "p").unwrap(), "app");
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let err = container(&two, None, "p").unwrap_err();
        assert_eq!(
            err.message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(container(&two, Some("b"), "p").unwrap(), "b");
        assert!(container(&two, Some("c"), "p").is_err());
        let annotated = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/default-container": "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        });
        assert_eq!(container(&annotated, None, "p").unwrap(), "b");
    }

    #[test]
    fn the_agent_is_found_at_the_internal_ip_and_kubelet_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.7"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}},
        }});
        assert_eq!(node_endpoint(&node), Some(("10.0.0.7".into(), 10251)));
        assert_eq!(node_endpoint(&json!({})), None);
    }
}
