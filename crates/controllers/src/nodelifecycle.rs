//! Node lifecycle: a node whose kubelet stops heartbeating (neither its
//! Lease in `kube-node-lease` nor its Ready condition changes for the grace
//! period) gets its conditions set to Unknown and the
//! `node.kubernetes.io/unreachable` taints; a node reporting Ready=False
//! gets the `not-ready` taints; both go when the node is healthy again.
//! Pods on a node with NoExecute taints they do not tolerate — or tolerate
//! only for `tolerationSeconds` (300 s by default, from the API server's
//! DefaultTolerationSeconds admission) — are evicted, so their controllers
//! replace them elsewhere (upstream's node-lifecycle and taint-eviction
//! controllers). Pods bound to nodes that no longer exist are deleted (the
//! pod garbage collector's orphan rule).
//!
//! Heartbeats are judged on this controller's clock, from when it saw them
//! change, as upstream does: a skewed kubelet clock cannot make a node look
//! alive or dead.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use bulwark_client::events::{EventType, reference};

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Upstream's taint-by-condition: a pressure condition that is True keeps
/// new pods away (NoSchedule) until it clears.
const PRESSURE_TAINTS: [(&str, &str); 3] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
];
/// How often nodes are checked: a quarter of the grace period, within these.
const MIN_MONITOR_PERIOD: Duration = Duration::from_millis(250);
const MAX_MONITOR_PERIOD: Duration = Duration::from_secs(5);

/// What this controller last saw of a node's heartbeats, and when.
struct Seen {
    lease: Option<String>,
    ready: Option<String>,
    at: Instant,
}

pub(crate) async fn run(cx: Context) {
    let nodes = cx.informers.get::<Node>();
    let leases = cx.informers.get::<Lease>();
    let pods = cx.informers.get::<Pod>();
    nodes.ready().await;
    leases.ready().await;
    pods.ready().await;
    let grace = cx.node_monitor_grace_period;
    let mut seen: HashMap<String, Seen> = HashMap::new();
    // Upstream checks every 5 s; a short grace period (tests) is checked
    // proportionally more often.
    let period = (grace / 4).clamp(MIN_MONITOR_PERIOD, MAX_MONITOR_PERIOD);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let all = nodes.store().state();
        let names: std::collections::HashSet<String> = all.iter().map(|n| n.name_any()).collect();
        seen.retain(|name, _| names.contains(name));
        for node in &all {
            let name = node.name_any();
            let lease = leases
                .store()
                .get(&ObjectRef::new(&name).within("kube-node-lease"))
                .and_then(|l| {
                    l.spec
                        .as_ref()?
                        .renew_time
                        .as_ref()
                        .map(|t| t.0.to_string())
                });
            let ready = condition(node, "Ready")
                .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0.to_string()));
            let entry = seen.entry(name.clone()).or_insert(Seen {
                lease: lease.clone(),
                ready: ready.clone(),
                at: Instant::now(),
            });
            if entry.lease != lease || entry.ready != ready {
                *entry = Seen {
                    lease,
                    ready,
                    at: Instant::now(),
                };
            }
            let silent = entry.at.elapsed() > grace;
            if let Err(err) = reconcile_node(&cx, node, silent).await {
                tracing::debug!(node = %name, error = %err, "node lifecycle");
            }
        }
        if let Err(err) = evict(&cx, &all, &pods.store().state()).await {
            tracing::debug!(error = %err, "taint eviction");
        }
    }
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Sets conditions and taints from the node's health.
async fn reconcile_node(cx: &Context, node: &Node, silent: bool) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(cx.client.clone());
    let name = node.name_any();
    let ready = condition(node, "Ready").map(|c| c.status.as_str());
    if silent && ready != Some("Unknown") {
        let mut updated = node.clone();
        let now = Time(cx.clock.now());
        for condition in updated
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new)
        {
            if matches!(
                condition.type_.as_str(),
                "Ready" | "MemoryPressure" | "DiskPressure" | "PIDPressure"
            ) {
                condition.status = "Unknown".to_owned();
                condition.reason = Some("NodeStatusUnknown".to_owned());
                condition.message = Some("Kubelet stopped posting node status.".to_owned());
                condition.last_transition_time = Some(now.clone());
            }
        }
        api.replace_status(&name, &PostParams::default(), &updated)
            .await?;
        cx.recorder
            .publish(
                &reference(node),
                EventType::Normal,
                "NodeNotReady",
                &format!("Node {name} status is now: NodeNotReady"),
            )
            .await;
        return Ok(());
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let kept = wanted_taints(node, &taints, Time(cx.clock.now()));
    if kept == taints {
        return Ok(());
    }
    let mut updated = node.clone();
    updated.spec.get_or_insert_with(Default::default).taints = (!kept.is_empty()).then_some(kept);
    match api.replace(&name, &PostParams::default(), &updated).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}

