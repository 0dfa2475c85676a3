//! Staleness and the rotation steps.

use crate::{DecryptError, ProviderKind, RotationError, add_key, promote, remove_key};

use super::*;

#[test]
fn old_key_reads_as_stale_after_a_new_first_key_then_fails_once_removed() {
    let old = secrets(&[&keyed("secretbox", &[("key1", K0)])]);
    let stored = old.transformer("", "secrets").encrypt(PLAIN, CTX).unwrap();

    // Step 1: the new key second. Old values are still current.
    let added = add_key(&old, ProviderKind::Secretbox, "key2").unwrap();
    assert_eq!(
        added.write_key("", "secrets"),
        Some((ProviderKind::Secretbox, "key1"))
    );
    assert_eq!(
        added
            .transformer("", "secrets")
            .decrypt(&stored, CTX)
            .unwrap(),
        (PLAIN.to_vec(), false)
    );

    // Step 2: promoted. Old values read, as stale; new ones use key2.
    let promoted = promote(&added, "key2").unwrap();
    let t = promoted.transformer("", "secrets");
    assert_eq!(t.decrypt(&stored, CTX).unwrap(), (PLAIN.to_vec(), true));
    let rewritten = t.encrypt(PLAIN, CTX).unwrap();
    assert!(rewritten.starts_with(b"k8s:enc:secretbox:v1:key2:"));
    assert_eq!(t.decrypt(&rewritten, CTX).unwrap(), (PLAIN.to_vec(), false));

    // Step 4: the old key removed. A value not rewritten names its key.
    let removed = remove_key(&promoted, "key1").unwrap();
    let t = removed.transformer("", "secrets");
    let err = t.decrypt(&stored, CTX).unwrap_err();
    assert_eq!(
        err.to_string(),
        "secrets: value was encrypted with secretbox key \"key1\", which the encryption \
         configuration does not list (was it removed before every value was rewritten?)"
    );
    assert_eq!(t.decrypt(&rewritten, CTX).unwrap(), (PLAIN.to_vec(), false));
}

#[test]
fn a_new_key_of_another_provider_goes_second_as_its_own_provider() {
    let old = secrets(&[&keyed("aescbc", &[("old", K0)]), "identity: {}"]);
    let stored = old.transformer("", "secrets").encrypt(PLAIN, CTX).unwrap();
    let added = add_key(&old, ProviderKind::Secretbox, "new").unwrap();
    let yaml = added.to_yaml();
    let order: Vec<usize> = ["aescbc:", "secretbox:", "identity:"]
        .iter()
        .map(|p| yaml.find(p).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{yaml}");

    let promoted = promote(&added, "new").unwrap();
    assert_eq!(
        promoted.write_key("", "secrets"),
        Some((ProviderKind::Secretbox, "new"))
    );
    let t = promoted.transformer("", "secrets");
    assert_eq!(t.decrypt(&stored, CTX).unwrap(), (PLAIN.to_vec(), true));
    assert_eq!(t.decrypt(PLAIN, CTX).unwrap(), (PLAIN.to_vec(), true));

    let removed = remove_key(&promoted, "old").unwrap();
    assert!(!removed.to_yaml().contains("aescbc"));
    assert!(removed.to_yaml().contains("identity"));
}

#[test]
fn plaintext_written_before_encryption_reads_as_stale() {
    let t =
        secrets(&[&keyed("secretbox", &[("key1", K0)]), "identity: {}"]).transformer("", "secrets");
    assert_eq!(
        t.decrypt(b"{\"kind\":\"Secret\"}", CTX).unwrap(),
        (b"{\"kind\":\"Secret\"}".to_vec(), true)
    );
}

#[test]
fn plaintext_is_refused_without_identity() {
    let t = secrets(&[&keyed("secretbox", &[("key1", K0)])]).transformer("", "secrets");
    let err = t.decrypt(b"{\"kind\":\"Secret\"}", CTX).unwrap_err();
    assert!(matches!(err, DecryptError::NotEncrypted { .. }), "{err}");
}

#[test]
fn a_second_key_of_the_same_name_is_tried_when_the_first_fails() {
    // Upstream: a prefix match that fails does not stop the search.
    let t = secrets(&[
        &keyed("secretbox", &[("k", K1)]),
        &keyed("secretbox", &[("k", K0)]),
    ])
    .transformer("", "secrets");
    let stored = secrets(&[&keyed("secretbox", &[("k", K0)])])
        .transformer("", "secrets")
        .encrypt(PLAIN, CTX)
        .unwrap();
    assert_eq!(t.decrypt(&stored, CTX).unwrap(), (PLAIN.to_vec(), true));
}

#[test]
fn rotation_steps_refuse_what_would_lose_data_or_be_ambiguous() {
    let c = secrets(&[&keyed("secretbox", &[("key1", K0), ("key2", K1)])]);
    assert!(matches!(
        add_key(&c, ProviderKind::AesCbc, "key2"),
        Err(RotationError::DuplicateName { .. })
    ));
    assert!(matches!(
        add_key(&c, ProviderKind::AesCbc, "a:b"),
        Err(RotationError::InvalidName(_))
    ));
    assert!(matches!(
        promote(&c, "nope"),
        Err(RotationError::NotFound(_))
    ));
    assert!(matches!(
        remove_key(&c, "nope"),
        Err(RotationError::NotFound(_))
    ));
    let err = remove_key(&c, "key1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "key \"key1\" is the write key for secrets; promote another key and rewrite every value \
         before removing it"
    );
    let plain = secrets(&["identity: {}"]);
    assert!(matches!(
        add_key(&plain, ProviderKind::Secretbox, "k"),
        Err(RotationError::NothingEncrypted)
    ));
}

#[test]
fn add_key_generates_a_fresh_32_byte_key_each_time() {
    let c = secrets(&[&keyed("aescbc", &[("key1", K0)])]);
    let a = add_key(&c, ProviderKind::AesCbc, "key2").unwrap().to_yaml();
    let b = add_key(&c, ProviderKind::AesCbc, "key2").unwrap().to_yaml();
    assert_ne!(a, b);
    // Both parse back: the generated key has a valid length.
    Config::parse(&a).unwrap();
}

#[test]
fn identity_first_migrates_away_from_encryption() {
    // Upstream's way to decrypt everything: identity first, old keys after.
    let old = secrets(&[&keyed("aesgcm", &[("key1", K0)])]);
    let stored = old.transformer("", "secrets").encrypt(PLAIN, CTX).unwrap();
    let t =
        secrets(&["identity: {}", &keyed("aesgcm", &[("key1", K0)])]).transformer("", "secrets");
    assert_eq!(t.decrypt(&stored, CTX).unwrap(), (PLAIN.to_vec(), true));
    assert_eq!(t.encrypt(PLAIN, CTX).unwrap(), PLAIN);
    assert_eq!(t.decrypt(PLAIN, CTX).unwrap(), (PLAIN.to_vec(), false));
}

#[test]
fn promoting_the_write_key_changes_nothing_and_ambiguous_names_are_refused() {
    let c = secrets(&[&keyed("secretbox", &[("key1", K0), ("key2", K1)])]);
    assert_eq!(promote(&c, "key1").unwrap(), c);
    let two = secrets(&[
        &keyed("secretbox", &[("k", K0)]),
        &keyed("aescbc", &[("k", K1)]),
    ]);
    assert!(matches!(
        promote(&two, "k"),
        Err(RotationError::Ambiguous { .. })
    ));
    assert!(matches!(
        remove_key(&two, "k"),
        Err(RotationError::Ambiguous { .. })
    ));
}
