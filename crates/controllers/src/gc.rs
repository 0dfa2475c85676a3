//! The garbage collector: objects whose owners are gone are deleted, and
//! owners deleted with `propagationPolicy: Foreground` or `Orphan` are held
//! by the API server's `foregroundDeletion` / `orphan` finalizers until
//! this controller has deleted their dependents, or released them (removed
//! the ownerReferences), and then removed the finalizer — upstream's
//! `garbagecollector`.
//!
//! It watches every deletable resource and keeps a graph of ownership by
//! UID. Absence of an owner is never concluded from the graph alone: a live
//! GET confirms it (an owner may simply not be listed yet), as upstream.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::discovery::ApiResource;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};
use serde_json::json;

use crate::Context;
use crate::discovery::served;
use crate::queue::{Next, WorkQueue, run_workers};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// Resources the collector ignores, as upstream: events are many, short
/// lived and never owners.
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// One object in the ownership graph.
#[derive(Clone, Debug)]
struct Object {
    resource: ApiResource,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

type Kinds = HashMap<(String, String), (ApiResource, bool)>;

#[derive(Default)]
struct Graph {
    objects: HashMap<String, Object>,
    /// Owner UID → dependents' UIDs (the owner may not be known yet).
    dependents: HashMap<String, HashSet<String>>,
    /// `group/kind` → resource and whether it is namespaced, for looking
    /// owners up.
    kinds: Kinds,
}

impl Graph {
    fn apply(&mut self, uid: String, object: Object) {
        if let Some(old) = self.objects.get(&uid) {
            for owner in &old.owners {
                if let Some(set) = self.dependents.get_mut(&owner.uid) {
                    set.remove(&uid);
                }
            }
        }
        for owner in &object.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
        self.objects.insert(uid, object);
    }

    fn remove(&mut self, uid: &str) -> Option<Object> {
        let old = self.objects.remove(uid)?;
        for owner in &old.owners {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
        Some(old)
    }

    fn dependents_of(&self, uid: &str) -> Vec<(String, Object)> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.objects.get(d).map(|o| (d.clone(), o.clone())))
            .collect()
    }
}

type Shared = Arc<Mutex<Graph>>;

