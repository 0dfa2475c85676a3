//! The Services every cluster has, made at start: `default/kubernetes` (the
//! API server, at the first address of the range, with Endpoints and an
//! EndpointSlice naming this server — upstream's master endpoint
//! reconciler) and `kube-system/kube-dns` at the tenth address (k3s's
//! `10.43.0.10`), where each node's DNS server answers.

use std::net::{IpAddr, Ipv4Addr};

use bulwark_store::{Range, Store, StoreExt as _, Write, WriteOutcome};
use serde_json::{Value, json};

use super::{AllocError, Allocators};
use crate::registry::Registry;
use crate::{defaults, objects};

/// The address and port other nodes and pods reach this API server at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Advertised {
    pub(crate) address: IpAddr,
    pub(crate) port: u16,
}

impl Advertised {
    /// The advertised address when none is configured: the bind address,
    /// or, bound to every address, the source address of the default
    /// route (found by connecting a UDP socket, which sends nothing), or
    /// else loopback.
    pub(crate) fn choose(configured: Option<IpAddr>, bind: IpAddr, port: u16) -> Self {
        let address = configured.unwrap_or_else(|| {
            if !bind.is_unspecified() {
                return bind;
            }
            std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
                .and_then(|socket| {
                    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
                    socket.local_addr()
                })
                .map(|a| a.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        });
        Advertised { address, port }
    }
}

/// The `kube-dns` Service's address: the range's tenth (k3s's choice).
pub(crate) const DNS_OFFSET: u32 = 9;

/// Repairs the bitmaps, then makes sure the built-in Services and the
/// `kubernetes` endpoints exist and say what they should.
pub(crate) async fn bootstrap(
    store: &dyn Store,
    allocators: &Allocators,
    advertised: Advertised,
) -> anyhow::Result<()> {
    allocators
        .repair()
        .await
        .map_err(|err| anyhow::anyhow!("repairing Service allocations: {}", err.message))?;
    ensure_built_ins(store, allocators, advertised).await
}

/// How often the built-in Services and the `kubernetes` endpoints are
/// checked (upstream's endpoint reconciler interval).
const RECONCILE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Keeps the built-ins as [`bootstrap`] made them (a deleted one comes
/// back, as upstream's controller recreates it) and runs the repair pass
/// every [`super::REPAIR_INTERVAL`]; forever.
pub(crate) async fn reconcile_loop(
    store: std::sync::Arc<dyn Store>,
    allocators: std::sync::Arc<Allocators>,
    advertised: Advertised,
) {
    let mut last_repair = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(RECONCILE_INTERVAL).await;
        if last_repair.elapsed() >= super::REPAIR_INTERVAL {
            last_repair = tokio::time::Instant::now();
            if let Err(err) = allocators.repair().await {
                tracing::warn!(error = %err.message, "repairing the Service IP and port bitmaps");
            }
        }
        if let Err(err) = ensure_built_ins(&*store, &allocators, advertised).await {
            tracing::warn!(error = %format!("{err:#}"), "reconciling the built-in Services");
        }
    }
}

async fn ensure_built_ins(
    store: &dyn Store,
    allocators: &Allocators,
    advertised: Advertised,
) -> anyhow::Result<()> {
    let range = allocators.ranges().cluster_ip_range;
    let https =
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": advertised.port}]);
    ensure_service(
        store,
        allocators,
        "default",
        "kubernetes",
        range.nth(0),
        json!({"component": "apiserver", "provider": "kubernetes"}),
        https,
        true,
    )
    .await?;
    ensure_service(
        store,
        allocators,
        "kube-system",
        "kube-dns",
        range.nth(DNS_OFFSET),
        json!({"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}),
        json!([
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
        ]),
        false,
    )
    .await?;
    let live = master_leases(store, advertised.address).await?;
    let addresses: Vec<Value> = live
        .iter()
        .map(|ip| json!({"ip": ip.to_string()}))
        .collect();
    let endpoints: Vec<Value> = live
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
        .collect();
    let port = json!([{"name": "https", "port": advertised.port, "protocol": "TCP"}]);
    put_desired(
        store,
        "",
        "endpoints",
        "kubernetes",
        json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": addresses, "ports": port}],
        }),
        &["subsets"],
    )
    .await?;
    put_desired(
        store,
        "discovery.k8s.io",
        "endpointslices",
        "kubernetes",
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": if advertised.address.is_ipv4() { "IPv4" } else { "IPv6" },
            "endpoints": endpoints,
            "ports": port,
        }),
        &["addressType", "endpoints", "ports"],
    )
    .await?;
    Ok(())
}

/// How long a server's lease on a place in the `kubernetes` endpoints
/// lasts without renewal (renewed every [`RECONCILE_INTERVAL`]; upstream's
/// lease reconciler uses 15 s, a little more here for loaded machines).
const MASTER_LEASE_SECS: i64 = 20;

/// Where the servers' leases live (upstream's key prefix).
const MASTER_LEASES: &str = "/registry/masterleases/";

