//! Discovery: `/version`, `/api`, `/apis`, the per-group-version resource
//! lists, and aggregated discovery (apidiscovery.k8s.io/v2), chosen by the
//! response Content-Type as client-go expects.

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceType, VERBS};

/// The Kubernetes API version served (k8s-openapi's `v1_33` types).
pub(crate) const KUBERNETES_VERSION: (&str, &str) = ("1", "33");

/// The media type of aggregated discovery responses.
pub(crate) const AGGREGATED: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// A resource served outside the resource table (nothing stored): the
/// review APIs and `metrics.k8s.io`.
struct Served {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
}

const fn review(plural: &'static str, kind: &'static str, group: &'static str) -> Served {
    Served {
        group,
        version: "v1",
        plural,
        singular: "",
        kind,
        // Only the local access review is namespaced.
        namespaced: matches!(plural.as_bytes(), b"localsubjectaccessreviews"),
        verbs: &["create"],
    }
}

/// What discovery lists besides the table.
const SERVED_ELSEWHERE: &[Served] = &[
    review(
        "selfsubjectreviews",
        "SelfSubjectReview",
        "authentication.k8s.io",
    ),
    review("tokenreviews", "TokenReview", "authentication.k8s.io"),
    review(
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        "authorization.k8s.io",
    ),
    review(
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        "authorization.k8s.io",
    ),
    review(
        "subjectaccessreviews",
        "SubjectAccessReview",
        "authorization.k8s.io",
    ),
    review(
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        "authorization.k8s.io",
    ),
    // `kubectl top` (served by `resourcemetrics.rs` from the agents).
    Served {
        group: "metrics.k8s.io",
        version: "v1beta1",
        plural: "nodes",
        singular: "",
        kind: "NodeMetrics",
        namespaced: false,
        verbs: &["get", "list"],
    },
    Served {
        group: "metrics.k8s.io",
        version: "v1beta1",
        plural: "pods",
        singular: "",
        kind: "PodMetrics",
        namespaced: true,
        verbs: &["get", "list"],
    },
];

/// The version `/version` reports: the Kubernetes API version served,
/// with Bulwark's own version as build metadata.
pub(crate) fn git_version() -> String {
    let (major, minor) = KUBERNETES_VERSION;
    format!("v{major}.{minor}.0+bulwark.{}", env!("CARGO_PKG_VERSION"))
}

/// `GET /version`.
pub(crate) fn version() -> Value {
    let (major, minor) = KUBERNETES_VERSION;
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": git_version(),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("linux/{}", match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", other => other }),
    })
}

/// Whether the client asked for aggregated discovery.
pub(crate) fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|entry| {
        let entry = entry.replace(' ', "");
        entry.contains("g=apidiscovery.k8s.io")
            && entry.contains("v=v2")
            && entry.contains("as=APIGroupDiscoveryList")
    })
}

/// `GET /api` (legacy).
pub(crate) fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn group_versions(registry: &Registry) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = registry
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .collect();
    for served in SERVED_ELSEWHERE {
        if !groups.iter().any(|(g, _)| g == served.group) {
            groups.push((served.group.to_owned(), vec![served.version.to_owned()]));
        }
    }
    groups
}

/// `GET /apis` (legacy).
pub(crate) fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = group_versions(registry)
        .iter()
        .map(|(g, versions)| api_group(g, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// `GET /apis/{group}`.
pub(crate) fn group(registry: &Registry, group: &str) -> Option<Value> {
    group_versions(registry)
        .into_iter()
        .find(|(g, _)| g == group)
        .map(|(g, versions)| api_group(&g, &versions))
}

/// `GET /api/v1` or `/apis/{group}/{version}`: the legacy `APIResourceList`.
pub(crate) fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    for r in registry
        .all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
            "categories": r.categories,
        }));
        for sub in r.subresources {
            let (g, v, kind) = sub.kind.unwrap_or((r.group, r.version, r.kind));
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": sub.verbs,
            });
            if sub.kind.is_some() {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            resources.push(entry);
        }
    }
    for r in SERVED_ELSEWHERE {
        if r.group == group && r.version == version {
            resources.push(json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs}));
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn aggregated_resource(r: &ResourceType) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            let (g, v, kind) = sub.kind.unwrap_or((r.group, r.version, r.kind));
            json!({"subresource": sub.name, "responseKind": {"group": g, "version": v, "kind": kind}, "verbs": sub.verbs})
        })
        .collect();
    let mut entry = json!({
        "resource": r.plural,
        "singularResource": r.singular,
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

/// Aggregated discovery for `/api` (`core` true) or `/apis`.
pub(crate) fn aggregated(registry: &Registry, core: bool) -> Value {
    let all = registry.all();
    let mut items = Vec::new();
    let groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_owned()])]
    } else {
        group_versions(registry)
    };
    for (group, versions) in groups {
        let versions: Vec<Value> = versions
            .iter()
            .map(|version| {
                let mut resources: Vec<Value> = all
                    .iter()
                    .filter(|r| r.group == group && r.version == version)
                    .map(|r| aggregated_resource(r))
                    .collect();
                for r in SERVED_ELSEWHERE {
                    if r.group == group && r.version == version {
                        resources.push(json!({
                            "resource": r.plural,
                            "singularResource": r.singular,
                            "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                            "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                            "verbs": r.verbs,
                        }));
                    }
                }
                json!({"version": version, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(json!({"metadata": {"name": group}, "versions": versions}));
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
