//! Clients for component identities.

use std::sync::Arc;

use base64::Engine as _;

/// Who a component is to the API server: the user name and groups of its
/// client certificate (CN and O).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The user name (`system:kube-scheduler`, …).
    pub user: String,
    /// Its groups (`system:authenticated` is added by the server).
    pub groups: Vec<String>,
}

impl Identity {
    /// A plain user.
    pub fn user(user: impl Into<String>, groups: &[&str]) -> Self {
        Identity {
            user: user.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    /// The service account `namespace/name`, as upstream names it:
    /// `system:serviceaccount:<ns>:<name>` in `system:serviceaccounts` and
    /// `system:serviceaccounts:<ns>`. Upstream's controller manager runs each
    /// controller as `kube-system/<controller>`, which the bootstrap
    /// `system:controller:<controller>` ClusterRoleBindings name.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Identity {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
            ],
        }
    }
}

/// Something that signs client certificates for identities (the cluster CA).
/// Returns `(certificate PEM, private key PEM)`.
pub type IssueCertificate = dyn Fn(&Identity) -> Result<(String, String), Box<dyn std::error::Error + Send + Sync>>
    + Send
    + Sync;

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The CA refused or failed to sign a certificate.
    #[error("issuing a client certificate for {user}: {source}")]
    Issue {
        /// The identity's user name.
        user: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server URL is not a URL.
    #[error("invalid API server URL {url:?}: {source}")]
    Url {
        /// The URL given.
        url: String,
        /// Why it does not parse.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// kube-rs could not build a client (bad PEM, TLS setup).
    #[error("building a client for {user}: {source}")]
    Client {
        /// The identity's user name.
        user: String,
        /// What kube-rs said.
        #[source]
        source: kube::Error,
    },
}

/// How components reach the API server: its URL, the CA that signs its
/// serving certificate, and a signer of client certificates.
#[derive(Clone)]
pub struct ClusterAccess {
    url: http::Uri,
    ca_pem: String,
    issue: Arc<IssueCertificate>,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAccess")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ClusterAccess {
    /// Access to the server at `url` (`https://host:port`) whose serving
    /// certificate `ca_pem` signs, with client certificates from `issue`.
    pub fn new(url: &str, ca_pem: &str, issue: Arc<IssueCertificate>) -> Result<Self, AccessError> {
        let url = url.parse().map_err(|source| AccessError::Url {
            url: url.to_owned(),
            source,
        })?;
        Ok(ClusterAccess {
            url,
            ca_pem: ca_pem.to_owned(),
            issue,
        })
    }

    /// The API server's URL.
    pub fn url(&self) -> &http::Uri {
        &self.url
    }

    /// A client authenticated as `identity` (a fresh certificate is signed
    /// for it). Must be called inside a Tokio runtime.
    pub fn client(&self, identity: &Identity) -> Result<kube::Client, AccessError> {
        let (cert, key) = (self.issue)(identity).map_err(|source| AccessError::Issue {
            user: identity.user.clone(),
            source,
        })?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let mut config = kube::Config::new(self.url.clone());
        config.root_cert = Some(pem_certificates(&self.ca_pem));
        config.auth_info.client_certificate_data = Some(b64(&cert));
        config.auth_info.client_key_data = Some(b64(&key).into());
        config.default_namespace = "default".to_owned();
        kube::Client::try_from(config).map_err(|source| AccessError::Client {
            user: identity.user.clone(),
            source,
        })
    }
}

/// The DER bytes of every certificate in a PEM bundle.
fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            body = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(b) = body.take()
                && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b)
            {
                out.push(der);
            }
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_identity_is_named_as_upstream() {
        let id = Identity::service_account("kube-system", "replicaset-controller");
        assert_eq!(
            id.user,
            "system:serviceaccount:kube-system:replicaset-controller"
        );
        assert_eq!(
            id.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system"
            ]
        );
    }

    #[test]
    fn pem_bundles_split_into_certificates() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n\
                   junk\n-----BEGIN CERTIFICATE-----\nAw==\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_certificates(pem), vec![vec![0, 1, 2], vec![3]]);
    }
}