/// The node's taints with the ones this controller manages set from its
/// conditions: unreachable / not-ready (NoSchedule and NoExecute) from
/// Ready, and a NoSchedule taint per pressure condition that is True.
fn wanted_taints(node: &Node, taints: &[Taint], now: Time) -> Vec<Taint> {
    let ready = condition(node, "Ready").map(|c| c.status.as_str());
    let mut wanted: Vec<(&str, &[&str])> = match ready {
        Some("Unknown") => vec![(UNREACHABLE, &["NoSchedule", "NoExecute"])],
        Some("True") => Vec::new(),
        _ => vec![(NOT_READY, &["NoSchedule", "NoExecute"])],
    };
    for (type_, key) in PRESSURE_TAINTS {
        if condition(node, type_).is_some_and(|c| c.status == "True") {
            wanted.push((key, &["NoSchedule"]));
        }
    }
    let managed = |key: &str| {
        key == UNREACHABLE || key == NOT_READY || PRESSURE_TAINTS.iter().any(|(_, k)| *k == key)
    };
    let mut kept: Vec<Taint> = taints
        .iter()
        .filter(|t| {
            !managed(&t.key)
                || wanted
                    .iter()
                    .any(|(key, effects)| *key == t.key && effects.contains(&t.effect.as_str()))
        })
        .cloned()
        .collect();
    for (key, effects) in wanted {
        for effect in effects.iter().copied() {
            if !kept.iter().any(|t| t.key == *key && t.effect == effect) {
                kept.push(Taint {
                    key: key.to_owned(),
                    effect: effect.to_owned(),
                    time_added: (effect == "NoExecute").then(|| now.clone()),
                    value: None,
                });
            }
        }
    }
    kept
}

/// Whether `toleration` tolerates `taint` (upstream's ToleratesTaint).
pub(crate) fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        _ => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
    }
}

/// When a pod on a node with these NoExecute taints must go: `Some(None)`
/// now (a taint it does not tolerate), `Some(Some(t))` at `t`, `None` never.
pub(crate) fn eviction_time(
    tolerations: &[Toleration],
    taints: &[Taint],
    now: jiff::Timestamp,
) -> Option<Option<jiff::Timestamp>> {
    let mut earliest: Option<jiff::Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(None);
        }
        // The shortest bounded toleration wins; unbounded ones never expire.
        let Some(seconds) = matching.iter().filter_map(|t| t.toleration_seconds).min() else {
            continue;
        };
        let added = taint.time_added.as_ref().map_or(now, |t| t.0);
        let at = added + jiff::SignedDuration::from_secs(seconds.max(0));
        earliest = Some(earliest.map_or(at, |e| e.min(at)));
    }
    earliest.map(Some)
}

async fn evict(
    cx: &Context,
    nodes: &[std::sync::Arc<Node>],
    pods: &[std::sync::Arc<Pod>],
) -> Result<(), kube::Error> {
    let now = cx.clock.now();
    let by_name: HashMap<String, &Node> =
        nodes.iter().map(|n| (n.name_any(), n.as_ref())).collect();
    let no_execute = |node: &Node| {
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.effect == "NoExecute"))
    };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        // Most pods run on healthy nodes: nothing to decide.
        if by_name.get(node_name).is_some_and(|n| !no_execute(n)) {
            continue;
        }
        let node_name = node_name.to_owned();
        let api: Api<Pod> =
            Api::namespaced(cx.client.clone(), &pod.namespace().unwrap_or_default());
        let Some(node) = by_name.get(&node_name) else {
            // Orphaned: its node is gone. Confirm before deleting.
            let nodes: Api<Node> = Api::all(cx.client.clone());
            if nodes.get_opt(&node_name).await?.is_none() {
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                };
                ignore_gone(api.delete(&pod.name_any(), &params).await)?;
            }
            continue;
        };
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        let due = match eviction_time(&tolerations, &taints, now) {
            None => continue,
            Some(None) => true,
            Some(Some(at)) => at <= now,
        };
        if due {
            ignore_gone(api.delete(&pod.name_any(), &DeleteParams::default()).await)?;
            cx.recorder
                .publish(
                    &reference(pod.as_ref()),
                    EventType::Normal,
                    "TaintManagerEviction",
                    &format!(
                        "Marking for deletion Pod {}/{}",
                        pod.namespace().unwrap_or_default(),
                        pod.name_any()
                    ),
                )
                .await;
        }
    }
    Ok(())
}

