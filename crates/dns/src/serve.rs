//! The wire: UDP and TCP listeners, one question per message, answers
//! built with hickory-proto, and names outside the cluster domain
//! forwarded to the upstream resolvers.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::records::{Cluster, Lookup, Rec, Want};

/// How long one upstream gets to answer a forwarded question.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP client may sit idle between messages.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Questions answered at once over UDP, and TCP connections open at once:
/// past these, UDP questions wait (the kernel buffer drops the excess)
/// and new connections wait to be accepted.
const UDP_IN_FLIGHT: usize = 1024;
const TCP_CONNECTIONS: usize = 256;
/// The most a UDP answer carries without EDNS (RFC 1035).
const UDP_PLAIN: usize = 512;
/// What this server advertises and honours with EDNS (the DNS flag day's).
const UDP_EDNS: u16 = 1232;

/// How a question arrived (answers over UDP are size-limited; forwarding
/// uses the same transport).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// Answers questions: the cluster zone from [`Cluster`], the rest upstream.
pub(crate) struct Handler {
    pub(crate) domain: String,
    pub(crate) ttl: u32,
    pub(crate) upstreams: Vec<SocketAddr>,
    pub(crate) cluster: Arc<RwLock<Cluster>>,
}

impl Handler {
    /// The reply to one message, or `None` to stay silent (not even a
    /// DNS header, or a response rather than a query).
    pub(crate) async fn handle(&self, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let request = match Message::from_vec(packet) {
            Ok(request) => request,
            Err(_) if packet.len() >= 12 && packet[2] & 0x80 == 0 => {
                let id = u16::from_be_bytes([packet[0], packet[1]]);
                return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                    .to_vec()
                    .ok();
            }
            Err(_) => return None,
        };
        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata = Metadata::response_from_request(&request.metadata);
        response.metadata.recursion_available = true;
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(UDP_EDNS);
            response.set_edns(edns);
        }
        let query = match (request.metadata.op_code, request.queries.as_slice()) {
            (OpCode::Query, [query]) => query.clone(),
            (OpCode::Query, _) => {
                response.metadata.response_code = ResponseCode::FormErr;
                return response.to_vec().ok();
            }
            _ => {
                response.metadata.response_code = ResponseCode::NotImp;
                return response.to_vec().ok();
            }
        };
        response.add_query(query.clone());
        let want = match query.query_type() {
            RecordType::A => Want::A,
            RecordType::AAAA => Want::Aaaa,
            RecordType::SRV => Want::Srv,
            RecordType::CNAME => Want::Cname,
            RecordType::SOA => Want::Soa,
            RecordType::PTR => Want::Ptr,
            RecordType::ANY => Want::Any,
            _ => Want::Other,
        };
        let asked = query.name().to_ascii();
        let lookup = self
            .cluster
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .lookup(&self.domain, &asked, want);
        let lookup = if query.query_class() != DNSClass::IN && lookup != Lookup::Elsewhere {
            Lookup::NoData
        } else {
            lookup
        };
        match lookup {
            Lookup::Elsewhere => {
                return match self.forward(packet, transport).await {
                    Some(answer) => Some(answer),
                    None => {
                        response.metadata.response_code = ResponseCode::ServFail;
                        response.to_vec().ok()
                    }
                };
            }
            Lookup::Found(answers, extra) => {
                response.metadata.authoritative = true;
                for rec in answers {
                    if let Some(record) = self.record(rec, query.name()) {
                        response.add_answer(record);
                    }
                }
                for rec in extra {
                    if let Some(record) = self.record(rec, query.name()) {
                        response.add_additional(record);
                    }
                }
            }
            Lookup::NoData | Lookup::NxDomain => {
                response.metadata.authoritative = true;
                if lookup == Lookup::NxDomain {
                    response.metadata.response_code = ResponseCode::NXDomain;
                }
                if let Some(soa) = self.record(Rec::Soa, query.name()) {
                    response.add_authority(soa);
                }
            }
        }
        let bytes = response.to_vec().ok()?;
        let limit = match (&request.edns, transport) {
            (_, Transport::Tcp) => usize::from(u16::MAX),
            (Some(edns), Transport::Udp) => {
                usize::from(edns.max_payload().clamp(UDP_PLAIN as u16, UDP_EDNS))
            }
            (None, Transport::Udp) => UDP_PLAIN,
        };
        if bytes.len() > limit {
            return response.truncate().to_vec().ok();
        }
        Some(bytes)
    }

    fn name(&self, name: &str) -> Option<Name> {
        Name::from_ascii(format!("{name}.")).ok()
    }

    /// A record; owner names equal to the question keep its spelling.
    fn record(&self, rec: Rec, asked: &Name) -> Option<Record> {
        let owner = |name: &str| -> Option<Name> {
            if asked
                .to_ascii()
                .trim_end_matches('.')
                .eq_ignore_ascii_case(name)
            {
                Some(asked.clone())
            } else {
                self.name(name)
            }
        };
        let (name, data) = match rec {
            Rec::Addr(name, std::net::IpAddr::V4(ip)) => (owner(&name)?, RData::A(A(ip))),
            Rec::Addr(name, std::net::IpAddr::V6(ip)) => (owner(&name)?, RData::AAAA(AAAA(ip))),
            Rec::Ptr(name, target) => (owner(&name)?, RData::PTR(PTR(self.name(&target)?))),
            Rec::Cname(name, target) => (owner(&name)?, RData::CNAME(CNAME(self.name(&target)?))),
            Rec::Srv {
                name,
                weight,
                port,
                target,
            } => (
                owner(&name)?,
                RData::SRV(SRV::new(0, weight, port, self.name(&target)?)),
            ),
            Rec::Soa => (
                self.name(&self.domain)?,
                RData::SOA(SOA::new(
                    self.name(&format!("ns.dns.{}", self.domain))?,
                    self.name(&format!("hostmaster.{}", self.domain))?,
                    soa_serial(),
                    7200,
                    1800,
                    86400,
                    self.ttl,
                )),
            ),
        };
        Some(Record::from_rdata(name, self.ttl, data))
    }

    /// Sends the question, as it came, to each upstream in turn until one
    /// answers (with a fresh ID, checked on the way back).
    async fn forward(&self, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let mut query = packet.to_vec();
        let client_id = [packet[0], packet[1]];
        let id: u16 = rand_id();
        query[..2].copy_from_slice(&id.to_be_bytes());
        for upstream in &self.upstreams {
            let answer = match transport {
                Transport::Udp => {
                    tokio::time::timeout(UPSTREAM_TIMEOUT, forward_udp(*upstream, &query)).await
                }
                Transport::Tcp => {
                    tokio::time::timeout(UPSTREAM_TIMEOUT, forward_tcp(*upstream, &query)).await
                }
            };
            match answer {
                Ok(Ok(mut answer)) if answer.len() >= 12 && answer[..2] == id.to_be_bytes() => {
                    answer[..2].copy_from_slice(&client_id);
                    return Some(answer);
                }
                Ok(Ok(_)) => tracing::debug!(%upstream, "upstream answered with the wrong ID"),
                Ok(Err(err)) => tracing::debug!(%upstream, error = %err, "forwarding failed"),
                Err(_) => tracing::debug!(%upstream, "upstream timed out"),
            }
        }
        None
    }
}

