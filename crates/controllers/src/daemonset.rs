//! The DaemonSet controller (upstream's `daemon-set-controller`): one pod on
//! every node that should run one (node selector, required node affinity,
//! taints against the pod's tolerations plus the default daemon
//! tolerations), following nodes as they come and go; rolling updates
//! within `maxUnavailable` or `maxSurge` (or `OnDelete`), with the template
//! history kept as ControllerRevisions and each pod labelled
//! `controller-revision-hash`.
//!
//! As upstream (since 1.12), the controller does not place pods itself: it
//! creates each with a required node affinity `matchFields metadata.name In
//! [<node>]` and lets the scheduler bind it. Unlike upstream, it also
//! deletes its pods on nodes that no longer exist (upstream leaves that to
//! the pod garbage collector, which Bulwark does not have yet).
//! With `maxSurge`, a node runs its new pod next to the old one until the
//! new one is available.

pub(crate) mod decide;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bulwark_client::events::{EventType, reference};
use decide::NodePod;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::informer::{Change, Informer};
use crate::owned::{self, Expectations};
use crate::queue::{Next, WorkQueue, run_workers};
use crate::revisions::{self, REVISION_HASH};

const TEMPLATE_GENERATION: &str = "pod-template-generation";

pub(crate) async fn run(cx: Context) {
    let sets = cx.informers.get::<DaemonSet>();
    let pods = cx.informers.get::<Pod>();
    let nodes = cx.informers.get::<Node>();
    let revisions = cx.informers.get::<ControllerRevision>();
    let queue = WorkQueue::<String>::new();
    let (mut ds_changes, mut pod_changes, mut node_changes) =
        (sets.subscribe(), pods.subscribe(), nodes.subscribe());
    sets.ready().await;
    pods.ready().await;
    nodes.ready().await;
    revisions.ready().await;
    let enqueue_all = sets.enqueue_all(&queue, owned::key_of);
    enqueue_all();
    let feeder = {
        let queue = Arc::clone(&queue);
        async move {
            loop {
                tokio::select! {
                    change = ds_changes.next() => match change {
                        Some(Change::Applied(ds) | Change::Deleted(ds)) => queue.add(owned::key_of(ds.as_ref())),
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                    change = pod_changes.next() => match change {
                        Some(Change::Applied(pod) | Change::Deleted(pod)) => {
                            if let Some(key) = owned::controller_key(pod.as_ref(), "DaemonSet") {
                                queue.add(key);
                            }
                        }
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                    // Any node change may change where daemons belong.
                    change = node_changes.next() => match change {
                        Some(_) => enqueue_all(),
                        None => return,
                    },
                }
            }
        }
    };
    let controller = Arc::new(DaemonSetController {
        cx,
        sets,
        pods,
        nodes,
        revisions,
        expectations: Expectations::default(),
    });
    let reconcile = move |key: String| {
        let controller = Arc::clone(&controller);
        async move { controller.reconcile(&key).await }
    };
    tokio::join!(
        feeder,
        run_workers("daemon-set-controller", queue, 2, reconcile)
    );
}

struct DaemonSetController {
    cx: Context,
    sets: Informer<DaemonSet>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    revisions: Informer<ControllerRevision>,
    expectations: Expectations,
}

/// A node that should run the daemon, as a rolling update sees it.
#[derive(Default)]
struct Rolling<'a> {
    node: String,
    /// Its (oldest) pod's state; `None`: no pod.
    state: Option<NodePod>,
    pod: Option<&'a Pod>,
    /// During a surge: the new pod next to an old one, and whether it is
    /// available.
    surge: Option<(&'a Pod, bool)>,
    /// A pod is being made or deleted there.
    pending: bool,
}

/// What the controller saw on one node.
#[derive(Default)]
struct OnNode<'a> {
    /// Live pods (not finished, not being deleted).
    live: Vec<&'a Pod>,
    /// Pods being deleted, or created but not seen yet.
    pending: usize,
}

impl DaemonSetController {
    async fn reconcile(&self, key: &str) -> Result<Next, kube::Error> {
        let (namespace, name) = owned::split_key(key);
        let Some(ds) = self
            .sets
            .store()
            .get(&ObjectRef::new(name).within(namespace))
        else {
            self.expectations.forget(key);
            return Ok(Next::Done);
        };
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(Next::Done);
        }
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let spec = ds.spec.clone().unwrap_or_default();
        let all_pods = self.pods.store().state();
        let pods: Vec<&Pod> = all_pods
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| p.namespace().as_deref() == Some(namespace))
            .filter(|p| owned::controller_uid(*p) == Some(uid.as_str()))
            .filter(|p| owned::selector_matches(Some(&spec.selector), p.labels()))
            .collect();
        let live_hashes: HashSet<String> = pods
            .iter()
            .filter_map(|p| p.labels().get(REVISION_HASH).cloned())
            .collect();
        let hash = self.ensure_revision(&ds, &live_hashes).await?;
        let unseen = self.expectations.settle(key, &pods);
        let api: Api<Pod> = Api::namespaced(self.cx.client.clone(), namespace);

        let mut by_node: BTreeMap<String, OnNode<'_>> = BTreeMap::new();
        let mut delete: Vec<&Pod> = Vec::new();
        for pod in &pods {
            let Some(node) = target_node(pod) else {
                continue;
            };
            let entry = by_node.entry(node.clone()).or_default();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() || unseen.deleted.contains(&uid) {
                entry.pending += 1;
            } else if owned::phase(pod) == "Failed" {
                let message = format!(
                    "Found failed daemon pod {namespace}/{} on node {node}, will try to kill it",
                    pod.name_any()
                );
                self.cx
                    .recorder
                    .publish(
                        &reference(ds.as_ref()),
                        EventType::Warning,
                        "FailedDaemonPod",
                        &message,
                    )
                    .await;
                delete.push(pod);
                entry.pending += 1;
            } else if owned::phase(pod) != "Succeeded" {
                entry.live.push(pod);
            }
        }
        for node in unseen.created.iter().flatten() {
            by_node.entry(node.clone()).or_default().pending += 1;
        }

        let mut template_spec = spec.template.spec.clone().unwrap_or_default();
        decide::add_default_tolerations(&mut template_spec);
        let nodes = self.nodes.store().state();
        let known: HashMap<String, &Node> =
            nodes.iter().map(|n| (n.name_any(), n.as_ref())).collect();
        let now = self.cx.clock.now();
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let mut create = Vec::new();
        let mut rolling: Vec<Rolling<'_>> = Vec::new();
        let mut status = DaemonSetStatus {
            observed_generation: ds.metadata.generation,
            collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
            ..DaemonSetStatus::default()
        };
        let mut waiting_available = false;
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        let rolling_update = strategy.type_.as_deref() != Some("OnDelete");
        let max_unavailable = strategy
            .rolling_update
            .as_ref()
            .and_then(|r| r.max_unavailable.as_ref());
        let max_surge = strategy
            .rolling_update
            .as_ref()
            .and_then(|r| r.max_surge.as_ref());
        let surge = if rolling_update {
            decide::scaled(max_surge, known.len())
        } else {
            0
        };
        for (node_name, node) in &known {
            let placement = decide::placement(node, &template_spec);
            let here = by_node.remove(node_name).unwrap_or_default();
            let has_pod = !here.live.is_empty() || here.pending > 0;
            if placement.should_run {
                status.desired_number_scheduled += 1;
                if has_pod {
                    status.current_number_scheduled += 1;
                }
            } else if has_pod {
                status.number_misscheduled += 1;
            }
            if !placement.may_stay {
                delete.extend(here.live.iter().copied());
                continue;
            }
            if placement.should_run && !has_pod {
                create.push(node_name.clone());
            }
            // Keep one pod per node, the oldest; during a surge also the
            // oldest new one.
            let mut live = here.live.clone();
            live.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let is_updated = |p: &Pod| p.labels().get(REVISION_HASH) == Some(&hash);
            let surge_pod = live
                .iter()
                .skip(1)
                .position(|p| surge > 0 && is_updated(p) && !is_updated(live[0]))
                .map(|i| i + 1);
            for (i, pod) in live.iter().enumerate() {
                if i != 0 && Some(i) != surge_pod {
                    delete.push(pod);
                }
            }
            let Some(pod) = live.first().copied() else {
                if placement.should_run {
                    rolling.push(Rolling::default());
                }
                continue;
            };
            let updated = is_updated(pod);
            let available = available(pod, min_ready, now);
            waiting_available |= owned::is_ready(pod) && !available;
            if placement.should_run {
                let new = surge_pod.map(|i| live[i]);
                status.number_ready += i32::from(owned::is_ready(pod));
                status.number_available =
                    Some(status.number_available.unwrap_or(0) + i32::from(available));
                let any_updated = updated || new.is_some();
                status.updated_number_scheduled =
                    Some(status.updated_number_scheduled.unwrap_or(0) + i32::from(any_updated));
                rolling.push(Rolling {
                    node: node_name.clone(),
                    state: Some(NodePod { updated, available }),
                    pod: Some(pod),
                    surge: new.map(|p| (p, self::available(p, min_ready, now))),
                    pending: here.pending > 0,
                });
            }
        }
        // Pods on nodes that are gone.
        for (_, here) in by_node {
            delete.extend(here.live);
        }
        let available_count = usize::try_from(status.number_available.unwrap_or(0)).unwrap_or(0);
        let desired = usize::try_from(status.desired_number_scheduled).unwrap_or(0);
        status.number_unavailable =
            Some(i32::try_from(desired.saturating_sub(available_count)).unwrap_or(0))
                .filter(|n| *n > 0);

        if rolling_update && surge > 0 {
            let nodes: Vec<(Option<bool>, Option<bool>)> = rolling
                .iter()
                .map(|r| {
                    let old = r.state.filter(|s| !s.updated).map(|s| s.available);
                    let new = r.surge.map(|(_, available)| available);
                    (old, new.or(r.pending.then_some(false)))
                })
                .collect();
            let (start, retire) = decide::surge_plan(&nodes, surge);
            create.extend(start.into_iter().map(|i| rolling[i].node.clone()));
            delete.extend(retire.into_iter().filter_map(|i| rolling[i].pod));
        } else if rolling_update {
            let max = decide::scaled(max_unavailable, desired).max(1);
            let states: Vec<Option<NodePod>> = rolling.iter().map(|r| r.state).collect();
            for i in decide::rolling_deletions(&states, max) {
                if let Some(pod) = rolling[i].pod {
                    delete.push(pod);
                }
            }
        }

        for pod in delete {
            self.delete_pod(key, &ds, &api, pod).await?;
        }
        for node in create {
            self.create_pod(key, &ds, &api, &node, &hash).await?;
        }
        if ds.status.as_ref() != Some(&status) {
            let mut updated = (*ds).clone();
            updated.status = Some(status);
            let sets: Api<DaemonSet> = Api::namespaced(self.cx.client.clone(), namespace);
            sets.replace_status(name, &PostParams::default(), &updated)
                .await?;
        }
        Ok(if waiting_available {
            Next::After(Duration::from_secs(1))
        } else {
            Next::Done
        })
    }

    /// Makes sure a ControllerRevision holds the current template; returns
    /// its hash.
    async fn ensure_revision(
        &self,
        ds: &DaemonSet,
        live_hashes: &HashSet<String>,
    ) -> Result<String, kube::Error> {
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let collisions = ds
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let hash = decide::template_hash(
            &serde_json::to_value(&template).unwrap_or_default(),
            collisions,
        );
        let namespace = ds.namespace().unwrap_or_default();
        let owned_revisions =
            revisions::owned_by(&self.revisions, &namespace, ds.metadata.uid.as_deref());
        let api: Api<ControllerRevision> = Api::namespaced(self.cx.client.clone(), &namespace);
        revisions::record(&api, ds, &owned_revisions, &template, &hash).await?;
        self.prune_revisions(ds, &owned_revisions, &hash, live_hashes)
            .await;
        Ok(hash)
    }

    /// Deletes the oldest revisions beyond `revisionHistoryLimit` that no
    /// pod uses.
    async fn prune_revisions(
        &self,
        ds: &DaemonSet,
        revisions: &[Arc<ControllerRevision>],
        current: &str,
        live_hashes: &HashSet<String>,
    ) {
        let limit = ds
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let history: Vec<(String, i64, String)> = revisions
            .iter()
            .map(|r| {
                let hash = r.labels().get(REVISION_HASH).cloned().unwrap_or_default();
                (r.name_any(), r.revision, hash)
            })
            .collect();
        let limit = usize::try_from(limit).unwrap_or(0);
        let api: Api<ControllerRevision> =
            Api::namespaced(self.cx.client.clone(), &ds.namespace().unwrap_or_default());
        for name in decide::revisions_to_prune(&history, current, live_hashes, limit) {
            if let Err(err) = api.delete(&name, &DeleteParams::default()).await {
                tracing::debug!(revision = %name, error = %err, "pruning a daemonset revision");
            }
        }
    }

    async fn create_pod(
        &self,
        key: &str,
        ds: &DaemonSet,
        api: &Api<Pod>,
        node: &str,
        hash: &str,
    ) -> Result<(), kube::Error> {
        let pod = pod_for(ds, node, hash);
        match api.create(&PostParams::default(), &pod).await {
            Ok(made) => {
                self.expectations
                    .created(key, &made.name_any(), Some(node.to_owned()));
                let message = format!("Created pod: {}", made.name_any());
                self.cx
                    .recorder
                    .publish(
                        &reference(ds),
                        EventType::Normal,
                        "SuccessfulCreate",
                        &message,
                    )
                    .await;
                Ok(())
            }
            Err(err) => {
                let message = format!("Error creating: {err}");
                self.cx
                    .recorder
                    .publish(&reference(ds), EventType::Warning, "FailedCreate", &message)
                    .await;
                Err(err)
            }
        }
    }

    async fn delete_pod(
        &self,
        key: &str,
        ds: &DaemonSet,
        api: &Api<Pod>,
        pod: &Pod,
    ) -> Result<(), kube::Error> {
        match api
            .delete(&pod.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(err) => return Err(err),
        }
        self.expectations
            .deleted(key, pod.metadata.uid.as_deref().unwrap_or_default());
        let message = format!("Deleted pod: {}", pod.name_any());
        self.cx
            .recorder
            .publish(
                &reference(ds),
                EventType::Normal,
                "SuccessfulDelete",
                &message,
            )
            .await;
        Ok(())
    }
}

/// Ready for at least `min_ready` seconds.
fn available(pod: &Pod, min_ready: i32, now: jiff::Timestamp) -> bool {
    if !owned::is_ready(pod) {
        return false;
    }
    if min_ready <= 0 {
        return true;
    }
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    since.is_some_and(|t| t + jiff::SignedDuration::from_secs(i64::from(min_ready)) <= now)
}

/// The node a daemon pod is on, or is meant for.
fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = &spec.node_name {
        return Some(node.clone());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// A daemon pod for `node`.
fn pod_for(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut spec: PodSpec = template.spec.unwrap_or_default();
    decide::add_default_tolerations(&mut spec);
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_owned()]),
            }]),
        }],
    });
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(REVISION_HASH.into(), hash.to_owned());
    if let Some(generation) = ds.metadata.generation {
        labels.insert(TEMPLATE_GENERATION.into(), generation.to_string());
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.name_any())),
            namespace: ds.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: Some(vec![owned::controller_ref(ds)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}
