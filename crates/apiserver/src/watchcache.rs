//! The watch cache: one in-memory copy of each resource, fed by one store
//! watch, serving every API watcher of that resource — so a thousand
//! watchers cost the store one watch (as kube-apiserver's cacher does).
//!
//! A cache keeps the current objects and a window of recent events. A watch
//! from resourceVersion R replays the window after R, then follows live
//! events; R older than the window answers 410 Expired so clients relist.
//! A watch without R (or R = 0) starts with a synthetic ADDED per object.
//!
//! Objects are kept as JSON text, not parsed values: a parsed pod takes
//! several times the bytes of its text, and what a cache serves is text
//! anyway (list items, watch lines). Only what selectors read — labels and
//! the resource's selectable fields — is kept parsed beside it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bulwark_api::labels::Labels;
use bulwark_store::{EventKind, Range, Store, StoreError, WatchStream};
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
    pub object: Arc<Cached>,
    /// The object before the change.
    pub prev: Option<Arc<Cached>>,
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
            .get_or_init(|| self.object.watch_line(self.kind))
            .clone()
    }
}

/// `{"type":…,"object":…}\n`.
pub(crate) fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// One object in the cache: its JSON text, and what selectors read.
#[derive(Debug)]
pub(crate) struct Cached {
    /// The object as a list item: its JSON without `kind` and
    /// `apiVersion`, resourceVersion stamped.
    item: Bytes,
    /// `"kind":…,"apiVersion":…` as JSON members, shared by the objects of
    /// one type: with `item`, the whole object.
    type_meta: Arc<str>,
    /// The resourceVersion stamped in `item`.
    revision: i64,
    labels: CachedLabels,
    /// The values of the resource's selectable fields (`metadata.name`,
    /// `spec.nodeName`, …).
    fields: FieldValues,
}

impl Cached {
    /// From a parsed object (resourceVersion stamped) of the cache's type.
    fn new(object: &Value, kind: &Kind) -> Arc<Self> {
        let labels = CachedLabels::of(object);
        let member = |name: &str| {
            object
                .get(name)
                .map(|v| serde_json::to_string(v).unwrap_or_default())
        };
        let type_meta = match (member("kind"), member("apiVersion")) {
            (Some(kind), Some(version)) => format!("\"kind\":{kind},\"apiVersion\":{version}"),
            (Some(kind), None) => format!("\"kind\":{kind}"),
            (None, Some(version)) => format!("\"apiVersion\":{version}"),
            (None, None) => String::new(),
        };
        Arc::new(Cached {
            item: crate::objects::value_list_item(object),
            type_meta: kind.intern(type_meta),
            revision: resource_version(object),
            labels,
            fields: FieldValues::of(object, kind),
        })
    }

    /// The resourceVersion (the store revision) of this state.
    pub(crate) fn revision(&self) -> i64 {
        self.revision
    }

    /// The object as a list item (no kind/apiVersion).
    pub(crate) fn list_item(&self) -> Bytes {
        self.item.clone()
    }

    /// The whole object's JSON.
    pub(crate) fn json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.item.len() + self.type_meta.len() + 1);
        out.push(b'{');
        out.extend_from_slice(self.type_meta.as_bytes());
        let rest = self.item.get(1..).unwrap_or_default();
        if !self.type_meta.is_empty() && rest.first().is_some_and(|b| *b != b'}') {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        out
    }

    /// The object, parsed (for the few readers that need more than
    /// labels and selectable fields).
    pub(crate) fn value(&self) -> Value {
        serde_json::from_slice(&self.json()).unwrap_or(Value::Null)
    }

    /// Its labels.
    pub(crate) fn labels(&self) -> &CachedLabels {
        &self.labels
    }

    /// The value of a selectable field.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name)
    }

    /// `{"type":…,"object":…}\n`, spliced from the object's text.
    pub(crate) fn watch_line(&self, kind: WatchType) -> Bytes {
        let json = self.json();
        let mut line = Vec::with_capacity(json.len() + 32);
        line.extend_from_slice(b"{\"type\":\"");
        line.extend_from_slice(kind.as_str().as_bytes());
        line.extend_from_slice(b"\",\"object\":");
        line.extend_from_slice(&json);
        line.extend_from_slice(b"}\n");
        Bytes::from(line)
    }
}

