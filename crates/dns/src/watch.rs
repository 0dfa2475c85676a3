//! Keeps [`Cluster`] current from two kube-rs watches (Services,
//! EndpointSlices). A relist builds a fresh copy and swaps it in at its
//! end, so a question never sees half a list.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};
use tokio::sync::watch;

use crate::records::{Cluster, EndpointEntry, PortEntry, ServiceEntry, ServiceKind};

const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// The state questions are answered from, with a flag per watch raised
/// once its first list is in.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) cluster: Arc<RwLock<Cluster>>,
    pub(crate) services_synced: watch::Sender<bool>,
    pub(crate) slices_synced: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            cluster: Arc::new(RwLock::new(Cluster::default())),
            services_synced: watch::channel(false).0,
            slices_synced: watch::channel(false).0,
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cluster> {
        self.cluster.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Watches Services forever (kube-rs backs off and relists on errors).
pub(crate) async fn services(client: kube::Client, shared: Shared) {
    let stream = watcher(Api::<Service>::all(client), watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut pending: Option<HashMap<(String, String), ServiceEntry>> = None;
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => pending = Some(HashMap::new()),
            Ok(watcher::Event::InitApply(service)) => {
                if let (Some(pending), Some(entry)) = (pending.as_mut(), service_entry(&service)) {
                    pending.insert(key(&service), entry);
                }
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(services) = pending.take() {
                    shared.write().services = services;
                }
                shared.services_synced.send_replace(true);
            }
            Ok(watcher::Event::Apply(service)) => {
                let mut cluster = shared.write();
                match service_entry(&service) {
                    Some(entry) => cluster.services.insert(key(&service), entry),
                    None => cluster.services.remove(&key(&service)),
                };
            }
            Ok(watcher::Event::Delete(service)) => {
                shared.write().services.remove(&key(&service));
            }
            Err(err) => tracing::warn!(error = %err, "watching Services"),
        }
    }
}

/// Watches EndpointSlices forever.
pub(crate) async fn slices(client: kube::Client, shared: Shared) {
    let stream = watcher(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .boxed();
    type BySlice = HashMap<(String, String), HashMap<String, Vec<EndpointEntry>>>;
    let mut pending: Option<BySlice> = None;
    // Which Service each slice was filed under (a slice's label may change).
    let mut owners: HashMap<(String, String), (String, String)> = HashMap::new();
    let mut pending_owners = HashMap::new();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => {
                pending = Some(HashMap::new());
                pending_owners = HashMap::new();
            }
            Ok(watcher::Event::InitApply(slice)) => {
                if let (Some(pending), Some(service)) = (pending.as_mut(), owner(&slice)) {
                    pending
                        .entry(service.clone())
                        .or_default()
                        .insert(slice.name_any(), endpoint_entries(&slice));
                    pending_owners.insert(key(&slice), service);
                }
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(endpoints) = pending.take() {
                    shared.write().endpoints = endpoints;
                    owners = std::mem::take(&mut pending_owners);
                }
                shared.slices_synced.send_replace(true);
            }
            Ok(watcher::Event::Apply(slice)) => {
                let mut cluster = shared.write();
                forget(&mut cluster, &mut owners, &slice);
                if let Some(service) = owner(&slice) {
                    cluster
                        .endpoints
                        .entry(service.clone())
                        .or_default()
                        .insert(slice.name_any(), endpoint_entries(&slice));
                    owners.insert(key(&slice), service);
                }
            }
            Ok(watcher::Event::Delete(slice)) => {
                forget(&mut shared.write(), &mut owners, &slice);
            }
            Err(err) => tracing::warn!(error = %err, "watching EndpointSlices"),
        }
    }
}

fn forget(
    cluster: &mut Cluster,
    owners: &mut HashMap<(String, String), (String, String)>,
    slice: &EndpointSlice,
) {
    if let Some(service) = owners.remove(&key(slice))
        && let Some(slices) = cluster.endpoints.get_mut(&service)
    {
        slices.remove(&slice.name_any());
        if slices.is_empty() {
            cluster.endpoints.remove(&service);
        }
    }
}

fn key<K: kube::Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

fn owner(slice: &EndpointSlice) -> Option<(String, String)> {
    let service = slice.labels().get(SERVICE_NAME)?;
    Some((slice.namespace().unwrap_or_default(), service.clone()))
}

/// A Service as DNS sees it (`None` for one without a usable address).
pub(crate) fn service_entry(service: &Service) -> Option<ServiceEntry> {
    let spec = service.spec.as_ref()?;
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortEntry {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        ServiceKind::ExternalName(spec.external_name.clone()?)
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        let ips: Vec<IpAddr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter())
            .filter_map(|ip| ip.parse().ok())
            .fold(Vec::new(), |mut ips, ip| {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
                ips
            });
        if ips.is_empty() {
            return None;
        }
        ServiceKind::ClusterIp(ips)
    };
    Some(ServiceEntry { kind, ports })
}

/// A slice's endpoints, each with the slice's ports. An endpoint whose
/// `ready` condition is absent counts as ready (the API's meaning).
pub(crate) fn endpoint_entries(slice: &EndpointSlice) -> Vec<EndpointEntry> {
    let ports: Vec<PortEntry> = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortEntry {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: u16::try_from(p.port?).ok()?,
            })
        })
        .collect();
    slice
        .endpoints
        .iter()
        .map(|e| EndpointEntry {
            addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            hostname: e.hostname.clone(),
            ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
            ports: ports.clone(),
        })
        .collect()
}
