//! gRPC probes: one unary `grpc.health.v1.Health/Check` call over h2c
//! (HTTP/2 without TLS, as upstream's kubelet makes it), hand-rolled on
//! hyper's HTTP/2 client — the request and response messages have one
//! field each, so no protobuf library is needed.
//!
//! Wire: a gRPC message is `[compressed: u8][length: u32 BE][protobuf]`;
//! `HealthCheckRequest { string service = 1; }`,
//! `HealthCheckResponse { ServingStatus status = 1; }` with SERVING = 1;
//! the call's outcome is the `grpc-status` trailer (or header, for a
//! response without a body).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};

/// The path of the health check method.
const CHECK: &str = "/grpc.health.v1.Health/Check";

/// Upstream's names of `ServingStatus` values.
fn serving_status_name(status: u64) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// Calls Health/Check for `service` on a connected `stream`; `Ok` only
/// when the answer is SERVING.
pub(crate) async fn health_check(
    stream: tokio::net::TcpStream,
    authority: &str,
    service: &str,
    timeout: Duration,
) -> Result<(), String> {
    tokio::time::timeout(timeout, call(stream, authority, service))
        .await
        .map_err(|_| {
            format!(
                "timeout: health rpc did not complete within {}s",
                timeout.as_secs()
            )
        })?
}

async fn call(stream: tokio::net::TcpStream, authority: &str, service: &str) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("error: health rpc failed: {e}");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(|e| failed(&e))?;
    let driver = tokio::spawn(connection);
    let request = http::Request::post(format!("http://{authority}{CHECK}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Full::new(Bytes::from(message(&request_body(service)))))
        .map_err(|e| failed(&e))?;
    let answer = sender.send_request(request).await;
    let result = match answer {
        Ok(response) => outcome(response).await,
        Err(e) => Err(failed(&e)),
    };
    driver.abort();
    result
}

async fn outcome(response: http::Response<hyper::body::Incoming>) -> Result<(), String> {
    if response.status() != http::StatusCode::OK {
        return Err(format!(
            "error: health rpc failed: HTTP status {}",
            response.status().as_u16()
        ));
    }
    let headers = response.headers().clone();
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("error: health rpc failed: {e}"))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let field = |name: &str| {
        trailers
            .get(name)
            .or_else(|| headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let code = field("grpc-status").unwrap_or_else(|| "2".into());
    if code != "0" {
        let message = field("grpc-message").unwrap_or_default();
        return Err(format!(
            "error: health rpc failed: rpc error: code = {} desc = {message}",
            code_name(&code)
        ));
    }
    let status = response_status(&collected.to_bytes())
        .ok_or_else(|| "error: health rpc failed: malformed HealthCheckResponse".to_owned())?;
    if status == 1 {
        Ok(())
    } else {
        Err(format!(
            "service unhealthy (responded with \"{}\")",
            serving_status_name(status)
        ))
    }
}

/// gRPC's names of status codes.
fn code_name(code: &str) -> &'static str {
    match code {
        "1" => "Canceled",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "7" => "PermissionDenied",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "16" => "Unauthenticated",
        _ => "Unknown",
    }
}

/// `HealthCheckRequest { service }` in protobuf (empty when the service is).
fn request_body(service: &str) -> Vec<u8> {
    if service.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0x0a];
    push_varint(&mut out, service.len() as u64);
    out.extend_from_slice(service.as_bytes());
    out
}

/// A length-prefixed, uncompressed gRPC message.
fn message(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The `status` field of a framed HealthCheckResponse (0, UNKNOWN, when
/// absent, as protobuf defaults it). Unknown fields are skipped.
fn response_status(framed: &[u8]) -> Option<u64> {
    if framed.len() < 5 || framed[0] != 0 {
        return None;
    }
    let len = u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize;
    let body = framed.get(5..5 + len)?;
    let mut at = 0;
    let mut status = 0;
    while at < body.len() {
        let key = read_varint(body, &mut at)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = read_varint(body, &mut at)?,
            (_, 0) => {
                read_varint(body, &mut at)?;
            }
            (_, 2) => {
                let n = usize::try_from(read_varint(body, &mut at)?).ok()?;
                at = at.checked_add(n)?;
            }
            (_, 1) => at += 8,
            (_, 5) => at += 4,
            _ => return None,
        }
    }
    (at == body.len()).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    #[test]
    fn messages_encode_and_decode() {
        assert_eq!(message(&request_body("")), [0, 0, 0, 0, 0]);
        assert_eq!(
            message(&request_body("db")),
            [0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']
        );
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(response_status(&[0, 0, 0, 0, 0]), Some(0));
        // An unknown length-delimited field is skipped.
        assert_eq!(
            response_status(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 2]),
            Some(2)
        );
        assert_eq!(response_status(&[0, 0, 0, 0, 9, 0x08]), None);
        assert_eq!(response_status(&[1, 0, 0, 0, 0]), None);
    }

    /// A health server on hyper's HTTP/2 server: SERVING for "", NOT_SERVING
    /// for "db", NOT_FOUND (trailers only) for anything else.
    async fn health_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |request: http::Request<hyper::body::Incoming>| async move {
                            assert_eq!(request.uri().path(), CHECK);
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let service = &body[5..];
                            let (status, payload): (&str, Vec<u8>) = match service {
                                b"" => ("0", message(&[0x08, 1])),
                                b"\x0a\x02db" => ("0", message(&[0x08, 2])),
                                _ => ("5", Vec::new()),
                            };
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", status.parse().unwrap());
                            if status != "0" {
                                trailers.insert("grpc-message", "unknown service".parse().unwrap());
                            }
                            let frames = vec![
                                Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(payload))),
                                Ok(hyper::body::Frame::trailers(trailers)),
                            ];
                            let body =
                                http_body_util::StreamBody::new(futures::stream::iter(frames));
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/grpc")
                                    .body(body)
                                    .unwrap(),
                            )
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn health_checks_pass_only_when_serving() {
        let addr = health_server().await;
        let check = |service: &'static str| async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            health_check(stream, &addr.to_string(), service, Duration::from_secs(5)).await
        };
        assert_eq!(check("").await, Ok(()));
        assert_eq!(
            check("db").await,
            Err("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        assert_eq!(
            check("cache").await,
            Err(
                "error: health rpc failed: rpc error: code = NotFound desc = unknown service"
                    .into()
            )
        );
        // Not HTTP/2 at all: a failure, not a hang.
        let plain = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let plain_addr = plain.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = plain.accept().await.unwrap();
            use tokio::io::AsyncWriteExt as _;
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let stream = tokio::net::TcpStream::connect(plain_addr).await.unwrap();
        assert!(
            health_check(stream, "x", "", Duration::from_secs(5))
                .await
                .is_err()
        );
    }
}
