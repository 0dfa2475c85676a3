//! Key rotation as upstream documents it: add a key second, promote it,
//! rewrite everything, remove the old key. Each step returns a new
//! [`Config`]; writing it out and restarting are the caller's.

use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::config::{Config, Key, Provider, ProviderKind};

/// Why a rotation step was refused.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// No resource is written with an encrypting provider, so there is nothing to rotate.
    #[error(
        "no resource in the encryption configuration is encrypted (every first provider is \
         identity); edit the configuration to enable encryption"
    )]
    NothingEncrypted,
    /// The new key's name is empty or contains `:` (it ends up in a `:`-separated prefix).
    #[error("key name {0:?} is not valid: it must be non-empty and contain no ':'")]
    InvalidName(String),
    /// A key of that name already exists where the new key would go.
    #[error("a key named {name:?} already exists for {resources}")]
    DuplicateName {
        /// The name.
        name: String,
        /// The resources of the rule that has it.
        resources: String,
    },
    /// No rule has a key of that name.
    #[error("no key named {0:?} in the encryption configuration")]
    NotFound(String),
    /// The key is in more than one provider of one rule, so which is meant is unclear.
    #[error("key name {name:?} is used by more than one provider for {resources}")]
    Ambiguous {
        /// The name.
        name: String,
        /// The resources of the rule.
        resources: String,
    },
    /// The key still writes new values: promote another key first.
    #[error(
        "key {name:?} is the write key for {resources}; promote another key and rewrite every \
         value before removing it"
    )]
    StillWriting {
        /// The name.
        name: String,
        /// The resources of the rule.
        resources: String,
    },
    /// The operating system's random number generator failed.
    #[error("cannot generate a key: {0}")]
    Random(String),
}

/// Adds a freshly generated key `name` for `kind` in *second* position of
/// every rule that currently encrypts (whose first provider is not
/// `identity`): every server can then read values written with it before
/// any server writes with it.
///
/// If the rule's first provider is of the same kind, the key becomes its
/// second key; otherwise a new provider holding only this key is inserted
/// second.
pub fn add_key(config: &Config, kind: ProviderKind, name: &str) -> Result<Config, RotationError> {
    if name.is_empty() || name.contains(':') {
        return Err(RotationError::InvalidName(name.to_string()));
    }
    let secret = generate_secret()?;
    let mut out = config.clone();
    let mut touched = false;
    for rule in &mut out.rules {
        let encrypts = matches!(rule.providers.first(), Some(Provider::Keyed { .. }));
        if !encrypts {
            continue;
        }
        if !locate(&rule.providers, name).is_empty() {
            return Err(RotationError::DuplicateName {
                name: name.to_string(),
                resources: rule.resources.join(","),
            });
        }
        let key = Key {
            name: name.to_string(),
            secret: secret.clone(),
        };
        match rule.providers.first_mut() {
            Some(Provider::Keyed { kind: first, keys }) if *first == kind => keys.insert(1, key),
            _ => rule.providers.insert(
                1,
                Provider::Keyed {
                    kind,
                    keys: vec![key],
                },
            ),
        }
        touched = true;
    }
    if touched {
        Ok(out)
    } else {
        Err(RotationError::NothingEncrypted)
    }
}

/// Makes key `name` the write key of every rule that lists it: its provider
/// moves first and the key moves first within it. Readers of the old key stay.
pub fn promote(config: &Config, name: &str) -> Result<Config, RotationError> {
    let mut out = config.clone();
    let mut found = false;
    for rule in &mut out.rules {
        let Some((p, k)) = locate_one(&rule.providers, name, &rule.resources)? else {
            continue;
        };
        found = true;
        let mut provider = rule.providers.remove(p);
        if let Provider::Keyed { keys, .. } = &mut provider {
            let key = keys.remove(k);
            keys.insert(0, key);
        }
        rule.providers.insert(0, provider);
    }
    if found {
        Ok(out)
    } else {
        Err(RotationError::NotFound(name.to_string()))
    }
}

/// Removes key `name` from every rule that lists it (and its provider, if
/// that leaves the provider without keys). Refused while the key still writes.
///
/// Values written with it become unreadable: rewrite them all first.
pub fn remove_key(config: &Config, name: &str) -> Result<Config, RotationError> {
    let mut out = config.clone();
    let mut found = false;
    for rule in &mut out.rules {
        let Some((p, k)) = locate_one(&rule.providers, name, &rule.resources)? else {
            continue;
        };
        found = true;
        if p == 0 && k == 0 {
            return Err(RotationError::StillWriting {
                name: name.to_string(),
                resources: rule.resources.join(","),
            });
        }
        if let Some(Provider::Keyed { keys, .. }) = rule.providers.get_mut(p) {
            keys.remove(k);
            if keys.is_empty() {
                rule.providers.remove(p);
            }
        }
    }
    if found {
        Ok(out)
    } else {
        Err(RotationError::NotFound(name.to_string()))
    }
}

/// A random 32-byte key, the size every provider accepts.
pub(crate) fn generate_secret() -> Result<Zeroizing<Vec<u8>>, RotationError> {
    let mut secret = Zeroizing::new(vec![0u8; 32]);
    OsRng
        .try_fill_bytes(&mut secret)
        .map_err(|e| RotationError::Random(e.to_string()))?;
    Ok(secret)
}

/// (provider index, key index) of every key called `name`.
fn locate(providers: &[Provider], name: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    for (p, provider) in providers.iter().enumerate() {
        if let Provider::Keyed { keys, .. } = provider {
            for (k, key) in keys.iter().enumerate() {
                if key.name == name {
                    found.push((p, k));
                }
            }
        }
    }
    found
}

fn locate_one(
    providers: &[Provider],
    name: &str,
    resources: &[String],
) -> Result<Option<(usize, usize)>, RotationError> {
    match locate(providers, name).as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(RotationError::Ambiguous {
            name: name.to_string(),
            resources: resources.join(","),
        }),
    }
}
