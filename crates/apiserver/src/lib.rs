//! The Kubernetes API server: the front of Bulwark's control plane.
//!
//! Sits between every client (kubectl, kube-rs, Bulwark's own controllers,
//! scheduler and agents) and the store (DESIGN.md, "One request, end to
//! end"): TLS → authentication → (authorization and admission: the security
//! issue) → decoding, defaulting, validation → the store, and back out as
//! JSON or a Table. Watches are served from per-resource watch caches.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let server = bulwark_apiserver::start(bulwark_apiserver::Config {
//!     data_dir: "/var/lib/bulwark".into(),
//!     ..Default::default()
//! })
//! .await?;
//! println!("kubeconfig: {}", server.kubeconfig.display());
//! # Ok(()) }
//! ```

mod admission;
mod admission_config;
mod apply;
mod audit;
mod auth;
mod authn;
mod authz;
pub mod bootstrap_token;
mod csr;
mod defaults;
mod discovery;
mod encryption;
mod event_versions;
mod handlers;
mod metrics;
mod nodegraph;
mod nodeproxy;
mod noderestriction;
mod objects;
mod openapi;
pub mod pki;
mod registry;
mod request;
mod resource_admission;
mod resourcemetrics;
mod sa_admission;
mod services;
mod status;
mod table;
mod timeout;
mod tls;
mod tokenrequest;
pub mod tokens;
mod validation;
mod watch;
mod watchcache;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bulwark_store::{SqliteConfig, SqliteStore, Store, StoreExt, Write};
use http::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

pub use auth::UserInfo;
pub use pki::Pki;
pub use registry::{Registry, ResourceType};
use request::{Representation, Target, Verb};
pub use services::{DEFAULT_SERVICE_CIDR, Ipv4Cidr, ServiceRanges};
use status::{ApiError, ApiResult};

/// Which store backs the cluster.
#[derive(Clone, Debug, Default)]
pub enum StoreChoice {
    /// The embedded SQLite store at `<data-dir>/db/state.db`.
    #[default]
    Embedded,
    /// A real etcd cluster.
    Etcd(bulwark_store::EtcdConfig),
}

/// Where audit events go.
#[derive(Clone, Debug)]
pub enum AuditLog {
    /// Not audited (an explicit choice; the default audits).
    Off,
    /// JSON lines at `path` (default `<data-dir>/audit/audit.log`), with
    /// `policy` (default: Bulwark's, Metadata for everything, no bodies).
    File {
        /// The log file.
        path: Option<PathBuf>,
        /// An audit.k8s.io/v1 Policy file.
        policy: Option<PathBuf>,
    },
}

impl Default for AuditLog {
    fn default() -> Self {
        AuditLog::File {
            path: None,
            policy: None,
        }
    }
}

/// How to run the API server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where certificates, kubeconfigs and the embedded store live.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub bind_address: IpAddr,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// The store.
    pub store: StoreChoice,
    /// Extra names/addresses for the serving certificate.
    pub extra_sans: Vec<String>,
    /// The audit log.
    pub audit_log: AuditLog,
    /// An `EncryptionConfiguration` file; `None`: `<data-dir>/encryption-config.yaml`,
    /// created at first start with a random secretbox key for Secrets.
    pub encryption_config: Option<PathBuf>,
    /// Where Services take their cluster IPs and NodePorts from
    /// (`--service-cluster-ip-range`, default `10.43.0.0/16`;
    /// `--service-node-port-range`, default 30000-32767).
    pub service_ranges: ServiceRanges,
    /// The address the `kubernetes` Service's endpoints name (other nodes
    /// and pods reach the API server there). `None`: the bind address, or
    /// when bound to every address, the source address of the default
    /// route (loopback if there is none).
    pub advertise_address: Option<IpAddr>,
    /// An `AdmissionConfiguration` file (`--admission-control-config-file`);
    /// its `PodSecurity` entry replaces Bulwark's Pod Security defaults.
    pub admission_control_config: Option<PathBuf>,
    /// How long a request that is not long-running (watch, exec, attach,
    /// port-forward, logs, proxy) may take before it is answered 504
    /// (`--request-timeout`, upstream's 60 s).
    pub request_timeout: std::time::Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/bulwark"),
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 6443,
            store: StoreChoice::Embedded,
            extra_sans: Vec::new(),
            encryption_config: None,
            audit_log: AuditLog::default(),
            service_ranges: ServiceRanges::default(),
            advertise_address: None,
            admission_control_config: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// The default `--request-timeout` (upstream's).
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A running API server.
pub struct Running {
    /// Where it listens.
    pub address: SocketAddr,
    /// The admin kubeconfig written at start.
    pub kubeconfig: PathBuf,
    /// The cluster's certificates.
    pub pki: Pki,
    /// `https://host:port`.
    pub url: String,
    /// The store behind the API (encrypting), for the few objects the
    /// server writes itself.
    store: Arc<dyn Store>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops serving (connections in flight end).
    pub fn stop(self) {
        self.task.abort();
    }

