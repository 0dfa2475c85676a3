//! Defaulting of the built-in kinds, as kube-apiserver 1.33 defaults them on
//! every write (`SetDefaults_*` in `pkg/apis/{core,apps,batch}/v1`, with
//! the feature gates enabled by default in 1.33).
//!
//! Registry work that needs server state (UIDs, allocated IPs, selectors
//! generated from the UID, `status.phase` of a new pod) is not defaulting
//! and is left to the server.
//!
//! ```
//! use bulwark_api::defaults::apply_defaults;
//! use serde_json::json;
//!
//! let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
//! apply_defaults("v1", "Pod", &mut pod);
//! assert_eq!(pod["spec"]["restartPolicy"], "Always");
//! assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always"); // no tag means :latest
//! ```

use serde_json::{Map, Value, json};

type Object = Map<String, Value>;

/// Fills in the defaults of an object of this `apiVersion` and `kind`.
/// Unknown kinds are left as they are.
pub fn apply_defaults(api_version: &str, kind: &str, obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    match (api_version, kind) {
        ("v1", "Pod") => pod(o),
        ("v1", "PodTemplate") => {
            with(o, "template", |t| with(t, "spec", pod_spec));
        }
        ("v1", "ReplicationController") => replication_controller(o),
        ("v1", "Service") => service(o),
        ("v1", "Secret") => default_str(o, "type", "Opaque"),
        ("v1", "Namespace") => namespace(o),
        ("v1", "Endpoints") => {
            for subset in list(o, "subsets") {
                for port in list(subset, "ports") {
                    default_str(port, "protocol", "TCP");
                }
            }
        }
        ("v1", "PersistentVolume") => {
            with(o, "spec", |s| {
                default_str(s, "persistentVolumeReclaimPolicy", "Retain");
                default_str(s, "volumeMode", "Filesystem");
            });
            status_phase(o, "Pending");
        }
        ("v1", "PersistentVolumeClaim") => persistent_volume_claim(o),
        ("v1", "Node") => {
            with(o, "status", |s| {
                if is_unset(s.get("allocatable"))
                    && let Some(capacity) = s.get("capacity").filter(|c| c.is_object()).cloned()
                {
                    s.insert("allocatable".to_owned(), capacity);
                }
            });
        }
        ("v1", "LimitRange") => {
            with(o, "spec", |s| {
                for item in list(s, "limits") {
                    limit_range_item(item);
                }
            });
        }
        ("apps/v1", "Deployment") => deployment(o),
        ("apps/v1", "ReplicaSet") => {
            with(o, "spec", |s| {
                default_val(s, "replicas", json!(1));
                template_spec(s);
            });
        }
        ("apps/v1", "StatefulSet") => stateful_set(o),
        ("apps/v1", "DaemonSet") => daemon_set(o),
        ("batch/v1", "Job") => job(o),
        ("batch/v1", "CronJob") => cron_job(o),
        _ => {}
    }
}

// ---- helpers ----

/// Missing or null: what a nil pointer decodes from.
fn is_unset(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

/// A pointer field: set when missing or null.
fn default_val(o: &mut Object, key: &str, v: Value) {
    if is_unset(o.get(key)) {
        o.insert(key.to_owned(), v);
    }
}

/// A string field: set when missing, null or empty.
fn default_str(o: &mut Object, key: &str, v: &str) {
    if is_unset(o.get(key)) || o.get(key).and_then(Value::as_str) == Some("") {
        o.insert(key.to_owned(), json!(v));
    }
}

/// A non-pointer number: set when missing, null or zero.
fn default_nonzero(o: &mut Object, key: &str, n: i64) {
    if is_unset(o.get(key)) || o.get(key).and_then(Value::as_i64) == Some(0) {
        o.insert(key.to_owned(), json!(n));
    }
}

/// Runs `f` on the object at `key`, if it is one.
fn with(o: &mut Object, key: &str, f: impl FnOnce(&mut Object)) {
    if let Some(Value::Object(child)) = o.get_mut(key) {
        f(child);
    }
}

/// Runs `f` on the object at `key`, creating it when absent (a Go value
/// struct or a pointer the defaulter allocates).
fn with_created(o: &mut Object, key: &str, f: impl FnOnce(&mut Object)) {
    if is_unset(o.get(key)) {
        o.insert(key.to_owned(), json!({}));
    }
    with(o, key, f);
}

/// The objects in the list at `key`.
fn list<'a>(o: &'a mut Object, key: &str) -> impl Iterator<Item = &'a mut Object> {
    o.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn status_phase(o: &mut Object, phase: &str) {
    with_created(o, "status", |s| default_str(s, "phase", phase));
}

