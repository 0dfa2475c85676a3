//! Reads: ranges at the newest or a past revision, and history replay for
//! watches. Each runs in one read transaction, so what it returns is one
//! consistent snapshot.

use bytes::Bytes;
use rusqlite::{Connection, Row, params};

use crate::{Event, EventKind, KeyValue, Range, RangeResult, Revision, StoreError};

/// Reads `range` at its revision (or the newest).
pub(super) fn range(conn: &mut Connection, range: &Range) -> Result<RangeResult, StoreError> {
    let tx = conn.transaction()?;
    let (newest, compacted) = revisions(&tx)?;
    let at = match range.revision {
        None | Some(0) => newest,
        Some(rev) if rev > newest => {
            return Err(StoreError::FutureRevision {
                requested: rev,
                current: newest,
            });
        }
        Some(rev) if rev < compacted => {
            return Err(StoreError::Compacted {
                requested: rev,
                compacted,
            });
        }
        Some(rev) => rev,
    };
    let (mut kvs, mut count) = if at == newest {
        let kvs = current(&tx, range)?;
        (kvs, None)
    } else {
        let kvs = past(&tx, range, at)?;
        let count = kvs.len();
        (kvs, Some(count))
    };
    let limit = range.limit.filter(|limit| *limit > 0);
    let more = limit.is_some_and(|limit| kvs.len() > limit);
    if more && count.is_none() {
        count = Some(count_current(&tx, range)?);
    }
    let count = i64::try_from(count.unwrap_or(kvs.len())).unwrap_or(i64::MAX);
    if let Some(limit) = limit {
        kvs.truncate(limit);
    }
    Ok(RangeResult {
        kvs,
        more,
        count,
        revision: at,
    })
}

/// The newest revision and the compaction point.
pub(super) fn revisions(conn: &Connection) -> Result<(Revision, Revision), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT (SELECT value FROM meta WHERE name = 'revision'),
                (SELECT value FROM meta WHERE name = 'compacted')",
    )?;
    Ok(stmt.query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?)
}

/// Events with revisions in `from..=upto` whose keys fall in `range`, in
/// revision order, at most `limit` revisions scanned. Returns the events and
/// the last revision scanned (so the caller knows where to go on).
pub(super) fn replay(
    conn: &mut Connection,
    range: &Range,
    from: Revision,
    limit: i64,
) -> Result<(Vec<Event>, Revision), StoreError> {
    let tx = conn.transaction()?;
    let (newest, compacted) = revisions(&tx)?;
    if from <= compacted {
        return Err(StoreError::Compacted {
            requested: from,
            compacted,
        });
    }
    let mut stmt = tx.prepare_cached(
        "SELECT h.rev, h.key, h.value, h.create_rev, h.version,
                p.rev, p.value, p.create_rev, p.version
         FROM history h LEFT JOIN history p ON p.rev = h.prev_rev
         WHERE h.rev >= ?1 AND h.rev <= ?2
         ORDER BY h.rev LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![from, newest, limit])?;
    let mut events = Vec::new();
    let mut last = from - 1;
    while let Some(row) = rows.next()? {
        let rev: Revision = row.get(0)?;
        last = rev;
        let key: Vec<u8> = row.get(1)?;
        if !range.contains(&key) {
            continue;
        }
        let key = key_string(key)?;
        let value: Option<Vec<u8>> = row.get(2)?;
        let prev = match row.get::<_, Option<Revision>>(5)? {
            Some(prev_rev) => Some(KeyValue {
                key: key.clone(),
                value: Bytes::from(row.get::<_, Option<Vec<u8>>>(6)?.unwrap_or_default()),
                create_revision: row.get(7)?,
                mod_revision: prev_rev,
                version: row.get(8)?,
            }),
            None => None,
        };
        events.push(match value {
            Some(value) => Event {
                kind: EventKind::Put,
                kv: KeyValue {
                    key,
                    value: Bytes::from(value),
                    create_revision: row.get(3)?,
                    mod_revision: rev,
                    version: row.get(4)?,
                },
                prev,
            },
            None => Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key,
                    value: Bytes::new(),
                    create_revision: 0,
                    mod_revision: rev,
                    version: 0,
                },
                prev,
            },
        });
    }
    if last < from {
        // Nothing newer than `from - 1` yet: everything up to `newest` seen.
        last = newest.max(from - 1);
    }
    Ok((events, last))
}

