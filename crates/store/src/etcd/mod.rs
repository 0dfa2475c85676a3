//! The etcd v3 backend: a real etcd cluster, for control planes that span
//! machines.
//!
//! Speaks etcd's gRPC API through `tonic` with the messages in [`proto`].
//! Every write is one etcd `Txn` whose compare carries the [`Condition`], so
//! a failed condition returns the key's current value in the same round trip
//! — the same shape kube-apiserver uses. All keys live under a prefix, so
//! several clusters (or other users) can share one etcd.

mod proto;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::watch::{CutOff, SLOW_WATCHER_GRACE, WatchStream};
use crate::{
    Condition, Event, EventKind, KeyValue, Range, RangeResult, Revision, Store, StoreError, Write,
    WriteOutcome,
};

/// How to reach an etcd cluster.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `https://10.0.0.1:2379`; requests are balanced
    /// across them.
    pub endpoints: Vec<String>,
    /// Prepended to every key, so the cluster's data stays apart from
    /// anything else in the same etcd. Default `/bulwark`.
    pub prefix: String,
    /// Client TLS (required when the endpoints are `https://`).
    pub tls: Option<EtcdTls>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Each watcher's buffer: a watcher this many events behind is cut off.
    pub watch_buffer: usize,
}

impl EtcdConfig {
    /// Plain settings for `endpoints`.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: "/bulwark".into(),
            tls: None,
            connect_timeout: Duration::from_secs(5),
            watch_buffer: 10_000,
        }
    }
}

/// Client TLS material, PEM-encoded.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// The CA that signed etcd's serving certificate.
    pub ca_pem: Vec<u8>,
    /// This client's certificate and key, for etcd's `--client-cert-auth`.
    pub client_cert_pem: Option<(Vec<u8>, Vec<u8>)>,
}

/// The etcd backend. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    channel: Channel,
    prefix: Vec<u8>,
    watch_buffer: usize,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .finish_non_exhaustive()
    }
}

const RANGE: &str = "/etcdserverpb.KV/Range";
const TXN: &str = "/etcdserverpb.KV/Txn";
const COMPACT: &str = "/etcdserverpb.KV/Compact";
const WATCH: &str = "/etcdserverpb.Watch/Watch";

impl EtcdStore {
    /// Connects to the cluster (lazily: the first request dials).
    pub fn connect(config: EtcdConfig) -> Result<Self, StoreError> {
        if config.endpoints.is_empty() {
            return Err(StoreError::Etcd("no etcd endpoints given".into()));
        }
        let mut endpoints = Vec::new();
        for url in &config.endpoints {
            let mut endpoint = Endpoint::from_shared(url.clone())
                .map_err(|err| StoreError::Etcd(format!("bad etcd endpoint {url:?}: {err}")))?
                .connect_timeout(config.connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_while_idle(true);
            if let Some(tls) = &config.tls {
                let mut tls_config =
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
                if let Some((cert, key)) = &tls.client_cert_pem {
                    tls_config = tls_config.identity(Identity::from_pem(cert, key));
                }
                endpoint = endpoint
                    .tls_config(tls_config)
                    .map_err(|err| StoreError::Etcd(format!("etcd TLS settings: {err}")))?;
            }
            endpoints.push(endpoint);
        }
        let channel = Channel::balance_list(endpoints.into_iter());
        Ok(EtcdStore {
            channel,
            prefix: config.prefix.into_bytes(),
            watch_buffer: config.watch_buffer,
        })
    }

    async fn unary<Req, Resp>(&self, path: &'static str, request: Req) -> Result<Resp, StoreError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|err| StoreError::Etcd(format!("etcd unreachable: {err}")))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        grpc.unary(
            tonic::Request::new(request),
            PathAndQuery::from_static(path),
            codec,
        )
        .await
        .map(tonic::Response::into_inner)
        .map_err(status_error)
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = self.prefix.clone();
        full.extend_from_slice(key);
        full
    }

