//! Pod volumes on the node: emptyDir (disk or tmpfs), configMap, secret
//! (always tmpfs: Secret data never touches the node's disk), downwardAPI,
//! projected (with bound service-account tokens), hostPath with its `type`
//! checks; and the bind mounts of a container's `volumeMounts`, `subPath`
//! resolved without following a symlink out of the volume (CVE-2021-25741).
//!
//! Files of configMap, secret, downwardAPI and projected volumes are written
//! the way upstream's atomic writer does: a timestamped directory, a `..data`
//! symlink swapped by rename, and user-visible names linking through
//! `..data`, so a running container sees the old or the new payload, never
//! half of each.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};
use nix::mount::{MntFlags, MsFlags};

use crate::env::{self, NodeAllocatable};

/// Objects the pod's volumes and environment read, fetched by the caller.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fetched {
    /// ConfigMaps by name (`None`: not found). `data` and `binaryData`.
    pub(crate) config_maps: BTreeMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    /// Secrets by name (`None`: not found), decoded.
    pub(crate) secrets: BTreeMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    /// Service-account tokens by `<volume>/<path>`.
    pub(crate) tokens: BTreeMap<String, String>,
    /// Objects that could not be read (other than not found).
    pub(crate) errors: Vec<String>,
}

impl env::Sources for Fetched {
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.config_maps.get(name)?.as_ref().map(|data| {
            data.iter()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect()
        })
    }

    fn secret(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.secrets.get(name)?.clone()
    }
}

/// Why a volume could not be set up: reported as a `FailedMount` event, the
/// pod's containers wait (as upstream's `ContainerCreating`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum VolumeError {
    /// Referenced objects could not be read from the API.
    #[error("MountVolume.SetUp failed: {0}")]
    Fetch(String),
    /// A referenced object is missing.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
    SetUp {
        /// The volume.
        volume: String,
        /// What is wrong.
        message: String,
    },
    /// A host operation failed.
    #[error("volume {volume:?}: {source}")]
    Io {
        /// The volume.
        volume: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

fn io_err(volume: &str) -> impl FnOnce(io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        volume: volume.to_owned(),
        source,
    }
}

/// Names the pod's volumes and env read: (configMaps, secrets).
pub(crate) fn references(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    let Some(spec) = &pod.spec else {
        return (config_maps, secrets);
    };
    for volume in spec.volumes.iter().flatten() {
        if let Some(cm) = &volume.config_map {
            config_maps.push(cm.name.clone());
        }
        if let Some(s) = &volume.secret {
            secrets.extend(s.secret_name.clone());
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(cm) = &source.config_map {
                config_maps.push(cm.name.clone());
            }
            if let Some(s) = &source.secret {
                secrets.push(s.name.clone());
            }
        }
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for container in containers {
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                config_maps.push(r.name.clone());
            }
            if let Some(r) = &from.secret_ref {
                secrets.push(r.name.clone());
            }
        }
        for var in container.env.iter().flatten() {
            if let Some(from) = &var.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    config_maps.push(r.name.clone());
                }
                if let Some(r) = &from.secret_key_ref {
                    secrets.push(r.name.clone());
                }
            }
        }
    }
    config_maps.sort();
    config_maps.dedup();
    secrets.sort();
    secrets.dedup();
    (config_maps, secrets)
}

/// Sets up every volume of `pod` under `pod_dir/volumes`; returns the host
/// directory (or file) of each volume by name. Idempotent: called on every
/// sync, it refreshes configMap/secret/token contents that changed.
pub(crate) fn prepare(
    pod: &Pod,
    pod_dir: &Path,
    fetched: &Fetched,
    node: &NodeAllocatable,
) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let mut out = BTreeMap::new();
    let Some(spec) = &pod.spec else {
        return Ok(out);
    };
    for volume in spec.volumes.iter().flatten() {
        let path = prepare_one(pod, pod_dir, volume, fetched, node)?;
        out.insert(volume.name.clone(), path);
    }
    Ok(out)
}