// ---- core/v1 ----

/// `parsers.ParseImageName`'s tag: `latest` when neither tag nor digest.
fn image_tag(image: &str) -> &str {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    // The tag follows the last ':' after the last '/' (a registry port is not a tag).
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag,
        None if digest.is_some() => "",
        None => "latest",
    }
}

fn container(c: &mut Object) {
    if is_unset(c.get("imagePullPolicy"))
        || c.get("imagePullPolicy").and_then(Value::as_str) == Some("")
    {
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let policy = if image_tag(image) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".to_owned(), json!(policy));
    }
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    for port in list(c, "ports") {
        default_str(port, "protocol", "TCP");
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        with(c, probe, |p| {
            default_nonzero(p, "timeoutSeconds", 1);
            default_nonzero(p, "periodSeconds", 10);
            default_nonzero(p, "successThreshold", 1);
            default_nonzero(p, "failureThreshold", 3);
            with(p, "httpGet", |h| {
                default_str(h, "path", "/");
                default_str(h, "scheme", "HTTP");
            });
        });
    }
    for hook in ["postStart", "preStop"] {
        with(c, "lifecycle", |l| {
            with(l, hook, |h| {
                with(h, "httpGet", |g| {
                    default_str(g, "path", "/");
                    default_str(g, "scheme", "HTTP");
                });
            });
        });
    }
    for env in list(c, "env") {
        with(env, "valueFrom", |v| {
            with(v, "fieldRef", |f| default_str(f, "apiVersion", "v1"));
        });
    }
}

fn volume(v: &mut Object) {
    let has_source = v.iter().any(|(k, val)| k != "name" && !val.is_null());
    if !has_source {
        v.insert("emptyDir".to_owned(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        with(v, source, |s| default_val(s, "defaultMode", json!(420)));
    }
    with(v, "projected", |p| {
        for src in list(p, "sources") {
            with(src, "serviceAccountToken", |t| {
                default_val(t, "expirationSeconds", json!(3600));
            });
            with(src, "downwardAPI", |d| {
                for item in list(d, "items") {
                    with(item, "fieldRef", |f| default_str(f, "apiVersion", "v1"));
                }
            });
        }
    });
    with(v, "downwardAPI", |d| {
        for item in list(d, "items") {
            with(item, "fieldRef", |f| default_str(f, "apiVersion", "v1"));
        }
    });
    with(v, "hostPath", |h| default_val(h, "type", json!("")));
    with(v, "ephemeral", |e| {
        with(e, "volumeClaimTemplate", |t| {
            with(t, "spec", |s| default_str(s, "volumeMode", "Filesystem"));
        });
    });
}

/// `SetDefaults_PodSpec` and what it holds (containers, volumes): for every
/// pod spec, in pods and in templates.
fn pod_spec(s: &mut Object) {
    default_str(s, "dnsPolicy", "ClusterFirst");
    default_str(s, "restartPolicy", "Always");
    default_val(s, "securityContext", json!({}));
    default_val(s, "terminationGracePeriodSeconds", json!(30));
    default_str(s, "schedulerName", "default-scheduler");
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        list(s, key).for_each(container);
    }
    list(s, "volumes").for_each(volume);
}

/// `spec.template.spec` of a workload.
fn template_spec(spec: &mut Object) {
    with(spec, "template", |t| with(t, "spec", pod_spec));
}

/// `SetDefaults_Pod`: only on pods, after the pod spec.
fn pod(o: &mut Object) {
    with(o, "spec", |s| {
        pod_spec(s);
        for key in ["containers", "initContainers"] {
            let resize = key == "containers";
            for c in list(s, key) {
                requests_from_limits(c);
                if resize {
                    resize_policy(c);
                }
            }
        }
        default_val(s, "enableServiceLinks", json!(true));
        if s.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
            for key in ["containers", "initContainers"] {
                for c in list(s, key) {
                    for port in list(c, "ports") {
                        if port.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0
                            && let Some(cp) = port.get("containerPort").cloned()
                        {
                            port.insert("hostPort".to_owned(), cp);
                        }
                    }
                }
            }
        }
    });
}