/// A cached object's selectable field values, all in one string: the
/// names are the type's (shared), the values follow one another and
/// `ends` says where each stops. A slice of (name, value) pairs cost a
/// cached pod about 480 bytes; this, under 200.
#[derive(Debug)]
struct FieldValues {
    names: Arc<[&'static str]>,
    text: Box<str>,
    ends: Box<[u32]>,
}

impl FieldValues {
    fn of(object: &Value, kind: &Kind) -> Self {
        let mut text = String::new();
        let mut ends = Vec::with_capacity(kind.field_names.len());
        for name in kind.field_names.iter() {
            text.push_str(&bulwark_api::fields::object_field_value(object, name));
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
        FieldValues {
            names: Arc::clone(&kind.field_names),
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        let at = self.names.iter().position(|n| *n == name)?;
        let start = match at.checked_sub(1) {
            Some(before) => *self.ends.get(before)? as usize,
            None => 0,
        };
        let end = *self.ends.get(at)? as usize;
        self.text.get(start..end)
    }
}

/// A cached object's labels, sorted by key in one slice: a map's nodes
/// would cost a cached pod more than a quarter of its text.
#[derive(Debug, Default)]
pub(crate) struct CachedLabels(Box<[(Box<str>, Box<str>)]>);

impl CachedLabels {
    /// The string-valued labels of `object` (anything else was never a
    /// label).
    fn of(object: &Value) -> Self {
        let Some(labels) = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
        else {
            return CachedLabels::default();
        };
        let mut pairs: Vec<(Box<str>, Box<str>)> = labels
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().into(), v.as_str()?.into())))
            .collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        CachedLabels(pairs.into_boxed_slice())
    }
}

impl Labels for CachedLabels {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .and_then(|at| self.0.get(at))
            .map(|(_, v)| &**v)
    }
}

/// The type a cache holds, for selectable fields, and the `kind`/`apiVersion`
/// text its objects share.
struct Kind {
    /// The selectable fields' names, in the order objects keep values.
    field_names: Arc<[&'static str]>,
    type_meta: Mutex<Vec<Arc<str>>>,
}

impl Kind {
    fn new(api_version: &str, kind: &str) -> Self {
        Kind {
            field_names: bulwark_api::fields::supported_fields(api_version, kind).into(),
            type_meta: Mutex::new(Vec::new()),
        }
    }

    /// One shared copy of each distinct type-meta text.
    fn intern(&self, text: String) -> Arc<str> {
        let mut seen = self.type_meta.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = seen.iter().find(|s| ***s == *text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        seen.push(shared.clone());
        shared
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
    kind: Kind,
    /// Where a watcher that fell behind the window catches up from.
    store: Arc<dyn Store>,
    state: RwLock<State>,
    /// Replaced on every relist: watchers of the old one learn (Closed)
    /// that they may have missed events and must relist.
    events: RwLock<broadcast::Sender<Arc<CacheEvent>>>,
    revision: watch::Sender<i64>,
}

/// A watcher's source of events: the cache's live events, after those it
/// missed while it could not keep up, read from the store.
pub(crate) struct Feed {
    live: broadcast::Receiver<Arc<CacheEvent>>,
    /// The store's history from the first missed event, read until it
    /// passes the revision the new live receiver starts after.
    history: Option<(WatchStream, i64)>,
}

/// What a watcher's feed gave.
pub(crate) enum Fed {
    /// An event from the cache.
    Cached(Arc<CacheEvent>),
    /// A missed event, from the store.
    Stored(bulwark_store::Event),
    /// The watcher fell more than the window behind: catch it up.
    Lagged,
    /// The cache relisted (events may be missing) or the store's history
    /// ended: the client must relist.
    Closed,
}

impl Feed {
    fn live(live: broadcast::Receiver<Arc<CacheEvent>>) -> Self {
        Feed {
            live,
            history: None,
        }
    }

    /// The next event. Cancel-safe: it may be raced against timers.
    pub(crate) async fn next(&mut self) -> Fed {
        if let Some((history, upto)) = &mut self.history {
            match history.next_event().await {
                Some(Ok(event)) if event.revision() <= *upto => return Fed::Stored(event),
                // Past what the live receiver holds: it takes over.
                Some(Ok(_)) => self.history = None,
                Some(Err(_)) | None => return Fed::Closed,
            }
        }
        match self.live.recv().await {
            Ok(event) => Fed::Cached(event),
            Err(broadcast::error::RecvError::Lagged(_)) => Fed::Lagged,
            Err(broadcast::error::RecvError::Closed) => Fed::Closed,
        }
    }
}

/// What a new watcher starts from.
pub(crate) struct Subscription {
    /// Events to send first (synthetic ADDEDs or the replayed window).
    pub initial: Vec<Arc<CacheEvent>>,
    /// Whether `initial` are synthetic ADDEDs of the current state.
    pub synthetic: bool,
    /// Live events after `initial`.
    pub live: Feed,
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

    /// The live events after `state`: taken while the caller holds the
    /// state's lock, which `apply` holds to publish, so none is missed or
    /// seen twice.
    fn live_after(&self, _state: &State) -> broadcast::Receiver<Arc<CacheEvent>> {
        self.events
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .subscribe()
    }

    /// Subscribes a watcher from `from` (`None`: current state first).
    pub(crate) fn subscribe(&self, from: Option<i64>, prefix: &str) -> ApiResult<Subscription> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let live = self.live_after(&state);
        match from {
            None => {
                let initial = state
                    .objects
                    .range(prefix.to_owned()..)
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .map(|(key, cached)| {
                        Arc::new(CacheEvent {
                            kind: WatchType::Added,
                            object: cached.clone(),
                            prev: None,
                            revision: cached.revision,
                            key: key.clone(),
                            line: OnceLock::new(),
                        })
                    })
                    .collect();
                Ok(Subscription {
                    initial,
                    synthetic: true,
                    live: Feed::live(live),
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
                    live: Feed::live(live),
                    revision: state.revision.max(rv),
                })
            }
        }
    }

    /// For a watcher whose live feed overflowed after it had sent
    /// everything up to `after`: a new live feed, preceded by the events
    /// it missed, read from the store's history (as a watch straight from
    /// the store would be served). Only a compacted history ends the watch
    /// with 410, as upstream's would.
    pub(crate) async fn catch_up(&self, prefix: &str, after: i64) -> ApiResult<Feed> {
        let (live, upto) = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            (self.live_after(&state), state.revision)
        };
        let history = self
            .store
            .watch(Range::prefix(prefix), after + 1)
            .await
            .map_err(|err| match err {
                StoreError::Compacted { .. } => {
                    ApiError::expired("The resourceVersion for the provided watch is too old.")
                }
                other => other.into(),
            })?;
        Ok(Feed {
            live,
            history: Some((history, upto)),
        })
    }

