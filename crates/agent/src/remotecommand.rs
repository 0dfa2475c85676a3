//! `pods/exec` and `pods/attach` over WebSocket (`v5.channel.k8s.io`, as
//! kubectl 1.32 asks first; `v4` too). Binary messages whose first byte is
//! the channel: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status`, 4 a
//! terminal resize, and (v5) 255 `[255, channel]` closing one of ours, sent
//! by the client when its stdin ends.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use bulwark_runtime::{OutputStream, Runtime};
use futures::{SinkExt as _, StreamExt as _};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::server::{
    ApiState, Body, first, normal_close, parse_query, text, truthy, websocket_upgrade,
};

/// The streaming protocols the agent speaks, preferred first.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// `GET /exec/{namespace}/{pod}/{container}?command=…`: a WebSocket
/// session running `command` in the container.
pub(crate) fn exec(
    state: Arc<ApiState>,
    mut request: Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
    query: &str,
) -> Response<Body> {
    let query = parse_query(query);
    let command: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 command",
        );
    }
    let tty = truthy(first(&query, "tty"));
    let stdin = truthy(first(&query, "stdin"));
    let Some(id) = crate::pod::find_container(&state.pods_dir, ns, pod, container, false) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("container \"{container}\" not found in pod \"{pod}\""),
        );
    };
    let (response, on_upgrade, protocol) = match websocket_upgrade(&mut request, &PROTOCOLS) {
        Ok(accepted) => accepted,
        Err(response) => return response,
    };
    let runtime = state.runtime.clone();
    let v5 = protocol == PROTOCOLS[0];
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        if tty {
            exec_tty(ws, runtime, id, command, v5).await;
        } else {
            exec_plain(ws, runtime, id, command, stdin).await;
        }
    });
    response
}

/// `GET /attach/{namespace}/{pod}/{container}`: a WebSocket session on the
/// container's main process — its output from now on, and its stdin when
/// the container was created with `stdin: true`.
pub(crate) fn attach(
    state: Arc<ApiState>,
    mut request: Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
    query: &str,
) -> Response<Body> {
    let query = parse_query(query);
    let wanted = Wanted {
        stdin: truthy(first(&query, "stdin")),
        stdout: truthy(first(&query, "stdout")),
        stderr: truthy(first(&query, "stderr")),
        tty: truthy(first(&query, "tty")),
    };
    if !(wanted.stdin || wanted.stdout || wanted.stderr) {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least one of stdin, stdout, stderr",
        );
    }
    let Some(id) = crate::pod::find_container(&state.pods_dir, ns, pod, container, false) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("container \"{container}\" not found in pod \"{pod}\""),
        );
    };
    let (response, on_upgrade, _) = match websocket_upgrade(&mut request, &PROTOCOLS) {
        Ok(accepted) => accepted,
        Err(response) => return response,
    };
    let runtime = state.runtime.clone();
    let pods: kube::Api<Pod> = kube::Api::namespaced(state.client.clone(), ns);
    let (pod, container) = (pod.to_owned(), container.to_owned());
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        // `stdinOnce`: the first attached client's end of input is the
        // process's (not for a terminal, whose input is typed).
        let stdin_once = !wanted.tty
            && pods.get_opt(&pod).await.ok().flatten().is_some_and(|p| {
                p.spec.is_some_and(|s| {
                    s.containers
                        .iter()
                        .any(|c| c.name == container && c.stdin_once == Some(true))
                })
            });
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        attach_session(ws, runtime, id, wanted, stdin_once).await;
    });
    response
}