    /// Creates a bootstrap token (a `kube-system/bootstrap-token-<id>`
    /// Secret) valid for `ttl` (`None`: until deleted), whose user is also
    /// in `extra_groups` (each must start with `system:bootstrappers:`).
    /// Returns the token, `<id>.<secret>`, for a joining node to present.
    pub async fn create_bootstrap_token(
        &self,
        ttl: Option<std::time::Duration>,
        extra_groups: &[&str],
        description: &str,
    ) -> anyhow::Result<String> {
        let registry = Registry::builtin();
        let resource = registry
            .get("", "v1", "secrets")
            .context("secrets are served")?;
        for _ in 0..5 {
            let (id, secret) = bootstrap_token::generate();
            let mut object = bootstrap_token::secret_manifest(
                &id,
                &secret,
                ttl,
                authn::now(),
                extra_groups,
                description,
            );
            defaults::apply(&resource, &mut object);
            objects::initialize(&resource, &mut object);
            let key = resource.key(
                Some(bootstrap_token::NAMESPACE),
                &format!("bootstrap-token-{id}"),
            );
            let outcome = self
                .store
                .write(Write::put(&key, serde_json::to_vec(&object)?).if_absent())
                .await?;
            if matches!(outcome, bulwark_store::WriteOutcome::Committed { .. }) {
                return Ok(format!("{id}.{secret}"));
            }
        }
        anyhow::bail!("could not find a free bootstrap token id")
    }

    /// Waits until the server stops (it does not, unless it fails).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("the API server task failed")
    }
}

struct Server {
    authz: Arc<authz::Authorizer>,
    api: handlers::Api,
    audit: audit::Audit,
    registry: Registry,
    metrics: Arc<metrics::Metrics>,
    openapi: openapi::OpenApi,
    kubelet: nodeproxy::KubeletClient,
    /// The encryption keys in use (their file's hash is on `/metrics`).
    encryption_keys: Arc<encryption::Keys>,
    /// Pod Security's defaults and exemptions.
    pod_security: Arc<bulwark_psa::Config>,
    /// The limit for requests that are not long-running.
    request_timeout: std::time::Duration,
}

