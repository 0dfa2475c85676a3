//! Two `bulwark server`s on one etcd run one controller manager between
//! them: when the leader dies the other takes over within the lease
//! duration, and the work is not done twice.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams};
use support::Server;

const LEASE: &str = "3s";

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("kube-controller-manager")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
        .filter(|h| !h.is_empty())
}

async fn wait_for_holder(leases: &Api<Lease>, not: Option<&str>, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(h) = holder(leases).await
            && Some(h.as_str()) != not
        {
            return h;
        }
        assert!(Instant::now() < deadline, "no new leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_standby_takes_over_when_the_leader_dies_and_nothing_is_done_twice() {
    let etcd = bulwark_testkit::EtcdServer::start().expect("etcd starts (install etcd-server)");
    let args = [
        "--etcd-endpoints",
        &etcd.endpoint(),
        "--leader-elect-lease-duration",
        LEASE,
        "--disable-scheduler",
    ];
    let mut first = Server::start_with(&args);
    let client = first.client().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let leader = wait_for_holder(&leases, None, Duration::from_secs(30)).await;
    // Servers sharing an etcd share the encryption key, as kube-apiservers
    // share one EncryptionConfiguration (the first server's node token is
    // a Secret the second must read).
    let shared_key = first.data().join("encryption-config.yaml");
    let shared_key = shared_key.to_str().expect("a UTF-8 path");
    let second =
        Server::start_with(&[&args[..], &["--encryption-provider-config", shared_key]].concat());
    let standby = second.client().await;

    // The leader's ReplicaSet controller makes the pods.
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
    }))
    .expect("a valid ReplicaSet");
    sets.create(&PostParams::default(), &rs)
        .await
        .expect("created");
    let pods: Api<Pod> = Api::namespaced(standby.clone(), "default");
    let count = || async {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .map(|l| l.items.len())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while count().await < 5 {
        assert!(
            Instant::now() < deadline,
            "the leader never created the pods"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    first.kill();
    let standby_leases: Api<Lease> = Api::namespaced(standby.clone(), "kube-system");
    // Failover: within the lease duration plus one retry period and slack
    // for a loaded CI machine.
    let new_leader = wait_for_holder(&standby_leases, Some(&leader), Duration::from_secs(15)).await;
    assert_ne!(new_leader, leader);

    // The new leader works: a scale-up is served, and the count is exact.
    let standby_sets: Api<ReplicaSet> = Api::namespaced(standby.clone(), "default");
    standby_sets
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 7}})),
        )
        .await
        .expect("scaled");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count().await < 7 {
        assert!(Instant::now() < deadline, "the new leader never scaled up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a doubled controller every chance to show itself, then count.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        assert!(count().await <= 7, "pods created twice");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count().await, 7);
}
