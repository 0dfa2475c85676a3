//! The embedded backend: one SQLite database file in WAL mode.
//!
//! Writes go through a single writer thread ([`writer`]) that group-commits
//! whatever is queued; reads run on a small pool of read connections on
//! tokio's blocking threads, each in its own read transaction; watches replay
//! history from the database, then follow the writer's live events
//! ([`crate::watch::Hub`]).

mod read;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{mpsc as tokio_mpsc, oneshot};

use crate::watch::{CutOff, Hub, SLOW_WATCHER_GRACE, WatchStream};
use crate::{Range, RangeResult, Revision, Store, StoreError, Write, WriteOutcome};
use writer::{Job, Writer};

/// How far a committed write survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Survives the process being killed (`kill -9`), not the machine losing
    /// power: commits are not fsynced. The default, as for k3s's embedded
    /// SQLite.
    #[default]
    Process,
    /// Survives power loss too, as etcd does: every commit is fsynced
    /// (concurrent writers share one fsync).
    Fsync,
}

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// How far a committed write survives.
    pub durability: Durability,
    /// How often history is compacted automatically.
    pub compaction_interval: Duration,
    /// How many revisions of history automatic compaction keeps (watchers
    /// further behind than this must relist).
    pub keep_revisions: Revision,
    /// Each watcher's buffer: a watcher this many events behind is cut off.
    pub watch_buffer: usize,
    /// Run SQLite's `quick_check` at open, refusing a damaged file.
    pub verify_on_open: bool,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            durability: Durability::Process,
            compaction_interval: Duration::from_secs(60),
            keep_revisions: 10_000,
            watch_buffer: 10_000,
            verify_on_open: true,
        }
    }
}

/// The embedded store. Cheap to clone; the database closes when the last
/// clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    compacted: Arc<AtomicI64>,
    hub: Arc<Hub>,
    watch_buffer: usize,
}

impl SqliteStore {
    /// Opens the store at `path`, creating it (mode 0600) if missing.
    ///
    /// Refuses, naming the file, anything that is not a healthy Bulwark
    /// store: it is never recreated over.
    pub fn open(path: impl AsRef<Path>, config: SqliteConfig) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let opened = schema::open_writer(&path, &config)?;
        let compacted = Arc::new(AtomicI64::new(opened.compacted));
        let hub = Hub::new(opened.revision);
        let writer = Writer::new(
            opened.conn,
            opened.revision,
            compacted.clone(),
            hub.clone(),
            &config,
        );
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|err| StoreError::Open {
                path: path.clone(),
                reason: format!("cannot start the writer thread: {err}"),
            })?;
        tracing::info!(path = %path.display(), revision = opened.revision, "embedded store open");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                jobs: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
                readers: Mutex::new(Vec::new()),
                compacted,
                hub,
                watch_buffer: config.watch_buffer,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many watchers follow live events now.
    pub fn watcher_count(&self) -> usize {
        self.inner.hub.watcher_count()
    }

    /// Stops the writer after the writes already queued, ends every watch and
    /// closes the database. Later calls on any clone answer
    /// [`StoreError::Closed`].
    pub fn close(&self) {
        drop(lock(&self.inner.jobs).take());
        if let Some(handle) = lock(&self.inner.writer).take() {
            let _ = handle.join();
        }
        lock(&self.inner.readers).clear();
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        match lock(&self.inner.jobs).as_ref() {
            Some(jobs) => jobs.send(job).map_err(|_| StoreError::Closed),
            None => Err(StoreError::Closed),
        }
    }

    /// Runs `f` on a pooled read connection on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if lock(&self.inner.jobs).is_none() {
            return Err(StoreError::Closed);
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = lock(&inner.readers).pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => schema::open_reader(&inner.path)?,
            };
            let result = f(&mut conn);
            let mut readers = lock(&inner.readers);
            if readers.len() < 8 {
                readers.push(conn);
            }
            result
        })
        .await
        .map_err(|err| StoreError::Database(format!("read task failed: {err}").into()))?
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(lock(&self.jobs).take());
        if let Some(handle) = lock(&self.writer).take() {
            let _ = handle.join();
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn range(&self, range: Range) -> Result<RangeResult, StoreError> {
        self.read(move |conn| read::range(conn, &range)).await
    }

    async fn write(&self, write: Write) -> Result<WriteOutcome, StoreError> {
        write.check_size()?;
        let (reply, answer) = oneshot::channel();
        self.send(Job::Write(write, reply))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn watch(
        &self,
        range: Range,
        start_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        let (newest, compacted) = self.read(|conn| read::revisions(conn)).await?;
        let from = if start_revision <= 0 {
            newest + 1
        } else {
            start_revision
        };
        if from <= compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compacted,
            });
        }
        let buffer = self.inner.watch_buffer;
        let (tx, rx) = tokio_mpsc::channel(buffer);
        let cut = CutOff::default();
        let registered = Arc::new(AtomicI64::new(0));
        let task = tokio::spawn(follow(
            self.clone(),
            range,
            from,
            tx,
            cut.clone(),
            registered.clone(),
        ));
        let hub = self.inner.hub.clone();
        let on_drop = Box::new(move || {
            task.abort();
            let id = registered.load(Ordering::SeqCst);
            if id > 0 {
                hub.unregister(id.unsigned_abs());
            }
        });
        Ok(WatchStream::new(rx, cut, buffer, on_drop))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Compact(revision, reply))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn revisions(&self) -> Result<(Revision, Revision), StoreError> {
        let (newest, _) = self.read(|conn| read::revisions(conn)).await?;
        Ok((newest, self.inner.compacted.load(Ordering::SeqCst)))
    }
}

/// How many revisions one replay read scans.
const REPLAY_CHUNK: i64 = 1_000;

/// Replays history from `from` into `tx` until caught up with the writer,
/// then hands `tx` to the hub for live events.
async fn follow(
    store: SqliteStore,
    range: Range,
    from: Revision,
    tx: tokio_mpsc::Sender<Result<crate::Event, StoreError>>,
    cut: CutOff,
    registered: Arc<AtomicI64>,
) {
    let mut next = from;
    loop {
        let replay_range = range.clone();
        let chunk = store
            .read(move |conn| read::replay(conn, &replay_range, next, REPLAY_CHUNK))
            .await;
        let (events, last) = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                let _ = tx.send(Err(err)).await;
                return;
            }
        };
        for event in events {
            let revision = event.revision();
            match tx.send_timeout(Ok(event), SLOW_WATCHER_GRACE).await {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(_)) => {
                    // The same rule as for live events, with some grace
                    // because replay waits only on this watcher.
                    cut.cut(revision);
                    return;
                }
                Err(SendTimeoutError::Closed(_)) => return,
            }
        }
        next = last + 1;
        match store
            .inner
            .hub
            .register_if_caught_up(last, range.clone(), tx.clone(), cut.clone())
        {
            Ok(id) => {
                registered.store(i64::try_from(id).unwrap_or(i64::MAX), Ordering::SeqCst);
                return;
            }
            Err(_newer) => continue,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            StoreError::DiskFull
        } else {
            StoreError::Database(Box::new(err))
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}
