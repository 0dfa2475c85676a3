//! Defaulting, as upstream's `SetDefaults_*` functions fill fields a client
//! left out (so `kubectl get -o yaml` shows what a Kubernetes user expects).

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// Fills defaults into a new or updated object of `resource`'s kind.
pub(crate) fn apply(resource: &ResourceType, object: &mut Value) {
    match (resource.group, resource.kind) {
        ("", "Pod") => {
            if let Some(spec) = object.get_mut("spec") {
                pod_spec(spec);
            }
            set_if_absent(object, "status", json!({}));
            set_if_absent(&mut object["status"], "phase", json!("Pending"));
            let qos = qos_class(&object["spec"]);
            set_if_absent(&mut object["status"], "qosClass", json!(qos));
        }
        ("", "Namespace") => {
            let name = object
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(labels) = labels.as_object_mut() {
                    labels.insert("kubernetes.io/metadata.name".into(), name);
                }
            }
            set_if_absent(object, "spec", json!({}));
            set_if_absent(&mut object["spec"], "finalizers", json!(["kubernetes"]));
            set_if_absent(object, "status", json!({}));
            set_if_absent(&mut object["status"], "phase", json!("Active"));
        }
        ("", "Service") => service(object),
        ("", "Secret") => secret(object),
        ("", "PodTemplate") => template(object.pointer_mut("/template")),
        ("apps", "Deployment") => {
            set_if_absent(object, "spec", json!({}));
            let spec = &mut object["spec"];
            set_if_absent(spec, "replicas", json!(1));
            set_if_absent(spec, "strategy", json!({"type": "RollingUpdate"}));
            if spec["strategy"]["type"] == "RollingUpdate" {
                set_if_absent(&mut spec["strategy"], "rollingUpdate", json!({}));
                set_if_absent(
                    &mut spec["strategy"]["rollingUpdate"],
                    "maxSurge",
                    json!("25%"),
                );
                set_if_absent(
                    &mut spec["strategy"]["rollingUpdate"],
                    "maxUnavailable",
                    json!("25%"),
                );
            }
            set_if_absent(spec, "revisionHistoryLimit", json!(10));
            set_if_absent(spec, "progressDeadlineSeconds", json!(600));
            template(spec.get_mut("template"));
        }
        ("apps", "ReplicaSet") => {
            set_if_absent(object, "spec", json!({}));
            set_if_absent(&mut object["spec"], "replicas", json!(1));
            template(object["spec"].get_mut("template"));
        }
        ("apps", "StatefulSet") => {
            set_if_absent(object, "spec", json!({}));
            let spec = &mut object["spec"];
            set_if_absent(spec, "replicas", json!(1));
            set_if_absent(spec, "podManagementPolicy", json!("OrderedReady"));
            set_if_absent(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            set_if_absent(spec, "revisionHistoryLimit", json!(10));
            template(spec.get_mut("template"));
        }
        ("apps", "DaemonSet") => {
            set_if_absent(object, "spec", json!({}));
            let spec = &mut object["spec"];
            set_if_absent(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            set_if_absent(spec, "revisionHistoryLimit", json!(10));
            template(spec.get_mut("template"));
        }
        ("batch", "Job") => {
            set_if_absent(object, "spec", json!({}));
            job_spec(&mut object["spec"]);
        }
        ("batch", "CronJob") => {
            set_if_absent(object, "spec", json!({}));
            let spec = &mut object["spec"];
            set_if_absent(spec, "concurrencyPolicy", json!("Allow"));
            set_if_absent(spec, "suspend", json!(false));
            set_if_absent(spec, "successfulJobsHistoryLimit", json!(3));
            set_if_absent(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(job) = spec.pointer_mut("/jobTemplate/spec") {
                job_spec(job);
            }
        }
        _ => {}
    }
}

fn set_if_absent(object: &mut Value, field: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.entry(field).or_insert(value);
    }
}

fn template(template: Option<&mut Value>) {
    if let Some(spec) = template.and_then(|t| t.get_mut("spec")) {
        pod_spec(spec);
    }
}

fn job_spec(spec: &mut Value) {
    let unset = spec.get("completions").is_none() && spec.get("parallelism").is_none();
    if unset {
        set_if_absent(spec, "completions", json!(1));
        set_if_absent(spec, "parallelism", json!(1));
    }
    set_if_absent(spec, "parallelism", json!(1));
    set_if_absent(spec, "backoffLimit", json!(6));
    set_if_absent(spec, "completionMode", json!("NonIndexed"));
    set_if_absent(spec, "suspend", json!(false));
    template(spec.get_mut("template"));
}

/// `SetDefaults_PodSpec` and `SetDefaults_Container`, the fields users see.
pub(crate) fn pod_spec(spec: &mut Value) {
    set_if_absent(spec, "restartPolicy", json!("Always"));
    set_if_absent(spec, "dnsPolicy", json!("ClusterFirst"));
    set_if_absent(spec, "terminationGracePeriodSeconds", json!(30));
    set_if_absent(spec, "schedulerName", json!("default-scheduler"));
    set_if_absent(spec, "securityContext", json!({}));
    set_if_absent(spec, "enableServiceLinks", json!(true));
    set_if_absent(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    set_if_absent(spec, "priority", json!(0));
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for container in containers {
                self::container(container);
            }
        }
    }
}

