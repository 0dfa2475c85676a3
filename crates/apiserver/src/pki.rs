//! The cluster's certificates: a CA, the API server's serving certificate,
//! and the admin's client certificate, created at first start in the data
//! dir and reused afterwards.
//!
//! Files (keys and kubeconfigs 0600, certificates 0644, the directory 0700,
//! as CIS 1.1.x asks): `pki/ca.{crt,key}`, `pki/apiserver.{crt,key}`,
//! `pki/admin.{crt,key}`, and `admin.kubeconfig`.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Why the certificates could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Generating or parsing a certificate failed.
    #[error("certificate {what}: {source}")]
    Cert {
        /// Which certificate.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
}

/// The cluster's certificate material, PEM-encoded.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA certificate (trust anchor for clients and servers).
    pub ca_cert_pem: String,
    /// The serving certificate of the API server.
    pub server_cert_pem: String,
    /// Its private key.
    pub server_key_pem: String,
    /// The admin client certificate (CN `bulwark-admin`, O `system:masters`).
    pub admin_cert_pem: String,
    /// Its private key.
    pub admin_key_pem: String,
    ca_key_pem: String,
}

impl Pki {
    /// Loads the certificates from `data_dir/pki`, creating what is missing.
    /// The serving certificate covers `extra_sans` besides localhost,
    /// 127.0.0.1, the host name and the in-cluster service names.
    pub fn load_or_create(data_dir: &Path, extra_sans: &[String]) -> Result<Self, PkiError> {
        let dir = data_dir.join("pki");
        create_private_dir(data_dir)?;
        create_private_dir(&dir)?;
        let (ca_cert_pem, ca_key_pem) = match (read(&dir.join("ca.crt")), read(&dir.join("ca.key")))
        {
            (Some(cert), Some(key)) => (cert, key),
            _ => {
                let (cert, key) = new_ca()?;
                write_file(&dir.join("ca.key"), &key, 0o600)?;
                write_file(&dir.join("ca.crt"), &cert, 0o644)?;
                (cert, key)
            }
        };
        let issuer_key = KeyPair::from_pem(&ca_key_pem).map_err(cert_err("ca key"))?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, issuer_key).map_err(cert_err("ca"))?;

