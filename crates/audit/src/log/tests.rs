use std::os::unix::fs::PermissionsExt;

use expect_test::expect;
use tempfile::TempDir;

use super::*;
use crate::event::{RequestInfo, UserInfo, build};
use crate::policy::{Level, Stage};

fn event(n: usize) -> Event {
    let mut info = RequestInfo::new("get", &format!("/healthz?n={n}"), UserInfo::default());
    info.audit_id = format!("event-{n}");
    build(
        &info,
        Level::Metadata,
        Stage::ResponseComplete,
        false,
        crate::event::Response::default(),
        Timestamp::now(),
    )
}

fn audit_ids(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).expect("log is readable");
    text.lines()
        .map(|l| {
            let e: Event = serde_json::from_str(l).expect("every line is an event");
            e.audit_id
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("dir is readable")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn is_backup_name(name: &str) -> bool {
    backup_time(Path::new("audit.log"), name).is_some()
}

#[test]
fn backup_names_follow_lumberjack() {
    let t: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
    let p = backup_path(Path::new("/var/log/audit.log"), t);
    expect!["/var/log/audit-2026-01-01T00-00-00.000.log"].assert_eq(&p.display().to_string());
    let t: Timestamp = "2026-12-31T23:59:58.987654Z".parse().expect("time");
    let p = backup_path(Path::new("/var/log/audit.log"), t);
    expect!["/var/log/audit-2026-12-31T23-59-58.987.log"].assert_eq(&p.display().to_string());
    let name = p.file_name().expect("name").to_string_lossy().into_owned();
    let back = backup_time(Path::new("audit.log"), &name).expect("a backup name");
    expect!["2026-12-31T23:59:58.987Z"].assert_eq(&back.to_string());
    assert!(backup_time(Path::new("audit.log"), "audit.log").is_none());
    assert!(backup_time(Path::new("audit.log"), "audit-notes.log").is_none());
    assert!(backup_time(Path::new("audit.log"), "other-2026-01-01T00-00-00.000.log").is_none());
}

#[test]
fn defaults_meet_cis() {
    let c = LogConfig::new("/x/audit.log");
    assert!(c.max_size_mb >= 100, "CIS 1.2.19");
    assert!(c.max_age_days >= 30, "CIS 1.2.17");
    assert!(c.max_backups >= 10, "CIS 1.2.18");
}

#[test]
fn log_file_is_private_even_if_it_existed() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("audit.log");
    fs::write(&path, "").expect("precreate");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let log = LogBackend::open(LogConfig::new(&path)).expect("open");
    log.send(event(0));
    log.flush();
    let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(audit_ids(&path), ["event-0"]);
}

#[test]
fn rotation_by_size_keeps_at_most_max_backups() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("audit.log");
    let line_len = serde_json::to_vec(&event(0)).expect("json").len() as u64 + 1;
    let config = LogConfig {
        max_backups: 3,
        ..LogConfig::new(&path)
    };
    // Two events per file.
    let log = LogBackend::open_with(config, 2 * line_len + 2).expect("open");
    for n in 0..10 {
        log.send(event(n));
        log.flush();
    }
    drop(log);

    let names = names(dir.path());
    assert_eq!(names.len(), 4, "the log and three backups: {names:?}");
    assert!(names.contains(&"audit.log".to_owned()));
    for name in names.iter().filter(|n| *n != "audit.log") {
        assert!(is_backup_name(name), "{name} is not a backup name");
    }
    // The newest events survive, in order, across the backups and the log.
    let mut ids = Vec::new();
    for name in names.iter().filter(|n| *n != "audit.log") {
        ids.extend(audit_ids(&dir.path().join(name)));
    }
    ids.extend(audit_ids(&path));
    let expected: Vec<String> = (2..10).map(|n| format!("event-{n}")).collect();
    assert_eq!(ids, expected);
    for name in &names {
        let mode = fs::metadata(dir.path().join(name))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
}

#[test]
fn rotation_prunes_backups_older_than_max_age() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("audit.log");
    let old = dir.path().join("audit-2020-01-01T00-00-00.000.log");
    let recent = backup_path(&path, Timestamp::now() - SignedDuration::from_hours(24));
    let unrelated = dir.path().join("audit-notes.log");
    for p in [&old, &recent, &unrelated] {
        fs::write(p, "{}\n").expect("precreate");
    }
    let log = LogBackend::open_with(LogConfig::new(&path), 1).expect("open");
    log.send(event(0));
    log.send(event(1)); // rotates
    log.flush();
    assert!(!old.exists(), "a backup older than 30 days is removed");
    assert!(recent.exists(), "a day-old backup is kept");
    assert!(
        unrelated.exists(),
        "files that are not backups are left alone"
    );
}

