//! The certificate controller (upstream's `csrapproving` and `csrsigning`,
//! both running as `kube-system/certificate-controller`):
//!
//! - The approver auto-approves kubelet client certificates
//!   (`kubernetes.io/kube-apiserver-client-kubelet`) whose requester may,
//!   by a SubjectAccessReview, `create` `certificatesigningrequests/nodeclient`
//!   (a new node, e.g. a bootstrap token in `system:bootstrappers`) or
//!   `certificatesigningrequests/selfnodeclient` (a node renewing its own).
//! - The signer issues certificates from the cluster CA for approved CSRs of
//!   `kubernetes.io/kube-apiserver-client` and
//!   `kubernetes.io/kube-apiserver-client-kubelet`, after checking the
//!   request fits the signer's profile; one that does not is marked Failed.
//!
//! The signing itself is [`SignRequest`], which the binary wires to the CA.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{PostParams, Resource as _};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::informer::Change;
use crate::queue::{Next, WorkQueue, run_workers};

/// Signs a PEM certificate request with the cluster CA: `(request PEM,
/// usages as upstream names them, validity)` → certificate PEM.
pub type SignRequest = dyn Fn(&str, &[String], Duration) -> Result<String, Box<dyn std::error::Error + Send + Sync>>
    + Send
    + Sync;

/// A [`SignRequest`] for [`crate::Options`] (which must be `Debug`).
#[derive(Clone)]
pub struct CsrSigner(pub Arc<SignRequest>);

impl std::fmt::Debug for CsrSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrSigner")
    }
}

/// The kubelet client signer.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The kubelet serving signer (the agent's own API).
pub(crate) const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The API server client signer.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Upstream's `--cluster-signing-duration` default: one year.
pub const MAX_SIGNING_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

pub(crate) async fn run(cx: Context) {
    let csrs = cx.informers.get::<CertificateSigningRequest>();
    let queue = WorkQueue::<String>::new();
    let mut changes = csrs.subscribe();
    csrs.ready().await;
    let enqueue_all = csrs.enqueue_all(&queue, |csr| csr.name_any());
    enqueue_all();
    let feeder = {
        let queue = Arc::clone(&queue);
        async move {
            loop {
                match changes.next().await {
                    Some(Change::Applied(csr)) => queue.add(csr.name_any()),
                    Some(Change::Deleted(_)) => {}
                    Some(Change::Resynced) => enqueue_all(),
                    None => return,
                }
            }
        }
    };
    let reconcile = move |name: String| {
        let (cx, csrs) = (cx.clone(), csrs.clone());
        async move {
            let Some(csr) = csrs.store().get(&ObjectRef::new(&name)) else {
                return Ok::<_, kube::Error>(Next::Done);
            };
            let api: Api<CertificateSigningRequest> = Api::all(cx.client.clone());
            if decision(&csr).is_none() {
                if approve(&cx, &api, &csr).await? == Pending::NodeNotSeen {
                    // Its Node may be moments from the cache.
                    return Ok(Next::After(Duration::from_secs(1)));
                }
            } else if decision(&csr) == Some("Approved") {
                sign(&cx, &api, &csr).await?;
            }
            Ok(Next::Done)
        }
    };
    tokio::join!(
        feeder,
        run_workers("certificate-controller", queue, 2, reconcile)
    );
}

fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

/// `Approved` or `Denied` (Denied wins), if decided.
fn decision(csr: &CertificateSigningRequest) -> Option<&'static str> {
    let has = |t: &str| conditions(csr).iter().any(|c| c.type_ == t);
    if has("Denied") {
        Some("Denied")
    } else if has("Approved") {
        Some("Approved")
    } else {
        None
    }
}