fn prepare_one(
    pod: &Pod,
    pod_dir: &Path,
    volume: &Volume,
    fetched: &Fetched,
    node: &NodeAllocatable,
) -> Result<PathBuf, VolumeError> {
    let name = volume.name.as_str();
    let dir = pod_dir.join("volumes").join(name);
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        check_host_path(&path, host.type_.as_deref().unwrap_or("")).map_err(|message| {
            VolumeError::SetUp {
                volume: name.to_owned(),
                message,
            }
        })?;
        return Ok(path);
    }
    if let Some(empty) = &volume.empty_dir {
        fs::create_dir_all(&dir).map_err(io_err(name))?;
        if empty.medium.as_deref() == Some("Memory") {
            let size = empty
                .size_limit
                .as_ref()
                .and_then(|q| bulwark_api::quantity::Quantity::parse(&q.0).ok())
                .map(|q| q.value());
            ensure_tmpfs(&dir, size).map_err(io_err(name))?;
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(io_err(name))?;
        return Ok(dir);
    }
    let (files, tmpfs) = if let Some(cm) = &volume.config_map {
        let data = match fetched.config_maps.get(&cm.name).cloned().flatten() {
            Some(data) => data,
            None if cm.optional == Some(true) => BTreeMap::new(),
            None => {
                return Err(VolumeError::SetUp {
                    volume: name.to_owned(),
                    message: format!("configmap \"{}\" not found", cm.name),
                });
            }
        };
        let files = project(name, &data, cm.items.as_deref(), mode(cm.default_mode))?;
        (files, false)
    } else if let Some(secret) = &volume.secret {
        let secret_name = secret.secret_name.clone().unwrap_or_default();
        let data = match fetched.secrets.get(&secret_name).cloned().flatten() {
            Some(data) => data,
            None if secret.optional == Some(true) => BTreeMap::new(),
            None => {
                return Err(VolumeError::SetUp {
                    volume: name.to_owned(),
                    message: format!("secret \"{secret_name}\" not found"),
                });
            }
        };
        let files = project(
            name,
            &data,
            secret.items.as_deref(),
            mode(secret.default_mode),
        )?;
        (files, true)
    } else if let Some(downward) = &volume.downward_api {
        let mut files = BTreeMap::new();
        let default = mode(downward.default_mode);
        for item in downward.items.iter().flatten() {
            let value = downward_value(
                pod,
                item.field_ref.as_ref(),
                item.resource_field_ref.as_ref(),
                node,
            )
            .map_err(|err| VolumeError::SetUp {
                volume: name.to_owned(),
                message: err.to_string(),
            })?;
            files.insert(
                checked_path(name, &item.path)?,
                (value.into_bytes(), item.mode.map_or(default, |m| m as u32)),
            );
        }
        (files, false)
    } else if let Some(projected) = &volume.projected {
        let default = mode(projected.default_mode);
        let mut files = BTreeMap::new();
        for source in projected.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                match fetched.config_maps.get(&cm.name).cloned().flatten() {
                    Some(data) => files.extend(project(name, &data, cm.items.as_deref(), default)?),
                    None if cm.optional == Some(true) => {}
                    None => {
                        return Err(VolumeError::SetUp {
                            volume: name.to_owned(),
                            message: format!("configmap \"{}\" not found", cm.name),
                        });
                    }
                }
            }
            if let Some(s) = &source.secret {
                match fetched.secrets.get(&s.name).cloned().flatten() {
                    Some(data) => files.extend(project(name, &data, s.items.as_deref(), default)?),
                    None if s.optional == Some(true) => {}
                    None => {
                        return Err(VolumeError::SetUp {
                            volume: name.to_owned(),
                            message: format!("secret \"{}\" not found", s.name),
                        });
                    }
                }
            }
            if let Some(downward) = &source.downward_api {
                for item in downward.items.iter().flatten() {
                    let value = downward_value(
                        pod,
                        item.field_ref.as_ref(),
                        item.resource_field_ref.as_ref(),
                        node,
                    )
                    .map_err(|err| VolumeError::SetUp {
                        volume: name.to_owned(),
                        message: err.to_string(),
                    })?;
                    files.insert(
                        checked_path(name, &item.path)?,
                        (value.into_bytes(), item.mode.map_or(default, |m| m as u32)),
                    );
                }
            }
            if let Some(token) = &source.service_account_token {
                let key = format!("{name}/{}", token.path);
                let Some(value) = fetched.tokens.get(&key) else {
                    return Err(VolumeError::SetUp {
                        volume: name.to_owned(),
                        message: "failed to fetch token".to_owned(),
                    });
                };
                files.insert(
                    checked_path(name, &token.path)?,
                    (value.clone().into_bytes(), default),
                );
            }
        }
        (files, true)
    } else {
        return Err(VolumeError::SetUp {
            volume: name.to_owned(),
            message: "volume type not supported by this node".to_owned(),
        });
    };
    fs::create_dir_all(&dir).map_err(io_err(name))?;
    if tmpfs {
        ensure_tmpfs(&dir, None).map_err(io_err(name))?;
    }
    write_atomically(&dir, &files).map_err(io_err(name))?;
    Ok(dir)
}