/// Starts the API server: data dir and certificates, the store, default
/// namespaces, then the HTTPS listener. Returns once it accepts requests.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let pod_security = match &config.admission_control_config {
        Some(path) => admission_config::load(path)?,
        None => None,
    }
    .unwrap_or_else(admission::default_config);
    let pki = Pki::load_or_create(&config.data_dir, &config.extra_sans)
        .with_context(|| format!("preparing certificates in {}", config.data_dir.display()))?;
    let tokens = Arc::new(
        tokens::SigningKey::load_or_create(&config.data_dir)
            .context("preparing the service-account signing key")?,
    );
    let store: Arc<dyn Store> = match &config.store {
        StoreChoice::Embedded => {
            let dir = config.data_dir.join("db");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Arc::new(SqliteStore::open(
                dir.join("state.db"),
                SqliteConfig::default(),
            )?)
        }
        StoreChoice::Etcd(etcd) => Arc::new(bulwark_store::EtcdStore::connect(etcd.clone())?),
    };
    let registry = Registry::builtin();
    let encryption_path = config
        .encryption_config
        .clone()
        .unwrap_or_else(|| config.data_dir.join("encryption-config.yaml"));
    let encryption = if config.encryption_config.is_some() {
        bulwark_encryption::load(&encryption_path)
    } else {
        bulwark_encryption::load_or_create(&encryption_path).map(|(config, created)| {
            if created {
                tracing::info!(path = %encryption_path.display(), "generated an encryption key for Secrets at rest");
            }
            config
        })
    }
    .with_context(|| format!("encryption configuration {}", encryption_path.display()))?;
    let encryption_text = std::fs::read_to_string(&encryption_path).unwrap_or_default();
    let keys = encryption::Keys::new(&encryption, &encryption_text, &registry);
    if !keys.encrypts() {
        tracing::warn!("no resource is encrypted at rest: Secrets are stored in plaintext");
    }
    // Requests read strictly (a value no key decrypts answers 500); the
    // watch caches leave such values out (logged), so the server starts.
    let encrypting = Arc::new(encryption::EncryptingStore::new(
        store.clone(),
        keys.clone(),
    ));
    let for_caches: Arc<dyn Store> =
        Arc::new(encryption::EncryptingStore::lenient(store, keys.clone()));
    let store: Arc<dyn Store> = encrypting.clone();
    bootstrap(&*store).await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let store: Arc<dyn Store> = Arc::new(event_versions::EventVersions {
        inner: Arc::new(metrics::TimedStore {
            inner: store,
            metrics: metrics.clone(),
        }),
    });
    let for_caches: Arc<dyn Store> = Arc::new(event_versions::EventVersions {
        inner: Arc::new(metrics::TimedStore {
            inner: for_caches,
            metrics: metrics.clone(),
        }),
    });
    let audit = match &config.audit_log {
        AuditLog::Off => {
            tracing::warn!("the audit log is off");
            None
        }
        AuditLog::File { path, policy } => {
            let policy = match policy {
                Some(policy) => bulwark_audit::Policy::from_file(policy)
                    .with_context(|| format!("audit policy {}", policy.display()))?,
                None => bulwark_audit::default_policy(),
            };
            let path = path
                .clone()
                .unwrap_or_else(|| config.data_dir.join("audit").join("audit.log"));
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("restricting {}", dir.display()))?;
            }
            let backend = bulwark_audit::LogBackend::open(bulwark_audit::LogConfig::new(&path))
                .with_context(|| format!("audit log {}", path.display()))?;
            Some(Arc::new(bulwark_audit::Auditor::new(policy, backend)))
        }
    };
    let authz = authz::Authorizer::start(store.clone())
        .await
        .map_err(|err| anyhow::anyhow!("starting the authorizer: {}", err.message))?;
    // Every resource's watch cache starts before the first request, as
    // kube-apiserver's do: a cache started lazily would begin above the
    // revision of a LIST served earlier from the store, and a watch from
    // that LIST would be refused as too old.
    let caches = watchcache::Caches::new(for_caches);
    for resource in registry.all() {
        caches.get(&resource).await.map_err(|err| {
            anyhow::anyhow!("starting the {} cache: {}", resource.plural, err.message)
        })?;
    }
    let listener = tokio::net::TcpListener::bind((config.bind_address, config.port))
        .await
        .with_context(|| format!("listening on {}:{}", config.bind_address, config.port))?;
    let address = listener.local_addr()?;
    let allocators = Arc::new(services::Allocators::new(
        store.clone(),
        config.service_ranges.clone(),
    ));
    let advertised =
        services::Advertised::choose(config.advertise_address, address.ip(), address.port());
    services::bootstrap(&*store, &allocators, advertised)
        .await
        .context("creating the built-in Services")?;
    let repair = tokio::spawn(services::reconcile_loop(
        store.clone(),
        allocators.clone(),
        advertised,
    ));
    let server = Arc::new(Server {
        authz,
        audit,
        api: handlers::Api {
            store: store.clone(),
            caches,
            tokens,
            services: allocators,
            encryption: encrypting,
        },
        encryption_keys: keys.clone(),
        pod_security: Arc::new(pod_security),
        request_timeout: config.request_timeout,
        registry,
        metrics,
        openapi: openapi::OpenApi::default(),
        kubelet: nodeproxy::KubeletClient::new(&pki)?,
    });
    let host = match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V6(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let url = format!("https://{host}:{}", address.port());
    let kubeconfig = config.data_dir.join("admin.kubeconfig");
    pki.write_admin_kubeconfig(&kubeconfig, &url)?;
    let reload = tokio::spawn(encryption::reload_loop(keys, encryption_path));
    let tls = tls::server_config(&pki)?;
    let app = axum::Router::new().fallback(dispatch).with_state(server);
    let task = tokio::spawn(async move {
        // The repair and key reload loops live as long as the server.
        let _repair = AbortOnDrop(repair);
        let _reload = AbortOnDrop(reload);
        tls::serve(listener, tls, app).await;
    });
    tracing::info!(%address, kubeconfig = %kubeconfig.display(), "API server listening");
    Ok(Running {
        address,
        kubeconfig,
        pki,
        url,
        store,
        task,
    })
}

