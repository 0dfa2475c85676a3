//! Joining a cluster with a node token, k3s-style: `K10<ca-hash>::<token>`.
//!
//! The token pins the cluster CA (SHA-256 of its DER), so the agent trusts
//! the server only if the certificate chain it presents leads to that very
//! CA — a man in the middle cannot pose as the server, and the bootstrap
//! token is never sent before the server is verified. The bootstrap token
//! then authenticates one thing: a CertificateSigningRequest for
//! `system:node:<name>` (signer `kube-apiserver-client-kubelet`), which the
//! server approves for bootstrappers; the issued certificate is the agent's
//! identity from then on. A second, `kubelet-serving` CSR, sent as the
//! node, yields the certificate of the agent's own API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest as _, Sha256};

/// A parsed node token.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeToken {
    /// SHA-256 of the cluster CA certificate (DER), lower-case hex.
    pub ca_hash: String,
    /// The bootstrap token, `<id>.<secret>`.
    pub bootstrap: String,
}

impl std::fmt::Debug for NodeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret half never reaches a log.
        let id = self.bootstrap.split('.').next().unwrap_or_default();
        f.debug_struct("NodeToken")
            .field("ca_hash", &self.ca_hash)
            .field("bootstrap", &format!("{id}.<redacted>"))
            .finish()
    }
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The token is not `K10<64 hex>::<6>.<16>`.
    #[error("malformed node token: expected K10<ca-hash>::<id>.<secret>")]
    Token,
    /// The server's chain does not lead to the pinned CA.
    #[error("the server at {0} did not present the cluster CA the token pins")]
    Untrusted(String),
    /// The CSR was denied or failed.
    #[error("certificate request {name} was {how}: {message}")]
    Refused {
        /// The CSR.
        name: String,
        /// `denied` or `failed`.
        how: &'static str,
        /// The condition's message.
        message: String,
    },
    /// No certificate within the deadline.
    #[error(
        "certificate request {0} was not signed within {1:?} (is the controller manager running?)"
    )]
    Timeout(String, Duration),
    /// The API refused something.
    #[error("{context}: {source}")]
    Api {
        /// What was being done.
        context: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Local failure (files, TLS, keys).
    #[error("{0}")]
    Local(String),
}

/// The `K10<ca-hash>::<token>` for `ca_pem` and a bootstrap token.
pub fn node_token(ca_pem: &str, bootstrap: &str) -> Result<String, JoinError> {
    Ok(format!("K10{}::{bootstrap}", ca_hash(ca_pem)?))
}

