//! `pods/portforward`: what `kubectl port-forward` 1.32 speaks by default
//! (KEP-4006) — a WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io`
//! whose binary messages carry a SPDY/3.1 session ([`crate::spdy`]) as one
//! byte stream — and the plain `Upgrade: SPDY/3.1` it falls back to.
//!
//! For each local connection the client opens two streams with headers
//! `streamtype` (`error`, then `data`), `port` and `requestid`. The data
//! stream is joined to a TCP connection to `localhost:<port>` made inside
//! the pod's network namespace (on a thread that enters it and ends, as the
//! probes do); a failure is written to the error stream as upstream's kubelet
//! words it. Both streams are closed (FIN) when the pod's side ends, which
//! is what the client waits for.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::server::{ApiState, Body, text};
use crate::spdy::{Codec, Frame, Headers, PROTOCOL_ERROR, REFUSED_STREAM, header};

/// The WebSocket subprotocol of SPDY tunnelled for port forwarding.
pub(crate) const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The plain upgrade: `Upgrade: SPDY/3.1`, the stream protocol named in
/// `X-Stream-Protocol-Version`.
const SPDY: &str = "SPDY/3.1";
const SUBPROTOCOL: &str = "portforward.k8s.io";
const STREAM_PROTOCOL: &str = "x-stream-protocol-version";

/// How long connecting inside the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest data frame we send.
const CHUNK: usize = 32 * 1024;

/// Streams a session may have open at once (a client opening streams
/// without end would otherwise grow the agent without bound).
const MAX_STREAMS: usize = 1024;

/// The pod a session forwards into.
#[derive(Debug)]
struct Target {
    /// `namespace/name`, for messages.
    pod: String,
    uid: String,
    /// The pod's pinned network namespace; `None` for `hostNetwork` pods.
    netns: Option<PathBuf>,
}

/// Answers `GET /portForward/{namespace}/{pod}` with a WebSocket upgrade and
/// serves the session on it.
pub(crate) async fn handle(
    state: Arc<ApiState>,
    mut request: Request<Incoming>,
    namespace: &str,
    name: &str,
) -> Response<Body> {
    let target = match target(&state, namespace, name).await {
        Ok(target) => Arc::new(target),
        Err(response) => return response,
    };
    if let Some(response) = spdy_upgrade(&request) {
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                tracing::debug!(pod = %target.pod, "port-forward session (SPDY)");
                over_spdy(upgraded, target).await;
            }
        });
        return response;
    }
    let (response, upgrade) = match crate::server::websocket_upgrade(&mut request, &[PROTOCOL]) {
        Ok((response, upgrade, _)) => (response, upgrade),
        Err(response) => return response,
    };
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        tracing::debug!(pod = %target.pod, "port-forward session");
        over_websocket(ws, target).await;
    });
    response
}