/// Aborts a task when dropped (the server's companions stop with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The namespaces every cluster has.
async fn bootstrap(store: &dyn Store) -> anyhow::Result<()> {
    let registry = Registry::builtin();
    let resource = registry
        .get("", "v1", "namespaces")
        .context("namespaces are served")?;
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let key = resource.key(None, name);
        if store.get(&key).await?.is_some() {
            continue;
        }
        let mut namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        defaults::apply(&resource, &mut namespace);
        objects::initialize(&resource, &mut namespace);
        store
            .write(Write::put(&key, serde_json::to_vec(&namespace)?).if_absent())
            .await?;
    }
    Ok(())
}

async fn dispatch(State(server): State<Arc<Server>>, request: Request) -> Response {
    use tracing::Instrument as _;
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    // x509 first, then a bearer token, as upstream's union authenticator.
    let user = match request.extensions().get::<UserInfo>() {
        Some(user) => Some(user.clone()),
        None => match authn::bearer_token(request.headers()) {
            Some(token) => match authn::authenticate(&server.api, token, &[], authn::now()).await {
                Ok(found) => Some(found.user),
                Err(why) => {
                    tracing::debug!(%why, %path, "bearer token refused");
                    None
                }
            },
            None => None,
        },
    };
    let peer = request.extensions().get::<auth::Peer>().map(|p| p.0);
    let span = tracing::info_span!(
        "request",
        %method,
        path,
        query,
        user = user.as_ref().map(|u| u.username.as_str()),
        peer = peer.map(tracing::field::display),
    );
    async move {
        let started = std::time::Instant::now();
        let target = request::parse(&server.registry, &method, &path, &query);
        let audit = server.audit.as_ref().map(|auditor| {
            let info = audit::request_info(
                target.as_ref().ok(),
                &method,
                &path,
                &query,
                user.as_ref(),
                peer,
                request.headers(),
            );
            auditor.request_received(&info);
            (auditor, info)
        });
        if let Some((auditor, _)) = &audit
            && !auditor.healthy()
        {
            // Audit events cannot be written and the log is configured to
            // block: refuse rather than act unaudited.
            return ApiError::internal("the audit log cannot be written").into_response();
        }
        let level = audit
            .as_ref()
            .map_or(bulwark_audit::Level::None, |(auditor, info)| {
                auditor.level(info)
            });
        // At level Request and above the request body is logged: read it
        // here, once, and hand the handler the same bytes.
        let (request, request_body) = if level >= bulwark_audit::Level::Request {
            let (parts, body) = request.into_parts();
            let Some(bytes) = read_body(body).await else {
                return too_large().into_response();
            };
            let logged = serde_json::from_slice::<Value>(&bytes).ok();
            (Request::from_parts(parts, Body::from(bytes)), logged)
        } else {
            (request, None)
        };
        let limit = target
            .as_ref()
            .ok()
            .and_then(|t| timeout::limit(t, server.request_timeout));
        let (mut response, verb, resource) = match user {
            None => (ApiError::unauthorized().into_response(), "", String::new()),
            Some(user) => match limit {
                None => route(&server, user, target, request).await,
                Some(limit) => {
                    match tokio::time::timeout(limit, route(&server, user, target, request)).await {
                        Ok(answered) => answered,
                        Err(_) => (timeout::response(), "", String::new()),
                    }
                }
            },
        };
        let code = response.status().as_u16();
        if let Some((auditor, info)) = &audit {
            if verb == "watch" && code == 200 {
                auditor.response_started(info, code);
            } else {
                // The response body: logged at RequestResponse, and read for
                // a failure's Status (its reason and message go in every
                // event). Streams (logs, exec) are never held back.
                let wanted = level == bulwark_audit::Level::RequestResponse || code >= 300;
                let answer = if wanted {
                    let (kept, answer) = audit::read_response(response).await;
                    response = kept;
                    answer
                } else {
                    None
                };
                let status = answer.as_ref().filter(|a| {
                    code >= 300 && a.get("kind").and_then(Value::as_str) == Some("Status")
                });
                let response_body = answer
                    .as_ref()
                    .filter(|_| level == bulwark_audit::Level::RequestResponse);
                auditor.response_complete(info, code, status, request_body.as_ref(), response_body);
            }
            if let Ok(value) = http::HeaderValue::from_str(&info.audit_id) {
                response.headers_mut().insert("Audit-ID", value);
            }
        }
        server
            .metrics
            .observe(verb, &resource, code, started.elapsed());
        tracing::debug!(
            code,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "done"
        );
        response
    }
    .instrument(span)
    .await
}