/// The disk going away: the log path turns into a directory under the
/// writer. Every lost event is counted, block mode turns unhealthy, and
/// both recover when the path is writable again.
#[test]
fn losing_the_log_is_counted_and_blocks_in_block_mode() {
    for mode in [FailureMode::Block, FailureMode::Continue] {
        let dir = TempDir::new().expect("tempdir");
        let path = dir.path().join("audit.log");
        let config = LogConfig {
            failure_mode: mode,
            ..LogConfig::new(&path)
        };
        let log = LogBackend::open(config).expect("open");
        log.send(event(0));
        log.flush();
        assert_eq!(
            log.metrics(),
            AuditMetrics {
                events_total: 1,
                errors_total: 0
            }
        );
        assert!(log.healthy());

        fs::remove_file(&path).expect("remove log");
        fs::create_dir(&path).expect("log path becomes a directory");
        log.send(event(1));
        log.send(event(2));
        log.flush();
        assert_eq!(
            log.metrics(),
            AuditMetrics {
                events_total: 3,
                errors_total: 2
            },
            "{mode:?}"
        );
        assert_eq!(log.healthy(), mode == FailureMode::Continue, "{mode:?}");

        fs::remove_dir(&path).expect("path free again");
        log.send(event(3));
        log.flush();
        assert!(log.healthy(), "{mode:?} recovers");
        assert_eq!(log.metrics().errors_total, 2);
        assert_eq!(audit_ids(&path), ["event-3"]);
    }
}

/// A log deleted under the writer is noticed and recreated, not written
/// into the unlinked inode where nobody would ever read it.
#[test]
fn a_deleted_log_is_recreated() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("audit.log");
    let log = LogBackend::open(LogConfig::new(&path)).expect("open");
    log.send(event(0));
    log.flush();
    fs::remove_file(&path).expect("remove");
    log.send(event(1));
    log.flush();
    assert_eq!(audit_ids(&path), ["event-1"]);
    assert_eq!(log.metrics().errors_total, 0);
}

#[test]
fn an_unopenable_path_is_refused_at_start() {
    let dir = TempDir::new().expect("tempdir");
    let err = LogBackend::open(LogConfig::new(dir.path())).expect_err("a directory");
    assert!(err.to_string().starts_with("opening audit log "), "{err}");
}

#[test]
fn metrics_render_in_prometheus_text() {
    let m = AuditMetrics {
        events_total: 7,
        errors_total: 2,
    };
    expect![[r#"
        # HELP apiserver_audit_event_total [ALPHA] Counter of audit events generated and sent to the audit backend.
        # TYPE apiserver_audit_event_total counter
        apiserver_audit_event_total 7
        # HELP apiserver_audit_error_total [ALPHA] Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.
        # TYPE apiserver_audit_error_total counter
        apiserver_audit_error_total{plugin="log"} 2
    "#]]
    .assert_eq(&m.prometheus_text());
}

/// A stalled disk in continue mode: the writer is stuck on a pipe nobody
/// reads, the buffer fills and events are dropped — and every one of them
/// is either in the log or counted in `errors_total`, none vanish.
#[test]
fn a_full_buffer_drops_events_but_counts_every_one() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("audit.log");
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let reader_path = path.clone();
    let reader = std::thread::spawn(move || {
        let mut pipe = File::open(reader_path).expect("open fifo for reading");
        go_rx.recv().expect("go");
        let mut text = String::new();
        io::Read::read_to_string(&mut pipe, &mut text).expect("read fifo");
        text
    });
    let config = LogConfig {
        buffer_size: 4,
        ..LogConfig::new(&path)
    };
    let log = LogBackend::open(config).expect("open fifo for writing");
    const SENT: usize = 2_000; // far more than a pipe buffer holds
    for n in 0..SENT {
        log.send(event(n));
    }
    let dropped = log.metrics().errors_total;
    assert!(dropped > 0, "the buffer never filled");
    go_tx.send(()).expect("reader waits");
    drop(log); // writes what is queued, closes the pipe
    let written = reader.join().expect("reader").lines().count();
    assert_eq!(written as u64 + dropped, SENT as u64);
}
