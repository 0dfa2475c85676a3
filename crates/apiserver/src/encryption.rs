//! Encryption at rest: a store wrapper that encrypts the values of the
//! resources an `EncryptionConfiguration` covers on the way in and decrypts
//! them on the way out (reads and watches), with the storage key as the
//! context. Everything above it sees plaintext; the store and its files
//! never do.

use std::sync::Arc;

use async_trait::async_trait;
use bulwark_encryption::{Config, Transformer};
use bulwark_store::{
    Event, KeyValue, Range, RangeResult, Revision, Store, StoreError, WatchStream, Write,
    WriteOutcome,
};
use bytes::Bytes;

use crate::registry::Registry;

/// The store, with values encrypted per the configuration.
pub(crate) struct EncryptingStore {
    inner: Arc<dyn Store>,
    /// Storage prefix → transformer, for resources whose first provider
    /// encrypts (others pass through untouched).
    transformers: Arc<Vec<(String, Transformer)>>,
}

impl EncryptingStore {
    /// Wraps `inner`, encrypting the resources of `registry` that `config`
    /// covers.
    pub(crate) fn new(inner: Arc<dyn Store>, config: &Config, registry: &Registry) -> Self {
        let mut transformers = Vec::new();
        for resource in registry.all() {
            if config.write_key(resource.group, resource.plural).is_some() {
                transformers.push((
                    resource.key_prefix(),
                    config.transformer(resource.group, resource.plural),
                ));
            }
        }
        EncryptingStore {
            inner,
            transformers: Arc::new(transformers),
        }
    }

    /// Whether anything is encrypted at all.
    pub(crate) fn encrypts(&self) -> bool {
        !self.transformers.is_empty()
    }
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
        result.kvs = result
            .kvs
            .into_iter()
            .map(|kv| decrypt_kv(&self.transformers, kv))
            .collect::<Result<_, _>>()?;
        Ok(result)
    }

    async fn write(&self, mut write: Write) -> Result<WriteOutcome, StoreError> {
        if let (Some(value), Some(transformer)) = (
            &write.value,
            transformer_for(&self.transformers, &write.key),
        ) {
            let sealed = transformer
                .encrypt(value, write.key.as_bytes())
                .map_err(|err| {
                    StoreError::Database(format!("cannot encrypt {}: {err}", write.key).into())
                })?;
            write.value = Some(Bytes::from(sealed));
        }
        let outcome = self.inner.write(write).await?;
        decrypt_outcome(&self.transformers, outcome)
    }

    async fn watch(
        &self,
        range: Range,
        start_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        let stream = self.inner.watch(range, start_revision).await?;
        let transformers = self.transformers.clone();
        Ok(stream.map(move |event: Event| {
            Ok(Event {
                kind: event.kind,
                kv: decrypt_kv(&transformers, event.kv)?,
                prev: event
                    .prev
                    .map(|kv| decrypt_kv(&transformers, kv))
                    .transpose()?,
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
