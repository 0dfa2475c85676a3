use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use bulwark_store::{SqliteConfig, SqliteStore, Store, StoreExt as _, Write};
use serde_json::{Value, json};

use super::*;

fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir.path().join("state.db"), SqliteConfig::default()).unwrap())
}

fn small_ranges() -> ServiceRanges {
    ServiceRanges {
        cluster_ip_range: "10.43.0.0/24".parse().unwrap(),
        node_ports: (30000, 30009),
    }
}

fn messages(causes: Vec<Cause>) -> Vec<String> {
    causes
        .into_iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

#[test]
fn updates_keep_allocated_values_a_client_left_out() {
    let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"],
        "ports": [{"name": "http", "port": 80, "nodePort": 30001}]}});
    let mut new = json!({"spec": {"type": "NodePort", "ports": [{"name": "http", "port": 8080}]}});
    prepare_update(&old, &mut new);
    assert_eq!(new["spec"]["clusterIP"], "10.43.0.7");
    assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.7"]));
    assert_eq!(new["spec"]["ports"][0]["nodePort"], 30001);
    assert!(validate(Some(&old), &new).is_empty());
}

#[test]
fn switching_to_cluster_ip_drops_unchanged_node_ports() {
    let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"],
        "ports": [{"port": 80, "nodePort": 30001}]}});
    let mut new = old.clone();
    new["spec"]["type"] = json!("ClusterIP");
    prepare_update(&old, &mut new);
    assert_eq!(new["spec"]["ports"][0].get("nodePort"), None);
    assert_eq!(held(&new).ports, Vec::<u16>::new());
    // Asked for explicitly on a ClusterIP Service: refused.
    let mut asked =
        json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30002}]}});
    prepare_update(&old, &mut asked);
    assert_eq!(
        messages(validate(Some(&old), &asked)),
        vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    );
}

#[test]
fn the_cluster_ip_is_immutable() {
    let old = json!({"spec": {"clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"], "ports": [{"port": 80}]}});
    // What `kubectl apply` sends after editing clusterIP: the stored
    // clusterIPs stay and follow.
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.43.0.8");
    prepare_update(&old, &mut new);
    assert_eq!(
        messages(validate(Some(&old), &new)),
        vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.8\"}: may not change once set"]
    );
    // Headless stays headless; ExternalName drops the address.
    let headless = json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
    assert!(validate(Some(&headless), &headless).is_empty());
    let mut external = old.clone();
    external["spec"]["type"] = json!("ExternalName");
    external["spec"]["externalName"] = json!("example.com");
    prepare_update(&old, &mut external);
    assert!(validate(Some(&old), &external).is_empty());
    assert_eq!(held(&external), Held::default());
}

#[test]
fn single_stack_ipv4_only() {
    let new = json!({"spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6"], "ports": [{"port": 1}]}});
    assert_eq!(
        messages(validate(None, &new)),
        vec![
            "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services",
            "spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster",
        ]
    );
}

#[tokio::test]
async fn two_servers_on_one_store_never_hand_out_the_same_ip() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let a = Arc::new(Allocators::new(store.clone(), small_ranges()));
    let b = Arc::new(Allocators::new(store.clone(), small_ranges()));
    let mut tasks = Vec::new();
    for i in 0..254 {
        let allocators = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            allocators.take_ip(None, false).await.unwrap().unwrap()
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        let ip = task.await.unwrap();
        assert!(seen.insert(ip), "{ip} handed out twice");
    }
    assert_eq!(seen.len(), 254);
    assert_eq!(a.take_ip(None, false).await.unwrap(), Err(AllocError::Full));
    a.release(&Held {
        ips: vec![Ipv4Addr::new(10, 43, 0, 9)],
        ports: vec![],
    })
    .await
    .unwrap();
    assert_eq!(
        b.take_ip(None, false).await.unwrap(),
        Ok(Ipv4Addr::new(10, 43, 0, 9))
    );
}

#[tokio::test]
async fn requested_values_are_checked_against_range_and_holders() {
    let dir = tempfile::tempdir().unwrap();
    let allocators = Allocators::new(store(&dir), small_ranges());
    let ip = Ipv4Addr::new(10, 43, 0, 5);
    assert_eq!(allocators.take_ip(Some(ip), false).await.unwrap(), Ok(ip));
    assert_eq!(
        allocators.take_ip(Some(ip), false).await.unwrap(),
        Err(AllocError::Taken)
    );
    assert_eq!(
        allocators
            .take_ip(Some(Ipv4Addr::new(10, 44, 0, 5)), false)
            .await
            .unwrap(),
        Err(AllocError::NotInRange)
    );
    assert_eq!(
        allocators.take_port(Some(30003), false).await.unwrap(),
        Ok(30003)
    );
    assert_eq!(
        allocators.take_port(Some(30003), false).await.unwrap(),
        Err(AllocError::Taken)
    );
    assert_eq!(
        allocators.take_port(Some(8080), false).await.unwrap(),
        Err(AllocError::NotInRange)
    );
    // A dry run takes nothing.
    assert_eq!(
        allocators.take_port(Some(30004), true).await.unwrap(),
        Ok(30004)
    );
    assert_eq!(
        allocators.take_port(Some(30004), false).await.unwrap(),
        Ok(30004)
    );
}

#[tokio::test]
async fn repair_marks_held_values_and_frees_leaks_after_three_passes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let allocators = Allocators::new(store.clone(), small_ranges());
    // A Service whose IP and port are missing from the bitmaps (written
    // around the allocator), and a leaked IP no Service holds.
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "NodePort", "clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"],
                 "ports": [{"port": 80, "nodePort": 30005}]}});
    store
        .write(Write::put(
            "/registry/services/default/web",
            serde_json::to_vec(&service).unwrap(),
        ))
        .await
        .unwrap();
    let leaked = Ipv4Addr::new(10, 43, 0, 30);
    allocators
        .take_ip(Some(leaked), false)
        .await
        .unwrap()
        .unwrap();
    for pass in 1..=3 {
        allocators.repair().await.unwrap();
        assert_eq!(
            allocators
                .take_ip(Some(Ipv4Addr::new(10, 43, 0, 20)), true)
                .await
                .unwrap(),
            Err(AllocError::Taken)
        );
        assert_eq!(
            allocators.take_port(Some(30005), true).await.unwrap(),
            Err(AllocError::Taken)
        );
        let leak = allocators.take_ip(Some(leaked), true).await.unwrap();
        if pass < 3 {
            assert_eq!(leak, Err(AllocError::Taken), "freed on pass {pass}");
        } else {
            assert_eq!(leak, Ok(leaked));
        }
    }
    // Stored as upstream stores it.
    let kv = store.get(IPS_KEY).await.unwrap().unwrap();
    let stored: Value = serde_json::from_slice(&kv.value).unwrap();
    assert_eq!(stored["kind"], "RangeAllocation");
    assert_eq!(stored["range"], "10.43.0.0/24");
}
