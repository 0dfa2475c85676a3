//! Service-account tokens: the cluster's ES256 signing key and the JWTs it
//! signs and verifies (upstream's `pkg/serviceaccount/jwt.go` in effect:
//! compact JWS, `alg` ES256, `kid` from the public key).
//!
//! The key is `pki/sa.key` (PKCS#8 PEM, 0600), made at first start and
//! reused afterwards, so tokens survive restarts. Only the signature is
//! checked here; what the claims must say (issuer, audience, lifetime, the
//! objects they name still existing) is `authn.rs`'s business.
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let key = bulwark_apiserver::tokens::SigningKey::load_or_create("/var/lib/bulwark".as_ref())?;
//! let jwt = key.sign(&serde_json::json!({"iss": bulwark_apiserver::tokens::ISSUER}));
//! assert!(key.verify(&jwt).is_ok());
//! # Ok(()) }
//! ```

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde_json::{Value, json};

use crate::pki::PkiError;

/// The issuer (`iss`) of the tokens this cluster signs, upstream's default
/// for kubeadm-like clusters.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The API server's own audience: tokens must name it to authenticate
/// requests (`--api-audiences` defaults to the issuer).
pub const API_AUDIENCE: &str = ISSUER;

/// The DER prefix of a P-256 SubjectPublicKeyInfo (algorithm id-ecPublicKey
/// with the prime256v1 curve, then the BIT STRING header of the point).
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a token's signature was not accepted. Deliberately vague towards
/// clients (they get 401 `Unauthorized`); precise in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or a part that does not decode.
    #[error("malformed token")]
    Malformed,
    /// An `alg` other than ES256 (`none`, HS256 with the public key, …).
    #[error("unexpected signing algorithm {0:?}")]
    Algorithm(String),
    /// The signature does not verify with this cluster's key.
    #[error("invalid signature")]
    Signature,
}

/// The ES256 key service-account tokens are signed with.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads `data_dir/pki/sa.key`, creating it (mode 0600) if missing.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, PkiError> {
        let dir = data_dir.join("pki");
        crate::pki::create_private_dir(data_dir)?;
        crate::pki::create_private_dir(&dir)?;
        let path = dir.join("sa.key");
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let rng = SystemRandom::new();
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| key_error(&path, "generating the key failed"))?;
                let pem = to_pem("PRIVATE KEY", pkcs8.as_ref());
                crate::pki::write_file(&path, &pem, 0o600)?;
                tracing::info!(path = %path.display(), "generated the service-account signing key");
                pem
            }
            Err(source) => return Err(PkiError::Io { path, source }),
        };
        Self::from_pem(&pem).map_err(|why| key_error(&path, why))
    }

    /// A key from PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<Self, &'static str> {
        let der = match rustls_pemfile::private_key(&mut pem.as_bytes()) {
            Ok(Some(rustls::pki_types::PrivateKeyDer::Pkcs8(der))) => der,
            _ => return Err("not a PKCS#8 private key in PEM"),
        };
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_pkcs8_der(),
            &rng,
        )
        .map_err(|_| "not an ECDSA P-256 key")?;
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        Ok(SigningKey { pair, kid, rng })
    }

    /// The key id (`kid`) put in token headers: base64url of the SHA-256 of
    /// the public key's DER, as upstream computes it.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` into a compact JWS.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // Signing with a valid key and the system RNG does not fail.
        let signature = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map(|s| URL_SAFE_NO_PAD.encode(s.as_ref()))
            .unwrap_or_default();
        format!("{signing_input}.{signature}")
    }

    /// Checks a token's header and signature; returns its claims.
    pub fn verify(&self, token: &str) -> Result<Value, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenError::Malformed)
        };
        let header: Value =
            serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg != "ES256" {
            return Err(TokenError::Algorithm(alg.to_owned()));
        }
        let signing_input = &token[..token.len() - signature.len() - 1];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(signing_input.as_bytes(), &decode(signature)?)
            .map_err(|_| TokenError::Signature)?;
        let claims: Value =
            serde_json::from_slice(&decode(claims)?).map_err(|_| TokenError::Malformed)?;
        if !claims.is_object() {
            return Err(TokenError::Malformed);
        }
        Ok(claims)
    }
}

/// Whether `token` looks like a JWT (three dot-separated parts): what the
/// bearer authenticator tries as a service-account token.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

fn key_error(path: &Path, why: &str) -> PkiError {
    PkiError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned()),
    }
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        let dir = tempfile::tempdir().unwrap();
        SigningKey::load_or_create(dir.path()).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_and_keeps_its_claims() {
        let key = key();
        let claims = json!({"iss": ISSUER, "sub": "system:serviceaccount:ns:sa"});
        assert_eq!(key.verify(&key.sign(&claims)).unwrap(), claims);
    }

    #[test]
    fn the_key_is_private_and_reused_across_restarts() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let first = SigningKey::load_or_create(dir.path()).unwrap();
        let token = first.sign(&json!({"a": 1}));
        let second = SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.key_id(), second.key_id());
        assert!(second.verify(&token).is_ok());
        let mode = std::fs::metadata(dir.path().join("pki/sa.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let key = key();
        let token = key.sign(&json!({"sub": "system:serviceaccount:ns:sa"}));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(json!({"sub": "system:serviceaccount:kube-system:admin"}).to_string());
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(key.verify(&tampered), Err(TokenError::Signature));
    }

    #[test]
    fn another_clusters_key_is_refused() {
        let token = key().sign(&json!({"sub": "x"}));
        assert_eq!(key().verify(&token), Err(TokenError::Signature));
    }

    #[test]
    fn alg_none_and_hmac_are_refused() {
        let key = key();
        let claims = URL_SAFE_NO_PAD.encode(json!({"sub": "x"}).to_string());
        for alg in ["none", "HS256"] {
            let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg}).to_string());
            let token = format!("{header}.{claims}.");
            assert_eq!(key.verify(&token), Err(TokenError::Algorithm(alg.into())));
        }
        assert_eq!(key.verify("abc"), Err(TokenError::Malformed));
        assert_eq!(key.verify("a.b.c.d"), Err(TokenError::Malformed));
    }
}