/// Requests default to limits, resource by resource.
fn requests_from_limits(c: &mut Object) {
    with(c, "resources", |r| {
        let Some(Value::Object(limits)) = r.get("limits").cloned() else {
            return;
        };
        with_created(r, "requests", |req| {
            for (k, v) in limits {
                req.entry(k).or_insert(v);
            }
        });
    });
}

/// In-place resize (beta, on by default in 1.33): cpu and memory requests
/// get a `NotRequired` resize policy unless one is given.
fn resize_policy(c: &mut Object) {
    let requested: Vec<&str> = ["cpu", "memory"]
        .into_iter()
        .filter(|r| c.pointer_get(&["resources", "requests", r]).is_some())
        .collect();
    if requested.is_empty() {
        return;
    }
    let have: Vec<String> = c
        .get("resizePolicy")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            p.get("resourceName")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    let missing: Vec<Value> = requested
        .into_iter()
        .filter(|r| !have.iter().any(|h| h == r))
        .map(|r| json!({"resourceName": r, "restartPolicy": "NotRequired"}))
        .collect();
    if missing.is_empty() {
        return;
    }
    if !c.get("resizePolicy").is_some_and(Value::is_array) {
        c.insert("resizePolicy".to_owned(), json!([]));
    }
    if let Some(Value::Array(policies)) = c.get_mut("resizePolicy") {
        policies.extend(missing);
    }
}

trait PointerGet {
    fn pointer_get(&self, path: &[&str]) -> Option<&Value>;
}

impl PointerGet for Object {
    fn pointer_get(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        rest.iter().try_fold(self.get(*first)?, |v, k| v.get(*k))
    }
}

fn replication_controller(o: &mut Object) {
    let template_labels = o
        .pointer_get(&["spec", "template", "metadata", "labels"])
        .filter(|l| l.is_object())
        .cloned();
    if let Some(labels) = template_labels {
        with(o, "spec", |s| {
            if s.get("selector")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
            {
                s.insert("selector".to_owned(), labels.clone());
            }
        });
        with_created(o, "metadata", |m| {
            if m.get("labels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
            {
                m.insert("labels".to_owned(), labels);
            }
        });
    }
    with(o, "spec", |s| {
        default_val(s, "replicas", json!(1));
        template_spec(s);
    });
}

fn service(o: &mut Object) {
    with_created(o, "spec", |s| {
        default_str(s, "sessionAffinity", "None");
        match s.get("sessionAffinity").and_then(Value::as_str) {
            Some("None") => {
                s.remove("sessionAffinityConfig");
            }
            Some("ClientIP") => {
                let timeout =
                    s.pointer_get(&["sessionAffinityConfig", "clientIP", "timeoutSeconds"]);
                if is_unset(timeout) {
                    s.insert(
                        "sessionAffinityConfig".to_owned(),
                        json!({"clientIP": {"timeoutSeconds": 10800}}),
                    );
                }
            }
            _ => {}
        }
        default_str(s, "type", "ClusterIP");
        for port in list(s, "ports") {
            default_str(port, "protocol", "TCP");
            let target = port.get("targetPort");
            if is_unset(target) || target == Some(&json!(0)) || target == Some(&json!("")) {
                let p = port.get("port").cloned().unwrap_or(json!(0));
                port.insert("targetPort".to_owned(), p);
            }
        }
        let kind = s
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let external_ips = s
            .get("externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if matches!(kind.as_str(), "NodePort" | "LoadBalancer") || external_ips {
            default_str(s, "externalTrafficPolicy", "Cluster");
        }
        if matches!(kind.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
            default_val(s, "internalTrafficPolicy", json!("Cluster"));
        }
        if kind == "LoadBalancer" {
            default_val(s, "allocateLoadBalancerNodePorts", json!(true));
        }
    });
}

fn namespace(o: &mut Object) {
    let name = o
        .pointer_get(&["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !name.is_empty() {
        with_created(o, "metadata", |m| {
            with_created(m, "labels", |l| {
                l.insert("kubernetes.io/metadata.name".to_owned(), json!(name));
            });
        });
    }
    status_phase(o, "Active");
}

fn persistent_volume_claim(o: &mut Object) {
    with(o, "spec", |s| default_str(s, "volumeMode", "Filesystem"));
    status_phase(o, "Pending");
}

fn limit_range_item(item: &mut Object) {
    if item.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let get = |item: &Object, k: &str| {
        item.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (max, min) = (get(item, "max"), get(item, "min"));
    let mut default = get(item, "default");
    for (k, v) in max {
        default.entry(k).or_insert(v);
    }
    let mut request = get(item, "defaultRequest");
    for (k, v) in default.iter().chain(min.iter()) {
        request.entry(k.clone()).or_insert_with(|| v.clone());
    }
    item.insert("default".to_owned(), Value::Object(default));
    item.insert("defaultRequest".to_owned(), Value::Object(request));
}

// ---- apps/v1 ----

fn deployment(o: &mut Object) {
    with_created(o, "spec", |s| {
        default_val(s, "replicas", json!(1));
        with_created(s, "strategy", |st| {
            default_str(st, "type", "RollingUpdate");
            if st.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                with_created(st, "rollingUpdate", |r| {
                    default_val(r, "maxUnavailable", json!("25%"));
                    default_val(r, "maxSurge", json!("25%"));
                });
            }
        });
        default_val(s, "revisionHistoryLimit", json!(10));
        default_val(s, "progressDeadlineSeconds", json!(600));
        template_spec(s);
    });
}

fn daemon_set(o: &mut Object) {
    with_created(o, "spec", |s| {
        with_created(s, "updateStrategy", |u| {
            default_str(u, "type", "RollingUpdate");
            if u.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                with_created(u, "rollingUpdate", |r| {
                    default_val(r, "maxUnavailable", json!(1));
                    default_val(r, "maxSurge", json!(0));
                });
            }
        });
        default_val(s, "revisionHistoryLimit", json!(10));
        template_spec(s);
    });
}

fn stateful_set(o: &mut Object) {
    with_created(o, "spec", |s| {
        default_str(s, "podManagementPolicy", "OrderedReady");
        with_created(s, "updateStrategy", |u| {
            if u.get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .is_empty()
            {
                u.insert("type".to_owned(), json!("RollingUpdate"));
                default_val(u, "rollingUpdate", json!({}));
            }
            if u.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                with(u, "rollingUpdate", |r| {
                    default_val(r, "partition", json!(0))
                });
            }
        });
        with_created(s, "persistentVolumeClaimRetentionPolicy", |p| {
            default_str(p, "whenDeleted", "Retain");
            default_str(p, "whenScaled", "Retain");
        });
        default_val(s, "replicas", json!(1));
        default_val(s, "revisionHistoryLimit", json!(10));
        for claim in list(s, "volumeClaimTemplates") {
            persistent_volume_claim(claim);
        }
        template_spec(s);
    });
}

