//! What the controllers that own pods share: label selectors, controller
//! references, pod states as upstream's `controller_utils` reads them, and
//! expectations (what a controller did that its caches have not shown yet).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{Resource, ResourceExt as _};

pub(crate) use crate::ownership::controller_ref;
pub(crate) use crate::pods::{is_active, is_ready};

/// Whether `labels` satisfy `selector` (an empty selector matches
/// everything; a missing one, nothing — as upstream's workloads read it).
pub(crate) fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.is_some_and(|s| crate::ownership::selector(s).matches(labels))
}

/// The uid of the object controlling `object`, if any.
pub(crate) fn controller_uid<K: Resource>(object: &K) -> Option<&str> {
    crate::ownership::controller_of(object.meta()).map(|o| o.uid.as_str())
}

/// The `namespace/name` key of the `kind` controlling `object`, if one
/// does: which owner's controller a child's change concerns.
pub(crate) fn controller_key<K: Resource>(object: &K, kind: &str) -> Option<String> {
    crate::ownership::controller_of(object.meta())
        .filter(|owner| owner.kind == kind)
        .map(|owner| {
            format!(
                "{}/{}",
                object.meta().namespace.as_deref().unwrap_or_default(),
                owner.name
            )
        })
}

/// The pod's phase (`Pending` when unset).
pub(crate) fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Upstream forgets an expectation after five minutes, in case a watch
/// event was lost; Bulwark does the same.
const EXPECTATION_TTL: Duration = Duration::from_secs(300);

/// Pods a controller created or deleted that its pod cache has not shown
/// yet, per owner key, so that a reconcile running on a stale cache neither
/// creates twice nor deletes twice (upstream's `ControllerExpectations`).
#[derive(Default)]
pub(crate) struct Expectations {
    owners: Mutex<HashMap<String, Pending>>,
}

#[derive(Default)]
struct Pending {
    /// Created pod name → its tag (the node, the completion index) and when.
    created: HashMap<String, (Option<String>, Instant)>,
    /// Deleted pod uid → when.
    deleted: HashMap<String, Instant>,
}

/// What the cache has not shown yet, for one owner.
#[derive(Debug, Default)]
pub(crate) struct Unseen {
    /// Tags of created pods not in the cache yet.
    pub(crate) created: Vec<Option<String>>,
    /// Uids of deleted pods the cache still shows as active.
    pub(crate) deleted: HashSet<String>,
}

impl Expectations {
    pub(crate) fn created(&self, owner: &str, pod: &str, tag: Option<String>) {
        self.lock()
            .entry(owner.to_owned())
            .or_default()
            .created
            .insert(pod.to_owned(), (tag, Instant::now()));
    }

    pub(crate) fn deleted(&self, owner: &str, uid: &str) {
        self.lock()
            .entry(owner.to_owned())
            .or_default()
            .deleted
            .insert(uid.to_owned(), Instant::now());
    }

    /// Forgets what `pods` (the owner's pods in the cache) show, and returns
    /// the rest.
    pub(crate) fn settle(&self, owner: &str, pods: &[&Pod]) -> Unseen {
        let mut owners = self.lock();
        let Some(pending) = owners.get_mut(owner) else {
            return Unseen::default();
        };
        let names: HashSet<String> = pods.iter().map(|p| p.name_any()).collect();
        let active: HashSet<&str> = pods
            .iter()
            .filter(|p| is_active(p))
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        pending
            .created
            .retain(|name, (_, at)| !names.contains(name) && at.elapsed() < EXPECTATION_TTL);
        pending
            .deleted
            .retain(|uid, at| active.contains(uid.as_str()) && at.elapsed() < EXPECTATION_TTL);
        let unseen = Unseen {
            created: pending.created.values().map(|(t, _)| t.clone()).collect(),
            deleted: pending.deleted.keys().cloned().collect(),
        };
        if pending.created.is_empty() && pending.deleted.is_empty() {
            owners.remove(owner);
        }
        unseen
    }

    pub(crate) fn forget(&self, owner: &str) {
        self.lock().remove(owner);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `namespace/name`, the key the controllers queue.
pub(crate) fn key_of<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

/// Splits a `namespace/name` key.
pub(crate) fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("app", "a")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        let cases = [
            (&[("app", "a")][..], true),
            (&[("app", "a"), ("tier", "web")][..], true),
            (&[("app", "a"), ("tier", "db")][..], false),
            (&[("app", "b")][..], false),
        ];
        for (pod, want) in cases {
            assert_eq!(
                selector_matches(Some(&selector), &labels(pod)),
                want,
                "{pod:?}"
            );
        }
        assert!(!selector_matches(None, &labels(&[("app", "a")])));
        assert!(selector_matches(
            Some(&LabelSelector::default()),
            &labels(&[])
        ));
    }

    #[test]
    fn expectations_last_until_the_cache_shows_them() {
        let e = Expectations::default();
        e.created("ns/j", "j-abc", Some("0".into()));
        assert_eq!(e.settle("ns/j", &[]).created, vec![Some("0".into())]);
        let pod = Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("j-abc".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            ..Pod::default()
        };
        assert!(e.settle("ns/j", &[&pod]).created.is_empty());
        e.deleted("ns/j", "u");
        assert!(e.settle("ns/j", &[&pod]).deleted.contains("u"));
        assert!(e.settle("ns/j", &[]).deleted.is_empty(), "gone: seen");
    }
}