fn lock(graph: &Shared) -> std::sync::MutexGuard<'_, Graph> {
    graph.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) async fn run(cx: Context) {
    let resources = loop {
        match served(&cx.client).await {
            Ok(resources) => break resources,
            Err(err) => {
                tracing::warn!(error = %err, "garbage collector: discovery failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        }
    };
    let graph: Shared = Arc::default();
    let queue = WorkQueue::<String>::new();
    let mut watches = tokio::task::JoinSet::new();
    for served in resources {
        let key = (served.resource.group.clone(), served.resource.kind.clone());
        lock(&graph)
            .kinds
            .insert(key, (served.resource.clone(), served.namespaced));
        let ignored = IGNORED
            .iter()
            .any(|(g, p)| served.resource.group == *g && served.resource.plural == *p);
        if ignored || !served.supports("watch") || !served.supports("delete") {
            continue;
        }
        watches.spawn(follow(
            cx.client.clone(),
            served.resource,
            Arc::clone(&graph),
            Arc::clone(&queue),
        ));
    }
    let reconcile = move |uid: String| {
        let (client, graph) = (cx.client.clone(), Arc::clone(&graph));
        async move { attempt(&client, &graph, &uid).await }
    };
    tokio::join!(
        async { while watches.join_next().await.is_some() {} },
        run_workers("garbage-collector", queue, 4, reconcile)
    );
}

/// Feeds one resource's objects into the graph, queueing the UIDs whose
/// situation may have changed.
async fn follow(
    client: kube::Client,
    resource: ApiResource,
    graph: Shared,
    queue: Arc<WorkQueue<String>>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut listing: Option<HashSet<String>> = None;
    while let Some(event) = stream.next().await {
        let Ok(event) = event else { continue };
        match event {
            watcher::Event::Init => listing = Some(HashSet::new()),
            watcher::Event::InitApply(object) => {
                if let Some(seen) = listing.as_mut() {
                    seen.insert(object.uid().unwrap_or_default());
                }
                applied(&graph, &queue, &resource, object);
            }
            watcher::Event::InitDone => {
                // Objects of this resource not listed again were deleted
                // while the watch was down.
                let Some(seen) = listing.take() else { continue };
                let gone: Vec<String> = lock(&graph)
                    .objects
                    .iter()
                    .filter(|(uid, o)| {
                        o.resource.plural == resource.plural
                            && o.resource.group == resource.group
                            && !seen.contains(*uid)
                    })
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in gone {
                    deleted(&graph, &queue, &uid);
                }
            }
            watcher::Event::Apply(object) => applied(&graph, &queue, &resource, object),
            watcher::Event::Delete(object) => {
                deleted(&graph, &queue, &object.uid().unwrap_or_default())
            }
        }
    }
}

fn applied(
    graph: &Shared,
    queue: &WorkQueue<String>,
    resource: &ApiResource,
    object: DynamicObject,
) {
    let Some(uid) = object.uid() else { return };
    let entry = Object {
        resource: resource.clone(),
        namespace: object.namespace(),
        name: object.name_any(),
        owners: object.owner_references().to_vec(),
        deleting: object.metadata.deletion_timestamp.is_some(),
        finalizers: object.finalizers().to_vec(),
    };
    let needs_work = (!entry.owners.is_empty())
        || (entry.deleting
            && entry
                .finalizers
                .iter()
                .any(|f| f == ORPHAN || f == FOREGROUND));
    let owners: Vec<String> = entry.owners.iter().map(|o| o.uid.clone()).collect();
    let deleting = entry.deleting;
    lock(graph).apply(uid.clone(), entry);
    if needs_work {
        queue.add(uid);
    }
    // A dependent being deleted may be what a foreground owner waits for.
    if deleting {
        for owner in owners {
            queue.add(owner);
        }
    }
}

fn deleted(graph: &Shared, queue: &WorkQueue<String>, uid: &str) {
    let mut graph = lock(graph);
    let removed = graph.remove(uid);
    for (dependent, _) in graph.dependents_of(uid) {
        queue.add(dependent);
    }
    if let Some(removed) = removed {
        for owner in removed.owners {
            queue.add(owner.uid);
        }
    }
}

/// Does one object's work: finish an orphaning or foreground deletion it
/// owns, or delete it (or drop dangling references) if its owners are gone.
async fn attempt(client: &kube::Client, graph: &Shared, uid: &str) -> Result<Next, kube::Error> {
    let Some(object) = lock(graph).objects.get(uid).cloned() else {
        return Ok(Next::Done);
    };
    if object.deleting && object.finalizers.iter().any(|f| f == ORPHAN) {
        let dependents = lock(graph).dependents_of(uid);
        for (_, dependent) in dependents {
            drop_owner_refs(client, &dependent, &[uid.to_owned()]).await?;
        }
        remove_finalizer(client, &object, ORPHAN).await?;
        return Ok(Next::Done);
    }
    if object.deleting && object.finalizers.iter().any(|f| f == FOREGROUND) {
        let dependents = lock(graph).dependents_of(uid);
        let mut blocking = 0;
        for (_, dependent) in &dependents {
            let blocks = dependent
                .owners
                .iter()
                .any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
            if blocks {
                blocking += 1;
            }
            if !dependent.deleting {
                delete(client, dependent, "Foreground").await?;
            }
        }
        if blocking == 0 {
            remove_finalizer(client, &object, FOREGROUND).await?;
        }
        return Ok(Next::Done);
    }
    if object.owners.is_empty() {
        return Ok(Next::Done);
    }
    let mut dangling = Vec::new();
    let mut waiting_foreground = false;
    for owner in &object.owners {
        match owner_state(client, graph, &object, owner).await? {
            OwnerState::Absent => dangling.push(owner.uid.clone()),
            OwnerState::Present { foreground } => waiting_foreground |= foreground,
        }
    }
    if dangling.is_empty() {
        if waiting_foreground && !object.deleting {
            delete(client, &object, "Foreground").await?;
        }
        return Ok(Next::Done);
    }
    if dangling.len() == object.owners.len() {
        if !object.deleting {
            tracing::debug!(name = %object.name, kind = %object.resource.kind, "deleting: its owners are gone");
            delete(client, &object, "Background").await?;
        }
    } else {
        drop_owner_refs(client, &object, &dangling).await?;
    }
    Ok(Next::Done)
}

enum OwnerState {
    Absent,
    /// `foreground`: the owner is being deleted in the foreground, so its
    /// dependents go first.
    Present {
        foreground: bool,
    },
}

async fn owner_state(
    client: &kube::Client,
    graph: &Shared,
    dependent: &Object,
    owner: &OwnerReference,
) -> Result<OwnerState, kube::Error> {
    let (known, lookup) = {
        let graph = lock(graph);
        (
            graph.objects.get(&owner.uid).cloned(),
            owner_lookup(&graph.kinds, dependent.namespace.as_deref(), owner),
        )
    };
    if let Some(known) = known {
        return Ok(OwnerState::Present {
            foreground: known.deleting && known.finalizers.iter().any(|f| f == FOREGROUND),
        });
    }
    // Not in the graph (its watch may not have listed it yet): confirm
    // with the server before concluding.
    let Some((resource, namespace)) = lookup else {
        return Ok(OwnerState::Absent);
    };
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), &ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    match api.get_opt(&owner.name).await? {
        Some(found) if found.uid().as_deref() == Some(owner.uid.as_str()) => {
            Ok(OwnerState::Present {
                foreground: found.metadata.deletion_timestamp.is_some()
                    && found.finalizers().iter().any(|f| f == FOREGROUND),
            })
        }
        _ => Ok(OwnerState::Absent),
    }
}

/// Where an owner is looked up: its resource, in the dependent's namespace
/// when the owner's kind is namespaced (an owner is never in another
/// namespace), cluster-wide when it is not (a Node owning a mirror pod, a
/// Namespace, a ClusterRole). `None`: it cannot exist — a kind the server
/// does not serve, or a namespaced owner of a cluster-scoped dependent.
fn owner_lookup(
    kinds: &Kinds,
    dependent_namespace: Option<&str>,
    owner: &OwnerReference,
) -> Option<(ApiResource, Option<String>)> {
    let group = owner.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let (resource, namespaced) = kinds.get(&(group.to_owned(), owner.kind.clone()))?;
    match (namespaced, dependent_namespace) {
        (false, _) => Some((resource.clone(), None)),
        (true, Some(ns)) => Some((resource.clone(), Some(ns.to_owned()))),
        (true, None) => None,
    }
}

fn api_for(client: &kube::Client, object: &Object) -> Api<DynamicObject> {
    match &object.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &object.resource),
        None => Api::all_with(client.clone(), &object.resource),
    }
}

