//! Controller references, as upstream's `ControllerRefManager`: which
//! objects a controller owns, which orphans it may adopt (they match its
//! selector) and which it must release (they stopped matching). Pure: the
//! callers send the patches.

use bulwark_api::labels::LabelSelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{self as meta, ObjectMeta, OwnerReference};
use kube::Resource;
use serde_json::{Value, json};

/// What a controller should do about one candidate object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Ours and matching: keep it.
    Keep,
    /// An orphan that matches: take it.
    Adopt,
    /// Ours but no longer matching: let it go.
    Release,
    /// Someone else's, or not ours to take.
    Ignore,
}

/// The reference naming `owner` as the controller of its dependents.
pub(crate) fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    let meta = owner.meta();
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The controller of an object, if any.
pub(crate) fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// The controller's selector as a matcher; an invalid one matches nothing
/// (validation keeps those out).
pub(crate) fn selector(selector: &meta::LabelSelector) -> LabelSelector {
    serde_json::to_value(selector)
        .ok()
        .and_then(|value| LabelSelector::from_object(&value).ok())
        .unwrap_or_else(LabelSelector::nothing)
}

/// Whether a selector is empty (selects every object), which upstream's
/// controllers refuse to act on.
pub(crate) fn selects_everything(selector: &meta::LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
}

/// Whether labels match.
pub(crate) fn matches(selector: &LabelSelector, meta: &ObjectMeta) -> bool {
    let empty = Default::default();
    selector.matches(meta.labels.as_ref().unwrap_or(&empty))
}

/// Upstream's `ClaimObject` decision for one candidate of an owner with
/// `owner_uid` (`owner_deleting`: its deletionTimestamp is set).
pub(crate) fn claim(
    owner_uid: &str,
    owner_deleting: bool,
    selector: &LabelSelector,
    candidate: &ObjectMeta,
) -> Claim {
    let matching = matches(selector, candidate);
    match controller_of(candidate) {
        Some(owner) if owner.uid != owner_uid => Claim::Ignore,
        Some(_) if matching => Claim::Keep,
        // A deleting owner leaves its dependents to the garbage collector.
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if !matching || owner_deleting || candidate.deletion_timestamp.is_some() => {
            Claim::Ignore
        }
        None => Claim::Adopt,
    }
}

/// The strategic merge patch that adopts an object (upstream's, guarded by
/// the object's uid).
pub(crate) fn adopt_patch(owner: &OwnerReference, uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [owner], "uid": uid}})
}

/// The strategic merge patch that releases an object from `owner_uid`.
pub(crate) fn release_patch(owner_uid: &str, uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": uid}})
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn meta(labels: &[(&str, &str)], owner: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            owner_references: owner.map(|uid| {
                vec![OwnerReference {
                    uid: uid.to_owned(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn claims_follow_upstream() {
        let sel = LabelSelector::parse("app=web").unwrap();
        let cases = [
            // (labels, controller, owner deleting, expected)
            (&[("app", "web")][..], None, false, Claim::Adopt),
            (&[("app", "web")], None, true, Claim::Ignore),
            (&[("app", "db")], None, false, Claim::Ignore),
            (&[("app", "web")], Some("me"), false, Claim::Keep),
            (&[("app", "db")], Some("me"), false, Claim::Release),
            (&[("app", "db")], Some("me"), true, Claim::Ignore),
            (&[("app", "web")], Some("other"), false, Claim::Ignore),
        ];
        for (labels, owner, deleting, expected) in cases {
            assert_eq!(
                claim("me", deleting, &sel, &meta(labels, owner)),
                expected,
                "{labels:?} {owner:?} {deleting}"
            );
        }
    }

    #[test]
    fn an_empty_selector_selects_everything() {
        assert!(selects_everything(&meta::LabelSelector::default()));
        let sel = meta::LabelSelector {
            match_labels: Some(BTreeMap::from([("a".into(), "b".into())])),
            ..Default::default()
        };
        assert!(!selects_everything(&sel));
        assert!(matches(&selector(&sel), &meta(&[("a", "b")], None)));
    }
}