        let (server_cert_pem, server_key_pem) = load_or_issue(
            &dir,
            "apiserver",
            || {
                let mut params = CertificateParams::new(server_names(extra_sans))
                    .map_err(cert_err("apiserver"))?;
                params.distinguished_name = name("kube-apiserver");
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                Ok(params)
            },
            &issuer,
        )?;
        let (admin_cert_pem, admin_key_pem) = load_or_issue(
            &dir,
            "admin",
            || client_params("bulwark-admin", &["system:masters"]),
            &issuer,
        )?;
        Ok(Pki {
            ca_cert_pem,
            server_cert_pem,
            server_key_pem,
            admin_cert_pem,
            admin_key_pem,
            ca_key_pem,
        })
    }

    /// Issues a client certificate for `user` in `groups`, signed by the
    /// cluster CA (for components and tests). Returns (cert, key) PEM.
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<(String, String), PkiError> {
        let issuer_key = KeyPair::from_pem(&self.ca_key_pem).map_err(cert_err("ca key"))?;
        let issuer =
            Issuer::from_ca_cert_pem(&self.ca_cert_pem, issuer_key).map_err(cert_err("ca"))?;
        let key = KeyPair::generate().map_err(cert_err("client key"))?;
        let cert = client_params(user, groups)?
            .signed_by(&key, &issuer)
            .map_err(cert_err("client"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues a serving certificate for a node's agent (CN `system:node:<node>`,
    /// O `system:nodes`, as upstream's kubelet-serving signer) covering its
    /// name and addresses. Returns (cert, key) PEM.
    pub fn issue_node_serving(
        &self,
        node: &str,
        sans: &[String],
    ) -> Result<(String, String), PkiError> {
        let issuer_key = KeyPair::from_pem(&self.ca_key_pem).map_err(cert_err("ca key"))?;
        let issuer =
            Issuer::from_ca_cert_pem(&self.ca_cert_pem, issuer_key).map_err(cert_err("ca"))?;
        let key = KeyPair::generate().map_err(cert_err("serving key"))?;
        let mut params = CertificateParams::new(sans.to_vec()).map_err(cert_err("node serving"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("system:node:{node}"));
        dn.push(DnType::OrganizationName, "system:nodes");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(cert_err("node serving"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs a PEM certificate signing request with the cluster CA, as
    /// upstream's csrsigning controller does: the subject and names come
    /// from the request, the key usages from `usages` (upstream's names:
    /// `digital signature`, `client auth`, …), valid from five minutes ago
    /// (clock skew) for `valid_for`. Returns the certificate PEM.
    pub fn sign_request(
        &self,
        csr_pem: &str,
        usages: &[String],
        valid_for: std::time::Duration,
    ) -> Result<String, PkiError> {
        let issuer_key = KeyPair::from_pem(&self.ca_key_pem).map_err(cert_err("ca key"))?;
        let issuer =
            Issuer::from_ca_cert_pem(&self.ca_cert_pem, issuer_key).map_err(cert_err("ca"))?;
        let mut request = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(cert_err("signing request"))?;
        let params = &mut request.params;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = usages.iter().filter_map(|u| key_usage(u)).collect();
        params.extended_key_usages = usages
            .iter()
            .filter_map(|u| extended_key_usage(u))
            .collect();
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        // Never past the CA's own expiry, as upstream caps it.
        params.not_after = match ca_not_after(&self.ca_cert_pem) {
            Some(ca_end) => (now + valid_for).min(ca_end),
            None => now + valid_for,
        };
        params.serial_number = Some(rcgen::SerialNumber::from_slice(
            &rand::random::<[u8; 16]>()[..],
        ));
        let cert = request.signed_by(&issuer).map_err(cert_err("signed"))?;
        Ok(cert.pem())
    }

    /// A kubeconfig for `server` authenticating with the given client
    /// certificate.
    pub fn kubeconfig(&self, server: &str, user: &str, cert_pem: &str, key_pem: &str) -> String {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: bulwark
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {user}@bulwark
  context:
    cluster: bulwark
    user: {user}
current-context: {user}@bulwark
",
            ca = b64(&self.ca_cert_pem),
            cert = b64(cert_pem),
            key = b64(key_pem),
        )
    }

    /// Writes the admin kubeconfig to `path` (mode 0600).
    pub fn write_admin_kubeconfig(&self, path: &Path, server: &str) -> Result<(), PkiError> {
        let config = self.kubeconfig(
            server,
            "bulwark-admin",
            &self.admin_cert_pem,
            &self.admin_key_pem,
        );
        write_file(path, &config, 0o600)
    }
}

/// When the CA certificate expires.
fn ca_not_after(ca_cert_pem: &str) -> Option<time::OffsetDateTime> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok()
}

fn key_usage(usage: &str) -> Option<KeyUsagePurpose> {
    Some(match usage {
        "digital signature" | "signing" => KeyUsagePurpose::DigitalSignature,
        "content commitment" => KeyUsagePurpose::ContentCommitment,
        "key encipherment" => KeyUsagePurpose::KeyEncipherment,
        "key agreement" => KeyUsagePurpose::KeyAgreement,
        "data encipherment" => KeyUsagePurpose::DataEncipherment,
        "cert sign" => KeyUsagePurpose::KeyCertSign,
        "crl sign" => KeyUsagePurpose::CrlSign,
        "encipher only" => KeyUsagePurpose::EncipherOnly,
        "decipher only" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

fn extended_key_usage(usage: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match usage {
        "any" => ExtendedKeyUsagePurpose::Any,
        "server auth" => ExtendedKeyUsagePurpose::ServerAuth,
        "client auth" => ExtendedKeyUsagePurpose::ClientAuth,
        "code signing" => ExtendedKeyUsagePurpose::CodeSigning,
        "email protection" => ExtendedKeyUsagePurpose::EmailProtection,
        "timestamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocsp signing" => ExtendedKeyUsagePurpose::OcspSigning,
        _ => return None,
    })
}

fn new_ca() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(cert_err("ca key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name("bulwark-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.self_signed(&key).map_err(cert_err("ca"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn client_params(user: &str, groups: &[&str]) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for group in groups {
        dn.push(DnType::OrganizationName, *group);
    }
    dn.push(DnType::CommonName, user);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

fn load_or_issue(
    dir: &Path,
    stem: &str,
    params: impl FnOnce() -> Result<CertificateParams, PkiError>,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(String, String), PkiError> {
    let cert_path = dir.join(format!("{stem}.crt"));
    let key_path = dir.join(format!("{stem}.key"));
    if let (Some(cert), Some(key)) = (read(&cert_path), read(&key_path)) {
        return Ok((cert, key));
    }
    let key = KeyPair::generate().map_err(cert_err("key"))?;
    let cert = params()?
        .signed_by(&key, issuer)
        .map_err(cert_err("leaf"))?;
    write_file(&key_path, &key.serialize_pem(), 0o600)?;
    write_file(&cert_path, &cert.pem(), 0o644)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The names and addresses the API server answers to.
fn server_names(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "127.0.0.1",
        "::1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    names.extend(extra.iter().cloned());
    names.sort();
    names.dedup();
    names
}

fn cert_err(what: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |source| PkiError::Cert { what, source }
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

pub(crate) fn create_private_dir(path: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_requests_keep_their_subject_get_the_usages_asked_and_never_outlive_the_ca() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki::load_or_create(dir.path(), &[]).expect("pki");
        let key = KeyPair::generate().expect("key");
        let request = client_params("system:node:n1", &["system:nodes"])
            .expect("params")
            .serialize_request(&key)
            .expect("request")
            .pem()
            .expect("pem");
        let usages = ["digital signature".to_owned(), "client auth".to_owned()];
        let parse = |pem: &str| {
            let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
            let cert = pem.parse_x509().expect("certificate").to_owned();
            (
                cert.subject().to_string(),
                cert.issuer().to_string(),
                cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp(),
                cert.extended_key_usage()
                    .expect("eku")
                    .map(|e| e.value.client_auth),
            )
        };
        let hour = pki
            .sign_request(&request, &usages, std::time::Duration::from_secs(3600))
            .expect("signed");
        let (subject, issuer, lifetime, client_auth) = parse(&hour);
        assert_eq!(subject, "O=system:nodes, CN=system:node:n1");
        assert_eq!(issuer, "CN=bulwark-ca");
        assert_eq!(lifetime, 3600 + 300, "an hour, backdated five minutes");
        assert_eq!(client_auth, Some(true));

        let century = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
        let capped = pki
            .sign_request(&request, &usages, century)
            .expect("signed");
        let (_, pem) = x509_parser::pem::parse_x509_pem(capped.as_bytes()).expect("pem");
        let end = pem
            .parse_x509()
            .expect("cert")
            .validity()
            .not_after
            .timestamp();
        assert_eq!(
            end,
            ca_not_after(&pki.ca_cert_pem)
                .expect("ca end")
                .unix_timestamp()
        );
    }
}
