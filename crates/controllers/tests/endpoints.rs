//! Endpoints and EndpointSlices follow the pods a Service selects.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod common;

use bulwark_testkit::{FakeNodeConfig, FakeNodes, wait_for};
use common::{Harness, PATIENCE};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn endpoints_and_slices_list_the_ready_pods_of_a_service() {
    let harness = Harness::start(&[
        "endpoint-controller",
        "endpointslice-controller",
        "generic-garbage-collector",
    ])
    .await;
    let client = harness.admin();
    let fake = FakeNodes::start(
        client.clone(),
        FakeNodeConfig {
            count: 2,
            ..FakeNodeConfig::default()
        },
    )
    .await
    .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (i, node) in fake.names().iter().enumerate() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("web-{i}"), "labels": {"app": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let ready_ips = || async {
        let ep = endpoints
            .get_opt("web")
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no Endpoints")?;
        let subset = ep
            .subsets
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or("no subsets")?;
        let port = subset.ports.unwrap_or_default().first().map(|p| p.port);
        let ips: Vec<String> = subset
            .addresses
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.ip)
            .collect();
        Ok::<_, String>((ips, port))
    };
    wait_for("both pods in the Endpoints", PATIENCE, || async {
        match ready_ips().await? {
            (ips, Some(8080)) if ips.len() == 2 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    wait_for("both pods in the EndpointSlice", PATIENCE, || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .map_err(|e| e.to_string())?;
        let ready = list
            .items
            .iter()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        if ready == 2 {
            Ok(())
        } else {
            Err(format!("{ready} ready"))
        }
    })
    .await
    .unwrap();
    pods.delete(
        "web-0",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    wait_for("the deleted pod leaves the Endpoints", PATIENCE, || async {
        match ready_ips().await? {
            (ips, _) if ips.len() == 1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "Endpoints and slices go with the Service",
        PATIENCE,
        || async {
            let ep = endpoints.get_opt("web").await.map_err(|e| e.to_string())?;
            let n = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .map_err(|e| e.to_string())?
                .items
                .len();
            if ep.is_none() && n == 0 {
                Ok(())
            } else {
                Err(format!("endpoints {}, slices {n}", ep.is_some()))
            }
        },
    )
    .await
    .unwrap();
}
