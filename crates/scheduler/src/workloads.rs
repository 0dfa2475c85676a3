//! What upstream's default topology spreading needs: the selectors of the
//! Services, ReplicationControllers, ReplicaSets and StatefulSets a pod
//! belongs to (`helper.DefaultSelector`).

use std::collections::{BTreeMap, HashMap};

use crate::selectors::Selector;
use crate::snapshot::PodInfo;

type Labels = BTreeMap<String, String>;

/// Services' selectors and controllers' selectors, by namespace and name.
#[derive(Debug, Default)]
pub(crate) struct Workloads {
    /// namespace → service name → `spec.selector` (nil selectors are not kept).
    services: HashMap<String, HashMap<String, Labels>>,
    /// (kind, namespace, name) → selector.
    controllers: HashMap<(&'static str, String, String), Selector>,
}

/// The controller kinds upstream's `DefaultSelector` follows, by
/// (apiVersion, kind) of the owner reference.
pub(crate) fn controller_kind(api_version: &str, kind: &str) -> Option<&'static str> {
    match (api_version, kind) {
        ("v1", "ReplicationController") => Some("ReplicationController"),
        ("apps/v1", "ReplicaSet") => Some("ReplicaSet"),
        ("apps/v1", "StatefulSet") => Some("StatefulSet"),
        _ => None,
    }
}

impl Workloads {
    pub(crate) fn set_service(&mut self, namespace: &str, name: &str, selector: Option<Labels>) {
        let by_name = self.services.entry(namespace.to_owned()).or_default();
        match selector {
            Some(s) => {
                by_name.insert(name.to_owned(), s);
            }
            None => {
                by_name.remove(name);
            }
        }
    }

    pub(crate) fn remove_service(&mut self, namespace: &str, name: &str) {
        self.set_service(namespace, name, None);
    }

    pub(crate) fn set_controller(
        &mut self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        selector: Selector,
    ) {
        self.controllers
            .insert((kind, namespace.to_owned(), name.to_owned()), selector);
    }

    pub(crate) fn remove_controller(&mut self, kind: &'static str, namespace: &str, name: &str) {
        self.controllers
            .remove(&(kind, namespace.to_owned(), name.to_owned()));
    }

    /// The selector of the pod's Services and controlling workload; `None`
    /// when it is empty (then no default constraints apply).
    pub(crate) fn default_selector(&self, pod: &PodInfo) -> Option<Selector> {
        let labels = pod.labels();
        let mut set = Labels::new();
        for selector in self
            .services
            .get(pod.namespace())
            .into_iter()
            .flat_map(|m| m.values())
        {
            if selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                set.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let mut selector = Selector::from_labels(&set);
        let owner = pod
            .pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        if let Some(o) = owner
            && let Some(kind) = controller_kind(&o.api_version, &o.kind)
            && let Some(theirs) =
                self.controllers
                    .get(&(kind, pod.namespace().to_owned(), o.name.clone()))
        {
            selector = selector.and(theirs);
        }
        (!selector.is_empty()).then_some(selector)
    }
}
