//! The root CA publisher (upstream's `root-ca-cert-publisher`): every
//! active namespace has a ConfigMap `kube-root-ca.crt` whose `ca.crt` is
//! the cluster CA, so pods can verify the API server (the service-account
//! token volume projects it next to the token). Changed or deleted, it is
//! put back.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::informer::Change;
use crate::queue::{Next, WorkQueue, run_workers};

/// The ConfigMap's name in every namespace.
pub(crate) const NAME: &str = "kube-root-ca.crt";
/// Its one key.
const KEY: &str = "ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

pub(crate) async fn run(cx: Context) {
    let Some(ca) = cx.root_ca_pem.clone() else {
        tracing::warn!("no cluster CA given: kube-root-ca.crt is not published");
        return std::future::pending().await;
    };
    let namespaces = cx.informers.get::<Namespace>();
    let config_maps = cx.informers.get::<ConfigMap>();
    let queue = WorkQueue::<String>::new();
    let (mut ns_changes, mut cm_changes) = (namespaces.subscribe(), config_maps.subscribe());
    namespaces.ready().await;
    config_maps.ready().await;
    let enqueue_all = namespaces.enqueue_all(&queue, |ns| ns.name_any());
    enqueue_all();
    let feeder = {
        let queue = Arc::clone(&queue);
        async move {
            loop {
                tokio::select! {
                    change = ns_changes.next() => match change {
                        Some(Change::Applied(ns)) => queue.add(ns.name_any()),
                        Some(Change::Deleted(_)) => {}
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                    change = cm_changes.next() => match change {
                        Some(Change::Applied(cm) | Change::Deleted(cm)) if cm.name_any() == NAME => {
                            queue.add(cm.namespace().unwrap_or_default());
                        }
                        Some(Change::Resynced) => enqueue_all(),
                        Some(_) => {}
                        None => return,
                    },
                }
            }
        }
    };
    let reconcile = move |namespace: String| {
        let (cx, namespaces, config_maps, ca) = (
            cx.clone(),
            namespaces.clone(),
            config_maps.clone(),
            ca.clone(),
        );
        async move {
            let Some(ns) = namespaces.store().get(&ObjectRef::new(&namespace)) else {
                return Ok::<_, kube::Error>(Next::Done);
            };
            if ns.metadata.deletion_timestamp.is_some()
                || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
            {
                return Ok(Next::Done);
            }
            let api: Api<ConfigMap> = Api::namespaced(cx.client.clone(), &namespace);
            let cached = config_maps
                .store()
                .get(&ObjectRef::new(NAME).within(&namespace));
            let result = match cached {
                None => {
                    api.create(&PostParams::default(), &desired(&namespace, &ca, None))
                        .await
                }
                Some(current) if up_to_date(&current, &ca) => return Ok(Next::Done),
                Some(current) => {
                    api.replace(
                        NAME,
                        &PostParams::default(),
                        &desired(&namespace, &ca, Some(&current)),
                    )
                    .await
                }
            };
            match result {
                Ok(_) => Ok(Next::Done),
                // Exists or changed under us (our cache is behind: its event
                // requeues us), or the namespace is going away.
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => Ok(Next::Done),
                Err(err) => Err(err),
            }
        }
    };
    tokio::join!(
        feeder,
        run_workers("root-ca-cert-publisher", queue, 2, reconcile)
    );
}

fn up_to_date(current: &ConfigMap, ca: &str) -> bool {
    let data_ok = current
        .data
        .as_ref()
        .is_some_and(|d| d.len() == 1 && d.get(KEY).map(String::as_str) == Some(ca));
    let binary_ok = current.binary_data.as_ref().is_none_or(BTreeMap::is_empty);
    let described = current
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|d| d == DESCRIPTION);
    data_ok && binary_ok && described
}

/// The ConfigMap as it should be; an existing one keeps its other
/// metadata (labels, other annotations) and resourceVersion.
fn desired(namespace: &str, ca: &str, current: Option<&ConfigMap>) -> ConfigMap {
    let mut metadata = current.map(|c| c.metadata.clone()).unwrap_or(ObjectMeta {
        name: Some(NAME.to_owned()),
        namespace: Some(namespace.to_owned()),
        ..ObjectMeta::default()
    });
    metadata.managed_fields = None;
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.to_owned(), DESCRIPTION.to_owned());
    ConfigMap {
        metadata,
        data: Some(BTreeMap::from([(KEY.to_owned(), ca.to_owned())])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_or_undescribed_config_map_is_not_up_to_date() {
        let good = desired("ns", "CA", None);
        assert!(up_to_date(&good, "CA"));
        assert!(!up_to_date(&good, "NEW CA"));
        let mut extra = good.clone();
        extra.data.as_mut().unwrap().insert("x".into(), "y".into());
        assert!(!up_to_date(&extra, "CA"));
        let mut bare = good.clone();
        bare.metadata.annotations = None;
        assert!(!up_to_date(&bare, "CA"));
        assert!(up_to_date(&desired("ns", "CA", Some(&bare)), "CA"));
    }
}
