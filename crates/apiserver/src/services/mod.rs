//! Service ClusterIPs and NodePorts, as kube-apiserver's Service registry
//! allocates them: from bitmaps kept in the store at
//! `/registry/ranges/serviceips` and `/registry/ranges/servicenodeports`
//! (upstream's `RangeAllocation`s), changed only by compare-and-swap, so two
//! API servers on one etcd never hand out the same value.
//!
//! A value is taken in its bitmap before the Service that holds it is
//! written, and given back if that write fails; values held by deleted
//! Services are given back after the delete. A crash between the two steps
//! leaks a value: [`Allocators::repair`] (at start and every few minutes)
//! rebuilds the bitmaps from the Services, giving back a leaked value only
//! once it has been seen leaked on [`LEAK_PASSES`] passes (a Service being
//! created by another server right now is not a leak).
//!
//! `bootstrap.rs` creates the `kubernetes` and `kube-dns` Services.

mod alloc;
mod bootstrap;
mod spec;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use bulwark_store::{Range, Store, StoreExt as _, Write, WriteOutcome};
use serde_json::Value;

pub use alloc::Ipv4Cidr;
pub(crate) use bootstrap::{Advertised, bootstrap, reconcile_loop};
pub(crate) use spec::{held, on_create, on_update, prepare_update, validate};

use crate::status::{ApiError, ApiResult, Cause};

/// Where the Service IP bitmap lives (upstream's key).
const IPS_KEY: &str = "/registry/ranges/serviceips";
/// Where the NodePort bitmap lives (upstream's key).
const PORTS_KEY: &str = "/registry/ranges/servicenodeports";
/// Passes of the repair loop a value must be seen leaked on before it is
/// given back (upstream's `numRepairsBeforeLeakCleanup`).
const LEAK_PASSES: u8 = 3;
/// How often the repair loop runs (upstream's default interval).
pub(crate) const REPAIR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(180);

/// The default Service IP range (k3s's).
pub const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";

/// The ranges Services take their values from.
#[derive(Clone, Debug)]
pub struct ServiceRanges {
    /// `--service-cluster-ip-range`.
    pub cluster_ip_range: Ipv4Cidr,
    /// `--service-node-port-range`, inclusive.
    pub node_ports: (u16, u16),
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ip_range: DEFAULT_SERVICE_CIDR
                .parse()
                .expect("the default service CIDR parses"),
            node_ports: (30000, 32767),
        }
    }
}

/// Which of the two bitmaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Pool {
    Ips,
    Ports,
}

/// Values one request took (to give back if its write fails) or that an
/// object holds (to give back when it goes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) ips: Vec<Ipv4Addr>,
    pub(crate) ports: Vec<u16>,
}

impl Held {
    pub(crate) fn is_empty(&self) -> bool {
        self.ips.is_empty() && self.ports.is_empty()
    }
}

/// Why a value could not be taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AllocError {
    /// Someone holds it.
    Taken,
    /// It is outside the range.
    NotInRange,
    /// Nothing is free.
    Full,
}

/// The two bitmaps in the store, and the repair loop's memory of leaks.
pub(crate) struct Allocators {
    store: Arc<dyn Store>,
    ranges: ServiceRanges,
    leaks: Mutex<HashMap<(Pool, u32), u8>>,
}