async fn route(
    server: &Server,
    user: UserInfo,
    target: ApiResult<Target>,
    request: Request,
) -> (Response, &'static str, String) {
    let (parts, body) = request.into_parts();
    let user = match authz::impersonate(&server.authz, user, &parts.headers) {
        Ok(user) => user,
        Err(err) => return (err.into_response(), "impersonate", String::new()),
    };
    let path = parts.uri.path().to_owned();
    let target = match target {
        Ok(target) => target,
        Err(err) => return (err.into_response(), "", String::new()),
    };
    let body = match read_body(body).await {
        Some(body) => body,
        None => return (too_large().into_response(), "", String::new()),
    };
    match target {
        Target::Other => {
            let attrs = authz::other_attributes(&parts.method, &path, &user);
            if let Err(err) = server.authz.check(&attrs) {
                return (err.into_response(), "", String::new());
            }
            if parts.method == http::Method::GET
                && let Some(metrics) = resourcemetrics::parse(&path)
            {
                let query = request::parse_query(parts.uri.query().unwrap_or(""));
                let response = resourcemetrics::serve(
                    &server.kubelet,
                    server.api.store.as_ref(),
                    &metrics,
                    &query,
                )
                .await;
                return (response, metrics.verb(), metrics.resource.to_owned());
            }
            (
                other(server, &user, &parts, &path, &body).await,
                "",
                String::new(),
            )
        }

        Target::Resource(mut req) => {
            if let Err(err) = server.authz.check(&authz::resource_attributes(&req, &user)) {
                return (
                    err.into_response(),
                    req.verb.as_str(),
                    req.resource.plural.to_owned(),
                );
            }
            req.user = Some(user.clone());
            req.authorizer = Some(server.authz.clone());
            req.pod_security = Some(server.pod_security.clone());
            if admission::wants_namespace_labels(&req)
                && matches!(req.verb, Verb::Create | Verb::Update | Verb::Patch)
            {
                let ns = req.namespace.clone().unwrap_or_default();
                // From the watch cache, as upstream's admission reads its
                // namespace informer; the store only for a namespace the
                // cache has not seen yet.
                match authn::lookup(&server.api, &format!("/registry/namespaces/{ns}")).await {
                    Ok(Some(namespace)) => {
                        req.namespace_labels = Some(admission::labels_of(&namespace));
                    }
                    Ok(None) => {}
                    Err(err) => return (err.into_response(), "", String::new()),
                }
            }
            let verb = req.verb.as_str();
            let resource = req.resource.plural.to_owned();
            if req.resource.plural == "pods"
                && nodeproxy::is_node_stream(req.subresource.as_deref())
            {
                let response = match nodeproxy::forward(
                    &server.kubelet,
                    server.api.store.as_ref(),
                    &req,
                    parts,
                )
                .await
                {
                    Ok(response) => response,
                    Err(err) => err.into_response(),
                };
                return (response, verb, resource);
            }
            let response = match resource_request(server, &req, &parts.headers, &body).await {
                Ok(response) => response,
                Err(err) => err.into_response(),
            };
            (response, verb, resource)
        }
    }
}