// ---- batch/v1 ----

fn job(o: &mut Object) {
    let template_labels = o
        .pointer_get(&["spec", "template", "metadata", "labels"])
        .filter(|l| l.is_object())
        .cloned();
    with_created(o, "spec", |s| {
        if is_unset(s.get("completions")) && is_unset(s.get("parallelism")) {
            s.insert("completions".to_owned(), json!(1));
            s.insert("parallelism".to_owned(), json!(1));
        }
        default_val(s, "parallelism", json!(1));
        let per_index = !is_unset(s.get("backoffLimitPerIndex"));
        default_val(
            s,
            "backoffLimit",
            json!(if per_index { i32::MAX } else { 6 }),
        );
        default_val(s, "completionMode", json!("NonIndexed"));
        default_val(s, "suspend", json!(false));
        let failure_policy = !is_unset(s.get("podFailurePolicy"));
        default_val(
            s,
            "podReplacementPolicy",
            json!(if failure_policy {
                "Failed"
            } else {
                "TerminatingOrFailed"
            }),
        );
        default_val(s, "manualSelector", json!(false));
        with(s, "podFailurePolicy", |p| {
            for rule in list(p, "rules") {
                for pattern in list(rule, "onPodConditions") {
                    default_str(pattern, "status", "True");
                }
            }
        });
        template_spec(s);
    });
    if let Some(labels) = template_labels {
        with_created(o, "metadata", |m| {
            if m.get("labels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
            {
                m.insert("labels".to_owned(), labels);
            }
        });
    }
}

fn cron_job(o: &mut Object) {
    with_created(o, "spec", |s| {
        default_str(s, "concurrencyPolicy", "Allow");
        default_val(s, "suspend", json!(false));
        default_val(s, "successfulJobsHistoryLimit", json!(3));
        default_val(s, "failedJobsHistoryLimit", json!(1));
        with(s, "jobTemplate", |t| with(t, "spec", template_spec));
    });
}

#[cfg(test)]
mod tests;
