//! Image store tests on real files (no root needed except for whiteouts'
//! device nodes, which these images do not carry).

mod common;

use std::fs;
use std::path::Path;

use bulwark_runtime::{ImageError, ImageStore};
use sha2::{Digest, Sha256};

fn new_store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path().join("images")).expect("open store");
    (dir, store)
}

/// All files below `root`, relative, sorted — to compare store states.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).expect("prefix").display().to_string());
            if e.file_type().expect("type").is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn rootfs_tarball_imports_as_a_one_layer_image() {
    let (dir, store) = new_store();
    let tarball = common::busybox_rootfs_tar(dir.path());
    let image = store.import_rootfs(&tarball, "busybox").expect("import");
    assert_eq!(
        image.reference.to_string(),
        "docker.io/library/busybox:latest"
    );
    assert_eq!(image.layers.len(), 1);
    let busybox = fs::read(image.layers[0].join("bin/busybox")).expect("busybox in layer");
    assert_eq!(busybox, fs::read(common::BUSYBOX).expect("host busybox"));
    assert_eq!(
        fs::read_link(image.layers[0].join("bin/sh")).expect("sh link"),
        Path::new("/bin/busybox")
    );
    // Found again by any spelling of the same name; listed once.
    let again = store.get("docker.io/library/busybox:latest").expect("get");
    assert_eq!(again.manifest_digest, image.manifest_digest);
    let list = store.list().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].reference.to_string(),
        "docker.io/library/busybox:latest"
    );
}

#[test]
fn importing_the_same_layer_twice_shares_one_unpacked_copy() {
    let (dir, store) = new_store();
    let tarball = common::busybox_rootfs_tar(dir.path());
    let a = store.import_rootfs(&tarball, "a").expect("import a");
    let b = store.import_rootfs(&tarball, "b:v2").expect("import b");
    assert_eq!(a.layers, b.layers);
    assert_eq!(
        fs::read_dir(store.root().join("layers"))
            .expect("layers")
            .count(),
        1
    );
}

#[test]
fn oci_layout_directory_and_archive_import_with_platform_resolution() {
    let (dir, store) = new_store();
    let layout = common::busybox_oci_layout(dir.path(), "localhost:5000/test/busybox:1.36");
    let images = store.import_oci(&layout, None).expect("import layout dir");
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert_eq!(
        image.reference.to_string(),
        "localhost:5000/test/busybox:1.36"
    );
    assert_eq!(image.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
    assert_eq!(image.config.working_dir.as_deref(), Some("/tmp"));
    assert!(image.layers[0].join("bin/busybox").is_file());

    let (_dir2, store2) = new_store();
    let archive = common::tar_dir(&layout);
    let images = store2
        .import_oci(&archive, Some("mirror.local/busybox:copy"))
        .expect("import archive");
    assert_eq!(images[0].reference.to_string(), "mirror.local/busybox:copy");
    assert_eq!(images[0].manifest_digest, image.manifest_digest);
}

#[test]
fn corrupted_blob_is_refused_and_the_store_is_unchanged() {
    let (dir, store) = new_store();
    let layout = common::busybox_oci_layout(dir.path(), "example.com/busybox:1");
    // Flip a byte of the biggest blob (the layer).
    let blobs = layout.join("blobs/sha256");
    let layer = fs::read_dir(&blobs)
        .expect("blobs")
        .flatten()
        .max_by_key(|e| e.metadata().expect("meta").len())
        .expect("a blob")
        .path();
    let mut bytes = fs::read(&layer).expect("read layer");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&layer, bytes).expect("corrupt");

    let err = store
        .import_oci(&layout, None)
        .expect_err("corrupt blob must be refused");
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("blob digest mismatch: expected sha256:"),
        "{err}"
    );
    // Consistent afterwards: no name, nothing unpacked or staged, and every
    // blob that did land hashes to its name (prune reclaims them).
    assert!(matches!(
        store.get("example.com/busybox:1"),
        Err(ImageError::NotFound(_))
    ));
    assert!(
        !tree(store.root())
            .iter()
            .any(|p| p.starts_with("layers/") || p.starts_with("tmp/"))
    );
    for blob in fs::read_dir(store.root().join("blobs/sha256"))
        .expect("blobs")
        .flatten()
    {
        let digest = format!("{:x}", Sha256::digest(fs::read(blob.path()).expect("read")));
        assert_eq!(digest, blob.file_name().to_string_lossy());
    }
    store.prune().expect("prune");
    assert_eq!(
        tree(store.root()),
        [
            "blobs",
            "blobs/sha256",
            "layers",
            "lock",
            "oci-layout",
            "tmp"
        ]
    );
}

