//! NetworkPolicy enforcement on this node (the network plugin's policy
//! agent, Calico's felix role): watches NetworkPolicies, Pods and
//! Namespaces cluster-wide as `system:kube-proxy` (the bootstrap
//! ClusterRole `system:bulwark-network-policy`), and after each change —
//! a burst of changes settles for [`SETTLE`] first — hands the whole model
//! to `bulwark-network`, which replaces its nftables table in one
//! transaction when the rules differ. Nothing is synced until all three
//! watches have listed, so a starting agent never replaces the previous
//! agent's rules with a partial view.
//!
//! This module is also where the API's objects become the network crate's
//! plain model (`policy_input`): policyTypes defaulting, selectors, peers
//! and ports, and the pods that take part (those with an IPv4 address,
//! not on the host network, not finished).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_network::PodNetwork;
use bulwark_network::policy::{
    NamedPort, Operator, Peer, Policy, PolicyInput, PolicyPod, Port, PortRef, Protocol,
    Requirement, Rule, Selector,
};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use kube::{Api, ResourceExt as _};
use tokio::sync::Notify;

/// How long a burst of changes may go on before the rules are synced.
const SETTLE: Duration = Duration::from_millis(50);
/// How long a failed sync waits before the next try.
const RETRY: Duration = Duration::from_secs(1);

/// Keeps this node's policy rules in step with the API, until dropped.
pub(crate) async fn enforce(client: kube::Client, node_name: String, network: Arc<PodNetwork>) {
    let changed = Arc::new(Notify::new());
    let mut attachments = network.attachments();
    let (policies, policies_writer) = reflector::store::<NetworkPolicy>();
    let (pods, pods_writer) = reflector::store::<Pod>();
    let (namespaces, namespaces_writer) = reflector::store::<Namespace>();
    let feeds = [
        feed(Api::all(client.clone()), policies_writer, changed.clone()),
        feed(Api::all(client.clone()), pods_writer, changed.clone()),
        feed(Api::all(client), namespaces_writer, changed.clone()),
    ];
    let _feeds: Vec<crate::AbortOnDrop> = feeds.into_iter().map(crate::AbortOnDrop).collect();
    for (what, ready) in [
        ("networkpolicies", policies.wait_until_ready().await),
        ("pods", pods.wait_until_ready().await),
        ("namespaces", namespaces.wait_until_ready().await),
    ] {
        if ready.is_err() {
            tracing::error!(what, "the watch ended before it listed: no network policy");
            return;
        }
    }
    loop {
        tokio::time::sleep(SETTLE).await;
        let started = Instant::now();
        let pods = pods.state();
        // This node's pods with an address their status does not show
        // yet: their rules hold before their containers start talking.
        let mut unreported = HashMap::new();
        for pod in &pods {
            let reported = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_ref())
                .is_some();
            let here = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node_name);
            if let (false, true, Some(uid)) = (reported, here, pod.metadata.uid.as_ref())
                && let Some(address) = network.address(uid).await
            {
                unreported.insert(uid.clone(), address.ip);
            }
        }
        let input = policy_input(&policies.state(), &pods, &namespaces.state(), &unreported);
        match network.sync_policy(&input).await {
            Ok(true) => tracing::info!(
                policies = input.policies.len(),
                pods = input.pods.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "network policy rules applied"
            ),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %err, "applying network policy rules");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        }
        tokio::select! {
            () = changed.notified() => {}
            Ok(()) = attachments.changed() => {}
        }
    }
}

/// A watch of `api` feeding `writer`, waking `changed` on every event.
fn feed<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    changed: Arc<Notify>,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(err) => tracing::warn!(error = %err, "watching for network policy"),
            }
        }
    })
}

