//! The log backend: events as JSON lines in a file, written by a thread of
//! its own behind a bounded channel, rotated by size, pruned by age and
//! count as upstream's lumberjack-based backend does — and loud when the
//! disk goes away.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::event::Event;

/// What the backend does when events cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Report (error log, `apiserver_audit_error_total`) and keep serving.
    /// A full buffer drops the event, counted as an error.
    #[default]
    Continue,
    /// Report, and have `Auditor::healthy()` answer `false` so the server
    /// refuses requests until the log is writable again. A full buffer
    /// makes the caller wait rather than drop the event.
    Block,
}

/// Where and how the log is written. `LogConfig::new` gives CIS-compliant
/// retention (1.2.17–19: ≥ 30 days, ≥ 10 backups, ≥ 100 MB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The log file; backups sit next to it.
    pub path: PathBuf,
    /// Rotate when the file would grow past this many megabytes.
    pub max_size_mb: u64,
    /// Delete backups older than this many days (0: keep regardless of age).
    pub max_age_days: u32,
    /// Keep at most this many backups (0: keep regardless of count).
    pub max_backups: usize,
    /// Events queued for the writer before `FailureMode` applies.
    pub buffer_size: usize,
    /// What a write failure does to the server.
    pub failure_mode: FailureMode,
}

impl LogConfig {
    /// A log at `path` with CIS-compliant defaults.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_size_mb: 100,
            max_age_days: 30,
            max_backups: 10,
            buffer_size: 10_000,
            failure_mode: FailureMode::Continue,
        }
    }
}

/// Why the log could not be opened at start.
#[derive(Debug, thiserror::Error)]
#[error("opening audit log {path}: {source}")]
pub struct LogError {
    path: String,
    #[source]
    source: io::Error,
}

/// Counters the server exports on `/metrics`, named as upstream names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditMetrics {
    /// `apiserver_audit_event_total`: events generated and sent to the log.
    pub events_total: u64,
    /// `apiserver_audit_error_total{plugin="log"}`: events that could not be
    /// written (IO error or full buffer).
    pub errors_total: u64,
}

impl AuditMetrics {
    /// The counters in Prometheus text format, with upstream's help texts.
    pub fn prometheus_text(&self) -> String {
        format!(
            "# HELP apiserver_audit_event_total [ALPHA] Counter of audit events generated and sent to the audit backend.\n\
             # TYPE apiserver_audit_event_total counter\n\
             apiserver_audit_event_total {}\n\
             # HELP apiserver_audit_error_total [ALPHA] Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.\n\
             # TYPE apiserver_audit_error_total counter\n\
             apiserver_audit_error_total{{plugin=\"log\"}} {}\n",
            self.events_total, self.errors_total
        )
    }
}

/// The JSON-lines log. Dropping it writes what is queued and stops the
/// writer thread.
#[derive(Debug)]
pub struct LogBackend {
    tx: Option<SyncSender<Msg>>,
    shared: Arc<Shared>,
    mode: FailureMode,
    writer: Option<JoinHandle<()>>,
}

impl LogBackend {
    /// Opens (creating, mode 0600) the log and starts its writer. Fails if
    /// the file cannot be opened, so a bad path stops the server at start.
    pub fn open(config: LogConfig) -> Result<Self, LogError> {
        let max_bytes = config.max_size_mb.saturating_mul(1024 * 1024);
        Self::open_with(config, max_bytes)
    }

