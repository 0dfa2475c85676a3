//! Unpacking one layer tarball into a directory in overlayfs's format.
//!
//! Every entry is checked before anything is written: a path that climbs out
//! (`../`), a write through a symlink (an earlier entry `evil -> /etc`
//! followed by `evil/passwd`), a hard link to outside the layer, and device
//! nodes are refused. Whiteouts become what overlayfs reads: `.wh.name` → a
//! 0:0 character device `name`, `.wh..wh..opq` → the `trusted.overlay.opaque`
//! xattr on the directory.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer names a path outside itself (absolute after `..`, or climbing up).
    #[error("malicious layer: entry {entry:?} escapes the layer root")]
    PathTraversal {
        /// The entry's path as written in the tarball.
        entry: String,
    },
    /// The layer writes through a symlink it (or an earlier layer entry) created.
    #[error("malicious layer: entry {entry:?} would be written through the symlink {symlink:?}")]
    ThroughSymlink {
        /// The entry's path as written in the tarball.
        entry: String,
        /// The symlink on its path.
        symlink: String,
    },
    /// The layer holds a device node (char or block) or a FIFO.
    #[error("malicious layer: entry {entry:?} is a device node, which images may not carry")]
    DeviceNode {
        /// The entry's path as written in the tarball.
        entry: String,
    },
    /// A hard link points outside the layer or at a missing file.
    #[error("malicious layer: hard link {entry:?} points at {target:?}, outside the layer")]
    BadHardLink {
        /// The link's path.
        entry: String,
        /// Its target.
        target: String,
    },
    /// Reading the tarball or writing the files failed.
    #[error("unpacking layer entry {entry:?}: {source}")]
    Io {
        /// The entry being written ("" when reading the archive itself failed).
        entry: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn io_err(entry: &str) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        entry: entry.to_string(),
        source,
    }
}

/// Unpacks the (uncompressed) tar stream `reader` into `dest`, which must be an
/// empty directory that nobody else writes to.
pub(crate) fn unpack_layer(reader: impl Read, dest: &Path) -> Result<(), UnpackError> {
    let mut archive = tar::Archive::new(reader);
    // Directory modes are applied at the end so that read-only directories can
    // still be filled.
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    for entry in archive.entries().map_err(io_err(""))? {
        let mut entry = entry.map_err(io_err(""))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(rel) = clean_path(&raw)? else {
            continue; // the root itself ("./")
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        check_no_symlink(dest, parent, &raw)?;
        let name = rel
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let target = dest.join(&rel);
        let header = entry.header().clone();
        let kind = header.entry_type();

        if name == OPAQUE_WHITEOUT {
            let dir = dest.join(parent);
            fs::create_dir_all(&dir).map_err(io_err(&raw))?;
            xattr::set(&dir, "trusted.overlay.opaque", b"y").map_err(io_err(&raw))?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            // A layer may list the whiteout without its directory.
            fs::create_dir_all(dest.join(parent)).map_err(io_err(&raw))?;
            let path = dest.join(parent).join(hidden);
            remove_existing(&path).map_err(io_err(&raw))?;
            mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                .map_err(|e| io_err(&raw)(e.into()))?;
            continue;
        }
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            return Err(UnpackError::DeviceNode { entry: raw });
        }

        let mode = header.mode().map_err(io_err(&raw))? & 0o7777;
        let uid = header.uid().map_err(io_err(&raw))?;
        let gid = header.gid().map_err(io_err(&raw))?;
        if kind.is_dir() {
            match fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_existing(&target).map_err(io_err(&raw))?;
                    fs::create_dir(&target).map_err(io_err(&raw))?;
                }
                Err(_) => fs::create_dir_all(&target).map_err(io_err(&raw))?,
            }
            chown(&target, uid, gid).map_err(io_err(&raw))?;
            dir_modes.push((target, mode));
            continue;
        }
        // Parents a layer did not list get 0755 (as containerd does).
        fs::create_dir_all(dest.join(parent)).map_err(io_err(&raw))?;
        remove_existing(&target).map_err(io_err(&raw))?;
        if kind.is_symlink() {
            let link = entry
                .link_name()
                .map_err(io_err(&raw))?
                .ok_or_else(|| io_err(&raw)(io::Error::other("symlink without a target")))?;
            std::os::unix::fs::symlink(&link, &target).map_err(io_err(&raw))?;
            chown(&target, uid, gid).map_err(io_err(&raw))?;
        } else if kind.is_hard_link() {
            let link = entry
                .link_name()
                .map_err(io_err(&raw))?
                .ok_or_else(|| io_err(&raw)(io::Error::other("hard link without a target")))?;
            let link_str = link.to_string_lossy().into_owned();
            let bad = || UnpackError::BadHardLink {
                entry: raw.clone(),
                target: link_str.clone(),
            };
            let link_rel = clean_path(&link_str).map_err(|_| bad())?.ok_or_else(bad)?;
            check_no_symlink(dest, &link_rel, &raw).map_err(|_| bad())?;
            fs::hard_link(dest.join(&link_rel), &target).map_err(|_| bad())?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let mut file = fs::File::create(&target).map_err(io_err(&raw))?;
            io::copy(&mut entry, &mut file).map_err(io_err(&raw))?;
            chown(&target, uid, gid).map_err(io_err(&raw))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io_err(&raw))?;
        } else {
            // PAX headers and GNU long names are consumed by the tar crate;
            // anything else (sparse, volume labels) carries nothing for a rootfs.
            tracing::debug!(entry = %raw, ?kind, "skipping layer entry of unsupported type");
        }
    }
    // Deepest first, so that making a parent read-only does not block a child.
    dir_modes.sort_by(|a, b| b.0.cmp(&a.0));
    for (dir, mode) in dir_modes {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(io_err(&dir.to_string_lossy()))?;
    }
    Ok(())
}