#[test]
fn malicious_rootfs_is_refused_with_nothing_written_outside() {
    let (dir, store) = new_store();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    let victim = dir.path().join("victim");
    fs::create_dir(&victim).expect("victim dir");
    b.append_link(&mut h, "escape", &victim).expect("symlink");
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(5);
    h.set_mode(0o644);
    b.append_data(&mut h, "escape/pwned", &b"pwned"[..])
        .expect("file");
    let tarball = dir.path().join("evil.tar");
    fs::write(&tarball, b.into_inner().expect("tar")).expect("write");

    let err = store
        .import_rootfs(&tarball, "evil")
        .expect_err("must refuse");
    assert!(
        err.to_string()
            .contains(r#"entry "escape/pwned" would be written through the symlink "escape""#),
        "{err}"
    );
    assert_eq!(fs::read_dir(&victim).expect("victim").count(), 0);
    assert!(matches!(store.get("evil"), Err(ImageError::NotFound(_))));
    assert_eq!(
        fs::read_dir(store.root().join("layers"))
            .expect("layers")
            .count(),
        0
    );
    assert_eq!(
        fs::read_dir(store.root().join("tmp")).expect("tmp").count(),
        0
    );
}

#[test]
fn remove_and_prune_reclaim_space() {
    let (dir, store) = new_store();
    let tarball = common::busybox_rootfs_tar(dir.path());
    store.import_rootfs(&tarball, "one").expect("import");
    store.import_rootfs(&tarball, "two").expect("import");
    store.remove("one").expect("remove one");
    assert_eq!(store.prune().expect("prune"), 0, "layer still used by two");
    assert!(store.get("two").is_ok());
    store.remove("two").expect("remove two");
    assert!(
        store.prune().expect("prune") >= 4,
        "manifest, config, layer blob, unpacked layer"
    );
    assert_eq!(
        fs::read_dir(store.root().join("layers"))
            .expect("layers")
            .count(),
        0
    );
    let err = store.remove("two").expect_err("already gone");
    assert_eq!(
        err.to_string(),
        "image docker.io/library/two:latest not found in the local store"
    );
}

#[test]
fn docker_save_archives_import_under_their_repo_tags() {
    let (dir, store) = new_store();
    let archive = common::busybox_docker_save(
        dir.path(),
        &["busybox:1.36", "registry.local/tools/busybox:v1"],
    );
    let images = store
        .import_archive(&archive, None)
        .expect("import docker save archive");
    let names: Vec<String> = images.iter().map(|i| i.reference.to_string()).collect();
    assert_eq!(
        names,
        [
            "docker.io/library/busybox:1.36",
            "registry.local/tools/busybox:v1"
        ]
    );
    assert_eq!(images[0].manifest_digest, images[1].manifest_digest);
    assert!(images[0].layers[0].join("bin/busybox").is_file());
    // An OCI archive goes through the same entry point.
    let layout = common::busybox_oci_layout(dir.path(), "example.com/oci/busybox:2");
    let oci = store
        .import_archive(&common::tar_dir(&layout), None)
        .expect("oci archive");
    assert_eq!(oci[0].reference.to_string(), "example.com/oci/busybox:2");
}
