//! Per-field strategic-merge metadata of the built-in kinds.
//!
//! Upstream reads `patchStrategy` / `patchMergeKey` struct tags (published as
//! `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` in
//! OpenAPI). We keep, per kind, a tree of only the fields on a path to one of
//! those tags: every field not named here merges as the default does (objects
//! merge key by key, lists are replaced whole), which is what upstream does
//! for untagged fields. Lists without a tag — `tolerations`, `args`,
//! `command`, `containerStatuses`, `volumeClaimTemplates`, … — are atomic.
//!
//! The facts come from `k8s.io/api` and `k8s.io/apimachinery`'s `types.go`
//! (Kubernetes 1.33 and later), by group/version and struct.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// How a strategic merge patch treats the fields of one kind of object.
///
/// Obtain one with [`PatchSchema::for_kind`] for a built-in kind, or
/// [`PatchSchema::untagged`] to merge with default rules only.
#[derive(Debug, Default)]
pub struct PatchSchema {
    fields: HashMap<&'static str, FieldMeta>,
    /// `+structType=atomic` (or `mapType`): server-side apply owns the
    /// object as one value. Strategic merge ignores it.
    pub(crate) atomic: bool,
}

/// The strategy a field's tag names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// No tag: objects merge, lists are replaced.
    Default,
    /// `merge`: lists merge (by `merge_key` for lists of objects).
    Merge,
    /// `replace`: objects are replaced whole.
    Replace,
}

#[derive(Debug, Clone)]
pub(crate) struct FieldMeta {
    pub(crate) strategy: Strategy,
    /// Whether the tag also says `retainKeys` (kubectl then sends `$retainKeys`).
    #[allow(dead_code)] // a fact of the table that no algorithm needs yet
    pub(crate) retain_keys: bool,
    pub(crate) merge_key: Option<&'static str>,
    /// Server-side apply's `listMapKey`s where they differ from the merge
    /// key (e.g. ports are keyed by port and protocol).
    pub(crate) list_keys: &'static [&'static str],
    /// Values server-side apply assumes for absent key fields.
    pub(crate) key_defaults: &'static [(&'static str, &'static str)],
    /// Always present in a typed object (a Go value struct, shown as `{}`;
    /// a list without `omitempty`), so ownership tracking never sees the
    /// field itself appear or vanish.
    pub(crate) value_struct: bool,
    /// The schema of the field's value (of its items, for a list).
    pub(crate) schema: Arc<PatchSchema>,
}

static UNTAGGED: LazyLock<Arc<PatchSchema>> = LazyLock::new(|| Arc::new(PatchSchema::default()));

static DEFAULT_FIELD: LazyLock<FieldMeta> = LazyLock::new(|| obj(UNTAGGED.clone()));

/// apiVersion → kind → schema.
type KindTable = HashMap<&'static str, HashMap<&'static str, Arc<PatchSchema>>>;

static KINDS: LazyLock<KindTable> = LazyLock::new(builtin_kinds);

impl PatchSchema {
    /// The schema of a built-in kind, by `apiVersion` (`v1`, `apps/v1`, …) and
    /// `kind`. `None` for kinds we do not serve (custom resources: upstream
    /// refuses strategic merge patches for them with 415).
    pub fn for_kind(api_version: &str, kind: &str) -> Option<&'static PatchSchema> {
        KINDS.get(api_version)?.get(kind).map(|s| &**s)
    }

    /// A schema with no tags at all: objects merge, lists are replaced.
    pub fn untagged() -> &'static PatchSchema {
        &UNTAGGED
    }

    pub(crate) fn field(&self, name: &str) -> &FieldMeta {
        self.fields.get(name).unwrap_or(&DEFAULT_FIELD)
    }
}

// ---- a small vocabulary to write the table in ----

