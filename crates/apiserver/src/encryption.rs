//! Encryption at rest: a store wrapper that encrypts the values of the
//! resources an `EncryptionConfiguration` covers on the way in and decrypts
//! them on the way out (reads and watches), with the storage key as the
//! context. Everything above it sees plaintext; the store and its files
//! never do.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bulwark_encryption::{Config, Transformer};
use bulwark_store::{
    Event, KeyValue, Range, RangeResult, Revision, Store, StoreError, WatchStream, Write,
    WriteOutcome,
};
use bytes::Bytes;

use crate::registry::Registry;

/// Storage prefix → transformer, for resources whose first provider
/// encrypts (others pass through untouched).
type Transformers = Arc<Vec<(String, Transformer)>>;

/// The keys in use, shared by every [`EncryptingStore`] over one store and
/// replaced whole when the configuration file changes (upstream's
/// `--encryption-provider-config-automatic-reload`, always on here).
pub(crate) struct Keys {
    current: RwLock<(Transformers, String)>,
    /// (storage prefix, group, plural) of every served resource.
    resources: Vec<(String, String, String)>,
}

impl Keys {
    /// The keys of `config`; `text` is the file it came from (its SHA-256
    /// is published so a rotation can tell when the server has it).
    pub(crate) fn new(config: &Config, text: &str, registry: &Registry) -> Arc<Self> {
        let resources: Vec<(String, String, String)> = registry
            .all()
            .iter()
            .map(|r| (r.key_prefix(), r.group.to_owned(), r.plural.to_owned()))
            .collect();
        Arc::new(Keys {
            current: RwLock::new((transformers(config, &resources), digest(text))),
            resources,
        })
    }

    fn transformers(&self) -> Transformers {
        Arc::clone(&self.current.read().expect("keys lock").0)
    }

    /// The SHA-256 (hex) of the configuration file in use.
    pub(crate) fn config_hash(&self) -> String {
        self.current.read().expect("keys lock").1.clone()
    }

    /// Whether anything is encrypted at all.
    pub(crate) fn encrypts(&self) -> bool {
        !self.transformers().is_empty()
    }

    /// Re-reads the configuration file if it changed; a file that does not
    /// load leaves the keys in use as they are (and says why).
    pub(crate) fn reload(&self, path: &std::path::Path) {
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let hash = digest(&text);
        if hash == self.config_hash() {
            return;
        }
        match bulwark_encryption::load(path) {
            Ok(config) => {
                let loaded = transformers(&config, &self.resources);
                *self.current.write().expect("keys lock") = (loaded, hash);
                tracing::info!(path = %path.display(), "encryption configuration reloaded");
            }
            Err(err) => {
                tracing::error!(%err, "encryption configuration changed but does not load; keeping the keys in use");
            }
        }
    }
}

