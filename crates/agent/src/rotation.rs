//! Certificates renewed while the agent runs, as the kubelet's certificate
//! manager does: a [`RotatingCert`] holds the current certificate and key,
//! which TLS picks up at each handshake (client and server side);
//! [`renew`] asks for a new one through a CSR at a jittered 70–90 % of the
//! current one's lifetime, stores it, and swaps it in. Clients made with
//! [`RotatingCert::client`] then drop their open connections, so every
//! request after a renewal goes out under the new certificate (the
//! kubelet closes its connections the same way).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use crate::join::{Credentials, JoinError, NodeKey, request_certificate};

/// A certificate and key that can be replaced while in use.
pub struct RotatingCert {
    current: RwLock<Current>,
    /// Bumped at each replacement; connections end when it moves.
    generation: watch::Sender<u64>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

struct Current {
    cert_pem: String,
    key: Arc<CertifiedKey>,
}

impl std::fmt::Debug for RotatingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingCert")
            .field("generation", &*self.generation.borrow())
            .finish_non_exhaustive()
    }
}

impl RotatingCert {
    /// Starts with `cert_pem` and its `key_pem`.
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Arc<RotatingCert>, JoinError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certified_key(&provider, cert_pem, key_pem)?;
        Ok(Arc::new(RotatingCert {
            current: RwLock::new(Current {
                cert_pem: cert_pem.to_owned(),
                key,
            }),
            generation: watch::Sender::new(0),
            provider,
        }))
    }

    /// The current certificate (PEM).
    pub fn cert_pem(&self) -> String {
        self.current
            .read()
            .map(|c| c.cert_pem.clone())
            .unwrap_or_default()
    }

    fn key(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.key.clone())
    }

    /// Swaps in a new certificate; connections made under the old one end.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> Result<(), JoinError> {
        let key = certified_key(&self.provider, cert_pem, key_pem)?;
        let mut current = self
            .current
            .write()
            .map_err(|_| JoinError::Local("certificate lock poisoned".into()))?;
        *current = Current {
            cert_pem: cert_pem.to_owned(),
            key,
        };
        drop(current);
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// A kube client for `server` (trusting `ca_pem`) that authenticates
    /// with whatever certificate is current at each connection.
    pub fn client(self: &Arc<Self>, server: &str, ca_pem: &str) -> Result<kube::Client, JoinError> {
        let local = |e: &dyn std::fmt::Display| JoinError::Local(e.to_string());
        let uri: http::Uri = server
            .parse()
            .map_err(|_| JoinError::Local(format!("invalid server URL {server:?}")))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots
                .add(cert.map_err(|e| local(&e))?)
                .map_err(|e| local(&e))?;
        }
        // hyper-rustls sets the ALPN protocols (HTTP/1.1 only, as kube's).
        let tls = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| local(&e))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(Resolver(self.clone())));
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let connector = Closing {
            inner: https,
            cert: self.clone(),
        };
        let http_client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        // As kube's own stack: 429, 503 and 504 are retried with backoff.
        let service = tower::ServiceBuilder::new()
            .layer(kube::client::middleware::BaseUriLayer::new(uri))
            .layer(tower::retry::RetryLayer::new(
                kube::client::retry::RetryPolicy::server_retry(),
            ))
            .map_err(tower::BoxError::from)
            .service(http_client);
        Ok(kube::Client::new(service, "default"))
    }
}

fn certified_key(
    provider: &rustls::crypto::CryptoProvider,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<CertifiedKey>, JoinError> {
    let local = |e: &dyn std::fmt::Display| JoinError::Local(e.to_string());
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| local(&e))?;
    if certs.is_empty() {
        return Err(JoinError::Local("no certificate in the PEM".into()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| local(&e))?
        .ok_or_else(|| JoinError::Local("no private key in the key PEM".into()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| local(&e))?;
    Ok(Arc::new(CertifiedKey::new(certs, signing)))
}

/// Hands TLS the current certificate, as a client or as a server.
#[derive(Debug)]
pub(crate) struct Resolver(pub(crate) Arc<RotatingCert>);

impl rustls::client::ResolvesClientCert for Resolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.key()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl rustls::server::ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.key()
    }
}

/// A connector whose connections end (read as closed by the server) when
/// the certificate is replaced.
#[derive(Clone)]
struct Closing<C> {
    inner: C,
    cert: Arc<RotatingCert>,
}

impl<C> tower::Service<http::Uri> for Closing<C>
where
    C: tower::Service<http::Uri>,
    C::Future: Send + 'static,
{
    type Response = ClosingStream<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        // Subscribed before connecting: a replacement during the handshake
        // (which may have used the old certificate) ends it too.
        let mut generation = self.cert.generation.subscribe();
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            Ok(ClosingStream {
                io,
                rotated: Box::pin(async move {
                    let _ = generation.changed().await;
                }),
                closed: false,
            })
        })
    }
}

struct ClosingStream<T> {
    io: T,
    rotated: Pin<Box<dyn Future<Output = ()> + Send>>,
    closed: bool,
}

impl<T> ClosingStream<T> {
    fn check(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed && self.rotated.as_mut().poll(cx).is_ready() {
            self.closed = true;
        }
        self.closed
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for ClosingStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.check(cx) {
            // End of stream: the client drops the connection.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for ClosingStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.check(cx) {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the client certificate was renewed",
            )));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<T: hyper_util::client::legacy::connect::Connection>
    hyper_util::client::legacy::connect::Connection for ClosingStream<T>
{
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.io.connected()
    }
}

