use expect_test::{Expect, expect};
use serde_json::{Value, json};

use super::*;

fn check(api_version: &str, kind: &str, obj: Value, expect: Expect) {
    let mut obj = obj;
    apply_defaults(api_version, kind, &mut obj);
    expect.assert_eq(&serde_json::to_string_pretty(&obj).expect("JSON"));
}

#[test]
fn image_tags() {
    let cases = [
        "nginx",
        "nginx:1.27",
        "nginx:latest",
        "registry:5000/nginx",
        "registry:5000/nginx:1",
        "nginx@sha256:abc",
        "nginx:1@sha256:abc",
        "",
    ];
    let out: Vec<String> = cases
        .iter()
        .map(|i| format!("{i:?} -> {:?}", image_tag(i)))
        .collect();
    expect![[r#"
        "nginx" -> "latest"
        "nginx:1.27" -> "1.27"
        "nginx:latest" -> "latest"
        "registry:5000/nginx" -> "latest"
        "registry:5000/nginx:1" -> "1"
        "nginx@sha256:abc" -> ""
        "nginx:1@sha256:abc" -> "1"
        "" -> "latest""#]]
    .assert_eq(&out.join("\n"));
}

#[test]
fn pod() {
    check(
        "v1",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": {"hostNetwork": true, "containers": [
            {"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
             "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
             "readinessProbe": {"httpGet": {"port": 80}},
             "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
            "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]}}),
        expect![[r#"
            {
              "metadata": {
                "name": "p"
              },
              "spec": {
                "containers": [
                  {
                    "env": [
                      {
                        "name": "N",
                        "valueFrom": {
                          "fieldRef": {
                            "apiVersion": "v1",
                            "fieldPath": "metadata.name"
                          }
                        }
                      }
                    ],
                    "image": "nginx:1.27",
                    "imagePullPolicy": "IfNotPresent",
                    "name": "c",
                    "ports": [
                      {
                        "containerPort": 80,
                        "hostPort": 80,
                        "protocol": "TCP"
                      }
                    ],
                    "readinessProbe": {
                      "failureThreshold": 3,
                      "httpGet": {
                        "path": "/",
                        "port": 80,
                        "scheme": "HTTP"
                      },
                      "periodSeconds": 10,
                      "successThreshold": 1,
                      "timeoutSeconds": 1
                    },
                    "resizePolicy": [
                      {
                        "resourceName": "cpu",
                        "restartPolicy": "NotRequired"
                      },
                      {
                        "resourceName": "memory",
                        "restartPolicy": "NotRequired"
                      }
                    ],
                    "resources": {
                      "limits": {
                        "cpu": "1",
                        "memory": "1Gi"
                      },
                      "requests": {
                        "cpu": "500m",
                        "memory": "1Gi"
                      }
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File"
                  }
                ],
                "dnsPolicy": "ClusterFirst",
                "enableServiceLinks": true,
                "hostNetwork": true,
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30,
                "volumes": [
                  {
                    "emptyDir": {},
                    "name": "v"
                  },
                  {
                    "name": "s",
                    "secret": {
                      "defaultMode": 420,
                      "secretName": "x"
                    }
                  }
                ]
              }
            }"#]],
    );
}

#[test]
fn deployment() {
    check(
        "apps/v1",
        "Deployment",
        json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        expect![[r#"
            {
              "metadata": {
                "name": "d"
              },
              "spec": {
                "progressDeadlineSeconds": 600,
                "replicas": 1,
                "revisionHistoryLimit": 10,
                "selector": {
                  "matchLabels": {
                    "app": "d"
                  }
                },
                "strategy": {
                  "rollingUpdate": {
                    "maxSurge": "25%",
                    "maxUnavailable": "25%"
                  },
                  "type": "RollingUpdate"
                },
                "template": {
                  "metadata": {
                    "labels": {
                      "app": "d"
                    }
                  },
                  "spec": {
                    "containers": [
                      {
                        "image": "nginx",
                        "imagePullPolicy": "Always",
                        "name": "c",
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                      }
                    ],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30
                  }
                }
              }
            }"#]],
    );
    // Recreate gets no rollingUpdate.
    let mut d = json!({"spec": {"strategy": {"type": "Recreate"}}});
    apply_defaults("apps/v1", "Deployment", &mut d);
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn other_kinds() {
    let cases = [
        (
            "v1",
            "Service",
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "sessionAffinity": "ClientIP"}}),
        ),
        (
            "v1",
            "Service",
            json!({"spec": {"ports": [{"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
        ),
        ("v1", "Secret", json!({"metadata": {"name": "s"}})),
        (
            "v1",
            "Namespace",
            json!({"metadata": {"name": "team-a", "labels": {"x": "y"}}}),
        ),
        (
            "v1",
            "ReplicationController",
            json!({"spec": {"template": {"metadata": {"labels": {"app": "r"}}}}}),
        ),
        (
            "apps/v1",
            "StatefulSet",
            json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}}),
        ),
        ("apps/v1", "DaemonSet", json!({"spec": {}})),
        (
            "batch/v1",
            "Job",
            json!({"spec": {"template": {"metadata": {"labels": {"j": "1"}}}}}),
        ),
        (
            "batch/v1",
            "Job",
            json!({"spec": {"parallelism": 3, "backoffLimitPerIndex": 1, "podFailurePolicy": {"rules": [{"onPodConditions": [{"type": "DisruptionTarget"}]}]}}}),
        ),
        (
            "batch/v1",
            "CronJob",
            json!({"spec": {"schedule": "* * * * *"}}),
        ),
        (
            "v1",
            "LimitRange",
            json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}}),
        ),
        ("v1", "Node", json!({"status": {"capacity": {"cpu": "4"}}})),
        ("example.com/v1", "Widget", json!({"spec": {}})),
    ];
    let out: Vec<String> = cases
        .into_iter()
        .map(|(v, k, mut obj)| {
            apply_defaults(v, k, &mut obj);
            format!("{k}: {}", crate::patch::test_util::canonical(&obj))
        })
        .collect();
    expect![[r#"
        Service: {"spec":{"allocateLoadBalancerNodePorts":true,"externalTrafficPolicy":"Cluster","internalTrafficPolicy":"Cluster","ports":[{"port":80,"protocol":"TCP","targetPort":80}],"sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":10800}},"type":"LoadBalancer"}}
        Service: {"spec":{"internalTrafficPolicy":"Cluster","ports":[{"port":53,"protocol":"UDP","targetPort":"dns"}],"sessionAffinity":"None","type":"ClusterIP"}}
        Secret: {"metadata":{"name":"s"},"type":"Opaque"}
        Namespace: {"metadata":{"labels":{"kubernetes.io/metadata.name":"team-a","x":"y"},"name":"team-a"},"status":{"phase":"Active"}}
        ReplicationController: {"metadata":{"labels":{"app":"r"}},"spec":{"replicas":1,"selector":{"app":"r"},"template":{"metadata":{"labels":{"app":"r"}}}}}
        StatefulSet: {"spec":{"persistentVolumeClaimRetentionPolicy":{"whenDeleted":"Retain","whenScaled":"Retain"},"podManagementPolicy":"OrderedReady","replicas":1,"revisionHistoryLimit":10,"updateStrategy":{"rollingUpdate":{"partition":0},"type":"RollingUpdate"},"volumeClaimTemplates":[{"metadata":{"name":"data"},"spec":{"volumeMode":"Filesystem"},"status":{"phase":"Pending"}}]}}
        DaemonSet: {"spec":{"revisionHistoryLimit":10,"updateStrategy":{"rollingUpdate":{"maxSurge":0,"maxUnavailable":1},"type":"RollingUpdate"}}}
        Job: {"metadata":{"labels":{"j":"1"}},"spec":{"backoffLimit":6,"completionMode":"NonIndexed","completions":1,"manualSelector":false,"parallelism":1,"podReplacementPolicy":"TerminatingOrFailed","suspend":false,"template":{"metadata":{"labels":{"j":"1"}}}}}
        Job: {"spec":{"backoffLimit":2147483647,"backoffLimitPerIndex":1,"completionMode":"NonIndexed","manualSelector":false,"parallelism":3,"podFailurePolicy":{"rules":[{"onPodConditions":[{"status":"True","type":"DisruptionTarget"}]}]},"podReplacementPolicy":"Failed","suspend":false}}
        CronJob: {"spec":{"concurrencyPolicy":"Allow","failedJobsHistoryLimit":1,"schedule":"* * * * *","successfulJobsHistoryLimit":3,"suspend":false}}
        LimitRange: {"spec":{"limits":[{"default":{"cpu":"2"},"defaultRequest":{"cpu":"2","memory":"1Mi"},"max":{"cpu":"2"},"min":{"memory":"1Mi"},"type":"Container"}]}}
        Node: {"status":{"allocatable":{"cpu":"4"},"capacity":{"cpu":"4"}}}
        Widget: {"spec":{}}"#]].assert_eq(&out.join("\n"));
}
