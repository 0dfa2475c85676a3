//! The node's service proxy loop (kube-proxy's job), as
//! `system:kube-proxy`: watches Services and EndpointSlices, turns them into
//! `bulwark_network::ServicePort`s and has the network crate rewrite its
//! nftables table — within a short debounce of any change. The same table
//! publishes this node's pods' `hostPort`s (CNI portmap's job), from the
//! node's own pod watch (as the node: kube-proxy may not read pods).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_network::{Endpoint, HostPort, Protocol, ProxyConfig, ServicePort, ServiceProxy};
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::Notify;

/// The label naming an EndpointSlice's Service.
const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// How long a burst of changes is collected before one sync.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// How often the table is rewritten with no change seen.
const RESYNC: Duration = Duration::from_secs(60);

/// upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds`.
const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

/// What the loop needs besides the client.
pub(crate) struct ProxyOptions {
    /// This node's name (endpoints with this `nodeName` are local).
    pub(crate) node_name: String,
    /// The table's node-level settings.
    pub(crate) config: ProxyConfig,
    /// Services left alone, as `namespace/name` (the node-local DNS).
    pub(crate) skip: BTreeSet<String>,
}

/// Runs the proxy until dropped: `client` is `system:kube-proxy`,
/// `node_client` the node's own identity (for its pods).
pub(crate) async fn run(
    client: kube::Client,
    node_client: kube::Client,
    proxy: Arc<ServiceProxy>,
    options: ProxyOptions,
) {
    let changed = Arc::new(Notify::new());
    let (pods, pods_writer) = reflector::store::<Pod>();
    let pod_events = reflector::reflector(
        pods_writer,
        watcher(
            Api::<Pod>::all(node_client),
            watcher::Config::default().fields(&format!("spec.nodeName={}", options.node_name)),
        ),
    );
    let (services, services_writer) = reflector::store::<Service>();
    let (slices, slices_writer) = reflector::store::<EndpointSlice>();
    let service_events = reflector::reflector(
        services_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    );
    let slice_events = reflector::reflector(
        slices_writer,
        watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default(),
        ),
    );
    let _guards = [
        tokio::spawn(feed(service_events, changed.clone(), "Services")),
        tokio::spawn(feed(slice_events, changed.clone(), "EndpointSlices")),
        tokio::spawn(feed(pod_events, changed.clone(), "Pods")),
    ]
    .map(crate::AbortOnDrop);
    if services.wait_until_ready().await.is_err()
        || slices.wait_until_ready().await.is_err()
        || pods.wait_until_ready().await.is_err()
    {
        return;
    }
    let caches = Caches {
        services,
        slices,
        pods,
    };
    let mut applied = None;
    loop {
        // Let a burst of changes (a rollout, a scale) land in one sync.
        tokio::time::sleep(DEBOUNCE).await;
        if sync(&proxy, &options, &caches, &mut applied).await {
            // A change, or now and then a sync anyway: it repairs a table
            // someone else flushed or deleted.
            if tokio::time::timeout(RESYNC, changed.notified())
                .await
                .is_err()
            {
                applied = None;
            }
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Wakes the loop on every event of a watch; kube-rs relists and backs off.
async fn feed<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    changed: Arc<Notify>,
    what: &'static str,
) {
    let events = events.default_backoff();
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(_) => changed.notify_one(),
            Err(err) => tracing::warn!(error = %err, "service proxy: watching {what}"),
        }
    }
}

/// What the loop reads from.
struct Caches {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    pods: Store<Pod>,
}

/// What the last sync programmed.
type Applied = Option<(Vec<ServicePort>, Vec<HostPort>)>;

/// One sync from the caches, skipped when nothing the table shows changed
/// (most pod and slice updates); whether the table is current.
async fn sync(
    proxy: &Arc<ServiceProxy>,
    options: &ProxyOptions,
    caches: &Caches,
    applied: &mut Applied,
) -> bool {
    let ports = service_ports(
        &caches.services.state(),
        &caches.slices.state(),
        &options.node_name,
        &options.skip,
    );
    let host_ports = host_ports(&caches.pods.state());
    let wanted = (ports, host_ports);
    if applied.as_ref() == Some(&wanted) {
        return true;
    }
    *applied = None;
    let proxy = proxy.clone();
    let config = options.config.clone();
    let count = wanted.0.len();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        proxy.sync(&config, &wanted.0, &wanted.1).map(|()| wanted)
    })
    .await;
    match result {
        Ok(Ok(wanted)) => {
            tracing::debug!(service_ports = count, elapsed = ?started.elapsed(), "service proxy synced");
            *applied = Some(wanted);
            true
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "service proxy: programming nftables");
            false
        }
        Err(err) => {
            tracing::warn!(error = %err, "service proxy: the sync task failed");
            false
        }
    }
}

