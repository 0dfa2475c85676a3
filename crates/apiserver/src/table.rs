//! `meta.k8s.io/v1 Table` for human `kubectl get`: the columns upstream's
//! printers show for each built-in kind, and NAME/AGE for the rest.

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// One column: name, type, and whether it shows only with `-o wide`.
struct Column {
    name: &'static str,
    kind: &'static str,
    wide: bool,
}

const fn col(name: &'static str, kind: &'static str) -> Column {
    Column {
        name,
        kind,
        wide: false,
    }
}

const fn wide(name: &'static str, kind: &'static str) -> Column {
    Column {
        name,
        kind,
        wide: true,
    }
}

fn columns(kind: &str) -> Vec<Column> {
    match kind {
        "Pod" => vec![
            col("Name", "string"),
            col("Ready", "string"),
            col("Status", "string"),
            col("Restarts", "string"),
            col("Age", "string"),
            wide("IP", "string"),
            wide("Node", "string"),
            wide("Nominated Node", "string"),
            wide("Readiness Gates", "string"),
        ],
        "Deployment" => vec![
            col("Name", "string"),
            col("Ready", "string"),
            col("Up-to-date", "integer"),
            col("Available", "integer"),
            col("Age", "string"),
            wide("Containers", "string"),
            wide("Images", "string"),
            wide("Selector", "string"),
        ],
        "ReplicaSet" => vec![
            col("Name", "string"),
            col("Desired", "integer"),
            col("Current", "integer"),
            col("Ready", "integer"),
            col("Age", "string"),
            wide("Containers", "string"),
            wide("Images", "string"),
            wide("Selector", "string"),
        ],
        "StatefulSet" => vec![
            col("Name", "string"),
            col("Ready", "string"),
            col("Age", "string"),
        ],
        "DaemonSet" => vec![
            col("Name", "string"),
            col("Desired", "integer"),
            col("Current", "integer"),
            col("Ready", "integer"),
            col("Up-to-date", "integer"),
            col("Available", "integer"),
            col("Node Selector", "string"),
            col("Age", "string"),
        ],
        "Service" => vec![
            col("Name", "string"),
            col("Type", "string"),
            col("Cluster-IP", "string"),
            col("External-IP", "string"),
            col("Port(s)", "string"),
            col("Age", "string"),
            wide("Selector", "string"),
        ],
        "Namespace" => vec![
            col("Name", "string"),
            col("Status", "string"),
            col("Age", "string"),
        ],
        "Node" => vec![
            col("Name", "string"),
            col("Status", "string"),
            col("Roles", "string"),
            col("Age", "string"),
            col("Version", "string"),
        ],
        "ConfigMap" => vec![
            col("Name", "string"),
            col("Data", "integer"),
            col("Age", "string"),
        ],
        "Secret" => vec![
            col("Name", "string"),
            col("Type", "string"),
            col("Data", "integer"),
            col("Age", "string"),
        ],
        "ServiceAccount" => vec![
            col("Name", "string"),
            col("Secrets", "integer"),
            col("Age", "string"),
        ],
        "Job" => vec![
            col("Name", "string"),
            col("Status", "string"),
            col("Completions", "string"),
            col("Duration", "string"),
            col("Age", "string"),
        ],
        "CronJob" => vec![
            col("Name", "string"),
            col("Schedule", "string"),
            col("Timezone", "string"),
            col("Suspend", "boolean"),
            col("Active", "integer"),
            col("Last Schedule", "string"),
            col("Age", "string"),
        ],
        "CertificateSigningRequest" => vec![
            col("Name", "string"),
            col("Age", "string"),
            col("SignerName", "string"),
            col("Requestor", "string"),
            col("RequestedDuration", "string"),
            col("Condition", "string"),
        ],
        "Lease" => vec![
            col("Name", "string"),
            col("Holder", "string"),
            col("Age", "string"),
        ],
        "Endpoints" => vec![
            col("Name", "string"),
            col("Endpoints", "string"),
            col("Age", "string"),
        ],
        "Event" => vec![
            col("Last Seen", "string"),
            col("Type", "string"),
            col("Reason", "string"),
            col("Object", "string"),
            col("Message", "string"),
            wide("Name", "string"),
        ],
        "PodDisruptionBudget" => vec![
            col("Name", "string"),
            col("Min Available", "string"),
            col("Max Unavailable", "string"),
            col("Allowed Disruptions", "integer"),
            col("Age", "string"),
        ],
        "NetworkPolicy" => vec![
            col("Name", "string"),
            col("Pod-Selector", "string"),
            col("Age", "string"),
        ],
        "Ingress" => vec![
            col("Name", "string"),
            col("Class", "string"),
            col("Hosts", "string"),
            col("Address", "string"),
            col("Ports", "string"),
            col("Age", "string"),
        ],
        "Role" | "ClusterRole" | "LimitRange" => {
            vec![col("Name", "string"), col("Created At", "date")]
        }
        "RoleBinding" | "ClusterRoleBinding" => vec![
            col("Name", "string"),
            col("Role", "string"),
            col("Age", "string"),
            wide("Users", "string"),
            wide("Groups", "string"),
            wide("ServiceAccounts", "string"),
        ],
        "ResourceQuota" => vec![
            col("Name", "string"),
            col("Age", "string"),
            col("Request", "string"),
            col("Limit", "string"),
        ],
        "PriorityClass" => vec![
            col("Name", "string"),
            col("Value", "integer"),
            col("Global-Default", "boolean"),
            col("Age", "string"),
            col("PreemptionPolicy", "string"),
        ],
        "EndpointSlice" => vec![
            col("Name", "string"),
            col("AddressType", "string"),
            col("Ports", "string"),
            col("Endpoints", "string"),
            col("Age", "string"),
        ],
        "ControllerRevision" => vec![
            col("Name", "string"),
            col("Controller", "string"),
            col("Revision", "integer"),
            col("Age", "string"),
        ],
        _ => vec![col("Name", "string"), col("Age", "string")],
    }
}

