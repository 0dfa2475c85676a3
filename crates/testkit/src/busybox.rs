//! A busybox image for tests and benchmarks that run real pods, built from
//! the host's `/bin/busybox` (Debian's busybox-static), so nothing is pulled.

use std::io;
use std::path::{Path, PathBuf};

/// Applets linked into the image's `/bin`: what the end-to-end tests and
/// `bulwark bench agent` run.
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sleep", "ls", "test", "true", "false", "env", "id", "hostname", "httpd",
    "wget", "touch", "grep", "kill", "ps", "mkdir", "head", "dd", "nc", "printf", "nslookup",
];

/// Whether this process runs as root (what real pods need).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// Writes a root filesystem tarball (`<scratch>/busybox-rootfs.tar`) holding
/// busybox, its applets, `/etc/passwd` and `/etc/group`; returns its path,
/// ready for `ImageStore::import_rootfs` or `bulwark image import --rootfs`.
pub fn busybox_rootfs_tar(scratch: &Path) -> io::Result<PathBuf> {
    let root = scratch.join("busybox-rootfs");
    for dir in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("/bin/busybox (apt-get install busybox-static): {e}"),
        )
    })?;
    for applet in APPLETS {
        let link = root.join("bin").join(applet);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("busybox", link)?;
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    let tarball = scratch.join("busybox-rootfs.tar");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!("tar exited with {status}")));
    }
    Ok(tarball)
}
