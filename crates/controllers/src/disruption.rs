//! The disruption controller: each PodDisruptionBudget's status says how
//! many of its pods are healthy, how many must stay healthy, and so how
//! many may be disrupted now — what the Eviction API spends (upstream's
//! `disruption` controller).
//!
//! The expected pod count comes from the scale of the pods' controllers
//! (ReplicaSet, StatefulSet, ReplicationController — a Deployment's pods
//! are counted through their ReplicaSet) when the budget is a percentage or
//! `maxUnavailable`; an integer `minAvailable` counts the selected pods, as
//! upstream.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::PostParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::informer::Change;
use crate::queue::{Next, WorkQueue, run_workers};

/// How long an eviction's note in `disruptedPods` keeps the pod out of the
/// healthy count if the pod is not seen going (upstream's 2 minutes).
const DELETION_TIMEOUT: jiff::SignedDuration = jiff::SignedDuration::from_secs(120);

pub(crate) async fn run(cx: Context) {
    let budgets = cx.informers.get::<PodDisruptionBudget>();
    let pods = cx.informers.get::<Pod>();
    let replicasets = cx.informers.get::<ReplicaSet>();
    let statefulsets = cx.informers.get::<StatefulSet>();
    let (mut budget_changes, mut pod_changes) = (budgets.subscribe(), pods.subscribe());
    budgets.ready().await;
    pods.ready().await;
    replicasets.ready().await;
    statefulsets.ready().await;
    let queue = WorkQueue::<ObjectRef<PodDisruptionBudget>>::new();
    let enqueue = {
        let (queue, budgets) = (queue.clone(), budgets.clone());
        move |namespace: Option<&str>| {
            for pdb in budgets.store().state() {
                if namespace.is_none() || pdb.namespace().as_deref() == namespace {
                    queue.add(ObjectRef::from_obj(pdb.as_ref()));
                }
            }
        }
    };
    enqueue(None);
    let feeder = {
        let queue = queue.clone();
        async move {
            loop {
                tokio::select! {
                    change = budget_changes.next() => match change {
                        Some(Change::Applied(pdb)) => queue.add(ObjectRef::from_obj(pdb.as_ref())),
                        Some(Change::Deleted(_)) => {}
                        Some(Change::Resynced) => enqueue(None),
                        None => return,
                    },
                    change = pod_changes.next() => match change {
                        Some(Change::Applied(pod) | Change::Deleted(pod)) => enqueue(pod.namespace().as_deref()),
                        Some(Change::Resynced) => enqueue(None),
                        None => return,
                    },
                }
            }
        }
    };
    let work = move |key: ObjectRef<PodDisruptionBudget>| {
        let (cx, budgets, pods, replicasets, statefulsets) = (
            cx.clone(),
            budgets.clone(),
            pods.clone(),
            replicasets.clone(),
            statefulsets.clone(),
        );
        async move {
            let Some(pdb) = budgets.store().get(&key) else {
                return Ok::<_, kube::Error>(Next::Done);
            };
            let namespace = pdb.namespace().unwrap_or_default();
            let selector = pdb.spec.as_ref().and_then(|s| s.selector.clone());
            let selected: Vec<Arc<Pod>> = pods
                .store()
                .state()
                .into_iter()
                .filter(|p| {
                    p.namespace().as_deref() == Some(namespace.as_str())
                        && crate::owned::selector_matches(selector.as_ref(), p.labels())
                })
                .collect();
            let scale = |pod: &Pod| -> Option<(String, i32)> {
                let owner = pod
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true))?;
                let replicas = match owner.kind.as_str() {
                    "ReplicaSet" => {
                        replicasets
                            .store()
                            .get(&ObjectRef::new(&owner.name).within(&namespace))?
                            .spec
                            .as_ref()?
                            .replicas
                    }
                    "StatefulSet" => {
                        statefulsets
                            .store()
                            .get(&ObjectRef::new(&owner.name).within(&namespace))?
                            .spec
                            .as_ref()?
                            .replicas
                    }
                    _ => None,
                };
                Some((owner.uid.clone(), replicas.unwrap_or(1)))
            };
            let status = compute(&pdb, &selected, scale, cx.clock.now());
            if pdb.status.as_ref().is_some_and(|old| same(old, &status)) {
                return Ok(Next::After(std::time::Duration::from_secs(30)));
            }
            let mut updated = (*pdb).clone();
            updated.status = Some(status);
            let api: Api<PodDisruptionBudget> = Api::namespaced(cx.client.clone(), &namespace);
            match api
                .replace_status(&pdb.name_any(), &PostParams::default(), &updated)
                .await
            {
                Ok(_) => Ok(Next::Done),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(Next::Done),
                Err(err) => Err(err),
            }
        }
    };
    tokio::join!(feeder, run_workers("disruption-controller", queue, 2, work));
}

