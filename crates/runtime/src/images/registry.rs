//! Pulling images from OCI-distribution registries.
//!
//! Endpoints come from a k3s-style `registries.yaml`: mirrors per registry
//! host tried in order, then the registry itself (always HTTPS; plain HTTP
//! only for an endpoint written as `http://…`). Credentials and TLS settings
//! are per endpoint host. Authentication follows the distribution spec:
//! anonymous first, then on 401 either Basic or the Bearer token flow
//! (`WWW-Authenticate: Bearer realm=…,service=…,scope=…`, as Docker Hub does).
//! Every blob is verified against its digest as it is written.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::oci::{self, Descriptor, Index, Manifest};
use super::{Image, ImageError, ImageStore};
use crate::reference::Reference;

/// A registries configuration, as k3s reads from `registries.yaml`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Per registry host (`docker.io`, `registry.k8s.io`, …): mirrors to try first.
    #[serde(default)]
    pub mirrors: BTreeMap<String, MirrorConfig>,
    /// Per endpoint host (`127.0.0.1:5000`, `mirror.local`): credentials and TLS.
    #[serde(default)]
    pub configs: BTreeMap<String, HostConfig>,
    /// Do not fall back to the registry itself when every mirror failed
    /// (air-gapped nodes; k3s's `--disable-default-registry-endpoint`).
    #[serde(default)]
    pub disable_default_endpoint: bool,
    /// How long one request may take before the endpoint is given up
    /// (default 30 s). Not part of the file format.
    #[serde(skip)]
    pub request_timeout: Option<Duration>,
}

/// Mirrors of one registry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct MirrorConfig {
    /// Endpoint URLs (`https://mirror.local`, `http://127.0.0.1:5000`), in order.
    #[serde(default)]
    pub endpoint: Vec<String>,
}

/// Settings for one endpoint host.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct HostConfig {
    /// Credentials.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Registry credentials.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
pub struct AuthConfig {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password or token.
    #[serde(default)]
    pub password: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// TLS settings of an endpoint.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of the CA that signs the endpoint's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification (an explicit, insecure choice).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl RegistryConfig {
    /// Parses `registries.yaml` text.
    pub fn from_yaml(text: &str) -> Result<Self, ImageError> {
        serde_yaml::from_str(text).map_err(|e| ImageError::Registry {
            endpoint: "registries.yaml".into(),
            message: e.to_string(),
        })
    }

