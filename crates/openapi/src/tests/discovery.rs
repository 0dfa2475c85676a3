//! `GET /openapi/v3`, and what each document holds.

use super::{SERVED, document, served_group_versions};
use crate::{discovery, document_hash, group_version_document};
use expect_test::expect;

#[test]
fn discovery_lists_exactly_the_served_group_versions() {
    let root = discovery(SERVED);
    let keys: Vec<&String> = root["paths"].as_object().expect("paths").keys().collect();
    expect![[r#"
        [
            "api/v1",
            "apis/apiextensions.k8s.io/v1",
            "apis/apps/v1",
            "apis/authentication.k8s.io/v1",
            "apis/authorization.k8s.io/v1",
            "apis/batch/v1",
            "apis/coordination.k8s.io/v1",
            "apis/discovery.k8s.io/v1",
            "apis/events.k8s.io/v1",
            "apis/networking.k8s.io/v1",
            "apis/policy/v1",
            "apis/rbac.authorization.k8s.io/v1",
            "apis/scheduling.k8s.io/v1",
            "apis/stable.example.com/v1",
        ]
    "#]]
    .assert_debug_eq(&keys);
    for (key, entry) in root["paths"].as_object().expect("paths") {
        let url = entry["serverRelativeURL"].as_str().expect("url");
        let (path, hash) = url.split_once("?hash=").expect("hash");
        assert_eq!(path, format!("/openapi/v3/{key}"));
        assert_eq!(hash.len(), 128);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }
    assert!(group_version_document(SERVED, "apps", "v2").is_none());
    assert!(group_version_document(SERVED, "autoscaling", "v1").is_none());
    assert_eq!(discovery(&[]), serde_json::json!({"paths": {}}));
}

#[test]
fn generation_is_deterministic_and_order_blind() {
    let first = discovery(SERVED);
    assert_eq!(first, discovery(SERVED));
    let mut reversed = SERVED.to_vec();
    reversed.reverse();
    assert_eq!(first, discovery(&reversed));
    let doc = document("", "v1");
    assert_eq!(
        first["paths"]["api/v1"]["serverRelativeURL"],
        format!("/openapi/v3/api/v1?hash={}", document_hash(&doc))
    );
}

#[test]
fn documents_hold_only_their_group_versions_paths() {
    for (group, version) in served_group_versions() {
        let doc = document(group, version);
        let prefix = if group.is_empty() {
            format!("/api/{version}/")
        } else {
            format!("/apis/{group}/{version}/")
        };
        for path in doc["paths"].as_object().expect("paths").keys() {
            assert!(path.starts_with(&prefix), "{path}");
        }
    }
}
