//! The scheduling queue (upstream's `PriorityQueue`): `activeQ` ordered by
//! priority then arrival, `backoffQ` for pods that failed recently, and
//! the unschedulable pods that wait for a cluster change. Pure: the clock
//! is passed in.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::snapshot::{pod_key, priority};

/// A pod waiting to be scheduled.
#[derive(Debug, Clone)]
pub(crate) struct QueuedPod {
    pub(crate) pod: Arc<Pod>,
    pub(crate) key: String,
    /// Failed attempts so far.
    pub(crate) attempts: u32,
    /// When the pod first entered the queue (the tie-break after priority).
    added: Instant,
    /// When its last attempt failed.
    failed: Option<Instant>,
    /// The queue's move counters when the pod was popped.
    popped_at_move: u64,
    popped_at_pod_move: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

/// Upstream's `flushUnschedulablePodsLeftover` period.
const LEFTOVER_SCAN_INTERVAL: Duration = Duration::from_secs(30);

/// Active key: higher priority first, then earlier arrival.
type ActiveKey = (std::cmp::Reverse<i32>, Instant, u64);

#[derive(Debug)]
pub(crate) struct Queue {
    pods: HashMap<String, (QueuedPod, Place, ActiveKey)>,
    active: BTreeSet<(ActiveKey, String)>,
    backoff: BTreeSet<(Instant, String)>,
    /// Keys of the unschedulable pods → whether a pod being placed may
    /// help them (they failed on inter-pod affinity or topology spread).
    unschedulable: HashMap<String, bool>,
    /// When leftover unschedulable pods were last looked for.
    last_leftover_scan: Option<Instant>,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_unschedulable: Duration,
    /// Cluster changes (any), and pods placed, counted to tell whether one
    /// happened while a pod was being scheduled.
    moves: u64,
    pod_moves: u64,
    seq: u64,
}

impl Queue {
    pub(crate) fn new(
        initial_backoff: Duration,
        max_backoff: Duration,
        max_unschedulable: Duration,
    ) -> Queue {
        Queue {
            pods: HashMap::new(),
            active: BTreeSet::new(),
            backoff: BTreeSet::new(),
            unschedulable: HashMap::new(),
            last_leftover_scan: None,
            initial_backoff,
            max_backoff,
            max_unschedulable,
            moves: 0,
            pod_moves: 0,
            seq: 0,
        }
    }

    /// Adds a pending pod, or updates the queued copy. An update that
    /// changes the pod's spec or labels gives an unschedulable pod another
    /// try (after its backoff).
    pub(crate) fn add(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = pod_key(&pod);
        if let Some((q, place, _)) = self.pods.get_mut(&key) {
            let changed = q.pod.spec != pod.spec || q.pod.metadata.labels != pod.metadata.labels;
            q.pod = pod;
            if *place == Place::Unschedulable && changed {
                self.requeue(&key, now);
            }
            return;
        }
        self.seq += 1;
        let q = QueuedPod {
            key: key.clone(),
            pod,
            attempts: 0,
            added: now,
            failed: None,
            popped_at_move: 0,
            popped_at_pod_move: 0,
        };
        let ak = (std::cmp::Reverse(priority(&q.pod)), now, self.seq);
        self.active.insert((ak, key.clone()));
        self.pods.insert(key, (q, Place::Active, ak));
    }

    /// Forgets a pod (deleted, bound, or no longer ours).
    pub(crate) fn delete(&mut self, key: &str) {
        if let Some((q, place, ak)) = self.pods.remove(key) {
            self.unlink(key, &q, place, ak);
        }
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.pods.keys().map(String::as_str)
    }

    fn unlink(&mut self, key: &str, q: &QueuedPod, place: Place, ak: ActiveKey) {
        match place {
            Place::Active => {
                self.active.remove(&(ak, key.to_owned()));
            }
            Place::Backoff => {
                self.backoff.remove(&(self.ready_at(q), key.to_owned()));
            }
            Place::Unschedulable => {
                self.unschedulable.remove(key);
            }
            Place::InFlight => {}
        }
    }

