//! The on-disk layout of the embedded store, and opening it safely.
//!
//! Three tables:
//! - `history`: one row per revision — the key, its new value (NULL for a
//!   deletion) and `prev_rev`, the row it superseded. Watches replay from it
//!   and past reads are answered from it. Compaction removes rows superseded
//!   at or below the compaction point.
//! - `kv`: the current revision of each live key (values stay in `history`).
//! - `meta`: the format version, the newest revision and the compaction point.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{Durability, SqliteConfig};
use crate::{Revision, StoreError};

/// Bumped when the layout changes incompatibly.
const FORMAT: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE history (
    rev INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    value BLOB,
    create_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    prev_rev INTEGER
);
CREATE TABLE kv (
    key BLOB PRIMARY KEY,
    rev INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The state a store resumes from.
pub(super) struct Opened {
    pub(super) conn: Connection,
    pub(super) revision: Revision,
    pub(super) compacted: Revision,
}

/// Opens (or, if missing or empty, creates) the database at `path` for the
/// writer. Refuses anything that is not a healthy Bulwark store.
pub(super) fn open_writer(path: &Path, config: &SqliteConfig) -> Result<Opened, StoreError> {
    check_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| open_error(path, err))?;
    let journal = configure(&conn, config.durability).map_err(|err| classify(path, err))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Open {
            path: path.to_owned(),
            reason: format!("the journal mode stayed {journal:?}; WAL is required"),
        });
    }
    if config.verify_on_open {
        let verdict: String = conn
            .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
            .map_err(|err| classify(path, err))?;
        if verdict != "ok" {
            return Err(corrupt(path, verdict));
        }
    }
    let has_meta: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'meta'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(|err| classify(path, err))?;
    if has_meta.is_none() {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(|err| classify(path, err))?;
        if tables > 0 {
            return Err(corrupt(path, "a SQLite database of something else".into()));
        }
        create(&conn).map_err(|err| classify(path, err))?;
    }
    let format = meta(&conn, "format").map_err(|err| classify(path, err))?;
    if format != Some(FORMAT) {
        return Err(corrupt(
            path,
            format!("store format {format:?}, this build reads format {FORMAT}"),
        ));
    }
    let revision = meta(&conn, "revision").map_err(|err| classify(path, err))?;
    let compacted = meta(&conn, "compacted").map_err(|err| classify(path, err))?;
    match (revision, compacted) {
        (Some(revision), Some(compacted)) => Ok(Opened {
            conn,
            revision,
            compacted,
        }),
        _ => Err(corrupt(path, "the meta table lost its revisions".into())),
    }
}

/// Opens a read connection to a database the writer has opened.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| open_error(path, err))?;
    conn.execute_batch("PRAGMA query_only = 1; PRAGMA busy_timeout = 5000;")
        .map_err(|err| classify(path, err))?;
    Ok(conn)
}

/// Creates the file with owner-only permissions if missing, and refuses a
/// directory or a file that is not a SQLite database before SQLite sees it.
fn check_file(path: &Path) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|err| StoreError::Open {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(err) => {
                return Err(StoreError::Open {
                    path: path.to_owned(),
                    reason: err.to_string(),
                });
            }
        }
    }
    if read == 0 || &header[..read] == b"SQLite format 3\0" {
        Ok(())
    } else {
        Err(corrupt(path, "not a SQLite database (bad header)".into()))
    }
}

fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<String> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    let synchronous = match durability {
        // In WAL mode, NORMAL syncs only at checkpoints: a committed
        // transaction survives the process being killed (the WAL is in the OS
        // page cache), not the machine losing power.
        Durability::Process => "NORMAL",
        Durability::Fsync => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous};
         PRAGMA busy_timeout = 5000;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -8192;"
    ))?;
    Ok(mode)
}

fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "BEGIN;
         {SCHEMA}
         INSERT INTO meta (name, value) VALUES ('format', {FORMAT}), ('revision', 1), ('compacted', 0);
         COMMIT;"
    ))
}

fn meta(conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |row| {
        row.get(0)
    })
    .optional()
}

fn open_error(path: &Path, err: rusqlite::Error) -> StoreError {
    StoreError::Open {
        path: path.to_owned(),
        reason: err.to_string(),
    }
}

/// Maps errors met while opening: damage is named as such.
fn classify(path: &Path, err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            corrupt(path, err.to_string())
        }
        _ => open_error(path, err),
    }
}

fn corrupt(path: &Path, reason: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        reason,
    }
}