/// The live value of one key, for the writer's condition checks.
pub(super) fn current_key(conn: &Connection, key: &str) -> Result<Option<KeyValue>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT k.key, h.value, k.create_rev, k.rev, k.version
         FROM kv k JOIN history h ON h.rev = k.rev WHERE k.key = ?1",
    )?;
    let mut rows = stmt.query([key.as_bytes()])?;
    match rows.next()? {
        Some(row) => Ok(Some(kv_from_row(row)?)),
        None => Ok(None),
    }
}

/// The live keys in `range`, one more than the limit (to tell `more`).
fn current(conn: &Connection, range: &Range) -> Result<Vec<KeyValue>, StoreError> {
    let select = "SELECT k.key, h.value, k.create_rev, k.rev, k.version
                  FROM kv k JOIN history h ON h.rev = k.rev";
    let fetch = fetch_limit(range);
    let mut out = Vec::new();
    match &range.end {
        None => {
            let mut stmt = conn.prepare_cached(&format!("{select} WHERE k.key = ?1"))?;
            let mut rows = stmt.query([&range.start])?;
            while let Some(row) = rows.next()? {
                out.push(kv_from_row(row)?);
            }
        }
        Some(end) if end.is_empty() => {
            let mut stmt = conn.prepare_cached(&format!(
                "{select} WHERE k.key >= ?1 ORDER BY k.key LIMIT ?2"
            ))?;
            let mut rows = stmt.query(params![&range.start, fetch])?;
            while let Some(row) = rows.next()? {
                out.push(kv_from_row(row)?);
            }
        }
        Some(end) => {
            let mut stmt = conn.prepare_cached(&format!(
                "{select} WHERE k.key >= ?1 AND k.key < ?2 ORDER BY k.key LIMIT ?3"
            ))?;
            let mut rows = stmt.query(params![&range.start, end, fetch])?;
            while let Some(row) = rows.next()? {
                out.push(kv_from_row(row)?);
            }
        }
    }
    Ok(out)
}

/// The keys in `range` as they were at revision `at`.
///
/// A key's state at `at` is its live value if it has not changed since; if it
/// has, the first change after `at` names (through `prev_rev`) the value it
/// replaced, which compaction keeps as long as `at` is not compacted.
fn past(conn: &Connection, range: &Range, at: Revision) -> Result<Vec<KeyValue>, StoreError> {
    let mut out = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT k.key, h.value, k.create_rev, k.rev, k.version
             FROM kv k JOIN history h ON h.rev = k.rev WHERE k.rev <= ?1 AND k.key >= ?2",
        )?;
        let mut rows = stmt.query(params![at, &range.start])?;
        while let Some(row) = rows.next()? {
            let key: Vec<u8> = row.get(0)?;
            if range.contains(&key) {
                out.push(kv_from_row(row)?);
            }
        }
    }
    {
        let mut stmt = conn.prepare_cached(
            "SELECT p.key, p.value, p.create_rev, p.rev, p.version
             FROM (SELECT key, min(rev) AS first FROM history WHERE rev > ?1 GROUP BY key) c
             JOIN history f ON f.rev = c.first
             JOIN history p ON p.rev = f.prev_rev",
        )?;
        let mut rows = stmt.query([at])?;
        while let Some(row) = rows.next()? {
            let key: Vec<u8> = row.get(0)?;
            if range.contains(&key) {
                out.push(kv_from_row(row)?);
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// How many live keys `range` holds.
fn count_current(conn: &Connection, range: &Range) -> Result<usize, StoreError> {
    let count: i64 = match &range.end {
        None => conn
            .prepare_cached("SELECT count(*) FROM kv WHERE key = ?1")?
            .query_row([&range.start], |row| row.get(0))?,
        Some(end) if end.is_empty() => conn
            .prepare_cached("SELECT count(*) FROM kv WHERE key >= ?1")?
            .query_row([&range.start], |row| row.get(0))?,
        Some(end) => conn
            .prepare_cached("SELECT count(*) FROM kv WHERE key >= ?1 AND key < ?2")?
            .query_row(params![&range.start, end], |row| row.get(0))?,
    };
    Ok(usize::try_from(count).unwrap_or(0))
}

fn fetch_limit(range: &Range) -> i64 {
    match range.limit {
        Some(limit) if limit > 0 => i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1,
        _ => -1,
    }
}

fn kv_from_row(row: &Row<'_>) -> Result<KeyValue, StoreError> {
    Ok(KeyValue {
        key: key_string(row.get(0)?)?,
        value: Bytes::from(row.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default()),
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
        version: row.get(4)?,
    })
}

fn key_string(key: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(key).map_err(|err| {
        StoreError::Database(format!("a stored key is not UTF-8: {:?}", err.as_bytes()).into())
    })
}