/// SHA-256 of the (first) certificate in `ca_pem`, hex.
pub fn ca_hash(ca_pem: &str) -> Result<String, JoinError> {
    let der = rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .next()
        .ok_or_else(|| JoinError::Local("no certificate in the CA PEM".into()))?
        .map_err(|e| JoinError::Local(e.to_string()))?;
    Ok(hex(&Sha256::digest(der.as_ref())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl std::str::FromStr for NodeToken {
    type Err = JoinError;

    fn from_str(s: &str) -> Result<Self, JoinError> {
        let rest = s.trim().strip_prefix("K10").ok_or(JoinError::Token)?;
        let (hash, bootstrap) = rest.split_once("::").ok_or(JoinError::Token)?;
        let hash_ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        let token_ok = bootstrap.split_once('.').is_some_and(|(id, secret)| {
            id.len() == 6
                && secret.len() == 16
                && id
                    .bytes()
                    .chain(secret.bytes())
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        if !hash_ok || !token_ok {
            return Err(JoinError::Token);
        }
        Ok(NodeToken {
            ca_hash: hash.to_ascii_lowercase(),
            bootstrap: bootstrap.to_owned(),
        })
    }
}

/// Accepts a server whose chain holds the pinned CA and whose leaf that CA
/// signed for the name connected to. Remembers the CA it found.
#[derive(Debug)]
struct Pinned {
    hash: String,
    found: std::sync::Mutex<Option<CertificateDer<'static>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| hex(&Sha256::digest(c.as_ref())) == self.hash)
            .ok_or_else(|| rustls::Error::General("no pinned CA in the server's chain".into()))?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let verified = verifier.verify_server_cert(end_entity, &[], server_name, ocsp, now)?;
        if let Ok(mut found) = self.found.lock() {
            *found = Some(ca.clone().into_owned());
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects to `server` (an `https://host:port` URL) trusting only the
/// pinned CA; returns that CA as PEM.
pub async fn fetch_pinned_ca(server: &str, token: &NodeToken) -> Result<String, JoinError> {
    let uri: http::Uri = server
        .parse()
        .map_err(|_| JoinError::Local(format!("invalid server URL {server:?}")))?;
    let host = uri
        .host()
        .ok_or_else(|| JoinError::Local(format!("no host in {server:?}")))?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(6443);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pinned = Arc::new(Pinned {
        hash: token.ca_hash.clone(),
        found: std::sync::Mutex::new(None),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| JoinError::Local(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(pinned.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|e| JoinError::Local(e.to_string()))?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| JoinError::Local(format!("connecting to {server}: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            tracing::debug!(error = %e, "TLS with the server");
            JoinError::Untrusted(server.to_owned())
        })?;
    let der = pinned
        .found
        .lock()
        .ok()
        .and_then(|f| f.clone())
        .ok_or_else(|| JoinError::Untrusted(server.to_owned()))?;
    Ok(pem("CERTIFICATE", der.as_ref()))
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A kube client for `server` trusting `ca_pem`, authenticated by a bearer
/// token or a client certificate.
pub async fn client(server: &str, ca_pem: &str, auth: Auth<'_>) -> Result<kube::Client, JoinError> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let user = match auth {
        Auth::Token(token) => format!("    token: {token}\n"),
        Auth::Certificate { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(cert_pem),
            b64(key_pem)
        ),
    };
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n{user}contexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
        b64(ca_pem)
    );
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig)
        .map_err(|e| JoinError::Local(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| JoinError::Local(e.to_string()))?;
    kube::Client::try_from(config).map_err(|source| JoinError::Api {
        context: "building a client".into(),
        source,
    })
}

/// How a client authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// A bearer token.
    Token(&'a str),
    /// A client certificate and its key (PEM).
    Certificate {
        /// Certificate.
        cert_pem: &'a str,
        /// Key.
        key_pem: &'a str,
    },
}

/// The annotation on a kubelet client CSR holding the node's identity key
/// (base64 of its raw public key, ECDSA P-256).
pub const NODE_IDENTITY_ANNOTATION: &str = "bulwark.io/node-identity";
/// The annotation holding the identity key's signature (ASN.1 ECDSA,
/// SHA-256, base64) over the CSR's `spec.request` bytes.
pub const NODE_IDENTITY_PROOF_ANNOTATION: &str = "bulwark.io/node-identity-proof";
/// The annotation on the Node recording the fingerprint of its identity
/// key, `sha256:<hex>`.
pub const NODE_IDENTITY_FINGERPRINT_ANNOTATION: &str = "bulwark.io/node-identity-fingerprint";

/// The node's own identity, k3s's node password done with a key pair: a
/// random ECDSA P-256 key created at the first join and kept in the data
/// dir (`pki/node-identity.key`, 0600). Each bootstrap CSR carries the
/// public key and a signature over the CSR's request, so the server can
/// tell the node that first registered a name from another machine
/// presenting the same name, and a reader of CSRs (any bootstrap token may
/// list them) learns nothing it could replay for a request of its own.
pub struct NodeKey(rcgen::KeyPair);

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NodeKey").field(&self.fingerprint()).finish()
    }
}

impl NodeKey {
    /// The key in `creds` (`node-identity.key`), created if absent.
    pub fn load_or_create(creds: &Credentials) -> Result<NodeKey, JoinError> {
        const FILE: &str = "node-identity.key";
        if let Some(pem) = creds.read(FILE) {
            return rcgen::KeyPair::from_pem(&pem)
                .map(NodeKey)
                .map_err(|e| JoinError::Local(format!("{}: {e}", creds.dir.join(FILE).display())));
        }
        let key = rcgen::KeyPair::generate().map_err(|e| JoinError::Local(e.to_string()))?;
        creds.write(FILE, &key.serialize_pem(), 0o600)?;
        Ok(NodeKey(key))
    }

    /// `sha256:<hex>` of the raw public key, as the Node records it.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex(&Sha256::digest(self.0.public_key_raw())))
    }

    /// The CSR annotations proving this identity for `request` (the PEM
    /// the CSR's `spec.request` holds).
    fn proof(&self, request: &[u8]) -> Result<BTreeMap<String, String>, JoinError> {
        use base64::Engine as _;
        use rcgen::SigningKey as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let signature = self
            .0
            .sign(request)
            .map_err(|e| JoinError::Local(format!("signing with the node identity: {e}")))?;
        Ok(BTreeMap::from([
            (
                NODE_IDENTITY_ANNOTATION.to_owned(),
                b64.encode(self.0.public_key_raw()),
            ),
            (
                NODE_IDENTITY_PROOF_ANNOTATION.to_owned(),
                b64.encode(signature),
            ),
        ]))
    }
}

/// Asks for a certificate through a CertificateSigningRequest and waits for
/// it to be issued; `identity` proves the node's identity on a kubelet
/// client request. Returns (cert, key) PEM.
#[allow(clippy::too_many_arguments)] // one call per certificate, each reads as a table
pub async fn request_certificate(
    client: &kube::Client,
    node: &str,
    subject: Option<&str>,
    signer: &str,
    usages: &[&str],
    sans: &[String],
    identity: Option<&NodeKey>,
    deadline: Duration,
) -> Result<(String, String), JoinError> {
    let key = rcgen::KeyPair::generate().map_err(|e| JoinError::Local(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(sans.to_vec())
        .map_err(|e| JoinError::Local(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    match subject {
        Some(user) => dn.push(rcgen::DnType::CommonName, user),
        None => {
            dn.push(rcgen::DnType::CommonName, format!("system:node:{node}"));
            dn.push(rcgen::DnType::OrganizationName, "system:nodes");
        }
    }
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| JoinError::Local(e.to_string()))?;
    let name = format!(
        "{}-{}-{}",
        if signer.ends_with("serving") {
            "node-serving"
        } else if subject.is_some() {
            "node-proxy"
        } else {
            "node-csr"
        },
        node,
        &hex(&Sha256::digest(csr.as_bytes()))[..8]
    );
    let annotations = identity.map(|key| key.proof(csr.as_bytes())).transpose()?;
    let request = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            annotations,
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr.into_bytes()),
            signer_name: signer.to_owned(),
            usages: Some(usages.iter().map(|u| (*u).to_owned()).collect()),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    api.create(&PostParams::default(), &request)
        .await
        .map_err(|source| JoinError::Api {
            context: format!("creating certificate request {name}"),
            source,
        })?;
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let current = api.get(&name).await.map_err(|source| JoinError::Api {
            context: format!("reading certificate request {name}"),
            source,
        })?;
        let status = current.status.unwrap_or_default();
        for condition in status.conditions.iter().flatten() {
            let how = match condition.type_.as_str() {
                "Denied" => "denied",
                "Failed" => "failed",
                _ => continue,
            };
            return Err(JoinError::Refused {
                name,
                how,
                message: condition.message.clone().unwrap_or_default(),
            });
        }
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            let cert = String::from_utf8(cert.0).map_err(|e| JoinError::Local(e.to_string()))?;
            return Ok((cert, key.serialize_pem()));
        }
        if tokio::time::Instant::now() >= until {
            return Err(JoinError::Timeout(name, deadline));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Records the node's identity on its Node (`bulwark.io/node-identity-
/// fingerprint`), which the server compares later bootstrap requests for
/// this name against. Only the node itself may write its Node.
pub async fn record_identity(
    client: &kube::Client,
    node: &str,
    key: &NodeKey,
) -> Result<(), JoinError> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let patch = serde_json::json!({"metadata": {"annotations": {
        NODE_IDENTITY_FINGERPRINT_ANNOTATION: key.fingerprint(),
    }}});
    nodes
        .patch(
            node,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .map(drop)
        .map_err(|source| JoinError::Api {
            context: format!("recording the identity of node {node}"),
            source,
        })
}

/// The agent's credentials on disk (`<root>/pki`, 0700; keys 0600).
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Directory.
    pub dir: PathBuf,
}

impl Credentials {
    /// Credentials kept under `root/pki`.
    pub fn at(root: &Path) -> Credentials {
        Credentials {
            dir: root.join("pki"),
        }
    }

    /// Reads `name` (`ca.crt`, `client.crt`, …) if present.
    pub fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(name)).ok()
    }

    /// Writes `name` with `mode`, creating the directory 0700.
    pub fn write(&self, name: &str, content: &str, mode: u32) -> Result<(), JoinError> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let local =
            |e: std::io::Error| JoinError::Local(format!("{}: {e}", self.dir.join(name).display()));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(local)?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(local)?;
        std::io::Write::write_all(&mut file, content.as_bytes()).map_err(local)?;
        std::fs::rename(&tmp, self.dir.join(name)).map_err(local)
    }
}

/// Whether a PEM certificate is still valid for at least `margin`.
pub fn valid_for(cert_pem: &str, margin: Duration) -> bool {
    let Some(Ok(der)) = rustls_pemfile::certs(&mut cert_pem.as_bytes()).next() else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return false;
    };
    let not_after = cert.validity().not_after.timestamp();
    let now = jiff::Timestamp::now().as_second();
    not_after - now > margin.as_secs() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_tokens_parse_and_reject_garbage() {
        let hash = "a".repeat(64);
        let token: NodeToken = format!("K10{hash}::abcdef.0123456789abcdef")
            .parse()
            .unwrap();
        assert_eq!(token.ca_hash, hash);
        assert_eq!(token.bootstrap, "abcdef.0123456789abcdef");
        assert!(
            !format!("{token:?}").contains("0123456789abcdef"),
            "the secret is redacted"
        );
        for bad in [
            "",
            "abcdef.0123456789abcdef",
            &format!("K10{hash}:abcdef.0123456789abcdef"),
            &format!("K10{}::abcdef.0123456789abcdef", "a".repeat(63)),
            &format!("K10{hash}::ABCDEF.0123456789abcdef"),
            &format!("K10{hash}::abcdef.short"),
        ] {
            assert!(bad.parse::<NodeToken>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_node_identity_is_kept_private_and_survives_restarts() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials::at(dir.path());
        let first = NodeKey::load_or_create(&creds).unwrap();
        let mode = std::fs::metadata(creds.dir.join("node-identity.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = NodeKey::load_or_create(&creds).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        let other = tempfile::tempdir().unwrap();
        let fresh = NodeKey::load_or_create(&Credentials::at(other.path())).unwrap();
        assert_ne!(first.fingerprint(), fresh.fingerprint());
        let proof = first.proof(b"request").unwrap();
        assert!(proof.contains_key(NODE_IDENTITY_ANNOTATION));
        assert!(proof.contains_key(NODE_IDENTITY_PROOF_ANNOTATION));
    }

    #[test]
    fn the_ca_hash_is_the_sha256_of_the_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ca".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pem = cert.pem();
        assert_eq!(
            ca_hash(&pem).unwrap(),
            hex(&Sha256::digest(cert.der().as_ref()))
        );
        let token = node_token(&pem, "abcdef.0123456789abcdef").unwrap();
        assert!(token.parse::<NodeToken>().is_ok());
        assert!(valid_for(&pem, Duration::from_secs(60)));
        assert!(!valid_for("garbage", Duration::ZERO));
    }
}