    pub(crate) fn open_with(config: LogConfig, max_bytes: u64) -> Result<Self, LogError> {
        let err = |source| LogError {
            path: config.path.display().to_string(),
            source,
        };
        if let Some(parent) = config.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(err)?;
        }
        let mut file = LogFile {
            path: config.path.clone(),
            current: None,
            max_bytes,
            max_age_days: config.max_age_days,
            max_backups: config.max_backups,
        };
        file.ensure_open().map_err(err)?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::sync_channel(config.buffer_size.max(1));
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("audit-log".to_owned())
            .spawn(move || run_writer(rx, file, &writer_shared))
            .map_err(err)?;
        Ok(Self {
            tx: Some(tx),
            shared,
            mode: config.failure_mode,
            writer: Some(writer),
        })
    }

    /// Waits until every event queued so far has been written (or failed).
    pub fn flush(&self) {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if let Some(tx) = &self.tx
            && tx.send(Msg::Flush(ack_tx)).is_ok()
        {
            let _ = ack_rx.recv();
        }
    }

    pub(crate) fn send(&self, event: Event) {
        self.shared.events.fetch_add(1, Ordering::Relaxed);
        let Some(tx) = &self.tx else { return };
        let msg = Msg::Event(Box::new(event));
        let lost = match self.mode {
            FailureMode::Block => tx.send(msg).is_err(),
            FailureMode::Continue => match tx.try_send(msg) {
                Ok(()) => false,
                Err(TrySendError::Full(_)) => {
                    tracing::error!(
                        plugin = "log",
                        "audit buffer full: event dropped (raise the buffer size or use block mode)"
                    );
                    true
                }
                Err(TrySendError::Disconnected(_)) => true,
            },
        };
        if lost {
            self.shared.errors.fetch_add(1, Ordering::Relaxed);
            if self.writer.as_ref().is_some_and(JoinHandle::is_finished) {
                // The writer is gone: nothing will be written again.
                self.shared.failing.store(true, Ordering::Relaxed);
                tracing::error!(plugin = "log", "audit log writer stopped: event lost");
            }
        }
    }

    pub(crate) fn healthy(&self) -> bool {
        self.mode != FailureMode::Block || !self.shared.failing.load(Ordering::Relaxed)
    }

    pub(crate) fn metrics(&self) -> AuditMetrics {
        AuditMetrics {
            events_total: self.shared.events.load(Ordering::Relaxed),
            errors_total: self.shared.errors.load(Ordering::Relaxed),
        }
    }
}

impl Drop for LogBackend {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    events: AtomicU64,
    errors: AtomicU64,
    failing: AtomicBool,
}

enum Msg {
    Event(Box<Event>),
    Flush(SyncSender<()>),
}

/// How often an idle writer checks that its file is still there.
const IDLE_CHECK: Duration = Duration::from_secs(1);

