//! The resourcequota controller (upstream's of that name): keeps each
//! ResourceQuota's `status.hard` equal to its `spec.hard` and its
//! `status.used` equal to what the namespace's objects use of it, so the
//! API server's ResourceQuota admission charges new objects against true
//! figures and deleted objects give their share back.
//!
//! Usage is counted from LISTs made as the controller's own service
//! account (`system:controller:resourcequota-controller`: list and watch
//! everything, update `resourcequotas/status`), with the arithmetic of
//! `bulwark_api::quota` that admission uses. A namespace is recounted when
//! one of its quotas changes, when a pod, Service or ConfigMap in it is
//! deleted (or a pod finishes), and every [`RESYNC`] for everything else.
//! Status writes carry the quota's resourceVersion: admission charging in
//! between makes the write fail, and the namespace is recounted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark_api::quantity::Quantity;
use bulwark_api::quota;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::{ResourceExt as _, discovery};
use serde_json::Value;

use crate::Context;
use crate::informer::Change;
use crate::queue::{Next, WorkQueue, run_workers};

/// How often every namespace with a quota is recounted (upstream's
/// `--resource-quota-sync-period` is 5 minutes; recounting is cheap here
/// and replenishes what no watched deletion announced).
const RESYNC: Duration = Duration::from_secs(30);

pub(crate) async fn run(cx: Context) {
    let quotas = cx.informers.get::<ResourceQuota>();
    let pods = cx.informers.get::<Pod>();
    let services = cx.informers.get::<Service>();
    let config_maps = cx.informers.get::<ConfigMap>();
    let queue = WorkQueue::<String>::new();
    let mut quota_changes = quotas.subscribe();
    let (mut pod_changes, mut svc_changes, mut cm_changes) = (
        pods.subscribe(),
        services.subscribe(),
        config_maps.subscribe(),
    );
    quotas.ready().await;
    let enqueue_all = {
        let (queue, quotas) = (Arc::clone(&queue), quotas.clone());
        move || {
            let namespaces: BTreeSet<String> = quotas
                .store()
                .state()
                .iter()
                .filter_map(|q| q.namespace())
                .collect();
            for ns in namespaces {
                queue.add(ns);
            }
        }
    };
    enqueue_all();
    let has_quota = {
        let quotas = quotas.clone();
        move |ns: Option<String>| -> Option<String> {
            let ns = ns?;
            quotas
                .store()
                .state()
                .iter()
                .any(|q| q.namespace().as_deref() == Some(ns.as_str()))
                .then_some(ns)
        }
    };
    let feeder = {
        let queue = Arc::clone(&queue);
        async move {
            let mut resync = tokio::time::interval(RESYNC);
            loop {
                let namespace = tokio::select! {
                    _ = resync.tick() => { enqueue_all(); continue; }
                    change = quota_changes.next() => match change {
                        // As upstream, only a spec that status.hard does
                        // not follow yet asks for a recount: status-only
                        // updates are this controller's own or admission's
                        // charges, and recounting on a charge could count
                        // before the charged object is written and undo it.
                        Some(Change::Applied(q)) if status_follows_spec(&q) => continue,
                        Some(Change::Applied(q) | Change::Deleted(q)) => q.namespace(),
                        Some(Change::Resynced) => { enqueue_all(); continue; }
                        None => return,
                    },
                    change = pod_changes.next() => match change {
                        Some(Change::Deleted(p)) => has_quota(p.namespace()),
                        Some(Change::Applied(p)) if pod_finished(&p) => has_quota(p.namespace()),
                        Some(_) => continue,
                        None => return,
                    },
                    change = svc_changes.next() => match change {
                        Some(Change::Deleted(s)) => has_quota(s.namespace()),
                        Some(_) => continue,
                        None => return,
                    },
                    change = cm_changes.next() => match change {
                        Some(Change::Deleted(c)) => has_quota(c.namespace()),
                        Some(_) => continue,
                        None => return,
                    },
                };
                if let Some(ns) = namespace {
                    queue.add(ns);
                }
            }
        }
    };
    let kinds = Arc::new(Kinds::default());
    let reconcile = move |namespace: String| {
        let (client, quotas, kinds) = (cx.client.clone(), quotas.clone(), Arc::clone(&kinds));
        async move {
            let in_namespace: Vec<Arc<ResourceQuota>> = quotas
                .store()
                .state()
                .into_iter()
                .filter(|q| q.namespace().as_deref() == Some(namespace.as_str()))
                .collect();
            sync_namespace(&client, &kinds, &namespace, &in_namespace).await?;
            Ok::<_, kube::Error>(Next::Done)
        }
    };
    tokio::join!(
        feeder,
        run_workers("resourcequota-controller", queue, 2, reconcile)
    );
}

/// Whether the quota's `status.hard` already mirrors its `spec.hard`.
fn status_follows_spec(q: &ResourceQuota) -> bool {
    let spec = q.spec.as_ref().and_then(|s| s.hard.as_ref());
    let status = q.status.as_ref().and_then(|s| s.hard.as_ref());
    spec == status
}