    /// A store event as the cache would have published it: `None` if a
    /// value does not decode (the cache skipped it too).
    pub(crate) fn event_from_store(&self, event: &bulwark_store::Event) -> Option<Arc<CacheEvent>> {
        let prev = match &event.prev {
            Some(prev) => Some(Cached::new(
                &decode_stored(&prev.value, prev.mod_revision).ok()?,
                &self.kind,
            )),
            None => None,
        };
        cache_event(&self.kind, event, prev)
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

/// How long the store's answer that a prefix holds nothing is trusted
/// while its cache shows nothing either (upstream's admission plugins keep
/// such live lookups for 30 s).
const ABSENT_TTL: Duration = Duration::from_secs(30);

/// Every resource's cache, started on first use.
pub(crate) struct Caches {
    store: Arc<dyn Store>,
    caches: Mutex<HashMap<String, Arc<Cache>>>,
    /// Prefixes the store showed to be empty, and when.
    absent: Mutex<HashMap<String, Instant>>,
}

impl Caches {
    /// No caches yet.
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Caches {
            store,
            caches: Mutex::new(HashMap::new()),
            absent: Mutex::new(HashMap::new()),
        }
    }

    /// The objects under a prefix within one resource's keys (one
    /// namespace's: `/registry/<plural>/<namespace>/`) from that
    /// resource's cache; `None` if it is not started.
    pub(crate) fn objects_within(&self, prefix: &str) -> Option<Vec<Arc<Cached>>> {
        let rest = prefix.strip_prefix("/registry/")?;
        let resource = format!("/registry/{}/", rest.split('/').next()?);
        let cache = self
            .caches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&resource)
            .cloned()?;
        Some(cache.snapshot(prefix).0)
    }

    /// Records that the store holds nothing under `prefix` now.
    pub(crate) fn note_absent(&self, prefix: &str) {
        let now = Instant::now();
        let mut absent = self.absent.lock().unwrap_or_else(|p| p.into_inner());
        absent.retain(|_, seen| now.duration_since(*seen) < ABSENT_TTL);
        absent.insert(prefix.to_owned(), now);
    }

    /// Whether the store showed `prefix` empty less than [`ABSENT_TTL`] ago.
    pub(crate) fn recently_absent(&self, prefix: &str) -> bool {
        self.absent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(prefix)
            .is_some_and(|seen| seen.elapsed() < ABSENT_TTL)
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
    pub(crate) fn object(&self, key: &str) -> Option<Option<Arc<Cached>>> {
        let rest = key.strip_prefix("/registry/")?;
        let prefix = format!("/registry/{}/", rest.split('/').next()?);
        let cache = self
            .caches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&prefix)
            .cloned()?;
        let state = cache.state.read().unwrap_or_else(|p| p.into_inner());
        Some(state.objects.get(key).cloned())
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
        let cache = self.start(&prefix, resource).await?;
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        Ok(caches.entry(prefix).or_insert(cache).clone())
    }