fn condition(type_: &str, reason: &str, message: &str) -> CertificateSigningRequestCondition {
    let now = Time(jiff::Timestamp::now());
    CertificateSigningRequestCondition {
        type_: type_.to_owned(),
        status: "True".to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// What a request asks for, read from its PEM.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Subject {
    pub(crate) common_name: String,
    pub(crate) organizations: Vec<String>,
    /// DNS names, e-mail addresses, IP addresses and URIs requested.
    pub(crate) alt_names: usize,
    /// The DNS names among them.
    pub(crate) dns_names: Vec<String>,
    /// The IP addresses among them.
    pub(crate) ips: Vec<std::net::IpAddr>,
    /// Whether the key is RSA (key encipherment is allowed only for RSA).
    pub(crate) rsa: bool,
}

/// Parses the request of a CSR (`spec.request`, PEM bytes).
pub(crate) fn parse_request(pem: &[u8]) -> Result<Subject, String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer as _;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("PEM: {e}"))?;
    if pem.label != "CERTIFICATE REQUEST" {
        return Err("PEM block type must be CERTIFICATE REQUEST".to_owned());
    }
    let (_, request) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .map_err(|e| format!("certificate request: {e}"))?;
    let info = &request.certification_request_info;
    let text = |v: Result<&str, _>| v.map(str::to_owned).unwrap_or_default();
    let mut subject = Subject {
        common_name: info
            .subject
            .iter_common_name()
            .next()
            .map(|cn| text(cn.as_str()))
            .unwrap_or_default(),
        organizations: info
            .subject
            .iter_organization()
            .map(|o| text(o.as_str()))
            .collect(),
        alt_names: 0,
        dns_names: Vec::new(),
        ips: Vec::new(),
        rsa: info.subject_pki.algorithm.algorithm
            == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION,
    };
    for extension in request.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(dns) => subject.dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                            16 => <[u8; 16]>::try_from(*bytes)
                                .ok()
                                .map(std::net::IpAddr::from),
                            _ => None,
                        };
                        subject.ips.extend(ip);
                    }
                    _ => {}
                }
            }
            subject.alt_names += san
                .general_names
                .iter()
                .filter(|n| {
                    matches!(
                        n,
                        GeneralName::DNSName(_)
                            | GeneralName::RFC822Name(_)
                            | GeneralName::IPAddress(_)
                            | GeneralName::URI(_)
                    )
                })
                .count();
        }
    }
    Ok(subject)
}

fn usages(csr: &CertificateSigningRequest) -> Vec<String> {
    csr.spec.usages.clone().unwrap_or_default()
}