    /// Reads a `registries.yaml` file.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let text = std::fs::read_to_string(path)
            .map_err(super::io_ctx(format!("reading {}", path.display())))?;
        Self::from_yaml(&text)
    }

    /// The endpoints to try for a registry host, in order.
    pub(crate) fn endpoints(&self, registry: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .mirrors
            .get(registry)
            .map(|m| {
                m.endpoint
                    .iter()
                    .map(|e| e.trim_end_matches('/').to_string())
                    .collect()
            })
            .unwrap_or_default();
        let default = if registry == "docker.io" {
            "https://registry-1.docker.io".to_string()
        } else {
            format!("https://{registry}")
        };
        // Without mirrors the registry itself is the only endpoint there is.
        let fall_back = !self.disable_default_endpoint || out.is_empty();
        if fall_back && !out.contains(&default) {
            out.push(default);
        }
        out
    }
}

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// How long one registry request may take before the endpoint is given up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl ImageStore {
    /// The image if the store has it, else [`ImageStore::pull`] — Kubernetes'
    /// `imagePullPolicy: IfNotPresent`.
    pub fn pull_if_missing(
        &self,
        name: &str,
        config: &RegistryConfig,
    ) -> Result<Image, ImageError> {
        match self.get(name) {
            Err(ImageError::NotFound(_)) => self.pull(name, config),
            other => other,
        }
    }

    /// Pulls `name` (e.g. `busybox`) through the endpoints `config` gives for
    /// its registry, and unpacks it. Concurrent pulls of the same name in this
    /// process are done once: later callers wait for the first.
    #[tracing::instrument(level = "debug", skip(self, config), fields(image = %name))]
    pub fn pull(&self, name: &str, config: &RegistryConfig) -> Result<Image, ImageError> {
        let reference = Reference::parse(name)?;
        let key = reference.to_string();
        let slot = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            std::sync::Arc::clone(inflight.entry(key.clone()).or_default())
        };
        let mut done = slot.lock().unwrap_or_else(|p| p.into_inner());
        if *done {
            // Another caller pulled it while we waited.
            if let Ok(image) = self.get(&key) {
                return Ok(image);
            }
        }
        let result = self.pull_uncached(&reference, config);
        *done = result.is_ok();
        drop(done);
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        result
    }

    fn pull_uncached(
        &self,
        reference: &Reference,
        config: &RegistryConfig,
    ) -> Result<Image, ImageError> {
        let mut failures = Vec::new();
        for endpoint in config.endpoints(reference.registry()) {
            let client = match Client::new(&endpoint, reference, config) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            match self.pull_from(&client, reference) {
                Ok(image) => return Ok(image),
                // A blob that fails verification is an attack or corruption,
                // not an unavailable mirror: stop here.
                Err(e @ (ImageError::DigestMismatch { .. } | ImageError::Unpack { .. })) => {
                    return Err(e);
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(ImageError::PullFailed {
            reference: reference.to_string(),
            attempts: failures.join("; "),
        })
    }

    fn pull_from(&self, client: &Client, reference: &Reference) -> Result<Image, ImageError> {
        let tag_or_digest = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_string();
        let (mut desc, mut bytes) = client.manifest(&tag_or_digest)?;
        if let Some(pinned) = reference.digest()
            && desc.digest != pinned
        {
            return Err(ImageError::DigestMismatch {
                expected: pinned.into(),
                actual: desc.digest,
            });
        }
        // An index: choose this platform's manifest.
        if matches!(
            desc.media_type.as_str(),
            oci::MEDIA_INDEX | oci::DOCKER_MANIFEST_LIST
        ) {
            self.put_blob(&bytes[..], Some(&desc.digest))?;
            let index: Index =
                serde_json::from_slice(&bytes).map_err(|source| ImageError::BadDocument {
                    what: format!("image index {}", desc.digest),
                    source,
                })?;
            let chosen = index
                .manifests
                .into_iter()
                .find(|d| {
                    d.platform.as_ref().is_none_or(|p| {
                        p.os == "linux" && p.architecture == oci::host_architecture()
                    })
                })
                .ok_or_else(|| {
                    ImageError::NoMatchingPlatform(
                        oci::host_architecture().into(),
                        reference.to_string(),
                    )
                })?;
            (desc, bytes) = client.manifest(&chosen.digest)?;
            if desc.digest != chosen.digest {
                return Err(ImageError::DigestMismatch {
                    expected: chosen.digest,
                    actual: desc.digest,
                });
            }
        }
        self.put_blob(&bytes[..], Some(&desc.digest))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|source| ImageError::BadDocument {
                what: format!("manifest {}", desc.digest),
                source,
            })?;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if !self.has_blob(&blob.digest) {
                let body = client.blob(&blob.digest)?;
                self.put_blob(body, Some(&blob.digest))?;
            }
        }
        self.unpack_image(&desc)?;
        self.tag(reference, desc)?;
        self.get(&reference.to_string())
    }
}

/// An HTTP client for one endpoint and repository, holding its auth state.
struct Client {
    agent: ureq::Agent,
    endpoint: String,
    repository: String,
    auth: Option<AuthConfig>,
    /// `Authorization` header value once a challenge has been answered.
    authorization: std::sync::Mutex<Option<String>>,
}

