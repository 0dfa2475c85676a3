//! The IO layer: watches nodes, pods, PriorityClasses and namespaces,
//! keeps the [`Snapshot`] and the queue current, schedules one pod at a
//! time, and binds, reports and preempts through the API server.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent};
use tokio::sync::Notify;

use bulwark_client::events::Recorder;

use crate::events;
use crate::queue::Queue;
use crate::schedule::{ScheduleError, Scheduler};
use crate::snapshot::{Snapshot, pod_key};

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Pods with this `spec.schedulerName` are ours (`default-scheduler`).
    pub scheduler_name: String,
    /// Backoff after the first failed attempt (upstream's
    /// `podInitialBackoffSeconds`, 1s); doubles per attempt.
    pub pod_initial_backoff: Duration,
    /// The longest backoff (`podMaxBackoffSeconds`, 10s).
    pub pod_max_backoff: Duration,
    /// How long an unschedulable pod waits without a cluster change before
    /// it is tried again (`podMaxInUnschedulablePodsDuration`, 5 minutes).
    pub max_unschedulable_duration: Duration,
    /// `percentageOfNodesToScore`; 0 is upstream's adaptive default.
    pub percentage_of_nodes_to_score: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            scheduler_name: "default-scheduler".into(),
            pod_initial_backoff: Duration::from_secs(1),
            pod_max_backoff: Duration::from_secs(10),
            max_unschedulable_duration: Duration::from_secs(300),
            percentage_of_nodes_to_score: 0,
        }
    }
}

/// What the watchers and the scheduling loop share.
struct State {
    snapshot: Snapshot,
    queue: Queue,
    /// Pods assumed onto a node while their binding is in flight.
    assumed: HashSet<String>,
    /// PriorityClass name → (value, global default).
    classes: HashMap<String, (i32, bool)>,
    /// Node and pod keys listed since the last watch (re)start.
    relist_nodes: Option<HashSet<String>>,
    relist_pods: Option<HashSet<String>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    options: SchedulerOptions,
    client: kube::Client,
    recorder: Recorder,
    /// Bounds the writes in flight: kube-rs speaks HTTP/1.1, so each
    /// concurrent request is a connection (and a TLS handshake).
    writes: tokio::sync::Semaphore,
}

/// Writes (bindings, status updates) in flight at once.
const CONCURRENT_WRITES: usize = 256;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a usable state (every
        // update is a few map operations), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the scheduler until a watch fails for good.
///
/// Schedules the pods whose `spec.schedulerName` is
/// `options.scheduler_name`, that have no node and are not being deleted.
pub async fn run(client: kube::Client, options: SchedulerOptions) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            snapshot: Snapshot::new(),
            queue: Queue::new(
                options.pod_initial_backoff,
                options.pod_max_backoff,
                options.max_unschedulable_duration,
            ),
            assumed: HashSet::new(),
            classes: HashMap::new(),
            relist_nodes: None,
            relist_pods: None,
        }),
        wake: Notify::new(),
        options,
        client: client.clone(),
        recorder: Recorder::new(client.clone(), events::COMPONENT),
        writes: tokio::sync::Semaphore::new(CONCURRENT_WRITES),
    });
    // PriorityClasses first, so that pods listed next get their priority.
    // Upstream's scheduler role may not read them (admission resolves
    // priorities there): without them, unresolved pods have priority 0.
    let classes_api = Api::<PriorityClass>::all(client.clone());
    let read_classes = match classes_api.list(&Default::default()).await {
        Ok(list) => {
            for pc in list {
                on_class(&shared, WatchEvent::Apply(pc));
            }
            true
        }
        Err(e) => {
            // The API server's Priority admission sets spec.priority anyway.
            tracing::debug!(error = %e, "cannot read PriorityClasses; pods without spec.priority count as priority 0");
            false
        }
    };
    let classes = watch(classes_api);
    let namespaces = watch(Api::<Namespace>::all(client.clone()));
    let nodes = watch(Api::<Node>::all(client.clone()));
    let pods = watch(Api::<Pod>::all(client.clone()));
    // For the default topology spreading: what a pod belongs to.
    let services = watch(Api::<Service>::all(client.clone()));
    let replica_sets = watch(Api::<ReplicaSet>::all(client.clone()));
    let stateful_sets = watch(Api::<StatefulSet>::all(client.clone()));
    // ReplicationControllers are not served by Bulwark; the snapshot still
    // knows them (for upstream parity) but nothing feeds it any.
    let s = shared.clone();
    let watchers = async move {
        tokio::try_join!(
            async {
                if read_classes {
                    drive(classes, |e| on_class(&s, e)).await
                } else {
                    Ok(())
                }
            },
            drive(namespaces, |e| on_namespace(&s, e)),
            drive(nodes, |e| on_node(&s, e)),
            drive(pods, |e| on_pod(&s, e)),
            drive(services, |e| on_service(&s, e)),
            drive(replica_sets, |e| on_controller(&s, e)),
            drive(stateful_sets, |e| on_controller(&s, e)),
        )
    };
    tokio::select! {
        r = watchers => r.map(|_| ()),
        () = schedule_loop(shared.clone()) => Ok(()),
    }
}

