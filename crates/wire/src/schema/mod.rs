//! The schema table: for every message we decode, its fields as
//! (number, JSON name, shape, type), plus the registry from
//! (apiVersion, kind) to the top-level message.
//!
//! Field numbers and names are facts from upstream's `generated.proto`
//! files; whether a Go field is a pointer and carries `omitempty` comes from
//! upstream's `types.go` (it decides [`Field::omit_zero`]). The submodules
//! are one per upstream package and hold data only: every message reachable
//! from a registered kind, each with all its fields, status included. They
//! were written out from upstream's files (k8s.io/api and apimachinery, as
//! of a master newer than 1.33) by a one-off script that is not kept, and
//! reviewed.
//!
//! To add a field or a kind: take the number and name from upstream's
//! `generated.proto`, mark `.omit_zero()` if the Go field is a non-pointer
//! scalar tagged `omitempty`, and `.inline()` if it is an embedded struct.
//! Fields of alpha APIs outside this table (batch/v1
//! `JobSchedulingConfiguration` fields of type `scheduling/v1alpha3`) are
//! left out: they decode as unknown fields.

mod apps;
mod authentication;
mod authorization;
mod autoscaling;
mod batch;
mod certificates;
mod coordination;
mod core;
mod discovery;
mod events;
mod meta;
mod networking;
mod policy;
mod rbac;
mod scheduling;

/// One protobuf message: a Go struct in upstream's API types.
#[derive(Debug)]
pub(crate) struct Message {
    /// The message's name, as upstream's Go struct is named.
    // Read by the table's own tests and in `Debug` output only.
    #[cfg_attr(not(test), expect(dead_code))]
    pub(crate) name: &'static str,
    /// Its fields, ordered by number.
    pub(crate) fields: &'static [Field],
}

impl Message {
    pub(crate) const fn new(name: &'static str, fields: &'static [Field]) -> Self {
        Message { name, fields }
    }

    /// The field with this number, if the schema knows it.
    pub(crate) fn field(&self, number: u64) -> Option<&'static Field> {
        self.fields.iter().find(|f| u64::from(f.number) == number)
    }
}

/// One field of a [`Message`].
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) number: u32,
    /// The name in the JSON API (which upstream also uses in the `.proto`).
    pub(crate) name: &'static str,
    pub(crate) shape: Shape,
    pub(crate) ty: Ty,
    /// A non-pointer Go scalar tagged `omitempty`: its zero value is absent
    /// from the JSON form, though Kubernetes' protobuf writes it.
    pub(crate) omit_zero: bool,
    /// An embedded Go struct (`json:",inline"`): its fields belong to the
    /// enclosing JSON object (e.g. `Volume.volumeSource`, `Probe.handler`).
    pub(crate) inline: bool,
}

impl Field {
    pub(crate) const fn omit_zero(self) -> Self {
        Field {
            omit_zero: true,
            ..self
        }
    }

    pub(crate) const fn inline(self) -> Self {
        Field {
            inline: true,
            ..self
        }
    }
}

/// How often a field occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `optional X`: one value, the last occurrence wins.
    One,
    /// `repeated X`: a JSON array.
    Repeated,
    /// `map<string, X>`: repeated entries `{key = 1, value = 2}`; a JSON object.
    Map,
}

/// What a field holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    /// `string`.
    Str,
    /// `bytes`: a base64 string in JSON, as Go encodes `[]byte`.
    Bytes,
    /// `int32`.
    I32,
    /// `int64`.
    I64,
    /// `bool`.
    Bool,
    /// `meta.v1.Time`: `{seconds = 1, nanos = 2}`, RFC 3339 to the second.
    Time,
    /// `meta.v1.MicroTime`: like `Time`, RFC 3339 to the microsecond.
    MicroTime,
    /// `resource.Quantity`: `{string = 1}`, a JSON string.
    Quantity,
    /// `intstr.IntOrString`: `{type = 1, intVal = 2, strVal = 3}`.
    IntOrString,
    /// `runtime.RawExtension`: `{raw = 1}`, embedded JSON.
    Raw,
    /// `meta.v1.FieldsV1`: `{Raw = 1}`, embedded JSON.
    FieldsV1,
    /// A `[]string` type wrapped for protobuf (`ExtraValue`):
    /// `{repeated string items = 1}`, a JSON array.
    StrList,
    /// Another message: a JSON object.
    Msg(&'static Message),
}

pub(crate) const fn one(number: u32, name: &'static str, ty: Ty) -> Field {
    field(number, name, Shape::One, ty)
}

pub(crate) const fn rep(number: u32, name: &'static str, ty: Ty) -> Field {
    field(number, name, Shape::Repeated, ty)
}

