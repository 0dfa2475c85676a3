//! The root CA publisher, against a real API server: every namespace gets
//! `kube-root-ca.crt` with the cluster CA, and gets it back when deleted.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod common;

use common::{Harness, PATIENCE};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{DeleteParams, PostParams};

#[tokio::test]
async fn every_namespace_gets_the_root_ca_back_if_deleted() {
    let harness = Harness::start(&["root-ca-cert-publisher"]).await;
    let client = harness.admin();
    let ca = harness.cluster.ca_cert_pem();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "team-b"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "team-b");
    let published = || async {
        let cm = maps
            .get_opt("kube-root-ca.crt")
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "absent".to_owned())?;
        match cm.data.as_ref().and_then(|d| d.get("ca.crt")) {
            Some(data) if *data == ca => Ok(cm),
            other => Err(format!("ca.crt is {other:?}")),
        }
    };
    let first = bulwark_testkit::wait_for("kube-root-ca.crt in team-b", PATIENCE, published)
        .await
        .unwrap();
    assert!(
        first
            .metadata
            .annotations
            .unwrap()
            .contains_key("kubernetes.io/description")
    );
    maps.delete("kube-root-ca.crt", &DeleteParams::default())
        .await
        .unwrap();
    let again = bulwark_testkit::wait_for("kube-root-ca.crt recreated", PATIENCE, published)
        .await
        .unwrap();
    assert_ne!(again.metadata.uid, first.metadata.uid);
    // The namespaces every cluster starts with are covered too.
    let system: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    bulwark_testkit::wait_for("kube-root-ca.crt in kube-system", PATIENCE, || async {
        system
            .get_opt("kube-root-ca.crt")
            .await
            .map_err(|e| e.to_string())?
            .map(|_| ())
            .ok_or_else(|| "absent".to_owned())
    })
    .await
    .unwrap();
}
