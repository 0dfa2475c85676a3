//! The Job controller, against a real API server with fake nodes.

mod common;

use std::time::Duration;

use bulwark_testkit::{FakeNodeConfig, FakeNodes, wait_for};
use common::{Harness, PATIENCE, bind_unscheduled};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

fn job(name: &str, spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "work", "image": "busybox"}],
    }});
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("a valid Job")
}

async fn nodes(harness: &Harness) -> (FakeNodes, common::Binder) {
    let nodes = FakeNodes::start(
        harness.admin(),
        FakeNodeConfig {
            count: 2,
            job_pod_run_time: Duration::from_millis(200),
            ..FakeNodeConfig::default()
        },
    )
    .await
    .expect("the fake nodes start");
    let binder = bind_unscheduled(harness.admin(), nodes.names().to_vec());
    (nodes, binder)
}

/// Waits until the Job has a true condition of `type_`.
async fn wait_condition(jobs: &Api<Job>, name: &str, type_: &str) -> Job {
    wait_for(&format!("job {name} {type_}"), PATIENCE, || async {
        let job = jobs.get(name).await.map_err(|e| e.to_string())?;
        let has = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"));
        if has {
            Ok(job)
        } else {
            Err(format!("{:?}", job.status))
        }
    })
    .await
    .expect("the condition appears")
}

async fn events_for(client: &kube::Client, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    events
        .list(&ListParams::default())
        .await
        .expect("events list")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

async fn job_pods(client: &kube::Client, name: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
        .await
        .expect("pods list")
        .items
}

#[tokio::test]
async fn a_job_runs_its_pods_to_completion() {
    let harness = Harness::start(&["job-controller"]).await;
    let (_nodes, _binder) = nodes(&harness).await;
    let client = harness.admin();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let created = jobs
        .create(
            &PostParams::default(),
            &job("pi", json!({"completions": 3, "parallelism": 2})),
        )
        .await
        .unwrap();
    // The server selects the Job's pods by its uid, as upstream.
    let uid = created.uid().unwrap();
    let spec = created.spec.unwrap();
    let selector = spec.selector.unwrap().match_labels.unwrap();
    assert_eq!(selector["batch.kubernetes.io/controller-uid"], uid);
    let labels = spec.template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(labels["controller-uid"], uid);

    // It cannot be changed afterwards.
    let mut unselected = jobs.get("pi").await.unwrap();
    unselected.spec.as_mut().unwrap().selector = None;
    let err = jobs
        .replace("pi", &PostParams::default(), &unselected)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("spec.selector")),
        "{err}"
    );

    let done = wait_condition(&jobs, "pi", "Complete").await;
    let status = done.status.unwrap();
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.active, Some(0));
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    let types: Vec<_> = status
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| (c.type_, c.reason.unwrap_or_default()))
        .collect();
    assert_eq!(
        types,
        [
            ("SuccessCriteriaMet".into(), "CompletionsReached".into()),
            ("Complete".into(), "CompletionsReached".into())
        ]
    );
    // Every pod was counted and let go.
    let pods = job_pods(&client, "pi").await;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| p.finalizers().is_empty()), "{pods:?}");
    let events = wait_for("events", PATIENCE, || async {
        let events = events_for(&client, "pi").await;
        if events.iter().any(|(r, _)| r == "Completed") {
            Ok(events)
        } else {
            Err(format!("{events:?}"))
        }
    })
    .await
    .unwrap();
    assert!(events.contains(&("Completed".into(), "Job completed".into())));
    let created_events = events
        .iter()
        .filter(|(r, m)| r == "SuccessfulCreate" && m.starts_with("Created pod: pi-"))
        .count();
    assert_eq!(created_events, 3, "{events:?}");
}

#[tokio::test]
async fn an_indexed_job_gives_each_pod_its_index() {
    let harness = Harness::start(&["job-controller"]).await;
    let (_nodes, _binder) = nodes(&harness).await;
    let client = harness.admin();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "idx",
            json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
        ),
    )
    .await
    .unwrap();
    let done = wait_condition(&jobs, "idx", "Complete").await;
    assert_eq!(
        done.status.unwrap().completed_indexes.as_deref(),
        Some("0-2")
    );
    let mut hosts: Vec<_> = job_pods(&client, "idx")
        .await
        .into_iter()
        .map(|p| {
            let index = p.annotations()["batch.kubernetes.io/job-completion-index"].clone();
            assert_eq!(
                p.labels()["batch.kubernetes.io/job-completion-index"],
                index
            );
            p.spec.unwrap().hostname.unwrap()
        })
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["idx-0", "idx-1", "idx-2"]);
}

