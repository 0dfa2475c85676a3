//! The conformance suite against a real etcd (Debian's `etcd-server`),
//! started by the harness on loopback for each test, and etcd's durability
//! through the backend.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod conformance;

use bulwark_store::{EtcdConfig, EtcdStore, Range, Store, StoreExt};
use bulwark_testkit::EtcdServer;
use conformance::Harness;

struct Etcd {
    server: EtcdServer,
    config: EtcdConfig,
    store: EtcdStore,
}

impl Harness for Etcd {
    type S = EtcdStore;

    fn open(watch_buffer: usize) -> Self {
        let server = EtcdServer::start().expect("etcd starts (install etcd-server)");
        let mut config = EtcdConfig::new([server.endpoint()]);
        config.prefix = "/bulwark-test".into();
        config.watch_buffer = watch_buffer;
        let store = EtcdStore::connect(config.clone()).unwrap();
        Etcd {
            server,
            config,
            store,
        }
    }

    fn store(&self) -> EtcdStore {
        self.store.clone()
    }

    fn restart(&mut self) {
        self.server.restart().expect("etcd restarts");
        self.store = EtcdStore::connect(self.config.clone()).unwrap();
    }

    fn live_watchers(&self) -> Option<usize> {
        None
    }
}

conformance_tests!(Etcd;
    create_update_delete,
    revisions_are_global,
    range_paging,
    read_past_revisions,
    cas_race,
    watch_replay_then_live,
    watch_during_writes,
    watch_after_restart,
    compaction,
    slow_watcher_is_cut_off,
    value_size_limit,
);

/// etcd is killed with SIGKILL while writers run; after it restarts, every
/// write the backend acknowledged is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_etcd_kill_9() {
    let mut h = Etcd::open(1024);
    let store = h.store();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        let tx = tx.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/crash/{w}/{i}");
                match store.put(&key, vec![b'v'; 200]).await {
                    Ok(outcome) => {
                        if tx.send((key, outcome.revision().unwrap())).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    drop(tx);
    let mut acked = Vec::new();
    while acked.len() < 500 {
        acked.push(rx.recv().await.expect("writers acknowledge writes"));
    }
    h.server.kill();
    for writer in writers {
        let _ = writer.await;
    }
    while let Ok(ack) = rx.try_recv() {
        acked.push(ack);
    }
    h.restart();
    let store = h.store();
    for (key, rev) in &acked {
        let kv = store.get(key).await.unwrap();
        assert_eq!(
            kv.map(|kv| kv.mod_revision),
            Some(*rev),
            "acknowledged {key} lost"
        );
    }
    assert!(store.range(Range::prefix("/crash/")).await.unwrap().count >= acked.len() as i64);
}

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client: (String, String),
}

/// A CA, an etcd serving certificate for 127.0.0.1, and a client
/// certificate, all from rcgen.
fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["bulwark".into()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("server.crt"), server.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
    Pki {
        ca_pem: ca.pem(),
        client: (client.pem(), client_key.serialize_pem()),
        dir,
    }
}

/// The backend reaches an etcd that requires TLS client certificates, and
/// a client without one (or with one from another CA) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let pki = pki();
    let server = EtcdServer::start_tls(bulwark_testkit::EtcdServerTls {
        ca: pki.dir.path().join("ca.crt"),
        cert: pki.dir.path().join("server.crt"),
        key: pki.dir.path().join("server.key"),
    })
    .expect("etcd with TLS starts");
    let connect = |client: Option<(String, String)>| {
        let mut config = EtcdConfig::new([server.endpoint()]);
        config.connect_timeout = std::time::Duration::from_secs(2);
        config.tls = Some(bulwark_store::EtcdTls {
            ca_pem: pki.ca_pem.clone().into_bytes(),
            client_cert_pem: client.map(|(c, k)| (c.into_bytes(), k.into_bytes())),
        });
        EtcdStore::connect(config).unwrap()
    };
    let store = connect(Some(pki.client.clone()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let revision = loop {
        match store.put("/tls/ok", "yes").await {
            Ok(outcome) => break outcome.revision().unwrap(),
            Err(err) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "etcd over TLS never answered: {err}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(
        store.get("/tls/ok").await.unwrap().unwrap().mod_revision,
        revision
    );

    let anonymous = connect(None);
    assert!(
        anonymous.get("/tls/ok").await.is_err(),
        "no client certificate, no access"
    );
    let stranger = pki_from_another_ca();
    let foreign = connect(Some(stranger));
    assert!(
        foreign.get("/tls/ok").await.is_err(),
        "a certificate from another CA is refused"
    );
}

fn pki_from_another_ca() -> (String, String) {
    let other = pki();
    other.client
}