/// The SOA serial: the current time, as CoreDNS's is a modification time.
fn soa_serial() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
}

fn rand_id() -> u16 {
    // A fresh random ID per forwarded question (RFC 5452): hickory-proto's
    // own `Message::query()` draws one from its RNG.
    Message::query().metadata.id
}

async fn forward_udp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: datagrams from anyone but the upstream are dropped.
    socket.connect(upstream).await?;
    socket.send(query).await?;
    // Datagrams with another ID (a blind spoofing attempt that guessed
    // the port) are dropped; the wait goes on until the caller's deadline.
    let mut buffer = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buffer).await?;
        if n >= 12 && buffer[..2] == query[..2] {
            buffer.truncate(n);
            return Ok(buffer);
        }
        tracing::debug!(%upstream, "dropped an upstream datagram with the wrong ID");
    }
}

async fn forward_tcp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    write_framed(&mut stream, query).await?;
    read_framed(&mut stream).await
}

async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "message too long"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

async fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut message = vec![0u8; usize::from(len)];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

/// Answers UDP questions forever.
pub(crate) async fn serve_udp(socket: UdpSocket, handler: Arc<Handler>) {
    let socket = Arc::new(socket);
    let limit = Arc::new(Semaphore::new(UDP_IN_FLIGHT));
    let mut buffer = vec![0u8; 65535];
    loop {
        let (n, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(err) => {
                tracing::debug!(error = %err, "receiving a DNS datagram");
                continue;
            }
        };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let packet = buffer[..n].to_vec();
        let (socket, handler) = (socket.clone(), handler.clone());
        tokio::spawn(async move {
            if let Some(answer) = handler.handle(&packet, Transport::Udp).await
                && let Err(err) = socket.send_to(&answer, peer).await
            {
                tracing::debug!(%peer, error = %err, "sending a DNS answer");
            }
            drop(permit);
        });
    }
}

/// Answers TCP connections forever (several questions per connection).
pub(crate) async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>) {
    let limit = Arc::new(Semaphore::new(TCP_CONNECTIONS));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (mut stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::debug!(error = %err, "accepting a DNS connection");
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            while let Ok(Ok(question)) =
                tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)).await
            {
                let Some(answer) = handler.handle(&question, Transport::Tcp).await else {
                    break;
                };
                if let Err(err) = write_framed(&mut stream, &answer).await {
                    tracing::debug!(%peer, error = %err, "sending a DNS answer");
                    break;
                }
            }
            drop(permit);
        });
    }
}
