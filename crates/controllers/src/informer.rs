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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt as _;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

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
    changes: Arc<Fanout<K>>,
    /// True once the first list is in the cache. (Not the store's own
    /// `wait_until_ready`: its one-shot remembers only the last waiter's
    /// waker, so of two controllers waiting at once one slept forever.)
    synced: watch::Receiver<bool>,
}

impl<K: 'static + Resource<DynamicType = ()> + Clone> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            changes: Arc::clone(&self.changes),
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
        self.changes.subscribe()
    }
}

/// An informer's change feed: a queue per subscriber, so a change is
/// freed as soon as every subscriber has taken it. (A broadcast ring
/// would keep the last thousands of changes — superseded objects — alive
/// whether or not anyone still needs them: a third of the controller
/// manager's memory during a large rollout.)
struct Fanout<K> {
    subscribers: Mutex<Vec<Subscriber<K>>>,
}

struct Subscriber<K> {
    tx: mpsc::Sender<Change<K>>,
    /// Set when a change did not fit: the subscriber is told to resync.
    overflowed: Arc<AtomicBool>,
}

impl<K> Fanout<K> {
    fn new() -> Self {
        Fanout {
            subscribers: Mutex::new(Vec::new()),
        }
    }

    fn subscribe(&self) -> Subscription<K> {
        let (tx, rx) = mpsc::channel(CHANGE_BUFFER);
        let overflowed = Arc::new(AtomicBool::new(false));
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Subscriber {
                tx,
                overflowed: Arc::clone(&overflowed),
            });
        Subscription { rx, overflowed }
    }

    /// Queues `change` for every subscriber; forgets those that are gone.
    fn publish(&self, change: &Change<K>) {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|s| match s.tx.try_send(change.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.overflowed.store(true, Ordering::Release);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }
}

/// A subscriber's view of an informer's changes.
pub(crate) struct Subscription<K> {
    rx: mpsc::Receiver<Change<K>>,
    overflowed: Arc<AtomicBool>,
}

impl<K> Subscription<K> {
    /// The next change; `None` when the informer stopped.
    pub(crate) async fn next(&mut self) -> Option<Change<K>> {
        // Changes were dropped while the queue was full: a full pass
        // covers them (and whatever is still queued is merely repeated).
        if self.overflowed.swap(false, Ordering::AcqRel) {
            return Some(Change::Resynced);
        }
        self.rx.recv().await
    }

    /// Takes every change queued now, without waiting; true if there was
    /// any. (A loop of `next()` would stop early: tokio's cooperative
    /// budget makes a receive yield after a hundred or so.)
    pub(crate) fn drain(&mut self) -> bool {
        let mut any = self.overflowed.swap(false, Ordering::AcqRel);
        while self.rx.try_recv().is_ok() {
            any = true;
        }
        any
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
        let changes = Arc::new(Fanout::new());
        let (synced_tx, synced) = watch::channel(false);
        let informer = Informer {
            store,
            changes: Arc::clone(&changes),
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
    changes: Arc<Fanout<K>>,
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
        changes.publish(&change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_is_freed_once_every_subscriber_took_it() {
        let fanout = Fanout::<String>::new();
        let (mut a, mut b) = (fanout.subscribe(), fanout.subscribe());
        let object = Arc::new("pod".to_owned());
        fanout.publish(&Change::Applied(Arc::clone(&object)));
        assert_eq!(Arc::strong_count(&object), 3);
        assert!(matches!(a.next().await, Some(Change::Applied(_))));
        assert_eq!(Arc::strong_count(&object), 2);
        assert!(matches!(b.next().await, Some(Change::Applied(_))));
        assert_eq!(Arc::strong_count(&object), 1);
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_to_resync() {
        let fanout = Fanout::<String>::new();
        let mut slow = fanout.subscribe();
        for i in 0..=CHANGE_BUFFER {
            fanout.publish(&Change::Applied(Arc::new(i.to_string())));
        }
        assert!(matches!(slow.next().await, Some(Change::Resynced)));
        // What was queued still follows, then the feed goes on.
        assert!(matches!(slow.next().await, Some(Change::Applied(o)) if *o == "0"));
        for _ in 1..CHANGE_BUFFER {
            assert!(slow.next().await.is_some());
        }
        fanout.publish(&Change::Deleted(Arc::new("last".to_owned())));
        assert!(matches!(slow.next().await, Some(Change::Deleted(o)) if *o == "last"));
    }

    #[tokio::test]
    async fn drain_takes_everything_queued_without_waiting() {
        let fanout = Fanout::<String>::new();
        let mut sub = fanout.subscribe();
        assert!(!sub.drain());
        // More than tokio's cooperative budget lets one task receive.
        let object = Arc::new("pod".to_owned());
        for _ in 0..1_000 {
            fanout.publish(&Change::Applied(Arc::clone(&object)));
        }
        assert!(sub.drain());
        assert_eq!(Arc::strong_count(&object), 1);
        assert!(!sub.drain());
    }

    #[tokio::test]
    async fn a_dropped_subscription_is_forgotten() {
        let fanout = Fanout::<String>::new();
        drop(fanout.subscribe());
        fanout.publish(&Change::Resynced);
        assert!(
            fanout
                .subscribers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
        );
    }
}
