use expect_test::{Expect, expect};
use serde_json::{Value, json};

use super::*;

fn deployment() -> &'static PatchSchema {
    PatchSchema::for_kind("apps/v1", "Deployment").expect("built-in")
}

/// `new` as [`record_update`] leaves it.
fn recorded(
    old: &Value,
    new: &Value,
    schema: &PatchSchema,
    writer: &Writer<'_>,
) -> Result<Value, ApplyError> {
    let mut new = new.clone();
    record_update(old, &mut new, schema, writer)?;
    Ok(new)
}

fn writer(manager: &'static str) -> Writer<'static> {
    Writer {
        manager,
        api_version: "apps/v1",
        subresource: "",
        time: "2026-01-01T00:00:00Z",
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON")
}

/// Renders the object's spec and managedFields (manager, operation, fields).
fn summary(obj: &Value) -> String {
    let mut out = format!(
        "spec: {}\n",
        crate::patch::test_util::canonical(&obj["spec"])
    );
    for m in obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "{} {}: {}\n",
            m["manager"].as_str().unwrap_or_default(),
            m["operation"].as_str().unwrap_or_default(),
            crate::patch::test_util::canonical(&m["fieldsV1"])
        ));
    }
    out
}

fn check_apply(
    live: &Value,
    config: &Value,
    manager: &'static str,
    force: bool,
    expect: Expect,
) -> Value {
    match apply(live, config, deployment(), &writer(manager), force) {
        Ok(obj) => {
            expect.assert_eq(&summary(&obj));
            obj
        }
        Err(e) => {
            expect.assert_eq(&format!("error: {e}\n"));
            live.clone()
        }
    }
}

