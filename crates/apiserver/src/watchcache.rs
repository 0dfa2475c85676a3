//! The watch cache: one in-memory copy of each resource, fed by one store
//! watch, serving every API watcher of that resource — so a thousand
//! watchers cost the store one watch (as kube-apiserver's cacher does).
//!
//! A cache keeps the current objects and a window of recent events. A watch
//! from resourceVersion R replays the window after R, then follows live
//! events; R older than the window answers 410 Expired so clients relist.
//! A watch without R (or R = 0) starts with a synthetic ADDED per object.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use bulwark_store::{EventKind, Range, Store};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::handlers::decode_stored;
use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult};

/// How many recent events a cache keeps for watchers that resume.
const WINDOW: usize = 2_000;

/// Upstream's watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchType {
    /// `ADDED`
    Added,
    /// `MODIFIED`
    Modified,
    /// `DELETED`
    Deleted,
}

impl WatchType {
    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WatchType::Added => "ADDED",
            WatchType::Modified => "MODIFIED",
            WatchType::Deleted => "DELETED",
        }
    }
}

/// One change, as the cache saw it.
#[derive(Debug)]
pub(crate) struct CacheEvent {
    /// What happened.
    pub kind: WatchType,
    /// The object after the change (for a deletion: its last state, with
    /// the deletion's resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change.
    pub prev: Option<Arc<Value>>,
    /// The store revision of the change.
    pub revision: i64,
    /// The storage key.
    pub key: String,
    line: OnceLock<Bytes>,
}

impl CacheEvent {
    /// The event as one line of a JSON watch stream, serialized once for all
    /// watchers.
    pub(crate) fn json_line(&self) -> Bytes {
        self.line
            .get_or_init(|| watch_line(self.kind.as_str(), &self.object))
            .clone()
    }
}

/// `{"type":…,"object":…}\n`.
pub(crate) fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// One object in the cache, with its list-item JSON made at most once.
pub(crate) struct Cached {
    /// The object, resourceVersion stamped.
    pub(crate) value: Arc<Value>,
    item: OnceLock<Bytes>,
}

impl Cached {
    fn new(value: Arc<Value>) -> Arc<Self> {
        Arc::new(Cached {
            value,
            item: OnceLock::new(),
        })
    }

    /// The object as a list item (no kind/apiVersion).
    pub(crate) fn list_item(&self) -> Bytes {
        self.item
            .get_or_init(|| crate::objects::value_list_item(&self.value))
            .clone()
    }
}

struct State {
    objects: BTreeMap<String, Arc<Cached>>,
    revision: i64,
    window: VecDeque<Arc<CacheEvent>>,
    /// Watches from a resourceVersion below this cannot be served.
    floor: i64,
}

/// The cache of one resource.
pub(crate) struct Cache {
    state: RwLock<State>,
    /// Replaced on every relist: watchers of the old one learn (Closed)
    /// that they may have missed events and must relist.
    events: RwLock<broadcast::Sender<Arc<CacheEvent>>>,
    revision: watch::Sender<i64>,
}

/// What a new watcher starts from.
pub(crate) struct Subscription {
    /// Events to send first (synthetic ADDEDs or the replayed window).
    pub initial: Vec<Arc<CacheEvent>>,
    /// Whether `initial` are synthetic ADDEDs of the current state.
    pub synthetic: bool,
    /// Live events after `initial`.
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    /// The revision `initial` brings the watcher to.
    pub revision: i64,
}

impl Cache {
    /// Waits until the cache has seen `revision` (bounded by `timeout`).
    pub(crate) async fn wait_for(&self, revision: i64, timeout: Duration) -> ApiResult<()> {
        let mut rx = self.revision.subscribe();
        let wait = rx.wait_for(|seen| *seen >= revision);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::timeout(format!(
                "Timeout: Too large resource version: {revision}, current: {}",
                *self.revision.borrow()
            ))),
        }
    }

    /// Subscribes a watcher from `from` (`None`: current state first).
    pub(crate) fn subscribe(&self, from: Option<i64>, prefix: &str) -> ApiResult<Subscription> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let live = self
            .events
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .subscribe();
        match from {
            None => {
                let initial = state
                    .objects
                    .range(prefix.to_owned()..)
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .map(|(key, cached)| {
                        Arc::new(CacheEvent {
                            kind: WatchType::Added,
                            object: cached.value.clone(),
                            prev: None,
                            revision: resource_version(&cached.value),
                            key: key.clone(),
                            line: OnceLock::new(),
                        })
                    })
                    .collect();
                Ok(Subscription {
                    initial,
                    synthetic: true,
                    live,
                    revision: state.revision,
                })
            }
            Some(rv) if rv < state.floor => Err(ApiError::expired(format!(
                "too old resource version: {rv} ({})",
                state.floor
            ))),
            Some(rv) => {
                let initial = state
                    .window
                    .iter()
                    .filter(|e| e.revision > rv && e.key.starts_with(prefix))
                    .cloned()
                    .collect();
                Ok(Subscription {
                    initial,
                    synthetic: false,
                    live,
                    revision: state.revision.max(rv),
                })
            }
        }
    }

    /// The objects under `prefix` now, and the cache's revision.
    pub(crate) fn snapshot(&self, prefix: &str) -> (Vec<Arc<Cached>>, i64) {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let objects = state
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, o)| o.clone())
            .collect();
        (objects, state.revision)
    }
}