type Fields = Vec<(&'static str, FieldMeta)>;

fn node(fields: Fields) -> Arc<PatchSchema> {
    Arc::new(PatchSchema {
        fields: fields.into_iter().collect(),
        atomic: false,
    })
}

/// A struct server-side apply treats as one value (`+structType=atomic`).
fn atomic() -> Arc<PatchSchema> {
    Arc::new(PatchSchema {
        fields: HashMap::new(),
        atomic: true,
    })
}

/// An object field (struct or map) with tagged fields below it.
fn obj(schema: Arc<PatchSchema>) -> FieldMeta {
    FieldMeta {
        strategy: Strategy::Default,
        retain_keys: false,
        merge_key: None,
        list_keys: &[],
        key_defaults: &[],
        value_struct: false,
        schema,
    }
}

/// Marks a field as a Go value struct (see [`FieldMeta::value_struct`]).
fn value_struct(meta: FieldMeta) -> FieldMeta {
    FieldMeta {
        value_struct: true,
        ..meta
    }
}

/// An object field holding an atomic struct (label selectors, references).
fn atomic_obj() -> FieldMeta {
    obj(atomic())
}

/// `patchStrategy:"retainKeys"` on an object field.
fn retain_keys_obj() -> FieldMeta {
    FieldMeta {
        retain_keys: true,
        ..obj(UNTAGGED.clone())
    }
}

/// `patchStrategy:"replace"` on an object field (a label selector here,
/// atomic for server-side apply too).
fn replace_obj() -> FieldMeta {
    FieldMeta {
        strategy: Strategy::Replace,
        ..obj(atomic())
    }
}

/// `patchStrategy:"merge" patchMergeKey:key` on a list of objects.
fn merge_list(key: &'static str, items: Arc<PatchSchema>) -> FieldMeta {
    FieldMeta {
        strategy: Strategy::Merge,
        merge_key: Some(key),
        ..obj(items)
    }
}

/// `patchStrategy:"merge,retainKeys" patchMergeKey:key` on a list of objects.
fn merge_list_retain(key: &'static str) -> FieldMeta {
    FieldMeta {
        retain_keys: true,
        ..merge_list(key, UNTAGGED.clone())
    }
}

/// `merge_list` whose items have no tags below them.
fn keyed(key: &'static str) -> FieldMeta {
    merge_list(key, UNTAGGED.clone())
}

/// `merge_list` whose items are atomic structs (references).
fn keyed_atomic(key: &'static str) -> FieldMeta {
    merge_list(key, atomic())
}

/// A `merge_list` that server-side apply keys by more fields
/// (`+listMapKey` several times), with defaults for absent ones.
fn with_list_keys(
    meta: FieldMeta,
    keys: &'static [&'static str],
    defaults: &'static [(&'static str, &'static str)],
) -> FieldMeta {
    FieldMeta {
        list_keys: keys,
        key_defaults: defaults,
        ..meta
    }
}

/// `patchStrategy:"merge"` on a list of scalars: a set union.
fn scalar_set() -> FieldMeta {
    FieldMeta {
        strategy: Strategy::Merge,
        ..obj(UNTAGGED.clone())
    }
}

// ---- the shared structs ----

fn object_meta() -> FieldMeta {
    value_struct(obj(node(vec![
        ("ownerReferences", keyed_atomic("uid")),
        ("finalizers", scalar_set()),
    ])))
}

/// Container ports: merged by `containerPort`, applied by port and protocol.
const PORT_KEYS: &[&str] = &["containerPort", "protocol"];
const SERVICE_PORT_KEYS: &[&str] = &["port", "protocol"];
const TCP_DEFAULT: &[(&str, &str)] = &[("protocol", "TCP")];

fn container() -> Arc<PatchSchema> {
    let value_from = obj(node(vec![
        ("configMapKeyRef", atomic_obj()),
        ("secretKeyRef", atomic_obj()),
        ("fieldRef", atomic_obj()),
        ("resourceFieldRef", atomic_obj()),
        ("fileKeyRef", atomic_obj()),
    ]));
    node(vec![
        (
            "ports",
            with_list_keys(keyed("containerPort"), PORT_KEYS, TCP_DEFAULT),
        ),
        (
            "env",
            merge_list("name", node(vec![("valueFrom", value_from)])),
        ),
        ("volumeMounts", keyed("mountPath")),
        ("volumeDevices", keyed("devicePath")),
    ])
}

