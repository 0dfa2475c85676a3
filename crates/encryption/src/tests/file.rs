//! The configuration file on disk.

use std::os::unix::fs::PermissionsExt as _;

use crate::{LoadError, ProviderKind, load_or_create};

use super::*;

#[test]
fn default_config_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encryption.yaml");

    let (created, was_created) = load_or_create(&path).unwrap();
    assert!(was_created);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        created.write_key("", "secrets"),
        Some((ProviderKind::Secretbox, "key1"))
    );
    assert_eq!(created.write_key("", "configmaps"), None);
    let yaml = std::fs::read_to_string(&path).unwrap();
    assert!(
        yaml.find("secretbox").unwrap() < yaml.find("identity").unwrap(),
        "{yaml}"
    );
    assert!(!dir.path().join("encryption.yaml.tmp").exists());

    let stored = created
        .transformer("", "secrets")
        .encrypt(PLAIN, CTX)
        .unwrap();
    let (reused, was_created) = load_or_create(&path).unwrap();
    assert!(!was_created);
    assert_eq!(reused, created);
    assert_eq!(
        reused
            .transformer("", "secrets")
            .decrypt(&stored, CTX)
            .unwrap(),
        (PLAIN.to_vec(), false)
    );
    // Plaintext Secrets from before encryption was on still read.
    assert_eq!(
        reused
            .transformer("", "secrets")
            .decrypt(PLAIN, CTX)
            .unwrap(),
        (PLAIN.to_vec(), true)
    );

    // Two servers' first starts get different keys.
    let other = dir.path().join("other.yaml");
    let (second, _) = load_or_create(&other).unwrap();
    assert_ne!(second, created);
}

#[test]
fn a_readable_or_broken_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.yaml");
    load_or_create(&path).unwrap();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_or_create(&path).unwrap_err();
    assert!(
        matches!(err, LoadError::Permissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, "kind: Nope\n").unwrap();
    let err = load_or_create(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("enc.yaml") && msg.contains("kind: must be"),
        "{msg}"
    );

    let missing_dir = dir.path().join("no/such/dir/enc.yaml");
    assert!(matches!(
        load_or_create(&missing_dir),
        Err(LoadError::Io { .. })
    ));
}
