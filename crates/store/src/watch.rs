//! Watch delivery shared by the backends: the stream a caller reads, and the
//! fan-out hub the embedded backend publishes committed events to.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::{Event, Range, Revision, StoreError};

/// How long a producer that is allowed to wait (history replay, etcd's
/// stream) waits for room in a watcher's full buffer before cutting it off.
/// Live fan-out from the embedded writer never waits.
pub(crate) const SLOW_WATCHER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What travels from a backend to a [`WatchStream`].
pub(crate) type WatchItem = Result<Event, StoreError>;

/// Set by the producer when it cut a watcher off for being too slow: the first
/// revision the watcher did not receive. Zero while the watcher is healthy.
#[derive(Clone, Default)]
pub(crate) struct CutOff(Arc<AtomicI64>);

impl CutOff {
    pub(crate) fn cut(&self, resume_from: Revision) {
        self.0.store(resume_from, Ordering::SeqCst);
    }

    fn resume_from(&self) -> Option<Revision> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            rev => Some(rev),
        }
    }
}

/// The events of one watch, in revision order.
///
/// Ends with `Some(Err(_))` when the watch cannot continue —
/// [`StoreError::WatcherTooSlow`] if the reader fell behind, or
/// [`StoreError::Compacted`] if history it needed was compacted — and then
/// `None`. Dropping the stream cancels the watch.
pub struct WatchStream {
    source: Source,
    cut: CutOff,
    buffer: usize,
    done: bool,
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

/// Where a watch's items come from.
enum Source {
    /// A backend's buffer.
    Channel(mpsc::Receiver<WatchItem>),
    /// Another watch, transformed (see [`WatchStream::map`]).
    Mapped(Pin<Box<dyn Stream<Item = WatchItem> + Send>>),
}

impl WatchStream {
    pub(crate) fn new(
        rx: mpsc::Receiver<WatchItem>,
        cut: CutOff,
        buffer: usize,
        on_drop: Box<dyn FnOnce() + Send + Sync>,
    ) -> Self {
        WatchStream {
            source: Source::Channel(rx),
            cut,
            buffer,
            done: false,
            on_drop: Some(on_drop),
        }
    }

    /// This watch with every event passed through `f` (for store wrappers,
    /// e.g. one that decrypts values). An `Err` from `f` ends the watch.
    pub fn map<F>(self, f: F) -> WatchStream
    where
        F: Fn(Event) -> Result<Event, StoreError> + Send + 'static,
    {
        let buffer = self.buffer;
        let mapped = futures::StreamExt::map(self, move |item| item.and_then(&f));
        WatchStream {
            source: Source::Mapped(Box::pin(mapped)),
            cut: CutOff::default(),
            buffer,
            done: false,
            on_drop: None,
        }
    }

    /// Whether the producer has cut this watcher off for falling behind (the
    /// events already buffered can still be read, then the error follows).
    pub fn fell_behind(&self) -> bool {
        self.cut.resume_from().is_some()
    }

    /// The next event, or `None` once the watch has ended.
    pub async fn next_event(&mut self) -> Option<Result<Event, StoreError>> {
        futures::StreamExt::next(self).await
    }
}

impl Stream for WatchStream {
    type Item = Result<Event, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let polled = match &mut self.source {
            Source::Channel(rx) => rx.poll_recv(cx),
            Source::Mapped(stream) => stream.as_mut().poll_next(cx),
        };
        match polled {
            Poll::Ready(Some(item)) => {
                if item.is_err() {
                    self.done = true;
                }
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                self.done = true;
                let buffer = self.buffer;
                Poll::Ready(self.cut.resume_from().map(|resume_from| {
                    Err(StoreError::WatcherTooSlow {
                        buffer,
                        resume_from,
                    })
                }))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        if let Some(on_drop) = self.on_drop.take() {
            on_drop();
        }
    }
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("buffer", &self.buffer)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Fans committed events out to the live watchers of one store.
///
/// The writer publishes every committed batch while holding the hub's lock;
/// a watcher registers under the same lock only once it has replayed history
/// up to the hub's last published revision. So each event reaches a watcher
/// exactly once: from history if it was committed before registration, live
/// otherwise.
pub(crate) struct Hub {
    state: Mutex<HubState>,
}

struct HubState {
    last_published: Revision,
    next_id: u64,
    watchers: HashMap<u64, Slot>,
}

struct Slot {
    /// Events at or below this revision were replayed from history already
    /// (the writer may commit before it publishes).
    seen: Revision,
    range: Range,
    tx: mpsc::Sender<WatchItem>,
    cut: CutOff,
}

impl Hub {
    pub(crate) fn new(last_published: Revision) -> Arc<Self> {
        Arc::new(Hub {
            state: Mutex::new(HubState {
                last_published,
                next_id: 1,
                watchers: HashMap::new(),
            }),
        })
    }

    /// Delivers committed events (in revision order) to every watcher whose
    /// range holds their key. A watcher whose buffer is full is cut off.
    pub(crate) fn publish(&self, events: &[Event], last: Revision) {
        let mut state = self.lock();
        state.last_published = last;
        if state.watchers.is_empty() {
            return;
        }
        let mut cut_off = Vec::new();
        for event in events {
            for (id, slot) in &state.watchers {
                if event.revision() <= slot.seen || !slot.range.contains(event.kv.key.as_bytes()) {
                    continue;
                }
                if slot.tx.try_send(Ok(event.clone())).is_err() {
                    // Full (too slow) or closed (dropped): either way this
                    // watcher gets nothing more.
                    slot.cut.cut(event.revision());
                    cut_off.push(*id);
                }
            }
            for id in cut_off.drain(..) {
                state.watchers.remove(&id);
            }
        }
    }

    /// Registers a watcher that has seen every event up to `seen`, if that is
    /// the newest published revision. Otherwise returns the newest published
    /// revision so the caller can replay up to it and try again.
    pub(crate) fn register_if_caught_up(
        &self,
        seen: Revision,
        range: Range,
        tx: mpsc::Sender<WatchItem>,
        cut: CutOff,
    ) -> Result<u64, Revision> {
        let mut state = self.lock();
        if state.last_published > seen {
            return Err(state.last_published);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.watchers.insert(
            id,
            Slot {
                seen,
                range,
                tx,
                cut,
            },
        );
        Ok(id)
    }

    pub(crate) fn unregister(&self, id: u64) {
        self.lock().watchers.remove(&id);
    }

    /// Ends every watch (the store is closing).
    pub(crate) fn close(&self) {
        self.lock().watchers.clear();
    }

    pub(crate) fn watcher_count(&self) -> usize {
        self.lock().watchers.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panic while holding this lock cannot leave the map half-updated
        // in a way later calls would trip over, so a poisoned lock is usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