/// Upstream's `ValidateKubeletClientCSR`: `O=system:nodes`,
/// `CN=system:node:<name>`, no alternative names, and exactly the usages
/// digital signature + client auth (+ key encipherment for RSA keys).
pub(crate) fn kubelet_client_profile(subject: &Subject, usages: &[String]) -> Result<(), String> {
    if subject.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".to_owned());
    }
    if !subject.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".to_owned());
    }
    if subject.alt_names > 0 {
        return Err("DNS, email, IP or URI subjectAltNames are not allowed".to_owned());
    }
    let mut required = vec!["digital signature", "client auth"];
    if subject.rsa {
        required.push("key encipherment");
    }
    let has = |u: &str| usages.iter().any(|x| x == u);
    let allowed = |u: &String| required.contains(&u.as_str()) || u == "key encipherment";
    let needed = ["digital signature", "client auth"];
    if !needed.iter().all(|u| has(u)) || !usages.iter().all(allowed) {
        return Err(format!(
            "usages did not match {}",
            required
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// Upstream's `ValidateKubeletServingCSR`: `O=system:nodes`,
/// `CN=system:node:<name>`, DNS or IP names only (at least one), usages
/// digital signature + server auth (+ key encipherment).
pub(crate) fn kubelet_serving_profile(subject: &Subject, usages: &[String]) -> Result<(), String> {
    if subject.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".to_owned());
    }
    if !subject.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".to_owned());
    }
    let named = subject.dns_names.len() + subject.ips.len();
    if named == 0 {
        return Err("DNS or IP subjectAltName is required".to_owned());
    }
    if subject.alt_names > named {
        return Err("email and URI subjectAltNames are not allowed".to_owned());
    }
    let allowed = ["digital signature", "key encipherment", "server auth"];
    let has = |u: &str| usages.iter().any(|x| x == u);
    if !has("digital signature")
        || !has("server auth")
        || usages.iter().any(|u| !allowed.contains(&u.as_str()))
    {
        return Err("usages did not match \"digital signature\", \"server auth\"".to_owned());
    }
    Ok(())
}

/// Bulwark approves a node's own serving certificate — upstream leaves it
/// to an administrator — only when the node asks for itself and for names
/// its registered Node already has: its name, its addresses.
pub(crate) fn serving_request_is_own(
    csr: &CertificateSigningRequest,
    subject: &Subject,
    node: Option<&k8s_openapi::api::core::v1::Node>,
) -> bool {
    let Some(node_name) = subject.common_name.strip_prefix("system:node:") else {
        return false;
    };
    let Some(node) = node else { return false };
    if csr.spec.signer_name != KUBELET_SERVING_SIGNER
        || csr.spec.username.as_deref() != Some(subject.common_name.as_str())
        || kubelet_serving_profile(subject, &usages(csr)).is_err()
        || node.metadata.name.as_deref() != Some(node_name)
    {
        return false;
    }
    let addresses: Vec<&str> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(|a| a.iter().map(|a| a.address.as_str()).collect())
        .unwrap_or_default();
    subject
        .dns_names
        .iter()
        .all(|d| d == node_name || addresses.contains(&d.as_str()))
        && subject
            .ips
            .iter()
            .all(|ip| addresses.contains(&ip.to_string().as_str()))
}

/// The node's network part (routes, service proxy) runs as
/// `system:kube-proxy`, as k3s hands every agent that identity: a node may
/// have a client certificate for exactly that user (no groups, no names).
pub(crate) fn proxy_request_from_node(csr: &CertificateSigningRequest, subject: &Subject) -> bool {
    let from_node = csr
        .spec
        .groups
        .as_ref()
        .is_some_and(|g| g.iter().any(|g| g == "system:nodes"))
        && csr
            .spec
            .username
            .as_deref()
            .is_some_and(|u| u.starts_with("system:node:"));
    from_node
        && csr.spec.signer_name == CLIENT_SIGNER
        && subject.common_name == "system:kube-proxy"
        && subject.organizations.is_empty()
        && subject.alt_names == 0
        && api_client_profile(&usages(csr)).is_ok()
}

/// Upstream's check for `kube-apiserver-client`: a client certificate
/// (client auth required; digital signature and key encipherment allowed).
pub(crate) fn api_client_profile(usages: &[String]) -> Result<(), String> {
    let allowed = ["digital signature", "key encipherment", "client auth"];
    if !usages.iter().any(|u| u == "client auth")
        || usages.iter().any(|u| !allowed.contains(&u.as_str()))
    {
        return Err(
            "invalid usage for client certificate: must include \"client auth\" and only \"digital signature\", \"key encipherment\""
                .to_owned(),
        );
    }
    Ok(())
}

/// Which recognizer of the approver applies: `selfnodeclient` when a node
/// asks for its own name, `nodeclient` for anyone else asking for a node.
pub(crate) fn approval_subresource(
    csr: &CertificateSigningRequest,
    subject: &Subject,
) -> Option<&'static str> {
    if csr.spec.signer_name != KUBELET_CLIENT_SIGNER
        || kubelet_client_profile(subject, &usages(csr)).is_err()
    {
        return None;
    }
    if csr.spec.username.as_deref() == Some(subject.common_name.as_str()) {
        Some("selfnodeclient")
    } else {
        Some("nodeclient")
    }
}

/// The CSR annotation with the node's identity key (raw ECDSA P-256
/// public key, base64) — the agent's `join::NODE_IDENTITY_ANNOTATION`.
pub(crate) const NODE_IDENTITY_ANNOTATION: &str = "bulwark.io/node-identity";
/// The CSR annotation with the identity key's signature over `spec.request`.
pub(crate) const NODE_IDENTITY_PROOF_ANNOTATION: &str = "bulwark.io/node-identity-proof";
/// The Node annotation recording its identity key's fingerprint.
pub(crate) const NODE_IDENTITY_FINGERPRINT_ANNOTATION: &str =
    "bulwark.io/node-identity-fingerprint";
/// How long an approved bootstrap request stands for its node's identity
/// while the Node is not (yet) there to record it.
const RECENT_REQUEST: i64 = 15 * 60;