fn ignore_gone<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pressure_condition_taints_the_node_no_schedule_until_it_clears() {
        use k8s_openapi::api::core::v1::NodeStatus;
        let node = |memory: &str, ready: &str| Node {
            status: Some(NodeStatus {
                conditions: Some(
                    [
                        ("Ready", ready),
                        ("MemoryPressure", memory),
                        ("DiskPressure", "False"),
                    ]
                    .iter()
                    .map(|(t, s)| NodeCondition {
                        type_: (*t).to_owned(),
                        status: (*s).to_owned(),
                        ..NodeCondition::default()
                    })
                    .collect(),
                ),
                ..NodeStatus::default()
            }),
            ..Node::default()
        };
        let now = Time(jiff::Timestamp::now());
        let own = Taint {
            key: "dedicated".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let pressed = wanted_taints(
            &node("True", "True"),
            std::slice::from_ref(&own),
            now.clone(),
        );
        let keys: Vec<(&str, &str)> = pressed
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("dedicated", "NoSchedule"),
                ("node.kubernetes.io/memory-pressure", "NoSchedule")
            ]
        );
        // Cleared: the pressure taint goes, the node's own stays.
        assert_eq!(
            wanted_taints(&node("False", "True"), &pressed, now.clone()),
            [own]
        );
        // Not ready: not-ready taints; pressure Unknown is no pressure.
        let keys: Vec<String> = wanted_taints(&node("Unknown", "False"), &[], now)
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect();
        assert_eq!(
            keys,
            [
                "node.kubernetes.io/not-ready:NoSchedule",
                "node.kubernetes.io/not-ready:NoExecute"
            ]
        );
    }

    fn taint(key: &str, seconds_ago: i64, now: jiff::Timestamp) -> Taint {
        Taint {
            key: key.to_owned(),
            effect: "NoExecute".to_owned(),
            time_added: Some(Time(now - jiff::SignedDuration::from_secs(seconds_ago))),
            value: None,
        }
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.to_owned()),
            operator: Some("Exists".to_owned()),
            effect: Some("NoExecute".to_owned()),
            toleration_seconds: seconds,
            value: None,
        }
    }

    #[test]
    fn eviction_times_follow_tolerations() {
        let now = jiff::Timestamp::now();
        let unreachable = taint(UNREACHABLE, 100, now);
        // Untolerated: now.
        assert_eq!(
            eviction_time(&[], std::slice::from_ref(&unreachable), now),
            Some(None)
        );
        // Tolerated for 300 s from when the taint was added (100 s ago).
        assert_eq!(
            eviction_time(
                &[toleration(UNREACHABLE, Some(300))],
                std::slice::from_ref(&unreachable),
                now
            ),
            Some(Some(now + jiff::SignedDuration::from_secs(200)))
        );
        // Tolerated forever.
        assert_eq!(
            eviction_time(
                &[toleration(UNREACHABLE, None)],
                std::slice::from_ref(&unreachable),
                now
            ),
            None
        );
        // An empty-key Exists toleration covers every taint.
        let all = Toleration {
            operator: Some("Exists".to_owned()),
            ..Toleration::default()
        };
        assert_eq!(
            eviction_time(
                &[all],
                &[unreachable.clone(), taint(NOT_READY, 0, now)],
                now
            ),
            None
        );
        // NoSchedule taints never evict.
        let no_schedule = Taint {
            effect: "NoSchedule".to_owned(),
            ..unreachable
        };
        assert_eq!(eviction_time(&[], &[no_schedule], now), None);
    }
}