fn watch<K>(api: Api<K>) -> impl Stream<Item = Result<WatchEvent<K>, watcher::Error>> + Send
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    // managedFields are a large part of every object and the scheduler
    // never reads them: its snapshot goes without.
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|object: &mut K| object.meta_mut().managed_fields = None)
}

async fn drive<K>(
    stream: impl Stream<Item = Result<WatchEvent<K>, watcher::Error>>,
    mut each: impl FnMut(WatchEvent<K>),
) -> anyhow::Result<()> {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(e) => each(e),
            // The backoff retries; the error is worth a line.
            Err(e) => tracing::warn!(error = %e, "scheduler watch failed, retrying"),
        }
    }
    Ok(())
}

fn on_class(shared: &Shared, event: WatchEvent<PriorityClass>) {
    let mut st = shared.lock();
    match event {
        WatchEvent::Apply(pc) | WatchEvent::InitApply(pc) => {
            let name = pc.metadata.name.clone().unwrap_or_default();
            st.classes
                .insert(name, (pc.value, pc.global_default == Some(true)));
        }
        WatchEvent::Delete(pc) => {
            st.classes.remove(pc.metadata.name.as_deref().unwrap_or(""));
        }
        WatchEvent::Init | WatchEvent::InitDone => {}
    }
}

fn on_service(shared: &Shared, event: WatchEvent<Service>) {
    let mut st = shared.lock();
    match event {
        WatchEvent::Apply(svc) | WatchEvent::InitApply(svc) => st.snapshot.set_service(&svc),
        WatchEvent::Delete(svc) => st.snapshot.remove_service(
            svc.metadata.namespace.as_deref().unwrap_or(""),
            svc.metadata.name.as_deref().unwrap_or(""),
        ),
        WatchEvent::Init | WatchEvent::InitDone => {}
    }
}

fn on_controller<K>(shared: &Shared, event: WatchEvent<K>)
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize,
{
    let mut st = shared.lock();
    match event {
        WatchEvent::Apply(c) | WatchEvent::InitApply(c) => st.snapshot.set_controller(&c),
        WatchEvent::Delete(c) => st.snapshot.remove_controller::<K>(
            c.meta().namespace.as_deref().unwrap_or(""),
            c.meta().name.as_deref().unwrap_or(""),
        ),
        WatchEvent::Init | WatchEvent::InitDone => {}
    }
}

fn on_namespace(shared: &Shared, event: WatchEvent<Namespace>) {
    let mut st = shared.lock();
    match event {
        WatchEvent::Apply(ns) | WatchEvent::InitApply(ns) => {
            let name = ns.metadata.name.clone().unwrap_or_default();
            st.snapshot
                .set_namespace(&name, ns.metadata.labels.unwrap_or_default());
        }
        WatchEvent::Delete(ns) => st
            .snapshot
            .remove_namespace(ns.metadata.name.as_deref().unwrap_or("")),
        WatchEvent::Init | WatchEvent::InitDone => {}
    }
}

fn on_node(shared: &Shared, event: WatchEvent<Node>) {
    let now = Instant::now();
    let mut st = shared.lock();
    match event {
        WatchEvent::Init => st.relist_nodes = Some(HashSet::new()),
        WatchEvent::InitApply(node) | WatchEvent::Apply(node) => {
            let name = node.metadata.name.clone().unwrap_or_default();
            if let Some(seen) = st.relist_nodes.as_mut() {
                seen.insert(name);
            }
            if st.snapshot.set_node(node) {
                st.queue.move_all(now);
            }
        }
        WatchEvent::Delete(node) => st
            .snapshot
            .remove_node(node.metadata.name.as_deref().unwrap_or("")),
        WatchEvent::InitDone => {
            if let Some(seen) = st.relist_nodes.take() {
                let gone: Vec<String> = st
                    .snapshot
                    .node_names()
                    .filter(|n| !seen.contains(*n))
                    .map(str::to_owned)
                    .collect();
                for n in gone {
                    st.snapshot.remove_node(&n);
                }
            }
        }
    }
    drop(st);
    shared.wake.notify_one();
}