    /// The etcd range for `range`, inside the prefix.
    fn etcd_range(&self, range: &Range) -> (Vec<u8>, Vec<u8>) {
        let start = self.full_key(&range.start);
        let end = match &range.end {
            None => Vec::new(),
            Some(end) if end.is_empty() => {
                let whole = Range::prefix(&String::from_utf8_lossy(&self.prefix));
                whole.etcd_end()
            }
            Some(end) => self.full_key(end),
        };
        (start, end)
    }

    fn key_value(&self, kv: proto::KeyValue) -> Result<KeyValue, StoreError> {
        let key = kv
            .key
            .strip_prefix(self.prefix.as_slice())
            .ok_or_else(|| StoreError::Etcd("etcd returned a key outside the prefix".into()))?;
        Ok(KeyValue {
            key: String::from_utf8(key.to_vec())
                .map_err(|_| StoreError::Etcd("etcd returned a key that is not UTF-8".into()))?,
            value: kv.value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
        })
    }

    /// The compaction point: the oldest revision still readable. etcd does
    /// not report it directly, so this searches for it (about log2(newest)
    /// one-key reads); it is needed only on the rare compacted path.
    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        let probe = self.full_key(b"\0compaction-probe");
        let readable = |revision: Revision| {
            let request = proto::RangeRequest {
                key: probe.clone(),
                revision,
                ..Default::default()
            };
            async move {
                match self.unary::<_, proto::RangeResponse>(RANGE, request).await {
                    Ok(response) => Ok(Some(response.header.map_or(0, |h| h.revision))),
                    Err(StoreError::Compacted { .. }) => Ok(None),
                    Err(err) => Err(err),
                }
            }
        };
        let Some(newest) = readable(0).await? else {
            return Err(StoreError::Etcd(
                "etcd refused a read at its newest revision".into(),
            ));
        };
        if readable(1).await?.is_some() {
            return Ok(0);
        }
        // Invariant: `low` is compacted, `high` is readable.
        let (mut low, mut high) = (1, newest);
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if readable(mid).await?.is_some() {
                high = mid;
            } else {
                low = mid;
            }
        }
        Ok(high)
    }

    async fn open_watch(
        &self,
        create: proto::WatchCreateRequest,
    ) -> Result<tonic::Streaming<proto::WatchResponse>, StoreError> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|err| StoreError::Etcd(format!("etcd unreachable: {err}")))?;
        let request = proto::WatchRequest {
            request_union: Some(proto::WatchRequestUnion::CreateRequest(create)),
        };
        // The request stream stays open (pending) for the life of the watch:
        // etcd cancels a watch whose request stream ends.
        let requests = futures::stream::iter([request]).chain(futures::stream::pending());
        let codec = tonic_prost::ProstCodec::<proto::WatchRequest, proto::WatchResponse>::default();
        grpc.streaming(
            tonic::Request::new(requests),
            PathAndQuery::from_static(WATCH),
            codec,
        )
        .await
        .map(tonic::Response::into_inner)
        .map_err(status_error)
    }

    async fn compacted_error(&self, requested: Revision) -> StoreError {
        match self.compacted_revision().await {
            Ok(compacted) => StoreError::Compacted {
                requested,
                compacted,
            },
            Err(err) => err,
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn range(&self, range: Range) -> Result<RangeResult, StoreError> {
        let (key, range_end) = self.etcd_range(&range);
        let request = proto::RangeRequest {
            key,
            range_end,
            limit: range
                .limit
                .map_or(0, |limit| i64::try_from(limit).unwrap_or(0)),
            revision: range.revision.unwrap_or(0),
        };
        let response: proto::RangeResponse = match self.unary(RANGE, request).await {
            Err(StoreError::Compacted { requested: 0, .. }) => {
                let requested = range.revision.unwrap_or(0);
                return Err(self.compacted_error(requested).await);
            }
            Err(StoreError::FutureRevision { requested: 0, .. }) => {
                let current = self.revisions().await?.0;
                return Err(StoreError::FutureRevision {
                    requested: range.revision.unwrap_or(0),
                    current,
                });
            }
            other => other?,
        };
        let revision = response.header.map_or(0, |header| header.revision);
        let kvs = response
            .kvs
            .into_iter()
            .map(|kv| self.key_value(kv))
            .collect::<Result<_, _>>()?;
        Ok(RangeResult {
            kvs,
            more: response.more,
            count: response.count,
            revision: range.revision.filter(|rev| *rev > 0).unwrap_or(revision),
        })
    }

    async fn write(&self, write: Write) -> Result<WriteOutcome, StoreError> {
        write.check_size()?;
        let key = self.full_key(write.key.as_bytes());
        let compare = match (write.condition, write.value.is_some()) {
            (Condition::None, true) => None,
            // Deleting nothing is not a write (see `Write::condition_holds`).
            (Condition::None, false) => Some((proto::COMPARE_GREATER, 0)),
            (Condition::Absent, _) => Some((proto::COMPARE_EQUAL, 0)),
            (Condition::ModRevision(rev), _) => Some((proto::COMPARE_EQUAL, rev)),
        };
        let success = match write.value {
            Some(value) => proto::Request::Put(proto::PutRequest {
                key: key.clone(),
                value,
                prev_kv: true,
            }),
            None => proto::Request::DeleteRange(proto::DeleteRangeRequest {
                key: key.clone(),
                prev_kv: true,
            }),
        };
        let request = proto::TxnRequest {
            compare: compare
                .into_iter()
                .map(|(result, mod_revision)| proto::Compare {
                    result,
                    target: proto::TARGET_MOD,
                    key: key.clone(),
                    mod_revision,
                })
                .collect(),
            success: vec![proto::RequestOp {
                request: Some(success),
            }],
            failure: vec![proto::RequestOp {
                request: Some(proto::Request::Range(proto::RangeRequest {
                    key,
                    ..Default::default()
                })),
            }],
        };
        let response: proto::TxnResponse = self.unary(TXN, request).await?;
        let revision = response.header.map_or(0, |header| header.revision);
        let first = response
            .responses
            .into_iter()
            .next()
            .and_then(|op| op.response);
        if response.succeeded {
            let prev = match first {
                Some(proto::Response::Put(put)) => put.prev_kv,
                Some(proto::Response::DeleteRange(delete)) => delete.prev_kvs.into_iter().next(),
                _ => None,
            };
            Ok(WriteOutcome::Committed {
                revision,
                prev: prev.map(|kv| self.key_value(kv)).transpose()?,
            })
        } else {
            let current = match first {
                Some(proto::Response::Range(range)) => range.kvs.into_iter().next(),
                _ => None,
            };
            Ok(WriteOutcome::Failed {
                current: current.map(|kv| self.key_value(kv)).transpose()?,
            })
        }
    }

    async fn watch(
        &self,
        range: Range,
        start_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        if start_revision > 0 {
            // etcd reports a compacted start only after the watch exists;
            // answer it up front, as the embedded store does.
            let probe = proto::RangeRequest {
                key: self.full_key(b"\0watch-probe"),
                revision: start_revision,
                ..Default::default()
            };
            match self.unary::<_, proto::RangeResponse>(RANGE, probe).await {
                Err(StoreError::Compacted { .. }) => {
                    return Err(self.compacted_error(start_revision).await);
                }
                Ok(_) | Err(StoreError::FutureRevision { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        let (key, range_end) = self.etcd_range(&range);
        let mut responses = self
            .open_watch(proto::WatchCreateRequest {
                key,
                range_end,
                start_revision: start_revision.max(0),
                prev_kv: true,
            })
            .await?;
        // The first answer says whether the watch exists.
        match responses.next().await {
            Some(Ok(response)) if response.compact_revision > 0 => {
                return Err(StoreError::Compacted {
                    requested: start_revision,
                    compacted: response.compact_revision,
                });
            }
            Some(Ok(response)) if response.canceled => {
                return Err(StoreError::Etcd(format!(
                    "etcd refused the watch: {}",
                    response.cancel_reason
                )));
            }
            Some(Ok(_)) => {}
            Some(Err(status)) => return Err(status_error(status)),
            None => return Err(StoreError::Etcd("etcd closed the watch stream".into())),
        }
        let buffer = self.watch_buffer;
        let (tx, rx) = mpsc::channel(buffer);
        let cut = CutOff::default();
        let store = self.clone();
        let task = tokio::spawn(forward(store, responses, start_revision, tx, cut.clone()));
        Ok(WatchStream::new(
            rx,
            cut,
            buffer,
            Box::new(move || task.abort()),
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let request = proto::CompactionRequest {
            revision,
            physical: false,
        };
        match self
            .unary::<_, proto::CompactionResponse>(COMPACT, request)
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::Compacted { .. }) => Err(self.compacted_error(revision).await),
            Err(StoreError::FutureRevision { .. }) => Err(StoreError::FutureRevision {
                requested: revision,
                current: self.revisions().await?.0,
            }),
            Err(err) => Err(err),
        }
    }

    async fn revisions(&self) -> Result<(Revision, Revision), StoreError> {
        let (key, _) = self.etcd_range(&Range::key("\0revision-probe"));
        let response: proto::RangeResponse = self
            .unary(
                RANGE,
                proto::RangeRequest {
                    key,
                    ..Default::default()
                },
            )
            .await?;
        let newest = response.header.map_or(0, |header| header.revision);
        Ok((newest, self.compacted_revision().await?))
    }
}

/// Moves events from etcd's watch stream into the caller's buffer; cuts the
/// watcher off when its buffer stays full for the grace period.
async fn forward(
    store: EtcdStore,
    mut responses: tonic::Streaming<proto::WatchResponse>,
    start_revision: Revision,
    tx: mpsc::Sender<Result<Event, StoreError>>,
    cut: CutOff,
) {
    while let Some(response) = responses.next().await {
        let response = match response {
            Ok(response) => response,
            Err(status) => {
                let _ = tx.try_send(Err(status_error(status)));
                return;
            }
        };
        if response.compact_revision > 0 {
            let _ = tx.try_send(Err(StoreError::Compacted {
                requested: start_revision,
                compacted: response.compact_revision,
            }));
            return;
        }
        if response.canceled {
            let _ = tx.try_send(Err(StoreError::Etcd(format!(
                "etcd cancelled the watch: {}",
                response.cancel_reason
            ))));
            return;
        }
        for event in response.events {
            let event = match convert_event(&store, event) {
                Ok(event) => event,
                Err(err) => {
                    let _ = tx.try_send(Err(err));
                    return;
                }
            };
            let revision = event.revision();
            // Waiting here stalls only this watch: etcd buffers for it, and
            // gRPC flow control bounds what is in flight.
            match tx.send_timeout(Ok(event), SLOW_WATCHER_GRACE).await {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(_)) => {
                    cut.cut(revision);
                    return;
                }
                Err(SendTimeoutError::Closed(_)) => return,
            }
        }
    }
    let _ = tx.try_send(Err(StoreError::Etcd("etcd closed the watch stream".into())));
}

fn convert_event(store: &EtcdStore, event: proto::Event) -> Result<Event, StoreError> {
    let kv = event
        .kv
        .ok_or_else(|| StoreError::Etcd("watch event without a key".into()))?;
    let kind = if event.r#type == proto::EVENT_DELETE {
        EventKind::Delete
    } else {
        EventKind::Put
    };
    let mut kv = store.key_value(kv)?;
    if kind == EventKind::Delete {
        kv.value = Bytes::new();
    }
    Ok(Event {
        kind,
        kv,
        prev: event.prev_kv.map(|kv| store.key_value(kv)).transpose()?,
    })
}

/// Maps a gRPC status from etcd onto the store's errors. The revision fields
/// are filled in by callers that know them.
fn status_error(status: tonic::Status) -> StoreError {
    let message = status.message();
    if message.contains("required revision has been compacted") {
        StoreError::Compacted {
            requested: 0,
            compacted: 0,
        }
    } else if message.contains("required revision is a future revision") {
        StoreError::FutureRevision {
            requested: 0,
            current: 0,
        }
    } else {
        StoreError::Etcd(format!("{} ({:?})", message, status.code()))
    }
}
