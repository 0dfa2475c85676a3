//! Encrypting and decrypting stored values for one resource.
//!
//! The stored layout is upstream's, byte for byte:
//! `k8s:enc:<provider>:v1:<key name>:` followed by
//! - aescbc: a random 16-byte IV, then AES-256-CBC of the PKCS#7-padded value;
//! - aesgcm: a random 12-byte nonce, then AES-GCM ciphertext and 16-byte tag,
//!   with the caller's context (the storage key) as additional data;
//! - secretbox: a random 24-byte nonce, then NaCl `secretbox` output
//!   (16-byte Poly1305 tag, then XSalsa20 ciphertext).
//!
//! `identity` values carry no prefix.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use crypto_secretbox::XSalsa20Poly1305;
use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::config::{Config, Key, Provider, ProviderKind};

type Aes192Gcm = AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

/// What every encrypted value starts with; `identity` refuses to read such data.
const ENCRYPTED_MARKER: &[u8] = b"k8s:enc:";

/// Encrypts values of one resource with its first provider and decrypts them
/// with whichever configured provider and key wrote them.
///
/// Built by [`Config::transformer`], which expands every key: build one per
/// resource at start and share it (it is `Send + Sync`). `Debug` names
/// providers and keys only.
pub struct Transformer {
    resource: String,
    /// Every (provider, key) pair in configuration order; the first writes.
    readers: Vec<Reader>,
}

/// Why a value could not be encrypted.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    /// The operating system's random number generator failed.
    #[error("cannot draw a random nonce for {resource}: {reason}")]
    Random {
        /// The resource being written.
        resource: String,
        /// The generator's message.
        reason: String,
    },
}

/// Why a stored value could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    /// The value names a provider key that is not (or no longer) configured.
    #[error(
        "{resource}: value was encrypted with {provider} key {key:?}, which the encryption \
         configuration does not list (was it removed before every value was rewritten?)"
    )]
    UnknownKey {
        /// The resource being read.
        resource: String,
        /// The provider named by the value's prefix.
        provider: String,
        /// The key named by the value's prefix.
        key: String,
    },
    /// The value is plaintext but `identity` is not among the providers.
    #[error(
        "{resource}: value is not encrypted and the encryption configuration has no identity \
         provider to read plaintext"
    )]
    NotEncrypted {
        /// The resource being read.
        resource: String,
    },
    /// A configured key matched the value's prefix but could not open it.
    #[error("{resource}: {}", describe_failures(.failures))]
    Failed {
        /// The resource being read.
        resource: String,
        /// Each key tried, and why it failed.
        failures: Vec<KeyFailure>,
    },
}

/// One key that was tried on a value and failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFailure {
    /// The provider.
    pub provider: ProviderKind,
    /// The key's name.
    pub key: String,
    /// What went wrong.
    pub reason: &'static str,
}

