//! The crate's behaviour, case by case.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::os::unix::fs::PermissionsExt as _;

use crate::{
    Config, ConfigError, DecryptError, LoadError, ProviderKind, RotationError, add_key,
    load_or_create, promote, remove_key,
};

/// bytes 0..32, 32..64, 64..96, 0..16 and 0..24, base64-encoded.
const K0: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K1: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const K2: &str = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";
const K16: &str = "AAECAwQFBgcICQoLDA0ODw==";
const K24: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";

const CTX: &[u8] = b"/registry/secrets/default/db";
const PLAIN: &[u8] = b"password=hunter2";

/// A configuration for `secrets` with the given providers (YAML flow lists).
fn secrets(providers: &[&str]) -> Config {
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets]\n  providers:\n{}",
        providers
            .iter()
            .map(|p| format!("  - {p}\n"))
            .collect::<String>()
    );
    Config::parse(&text).unwrap()
}

fn keyed(provider: &str, keys: &[(&str, &str)]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(n, s)| format!("{{name: {n}, secret: \"{s}\"}}"))
        .collect();
    format!("{provider}: {{keys: [{}]}}", keys.join(", "))
}

/// Parses `text` expecting it to be refused with exactly `messages`.
fn check_invalid(text: &str, messages: &[&str]) {
    match Config::parse(text) {
        Err(ConfigError::Invalid { errors }) => {
            let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
            assert_eq!(got, messages, "for:\n{text}");
        }
        other => panic!("expected Invalid, got {other:?} for:\n{text}"),
    }
}

fn header() -> &'static str {
    "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---- round trips, prefixes, interop vectors --------------------------------

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

// ---- authentication --------------------------------------------------------

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

// ---- staleness and rotation ------------------------------------------------

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

// ---- resources and wildcards -----------------------------------------------

#[test]
fn resources_match_exactly_then_by_group_wildcard_then_everything() {
    let text = format!(
        "{}resources:\n\
         - resources: [events]\n  providers: [identity: {{}}]\n\
         - resources: [secrets, deployments.apps]\n  providers: [{}]\n\
         - resources: ['*.apps']\n  providers: [{}]\n\
         - resources: ['*.']\n  providers: [{}]\n\
         - resources: ['*.*']\n  providers: [{}]\n",
        header(),
        keyed("secretbox", &[("exact", K0)]),
        keyed("secretbox", &[("apps", K0)]),
        keyed("secretbox", &[("core", K0)]),
        keyed("aesgcm", &[("all", K0)]),
    );
    let c = Config::parse(&text).unwrap();
    let cases = [
        ("", "events", None),
        ("", "secrets", Some("exact")),
        ("apps", "deployments", Some("exact")),
        ("apps", "statefulsets", Some("apps")),
        ("", "configmaps", Some("core")),
        ("batch", "jobs", Some("all")),
        ("stable.example.com", "crontabs", Some("all")),
    ];
    for (group, resource, key) in cases {
        assert_eq!(
            c.write_key(group, resource).map(|(_, k)| k),
            key,
            "{resource}.{group}"
        );
        let stored = c.transformer(group, resource).encrypt(PLAIN, CTX).unwrap();
        match key {
            Some(k) => assert!(contains(&stored, format!(":{k}:").as_bytes())),
            None => assert_eq!(stored, PLAIN),
        }
    }
}

#[test]
fn unconfigured_resources_are_stored_in_plaintext_and_refuse_encrypted_data() {
    let c = secrets(&[&keyed("secretbox", &[("key1", K0)])]);
    let t = c.transformer("", "configmaps");
    assert_eq!(t.encrypt(PLAIN, CTX).unwrap(), PLAIN);
    assert!(t.decrypt(b"k8s:enc:secretbox:v1:key1:zzz", CTX).is_err());
}

#[test]
fn the_same_resource_in_two_entries_gets_both_provider_lists() {
    let text = format!(
        "{}resources:\n\
         - resources: [secrets]\n  providers: [{}]\n\
         - resources: [secrets]\n  providers: [{}]\n",
        header(),
        keyed("secretbox", &[("first", K0)]),
        keyed("aescbc", &[("second", K1)]),
    );
    let c = Config::parse(&text).unwrap();
    let old = secrets(&[&keyed("aescbc", &[("second", K1)])])
        .transformer("", "secrets")
        .encrypt(PLAIN, CTX)
        .unwrap();
    assert_eq!(
        c.write_key("", "secrets"),
        Some((ProviderKind::Secretbox, "first"))
    );
    assert_eq!(
        c.transformer("", "secrets").decrypt(&old, CTX).unwrap(),
        (PLAIN.to_vec(), true)
    );
}

// ---- malformed configurations ----------------------------------------------