fn pod_spec() -> FieldMeta {
    let c = container();
    let spread = node(vec![("labelSelector", atomic_obj())]);
    obj(node(vec![
        ("volumes", merge_list_retain("name")),
        ("initContainers", merge_list("name", c.clone())),
        // `json:"containers"` has no omitempty: always present.
        ("containers", value_struct(merge_list("name", c.clone()))),
        ("ephemeralContainers", merge_list("name", c)),
        ("imagePullSecrets", keyed_atomic("name")),
        ("hostAliases", keyed("ip")),
        (
            "topologySpreadConstraints",
            with_list_keys(
                merge_list("topologyKey", spread),
                &["topologyKey", "whenUnsatisfiable"],
                &[],
            ),
        ),
        ("schedulingGates", keyed("name")),
        ("resourceClaims", merge_list_retain("name")),
    ]))
}

fn pod_status() -> FieldMeta {
    obj(node(vec![
        ("conditions", keyed("type")),
        ("hostIPs", keyed("ip")),
        ("podIPs", keyed("ip")),
        ("resourceClaimStatuses", merge_list_retain("name")),
    ]))
}

fn pod_template_spec() -> FieldMeta {
    value_struct(obj(node(vec![
        ("metadata", object_meta()),
        ("spec", value_struct(pod_spec())),
    ])))
}

/// A `status` whose only tagged field is `conditions` keyed by `type`.
fn conditions_status() -> FieldMeta {
    obj(node(vec![("conditions", keyed("type"))]))
}

/// `spec: {template: PodTemplateSpec, selector: LabelSelector, …extra}`.
fn templated_spec(extra: Fields) -> FieldMeta {
    let mut fields = vec![
        ("template", pod_template_spec()),
        ("selector", atomic_obj()),
    ];
    fields.extend(extra);
    obj(node(fields))
}

/// A kind: `metadata` and the given fields; `spec` and `status` are value
/// structs wherever a kind has them.
fn kind_schema(fields: Fields) -> Arc<PatchSchema> {
    let mut all = vec![("metadata", object_meta())];
    all.extend(fields.into_iter().map(|(name, meta)| match name {
        "spec" | "status" => (name, value_struct(meta)),
        _ => (name, meta),
    }));
    for name in ["spec", "status"] {
        if !all.iter().any(|(n, _)| *n == name) {
            all.push((name, value_struct(obj(UNTAGGED.clone()))));
        }
    }
    node(all)
}