/// The service ports to program: every port of every Service with an
/// IPv4 cluster IP (headless and ExternalName Services get no rules), with
/// the ready endpoints of its EndpointSlices — or, when none is ready, the
/// serving ones that are terminating (upstream's fallback, so a rollout's
/// last pods keep answering while they drain).
pub(crate) fn service_ports(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    node_name: &str,
    skip: &BTreeSet<String>,
) -> Vec<ServicePort> {
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
        let labels = slice.metadata.labels.as_ref();
        if slice.address_type != "IPv4" {
            continue;
        }
        if let Some(service) = labels.and_then(|l| l.get(SERVICE_NAME)) {
            by_service
                .entry((namespace, service.as_str()))
                .or_default()
                .push(slice);
        }
    }
    let mut out = Vec::new();
    for service in services {
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let name = service.metadata.name.as_deref().unwrap_or_default();
        if skip.contains(&format!("{namespace}/{name}")) {
            continue;
        }
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(cluster_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue; // headless ("None"), unallocated, or IPv6
        };
        let with_node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });
        let slices = by_service
            .get(&(namespace, name))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for port in spec.ports.iter().flatten() {
            let Some(protocol) = parse_protocol(port.protocol.as_deref()) else {
                continue;
            };
            let Ok(service_port) = u16::try_from(port.port) else {
                continue;
            };
            let port_name = port.name.clone().unwrap_or_default();
            out.push(ServicePort {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                port_name: port_name.clone(),
                protocol,
                cluster_ip,
                port: service_port,
                node_port: port
                    .node_port
                    .filter(|_| with_node_ports)
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0),
                affinity_timeout,
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                external_local: with_node_ports
                    && spec.external_traffic_policy.as_deref() == Some("Local"),
                endpoints: endpoints(slices, &port_name, protocol, node_name),
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.namespace, &a.name, &a.port_name, a.protocol).cmp(&(
            &b.namespace,
            &b.name,
            &b.port_name,
            b.protocol,
        ))
    });
    out
}

/// The `hostPort`s of this node's pods that have an address and are not
/// finished, sorted.
pub(crate) fn host_ports(pods: &[Arc<Pod>]) -> Vec<HostPort> {
    let mut out = Vec::new();
    for pod in pods {
        let status = pod.status.as_ref();
        if matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            continue;
        }
        let Some(pod_ip) = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let Some(spec) = pod.spec.as_ref() else {
            continue;
        };
        for port in spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
        {
            let Some(host_port) = port
                .host_port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
            else {
                continue;
            };
            let (Some(protocol), Ok(container_port)) = (
                parse_protocol(port.protocol.as_deref()),
                u16::try_from(port.container_port),
            ) else {
                continue;
            };
            let host_ip = match port.host_ip.as_deref() {
                None | Some("" | "0.0.0.0") => None,
                Some(ip) => match ip.parse::<Ipv4Addr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => continue, // IPv6: not served
                },
            };
            out.push(HostPort {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
                protocol,
                host_ip,
                host_port,
                pod_ip,
                container_port,
            });
        }
    }
    out.sort();
    out
}

/// The endpoints of one service port across its slices, sorted, each
/// address and port once.
fn endpoints(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: Protocol,
    node_name: &str,
) -> Vec<Endpoint> {
    let mut ready = BTreeSet::new();
    let mut terminating = BTreeSet::new();
    for slice in slices {
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == port_name
                && parse_protocol(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.as_ref();
            // An unset condition means ready/serving (upstream).
            let is_ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(is_ready);
            let is_terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            let local = endpoint.node_name.as_deref() == Some(node_name);
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse::<Ipv4Addr>() else {
                    continue;
                };
                let entry = Endpoint {
                    ip,
                    port: number,
                    local,
                };
                if is_ready {
                    ready.insert(entry);
                } else if serving && is_terminating {
                    terminating.insert(entry);
                }
            }
        }
    }
    let chosen = if ready.is_empty() { terminating } else { ready };
    chosen.into_iter().collect()
}