/// upstream's lease endpoint reconciler: renews this server's lease,
/// drops expired ones, and returns the live servers' addresses (sorted),
/// so servers sharing a store list each other instead of overwriting.
async fn master_leases(store: &dyn Store, me: IpAddr) -> anyhow::Result<Vec<IpAddr>> {
    let now = jiff::Timestamp::now().as_second();
    let lease = json!({"address": me.to_string(), "expires": now + MASTER_LEASE_SECS});
    store
        .write(Write::put(
            &format!("{MASTER_LEASES}{me}"),
            serde_json::to_vec(&lease)?,
        ))
        .await?;
    let mut live = vec![me];
    for kv in store.range(Range::prefix(MASTER_LEASES)).await?.kvs {
        let lease: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        let address = lease["address"]
            .as_str()
            .and_then(|a| a.parse::<IpAddr>().ok());
        match (address, lease["expires"].as_i64()) {
            (Some(address), Some(expires)) if expires >= now => live.push(address),
            _ => {
                // Expired (or unreadable): its server stopped renewing.
                store
                    .write(Write::delete(&kv.key).if_mod_revision(kv.mod_revision))
                    .await?;
            }
        }
    }
    live.sort();
    live.dedup();
    Ok(live)
}

/// Creates the Service at `ip` unless it exists; `reconcile_ports` sets
/// its ports back to `ports` when they drifted (the `kubernetes` Service's
/// target port follows the server's).
#[allow(clippy::too_many_arguments)] // One call per built-in Service; a struct would only rename them.
async fn ensure_service(
    store: &dyn Store,
    allocators: &Allocators,
    namespace: &str,
    name: &str,
    ip: Option<Ipv4Addr>,
    labels: Value,
    ports: Value,
    reconcile_ports: bool,
) -> anyhow::Result<()> {
    let key = format!("/registry/services/{namespace}/{name}");
    if let Some(kv) = store.get(&key).await? {
        if reconcile_ports {
            let mut service: Value = serde_json::from_slice(&kv.value)?;
            if service.pointer("/spec/ports") != Some(&ports) {
                service["spec"]["ports"] = ports;
                store
                    .write(
                        Write::put(&key, serde_json::to_vec(&service)?)
                            .if_mod_revision(kv.mod_revision),
                    )
                    .await?;
            }
        }
        return Ok(());
    }
    let Some(ip) = ip else {
        anyhow::bail!("the service range has no room for the {namespace}/{name} Service");
    };
    match allocators.take_ip(Some(ip), false).await {
        Ok(Ok(_)) => {}
        Ok(Err(AllocError::Taken)) => {
            tracing::warn!(%ip, "{namespace}/{name}'s address is held by another Service; not creating it");
            return Ok(());
        }
        Ok(Err(err)) => anyhow::bail!("allocating {ip} for {namespace}/{name}: {err:?}"),
        Err(err) => anyhow::bail!("allocating {ip} for {namespace}/{name}: {}", err.message),
    }
    let resource = service_type();
    let mut service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "clusterIP": ip.to_string(),
            "clusterIPs": [ip.to_string()],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": ports,
            "type": "ClusterIP",
        },
    });
    defaults::apply(&resource, &mut service);
    objects::initialize(&resource, &mut service);
    let outcome = store
        .write(Write::put(&key, serde_json::to_vec(&service)?).if_absent())
        .await?;
    if let WriteOutcome::Failed { .. } = outcome {
        // Another server made it first, with this same address.
        tracing::debug!("{namespace}/{name} was created concurrently");
    }
    Ok(())
}

fn service_type() -> std::sync::Arc<crate::registry::ResourceType> {
    Registry::builtin()
        .get("", "v1", "services")
        .expect("services are served")
}

/// Writes `desired` unless the stored object already has its `fields`.
async fn put_desired(
    store: &dyn Store,
    group: &str,
    plural: &str,
    name: &str,
    mut desired: Value,
    fields: &[&str],
) -> anyhow::Result<()> {
    let resource = Registry::builtin()
        .get(group, "v1", plural)
        .ok_or_else(|| anyhow::anyhow!("{plural} are not served"))?;
    let key = resource.key(Some("default"), name);
    for _ in 0..16 {
        let current = store.get(&key).await?;
        let write = match &current {
            Some(kv) => {
                let mut stored: Value = serde_json::from_slice(&kv.value)?;
                if fields.iter().all(|f| stored.get(*f) == desired.get(*f)) {
                    return Ok(());
                }
                for field in fields {
                    stored[*field] = desired[*field].clone();
                }
                Write::put(&key, serde_json::to_vec(&stored)?).if_mod_revision(kv.mod_revision)
            }
            None => {
                defaults::apply(&resource, &mut desired);
                objects::initialize(&resource, &mut desired);
                Write::put(&key, serde_json::to_vec(&desired)?).if_absent()
            }
        };
        if let WriteOutcome::Committed { .. } = store.write(write).await? {
            return Ok(());
        }
    }
    anyhow::bail!("default/{name} {plural} keep changing under the reconciler")
}