fn on_pod(shared: &Shared, event: WatchEvent<Pod>) {
    let now = Instant::now();
    let mut st = shared.lock();
    match event {
        WatchEvent::Init => st.relist_pods = Some(HashSet::new()),
        WatchEvent::InitApply(pod) | WatchEvent::Apply(pod) => {
            let key = pod_key(&pod);
            if let Some(seen) = st.relist_pods.as_mut() {
                seen.insert(key.clone());
            }
            apply_pod(&mut st, &shared.options, pod, now);
        }
        WatchEvent::Delete(pod) => forget_pod(&mut st, &pod_key(&pod), now),
        WatchEvent::InitDone => {
            if let Some(seen) = st.relist_pods.take() {
                let gone: Vec<String> = st
                    .snapshot
                    .pod_keys()
                    .chain(st.queue.keys())
                    .filter(|k| !seen.contains(*k))
                    .map(str::to_owned)
                    .collect();
                for k in gone {
                    forget_pod(&mut st, &k, now);
                }
            }
        }
    }
    drop(st);
    shared.wake.notify_one();
}

fn forget_pod(st: &mut State, key: &str, now: Instant) {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    st.snapshot.remove_pod(ns, name);
    st.queue.delete(key);
    st.assumed.remove(key);
    st.queue.move_all(now);
}

fn apply_pod(st: &mut State, options: &SchedulerOptions, mut pod: Pod, now: Instant) {
    let key = pod_key(&pod);
    resolve_priority(&mut pod, &st.classes);
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        forget_pod(st, &key, now);
        return;
    }
    let spec = pod.spec.as_ref();
    if spec
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
    {
        let new = st.snapshot.node_of_key(&key).is_none() || st.assumed.contains(&key);
        st.assumed.remove(&key);
        st.queue.delete(&key);
        st.snapshot.add_pod(pod);
        if new {
            st.queue.move_for_pod_added(now);
        }
        return;
    }
    let ours = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or("default-scheduler")
        == options.scheduler_name;
    if !ours || pod.metadata.deletion_timestamp.is_some() {
        st.queue.delete(&key);
        st.snapshot.nominate(&pod, None);
        return;
    }
    let nominated = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref());
    st.snapshot.nominate(&pod, nominated);
    // Bound by us, the watch not caught up yet.
    if st.assumed.contains(&key) {
        return;
    }
    st.queue.add(Arc::new(pod), now);
}

/// Fills `spec.priority` from `priorityClassName` (or the global default
/// class) when the API server has not, as the Priority admission plugin
/// would have.
fn resolve_priority(pod: &mut Pod, classes: &HashMap<String, (i32, bool)>) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    if spec.priority.is_some() {
        return;
    }
    let value = match spec
        .priority_class_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        Some(name) => classes.get(name).map(|(v, _)| *v),
        None => classes
            .values()
            .find(|(_, global)| *global)
            .map(|(v, _)| *v),
    };
    spec.priority = value;
}

