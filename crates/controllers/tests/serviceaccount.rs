//! The ServiceAccount controller, against a real API server.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod common;

use common::{Harness, PATIENCE};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, PostParams};

#[tokio::test]
async fn every_namespace_gets_a_default_service_account_back_if_deleted() {
    let harness = Harness::start(&["service-account-controller"]).await;
    let client = harness.admin();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "team-a"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "team-a");
    let first = bulwark_testkit::wait_for("default SA in team-a", PATIENCE, || async {
        accounts
            .get_opt("default")
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "absent".to_owned())
    })
    .await
    .unwrap();
    accounts
        .delete("default", &DeleteParams::default())
        .await
        .unwrap();
    bulwark_testkit::wait_for("default SA recreated", PATIENCE, || async {
        match accounts
            .get_opt("default")
            .await
            .map_err(|e| e.to_string())?
        {
            Some(sa) if sa.metadata.uid != first.metadata.uid => Ok(()),
            _ => Err("not recreated".to_owned()),
        }
    })
    .await
    .unwrap();
    // The pre-existing namespaces were covered at start too.
    let system: Api<ServiceAccount> = Api::namespaced(client, "kube-system");
    bulwark_testkit::wait_for("default SA in kube-system", PATIENCE, || async {
        system
            .get_opt("default")
            .await
            .map_err(|e| e.to_string())?
            .map(|_| ())
            .ok_or_else(|| "absent".to_owned())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_controller_identity_holds_only_its_role() {
    let harness = Harness::start(&[]).await;
    let sa = bulwark_client::Identity::service_account("kube-system", "service-account-controller");
    let client = harness.cluster.access().client(&sa).unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "kube-system");
    let err = secrets.list(&Default::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );
}