/// The `101` for a plain SPDY/3.1 upgrade offering `portforward.k8s.io`
/// (`X-Stream-Protocol-Version`), if that is what `request` asks.
fn spdy_upgrade(request: &Request<Incoming>) -> Option<Response<Body>> {
    let headers = request.headers();
    let spdy = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(SPDY));
    let offered = headers
        .get_all(STREAM_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if !(spdy && offered) {
        return None;
    }
    let mut response = text(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = response.headers_mut();
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    h.insert(http::header::UPGRADE, http::HeaderValue::from_static(SPDY));
    h.insert(STREAM_PROTOCOL, http::HeaderValue::from_static(SUBPROTOCOL));
    Some(response)
}

/// The pod, as this node runs it: its UID names its directory, which holds
/// its pinned network namespace.
#[allow(clippy::result_large_err)] // a response either way, once per request
async fn target(state: &ApiState, namespace: &str, name: &str) -> Result<Target, Response<Body>> {
    let pods: Api<Pod> = Api::namespaced(state.client.clone(), namespace);
    let pod = match pods.get_opt(name).await {
        Ok(Some(pod)) => pod,
        Ok(None) => {
            return Err(text(
                StatusCode::NOT_FOUND,
                format!("pod \"{namespace}/{name}\" not found"),
            ));
        }
        Err(err) => return Err(text(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())),
    };
    let spec = pod.spec.unwrap_or_default();
    let uid = pod.metadata.uid.unwrap_or_default();
    let dir = state.pods_dir.join(&uid);
    if spec.node_name.as_deref() != Some(state.node_name.as_str())
        || uid.is_empty()
        || !dir.is_dir()
    {
        return Err(text(
            StatusCode::NOT_FOUND,
            format!("pod \"{namespace}/{name}\" is not running on this node"),
        ));
    }
    let netns = if spec.host_network == Some(true) {
        None
    } else {
        let path = dir.join("ns").join("net");
        if !path.exists() {
            return Err(text(
                StatusCode::NOT_FOUND,
                format!("pod \"{namespace}/{name}\" has no network namespace yet"),
            ));
        }
        Some(path)
    };
    Ok(Target {
        pod: format!("{namespace}/{name}"),
        uid,
        netns,
    })
}

type Ws = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// The WebSocket transport: SPDY bytes in binary messages, each frame we
/// send in one message, a normal closure at the end.
async fn over_websocket(ws: Ws, target: Arc<Target>) {
    let (mut sink, mut source) = ws.split();
    let (incoming_tx, incoming) = mpsc::channel::<Vec<u8>>(16);
    let (outgoing, mut outgoing_rx) = mpsc::channel::<Vec<u8>>(64);
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = source.next().await {
            match message {
                Message::Binary(bytes) if incoming_tx.send(bytes.to_vec()).await.is_err() => {
                    return;
                }
                Message::Close(_) => return,
                _ => {}
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(bytes) = outgoing_rx.recv().await {
            if sink.send(Message::Binary(bytes.into())).await.is_err() {
                return;
            }
        }
        let _ = sink
            .send(Message::Close(Some(crate::server::normal_close())))
            .await;
    });
    session(incoming, outgoing, target).await;
    reader.abort();
    let _ = writer.await;
}

/// The plain SPDY transport (kubectl's fallback, and clients before
/// 1.31): the upgraded connection carries the session's bytes as they are.
async fn over_spdy(upgraded: hyper::upgrade::Upgraded, target: Arc<Target>) {
    let io = hyper_util::rt::TokioIo::new(upgraded);
    let (mut read, mut write) = tokio::io::split(io);
    let (incoming_tx, incoming) = mpsc::channel::<Vec<u8>>(16);
    let (outgoing, mut outgoing_rx) = mpsc::channel::<Vec<u8>>(64);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if incoming_tx.send(buf[..n].to_vec()).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(bytes) = outgoing_rx.recv().await {
            if write.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    });
    session(incoming, outgoing, target).await;
    reader.abort();
    let _ = writer.await;
}

/// One client session, whatever carries it: SPDY bytes in, encoded frames
/// out through a single writer (header compression is ordered), one task
/// per forwarded connection.
async fn session(
    mut incoming: mpsc::Receiver<Vec<u8>>,
    outgoing: mpsc::Sender<Vec<u8>>,
    target: Arc<Target>,
) {
    let (out, mut frames) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut codec = Codec::new();
        while let Some(frame) = frames.recv().await {
            if outgoing.send(codec.encode(&frame)).await.is_err() {
                return;
            }
        }
    });
    let mut codec = Codec::new();
    let mut streams = Streams::new(out.clone(), target);
    'session: while let Some(bytes) = incoming.recv().await {
        codec.feed(&bytes);
        loop {
            match codec.next_frame() {
                Ok(Some(frame)) => {
                    if !streams.handle(frame).await {
                        break 'session;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::debug!(error = %err, "port-forward: bad SPDY from the client");
                    let _ = out
                        .send(Frame::GoAway {
                            last_good: streams.last_stream,
                            status: PROTOCOL_ERROR,
                        })
                        .await;
                    break 'session;
                }
            }
        }
    }
    // Dropping the connections' tasks closes their sockets; the writer
    // ends once every sender is gone.
    drop(streams);
    drop(out);
    let _ = writer.await;
}