/// Turns a tar entry name into a relative path with no `.`/`..`, or refuses it.
/// Leading `/` and `./` are dropped (tar archives may carry either).
fn clean_path(raw: &str) -> Result<Option<PathBuf>, UnpackError> {
    let mut out = PathBuf::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(UnpackError::PathTraversal {
                    entry: raw.to_string(),
                });
            }
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Refuses when any existing component of `dest/rel` is a symlink, so no write
/// can be redirected outside `dest`.
fn check_no_symlink(dest: &Path, rel: &Path, entry: &str) -> Result<(), UnpackError> {
    let mut path = dest.to_path_buf();
    for component in rel.components() {
        path.push(component);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(UnpackError::ThroughSymlink {
                    entry: entry.to_string(),
                    symlink: path
                        .strip_prefix(dest)
                        .unwrap_or(&path)
                        .to_string_lossy()
                        .into_owned(),
                });
            }
            Ok(_) => {}
            Err(_) => return Ok(()), // nothing further exists yet
        }
    }
    Ok(())
}

fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn chown(path: &Path, uid: u64, gid: u64) -> io::Result<()> {
    let uid = u32::try_from(uid).map_err(|_| io::Error::other("uid out of range"))?;
    let gid = u32::try_from(gid).map_err(|_| io::Error::other("gid out of range"))?;
    lchown(path, Some(uid), Some(gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer tarball built entry by entry.
    pub(crate) struct LayerBuilder(tar::Builder<Vec<u8>>);

    impl LayerBuilder {
        pub(crate) fn new() -> Self {
            LayerBuilder(tar::Builder::new(Vec::new()))
        }
        fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(0);
            h
        }
        // `Header::set_path` refuses `..`, so names are written raw to test
        // what a hostile archive can carry.
        fn append(&mut self, mut h: tar::Header, name: &str, data: &[u8]) {
            let gnu = h.as_gnu_mut().expect("gnu header");
            gnu.name = [0; 100];
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_size(data.len() as u64);
            h.set_cksum();
            self.0.append(&h, data).expect("append to in-memory tar");
        }
        pub(crate) fn file(mut self, name: &str, data: &[u8]) -> Self {
            let h = Self::header(tar::EntryType::Regular, 0o644);
            self.append(h, name, data);
            self
        }
        pub(crate) fn dir(mut self, name: &str) -> Self {
            let h = Self::header(tar::EntryType::Directory, 0o755);
            self.append(h, name, b"");
            self
        }
        pub(crate) fn symlink(mut self, name: &str, target: &str) -> Self {
            let mut h = Self::header(tar::EntryType::Symlink, 0o777);
            h.set_link_name(target).expect("link name");
            self.append(h, name, b"");
            self
        }
        pub(crate) fn hardlink(mut self, name: &str, target: &str) -> Self {
            let mut h = Self::header(tar::EntryType::Link, 0o644);
            let gnu = h.as_gnu_mut().expect("gnu header");
            gnu.linkname[..target.len()].copy_from_slice(target.as_bytes());
            self.append(h, name, b"");
            self
        }
        pub(crate) fn chardev(mut self, name: &str) -> Self {
            let h = Self::header(tar::EntryType::Char, 0o600);
            self.append(h, name, b"");
            self
        }
        pub(crate) fn build(self) -> Vec<u8> {
            self.0.into_inner().expect("finish in-memory tar")
        }
    }

    fn unpack(layer: Vec<u8>) -> (tempfile::TempDir, Result<(), UnpackError>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("layer");
        fs::create_dir(&dest).expect("mkdir");
        let result = unpack_layer(&layer[..], &dest);
        (dir, result)
    }

    fn err(layer: Vec<u8>) -> String {
        let (dir, result) = unpack(layer);
        // Nothing may appear next to the layer directory.
        let siblings: Vec<_> = fs::read_dir(dir.path())
            .expect("read tempdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(siblings, vec!["layer"], "wrote outside the layer");
        result.expect_err("layer should be refused").to_string()
    }

    #[test]
    fn refuses_path_traversal() {
        let e = err(LayerBuilder::new().file("../escape", b"x").build());
        assert_eq!(
            e,
            r#"malicious layer: entry "../escape" escapes the layer root"#
        );
        let e = err(LayerBuilder::new().file("a/../../escape", b"x").build());
        assert!(e.contains("escapes the layer root"), "{e}");
    }

    #[test]
    fn refuses_writes_through_symlinks() {
        let e = err(LayerBuilder::new()
            .symlink("evil", "/tmp")
            .file("evil/pwned", b"x")
            .build());
        assert_eq!(
            e,
            r#"malicious layer: entry "evil/pwned" would be written through the symlink "evil""#
        );
        let e = err(LayerBuilder::new()
            .symlink("up", "../..")
            .dir("up/x")
            .build());
        assert!(e.contains("through the symlink"), "{e}");
    }

    #[test]
    fn refuses_device_nodes_and_escaping_hard_links() {
        let e = err(LayerBuilder::new().chardev("dev/mem").build());
        assert_eq!(
            e,
            r#"malicious layer: entry "dev/mem" is a device node, which images may not carry"#
        );
        let e = err(LayerBuilder::new()
            .hardlink("passwd", "../../etc/passwd")
            .build());
        assert!(e.contains("hard link"), "{e}");
        let e = err(LayerBuilder::new()
            .symlink("etc", "/etc")
            .hardlink("shadow", "etc/shadow")
            .build());
        assert!(e.contains("hard link"), "{e}");
    }

    #[test]
    fn absolute_symlinks_are_kept_as_links() {
        let (dir, result) = unpack(
            LayerBuilder::new()
                .file("bin/busybox", b"elf")
                .symlink("bin/sh", "/bin/busybox")
                .hardlink("bin/ls", "bin/busybox")
                .build(),
        );
        result.expect("a normal layer unpacks");
        let layer = dir.path().join("layer");
        assert_eq!(
            fs::read_link(layer.join("bin/sh")).expect("readlink"),
            Path::new("/bin/busybox")
        );
        assert_eq!(fs::read(layer.join("bin/ls")).expect("read"), b"elf");
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        use std::os::unix::fs::FileTypeExt;
        let (dir, result) = unpack(
            LayerBuilder::new()
                .file("usr/share/.wh.doc", b"")
                .dir("etc")
                .file("etc/.wh.motd", b"")
                .dir("var/cache")
                .file("var/cache/.wh..wh..opq", b"")
                .build(),
        );
        result.expect("whiteouts unpack");
        let layer = dir.path().join("layer");
        let motd = fs::symlink_metadata(layer.join("etc/motd")).expect("whiteout exists");
        assert!(motd.file_type().is_char_device());
        let doc = fs::symlink_metadata(layer.join("usr/share/doc")).expect("parents made");
        assert!(doc.file_type().is_char_device());
        let opaque =
            xattr::get(layer.join("var/cache"), "trusted.overlay.opaque").expect("getxattr");
        assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    }
}
