//! Differential test of strategic merge patch against the real kubectl,
//! whose `patch --local` applies a strategic merge patch with upstream's own
//! code and the compiled-in Kubernetes types.
//!
//! Needs `/usr/bin/kubectl`, so it is ignored by default:
//! `cargo test -p bulwark-api --test kubectl_oracle -- --ignored`.
//! `ORACLE_CASES=n` sets how many random patches to try (default 300).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: failures should stop it

use std::io::Write;
use std::process::Command;

use bulwark_api::patch::{
    PatchError, PatchSchema, apply_json_patch, apply_merge_patch, strategic_merge,
};
use serde_json::{Value, json};

/// A tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn env(rng: &mut Rng, patch: bool) -> Value {
    let mut items = Vec::new();
    for name in ["X", "Y", "Z"] {
        if rng.chance(50) {
            let mut e = json!({"name": name, "value": rng.pick(&["1", "2", "3"])});
            if patch && rng.chance(20) {
                e = json!({"name": name, "$patch": "delete"});
            } else if patch && rng.chance(15) {
                e["value"] = Value::Null;
            }
            items.push(e);
        }
    }
    shuffle(rng, &mut items);
    Value::Array(items)
}

fn ports(rng: &mut Rng) -> Value {
    let mut items = Vec::new();
    for port in [80, 443, 8080] {
        if rng.chance(40) {
            items.push(json!({"containerPort": port, "name": rng.pick(&["http", "https", "alt"])}));
        }
    }
    Value::Array(items)
}

fn shuffle(rng: &mut Rng, items: &mut [Value]) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i + 1);
        items.swap(i, j);
    }
}

fn container(rng: &mut Rng, name: &str, patch: bool) -> Value {
    let mut c = json!({"name": name});
    if !patch || rng.chance(60) {
        c["image"] = json!(rng.pick(&["nginx:1", "nginx:2", "busybox"]));
    }
    if rng.chance(50) {
        c["env"] = env(rng, patch);
    }
    if rng.chance(40) {
        c["ports"] = ports(rng);
    }
    if rng.chance(25) {
        c["args"] = json!([rng.pick(&["a", "b"]), rng.pick(&["c", "d"])]);
    }
    if patch && rng.chance(15) {
        c["$setElementOrder/env"] = Value::Array(
            ["Z", "Y", "X"]
                .iter()
                .filter(|_| rng.chance(70))
                .map(|n| json!({"name": n}))
                .collect(),
        );
    }
    c
}

fn containers(rng: &mut Rng, patch: bool) -> Value {
    let mut items = Vec::new();
    for name in ["a", "b", "c", "d"] {
        if rng.chance(if patch { 40 } else { 60 }) {
            if patch && rng.chance(15) {
                items.push(json!({"name": name, "$patch": "delete"}));
            } else {
                items.push(container(rng, name, patch));
            }
        }
    }
    if patch && rng.chance(5) {
        items.push(json!({"$patch": "replace"}));
    }
    shuffle(rng, &mut items);
    Value::Array(items)
}