impl Allocators {
    pub(crate) fn new(store: Arc<dyn Store>, ranges: ServiceRanges) -> Self {
        Allocators {
            store,
            ranges,
            leaks: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn ranges(&self) -> &ServiceRanges {
        &self.ranges
    }

    fn key(pool: Pool) -> &'static str {
        match pool {
            Pool::Ips => IPS_KEY,
            Pool::Ports => PORTS_KEY,
        }
    }

    fn range_text(&self, pool: Pool) -> String {
        match pool {
            Pool::Ips => self.ranges.cluster_ip_range.to_string(),
            Pool::Ports => format!("{}-{}", self.ranges.node_ports.0, self.ranges.node_ports.1),
        }
    }

    fn size(&self, pool: Pool) -> u32 {
        match pool {
            Pool::Ips => self.ranges.cluster_ip_range.usable(),
            Pool::Ports => u32::from(self.ranges.node_ports.1 - self.ranges.node_ports.0) + 1,
        }
    }

    fn reserved(&self, pool: Pool) -> u32 {
        let size = self.size(pool);
        match pool {
            Pool::Ips => alloc::reserved_band(size, 16, 16, 256),
            Pool::Ports => alloc::reserved_band(size, 16, 32, 128),
        }
    }

    fn ip_offset(&self, ip: Ipv4Addr) -> Option<u32> {
        self.ranges.cluster_ip_range.offset(ip)
    }

    fn port_offset(&self, port: u16) -> Option<u32> {
        let (first, last) = self.ranges.node_ports;
        (first..=last)
            .contains(&port)
            .then(|| u32::from(port - first))
    }

    /// Reads a bitmap, lets `change` decide (and change it), and writes it
    /// back only if nobody wrote it meanwhile; retries on a lost race.
    /// `change` returning `Ok((value, false))` writes nothing.
    async fn update<T>(
        &self,
        pool: Pool,
        mut change: impl FnMut(&mut alloc::Bitmap) -> Result<(T, bool), AllocError>,
    ) -> ApiResult<Result<T, AllocError>> {
        let key = Self::key(pool);
        for _ in 0..64 {
            let current = self.store.get(key).await?;
            let mut bitmap = match &current {
                Some(kv) => match alloc::decode(&kv.value) {
                    Some((range, bitmap)) if range == self.range_text(pool) => bitmap,
                    // Another range (the flag changed): the repair pass
                    // rebuilds it from the Services; start from them too.
                    _ => self.rebuild(pool).await?,
                },
                None => alloc::Bitmap::default(),
            };
            let (value, write) = match change(&mut bitmap) {
                Ok(outcome) => outcome,
                Err(err) => return Ok(Err(err)),
            };
            if !write {
                return Ok(Ok(value));
            }
            let bytes = serde_json::to_vec(&alloc::encode(&self.range_text(pool), &bitmap))
                .map_err(ApiError::internal)?;
            let put = Write::put(key, bytes);
            let put = match &current {
                Some(kv) => put.if_mod_revision(kv.mod_revision),
                None => put.if_absent(),
            };
            if let WriteOutcome::Committed { .. } = self.store.write(put).await? {
                return Ok(Ok(value));
            }
        }
        Err(ApiError::internal(format!(
            "too many concurrent changes to {key}"
        )))
    }

    /// Takes `offset` (or any free one) in `pool`; `dry_run` checks only.
    async fn take(
        &self,
        pool: Pool,
        offset: Option<u32>,
        dry_run: bool,
    ) -> ApiResult<Result<u32, AllocError>> {
        let size = self.size(pool);
        let reserved = self.reserved(pool);
        let start: u32 = rand::random();
        self.update(pool, |bitmap| {
            let offset = match offset {
                Some(o) if bitmap.has(o) => return Err(AllocError::Taken),
                Some(o) => o,
                None => bitmap
                    .next_free(size, reserved, start)
                    .ok_or(AllocError::Full)?,
            };
            bitmap.set(offset);
            Ok((offset, !dry_run))
        })
        .await
    }

    /// Takes a Service IP: `requested`, or any free one.
    pub(crate) async fn take_ip(
        &self,
        requested: Option<Ipv4Addr>,
        dry_run: bool,
    ) -> ApiResult<Result<Ipv4Addr, AllocError>> {
        let offset = match requested {
            Some(ip) => match self.ip_offset(ip) {
                Some(offset) => Some(offset),
                None => return Ok(Err(AllocError::NotInRange)),
            },
            None => None,
        };
        Ok(self.take(Pool::Ips, offset, dry_run).await?.map(|offset| {
            self.ranges
                .cluster_ip_range
                .nth(offset)
                .unwrap_or(Ipv4Addr::UNSPECIFIED)
        }))
    }

    /// Takes a NodePort: `requested`, or any free one.
    pub(crate) async fn take_port(
        &self,
        requested: Option<u16>,
        dry_run: bool,
    ) -> ApiResult<Result<u16, AllocError>> {
        let offset = match requested {
            Some(port) => match self.port_offset(port) {
                Some(offset) => Some(offset),
                None => return Ok(Err(AllocError::NotInRange)),
            },
            None => None,
        };
        let first = self.ranges.node_ports.0;
        Ok(self
            .take(Pool::Ports, offset, dry_run)
            .await?
            .map(|offset| first + offset as u16))
    }

    /// Gives values back (those outside the ranges are ignored: they were
    /// taken under another configuration).
    pub(crate) async fn release(&self, held: &Held) -> ApiResult<()> {
        let ips: Vec<u32> = held
            .ips
            .iter()
            .filter_map(|ip| self.ip_offset(*ip))
            .collect();
        let ports: Vec<u32> = held
            .ports
            .iter()
            .filter_map(|p| self.port_offset(*p))
            .collect();
        for (pool, offsets) in [(Pool::Ips, ips), (Pool::Ports, ports)] {
            if offsets.is_empty() {
                continue;
            }
            let _ = self
                .update(pool, |bitmap| {
                    let changed = offsets.iter().any(|o| bitmap.has(*o));
                    for offset in &offsets {
                        bitmap.clear(*offset);
                    }
                    Ok(((), changed))
                })
                .await?;
        }
        Ok(())
    }

    /// Gives values back, logging (not failing) when the store refuses:
    /// the repair loop finds what this misses.
    pub(crate) async fn release_logged(&self, held: &Held) {
        if held.is_empty() {
            return;
        }
        if let Err(err) = self.release(held).await {
            tracing::warn!(?held, error = %err.message, "releasing Service IPs/ports failed; the repair loop will");
        }
    }

    /// The values every stored Service holds, by pool.
    async fn in_use(&self) -> ApiResult<(BTreeSet<u32>, BTreeSet<u32>)> {
        let mut ips = BTreeSet::new();
        let mut ports = BTreeSet::new();
        let mut range = Range::prefix("/registry/services/");
        loop {
            let page = self.store.range(range.clone().limit(500)).await?;
            for kv in &page.kvs {
                let Ok(service) = serde_json::from_slice::<Value>(&kv.value) else {
                    continue;
                };
                let held = spec::held(&service);
                for ip in held.ips {
                    match self.ip_offset(ip) {
                        Some(offset) => {
                            ips.insert(offset);
                        }
                        None => tracing::warn!(service = kv.key, %ip,
                            "a Service's cluster IP is outside the service range"),
                    }
                }
                for port in held.ports {
                    match self.port_offset(port) {
                        Some(offset) => {
                            ports.insert(offset);
                        }
                        None => tracing::warn!(
                            service = kv.key,
                            port,
                            "a Service's node port is outside the node port range"
                        ),
                    }
                }
            }
            match page.kvs.last() {
                Some(last) if page.more => range = range.after(&last.key),
                _ => break,
            }
        }
        Ok((ips, ports))
    }

    /// A bitmap of what the Services hold (for a bitmap of another range).
    async fn rebuild(&self, pool: Pool) -> ApiResult<alloc::Bitmap> {
        let (ips, ports) = self.in_use().await?;
        let mut bitmap = alloc::Bitmap::default();
        for offset in if pool == Pool::Ips { ips } else { ports } {
            bitmap.set(offset);
        }
        Ok(bitmap)
    }

    /// One repair pass (upstream's `Repair.RunOnce` for IPs and ports):
    /// every value a Service holds is marked taken; a taken value no
    /// Service holds is given back once seen on [`LEAK_PASSES`] passes.
    pub(crate) async fn repair(&self) -> ApiResult<()> {
        // Services first, bitmaps second: a value taken between the two
        // reads looks leaked for one pass, never the reverse.
        let (ips, ports) = self.in_use().await?;
        for (pool, used) in [(Pool::Ips, ips), (Pool::Ports, ports)] {
            let size = self.size(pool);
            let mut seen_leaks = Vec::new();
            let result = self
                .update(pool, |bitmap| {
                    let before = bitmap.clone();
                    seen_leaks.clear();
                    let leaks = self.leaks.lock().unwrap_or_else(|p| p.into_inner());
                    let taken: Vec<u32> = bitmap.offsets().collect();
                    for offset in taken {
                        if offset >= size {
                            bitmap.clear(offset);
                        } else if !used.contains(&offset) {
                            let passes = leaks.get(&(pool, offset)).copied().unwrap_or(0) + 1;
                            if passes >= LEAK_PASSES {
                                bitmap.clear(offset);
                            } else {
                                seen_leaks.push((offset, passes));
                            }
                        }
                    }
                    for offset in &used {
                        bitmap.set(*offset);
                    }
                    let changed = *bitmap != before;
                    Ok(((), changed))
                })
                .await?;
            if result.is_ok() {
                let mut leaks = self.leaks.lock().unwrap_or_else(|p| p.into_inner());
                leaks.retain(|(p, _), _| *p != pool);
                for (offset, passes) in seen_leaks {
                    leaks.insert((pool, offset), passes);
                }
            }
        }
        Ok(())
    }
}

/// `spec.clusterIPs` as upstream's `%#v` prints it in a field error:
/// `[]string{"10.43.0.5"}`.
fn go_strings(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn invalid(field: impl Into<String>, shown: impl std::fmt::Display, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {shown}: {detail}"),
        field: field.into(),
    }
}

fn forbidden(field: impl Into<String>, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden".into(),
        message: format!("Forbidden: {detail}"),
        field: field.into(),
    }
}

#[cfg(test)]
mod tests;