impl Client {
    fn new(
        endpoint: &str,
        reference: &Reference,
        config: &RegistryConfig,
    ) -> Result<Self, ImageError> {
        let host = endpoint
            .split_once("://")
            .map_or(endpoint, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let err = |message: String| ImageError::Registry {
            endpoint: endpoint.to_string(),
            message,
        };
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(err("endpoint must start with https:// or http://".into()));
        }
        let host_config = config.configs.get(&host).cloned().unwrap_or_default();
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(t) = &host_config.tls {
            if let Some(ca) = &t.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| err(format!("reading CA file {}: {e}", ca.display())))?;
                let certs = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                if certs.is_empty() {
                    return Err(err(format!("no certificate in {}", ca.display())));
                }
                tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
            }
            tls = tls.disable_verification(t.insecure_skip_verify);
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(config.request_timeout.unwrap_or(REQUEST_TIMEOUT)))
            .timeout_connect(Some(
                CONNECT_TIMEOUT.min(config.request_timeout.unwrap_or(CONNECT_TIMEOUT)),
            ))
            .tls_config(tls.build())
            .user_agent("bulwark")
            .build()
            .new_agent();
        Ok(Client {
            agent,
            endpoint: endpoint.to_string(),
            repository: reference.repository().to_string(),
            auth: host_config.auth,
            authorization: std::sync::Mutex::new(None),
        })
    }

    fn error(&self, message: impl Into<String>) -> ImageError {
        ImageError::Registry {
            endpoint: self.endpoint.clone(),
            message: message.into(),
        }
    }

    /// Fetches a manifest; returns its descriptor (digest computed from the
    /// bytes) and bytes.
    fn manifest(&self, tag_or_digest: &str) -> Result<(Descriptor, Vec<u8>), ImageError> {
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.endpoint, self.repository
        );
        let mut response = self.get(&url, MANIFEST_ACCEPT)?;
        let media_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_default();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_vec()
            .map_err(|e| self.error(format!("reading manifest: {e}")))?;
        use sha2::Digest as _;
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(&bytes));
        let media_type = if media_type.is_empty() || media_type == "application/json" {
            // Fall back to the document's own mediaType field.
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["mediaType"].as_str().map(str::to_string))
                .unwrap_or_else(|| oci::MEDIA_MANIFEST.to_string())
        } else {
            media_type
        };
        Ok((
            Descriptor {
                media_type,
                size: bytes.len() as u64,
                digest,
                platform: None,
                annotations: BTreeMap::new(),
            },
            bytes,
        ))
    }

    fn blob(&self, digest: &str) -> Result<impl Read + use<>, ImageError> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.endpoint, self.repository);
        let response = self.get(&url, "*/*")?;
        Ok(response.into_body().into_reader())
    }

    /// GET with the registry's authentication dance.
    fn get(&self, url: &str, accept: &str) -> Result<ureq::http::Response<ureq::Body>, ImageError> {
        let mut answered = false;
        loop {
            let mut request = self.agent.get(url).header("Accept", accept);
            let authorization = self
                .authorization
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(value) = &authorization {
                request = request.header("Authorization", value);
            }
            let response = request.call().map_err(|e| self.error(e.to_string()))?;
            let status = response.status().as_u16();
            match status {
                200..=299 => return Ok(response),
                401 if !answered => {
                    let challenge = response
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let value = self.answer(&challenge)?;
                    *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
                    answered = true;
                }
                401 => return Err(self.error("401 Unauthorized: credentials were refused")),
                404 => return Err(self.error(format!("404 Not Found: {url}"))),
                other => return Err(self.error(format!("registry answered {other} for {url}"))),
            }
        }
    }

    /// The `Authorization` header value answering a 401 challenge.
    fn answer(&self, challenge: &str) -> Result<String, ImageError> {
        let (scheme, params) = parse_challenge(challenge);
        let basic = self.auth.as_ref().map(|a| {
            format!(
                "Basic {}",
                base64(format!("{}:{}", a.username, a.password).as_bytes())
            )
        });
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => basic.ok_or_else(|| {
                self.error("401 Unauthorized: registry wants credentials, none configured")
            }),
            "bearer" => {
                let realm = params
                    .get("realm")
                    .ok_or_else(|| self.error("Bearer challenge without a realm"))?;
                let mut url = format!("{realm}?");
                if let Some(service) = params.get("service") {
                    url.push_str(&format!("service={}&", encode(service)));
                }
                let scope = params
                    .get("scope")
                    .cloned()
                    .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                url.push_str(&format!("scope={}", encode(&scope)));
                let mut request = self.agent.get(&url);
                if let Some(b) = &basic {
                    request = request.header("Authorization", b);
                }
                let mut response = request
                    .call()
                    .map_err(|e| self.error(format!("token request to {realm}: {e}")))?;
                if !response.status().is_success() {
                    return Err(self.error(format!(
                        "token request to {realm} answered {}",
                        response.status().as_u16()
                    )));
                }
                #[derive(Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let token: Token = serde_json::from_slice(
                    &response
                        .body_mut()
                        .read_to_vec()
                        .map_err(|e| self.error(format!("reading token: {e}")))?,
                )
                .map_err(|e| self.error(format!("token response: {e}")))?;
                let token = token
                    .token
                    .or(token.access_token)
                    .ok_or_else(|| self.error("token response holds no token"))?;
                Ok(format!("Bearer {token}"))
            }
            _ => Err(self.error(format!(
                "unsupported authentication challenge {challenge:?}"
            ))),
        }
    }
}