/// The streams of a session.
struct Streams {
    out: mpsc::Sender<Frame>,
    target: Arc<Target>,
    /// Error streams waiting for their data stream, by request id.
    errors: HashMap<String, u32>,
    /// Bytes from the client for each data stream's connection.
    inputs: HashMap<u32, mpsc::Sender<Vec<u8>>>,
    tasks: tokio::task::JoinSet<()>,
    aborts: HashMap<u32, tokio::task::AbortHandle>,
    /// Which data stream each connection task serves.
    task_streams: HashMap<tokio::task::Id, u32>,
    last_stream: u32,
}

impl Streams {
    fn new(out: mpsc::Sender<Frame>, target: Arc<Target>) -> Streams {
        Streams {
            out,
            target,
            errors: HashMap::new(),
            inputs: HashMap::new(),
            tasks: tokio::task::JoinSet::new(),
            aborts: HashMap::new(),
            task_streams: HashMap::new(),
            last_stream: 0,
        }
    }

    /// Acts on one frame; false ends the session.
    async fn handle(&mut self, frame: Frame) -> bool {
        // Forget finished connections.
        while let Some(done) = self.tasks.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(err) => err.id(),
            };
            if let Some(stream) = self.task_streams.remove(&id) {
                self.aborts.remove(&stream);
                self.inputs.remove(&stream);
            }
        }
        match frame {
            Frame::SynStream {
                stream, headers, ..
            } => {
                self.last_stream = self.last_stream.max(stream);
                self.open(stream, &headers).await
            }
            Frame::Data { stream, fin, data } => {
                if let Some(input) = self.inputs.get(&stream)
                    && !data.is_empty()
                    && input.send(data).await.is_err()
                {
                    self.inputs.remove(&stream);
                }
                if fin {
                    // The client sends no more: the pod's side sees EOF.
                    self.inputs.remove(&stream);
                }
                true
            }
            Frame::RstStream { stream, .. } => {
                self.inputs.remove(&stream);
                if let Some(abort) = self.aborts.remove(&stream) {
                    abort.abort();
                }
                true
            }
            Frame::Ping(id) => self.out.send(Frame::Ping(id)).await.is_ok(),
            Frame::GoAway { .. } => false,
            Frame::SynReply { .. } | Frame::Ignored(_) => true,
        }
    }

    async fn open(&mut self, stream: u32, headers: &Headers) -> bool {
        if self.errors.len() + self.inputs.len() >= MAX_STREAMS {
            let refused = Frame::RstStream {
                stream,
                status: REFUSED_STREAM,
            };
            return self.out.send(refused).await.is_ok();
        }
        let reply = Frame::SynReply {
            stream,
            fin: false,
            headers: Vec::new(),
        };
        if self.out.send(reply).await.is_err() {
            return false;
        }
        // Old clients send no request id: upstream pairs the data stream
        // with the error stream opened just before it.
        let request = |offset: u32| {
            header(headers, "requestid")
                .map(str::to_owned)
                .unwrap_or_else(|| stream.saturating_sub(offset).to_string())
        };
        match header(headers, "streamtype") {
            Some("error") => {
                self.errors.insert(request(0), stream);
            }
            Some("data") => {
                let error = self.errors.remove(&request(2));
                let (input, receiver) = mpsc::channel(16);
                self.inputs.insert(stream, input);
                let connection = Connection {
                    data: stream,
                    error,
                    port: header(headers, "port").unwrap_or("").to_owned(),
                    out: self.out.clone(),
                    target: self.target.clone(),
                };
                let abort = self.tasks.spawn(connection.run(receiver));
                self.task_streams.insert(abort.id(), stream);
                self.aborts.insert(stream, abort);
            }
            _ => {
                let reset = Frame::RstStream {
                    stream,
                    status: PROTOCOL_ERROR,
                };
                return self.out.send(reset).await.is_ok();
            }
        }
        true
    }
}

