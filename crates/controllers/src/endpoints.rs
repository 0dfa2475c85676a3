//! Endpoints and EndpointSlices: for every Service with a selector, the
//! addresses of the pods it selects — ready ones as ready, others as not
//! ready (all ready with `publishNotReadyAddresses`) — with each Service
//! port's `targetPort` resolved against the pod (named container ports
//! included). Upstream runs these as two controllers,
//! `endpoint-controller` and `endpointslice-controller`; so does Bulwark,
//! sharing the computation here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::informer::Change;
use crate::queue::{Next, WorkQueue, run_workers};

const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// Upstream's `--max-endpoints-per-slice` default.
const MAX_PER_SLICE: usize = 100;

/// The Service ports a backend serves: `(name, port, protocol)`.
type PortSet = Vec<(Option<String>, i32, String)>;

/// One pod's address for a Service, with the ports it resolves to.
#[derive(Clone, Debug, PartialEq)]
struct Backend {
    ip: String,
    ready: bool,
    serving: bool,
    terminating: bool,
    node: Option<String>,
    pod: ObjectReference,
    /// The Service ports this pod can serve.
    ports: PortSet,
}

/// The backends of `service` among `pods` (same namespace, selected,
/// with an IP, not finished).
fn backends(service: &Service, pods: &[Arc<Pod>]) -> Vec<Backend> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let mut out = Vec::new();
    for pod in pods {
        if pod.namespace() != service.namespace() {
            continue;
        }
        let labels = pod.labels();
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        let status = pod.status.clone().unwrap_or_default();
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            continue;
        }
        let Some(ip) = status.pod_ip.clone().filter(|ip| !ip.is_empty()) else {
            continue;
        };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let pod_ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|port| {
                let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
                let number = match &port.target_port {
                    None => port.port,
                    Some(IntOrString::Int(n)) => *n,
                    Some(IntOrString::String(name)) => named_port(pod, name, &protocol)?,
                };
                Some((port.name.clone(), number, protocol))
            })
            .collect();
        out.push(Backend {
            ip,
            ready: (pod_ready && !terminating) || publish_not_ready,
            serving: pod_ready || publish_not_ready,
            terminating,
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            pod: ObjectReference {
                kind: Some("Pod".to_owned()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.uid(),
                ..ObjectReference::default()
            },
            ports,
        });
    }
    out.sort_by(|a, b| a.ip.cmp(&b.ip));
    out
}

fn named_port(pod: &Pod, name: &str, protocol: &str) -> Option<i32> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find_map(|p| {
            (p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                .then_some(p.container_port)
        })
}

/// The Endpoints object's subsets: backends grouped by their port sets, as
/// upstream packs them.
fn subsets(backends: &[Backend]) -> Vec<EndpointSubset> {
    let mut groups: BTreeMap<PortSet, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for backend in backends.iter().filter(|b| !b.terminating || b.ready) {
        let address = EndpointAddress {
            ip: backend.ip.clone(),
            node_name: backend.node.clone(),
            target_ref: Some(backend.pod.clone()),
            hostname: None,
        };
        let (ready, not_ready) = groups.entry(backend.ports.clone()).or_default();
        if backend.ready {
            ready.push(address)
        } else {
            not_ready.push(address)
        }
    }
    groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| {
                ports
                    .into_iter()
                    .map(|(name, port, protocol)| EndpointPort {
                        name,
                        port,
                        protocol: Some(protocol),
                        app_protocol: None,
                    })
                    .collect()
            }),
        })
        .collect()
}

/// The slices' content: endpoints grouped by port set, at most 100 each.
fn slice_contents(backends: &[Backend]) -> Vec<(Vec<SlicePort>, Vec<Endpoint>)> {
    let mut groups: BTreeMap<PortSet, Vec<Endpoint>> = BTreeMap::new();
    for backend in backends {
        groups
            .entry(backend.ports.clone())
            .or_default()
            .push(Endpoint {
                addresses: vec![backend.ip.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(backend.ready),
                    serving: Some(backend.serving),
                    terminating: Some(backend.terminating),
                }),
                node_name: backend.node.clone(),
                target_ref: Some(backend.pod.clone()),
                ..Endpoint::default()
            });
    }
    let mut out = Vec::new();
    for (ports, endpoints) in groups {
        let ports: Vec<SlicePort> = ports
            .into_iter()
            .map(|(name, port, protocol)| SlicePort {
                name: Some(name.unwrap_or_default()),
                port: Some(port),
                protocol: Some(protocol),
                app_protocol: None,
            })
            .collect();
        for chunk in endpoints.chunks(MAX_PER_SLICE) {
            out.push((ports.clone(), chunk.to_vec()));
        }
    }
    out
}