/// Marks the pod Failed as a kubelet would, its container having finished
/// long enough ago that the replacement backoff has passed.
async fn fail(pods: &Api<Pod>, name: &str) {
    fail_with(pods, name, 1, None).await;
}

/// The same, with this exit code and pod condition.
async fn fail_with(pods: &Api<Pod>, name: &str, exit_code: i32, condition: Option<&str>) {
    let past = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3600)).to_string();
    let conditions: Vec<_> = condition
        .map(|c| json!({"type": c, "status": "True", "lastTransitionTime": past}))
        .into_iter()
        .collect();
    let status = json!({"status": {
        "phase": "Failed",
        "conditions": conditions,
        "containerStatuses": [{
            "name": "work", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "reason": "Error", "startedAt": past, "finishedAt": past}},
        }],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("the pod's status is written");
}

#[tokio::test]
async fn a_job_retries_to_its_backoff_limit_then_fails() {
    let harness = Harness::start(&["job-controller"]).await;
    let client = harness.admin();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("flaky", json!({"backoffLimit": 1})),
    )
    .await
    .unwrap();
    let mut failed = Vec::new();
    for attempt in 0..2 {
        let pod = wait_for(&format!("attempt {attempt}"), PATIENCE, || async {
            job_pods(&client, "flaky")
                .await
                .into_iter()
                .find(|p| !failed.contains(&p.name_any()))
                .ok_or_else(|| "no new pod".to_owned())
        })
        .await
        .unwrap();
        fail(&pods, &pod.name_any()).await;
        failed.push(pod.name_any());
    }
    let job = wait_condition(&jobs, "flaky", "Failed").await;
    let status = job.status.unwrap();
    assert_eq!(status.failed, Some(2));
    assert_eq!(status.active, Some(0));
    let conditions = status.conditions.unwrap();
    let failed_condition = conditions.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(
        failed_condition.reason.as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(
        failed_condition.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    assert!(conditions.iter().any(|c| c.type_ == "FailureTarget"));
    assert_eq!(
        job_pods(&client, "flaky").await.len(),
        2,
        "no third attempt"
    );
    wait_for("BackoffLimitExceeded event", PATIENCE, || async {
        let events = events_for(&client, "flaky").await;
        events
            .iter()
            .any(|(r, _)| r == "BackoffLimitExceeded")
            .then_some(())
            .ok_or_else(|| format!("{events:?}"))
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_job_past_its_deadline_fails_and_its_pods_are_deleted() {
    let harness = Harness::start(&["job-controller"]).await;
    let client = harness.admin();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    // No nodes: the pods never run.
    jobs.create(
        &PostParams::default(),
        &job(
            "slow",
            json!({"activeDeadlineSeconds": 1, "parallelism": 2, "completions": 2}),
        ),
    )
    .await
    .unwrap();
    let job = wait_condition(&jobs, "slow", "Failed").await;
    let status = job.status.unwrap();
    let reason = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .and_then(|c| c.reason);
    assert_eq!(reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(status.active, Some(0));
    assert_eq!(status.failed, Some(2), "deleted pods count as failed");
    wait_for("pods gone", PATIENCE, || async {
        let left = job_pods(&client, "slow").await.len();
        (left == 0).then_some(()).ok_or(format!("{left} left"))
    })
    .await
    .unwrap();
}

/// Also: two controllers waiting on one shared informer both start.
#[tokio::test]
async fn a_finished_job_is_deleted_after_its_ttl() {
    let harness = Harness::start(&["job-controller", "ttl-after-finished-controller"]).await;
    let (_nodes, _binder) = nodes(&harness).await;
    let client = harness.admin();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let created = jobs
        .create(
            &PostParams::default(),
            &job("brief", json!({"ttlSecondsAfterFinished": 0})),
        )
        .await
        .unwrap();
    wait_for("job deleted", PATIENCE, || async {
        match jobs.get_opt("brief").await.map_err(|e| e.to_string())? {
            Some(j) if j.uid() == created.uid() => Err(format!("{:?}", j.status)),
            _ => Ok(()),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_pod_failure_policy_ignores_disruptions_and_fails_the_job_on_a_fatal_exit_code() {
    let harness = Harness::start(&["job-controller"]).await;
    let client = harness.admin();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let policy = json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "work", "operator": "In", "values": [42]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]});
    jobs.create(
        &PostParams::default(),
        &job(
            "strict",
            json!({"backoffLimit": 6, "podFailurePolicy": policy}),
        ),
    )
    .await
    .unwrap();
    let first = wait_for("first pod", PATIENCE, || async {
        job_pods(&client, "strict")
            .await
            .pop()
            .ok_or_else(|| "none".to_owned())
    })
    .await
    .unwrap();
    // Evicted: not counted, replaced.
    fail_with(&pods, &first.name_any(), 137, Some("DisruptionTarget")).await;
    let second = wait_for("replacement", PATIENCE, || async {
        job_pods(&client, "strict")
            .await
            .into_iter()
            .find(|p| p.name_any() != first.name_any())
            .ok_or_else(|| "none".to_owned())
    })
    .await
    .unwrap();
    // A fatal exit code: the Job fails at once.
    fail_with(&pods, &second.name_any(), 42, None).await;
    let job = wait_condition(&jobs, "strict", "Failed").await;
    let status = job.status.unwrap();
    assert_eq!(status.failed, Some(1), "the disruption is not counted");
    let failed = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("PodFailurePolicy"));
    assert_eq!(
        failed.message.unwrap(),
        format!(
            "Container work for pod default/{} failed with exit code 42 matching FailJob rule at index 0",
            second.name_any()
        )
    );
}

#[tokio::test]
async fn a_suspended_job_starts_no_pods_until_resumed() {
    let harness = Harness::start(&["job-controller"]).await;
    let client = harness.admin();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "later",
            json!({"suspend": true, "parallelism": 2, "completions": 2}),
        ),
    )
    .await
    .unwrap();
    let suspended = wait_condition(&jobs, "later", "Suspended").await;
    let status = suspended.status.unwrap();
    assert_eq!(status.active, Some(0));
    assert!(status.start_time.is_none());
    assert!(job_pods(&client, "later").await.is_empty());
    let resume = json!({"spec": {"suspend": false}});
    jobs.patch("later", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .unwrap();
    wait_for("pods after resume", PATIENCE, || async {
        let n = job_pods(&client, "later").await.len();
        (n == 2).then_some(()).ok_or(format!("{n} pods"))
    })
    .await
    .unwrap();
    // The pods come first, the status after them.
    let resumed = wait_for("the Suspended condition turned False", PATIENCE, || async {
        let status = jobs
            .get("later")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        let condition = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Suspended")
            .map(|c| (c.status.clone(), c.reason.clone()));
        match condition {
            Some((s, Some(r))) if s == "False" && r == "JobResumed" => Ok(status),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    assert!(resumed.start_time.is_some());
    let events = events_for(&client, "later").await;
    assert!(
        events.contains(&("Suspended".into(), "Job suspended".into())),
        "{events:?}"
    );
}

#[tokio::test]
async fn the_pods_of_a_deleted_job_are_let_go() {
    let harness = Harness::start(&["job-controller"]).await;
    let client = harness.admin();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // No nodes: the pod stays pending, holding the tracking finalizer.
    jobs.create(&PostParams::default(), &job("gone", json!({})))
        .await
        .unwrap();
    let pod = wait_for("a pod", PATIENCE, || async {
        job_pods(&client, "gone")
            .await
            .pop()
            .ok_or_else(|| "none".to_owned())
    })
    .await
    .unwrap();
    assert_eq!(pod.finalizers(), ["batch.kubernetes.io/job-tracking"]);
    jobs.delete("gone", &kube::api::DeleteParams::background())
        .await
        .unwrap();
    wait_for("finalizer removed", PATIENCE, || async {
        let p = pods.get(&pod.name_any()).await.map_err(|e| e.to_string())?;
        p.finalizers()
            .is_empty()
            .then_some(())
            .ok_or(format!("{:?}", p.finalizers()))
    })
    .await
    .unwrap();
}
