//! A LoadBalancer Service on Bulwark, which provisions no load balancer:
//! it stays pending, and a Warning Event says so and names its NodePorts.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod common;

use bulwark_testkit::wait_for;
use common::{Harness, PATIENCE};
use k8s_openapi::api::core::v1::{Event, Service};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn a_load_balancer_service_stays_pending_with_an_event_naming_its_node_ports() {
    let harness = Harness::start(&["service-controller"]).await;
    let client = harness.admin();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let lb: Service = serde_json::from_value(json!({
        "metadata": {"name": "front"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "front"},
                 "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    let created = services.create(&PostParams::default(), &lb).await.unwrap();
    let node_port = created.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
    let plain: Service = serde_json::from_value(json!({
        "metadata": {"name": "inside"},
        "spec": {"selector": {"app": "inside"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &plain)
        .await
        .unwrap();

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event = wait_for("the NoLoadBalancer event", PATIENCE, || async {
        let list = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("NoLoadBalancer"))
            .ok_or_else(|| "no event yet".to_owned())
    })
    .await
    .unwrap();
    assert_eq!(event.involved_object.name.as_deref(), Some("front"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let message = event.message.unwrap_or_default();
    assert!(
        message.contains(&format!("NodePort {node_port}/TCP")),
        "{message}"
    );
    let front = services.get("front").await.unwrap();
    let ingress = front
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default();
    assert!(ingress.is_empty(), "no address is invented: {ingress:?}");
    // One event for one Service: the ClusterIP Service gets none.
    let all = events.list(&ListParams::default()).await.unwrap().items;
    let told: Vec<_> = all
        .iter()
        .filter(|e| e.reason.as_deref() == Some("NoLoadBalancer"))
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
}