fn mode(default_mode: Option<i32>) -> u32 {
    default_mode.map_or(0o644, |m| (m & 0o777) as u32)
}

fn downward_value(
    pod: &Pod,
    field: Option<&k8s_openapi::api::core::v1::ObjectFieldSelector>,
    resource: Option<&k8s_openapi::api::core::v1::ResourceFieldSelector>,
    node: &NodeAllocatable,
) -> Result<String, env::EnvError> {
    if let Some(field) = field {
        return env::field(pod, &field.field_path);
    }
    if let Some(resource) = resource {
        let name = resource.container_name.as_deref().unwrap_or_default();
        let container = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .find(|c| c.name == name)
            .cloned()
            .unwrap_or_default();
        let divisor = resource.divisor.as_ref().map(|d| d.0.as_str());
        return env::resource(&container, &resource.resource, divisor, node);
    }
    Ok(String::new())
}

/// The files of a configMap/secret-style projection: every key, or only
/// `items` (each must exist unless the source is optional — upstream fails
/// the mount on a missing key).
fn project(
    volume: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
) -> Result<BTreeMap<PathBuf, (Vec<u8>, u32)>, VolumeError> {
    let mut files = BTreeMap::new();
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                let Some(value) = data.get(&item.key) else {
                    return Err(VolumeError::SetUp {
                        volume: volume.to_owned(),
                        message: format!(
                            "configmap references non-existent config key: {}",
                            item.key
                        ),
                    });
                };
                files.insert(
                    checked_path(volume, &item.path)?,
                    (
                        value.clone(),
                        item.mode.map_or(default_mode, |m| (m & 0o777) as u32),
                    ),
                );
            }
        }
        _ => {
            for (key, value) in data {
                files.insert(checked_path(volume, key)?, (value.clone(), default_mode));
            }
        }
    }
    Ok(files)
}

/// A payload path: relative, no `..`, not starting with `..` (reserved for
/// the writer's own entries).
fn checked_path(volume: &str, path: &str) -> Result<PathBuf, VolumeError> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !path.starts_with("..")
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p.to_path_buf())
    } else {
        Err(VolumeError::SetUp {
            volume: volume.to_owned(),
            message: format!("invalid path {path:?}: must be relative and may not contain '..'"),
        })
    }
}

/// Writes `files` into `dir` through a timestamped directory and the
/// `..data` symlink; returns whether anything changed.
pub(crate) fn write_atomically(
    dir: &Path,
    files: &BTreeMap<PathBuf, (Vec<u8>, u32)>,
) -> io::Result<bool> {
    let data_link = dir.join("..data");
    if let Ok(current) = fs::read_link(&data_link)
        && read_payload(&dir.join(&current))? == *files
    {
        return Ok(false);
    }
    let stamp = format!(
        "..{}",
        jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%f")
    );
    let fresh = dir.join(&stamp);
    fs::create_dir(&fresh)?;
    fs::set_permissions(&fresh, fs::Permissions::from_mode(0o755))?;
    for (path, (content, mode)) in files {
        let target = fresh.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, content)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(*mode))?;
    }
    let old = fs::read_link(&data_link).ok();
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    fs::rename(&tmp, &data_link)?;
    // User-visible names: one symlink per top-level entry.
    let top: std::collections::BTreeSet<std::ffi::OsString> = files
        .keys()
        .filter_map(|p| p.components().next())
        .map(|c| c.as_os_str().to_owned())
        .collect();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("..") {
            continue;
        }
        if !top.contains(&name) {
            fs::remove_file(entry.path())?;
        }
    }
    for name in &top {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)?;
        }
    }
    if let Some(old) = old {
        fs::remove_dir_all(dir.join(old))?;
    }
    Ok(true)
}