fn resource_version(object: &Value) -> i64 {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// Every resource's cache, started on first use.
pub(crate) struct Caches {
    store: Arc<dyn Store>,
    caches: Mutex<HashMap<String, Arc<Cache>>>,
}

impl Caches {
    /// No caches yet.
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Caches {
            store,
            caches: Mutex::new(HashMap::new()),
        }
    }

    /// The objects under a storage prefix, from its cache if that is
    /// started (every served resource's is, at boot); `None` otherwise.
    pub(crate) fn objects(&self, prefix: &str) -> Option<Vec<Arc<Cached>>> {
        let cache = self
            .caches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(prefix)
            .cloned()?;
        Some(cache.snapshot(prefix).0)
    }

    /// One object by storage key (`/registry/<plural>/…`) from its
    /// resource's cache: `None` if that cache is not started, `Some(None)`
    /// if the cache holds no such object.
    pub(crate) fn object(&self, key: &str) -> Option<Option<Arc<Value>>> {
        let rest = key.strip_prefix("/registry/")?;
        let prefix = format!("/registry/{}/", rest.split('/').next()?);
        let cache = self
            .caches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&prefix)
            .cloned()?;
        let state = cache.state.read().unwrap_or_else(|p| p.into_inner());
        Some(state.objects.get(key).map(|cached| cached.value.clone()))
    }

    /// The cache of `resource`, starting it (list, then watch) if needed.
    pub(crate) async fn get(&self, resource: &Arc<ResourceType>) -> ApiResult<Arc<Cache>> {
        let prefix = resource.key_prefix();
        if let Some(cache) = self
            .caches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&prefix)
        {
            return Ok(cache.clone());
        }
        let cache = self.start(&prefix).await?;
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        Ok(caches.entry(prefix).or_insert(cache).clone())
    }

    async fn start(&self, prefix: &str) -> ApiResult<Arc<Cache>> {
        let (events, _) = broadcast::channel(WINDOW);
        let (revision_tx, _) = watch::channel(0);
        let cache = Arc::new(Cache {
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                revision: 0,
                window: VecDeque::new(),
                floor: 0,
            }),
            events: RwLock::new(events),
            revision: revision_tx,
        });
        let from = relist(&*self.store, &cache, prefix).await?;
        tokio::spawn(follow(
            self.store.clone(),
            cache.clone(),
            prefix.to_owned(),
            from,
        ));
        Ok(cache)
    }
}

/// Loads the current state; returns the revision to watch from.
async fn relist(store: &dyn Store, cache: &Cache, prefix: &str) -> ApiResult<i64> {
    let page = store.range(Range::prefix(prefix)).await?;
    let mut objects = BTreeMap::new();
    for kv in &page.kvs {
        objects.insert(
            kv.key.clone(),
            Cached::new(Arc::new(decode_stored(&kv.value, kv.mod_revision)?)),
        );
    }
    let mut state = cache.state.write().unwrap_or_else(|p| p.into_inner());
    state.objects = objects;
    state.revision = page.revision;
    state.window.clear();
    state.floor = page.revision;
    let (events, _) = broadcast::channel(WINDOW);
    *cache.events.write().unwrap_or_else(|p| p.into_inner()) = events;
    drop(state);
    cache.revision.send_replace(page.revision);
    Ok(page.revision + 1)
}

/// Applies the store's events to the cache forever, relisting when the
/// store watch breaks (compaction, falling behind).
async fn follow(store: Arc<dyn Store>, cache: Arc<Cache>, prefix: String, mut from: i64) {
    loop {
        let mut stream = match store.watch(Range::prefix(&prefix), from).await {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(%err, prefix, "watch cache lost its store watch; relisting");
                tokio::time::sleep(Duration::from_millis(200)).await;
                match relist(&*store, &cache, &prefix).await {
                    Ok(next) => from = next,
                    Err(err) => tracing::warn!(?err, prefix, "relist failed"),
                }
                continue;
            }
        };
        while let Some(item) = stream.next_event().await {
            let event = match item {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(%err, prefix, "watch cache stream ended");
                    break;
                }
            };
            from = event.revision() + 1;
            apply(&cache, event);
        }
        match relist(&*store, &cache, &prefix).await {
            Ok(next) => from = next,
            Err(err) => {
                tracing::warn!(?err, prefix, "relist failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn apply(cache: &Cache, event: bulwark_store::Event) {
    let revision = event.revision();
    let key = event.kv.key.clone();
    let mut state = cache.state.write().unwrap_or_else(|p| p.into_inner());
    let prev = state.objects.get(&key).map(|cached| cached.value.clone());
    let (kind, object) = match event.kind {
        EventKind::Put => {
            let Ok(object) = decode_stored(&event.kv.value, revision) else {
                tracing::warn!(key, "undecodable object skipped by the watch cache");
                return;
            };
            let object = Arc::new(object);
            state
                .objects
                .insert(key.clone(), Cached::new(object.clone()));
            let kind = if prev.is_some() {
                WatchType::Modified
            } else {
                WatchType::Added
            };
            (kind, object)
        }
        EventKind::Delete => {
            state.objects.remove(&key);
            let Some(prev) = prev.clone() else { return };
            let mut last = (*prev).clone();
            crate::objects::set_resource_version(&mut last, revision);
            (WatchType::Deleted, Arc::new(last))
        }
    };
    let event = Arc::new(CacheEvent {
        kind,
        object,
        prev,
        revision,
        key,
        line: OnceLock::new(),
    });
    state.revision = revision;
    if state.window.len() == WINDOW
        && let Some(oldest) = state.window.pop_front()
    {
        state.floor = oldest.revision;
    }
    state.window.push_back(event.clone());
    let _ = cache
        .events
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .send(event);
    drop(state);
    cache.revision.send_replace(revision);
}