    async fn start(&self, prefix: &str, resource: &ResourceType) -> ApiResult<Arc<Cache>> {
        let (events, _) = broadcast::channel(WINDOW);
        let (revision_tx, _) = watch::channel(0);
        let cache = Arc::new(Cache {
            store: self.store.clone(),
            kind: Kind::new(&resource.api_version(), resource.kind),
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
            Cached::new(&decode_stored(&kv.value, kv.mod_revision)?, &cache.kind),
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

/// The cache's event for a store write over `prev`, the key's last state:
/// `None` if the new value does not decode, or a deletion has no last state
/// to show.
fn cache_event(
    kind: &Kind,
    event: &bulwark_store::Event,
    prev: Option<Arc<Cached>>,
) -> Option<Arc<CacheEvent>> {
    let revision = event.revision();
    let (watch_type, object) = match event.kind {
        EventKind::Put => {
            let object = Cached::new(&decode_stored(&event.kv.value, revision).ok()?, kind);
            let watch_type = if prev.is_some() {
                WatchType::Modified
            } else {
                WatchType::Added
            };
            (watch_type, object)
        }
        EventKind::Delete => {
            let mut last = prev.as_ref()?.value();
            crate::objects::set_resource_version(&mut last, revision);
            (WatchType::Deleted, Cached::new(&last, kind))
        }
    };
    Some(Arc::new(CacheEvent {
        kind: watch_type,
        object,
        prev,
        revision,
        key: event.kv.key.clone(),
        line: OnceLock::new(),
    }))
}

fn apply(cache: &Cache, event: bulwark_store::Event) {
    let revision = event.revision();
    let key = &event.kv.key;
    let mut state = cache.state.write().unwrap_or_else(|p| p.into_inner());
    let prev = state.objects.get(key).cloned();
    let Some(event) = cache_event(&cache.kind, &event, prev) else {
        if matches!(event.kind, EventKind::Put) {
            tracing::warn!(key, "undecodable object skipped by the watch cache");
        }
        return;
    };
    if event.kind == WatchType::Deleted {
        state.objects.remove(&event.key);
    } else {
        state
            .objects
            .insert(event.key.clone(), event.object.clone());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> Kind {
        Kind::new("v1", "Pod")
    }

    fn pod(name: &str, node: &str) -> Value {
        json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": "7",
                         "labels": {"zone": "a", "app": "web", "n": 1}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        })
    }

    #[test]
    fn a_cached_object_is_its_text_and_reads_back_whole() {
        let kind = pods();
        let object = pod("a", "node-1");
        let cached = Cached::new(&object, &kind);
        assert_eq!(cached.value(), object);
        assert_eq!(cached.revision, 7);
        let item: Value = serde_json::from_slice(&cached.list_item()).unwrap_or_default();
        assert!(item.get("kind").is_none() && item.get("apiVersion").is_none());
        assert_eq!(item["metadata"]["name"], "a");

        let line = cached.watch_line(WatchType::Modified);
        assert!(line.ends_with(b"\n"));
        let event: Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(event, json!({"type": "MODIFIED", "object": object}));
    }

    #[test]
    fn selectors_read_labels_and_fields_kept_beside_the_text() {
        let kind = pods();
        let cached = Cached::new(&pod("a", "node-1"), &kind);
        assert_eq!(cached.labels().get_label("app"), Some("web"));
        // Labels are strings; anything else was never a label.
        assert_eq!(cached.labels().get_label("n"), None);
        assert_eq!(cached.labels().get_label("zz"), None);
        assert_eq!(cached.labels().get_label("zone"), Some("a"));
        assert_eq!(cached.field("spec.nodeName"), Some("node-1"));
        assert_eq!(cached.field("metadata.namespace"), Some("ns"));
        assert_eq!(cached.field("spec.unknown"), None);
        assert_eq!(cached.field("metadata.name"), Some("a"));
        // Unset fields select as empty, as upstream's field selectors read
        // them (`spec.nodeName=` finds unscheduled pods).
        assert_eq!(cached.field("status.phase"), Some(""));
        assert_eq!(cached.field("spec.hostNetwork"), Some("false"));
        assert!(Arc::ptr_eq(&cached.fields.names, &kind.field_names));
    }

    #[test]
    fn objects_of_one_type_share_their_type_text() {
        let kind = pods();
        let a = Cached::new(&pod("a", "n"), &kind);
        let b = Cached::new(&pod("b", "n"), &kind);
        assert!(Arc::ptr_eq(&a.type_meta, &b.type_meta));
        // An object without kind or apiVersion still reads back as itself.
        let bare = json!({"metadata": {"name": "x"}});
        assert_eq!(Cached::new(&bare, &kind).value(), bare);
        let empty = json!({});
        assert_eq!(Cached::new(&empty, &kind).value(), empty);
    }
}