/// Which streams an attach client asked for.
#[derive(Clone, Copy, Debug)]
struct Wanted {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

type Ws = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;
type Source = futures::stream::SplitStream<Ws>;

/// How long the first frame to a silent client waits (see [`Outbound`]).
const FIRST_FRAME_GRACE: Duration = Duration::from_millis(200);

/// How long the client has to answer our close before we hang up.
const CLOSING_HANDSHAKE: Duration = Duration::from_secs(5);

/// The server's half of a session.
///
/// kubectl 1.32 starts reading the connection before it has registered
/// its streams (client-go waits for them only in later releases) and
/// drops a frame for a stream it does not know yet ("Unknown stream id 3,
/// discarding message") — for a command that ends at once, the exit
/// status with it. So the first frame waits until the client has sent
/// something (a terminal client sends its size as soon as its streams
/// exist) or [`FIRST_FRAME_GRACE`] has passed since the upgrade.
struct Outbound {
    sink: futures::stream::SplitSink<Ws, Message>,
    gate: Option<(watch::Receiver<bool>, tokio::time::Instant)>,
}

impl Outbound {
    async fn send(&mut self, message: Message) -> Result<(), WsError> {
        if let Some((mut heard, until)) = self.gate.take() {
            let _ = tokio::time::timeout_at(until, heard.wait_for(|heard| *heard)).await;
        }
        self.sink.send(message).await
    }

    /// Sends the final status and our close.
    async fn finish(&mut self, status: &[u8]) {
        let _ = self.send(framed(3, status)).await;
        let _ = self.send(Message::Close(Some(normal_close()))).await;
    }
}

/// Splits a fresh session: the sink behind its first-frame gate, the
/// source, and what tells the gate the client has spoken.
fn split(ws: Ws) -> (Outbound, Source, watch::Sender<bool>) {
    let (sink, source) = ws.split();
    let (heard_tx, heard) = watch::channel(false);
    let until = tokio::time::Instant::now() + FIRST_FRAME_GRACE;
    let outbound = Outbound {
        sink,
        gate: Some((heard, until)),
    };
    (outbound, source, heard_tx)
}

/// Waits (a while) for the client's task to see its close: hanging up
/// with the client's frames unread would reset the connection, and the
/// status could be lost on the way.
async fn closing_handshake(client: &mut tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(CLOSING_HANDSHAKE, &mut *client)
        .await
        .is_err()
    {
        client.abort();
    }
}

/// The channel-3 status upstream sends when the command ended.
fn exit_status(code: i32) -> Vec<u8> {
    let status = if code == 0 {
        serde_json::json!({"metadata": {}, "status": "Success"})
    } else {
        serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        })
    };
    serde_json::to_vec(&status).unwrap_or_default()
}

