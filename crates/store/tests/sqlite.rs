//! The conformance suite and the embedded backend's own guarantees: crash
//! safety against a killed process, refusal of damaged files, a full disk,
//! bounded growth.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod conformance;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bulwark_store::{
    Durability, Range, SqliteConfig, SqliteStore, Store, StoreError, StoreExt, WriteOutcome,
};
use conformance::Harness;

struct Sqlite {
    dir: tempfile::TempDir,
    config: SqliteConfig,
    store: Option<SqliteStore>,
}

impl Sqlite {
    fn path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }
}

impl Harness for Sqlite {
    type S = SqliteStore;

    fn open(watch_buffer: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig {
            watch_buffer,
            ..SqliteConfig::default()
        };
        let store = SqliteStore::open(dir.path().join("state.db"), config.clone()).unwrap();
        Sqlite {
            dir,
            config,
            store: Some(store),
        }
    }

    fn store(&self) -> SqliteStore {
        self.store.clone().unwrap()
    }

    fn restart(&mut self) {
        if let Some(store) = self.store.take() {
            store.close();
        }
        self.store = Some(SqliteStore::open(self.path(), self.config.clone()).unwrap());
    }

    fn live_watchers(&self) -> Option<usize> {
        self.store.as_ref().map(SqliteStore::watcher_count)
    }
}

conformance_tests!(Sqlite;
    create_update_delete,
    revisions_are_global,
    range_paging,
    read_past_revisions,
    cas_race,
    watch_replay_then_live,
    watch_during_writes,
    watch_after_restart,
    compaction,
    slow_watcher_is_cut_off,
    value_size_limit,
);

/// Set in the child process of the crash test: the database it writes to.
const CRASH_CHILD_ENV: &str = "BULWARK_STORE_CRASH_CHILD_DB";

/// A child process writes as fast as it can and reports each acknowledged
/// write; it is killed with SIGKILL mid-stream. Every acknowledged write must
/// be there when the store is reopened.
#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("acked ") {
            let (key, rev) = rest.split_once(' ').unwrap();
            acked.push((key.to_owned(), rev.parse::<i64>().unwrap()));
            if acked.len() == 2_000 {
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(
        acked.len(),
        2_000,
        "the child acknowledged writes before it was killed"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&db, SqliteConfig::default()).unwrap();
        for (key, rev) in &acked {
            let kv = store.get(key).await.unwrap();
            assert_eq!(
                kv.map(|kv| kv.mod_revision),
                Some(*rev),
                "acknowledged {key} lost"
            );
        }
        // And the store is fully usable afterwards.
        assert!(
            store
                .put("/after/crash", "ok")
                .await
                .unwrap()
                .revision()
                .is_some()
        );
    });
}

/// The writer half of `acknowledged_writes_survive_kill_9` (does nothing
/// unless started by it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(db) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let store = SqliteStore::open(PathBuf::from(db), SqliteConfig::default()).unwrap();
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/crash/{w}/{i}");
                let rev = store
                    .put(&key, vec![b'v'; 200])
                    .await
                    .unwrap()
                    .revision()
                    .unwrap();
                println!("acked {key} {rev}");
            }
        }));
    }
    for writer in writers {
        let _ = writer.await;
    }
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    write_file(&path, b"this is a text file, not a store\n");
    let err = SqliteStore::open(&path, SqliteConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"this is a text file, not a store\n",
        "left untouched"
    );
}

#[tokio::test]
async fn refuses_a_damaged_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
        for i in 0..2_000 {
            store
                .put(&format!("/k/{i}"), vec![b'x'; 300])
                .await
                .unwrap();
        }
        store.close();
    }
    // Overwrite a stretch of pages in the middle of the file with garbage.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16_384] {
        *b = 0xa5;
    }
    write_file(&path, &bytes);
    let err = SqliteStore::open(&path, SqliteConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("state.db"), "{err}");
}

#[test]
fn refuses_another_programs_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    make_foreign_database(&path);
    let err = SqliteStore::open(&path, SqliteConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

/// Makes a SQLite database that is not a Bulwark store.
fn make_foreign_database(path: &Path) {
    // The `sqlite3` CLI is not on every machine; a store of our own with its
    // meta table renamed plays "another program's database".
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(path, SqliteConfig::default()).unwrap();
        store.put("/x", "y").await.unwrap();
        store.close();
    });
    // Flip the table name in the schema text stored in the file header pages.
    let mut bytes = std::fs::read(path).unwrap();
    let needle = b"CREATE TABLE meta";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("schema text present");
    bytes[at + 13..at + 17].copy_from_slice(b"mota");
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn refuses_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path(), SqliteConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}

