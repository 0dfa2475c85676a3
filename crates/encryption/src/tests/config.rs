//! Parsing, validation, rendering and resource matching.

use crate::ProviderKind;

use super::*;

// ---- resources and wildcards

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

// ---- malformed configurations

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
    check_invalid(
        &format!(
            "{}resources:\n- resources: ['*.*', secrets, configmaps]\n  providers: [identity: {{}}]\n",
            header()
        ),
        &[
            "resources[0].resources: using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked",
        ],
    );
    check_invalid(
        &format!(
            "{}resources:\n- resources: [secrets]\n  providers: [identity: {{keys: []}}]\n",
            header()
        ),
        &["resources[0].providers[0].identity: identity takes no fields, write {}"],
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

#[test]
fn field_errors_name_their_line() {
    let text = "\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      - identity: {}
      - aescbc:
          keys:
            - name: key1
              secret: AAECAwQFBgcICQoLDA0ODw==
  - resources: [configmaps]
";
    let Err(ConfigError::Invalid { errors }) = Config::parse(text) else {
        panic!("expected Invalid");
    };
    let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "line 11: resources[0].providers[1].aescbc.keys[0].secret: must be 32 bytes after \
             base64 decoding, got 16",
            // A missing field is placed at its parent.
            "line 12: resources[1].providers: required: at least one provider is needed",
        ]
    );
}

#[test]
fn field_errors_in_json_name_their_line() {
    let text = format!(
        "{{\n  \"apiVersion\": \"apiserver.config.k8s.io/v1\",\n  \"kind\": \"EncryptionConfiguration\",\n  \
         \"resources\": [\n    {{\n      \"resources\": [\"secrets\"],\n      \"providers\": [\n        \
         {{\"identity\": {{}}}},\n        {{\"secretbox\": {{\"keys\": [{{\"name\": \"k\", \"secret\": \"{K16}\"}}]}}}}\n      \
         ]\n    }}\n  ]\n}}\n"
    );
    let Err(ConfigError::Invalid { errors }) = Config::parse(&text) else {
        panic!("expected Invalid");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, Some(9), "{text}");
}
