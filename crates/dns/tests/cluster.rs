//! The DNS server against an in-process API server, as a pod's resolver
//! would use it: questions over UDP and TCP on loopback, answers checked
//! record by record; names outside the cluster go to a fake upstream
//! started here (no internet).

// Helpers outside #[test] fns unwrap too: a failed step fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bulwark_client::Identity;
use bulwark_dns::{DnsConfig, DnsServer};
use bulwark_testkit::{TestCluster, wait_for};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const PATIENCE: Duration = Duration::from_secs(20);

struct Setup {
    cluster: TestCluster,
    dns: DnsServer,
    addr: SocketAddr,
    _upstream: tokio::task::JoinHandle<()>,
}

/// A cluster, a fake upstream answering every A question with 192.0.2.7,
/// and the DNS server (as `system:bulwark-dns`) on a loopback port.
async fn setup() -> Setup {
    let cluster = TestCluster::start().await.unwrap();
    let (upstream, upstream_task) = fake_upstream().await;
    let client = cluster
        .access()
        .client(&Identity::user("system:bulwark-dns", &[]))
        .unwrap();
    let config = DnsConfig {
        listen: vec![(Ipv4Addr::LOCALHOST, 0).into()],
        domain: "cluster.local".into(),
        upstreams: vec![upstream],
        ttl: 5,
    };
    let dns = DnsServer::bind(config, client).await.unwrap();
    tokio::time::timeout(PATIENCE, dns.synced())
        .await
        .expect("the watches list (RBAC allows them)");
    let addr = dns.local_addrs()[0];
    Setup {
        cluster,
        dns,
        addr,
        _upstream: upstream_task,
    }
}

fn question(name: &str, kind: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
    message
}

async fn ask_udp(addr: SocketAddr, name: &str, kind: RecordType) -> Message {
    let message = question(name, kind);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&message.to_vec().unwrap(), addr)
        .await
        .unwrap();
    let mut buffer = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let answer = Message::from_vec(&buffer[..n]).unwrap();
    assert_eq!(answer.metadata.id, message.metadata.id);
    answer
}

async fn ask_tcp(addr: SocketAddr, name: &str, kind: RecordType) -> Message {
    let message = question(name, kind);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let bytes = message.to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buffer = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buffer).await.unwrap();
    Message::from_vec(&buffer).unwrap()
}

/// The answer section as `name TTL data` lines.
fn answers(message: &Message) -> Vec<String> {
    message.answers.iter().map(show).collect()
}

fn show(record: &Record) -> String {
    let data = match &record.data {
        RData::A(a) => a.to_string(),
        RData::AAAA(a) => a.to_string(),
        RData::CNAME(c) => format!("CNAME {}", c.0),
        RData::SRV(s) => format!("SRV {} {} {} {}", s.priority, s.weight, s.port, s.target),
        RData::PTR(p) => format!("PTR {}", p.0),
        RData::SOA(s) => format!("SOA {} {}", s.mname, s.rname),
        other => format!("{other:?}"),
    };
    format!("{} {} {data}", record.name, record.ttl)
}

/// Asks until the answer section is `want` (the watches are eventually
/// consistent).
async fn eventually(addr: SocketAddr, name: &str, kind: RecordType, want: &[&str]) -> Message {
    let want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    wait_for(&format!("{name} {kind}"), PATIENCE, || {
        let want = want.clone();
        async move {
            let answer = ask_udp(addr, name, kind).await;
            if answers(&answer) == want {
                Ok(answer)
            } else {
                Err(format!(
                    "{:?} {:?}",
                    answer.metadata.response_code,
                    answers(&answer)
                ))
            }
        }
    })
    .await
    .unwrap()
}

async fn create_service(client: &kube::Client, spec: serde_json::Value, name: &str) -> Service {
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap();
    Api::<Service>::default_namespaced(client.clone())
        .create(&PostParams::default(), &service)
        .await
        .unwrap()
}