    fn backoff_for(&self, attempts: u32) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d >= self.max_backoff {
                return self.max_backoff;
            }
        }
        d.min(self.max_backoff)
    }

    fn ready_at(&self, q: &QueuedPod) -> Instant {
        q.failed
            .map_or(q.added, |f| f + self.backoff_for(q.attempts))
    }

    /// The next pod to schedule, after moving pods whose backoff expired
    /// and those unschedulable for too long.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<QueuedPod> {
        self.flush(now);
        let (ak, key) = self.active.pop_first()?;
        let entry = self.pods.get_mut(&key)?;
        debug_assert_eq!(entry.2, ak);
        entry.1 = Place::InFlight;
        entry.0.popped_at_move = self.moves;
        entry.0.popped_at_pod_move = self.pod_moves;
        Some(entry.0.clone())
    }

    fn flush(&mut self, now: Instant) {
        while let Some((at, key)) = self.backoff.first().cloned() {
            if at > now {
                break;
            }
            self.backoff.pop_first();
            self.activate(&key);
        }
        // As upstream, leftovers are looked for every 30 seconds, not on
        // every pop: the scan is linear in the unschedulable pods.
        if self
            .last_leftover_scan
            .is_some_and(|t| now.saturating_duration_since(t) < LEFTOVER_SCAN_INTERVAL)
        {
            return;
        }
        self.last_leftover_scan = Some(now);
        let stale: Vec<String> = self
            .unschedulable
            .keys()
            .filter_map(|k| self.pods.get_key_value(k))
            .filter(|(_, (q, place, _))| {
                *place == Place::Unschedulable
                    && q.failed
                        .is_some_and(|f| now.duration_since(f) >= self.max_unschedulable)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            self.requeue(&key, now);
        }
    }

    fn activate(&mut self, key: &str) {
        if let Some(entry) = self.pods.get_mut(key) {
            entry.1 = Place::Active;
            self.active.insert((entry.2, key.to_owned()));
        }
    }

    /// Into backoffQ if the pod's backoff has not expired, else activeQ.
    fn requeue(&mut self, key: &str, now: Instant) {
        self.unschedulable.remove(key);
        let Some((q, _, _)) = self.pods.get(key) else {
            return;
        };
        let at = self.ready_at(q);
        if at > now {
            self.backoff.insert((at, key.to_owned()));
            if let Some(e) = self.pods.get_mut(key) {
                e.1 = Place::Backoff;
            }
        } else {
            self.activate(key);
        }
    }

    /// An attempt found no node: the pod waits for a cluster change, or
    /// backs off if one happened while it was being scheduled.
    /// `waits_for_pods`: the pod failed on inter-pod affinity or topology
    /// spread, so a pod being placed may help it.
    pub(crate) fn unschedulable(&mut self, key: &str, now: Instant, waits_for_pods: bool) {
        let (moves, pod_moves) = (self.moves, self.pod_moves);
        let Some(entry) = self.pods.get_mut(key) else {
            return;
        };
        entry.0.attempts += 1;
        entry.0.failed = Some(now);
        if entry.0.popped_at_move != moves
            || (waits_for_pods && entry.0.popped_at_pod_move != pod_moves)
        {
            self.requeue(key, now);
        } else {
            entry.1 = Place::Unschedulable;
            self.unschedulable.insert(key.to_owned(), waits_for_pods);
        }
    }

    /// An attempt failed for another reason (binding): back off and retry.
    pub(crate) fn retry(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = pod_key(&pod);
        if !self.pods.contains_key(&key) {
            self.add(pod, now);
        }
        if let Some(entry) = self.pods.get_mut(&key) {
            entry.0.attempts += 1;
            entry.0.failed = Some(now);
            let (q, place, ak) = entry.clone();
            self.unlink(&key, &q, place, ak);
            self.requeue(&key, now);
        }
    }

    /// A cluster change (node added or updated, pod deleted): every
    /// unschedulable pod gets another try once its backoff expires.
    pub(crate) fn move_all(&mut self, now: Instant) {
        self.moves += 1;
        let keys: Vec<String> = self.unschedulable.keys().cloned().collect();
        for key in keys {
            self.requeue(&key, now);
        }
    }

    /// A pod was placed on a node: the pods waiting for a pod to match
    /// their affinity or spread get another try.
    pub(crate) fn move_for_pod_added(&mut self, now: Instant) {
        self.pod_moves += 1;
        let keys: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|(_, waits)| **waits)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.requeue(&key, now);
        }
    }

    /// When the earliest backoff expires.
    pub(crate) fn next_ready(&self) -> Option<Instant> {
        self.backoff.first().map(|(at, _)| *at)
    }

    /// Keys in the three queues, for tests: (active, backoff, unschedulable).
    #[cfg(test)]
    fn lens(&self) -> (usize, usize, usize) {
        let unsched = self.unschedulable.len();
        (self.active.len(), self.backoff.len(), unsched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, prio: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"containers": [], "priority": prio}
            }))
            .expect("a pod"),
        )
    }

    fn queue() -> Queue {
        Queue::new(
            Duration::from_secs(1),
            Duration::from_secs(10),
            Duration::from_secs(300),
        )
    }

    #[test]
    fn priority_then_arrival() {
        let t = Instant::now();
        let mut q = queue();
        q.add(pod("a", 0), t);
        q.add(pod("b", 10), t + Duration::from_millis(1));
        q.add(pod("c", 0), t + Duration::from_millis(2));
        q.add(pod("d", 10), t + Duration::from_millis(3));
        let order: Vec<String> = std::iter::from_fn(|| q.pop(t).map(|p| p.key)).collect();
        assert_eq!(order, ["default/b", "default/d", "default/a", "default/c"]);
    }

    #[test]
    fn unschedulable_waits_for_a_move_then_backs_off() {
        let t = Instant::now();
        let mut q = queue();
        q.add(pod("a", 0), t);
        let p = q.pop(t).expect("a");
        q.unschedulable(&p.key, t, false);
        assert_eq!(q.lens(), (0, 0, 1));
        assert!(q.pop(t + Duration::from_secs(30)).is_none());
        q.move_all(t + Duration::from_millis(500));
        assert_eq!(q.lens(), (0, 1, 0));
        assert!(q.pop(t + Duration::from_millis(900)).is_none());
        let p = q.pop(t + Duration::from_secs(1)).expect("after 1s backoff");
        // Second failure: 2s backoff.
        q.unschedulable(&p.key, t + Duration::from_secs(2), false);
        q.move_all(t + Duration::from_secs(2));
        assert!(q.pop(t + Duration::from_millis(3900)).is_none());
        assert!(q.pop(t + Duration::from_secs(4)).is_some());
    }

    #[test]
    fn a_move_during_the_attempt_sends_the_pod_to_backoff() {
        let t = Instant::now();
        let mut q = queue();
        q.add(pod("a", 0), t);
        let p = q.pop(t).expect("a");
        q.move_all(t);
        q.unschedulable(&p.key, t, false);
        assert_eq!(q.lens(), (0, 1, 0));
    }

    #[test]
    fn backoff_is_capped_and_unschedulable_pods_are_flushed() {
        let q = queue();
        assert_eq!(q.backoff_for(1), Duration::from_secs(1));
        assert_eq!(q.backoff_for(4), Duration::from_secs(8));
        assert_eq!(q.backoff_for(5), Duration::from_secs(10));
        assert_eq!(q.backoff_for(50), Duration::from_secs(10));
        let t = Instant::now();
        let mut q = queue();
        q.add(pod("a", 0), t);
        let p = q.pop(t).expect("a");
        q.unschedulable(&p.key, t, false);
        assert!(q.pop(t + Duration::from_secs(299)).is_none());
        // Found by the next scan, at most 30 seconds later.
        assert!(q.pop(t + Duration::from_secs(329)).is_some());
    }

    #[test]
    fn a_placed_pod_wakes_only_pods_waiting_for_pods() {
        let t = Instant::now();
        let mut q = queue();
        q.add(pod("affinity", 0), t);
        q.add(pod("cpu", 0), t);
        let a = q.pop(t).expect("first");
        let b = q.pop(t).expect("second");
        q.unschedulable(&a.key, t, a.key == "default/affinity");
        q.unschedulable(&b.key, t, b.key == "default/affinity");
        q.move_for_pod_added(t);
        assert_eq!(q.lens(), (0, 1, 1));
        let p = q.pop(t + Duration::from_secs(1)).expect("woken");
        assert_eq!(p.key, "default/affinity");
    }

    #[test]
    fn delete_and_retry() {
        let t = Instant::now();
        let mut q = queue();
        q.add(pod("a", 0), t);
        q.delete("default/a");
        assert!(q.pop(t).is_none());
        q.retry(pod("b", 0), t);
        assert_eq!(q.lens(), (0, 1, 0));
        assert!(q.pop(t + Duration::from_secs(1)).is_some());
    }
}
