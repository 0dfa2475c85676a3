//! Shared informers: one watch and one cache per resource type for the
//! whole controller manager (as client-go's SharedInformerFactory), however
//! many controllers read it. Controllers look objects up in the cache and
//! subscribe to changes to learn which keys to reconcile.
//!
//! The watches run as the controller manager's own identity
//! (`system:kube-controller-manager` may list and watch everything); the
//! controllers write with their own, narrower identities.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt as _;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

use crate::queue::WorkQueue;

/// A change seen by an informer.
#[derive(Debug)]
pub(crate) enum Change<K> {
    /// Created or updated (or listed again after a relist).
    Applied(Arc<K>),
    /// Deleted (its last state).
    Deleted(Arc<K>),
    /// The watch restarted and the cache was rebuilt: changes may have been
    /// missed, so reconcile everything.
    Resynced,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied(k) => Change::Applied(Arc::clone(k)),
            Change::Deleted(k) => Change::Deleted(Arc::clone(k)),
            Change::Resynced => Change::Resynced,
        }
    }
}

/// One resource type's cache and change feed.
pub(crate) struct Informer<K: 'static + Resource<DynamicType = ()> + Clone> {
    store: Store<K>,
    changes: broadcast::Sender<Change<K>>,
    /// True once the first list is in the cache. (Not the store's own
    /// `wait_until_ready`: its one-shot remembers only the last waiter's
    /// waker, so of two controllers waiting at once one slept forever.)
    synced: watch::Receiver<bool>,
}

impl<K: 'static + Resource<DynamicType = ()> + Clone> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            changes: self.changes.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// The cache (complete once `ready` returned).
    pub(crate) fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Waits until the first list is in the cache.
    pub(crate) async fn ready(&self) {
        let _ = self.synced.clone().wait_for(|synced| *synced).await;
    }

    /// A full pass for a controller (at start, and on `Resynced`): queues
    /// `key` of every object in the cache.
    pub(crate) fn enqueue_all(
        &self,
        queue: &Arc<WorkQueue<String>>,
        key: fn(&K) -> String,
    ) -> impl Fn() + Send + Sync + 'static {
        let (queue, store) = (Arc::clone(queue), self.store.clone());
        move || {
            for object in store.state() {
                queue.add(key(&object));
            }
        }
    }

    /// Changes from now on. A subscriber that falls behind gets `Resynced`.
    pub(crate) fn subscribe(&self) -> Subscription<K> {
        Subscription {
            rx: self.changes.subscribe(),
        }
    }
}

/// A subscriber's view of an informer's changes.
pub(crate) struct Subscription<K> {
    rx: broadcast::Receiver<Change<K>>,
}

impl<K> Subscription<K> {
    /// The next change; `None` when the informer stopped.
    pub(crate) async fn next(&mut self) -> Option<Change<K>> {
        match self.rx.recv().await {
            Ok(change) => Some(change),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::Resynced),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// The informers of one controller manager, created on first use.
#[derive(Clone)]
pub(crate) struct Informers {
    client: kube::Client,
    made: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

/// Changes buffered per informer before slow subscribers are told to resync.
const CHANGE_BUFFER: usize = 16 * 1024;

impl Informers {
    pub(crate) fn new(client: kube::Client) -> Self {
        Informers {
            client,
            made: Arc::default(),
        }
    }

    /// The informer for `K` across all namespaces.
    pub(crate) fn get<K>(&self) -> Informer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(informer) = made
            .get(&TypeId::of::<K>())
            .and_then(|any| any.downcast_ref::<Informer<K>>())
        {
            return informer.clone();
        }
        let (store, writer) = reflector::store::<K>();
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let (synced_tx, synced) = watch::channel(false);
        let informer = Informer {
            store,
            changes: changes.clone(),
            synced,
        };
        made.insert(TypeId::of::<K>(), Box::new(informer.clone()));
        let api: Api<K> = Api::all(self.client.clone());
        tokio::spawn(feed(api, writer, changes, synced_tx));
        informer
    }
}

async fn feed<K>(
    api: Api<K>,
    mut writer: reflector::store::Writer<K>,
    changes: broadcast::Sender<Change<K>>,
    synced: watch::Sender<bool>,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let mut event = match event {
            Ok(event) => event,
            Err(err) => {
                tracing::debug!(kind = %K::kind(&()), error = %err, "informer watch failed; retrying");
                continue;
            }
        };
        // No controller reads managedFields, and they are a large part of
        // every object: the caches go without them, as upstream's
        // controller manager trims them. (Writes from a cached object keep
        // the stored managedFields: the server takes them from the stored
        // object.)
        if let watcher::Event::Apply(object)
        | watcher::Event::InitApply(object)
        | watcher::Event::Delete(object) = &mut event
        {
            object.meta_mut().managed_fields = None;
        }
        writer.apply_watcher_event(&event);
        if matches!(event, watcher::Event::InitDone) {
            synced.send_replace(true);
        }
        let change = match event {
            watcher::Event::Apply(object) => Change::Applied(Arc::new(object)),
            watcher::Event::Delete(object) => Change::Deleted(Arc::new(object)),
            watcher::Event::InitDone => Change::Resynced,
            watcher::Event::Init | watcher::Event::InitApply(_) => continue,
        };
        // No subscribers yet is fine: they reconcile everything at start.
        let _ = changes.send(change);
    }
}