fn run_writer(rx: Receiver<Msg>, mut file: LogFile, shared: &Shared) {
    loop {
        let first = match rx.recv_timeout(IDLE_CHECK) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => {
                // Notice a deleted or replaced log without waiting for traffic.
                let result = file.ensure_open();
                record(shared, result, 0);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut acks = Vec::new();
        let mut written = 0u64;
        let mut failed = 0u64;
        let mut last_error = None;
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                Msg::Flush(ack) => acks.push(ack),
                Msg::Event(event) => match write_event(&mut file, &event) {
                    Ok(()) => written += 1,
                    Err(e) => {
                        failed += 1;
                        last_error = Some(e);
                    }
                },
            }
        }
        // A batch of flushes alone says nothing about the log's health: it
        // must not clear a failure (only a successful write or reopen does).
        if written > 0 || failed > 0 {
            record(shared, last_error.map_or(Ok(()), Err), failed);
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

fn write_event(file: &mut LogFile, event: &Event) -> io::Result<()> {
    let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
    line.push(b'\n');
    file.write_line(&line)
}

/// Publishes the outcome of a batch or an idle check: counters, the health
/// flag, and an error log for every batch that lost events (and for an idle
/// check that finds the log gone, once, not every second).
fn record(shared: &Shared, result: io::Result<()>, failed: u64) {
    shared.errors.fetch_add(failed, Ordering::Relaxed);
    match result {
        Ok(()) => {
            if shared.failing.swap(false, Ordering::Relaxed) {
                tracing::info!(plugin = "log", "audit log is writable again");
            }
        }
        Err(error) => {
            let was_failing = shared.failing.swap(true, Ordering::Relaxed);
            if was_failing && failed == 0 {
                return;
            }
            tracing::error!(
                plugin = "log",
                %error,
                lost_events = failed,
                "audit log write failed: audit events are being lost"
            );
        }
    }
}

/// The open log file, reopened when the path stops pointing at it.
struct LogFile {
    path: PathBuf,
    current: Option<OpenFile>,
    max_bytes: u64,
    max_age_days: u32,
    max_backups: usize,
}

struct OpenFile {
    file: File,
    size: u64,
    dev_ino: (u64, u64),
}

impl LogFile {
    /// Makes sure the open file is the one at `path`: a log deleted, moved
    /// or replaced by someone else is reopened (and fails loudly if it
    /// cannot be), rather than written into an unlinked inode.
    fn ensure_open(&mut self) -> io::Result<()> {
        if let Some(open) = &self.current {
            match fs::metadata(&self.path) {
                Ok(m) if (m.dev(), m.ino()) == open.dev_ino => return Ok(()),
                _ => self.current = None,
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?;
        let meta = file.metadata()?;
        if meta.permissions().mode() & 0o777 != 0o600 {
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        self.current = Some(OpenFile {
            file,
            size: meta.len(),
            dev_ino: (meta.dev(), meta.ino()),
        });
        Ok(())
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.ensure_open()?;
        let len = line.len() as u64;
        if self
            .current
            .as_ref()
            .is_some_and(|o| o.size > 0 && o.size + len > self.max_bytes)
        {
            self.rotate()?;
        }
        let open = self
            .current
            .as_mut()
            .ok_or_else(|| io::Error::other("audit log not open"))?;
        let result = open.file.write_all(line);
        if result.is_err() {
            // Reopen next time: the file may be gone or the disk replaced.
            self.current = None;
            return result;
        }
        open.size += len;
        Ok(())
    }

    /// Renames the log to `<stem>-<UTC time>.<ext>` (lumberjack's naming),
    /// opens a fresh one and prunes old backups.
    fn rotate(&mut self) -> io::Result<()> {
        self.current = None;
        let mut now = Timestamp::now();
        let mut backup = backup_path(&self.path, now);
        // Two rotations in one millisecond must not overwrite a backup.
        while backup.exists() {
            now += SignedDuration::from_millis(1);
            backup = backup_path(&self.path, now);
        }
        fs::rename(&self.path, &backup)?;
        self.ensure_open()?;
        if let Err(error) = self.prune(Timestamp::now()) {
            tracing::warn!(%error, path = %self.path.display(), "pruning audit log backups failed");
        }
        Ok(())
    }

    fn prune(&self, now: Timestamp) -> io::Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut backups = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(ts) = backup_time(&self.path, &entry.file_name().to_string_lossy()) {
                backups.push((ts, entry.path()));
            }
        }
        backups.sort_by_key(|b| std::cmp::Reverse(b.0));
        let cutoff = now - SignedDuration::from_hours(24 * i64::from(self.max_age_days));
        for (i, (ts, path)) in backups.iter().enumerate() {
            let too_many = self.max_backups > 0 && i >= self.max_backups;
            let too_old = self.max_age_days > 0 && *ts < cutoff;
            if too_many || too_old {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

fn stem_and_ext(path: &Path) -> (String, String) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (stem, ext)
}

/// `audit.log` at 2026-01-01T00:00:00Z → `audit-2026-01-01T00-00-00.000.log`.
pub(crate) fn backup_path(path: &Path, t: Timestamp) -> PathBuf {
    let (stem, ext) = stem_and_ext(path);
    let stamp = t.strftime("%Y-%m-%dT%H-%M-%S").to_string();
    let millis = t.subsec_millisecond();
    path.with_file_name(format!("{stem}-{stamp}.{millis:03}{ext}"))
}

/// The time in a backup's name, if `name` is a backup of `path`.
fn backup_time(path: &Path, name: &str) -> Option<Timestamp> {
    let (stem, ext) = stem_and_ext(path);
    let stamp = name.strip_prefix(&format!("{stem}-"))?.strip_suffix(&ext)?;
    // 2026-01-01T00-00-00.000 → 2026-01-01T00:00:00.000Z
    let b = stamp.as_bytes();
    if b.len() != 23 || b[13] != b'-' || b[16] != b'-' {
        return None;
    }
    let rfc3339 = format!("{}:{}:{}Z", &stamp[..13], &stamp[14..16], &stamp[17..]);
    rfc3339.parse().ok()
}

#[cfg(test)]
mod tests;
