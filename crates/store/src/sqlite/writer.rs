//! The single writer thread: group commit, revision assignment, compaction.
//!
//! All writes funnel through one thread that owns the write connection. It
//! takes every request waiting in its queue (up to a batch size), applies them
//! in order inside one transaction — each committed write gets the next
//! revision — commits once, then publishes the events and answers. Concurrent
//! writers thus share one commit (and, with `Durability::Fsync`, one
//! fsync), which is where the embedded store's throughput comes from.
//!
//! Compaction runs here too, in bounded chunks between batches, so it never
//! stalls writers for long.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::SqliteConfig;
use super::read::current_key;
use crate::watch::Hub;
use crate::{Event, EventKind, KeyValue, Revision, StoreError, Write, WriteOutcome};

/// The most writes committed in one transaction.
const MAX_BATCH: usize = 512;

/// How many revisions one compaction step covers.
const COMPACTION_CHUNK: Revision = 2_000;

/// Work for the writer thread.
pub(super) enum Job {
    Write(Write, oneshot::Sender<Result<WriteOutcome, StoreError>>),
    Compact(Revision, oneshot::Sender<Result<(), StoreError>>),
}

pub(super) struct Writer {
    conn: Connection,
    revision: Revision,
    /// The compaction point readers see (shared with the store handle).
    compacted: Arc<AtomicI64>,
    /// History at or below this revision is physically removed.
    swept: Revision,
    hub: Arc<Hub>,
    keep_revisions: Revision,
    compaction_interval: Duration,
    last_auto_compaction: Instant,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        revision: Revision,
        compacted: Arc<AtomicI64>,
        hub: Arc<Hub>,
        config: &SqliteConfig,
    ) -> Self {
        // After a restart, sweep again from the start: rows below the
        // compaction point may remain if the last sweep was interrupted.
        let swept = 0;
        Writer {
            conn,
            revision,
            compacted,
            swept,
            hub,
            keep_revisions: config.keep_revisions,
            compaction_interval: config.compaction_interval,
            last_auto_compaction: Instant::now(),
        }
    }

    /// Runs until every sender of `jobs` is gone.
    pub(super) fn run(mut self, jobs: Receiver<Job>) {
        loop {
            let wait = if self.sweep_pending() {
                Duration::ZERO
            } else {
                self.compaction_interval
                    .saturating_sub(self.last_auto_compaction.elapsed())
            };
            let first = match jobs.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(first) = first {
                let mut writes = Vec::new();
                let mut next = Some(first);
                while let Some(job) = next {
                    match job {
                        Job::Write(write, reply) => writes.push((write, reply)),
                        Job::Compact(revision, reply) => {
                            let _ = reply.send(self.set_compaction_point(revision));
                        }
                    }
                    next = if writes.len() < MAX_BATCH {
                        jobs.try_recv().ok()
                    } else {
                        None
                    };
                }
                if !writes.is_empty() {
                    self.commit_batch(writes);
                }
            }
            if self.last_auto_compaction.elapsed() >= self.compaction_interval {
                self.last_auto_compaction = Instant::now();
                let target = self.revision - self.keep_revisions;
                if target > self.compacted.load(Ordering::SeqCst)
                    && let Err(err) = self.set_compaction_point(target)
                {
                    tracing::warn!(%err, target, "automatic compaction failed");
                }
            }
            if self.sweep_pending()
                && let Err(err) = self.sweep_step()
            {
                tracing::warn!(%err, "compaction sweep failed; will retry");
            }
        }
        self.hub.close();
    }

    /// Applies a batch of writes in one transaction and answers each.
    fn commit_batch(
        &mut self,
        writes: Vec<(Write, oneshot::Sender<Result<WriteOutcome, StoreError>>)>,
    ) {
        let (requests, replies): (Vec<_>, Vec<_>) = writes.into_iter().unzip();
        match self.apply(&requests) {
            Ok((outcomes, events, revision)) => {
                self.revision = revision;
                self.hub.publish(&events, revision);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                tracing::warn!(%err, writes = requests.len(), "store commit failed; nothing applied");
                for reply in replies {
                    let _ = reply.send(Err(duplicate(&err)));
                }
            }
        }
    }

    fn apply(
        &mut self,
        writes: &[Write],
    ) -> Result<(Vec<WriteOutcome>, Vec<Event>, Revision), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut revision = self.revision;
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut events = Vec::with_capacity(writes.len());
        for write in writes {
            let current = current_key(&tx, &write.key)?;
            if !write.condition_holds(current.as_ref()) {
                outcomes.push(WriteOutcome::Failed { current });
                continue;
            }
            revision += 1;
            let event = match &write.value {
                Some(value) => {
                    let (create_revision, version) = match &current {
                        Some(kv) => (kv.create_revision, kv.version + 1),
                        None => (revision, 1),
                    };
                    tx.prepare_cached(
                        "INSERT INTO history (rev, key, value, create_rev, version, prev_rev)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        revision,
                        write.key.as_bytes(),
                        value.as_ref(),
                        create_revision,
                        version,
                        current.as_ref().map(|kv| kv.mod_revision),
                    ])?;
                    tx.prepare_cached(
                        "INSERT INTO kv (key, rev, create_rev, version) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (key) DO UPDATE SET rev = ?2, create_rev = ?3, version = ?4",
                    )?
                    .execute(params![
                        write.key.as_bytes(),
                        revision,
                        create_revision,
                        version
                    ])?;
                    Event {
                        kind: EventKind::Put,
                        kv: KeyValue {
                            key: write.key.clone(),
                            value: value.clone(),
                            create_revision,
                            mod_revision: revision,
                            version,
                        },
                        prev: current.clone(),
                    }
                }
                None => {
                    let prev_rev = current.as_ref().map(|kv| kv.mod_revision);
                    tx.prepare_cached(
                        "INSERT INTO history (rev, key, value, create_rev, version, prev_rev)
                         VALUES (?1, ?2, NULL, 0, 0, ?3)",
                    )?
                    .execute(params![
                        revision,
                        write.key.as_bytes(),
                        prev_rev
                    ])?;
                    tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                        .execute([write.key.as_bytes()])?;
                    Event {
                        kind: EventKind::Delete,
                        kv: KeyValue {
                            key: write.key.clone(),
                            value: Bytes::new(),
                            create_revision: 0,
                            mod_revision: revision,
                            version: 0,
                        },
                        prev: current.clone(),
                    }
                }
            };
            events.push(event);
            outcomes.push(WriteOutcome::Committed {
                revision,
                prev: current,
            });
        }
        if revision != self.revision {
            tx.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")?
                .execute([revision])?;
        }
        tx.commit()?;
        Ok((outcomes, events, revision))
    }

    /// Moves the compaction point to `revision`. Reads and watches below it
    /// fail from now on; the rows go in later sweep steps.
    fn set_compaction_point(&mut self, revision: Revision) -> Result<(), StoreError> {
        if revision > self.revision {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        let compacted = self.compacted.load(Ordering::SeqCst);
        if revision <= compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted,
            });
        }
        self.conn
            .prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'compacted'")?
            .execute([revision])?;
        self.compacted.store(revision, Ordering::SeqCst);
        tracing::debug!(revision, "store compaction point moved");
        Ok(())
    }

    fn sweep_pending(&self) -> bool {
        self.swept < self.compacted.load(Ordering::SeqCst)
    }

    /// Removes, up to the next chunk boundary, the history rows no read at or
    /// above the compaction point needs: deletions, and values superseded by
    /// a later write that is itself at or below the boundary.
    fn sweep_step(&mut self) -> Result<(), StoreError> {
        let target = self.compacted.load(Ordering::SeqCst);
        let upto = target.min(self.swept + COMPACTION_CHUNK).max(self.swept);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "DELETE FROM history WHERE rev IN (
                 SELECT prev_rev FROM history
                 WHERE rev > ?1 AND rev <= ?2 AND prev_rev IS NOT NULL)",
        )?
        .execute(params![self.swept, upto])?;
        tx.prepare_cached("DELETE FROM history WHERE rev > ?1 AND rev <= ?2 AND value IS NULL")?
            .execute(params![self.swept, upto])?;
        tx.commit()?;
        self.swept = upto;
        if !self.sweep_pending() {
            // Let the WAL shrink back once history is gone.
            if let Err(err) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
                tracing::debug!(%err, "WAL checkpoint after compaction did not complete");
            }
        }
        Ok(())
    }
}

/// An error for each of several waiters (store errors are not `Clone`).
fn duplicate(err: &StoreError) -> StoreError {
    match err {
        StoreError::DiskFull => StoreError::DiskFull,
        StoreError::Closed => StoreError::Closed,
        other => StoreError::Database(other.to_string().into()),
    }
}
