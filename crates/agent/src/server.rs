//! The agent's own HTTPS API (the kubelet's port 10250): container logs
//! here, exec and attach (`remotecommand.rs`) and port forwarding
//! (`portforward.rs`) for the API server's `pods/log|exec|attach|portforward`,
//! and `/stats/summary` and `/metrics/resource` (`stats.rs`). Every request is
//! authenticated by a client certificate of the cluster CA and authorized by
//! a SubjectAccessReview against the API server, as the `nodes/<sub>`
//! subresource upstream's kubelet uses (`log`, `stats`, `metrics`, else
//! `proxy`). No anonymous access, no read-only port (CIS 4.2.1–4.2.4).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_runtime::{ContainerStatus, OutputStream, Runtime};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// The certificate and address the agent's API serves with.
#[derive(Clone, Debug)]
pub struct ServingConfig {
    /// Where to listen (the node's address, port 10250).
    pub listen: SocketAddr,
    /// Serving certificate and key, signed by the cluster CA (renewed
    /// while serving: each handshake gets the current one).
    pub cert: Arc<crate::rotation::RotatingCert>,
    /// The cluster CA (PEM): clients must present a certificate it signed.
    pub ca_pem: String,
}

/// (user, verb, subresource) of an authorization decision.
type DecisionKey = (String, String, String);

pub(crate) struct ApiState {
    pub(crate) client: kube::Client,
    pub(crate) node_name: String,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) pods_dir: PathBuf,
    /// Recent authorization decisions: (user, verb, subresource) → until.
    decisions: Mutex<HashMap<DecisionKey, (bool, Instant)>>,
    /// The last CPU counters read for `/stats/summary`.
    pub(crate) cpu_history: crate::stats::CpuHistory,
}

impl ApiState {
    pub(crate) fn new(
        client: kube::Client,
        node_name: String,
        runtime: Arc<Runtime>,
        pods_dir: PathBuf,
    ) -> Self {
        ApiState {
            client,
            node_name,
            runtime,
            pods_dir,
            decisions: Mutex::new(HashMap::new()),
            cpu_history: crate::stats::CpuHistory::default(),
        }
    }
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
#[error("agent API: {0}")]
pub(crate) struct ServeError(String);

fn tls_config(cfg: &ServingConfig) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut cfg.ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| ServeError(e.to_string()))?;
        roots.add(cert).map_err(|e| ServeError(e.to_string()))?;
    }
    // Unlike the API server, no request without a certificate is served.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| ServeError(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(crate::rotation::Resolver(cfg.cert.clone())));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves the agent's API until dropped.
pub(crate) async fn serve(cfg: ServingConfig, state: Arc<ApiState>) -> Result<(), ServeError> {
    let tls = tokio_rustls::TlsAcceptor::from(tls_config(&cfg)?);
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| ServeError(format!("listening on {}: {e}", cfg.listen)))?;
    tracing::info!(address = %cfg.listen, "agent API listening");
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        let tls = tls.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                tracing::debug!(%peer, "agent API: TLS handshake failed");
                return;
            };
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| identity(c.as_ref()));
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let state = state.clone();
                let identity = identity.clone();
                async move { Ok::<_, Infallible>(handle(state, identity, request).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .with_upgrades()
                .await;
        });
    }
}

/// (user, groups) of a client certificate: CN and O, as the API server reads them.
fn identity(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some((user, groups))
}

pub(crate) fn text(code: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(message.into())).boxed());
    *response.status_mut() = code;
    response
}

/// Upstream kubelet's mapping of a path to the `nodes` subresource checked.
fn subresource(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "stats" => "stats",
        "metrics" => "metrics",
        "logs" => "log",
        "spec" => "spec",
        "checkpoint" => "checkpoint",
        _ => "proxy",
    }
}

