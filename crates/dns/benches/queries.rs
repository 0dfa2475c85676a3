//! `cargo bench -p bulwark-dns`: questions per second over UDP on loopback
//! against an in-process cluster with 1,000 Services, for cluster names
//! (hits and NXDOMAINs) and forwarded names (to a trivial local upstream).
//! Prints figures; asserts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bulwark_dns::{DnsConfig, DnsServer};
use bulwark_testkit::TestCluster;
use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::PostParams;
use tokio::net::UdpSocket;

const SERVICES: usize = 1_000;
const CLIENTS: usize = 16;
const RUN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() {
    let cluster = TestCluster::start().await.unwrap();
    let api: Api<Service> = Api::default_namespaced(cluster.admin());
    let started = Instant::now();
    for chunk in (0..SERVICES).collect::<Vec<_>>().chunks(50) {
        let creates = chunk.iter().map(|i| {
            let api = api.clone();
            async move {
                let svc: Service = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("svc-{i}")},
                    "spec": {"ports": [{"name": "http", "port": 80}]},
                }))
                .unwrap();
                api.create(&PostParams::default(), &svc).await.unwrap();
            }
        });
        futures::future::join_all(creates).await;
    }
    let elapsed = started.elapsed();
    println!(
        "created {SERVICES} Services (cluster IP allocated) in {:.2?}: {:.0}/s",
        elapsed,
        SERVICES as f64 / elapsed.as_secs_f64()
    );
    let upstream = upstream().await;
    let config = DnsConfig {
        listen: vec![(Ipv4Addr::LOCALHOST, 0).into()],
        domain: "cluster.local".into(),
        upstreams: vec![upstream],
        ttl: 5,
    };
    let dns = DnsServer::bind(config, cluster.admin()).await.unwrap();
    dns.synced().await;
    let addr = dns.local_addrs()[0];
    for (label, name) in [
        ("service A (hit)", "svc-{i}.default.svc.cluster.local."),
        ("NXDOMAIN", "nope-{i}.default.svc.cluster.local."),
        ("forwarded", "host-{i}.example.org."),
    ] {
        let qps = measure(addr, name).await;
        println!("{label:>16}: {qps:>8.0} questions/s ({CLIENTS} clients, one in flight each)");
    }
}

async fn measure(addr: SocketAddr, pattern: &'static str) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + RUN;
    let clients = (0..CLIENTS).map(|c| {
        let done = done.clone();
        tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            socket.connect(addr).await.unwrap();
            let mut buffer = vec![0u8; 4096];
            let mut i = c;
            while Instant::now() < deadline {
                let name = pattern.replace("{i}", &(i % SERVICES).to_string());
                let mut message = Message::query();
                message.add_query(Query::query(
                    Name::from_ascii(&name).unwrap(),
                    RecordType::A,
                ));
                socket.send(&message.to_vec().unwrap()).await.unwrap();
                if tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buffer))
                    .await
                    .is_ok()
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                i += CLIENTS;
            }
        })
    });
    futures::future::join_all(clients).await;
    done.load(Ordering::Relaxed) as f64 / RUN.as_secs_f64()
}

async fn upstream() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 65535];
        while let Ok((n, peer)) = socket.recv_from(&mut buffer).await {
            let Ok(request) = Message::from_vec(&buffer[..n]) else {
                continue;
            };
            let mut response = Message::response(request.metadata.id, OpCode::Query);
            if let Some(query) = request.queries.first() {
                response.add_query(query.clone());
                response.add_answer(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
                ));
            }
            let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
        }
    });
    addr
}