async fn delete(
    client: &kube::Client,
    object: &Object,
    propagation: &str,
) -> Result<(), kube::Error> {
    let params = match propagation {
        "Foreground" => DeleteParams::foreground(),
        _ => DeleteParams::background(),
    };
    match api_for(client, object).delete(&object.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(err) => Err(err),
    }
}

/// Removes the ownerReferences to `owners` from `object` (a JSON patch with
/// a test of the current list, so a concurrent change makes it retry).
async fn drop_owner_refs(
    client: &kube::Client,
    object: &Object,
    owners: &[String],
) -> Result<(), kube::Error> {
    let api = api_for(client, object);
    let Some(current) = api.get_opt(&object.name).await? else {
        return Ok(());
    };
    let refs = current.owner_references().to_vec();
    let kept: Vec<&OwnerReference> = refs.iter().filter(|o| !owners.contains(&o.uid)).collect();
    if kept.len() == refs.len() {
        return Ok(());
    }
    // None left: the field goes, as upstream (where an empty list is
    // omitted) shows it.
    let kept = (!kept.is_empty()).then_some(kept);
    let patch = json!({"metadata": {
        "ownerReferences": kept,
        "resourceVersion": current.resource_version(),
    }});
    match api
        .patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}

async fn remove_finalizer(
    client: &kube::Client,
    object: &Object,
    finalizer: &str,
) -> Result<(), kube::Error> {
    let api = api_for(client, object);
    let Some(current) = api.get_opt(&object.name).await? else {
        return Ok(());
    };
    let finalizers: Vec<&String> = current
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    if finalizers.len() == current.finalizers().len() {
        return Ok(());
    }
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": current.resource_version(),
    }});
    match api
        .patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
        let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
        ApiResource::from_gvk_with_plural(&gvk, plural)
    }

    fn owner(api_version: &str, kind: &str) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: "o".into(),
            uid: "u".into(),
            ..OwnerReference::default()
        }
    }

    #[test]
    fn owners_are_looked_up_in_their_own_scope() {
        let kinds: Kinds = [
            (
                (String::new(), "Node".to_owned()),
                (resource("", "v1", "Node", "nodes"), false),
            ),
            (
                ("apps".to_owned(), "ReplicaSet".to_owned()),
                (resource("apps", "v1", "ReplicaSet", "replicasets"), true),
            ),
        ]
        .into();
        // A mirror pod owned by its Node: the Node is cluster-scoped, so it
        // is not looked for (and missed) in the pod's namespace.
        let (found, namespace) =
            owner_lookup(&kinds, Some("kube-system"), &owner("v1", "Node")).unwrap();
        assert_eq!((found.plural.as_str(), namespace), ("nodes", None));
        let (found, namespace) =
            owner_lookup(&kinds, Some("web"), &owner("apps/v1", "ReplicaSet")).unwrap();
        assert_eq!(
            (found.plural.as_str(), namespace.as_deref()),
            ("replicasets", Some("web"))
        );
        assert!(owner_lookup(&kinds, None, &owner("apps/v1", "ReplicaSet")).is_none());
        assert!(owner_lookup(&kinds, Some("web"), &owner("example.com/v1", "Gone")).is_none());
    }
}
