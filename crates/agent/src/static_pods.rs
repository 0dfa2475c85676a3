//! Static pods (`--pod-manifest-path`), as the kubelet's file source and
//! mirror client: every Pod manifest in the directory runs on this node
//! without the API server, and is mirrored to it — a pod of the same spec
//! named `<name>-<node>`, annotated `kubernetes.io/config.mirror` and owned
//! by the Node — so that clients see it. A deleted mirror is recreated; a
//! manifest removed stops its pod and deletes its mirror; a changed one
//! restarts the pod under its new spec.
//!
//! The pod's UID comes from the node, the manifest's path and its content,
//! so an agent restart finds the same pod (and its running containers).
//! Mirror pods in the API are never run as pods themselves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt as _};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

/// Marks a mirror pod; its value is the static pod's hash.
pub(crate) const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Where a pod came from: `file` for static pods (`api` otherwise).
pub(crate) const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// The static pod's hash (its UID).
const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// How often the directory is read and the mirrors checked.
const INTERVAL: Duration = Duration::from_secs(2);

/// A change for the pod workers: (UID, the pod, `None` when gone).
pub(crate) type Feed = mpsc::Sender<(String, Option<Arc<Pod>>)>;

/// Whether `pod` is a static pod (from a manifest file).
pub(crate) fn is_static(pod: &Pod) -> bool {
    pod.annotations().get(SOURCE_ANNOTATION).map(String::as_str) == Some("file")
}

/// Whether `pod` is a mirror pod in the API.
pub(crate) fn is_mirror(pod: &Pod) -> bool {
    pod.annotations().contains_key(MIRROR_ANNOTATION)
}

/// The static pod a manifest describes on `node`: defaulted as the API
/// server would, named `<name>-<node>`, bound to the node.
pub(crate) fn from_manifest(text: &str, path: &Path, node: &str) -> Result<Pod, String> {
    let mut value: serde_json::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML or JSON: {e}"))?;
    let kind = value["kind"].as_str().unwrap_or("Pod");
    let api_version = value["apiVersion"].as_str().unwrap_or("v1");
    if kind != "Pod" || api_version != "v1" {
        return Err(format!(
            "a static pod manifest is a v1 Pod, not {api_version} {kind}"
        ));
    }
    value["apiVersion"] = "v1".into();
    value["kind"] = "Pod".into();
    bulwark_api::defaults::apply_defaults("v1", "Pod", &mut value);
    let mut pod: Pod = serde_json::from_value(value).map_err(|e| format!("not a Pod: {e}"))?;
    let name = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name is required")?;
    let digest = Sha256::new()
        .chain_update(node.as_bytes())
        .chain_update([0])
        .chain_update(path.as_os_str().as_encoded_bytes())
        .chain_update([0])
        .chain_update(text.as_bytes())
        .finalize();
    let hash: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let metadata = &mut pod.metadata;
    metadata.name = Some(format!("{name}-{node}"));
    if metadata.namespace.as_deref().is_none_or(str::is_empty) {
        metadata.namespace = Some("default".to_owned());
    }
    metadata.uid = Some(hash.clone());
    metadata.resource_version = None;
    metadata.owner_references = None;
    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(SOURCE_ANNOTATION.to_owned(), "file".to_owned());
    annotations.insert(HASH_ANNOTATION.to_owned(), hash);
    annotations.remove(MIRROR_ANNOTATION);
    pod.spec.get_or_insert_with(Default::default).node_name = Some(node.to_owned());
    pod.status = None;
    Ok(pod)
}

/// The mirror of `pod` for the API: its spec and metadata, the mirror
/// annotation, and the Node as its controller (what NodeRestriction
/// requires of a node's mirror pods).
pub(crate) fn mirror(pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let mut mirror = pod.clone();
    let hash = pod.metadata.uid.clone().unwrap_or_default();
    mirror.metadata.uid = None;
    mirror
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(MIRROR_ANNOTATION.to_owned(), hash);
    mirror.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Node".to_owned(),
        name: node.to_owned(),
        uid: node_uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    mirror
}

/// The static pods in `dir` (files ending .yaml, .yml or .json; others
/// and hidden files skipped), by UID. A manifest that is not a pod is
/// logged and skipped.
pub(crate) fn read_dir(dir: &Path, node: &str) -> BTreeMap<String, Arc<Pod>> {
    let mut pods = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return pods;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        let manifest = path
            .extension()
            .is_some_and(|e| matches!(e.to_str(), Some("yaml" | "yml" | "json")));
        if hidden || !manifest || !path.is_file() {
            continue;
        }
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| from_manifest(&text, &path, node));
        match parsed {
            Ok(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                pods.insert(uid, Arc::new(pod));
            }
            Err(err) => {
                tracing::warn!(manifest = %path.display(), error = %err, "static pod manifest skipped");
            }
        }
    }
    pods
}

