//! The namespace controller: a namespace being deleted (phase Terminating,
//! `spec.finalizers: [kubernetes]`) is emptied of every namespaced object,
//! then its `kubernetes` finalizer is removed through `namespaces/finalize`
//! and the API server deletes it — upstream's `namespace-controller`.
//! While objects remain (pods in their grace period, finalizers of other
//! controllers), the namespace's conditions say what is left, as upstream's.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::discovery::{Served, served};
use crate::informer::Change;
use crate::queue::{Next, WorkQueue, run_workers};

/// The finalizer the API server puts on every namespace.
const FINALIZER: &str = "kubernetes";
/// How soon to look again while content remains.
const RECHECK: Duration = Duration::from_secs(1);

pub(crate) async fn run(cx: Context) {
    let namespaces = cx.informers.get::<Namespace>();
    let mut changes = namespaces.subscribe();
    namespaces.ready().await;
    let queue = WorkQueue::<String>::new();
    let enqueue_terminating = {
        let (queue, namespaces) = (queue.clone(), namespaces.clone());
        move || {
            for ns in namespaces.store().state() {
                if ns.metadata.deletion_timestamp.is_some() {
                    queue.add(ns.name_any());
                }
            }
        }
    };
    enqueue_terminating();
    let feeder = {
        let queue = queue.clone();
        async move {
            while let Some(change) = changes.next().await {
                match change {
                    Change::Applied(ns) if ns.metadata.deletion_timestamp.is_some() => {
                        queue.add(ns.name_any());
                    }
                    Change::Resynced => enqueue_terminating(),
                    Change::Applied(_) | Change::Deleted(_) => {}
                }
            }
        }
    };
    let reconcile = move |name: String| {
        let (cx, namespaces) = (cx.clone(), namespaces.clone());
        async move {
            let Some(ns) = namespaces.store().get(&ObjectRef::new(&name)) else {
                return Ok::<_, kube::Error>(Next::Done);
            };
            if ns.metadata.deletion_timestamp.is_none() {
                return Ok(Next::Done);
            }
            let finalizers = ns
                .spec
                .as_ref()
                .and_then(|s| s.finalizers.clone())
                .unwrap_or_default();
            if !finalizers.iter().any(|f| f == FINALIZER) {
                return Ok(Next::Done);
            }
            let remaining = empty(&cx.client, &name).await?;
            set_conditions(&cx.client, &ns, &remaining).await?;
            if !remaining.is_empty() {
                return Ok(Next::After(RECHECK));
            }
            let mut finalized = (*ns).clone();
            if let Some(spec) = finalized.spec.as_mut() {
                spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
            }
            let api: Api<Namespace> = Api::all(cx.client.clone());
            match api
                .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
                .await
            {
                Ok(_) => Ok(Next::Done),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(Next::Done),
                Err(err) => Err(err),
            }
        }
    };
    tokio::join!(
        feeder,
        run_workers("namespace-controller", queue, 2, reconcile)
    );
}

/// Deletes everything in `namespace`; returns what remains, per resource
/// (`pods` → 2), including objects now only waiting for finalizers.
async fn empty(
    client: &kube::Client,
    namespace: &str,
) -> Result<BTreeMap<String, usize>, kube::Error> {
    let mut remaining = BTreeMap::new();
    for served in served(client).await? {
        if !served.namespaced || !served.supports("list") || !served.supports("delete") {
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &served.resource);
        let left = delete_all(&api, &served).await?;
        if left > 0 {
            remaining.insert(resource_name(&served), left);
        }
    }
    Ok(remaining)
}

fn resource_name(served: &Served) -> String {
    if served.resource.group.is_empty() {
        served.resource.plural.clone()
    } else {
        format!("{}.{}", served.resource.plural, served.resource.group)
    }
}

/// Deletes every object `api` lists (by collection when the resource
/// supports it); returns how many are still there.
async fn delete_all(api: &Api<DynamicObject>, served: &Served) -> Result<usize, kube::Error> {
    let listed = api.list(&ListParams::default()).await?;
    if listed.items.is_empty() {
        return Ok(0);
    }
    let params = DeleteParams::background();
    if served.supports("deletecollection") {
        api.delete_collection(&params, &ListParams::default())
            .await?;
    } else {
        for object in &listed.items {
            match api.delete(&object.name_any(), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(api.list(&ListParams::default()).await?.items.len())
}

/// Upstream's conditions on a terminating namespace.
async fn set_conditions(
    client: &kube::Client,
    ns: &Namespace,
    remaining: &BTreeMap<String, usize>,
) -> Result<(), kube::Error> {
    let now = Time(jiff::Timestamp::now());
    let condition = |type_: &str, status: bool, reason: &str, message: String| NamespaceCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_transition_time: Some(now.clone()),
    };
    let content = if remaining.is_empty() {
        condition(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".to_owned(),
        )
    } else {
        let listed: Vec<String> = remaining
            .iter()
            .map(|(resource, n)| format!("{resource} has {n} resource instances"))
            .collect();
        condition(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", listed.join(", ")),
        )
    };
    let conditions = vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".to_owned(),
        ),
        condition(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".to_owned(),
        ),
        content,
    ];
    let unchanged = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|old| {
            old.len() == conditions.len()
                && old.iter().zip(&conditions).all(|(a, b)| {
                    a.type_ == b.type_ && a.status == b.status && a.message == b.message
                })
        });
    if unchanged {
        return Ok(());
    }
    // An update (upstream's role grants update, not patch, on
    // namespaces/status), conditional on the cached resourceVersion.
    let api: Api<Namespace> = Api::all(client.clone());
    let mut updated = ns.clone();
    let status = updated.status.get_or_insert_with(Default::default);
    status.phase = Some("Terminating".to_owned());
    status.conditions = Some(conditions);
    match api
        .replace_status(&ns.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}