fn read_payload(dir: &Path) -> io::Result<BTreeMap<PathBuf, (Vec<u8>, u32)>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let entries = match fs::read_dir(dir.join(&rel)) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let path = rel.join(entry.file_name());
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(path);
            } else {
                let content = fs::read(entry.path())?;
                out.insert(path, (content, meta.permissions().mode() & 0o777));
            }
        }
    }
    Ok(out)
}

/// Mounts a tmpfs at `dir` unless one is there (after an agent restart).
fn ensure_tmpfs(dir: &Path, size: Option<i64>) -> io::Result<()> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let mut options = "mode=0755".to_owned();
    if let Some(size) = size.filter(|s| *s > 0) {
        options.push_str(&format!(",size={size}"));
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(io::Error::from)
}

fn is_mount_point(dir: &Path) -> bool {
    match (fs::metadata(dir), dir.parent().map(fs::metadata)) {
        (Ok(d), Some(Ok(p))) => d.dev() != p.dev(),
        _ => false,
    }
}

/// Unmounts everything under the pod's volume directory and removes it.
pub(crate) fn remove_all(pod_dir: &Path) -> io::Result<()> {
    for sub in ["volume-subpaths", "volumes"] {
        let root = pod_dir.join(sub);
        unmount_under(&root)?;
        match fs::remove_dir_all(&root) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Unmounts every mount at or below `root`, deepest first.
fn unmount_under(root: &Path) -> io::Result<()> {
    let mounts = fs::read_to_string("/proc/self/mountinfo")?;
    let mut points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p.starts_with(root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        nix::mount::umount2(&point, MntFlags::MNT_DETACH).map_err(io::Error::from)?;
    }
    Ok(())
}

fn unescape_mountinfo(field: &str) -> PathBuf {
    // Spaces, tabs, newlines and backslashes are written as \ooo.
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// Upstream's hostPath `type` checks.
fn check_host_path(path: &Path, kind: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt as _;
    let meta = fs::metadata(path);
    let fail = |what: &str| {
        Err(format!(
            "hostPath type check failed: {} is not a {what}",
            path.display()
        ))
    };
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => fail("directory"),
            Err(_) => {
                fs::create_dir_all(path).map_err(|e| e.to_string())?;
                fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())
            }
        },
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            _ => fail("directory"),
        },
        "FileOrCreate" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => fail("file"),
            Err(_) => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        },
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => fail("file"),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => fail("socket file"),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => fail("character device"),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => fail("block device"),
        },
        other => Err(format!("invalid HostPathType {other:?}")),
    }
}

/// The bind mounts of `container`'s `volumeMounts`. A `subPath` is opened
/// beneath its volume without following symlinks out of it, and that very
/// file is bind-mounted to a path the agent owns, so swapping a symlink
/// after the check changes nothing (the CVE-2021-25741 class).
pub(crate) fn container_mounts(
    pod_dir: &Path,
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
    env: &[(String, String)],
) -> Result<Vec<bulwark_runtime::Mount>, VolumeError> {
    let mut mounts = Vec::new();
    for (index, mount) in container.volume_mounts.iter().flatten().enumerate() {
        let Some(source) = volumes.get(&mount.name) else {
            return Err(VolumeError::SetUp {
                volume: mount.name.clone(),
                message: "volume not found in the pod".to_owned(),
            });
        };
        let sub_path = match (&mount.sub_path, &mount.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => Some(p.clone()),
            (_, Some(e)) if !e.is_empty() => Some(env::expand(e, env)),
            _ => None,
        };
        let source = match sub_path {
            None => source.clone(),
            Some(sub) => {
                let pinned = pod_dir
                    .join("volume-subpaths")
                    .join(&mount.name)
                    .join(&container.name)
                    .join(index.to_string());
                pin_sub_path(source, &sub, &pinned).map_err(|message| VolumeError::SetUp {
                    volume: mount.name.clone(),
                    message,
                })?;
                pinned
            }
        };
        mounts.push(bulwark_runtime::Mount {
            source,
            destination: mount.mount_path.clone(),
            read_only: mount.read_only == Some(true),
        });
    }
    Ok(mounts)
}

