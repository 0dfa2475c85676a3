//! The cluster DNS server: what CoreDNS with its `kubernetes` plugin and
//! `forward . /etc/resolv.conf` does in a k3s cluster, as a library the
//! node agent runs on each node (bound to the `kube-dns` Service address
//! on a local interface, NodeLocal-DNSCache style, so DNS needs no proxy
//! rule).
//!
//! It keeps Services and EndpointSlices from kube-rs watches (its identity
//! needs list/watch on both: the bootstrap ClusterRole `system:bulwark-dns`,
//! bound to the user of that name) and answers, in the cluster domain
//! (`cluster.local`), with a 5 s TTL:
//! - `<svc>.<ns>.svc.<domain>` A/AAAA: the cluster IP; a headless Service's
//!   ready endpoints; an ExternalName Service's CNAME;
//! - `<host>.<svc>.<ns>.svc.<domain>`: a headless Service's endpoint by
//!   hostname (StatefulSet pods) or dashed address;
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV (and SRV on the Service
//!   name: every port), targets in the additional section;
//! - `<a-b-c-d>.<ns>.pod.<domain>` A (CoreDNS's `pods insecure`, k3s's default);
//! - `d.c.b.a.in-addr.arpa` PTR for Service and headless endpoint addresses
//!   (other addresses go upstream, as k3s's `fallthrough in-addr.arpa`);
//! - anything else in the domain: NXDOMAIN, or NODATA for a name that exists
//!   with other types, with the zone's SOA.
//!
//! Other names go to the upstream resolvers, over the transport the
//! question came by. Layout: `records.rs` decides answers (no IO),
//! `watch.rs` feeds it, `serve.rs` is the wire.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), bulwark_dns::DnsError> {
//! let config = bulwark_dns::DnsConfig::new(vec!["10.43.0.10:53".parse().unwrap()]);
//! let server = bulwark_dns::DnsServer::bind(config, client).await?;
//! server.run().await;
//! # Ok(()) }
//! ```

mod records;
mod serve;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

/// How to run the DNS server.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Addresses to answer on, each over UDP and TCP (port 0: any free
    /// port, the same for both).
    pub listen: Vec<SocketAddr>,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// Where names outside the domain go, tried in order.
    pub upstreams: Vec<SocketAddr>,
    /// TTL of the cluster's records, seconds (CoreDNS's default: 5).
    pub ttl: u32,
}

impl DnsConfig {
    /// `cluster.local`, TTL 5 s, upstreams from the node's `/etc/resolv.conf`.
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        DnsConfig {
            listen,
            domain: "cluster.local".to_owned(),
            upstreams: read_resolv_conf(Path::new("/etc/resolv.conf")).unwrap_or_default(),
            ttl: 5,
        }
    }
}

/// The `nameserver` lines of a resolv.conf file, on port 53.
pub fn read_resolv_conf(path: &Path) -> std::io::Result<Vec<SocketAddr>> {
    Ok(parse_resolv_conf(&std::fs::read_to_string(path)?))
}

fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then_some(())?;
            let address = words.next()?;
            // A scoped IPv6 address (`fe80::1%eth0`) is not supported.
            address
                .parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A listening socket could not be opened.
    #[error("listening for DNS on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration cannot work.
    #[error("invalid DNS configuration: {0}")]
    Config(String),
}

/// A running DNS server; stops when dropped.
pub struct DnsServer {
    addresses: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    shared: watch::Shared,
}

impl DnsServer {
    /// Opens the sockets and starts the watches and the listeners. Answers
    /// right away; until the first lists arrive the cluster zone is empty
    /// ([`DnsServer::synced`] waits for them).
    pub async fn bind(config: DnsConfig, client: kube::Client) -> Result<Self, DnsError> {
        let domain = config.domain.trim_matches('.').to_ascii_lowercase();
        if domain.is_empty() || hickory_proto::rr::Name::from_ascii(&domain).is_err() {
            return Err(DnsError::Config(format!(
                "{:?} is not a domain name",
                config.domain
            )));
        }
        let shared = watch::Shared::new();
        let handler = Arc::new(serve::Handler {
            domain,
            ttl: config.ttl,
            upstreams: config.upstreams.clone(),
            cluster: shared.cluster.clone(),
        });
        let mut tasks = Vec::new();
        let mut addresses = Vec::new();
        for address in &config.listen {
            let (udp, tcp) = bind_pair(*address).await?;
            let bound = udp.local_addr().map_err(|source| DnsError::Bind {
                address: *address,
                source,
            })?;
            addresses.push(bound);
            tasks.push(tokio::spawn(serve::serve_udp(udp, handler.clone())));
            tasks.push(tokio::spawn(serve::serve_tcp(tcp, handler.clone())));
        }
        tasks.push(tokio::spawn(watch::services(
            client.clone(),
            shared.clone(),
        )));
        tasks.push(tokio::spawn(watch::slices(client, shared.clone())));
        tracing::info!(?addresses, "cluster DNS listening");
        Ok(DnsServer {
            addresses,
            tasks,
            shared,
        })
    }

    /// Where it listens (UDP and TCP on each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// Waits until both watches have listed once.
    pub async fn synced(&self) {
        let mut services = self.shared.services_synced.subscribe();
        let mut slices = self.shared.slices_synced.subscribe();
        let _ = services.wait_for(|s| *s).await;
        let _ = slices.wait_for(|s| *s).await;
    }

    /// Serves until the task is cancelled (the listeners never end on
    /// their own).
    pub async fn run(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        let _stop_on_cancel = Tasks(tasks.iter().map(JoinHandle::abort_handle).collect());
        futures::future::join_all(tasks).await;
    }

    /// Stops answering and watching.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Aborts its tasks when dropped (so a cancelled `run` stops them).
struct Tasks(Vec<tokio::task::AbortHandle>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A UDP socket and a TCP listener on the same address and port (for port
/// 0, the port the kernel gave the UDP socket; retried if TCP finds it taken).
async fn bind_pair(address: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let error = |source| DnsError::Bind { address, source };
    let mut attempts = 0;
    loop {
        let udp = UdpSocket::bind(address).await.map_err(error)?;
        let bound = udp.local_addr().map_err(error)?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(err) if address.port() == 0 && attempts < 16 => {
                attempts += 1;
                tracing::debug!(%bound, error = %err, "TCP port taken; trying another");
            }
            Err(err) => return Err(error(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver ::1\nnameserver fe80::1%eth0\noptions ndots:5\n";
        let upstreams: Vec<String> = super::parse_resolv_conf(text)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(upstreams, vec!["10.0.0.2:53", "[::1]:53"]);
    }
}