#[tokio::test]
async fn new_database_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    store.put("/a", "b").await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// A steady update load on a fixed set of keys with automatic compaction:
/// the database and its WAL stop growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_updates_keep_the_files_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let config = SqliteConfig {
        compaction_interval: Duration::from_millis(100),
        keep_revisions: 1_000,
        ..SqliteConfig::default()
    };
    let store = SqliteStore::open(&path, config).unwrap();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = dir.path().join("state.db-wal");
    let mut sizes = Vec::new();
    for round in 0..10 {
        for i in 0..5_000 {
            store
                .put(&format!("/hot/{}", i % 100), vec![round as u8; 1_000])
                .await
                .unwrap();
        }
        // Wait (with a deadline) until compaction caught up with this round.
        let (newest, _) = store.revisions().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while store.revisions().await.unwrap().1 < newest - 1_000 - 5_000 {
            assert!(std::time::Instant::now() < deadline, "compaction never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sizes.push(size(&path) + size(&wal));
    }
    // 50,000 writes of 1 kB went in (50 MB); what is kept is 100 live keys
    // and about 1,000 revisions of history, plus a WAL that checkpoints.
    let largest = sizes.iter().max().copied().unwrap();
    assert!(
        largest < 16 * 1024 * 1024,
        "files grew to {largest} bytes: {sizes:?}"
    );
}

/// Same behaviours with every commit fsynced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_durability_works() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        durability: Durability::Fsync,
        ..SqliteConfig::default()
    };
    let store = SqliteStore::open(dir.path().join("state.db"), config).unwrap();
    let r = store.create("/f", "1").await.unwrap().revision().unwrap();
    assert!(matches!(
        store.update("/f", "2", r).await.unwrap(),
        WriteOutcome::Committed { .. }
    ));
    assert_eq!(store.range(Range::prefix("/")).await.unwrap().count, 1);
}

/// Set in the child of the disk-full test: the directory to fill.
const DISK_FULL_CHILD_ENV: &str = "BULWARK_STORE_DISK_FULL_DIR";

/// A full disk fails the write with `DiskFull`, loses nothing acknowledged,
/// and the store works again once space returns. Runs in a child process in
/// its own mount namespace on a 4 MiB tmpfs (needs root, as CI has).
#[test]
fn full_disk_fails_writes_and_recovers() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a small tmpfs in a private mount namespace");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "disk_full_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DISK_FULL_CHILD_ENV, dir.path())
        .status()
        .expect("unshare (util-linux) runs");
    assert!(status.success(), "the disk-full scenario failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_child() {
    let Some(dir) = std::env::var_os(DISK_FULL_CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=4m",
            "bulwark-test",
            &dir.display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(mounted.success());
    let store = SqliteStore::open(dir.join("state.db"), SqliteConfig::default()).unwrap();
    let mut acked = Vec::new();
    let err = loop {
        let key = format!("/fill/{}", acked.len());
        match store.put(&key, vec![b'z'; 4_000]).await {
            Ok(outcome) => acked.push((key, outcome.revision().unwrap())),
            Err(err) => break err,
        }
        assert!(acked.len() < 10_000, "4 MiB never filled up");
    };
    assert!(
        matches!(err, StoreError::DiskFull),
        "expected DiskFull, got {err}"
    );
    for (key, rev) in &acked {
        assert_eq!(
            store.get(key).await.unwrap().map(|kv| kv.mod_revision),
            Some(*rev)
        );
    }
    // Space returns: shrink what the store holds by deleting half the keys
    // and checkpointing… simpler and closer to life: grow the filesystem.
    let remounted = Command::new("mount")
        .args(["-o", "remount,size=16m", &dir.display().to_string()])
        .status()
        .unwrap();
    assert!(remounted.success());
    let rev = store.put("/after/full", "ok").await.unwrap().revision();
    assert!(rev.is_some(), "writes work again once space returns");
    assert_eq!(
        store.range(Range::prefix("/fill/")).await.unwrap().count,
        acked.len() as i64
    );
    store.close();
    let reopened = SqliteStore::open(dir.join("state.db"), SqliteConfig::default()).unwrap();
    assert_eq!(
        reopened.range(Range::prefix("/fill/")).await.unwrap().count,
        acked.len() as i64
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