fn pod(rng: &mut Rng) -> Value {
    let mut labels = serde_json::Map::new();
    for k in ["app", "tier", "x"] {
        if rng.chance(60) {
            labels.insert(k.into(), json!(rng.pick(&["1", "2"])));
        }
    }
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": labels},
        "spec": {"containers": containers(rng, false)}});
    if rng.chance(50) {
        p["metadata"]["finalizers"] = json!(
            ["f/a", "f/b", "f/c"]
                .iter()
                .filter(|_| rng.chance(60))
                .collect::<Vec<_>>()
        );
    }
    if rng.chance(40) {
        p["spec"]["tolerations"] = json!([{"key": rng.pick(&["k1", "k2"]), "operator": "Exists"}]);
    }
    if rng.chance(40) {
        p["spec"]["volumes"] =
            json!([{"name": "v", "emptyDir": {}}, {"name": "w", "configMap": {"name": "cm"}}]);
    }
    if rng.chance(30) {
        p["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    }
    p
}

fn patch(rng: &mut Rng) -> Value {
    let mut spec = serde_json::Map::new();
    let mut meta = serde_json::Map::new();
    if rng.chance(40) {
        let mut labels = serde_json::Map::new();
        for k in ["app", "tier", "x", "new"] {
            if rng.chance(40) {
                labels.insert(
                    k.into(),
                    if rng.chance(30) {
                        Value::Null
                    } else {
                        json!("9")
                    },
                );
            }
        }
        if rng.chance(5) {
            labels.insert("$patch".into(), json!("replace"));
        }
        meta.insert("labels".into(), Value::Object(labels));
    }
    if rng.chance(30) {
        meta.insert("finalizers".into(), json!([rng.pick(&["f/a", "f/d"])]));
    }
    if rng.chance(20) {
        // Upstream processes these two keys in random (map) order, so a value
        // both added and deleted has no single answer; kubectl never sends one.
        meta.insert(
            "$deleteFromPrimitiveList/finalizers".into(),
            json!([rng.pick(&["f/b", "f/c"])]),
        );
    }
    if rng.chance(15) {
        meta.insert(
            "$setElementOrder/finalizers".into(),
            json!(["f/c", "f/a", "f/b", "f/d"]),
        );
    }
    if rng.chance(70) {
        spec.insert("containers".into(), containers(rng, true));
    }
    if rng.chance(30) {
        let names: Vec<Value> = ["d", "c", "b", "a"]
            .iter()
            .filter(|_| rng.chance(60))
            .map(|n| json!({"name": n}))
            .collect();
        spec.insert("$setElementOrder/containers".into(), Value::Array(names));
    }
    if rng.chance(20) {
        spec.insert(
            "tolerations".into(),
            json!([{"key": "k3", "operator": "Exists"}]),
        );
    }
    if rng.chance(20) {
        spec.insert(
            "volumes".into(),
            json!([{"$retainKeys": ["configMap", "name"], "name": "v", "configMap": {"name": "cm2"}}]),
        );
    }
    if rng.chance(15) {
        spec.insert(
            "nodeSelector".into(),
            if rng.chance(50) {
                Value::Null
            } else {
                json!({"zone": "a"})
            },
        );
    }
    let mut p = json!({});
    if !meta.is_empty() {
        p["metadata"] = Value::Object(meta);
    }
    if !spec.is_empty() {
        p["spec"] = Value::Object(spec);
    }
    p
}

/// Drops nulls, empty objects and empty lists, as the typed round trip in
/// kubectl does for optional fields; and fields kubectl adds.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "status" && k.as_str() != "creationTimestamp")
                .map(|(k, v)| (k.clone(), normalize(v)))
                .filter(|(_, v)| {
                    !(v.is_null()
                        || v.as_object().is_some_and(|m| m.is_empty())
                        || v.as_array().is_some_and(|a| a.is_empty()))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn kubectl_patch(dir: &std::path::Path, original: &Value, patch: &Value) -> Result<Value, String> {
    kubectl_patch_as(dir, "strategic", original, &patch.to_string())
}

fn kubectl_patch_as(
    dir: &std::path::Path,
    patch_type: &str,
    original: &Value,
    patch: &str,
) -> Result<Value, String> {
    let file = dir.join("obj.json");
    std::fs::File::create(&file)
        .unwrap()
        .write_all(original.to_string().as_bytes())
        .unwrap();
    let out = Command::new("kubectl")
        .args(["patch", "--local", "-o", "json", "--type", patch_type, "-f"])
        .arg(&file)
        .arg("-p")
        .arg(patch)
        .env("KUBECONFIG", dir.join("none"))
        .output()
        .expect("kubectl runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("kubectl prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Wraps a pod and a pod patch into a Deployment and a Deployment patch.
fn as_deployment(rng: &mut Rng, pod: Value, patch: Value) -> (Value, Value) {
    let strategy = if rng.chance(50) {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    } else {
        json!({"type": "Recreate"})
    };
    let original = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "labels": pod["metadata"]["labels"].clone()},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}}, "strategy": strategy,
                 "template": {"metadata": {"labels": {"app": "x"}}, "spec": pod["spec"].clone()}}});
    let mut spec = json!({});
    if let Some(pod_spec) = patch.get("spec") {
        spec["template"] = json!({"spec": pod_spec});
    }
    if rng.chance(30) {
        spec["strategy"] = if rng.chance(50) {
            json!({"$retainKeys": ["type"], "type": "Recreate"})
        } else {
            json!({"$retainKeys": ["rollingUpdate", "type"], "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}})
        };
    }
    if rng.chance(20) {
        spec["replicas"] = if rng.chance(50) {
            Value::Null
        } else {
            json!(3)
        };
    }
    let mut p = json!({"spec": spec});
    if let Some(meta) = patch.get("metadata") {
        p["metadata"] = meta.clone();
    }
    (original, p)
}

#[test]
#[ignore = "needs /usr/bin/kubectl"]
fn strategic_merge_patch_agrees_with_kubectl() {
    let dir = std::env::temp_dir().join(format!("bulwark-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: usize = std::env::var("ORACLE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let pod_schema = PatchSchema::for_kind("v1", "Pod").unwrap();
    let deployment_schema = PatchSchema::for_kind("apps/v1", "Deployment").unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut disagreements = Vec::new();
    let (mut both_ok, mut both_err) = (0, 0);
    for i in 0..cases {
        let (mut original, mut p) = (pod(&mut rng), patch(&mut rng));
        let mut schema = pod_schema;
        if rng.chance(50) {
            (original, p) = as_deployment(&mut rng, original, p);
            schema = deployment_schema;
        }
        let ours = strategic_merge(&original, &p, schema);
        let theirs = kubectl_patch(&dir, &original, &p);
        let agree = match (&ours, &theirs) {
            (Ok(a), Ok(b)) => {
                both_ok += 1;
                normalize(a) == normalize(b)
            }
            (Err(ours), Err(theirs)) => {
                both_err += 1;
                // kubectl prints upstream's library message inside its own.
                let message = match ours {
                    PatchError::Unprocessable { detail } => detail.clone(),
                    other => other.to_string(),
                };
                theirs.contains(&message)
            }
            _ => false,
        };
        if !agree {
            disagreements.push(format!(
                "case {i}\n  original {original}\n  patch    {p}\n  ours     {:?}\n  kubectl  {:?}",
                ours.map(|v| normalize(&v).to_string()),
                theirs.map(|v| normalize(&v).to_string())
            ));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    eprintln!(
        "{both_ok} applied alike, {both_err} refused by both, {} disagree",
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} of {cases} disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// A JSON patch operation over paths that exist, may exist, or cannot.
fn json_op(rng: &mut Rng) -> Value {
    let paths = [
        "/metadata/labels/app",
        "/metadata/labels/new",
        "/metadata/labels",
        "/metadata/annotations",
        "/metadata/annotations/a~1b",
        "/metadata/finalizers/0",
        "/metadata/finalizers/-",
        "/metadata/finalizers/-1",
        "/metadata/finalizers/9",
        "/spec/containers/0/image",
        "/spec/containers/1/image",
        "/spec/containers/-",
        "/spec/containers/0/env",
        "/spec/containers/0/env/0/value",
        "/spec/nodeSelector/disk",
        "/spec/activeDeadlineSeconds",
        "/spec/missing/x",
        "/spec/containers/x",
    ];
    let values = [
        json!("v1"),
        json!({"a~1b": "x"}),
        json!({"name": "z", "image": "zz"}),
        json!(["f/x"]),
        json!([{"name": "E", "value": "1"}]),
        json!(30),
        Value::Null,
    ];
    let op = rng.pick(&["add", "remove", "replace", "move", "copy", "test", "test"]);
    let mut o = json!({"op": op, "path": rng.pick(&paths)});
    if matches!(op, "move" | "copy") {
        o["from"] = json!(rng.pick(&paths));
    }
    if matches!(op, "add" | "replace" | "test") && rng.chance(95) {
        o["value"] = values[rng.below(values.len())].clone();
    }
    o
}

fn merge_patch_value(rng: &mut Rng) -> Value {
    let mut p = json!({});
    if rng.chance(60) {
        p["metadata"] = json!({"labels": {"app": if rng.chance(40) { Value::Null } else { json!("m") }, "new": "n"}});
    }
    if rng.chance(60) {
        p["spec"] = json!({"containers": [{"name": "m", "image": "m:1", "env": null}]});
        if rng.chance(40) {
            p["spec"]["nodeSelector"] = if rng.chance(50) {
                Value::Null
            } else {
                json!({"disk": null, "z": "1"})
            };
        }
    }
    if rng.chance(10) {
        p["metadata"] = Value::Null;
    }
    p
}

#[test]
#[ignore = "needs /usr/bin/kubectl"]
fn json_and_merge_patches_agree_with_kubectl() {
    let dir = std::env::temp_dir().join(format!("bulwark-oracle-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: usize = std::env::var("ORACLE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let mut disagreements = Vec::new();
    let (mut both_ok, mut both_err) = (0, 0);
    for i in 0..cases {
        let mut original = pod(&mut rng);
        original["metadata"]["annotations"] = json!({"a/b": "c"});
        let (kind, body) = if rng.chance(70) {
            let n = rng.below(3) + 1;
            let ops: Vec<Value> = (0..n).map(|_| json_op(&mut rng)).collect();
            ("json", Value::Array(ops).to_string())
        } else {
            ("merge", merge_patch_value(&mut rng).to_string())
        };
        let ours = if kind == "json" {
            apply_json_patch(&original, body.as_bytes())
        } else {
            apply_merge_patch(&original, body.as_bytes())
        };
        let theirs = kubectl_patch_as(&dir, kind, &original, &body);
        let agree = match (&ours, &theirs) {
            (Ok(a), Ok(b)) => {
                both_ok += 1;
                normalize(a) == normalize(b)
            }
            (Err(ours), Err(theirs)) => {
                both_err += 1;
                let message = match ours {
                    PatchError::Unprocessable { detail } => detail.clone(),
                    other => other.to_string(),
                };
                // kubectl (not the server) rewords one message client-side.
                let reworded = message
                    .split_once("doc is missing key: ")
                    .map(|(_, key)| format!("Object to be patched is missing field ({key})"));
                theirs.contains(&message) || reworded.is_some_and(|r| theirs.contains(&r))
            }
            // evanphx/json-patch v4.12 (kubectl's and kube-apiserver's)
            // crashes on a `test` without value of a missing path; later
            // versions pass it, as we do.
            (Ok(_), Err(theirs)) if theirs.starts_with("panic:") => true,
            // A result kubectl cannot decode as a Pod is its error, not a patch error.
            (Ok(_), Err(theirs)) => {
                theirs.contains("json: cannot unmarshal") || theirs.contains("decode")
            }
            _ => false,
        };
        if !agree {
            disagreements.push(format!(
                "case {i} ({kind})\n  original {original}\n  patch    {body}\n  ours     {:?}\n  kubectl  {:?}",
                ours.map(|v| normalize(&v).to_string()),
                theirs.map(|v| normalize(&v).to_string())
            ));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    eprintln!(
        "{both_ok} applied alike, {both_err} refused by both, {} disagree",
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} of {cases} disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// kubectl decodes quantities into `resource.Quantity` and prints their
/// canonical form, the same code kube-apiserver stores them with.
#[test]
#[ignore = "needs /usr/bin/kubectl"]
fn quantities_agree_with_kubectl() {
    use bulwark_api::quantity::Quantity;
    let dir = std::env::temp_dir().join(format!("bulwark-oracle-q-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut inputs: Vec<String> = [
        "0",
        "1",
        "0.5",
        "1.5",
        "100m",
        "1500m",
        "1000",
        "1200",
        "1000k",
        "1e3",
        "1.5e3",
        "12e-1",
        "1Ki",
        "1024",
        "1.5Gi",
        "1024Mi",
        "0.5Ki",
        "1023Ki",
        "1Ei",
        "8Ei",
        "0.1",
        "0.0001",
        "0.1n",
        "-1.5",
        "-1Gi",
        "+5",
        ".5",
        "5.",
        "1000E",
        "4E",
        "1.234567891",
        "1e-3",
        "e3",
        "123456789012",
        "0.000000000001",
        "1.1Ki",
        "2048Ki",
        "3Gi",
        "1e-9",
        "1e10",
        "7.5e-4",
        "1.000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rng = Rng(0x0005_eed0_f9a7);
    for _ in 0..400 {
        let digits = rng.below(6) + 1;
        let mut n: String = (0..digits)
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect();
        if rng.chance(40) {
            let at = rng.below(n.len() + 1);
            n.insert(at, '.');
        }
        if rng.chance(10) {
            n.insert(0, if rng.chance(50) { '-' } else { '+' });
        }
        let suffixes = [
            "", "m", "k", "M", "G", "Ki", "Mi", "Gi", "n", "u", "e2", "e-2",
        ];
        n.push_str(suffixes[rng.below(suffixes.len())]);
        inputs.push(n);
    }
    let containers: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, q)| json!({"name": format!("c{i}"), "image": "x", "resources": {"limits": {"cpu": q}}}))
        .collect();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}});
    // `set image --local` round-trips the object through the typed Pod.
    let file = dir.join("pod.json");
    std::fs::write(&file, pod.to_string()).unwrap();
    let run = Command::new("kubectl")
        .args(["set", "image", "--local", "-o", "json", "-f"])
        .arg(&file)
        .arg("*=changed")
        .env("KUBECONFIG", dir.join("none"))
        .output()
        .expect("kubectl runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out: Value = serde_json::from_slice(&run.stdout).expect("JSON");
    std::fs::remove_dir_all(&dir).ok();
    let mut disagreements = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let theirs = out["spec"]["containers"][i]["resources"]["limits"]["cpu"]
            .as_str()
            .unwrap_or("<none>")
            .to_owned();
        let ours = Quantity::parse(input)
            .map(|q| q.to_string())
            .unwrap_or_else(|e| e.to_string());
        if ours != theirs {
            disagreements.push(format!("{input}: ours {ours}, kubectl {theirs}"));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// The merge keys and strategies of other built-in kinds, against kubectl.
#[test]
#[ignore = "needs /usr/bin/kubectl"]
fn other_kinds_agree_with_kubectl() {
    let dir = std::env::temp_dir().join(format!("bulwark-oracle-kinds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                   "spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}], "selector": {"a": "b"}}}),
            json!({"spec": {"ports": [{"port": 8080, "name": "alt"}, {"port": 80, "targetPort": 8080}], "selector": {"c": "d"}}}),
        ),
        (
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
                   "spec": {"podCIDRs": ["10.0.0.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]},
                   "status": {"conditions": [{"type": "Ready", "status": "False"}], "addresses": [{"type": "InternalIP", "address": "1.1.1.1"}]}}),
            json!({"spec": {"podCIDRs": ["10.0.1.0/24"], "taints": [{"key": "b", "effect": "NoExecute"}]},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "False"}],
                              "addresses": [{"type": "Hostname", "address": "n"}]}}),
        ),
        (
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
                   "secrets": [{"name": "a"}], "imagePullSecrets": [{"name": "r"}]}),
            json!({"secrets": [{"name": "b"}], "imagePullSecrets": [{"name": "q"}]}),
        ),
        (
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"},
                   "spec": {"minAvailable": 1, "selector": {"matchLabels": {"a": "b"}}}}),
            json!({"spec": {"selector": {"matchExpressions": [{"key": "c", "operator": "Exists"}]}}}),
        ),
        (
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
                   "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                       "restartPolicy": "Never", "containers": [{"name": "a", "image": "a", "env": [{"name": "X", "value": "1"}]}]}}}}}}),
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
                       "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}, {"name": "b", "image": "b"}]}}}}}}),
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "finalizers": ["x/a"],
                   "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "1"}]},
                   "spec": {"selector": {"matchLabels": {"a": "b"}}, "serviceName": "s",
                            "volumeClaimTemplates": [{"metadata": {"name": "d"}}],
                            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "a", "image": "a"}],
                                         "volumes": [{"name": "v", "emptyDir": {}}]}}}}),
            json!({"metadata": {"finalizers": ["x/b"], "ownerReferences": [{"apiVersion": "v1", "kind": "Y", "name": "p", "uid": "2"}]},
                   "spec": {"volumeClaimTemplates": [{"metadata": {"name": "e"}}],
                            "template": {"spec": {"volumes": [{"name": "w", "configMap": {"name": "c"}}],
                                                  "tolerations": [{"key": "t", "operator": "Exists"}]}}}}),
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"},
                   "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                   "spec": {"containers": [{"name": "a", "image": "a", "volumeMounts": [{"name": "v", "mountPath": "/a"}]}],
                            "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["a"]}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "volumeMounts": [{"name": "w", "mountPath": "/b"}]}],
                            "hostAliases": [{"ip": "2.2.2.2", "hostnames": ["b"]}]}}}}),
        ),
    ];
    let mut disagreements = Vec::new();
    for (original, patch) in &cases {
        let api_version = original["apiVersion"].as_str().unwrap();
        let kind = original["kind"].as_str().unwrap();
        let schema = PatchSchema::for_kind(api_version, kind).unwrap();
        let ours = strategic_merge(original, patch, schema).map(|v| normalize(&v));
        let theirs = kubectl_patch(&dir, original, patch).map(|v| normalize(&v));
        if ours.as_ref().ok() != theirs.as_ref().ok() {
            disagreements.push(format!("{kind}\n  ours    {ours:?}\n  kubectl {theirs:?}"));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
