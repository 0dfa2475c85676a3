//! The HTTPS listener: TLS with the cluster's serving certificate, client
//! certificates verified against the cluster CA (optional at the TLS layer so
//! that an anonymous request gets a 401 Status, not a handshake failure), and
//! one HTTP/1.1 or HTTP/2 connection per accepted socket.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::auth::UserInfo;
use crate::pki::Pki;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("TLS setup: {0}")]
pub(crate) struct TlsError(String);

/// The rustls server configuration: TLS 1.2 and 1.3 with only the AEAD
/// ECDHE suites CIS 1.2.29 allows (rustls offers no others), client
/// certificates optional and verified against the cluster CA.
pub(crate) fn server_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in pem_certs(&pki.ca_cert_pem)? {
        roots.add(cert).map_err(|err| TlsError(err.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|err| TlsError(err.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice_compat(&pki.server_key_pem)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError(err.to_string()))?
        .with_client_cert_verifier(verifier)
        // The CA goes along in the chain: a joining agent pins it by hash.
        .with_single_cert(
            [
                pem_certs(&pki.server_cert_pem)?,
                pem_certs(&pki.ca_cert_pem)?,
            ]
            .concat(),
            key,
        )
        .map_err(|err| TlsError(err.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

trait FromPemCompat: Sized {
    fn from_pem_slice_compat(pem: &str) -> Result<Self, TlsError>;
}

impl FromPemCompat for PrivateKeyDer<'static> {
    fn from_pem_slice_compat(pem: &str) -> Result<Self, TlsError> {
        rustls_pemfile::private_key(&mut pem.as_bytes())
            .map_err(|err| TlsError(err.to_string()))?
            .ok_or_else(|| TlsError("no private key in PEM".into()))
    }
}

fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError(err.to_string()))
}

/// Accepts connections forever, serving each with `app`. The verified
/// client certificate (if any) becomes the request's [`UserInfo`].
pub(crate) async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
) {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(err) => {
                    tracing::debug!(%peer, %err, "TLS handshake failed");
                    return;
                }
            };
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| UserInfo::from_certificate(cert.as_ref()));
            serve_connection(tls, peer, user, app).await;
        });
    }
}

async fn serve_connection(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: SocketAddr,
    user: Option<UserInfo>,
    app: axum::Router,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tower::ServiceExt as _;
    let service =
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(crate::auth::Peer(peer));
            if let Some(user) = &user {
                request.extensions_mut().insert(user.clone());
            }
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(err) = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(%peer, %err, "connection ended with an error");
    }
}
