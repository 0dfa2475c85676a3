//! Encryption at rest for stored API objects, as kube-apiserver's
//! `EncryptionConfiguration` (`apiserver.config.k8s.io/v1`) does it.
//!
//! Where it sits: the API server passes every value it writes to the store
//! through a [`Transformer`] for the value's resource, and every value it
//! reads back. This crate does no IO beyond reading and writing the
//! configuration file, and knows nothing of the store or of HTTP.
//!
//! - [`Config::parse`] reads an upstream configuration file (YAML or JSON)
//!   with providers `identity`, `aescbc`, `aesgcm` and `secretbox`
//!   (`kms` is refused for now), and reports every problem with its field
//!   path and line. [`load`] reads one from disk.
//! - [`Config::transformer`] picks a resource's providers (exact name, then
//!   `*.<group>`, then `*.*`). The first provider's first key encrypts;
//!   every provider and key is tried when reading, by the value's prefix
//!   `k8s:enc:<provider>:v1:<key>:`. Values are stored byte for byte as
//!   upstream stores them, so a store written by kube-apiserver with the
//!   same configuration reads here, and the other way round.
//! - [`load_or_create`] is Bulwark's secure default: with no configuration
//!   given, the server generates one at first start that encrypts Secrets
//!   with a random `secretbox` key, and reuses it afterwards.
//! - [`add_key`], [`promote`] and [`remove_key`] are the steps of a key
//!   rotation; [`Config::to_yaml`] writes the result back.
//!
//! What is authenticated is upstream's choice, kept for compatibility:
//! aesgcm binds a value to its storage key (the `context` argument), so a
//! value copied under another key fails to decrypt; secretbox detects any
//! change to the ciphertext but not a move; aescbc detects neither (a
//! wrong key or tampering shows only as bad padding, most of the time).
//!
//! Key material never appears in `Debug` output or in error messages.
//!
//! # Example
//!
//! ```
//! use bulwark_encryption::Config;
//!
//! let config = Config::parse(r#"
//! apiVersion: apiserver.config.k8s.io/v1
//! kind: EncryptionConfiguration
//! resources:
//! - resources: [secrets]
//!   providers:
//!   - secretbox:
//!       keys:
//!       - name: key1
//!         secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
//!   - identity: {}
//! "#)?;
//! let secrets = config.transformer("", "secrets");
//! let stored = secrets.encrypt(b"hunter2", b"/registry/secrets/default/db")?;
//! assert!(stored.starts_with(b"k8s:enc:secretbox:v1:key1:"));
//! let (plain, stale) = secrets.decrypt(&stored, b"/registry/secrets/default/db")?;
//! assert_eq!((plain.as_slice(), stale), (&b"hunter2"[..], false));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Rotating a key
//!
//! Upstream's procedure (kube-apiserver's "Rotating a decryption key"),
//! which `bulwark secrets rotate` automates; with several API servers each
//! step must reach every server before the next begins:
//!
//! 1. Add the new key in second position of the provider ([`add_key`]),
//!    write the file, restart every API server: all can now *read* values
//!    written with the new key, none writes with it yet.
//! 2. Make the new key first ([`promote`]), write the file, restart every
//!    API server: new writes use the new key.
//! 3. Rewrite every encrypted object so it is stored with the new key
//!    (upstream: `kubectl get secrets --all-namespaces -o json | kubectl
//!    replace -f -`). [`Transformer::decrypt`] reports values still under
//!    an old key as *stale*, which is how the server knows what to rewrite.
//! 4. Remove the old key ([`remove_key`]), write the file, restart. Values
//!    still under the old key now fail to decrypt with an error naming it.
//!
//! Removing a key before step 3 has finished loses the data it protects.
//! To move from plaintext to encryption, the same steps apply with
//! `identity` as the old provider; it stays last so plaintext still reads.

mod config;
mod file;
mod locate;
mod rotation;
mod transformer;
mod validate;

pub use config::{API_VERSION, Config, ConfigError, FieldError, KIND, ProviderKind};
pub use file::{LoadError, load, load_or_create, save};
pub use rotation::{RotationError, add_key, promote, remove_key};
pub use transformer::{DecryptError, EncryptError, KeyFailure, Transformer};

#[cfg(test)]
mod tests;
