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