/// `Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`
/// → (`Bearer`, {realm, service}).
pub(crate) fn parse_challenge(header: &str) -> (String, BTreeMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_string());
        rest = remaining.trim_start_matches(',').trim();
    }
    (scheme.to_string(), params)
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Standard base64 with padding (for Basic credentials).
pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let cases = [
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
                r#"Bearer {"realm": "https://auth.docker.io/token", "scope": "repository:library/busybox:pull", "service": "registry.docker.io"}"#,
            ),
            (
                r#"Basic realm="Registry Realm""#,
                r#"Basic {"realm": "Registry Realm"}"#,
            ),
            ("Basic", "Basic {}"),
            (
                "Bearer realm=http://x/token, service=x",
                r#"Bearer {"realm": "http://x/token", "service": "x"}"#,
            ),
        ];
        for (header, want) in cases {
            let (scheme, params) = parse_challenge(header);
            assert_eq!(format!("{scheme} {params:?}"), want, "{header}");
        }
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn registries_yaml_mirrors_and_endpoint_order() {
        let config = RegistryConfig::from_yaml(
            r#"
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000/"
      - "https://mirror.example.com"
configs:
  "127.0.0.1:5000":
    auth:
      username: bulwark
      password: secret
    tls:
      insecure_skip_verify: false
"#,
        )
        .expect("valid yaml");
        assert_eq!(
            config.endpoints("docker.io"),
            [
                "http://127.0.0.1:5000",
                "https://mirror.example.com",
                "https://registry-1.docker.io"
            ]
        );
        assert_eq!(config.endpoints("ghcr.io"), ["https://ghcr.io"]);
        let air_gapped = RegistryConfig {
            disable_default_endpoint: true,
            ..config.clone()
        };
        assert_eq!(
            air_gapped.endpoints("docker.io"),
            ["http://127.0.0.1:5000", "https://mirror.example.com"]
        );
        assert_eq!(air_gapped.endpoints("ghcr.io"), ["https://ghcr.io"]);
        let auth = config.configs["127.0.0.1:5000"].auth.clone().expect("auth");
        assert_eq!(auth.username, "bulwark");
        assert!(
            !format!("{auth:?}").contains("secret"),
            "passwords never printed"
        );
        assert!(RegistryConfig::from_yaml("mirrors: [").is_err());
    }
}
