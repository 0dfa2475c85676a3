//! `bulwark image …` end to end: import a root filesystem built from
//! Debian's busybox, list it, remove it, prune its blobs; a malicious
//! tarball is refused with nothing written outside the store.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output};

fn bulwark(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["image", "--image-dir"])
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

fn ok(store: &Path, args: &[&str]) -> String {
    let out = bulwark(store, args);
    assert!(
        out.status.success(),
        "bulwark image {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tar(dir: &Path, out: &Path) {
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn import_list_remove_prune() {
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static is installed");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let tarball = work.path().join("rootfs.tar");
    tar(&rootfs, &tarball);
    let store = work.path().join("images");

    let imported = ok(
        &store,
        &[
            "import",
            "--rootfs",
            "--name",
            "local/busybox:1",
            tarball.to_str().unwrap(),
        ],
    );
    assert!(
        imported.starts_with("docker.io/local/busybox:1 sha256:"),
        "{imported}"
    );
    let listed = ok(&store, &["ls"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("docker.io/local/busybox:1")),
        "{listed}"
    );
    ok(&store, &["rm", "local/busybox:1"]);
    let pruned = ok(&store, &["prune"]);
    assert!(!pruned.starts_with("removed 0 "), "{pruned}");
    let listed = ok(&store, &["ls"]);
    assert_eq!(
        listed.lines().count(),
        1,
        "only the header is left: {listed}"
    );
}

#[test]
fn a_tarball_escaping_its_root_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("images");
    let tarball = work.path().join("evil.tar");
    // A member named ../escaped (GNU tar keeps the name with -P).
    let inner = work.path().join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(work.path().join("escaped"), "outside").unwrap();
    let status = Command::new("tar")
        .arg("-C")
        .arg(&inner)
        .args(["-P", "-cf"])
        .arg(&tarball)
        .arg("../escaped")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(work.path().join("escaped")).unwrap();
    let out = bulwark(
        &store,
        &[
            "import",
            "--rootfs",
            "--name",
            "evil:1",
            tarball.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "the import must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(".."),
        "the error names the offending path: {err}"
    );
    assert!(
        !work.path().join("escaped").exists(),
        "nothing was written outside the store"
    );
}