fn pin_sub_path(volume: &Path, sub: &str, pinned: &Path) -> Result<(), String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    if is_mount_point_file(pinned) {
        return Ok(());
    }
    let rel = Path::new(sub);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "subPath {sub:?} must be a relative path without '..'"
        ));
    }
    let root = rustix::fs::open(
        volume,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening volume {}: {e}", volume.display()))?;
    // Upstream creates a missing subPath as a directory.
    let beneath = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let opened = match rustix::fs::openat2(
        &root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        beneath,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => {
            let mut at = PathBuf::new();
            for component in rel.components() {
                at.push(component);
                match rustix::fs::mkdirat(&root, &at, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(format!("creating subPath {sub:?}: {e}")),
                }
                // Each created level must itself resolve beneath the volume.
                rustix::fs::openat2(
                    &root,
                    &at,
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    beneath,
                )
                .map_err(|e| format!("subPath {sub:?} escapes its volume: {e}"))?;
            }
            rustix::fs::openat2(
                &root,
                rel,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                beneath,
            )
            .map_err(|e| format!("subPath {sub:?}: {e}"))?
        }
        Err(e) => {
            return Err(format!(
                "subPath {sub:?} escapes its volume or cannot be opened: {e}"
            ));
        }
    };
    let stat = rustix::fs::fstat(&opened).map_err(|e| e.to_string())?;
    let is_dir =
        rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory;
    if let Some(parent) = pinned.parent() {
        fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    if is_dir {
        fs::create_dir_all(pinned).map_err(|e| e.to_string())?;
    } else {
        fs::File::create(pinned).map_err(|e| e.to_string())?;
    }
    let fd_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&opened));
    nix::mount::mount(
        Some(Path::new(&fd_path)),
        pinned,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("binding subPath {sub:?}: {e}"))
}

fn is_mount_point_file(path: &Path) -> bool {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|p| unescape_mountinfo(p) == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        entries
            .iter()
            .map(|(p, c)| (PathBuf::from(p), (c.as_bytes().to_vec(), 0o644)))
            .collect()
    }

    #[test]
    fn the_atomic_writer_swaps_payloads_and_removes_stale_names() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomically(dir.path(), &files(&[("a", "1"), ("sub/b", "2")])).unwrap());
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(dir.path().join("sub/b")).unwrap(), "2");
        assert!(
            fs::symlink_metadata(dir.path().join("a"))
                .unwrap()
                .is_symlink()
        );
        // Same payload: nothing written.
        assert!(!write_atomically(dir.path(), &files(&[("a", "1"), ("sub/b", "2")])).unwrap());
        assert!(write_atomically(dir.path(), &files(&[("a", "3")])).unwrap());
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "3");
        assert!(fs::symlink_metadata(dir.path().join("sub")).is_err());
        let stamps = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                let name = name.to_string_lossy();
                name.starts_with("..") && name != "..data"
            })
            .count();
        assert_eq!(stamps, 1, "the old payload directory is removed");
    }

    #[test]
    fn payload_paths_cannot_leave_the_volume() {
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", "..data", ""] {
            assert!(checked_path("v", bad).is_err(), "{bad}");
        }
        assert!(checked_path("v", "a/b.txt").is_ok());
    }

    #[test]
    fn host_path_types_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        assert!(check_host_path(&file, "File").is_ok());
        assert_eq!(
            check_host_path(&file, "Directory").unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a directory",
                file.display()
            )
        );
        let created = dir.path().join("new/dir");
        assert!(check_host_path(&created, "DirectoryOrCreate").is_ok());
        assert!(created.is_dir());
        assert!(check_host_path(&created, "Socket").is_err());
        assert!(check_host_path(&created, "Weird").is_err());
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape_mountinfo("/plain"), PathBuf::from("/plain"));
    }
}