/// Runs the static pods of `dir`: feeds them to the pod workers as they
/// appear, change and go (`known` holds their UIDs, so the API watch
/// leaves them alone), and keeps their mirrors in the API.
pub(crate) async fn run(
    client: kube::Client,
    dir: PathBuf,
    node: String,
    feed: Feed,
    known: Arc<Mutex<HashSet<String>>>,
) {
    let mut running: BTreeMap<String, Arc<Pod>> = BTreeMap::new();
    loop {
        let pods = {
            let (dir, node) = (dir.clone(), node.clone());
            tokio::task::spawn_blocking(move || read_dir(&dir, &node))
                .await
                .unwrap_or_default()
        };
        if let Ok(mut known) = known.lock() {
            *known = pods.keys().cloned().collect();
        }
        for (uid, pod) in &pods {
            if running.get(uid) != Some(pod) {
                tracing::info!(pod = %pod.name_any(), %uid, "static pod");
                let _ = feed.send((uid.clone(), Some(pod.clone()))).await;
            }
        }
        for (uid, pod) in &running {
            if !pods.contains_key(uid) {
                tracing::info!(pod = %pod.name_any(), %uid, "static pod removed");
                let _ = feed.send((uid.clone(), None)).await;
            }
        }
        running = pods;
        if let Err(err) = sync_mirrors(&client, &node, &running).await {
            tracing::warn!(error = %err, "mirror pods");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Creates the missing mirrors, replaces the stale ones (another hash) and
/// deletes those whose static pod is gone.
async fn sync_mirrors(
    client: &kube::Client,
    node: &str,
    pods: &BTreeMap<String, Arc<Pod>>,
) -> Result<(), kube::Error> {
    let all: Api<Pod> = Api::all(client.clone());
    let listed = all
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    let by_name: HashMap<(String, String), &Pod> = listed
        .items
        .iter()
        .map(|p| ((p.namespace().unwrap_or_default(), p.name_any()), p))
        .collect();
    let mut node_uid: Option<String> = None;
    for (uid, pod) in pods {
        let namespace = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        match by_name.get(&(namespace.clone(), pod.name_any())) {
            // Deleted by someone: gone at once, recreated next round (its
            // pod runs on; only the API's copy went).
            Some(existing)
                if is_mirror(existing) && existing.metadata.deletion_timestamp.is_some() =>
            {
                delete(&api, existing).await?;
            }
            Some(existing) if !is_mirror(existing) => {
                tracing::warn!(pod = %pod.name_any(), "a pod that is not its mirror has the static pod's name");
            }
            Some(existing) if existing.annotations().get(MIRROR_ANNOTATION) == Some(uid) => {}
            Some(stale) => delete(&api, stale).await?,
            None => {
                if node_uid.is_none() {
                    let nodes: Api<Node> = Api::all(client.clone());
                    node_uid = nodes.get(node).await?.metadata.uid;
                }
                let Some(node_uid) = &node_uid else {
                    continue;
                };
                match api
                    .create(&PostParams::default(), &mirror(pod, node, node_uid))
                    .await
                {
                    Ok(_) => tracing::info!(pod = %pod.name_any(), "mirror pod created"),
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(err) => return Err(err),
                }
            }
        }
    }
    let wanted: HashSet<(String, String)> = pods
        .values()
        .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
        .collect();
    for pod in listed.items.iter().filter(|p| is_mirror(p)) {
        let key = (pod.namespace().unwrap_or_default(), pod.name_any());
        if !wanted.contains(&key) {
            let api: Api<Pod> = Api::namespaced(client.clone(), &key.0);
            delete(&api, pod).await?;
        }
    }
    Ok(())
}

async fn delete(api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    crate::pod::delete_now(api, pod).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: main
    image: busybox:1.36
";

    #[test]
    fn a_manifest_becomes_a_pod_bound_to_the_node_with_a_stable_uid() {
        let path = Path::new("/etc/bulwark/manifests/web.yaml");
        let pod = from_manifest(MANIFEST, path, "n1").unwrap();
        assert_eq!(pod.name_any(), "web-n1");
        assert_eq!(pod.namespace().as_deref(), Some("default"));
        assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        assert_eq!(
            pod.spec.as_ref().unwrap().restart_policy.as_deref(),
            Some("Always"),
            "defaulted as the API server would"
        );
        assert!(is_static(&pod));
        assert!(!is_mirror(&pod));
        let again = from_manifest(MANIFEST, path, "n1").unwrap();
        assert_eq!(pod.metadata.uid, again.metadata.uid);
        let edited = from_manifest(&MANIFEST.replace("1.36", "1.37"), path, "n1").unwrap();
        assert_ne!(
            pod.metadata.uid, edited.metadata.uid,
            "a new spec is a new pod"
        );
        let elsewhere = from_manifest(MANIFEST, path, "n2").unwrap();
        assert_ne!(pod.metadata.uid, elsewhere.metadata.uid);
        for bad in [
            "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: d}\n",
            "apiVersion: v1\nkind: Pod\nspec: {containers: []}\n",
            ": not yaml :",
        ] {
            assert!(from_manifest(bad, path, "n1").is_err(), "{bad}");
        }
    }

    #[test]
    fn the_mirror_is_annotated_and_owned_by_the_node() {
        let pod = from_manifest(MANIFEST, Path::new("/m/web.yaml"), "n1").unwrap();
        let mirror = mirror(&pod, "n1", "node-uid");
        assert!(is_mirror(&mirror));
        assert_eq!(
            mirror.annotations().get(MIRROR_ANNOTATION),
            pod.metadata.uid.as_ref()
        );
        assert_eq!(mirror.metadata.uid, None);
        let owner = &mirror.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            ("Node", "n1", "node-uid", Some(true))
        );
    }

    #[test]
    fn only_manifests_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yaml"), MANIFEST).unwrap();
        std::fs::write(dir.path().join(".web.yaml.swp"), MANIFEST).unwrap();
        std::fs::write(dir.path().join("notes.txt"), MANIFEST).unwrap();
        std::fs::write(dir.path().join("broken.yaml"), "kind: Service").unwrap();
        let pods = read_dir(dir.path(), "n1");
        assert_eq!(pods.len(), 1);
        assert_eq!(pods.values().next().unwrap().name_any(), "web-n1");
    }
}