/// The fingerprint (`sha256:<hex>`) of the identity a kubelet client CSR
/// proves: its key must have signed the request bytes. `Ok(None)`: the
/// request carries no identity.
pub(crate) fn presented_identity(
    csr: &CertificateSigningRequest,
) -> Result<Option<String>, String> {
    use base64::Engine as _;
    let annotations = csr.metadata.annotations.as_ref();
    let get = |key: &str| annotations.and_then(|a| a.get(key));
    let (key, proof) = match (
        get(NODE_IDENTITY_ANNOTATION),
        get(NODE_IDENTITY_PROOF_ANNOTATION),
    ) {
        (None, None) => return Ok(None),
        (Some(key), Some(proof)) => (key, proof),
        _ => {
            return Err(format!(
                "the request must carry both {NODE_IDENTITY_ANNOTATION} and {NODE_IDENTITY_PROOF_ANNOTATION}"
            ));
        }
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(key)
        .map_err(|_| format!("{NODE_IDENTITY_ANNOTATION} is not base64"))?;
    let proof = b64
        .decode(proof)
        .map_err(|_| format!("{NODE_IDENTITY_PROOF_ANNOTATION} is not base64"))?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &key)
        .verify(&csr.spec.request.0, &proof)
        .map_err(|_| {
            "the node identity's signature does not match the certificate request".to_owned()
        })?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &key);
    Ok(Some(format!(
        "sha256:{}",
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )))
}

/// The identity of the newest approved bootstrap request (not `except`)
/// for `common_name` from the last minutes: it holds the name until the
/// Node records it.
fn recent_identity(
    csrs: &[Arc<CertificateSigningRequest>],
    common_name: &str,
    except: &str,
) -> Option<String> {
    let now = jiff::Timestamp::now().as_second();
    csrs.iter()
        .filter(|c| c.name_any() != except && decision(c) == Some("Approved"))
        .filter(|c| c.spec.signer_name == KUBELET_CLIENT_SIGNER)
        .filter_map(|c| {
            let created = c.metadata.creation_timestamp.as_ref()?.0.as_second();
            (now - created < RECENT_REQUEST).then_some(())?;
            let subject = parse_request(&c.spec.request.0).ok()?;
            (subject.common_name == common_name).then_some(())?;
            let identity = presented_identity(c).ok()??;
            Some((created, identity))
        })
        .max_by_key(|(created, _)| *created)
        .map(|(_, identity)| identity)
}

/// k3s's node-password rule, with keys: a bootstrap request for a node
/// name that is taken — by a Node, or by a request approved moments ago
/// whose Node is not there yet — is refused unless it proves the identity
/// recorded for that name. The node itself renewing (`selfnodeclient`)
/// never comes here.
pub(crate) fn check_node_identity(
    node_name: &str,
    presented: Result<Option<String>, String>,
    node: Option<&k8s_openapi::api::core::v1::Node>,
    recent: Option<&str>,
) -> Result<(), String> {
    let presented = presented
        .map_err(|why| format!("node \"{node_name}\": invalid node identity proof: {why}"))?;
    let recorded = match node {
        Some(node) => {
            let recorded = node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(NODE_IDENTITY_FINGERPRINT_ANNOTATION));
            match recorded {
                Some(recorded) => recorded.as_str(),
                None => {
                    return Err(format!(
                        "node \"{node_name}\" is already registered and has no node identity on record to prove: a second agent with a duplicate name is refused (use another --node-name, or delete the Node to reuse its name)"
                    ));
                }
            }
        }
        None => match recent {
            Some(recent) => recent,
            None => return Ok(()),
        },
    };
    if presented.as_deref() == Some(recorded) {
        return Ok(());
    }
    Err(format!(
        "node \"{node_name}\" is already registered by an agent with another node identity: a second agent with a duplicate name is refused (use another --node-name, or delete the Node to reuse its name)"
    ))
}

/// Whether an undecided request should be looked at again soon.
#[derive(Debug, PartialEq, Eq)]
enum Pending {
    Settled,
    /// A young serving request whose Node (or its addresses) is not in
    /// the cache yet.
    NodeNotSeen,
}