async fn authorize(
    state: &ApiState,
    user: &str,
    groups: &[String],
    verb: &str,
    sub: &str,
) -> Result<bool, String> {
    let key = (user.to_owned(), verb.to_owned(), sub.to_owned());
    if let Ok(cache) = state.decisions.lock()
        && let Some((allowed, until)) = cache.get(&key)
        && Instant::now() < *until
    {
        return Ok(*allowed);
    }
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            groups: Some(groups.to_vec()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_owned()),
                resource: Some("nodes".to_owned()),
                subresource: Some(sub.to_owned()),
                name: Some(state.node_name.clone()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(state.client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| e.to_string())?;
    let allowed = answer.status.is_some_and(|s| s.allowed);
    // Upstream caches allowed decisions for 5 min, denials for 30 s.
    let ttl = if allowed {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(30)
    };
    if let Ok(mut cache) = state.decisions.lock() {
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(key, (allowed, Instant::now() + ttl));
    }
    Ok(allowed)
}

async fn handle(
    state: Arc<ApiState>,
    identity: Option<(String, Vec<String>)>,
    request: Request<Incoming>,
) -> Response<Body> {
    let Some((user, groups)) = identity else {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let path = request.uri().path().to_owned();
    let verb = match *request.method() {
        http::Method::GET | http::Method::HEAD => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    };
    let sub = subresource(&path);
    match authorize(&state, &user, &groups, verb, sub).await {
        Ok(true) => {}
        Ok(false) => {
            return text(
                StatusCode::FORBIDDEN,
                format!("Forbidden (user={user}, verb={verb}, resource=nodes, subresource={sub})"),
            );
        }
        Err(err) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "Authorization error (user={user}, verb={verb}, resource=nodes, subresource={sub}): {err}"
                ),
            );
        }
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let query = request.uri().query().unwrap_or("").to_owned();
    match segments.as_slice() {
        ["healthz"] => text(StatusCode::OK, "ok"),
        ["stats", "summary"] => crate::stats::summary(state).await,
        ["metrics", "resource"] => crate::stats::resource_metrics(state).await,
        ["containerLogs", ns, pod, container] => {
            logs(&state, ns, pod, container, &parse_query(&query)).await
        }
        ["exec", ns, pod, container] => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            crate::remotecommand::exec(state, request, &ns, &pod, &container, &query)
        }
        ["attach", ns, pod, container] => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            crate::remotecommand::attach(state, request, &ns, &pod, &container, &query)
        }
        ["portForward", ns, pod] => {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            crate::portforward::handle(state, request, &ns, &pod).await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn first<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true" | "True"))
}

/// Options of a container log request, as upstream's `PodLogOptions`.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogOptions {
    pub(crate) follow: bool,
    pub(crate) timestamps: bool,
    pub(crate) tail_lines: Option<usize>,
    pub(crate) since: Option<jiff::Timestamp>,
    pub(crate) limit_bytes: Option<usize>,
}

/// Renders log entries: partial pieces joined into their line, each line
/// prefixed with its time when asked.
pub(crate) fn render(entries: &[bulwark_runtime::LogEntry], options: &LogOptions) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut open: HashMap<bool, usize> = HashMap::new();
    for entry in entries {
        if let Some(since) = options.since
            && entry
                .time
                .parse::<jiff::Timestamp>()
                .is_ok_and(|t| t < since)
        {
            continue;
        }
        let stream = entry.stream == OutputStream::Stderr;
        let index = match open.get(&stream) {
            Some(i) => *i,
            None => {
                let mut line = Vec::new();
                if options.timestamps {
                    line.extend_from_slice(entry.time.as_bytes());
                    line.push(b' ');
                }
                lines.push(line);
                lines.len() - 1
            }
        };
        lines[index].extend_from_slice(&entry.text);
        if entry.partial {
            open.insert(stream, index);
        } else {
            lines[index].push(b'\n');
            open.remove(&stream);
        }
    }
    let start = options
        .tail_lines
        .map_or(0, |n| lines.len().saturating_sub(n));
    let mut out: Vec<u8> = lines[start..].concat();
    if let Some(limit) = options.limit_bytes {
        out.truncate(limit);
    }
    out
}

async fn logs(
    state: &ApiState,
    ns: &str,
    pod: &str,
    container: &str,
    query: &[(String, String)],
) -> Response<Body> {
    let previous = truthy(first(query, "previous"));
    let Some(id) = crate::pod::find_container(&state.pods_dir, ns, pod, container, previous) else {
        let message = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            )
        };
        return text(StatusCode::BAD_REQUEST, message);
    };
    let since = first(query, "sinceSeconds")
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| {
            jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_secs(s))
                .ok()
        })
        .or_else(|| first(query, "sinceTime").and_then(|t| t.parse().ok()));
    let options = LogOptions {
        follow: truthy(first(query, "follow")),
        timestamps: truthy(first(query, "timestamps")),
        tail_lines: first(query, "tailLines").and_then(|t| t.parse().ok()),
        since,
        limit_bytes: first(query, "limitBytes").and_then(|t| t.parse().ok()),
    };
    let runtime = state.runtime.clone();
    let read = {
        let runtime = runtime.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || runtime.logs(&id)).await
    };
    let entries = match read {
        Ok(Ok(entries)) => entries,
        Ok(Err(err)) => return text(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        Err(err) => return text(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    };
    let initial = render(&entries, &options);
    if !options.follow {
        let mut response = Response::new(Full::new(Bytes::from(initial)).boxed());
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        return response;
    }
    // Follow: send what is there, then what comes, until the container ends.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let mut sent = entries.len();
    tokio::spawn(async move {
        if tx.send(Bytes::from(initial)).await.is_err() {
            return;
        }
        let follow_options = LogOptions {
            tail_lines: None,
            limit_bytes: None,
            since: None,
            ..options
        };
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let runtime2 = runtime.clone();
            let id2 = id.clone();
            let Ok((entries, status)) = tokio::task::spawn_blocking(move || {
                (
                    runtime2.logs(&id2).unwrap_or_default(),
                    runtime2.status(&id2).ok(),
                )
            })
            .await
            else {
                return;
            };
            if entries.len() < sent {
                sent = 0; // rotated
            }
            if entries.len() > sent {
                let chunk = render(&entries[sent..], &follow_options);
                sent = entries.len();
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
            if !matches!(status, Some(ContainerStatus::Running { .. })) {
                return;
            }
        }
    });
    let stream = tokio_stream_from(rx);
    let mut response = Response::new(http_body_util::BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))))
}

