//! The crate's behaviour, case by case.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use crate::{Config, ConfigError};

mod config;
mod crypto;
mod file;
mod rotation;

/// bytes 0..32, 32..64, 64..96, 0..16 and 0..24, base64-encoded.
pub(super) const K0: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub(super) const K1: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
pub(super) const K2: &str = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";
pub(super) const K16: &str = "AAECAwQFBgcICQoLDA0ODw==";
pub(super) const K24: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";

pub(super) const CTX: &[u8] = b"/registry/secrets/default/db";
pub(super) const PLAIN: &[u8] = b"password=hunter2";

/// A configuration for `secrets` with the given providers (YAML flow lists).
pub(super) fn secrets(providers: &[&str]) -> Config {
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

pub(super) fn keyed(provider: &str, keys: &[(&str, &str)]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(n, s)| format!("{{name: {n}, secret: \"{s}\"}}"))
        .collect();
    format!("{provider}: {{keys: [{}]}}", keys.join(", "))
}

/// Parses `text` expecting it to be refused with exactly `messages`.
pub(super) fn check_invalid(text: &str, messages: &[&str]) {
    match Config::parse(text) {
        Err(ConfigError::Invalid { errors }) => {
            let got: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect();
            assert_eq!(got, messages, "for:\n{text}");
        }
        other => panic!("expected Invalid, got {other:?} for:\n{text}"),
    }
}

pub(super) fn header() -> &'static str {
    "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