const CONFIG: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment",
  "metadata":{"name":"web","labels":{"app":"web","tier":"front"}},
  "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
    "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[
      {"name":"web","image":"nginx:1.27","ports":[{"containerPort":80}],"env":[{"name":"A","value":"1"},
       {"name":"S","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}]}]}}}}"#;

#[test]
fn field_set_encoding() {
    let config: Value = serde_json::from_str(CONFIG).expect("JSON");
    let set = field_set(&config, deployment()).expect("fits the schema");
    expect![[r#"
        {
          "f:metadata": {
            "f:labels": {
              "f:app": {},
              "f:tier": {}
            }
          },
          "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
              "f:metadata": {
                "f:labels": {
                  "f:app": {}
                }
              },
              "f:spec": {
                "f:containers": {
                  "k:{\"name\":\"web\"}": {
                    ".": {},
                    "f:env": {
                      "k:{\"name\":\"A\"}": {
                        ".": {},
                        "f:name": {},
                        "f:value": {}
                      },
                      "k:{\"name\":\"S\"}": {
                        ".": {},
                        "f:name": {},
                        "f:valueFrom": {
                          "f:secretKeyRef": {}
                        }
                      }
                    },
                    "f:image": {},
                    "f:name": {},
                    "f:ports": {
                      "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                        ".": {},
                        "f:containerPort": {}
                      }
                    }
                  }
                }
              }
            }
          }
        }"#]]
    .assert_eq(&pretty(&set.to_fields_v1()));
    // Decoding gives the same set back.
    assert_eq!(
        FieldSet::from_fields_v1(&set.to_fields_v1()),
        Ok(set.clone())
    );
    let paths: Vec<String> = set.iter().map(Path::to_string).collect();
    expect![[r#"
        .metadata.labels.app
        .metadata.labels.tier
        .spec.replicas
        .spec.selector
        .spec.template.metadata.labels.app
        .spec.template.spec.containers[name="web"]
        .spec.template.spec.containers[name="web"].env[name="A"]
        .spec.template.spec.containers[name="web"].env[name="A"].name
        .spec.template.spec.containers[name="web"].env[name="A"].value
        .spec.template.spec.containers[name="web"].env[name="S"]
        .spec.template.spec.containers[name="web"].env[name="S"].name
        .spec.template.spec.containers[name="web"].env[name="S"].valueFrom.secretKeyRef
        .spec.template.spec.containers[name="web"].image
        .spec.template.spec.containers[name="web"].name
        .spec.template.spec.containers[name="web"].ports[containerPort=80,protocol="TCP"]
        .spec.template.spec.containers[name="web"].ports[containerPort=80,protocol="TCP"].containerPort"#]]
    .assert_eq(&paths.join("\n"));
}

#[test]
fn fields_v1_decoding() {
    let v = json!({"f:metadata": {"f:finalizers": {".": {}, "v:\"a\"": {}}},
                   "f:spec": {"f:list": {"i:0": {}}, "f:m": {}}});
    let set = FieldSet::from_fields_v1(&v).expect("valid");
    let paths: Vec<String> = set.iter().map(Path::to_string).collect();
    expect![[r#".metadata.finalizers, .metadata.finalizers[="a"], .spec.list[0], .spec.m"#]]
        .assert_eq(&paths.join(", "));
    assert_eq!(set.to_fields_v1(), v);
    for (bad, msg) in [
        (json!({"x": {}}), "key must be 2 characters long:"),
        (json!({"fx": {}}), "missing colon: fx"),
        (json!({"z:a": {}}), "unknown path element type"),
        (json!({"f:a": 1}), "expected an object at .a, found 1"),
    ] {
        assert_eq!(
            FieldSet::from_fields_v1(&bad).map_err(|e| e.to_string()),
            Err(msg.to_owned())
        );
    }
}

#[test]
fn apply_lifecycle() {
    let config: Value = serde_json::from_str(CONFIG).expect("JSON");
    // Create through apply.
    let live = check_apply(
        &json!({}),
        &json!({"metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}}, "spec": {"replicas": 2}}),
        "kubectl",
        false,
        expect![[r#"
            spec: {"replicas":2}
            kubectl Apply: {"f:metadata":{"f:labels":{"f:app":{},"f:tier":{}}},"f:spec":{"f:replicas":{}}}
        "#]],
    );
    // Another manager changes replicas with a plain update: it takes the field.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    let live = recorded(
        &live,
        &scaled,
        deployment(),
        &writer("kube-controller-manager"),
    )
    .expect("update");
    expect![[r#"
        spec: {"replicas":5}
        kubectl Apply: {"f:metadata":{"f:labels":{"f:app":{},"f:tier":{}}}}
        kube-controller-manager Update: {"f:spec":{"f:replicas":{}}}
    "#]]
    .assert_eq(&summary(&live));
    // Applying replicas again now conflicts.
    check_apply(
        &live,
        &json!({"metadata": {"name": "web"}, "spec": {"replicas": 2}}),
        "kubectl",
        false,
        expect![[r#"
            error: Apply failed with 1 conflict: conflict with "kube-controller-manager" using apps/v1: .spec.replicas
        "#]],
    );
    // Applying the same value shares ownership; dropping the labels from the
    // config removes them.
    let live = check_apply(
        &live,
        &json!({"metadata": {"name": "web"}, "spec": {"replicas": 5}}),
        "kubectl",
        false,
        expect![[r#"
            spec: {"replicas":5}
            kubectl Apply: {"f:spec":{"f:replicas":{}}}
            kube-controller-manager Update: {"f:spec":{"f:replicas":{}}}
        "#]],
    );
    assert_eq!(live["metadata"].get("labels"), None);
    // Forcing takes the field over.
    let live = check_apply(
        &live,
        &config,
        "kubectl",
        true,
        expect![[r#"
            spec: {"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"env":[{"name":"A","value":"1"},{"name":"S","valueFrom":{"secretKeyRef":{"key":"k","name":"s"}}}],"image":"nginx:1.27","name":"web","ports":[{"containerPort":80}]}]}}}
            kubectl Apply: {"f:metadata":{"f:labels":{"f:app":{},"f:tier":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:env":{"k:{\"name\":\"A\"}":{".":{},"f:name":{},"f:value":{}},"k:{\"name\":\"S\"}":{".":{},"f:name":{},"f:valueFrom":{"f:secretKeyRef":{}}}},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}
        "#]],
    );
    // A sidecar added by someone else survives the next apply, in its place.
    let mut with_sidecar = live.clone();
    with_sidecar["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("list")
        .push(json!({"name": "sidecar", "image": "envoy"}));
    let live = recorded(&live, &with_sidecar, deployment(), &writer("injector")).expect("update");
    let mut config2 = config.clone();
    config2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    let live =
        apply(&live, &config2, deployment(), &writer("kubectl"), false).expect("no conflict");
    expect![[r#"[{"env":[{"name":"A","value":"1"},{"name":"S","valueFrom":{"secretKeyRef":{"key":"k","name":"s"}}}],"image":"nginx:1.28","name":"web","ports":[{"containerPort":80}]},{"image":"envoy","name":"sidecar"}]"#]]
        .assert_eq(&crate::patch::test_util::canonical(&live["spec"]["template"]["spec"]["containers"]));
    // The applier's env var S removed from the config disappears.
    let mut config3 = config2.clone();
    config3["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}]);
    let live =
        apply(&live, &config3, deployment(), &writer("kubectl"), false).expect("no conflict");
    expect![[r#"[{"name":"A","value":"1"}]"#]].assert_eq(&crate::patch::test_util::canonical(
        &live["spec"]["template"]["spec"]["containers"][0]["env"],
    ));
}

#[test]
fn several_conflicts_and_status() {
    let live = json!({"metadata": {"name": "web", "managedFields": [
        {"manager": "helm", "operation": "Update", "apiVersion": "apps/v1", "time": "2025-01-01T00:00:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:paused": {}}}},
        {"manager": "argo", "operation": "Apply", "apiVersion": "apps/v1",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:minReadySeconds": {}}}},
        {"manager": "hpa", "operation": "Update", "apiVersion": "autoscaling/v1", "subresource": "scale",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
        "spec": {"replicas": 1, "paused": false, "minReadySeconds": 0}});
    let config = json!({"spec": {"replicas": 3, "paused": true, "minReadySeconds": 5}});
    let err =
        apply(&live, &config, deployment(), &writer("kubectl"), false).expect_err("conflicts");
    expect![[r#"
        {
          "apiVersion": "v1",
          "code": 409,
          "details": {
            "causes": [
              {
                "field": ".spec.minReadySeconds",
                "message": "conflict with \"argo\"",
                "reason": "FieldManagerConflict"
              },
              {
                "field": ".spec.paused",
                "message": "conflict with \"helm\" using apps/v1",
                "reason": "FieldManagerConflict"
              },
              {
                "field": ".spec.replicas",
                "message": "conflict with \"helm\" using apps/v1",
                "reason": "FieldManagerConflict"
              },
              {
                "field": ".spec.replicas",
                "message": "conflict with \"hpa\" with subresource \"scale\" using autoscaling/v1",
                "reason": "FieldManagerConflict"
              }
            ]
          },
          "kind": "Status",
          "message": "Apply failed with 4 conflicts: conflicts with \"argo\":\n- .spec.minReadySeconds\nconflicts with \"helm\" using apps/v1:\n- .spec.paused\n- .spec.replicas\nconflicts with \"hpa\" with subresource \"scale\" using autoscaling/v1:\n- .spec.replicas",
          "metadata": {},
          "reason": "Conflict",
          "status": "Failure"
        }"#]]
    .assert_eq(&pretty(&err.status()));
    // Forced, the others keep only what they did not lose.
    let forced = apply(&live, &config, deployment(), &writer("kubectl"), true).expect("forced");
    expect![[r#"
        spec: {"minReadySeconds":5,"paused":true,"replicas":3}
        kubectl Apply: {"f:spec":{"f:minReadySeconds":{},"f:paused":{},"f:replicas":{}}}
    "#]]
    .assert_eq(&summary(&forced));
}

#[test]
fn invalid_applies() {
    let live = json!({});
    let cases = [
        json!({"metadata": {"managedFields": []}}),
        json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": ["a"]}}}}),
    ];
    let out: Vec<String> = cases
        .iter()
        .map(
            |c| match apply(&live, c, deployment(), &writer("kubectl"), false) {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("{} {e}", e.status()["code"]),
            },
        )
        .collect();
    expect![[r#"
        400 metadata.managedFields must be nil
        500 .spec.template.spec.containers: element 0: associative list with keys has an element that omits key field "name" (and doesn't have default value)
        500 duplicate entries for key [name="a"]
        500 .spec.template.spec.containers: element 0: expected map, got string"#]]
    .assert_eq(&out.join("\n"));
}

#[test]
fn created_by_update_looks_like_upstream() {
    // kubectl create / client-side apply: an Update from nothing. Go value
    // structs (spec, template, strategy) get no "." of their own; maps and
    // pointer structs (labels, rollingUpdate) do.
    let new = json!({"metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    let created =
        recorded(&json!({}), &new, deployment(), &writer("kubectl-create")).expect("update");
    expect![[r#"
        {
          "f:metadata": {
            "f:labels": {
              ".": {},
              "f:app": {}
            }
          },
          "f:spec": {
            "f:replicas": {},
            "f:strategy": {
              "f:rollingUpdate": {
                ".": {},
                "f:maxSurge": {}
              },
              "f:type": {}
            },
            "f:template": {
              "f:metadata": {
                "f:labels": {
                  ".": {},
                  "f:app": {}
                }
              },
              "f:spec": {
                "f:containers": {
                  "k:{\"name\":\"web\"}": {
                    ".": {},
                    "f:image": {},
                    "f:name": {}
                  }
                }
              }
            }
          }
        }"#]]
    .assert_eq(&pretty(
        &created["metadata"]["managedFields"][0]["fieldsV1"],
    ));
}

#[test]
fn update_managers_are_capped() {
    let mut labels = serde_json::Map::new();
    let mut managed = Vec::new();
    for i in 0..11 {
        labels.insert(format!("l{i}"), json!("v"));
        managed.push(
            json!({"manager": format!("m{i:02}"), "operation": "Update", "apiVersion": "apps/v1",
            "time": format!("2025-01-01T00:00:{i:02}Z"), "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {format!("f:l{i}"): {}}}}}),
        );
    }
    let live = json!({"metadata": {"name": "web", "labels": labels, "managedFields": managed}});
    let mut new = live.clone();
    new["metadata"]["labels"]["x"] = json!("y");
    let updated = recorded(&live, &new, deployment(), &writer("new")).expect("update");
    let entries: Vec<String> = updated["metadata"]["managedFields"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| {
            format!(
                "{} {} {}",
                m["manager"].as_str().unwrap_or_default(),
                m["time"],
                crate::patch::test_util::canonical(&m["fieldsV1"])
            )
        })
        .collect();
    expect![[r#"
        ancient-changes "2025-01-01T00:00:02Z" {"f:metadata":{"f:labels":{"f:l0":{},"f:l1":{},"f:l2":{}}}}
        m03 "2025-01-01T00:00:03Z" {"f:metadata":{"f:labels":{"f:l3":{}}}}
        m04 "2025-01-01T00:00:04Z" {"f:metadata":{"f:labels":{"f:l4":{}}}}
        m05 "2025-01-01T00:00:05Z" {"f:metadata":{"f:labels":{"f:l5":{}}}}
        m06 "2025-01-01T00:00:06Z" {"f:metadata":{"f:labels":{"f:l6":{}}}}
        m07 "2025-01-01T00:00:07Z" {"f:metadata":{"f:labels":{"f:l7":{}}}}
        m08 "2025-01-01T00:00:08Z" {"f:metadata":{"f:labels":{"f:l8":{}}}}
        m09 "2025-01-01T00:00:09Z" {"f:metadata":{"f:labels":{"f:l9":{}}}}
        m10 "2025-01-01T00:00:10Z" {"f:metadata":{"f:labels":{"f:l10":{}}}}
        new "2026-01-01T00:00:00Z" {"f:metadata":{"f:labels":{"f:x":{}}}}"#]]
    .assert_eq(&entries.join("\n"));
    // A write that changes nothing records nothing.
    let same = recorded(&updated, &updated, deployment(), &writer("other")).expect("update");
    assert_eq!(
        same["metadata"]["managedFields"],
        updated["metadata"]["managedFields"]
    );
}

#[test]
fn server_side_apply_keeps_last_applied_in_sync() {
    let live = json!({"metadata": {"name": "web", "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n", "other": "x"}},
        "spec": {"replicas": 1}});
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"note": "n"}}, "spec": {"replicas": 2}});
    let applied = apply(&live, &config, deployment(), &writer("kubectl"), true).expect("forced");
    expect![[r#"
        {
          "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"annotations\":{\"note\":\"n\"},\"name\":\"web\"},\"spec\":{\"replicas\":2}}\n",
          "note": "n",
          "other": "x"
        }"#]]
    .assert_eq(&pretty(&applied["metadata"]["annotations"]));
    // Other managers, or objects without the annotation, are left alone.
    let other = apply(&live, &config, deployment(), &writer("helm"), true).expect("forced");
    assert_eq!(
        other["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"old\":true}\n"
    );
}

/// Random lives, configs and managedFields must never panic or hang.
#[test]
fn random_applies_never_panic() {
    let mut seed: u64 = 0xfeed_face_dead_beef;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let values = [
        json!(null),
        json!(1),
        json!("x"),
        json!({}),
        json!([]),
        json!([{"name": "a"}, {"name": "b", "image": "i"}]),
        json!([{"name": "a"}, {"name": "a"}]),
        json!([{"image": "no-name"}]),
        json!(["s"]),
        json!({"matchLabels": {"a": "b"}}),
        json!([{"containerPort": 80}, {"containerPort": 80, "protocol": "UDP"}]),
    ];
    let fields = [
        "replicas",
        "selector",
        "containers",
        "ports",
        "env",
        "paused",
    ];
    let managed = [
        json!(null),
        json!([{"manager": "m", "operation": "Update", "apiVersion": "apps/v1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]),
        json!([{"manager": "m", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}}}}}}}}]),
        json!([{"manager": "bad", "fieldsV1": {"x": {}}}]),
    ];
    let build = |next: &mut dyn FnMut() -> u64| {
        let mut pod_spec = serde_json::Map::new();
        let mut spec = serde_json::Map::new();
        for f in fields {
            if next().is_multiple_of(2) {
                let v = values[(next() % values.len() as u64) as usize].clone();
                if f == "containers" || f == "ports" || f == "env" {
                    pod_spec.insert(f.into(), v);
                } else {
                    spec.insert(f.into(), v);
                }
            }
        }
        spec.insert("template".into(), json!({"spec": pod_spec}));
        json!({"metadata": {"name": "d"}, "spec": spec})
    };
    for _ in 0..2000 {
        let mut live = build(&mut next);
        live["metadata"]["managedFields"] =
            managed[(next() % managed.len() as u64) as usize].clone();
        let config = build(&mut next);
        let force = next().is_multiple_of(2);
        let _ = apply(&live, &config, deployment(), &writer("kubectl"), force);
        let _ = recorded(&live, &config, deployment(), &writer("other"));
    }
}

#[test]
fn objects_without_managed_fields() {
    // Updates of an existing object nobody tracks record nothing.
    let untracked = json!({"metadata": {"name": "web", "uid": "u1"}, "spec": {"replicas": 1}});
    let mut scaled = untracked.clone();
    scaled["spec"]["replicas"] = json!(2);
    let updated = recorded(&untracked, &scaled, deployment(), &writer("scaler")).expect("update");
    assert_eq!(updated["metadata"].get("managedFields"), None);
    // The first apply gives the existing fields to before-first-apply, and
    // conflicts with them.
    let err = apply(
        &untracked,
        &json!({"spec": {"replicas": 3}}),
        deployment(),
        &writer("kubectl"),
        false,
    )
    .expect_err("conflict");
    expect![[r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas"#]]
        .assert_eq(&err.to_string());
    let forced = apply(
        &untracked,
        &json!({"spec": {"replicas": 3, "paused": true}}),
        deployment(),
        &writer("kubectl"),
        true,
    )
    .expect("forced");
    expect![[r#"
        spec: {"paused":true,"replicas":3}
        kubectl Apply: {"f:spec":{"f:paused":{},"f:replicas":{}}}
    "#]]
    .assert_eq(&summary(&forced));
}
