//! Who is asking: the identity of a request.
//!
//! In upstream's order: an x509 client certificate signed by the cluster CA
//! (CN = user name, O = groups), else a bearer token — a service-account
//! JWT or a bootstrap token (`authn.rs`). A request without a verified
//! identity is refused with 401: anonymous access is off.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{Value, json};

/// The authenticated user of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// User name, e.g. `bulwark-admin` or `system:node:n1`.
    pub username: String,
    /// Groups, always including `system:authenticated`.
    pub groups: Vec<String>,
    /// A unique id (a service account's UID); empty if none.
    pub uid: String,
    /// Extra attributes (a token's pod, node and credential id).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The TCP peer of a request (for audit and logs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub SocketAddr);

impl UserInfo {
    /// The identity in a client certificate the TLS layer verified.
    pub fn from_certificate(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let username = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())?
            .to_owned();
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        groups.push("system:authenticated".to_owned());
        Some(UserInfo::new(username, groups))
    }

    /// A user with a name and groups, no uid or extra.
    pub fn new(username: String, groups: Vec<String>) -> Self {
        UserInfo {
            username,
            groups,
            uid: String::new(),
            extra: BTreeMap::new(),
        }
    }

    /// `authentication.k8s.io/v1` `UserInfo` (uid and extra only when set).
    pub fn to_json(&self) -> Value {
        let mut info = json!({"username": self.username, "groups": self.groups});
        if !self.uid.is_empty() {
            info["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            info["extra"] = json!(self.extra);
        }
        info
    }
}