async fn schedule_loop(shared: Arc<Shared>) {
    let mut scheduler = Scheduler::new()
        .with_percentage_of_nodes_to_score(shared.options.percentage_of_nodes_to_score);
    loop {
        let (item, next) = {
            let mut st = shared.lock();
            let item = st.queue.pop(Instant::now());
            (item, st.queue.next_ready())
        };
        let Some(item) = item else {
            let wait = next.map_or(Duration::from_secs(1), |t| {
                t.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
            }
            continue;
        };
        attempt(&shared, &mut scheduler, item.pod.clone(), &item.key);
        // Let watch events in between pods.
        tokio::task::yield_now().await;
    }
}

/// One scheduling attempt: on success assume and bind in the background;
/// on failure try preemption and report.
fn attempt(shared: &Arc<Shared>, scheduler: &mut Scheduler, pod: Arc<Pod>, key: &str) {
    let now = Instant::now();
    let mut st = shared.lock();
    let result = scheduler.schedule_arc(&st.snapshot, pod.clone());
    match result {
        Ok(node) => {
            st.snapshot.assume(&pod, &node);
            st.assumed.insert(key.to_owned());
            st.queue.delete(key);
            drop(st);
            tokio::spawn(bind(shared.clone(), pod, node));
        }
        Err(err) => {
            let preemption = match err {
                ScheduleError::Unschedulable(ref fe) => {
                    let mut fe = fe.clone();
                    let p = scheduler.preempt(&st.snapshot, &pod, &mut fe);
                    if let Some(p) = &p {
                        st.snapshot.nominate(&pod, Some(&p.node));
                    }
                    (ScheduleError::Unschedulable(fe), p)
                }
                ScheduleError::NoNodes => (err, None),
            };
            let waits_for_pods =
                matches!(&preemption.0, ScheduleError::Unschedulable(fe) if fe.waits_for_pods());
            st.queue.unschedulable(key, now, waits_for_pods);
            drop(st);
            let (err, preemption) = preemption;
            tracing::debug!(pod = key, error = %err, "pod is unschedulable");
            let shared = shared.clone();
            tokio::spawn(async move {
                let _permit = shared.writes.acquire().await;
                events::report_failure(
                    shared.client.clone(),
                    shared.recorder.clone(),
                    pod,
                    err,
                    preemption,
                )
                .await;
            });
        }
    }
}

async fn bind(shared: Arc<Shared>, pod: Arc<Pod>, node: String) {
    let key = pod_key(&pod);
    let permit = shared.writes.acquire().await;
    let bound = events::bind(&shared.client, &pod, &node).await;
    // The event waits behind the bindings still to be made.
    drop(permit);
    match bound {
        Ok(()) => {
            tracing::debug!(pod = key, node, "bound");
            let _permit = shared.writes.acquire().await;
            events::scheduled(&shared.recorder, &pod, &node).await;
        }
        Err(e) => {
            tracing::warn!(pod = key, node, error = %e, "binding failed");
            let mut st = shared.lock();
            if st.assumed.remove(&key) {
                let (ns, name) = key.split_once('/').unwrap_or(("", &key));
                st.snapshot.remove_pod(ns, name);
                st.queue.retry(pod, Instant::now());
            }
            drop(st);
            shared.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let o = SchedulerOptions::default();
        State {
            snapshot: Snapshot::new(),
            queue: Queue::new(
                o.pod_initial_backoff,
                o.pod_max_backoff,
                o.max_unschedulable_duration,
            ),
            assumed: HashSet::new(),
            classes: HashMap::from([
                ("high".to_owned(), (1000, false)),
                ("base".to_owned(), (5, true)),
            ]),
            relist_nodes: None,
            relist_pods: None,
        }
    }

    fn pod(name: &str, extra: serde_json::Value) -> Pod {
        let mut v = serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Pending"}
        });
        for (k, val) in extra.as_object().into_iter().flatten() {
            let (outer, inner) = k.split_once('.').expect("outer.inner");
            v[outer][inner] = val.clone();
        }
        serde_json::from_value(v).expect("a pod")
    }

    /// Which pods end up queued, after applying each.
    fn queued(pods: Vec<Pod>) -> Vec<(String, i32)> {
        let mut st = state();
        let now = Instant::now();
        for p in pods {
            apply_pod(&mut st, &SchedulerOptions::default(), p, now);
        }
        std::iter::from_fn(|| st.queue.pop(now))
            .map(|q| {
                (
                    q.key,
                    q.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(-1),
                )
            })
            .collect()
    }

    #[test]
    fn only_our_pending_pods_are_queued_with_their_priority() {
        let got = queued(vec![
            pod("plain", serde_json::json!({})),
            pod("vip", serde_json::json!({"spec.priorityClassName": "high"})),
            pod(
                "given",
                serde_json::json!({"spec.priority": 7, "spec.priorityClassName": "high"}),
            ),
            pod(
                "unknown-class",
                serde_json::json!({"spec.priorityClassName": "nope"}),
            ),
            pod(
                "other",
                serde_json::json!({"spec.schedulerName": "my-scheduler"}),
            ),
            pod("bound", serde_json::json!({"spec.nodeName": "n1"})),
            pod(
                "gone",
                serde_json::json!({"metadata.deletionTimestamp": "2026-01-01T00:00:00Z"}),
            ),
            pod("done", serde_json::json!({"status.phase": "Succeeded"})),
        ]);
        assert_eq!(
            got,
            [
                ("default/vip".to_owned(), 1000),
                ("default/given".to_owned(), 7),
                ("default/plain".to_owned(), 5),
                ("default/unknown-class".to_owned(), -1),
            ]
        );
    }

    #[test]
    fn a_bound_pod_leaves_the_queue_and_enters_the_snapshot() {
        let mut st = state();
        let now = Instant::now();
        let o = SchedulerOptions::default();
        apply_pod(&mut st, &o, pod("p", serde_json::json!({})), now);
        st.assumed.insert("default/p".into());
        // The watch still shows it pending while the binding is in flight.
        apply_pod(&mut st, &o, pod("p", serde_json::json!({})), now);
        apply_pod(
            &mut st,
            &o,
            pod("p", serde_json::json!({"spec.nodeName": "n1"})),
            now,
        );
        assert!(st.queue.pop(now).is_none());
        assert!(st.assumed.is_empty());
        assert_eq!(st.snapshot.node_of("default", "p"), Some("n1"));
        apply_pod(
            &mut st,
            &o,
            pod(
                "p",
                serde_json::json!({"spec.nodeName": "n1", "status.phase": "Failed"}),
            ),
            now,
        );
        assert_eq!(st.snapshot.node_of("default", "p"), None);
    }
}