async fn approve(
    cx: &Context,
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
) -> Result<Pending, kube::Error> {
    let Ok(subject) = parse_request(&csr.spec.request.0) else {
        return Ok(Pending::Settled);
    };
    if csr.spec.signer_name == KUBELET_SERVING_SIGNER {
        let node_name = subject
            .common_name
            .strip_prefix("system:node:")
            .unwrap_or_default()
            .to_owned();
        let node = cx
            .informers
            .get::<k8s_openapi::api::core::v1::Node>()
            .store()
            .get(&ObjectRef::new(&node_name));
        let young = csr
            .metadata
            .creation_timestamp
            .as_ref()
            .is_some_and(|t| jiff::Timestamp::now().as_second() - t.0.as_second() < 120);
        if !serving_request_is_own(csr, &subject, node.as_deref()) {
            // The Node, or its addresses (written by the agent's first
            // status update, just after it creates the Node), may be
            // moments from the cache, and only CSR changes wake this loop.
            return Ok(if young {
                Pending::NodeNotSeen
            } else {
                Pending::Settled
            });
        }
        let mut approved = csr.clone();
        approved
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new)
            .push(condition(
                "Approved",
                "AutoApproved",
                "Auto approving the serving certificate of a node for its own name and addresses.",
            ));
        tracing::info!(csr = %csr.name_any(), node = %node_name, "auto-approving a node's serving certificate");
        return replace(api, "approval", &approved)
            .await
            .map(|()| Pending::Settled);
    }
    if proxy_request_from_node(csr, &subject) {
        let mut approved = csr.clone();
        approved
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new)
            .push(condition(
                "Approved",
                "AutoApproved",
                "Auto approving the kube-proxy client certificate of a node.",
            ));
        tracing::info!(csr = %csr.name_any(), "auto-approving a node's kube-proxy certificate");
        return replace(api, "approval", &approved)
            .await
            .map(|()| Pending::Settled);
    }
    let Some(subresource) = approval_subresource(csr, &subject) else {
        return Ok(Pending::Settled);
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: csr.spec.username.clone(),
            groups: csr.spec.groups.clone(),
            uid: csr.spec.uid.clone(),
            extra: csr.spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".to_owned()),
                resource: Some("certificatesigningrequests".to_owned()),
                subresource: Some(subresource.to_owned()),
                verb: Some("create".to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(cx.client.clone());
    let answer = reviews.create(&PostParams::default(), &review).await?;
    if !answer.status.is_some_and(|s| s.allowed) {
        return Ok(Pending::Settled);
    }
    if subresource == "nodeclient" {
        let node_name = subject
            .common_name
            .strip_prefix("system:node:")
            .unwrap_or_default();
        let node = cx
            .informers
            .get::<k8s_openapi::api::core::v1::Node>()
            .store()
            .get(&ObjectRef::new(node_name));
        let earlier = cx
            .informers
            .get::<CertificateSigningRequest>()
            .store()
            .state();
        let earlier = recent_identity(&earlier, &subject.common_name, &csr.name_any());
        if let Err(why) = check_node_identity(
            node_name,
            presented_identity(csr),
            node.as_deref(),
            earlier.as_deref(),
        ) {
            let mut denied = csr.clone();
            denied
                .status
                .get_or_insert_with(Default::default)
                .conditions
                .get_or_insert_with(Vec::new)
                .push(condition("Denied", "NodeIdentityMismatch", &why));
            tracing::warn!(csr = %csr.name_any(), node = %node_name, %why, "denying a node client certificate");
            return replace(api, "approval", &denied)
                .await
                .map(|()| Pending::Settled);
        }
    }
    let mut approved = csr.clone();
    approved
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition(
            "Approved",
            "AutoApproved",
            "Auto approving kubelet client certificate after SubjectAccessReview.",
        ));
    tracing::info!(csr = %csr.name_any(), subresource, "auto-approving");
    replace(api, "approval", &approved)
        .await
        .map(|()| Pending::Settled)
}

