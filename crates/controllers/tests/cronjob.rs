//! The CronJob controller, against a real API server, with a clock the test
//! sets. The controller reads the clock whenever it reconciles; the test
//! touches the CronJob after moving the clock so that it looks at once.

mod common;

use common::{Harness, PATIENCE, TestClock};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

fn at(text: &str) -> jiff::Timestamp {
    text.parse().expect("a valid timestamp")
}

fn cronjob(name: &str, spec: serde_json::Value) -> CronJob {
    let mut spec = spec;
    spec["jobTemplate"] = json!({"spec": {"template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "work", "image": "busybox"}],
    }}}});
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("a CronJob")
}

/// Makes the controller look at the CronJob now.
async fn touch(cronjobs: &Api<CronJob>, name: &str, n: u32) {
    let patch = json!({"metadata": {"annotations": {"test/touch": n.to_string()}}});
    cronjobs
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("the CronJob is patched");
}

async fn wait_job(jobs: &Api<Job>, name: &str) -> Job {
    bulwark_testkit::wait_for(&format!("job {name}"), PATIENCE, || async {
        jobs.get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "absent".to_owned())
    })
    .await
    .expect("the Job appears")
}

async fn wait_event(client: &kube::Client, object: &str, reason: &str) -> String {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    bulwark_testkit::wait_for(&format!("{reason} event"), PATIENCE, || async {
        let list = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        list.items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(object))
            .find(|e| e.reason.as_deref() == Some(reason))
            .and_then(|e| e.message)
            .ok_or_else(|| "not yet".to_owned())
    })
    .await
    .expect("the event appears")
}

/// Marks the Job complete, as the Job controller would.
async fn complete(jobs: &Api<Job>, name: &str, when: &str) {
    let status = json!({"status": {
        "startTime": when, "completionTime": when, "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": when},
            {"type": "Complete", "status": "True", "lastTransitionTime": when},
        ],
    }});
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("the Job's status is written");
}