#[tokio::test]
async fn cluster_ip_services_and_srv_records() {
    let s = setup().await;
    let client = s.cluster.admin();
    eventually(
        s.addr,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
        &["kubernetes.default.svc.cluster.local. 5 10.43.0.1"],
    )
    .await;
    let web = create_service(
        &client,
        json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}),
        "web",
    )
    .await;
    let ip = web.spec.unwrap().cluster_ip.unwrap();
    eventually(
        s.addr,
        "web.default.svc.cluster.local.",
        RecordType::A,
        &[&format!("web.default.svc.cluster.local. 5 {ip}")],
    )
    .await;
    // The same over TCP, in any case.
    let over_tcp = ask_tcp(s.addr, "WEB.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        answers(&over_tcp),
        vec![format!("WEB.default.svc.cluster.local. 5 {ip}")]
    );
    assert!(over_tcp.metadata.authoritative);
    let srv = ask_udp(
        s.addr,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        answers(&srv),
        vec![
            "_http._tcp.web.default.svc.cluster.local. 5 SRV 0 100 80 web.default.svc.cluster.local."
        ]
    );
    assert_eq!(
        srv.additionals.iter().map(show).collect::<Vec<_>>(),
        vec![format!("web.default.svc.cluster.local. 5 {ip}")]
    );
    // Its address, reversed.
    let reversed: Vec<&str> = ip.split('.').rev().collect();
    let ptr_name = format!("{}.in-addr.arpa.", reversed.join("."));
    let ptr = ask_udp(s.addr, &ptr_name, RecordType::PTR).await;
    assert_eq!(
        answers(&ptr),
        vec![format!("{ptr_name} 5 PTR web.default.svc.cluster.local.")]
    );
    // A name that exists with no record of this type: NODATA with the SOA.
    let aaaa = ask_udp(s.addr, "web.default.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
    assert!(aaaa.answers.is_empty());
    assert_eq!(
        aaaa.authorities.iter().map(show).collect::<Vec<_>>(),
        vec!["cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local."]
    );
    drop(s.dns);
}

#[tokio::test]
async fn headless_services_follow_their_endpoint_slices() {
    let s = setup().await;
    let client = s.cluster.admin();
    create_service(
        &client,
        json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
        "db",
    )
    .await;
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let slice: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "db-x1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.42.0.6"], "hostname": "db-1", "conditions": {"ready": true}},
        ],
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
    }))
    .unwrap();
    slices.create(&PostParams::default(), &slice).await.unwrap();
    eventually(
        s.addr,
        "db.default.svc.cluster.local.",
        RecordType::A,
        &[
            "db.default.svc.cluster.local. 5 10.42.0.5",
            "db.default.svc.cluster.local. 5 10.42.0.6",
        ],
    )
    .await;
    eventually(
        s.addr,
        "db-1.db.default.svc.cluster.local.",
        RecordType::A,
        &["db-1.db.default.svc.cluster.local. 5 10.42.0.6"],
    )
    .await;
    let srv = ask_udp(
        s.addr,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        answers(&srv),
        vec![
            "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
            "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 50 5432 db-1.db.default.svc.cluster.local.",
        ]
    );
    // db-0 stops being ready: it leaves the answers.
    let patch = json!({"endpoints": [
        {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": false}},
        {"addresses": ["10.42.0.6"], "hostname": "db-1", "conditions": {"ready": true}},
    ]});
    slices
        .patch("db-x1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(
        s.addr,
        "db.default.svc.cluster.local.",
        RecordType::A,
        &["db.default.svc.cluster.local. 5 10.42.0.6"],
    )
    .await;
    let gone = ask_udp(s.addr, "db-0.db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn external_names_pods_and_unknown_names() {
    let s = setup().await;
    let client = s.cluster.admin();
    create_service(
        &client,
        json!({"type": "ExternalName", "externalName": "db.example.org"}),
        "ext",
    )
    .await;
    eventually(
        s.addr,
        "ext.default.svc.cluster.local.",
        RecordType::A,
        &["ext.default.svc.cluster.local. 5 CNAME db.example.org."],
    )
    .await;
    let pod = ask_udp(
        s.addr,
        "10-42-3-4.default.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        answers(&pod),
        vec!["10-42-3-4.default.pod.cluster.local. 5 10.42.3.4"]
    );
    for name in [
        "nope.default.svc.cluster.local.",
        "web.nowhere.svc.cluster.local.",
        "a.b.c.d.e.f.cluster.local.",
    ] {
        let answer = ask_udp(s.addr, name, RecordType::A).await;
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}"
        );
        assert!(answer.answers.is_empty());
        assert_eq!(
            answer.authorities.iter().map(show).collect::<Vec<_>>(),
            vec!["cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local."],
            "{name}"
        );
    }
}