async fn sign(
    cx: &Context,
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
) -> Result<(), kube::Error> {
    let Some(signer) = &cx.signer else {
        return Ok(());
    };
    let status = csr.status.as_ref();
    let issued = status
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    let failed = conditions(csr).iter().any(|c| c.type_ == "Failed");
    let name = csr.spec.signer_name.as_str();
    if issued
        || failed
        || (name != CLIENT_SIGNER
            && name != KUBELET_CLIENT_SIGNER
            && name != KUBELET_SERVING_SIGNER)
    {
        return Ok(());
    }
    let usages = usages(csr);
    let checked = parse_request(&csr.spec.request.0).and_then(|subject| {
        if name == KUBELET_CLIENT_SIGNER {
            kubelet_client_profile(&subject, &usages)
        } else if name == KUBELET_SERVING_SIGNER {
            kubelet_serving_profile(&subject, &usages)
        } else {
            api_client_profile(&usages)
        }
    });
    let mut updated = csr.clone();
    let status = updated.status.get_or_insert_with(Default::default);
    match checked {
        Err(why) => {
            tracing::info!(csr = %csr.name_any(), %why, "request does not fit its signer");
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(condition("Failed", "SignerValidationFailure", &why));
        }
        Ok(()) => {
            let pem = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
            let valid_for = csr
                .spec
                .expiration_seconds
                .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                .map_or(MAX_SIGNING_DURATION, |d| d.min(MAX_SIGNING_DURATION));
            match (signer.0)(&pem, &usages, valid_for) {
                Ok(certificate) => status.certificate = Some(ByteString(certificate.into_bytes())),
                Err(err) => {
                    status
                        .conditions
                        .get_or_insert_with(Vec::new)
                        .push(condition(
                            "Failed",
                            "SignerValidationFailure",
                            &err.to_string(),
                        ));
                }
            }
        }
    }
    tracing::info!(csr = %csr.name_any(), "signed");
    replace(api, "status", &updated).await
}