fn builtin_kinds() -> KindTable {
    let mut kinds: Vec<(&'static str, &'static str, Arc<PatchSchema>)> = vec![
        // core/v1
        (
            "v1",
            "Pod",
            kind_schema(vec![("spec", pod_spec()), ("status", pod_status())]),
        ),
        (
            "v1",
            "PodTemplate",
            kind_schema(vec![("template", pod_template_spec())]),
        ),
        (
            "v1",
            "ReplicationController",
            kind_schema(vec![
                ("spec", obj(node(vec![("template", pod_template_spec())]))),
                ("status", conditions_status()),
            ]),
        ),
        (
            "v1",
            "Node",
            kind_schema(vec![
                ("spec", obj(node(vec![("podCIDRs", scalar_set())]))),
                (
                    "status",
                    obj(node(vec![
                        ("conditions", keyed("type")),
                        ("addresses", keyed("type")),
                    ])),
                ),
            ]),
        ),
        (
            "v1",
            "Namespace",
            kind_schema(vec![("status", conditions_status())]),
        ),
        (
            "v1",
            "Service",
            kind_schema(vec![
                (
                    "spec",
                    obj(node(vec![(
                        "ports",
                        with_list_keys(keyed("port"), SERVICE_PORT_KEYS, TCP_DEFAULT),
                    )])),
                ),
                ("status", conditions_status()),
            ]),
        ),
        (
            "v1",
            "ServiceAccount",
            kind_schema(vec![("secrets", keyed_atomic("name"))]),
        ),
        (
            "v1",
            "PersistentVolumeClaim",
            kind_schema(vec![("status", conditions_status())]),
        ),
        (
            "v1",
            "ComponentStatus",
            kind_schema(vec![("conditions", keyed("type"))]),
        ),
        // apps/v1
        (
            "apps/v1",
            "Deployment",
            kind_schema(vec![
                (
                    "spec",
                    templated_spec(vec![("strategy", value_struct(retain_keys_obj()))]),
                ),
                ("status", conditions_status()),
            ]),
        ),
        // batch/v1
        (
            "batch/v1",
            "CronJob",
            kind_schema(vec![(
                "spec",
                obj(node(vec![(
                    "jobTemplate",
                    value_struct(obj(node(vec![
                        ("metadata", object_meta()),
                        ("spec", value_struct(templated_spec(vec![]))),
                    ]))),
                )])),
            )]),
        ),
        // policy/v1
        (
            "policy/v1",
            "PodDisruptionBudget",
            kind_schema(vec![
                ("spec", obj(node(vec![("selector", replace_obj())]))),
                ("status", conditions_status()),
            ]),
        ),
        // storage.k8s.io/v1
        (
            "storage.k8s.io/v1",
            "CSINode",
            kind_schema(vec![("spec", obj(node(vec![("drivers", keyed("name"))])))]),
        ),
        // admissionregistration.k8s.io/v1
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicy",
            kind_schema(vec![(
                "spec",
                obj(node(vec![
                    ("matchConditions", keyed("name")),
                    ("variables", keyed("name")),
                ])),
            )]),
        ),
    ];

    // Kinds whose spec holds a pod template and whose status has conditions.
    for (api_version, kind) in [
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
    ] {
        kinds.push((
            api_version,
            kind,
            kind_schema(vec![
                ("spec", templated_spec(vec![])),
                ("status", conditions_status()),
            ]),
        ));
    }

    // Kinds whose only tagged field is `status.conditions`.
    for (api_version, kind) in [
        ("certificates.k8s.io/v1", "CertificateSigningRequest"),
        ("networking.k8s.io/v1", "ServiceCIDR"),
        ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema"),
        (
            "flowcontrol.apiserver.k8s.io/v1",
            "PriorityLevelConfiguration",
        ),
    ] {
        kinds.push((
            api_version,
            kind,
            kind_schema(vec![("status", conditions_status())]),
        ));
    }

    // Webhook configurations: `webhooks` keyed by name, each with
    // `matchConditions` keyed by name.
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        kinds.push((
            "admissionregistration.k8s.io/v1",
            kind,
            kind_schema(vec![(
                "webhooks",
                merge_list("name", node(vec![("matchConditions", keyed("name"))])),
            )]),
        ));
    }

    // Kinds with only atomic references or selectors besides metadata.
    kinds.push((
        "v1",
        "Event",
        kind_schema(vec![("involvedObject", atomic_obj())]),
    ));
    kinds.push((
        "events.k8s.io/v1",
        "Event",
        kind_schema(vec![("regarding", atomic_obj()), ("related", atomic_obj())]),
    ));
    kinds.push((
        "networking.k8s.io/v1",
        "NetworkPolicy",
        kind_schema(vec![(
            "spec",
            obj(node(vec![("podSelector", atomic_obj())])),
        )]),
    ));

    // Kinds whose only tagged fields are in metadata.
    for (api_version, kind) in [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Endpoints"),
        ("v1", "LimitRange"),
        ("v1", "ResourceQuota"),
        ("v1", "PersistentVolume"),
        ("v1", "Binding"),
        ("apps/v1", "ControllerRevision"),
        ("autoscaling/v1", "Scale"),
        ("autoscaling/v1", "HorizontalPodAutoscaler"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("coordination.k8s.io/v1", "Lease"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("networking.k8s.io/v1", "Ingress"),
        ("networking.k8s.io/v1", "IngressClass"),
        ("networking.k8s.io/v1", "IPAddress"),
        ("node.k8s.io/v1", "RuntimeClass"),
        ("policy/v1", "Eviction"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("storage.k8s.io/v1", "CSIDriver"),
        ("storage.k8s.io/v1", "VolumeAttachment"),
        ("storage.k8s.io/v1", "CSIStorageCapacity"),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicyBinding",
        ),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("apiregistration.k8s.io/v1", "APIService"),
    ] {
        kinds.push((api_version, kind, kind_schema(vec![])));
    }

    let mut table = KindTable::new();
    for (api_version, kind, schema) in kinds {
        table.entry(api_version).or_default().insert(kind, schema);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a dotted path (`[]` steps into list items) and renders the tag.
    fn tag(api_version: &str, kind: &str, path: &str) -> String {
        let Some(mut schema) = PatchSchema::for_kind(api_version, kind) else {
            return "unknown kind".to_owned();
        };
        let mut meta = &*DEFAULT_FIELD;
        for step in path.split('.') {
            meta = schema.field(step);
            schema = &meta.schema;
        }
        let strategy = match meta.strategy {
            Strategy::Default => "default",
            Strategy::Merge => "merge",
            Strategy::Replace => "replace",
        };
        format!(
            "{strategy}{}{}",
            if meta.retain_keys { ",retainKeys" } else { "" },
            meta.merge_key
                .map(|k| format!(" key={k}"))
                .unwrap_or_default()
        )
    }

    #[test]
    fn table_matches_upstream_tags() {
        let cases = [
            ("v1", "Pod", "spec.containers", "merge key=name"),
            ("v1", "Pod", "spec.containers.env", "merge key=name"),
            (
                "v1",
                "Pod",
                "spec.containers.ports",
                "merge key=containerPort",
            ),
            (
                "v1",
                "Pod",
                "spec.containers.volumeMounts",
                "merge key=mountPath",
            ),
            ("v1", "Pod", "spec.containers.args", "default"),
            ("v1", "Pod", "spec.initContainers.env", "merge key=name"),
            ("v1", "Pod", "spec.ephemeralContainers", "merge key=name"),
            ("v1", "Pod", "spec.volumes", "merge,retainKeys key=name"),
            ("v1", "Pod", "spec.tolerations", "default"),
            ("v1", "Pod", "spec.imagePullSecrets", "merge key=name"),
            ("v1", "Pod", "status.conditions", "merge key=type"),
            ("v1", "Pod", "status.containerStatuses", "default"),
            ("v1", "Pod", "metadata.finalizers", "merge"),
            ("v1", "Pod", "metadata.ownerReferences", "merge key=uid"),
            ("v1", "Service", "spec.ports", "merge key=port"),
            ("v1", "Node", "spec.podCIDRs", "merge"),
            ("v1", "Node", "status.addresses", "merge key=type"),
            (
                "apps/v1",
                "Deployment",
                "spec.strategy",
                "default,retainKeys",
            ),
            (
                "apps/v1",
                "Deployment",
                "spec.template.spec.containers.env",
                "merge key=name",
            ),
            (
                "apps/v1",
                "StatefulSet",
                "spec.volumeClaimTemplates",
                "default",
            ),
            (
                "batch/v1",
                "CronJob",
                "spec.jobTemplate.spec.template.spec.containers",
                "merge key=name",
            ),
            (
                "policy/v1",
                "PodDisruptionBudget",
                "spec.selector",
                "replace",
            ),
            ("v1", "ConfigMap", "metadata.finalizers", "merge"),
            ("example.com/v1", "Widget", "spec", "unknown kind"),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .filter_map(|(v, k, p, want)| {
                let got = tag(v, k, p);
                (got != *want).then(|| format!("{v} {k} {p}: got {got}, want {want}"))
            })
            .collect();
        assert!(rendered.is_empty(), "{}", rendered.join("\n"));
    }
}