#[tokio::test]
async fn other_names_are_forwarded_over_udp_and_tcp() {
    let s = setup().await;
    for answer in [
        ask_udp(s.addr, "example.org.", RecordType::A).await,
        ask_tcp(s.addr, "example.org.", RecordType::A).await,
    ] {
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(answers(&answer), vec!["example.org. 60 192.0.2.7"]);
    }
}

#[tokio::test]
async fn malformed_packets_do_not_stop_it() {
    let s = setup().await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x12],
        vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01],
        // A header claiming 65535 questions, and nothing after it.
        vec![0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0],
        // A name whose compression pointer points at itself.
        vec![
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
        ],
        // A label longer than the packet.
        vec![
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'a', b'b',
        ],
    ];
    // A response (QR set) must not be answered (no reflection loops).
    let mut response = question("web.default.svc.cluster.local.", RecordType::A);
    response.metadata.message_type = MessageType::Response;
    garbage.push(response.to_vec().unwrap());
    // An UPDATE: refused as not implemented.
    let mut update = question("cluster.local.", RecordType::SOA);
    update.metadata.op_code = OpCode::Update;
    garbage.push(update.to_vec().unwrap());
    let mut seed: u32 = 0x9e37_79b9;
    for len in [12usize, 40, 300, 1400] {
        let bytes = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        garbage.push(bytes);
    }
    for packet in &garbage {
        socket.send_to(packet, s.addr).await.unwrap();
    }
    // Over TCP too: a frame shorter than announced, then a closed stream.
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(&[0x01, 0x00, 0xde, 0xad]).await.unwrap();
    drop(stream);
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(&[0x00, 0x03, 0x01, 0x02, 0x03])
        .await
        .unwrap();
    drop(stream);
    // Still answering, over both transports.
    eventually(
        s.addr,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
        &["kubernetes.default.svc.cluster.local. 5 10.43.0.1"],
    )
    .await;
    let tcp = ask_tcp(
        s.addr,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(answers(&tcp).len(), 1);
}

/// A resolver that answers every question with `A 192.0.2.7`, TTL 60,
/// over UDP and TCP on one loopback port.
async fn fake_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    // One port for both (the kernel's free UDP port may be taken for TCP).
    let mut attempts = 0;
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        match TcpListener::bind(udp.local_addr().unwrap()).await {
            Ok(tcp) => break (udp, tcp),
            Err(_) if attempts < 16 => attempts += 1,
            Err(err) => panic!("no port free for UDP and TCP: {err}"),
        }
    };
    let addr = udp.local_addr().unwrap();
    fn reply(packet: &[u8]) -> Option<Vec<u8>> {
        let request = Message::from_vec(packet).ok()?;
        let mut response = Message::response(request.metadata.id, OpCode::Query);
        response.metadata.recursion_available = true;
        let query = request.queries.first()?.clone();
        response.add_query(query.clone());
        response.add_answer(Record::from_rdata(
            query.name().clone(),
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
        ));
        response.to_vec().ok()
    }
    let task = tokio::spawn(async move {
        let udp_loop = async {
            let mut buffer = vec![0u8; 65535];
            while let Ok((n, peer)) = udp.recv_from(&mut buffer).await {
                if let Some(answer) = reply(&buffer[..n]) {
                    let _ = udp.send_to(&answer, peer).await;
                }
            }
        };
        let tcp_loop = async {
            while let Ok((mut stream, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    let Ok(len) = stream.read_u16().await else {
                        return;
                    };
                    let mut buffer = vec![0u8; usize::from(len)];
                    if stream.read_exact(&mut buffer).await.is_err() {
                        return;
                    }
                    if let Some(answer) = reply(&buffer) {
                        let _ = stream.write_all(&(answer.len() as u16).to_be_bytes()).await;
                        let _ = stream.write_all(&answer).await;
                    }
                });
            }
        };
        tokio::join!(udp_loop, tcp_loop);
    });
    (addr, task)
}

