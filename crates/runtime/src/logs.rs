//! Container logs in the CRI format, rotated by size.
//!
//! Each line: `<RFC 3339 nano UTC> <stdout|stderr> <F|P> <text>` — `P` marks
//! a partial line (a line longer than the buffer, or output that ended
//! without a newline). When the file would pass `max_bytes`, it is renamed
//! to `.1` (older files shift up; at most `max_files` files including the
//! current one are kept), as the kubelet rotates container logs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};

use crate::attach::{Attachments, OutputStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Default size at which a log is rotated (the kubelet's containerLogMaxSize).
pub(crate) const DEFAULT_MAX_BYTES: u64 = 10 << 20;
/// Default number of files kept (the kubelet's containerLogMaxFiles).
pub(crate) const DEFAULT_MAX_FILES: u32 = 5;

/// A container's log file with rotation.
pub(crate) struct CriLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: u32,
}

impl CriLog {
    pub(crate) fn open(path: &Path, max_bytes: u64, max_files: u32) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(CriLog {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes: max_bytes.max(1),
            max_files: max_files.max(1),
        })
    }

    /// Appends one entry, rotating first if it would not fit.
    pub(crate) fn write_entry(
        &mut self,
        stream: &str,
        partial: bool,
        text: &[u8],
    ) -> io::Result<()> {
        let tag = if partial { "P" } else { "F" };
        let mut entry = format!("{} {stream} {tag} ", rfc3339_now()).into_bytes();
        entry.extend_from_slice(text);
        entry.push(b'\n');
        if self.size > 0 && self.size + entry.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&entry)?;
        self.size += entry.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.max_files > 1 {
            for n in (1..self.max_files - 1).rev() {
                match fs::rename(numbered(n), numbered(n + 1)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            fs::rename(&self.path, numbered(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Now as RFC 3339 with nanoseconds in UTC, as CRI logs carry it.
pub(crate) fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs(), now.subsec_nanos())
}

fn rfc3339(secs: u64, nanos: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One line of a container's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// When the shim read it, RFC 3339 UTC with nanoseconds.
    pub time: String,
    /// Which stream it came from.
    pub stream: OutputStream,
    /// A piece of a longer line (or output that ended without a newline);
    /// the next entries of the same stream continue it.
    pub partial: bool,
    /// The text, without its newline.
    pub text: Vec<u8>,
}

/// Reads a container's log, rotated files first (oldest to newest).
/// Malformed lines are skipped.
pub(crate) fn read_cri_logs(path: &Path) -> io::Result<Vec<LogEntry>> {
    let mut files = Vec::new();
    for n in (1..=64).rev() {
        let rotated = PathBuf::from(format!("{}.{n}", path.display()));
        if rotated.exists() {
            files.push(rotated);
        }
    }
    files.push(path.to_path_buf());
    let mut entries = Vec::new();
    for file in files {
        let bytes = match fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        entries.extend(bytes.split(|&b| b == b'\n').filter_map(parse_cri_line));
    }
    Ok(entries)
}

/// `<time> <stream> <F|P> <text>` → entry.
fn parse_cri_line(line: &[u8]) -> Option<LogEntry> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let stream = match parts.next()? {
        b"stdout" => OutputStream::Stdout,
        b"stderr" => OutputStream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    Some(LogEntry {
        time,
        stream,
        partial,
        text: parts.next().unwrap_or_default().to_vec(),
    })
}

/// Copies one stream into the log until it closes, a line at a time, and
/// hands every chunk to attached clients as soon as it is read.
pub(crate) fn copy_stream(
    mut src: impl Read,
    stream: OutputStream,
    log: &Mutex<CriLog>,
    attachments: &Attachments,
) {
    const MAX_LINE: usize = 16 * 1024;
    let name = match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
    };
    let write = |text: &[u8], partial: bool| {
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = log.write_entry(name, partial, text) {
            tracing::warn!(error = %e, "writing container log");
        }
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        attachments.broadcast(stream, &buf[..n]);
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            write(&pending[..end], false);
            pending.drain(..=end);
        }
        while pending.len() >= MAX_LINE {
            write(&pending[..MAX_LINE], true);
            pending.drain(..MAX_LINE);
        }
    }
    if !pending.is_empty() {
        write(&pending, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(
            rfc3339(1_795_000_000, 123_456_789),
            "2026-11-18T11:06:40.123456789Z"
        );
    }

    fn files(dir: &Path) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .map(|e| {
                let lines = fs::read_to_string(e.path()).expect("read").lines().count();
                (e.file_name().to_string_lossy().into_owned(), lines)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn lines_are_cri_formatted_and_partial_lines_marked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let log =
            Mutex::new(CriLog::open(&path, DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES).expect("open"));
        copy_stream(
            &b"one\ntwo\nno newline"[..],
            OutputStream::Stdout,
            &log,
            &Attachments::default(),
        );
        let text = fs::read_to_string(&path).expect("read");
        let tails: Vec<&str> = text
            .lines()
            .map(|l| l.split_once(' ').expect("time").1)
            .collect();
        assert_eq!(
            tails,
            ["stdout F one", "stdout F two", "stdout P no newline"]
        );
        let time = text.split(' ').next().expect("time");
        assert_eq!(time.len(), "2026-11-26T16:08:26.123456789Z".len(), "{time}");
    }

    #[test]
    fn logs_read_back_across_rotations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let mut log = CriLog::open(&path, 100, 3).expect("open");
        for i in 0..5 {
            log.write_entry("stdout", false, format!("{i:03}").as_bytes())
                .expect("write");
        }
        log.write_entry("stderr", true, b"part").expect("write");
        fs::write(dir.path().join("junk.log"), "not a log line\n").expect("junk");
        let entries = read_cri_logs(&path).expect("read");
        let texts: Vec<String> = entries
            .iter()
            .map(|e| {
                format!(
                    "{:?}{} {}",
                    e.stream,
                    if e.partial { "+" } else { "" },
                    String::from_utf8_lossy(&e.text)
                )
            })
            .collect();
        // Oldest rotated away (3 files of 2 lines kept).
        assert_eq!(
            texts,
            [
                "Stdout 000",
                "Stdout 001",
                "Stdout 002",
                "Stdout 003",
                "Stdout 004",
                "Stderr+ part"
            ]
        );
        assert!(parse_cri_line(b"garbage").is_none());
    }

    #[test]
    fn rotation_keeps_at_most_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        // Each entry is 31 + 1 + 6 + 1 + 3 = 42 bytes: two fit in 100.
        let mut log = CriLog::open(&path, 100, 3).expect("open");
        for i in 0..9 {
            log.write_entry("stdout", false, format!("{i:03}").as_bytes())
                .expect("write");
        }
        assert_eq!(
            files(dir.path()),
            [
                ("c.log".into(), 1),
                ("c.log.1".into(), 2),
                ("c.log.2".into(), 2)
            ]
        );
        assert!(
            fs::read_to_string(&path)
                .expect("read")
                .ends_with("stdout F 008\n")
        );
        assert!(
            fs::read_to_string(dir.path().join("c.log.2"))
                .expect("read")
                .contains(" 004\n")
        );
    }
}
