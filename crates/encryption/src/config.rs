//! The `EncryptionConfiguration` file: its model, parsing (checks in
//! `validate`), rendering, and the lookup of a resource's providers.
//!
//! Parsing goes through a YAML value tree (YAML is a superset of the JSON
//! the file may also be written in).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_yaml_ng::Value;
use zeroize::Zeroizing;

use crate::{locate, validate};

/// The `apiVersion` an `EncryptionConfiguration` file must carry.
pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
/// The `kind` an `EncryptionConfiguration` file must carry.
pub const KIND: &str = "EncryptionConfiguration";

/// A validated `EncryptionConfiguration`.
///
/// `Debug` shows resources, providers and key names, never key material.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Config {
    pub(crate) rules: Vec<Rule>,
}

/// A provider that encrypts with named keys (everything but `identity`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ProviderKind {
    /// AES-256-CBC with PKCS#7 padding and a random IV (not authenticated).
    AesCbc,
    /// AES-GCM with 16-, 24- or 32-byte keys and a random 12-byte nonce.
    /// Random nonces wear a key out: upstream asks for rotation every
    /// 200,000 writes, so it is not a good default.
    AesGcm,
    /// NaCl secretbox: XSalsa20-Poly1305 with a random 24-byte nonce.
    Secretbox,
}

impl ProviderKind {
    /// The provider's name in the file and in the stored prefix (`aescbc`, …).
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::AesCbc => "aescbc",
            ProviderKind::AesGcm => "aesgcm",
            ProviderKind::Secretbox => "secretbox",
        }
    }

    /// Key lengths (in bytes, after base64 decoding) the provider accepts.
    pub(crate) fn key_sizes(self) -> &'static [usize] {
        match self {
            // Upstream documents 32 bytes for aescbc; its validation also lets
            // 16 and 24 through. Bulwark refuses the shorter keys.
            ProviderKind::AesCbc | ProviderKind::Secretbox => &[32],
            ProviderKind::AesGcm => &[16, 24, 32],
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "aescbc" => Some(ProviderKind::AesCbc),
            "aesgcm" => Some(ProviderKind::AesGcm),
            "secretbox" => Some(ProviderKind::Secretbox),
            _ => None,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not YAML (or JSON) at all.
    #[error("encryption configuration is not valid YAML or JSON: {message}")]
    Syntax {
        /// The parser's message, with the line and column where it has one.
        message: String,
        /// 1-based line of the error, where known.
        line: Option<usize>,
    },
    /// The document parsed but breaks the schema; every problem is listed.
    #[error("invalid encryption configuration: {}", join(.errors))]
    Invalid {
        /// Each problem, with the path of the field it is about.
        errors: Vec<FieldError>,
    },
}

/// One problem with one field of the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, as upstream spells it: `resources[0].providers[1].aescbc`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
    /// The 1-based line of the file the field (or, if it is missing, its
    /// parent) starts on, where known.
    pub line: Option<usize>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One entry of `resources`: which resources, and their providers in order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Rule {
    pub(crate) resources: Vec<String>,
    pub(crate) providers: Vec<Provider>,
}

/// One entry of `providers`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum Provider {
    Identity,
    Keyed { kind: ProviderKind, keys: Vec<Key> },
}

/// A named key. `Debug` never prints the secret; it is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) secret: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Config {
    /// Parses and validates an `EncryptionConfiguration` written in YAML or JSON.
    ///
    /// Every schema problem is reported, each with its field path.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Syntax {
            message: e.to_string(),
            line: e.location().map(|l| l.line()),
        })?;
        let (config, mut errors) = validate::document(&doc);
        if errors.is_empty() {
            return Ok(config);
        }
        let lines = locate::lines(text);
        for error in &mut errors {
            error.line = locate::line_of(&lines, &error.path);
        }
        Err(ConfigError::Invalid { errors })
    }

    /// Renders the configuration as an `EncryptionConfiguration` YAML file
    /// (secrets included, base64-encoded: write it only to a 0600 file).
    pub fn to_yaml(&self) -> String {
        let doc = RenderDoc {
            api_version: API_VERSION,
            kind: KIND,
            resources: self
                .rules
                .iter()
                .map(|rule| RenderRule {
                    resources: &rule.resources,
                    providers: rule.providers.iter().map(render_provider).collect(),
                })
                .collect(),
        };
        serde_yaml_ng::to_string(&doc).expect("plain strings and maps always serialize")
    }

    /// The provider and key name new values of `group`/`resource` are written
    /// with, or `None` when they are written in plaintext (`identity`).
    pub fn write_key(&self, group: &str, resource: &str) -> Option<(ProviderKind, &str)> {
        match self.providers_for(group, resource).into_iter().next()? {
            Provider::Identity => None,
            Provider::Keyed { kind, keys } => keys.first().map(|k| (*kind, k.name.as_str())),
        }
    }

    /// The providers that apply to a resource, in order: the entries naming it
    /// exactly, else `*.<group>`, else `*.*` (as upstream looks them up).
    pub(crate) fn providers_for(&self, group: &str, resource: &str) -> Vec<&Provider> {
        let lookups = [(group, resource), (group, "*"), ("*", "*")];
        for (g, r) in lookups {
            let found: Vec<&Provider> = self
                .rules
                .iter()
                .filter(|rule| {
                    rule.resources
                        .iter()
                        .any(|name| parse_group_resource(name) == (g, r))
                })
                .flat_map(|rule| rule.providers.iter())
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    }
}

/// Splits `deployments.apps` into (`apps`, `deployments`), `secrets` into
/// (``, `secrets`), `*.` into (``, `*`), as upstream's `ParseGroupResource`.
pub(crate) fn parse_group_resource(name: &str) -> (&str, &str) {
    match name.split_once('.') {
        Some((resource, group)) => (group, resource),
        None => ("", name),
    }
}

#[derive(Serialize)]
struct RenderDoc<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    resources: Vec<RenderRule<'a>>,
}

#[derive(Serialize)]
struct RenderRule<'a> {
    resources: &'a [String],
    providers: Vec<BTreeMap<&'static str, RenderBody>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum RenderBody {
    Identity {},
    Keys { keys: Vec<RenderKey> },
}

#[derive(Serialize)]
struct RenderKey {
    name: String,
    secret: String,
}

fn render_provider(provider: &Provider) -> BTreeMap<&'static str, RenderBody> {
    let (name, body) = match provider {
        Provider::Identity => ("identity", RenderBody::Identity {}),
        Provider::Keyed { kind, keys } => (
            kind.name(),
            RenderBody::Keys {
                keys: keys
                    .iter()
                    .map(|k| RenderKey {
                        name: k.name.clone(),
                        secret: BASE64.encode(&*k.secret),
                    })
                    .collect(),
            },
        ),
    };
    BTreeMap::from([(name, body)])
}