fn container(container: &mut Value) {
    let image = container
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    set_if_absent(container, "imagePullPolicy", json!(pull_policy(&image)));
    set_if_absent(
        container,
        "terminationMessagePath",
        json!("/dev/termination-log"),
    );
    set_if_absent(container, "terminationMessagePolicy", json!("File"));
    set_if_absent(container, "resources", json!({}));
    if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            set_if_absent(port, "protocol", json!("TCP"));
        }
    }
}

/// `Always` for `:latest` or an untagged image, `IfNotPresent` otherwise.
fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// The QoS class upstream derives from requests and limits.
pub(crate) fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c.pointer("/resources/requests");
        let limits = c.pointer("/resources/limits");
        for resource in ["cpu", "memory"] {
            let req = requests.and_then(|r| r.get(resource));
            let lim = limits.and_then(|l| l.get(resource));
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn service(object: &mut Value) {
    set_if_absent(object, "spec", json!({}));
    let spec = &mut object["spec"];
    set_if_absent(spec, "type", json!("ClusterIP"));
    set_if_absent(spec, "sessionAffinity", json!("None"));
    set_if_absent(spec, "internalTrafficPolicy", json!("Cluster"));
    set_if_absent(spec, "ipFamilyPolicy", json!("SingleStack"));
    set_if_absent(spec, "ipFamilies", json!(["IPv4"]));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            set_if_absent(port, "protocol", json!("TCP"));
            if let Some(p) = port.get("port").cloned() {
                set_if_absent(port, "targetPort", p);
            }
        }
    }
    set_if_absent(object, "status", json!({"loadBalancer": {}}));
}

/// `stringData` is write-only: merged into `data` (base64) and dropped.
fn secret(object: &mut Value) {
    use base64::Engine as _;
    set_if_absent(object, "type", json!("Opaque"));
    let Some(Value::Object(string_data)) =
        object.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    set_if_absent(object, "data", json!({}));
    if let Some(data) = object["data"].as_object_mut() {
        for (key, value) in string_data {
            let text = value.as_str().unwrap_or_default();
            data.insert(
                key,
                json!(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, policy) in [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("registry:5000/busybox", "Always"),
            ("registry:5000/busybox:1.36", "IfNotPresent"),
            ("busybox@sha256:abc", "IfNotPresent"),
        ] {
            assert_eq!(pull_policy(image), policy, "{image}");
        }
    }

    #[test]
    fn qos_classes() {
        let best = json!({"containers": [{"name": "a"}]});
        let guaranteed = json!({"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]});
        let burstable =
            json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(&best), "BestEffort");
        assert_eq!(qos_class(&guaranteed), "Guaranteed");
        assert_eq!(qos_class(&burstable), "Burstable");
    }
}
