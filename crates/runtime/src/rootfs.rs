//! The container's root filesystem: an overlay of the image's read-only
//! layers and a writable upper directory, and path lookups inside it that
//! follow symlinks the way the container will — never out of it.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use nix::mount::{MsFlags, mount};

use crate::runtime::{RuntimeError, io_ctx, nix_ctx, paths};

pub(crate) fn mount_overlay(layers: &[PathBuf], dir: &Path) -> Result<(), RuntimeError> {
    match mount_overlay_layer_by_layer(layers, dir) {
        Ok(()) => Ok(()),
        // Kernels before 6.8 (no `lowerdir+`) or 5.2 (no fsopen).
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            mount_overlay_with_options(layers, dir)
        }
        Err(e) => Err(io_ctx("mounting the overlay root filesystem")(e.into())),
    }
}

/// The new mount API, one `lowerdir+` per layer: no limit on how many
/// layers, or how long their paths (mount(2)'s options must fit one page).
fn mount_overlay_layer_by_layer(layers: &[PathBuf], dir: &Path) -> rustix::io::Result<()> {
    use rustix::mount::{
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, fsconfig_create,
        fsconfig_set_string, fsmount, fsopen, move_mount,
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    // overlayfs stacks lower directories top first.
    for layer in layers.iter().rev() {
        fsconfig_set_string(&fs, "lowerdir+", layer.as_path())?;
    }
    fsconfig_set_string(&fs, "upperdir", dir.join(paths::UPPER).as_path())?;
    fsconfig_set_string(&fs, "workdir", dir.join(paths::WORK).as_path())?;
    fsconfig_create(&fs)?;
    let mount = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NODEV,
    )?;
    move_mount(
        &mount,
        "",
        rustix::fs::CWD,
        dir.join(paths::ROOTFS).as_path(),
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

fn mount_overlay_with_options(layers: &[PathBuf], dir: &Path) -> Result<(), RuntimeError> {
    // overlayfs lists lower directories top first.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        dir.join(paths::UPPER).display(),
        dir.join(paths::WORK).display()
    );
    mount(
        Some("overlay"),
        &dir.join(paths::ROOTFS),
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(nix_ctx("mounting the overlay root filesystem"))
}

/// Resolves `path` inside `root` as the container will see it: symlinks
/// (absolute ones too) are followed relative to `root`, never out of it.
pub(crate) fn resolve_in_root(root: &Path, path: &str) -> io::Result<PathBuf> {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .rev()
        .collect();
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = resolved.join(&component);
        match fs::symlink_metadata(root.join(&candidate)) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(io::Error::other("too many levels of symbolic links"));
                }
                let target = fs::read_link(root.join(&candidate))?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                let parts: Vec<String> = target
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                        Component::ParentDir => Some("..".into()),
                        _ => None,
                    })
                    .collect();
                pending.extend(parts.into_iter().rev());
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

/// Looks the command up as `execvp` will inside the container.
pub(crate) fn find_executable(
    rootfs: &Path,
    program: &str,
    path_var: &str,
) -> Result<(), RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let candidates: Vec<String> = if program.contains('/') {
        vec![program.to_string()]
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{d}/{program}"))
            .collect()
    };
    for candidate in candidates {
        if let Ok(p) = resolve_in_root(rootfs, &candidate)
            && is_exec(&p)
        {
            return Ok(());
        }
    }
    Err(RuntimeError::ExecutableNotFound(program.to_string()))
}

/// Creates the working directory inside the rootfs if the image lacks it (as runc does).
pub(crate) fn ensure_dir(rootfs: &Path, dir: &str) -> Result<(), RuntimeError> {
    let path =
        resolve_in_root(rootfs, dir).map_err(io_ctx(format!("resolving working dir {dir}")))?;
    fs::create_dir_all(&path).map_err(io_ctx(format!("creating working dir {dir}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_symlinks_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("bin")).expect("mkdir");
        fs::write(root.join("bin/busybox"), b"").expect("write");
        std::os::unix::fs::symlink("/bin/busybox", root.join("bin/sh")).expect("symlink");
        std::os::unix::fs::symlink("../../../../etc", root.join("up")).expect("symlink");
        assert_eq!(
            resolve_in_root(root, "/bin/sh").expect("resolve"),
            root.join("bin/busybox")
        );
        // Climbing out stops at the root, as in the container.
        assert_eq!(
            resolve_in_root(root, "/up/passwd").expect("resolve"),
            root.join("etc/passwd")
        );
        let err = find_executable(root, "foo", "/bin:/usr/bin").expect_err("missing");
        assert_eq!(
            err.to_string(),
            r#"exec: "foo": executable file not found in $PATH"#
        );
    }
}
