//! Validation of an `EncryptionConfiguration` value tree into a [`Config`].
//!
//! Walks the parsed YAML by hand so that every problem is collected with
//! its field path, with upstream's wording where upstream has one, and so
//! that no message can ever quote a key's secret.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_yaml_ng::{Mapping, Value};
use zeroize::Zeroizing;

use crate::config::{
    API_VERSION, Config, FieldError, KIND, Key, Provider, ProviderKind, Rule, parse_group_resource,
};

/// Validates a parsed document: the configuration, and every problem found.
/// The configuration is only meaningful when there are no problems.
pub(crate) fn document(doc: &Value) -> (Config, Vec<FieldError>) {
    let mut v = Validator::default();
    let config = v.document(doc);
    (config, v.errors)
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
            line: None,
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
        // Each kind of problem once per list, as upstream reports it.
        let mut twice = None;
        let mut overlapping = false;
        for (i, a) in parsed.iter().enumerate() {
            for b in &parsed[i + 1..] {
                if a == b {
                    twice = twice.or(Some(i));
                } else if *a == ("*", "*")
                    || *b == ("*", "*")
                    || (a.0 == b.0 && (a.1 == "*" || b.1 == "*"))
                {
                    overlapping = true;
                }
            }
        }
        if let Some(i) = twice {
            self.error(path, format!("{:?} is listed twice", resources[i]));
        }
        if overlapping {
            self.error(
                path,
                "using overlapping resources such as 'secrets' and '*.' in the same resource \
                 list is not allowed as they will be masked",
            );
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
                Value::Mapping(m) if m.is_empty() => {}
                Value::Mapping(_) => self.error(&path, "identity takes no fields, write {}"),
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