fn framed(channel: u8, data: &[u8]) -> Message {
    let mut frame = Vec::with_capacity(data.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(data);
    Message::Binary(frame.into())
}

/// What the client sends, for the thread that writes it.
enum Input {
    Stdin(Vec<u8>),
    Resize {
        rows: u16,
        cols: u16,
    },
    /// The client's stdin ended (v5's `[255, 0]`).
    CloseStdin,
}

/// Reads the client's messages until it leaves: stdin and resizes go to
/// `input`; a v5 close of stdin (`[255, 0]`) drops it (the process sees
/// the end of its input).
async fn read_client(
    mut source: Source,
    heard: watch::Sender<bool>,
    input: std::sync::mpsc::Sender<Input>,
) {
    let mut input = Some(input);
    while let Some(Ok(message)) = source.next().await {
        heard.send_if_modified(|heard| !std::mem::replace(heard, true));
        let data = match message {
            Message::Binary(data) => data,
            Message::Close(_) => return,
            _ => continue,
        };
        match data.first() {
            Some(0) => {
                if let Some(input) = &input {
                    let _ = input.send(Input::Stdin(data[1..].to_vec()));
                }
            }
            Some(4) => {
                if let (Some(input), Some((cols, rows))) = (&input, terminal_size(&data[1..])) {
                    let _ = input.send(Input::Resize { rows, cols });
                }
            }
            Some(255) if data.get(1) == Some(&0) => {
                if let Some(input) = input.take() {
                    let _ = input.send(Input::CloseStdin);
                }
            }
            _ => {}
        }
    }
}

/// `{"Width":W,"Height":H}` of a resize message.
fn terminal_size(json: &[u8]) -> Option<(u16, u16)> {
    #[derive(serde::Deserialize)]
    struct Size {
        #[serde(rename = "Width")]
        width: u16,
        #[serde(rename = "Height")]
        height: u16,
    }
    serde_json::from_slice::<Size>(json)
        .ok()
        .map(|s| (s.width, s.height))
}

/// Reads `reader` on its own thread into `tx` as `channel` messages.
fn pump(
    mut reader: impl std::io::Read + Send + 'static,
    channel: u8,
    tx: tokio::sync::mpsc::Sender<(u8, Vec<u8>)>,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send((channel, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// A command without a terminal: its output streamed as it comes, the
/// client's stdin (when asked for) piped to it until the client closes it.
async fn exec_plain(ws: Ws, runtime: Arc<Runtime>, id: String, command: Vec<String>, stdin: bool) {
    let (mut out, source, heard) = split(ws);
    let started =
        tokio::task::spawn_blocking(move || runtime.exec_streaming(&id, &command, stdin)).await;
    let mut process = match started {
        Ok(Ok(process)) => process,
        Ok(Err(err)) => {
            let _ = out.send(framed(2, format!("{err}\n").as_bytes())).await;
            out.finish(&exit_status(126)).await;
            return;
        }
        Err(_) => return,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    if let Some(stdout) = process.stdout() {
        pump(stdout, 1, tx.clone());
    }
    if let Some(stderr) = process.stderr() {
        pump(stderr, 2, tx.clone());
    }
    drop(tx);
    let (input_tx, input_rx) = std::sync::mpsc::channel::<Input>();
    if let Some(mut pipe) = process.stdin() {
        std::thread::spawn(move || {
            for input in input_rx {
                if let Input::Stdin(data) = input
                    && pipe.write_all(&data).is_err()
                {
                    return;
                }
            }
            // Dropping the pipe: the process reads the end of its input.
        });
    }
    // Before v5 there is no way to close stdin but leaving.
    let mut client = tokio::spawn(read_client(source, heard, input_tx));
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some((channel, data)) => {
                    if out.send(framed(channel, &data)).await.is_err() {
                        // The client is gone: the process is killed.
                        client.abort();
                        return;
                    }
                }
                None => break,
            },
            _ = &mut client => {
                // The client left: dropping the process kills it.
                return;
            }
        }
    }
    // The output ended; the client is still read while the process ends.
    let code = tokio::task::spawn_blocking(move || process.wait().unwrap_or(126))
        .await
        .unwrap_or(126);
    out.finish(&exit_status(code)).await;
    closing_handshake(&mut client).await;
}

/// Attached to a container's main process until it ends or the client
/// leaves.
async fn attach_session(
    ws: Ws,
    runtime: Arc<Runtime>,
    id: String,
    wanted: Wanted,
    stdin_once: bool,
) {
    let (mut out, source, heard) = split(ws);
    let attached = tokio::task::spawn_blocking(move || {
        let attach = runtime.attach(&id).map_err(|e| e.to_string())?;
        let writer = attach.try_clone().map_err(|e| e.to_string())?;
        let closer = attach.try_clone().map_err(|e| e.to_string())?;
        Ok::<_, String>((attach, writer, closer))
    })
    .await;
    let (mut reader, mut writer, closer) = match attached {
        Ok(Ok(handles)) => handles,
        Ok(Err(err)) => {
            let status = serde_json::json!({
                "metadata": {}, "status": "Failure", "message": err, "reason": "InternalError",
            });
            out.finish(&serde_json::to_vec(&status).unwrap_or_default())
                .await;
            return;
        }
        Err(_) => return,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u8, Vec<u8>)>(16);
    std::thread::spawn(move || {
        while let Ok(Some((stream, data))) = reader.read() {
            // With a terminal there is one output stream: stdout.
            let channel = match stream {
                OutputStream::Stderr if !wanted.tty => 2,
                _ => 1,
            };
            let wanted_here = if channel == 1 {
                wanted.stdout
            } else {
                wanted.stderr
            };
            if wanted_here && tx.blocking_send((channel, data)).is_err() {
                return;
            }
        }
    });
    let (input_tx, input_rx) = std::sync::mpsc::channel::<Input>();
    if wanted.stdin || wanted.tty {
        std::thread::spawn(move || {
            for input in input_rx {
                let written = match input {
                    Input::Stdin(data) => writer.write_stdin(&data),
                    Input::Resize { rows, cols } => writer.resize(rows, cols),
                    Input::CloseStdin if stdin_once => writer.close_stdin(),
                    Input::CloseStdin => Ok(()),
                };
                if written.is_err() {
                    return;
                }
            }
        });
    }
    let mut client = tokio::spawn(read_client(source, heard, input_tx));
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some((channel, data)) => {
                    if out.send(framed(channel, &data)).await.is_err() {
                        break;
                    }
                }
                // The process ended (the shim closed the connection).
                None => break,
            },
            _ = &mut client => break,
        }
    }
    closer.shutdown();
    out.finish(&exit_status(0)).await;
    closing_handshake(&mut client).await;
}