/// One forwarded connection: a data stream and its error stream.
struct Connection {
    data: u32,
    error: Option<u32>,
    port: String,
    out: mpsc::Sender<Frame>,
    target: Arc<Target>,
}

impl Connection {
    async fn run(self, mut input: mpsc::Receiver<Vec<u8>>) {
        let port = match parse_port(&self.port) {
            Ok(port) => port,
            Err(message) => return self.finish(Some(message)).await,
        };
        let tcp = match connect(self.target.netns.clone(), port).await {
            Ok(tcp) => tcp,
            Err(err) => {
                let message = format!(
                    "error forwarding port {port} to pod {}, uid {}: {err}",
                    self.target.pod, self.target.uid
                );
                tracing::debug!(%message, "port-forward");
                return self.finish(Some(message)).await;
            }
        };
        let (mut reader, mut writer) = tcp.into_split();
        let upload = async move {
            while let Some(chunk) = input.recv().await {
                if writer.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        };
        let download = async {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let frame = Frame::Data {
                            stream: self.data,
                            fin: false,
                            data: buf[..n].to_vec(),
                        };
                        if self.out.send(frame).await.is_err() {
                            return;
                        }
                    }
                }
            }
            self.finish(None).await;
        };
        tokio::join!(upload, download);
    }

    /// Ends both streams, with `message` on the error stream first.
    async fn finish(&self, message: Option<String>) {
        if let Some(error) = self.error {
            if let Some(message) = message {
                let _ = self
                    .out
                    .send(Frame::Data {
                        stream: error,
                        fin: false,
                        data: message.into_bytes(),
                    })
                    .await;
            }
            let _ = self.out.send(fin(error)).await;
        }
        let _ = self.out.send(fin(self.data)).await;
    }
}

fn fin(stream: u32) -> Frame {
    Frame::Data {
        stream,
        fin: true,
        data: Vec::new(),
    }
}

/// The `port` header, with upstream's messages.
fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(0) => Err(format!("port {value:?} must be > 0")),
        Ok(port) => Ok(port),
        Err(err) => Err(format!("unable to parse '{value}' as a port: {err}")),
    }
}