/// What a renewal asks for: one of the agent's CSRs.
#[derive(Clone, Debug)]
pub struct Renewal {
    /// The node's name.
    pub node: String,
    /// Another subject than `system:node:<node>` (`system:kube-proxy`).
    pub subject: Option<String>,
    /// The signer.
    pub signer: String,
    /// Key usages.
    pub usages: Vec<String>,
    /// Alternative names (serving certificates).
    pub sans: Vec<String>,
    /// Where the certificate and key are kept (file names under `creds`).
    pub files: (String, String),
}

/// Renews `cert` for as long as the agent runs: at a jittered 70–90 % of
/// each certificate's lifetime, a CSR through `client` (the node itself),
/// stored in `creds`, then swapped in.
pub async fn renew(
    cert: Arc<RotatingCert>,
    client: kube::Client,
    creds: Credentials,
    renewal: Renewal,
    identity: Option<Arc<NodeKey>>,
) {
    let what = renewal.files.0.clone();
    // When the current certificate came: signers backdate notBefore (by
    // five minutes), which would put a short-lived one's renewal in the
    // past at once; its lifetime counts from when the agent got it.
    let mut received = std::fs::metadata(creds.dir.join(&what))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    loop {
        let wait = match validity(&cert.cert_pem()) {
            Some((not_before, not_after)) => {
                renewal_delay(not_before.max(received), not_after, jitter())
            }
            None => Duration::ZERO,
        };
        tracing::debug!(certificate = %what, ?wait, "next certificate renewal");
        tokio::time::sleep(wait).await;
        let mut backoff = Duration::from_secs(1);
        loop {
            let usages: Vec<&str> = renewal.usages.iter().map(String::as_str).collect();
            let issued = request_certificate(
                &client,
                &renewal.node,
                renewal.subject.as_deref(),
                &renewal.signer,
                &usages,
                &renewal.sans,
                identity.as_deref(),
                Duration::from_secs(60),
            )
            .await
            .and_then(|(cert_pem, key_pem)| {
                creds.write(&renewal.files.1, &key_pem, 0o600)?;
                creds.write(&renewal.files.0, &cert_pem, 0o644)?;
                cert.replace(&cert_pem, &key_pem)?;
                Ok(cert_pem)
            });
            match issued {
                Ok(pem) => {
                    received = jiff::Timestamp::now().as_second();
                    let until = validity(&pem).map(|(_, until)| until);
                    tracing::info!(certificate = %what, ?until, "certificate renewed");
                    break;
                }
                Err(err) => {
                    tracing::warn!(certificate = %what, error = %err, ?backoff, "renewing a certificate");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}

/// (notBefore, notAfter) of a PEM certificate, Unix seconds.
fn validity(cert_pem: &str) -> Option<(i64, i64)> {
    let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .next()?
        .ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some((
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    ))
}

/// A number in [0, 1) that differs between calls and agents.
fn jitter() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// How long from now until a certificate used from `start` to `not_after`
/// is renewed: at 70 % of that lifetime plus up to 20 % more (`jitter` in
/// [0, 1)), as the kubelet's certificate manager does.
fn renewal_delay(start: i64, not_after: i64, jitter: f64) -> Duration {
    let lifetime = (not_after - start).max(0) as f64;
    let at = start as f64 + lifetime * (0.7 + 0.2 * jitter.clamp(0.0, 1.0));
    let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    Duration::from_secs_f64((at - now).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_70_to_90_percent_of_the_lifetime() {
        let now = jiff::Timestamp::now().as_second();
        // Issued just now for 100 s.
        let early = renewal_delay(now, now + 100, 0.0).as_secs_f64();
        let late = renewal_delay(now, now + 100, 0.999).as_secs_f64();
        assert!((69.0..=70.5).contains(&early), "{early}");
        assert!((88.5..=90.5).contains(&late), "{late}");
        // Past its renewal time already (the agent was down): now.
        assert_eq!(renewal_delay(now - 100, now + 5, 0.5), Duration::ZERO);
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }

    #[tokio::test]
    async fn a_replaced_certificate_is_what_tls_gets_next() {
        let issue = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![name.into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (first, first_key) = issue("one");
        let (second, second_key) = issue("two");
        let cert = RotatingCert::new(&first, &first_key).unwrap();
        let resolver = Resolver(cert.clone());
        let der = |pem: &str| {
            rustls_pemfile::certs(&mut pem.as_bytes())
                .next()
                .unwrap()
                .unwrap()
        };
        let resolved = rustls::client::ResolvesClientCert::resolve(&resolver, &[], &[]).unwrap();
        assert_eq!(resolved.cert[0], der(&first));
        let generation = cert.generation.subscribe();
        cert.replace(&second, &second_key).unwrap();
        assert!(generation.has_changed().unwrap());
        let resolved = rustls::client::ResolvesClientCert::resolve(&resolver, &[], &[]).unwrap();
        assert_eq!(resolved.cert[0], der(&second));
        assert_eq!(cert.cert_pem(), second);
        assert!(cert.replace("garbage", &second_key).is_err());
        assert_eq!(cert.cert_pem(), second, "a bad certificate changes nothing");
        assert!(cert.client("https://127.0.0.1:6443", &first).is_ok());
    }
}