#[test]
fn malformed_configurations_name_the_field_and_the_problem() {
    let rule = |providers: &str| {
        format!(
            "{}resources:\n- resources: [secrets]\n  providers:\n{providers}",
            header()
        )
    };
    check_invalid(
        &rule(
            "  - identity: {}\n  - aescbc:\n      keys:\n      - name: key1\n        secret: AAECAwQFBgcICQoLDA0ODw==\n",
        ),
        &[
            "resources[0].providers[1].aescbc.keys[0].secret: must be 32 bytes after base64 decoding, got 16",
        ],
    );
    check_invalid(
        &rule("  - secretbox:\n      keys:\n      - name: key1\n        secret: not*base64!\n"),
        &[
            "resources[0].providers[0].secretbox.keys[0].secret: must be base64 encoded (standard alphabet, padded)",
        ],
    );
    check_invalid(
        &rule(
            "  - aesgcm:\n      keys:\n      - name: k\n        secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n",
        ),
        &[
            "resources[0].providers[0].aesgcm.keys[0].secret: must be one of [16, 24, 32] bytes after base64 decoding, got 31",
        ],
    );
    check_invalid(
        &rule("  - aesfoo:\n      keys: []\n"),
        &[
            "resources[0].providers[0].aesfoo: unknown provider \"aesfoo\", expected one of: identity, aescbc, aesgcm, secretbox, kms",
        ],
    );
    check_invalid(
        &format!(
            "{}resources:\n- resources: [secrets]\n  providers: []\n",
            header()
        ),
        &["resources[0].providers: at least one provider is needed, got none"],
    );
    check_invalid(
        &format!("{}resources:\n- resources: [secrets]\n", header()),
        &["resources[0].providers: required: at least one provider is needed"],
    );
    check_invalid(
        &rule("  - secretbox:\n      keys: []\n"),
        &["resources[0].providers[0].secretbox.keys: at least one key is needed, got none"],
    );
    check_invalid(
        &rule(&format!(
            "  - secretbox:\n      keys:\n      - secret: {K0}\n"
        )),
        &["resources[0].providers[0].secretbox.keys[0].name: required: every key needs a name"],
    );
    check_invalid(
        &rule("  - identity: {}\n    aescbc: {keys: []}\n"),
        &[
            "resources[0].providers[0]: more than one provider specified in a single element, should split into different list elements",
        ],
    );
    check_invalid(
        &rule("  - kms: {name: x, endpoint: unix:///tmp/kms.sock}\n"),
        &[
            "resources[0].providers[0].kms: kms providers are not supported by Bulwark yet; use secretbox or aescbc",
        ],
    );
    check_invalid(
        "apiVersion: v1\nkind: EncryptionConfiguration\nresources: []\n",
        &[
            "apiVersion: must be \"apiserver.config.k8s.io/v1\", got \"v1\"",
            "resources: at least one resource rule is needed, got none",
        ],
    );
    check_invalid(
        &format!("{}resourcs: []\n", header()),
        &[
            "resourcs: unknown field, expected one of: apiVersion, kind, resources",
            "resources: required: at least one resource rule is needed",
        ],
    );
    check_invalid("", &["<document>: the file is empty"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = format!(
        "{}resources:\n- resources: [Secrets, '*']\n  providers:\n  - secretbox: {{keys: [{{name: a, secret: \"{K16}\"}}]}}\n  - aescbc: {{keys: [{{name: b, secret: '%%%'}}]}}\n",
        header()
    );
    check_invalid(
        &text,
        &[
            "resources[0].resources[0]: \"Secrets\": resource name should not contain capital letters",
            "resources[0].resources[1]: \"*\": use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources",
            "resources[0].providers[0].secretbox.keys[0].secret: must be 32 bytes after base64 decoding, got 16",
            "resources[0].providers[1].aescbc.keys[0].secret: must be base64 encoded (standard alphabet, padded)",
        ],
    );
}

#[test]
fn wildcard_overlaps_and_masking_are_refused() {
    check_invalid(
        &format!(
            "{}resources:\n- resources: [secrets, '*.']\n  providers: [identity: {{}}]\n",
            header()
        ),
        &[
            "resources[0].resources: using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked",
        ],
    );
    check_invalid(
        &format!(
            "{}resources:\n- resources: ['*.']\n  providers: [identity: {{}}]\n- resources: [secrets]\n  providers: [identity: {{}}]\n",
            header()
        ),
        &["resources[1].resources: resource \"secrets\" is masked by earlier rule \"*.\""],
    );
    check_invalid(
        &format!(
            "{}resources:\n- resources: [deployments.apps, deployments.apps]\n  providers: [identity: {{}}]\n",
            header()
        ),
        &["resources[0].resources: \"deployments.apps\" is listed twice"],
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let text = format!(
        "{}resources:\n- resources: [secrets\n  providers: [identity: {{}}]\n",
        header()
    );
    match Config::parse(&text) {
        Err(ConfigError::Syntax { message, line }) => {
            assert!(line.is_some(), "{message}");
            assert!(message.contains("line"), "{message}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn json_configurations_parse() {
    let text = format!(
        r#"{{"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{{"resources": ["secrets"], "providers": [
              {{"aescbc": {{"keys": [{{"name": "key1", "secret": "{K0}"}}]}}}},
              {{"identity": {{}}}}]}}]}}"#
    );
    let c = Config::parse(&text).unwrap();
    assert_eq!(
        c.write_key("", "secrets"),
        Some((ProviderKind::AesCbc, "key1"))
    );
}

#[test]
fn rendering_round_trips() {
    let text = format!(
        "{}resources:\n- resources: [secrets, configmaps]\n  providers:\n  - {}\n  - {}\n  - identity: {{}}\n- resources: ['*.apps']\n  providers: [{}]\n",
        header(),
        keyed("secretbox", &[("a", K0), ("b", K1)]),
        keyed("aesgcm", &[("c", K16)]),
        keyed("aescbc", &[("d", K2)]),
    );
    let c = Config::parse(&text).unwrap();
    let yaml = c.to_yaml();
    assert!(
        yaml.starts_with("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"),
        "{yaml}"
    );
    assert_eq!(Config::parse(&yaml).unwrap(), c);
}

// ---- secrets stay secret ---------------------------------------------------

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

// ---- the default configuration file ----------------------------------------

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
