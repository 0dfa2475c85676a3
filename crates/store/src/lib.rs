//! The cluster store: the part of Bulwark that plays etcd's role.
//!
//! Only the API server touches the store (DESIGN.md, invariant 1). It maps
//! Kubernetes objects onto keys exactly as kube-apiserver maps them onto etcd,
//! so the contract here is etcd v3's KV + Watch semantics, narrowed to what the
//! API server needs:
//!
//! - one global [`Revision`] that every write increments; each key carries
//!   `create_revision`, `mod_revision` and `version` ([`KeyValue`]);
//! - range reads by key or prefix with a limit, continuation and a past
//!   revision ([`Range`]);
//! - writes guarded by a [`Condition`] on the key's `mod_revision` — create
//!   only if absent, update or delete only if unchanged — which is how
//!   optimistic concurrency becomes HTTP 409 ([`Write`], [`WriteOutcome`]);
//! - watches from a revision: every event after it, in revision order, none
//!   lost or repeated, each with the previous value ([`WatchStream`]);
//! - compaction, after which older reads and watches answer
//!   [`StoreError::Compacted`] (the API server's 410 Gone).
//!
//! Backends: [`SqliteStore`] (embedded, the default) and [`EtcdStore`] (a real
//! etcd v3 cluster, for control planes spanning machines). Both pass one
//! conformance suite (`tests/conformance`). This trait module depends on
//! neither SQLite nor etcd; each backend lives in its own module.
//!
//! Leases (TTLs) are not part of the contract yet: the first user is Events'
//! one-hour TTL, which the API server issue can meet with a sweep instead.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bulwark_store::StoreError> {
//! use bulwark_store::{Range, SqliteStore, Store, StoreExt, WriteOutcome};
//! let store = SqliteStore::open("/tmp/demo.db", Default::default())?;
//! let WriteOutcome::Committed { revision, .. } =
//!     store.create("/registry/pods/default/web", b"{}".to_vec()).await?
//! else {
//!     panic!("the key was already there");
//! };
//! let page = store.range(Range::prefix("/registry/pods/").limit(500)).await?;
//! assert_eq!(page.kvs[0].mod_revision, revision);
//! # Ok(()) }
//! ```

mod error;
mod etcd;
mod sqlite;
mod types;
mod watch;

pub use error::StoreError;
pub use etcd::{EtcdConfig, EtcdStore, EtcdTls};
pub use sqlite::{Durability, SqliteConfig, SqliteStore};
pub use types::{
    Condition, Event, EventKind, KeyValue, MAX_VALUE_BYTES, Range, RangeResult, Revision, Write,
    WriteOutcome,
};
pub use watch::WatchStream;

use async_trait::async_trait;
use bytes::Bytes;

/// The store contract every backend implements.
///
/// Writes are linearizable: each committed [`Write`] gets the next global
/// revision, and a read or watch issued after a write returns sees it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads the keys in `range`, at its revision or the newest one.
    async fn range(&self, range: Range) -> Result<RangeResult, StoreError>;

    /// Applies one write if its condition holds.
    ///
    /// A failed condition is not an error: it returns
    /// [`WriteOutcome::Failed`] with the key's current value, which is what a
    /// caller retrying an optimistic update needs next.
    async fn write(&self, write: Write) -> Result<WriteOutcome, StoreError>;

    /// Watches the keys in `range` (its revision is ignored), delivering every
    /// event with a revision of `start_revision` or later; `0` means "from the
    /// next write on".
    async fn watch(
        &self,
        range: Range,
        start_revision: Revision,
    ) -> Result<WatchStream, StoreError>;

    /// Discards history older than `revision`: reads and watches below it
    /// answer [`StoreError::Compacted`] afterwards.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The newest revision, and the oldest that is still readable.
    async fn revisions(&self) -> Result<(Revision, Revision), StoreError>;
}

/// Conveniences over [`Store::write`] and [`Store::range`], for every store,
/// `dyn Store` included.
#[async_trait]
pub trait StoreExt: Store {
    /// Creates `key` if it does not exist.
    async fn create(
        &self,
        key: &str,
        value: impl Into<Bytes> + Send + 'async_trait,
    ) -> Result<WriteOutcome, StoreError> {
        self.write(Write::put(key, value).if_absent()).await
    }

    /// Puts `key` whatever its state.
    async fn put(
        &self,
        key: &str,
        value: impl Into<Bytes> + Send + 'async_trait,
    ) -> Result<WriteOutcome, StoreError> {
        self.write(Write::put(key, value)).await
    }

    /// Puts `key` only if its `mod_revision` is still `expected`.
    async fn update(
        &self,
        key: &str,
        value: impl Into<Bytes> + Send + 'async_trait,
        expected: Revision,
    ) -> Result<WriteOutcome, StoreError> {
        self.write(Write::put(key, value).if_mod_revision(expected))
            .await
    }

    /// Deletes `key` (whatever its state).
    async fn delete(&self, key: &str) -> Result<WriteOutcome, StoreError> {
        self.write(Write::delete(key)).await
    }

    /// Reads one key at the newest revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.range(Range::key(key)).await?.kvs.into_iter().next())
    }
}

impl<S: Store + ?Sized> StoreExt for S {}
