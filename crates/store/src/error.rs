//! Errors of the store.

use std::path::PathBuf;

use crate::Revision;

/// Why a store operation failed. A failed write condition is not an error
/// (see [`WriteOutcome::Failed`](crate::WriteOutcome::Failed)).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The revision asked for was compacted away; the API server answers 410
    /// Gone and clients relist.
    #[error("required revision {requested} has been compacted (oldest available: {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compaction point: revisions below it are gone.
        compacted: Revision,
    },
    /// The revision asked for has not happened yet.
    #[error("required revision {requested} is a future revision (newest: {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The newest revision.
        current: Revision,
    },
    /// A value over [`MAX_VALUE_BYTES`](crate::MAX_VALUE_BYTES).
    #[error("value for key {key:?} is {size} bytes, over the store's limit of {limit} bytes")]
    ValueTooLarge {
        /// The key written.
        key: String,
        /// The value's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A watcher fell so far behind that its buffer filled; it was cancelled
    /// rather than stall writers or grow without bound. Watch again from the
    /// revision after the last event received.
    #[error(
        "watcher fell more than {buffer} events behind and was cancelled; watch again from revision {resume_from}"
    )]
    WatcherTooSlow {
        /// The size of the watcher's buffer.
        buffer: usize,
        /// The first revision not delivered.
        resume_from: Revision,
    },
    /// The database at `path` could not be opened.
    #[error("cannot open the store database {path}: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What was wrong, in words.
        reason: String,
    },
    /// The database at `path` is not a Bulwark store or is damaged. It is
    /// never recreated silently: move it aside or restore a backup.
    #[error("the store database {path} is corrupt or not a Bulwark store: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was wrong, in words.
        reason: String,
    },
    /// The disk is full: the write was not applied and the store is
    /// unchanged; it accepts writes again once space returns.
    #[error("the store's disk is full; the write was not applied")]
    DiskFull,
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// The backing database failed in a way not named above.
    #[error("store database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The etcd cluster failed or could not be reached.
    #[error("etcd: {0}")]
    Etcd(String),
}