/// Runs the Endpoints controller.
pub(crate) async fn run_endpoints(cx: Context) {
    drive(cx, "endpoint-controller", reconcile_endpoints).await;
}

/// Runs the EndpointSlice controller.
pub(crate) async fn run_slices(cx: Context) {
    drive(cx, "endpointslice-controller", reconcile_slices).await;
}

type Reconcile = for<'a> fn(
    &'a Context,
    &'a Service,
    Vec<Backend>,
) -> futures::future::BoxFuture<'a, Result<(), kube::Error>>;

/// The shared loop: Services and pods in, one key per Service out.
async fn drive(cx: Context, name: &'static str, reconcile: Reconcile) {
    let services = cx.informers.get::<Service>();
    let pods = cx.informers.get::<Pod>();
    let (mut svc_changes, mut pod_changes) = (services.subscribe(), pods.subscribe());
    services.ready().await;
    pods.ready().await;
    let queue = WorkQueue::<ObjectRef<Service>>::new();
    let enqueue_namespace = {
        let (queue, services) = (queue.clone(), services.clone());
        move |namespace: Option<&str>| {
            for svc in services.store().state() {
                if namespace.is_none() || svc.namespace().as_deref() == namespace {
                    queue.add(ObjectRef::from_obj(svc.as_ref()));
                }
            }
        }
    };
    tracing::debug!(controller = name, "caches ready");
    enqueue_namespace(None);
    let feeder = {
        let queue = queue.clone();
        async move {
            loop {
                tokio::select! {
                    change = svc_changes.next() => match change {
                        Some(Change::Applied(svc) | Change::Deleted(svc)) => queue.add(ObjectRef::from_obj(svc.as_ref())),
                        Some(Change::Resynced) => enqueue_namespace(None),
                        None => return,
                    },
                    change = pod_changes.next() => match change {
                        Some(Change::Applied(pod) | Change::Deleted(pod)) => enqueue_namespace(pod.namespace().as_deref()),
                        Some(Change::Resynced) => enqueue_namespace(None),
                        None => return,
                    },
                }
            }
        }
    };
    let work = move |key: ObjectRef<Service>| {
        let (cx, services, pods) = (cx.clone(), services.clone(), pods.clone());
        async move {
            tracing::trace!(controller = name, service = %key, "reconciling");
            let Some(service) = services.store().get(&key) else {
                // Deleted: its Endpoints and slices go with it (the slices by
                // their ownerReferences, Endpoints here, as upstream).
                if name == "endpoint-controller" {
                    let api: Api<Endpoints> = Api::namespaced(
                        cx.client.clone(),
                        key.namespace.as_deref().unwrap_or_default(),
                    );
                    match api.delete(&key.name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(err) => return Err(err),
                    }
                }
                return Ok(Next::Done);
            };
            if service
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_none_or(|s| s.is_empty())
            {
                return Ok(Next::Done);
            }
            let selected = backends(&service, &pods.store().state());
            reconcile(&cx, &service, selected).await?;
            Ok(Next::Done)
        }
    };
    tokio::join!(feeder, run_workers(name, queue, 2, work));
}

fn reconcile_endpoints<'a>(
    cx: &'a Context,
    service: &'a Service,
    backends: Vec<Backend>,
) -> futures::future::BoxFuture<'a, Result<(), kube::Error>> {
    Box::pin(async move {
        let namespace = service.namespace().unwrap_or_default();
        let name = service.name_any();
        let api: Api<Endpoints> = Api::namespaced(cx.client.clone(), &namespace);
        let mut labels = service.labels().clone();
        labels.insert(
            "endpointslice.kubernetes.io/skip-mirror".into(),
            "true".into(),
        );
        if service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
            labels.insert("service.kubernetes.io/headless".into(), String::new());
        }
        let subsets = subsets(&backends);
        let desired = Endpoints {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            subsets: (!subsets.is_empty()).then_some(subsets),
        };
        match api.get_opt(&name).await? {
            None => match api.create(&PostParams::default(), &desired).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(err) => Err(err),
            },
            Some(current) => {
                if current.subsets == desired.subsets
                    && current.metadata.labels == desired.metadata.labels
                {
                    return Ok(());
                }
                let mut updated = current.clone();
                updated.subsets = desired.subsets;
                updated.metadata.labels = desired.metadata.labels;
                api.replace(&name, &PostParams::default(), &updated)
                    .await
                    .map(|_| ())
            }
        }
    })
}

