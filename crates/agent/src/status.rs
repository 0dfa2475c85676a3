//! Pod status as the kubelet reports it, computed from what the agent
//! observed: phase, conditions and container statuses. Pure functions, so
//! the rules (upstream's `getPhase`, the condition reasons) are unit-tested.

use serde_json::{Value, json};

/// What a container is doing, as the agent saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Observed {
    /// Not running: not created yet, or waiting to restart.
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`,
        /// `ErrImagePull`, `ImagePullBackOff`, `CreateContainerConfigError`…
        reason: String,
        /// Details, if any.
        message: Option<String>,
    },
    /// Its process runs.
    Running {
        /// RFC 3339 start time.
        started_at: String,
    },
    /// Its process ended (and it will not be restarted now).
    Terminated(Exit),
}

/// How a container's process ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Exit {
    /// Exit code.
    pub(crate) code: i32,
    /// Killing signal, if any.
    pub(crate) signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`.
    pub(crate) reason: String,
    /// RFC 3339.
    pub(crate) started_at: String,
    /// RFC 3339.
    pub(crate) finished_at: String,
    /// The runtime's id of that container.
    pub(crate) container_id: String,
}

impl Exit {
    fn to_json(&self) -> Value {
        let mut t = json!({
            "exitCode": self.code,
            "reason": self.reason,
            "startedAt": non_empty(&self.started_at),
            "finishedAt": non_empty(&self.finished_at),
            "containerID": format!("bulwark://{}", self.container_id),
        });
        if let Some(signal) = self.signal {
            t["signal"] = json!(signal);
        }
        json!({ "terminated": t })
    }
}

fn non_empty(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { json!(s) }
}

/// Everything the status of one container is made of.
#[derive(Clone, Debug)]
pub(crate) struct ContainerView {
    /// Container name.
    pub(crate) name: String,
    /// The image as the spec names it.
    pub(crate) image: String,
    /// `<repository>@<digest>` once pulled.
    pub(crate) image_id: Option<String>,
    /// Current runtime container id, if one exists.
    pub(crate) container_id: Option<String>,
    /// Now.
    pub(crate) state: Observed,
    /// The previous run's end, if it restarted.
    pub(crate) last: Option<Exit>,
    /// Restarts so far.
    pub(crate) restart_count: i32,
    /// Readiness (probe result, or running without a readiness probe).
    pub(crate) ready: bool,
    /// Startup done (startup probe passed, or running without one).
    pub(crate) started: bool,
}

impl ContainerView {
    /// The `containerStatuses[]` entry.
    pub(crate) fn to_json(&self) -> Value {
        let state = match &self.state {
            Observed::Waiting { reason, message } => {
                let mut w = json!({ "reason": reason });
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({ "waiting": w })
            }
            Observed::Running { started_at } => json!({ "running": { "startedAt": started_at } }),
            Observed::Terminated(exit) => exit.to_json(),
        };
        let mut v = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id.clone().unwrap_or_default(),
            "state": state,
            "lastState": self.last.as_ref().map_or(json!({}), Exit::to_json),
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started && matches!(self.state, Observed::Running { .. }),
        });
        if let Some(id) = &self.container_id {
            v["containerID"] = json!(format!("bulwark://{id}"));
        }
        v
    }
}

/// The pod's phase from its containers, as upstream's `getPhase`.
pub(crate) fn phase(
    restart_policy: &str,
    init: &[ContainerView],
    containers: &[ContainerView],
) -> &'static str {
    let init_failed_for_good = restart_policy == "Never"
        && init
            .iter()
            .any(|c| matches!(&c.state, Observed::Terminated(e) if e.code != 0));
    if init_failed_for_good {
        return "Failed";
    }
    let init_done = init
        .iter()
        .all(|c| matches!(&c.state, Observed::Terminated(e) if e.code == 0));
    if !init_done {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            Observed::Running { .. } => running += 1,
            Observed::Terminated(e) => {
                stopped += 1;
                if e.code == 0 {
                    succeeded += 1;
                }
            }
            // A container waiting to restart has run: it counts as stopped.
            Observed::Waiting { .. } if c.last.is_some() => stopped += 1,
            Observed::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == containers.len() && !containers.is_empty() {
        if restart_policy == "Always" {
            return "Running";
        }
        if succeeded == containers.len() {
            return "Succeeded";
        }
        let any_failed = containers.iter().any(|c| match (&c.state, &c.last) {
            (Observed::Terminated(e), _) => e.code != 0,
            (Observed::Waiting { .. }, Some(_)) => true,
            _ => false,
        });
        if restart_policy == "Never" && any_failed {
            return "Failed";
        }
        // OnFailure: failed containers restart.
        return "Running";
    }
    "Pending"
}

/// One condition, keeping `lastTransitionTime` when the status is unchanged.
pub(crate) fn condition(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    previous: Option<&Value>,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let transition = previous
        .filter(|p| p["status"] == status)
        .and_then(|p| p["lastTransitionTime"].as_str().map(str::to_owned))
        .unwrap_or_else(|| now.to_owned());
    let mut c = json!({
        "type": type_,
        "status": status,
        "lastProbeTime": null,
        "lastTransitionTime": transition,
    });
    if let Some(reason) = reason {
        c["reason"] = json!(reason);
    }
    if let Some(message) = message {
        c["message"] = json!(message);
    }
    c
}