/// Writes a subresource; a conflict means a newer version is on its way
/// through the informer, which will bring the CSR back.
async fn replace(
    api: &Api<CertificateSigningRequest>,
    subresource: &str,
    csr: &CertificateSigningRequest,
) -> Result<(), kube::Error> {
    let mut body = csr.clone();
    body.meta_mut().managed_fields = None;
    match api
        .replace_subresource(subresource, &csr.name_any(), &PostParams::default(), &body)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(cn: &str, orgs: &[&str], alt_names: usize) -> Subject {
        Subject {
            common_name: cn.to_owned(),
            organizations: orgs.iter().map(|o| (*o).to_owned()).collect(),
            alt_names,
            dns_names: Vec::new(),
            ips: Vec::new(),
            rsa: false,
        }
    }

    fn owned(usages: &[&str]) -> Vec<String> {
        usages.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn the_kubelet_client_profile() {
        let usages = owned(&["digital signature", "client auth"]);
        let node = subject("system:node:n1", &["system:nodes"], 0);
        assert_eq!(kubelet_client_profile(&node, &usages), Ok(()));
        for bad in [
            subject("admin", &["system:masters"], 0),
            subject("system:node:n1", &["system:nodes", "system:masters"], 0),
            subject("n1", &["system:nodes"], 0),
            subject("system:node:n1", &["system:nodes"], 1),
        ] {
            assert!(kubelet_client_profile(&bad, &usages).is_err(), "{bad:?}");
        }
        let server = owned(&["digital signature", "client auth", "server auth"]);
        assert!(kubelet_client_profile(&node, &server).is_err());
    }

    /// A CSR whose request is `request`, signed by a fresh identity key;
    /// returns it and the key's fingerprint.
    fn identified_csr(request: &[u8]) -> (CertificateSigningRequest, String) {
        use base64::Engine as _;
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let signature = key.sign(&rng, request).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut csr = CertificateSigningRequest::default();
        csr.spec.request = ByteString(request.to_vec());
        csr.metadata.annotations = Some(
            [
                (
                    NODE_IDENTITY_ANNOTATION.to_owned(),
                    b64.encode(key.public_key().as_ref()),
                ),
                (
                    NODE_IDENTITY_PROOF_ANNOTATION.to_owned(),
                    b64.encode(signature.as_ref()),
                ),
            ]
            .into(),
        );
        let fingerprint = presented_identity(&csr).unwrap().unwrap();
        (csr, fingerprint)
    }

    #[test]
    fn a_node_identity_proves_itself_only_for_the_request_it_signed() {
        let (csr, fingerprint) = identified_csr(b"request");
        assert!(fingerprint.starts_with("sha256:"));
        // Someone reading the CSR copies its identity onto a request of
        // their own: the signature does not cover it.
        let mut replayed = csr.clone();
        replayed.spec.request = ByteString(b"another request".to_vec());
        assert!(presented_identity(&replayed).is_err());
        let mut half = csr.clone();
        half.metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(NODE_IDENTITY_PROOF_ANNOTATION);
        assert!(presented_identity(&half).is_err());
        assert_eq!(
            presented_identity(&CertificateSigningRequest::default()),
            Ok(None)
        );
    }

    #[test]
    fn a_second_agent_with_a_taken_node_name_is_refused() {
        use k8s_openapi::api::core::v1::Node;
        let (_, mine) = identified_csr(b"r1");
        let (_, theirs) = identified_csr(b"r2");
        let node = |recorded: Option<&str>| Node {
            metadata: kube::api::ObjectMeta {
                name: Some("n1".into()),
                annotations: recorded.map(|r| {
                    [(
                        NODE_IDENTITY_FINGERPRINT_ANNOTATION.to_owned(),
                        r.to_owned(),
                    )]
                    .into()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        // A new name: anyone may take it.
        assert_eq!(
            check_node_identity("n1", Ok(Some(mine.clone())), None, None),
            Ok(())
        );
        assert_eq!(check_node_identity("n1", Ok(None), None, None), Ok(()));
        // The same node re-joining (lost certificate) with its key.
        let registered = node(Some(&mine));
        assert_eq!(
            check_node_identity("n1", Ok(Some(mine.clone())), Some(&registered), None),
            Ok(())
        );
        // Another machine with the same name: refused, naming the node.
        let refused = check_node_identity("n1", Ok(Some(theirs.clone())), Some(&registered), None)
            .unwrap_err();
        assert!(
            refused.contains("node \"n1\" is already registered"),
            "{refused}"
        );
        assert!(check_node_identity("n1", Ok(None), Some(&registered), None).is_err());
        // A Node nobody proved (the server's own agent): refused.
        assert!(
            check_node_identity("n1", Ok(Some(mine.clone())), Some(&node(None)), None).is_err()
        );
        // Approved moments ago, Node not there yet: the name is taken.
        assert!(check_node_identity("n1", Ok(Some(theirs)), None, Some(&mine)).is_err());
        assert_eq!(
            check_node_identity("n1", Ok(Some(mine.clone())), None, Some(&mine)),
            Ok(())
        );
        // A forged proof.
        assert!(check_node_identity("n1", Err("bad".into()), None, None).is_err());
    }

    #[test]
    fn the_api_client_profile() {
        assert!(api_client_profile(&owned(&["client auth"])).is_ok());
        assert!(api_client_profile(&owned(&["digital signature", "server auth"])).is_err());
    }

    #[test]
    fn a_node_may_have_its_own_serving_certificate_approved_and_no_other() {
        use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
        use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};
        let node = Node {
            metadata: kube::api::ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                addresses: Some(vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: "10.0.0.5".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let csr = |user: &str| CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                signer_name: KUBELET_SERVING_SIGNER.into(),
                username: Some(user.into()),
                usages: Some(owned(&["digital signature", "server auth"])),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut own = subject("system:node:n1", &["system:nodes"], 2);
        own.dns_names = vec!["n1".into()];
        own.ips = vec!["10.0.0.5".parse().unwrap()];
        assert!(serving_request_is_own(
            &csr("system:node:n1"),
            &own,
            Some(&node)
        ));
        // Another node asking for n1's certificate.
        assert!(!serving_request_is_own(
            &csr("system:node:n2"),
            &own,
            Some(&node)
        ));
        // An address the node does not have (the API server's, say).
        let mut foreign = subject("system:node:n1", &["system:nodes"], 2);
        foreign.dns_names = vec!["kubernetes.default.svc".into()];
        foreign.ips = vec!["10.0.0.5".parse().unwrap()];
        assert!(!serving_request_is_own(
            &csr("system:node:n1"),
            &foreign,
            Some(&node)
        ));
        // No registered Node: nothing to compare with.
        assert!(!serving_request_is_own(&csr("system:node:n1"), &own, None));
        assert!(
            kubelet_serving_profile(&own, &owned(&["digital signature", "client auth"])).is_err()
        );
    }
}
