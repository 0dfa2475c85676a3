//! `GET …?watch=true`: a stream of watch events from the watch cache, with
//! selectors (an object leaving a selector arrives as DELETED), bookmarks,
//! `sendInitialEvents`, `timeoutSeconds`, and Table rows for `kubectl get -w`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::handlers::{Selectors, list_prefix};
use crate::registry::ResourceType;
use crate::request::{Representation, ResourceRequest};
use crate::status::{ApiError, ApiResult};
use crate::watchcache::{Cache, CacheEvent, Caches, Fed, WatchType, watch_line};

/// How long a watch lasts when the client does not say (upstream picks
/// 30–60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// Starts a watch response.
pub(crate) async fn serve(
    caches: &Caches,
    req: &ResourceRequest,
    representation: Representation,
    metrics: &Arc<crate::metrics::Metrics>,
) -> ApiResult<Response> {
    let selectors = Selectors::from_request(req)?;
    let cache = caches.get(&req.resource).await?;
    let prefix = list_prefix(req);
    let send_initial = req.query.get("sendInitialEvents").map(String::as_str) == Some("true");
    let rv = req
        .query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    if send_initial
        && req.query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan")
    {
        return Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", vec![crate::status::Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan".into(),
            field: "sendInitialEvents".into(),
        }]));
    }
    let from = match rv {
        "" | "0" => None,
        rv => {
            let rv: i64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
            if send_initial {
                cache.wait_for(rv, Duration::from_secs(3)).await?;
                None
            } else {
                Some(rv)
            }
        }
    };
    let subscription = match cache.subscribe(from, &prefix) {
        Ok(subscription) => subscription,
        // As kube-apiserver's watch cache does: a 200 stream carrying one
        // ERROR event, on which clients (client-go, kube-rs) relist.
        Err(err) if err.code == 410 => {
            return Ok(Response::builder()
                .status(200)
                .header(CONTENT_TYPE, "application/json")
                .body(Body::from(watch_line("ERROR", &err.status())))
                .unwrap_or_else(|_| {
                    axum::response::IntoResponse::into_response(ApiError::internal(
                        "building a response",
                    ))
                }));
        }
        Err(err) => return Err(err),
    };
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let bookmarks = req.query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let watcher = Watcher {
        resource: req.resource.clone(),
        selectors,
        prefix,
        table: representation == Representation::Table,
        include: crate::table::IncludeObject::from_query(req.query.get("includeObject")),
        sent_columns: false,
        tx,
        last_revision: subscription.revision,
    };
    let guard = metrics.watch_opened(req.resource.kind);
    tokio::spawn(async move {
        watcher
            .run(
                &cache,
                &guard,
                subscription,
                timeout,
                bookmarks,
                send_initial,
            )
            .await;
        drop(guard);
    });
    Ok(Response::builder()
        .status(200)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap_or_else(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal("building a response"))
        }))
}

struct Watcher {
    resource: Arc<ResourceType>,
    selectors: Selectors,
    prefix: String,
    table: bool,
    include: crate::table::IncludeObject,
    sent_columns: bool,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    last_revision: i64,
}

impl Watcher {
    async fn run(
        mut self,
        cache: &Cache,
        guard: &crate::metrics::WatchGuard,
        subscription: crate::watchcache::Subscription,
        timeout: Duration,
        bookmarks: bool,
        send_initial: bool,
    ) {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        for event in &subscription.initial {
            if !self.send(event).await {
                return;
            }
        }
        self.last_revision = self.last_revision.max(subscription.revision);
        if send_initial && !self.bookmark(true).await {
            return;
        }
        let mut live = subscription.live;
        let mut caught_up = false;
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if !self.bookmark(false).await {
                        return;
                    }
                }
                received = live.next() => match received {
                    Fed::Cached(event) => {
                        if event.revision <= self.last_revision && (caught_up || !subscription.synthetic) {
                            continue;
                        }
                        if event.revision <= subscription.revision {
                            continue;
                        }
                        if !self.send(&event).await {
                            return;
                        }
                        self.last_revision = event.revision;
                    }
                    Fed::Stored(event) => {
                        if event.revision() <= self.last_revision {
                            continue;
                        }
                        if let Some(event) = cache.event_from_store(&event)
                            && !self.send(&event).await
                        {
                            return;
                        }
                        self.last_revision = event.revision();
                    }
                    // Upstream would drop a watcher this slow, and its
                    // client would resume from its last resourceVersion;
                    // this one resumes in place, from the store's history.
                    Fed::Lagged => match cache.catch_up(&self.prefix, self.last_revision).await {
                        Ok(feed) => {
                            live = feed;
                            caught_up = true;
                            guard.caught_up();
                        }
                        Err(error) => {
                            let _ = self.tx.send(Ok(watch_line("ERROR", &error.status()))).await;
                            return;
                        }
                    },
                    Fed::Closed => {
                        let error = ApiError::expired("The resourceVersion for the provided watch is too old.");
                        let _ = self.tx.send(Ok(watch_line("ERROR", &error.status()))).await;
                        return;
                    }
                },
            }
        }
    }

    /// Sends one cache event through the selectors; false once the client
    /// has gone.
    async fn send(&mut self, event: &CacheEvent) -> bool {
        if !event.key.starts_with(&self.prefix) {
            return true;
        }
        let now = self.selectors.matches_cached(&event.object);
        let before = event
            .prev
            .as_ref()
            .is_some_and(|prev| self.selectors.matches_cached(prev));
        let kind = match (event.kind, before, now) {
            (WatchType::Added, _, true) => WatchType::Added,
            (WatchType::Modified, true, true) => WatchType::Modified,
            (WatchType::Modified, false, true) => WatchType::Added,
            (WatchType::Modified, true, false) => WatchType::Deleted,
            (WatchType::Deleted, true, _) | (WatchType::Deleted, false, true) => WatchType::Deleted,
            _ => return true,
        };
        let line = if self.table {
            let with_columns = !self.sent_columns;
            self.sent_columns = true;
            let meta = json!({"resourceVersion": event.revision.to_string()});
            let table = crate::table::table(
                &self.resource,
                std::slice::from_ref(&event.object.value()),
                meta,
                with_columns,
                self.include,
            );
            watch_line(kind.as_str(), &table)
        } else if kind == event.kind && self.selectors.is_empty() {
            event.json_line()
        } else {
            event.object.watch_line(kind)
        };
        self.tx.send(Ok(line)).await.is_ok()
    }

    async fn bookmark(&mut self, initial_events_end: bool) -> bool {
        let mut metadata = json!({"resourceVersion": self.last_revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object: Value = json!({
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version(),
            "metadata": metadata,
        });
        self.tx
            .send(Ok(watch_line("BOOKMARK", &object)))
            .await
            .is_ok()
    }
}
