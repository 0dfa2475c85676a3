//! `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key` on the
//! properties that carry upstream's `patchStrategy` / `patchMergeKey` struct
//! tags.
//!
//! kubectl 1.32's client-side `apply` computes its strategic merge patch
//! from these documents (`patcher.go`, `buildStrategicMergePatchFromOpenAPIV3`)
//! whenever a kind's PATCH accepts `application/strategic-merge-patch+json`.
//! A list without the tags is atomic to it: it sends the whole `containers`
//! list instead of keyed changes, and a field removed from one container
//! would never be deleted. `k8s-openapi`'s schemas do not carry the tags,
//! so they are kept here, per schema and property, as `k8s.io/api`'s
//! `types.go` (Kubernetes 1.33) declares them. The same facts, arranged per
//! kind, drive the server's own strategic merge in `bulwark-api`.

use serde_json::{Map, Value};

/// One tagged property: schema name, property, `x-kubernetes-patch-strategy`,
/// `x-kubernetes-patch-merge-key`.
#[rustfmt::skip]
type Tag = (&'static str, &'static str, &'static str, Option<&'static str>);

/// The tagged properties of the built-in schemas (those of kinds Bulwark
/// does not serve yet are here too: a tag only applies where its schema is).
#[rustfmt::skip] // A table reads best one row per line.
const TAGS: &[Tag] = &[
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "merge", Some("uid")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", "merge", None),
    ("io.k8s.api.core.v1.Container", "ports", "merge", Some("containerPort")),
    ("io.k8s.api.core.v1.Container", "env", "merge", Some("name")),
    ("io.k8s.api.core.v1.Container", "volumeMounts", "merge", Some("mountPath")),
    ("io.k8s.api.core.v1.Container", "volumeDevices", "merge", Some("devicePath")),
    ("io.k8s.api.core.v1.EphemeralContainer", "ports", "merge", Some("containerPort")),
    ("io.k8s.api.core.v1.EphemeralContainer", "env", "merge", Some("name")),
    ("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts", "merge", Some("mountPath")),
    ("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices", "merge", Some("devicePath")),
    ("io.k8s.api.core.v1.PodSpec", "volumes", "merge,retainKeys", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "containers", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", Some("ip")),
    ("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", "merge", Some("topologyKey")),
    ("io.k8s.api.core.v1.PodSpec", "schedulingGates", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims", "merge,retainKeys", Some("name")),
    ("io.k8s.api.core.v1.PodStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", "merge", Some("ip")),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", "merge", Some("ip")),
    ("io.k8s.api.core.v1.PodStatus", "resourceClaimStatuses", "merge,retainKeys", Some("name")),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", None),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", "merge", Some("type")),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", Some("port")),
    ("io.k8s.api.core.v1.ServiceAccount", "secrets", "merge", Some("name")),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", "retainKeys", None),
    ("io.k8s.api.policy.v1.PodDisruptionBudgetSpec", "selector", "replace", None),
    ("io.k8s.api.storage.v1.CSINodeSpec", "drivers", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration", "webhooks", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration", "webhooks", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhook", "matchConditions", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.MutatingWebhook", "matchConditions", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "matchConditions", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "variables", "merge", Some("name")),
    ("io.k8s.api.core.v1.NodeStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.NamespaceStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.ServiceStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.ReplicationControllerStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.ComponentStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.batch.v1.JobStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.policy.v1.PodDisruptionBudgetStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.certificates.v1.CertificateSigningRequestStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.networking.v1.ServiceCIDRStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.flowcontrol.v1.FlowSchemaStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationStatus", "conditions", "merge", Some("type")),
];

/// Adds the tags to the properties of `schemas` that have them.
pub(crate) fn add_patch_tags(schemas: &mut Map<String, Value>) {
    for &(schema, property, strategy, key) in TAGS {
        let Some(Value::Object(p)) = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|props| props.get_mut(property))
        else {
            continue;
        };
        p.insert("x-kubernetes-patch-strategy".to_owned(), strategy.into());
        if let Some(key) = key {
            p.insert("x-kubernetes-patch-merge-key".to_owned(), key.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::Components;
    use crate::kinds::builtins;
    use k8s_openapi::api::{
        admissionregistration, certificates, core, flowcontrol, networking, storage,
    };

    /// Every row names a property that exists: a typo would silently tag
    /// nothing, and kubectl would send whole lists again.
    #[test]
    fn every_tag_names_an_existing_property() {
        let mut components = Components::new();
        for b in builtins() {
            components.kind(b.gvk);
        }
        // Kinds Bulwark does not serve yet, whose schemas some rows name.
        components.named::<admissionregistration::v1::ValidatingWebhookConfiguration>();
        components.named::<admissionregistration::v1::MutatingWebhookConfiguration>();
        components.named::<admissionregistration::v1::ValidatingAdmissionPolicy>();
        components.named::<certificates::v1::CertificateSigningRequest>();
        components.named::<core::v1::ComponentStatus>();
        components.named::<flowcontrol::v1::FlowSchema>();
        components.named::<flowcontrol::v1::PriorityLevelConfiguration>();
        components.named::<networking::v1::ServiceCIDR>();
        components.named::<storage::v1::CSINode>();
        let schemas = components.into_schemas();
        let missing: Vec<String> = TAGS
            .iter()
            .filter(|(schema, property, ..)| {
                schemas
                    .get(*schema)
                    .and_then(|s| {
                        s.pointer(&format!(
                            "/properties/{property}/x-kubernetes-patch-strategy"
                        ))
                    })
                    .is_none()
            })
            .map(|(schema, property, ..)| format!("{schema}.{property}"))
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
    }
}