/// Connects to `localhost:port` in `netns` (the agent's own if `None`).
async fn connect(netns: Option<PathBuf>, port: u16) -> Result<tokio::net::TcpStream, String> {
    let std = crate::probe::in_netns(netns, move || {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        std::net::TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
            .map_err(|e| format!("failed to connect to localhost:{port} inside the pod: {e}"))
    })
    .await?;
    std.set_nonblocking(true).map_err(|e| e.to_string())?;
    let _ = std.set_nodelay(true);
    tokio::net::TcpStream::from_std(std).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_checked_as_upstream_does() {
        assert_eq!(parse_port("8080"), Ok(8080));
        assert_eq!(parse_port("0"), Err("port \"0\" must be > 0".into()));
        assert!(
            parse_port("http")
                .unwrap_err()
                .starts_with("unable to parse 'http' as a port")
        );
        assert!(parse_port("70000").is_err());
    }

    /// A session driven as client-go drives it, over an in-memory pipe in
    /// place of the WebSocket's byte stream: the connection to a listener
    /// (here in the test's own namespace) echoes, and a port nothing
    /// listens on yields an error message and both streams closed.
    #[tokio::test]
    async fn streams_pair_by_request_id_and_report_refused_ports() {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 64];
            let n = socket.read(&mut buf).await.unwrap();
            socket.write_all(b"echo:").await.unwrap();
            socket.write_all(&buf[..n]).await.unwrap();
        });
        // A free port: bound, then closed.
        let closed = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (out, mut frames) = mpsc::channel(64);
        let target = Arc::new(Target {
            pod: "default/web".into(),
            uid: "u-1".into(),
            netns: None,
        });
        let mut streams = Streams::new(out, target);
        let syn = |stream: u32, kind: &str, port: u16, id: &str| Frame::SynStream {
            stream,
            fin: false,
            headers: vec![
                ("streamtype".into(), kind.into()),
                ("port".into(), port.to_string()),
                ("requestid".into(), id.into()),
            ],
        };
        assert!(streams.handle(syn(1, "error", port, "0")).await);
        assert!(streams.handle(syn(3, "data", port, "0")).await);
        assert!(
            streams
                .handle(Frame::Data {
                    stream: 3,
                    fin: false,
                    data: b"hi".to_vec()
                })
                .await
        );
        assert!(streams.handle(syn(5, "error", closed, "1")).await);
        assert!(streams.handle(syn(7, "data", closed, "1")).await);
        assert!(streams.handle(Frame::Ping(9)).await);

        let mut got: HashMap<u32, (Vec<u8>, bool)> = HashMap::new();
        let mut replies = Vec::new();
        let mut pongs = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !(got.get(&1).is_some_and(|s| s.1)
            && got.get(&3).is_some_and(|s| s.1)
            && got.get(&5).is_some_and(|s| s.1)
            && got.get(&7).is_some_and(|s| s.1))
        {
            let frame = tokio::time::timeout_at(deadline, frames.recv())
                .await
                .expect("every stream ends")
                .unwrap();
            match frame {
                Frame::SynReply { stream, .. } => replies.push(stream),
                Frame::Data { stream, fin, data } => {
                    let entry = got.entry(stream).or_default();
                    entry.0.extend(data);
                    entry.1 |= fin;
                }
                Frame::Ping(id) => pongs.push(id),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(replies, [1, 3, 5, 7]);
        assert_eq!(pongs, [9]);
        assert_eq!(got[&3].0, b"echo:hi");
        assert!(got[&1].0.is_empty());
        let message = String::from_utf8(got[&5].0.clone()).unwrap();
        assert!(
            message.starts_with(&format!(
                "error forwarding port {closed} to pod default/web, uid u-1: failed to connect to localhost:{closed}"
            )),
            "{message}"
        );
        assert!(got[&7].0.is_empty());
    }

    /// A client opening streams without end is refused past the cap,
    /// instead of growing the agent's memory.
    #[tokio::test]
    async fn streams_past_the_cap_are_refused() {
        let (out, mut frames) = mpsc::channel(4 * MAX_STREAMS);
        let target = Arc::new(Target {
            pod: "default/web".into(),
            uid: "u".into(),
            netns: None,
        });
        let mut streams = Streams::new(out, target);
        for i in 0..=MAX_STREAMS as u32 {
            let frame = Frame::SynStream {
                stream: 2 * i + 1,
                fin: false,
                headers: vec![
                    ("streamtype".into(), "error".into()),
                    ("requestid".into(), i.to_string()),
                ],
            };
            assert!(streams.handle(frame).await);
        }
        let mut last = None;
        while let Ok(frame) = frames.try_recv() {
            last = Some(frame);
        }
        assert_eq!(
            last,
            Some(Frame::RstStream {
                stream: 2 * MAX_STREAMS as u32 + 1,
                status: REFUSED_STREAM
            })
        );
        assert_eq!(streams.errors.len(), MAX_STREAMS);
    }

    #[tokio::test]
    async fn unknown_stream_types_are_reset() {
        let (out, mut frames) = mpsc::channel(8);
        let target = Arc::new(Target {
            pod: "default/web".into(),
            uid: "u".into(),
            netns: None,
        });
        let mut streams = Streams::new(out, target);
        let frame = Frame::SynStream {
            stream: 1,
            fin: false,
            headers: vec![("streamtype".into(), "stdin".into())],
        };
        assert!(streams.handle(frame).await);
        assert!(matches!(
            frames.recv().await,
            Some(Frame::SynReply { stream: 1, .. })
        ));
        assert_eq!(
            frames.recv().await,
            Some(Frame::RstStream {
                stream: 1,
                status: PROTOCOL_ERROR
            })
        );
        assert!(
            !streams
                .handle(Frame::GoAway {
                    last_good: 1,
                    status: 0
                })
                .await
        );
    }
}