fn reconcile_slices<'a>(
    cx: &'a Context,
    service: &'a Service,
    backends: Vec<Backend>,
) -> futures::future::BoxFuture<'a, Result<(), kube::Error>> {
    Box::pin(async move {
        let namespace = service.namespace().unwrap_or_default();
        let name = service.name_any();
        let api: Api<EndpointSlice> = Api::namespaced(cx.client.clone(), &namespace);
        let params = kube::api::ListParams::default().labels(&format!(
            "{SERVICE_NAME}={name},{MANAGED_BY}={SLICE_CONTROLLER}"
        ));
        let mut existing = api.list(&params).await?.items;
        existing.sort_by_key(kube::ResourceExt::name_any);
        let wanted = slice_contents(&backends);
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name: name.clone(),
            uid: service.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let mut labels = service.labels().clone();
        labels.insert(SERVICE_NAME.into(), name.clone());
        labels.insert(MANAGED_BY.into(), SLICE_CONTROLLER.into());
        let mut used = BTreeSet::new();
        for (i, (ports, endpoints)) in wanted.iter().enumerate() {
            let slice = EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{name}-")),
                    namespace: Some(namespace.clone()),
                    labels: Some(labels.clone()),
                    owner_references: Some(vec![owner.clone()]),
                    ..ObjectMeta::default()
                },
                address_type: "IPv4".into(),
                endpoints: endpoints.clone(),
                ports: Some(ports.clone()),
            };
            match existing.get(i) {
                Some(current) => {
                    used.insert(i);
                    if current.endpoints == slice.endpoints
                        && current.ports == slice.ports
                        && current.metadata.labels == slice.metadata.labels
                    {
                        continue;
                    }
                    let mut updated = current.clone();
                    updated.endpoints = slice.endpoints;
                    updated.ports = slice.ports;
                    updated.metadata.labels = slice.metadata.labels;
                    api.replace(&current.name_any(), &PostParams::default(), &updated)
                        .await?;
                }
                None => {
                    api.create(&PostParams::default(), &slice).await?;
                }
            }
        }
        // A Service with no endpoints keeps one empty slice, as upstream.
        if wanted.is_empty() {
            if existing.is_empty() {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: Some(namespace.clone()),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![owner.clone()]),
                        ..ObjectMeta::default()
                    },
                    address_type: "IPv4".into(),
                    endpoints: Vec::new(),
                    ports: None,
                };
                api.create(&PostParams::default(), &slice).await?;
            } else {
                used.insert(0);
                let current = &existing[0];
                if !current.endpoints.is_empty() || current.ports.is_some() {
                    let mut updated = current.clone();
                    updated.endpoints = Vec::new();
                    updated.ports = None;
                    api.replace(&current.name_any(), &PostParams::default(), &updated)
                        .await?;
                }
            }
        }
        for (i, extra) in existing.iter().enumerate() {
            if !used.contains(&i) {
                match api
                    .delete(&extra.name_any(), &DeleteParams::default())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, ready: bool, labels: serde_json::Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": name, "labels": labels},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
            }))
            .expect("a valid pod"),
        )
    }

    #[test]
    fn selected_pods_become_ready_and_not_ready_addresses_with_named_ports_resolved() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        }))
        .expect("a valid service");
        let pods = vec![
            pod("a", "10.0.0.2", true, json!({"app": "web"})),
            pod("b", "10.0.0.3", false, json!({"app": "web"})),
            pod("c", "10.0.0.4", true, json!({"app": "db"})),
        ];
        let found = backends(&service, &pods);
        assert_eq!(found.len(), 2, "c is not selected");
        let subsets = subsets(&found);
        assert_eq!(subsets.len(), 1);
        let subset = &subsets[0];
        let ips = |a: &Option<Vec<EndpointAddress>>| {
            a.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>()
        };
        assert_eq!(ips(&subset.addresses), ["10.0.0.2"]);
        assert_eq!(ips(&subset.not_ready_addresses), ["10.0.0.3"]);
        assert_eq!(subset.ports.as_ref().expect("ports")[0].port, 8080);
        let slices = slice_contents(&found);
        assert_eq!(slices.len(), 1);
        let ready: Vec<_> = slices[0]
            .1
            .iter()
            .map(|e| e.conditions.as_ref().and_then(|c| c.ready))
            .collect();
        assert_eq!(ready, [Some(true), Some(false)]);
    }
}