/// Checks a WebSocket upgrade offering one of `protocols` (in our order of
/// preference): the `101` to answer with, the upgrade to await and the
/// protocol chosen; or the error to answer with.
#[allow(clippy::result_large_err)] // a response either way, once per request
pub(crate) fn websocket_upgrade(
    request: &mut Request<Incoming>,
    protocols: &[&'static str],
) -> Result<(Response<Body>, hyper::upgrade::OnUpgrade, &'static str), Response<Body>> {
    let headers = request.headers();
    let is_websocket = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_websocket {
        return Err(text(
            StatusCode::BAD_REQUEST,
            format!(
                "this call needs a WebSocket upgrade ({})",
                protocols.join(", ")
            ),
        ));
    }
    let offered: Vec<String> = headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let Some(protocol) = protocols
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
        .copied()
    else {
        return Err(text(
            StatusCode::BAD_REQUEST,
            format!(
                "unsupported streaming protocol; want one of: {}",
                protocols.join(", ")
            ),
        ));
    };
    let Some(key) = headers.get(http::header::SEC_WEBSOCKET_KEY) else {
        return Err(text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key"));
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(request);
    let mut response = Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static(protocol),
    );
    Ok((response, on_upgrade, protocol))
}

/// A normal closure: client-go reads it as the end of every stream
/// (without a code, it reports "close 1005 (no status)").
pub(crate) fn normal_close() -> tokio_tungstenite::tungstenite::protocol::CloseFrame {
    tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_runtime::LogEntry;

    fn entry(time: &str, text: &str, partial: bool) -> LogEntry {
        LogEntry {
            time: time.into(),
            stream: OutputStream::Stdout,
            partial,
            text: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn logs_join_partial_lines_and_honour_tail_and_limits() {
        let entries = vec![
            entry("2026-01-01T00:00:00Z", "one", false),
            entry("2026-01-01T00:00:01Z", "tw", true),
            entry("2026-01-01T00:00:01Z", "o", false),
            entry("2026-01-01T00:00:02Z", "three", false),
        ];
        let all = render(&entries, &LogOptions::default());
        assert_eq!(String::from_utf8(all).unwrap(), "one\ntwo\nthree\n");
        let tail = render(
            &entries,
            &LogOptions {
                tail_lines: Some(2),
                ..LogOptions::default()
            },
        );
        assert_eq!(String::from_utf8(tail).unwrap(), "two\nthree\n");
        let stamped = render(
            &entries[..1],
            &LogOptions {
                timestamps: true,
                ..LogOptions::default()
            },
        );
        assert_eq!(
            String::from_utf8(stamped).unwrap(),
            "2026-01-01T00:00:00Z one\n"
        );
        let limited = render(
            &entries,
            &LogOptions {
                limit_bytes: Some(5),
                ..LogOptions::default()
            },
        );
        assert_eq!(String::from_utf8(limited).unwrap(), "one\nt");
        let since = render(
            &entries,
            &LogOptions {
                since: "2026-01-01T00:00:02Z".parse().ok(),
                ..LogOptions::default()
            },
        );
        assert_eq!(String::from_utf8(since).unwrap(), "three\n");
    }

    #[test]
    fn paths_map_to_upstream_subresources() {
        assert_eq!(subresource("/containerLogs/ns/p/c"), "proxy");
        assert_eq!(subresource("/exec/ns/p/c"), "proxy");
        assert_eq!(subresource("/stats/summary"), "stats");
        assert_eq!(subresource("/metrics/resource"), "metrics");
        assert_eq!(subresource("/logs/"), "log");
    }

    #[test]
    fn queries_decode_repeated_commands() {
        let q = parse_query("command=sh&command=-c&command=echo%20hi+there&tty=1");
        let commands: Vec<&str> = q
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(commands, ["sh", "-c", "echo hi there"]);
        assert!(truthy(first(&q, "tty")));
        assert_eq!(decode("%zz"), "%zz");
    }
}