/// The network crate's model of the cluster.
/// `unreported` holds addresses (by pod UID) this node handed out that
/// the pods' statuses do not show yet.
pub(crate) fn policy_input(
    policies: &[Arc<NetworkPolicy>],
    pods: &[Arc<Pod>],
    namespaces: &[Arc<Namespace>],
    unreported: &HashMap<String, Ipv4Addr>,
) -> PolicyInput {
    PolicyInput {
        policies: policies
            .iter()
            .filter_map(|p| match policy(p) {
                Ok(policy) => Some(policy),
                Err(why) => {
                    tracing::warn!(
                        namespace = p.namespace().unwrap_or_default(),
                        policy = p.name_any(),
                        why,
                        "network policy not enforced"
                    );
                    None
                }
            })
            .collect(),
        pods: pods
            .iter()
            .filter_map(|p| policy_pod(p, unreported))
            .collect(),
        namespaces: namespaces
            .iter()
            .filter_map(|ns| {
                let name = ns.metadata.name.clone()?;
                let mut labels = ns.metadata.labels.clone().unwrap_or_default();
                // Upstream sets it on every namespace; policies select by it.
                labels
                    .entry("kubernetes.io/metadata.name".to_owned())
                    .or_insert_with(|| name.clone());
                Some((name, labels))
            })
            .collect(),
    }
}

/// A pod that takes part in policy: with an IPv4 address, not on the
/// host's network, not finished.
fn policy_pod(pod: &Pod, unreported: &HashMap<String, Ipv4Addr>) -> Option<PolicyPod> {
    let spec = pod.spec.as_ref()?;
    if spec.host_network == Some(true) {
        return None;
    }
    let status = pod.status.as_ref();
    if matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) {
        return None;
    }
    let ip: Ipv4Addr = match status.and_then(|s| s.pod_ip.as_deref()) {
        Some(ip) => ip.parse().ok()?,
        None => *unreported.get(pod.metadata.uid.as_deref()?)?,
    };
    let ports = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(NamedPort {
                name: p.name.clone()?,
                protocol: Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"))?,
                port: u16::try_from(p.container_port).ok()?,
            })
        })
        .collect();
    Some(PolicyPod {
        namespace: pod.metadata.namespace.clone()?,
        name: pod.metadata.name.clone()?,
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        ip,
        ports,
    })
}

/// A NetworkPolicy in the model, with upstream's defaulting of
/// `policyTypes`: Ingress always, Egress when there are egress rules.
fn policy(np: &NetworkPolicy) -> Result<Policy, String> {
    let namespace = np.metadata.namespace.clone().ok_or("no namespace")?;
    let name = np.metadata.name.clone().ok_or("no name")?;
    let spec = np.spec.clone().unwrap_or_default();
    let pod_selector = match &spec.pod_selector {
        Some(s) => selector(s).map_err(|e| format!("spec.podSelector: {e}"))?,
        None => Selector::default(),
    };
    let (ingress, egress) = match &spec.policy_types {
        Some(types) => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        None => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
    };
    let ingress = ingress.then(|| {
        spec.ingress
            .iter()
            .flatten()
            .filter_map(|r| rule(r.from.as_deref(), r.ports.as_deref()))
            .collect()
    });
    let egress = egress.then(|| {
        spec.egress
            .iter()
            .flatten()
            .filter_map(|r| rule(r.to.as_deref(), r.ports.as_deref()))
            .collect()
    });
    Ok(Policy {
        namespace,
        name,
        pod_selector,
        ingress,
        egress,
    })
}

/// A rule, or `None` when it can match no IPv4 traffic: it lists peers or
/// ports, and none of them can be enforced (an IPv6 block, a bad
/// selector). Dropping only the unusable parts would turn the rule into
/// "allow all".
fn rule(peers: Option<&[NetworkPolicyPeer]>, ports: Option<&[NetworkPolicyPort]>) -> Option<Rule> {
    let given_peers = peers.unwrap_or_default();
    let given_ports = ports.unwrap_or_default();
    let rule = Rule {
        peers: given_peers.iter().filter_map(peer).collect(),
        ports: given_ports.iter().filter_map(port).collect(),
    };
    let lost_all_peers = !given_peers.is_empty() && rule.peers.is_empty();
    let lost_all_ports = !given_ports.is_empty() && rule.ports.is_empty();
    (!lost_all_peers && !lost_all_ports).then_some(rule)
}