pub(crate) const fn map(number: u32, name: &'static str, ty: Ty) -> Field {
    field(number, name, Shape::Map, ty)
}

const fn field(number: u32, name: &'static str, shape: Shape, ty: Ty) -> Field {
    Field {
        number,
        name,
        shape,
        ty,
        omit_zero: false,
        inline: false,
    }
}

/// Top-level kinds: (group, version, kind, message). The core group is "".
static KINDS: &[(&str, &str, &str, &Message)] = &[
    ("", "v1", "ConfigMap", &core::CONFIG_MAP),
    ("", "v1", "Secret", &core::SECRET),
    ("", "v1", "Namespace", &core::NAMESPACE),
    ("", "v1", "ServiceAccount", &core::SERVICE_ACCOUNT),
    ("", "v1", "Service", &core::SERVICE),
    ("", "v1", "Pod", &core::POD),
    ("", "v1", "PodTemplate", &core::POD_TEMPLATE),
    (
        "",
        "v1",
        "ReplicationController",
        &core::REPLICATION_CONTROLLER,
    ),
    ("", "v1", "ResourceQuota", &core::RESOURCE_QUOTA),
    ("", "v1", "LimitRange", &core::LIMIT_RANGE),
    ("", "v1", "Endpoints", &core::ENDPOINTS),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        &core::PERSISTENT_VOLUME_CLAIM,
    ),
    ("", "v1", "PersistentVolume", &core::PERSISTENT_VOLUME),
    ("", "v1", "Node", &core::NODE),
    ("", "v1", "Event", &core::EVENT),
    ("", "v1", "Binding", &core::BINDING),
    ("apps", "v1", "Deployment", &apps::DEPLOYMENT),
    ("apps", "v1", "ReplicaSet", &apps::REPLICA_SET),
    ("apps", "v1", "StatefulSet", &apps::STATEFUL_SET),
    ("apps", "v1", "DaemonSet", &apps::DAEMON_SET),
    (
        "apps",
        "v1",
        "ControllerRevision",
        &apps::CONTROLLER_REVISION,
    ),
    ("batch", "v1", "Job", &batch::JOB),
    ("batch", "v1", "CronJob", &batch::CRON_JOB),
    ("rbac.authorization.k8s.io", "v1", "Role", &rbac::ROLE),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        &rbac::CLUSTER_ROLE,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        &rbac::ROLE_BINDING,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        &rbac::CLUSTER_ROLE_BINDING,
    ),
    ("policy", "v1", "Eviction", &policy::EVICTION),
    // kubectl drain falls back to v1beta1 Evictions; the message is the same.
    ("policy", "v1beta1", "Eviction", &policy::EVICTION),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        &policy::POD_DISRUPTION_BUDGET,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        &authorization::SELF_SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        &authorization::SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        &authorization::LOCAL_SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        &authorization::SELF_SUBJECT_RULES_REVIEW,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        &authentication::SELF_SUBJECT_REVIEW,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "TokenRequest",
        &authentication::TOKEN_REQUEST,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        &authentication::TOKEN_REVIEW,
    ),
    ("networking.k8s.io", "v1", "Ingress", &networking::INGRESS),
    (
        "networking.k8s.io",
        "v1",
        "IngressClass",
        &networking::INGRESS_CLASS,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        &networking::NETWORK_POLICY,
    ),
    (
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        &scheduling::PRIORITY_CLASS,
    ),
    ("coordination.k8s.io", "v1", "Lease", &coordination::LEASE),
    (
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        &certificates::CERTIFICATE_SIGNING_REQUEST,
    ),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        &discovery::ENDPOINT_SLICE,
    ),
    ("events.k8s.io", "v1", "Event", &events::EVENT),
    ("autoscaling", "v1", "Scale", &autoscaling::SCALE),
    (
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        &autoscaling::HORIZONTAL_POD_AUTOSCALER,
    ),
];

/// The message for a top-level object, by its `apiVersion` and `kind`.
pub(crate) fn lookup(api_version: &str, kind: &str) -> Option<&'static Message> {
    // Every group version registers DeleteOptions (meta.k8s.io/v1 included).
    if kind == "DeleteOptions" {
        return Some(&meta::DELETE_OPTIONS);
    }
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    KINDS
        .iter()
        .find(|(g, v, k, _)| *g == group && *v == version && *k == kind)
        .map(|(_, _, _, message)| *message)
}

/// Every (apiVersion, kind) that [`lookup`] knows, DeleteOptions aside.
#[cfg(test)]
pub(crate) fn kinds() -> impl Iterator<Item = (String, &'static str)> {
    KINDS.iter().map(|(group, version, kind, _)| {
        let api_version = if group.is_empty() {
            (*version).to_owned()
        } else {
            format!("{group}/{version}")
        };
        (api_version, *kind)
    })
}