fn parse_protocol(name: Option<&str>) -> Option<Protocol> {
    match name.unwrap_or("TCP") {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => Some(Protocol::Sctp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(value: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn slice(value: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn web(spec: serde_json::Value) -> Arc<Service> {
        let mut base = json!({
            "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        });
        for (k, v) in spec.as_object().unwrap() {
            base["spec"][k] = v.clone();
        }
        service(base)
    }

    fn web_slice(endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        slice(json!({
            "metadata": {"namespace": "shop", "name": "web-abc", "labels": {SERVICE_NAME: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
    }

    fn ports(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Vec<ServicePort> {
        service_ports(
            services,
            slices,
            "node-a",
            &BTreeSet::from(["kube-system/kube-dns".to_owned()]),
        )
    }

    fn ips(port: &ServicePort) -> Vec<String> {
        port.endpoints
            .iter()
            .map(|e| format!("{}:{}{}", e.ip, e.port, if e.local { " local" } else { "" }))
            .collect()
    }

    #[test]
    fn ready_endpoints_of_the_named_port_with_their_node() {
        let slices = [web_slice(json!([
            {"addresses": ["10.42.0.5"], "conditions": {"ready": true}, "nodeName": "node-a"},
            {"addresses": ["10.42.1.5"], "conditions": {"ready": true}, "nodeName": "node-b"},
            {"addresses": ["10.42.1.6"], "conditions": {"ready": false}, "nodeName": "node-b"},
            {"addresses": ["10.42.1.7"], "nodeName": "node-b"},
        ]))];
        let got = ports(&[web(json!({}))], &slices);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].cluster_ip, Ipv4Addr::new(10, 43, 0, 20));
        assert_eq!(got[0].port, 80);
        assert_eq!(got[0].node_port, None);
        assert_eq!(
            ips(&got[0]),
            ["10.42.0.5:8080 local", "10.42.1.5:8080", "10.42.1.7:8080"]
        );
    }

    #[test]
    fn terminating_serving_endpoints_are_used_only_when_none_is_ready() {
        let draining = json!({"addresses": ["10.42.1.8"], "conditions": {"ready": false, "serving": true, "terminating": true}});
        let ready = json!({"addresses": ["10.42.1.5"], "conditions": {"ready": true}});
        let got = ports(&[web(json!({}))], &[web_slice(json!([draining.clone()]))]);
        assert_eq!(ips(&got[0]), ["10.42.1.8:8080"]);
        let got = ports(&[web(json!({}))], &[web_slice(json!([draining, ready]))]);
        assert_eq!(ips(&got[0]), ["10.42.1.5:8080"]);
    }

    #[test]
    fn headless_external_name_and_the_node_local_dns_get_no_rules() {
        let headless = web(json!({"clusterIP": "None"}));
        let external = service(json!({
            "metadata": {"namespace": "shop", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com"},
        }));
        let dns = service(json!({
            "metadata": {"namespace": "kube-system", "name": "kube-dns"},
            "spec": {"clusterIP": "10.43.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
        }));
        assert!(ports(&[headless, external, dns], &[]).is_empty());
    }

    #[test]
    fn node_ports_policies_and_affinity_come_from_the_spec() {
        let svc = web(json!({
            "type": "NodePort",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}],
            "externalTrafficPolicy": "Local",
            "internalTrafficPolicy": "Local",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
        }));
        let got = ports(&[svc], &[]);
        let summary: Vec<_> = got
            .iter()
            .map(|p| {
                (
                    p.port_name.as_str(),
                    p.protocol,
                    p.node_port,
                    p.affinity_timeout,
                    p.internal_local,
                    p.external_local,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("dns", Protocol::Udp, Some(30053), Some(60), true, true),
                ("http", Protocol::Tcp, Some(30080), Some(60), true, true),
            ]
        );
        let plain = ports(&[web(json!({"sessionAffinity": "ClientIP"}))], &[]);
        assert_eq!(plain[0].affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert!(!plain[0].external_local);
    }

    #[test]
    fn host_ports_of_running_pods_with_an_address() {
        let pod = |name: &str, phase: &str, ip: Option<&str>| -> Arc<Pod> {
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"namespace": "shop", "name": name},
                    "spec": {"containers": [{"name": "c", "ports": [
                        {"containerPort": 80, "hostPort": 8080},
                        {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "192.168.0.3"},
                        {"containerPort": 9000},
                    ]}]},
                    "status": {"phase": phase, "podIP": ip},
                }))
                .unwrap(),
            )
        };
        let got = host_ports(&[
            pod("web", "Running", Some("10.42.0.5")),
            pod("done", "Succeeded", Some("10.42.0.6")),
            pod("new", "Pending", None),
        ]);
        let summary: Vec<_> = got
            .iter()
            .map(|h| {
                (
                    h.pod.as_str(),
                    h.protocol,
                    h.host_ip.map(|ip| ip.to_string()),
                    h.host_port,
                    h.pod_ip.to_string(),
                    h.container_port,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("web", Protocol::Tcp, None, 8080, "10.42.0.5".to_owned(), 80),
                (
                    "web",
                    Protocol::Udp,
                    Some("192.168.0.3".to_owned()),
                    5353,
                    "10.42.0.5".to_owned(),
                    53
                ),
            ]
        );
    }

    #[test]
    fn slices_of_other_services_ports_and_families_are_ignored() {
        let other = slice(json!({
            "metadata": {"namespace": "shop", "name": "api-x", "labels": {SERVICE_NAME: "api"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9000}],
            "endpoints": [{"addresses": ["10.42.3.3"]}],
        }));
        let v6 = slice(json!({
            "metadata": {"namespace": "shop", "name": "web-v6", "labels": {SERVICE_NAME: "web"}},
            "addressType": "IPv6",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["fd00::1"]}],
        }));
        let wrong_port = slice(json!({
            "metadata": {"namespace": "shop", "name": "web-y", "labels": {SERVICE_NAME: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "metrics", "port": 9100}],
            "endpoints": [{"addresses": ["10.42.3.4"]}],
        }));
        let got = ports(&[web(json!({}))], &[other, v6, wrong_port]);
        assert!(got[0].endpoints.is_empty(), "{:?}", got[0].endpoints);
    }
}