/// An upstream whose first reply carries the wrong ID (what a blind
/// spoofing attempt looks like) and whose second is genuine: the client
/// gets the genuine one.
#[tokio::test]
async fn forwarded_answers_with_the_wrong_id_are_ignored() {
    let cluster = TestCluster::start().await.unwrap();
    let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let responder = tokio::spawn(async move {
        let mut buffer = vec![0u8; 65535];
        loop {
            let Ok((n, peer)) = upstream.recv_from(&mut buffer).await else {
                return;
            };
            let Ok(request) = Message::from_vec(&buffer[..n]) else {
                continue;
            };
            for (id, ip) in [
                (
                    request.metadata.id.wrapping_add(1),
                    Ipv4Addr::new(6, 6, 6, 6),
                ),
                (request.metadata.id, Ipv4Addr::new(192, 0, 2, 7)),
            ] {
                let mut response = Message::response(id, OpCode::Query);
                let query = request.queries[0].clone();
                response.add_query(query.clone());
                response.add_answer(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::A(A(ip)),
                ));
                let _ = upstream.send_to(&response.to_vec().unwrap(), peer).await;
            }
        }
    });
    let config = DnsConfig {
        listen: vec![(Ipv4Addr::LOCALHOST, 0).into()],
        domain: "cluster.local".into(),
        upstreams: vec![upstream_addr],
        ttl: 5,
    };
    let dns = DnsServer::bind(config, cluster.admin()).await.unwrap();
    let answer = ask_udp(dns.local_addrs()[0], "example.org.", RecordType::A).await;
    assert_eq!(answers(&answer), vec!["example.org. 60 192.0.2.7"]);
    responder.abort();
}

/// A DNS response sent to the server (QR set, e.g. with a forged source to
/// make it a reflector) gets no reply.
#[tokio::test]
async fn responses_sent_to_it_are_not_answered() {
    let s = setup().await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut response = question("kubernetes.default.svc.cluster.local.", RecordType::A);
    response.metadata.message_type = MessageType::Response;
    socket
        .send_to(&response.to_vec().unwrap(), s.addr)
        .await
        .unwrap();
    let real = question("kubernetes.default.svc.cluster.local.", RecordType::A);
    socket
        .send_to(&real.to_vec().unwrap(), s.addr)
        .await
        .unwrap();
    let mut buffer = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer))
        .await
        .expect("the real question is answered")
        .unwrap();
    assert_eq!(
        Message::from_vec(&buffer[..n]).unwrap().metadata.id,
        real.metadata.id
    );
    // Anything sent for the first would have been sent before this answer
    // (one socket, questions handled in arrival order up to the spawn).
    assert!(matches!(
        socket.try_recv(&mut buffer),
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock
    ));
}

/// Its identity reads what DNS needs and nothing else.
#[tokio::test]
async fn its_identity_cannot_read_secrets() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster
        .access()
        .client(&Identity::user("system:bulwark-dns", &[]))
        .unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::all(client.clone());
    match secrets.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
        other => panic!("listing secrets as system:bulwark-dns: {other:?}"),
    }
    let services: Api<Service> = Api::all(client);
    assert!(services.list(&Default::default()).await.is_ok());
}
