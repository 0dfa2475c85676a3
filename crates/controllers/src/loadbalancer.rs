//! LoadBalancer Services (upstream's `service-controller`, which asks a
//! cloud for a load balancer). Bulwark has none to ask: such a Service
//! keeps its ClusterIP and NodePorts, its `status.loadBalancer` stays empty
//! (`kubectl get` shows `<pending>`), and this controller says so once per
//! Service with a Warning Event naming the NodePorts to use instead.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt as _;

use crate::Context;
use crate::informer::Change;
use bulwark_client::events::{EventType, reference};

/// The Event's reason.
pub(crate) const REASON: &str = "NoLoadBalancer";

pub(crate) async fn run(cx: Context) {
    let services = cx.informers.get::<Service>();
    let mut changes = services.subscribe();
    services.ready().await;
    // Services told about, by UID (a restart tells again; Events fold).
    let mut told: HashSet<String> = HashSet::new();
    for service in services.store().state() {
        announce(&cx, &service, &mut told).await;
    }
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied(service) => announce(&cx, &service, &mut told).await,
            Change::Deleted(service) => {
                told.remove(&service.uid().unwrap_or_default());
            }
            Change::Resynced => {
                for service in services.store().state() {
                    announce(&cx, &service, &mut told).await;
                }
            }
        }
    }
}

async fn announce(cx: &Context, service: &Service, told: &mut HashSet<String>) {
    let Some(message) = pending_message(service) else {
        return;
    };
    if told.insert(service.uid().unwrap_or_default()) {
        cx.recorder
            .publish(&reference(service), EventType::Warning, REASON, &message)
            .await;
    }
}

/// What to tell about a LoadBalancer Service that has no load balancer
/// (`None` for any other Service).
fn pending_message(service: &Service) -> Option<String> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return None;
    }
    let has_ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|i| !i.is_empty());
    if has_ingress {
        return None;
    }
    let ports: Vec<String> = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let node_port = p.node_port?;
            let protocol = p.protocol.as_deref().unwrap_or("TCP");
            Some(format!("{node_port}/{protocol}"))
        })
        .collect();
    let reach = if ports.is_empty() {
        "it has no NodePorts (allocateLoadBalancerNodePorts is false)".to_owned()
    } else {
        format!(
            "reach it on any node's address at NodePort {}",
            ports.join(", ")
        )
    };
    Some(format!(
        "Bulwark has no load balancer to provision: the Service's external address stays pending; {reach}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value, status: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec, "status": status}))
            .unwrap_or_default()
    }

    #[test]
    fn only_load_balancers_without_an_address_are_pending() {
        let lb = json!({"type": "LoadBalancer", "ports": [
            {"port": 80, "nodePort": 31080},
            {"port": 53, "protocol": "UDP", "nodePort": 31053},
        ]});
        assert_eq!(
            pending_message(&service(lb.clone(), json!({}))).as_deref(),
            Some(
                "Bulwark has no load balancer to provision: the Service's external address stays pending; reach it on any node's address at NodePort 31080/TCP, 31053/UDP"
            )
        );
        let served = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}});
        assert_eq!(pending_message(&service(lb, served)), None);
        let cluster_ip = json!({"type": "ClusterIP", "ports": [{"port": 80}]});
        assert_eq!(pending_message(&service(cluster_ip, json!({}))), None);
        let no_node_ports = json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                                   "ports": [{"port": 80}]});
        assert!(
            pending_message(&service(no_node_ports, json!({}))).is_some_and(
                |m| m.ends_with("it has no NodePorts (allocateLoadBalancerNodePorts is false)")
            )
        );
    }
}