async fn exec_tty(ws: Ws, runtime: Arc<Runtime>, id: String, command: Vec<String>, _v5: bool) {
    let started =
        tokio::task::spawn_blocking(move || runtime.exec_tty(&id, &command, 24, 80)).await;
    let (mut out, mut source, heard) = split(ws);
    let session = match started {
        Ok(Ok(session)) => session,
        Ok(Err(err)) => {
            let _ = out.send(framed(1, format!("{err}\r\n").as_bytes())).await;
            out.finish(&exit_status(126)).await;
            return;
        }
        Err(_) => return,
    };
    let (Ok(mut reader), Ok(mut writer), Ok(sizer)) = (
        session.terminal().try_clone(),
        session.terminal().try_clone(),
        session.terminal().try_clone(),
    ) else {
        return;
    };
    // Output: the terminal, read on its own thread.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if out_tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let waiter = tokio::task::spawn_blocking(move || session.wait().unwrap_or(126));
    // Input and resizes from the client.
    let mut input = tokio::spawn(async move {
        while let Some(Ok(message)) = source.next().await {
            heard.send_if_modified(|heard| !std::mem::replace(heard, true));
            let Message::Binary(data) = message else {
                continue;
            };
            match data.first() {
                // After the process, input goes nowhere: the client's
                // frames are still read until its close.
                Some(0) => {
                    let _ = writer.write_all(&data[1..]);
                }
                Some(4) => {
                    if let Some((cols, rows)) = terminal_size(&data[1..]) {
                        let _ = rustix::termios::tcsetwinsize(
                            &sizer,
                            rustix::termios::Winsize {
                                ws_row: rows,
                                ws_col: cols,
                                ws_xpixel: 0,
                                ws_ypixel: 0,
                            },
                        );
                    }
                }
                _ => {}
            }
        }
    });
    let mut waiter = std::pin::pin!(waiter);
    let code = loop {
        tokio::select! {
            chunk = out_rx.recv() => match chunk {
                Some(chunk) => {
                    if out.send(framed(1, &chunk)).await.is_err() {
                        break 126;
                    }
                }
                None => break (&mut waiter).await.unwrap_or(126),
            },
            code = &mut waiter => {
                // Drain what the terminal still holds.
                while let Ok(chunk) = out_rx.try_recv() {
                    let _ = out.send(framed(1, &chunk)).await;
                }
                break code.unwrap_or(126);
            }
        }
    };
    out.finish(&exit_status(code)).await;
    closing_handshake(&mut input).await;
}