async fn resource_request(
    server: &Server,
    req: &request::ResourceRequest,
    headers: &http::HeaderMap,
    body: &bytes::Bytes,
) -> ApiResult<Response> {
    let representation = request::representation(headers)?;
    if req.verb == Verb::Watch {
        return watch::serve(&server.api.caches, req, representation, &server.metrics).await;
    }
    let reply = handlers::handle(&server.api, req, headers, body).await?;
    if let Some(listed) = reply.list {
        if representation == Representation::Table {
            let items = listed.values()?;
            let table = table::table(
                &req.resource,
                &items,
                listed.metadata.clone(),
                true,
                table::IncludeObject::from_query(req.query.get("includeObject")),
            );
            return Ok(json_response(reply.code, &table, &reply.warnings));
        }
        return Ok(Response::builder()
            .status(reply.code)
            .header(CONTENT_TYPE, "application/json")
            .body(Body::new(listed.into_body(&req.resource)))
            .unwrap_or_else(|_| ApiError::internal("building a response").into_response()));
    }
    let body = match (representation, req.verb) {
        (Representation::Table, Verb::Get) if req.subresource.is_none() => {
            let meta = json!({"resourceVersion": reply.body.pointer("/metadata/resourceVersion")});
            table::table(
                &req.resource,
                std::slice::from_ref(&reply.body),
                meta,
                true,
                table::IncludeObject::from_query(req.query.get("includeObject")),
            )
        }
        _ => reply.body,
    };
    Ok(json_response(reply.code, &body, &reply.warnings))
}

/// Reads a request body up to the limit. Past it, reads on (discarding, up
/// to a few times the limit) so the client can read the 413 that follows,
/// then gives up (the connection then closes).
/// 413, for a body over the limit.
fn too_large() -> ApiError {
    ApiError::too_large(format!(
        "Request entity too large: limit is {}",
        request::MAX_BODY_BYTES
    ))
}

async fn read_body(body: Body) -> Option<bytes::Bytes> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut buffer = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return None };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= request::MAX_BODY_BYTES {
                buffer.extend_from_slice(&data);
            } else if seen > 4 * request::MAX_BODY_BYTES {
                return None;
            }
        }
    }
    (seen <= request::MAX_BODY_BYTES).then(|| buffer.freeze())
}

fn json_response(code: u16, body: &Value, warnings: &[String]) -> Response {
    let mut response = Response::builder()
        .status(code)
        .header(CONTENT_TYPE, "application/json");
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('"', "\\\""));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response = response.header("Warning", value);
        }
    }
    response
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| ApiError::internal("building a response").into_response())
}