/// A pod that just finished gives its compute quota back.
fn pod_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Recounts every quota of `namespace` and writes the statuses that changed.
async fn sync_namespace(
    client: &kube::Client,
    kinds: &Kinds,
    namespace: &str,
    quotas: &[Arc<ResourceQuota>],
) -> Result<(), kube::Error> {
    // Each object type any quota tracks, listed once for the namespace.
    let mut listed: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for q in quotas {
        for name in q
            .spec
            .as_ref()
            .and_then(|s| s.hard.as_ref())
            .into_iter()
            .flatten()
            .map(|(n, _)| n)
        {
            let Some(kind) = kind_of(name) else { continue };
            if listed.contains_key(&kind) {
                continue;
            }
            let objects = match kinds.resource(client, &kind.0, &kind.1).await? {
                Some(resource) => {
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(client.clone(), namespace, &resource);
                    api.list(&ListParams::default())
                        .await?
                        .items
                        .into_iter()
                        .filter_map(|o| serde_json::to_value(o).ok())
                        .collect()
                }
                None => Vec::new(),
            };
            listed.insert(kind, objects);
        }
    }
    for q in quotas {
        let value = serde_json::to_value(q.as_ref()).unwrap_or(Value::Null);
        let hard = quota::resource_list(value.pointer("/spec/hard"));
        let mut total = quota::ResourceList::new();
        for ((group, plural), objects) in &listed {
            if !hard.keys().any(|n| quota::tracks(group, plural, n)) {
                continue;
            }
            for object in objects {
                if quota::scopes_match(&value, group, plural, object) {
                    quota::add_into(&mut total, &quota::usage(group, plural, object));
                }
            }
        }
        let used: quota::ResourceList = hard
            .keys()
            .map(|n| {
                let have = total.get(n).cloned().unwrap_or_else(Quantity::zero);
                (n.clone(), have)
            })
            .collect();
        let status_hard = quota::resource_list(value.pointer("/status/hard"));
        let status_used = quota::resource_list(value.pointer("/status/used"));
        if status_hard == hard
            && status_used == used
            && status_hard.keys().eq(hard.keys())
            && status_used.keys().eq(used.keys())
        {
            continue;
        }
        let mut updated = value.clone();
        updated["status"] = serde_json::json!({
            "hard": quota::to_json(&hard),
            "used": quota::to_json(&used),
        });
        let updated: ResourceQuota = match serde_json::from_value(updated) {
            Ok(q) => q,
            Err(err) => {
                tracing::warn!(quota = %q.name_any(), %namespace, %err, "cannot build the quota's status");
                continue;
            }
        };
        let api: Api<ResourceQuota> = Api::namespaced(client.clone(), namespace);
        match api
            .replace_status(&q.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            // Charged by admission or changed since our cache saw it: its
            // event brings us back with the newer object.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// The object type (group, plural) a quota resource name counts.
fn kind_of(name: &str) -> Option<(String, String)> {
    let core = |plural: &str| Some((String::new(), plural.to_owned()));
    if let Some(counted) = name.strip_prefix("count/") {
        return match counted.split_once('.') {
            Some((plural, group)) => Some((group.to_owned(), plural.to_owned())),
            None => core(counted),
        };
    }
    match name {
        "pods" | "cpu" | "memory" | "ephemeral-storage" => core("pods"),
        "services" | "services.loadbalancers" | "services.nodeports" => core("services"),
        "configmaps"
        | "secrets"
        | "replicationcontrollers"
        | "resourcequotas"
        | "persistentvolumeclaims" => core(name),
        "requests.storage" => core("persistentvolumeclaims"),
        n if n.contains(".storageclass.storage.k8s.io/") => core("persistentvolumeclaims"),
        n if n.starts_with("requests.")
            || n.starts_with("limits.")
            || n.starts_with("hugepages-") =>
        {
            core("pods")
        }
        _ => None,
    }
}

/// Where each (group, plural) is served, found through discovery once.
#[derive(Default)]
struct Kinds {
    found: Mutex<HashMap<(String, String), Option<ApiResource>>>,
}

impl Kinds {
    async fn resource(
        &self,
        client: &kube::Client,
        group: &str,
        plural: &str,
    ) -> Result<Option<ApiResource>, kube::Error> {
        let key = (group.to_owned(), plural.to_owned());
        if let Some(found) = self.found.lock().expect("kinds lock").get(&key) {
            return Ok(found.clone());
        }
        let found = if group.is_empty() {
            Some(ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: String::new(),
                plural: plural.to_owned(),
            })
        } else {
            match discovery::group(client, group).await {
                Ok(served) => served
                    .recommended_resources()
                    .into_iter()
                    .map(|(resource, _)| resource)
                    .find(|r| r.plural == plural),
                Err(kube::Error::Api(s)) if s.code == 404 => None,
                Err(err) => return Err(err),
            }
        };
        self.found
            .lock()
            .expect("kinds lock")
            .insert(key, found.clone());
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_names_map_to_the_objects_they_count() {
        let kind = |n| kind_of(n).map(|(g, p)| format!("{g}/{p}"));
        assert_eq!(kind("requests.cpu").as_deref(), Some("/pods"));
        assert_eq!(kind("pods").as_deref(), Some("/pods"));
        assert_eq!(kind("services.nodeports").as_deref(), Some("/services"));
        assert_eq!(
            kind("count/deployments.apps").as_deref(),
            Some("apps/deployments")
        );
        assert_eq!(kind("count/secrets").as_deref(), Some("/secrets"));
        assert_eq!(
            kind("gold.storageclass.storage.k8s.io/requests.storage").as_deref(),
            Some("/persistentvolumeclaims")
        );
        assert_eq!(kind("unknown"), None);
    }
}
