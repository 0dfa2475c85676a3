//! Encrypting and decrypting: round trips, stored format, authentication, secrecy.

use crate::DecryptError;

use super::*;

// ---- round trips, prefixes, interop vectors

#[test]
fn every_provider_round_trips_with_upstream_prefix() {
    let cases = [
        (
            keyed("aescbc", &[("key1", K0)]),
            "k8s:enc:aescbc:v1:key1:",
            16,
        ),
        (
            keyed("aesgcm", &[("key1", K0)]),
            "k8s:enc:aesgcm:v1:key1:",
            12 + 16,
        ),
        (
            keyed("aesgcm", &[("k16", K16)]),
            "k8s:enc:aesgcm:v1:k16:",
            12 + 16,
        ),
        (
            keyed("aesgcm", &[("k24", K24)]),
            "k8s:enc:aesgcm:v1:k24:",
            12 + 16,
        ),
        (
            keyed("secretbox", &[("key1", K0)]),
            "k8s:enc:secretbox:v1:key1:",
            24 + 16,
        ),
    ];
    for (provider, prefix, overhead) in cases {
        let t = secrets(&[&provider]).transformer("", "secrets");
        for plain in [&b""[..], PLAIN, &[7u8; 1000][..]] {
            let stored = t.encrypt(plain, CTX).unwrap();
            assert!(stored.starts_with(prefix.as_bytes()), "{provider}");
            let body = stored.len() - prefix.len();
            if provider.starts_with("aescbc") {
                // IV, then whole blocks: PKCS#7 always adds 1..=16 bytes.
                assert_eq!(body, 16 + (plain.len() / 16 + 1) * 16);
            } else {
                assert_eq!(body, overhead + plain.len(), "{provider}");
            }
            assert_eq!(t.decrypt(&stored, CTX).unwrap(), (plain.to_vec(), false));
        }
    }
}

#[test]
fn two_encryptions_differ_by_their_random_nonce() {
    for p in ["aescbc", "aesgcm", "secretbox"] {
        let t = secrets(&[&keyed(p, &[("key1", K0)])]).transformer("", "secrets");
        assert_ne!(
            t.encrypt(PLAIN, CTX).unwrap(),
            t.encrypt(PLAIN, CTX).unwrap()
        );
    }
}

/// Vectors computed outside Rust (Python `cryptography` for AES, and NaCl's
/// published secretbox construction) from upstream's stored format:
/// prefix, then IV/nonce, then ciphertext.
#[test]
fn stored_bytes_match_vectors_built_from_upstreams_format() {
    let cases = [
        (
            keyed("aescbc", &[("key1", K0)]),
            (100u8..116).collect::<Vec<_>>(),
            "6b38733a656e633a6165736362633a76313a6b6579313a6465666768696a6b6c6d6e6f70717273fa94e09b\
             43ca354b8c48808b67ebe54c10346d448395dc7f001df209c56cce3b",
        ),
        (
            keyed("aesgcm", &[("key1", K0)]),
            (200u8..212).collect(),
            "6b38733a656e633a61657367636d3a76313a6b6579313ac8c9cacbcccdcecfd0d1d2d3611912a8f1a38944\
             49546ad06a639926d3efb2f192f84b0de5ae59af66908f89",
        ),
        (
            keyed("aesgcm", &[("key1", K16)]),
            (200u8..212).collect(),
            "6b38733a656e633a61657367636d3a76313a6b6579313ac8c9cacbcccdcecfd0d1d2d34649e7cd795c594d\
             e3ffdd2cb504119427204bc00fd25ac45e60ca693d5c584f",
        ),
        (
            keyed("secretbox", &[("key1", K0)]),
            (50u8..74).collect(),
            "6b38733a656e633a736563726574626f783a76313a6b6579313a32333435363738393a3b3c3d3e3f404142\
             43444546474849a27a31af05d8b972c3deb5d38d1841ee5e65228d8ea480025f3f74c4d4fdb044",
        ),
    ];
    for (provider, nonce, want) in cases {
        let t = secrets(&[&provider]).transformer("", "secrets");
        let got = t.encrypt_with_nonce(PLAIN, CTX, &nonce);
        let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, want, "{provider}");
        assert_eq!(t.decrypt(&got, CTX).unwrap(), (PLAIN.to_vec(), false));
    }
}

#[test]
fn plaintext_never_appears_in_an_encrypted_value() {
    let plain = b"the-quick-brown-fox-s3cr3t-value";
    for p in ["aescbc", "aesgcm", "secretbox"] {
        let t = secrets(&[&keyed(p, &[("key1", K0)])]).transformer("", "secrets");
        let stored = t.encrypt(plain, CTX).unwrap();
        assert!(!contains(&stored, plain), "{p} leaked the plaintext");
        assert!(
            !contains(&stored, b"s3cr3t"),
            "{p} leaked part of the plaintext"
        );
    }
}