fn peer(peer: &NetworkPolicyPeer) -> Option<Peer> {
    if let Some(block) = &peer.ip_block {
        // IPv6 blocks cannot match: the pod network is IPv4.
        let cidr = block.cidr.parse().ok()?;
        let except = block
            .except
            .iter()
            .flatten()
            .filter_map(|e| e.parse().ok())
            .collect();
        return Some(Peer::IpBlock { cidr, except });
    }
    if peer.namespace_selector.is_none() && peer.pod_selector.is_none() {
        return None;
    }
    Some(Peer::Pods {
        namespaces: match &peer.namespace_selector {
            Some(s) => Some(selector(s).ok()?),
            None => None,
        },
        pods: match &peer.pod_selector {
            Some(s) => Some(selector(s).ok()?),
            None => None,
        },
    })
}

fn port(port: &NetworkPolicyPort) -> Option<Port> {
    let protocol = Protocol::parse(port.protocol.as_deref().unwrap_or("TCP"))?;
    let port = match &port.port {
        None => None,
        Some(IntOrString::Int(n)) => {
            let lo = u16::try_from(*n).ok()?;
            let hi = match port.end_port {
                Some(end) => u16::try_from(end).ok()?,
                None => lo,
            };
            if hi < lo {
                return None;
            }
            Some(PortRef::Range(lo, hi))
        }
        Some(IntOrString::String(name)) => Some(PortRef::Named(name.clone())),
    };
    Some(Port { protocol, port })
}

