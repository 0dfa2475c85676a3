//! The OpenAPI v3 documents kube-apiserver serves, generated for the
//! resources Bulwark serves.
//!
//! The real `kubectl` reads them: plain `kubectl apply -f` and `create -f`
//! (default `--validate=strict`) look in `/openapi/v3/<group-version>` for a
//! PATCH operation whose `x-kubernetes-group-version-kind` is the object's
//! and which takes `fieldValidation`; `kubectl explain` finds a kind's schema
//! through the GVK on its paths' operations and follows `$ref`s between
//! `components.schemas`; client-side `kubectl apply` computes its strategic
//! merge patch from the `x-kubernetes-patch-*` tags on those schemas.
//! Without the documents, `kubectl apply` fails unless told
//! `--validate=false`.
//!
//! Where it sits: a pure library (no IO) under `apiserver`, which answers
//! `GET /openapi/v3` with [`discovery`] and `GET /openapi/v3/<key>` with
//! [`group_version_document`], and caches both (generating a large group's
//! document takes milliseconds, not microseconds; [`document_hash`] names a
//! cached document as discovery does). The schemas come from
//! `k8s-openapi`'s `schemars` impls, whose names are upstream's
//! (`io.k8s.api.core.v1.Pod`); kinds it does not know (custom resources)
//! get a permissive object schema.
//!
//! ```
//! use bulwark_openapi::{ResourceInfo, discovery, group_version_document};
//!
//! let resources = [ResourceInfo {
//!     group: "apps",
//!     version: "v1",
//!     kind: "Deployment",
//!     plural: "deployments",
//!     namespaced: true,
//!     subresources: &[("status", None), ("scale", Some(("autoscaling", "v1", "Scale")))],
//! }];
//! let root = discovery(&resources);
//! assert!(root["paths"]["apis/apps/v1"]["serverRelativeURL"]
//!     .as_str()
//!     .is_some_and(|url| url.starts_with("/openapi/v3/apis/apps/v1?hash=")));
//!
//! let doc = group_version_document(&resources, "apps", "v1").expect("apps/v1 is served");
//! let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
//! assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
//! assert!(group_version_document(&resources, "batch", "v1").is_none());
//! ```

mod components;
mod kinds;
mod params;
mod patch_tags;
mod paths;

#[cfg(test)]
mod tests;

use components::Components;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIResourceList, DeleteOptions, Patch, Status, WatchEvent,
};
use kinds::Gvk;
use paths::{Common, GroupVersion};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};
use std::collections::BTreeSet;

/// What the generator needs to know about one served resource.
#[derive(Clone, Copy, Debug)]
pub struct ResourceInfo<'a> {
    /// The API group; `""` for the core group.
    pub group: &'a str,
    /// The version within the group, `v1`.
    pub version: &'a str,
    /// The kind of its objects, `Deployment`.
    pub kind: &'a str,
    /// The resource name in paths, `deployments`.
    pub plural: &'a str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Its subresources: the name, and the group, version and kind of the
    /// subresource's object when it is not the resource's own kind
    /// (`("status", None)`, `("scale", Some(("autoscaling", "v1", "Scale")))`).
    pub subresources: &'a [SubresourceInfo<'a>],
}

/// One subresource of a [`ResourceInfo`]: its name, and the group, version
/// and kind of its object when that is not the resource's own kind.
pub type SubresourceInfo<'a> = (&'a str, Option<(&'a str, &'a str, &'a str)>);

/// `GET /openapi/v3`: where each served group-version's document is, with a
/// hash of its content, as
/// `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=<HASH>"}, …}}`.
///
/// This generates every document to hash it; callers serving it often
/// should cache it with the documents.
pub fn discovery(resources: &[ResourceInfo]) -> Value {
    let served: BTreeSet<(&str, &str)> = resources.iter().map(|r| (r.group, r.version)).collect();
    let mut paths = Map::new();
    for (group, version) in served {
        let key = GroupVersion { group, version }.key();
        if let Some(doc) = group_version_document(resources, group, version) {
            let url = format!("/openapi/v3/{key}?hash={}", document_hash(&doc));
            paths.insert(key, json!({ "serverRelativeURL": url }));
        }
    }
    json!({ "paths": paths })
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`: the
/// document of one group-version, or `None` if no resource of it is served.
///
/// The same resources give the same document whatever their order.
pub fn group_version_document(
    resources: &[ResourceInfo],
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut served: Vec<&ResourceInfo> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    // Generation order decides insertion order, which shows if serde_json's
    // `preserve_order` is ever on: fix it.
    served.sort_by_key(|r| (r.plural, r.kind));
    served.dedup_by_key(|r| r.plural);

    let gv = GroupVersion { group, version };
    let mut components = Components::new();
    let common = common_schemas(&mut components, gv);
    let mut paths = Map::new();
    paths::add_discovery(&mut paths, gv, &common);
    for info in served {
        paths::add_resource(&mut paths, &mut components, &common, gv, info);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "unversioned" },
        "paths": paths,
        "components": { "schemas": components.into_schemas() },
    }))
}

/// The `hash` [`discovery`] gives a document: the upper-case hex SHA-512 of
/// its JSON, as upstream's. A server that caches documents can use it as
/// their ETag.
pub fn document_hash(document: &Value) -> String {
    let bytes = serde_json::to_vec(document).expect("a JSON value always serializes");
    Sha512::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Adds the schemas every document's operations name besides the kinds,
/// tagged as upstream tags them.
fn common_schemas(components: &mut Components, gv: GroupVersion<'_>) -> Common {
    let core = |kind| Gvk {
        group: "",
        version: "v1",
        kind,
    };
    let own = |kind| Gvk {
        group: gv.group,
        version: gv.version,
        kind,
    };
    let status = components.named::<Status>();
    components.tag(&status, core("Status"));
    let delete_options = components.named::<DeleteOptions>();
    components.tag(&delete_options, core("DeleteOptions"));
    components.tag(&delete_options, own("DeleteOptions"));
    let watch_event = components.named::<WatchEvent<Value>>();
    components.tag(&watch_event, core("WatchEvent"));
    components.tag(&watch_event, own("WatchEvent"));
    let api_resource_list = components.named::<APIResourceList>();
    components.tag(&api_resource_list, core("APIResourceList"));
    Common {
        status,
        delete_options,
        patch: components.named::<Patch>(),
        api_resource_list,
    }
}