fn digest(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn transformers(config: &Config, resources: &[(String, String, String)]) -> Transformers {
    let mut transformers = Vec::new();
    for (prefix, group, plural) in resources {
        if config.write_key(group, plural).is_some() {
            transformers.push((prefix.clone(), config.transformer(group, plural)));
        }
    }
    Arc::new(transformers)
}

/// Watches the configuration file, reloading the keys when it changes.
pub(crate) async fn reload_loop(keys: Arc<Keys>, path: PathBuf) {
    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
    loop {
        tick.tick().await;
        let (keys, path) = (Arc::clone(&keys), path.clone());
        let _ = tokio::task::spawn_blocking(move || keys.reload(&path)).await;
    }
}

/// How often the configuration file is looked at.
const RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The store, with values encrypted per the configuration.
pub(crate) struct EncryptingStore {
    inner: Arc<dyn Store>,
    keys: Arc<Keys>,
    /// Skip (and log) values no key decrypts instead of failing the read:
    /// for the watch caches, so one damaged Secret does not keep the server
    /// from starting. Requests read strictly and answer 500 for it.
    lenient: bool,
}

impl EncryptingStore {
    /// Wraps `inner`, encrypting with `keys`; reads fail on a value no key
    /// decrypts.
    pub(crate) fn new(inner: Arc<dyn Store>, keys: Arc<Keys>) -> Self {
        EncryptingStore {
            inner,
            keys,
            lenient: false,
        }
    }

    /// Like [`EncryptingStore::new`], but ranges and watches leave out what
    /// no key decrypts, logging each such key as an error.
    pub(crate) fn lenient(inner: Arc<dyn Store>, keys: Arc<Keys>) -> Self {
        EncryptingStore {
            inner,
            keys,
            lenient: true,
        }
    }

    /// Whether the value stored at `key` was written with a key other than
    /// the current write key (an update that changes nothing must still
    /// write it, so a rewrite moves it to the new key).
    pub(crate) async fn is_stale(&self, key: &str) -> Result<bool, StoreError> {
        let transformers = self.keys.transformers();
        let Some(transformer) = transformer_for(&transformers, key) else {
            return Ok(false);
        };
        let Some(kv) = bulwark_store::StoreExt::get(self.inner.as_ref(), key).await? else {
            return Ok(false);
        };
        Ok(transformer
            .decrypt(&kv.value, kv.key.as_bytes())
            .map(|(_, stale)| stale)
            .unwrap_or(false))
    }
}

/// Decrypts what can be; in lenient mode drops (and logs) the rest.
fn decrypt_all(
    transformers: &[(String, Transformer)],
    kvs: Vec<KeyValue>,
    lenient: bool,
) -> Result<Vec<KeyValue>, StoreError> {
    let mut out = Vec::with_capacity(kvs.len());
    for kv in kvs {
        match decrypt_kv(transformers, kv) {
            Ok(kv) => out.push(kv),
            Err(err) if lenient => {
                tracing::error!(%err, "a stored object cannot be decrypted with the configured keys; it is left out of the watch cache and reading it answers 500");
            }
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

fn transformer_for<'a>(
    transformers: &'a [(String, Transformer)],
    key: &str,
) -> Option<&'a Transformer> {
    transformers
        .iter()
        .find(|(prefix, _)| key.starts_with(prefix.as_str()))
        .map(|(_, t)| t)
}

fn decrypt_kv(
    transformers: &[(String, Transformer)],
    mut kv: KeyValue,
) -> Result<KeyValue, StoreError> {
    if kv.value.is_empty() {
        return Ok(kv);
    }
    if let Some(transformer) = transformer_for(transformers, &kv.key) {
        let (plain, _stale) = transformer
            .decrypt(&kv.value, kv.key.as_bytes())
            .map_err(|err| {
                StoreError::Database(format!("cannot decrypt {}: {err}", kv.key).into())
            })?;
        kv.value = Bytes::from(plain);
    }
    Ok(kv)
}

fn decrypt_outcome(
    transformers: &[(String, Transformer)],
    outcome: WriteOutcome,
) -> Result<WriteOutcome, StoreError> {
    Ok(match outcome {
        WriteOutcome::Committed { revision, prev } => WriteOutcome::Committed {
            revision,
            prev: prev.map(|kv| decrypt_kv(transformers, kv)).transpose()?,
        },
        WriteOutcome::Failed { current } => WriteOutcome::Failed {
            current: current.map(|kv| decrypt_kv(transformers, kv)).transpose()?,
        },
    })
}

#[async_trait]
impl Store for EncryptingStore {
    async fn range(&self, range: Range) -> Result<RangeResult, StoreError> {
        let mut result = self.inner.range(range).await?;
        result.kvs = decrypt_all(&self.keys.transformers(), result.kvs, self.lenient)?;
        Ok(result)
    }

    async fn write(&self, mut write: Write) -> Result<WriteOutcome, StoreError> {
        let transformers = self.keys.transformers();
        if let (Some(value), Some(transformer)) =
            (&write.value, transformer_for(&transformers, &write.key))
        {
            let sealed = transformer
                .encrypt(value, write.key.as_bytes())
                .map_err(|err| {
                    StoreError::Database(format!("cannot encrypt {}: {err}", write.key).into())
                })?;
            write.value = Some(Bytes::from(sealed));
        }
        let outcome = self.inner.write(write).await?;
        decrypt_outcome(&transformers, outcome)
    }

    async fn watch(
        &self,
        range: Range,
        start_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        let stream = self.inner.watch(range, start_revision).await?;
        let keys = Arc::clone(&self.keys);
        let lenient = self.lenient;
        Ok(stream.map(move |event: Event| {
            let transformers = keys.transformers();
            let decrypt = |kv: KeyValue| match decrypt_kv(&transformers, kv.clone()) {
                Err(err) if lenient => {
                    tracing::error!(%err, "a watched object cannot be decrypted with the configured keys");
                    // Passed on as stored: the cache cannot decode it and skips it.
                    Ok(kv)
                }
                other => other,
            };
            Ok(Event {
                kind: event.kind,
                kv: decrypt(event.kv)?,
                prev: event.prev.map(decrypt).transpose()?,
            })
        }))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }

    async fn revisions(&self) -> Result<(Revision, Revision), StoreError> {
        self.inner.revisions().await
    }
}