#[tokio::test]
async fn a_cronjob_fires_on_schedule_and_keeps_its_history() {
    let clock = TestClock::new(at("2030-01-01T10:00:30Z"));
    let harness = Harness::start_with_clock(&["cronjob-controller"], clock.clone()).await;
    let client = harness.admin();
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    cronjobs
        .create(
            &PostParams::default(),
            &cronjob(
                "tick",
                json!({"schedule": "*/5 * * * *", "timeZone": "Etc/UTC",
                    "startingDeadlineSeconds": 120, "successfulJobsHistoryLimit": 1}),
            ),
        )
        .await
        .unwrap();
    let first_name = format!("tick-{}", at("2030-01-01T10:00:00Z").as_second() / 60);
    let first = wait_job(&jobs, &first_name).await;
    assert_eq!(
        first.annotations()["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        "2030-01-01T10:00:00Z"
    );
    assert_eq!(first.owner_references()[0].kind, "CronJob");
    assert_eq!(
        wait_event(&client, "tick", "SuccessfulCreate").await,
        format!("Created job {first_name}")
    );

    clock.set(at("2030-01-01T10:05:10Z"));
    touch(&cronjobs, "tick", 1).await;
    let second_name = format!("tick-{}", at("2030-01-01T10:05:00Z").as_second() / 60);
    wait_job(&jobs, &second_name).await;
    let cj = bulwark_testkit::wait_for("two active", PATIENCE, || async {
        let cj = cronjobs.get("tick").await.map_err(|e| e.to_string())?;
        let status = cj.status.clone().unwrap_or_default();
        let active = status.active.unwrap_or_default().len();
        (active == 2)
            .then_some(cj)
            .ok_or(format!("{active} active"))
    })
    .await
    .unwrap();
    let status = cj.status.unwrap();
    assert_eq!(
        status.last_schedule_time.unwrap().0,
        at("2030-01-01T10:05:00Z")
    );

    // Both finish: they leave the active list, the older one is deleted.
    complete(&jobs, &first_name, "2030-01-01T10:01:00Z").await;
    complete(&jobs, &second_name, "2030-01-01T10:06:00Z").await;
    let cj = bulwark_testkit::wait_for("history kept", PATIENCE, || async {
        let cj = cronjobs.get("tick").await.map_err(|e| e.to_string())?;
        let status = cj.status.clone().unwrap_or_default();
        let first_gone = jobs
            .get_opt(&first_name)
            .await
            .map_err(|e| e.to_string())?
            .is_none();
        (status.active.is_none() && status.last_successful_time.is_some() && first_gone)
            .then_some(cj)
            .ok_or(format!("{status:?}"))
    })
    .await
    .unwrap();
    assert_eq!(
        cj.status.unwrap().last_successful_time.unwrap().0,
        at("2030-01-01T10:06:00Z")
    );
    assert!(jobs.get_opt(&second_name).await.unwrap().is_some());
    assert!(
        wait_event(&client, "tick", "SawCompletedJob")
            .await
            .starts_with("Saw completed job: tick-")
    );
    assert_eq!(
        wait_event(&client, "tick", "SuccessfulDelete").await,
        format!("Deleted job {first_name}")
    );
}

#[tokio::test]
async fn a_forbidding_cronjob_in_a_time_zone_waits_for_its_running_job() {
    // 09:00:30 in Tokyo.
    let clock = TestClock::new(at("2030-01-02T00:00:30Z"));
    let harness = Harness::start_with_clock(&["cronjob-controller"], clock.clone()).await;
    let client = harness.admin();
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    cronjobs
        .create(
            &PostParams::default(),
            &cronjob(
                "solo",
                json!({"schedule": "0 9 * * *", "timeZone": "Asia/Tokyo",
                    "startingDeadlineSeconds": 300, "concurrencyPolicy": "Forbid"}),
            ),
        )
        .await
        .unwrap();
    let first = format!("solo-{}", at("2030-01-02T00:00:00Z").as_second() / 60);
    wait_job(&jobs, &first).await;
    // A day later the first still runs: no second Job.
    clock.set(at("2030-01-03T00:00:30Z"));
    touch(&cronjobs, "solo", 1).await;
    assert_eq!(
        wait_event(&client, "solo", "JobAlreadyActive").await,
        "Not starting job because prior execution is running and concurrency policy is Forbid"
    );
    let owned = jobs.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(owned.len(), 1, "{owned:?}");
}

#[tokio::test]
async fn a_replacing_cronjob_deletes_the_running_job_for_the_next() {
    let clock = TestClock::new(at("2030-01-01T10:00:30Z"));
    let harness = Harness::start_with_clock(&["cronjob-controller"], clock.clone()).await;
    let client = harness.admin();
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    cronjobs
        .create(
            &PostParams::default(),
            &cronjob(
                "swap",
                json!({"schedule": "*/5 * * * *", "timeZone": "UTC",
                    "startingDeadlineSeconds": 120, "concurrencyPolicy": "Replace"}),
            ),
        )
        .await
        .unwrap();
    let first = format!("swap-{}", at("2030-01-01T10:00:00Z").as_second() / 60);
    wait_job(&jobs, &first).await;
    clock.set(at("2030-01-01T10:05:01Z"));
    touch(&cronjobs, "swap", 1).await;
    let second = format!("swap-{}", at("2030-01-01T10:05:00Z").as_second() / 60);
    wait_job(&jobs, &second).await;
    assert_eq!(
        wait_event(&client, "swap", "SuccessfulDelete").await,
        format!("Deleted job {first}")
    );
    bulwark_testkit::wait_for("only the new job active", PATIENCE, || async {
        let cj = cronjobs.get("swap").await.map_err(|e| e.to_string())?;
        let active: Vec<String> = cj
            .status
            .and_then(|s| s.active)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.name)
            .collect();
        let gone = jobs
            .get_opt(&first)
            .await
            .map_err(|e| e.to_string())?
            .is_none();
        (active == [second.clone()] && gone)
            .then_some(())
            .ok_or(format!("{active:?}, first gone: {gone}"))
    })
    .await
    .unwrap();
}