fn selector(s: &LabelSelector) -> Result<Selector, String> {
    let match_expressions = s
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            let operator = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("unknown operator {other:?}")),
            };
            Ok(Requirement {
                key: e.key.clone(),
                operator,
                values: e.values.clone().unwrap_or_default(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Selector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn np(json: serde_json::Value) -> Arc<NetworkPolicy> {
        Arc::new(serde_json::from_value(json).unwrap())
    }

    fn translate(spec: serde_json::Value) -> String {
        let policies = [np(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": spec,
        }))];
        format!(
            "{:?}",
            policy_input(&policies, &[], &[], &HashMap::new()).policies
        )
    }

    #[test]
    fn policy_types_default_as_upstream() {
        // No policyTypes and no egress rules: an ingress policy only.
        let ingress_only = translate(serde_json::json!({"podSelector": {}}));
        assert!(ingress_only.contains("ingress: Some([])"), "{ingress_only}");
        assert!(ingress_only.contains("egress: None"), "{ingress_only}");
        // Egress rules make it an egress policy too.
        let both = translate(serde_json::json!({"podSelector": {}, "egress": [{}]}));
        assert!(both.contains("ingress: Some([])"), "{both}");
        assert!(both.contains("egress: Some([Rule"), "{both}");
        // Explicit types win.
        let egress = translate(serde_json::json!({"podSelector": {}, "policyTypes": ["Egress"]}));
        assert!(egress.contains("ingress: None"), "{egress}");
        assert!(egress.contains("egress: Some([])"), "{egress}");
    }

    #[test]
    fn a_rule_whose_peers_or_ports_cannot_be_enforced_allows_nothing_rather_than_everything() {
        // An IPv6-only block and a TCP port: the rule is dropped, not
        // widened to "from anywhere".
        let v6 = translate(serde_json::json!({
            "podSelector": {},
            "ingress": [{"from": [{"ipBlock": {"cidr": "fd00::/8"}}], "ports": [{"port": 80}]}],
        }));
        assert!(v6.contains("ingress: Some([])"), "{v6}");
        let bad_selector = translate(serde_json::json!({
            "podSelector": {},
            "ingress": [{"from": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}]}],
        }));
        assert!(bad_selector.contains("ingress: Some([])"), "{bad_selector}");
        let bad_port = translate(serde_json::json!({
            "podSelector": {},
            "ingress": [{"ports": [{"protocol": "ICMP", "port": 1}]}],
        }));
        assert!(bad_port.contains("ingress: Some([])"), "{bad_port}");
    }

    #[test]
    fn peers_and_ports_in_the_model() {
        let text = translate(serde_json::json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{
                "from": [
                    {"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {}},
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                ],
                "ports": [{"port": 8080, "endPort": 8090}, {"protocol": "UDP", "port": "dns"}, {"protocol": "SCTP"}],
            }],
        }));
        expect_test::expect![[r#"[Policy { namespace: "ns", name: "p", pod_selector: Selector { match_labels: {"app": "web"}, match_expressions: [] }, ingress: Some([Rule { ports: [Port { protocol: Tcp, port: Some(Range(8080, 8090)) }, Port { protocol: Udp, port: Some(Named("dns")) }, Port { protocol: Sctp, port: None }], peers: [Pods { namespaces: Some(Selector { match_labels: {"team": "a"}, match_expressions: [] }), pods: Some(Selector { match_labels: {}, match_expressions: [] }) }, IpBlock { cidr: 10.0.0.0/8, except: [10.1.0.0/16] }] }]), egress: None }]"#]].assert_eq(&text);
    }

    #[test]
    fn pods_that_take_part() {
        let pod = |json: serde_json::Value| Arc::new(serde_json::from_value::<Pod>(json).unwrap());
        let pods = [
            pod(serde_json::json!({
                "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9}]}]},
                "status": {"phase": "Running", "podIP": "10.42.0.5"},
            })),
            pod(serde_json::json!({
                "metadata": {"name": "host", "namespace": "ns"},
                "spec": {"hostNetwork": true, "containers": [{"name": "c"}]},
                "status": {"phase": "Running", "podIP": "10.0.0.1"},
            })),
            pod(serde_json::json!({
                "metadata": {"name": "done", "namespace": "ns"},
                "spec": {"containers": [{"name": "c"}]},
                "status": {"phase": "Succeeded", "podIP": "10.42.0.6"},
            })),
            pod(serde_json::json!({
                "metadata": {"name": "pending", "namespace": "ns"},
                "spec": {"containers": [{"name": "c"}]},
                "status": {"phase": "Pending"},
            })),
        ];
        let ns = Arc::new(
            serde_json::from_value::<Namespace>(serde_json::json!({"metadata": {"name": "ns"}}))
                .unwrap(),
        );
        // This node handed `starting` an address its status does not show yet.
        let unreported = HashMap::from([("u-starting".to_owned(), Ipv4Addr::new(10, 42, 0, 7))]);
        let mut pods = pods.to_vec();
        pods.push(pod(serde_json::json!({
            "metadata": {"name": "starting", "namespace": "ns", "uid": "u-starting"},
            "spec": {"containers": [{"name": "c"}]},
        })));
        let input = policy_input(&[], &pods, &[ns], &unreported);
        expect_test::expect![[r#"
            PolicyInput {
                policies: [],
                pods: [
                    PolicyPod {
                        namespace: "ns",
                        name: "web",
                        labels: {
                            "app": "web",
                        },
                        ip: 10.42.0.5,
                        ports: [
                            NamedPort {
                                name: "http",
                                protocol: Tcp,
                                port: 8080,
                            },
                        ],
                    },
                    PolicyPod {
                        namespace: "ns",
                        name: "starting",
                        labels: {},
                        ip: 10.42.0.7,
                        ports: [],
                    },
                ],
                namespaces: {
                    "ns": {
                        "kubernetes.io/metadata.name": "ns",
                    },
                },
            }
        "#]]
        .assert_debug_eq(&input);
    }
}
