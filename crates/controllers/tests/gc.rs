//! The garbage collector in all three propagation modes, and namespace
//! deletion, against a real API server.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

mod common;

use common::{Harness, PATIENCE};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn config_map(
    api: &Api<ConfigMap>,
    name: &str,
    owner: Option<&ConfigMap>,
    finalizers: &[&str],
) -> ConfigMap {
    let mut meta = json!({"name": name, "finalizers": finalizers});
    if let Some(owner) = owner {
        meta["ownerReferences"] = json!([{
            "apiVersion": "v1", "kind": "ConfigMap",
            "name": owner.metadata.name, "uid": owner.metadata.uid,
            "controller": true, "blockOwnerDeletion": true,
        }]);
    }
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": meta})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap()
}

async fn gone(api: &Api<ConfigMap>, name: &str) {
    bulwark_testkit::wait_for(&format!("{name} deleted"), PATIENCE, || async {
        match api.get_opt(name).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".to_owned()),
        }
    })
    .await
    .unwrap();
}

async fn release(api: &Api<ConfigMap>, name: &str) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn background_deletion_takes_dependents_along() {
    let harness = Harness::start(&["generic-garbage-collector"]).await;
    let api: Api<ConfigMap> = Api::namespaced(harness.admin(), "default");
    let owner = config_map(&api, "owner", None, &[]).await;
    config_map(&api, "dependent", Some(&owner), &[]).await;
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    gone(&api, "dependent").await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_and_releases_them() {
    let harness = Harness::start(&["generic-garbage-collector"]).await;
    let api: Api<ConfigMap> = Api::namespaced(harness.admin(), "default");
    let owner = config_map(&api, "owner", None, &[]).await;
    config_map(&api, "dependent", Some(&owner), &[]).await;
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    gone(&api, "owner").await;
    let dependent = api.get("dependent").await.unwrap();
    assert!(
        dependent
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "released"
    );
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let harness = Harness::start(&["generic-garbage-collector"]).await;
    let api: Api<ConfigMap> = Api::namespaced(harness.admin(), "default");
    let owner = config_map(&api, "owner", None, &[]).await;
    // The dependent's own finalizer keeps it (deleting) until released.
    config_map(&api, "dependent", Some(&owner), &["test.bulwark.dev/hold"]).await;
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    bulwark_testkit::wait_for("the dependent is being deleted", PATIENCE, || async {
        let d = api.get("dependent").await.map_err(|e| e.to_string())?;
        d.metadata
            .deletion_timestamp
            .map(|_| ())
            .ok_or_else(|| "not deleting".to_owned())
    })
    .await
    .unwrap();
    let waiting = api
        .get("owner")
        .await
        .expect("the owner waits for its dependent");
    assert!(
        waiting
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_owned())
    );
    release(&api, "dependent").await;
    gone(&api, "dependent").await;
    gone(&api, "owner").await;
}

#[tokio::test]
async fn a_dependent_with_one_of_two_owners_gone_loses_only_that_reference() {
    let harness = Harness::start(&["generic-garbage-collector"]).await;
    let api: Api<ConfigMap> = Api::namespaced(harness.admin(), "default");
    let a = config_map(&api, "owner-a", None, &[]).await;
    let b = config_map(&api, "owner-b", None, &[]).await;
    let refs = json!([
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner-a", "uid": a.metadata.uid},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner-b", "uid": b.metadata.uid},
    ]);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "shared", "ownerReferences": refs}}))
            .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("owner-a", &DeleteParams::background())
        .await
        .unwrap();
    bulwark_testkit::wait_for("the reference to owner-a dropped", PATIENCE, || async {
        let refs = api
            .get("shared")
            .await
            .map_err(|e| e.to_string())?
            .metadata
            .owner_references
            .unwrap_or_default();
        match refs.as_slice() {
            [only] if only.name == "owner-b" => Ok(()),
            other => Err(format!("{} references", other.len())),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    let harness = Harness::start(&["namespace-controller"]).await;
    let client = harness.admin();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    config_map(&api, "plain", None, &[]).await;
    config_map(&api, "held", None, &["test.bulwark.dev/hold"]).await;
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    // The held object keeps the namespace, and the namespace says so.
    let message =
        bulwark_testkit::wait_for("the namespace reports what remains", PATIENCE, || async {
            let ns = namespaces.get("doomed").await.map_err(|e| e.to_string())?;
            let conditions = ns.status.and_then(|s| s.conditions).unwrap_or_default();
            conditions
                .iter()
                .find(|c| c.type_ == "NamespaceContentRemaining" && c.status == "True")
                .and_then(|c| c.message.clone())
                .ok_or_else(|| format!("{conditions:?}"))
        })
        .await
        .unwrap();
    assert_eq!(
        message,
        "Some resources are remaining: configmaps has 1 resource instances"
    );
    assert!(
        api.get_opt("plain").await.unwrap().is_none(),
        "content without finalizers is gone"
    );
    // Creating in a terminating namespace is refused, as upstream.
    let err = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );
    release(&api, "held").await;
    bulwark_testkit::wait_for("the namespace is deleted", PATIENCE, || async {
        match namespaces
            .get_opt("doomed")
            .await
            .map_err(|e| e.to_string())?
        {
            None => Ok(()),
            Some(ns) => Err(format!("{:?}", ns.status)),
        }
    })
    .await
    .unwrap();
}
