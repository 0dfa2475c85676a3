//! Which Rust type describes which built-in kind, and what to do for kinds
//! that have none (custom resources).
//!
//! The schemas themselves come from `k8s-openapi`'s `schemars::JsonSchema`
//! impls, whose schema names are already upstream's definition names
//! (`io.k8s.api.core.v1.Pod`), so a `$ref` this crate emits names what
//! kube-apiserver's would.

use k8s_openapi::Resource;
use k8s_openapi::schemars::{JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;

/// A group, version and kind, in the order `x-kubernetes-group-version-kind`
/// entries sort by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Gvk<'a> {
    pub(crate) group: &'a str,
    pub(crate) version: &'a str,
    pub(crate) kind: &'a str,
}

impl Gvk<'_> {
    /// The extension object upstream puts on operations and (in an array) on
    /// schemas: exactly these three keys, which kubectl explain compares as a
    /// whole.
    pub(crate) fn to_json(self) -> serde_json::Value {
        serde_json::json!({"group": self.group, "version": self.version, "kind": self.kind})
    }
}

/// How a built-in kind is served when it is a resource of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Create, read, update, patch, delete, list and watch.
    Crud,
    /// Only POSTed, never stored (reviews, bindings, token requests).
    /// Scale and Eviction are here too, though they are only reached
    /// through a parent's subresource.
    CreateOnly,
}

/// One built-in kind: its identity and how to put its schema (and every
/// schema it references) into a generator.
pub(crate) struct Builtin {
    pub(crate) gvk: Gvk<'static>,
    pub(crate) shape: Shape,
    pub(crate) schema_name: fn() -> Cow<'static, str>,
    pub(crate) generate: fn(&mut SchemaGenerator) -> Schema,
}

fn builtin<T: Resource + JsonSchema>(shape: Shape) -> Builtin {
    Builtin {
        gvk: Gvk {
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
        },
        shape,
        schema_name: T::schema_name,
        generate: SchemaGenerator::subschema_for::<T>,
    }
}

/// Every built-in kind the generator knows, in no particular order.
pub(crate) fn builtins() -> Vec<Builtin> {
    use Shape::{CreateOnly, Crud};
    use k8s_openapi::api::{
        apps, authentication, authorization, autoscaling, batch, coordination, core, discovery,
        events, networking, policy, rbac, scheduling,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    vec![
        builtin::<core::v1::Namespace>(Crud),
        builtin::<core::v1::Pod>(Crud),
        builtin::<core::v1::Node>(Crud),
        builtin::<core::v1::Service>(Crud),
        builtin::<core::v1::Endpoints>(Crud),
        builtin::<core::v1::ConfigMap>(Crud),
        builtin::<core::v1::Secret>(Crud),
        builtin::<core::v1::ServiceAccount>(Crud),
        builtin::<core::v1::Event>(Crud),
        builtin::<core::v1::PodTemplate>(Crud),
        builtin::<core::v1::LimitRange>(Crud),
        builtin::<core::v1::ResourceQuota>(Crud),
        builtin::<core::v1::PersistentVolume>(Crud),
        builtin::<core::v1::PersistentVolumeClaim>(Crud),
        builtin::<core::v1::ReplicationController>(Crud),
        builtin::<core::v1::Binding>(CreateOnly),
        builtin::<apps::v1::Deployment>(Crud),
        builtin::<apps::v1::ReplicaSet>(Crud),
        builtin::<apps::v1::StatefulSet>(Crud),
        builtin::<apps::v1::DaemonSet>(Crud),
        builtin::<apps::v1::ControllerRevision>(Crud),
        builtin::<batch::v1::Job>(Crud),
        builtin::<batch::v1::CronJob>(Crud),
        builtin::<coordination::v1::Lease>(Crud),
        builtin::<discovery::v1::EndpointSlice>(Crud),
        builtin::<policy::v1::PodDisruptionBudget>(Crud),
        builtin::<policy::v1::Eviction>(CreateOnly),
        builtin::<networking::v1::NetworkPolicy>(Crud),
        builtin::<networking::v1::Ingress>(Crud),
        builtin::<networking::v1::IngressClass>(Crud),
        builtin::<rbac::v1::Role>(Crud),
        builtin::<rbac::v1::RoleBinding>(Crud),
        builtin::<rbac::v1::ClusterRole>(Crud),
        builtin::<rbac::v1::ClusterRoleBinding>(Crud),
        builtin::<events::v1::Event>(Crud),
        builtin::<scheduling::v1::PriorityClass>(Crud),
        builtin::<autoscaling::v1::Scale>(CreateOnly),
        builtin::<autoscaling::v1::HorizontalPodAutoscaler>(Crud),
        builtin::<authentication::v1::TokenReview>(CreateOnly),
        builtin::<authentication::v1::TokenRequest>(CreateOnly),
        builtin::<authentication::v1::SelfSubjectReview>(CreateOnly),
        builtin::<authorization::v1::SubjectAccessReview>(CreateOnly),
        builtin::<authorization::v1::SelfSubjectAccessReview>(CreateOnly),
        builtin::<authorization::v1::SelfSubjectRulesReview>(CreateOnly),
        builtin::<authorization::v1::LocalSubjectAccessReview>(CreateOnly),
        builtin::<apiextensions::v1::CustomResourceDefinition>(Crud),
    ]
}

/// The built-in kind with this group, version and kind, if there is one.
pub(crate) fn find_builtin(gvk: Gvk<'_>) -> Option<Builtin> {
    builtins().into_iter().find(|b| b.gvk == gvk)
}

/// The schema name upstream gives a custom resource's kind: the group's
/// labels reversed, then version and kind (`stable.example.com/v1 CronTab`
/// is `com.example.stable.v1.CronTab`).
pub(crate) fn custom_schema_name(gvk: Gvk<'_>) -> String {
    let mut parts: Vec<&str> = gvk
        .group
        .split('.')
        .filter(|p| !p.is_empty())
        .rev()
        .collect();
    parts.push(gvk.version);
    parts.push(gvk.kind);
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_is_named_as_upstream_names_it() {
        for b in builtins() {
            let name = (b.schema_name)();
            assert!(name.starts_with("io.k8s."), "{name}");
            assert!(name.ends_with(&format!(".{}", b.gvk.kind)), "{name}");
        }
    }

    #[test]
    fn no_two_builtins_share_a_gvk() {
        let mut all: Vec<_> = builtins().into_iter().map(|b| b.gvk).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn custom_names_reverse_the_group() {
        let name = custom_schema_name(Gvk {
            group: "stable.example.com",
            version: "v1",
            kind: "CronTab",
        });
        assert_eq!(name, "com.example.stable.v1.CronTab");
    }
}