fn describe_failures(failures: &[KeyFailure]) -> String {
    failures
        .iter()
        .map(|f| {
            format!(
                "{} key {:?} cannot decrypt the value: {}",
                f.provider, f.key, f.reason
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

struct Reader {
    provider_index: usize,
    key_index: usize,
    prefix: Vec<u8>,
    cipher: Cipher,
}

enum Cipher {
    Identity,
    AesCbc {
        name: String,
        key: Zeroizing<[u8; 32]>,
    },
    AesGcm {
        name: String,
        aead: Gcm,
    },
    Secretbox {
        name: String,
        aead: Box<XSalsa20Poly1305>,
    },
}

enum Gcm {
    A128(Box<Aes128Gcm>),
    A192(Box<Aes192Gcm>),
    A256(Box<Aes256Gcm>),
}

const AUTH_FAILED: &str =
    "authentication failed (wrong key, tampered data, or a value copied from another storage key)";
const CBC_FAILED: &str = "invalid padding after decryption (wrong key or corrupted data)";
const TOO_SHORT: &str = "the stored data is shorter than the nonce and tag";

impl Config {
    /// The transformer for values of `resource` in API group `group` (`""` is
    /// the core group): the providers of the entry naming it exactly, else of
    /// `*.<group>`, else of `*.*`, else `identity` alone.
    pub fn transformer(&self, group: &str, resource: &str) -> Transformer {
        let display = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        let mut providers = self.providers_for(group, resource);
        let identity = Provider::Identity;
        if providers.is_empty() {
            providers.push(&identity);
        }
        let mut readers = Vec::new();
        for (provider_index, provider) in providers.into_iter().enumerate() {
            match provider {
                Provider::Identity => readers.push(Reader {
                    provider_index,
                    key_index: 0,
                    prefix: Vec::new(),
                    cipher: Cipher::Identity,
                }),
                Provider::Keyed { kind, keys } => {
                    for (key_index, key) in keys.iter().enumerate() {
                        readers.push(Reader {
                            provider_index,
                            key_index,
                            prefix: prefix(*kind, &key.name),
                            cipher: Cipher::new(*kind, key),
                        });
                    }
                }
            }
        }
        Transformer {
            resource: display,
            readers,
        }
    }
}

/// Upstream's prefix for values written by `kind` with the key named `name`.
pub(crate) fn prefix(kind: ProviderKind, name: &str) -> Vec<u8> {
    format!("k8s:enc:{}:v1:{name}:", kind.name()).into_bytes()
}

impl Transformer {
    /// Encrypts `plaintext` with the first provider (and its first key), and
    /// returns the value to store, prefixed as upstream prefixes it.
    ///
    /// `context` is the value's storage key (e.g. `/registry/secrets/ns/name`).
    /// aesgcm authenticates it, so a value copied under another key fails to
    /// decrypt; aescbc and secretbox, as upstream, do not use it.
    pub fn encrypt(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, EncryptError> {
        let writer = self.writer();
        let mut nonce = [0u8; 24];
        let len = writer.cipher.nonce_len();
        OsRng
            .try_fill_bytes(&mut nonce[..len])
            .map_err(|e| EncryptError::Random {
                resource: self.resource.clone(),
                reason: e.to_string(),
            })?;
        Ok(writer.seal(plaintext, context, &nonce[..len]))
    }

    /// Decrypts a stored value. Returns the plaintext and whether the value is
    /// *stale*: written by a provider or key other than the current first one,
    /// so the server should rewrite it (key rotation).
    ///
    /// Every configured key whose prefix matches is tried, in order, as
    /// upstream does; unprefixed data is plaintext only when `identity` is
    /// configured.
    pub fn decrypt(&self, stored: &[u8], context: &[u8]) -> Result<(Vec<u8>, bool), DecryptError> {
        let mut failures = Vec::new();
        for reader in &self.readers {
            let Some(body) = stored.strip_prefix(reader.prefix.as_slice()) else {
                continue;
            };
            match reader.cipher.open(body, context) {
                Ok(plain) => {
                    let stale = reader.provider_index != 0 || reader.key_index != 0;
                    return Ok((plain, stale));
                }
                // identity refusing encrypted data lets the next reader try.
                Err(_) if matches!(reader.cipher, Cipher::Identity) => {}
                Err(reason) => {
                    if let Some((provider, key)) = reader.cipher.describe() {
                        failures.push(KeyFailure {
                            provider,
                            key: key.to_string(),
                            reason,
                        });
                    }
                }
            }
        }
        let resource = self.resource.clone();
        if !failures.is_empty() {
            return Err(DecryptError::Failed { resource, failures });
        }
        match parse_prefix(stored) {
            Some((provider, key)) => Err(DecryptError::UnknownKey {
                resource,
                provider,
                key,
            }),
            None => Err(DecryptError::NotEncrypted { resource }),
        }
    }

    fn writer(&self) -> &Reader {
        self.readers
            .first()
            .expect("a transformer has identity or at least one validated key")
    }

    /// Encrypts with an explicit nonce/IV, for test vectors.
    #[cfg(test)]
    pub(crate) fn encrypt_with_nonce(
        &self,
        plaintext: &[u8],
        context: &[u8],
        nonce: &[u8],
    ) -> Vec<u8> {
        self.writer().seal(plaintext, context, nonce)
    }
}

impl fmt::Debug for Transformer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let readers: Vec<String> = self
            .readers
            .iter()
            .map(|r| match r.cipher.describe() {
                Some((kind, name)) => format!("{kind}:{name}"),
                None => "identity".to_string(),
            })
            .collect();
        f.debug_struct("Transformer")
            .field("resource", &self.resource)
            .field("readers", &readers)
            .finish()
    }
}

/// The provider and key named by an encrypted value's prefix.
fn parse_prefix(stored: &[u8]) -> Option<(String, String)> {
    let rest = stored.strip_prefix(ENCRYPTED_MARKER)?;
    // Key names are short; never look far into what may be ciphertext.
    let head = &rest[..rest.len().min(256)];
    let mut parts = head.splitn(4, |b| *b == b':');
    let provider = parts.next()?;
    let _version = parts.next()?;
    let key = parts.next()?;
    parts.next()?;
    Some((
        String::from_utf8_lossy(provider).into_owned(),
        String::from_utf8_lossy(key).into_owned(),
    ))
}

impl Reader {
    fn seal(&self, plaintext: &[u8], context: &[u8], nonce: &[u8]) -> Vec<u8> {
        let mut out = self.prefix.clone();
        out.extend_from_slice(nonce);
        let sealed = match &self.cipher {
            // The prefix and nonce are empty: plaintext is stored as is.
            Cipher::Identity => plaintext.to_vec(),
            Cipher::AesCbc { key, .. } => {
                cbc::Encryptor::<aes::Aes256>::new(key.as_slice().into(), nonce.into())
                    .encrypt_padded_vec_mut::<Pkcs7>(plaintext)
            }
            Cipher::AesGcm { aead, .. } => {
                let payload = Payload {
                    msg: plaintext,
                    aad: context,
                };
                let nonce = nonce.into();
                match aead {
                    Gcm::A128(c) => c.encrypt(nonce, payload),
                    Gcm::A192(c) => c.encrypt(nonce, payload),
                    Gcm::A256(c) => c.encrypt(nonce, payload),
                }
                .expect("AES-GCM encrypts any value shorter than 64 GiB")
            }
            Cipher::Secretbox { aead, .. } => aead
                .encrypt(nonce.into(), plaintext)
                .expect("secretbox encrypts any value shorter than 256 GiB"),
        };
        out.extend_from_slice(&sealed);
        out
    }
}

impl Cipher {
    fn new(kind: ProviderKind, key: &Key) -> Cipher {
        let name = key.name.clone();
        let secret: &[u8] = &key.secret;
        // Key lengths were checked when the configuration was parsed.
        match kind {
            ProviderKind::AesCbc => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                bytes.copy_from_slice(secret);
                Cipher::AesCbc { name, key: bytes }
            }
            ProviderKind::AesGcm => {
                let aead = match secret.len() {
                    16 => Gcm::A128(Box::new(Aes128Gcm::new(secret.into()))),
                    24 => Gcm::A192(Box::new(Aes192Gcm::new(secret.into()))),
                    _ => Gcm::A256(Box::new(Aes256Gcm::new(secret.into()))),
                };
                Cipher::AesGcm { name, aead }
            }
            ProviderKind::Secretbox => Cipher::Secretbox {
                name,
                aead: Box::new(XSalsa20Poly1305::new(secret.into())),
            },
        }
    }

    fn nonce_len(&self) -> usize {
        match self {
            Cipher::Identity => 0,
            Cipher::AesCbc { .. } => 16,
            Cipher::AesGcm { .. } => 12,
            Cipher::Secretbox { .. } => 24,
        }
    }

    fn describe(&self) -> Option<(ProviderKind, &str)> {
        match self {
            Cipher::Identity => None,
            Cipher::AesCbc { name, .. } => Some((ProviderKind::AesCbc, name)),
            Cipher::AesGcm { name, .. } => Some((ProviderKind::AesGcm, name)),
            Cipher::Secretbox { name, .. } => Some((ProviderKind::Secretbox, name)),
        }
    }

    fn open(&self, body: &[u8], context: &[u8]) -> Result<Vec<u8>, &'static str> {
        let n = self.nonce_len();
        match self {
            Cipher::Identity => {
                if body.starts_with(ENCRYPTED_MARKER) {
                    Err("identity tried to read encrypted data")
                } else {
                    Ok(body.to_vec())
                }
            }
            Cipher::AesCbc { key, .. } => {
                if body.len() < 2 * n {
                    return Err("the stored data is shorter than the IV and one block");
                }
                let (iv, data) = body.split_at(n);
                if data.len() % 16 != 0 {
                    return Err("the stored data is not a multiple of the block size");
                }
                cbc::Decryptor::<aes::Aes256>::new(key.as_slice().into(), iv.into())
                    .decrypt_padded_vec_mut::<Pkcs7>(data)
                    .map_err(|_| CBC_FAILED)
            }
            Cipher::AesGcm { aead, .. } => {
                if body.len() < n + 16 {
                    return Err(TOO_SHORT);
                }
                let (nonce, data) = body.split_at(n);
                let payload = Payload {
                    msg: data,
                    aad: context,
                };
                let nonce = nonce.into();
                match aead {
                    Gcm::A128(c) => c.decrypt(nonce, payload),
                    Gcm::A192(c) => c.decrypt(nonce, payload),
                    Gcm::A256(c) => c.decrypt(nonce, payload),
                }
                .map_err(|_| AUTH_FAILED)
            }
            Cipher::Secretbox { aead, .. } => {
                if body.len() < n + 16 {
                    return Err(TOO_SHORT);
                }
                let (nonce, data) = body.split_at(n);
                aead.decrypt(nonce.into(), data)
                    .map_err(|_| "authentication failed (wrong key or tampered data)")
            }
        }
    }
}