/// What each Table row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    /// Nothing.
    None,
    /// The object's metadata as a PartialObjectMetadata (the default).
    #[default]
    Metadata,
    /// The whole object (what `kubectl get --sort-by` asks for).
    Object,
}

impl IncludeObject {
    /// From the `includeObject` query parameter (unknown values: default).
    pub(crate) fn from_query(value: Option<&String>) -> Self {
        match value.map(String::as_str) {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Builds the Table for `objects` (full objects) of `resource`.
pub(crate) fn table(
    resource: &ResourceType,
    objects: &[Value],
    list_meta: Value,
    with_columns: bool,
    include: IncludeObject,
) -> Value {
    let columns = columns(resource.kind);
    let definitions: Vec<Value> = if with_columns {
        columns
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.kind,
                    "format": if c.name == "Name" { "name" } else { "" },
                    "description": "",
                    "priority": if c.wide { 1 } else { 0 },
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells: Vec<Value> = columns
                .iter()
                .map(|c| cell(resource.kind, c.name, object, now))
                .collect();
            let embedded = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
                }),
                IncludeObject::Object => {
                    let mut full = object.clone();
                    if let Some(map) = full.as_object_mut() {
                        map.insert("kind".into(), json!(resource.kind));
                        map.insert("apiVersion".into(), json!(resource.api_version()));
                    }
                    full
                }
            };
            json!({"cells": cells, "object": embedded})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn int_at(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn len_at(object: &Value, pointer: &str) -> usize {
    match object.pointer(pointer) {
        Some(Value::Object(map)) => map.len(),
        Some(Value::Array(list)) => list.len(),
        _ => 0,
    }
}

fn none_if_empty(s: String) -> Value {
    if s.is_empty() {
        json!("<none>")
    } else {
        json!(s)
    }
}

fn cell(kind: &str, column: &str, o: &Value, now: jiff::Timestamp) -> Value {
    match (kind, column) {
        (_, "Name") => json!(str_at(o, "/metadata/name")),
        (_, "Age") => json!(age(str_at(o, "/metadata/creationTimestamp"), now)),
        ("Pod", "Ready") => {
            let statuses = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let ready = statuses.map_or(0, |s| s.iter().filter(|c| c["ready"] == true).count());
            json!(format!("{ready}/{}", len_at(o, "/spec/containers")))
        }
        ("Pod", "Status") => json!(pod_status(o)),
        ("Pod", "Restarts") => {
            let restarts: i64 = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map_or(0, |s| {
                    s.iter()
                        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                        .sum()
                });
            json!(restarts.to_string())
        }
        ("Pod", "IP") => none_if_empty(str_at(o, "/status/podIP").to_owned()),
        ("Pod", "Node") => none_if_empty(str_at(o, "/spec/nodeName").to_owned()),
        ("Pod", "Nominated Node") => {
            none_if_empty(str_at(o, "/status/nominatedNodeName").to_owned())
        }
        ("Pod", "Readiness Gates") => json!("<none>"),
        ("Deployment" | "StatefulSet", "Ready") => {
            json!(format!(
                "{}/{}",
                int_at(o, "/status/readyReplicas"),
                int_at(o, "/spec/replicas")
            ))
        }
        ("Deployment" | "DaemonSet", "Up-to-date") => {
            json!(int_at(
                o,
                if kind == "Deployment" {
                    "/status/updatedReplicas"
                } else {
                    "/status/updatedNumberScheduled"
                }
            ))
        }
        ("Deployment", "Available") => json!(int_at(o, "/status/availableReplicas")),
        ("ReplicaSet", "Desired") => json!(int_at(o, "/spec/replicas")),
        ("ReplicaSet", "Current") => json!(int_at(o, "/status/replicas")),
        ("ReplicaSet", "Ready") => json!(int_at(o, "/status/readyReplicas")),
        ("DaemonSet", "Desired") => json!(int_at(o, "/status/desiredNumberScheduled")),
        ("DaemonSet", "Current") => json!(int_at(o, "/status/currentNumberScheduled")),
        ("DaemonSet", "Ready") => json!(int_at(o, "/status/numberReady")),
        ("DaemonSet", "Available") => json!(int_at(o, "/status/numberAvailable")),
        ("DaemonSet", "Node Selector") => {
            none_if_empty(labels_string(o.pointer("/spec/template/spec/nodeSelector")))
        }
        (_, "Containers") => json!(containers(o, "name")),
        (_, "Images") => json!(containers(o, "image")),
        ("Service", "Selector") => none_if_empty(labels_string(o.pointer("/spec/selector"))),
        (_, "Selector") => none_if_empty(labels_string(o.pointer("/spec/selector/matchLabels"))),
        ("Service", "Type") => json!(str_at(o, "/spec/type")),
        ("Service", "Cluster-IP") => none_if_empty(str_at(o, "/spec/clusterIP").to_owned()),
        ("Service", "External-IP") => none_if_empty(
            o.pointer("/spec/externalIPs")
                .and_then(Value::as_array)
                .map(|ips| {
                    ips.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        ),
        ("Service", "Port(s)") => none_if_empty(
            o.pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ports| {
                    ports
                        .iter()
                        .map(|p| match p["nodePort"].as_i64() {
                            Some(node) => format!(
                                "{}:{node}/{}",
                                p["port"],
                                p["protocol"].as_str().unwrap_or("TCP")
                            ),
                            None => {
                                format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP"))
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        ),
        ("Namespace", "Status") => json!(str_at(o, "/status/phase")),
        ("Node", "Status") => {
            let ready = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .map(|c| c["status"] == "True");
            let mut status = match ready {
                Some(true) => "Ready".to_owned(),
                Some(false) | None => "NotReady".to_owned(),
            };
            if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
                status.push_str(",SchedulingDisabled");
            }
            json!(status)
        }
        ("Node", "Roles") => {
            let roles: Vec<&str> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            none_if_empty(roles.join(","))
        }
        ("Node", "Version") => json!(str_at(o, "/status/nodeInfo/kubeletVersion")),
        ("ConfigMap", "Data") => json!(len_at(o, "/data") + len_at(o, "/binaryData")),
        ("Secret", "Type") => json!(str_at(o, "/type")),
        ("Secret", "Data") => json!(len_at(o, "/data")),
        ("ServiceAccount", "Secrets") => json!(len_at(o, "/secrets")),
        ("Job", "Status") => json!(job_status(o)),
        ("Job", "Completions") => json!(format!(
            "{}/{}",
            int_at(o, "/status/succeeded"),
            o.pointer("/spec/completions")
                .and_then(Value::as_i64)
                .map_or("1".to_owned(), |c| c.to_string())
        )),
        ("Job", "Duration") => {
            let start = str_at(o, "/status/startTime");
            let end = str_at(o, "/status/completionTime");
            match (
                start.parse::<jiff::Timestamp>(),
                end.parse::<jiff::Timestamp>(),
            ) {
                (Ok(s), Ok(e)) => json!(human_duration(e.duration_since(s).as_secs())),
                (Ok(s), Err(_)) => json!(human_duration(now.duration_since(s).as_secs())),
                _ => json!(""),
            }
        }
        ("CronJob", "Schedule") => json!(str_at(o, "/spec/schedule")),
        ("CronJob", "Timezone") => none_if_empty(str_at(o, "/spec/timeZone").to_owned()),
        ("CronJob", "Suspend") => json!(
            o.pointer("/spec/suspend")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
        ("CronJob", "Active") => json!(len_at(o, "/status/active")),
        ("CronJob", "Last Schedule") => {
            let last = str_at(o, "/status/lastScheduleTime");
            if last.is_empty() {
                json!("<none>")
            } else {
                json!(age(last, now))
            }
        }
        ("CertificateSigningRequest", "SignerName") => json!(str_at(o, "/spec/signerName")),
        ("CertificateSigningRequest", "Requestor") => json!(str_at(o, "/spec/username")),
        ("CertificateSigningRequest", "RequestedDuration") => {
            match o.pointer("/spec/expirationSeconds").and_then(Value::as_i64) {
                Some(seconds) => json!(human_duration(seconds)),
                None => json!("<none>"),
            }
        }
        ("CertificateSigningRequest", "Condition") => json!(crate::csr::condition_summary(o)),
        ("Lease", "Holder") => json!(str_at(o, "/spec/holderIdentity")),
        ("Event", "Last Seen") => {
            let last = [
                "/lastTimestamp",
                "/eventTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .map(|p| str_at(o, p))
            .find(|t| !t.is_empty())
            .unwrap_or("");
            json!(age(last, now))
        }
        ("Event", "Type") => json!(str_at(o, "/type")),
        ("Event", "Reason") => json!(str_at(o, "/reason")),
        ("Event", "Object") => json!(format!(
            "{}/{}",
            str_at(o, "/involvedObject/kind").to_ascii_lowercase(),
            str_at(o, "/involvedObject/name")
        )),
        ("Event", "Message") => json!(str_at(o, "/message").trim()),
        ("PodDisruptionBudget", "Min Available") => {
            json!(int_or_string(o.pointer("/spec/minAvailable")))
        }
        ("PodDisruptionBudget", "Max Unavailable") => {
            json!(int_or_string(o.pointer("/spec/maxUnavailable")))
        }
        ("PodDisruptionBudget", "Allowed Disruptions") => {
            json!(int_at(o, "/status/disruptionsAllowed"))
        }
        ("NetworkPolicy", "Pod-Selector") => {
            none_if_empty(labels_string(o.pointer("/spec/podSelector/matchLabels")))
        }
        ("Ingress", "Class") => none_if_empty(str_at(o, "/spec/ingressClassName").to_owned()),
        ("Ingress", "Hosts") => {
            let hosts: Vec<&str> = o
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| r["host"].as_str().unwrap_or("*"))
                        .collect()
                })
                .unwrap_or_default();
            json!(if hosts.is_empty() {
                "*".to_owned()
            } else {
                hosts.join(",")
            })
        }
        ("Ingress", "Address") => json!(""),
        ("Ingress", "Ports") => json!(if len_at(o, "/spec/tls") > 0 {
            "80, 443"
        } else {
            "80"
        }),
        (_, "Created At") => json!(str_at(o, "/metadata/creationTimestamp")),
        ("RoleBinding" | "ClusterRoleBinding", "Role") => {
            json!(format!(
                "{}/{}",
                str_at(o, "/roleRef/kind"),
                str_at(o, "/roleRef/name")
            ))
        }
        ("RoleBinding" | "ClusterRoleBinding", "Users" | "Groups" | "ServiceAccounts") => {
            let kind = match column {
                "Users" => "User",
                "Groups" => "Group",
                _ => "ServiceAccount",
            };
            let names: Vec<String> = o
                .pointer("/subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|s| s["kind"] == kind)
                .map(|s| match s["namespace"].as_str() {
                    Some(ns) if kind == "ServiceAccount" => {
                        format!("{ns}/{}", s["name"].as_str().unwrap_or(""))
                    }
                    _ => s["name"].as_str().unwrap_or("").to_owned(),
                })
                .collect();
            json!(names.join(", "))
        }
        ("ResourceQuota", "Request" | "Limit") => {
            // `<name>: <used>/<hard>` for each hard limit in status, limits.*
            // under Limit and everything else under Request (upstream's).
            let hard = o.pointer("/status/hard").and_then(Value::as_object);
            let used = o.pointer("/status/used");
            let shown: Vec<String> = hard
                .into_iter()
                .flatten()
                .filter(|(name, _)| name.starts_with("limits.") == (column == "Limit"))
                .map(|(name, limit)| {
                    let have = used
                        .and_then(|u| u.get(name))
                        .and_then(Value::as_str)
                        .unwrap_or("0");
                    format!("{name}: {have}/{}", limit.as_str().unwrap_or(""))
                })
                .collect();
            json!(shown.join(", "))
        }
        ("PriorityClass", "Value") => json!(int_at(o, "/value")),
        ("PriorityClass", "Global-Default") => json!(
            o.pointer("/globalDefault")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
        ("PriorityClass", "PreemptionPolicy") => json!(str_at(o, "/preemptionPolicy")),
        ("EndpointSlice", "AddressType") => json!(str_at(o, "/addressType")),
        ("EndpointSlice", "Ports") => none_if_empty(
            o.pointer("/ports")
                .and_then(Value::as_array)
                .map(|p| {
                    p.iter()
                        .map(|p| p["port"].to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        ),
        ("EndpointSlice", "Endpoints") => none_if_empty(
            o.pointer("/endpoints")
                .and_then(Value::as_array)
                .map(|e| {
                    e.iter()
                        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        ),
        ("ControllerRevision", "Controller") => {
            let owner = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| refs.iter().find(|r| r["controller"] == true));
            none_if_empty(owner.map_or(String::new(), |r| {
                format!(
                    "{}.{}/{}",
                    r["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
                    r["apiVersion"]
                        .as_str()
                        .unwrap_or("")
                        .split('/')
                        .next()
                        .unwrap_or(""),
                    r["name"].as_str().unwrap_or("")
                )
            }))
        }
        ("ControllerRevision", "Revision") => json!(int_at(o, "/revision")),
        ("Endpoints", "Endpoints") => {
            let mut addresses = Vec::new();
            for subset in o
                .pointer("/subsets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for address in subset["addresses"].as_array().into_iter().flatten() {
                    for port in subset["ports"].as_array().into_iter().flatten() {
                        addresses.push(format!(
                            "{}:{}",
                            address["ip"].as_str().unwrap_or(""),
                            port["port"]
                        ));
                    }
                }
            }
            none_if_empty(addresses.join(","))
        }
        _ => json!(""),
    }
}

fn int_or_string(value: Option<&Value>) -> String {
    match value {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".to_owned(),
    }
}

fn labels_string(labels: Option<&Value>) -> String {
    labels
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn containers(o: &Value, field: &str) -> String {
    o.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c[field].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The STATUS column of a pod, as kubectl shows it.
fn pod_status(o: &Value) -> String {
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let mut status = str_at(o, "/status/reason").to_owned();
    if status.is_empty() {
        status = str_at(o, "/status/phase").to_owned();
    }
    for c in o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(reason) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
            status = reason.to_owned();
        } else if let Some(reason) = c
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            status = reason.to_owned();
        }
    }
    status
}

fn job_status(o: &Value) -> &'static str {
    let conditions = o.pointer("/status/conditions").and_then(Value::as_array);
    let has = |t: &str| {
        conditions.is_some_and(|c| c.iter().any(|c| c["type"] == t && c["status"] == "True"))
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
}

/// kubectl's AGE: a timestamp's distance from now, in its short form.
fn age(timestamp: &str, now: jiff::Timestamp) -> String {
    match timestamp.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(now.duration_since(t).as_secs()),
        Err(_) => "<unknown>".into(),
    }
}

/// Upstream's `duration.HumanDuration`.
fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    let minutes = s / 60;
    let hours = s / 3600;
    let days = hours / 24;
    if s < 120 {
        format!("{s}s")
    } else if minutes < 10 {
        if s % 60 == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{}s", s % 60)
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        if minutes % 60 == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{}m", minutes % 60)
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        if hours % 24 == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{}h", hours % 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{days}d")
    } else {
        let years = days / 365;
        if years < 8 {
            format!("{years}y{}d", days % 365)
        } else {
            format!("{years}y")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        for (secs, shown) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 120, "3h2m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (40 * 86400, "40d"),
            (3 * 365 * 86400, "3y0d"),
        ] {
            assert_eq!(human_duration(secs), shown, "{secs}");
        }
    }

    #[test]
    fn pod_rows_show_ready_status_restarts() {
        let pod = json!({
            "metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "containerStatuses": [
                {"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
        });
        let now = jiff::Timestamp::now();
        let cells: Vec<Value> = ["Name", "Ready", "Status", "Restarts", "Node"]
            .iter()
            .map(|c| cell("Pod", c, &pod, now))
            .collect();
        assert_eq!(
            cells,
            vec![
                json!("web"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("3"),
                json!("n1")
            ]
        );
    }
}