/// The kubelet-owned conditions: PodReadyToStartContainers, Initialized,
/// ContainersReady, Ready. `previous` is the pod's current condition list.
pub(crate) fn conditions(
    sandbox_ready: bool,
    phase: &str,
    init: &[ContainerView],
    containers: &[ContainerView],
    previous: &[Value],
    now: &str,
) -> Vec<Value> {
    let prev = |t: &str| previous.iter().find(|c| c["type"] == t);
    let succeeded = phase == "Succeeded";
    let pending_init: Vec<&str> = init
        .iter()
        .filter(|c| !matches!(&c.state, Observed::Terminated(e) if e.code == 0))
        .map(|c| c.name.as_str())
        .collect();
    let initialized = pending_init.is_empty();
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let (ready, ready_reason, ready_message) = if succeeded {
        (false, Some("PodCompleted"), None)
    } else if unready.is_empty() && initialized {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    vec![
        condition(
            "PodReadyToStartContainers",
            sandbox_ready,
            None,
            None,
            prev("PodReadyToStartContainers"),
            now,
        ),
        if succeeded {
            condition(
                "Initialized",
                true,
                Some("PodCompleted"),
                None,
                prev("Initialized"),
                now,
            )
        } else if initialized {
            condition("Initialized", true, None, None, prev("Initialized"), now)
        } else {
            condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(format!(
                    "containers with incomplete status: [{}]",
                    pending_init.join(" ")
                )),
                prev("Initialized"),
                now,
            )
        },
        condition(
            "ContainersReady",
            ready,
            ready_reason,
            ready_message.clone(),
            prev("ContainersReady"),
            now,
        ),
        condition(
            "Ready",
            ready,
            ready_reason,
            ready_message,
            prev("Ready"),
            now,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, state: Observed, last: Option<Exit>) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "busybox".into(),
            image_id: None,
            container_id: None,
            ready: matches!(state, Observed::Running { .. }),
            started: true,
            state,
            last,
            restart_count: 0,
        }
    }

    fn exited(code: i32) -> Observed {
        Observed::Terminated(exit(code))
    }

    fn exit(code: i32) -> Exit {
        Exit {
            code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            container_id: "x".into(),
        }
    }

    fn running() -> Observed {
        Observed::Running {
            started_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn waiting(reason: &str) -> Observed {
        Observed::Waiting {
            reason: reason.into(),
            message: None,
        }
    }

    #[test]
    fn phases_follow_upstream() {
        let c = |s| vec![view("c", s, None)];
        assert_eq!(
            phase("Always", &[], &c(waiting("ContainerCreating"))),
            "Pending"
        );
        assert_eq!(phase("Always", &[], &c(running())), "Running");
        assert_eq!(phase("Never", &[], &c(exited(0))), "Succeeded");
        assert_eq!(phase("Never", &[], &c(exited(1))), "Failed");
        assert_eq!(phase("OnFailure", &[], &c(exited(0))), "Succeeded");
        assert_eq!(phase("Always", &[], &c(exited(0))), "Running");
        // Crash-looping: waiting after a run is still Running.
        let looping = vec![view("c", waiting("CrashLoopBackOff"), Some(exit(1)))];
        assert_eq!(phase("Always", &[], &looping), "Running");
        // Init containers gate everything.
        let init = vec![view("i", running(), None)];
        assert_eq!(
            phase("Always", &init, &c(waiting("PodInitializing"))),
            "Pending"
        );
        let failed_init = vec![view("i", exited(1), None)];
        assert_eq!(
            phase("Never", &failed_init, &c(waiting("PodInitializing"))),
            "Failed"
        );
        assert_eq!(
            phase("Always", &failed_init, &c(waiting("PodInitializing"))),
            "Pending"
        );
    }

    #[test]
    fn ready_conditions_name_the_unready_containers() {
        let containers = vec![
            view("a", running(), None),
            view("b", waiting("CrashLoopBackOff"), Some(exit(1))),
        ];
        let conditions = conditions(true, "Running", &[], &containers, &[], "T1");
        let ready = conditions.iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ContainersNotReady");
        assert_eq!(ready["message"], "containers with unready status: [b]");
        // Transition time kept while the status holds.
        let again = super::conditions(true, "Running", &[], &containers, &conditions, "T2");
        let ready = again.iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["lastTransitionTime"], "T1");
    }

    #[test]
    fn container_status_json_has_upstream_shape() {
        let mut v = view("c", running(), Some(exit(137)));
        v.container_id = Some("abc-1".into());
        v.restart_count = 1;
        let j = v.to_json();
        assert_eq!(j["containerID"], "bulwark://abc-1");
        assert_eq!(j["state"]["running"]["startedAt"], "2026-01-01T00:00:00Z");
        assert_eq!(j["lastState"]["terminated"]["exitCode"], 137);
        assert_eq!(j["restartCount"], 1);
        assert_eq!(j["started"], true);
    }
}
