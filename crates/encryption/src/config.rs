//! The `EncryptionConfiguration` file: parsing, validation, rendering.
//!
//! Parsing goes through a YAML value tree (YAML is a superset of the JSON
//! the file may also be written in) and is validated by hand, so every
//! message names its field path as upstream's validation does
//! (`resources[0].providers[1].aescbc.keys[0].secret: …`) and no message
//! ever echoes a key's secret.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_yaml_ng::{Mapping, Value};
use zeroize::Zeroizing;

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

    fn from_name(name: &str) -> Option<Self> {
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
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        let mut v = Validator::default();
        let config = v.document(&doc);
        if v.errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { errors: v.errors })
        }
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

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

const PROVIDER_NAMES: &str = "identity, aescbc, aesgcm, secretbox, kms";

impl Validator {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// The mapping at `path`, or an error naming what was found instead.
    fn mapping<'a>(&mut self, value: &'a Value, path: &str) -> Option<&'a Mapping> {
        match value {
            Value::Mapping(m) => Some(m),
            other => {
                self.error(path, format!("must be a mapping, got {}", type_name(other)));
                None
            }
        }
    }

    /// Flags every key of `map` not in `known`.
    fn unknown_fields(&mut self, map: &Mapping, known: &[&str], path: &str) {
        for key in map.keys() {
            let name = key.as_str().unwrap_or("<non-string key>");
            if !known.contains(&name) {
                let at = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                self.error(
                    at,
                    format!("unknown field, expected one of: {}", known.join(", ")),
                );
            }
        }
    }

    fn document(&mut self, doc: &Value) -> Config {
        let mut config = Config { rules: Vec::new() };
        let top = match doc {
            Value::Null => {
                self.error("<document>", "the file is empty");
                return config;
            }
            Value::Mapping(m) => m,
            other => {
                self.error(
                    "<document>",
                    format!("must be a mapping, got {}", type_name(other)),
                );
                return config;
            }
        };
        self.unknown_fields(top, &["apiVersion", "kind", "resources"], "");
        for (field, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
            match top.get(field) {
                Some(Value::String(s)) if s == want => {}
                Some(Value::String(s)) => self.error(field, format!("must be {want:?}, got {s:?}")),
                Some(other) => {
                    self.error(field, format!("must be {want:?}, got {}", type_name(other)))
                }
                None => self.error(field, format!("required, must be {want:?}")),
            }
        }
        let Some(items) = self.sequence(top.get("resources"), "resources", "resource rule") else {
            return config;
        };
        // Resources named so far, as (group, resource) -> the text naming them,
        // to refuse rules masked by an earlier wildcard (as upstream does).
        let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(rule) = self.rule(item, &format!("resources[{i}]"), &mut seen) {
                config.rules.push(rule);
            }
        }
        config
    }

    /// A non-empty sequence at `path`; `what` names one element in the message.
    fn sequence<'a>(
        &mut self,
        value: Option<&'a Value>,
        path: &str,
        what: &str,
    ) -> Option<&'a [Value]> {
        match value {
            None | Some(Value::Null) => {
                self.error(path, format!("required: at least one {what} is needed"));
                None
            }
            Some(Value::Sequence(s)) if s.is_empty() => {
                self.error(path, format!("at least one {what} is needed, got none"));
                None
            }
            Some(Value::Sequence(s)) => Some(s),
            Some(other) => {
                self.error(path, format!("must be a list, got {}", type_name(other)));
                None
            }
        }
    }

    fn rule(
        &mut self,
        item: &Value,
        path: &str,
        seen: &mut BTreeMap<(String, String), String>,
    ) -> Option<Rule> {
        let map = self.mapping(item, path)?;
        self.unknown_fields(map, &["resources", "providers"], path);
        let before = self.errors.len();

        let mut resources = Vec::new();
        let rpath = format!("{path}.resources");
        if let Some(names) = self.sequence(map.get("resources"), &rpath, "resource") {
            for (j, name) in names.iter().enumerate() {
                let npath = format!("{rpath}[{j}]");
                match name {
                    Value::String(s) => {
                        if let Some(problem) = resource_name_problem(s) {
                            self.error(npath, format!("{s:?}: {problem}"));
                        } else {
                            resources.push(s.clone());
                        }
                    }
                    other => {
                        self.error(npath, format!("must be a string, got {}", type_name(other)))
                    }
                }
            }
            self.overlap(&resources, &rpath, seen);
        }

        let mut providers = Vec::new();
        let ppath = format!("{path}.providers");
        if let Some(items) = self.sequence(map.get("providers"), &ppath, "provider") {
            for (j, item) in items.iter().enumerate() {
                if let Some(p) = self.provider(item, &format!("{ppath}[{j}]")) {
                    providers.push(p);
                }
            }
        }
        (self.errors.len() == before).then_some(Rule {
            resources,
            providers,
        })
    }

    /// Duplicates and overlaps inside one list, and names masked by a wildcard
    /// of an earlier list.
    fn overlap(
        &mut self,
        resources: &[String],
        path: &str,
        seen: &mut BTreeMap<(String, String), String>,
    ) {
        let parsed: Vec<(&str, &str)> = resources.iter().map(|r| parse_group_resource(r)).collect();
        for (i, a) in parsed.iter().enumerate() {
            for b in &parsed[i + 1..] {
                if a == b {
                    self.error(path, format!("{:?} is listed twice", resources[i]));
                } else if *a == ("*", "*")
                    || *b == ("*", "*")
                    || (a.0 == b.0 && (a.1 == "*" || b.1 == "*"))
                {
                    self.error(
                        path,
                        "using overlapping resources such as 'secrets' and '*.' in the same \
                         resource list is not allowed as they will be masked",
                    );
                }
            }
        }
        let earlier: BTreeMap<(String, String), String> = seen.clone();
        for (name, (group, resource)) in resources.iter().zip(&parsed) {
            for mask in [(*group, "*"), ("*", "*")] {
                let key = (mask.0.to_string(), mask.1.to_string());
                if let Some(by) = earlier.get(&key) {
                    self.error(
                        path,
                        format!("resource {name:?} is masked by earlier rule {by:?}"),
                    );
                    break;
                }
            }
            seen.entry((group.to_string(), resource.to_string()))
                .or_insert_with(|| name.clone());
        }
    }

    fn provider(&mut self, item: &Value, path: &str) -> Option<Provider> {
        let map = self.mapping(item, path)?;
        let mut entries = map.iter();
        let (name, body) = match (entries.next(), entries.next()) {
            (Some(first), None) => first,
            (None, _) => {
                self.error(
                    path,
                    format!("names no provider, expected one of: {PROVIDER_NAMES}"),
                );
                return None;
            }
            (Some(_), Some(_)) => {
                self.error(
                    path,
                    "more than one provider specified in a single element, should split into \
                     different list elements",
                );
                return None;
            }
        };
        let name = name.as_str().unwrap_or("<non-string key>");
        let path = format!("{path}.{name}");
        if name == "identity" {
            match body {
                Value::Null => {}
                Value::Mapping(m) => self.unknown_fields(m, &[], &path),
                other => self.error(
                    &path,
                    format!("must be an empty mapping ({{}}), got {}", type_name(other)),
                ),
            }
            return Some(Provider::Identity);
        }
        if name == "kms" {
            self.error(
                path,
                "kms providers are not supported by Bulwark yet; use secretbox or aescbc",
            );
            return None;
        }
        let Some(kind) = ProviderKind::from_name(name) else {
            self.error(
                path,
                format!("unknown provider {name:?}, expected one of: {PROVIDER_NAMES}"),
            );
            return None;
        };
        let body = self.mapping(body, &path)?;
        self.unknown_fields(body, &["keys"], &path);
        let kpath = format!("{path}.keys");
        let items = self.sequence(body.get("keys"), &kpath, "key")?;
        let mut keys = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(key) = self.key(item, kind, &format!("{kpath}[{i}]")) {
                keys.push(key);
            }
        }
        (keys.len() == items.len()).then_some(Provider::Keyed { kind, keys })
    }

    fn key(&mut self, item: &Value, kind: ProviderKind, path: &str) -> Option<Key> {
        let map = self.mapping(item, path)?;
        self.unknown_fields(map, &["name", "secret"], path);
        let name = match map.get("name") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                self.error(format!("{path}.name"), "required: every key needs a name");
                None
            }
            Some(other) => {
                self.error(
                    format!("{path}.name"),
                    format!("must be a string, got {}", type_name(other)),
                );
                None
            }
        };
        let spath = format!("{path}.secret");
        // Never put the secret's text into a message.
        let secret = match map.get("secret") {
            Some(Value::String(s)) if !s.is_empty() => match BASE64.decode(s.trim()) {
                Ok(bytes) => {
                    let bytes = Zeroizing::new(bytes);
                    if kind.key_sizes().contains(&bytes.len()) {
                        Some(bytes)
                    } else {
                        let sizes = kind.key_sizes();
                        let want = match sizes {
                            [one] => format!("{one}"),
                            _ => format!("{sizes:?}"),
                        };
                        let verb = if sizes.len() == 1 {
                            "must be"
                        } else {
                            "must be one of"
                        };
                        self.error(
                            spath,
                            format!(
                                "{verb} {want} bytes after base64 decoding, got {}",
                                bytes.len()
                            ),
                        );
                        None
                    }
                }
                Err(_) => {
                    self.error(spath, "must be base64 encoded (standard alphabet, padded)");
                    None
                }
            },
            Some(Value::String(_)) | None | Some(Value::Null) => {
                self.error(spath, "required: every key needs a base64-encoded secret");
                None
            }
            Some(other) => {
                self.error(spath, format!("must be a string, got {}", type_name(other)));
                None
            }
        };
        Some(Key {
            name: name?,
            secret: secret?,
        })
    }
}

/// Upstream's checks on one resource name, with its messages.
fn resource_name_problem(name: &str) -> Option<&'static str> {
    let (group, resource) = parse_group_resource(name);
    if name.is_empty() {
        Some("must not be empty")
    } else if name.to_lowercase() != name {
        Some("resource name should not contain capital letters")
    } else if name == "*" {
        Some(
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources",
        )
    } else if matches!(
        name,
        "apiserveripinfo" | "serviceipallocations" | "servicenodeportallocations"
    ) {
        Some("resources which do not have REST API/s cannot be encrypted")
    } else if group == "events.k8s.io" {
        Some(
            "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use \
             'events' instead in the config file",
        )
    } else if group == "extensions" {
        Some("'extensions' group has been removed and cannot be used for encryption")
    } else if group == "*" && resource != "*" {
        Some("encrypting the same resource across groups is not supported")
    } else {
        None
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
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