/// The status for `pdb` given its selected pods; `scale` names each pod's
/// controller and its replica count.
fn compute(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    scale: impl Fn(&Pod) -> Option<(String, i32)>,
    now: jiff::Timestamp,
) -> PodDisruptionBudgetStatus {
    let spec = pdb.spec.clone().unwrap_or_default();
    let old = pdb.status.clone().unwrap_or_default();
    // Recently evicted pods still listed as running count as disrupted.
    let mut disrupted: BTreeMap<String, Time> = BTreeMap::new();
    for (name, at) in old.disrupted_pods.unwrap_or_default() {
        let still_there = pods
            .iter()
            .any(|p| p.name_any() == name && p.metadata.deletion_timestamp.is_none());
        if still_there && at.0 + DELETION_TIMEOUT > now {
            disrupted.insert(name, at);
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && crate::pods::is_ready(p)
                && !disrupted.contains_key(&p.name_any())
        })
        .count() as i32;
    let live: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let controller_scale = || {
        let mut seen = HashSet::new();
        let mut total = 0;
        for pod in &live {
            match scale(pod) {
                Some((uid, replicas)) => {
                    if seen.insert(uid) {
                        total += replicas;
                    }
                }
                None => total += 1,
            }
        }
        total
    };
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => (live.len() as i32, *n),
        (Some(IntOrString::String(p)), _) => {
            let expected = controller_scale();
            (expected, percent(p, expected, true))
        }
        (None, Some(max)) => {
            let expected = controller_scale();
            let max = match max {
                IntOrString::Int(n) => *n,
                IntOrString::String(p) => percent(p, expected, true),
            };
            (expected, (expected - max).max(0))
        }
        (None, None) => (live.len() as i32, live.len() as i32),
    };
    let allowed = (healthy - desired).max(0);
    let condition = Condition {
        type_: "DisruptionAllowed".into(),
        status: if allowed > 0 { "True" } else { "False" }.into(),
        reason: if allowed > 0 {
            "SufficientPods"
        } else {
            "InsufficientPods"
        }
        .into(),
        message: String::new(),
        observed_generation: pdb.metadata.generation,
        last_transition_time: old
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "DisruptionAllowed" && (c.status == "True") == (allowed > 0))
            .map_or(Time(now), |c| c.last_transition_time.clone()),
    };
    PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        observed_generation: pdb.metadata.generation,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        conditions: Some(vec![condition]),
    }
}

/// `"50%"` of `of`, rounded up or down.
fn percent(text: &str, of: i32, round_up: bool) -> i32 {
    let p: i64 = text.trim_end_matches('%').parse().unwrap_or(0);
    let scaled = i64::from(of) * p;
    let value = if round_up {
        (scaled + 99) / 100
    } else {
        scaled / 100
    };
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn same(a: &PodDisruptionBudgetStatus, b: &PodDisruptionBudgetStatus) -> bool {
    a.current_healthy == b.current_healthy
        && a.desired_healthy == b.desired_healthy
        && a.expected_pods == b.expected_pods
        && a.disruptions_allowed == b.disruptions_allowed
        && a.observed_generation == b.observed_generation
        && a.disrupted_pods == b.disrupted_pods
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"app": "web"}},
                "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
            }))
            .expect("a valid pod"),
        )
    }

    fn budget(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "b", "generation": 1}, "spec": spec}))
            .expect("a valid pdb")
    }

    #[test]
    fn budgets_allow_what_the_healthy_count_exceeds() {
        let now = jiff::Timestamp::now();
        let pods = vec![pod("a", true), pod("b", true), pod("c", false)];
        let no_owner = |_: &Pod| None;
        // (spec, expected, desired, healthy, allowed)
        let cases = [
            (json!({"minAvailable": 1}), 3, 1, 2, 1),
            (json!({"minAvailable": 2}), 3, 2, 2, 0),
            (json!({"minAvailable": "50%"}), 3, 2, 2, 0),
            (json!({"maxUnavailable": 1}), 3, 2, 2, 0),
            (json!({"maxUnavailable": "34%"}), 3, 1, 2, 1),
        ];
        for (spec, expected, desired, healthy, allowed) in cases {
            let status = compute(&budget(spec.clone()), &pods, no_owner, now);
            assert_eq!(
                (
                    status.expected_pods,
                    status.desired_healthy,
                    status.current_healthy,
                    status.disruptions_allowed
                ),
                (expected, desired, healthy, allowed),
                "{spec}"
            );
        }
    }

    #[test]
    fn percentages_use_the_controllers_scale() {
        let now = jiff::Timestamp::now();
        // Two pods up of a ReplicaSet that wants four.
        let pods = vec![pod("a", true), pod("b", true)];
        let status = compute(
            &budget(json!({"minAvailable": "50%"})),
            &pods,
            |_| Some(("rs".into(), 4)),
            now,
        );
        assert_eq!(
            (
                status.expected_pods,
                status.desired_healthy,
                status.disruptions_allowed
            ),
            (4, 2, 0)
        );
    }
}