#[test]
fn identity_passes_values_through_unprefixed() {
    let t = secrets(&["identity: {}"]).transformer("", "secrets");
    assert_eq!(t.encrypt(PLAIN, CTX).unwrap(), PLAIN);
    assert_eq!(t.decrypt(PLAIN, CTX).unwrap(), (PLAIN.to_vec(), false));
    // identity refuses to hand out encrypted data as if it were plaintext.
    let err = t
        .decrypt(b"k8s:enc:secretbox:v1:key1:xxxx", CTX)
        .unwrap_err();
    assert!(matches!(err, DecryptError::UnknownKey { .. }), "{err}");
}

// ---- authentication

#[test]
fn wrong_key_fails_for_authenticated_ciphers() {
    for p in ["aesgcm", "secretbox"] {
        let writer = secrets(&[&keyed(p, &[("key1", K0)])]).transformer("", "secrets");
        let reader = secrets(&[&keyed(p, &[("key1", K1)])]).transformer("", "secrets");
        let stored = writer.encrypt(PLAIN, CTX).unwrap();
        let err = reader.decrypt(&stored, CTX).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{p} key \"key1\" cannot decrypt")),
            "{msg}"
        );
        assert!(msg.contains("authentication failed"), "{msg}");
    }
}

#[test]
fn tampered_ciphertext_fails_for_authenticated_ciphers() {
    for p in ["aesgcm", "secretbox"] {
        let t = secrets(&[&keyed(p, &[("key1", K0)])]).transformer("", "secrets");
        let stored = t.encrypt(PLAIN, CTX).unwrap();
        for i in [stored.len() - 1, stored.len() - 20, 30] {
            let mut bad = stored.clone();
            bad[i] ^= 1;
            assert!(
                t.decrypt(&bad, CTX).is_err(),
                "{p}: flipped byte {i} went unnoticed"
            );
        }
        let short = &stored[..stored.len() - PLAIN.len() - 10];
        assert!(
            t.decrypt(short, CTX).is_err(),
            "{p}: truncated value accepted"
        );
    }
}

#[test]
fn aesgcm_binds_a_value_to_its_storage_key() {
    let t = secrets(&[&keyed("aesgcm", &[("key1", K0)])]).transformer("", "secrets");
    let stored = t.encrypt(PLAIN, b"/registry/secrets/default/db").unwrap();
    let err = t
        .decrypt(&stored, b"/registry/secrets/attacker/copy")
        .unwrap_err();
    assert!(err.to_string().contains("another storage key"), "{err}");
}

#[test]
fn cbc_rejects_malformed_bodies() {
    let t = secrets(&[&keyed("aescbc", &[("key1", K0)])]).transformer("", "secrets");
    let stored = t.encrypt(PLAIN, CTX).unwrap();
    assert!(t.decrypt(&stored[..stored.len() - 1], CTX).is_err());
    assert!(t.decrypt(b"k8s:enc:aescbc:v1:key1:short", CTX).is_err());
}

// ---- secrets stay secret

#[test]
fn keys_never_appear_in_debug_output_or_errors() {
    let c = secrets(&[
        &keyed("secretbox", &[("key1", K0)]),
        &keyed("aesgcm", &[("key2", K1)]),
    ]);
    let debug = format!("{c:?} {:?}", c.transformer("", "secrets"));
    assert!(debug.contains("key1") && debug.contains("key2"), "{debug}");
    for secret in [K0, K1, "AAECAwQF", "0, 1, 2, 3", "32, 33, 34"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }

    // A wrong-length or badly encoded secret is described, never echoed.
    let bad = format!(
        "{}resources:\n- resources: [secrets]\n  providers:\n  - {}\n  - {}\n",
        header(),
        keyed("secretbox", &[("a", "c2VjcmV0IGlzIHNlY3VyZQ==")]),
        keyed("aescbc", &[("b", "c2VjcmV0IGlzIHNlY3VyZQ=")]),
    );
    let err = Config::parse(&bad).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("c2VjcmV0"), "{shown}");

    let wrong = secrets(&[&keyed("aesgcm", &[("key1", K1)])]).transformer("", "secrets");
    let stored = secrets(&[&keyed("aesgcm", &[("key1", K0)])])
        .transformer("", "secrets")
        .encrypt(PLAIN, CTX)
        .unwrap();
    let err = wrong.decrypt(&stored, CTX).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(K0) && !shown.contains(K1) && !shown.contains("hunter2"),
        "{shown}"
    );
}

#[test]
fn transformers_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync>() {}
    shareable::<crate::Transformer>();
    shareable::<Config>();
}
