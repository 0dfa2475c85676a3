//! The work queue every controller drains, with client-go's guarantees: a
//! key is queued at most once however often it is added, no two workers
//! hold the same key at once (a key added while it is being worked on is
//! worked on again afterwards), and failures are retried with a per-key
//! exponential backoff that a success forgets.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// A deduplicating, rate-limited queue of keys.
pub(crate) struct WorkQueue<T> {
    state: Mutex<State<T>>,
    ready: Notify,
}

struct State<T> {
    queue: VecDeque<T>,
    queued: HashSet<T>,
    processing: HashSet<T>,
    /// Added while processing: queued again when `done`.
    dirty: HashSet<T>,
    failures: HashMap<T, u32>,
}

/// First retry delay after a failure; doubles per failure up to `MAX_BACKOFF`.
const BASE_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued: HashSet::new(),
                processing: HashSet::new(),
                dirty: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `key` unless it is already queued.
    pub(crate) fn add(&self, key: T) {
        let mut state = self.state();
        if state.processing.contains(&key) {
            state.dirty.insert(key);
            return;
        }
        if state.queued.insert(key.clone()) {
            state.queue.push_back(key);
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub(crate) fn add_after(self: &Arc<Self>, key: T, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// Queues `key` again after its backoff, which grows with each call
    /// until `forget`.
    pub(crate) fn retry(self: &Arc<Self>, key: T) {
        let failures = {
            let mut state = self.state();
            let n = state.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = BASE_BACKOFF
            .saturating_mul(1 << failures.min(20).saturating_sub(1))
            .min(MAX_BACKOFF);
        self.add_after(key, delay);
    }

    /// Clears `key`'s failure count.
    pub(crate) fn forget(&self, key: &T) {
        self.state().failures.remove(key);
    }

    /// The next key to work on; the caller must call `done` with it.
    pub(crate) async fn next(&self) -> T {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.state();
                if let Some(key) = state.queue.pop_front() {
                    state.queued.remove(&key);
                    state.processing.insert(key.clone());
                    if !state.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Finishes work on `key`; if it was added meanwhile it is queued again.
    pub(crate) fn done(&self, key: &T) {
        let again = {
            let mut state = self.state();
            state.processing.remove(key);
            state.dirty.remove(key)
        };
        if again {
            self.add(key.clone());
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state().queue.len()
    }
}

/// What a reconcile asks for afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code, reason = "After serves the controllers being added")]
pub(crate) enum Next {
    /// Nothing until something changes.
    Done,
    /// Look again after this long (a deadline, a schedule, a wait).
    After(Duration),
}

/// Runs `workers` tasks draining `queue` through `reconcile`, forever.
/// Errors are logged and retried with backoff.
pub(crate) async fn run_workers<T, F, Fut, E>(
    name: &'static str,
    queue: Arc<WorkQueue<T>>,
    workers: usize,
    reconcile: F,
) where
    T: Clone + Eq + Hash + Send + Sync + std::fmt::Display + 'static,
    F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Next, E>> + Send,
    E: std::fmt::Display,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = Arc::clone(&queue);
        let reconcile = reconcile.clone();
        tasks.spawn(async move {
            loop {
                let key = queue.next().await;
                let outcome = reconcile(key.clone()).await;
                queue.done(&key);
                match outcome {
                    Ok(Next::Done) => queue.forget(&key),
                    Ok(Next::After(delay)) => {
                        queue.forget(&key);
                        queue.add_after(key, delay);
                    }
                    Err(err) => {
                        tracing::debug!(controller = name, key = %key, error = %err, "reconcile failed; retrying");
                        queue.retry(key);
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_requeued_if_added_while_processing() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.add("a");
        queue.add("b");
        assert_eq!(queue.len(), 2);
        let a = queue.next().await;
        assert_eq!(a, "a");
        queue.add("a"); // changed while a worker holds it
        assert_eq!(queue.len(), 1, "not queued twice while processing");
        queue.done(&a);
        assert_eq!(queue.next().await, "b");
        assert_eq!(queue.next().await, "a", "worked on again after done");
    }

    #[tokio::test]
    async fn retries_back_off_exponentially() {
        let queue = WorkQueue::new();
        for _ in 0..4 {
            queue.retry("k");
        }
        // the fourth retry waits 5ms * 2^3 = 40ms
        let start = tokio::time::Instant::now();
        assert_eq!(queue.next().await, "k");
        assert!(start.elapsed() >= Duration::from_millis(5));
        queue.forget(&"k");
        queue.done(&"k");
        queue.retry("k");
        let start = tokio::time::Instant::now();
        assert_eq!(queue.next().await, "k");
        assert!(start.elapsed() < Duration::from_millis(40));
    }
}
