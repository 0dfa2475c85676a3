//! Test fixtures: busybox images built on the fly from Debian's `busybox-static`.
#![allow(dead_code)] // each test binary uses a different subset
#![allow(unreachable_pub)] // `pub` so that every test crate including this module can use it

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub mod fixture;

pub const BUSYBOX: &str = "/bin/busybox";

/// Applets linked into the test image's /bin.
const APPLETS: &[&str] = &[
    "sh", "true", "false", "ls", "cat", "echo", "id", "ps", "mount", "umount", "unshare", "sleep",
    "touch", "mkdir", "insmod", "head", "wc", "grep", "readlink", "stat", "env", "pwd", "dd",
    "chmod", "kill", "sync", "test", "nsenter", "rm", "seq", "yes", "hostname", "tty", "stty",
];

/// Writes an uncompressed rootfs tarball holding busybox and its applets.
pub fn busybox_rootfs_tar(dir: &Path) -> PathBuf {
    let path = dir.join("busybox-rootfs.tar");
    fs::write(&path, busybox_rootfs_bytes()).expect("write rootfs tarball");
    path
}

pub fn busybox_rootfs_bytes() -> Vec<u8> {
    busybox_rootfs_bytes_with(&[])
}

/// The busybox rootfs plus extra files: (path, content, mode).
pub fn busybox_rootfs_bytes_with(extra: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let busybox =
        fs::read(BUSYBOX).expect("busybox-static is installed (apt-get install busybox-static)");
    let mut b = tar::Builder::new(Vec::new());
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        let mut h = header();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if d == "tmp" { 0o1777 } else { 0o755 });
        h.set_size(0);
        b.append_data(&mut h, d, &[][..]).expect("dir");
    }
    let mut h = header();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", &busybox[..])
        .expect("busybox");
    for applet in APPLETS {
        let mut h = header();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, format!("bin/{applet}"), "/bin/busybox")
            .expect("symlink");
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    let group = b"root:x:0:\nnogroup:x:65534:\n";
    for (name, data) in [("etc/passwd", &passwd[..]), ("etc/group", &group[..])] {
        let mut h = header();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).expect("etc file");
    }
    for (name, data, mode) in extra {
        let mut h = header();
        h.set_mode(*mode);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, *data).expect("extra file");
    }
    b.into_inner().expect("finish tar")
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// Writes an OCI image layout directory with one busybox image (gzip layer,
/// default command `sh`) annotated with `name`; returns its path.
pub fn busybox_oci_layout(dir: &Path, name: &str) -> PathBuf {
    use std::io::Write;
    let layout = dir.join("oci-layout-dir");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir blobs");
    let put = |data: &[u8]| -> (String, usize) {
        let digest = sha256(data);
        fs::write(blobs.join(&digest[7..]), data).expect("write blob");
        (digest, data.len())
    };
    let tar = busybox_rootfs_bytes();
    let diff_id = sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip");
    let (layer, layer_size) = put(&gz.finish().expect("gzip"));
    let config = serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Env": ["PATH=/bin", "FROM_IMAGE=yes"], "Cmd": ["sh"], "WorkingDir": "/tmp"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let (config, config_size) = put(&serde_json::to_vec(&config).expect("json"));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}],
    });
    let (manifest, manifest_size) = put(&serde_json::to_vec(&manifest).expect("json"));
    // A multi-arch index in front, as registries serve official images.
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(b"other"), "size": 5,
             "platform": {"architecture": "s390x", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": manifest_size,
             "platform": {"architecture": host_arch(), "os": "linux"}},
        ],
    });
    let (index, index_size) = put(&serde_json::to_vec(&index).expect("json"));
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index, "size": index_size,
                       "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"}}],
    });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&top).expect("json"),
    )
    .expect("index");
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    layout
}

/// Tars up a directory (an OCI layout) into an archive next to it.
pub fn tar_dir(dir: &Path) -> PathBuf {
    let out = dir.with_extension("tar");
    let file = fs::File::create(&out).expect("create archive");
    let mut b = tar::Builder::new(file);
    b.append_dir_all(".", dir).expect("tar dir");
    b.finish().expect("finish archive");
    out
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A name no other test (or concurrent run) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// Writes a `docker save` archive (classic layout: `<id>/layer.tar`,
/// `<hex>.json`, `manifest.json` with RepoTags) of the busybox rootfs.
pub fn busybox_docker_save(dir: &Path, tags: &[&str]) -> PathBuf {
    let layer = busybox_rootfs_bytes();
    let diff_id = sha256(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .expect("json");
    let config_name = format!("{}.json", &sha256(&config)[7..]);
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": tags, "Layers": ["0123abcd/layer.tar"]}
    ]))
    .expect("json");
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        (config_name.as_str(), &config[..]),
        ("0123abcd/layer.tar", &layer[..]),
        ("manifest.json", &manifest[..]),
    ] {
        let mut h = header();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).expect("append");
    }
    let path = dir.join("docker-save.tar");
    fs::write(&path, b.into_inner().expect("tar")).expect("write archive");
    path
}

/// Writes an OCI layout directory holding one image made of `layers`
/// (uncompressed tars, bottom first), named `name`; returns its path.
pub fn oci_layout_of(dir: &Path, name: &str, layers: &[Vec<u8>]) -> PathBuf {
    let layout = dir.join("oci-layout-layers");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir blobs");
    let put = |data: &[u8]| -> (String, usize) {
        let digest = sha256(data);
        fs::write(blobs.join(&digest[7..]), data).expect("write blob");
        (digest, data.len())
    };
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let (digest, size) = put(layer);
        diff_ids.push(digest.clone());
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size,
        }));
    }
    let config = serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (config, config_size) = put(&serde_json::to_vec(&config).expect("json"));
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": descriptors,
    });
    let (manifest, manifest_size) = put(&serde_json::to_vec(&manifest).expect("json"));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest,
                       "size": manifest_size, "annotations": {"io.containerd.image.name": name}}],
    });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index");
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    layout
}

/// A layer tar of regular files `(path, content)`; a path ending in a
/// `.wh.<name>` component is a whiteout.
pub fn layer_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = header();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data.as_bytes())
            .expect("append");
    }
    b.into_inner().expect("tar")
}