/// Everything that is not a resource: health, version, discovery, reviews.
async fn other(
    server: &Server,
    user: &UserInfo,
    parts: &http::request::Parts,
    path: &str,
    body: &bytes::Bytes,
) -> Response {
    let accept = parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let get = parts.method == http::Method::GET;
    match (parts.method.as_str(), path.trim_end_matches('/')) {
        ("GET", "/healthz" | "/livez" | "/readyz") => (http::StatusCode::OK, "ok").into_response(),
        ("GET", "/version") => json_response(200, &discovery::version(), &[]),
        ("GET", "/metrics") => {
            let mut text = server.metrics.render();
            if let Some(auditor) = &server.audit {
                text.push_str(&auditor.metrics().prometheus_text());
            }
            text.push_str(&format!(
                "# HELP bulwark_encryption_config_info The encryption configuration in use (SHA-256 of its file).\n# TYPE bulwark_encryption_config_info gauge\nbulwark_encryption_config_info{{hash=\"{}\"}} 1\n",
                server.encryption_keys.config_hash()
            ));
            ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
        ("GET", "/api") if discovery::wants_aggregated(accept) => {
            aggregated_response(&discovery::aggregated(&server.registry, true))
        }
        ("GET", "/api") => json_response(200, &discovery::core_versions(), &[]),
        ("GET", "/apis") if discovery::wants_aggregated(accept) => {
            aggregated_response(&discovery::aggregated(&server.registry, false))
        }
        ("GET", "/apis") => json_response(200, &discovery::group_list(&server.registry), &[]),
        ("GET", "/openapi/v2") => (
            [(CONTENT_TYPE, openapi::V2_PROTOBUF)],
            openapi::v2_document(&discovery::git_version()),
        )
            .into_response(),
        ("GET", "/openapi/v3") => json_response(200, &server.openapi.root(&server.registry), &[]),
        ("GET", p) if p.starts_with("/openapi/v3/") => {
            let gv = p.trim_start_matches("/openapi/v3/");
            let found = match gv.split('/').collect::<Vec<_>>().as_slice() {
                ["api", "v1"] => server.openapi.document(&server.registry, "", "v1"),
                ["apis", group, version] => {
                    server.openapi.document(&server.registry, group, version)
                }
                _ => None,
            };
            match found {
                Some(document) => json_response(200, &document, &[]),
                None => ApiError::no_route().into_response(),
            }
        }
        ("GET", "/api/v1") => match discovery::resource_list(&server.registry, "", "v1") {
            Some(list) => json_response(200, &list, &[]),
            None => ApiError::no_route().into_response(),
        },
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") => {
            match request::decode_body(&parts.headers, body) {
                Ok(review) => json_response(
                    201,
                    &server
                        .authz
                        .access_review("SelfSubjectAccessReview", user, &review, None),
                    &[],
                ),
                Err(err) => err.into_response(),
            }
        }
        ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews") => {
            subject_access_review(server, &parts.headers, body, "SubjectAccessReview", None)
        }
        ("POST", p)
            if p.starts_with("/apis/authorization.k8s.io/v1/namespaces/")
                && p.ends_with("/localsubjectaccessreviews") =>
        {
            let namespace = p
                .trim_start_matches("/apis/authorization.k8s.io/v1/namespaces/")
                .trim_end_matches("/localsubjectaccessreviews");
            subject_access_review(
                server,
                &parts.headers,
                body,
                "LocalSubjectAccessReview",
                Some(namespace),
            )
        }
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews") => {
            match request::decode_body(&parts.headers, body) {
                Ok(review) => json_response(
                    201,
                    &server.authz.self_subject_rules_review(user, &review),
                    &[],
                ),
                Err(err) => err.into_response(),
            }
        }
        ("POST", "/apis/authentication.k8s.io/v1/tokenreviews") => {
            let review = match request::decode_body(&parts.headers, body) {
                Ok(review) => review,
                Err(err) => return err.into_response(),
            };
            match authn::token_review(&server.api, &review).await {
                Ok(answer) => json_response(201, &answer, &[]),
                Err(err) => err.into_response(),
            }
        }
        ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews") => {
            let _ = body;
            json_response(
                201,
                &json!({
                    "kind": "SelfSubjectReview",
                    "apiVersion": "authentication.k8s.io/v1",
                    "metadata": {"creationTimestamp": null},
                    "status": {"userInfo": user.to_json()},
                }),
                &[],
            )
        }
        (_, p) if get && p.starts_with("/apis/") => {
            let segments: Vec<&str> = p.trim_start_matches("/apis/").split('/').collect();
            let found = match segments.as_slice() {
                [group] => discovery::group(&server.registry, group),
                [group, version] => discovery::resource_list(&server.registry, group, version),
                _ => None,
            };
            match found {
                Some(value) => json_response(200, &value, &[]),
                None => ApiError::no_route().into_response(),
            }
        }
        _ => ApiError::no_route().into_response(),
    }
}

/// `SubjectAccessReview` / `LocalSubjectAccessReview`: may the user the
/// spec names (with its groups) do this? A local review's namespace must
/// match its URL's.
fn subject_access_review(
    server: &Server,
    headers: &http::HeaderMap,
    body: &bytes::Bytes,
    kind: &'static str,
    namespace: Option<&str>,
) -> Response {
    let review = match request::decode_body(headers, body) {
        Ok(review) => review,
        Err(err) => return err.into_response(),
    };
    let username = review
        .pointer("/spec/user")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let groups: Vec<String> = review
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if username.is_empty() && groups.is_empty() {
        return ApiError::invalid(
            kind,
            "authorization.k8s.io",
            "",
            vec![status::Cause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: \"\": at least one of user or group must be specified"
                    .into(),
                field: "spec.user".into(),
            }],
        )
        .into_response();
    }
    if let (Some(namespace), Some(spec_namespace)) = (
        namespace,
        review
            .pointer("/spec/resourceAttributes/namespace")
            .and_then(Value::as_str),
    ) && !spec_namespace.is_empty()
        && spec_namespace != namespace
    {
        return ApiError::invalid(
            kind,
            "authorization.k8s.io",
            "",
            vec![status::Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: \"{spec_namespace}\": must match metadata.namespace"
                ),
                field: "spec.resourceAttributes.namespace".into(),
            }],
        )
        .into_response();
    }
    let subject = UserInfo::new(username, groups);
    json_response(
        201,
        &server
            .authz
            .access_review(kind, &subject, &review, namespace),
        &[],
    )
}

fn aggregated_response(body: &Value) -> Response {
    Response::builder()
        .status(200)
        .header(CONTENT_TYPE, discovery::AGGREGATED)
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| ApiError::internal("building a response").into_response())
}
