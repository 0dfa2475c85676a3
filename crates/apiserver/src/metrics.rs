//! `/metrics` in Prometheus text format, with upstream's metric names.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bulwark_store::{
    Range, RangeResult, Revision, Store, StoreError, WatchStream, Write, WriteOutcome,
};

/// (verb, resource, code) → (count, seconds).
type RequestTotals = BTreeMap<(String, String, u16), (u64, f64)>;

/// Request counters and latency sums, open watches, store latency.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: Mutex<RequestTotals>,
    /// Kind → open watches.
    watchers: Mutex<BTreeMap<String, i64>>,
    /// Kind → watches that fell behind the watch cache's window and caught
    /// up from the store.
    catch_ups: Mutex<BTreeMap<String, u64>>,
    /// Store operation → (count, seconds).
    storage: Mutex<BTreeMap<&'static str, (u64, f64)>>,
}

/// Counts a watch as open until dropped.
pub(crate) struct WatchGuard {
    metrics: Arc<Metrics>,
    kind: String,
}

impl WatchGuard {
    /// Counts this watch falling behind the cache and catching up.
    pub(crate) fn caught_up(&self) {
        let mut catch_ups = self
            .metrics
            .catch_ups
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *catch_ups.entry(self.kind.clone()).or_insert(0) += 1;
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.metrics.add_watchers(&self.kind, -1);
    }
}

impl Metrics {
    /// Registers an open watch of `kind`.
    pub(crate) fn watch_opened(self: &Arc<Self>, kind: &str) -> WatchGuard {
        self.add_watchers(kind, 1);
        WatchGuard {
            metrics: self.clone(),
            kind: kind.to_owned(),
        }
    }

    fn add_watchers(&self, kind: &str, delta: i64) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        *watchers.entry(kind.to_owned()).or_insert(0) += delta;
    }

    fn observe_storage(&self, operation: &'static str, elapsed: Duration) {
        let mut storage = self.storage.lock().unwrap_or_else(|p| p.into_inner());
        let entry = storage.entry(operation).or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 += elapsed.as_secs_f64();
    }

    /// Counts one request.
    pub(crate) fn observe(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let entry = requests
            .entry((verb.to_owned(), resource.to_owned(), code))
            .or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 += elapsed.as_secs_f64();
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> String {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::from(
            "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource and HTTP response code.\n# TYPE apiserver_request_total counter\n",
        );
        for ((verb, resource, code), (count, _)) in requests.iter() {
            out.push_str(&format!(
                "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {count}\n"
            ));
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency sum and count per verb and resource.\n# TYPE apiserver_request_duration_seconds summary\n");
        let mut sums: BTreeMap<(&str, &str), (u64, f64)> = BTreeMap::new();
        for ((verb, resource, _), (count, secs)) in requests.iter() {
            let entry = sums.entry((verb, resource)).or_insert((0, 0.0));
            entry.0 += count;
            entry.1 += secs;
        }
        by_kind(
            &mut out,
            "apiserver_registered_watchers",
            "gauge",
            "Number of currently registered watchers for a given resource.",
            &self.watchers,
        );
        by_kind(
            &mut out,
            "apiserver_watch_cache_catch_ups_total",
            "counter",
            "Watches that fell behind the watch cache's window of events and caught up from the store's history.",
            &self.catch_ups,
        );
        out.push_str("# HELP etcd_request_duration_seconds Store request latency sum and count per operation.\n# TYPE etcd_request_duration_seconds summary\n");
        for (operation, (count, secs)) in self
            .storage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            out.push_str(&format!(
                "etcd_request_duration_seconds_sum{{operation=\"{operation}\"}} {secs}\netcd_request_duration_seconds_count{{operation=\"{operation}\"}} {count}\n"
            ));
        }
        for ((verb, resource), (count, secs)) in sums {
            out.push_str(&format!(
                "apiserver_request_duration_seconds_sum{{verb=\"{verb}\",resource=\"{resource}\"}} {secs}\napiserver_request_duration_seconds_count{{verb=\"{verb}\",resource=\"{resource}\"}} {count}\n"
            ));
        }
        out
    }
}

/// The store, timed: every call is counted in `etcd_request_duration_seconds`.
pub(crate) struct TimedStore {
    pub(crate) inner: Arc<dyn Store>,
    pub(crate) metrics: Arc<Metrics>,
}

#[async_trait]
impl Store for TimedStore {
    async fn range(&self, range: Range) -> Result<RangeResult, StoreError> {
        let started = Instant::now();
        let result = self.inner.range(range).await;
        self.metrics.observe_storage("range", started.elapsed());
        result
    }

    async fn write(&self, write: Write) -> Result<WriteOutcome, StoreError> {
        let started = Instant::now();
        let result = self.inner.write(write).await;
        self.metrics.observe_storage("write", started.elapsed());
        result
    }

    async fn watch(
        &self,
        range: Range,
        start_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        let started = Instant::now();
        let result = self.inner.watch(range, start_revision).await;
        self.metrics.observe_storage("watch", started.elapsed());
        result
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.inner.compact(revision).await;
        self.metrics.observe_storage("compact", started.elapsed());
        result
    }

    async fn revisions(&self) -> Result<(Revision, Revision), StoreError> {
        self.inner.revisions().await
    }
}

/// One metric with a `kind` label, from a map of kind → value.
fn by_kind<T: std::fmt::Display>(
    out: &mut String,
    name: &str,
    metric_type: &str,
    help: &str,
    values: &Mutex<BTreeMap<String, T>>,
) {
    out.push_str(&format!(
        "# HELP {name} {help}\n# TYPE {name} {metric_type}\n"
    ));
    for (kind, value) in values.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        out.push_str(&format!("{name}{{kind=\"{kind}\"}} {value}\n"));
    }
}
