//! End-to-end: real pods. `bulwark server` with its node agent (root only),
//! driven by the real kubectl; images come from a busybox rootfs imported
//! into the node's image store before the server starts.
//!
//! Each test runs its own server with a node of its own name; the agent's
//! containers, cgroups and pinned namespaces live under the test's temporary
//! data dir and are torn down when the pods are deleted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // harness code: a panic is the failure report

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The test image's name in the node's store.
const IMAGE: &str = "bulwark.test/busybox:e2e";

macro_rules! require_root {
    () => {
        if !bulwark_testkit::is_root() {
            eprintln!("skipped: the node agent needs root");
            return;
        }
    };
}

/// The eviction thresholds of a test's agent unless it names its own:
/// only memory, and 1 MiB of it, so that how full this machine's disk is
/// (upstream's default refuses pods below 10% free) decides no test.
fn default_eviction(args: &[String]) -> Vec<&'static str> {
    if args.iter().any(|a| a == "--eviction-hard") {
        Vec::new()
    } else {
        vec!["--eviction-hard", "memory.available<1Mi"]
    }
}

struct Node {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    agent_port: u16,
    name: String,
    kubeconfig: PathBuf,
    /// More `bulwark server` arguments.
    args: Vec<String>,
}

impl Node {
    fn start(tag: &str) -> Node {
        Self::start_with(tag, &[])
    }

    fn start_with(tag: &str, args: &[&str]) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("bulwark-agent-e2e-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        import_busybox(dir.path(), &data);
        let port = bulwark_testkit::free_loopback_port().unwrap();
        let agent_port = bulwark_testkit::free_loopback_port().unwrap();
        let name = format!("e2e-{tag}-{}", std::process::id());
        let mut node = Node {
            child: None,
            kubeconfig: data.join("admin.kubeconfig"),
            dir,
            port,
            agent_port,
            name,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        node.spawn();
        node.eventually("the node to be Ready", || {
            let out = node.kubectl(&[
                "get",
                "node",
                &node.name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            match String::from_utf8_lossy(&out.stdout).as_ref() {
                "True" => Ok(()),
                other => Err(format!(
                    "Ready={other:?} {}",
                    String::from_utf8_lossy(&out.stderr)
                )),
            }
        });
        node
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(["server", "--port", &self.port.to_string(), "--data-dir"])
            .arg(self.data())
            .args(["--node-name", &self.name])
            .args(["--agent-port", &self.agent_port.to_string()])
            // The host's own network is not the test's to change.
            .args(["--pod-network", "none"])
            .args(default_eviction(&self.args))
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("BULWARK_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL of the server and its agent, as a crash.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        // Flags before the arguments: after `--` they would be the command's.
        Command::new("kubectl")
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn apply(&self, manifest: &str) {
        let path = self.dir.path().join(format!("m-{}.yaml", unique()));
        std::fs::write(&path, manifest).unwrap();
        self.ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        let expr = format!("jsonpath={path}");
        args.extend(["-o", &expr]);
        let out = self.kubectl(&args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn eventually<T>(&self, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut last = String::new();
        while Instant::now() < deadline {
            match check() {
                Ok(value) => return value,
                Err(why) => last = why,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "timed out waiting for {what}: {last}\n--- server log ---\n{}",
            self.log()
        );
    }

    fn wait_phase(&self, pod: &str, phase: &str) {
        self.eventually(&format!("pod {pod} to be {phase}"), || {
            let got = self.jsonpath(&["pod", pod], "{.status.phase}");
            if got == phase {
                Ok(())
            } else {
                Err(format!(
                    "phase {got:?}; status {}",
                    self.jsonpath(&["pod", pod], "{.status}")
                ))
            }
        });
    }

    /// The runtime's containers directory (to check nothing is left).
    fn containers(&self) -> Vec<String> {
        std::fs::read_dir(self.data().join("runtime/containers"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Pods go first, so their containers, mounts and cgroups do too.
        if self.child.is_some() {
            let _ = self.kubectl(&[
                "delete",
                "pods",
                "--all",
                "-A",
                "--grace-period=0",
                "--force",
                "--wait=false",
            ]);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && !self.containers().is_empty() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.log());
        }
        self.kill();
        // Anything still running (a failed test) is killed by its shim's pid.
        for id in self.containers() {
            let dir = self.data().join("runtime/containers").join(&id);
            for file in ["pid", "shim.pid"] {
                if let Ok(pid) = std::fs::read_to_string(dir.join(file)) {
                    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                }
            }
        }
        // `umount -R` of the agent's directory did nothing (it is not a
        // mount point itself), which left a refused pod's pinned
        // namespaces, and so the test's directory, behind.
        support::unmount_under(&self.data());
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Imports the test busybox image as [`IMAGE`] into the data dir's store.
fn import_busybox(scratch: &Path, data: &Path) {
    support::import_image(scratch, data, IMAGE);
}

fn pod(name: &str, restart: &str, command: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {restart}
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {IMAGE}
    command: [sh, -c, {command:?}]
{extra}"
    )
}

#[test]
fn a_pod_runs_reports_its_status_and_is_torn_down_on_delete() {
    require_root!();
    let node = Node::start("run");
    node.ok(&[
        "run",
        "hello",
        "--image",
        IMAGE,
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "echo hi; sleep 600",
    ]);
    node.wait_phase("hello", "Running");
    assert_eq!(
        node.jsonpath(&["pod", "hello"], "{.spec.nodeName}"),
        node.name
    );
    let ready = node.jsonpath(
        &["pod", "hello"],
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    );
    assert_eq!(ready, "True");
    let id = node.jsonpath(
        &["pod", "hello"],
        "{.status.containerStatuses[0].containerID}",
    );
    assert!(id.starts_with("bulwark://"), "{id}");
    assert!(
        node.jsonpath(&["pod", "hello"], "{.status.containerStatuses[0].imageID}")
            .contains("@sha256:")
    );
    assert_eq!(
        node.jsonpath(&["pod", "hello"], "{.status.qosClass}"),
        "BestEffort"
    );
    let events = node.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=hello",
    ]);
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(events.contains(reason), "no {reason} event in\n{events}");
    }
    // The process runs in the pod's own namespaces, under its cgroup.
    assert_eq!(node.containers().len(), 1);
    node.ok(&["delete", "pod", "hello", "--grace-period=1"]);
    node.eventually(
        "the containers and the pod's directory to be removed",
        || {
            let pods = std::fs::read_dir(node.data().join("agent/pods"))
                .unwrap()
                .count();
            if node.containers().is_empty() && pods == 0 {
                Ok(())
            } else {
                Err(format!(
                    "containers {:?}, pod directories {pods}",
                    node.containers()
                ))
            }
        },
    );
    let gone = node.kubectl(&["get", "pod", "hello"]);
    assert!(!gone.status.success(), "the pod is deleted from the API");
}

#[test]
fn restart_policies_back_off_and_jobs_complete() {
    require_root!();
    let node = Node::start("restart");
    node.apply(&pod("crash", "Always", "echo boom; exit 3", ""));
    node.eventually("restarts into CrashLoopBackOff", || {
        let count: i32 = node
            .jsonpath(
                &["pod", "crash"],
                "{.status.containerStatuses[0].restartCount}",
            )
            .parse()
            .unwrap_or(0);
        let reason = node.jsonpath(
            &["pod", "crash"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        let last = node.jsonpath(
            &["pod", "crash"],
            "{.status.containerStatuses[0].lastState.terminated.exitCode}",
        );
        if count >= 1 && reason == "CrashLoopBackOff" && last == "3" {
            Ok(())
        } else {
            Err(format!(
                "restartCount {count}, waiting {reason:?}, last exit {last:?}"
            ))
        }
    });
    assert_eq!(
        node.jsonpath(&["pod", "crash"], "{.status.phase}"),
        "Running"
    );

    node.apply(&pod("fails", "Never", "exit 7", ""));
    node.wait_phase("fails", "Failed");
    assert_eq!(
        node.jsonpath(
            &["pod", "fails"],
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "7"
    );
    assert_eq!(
        node.jsonpath(
            &["pod", "fails"],
            "{.status.containerStatuses[0].state.terminated.reason}"
        ),
        "Error"
    );

    // A command the image does not have: a run that ended at once with
    // containerd's StartError, not a container waiting forever.
    node.ok(&[
        "run",
        "nocmd",
        "--image",
        IMAGE,
        "--restart=Never",
        "--",
        "no-such-command",
    ]);
    node.wait_phase("nocmd", "Failed");
    let terminated = "{.status.containerStatuses[0].state.terminated}";
    assert_eq!(
        node.jsonpath(&["pod", "nocmd"], &terminated.replace("}", ".reason}")),
        "StartError"
    );
    assert_eq!(
        node.jsonpath(&["pod", "nocmd"], &terminated.replace("}", ".exitCode}")),
        "128"
    );
    node.ok(&[
        "run",
        "nocmd-again",
        "--image",
        IMAGE,
        "--restart=Always",
        "--",
        "no-such-command",
    ]);
    node.eventually("StartError runs back off", || {
        let status = |path: &str| node.jsonpath(&["pod", "nocmd-again"], path);
        let last = status("{.status.containerStatuses[0].lastState.terminated.reason}");
        let waiting = status("{.status.containerStatuses[0].state.waiting.reason}");
        if last == "StartError" && waiting == "CrashLoopBackOff" {
            Ok(())
        } else {
            Err(format!("last {last:?}, waiting {waiting:?}"))
        }
    });

    node.ok(&[
        "create",
        "job",
        "once",
        "--image",
        IMAGE,
        "--",
        "sh",
        "-c",
        "echo done",
    ]);
    node.eventually("the job to complete", || {
        let c = node.jsonpath(
            &["job", "once"],
            "{.status.conditions[?(@.type==\"Complete\")].status}",
        );
        if c == "True" {
            Ok(())
        } else {
            Err(node.jsonpath(&["job", "once"], "{.status}"))
        }
    });
}

#[test]
fn init_containers_env_and_probes() {
    require_root!();
    let node = Node::start("init");
    node.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: staged
  labels: {{app: staged}}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: prepare
    image: {IMAGE}
    command: [sh, -c, 'echo prepared > /work/ready']
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: main
    image: {IMAGE}
    command: [sh, -c, 'test -f /work/ready && sleep 600']
    env:
    - {{name: POD, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: GREETING, value: 'hello $(POD)'}}
    volumeMounts: [{{name: work, mountPath: /work}}]
    readinessProbe:
      exec: {{command: [sh, -c, 'test \"$GREETING\" = \"hello staged\"']}}
      periodSeconds: 1
  volumes:
  - {{name: work, emptyDir: {{}}}}
"
    ));
    node.wait_phase("staged", "Running");
    node.eventually("readiness through the probe", || {
        let ready = node.jsonpath(&["pod", "staged"], "{.status.containerStatuses[0].ready}");
        if ready == "true" {
            Ok(())
        } else {
            Err(node.jsonpath(&["pod", "staged"], "{.status}"))
        }
    });
    assert_eq!(
        node.jsonpath(
            &["pod", "staged"],
            "{.status.initContainerStatuses[0].state.terminated.reason}"
        ),
        "Completed"
    );

    // A liveness probe that fails restarts the container.
    node.apply(&pod(
        "unwell",
        "Always",
        "sleep 600",
        "    livenessProbe:
      exec: {command: [sh, -c, 'exit 1']}
      periodSeconds: 1
      failureThreshold: 1
",
    ));
    // Killed again and again: restarts, then CrashLoopBackOff between them;
    // the killed run (SIGKILL after the grace period: sleep ignores SIGTERM
    // as the pod's first process) is an Error with 137.
    node.eventually("liveness restarts into CrashLoopBackOff", || {
        let status = |path: &str| node.jsonpath(&["pod", "unwell"], path);
        let count: i32 = status("{.status.containerStatuses[0].restartCount}")
            .parse()
            .unwrap_or(0);
        let waiting = status("{.status.containerStatuses[0].state.waiting.reason}");
        let last = status("{.status.containerStatuses[0].lastState.terminated}");
        if count >= 1 && waiting == "CrashLoopBackOff" && last.contains("\"exitCode\":137") {
            Ok(last)
        } else {
            Err(status("{.status}"))
        }
    });
    let last_reason = node.jsonpath(
        &["pod", "unwell"],
        "{.status.containerStatuses[0].lastState.terminated.reason}",
    );
    assert_eq!(last_reason, "Error");
    let events = node.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=unwell",
    ]);
    for expected in [
        "Liveness probe failed",
        "failed liveness probe, will be restarted",
        "Back-off restarting failed container",
    ] {
        assert!(events.contains(expected), "{expected:?} not in\n{events}");
    }
}

#[test]
fn deployments_scale_out_oom_kills_are_reported_and_pre_stop_hooks_run() {
    require_root!();
    let node = Node::start("workloads");
    // A Deployment of 20 replicas on the one node: all of them Ready.
    node.apply(&format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: many
spec:
  replicas: 20
  selector: {{matchLabels: {{app: many}}}}
  template:
    metadata: {{labels: {{app: many}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        command: [sleep, '3600']
"
    ));
    node.eventually("20 ready replicas", || {
        let ready = node.jsonpath(&["deployment", "many"], "{.status.readyReplicas}");
        if ready == "20" {
            Ok(())
        } else {
            Err(format!("readyReplicas {ready:?}"))
        }
    });
    let phases = node.jsonpath(&["pods", "-l", "app=many"], "{.items[*].status.phase}");
    assert_eq!(
        phases
            .split_whitespace()
            .filter(|p| *p == "Running")
            .count(),
        20,
        "{phases}"
    );
    assert_eq!(node.containers().len(), 20);
    node.ok(&["delete", "deployment", "many"]);
    node.eventually("the replicas' containers to be removed", || {
        let pods = node.jsonpath(&["pods", "-l", "app=many"], "{.items[*].metadata.name}");
        if pods.is_empty() && node.containers().is_empty() {
            Ok(())
        } else {
            Err(format!("pods {pods:?}, containers {:?}", node.containers()))
        }
    });

    // A process allocating past its memory limit: OOMKilled, 137.
    node.apply(&pod(
        "hog",
        "Never",
        "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
        "    resources:
      limits: {memory: 32Mi}
",
    ));
    node.wait_phase("hog", "Failed");
    let terminated = "{.status.containerStatuses[0].state.terminated}";
    assert_eq!(
        node.jsonpath(&["pod", "hog"], &terminated.replace("}", ".reason}")),
        "OOMKilled"
    );
    assert_eq!(
        node.jsonpath(&["pod", "hog"], &terminated.replace("}", ".exitCode}")),
        "137"
    );

    // preStop runs on delete, before SIGTERM reaches the container: both
    // leave a line in a host directory (hostPath: a privileged namespace).
    let trace_dir = node.dir.path().join("trace");
    std::fs::create_dir(&trace_dir).unwrap();
    node.ok(&["create", "namespace", "hooks"]);
    node.ok(&[
        "label",
        "namespace",
        "hooks",
        "pod-security.kubernetes.io/enforce=privileged",
    ]);
    node.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: stopper
  namespace: hooks
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: main
    image: {IMAGE}
    command: [sh, -c, 'trap \"echo sigterm >> /trace/log; exit 0\" TERM; echo started >> /trace/log; while true; do sleep 1; done']
    lifecycle:
      preStop:
        exec: {{command: [sh, -c, 'echo pre-stop >> /trace/log']}}
    volumeMounts: [{{name: trace, mountPath: /trace}}]
  volumes:
  - {{name: trace, hostPath: {{path: {trace}, type: Directory}}}}
",
        trace = trace_dir.display()
    ));
    let log = trace_dir.join("log");
    node.eventually("the container to start", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text == "started\n" {
            Ok(())
        } else {
            Err(text)
        }
    });
    node.ok(&["delete", "pod", "stopper", "-n", "hooks"]);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "started\npre-stop\nsigterm\n",
        "the hook, then the signal, before the pod was gone"
    );
    let events = node.ok(&[
        "get",
        "events",
        "-n",
        "hooks",
        "--field-selector",
        "involvedObject.name=stopper",
    ]);
    assert!(!events.contains("FailedPreStopHook"), "{events}");
}

#[test]
fn a_restarted_agent_re_adopts_running_containers() {
    require_root!();
    let mut node = Node::start("adopt");
    node.apply(&pod("steady", "Always", "sleep 600", ""));
    node.wait_phase("steady", "Running");
    let before = node.jsonpath(
        &["pod", "steady"],
        "{.status.containerStatuses[0].containerID}",
    );
    node.kill();
    node.spawn();
    // Let the new agent look at the pod a few times, then compare.
    node.eventually("the restarted agent to report the node Ready", || {
        let t = node.jsonpath(
            &["lease", "-n", "kube-node-lease", &node.name],
            "{.spec.renewTime}",
        );
        if t.is_empty() {
            Err("no lease".into())
        } else {
            Ok(())
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let after = node.jsonpath(
        &["pod", "steady"],
        "{.status.containerStatuses[0].containerID}",
    );
    let restarts = node.jsonpath(
        &["pod", "steady"],
        "{.status.containerStatuses[0].restartCount}",
    );
    assert_eq!(before, after, "the same container still runs");
    assert_eq!(restarts, "0");
    assert_eq!(node.containers().len(), 1);
}

#[test]
fn config_maps_and_secrets_reach_pods_as_env_and_volumes() {
    require_root!();
    let node = Node::start("volumes");
    node.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=color=blue",
    ]);
    node.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=hunter2",
    ]);
    node.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    command: [sh, -c, 'sleep 600']
    env:
    - {{name: COLOR, valueFrom: {{configMapKeyRef: {{name: settings, key: color}}}}}}
    readinessProbe:
      exec: {{command: [sh, -c, 'test \"$COLOR\" = blue && test \"$(cat /etc/creds/password)\" = hunter2 && test \"$(cat /etc/settings/color)\" = green']}}
      periodSeconds: 1
    volumeMounts:
    - {{name: creds, mountPath: /etc/creds, readOnly: true}}
    - {{name: settings, mountPath: /etc/settings}}
  volumes:
  - {{name: creds, secret: {{secretName: creds}}}}
  - {{name: settings, configMap: {{name: settings}}}}
"
    ));
    node.wait_phase("reader", "Running");
    // The file says blue until the ConfigMap changes: then the update
    // reaches the running pod and the probe passes.
    node.ok(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        "{\"data\":{\"color\":\"green\"}}",
    ]);
    node.eventually("the updated ConfigMap in the volume", || {
        let ready = node.jsonpath(&["pod", "reader"], "{.status.containerStatuses[0].ready}");
        if ready == "true" {
            Ok(())
        } else {
            Err(node.jsonpath(&["pod", "reader"], "{.status}"))
        }
    });
    // The Secret's volume is a tmpfs: its data never reaches the disk.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let secret_mount = mounts
        .lines()
        .find(|l| l.contains("/volumes/creds"))
        .expect("the secret volume is a mount");
    assert!(secret_mount.contains(" - tmpfs "), "{secret_mount}");
}

#[test]
fn kubectl_logs_and_exec_reach_the_container_through_the_agent() {
    require_root!();
    let node = Node::start("streams");
    node.ok(&[
        "run",
        "talker",
        "--image",
        IMAGE,
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "echo line-1; sleep 1; echo line-2 >&2; sleep 600",
    ]);
    node.wait_phase("talker", "Running");
    node.eventually("both lines in kubectl logs", || {
        let out = node.kubectl(&["logs", "talker"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text == "line-1\nline-2\n" {
            Ok(())
        } else {
            Err(format!("{text:?} {}", String::from_utf8_lossy(&out.stderr)))
        }
    });
    assert_eq!(node.ok(&["logs", "talker", "--tail=1"]), "line-2\n");
    let stamped = node.ok(&["logs", "talker", "--timestamps"]);
    assert!(
        stamped
            .lines()
            .all(|l| l.split_once(' ').is_some_and(|(t, _)| t.contains('T'))),
        "{stamped}"
    );
    let previous = node.kubectl(&["logs", "talker", "--previous"]);
    assert!(!previous.status.success(), "no previous run yet");

    // exec: output, exit code, and the pod's own hostname namespace.
    let out = node.kubectl(&[
        "exec",
        "talker",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    assert_eq!(node.ok(&["exec", "talker", "--", "hostname"]), "talker\n");
    // logs -f: what the container writes from now on arrives while kubectl
    // keeps following (line-3 goes to the main process's own stdout).
    let mut follow = node.background(&["logs", "-f", "talker"], None);
    node.eventually("the earlier lines through logs -f", || {
        let out = follow.output();
        if out == "line-1\nline-2\n" {
            Ok(())
        } else {
            Err(out)
        }
    });
    node.ok(&[
        "exec",
        "talker",
        "--",
        "sh",
        "-c",
        "echo line-3 > /proc/1/fd/1",
    ]);
    node.eventually("the new line through logs -f", || {
        let out = follow.output();
        if out == "line-1\nline-2\nline-3\n" {
            Ok(())
        } else {
            Err(out)
        }
    });
    assert!(follow.exited().is_none(), "logs -f still follows");
    drop(follow);
    // The ServiceAccount volume admission adds: a bound token, the CA, the
    // namespace — projected on a tmpfs.
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert_eq!(
        node.ok(&["exec", "talker", "--", "cat", &format!("{sa}/namespace")]),
        "default"
    );
    let token = node.ok(&["exec", "talker", "--", "cat", &format!("{sa}/token")]);
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let ca = node.ok(&["exec", "talker", "--", "cat", &format!("{sa}/ca.crt")]);
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

    // A user who may read logs may not exec (pods/exec needs create).
    let reader = node.user_kubeconfig("log-reader");
    node.ok(&[
        "create",
        "role",
        "log-reader",
        "--verb=get",
        "--resource=pods,pods/log",
    ]);
    node.ok(&[
        "create",
        "rolebinding",
        "log-reader",
        "--role=log-reader",
        "--user=log-reader",
    ]);
    node.eventually("the reader to read logs", || {
        let out = node.as_user(&reader, &["logs", "talker"]);
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    let denied = node.as_user(&reader, &["exec", "talker", "--", "true"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
}

#[test]
fn the_agent_api_refuses_anonymous_and_unauthorized_callers() {
    require_root!();
    let node = Node::start("agentapi");
    let ip = node.jsonpath(
        &["node", &node.name],
        "{.status.addresses[?(@.type==\"InternalIP\")].address}",
    );
    let url = format!("https://{ip}:{}/healthz", node.agent_port);
    let ca = node.data().join("pki/ca.crt");
    // No client certificate: the TLS handshake itself is refused.
    let anonymous = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&ca)
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        !anonymous.status.success(),
        "anonymous request answered: {}",
        String::from_utf8_lossy(&anonymous.stdout)
    );
    // A valid certificate of a user without nodes/proxy: 403.
    let (cert, key) = node.user_certificate("nobody-special");
    let unauthorized = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/stderr",
            "-w",
            "%{http_code}",
            "--cacert",
        ])
        .arg(&ca)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&unauthorized.stdout), "403");
    assert!(
        String::from_utf8_lossy(&unauthorized.stderr).contains("nodes"),
        "{}",
        String::from_utf8_lossy(&unauthorized.stderr)
    );
}

impl Node {
    fn user_kubeconfig(&self, user: &str) -> PathBuf {
        let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(["kubeconfig", "--data-dir"])
            .arg(self.data())
            .args(["--user", user])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = self.dir.path().join(format!("{user}.kubeconfig"));
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }

    fn as_user(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache-user"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    }

    /// A client certificate and key (files) for `user`, from its kubeconfig.
    fn user_certificate(&self, user: &str) -> (PathBuf, PathBuf) {
        use base64::Engine as _;
        let kubeconfig = std::fs::read_to_string(self.user_kubeconfig(user)).unwrap();
        let field = |name: &str| {
            let line = kubeconfig
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap();
            let data = line.split_once(':').unwrap().1.trim();
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap()
        };
        let cert = self.dir.path().join(format!("{user}.crt"));
        let key = self.dir.path().join(format!("{user}.key"));
        std::fs::write(&cert, field("client-certificate-data:")).unwrap();
        std::fs::write(&key, field("client-key-data:")).unwrap();
        (cert, key)
    }
}

/// A kubectl left running (port-forward, attach): what it printed so far
/// (stdout and stderr together), killed by PID when dropped.
struct Background {
    child: Child,
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Node {
    fn background(&self, args: &[&str], stdin: Option<&str>) -> Background {
        self.background_env(args, stdin, &[])
    }

    fn background_env(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Background {
        self.background_as(&self.kubeconfig, args, stdin, env)
    }

    fn background_as(
        &self,
        kubeconfig: &Path,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Background {
        let cache = if kubeconfig == self.kubeconfig {
            "kube-cache"
        } else {
            "kube-cache-user"
        };
        let mut child = Command::new("kubectl")
            .arg("--cache-dir")
            .arg(self.dir.path().join(cache))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write as _;
            pipe.write_all(text.as_bytes()).unwrap();
            // Dropped: kubectl sees the end of its input.
        }
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let readers: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for mut reader in readers {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Background { child, output }
    }
}

impl Background {
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// `kubectl <args>` (a shell word list) on a terminal of its own, as
    /// `kubectl -t` wants: `script` gives it one and exits with its status.
    /// The returned stdin is what is typed on that terminal.
    fn terminal(&self, args: &str) -> (Background, std::process::ChildStdin) {
        let kubectl = format!(
            "kubectl --cache-dir {} --kubeconfig {} {args}",
            self.dir.path().join("kube-cache").display(),
            self.kubeconfig.display()
        );
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", &kubectl, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script (util-linux) runs");
        let stdin = child.stdin.take().unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        (Background { child, output }, stdin)
    }
}

/// `GET /` on a loopback port, as curl prints it.
fn curl(port: u16) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn kubectl_port_forward_reaches_a_server_inside_the_pod() {
    require_root!();
    let node = Node::start("portfwd");
    node.apply(&pod(
        "web",
        "Never",
        "mkdir -p /tmp/www && echo hello-from-the-pod > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
        "",
    ));
    node.wait_phase("web", "Running");
    let local = bulwark_testkit::free_loopback_port().unwrap();
    // kubectl 1.32 speaks SPDY tunnelled in a WebSocket by default.
    let forward = node.background(&["port-forward", "pod/web", &format!("{local}:8080")], None);
    node.eventually("kubectl to listen", || {
        let out = forward.output();
        if out.contains(&format!("Forwarding from 127.0.0.1:{local} -> 8080")) {
            Ok(())
        } else {
            Err(out)
        }
    });
    // httpd listens in the pod's own network namespace, on its loopback.
    let page = node.eventually("the page through the forwarded port", || curl(local));
    assert_eq!(page, "hello-from-the-pod\n");
    // Several connections in one session, some at the same time.
    let parallel: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || curl(local)))
        .collect();
    for request in parallel {
        assert_eq!(request.join().unwrap().unwrap(), "hello-from-the-pod\n");
    }
    assert_eq!(curl(local).unwrap(), "hello-from-the-pod\n");
    // Nothing listens inside the pod on the port nothing listens on:
    // kubectl reports the agent's error, the connection ends (no hang).
    let other = bulwark_testkit::free_loopback_port().unwrap();
    let mut refused = node.background(&["port-forward", "pod/web", &format!("{other}:8081")], None);
    node.eventually("kubectl to listen", || {
        let out = refused.output();
        if out.contains("Forwarding from 127.0.0.1") {
            Ok(())
        } else {
            Err(out)
        }
    });
    let answer = curl(other);
    assert!(answer.is_err(), "{answer:?}");
    node.eventually("kubectl to report the refused port", || {
        let out = refused.output();
        let expected = format!(
            "an error occurred forwarding {other} -> 8081: error forwarding port 8081 to pod default/web"
        );
        if out.contains(&expected) && out.to_lowercase().contains("connection refused") {
            Ok(())
        } else {
            Err(out)
        }
    });
    // kubectl ends a session whose connection failed (upstream's choice).
    node.eventually("kubectl port-forward to exit", || {
        refused.exited().map(|_| ()).ok_or_else(|| refused.output())
    });
    drop(forward);
    // kubectl's fallback (and older clients): plain SPDY/3.1 over an
    // HTTP upgrade, through the API server to the agent.
    let spdy_port = bulwark_testkit::free_loopback_port().unwrap();
    let spdy = node.background_env(
        &["port-forward", "pod/web", &format!("{spdy_port}:8080")],
        None,
        &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")],
    );
    node.eventually("kubectl to listen (SPDY)", || {
        let out = spdy.output();
        if out.contains("Forwarding from 127.0.0.1") {
            Ok(())
        } else {
            Err(out)
        }
    });
    assert_eq!(
        node.eventually("the page over SPDY", || curl(spdy_port)),
        "hello-from-the-pod\n"
    );
    // Reading pods is not forwarding into them: pods/portforward is a
    // `create` the API server checks before the agent is reached.
    let reader = node.user_kubeconfig("pod-reader");
    node.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list",
        "--resource=pods",
    ]);
    node.ok(&[
        "create",
        "rolebinding",
        "pod-reader",
        "--role=pod-reader",
        "--user=pod-reader",
    ]);
    let denied_port = bulwark_testkit::free_loopback_port().unwrap();
    let mut denied = node.background_as(
        &reader,
        &["port-forward", "pod/web", &format!("{denied_port}:8080")],
        None,
        &[],
    );
    // Whether kubectl refuses at once or on the first connection, nothing
    // from the pod comes through.
    let _ = curl(denied_port).map(|page| assert_ne!(page, "hello-from-the-pod\n"));
    let status = node.eventually("kubectl to give up", || {
        denied.exited().ok_or_else(|| denied.output())
    });
    assert!(!status.success());
    node.eventually("the refusal in kubectl's output", || {
        let out = denied.output();
        if out.contains("forbidden") {
            Ok(())
        } else {
            Err(out)
        }
    });
}

#[test]
fn kubectl_attach_exec_stdin_and_run_interactive_reach_the_container() {
    require_root!();
    let node = Node::start("attach");
    node.ok(&[
        "run",
        "ticker",
        "--image",
        IMAGE,
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 600 ]; do echo tick-$i; i=$((i+1)); sleep 1; done",
    ]);
    node.wait_phase("ticker", "Running");

    // exec -i without a terminal: stdin reaches the command, and its end
    // (v5's close of channel 0) lets `cat` finish.
    let mut exec = node.background(
        &["exec", "-i", "ticker", "--", "sh", "-c", "cat; echo done"],
        Some("piped text\n"),
    );
    node.eventually("exec -i to finish", || {
        exec.exited().ok_or_else(|| exec.output())
    });
    assert_eq!(exec.output(), "piped text\ndone\n");

    // attach: the main process's output from now on, streamed.
    let attach = node.background(&["attach", "ticker"], None);
    let seen = node.eventually("attached output", || {
        let out = attach.output();
        let ticks: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("tick-"))
            .map(str::to_owned)
            .collect();
        if ticks.len() >= 2 {
            Ok(ticks)
        } else {
            Err(out)
        }
    });
    let numbers: Vec<u32> = seen
        .iter()
        .map(|t| t.trim_start_matches("tick-").parse().unwrap())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, live: {seen:?}"
    );
    drop(attach);

    // run -i --rm: a new pod's main process reads what kubectl's stdin
    // holds and answers through the attachment; the pod is then deleted.
    let mut run = node.background(
        &[
            "run",
            "asker",
            "-i",
            "--rm",
            "--image",
            IMAGE,
            "--restart=Never",
            "--",
            "sh",
            "-c",
            "read line; echo got-$line",
        ],
        Some("hello\n"),
    );
    node.eventually("kubectl run -i to finish", || {
        run.exited().ok_or_else(|| run.output())
    });
    assert!(run.output().contains("got-hello"), "{}", run.output());
    // stdinOnce (kubectl run -i sets it): the end of kubectl's input is the
    // end of the process's, so a filter like `wc` finishes.
    let mut counted = node.background(
        &[
            "run",
            "counter",
            "-i",
            "--rm",
            "--image",
            IMAGE,
            "--restart=Never",
            "--",
            "sh",
            "-c",
            "wc -c",
        ],
        Some("twelve bytes"),
    );
    node.eventually("the filter to finish", || {
        counted.exited().ok_or_else(|| counted.output())
    });
    assert!(
        counted.output().lines().any(|l| l.trim() == "12"),
        "{}",
        counted.output()
    );
    node.eventually("the pod to be deleted", || {
        let out = node.kubectl(&["get", "pod", "asker"]);
        if out.status.success() {
            Err(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Ok(())
        }
    });
}

#[test]
fn kubectl_top_reads_node_and_pod_usage_from_the_agents() {
    require_root!();
    let node = Node::start("top");
    // A shell holding 8 MB in a variable: a working set kubectl shows.
    node.ok(&[
        "run",
        "holder",
        "--image",
        IMAGE,
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "x=$(yes 0123456789abcdef | head -c 8000000); sleep 600",
    ]);
    node.wait_phase("holder", "Running");
    // Mebibytes in a `kubectl top` memory column ("12Mi").
    let mebibytes = |cell: &str| -> u64 {
        cell.strip_suffix("Mi")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    node.eventually("a node row in kubectl top node", || {
        let out = node.kubectl(&["top", "node"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let row = text
            .lines()
            .find(|l| l.starts_with(&node.name))
            .ok_or_else(|| format!("{text}{}", String::from_utf8_lossy(&out.stderr)))?;
        // NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)
        let cells: Vec<&str> = row.split_whitespace().collect();
        if cells.len() == 5 && cells[1].ends_with('m') && mebibytes(cells[3]) > 0 {
            Ok(())
        } else {
            Err(row.to_owned())
        }
    });
    node.eventually("the pod's memory in kubectl top pod", || {
        let out = node.kubectl(&["top", "pod", "holder", "--containers"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // POD NAME CPU(cores) MEMORY(bytes)
        let row = text
            .lines()
            .find(|l| l.starts_with("holder"))
            .ok_or_else(|| {
                let raw = node.kubectl(&[
                    "get",
                    "--raw",
                    "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
                ]);
                format!(
                    "{text}{} (metrics: {}{})",
                    String::from_utf8_lossy(&out.stderr),
                    String::from_utf8_lossy(&raw.stdout),
                    String::from_utf8_lossy(&raw.stderr)
                )
            })?;
        let cells: Vec<&str> = row.split_whitespace().collect();
        if cells.len() == 4 && cells[1] == "holder" && mebibytes(cells[3]) >= 8 {
            Ok(())
        } else {
            Err(row.to_owned())
        }
    });
    // metrics.k8s.io is authorized as any resource: `view` may read it
    // (aggregated from system:aggregated-metrics-reader), others may not.
    let viewer = node.user_kubeconfig("metrics-viewer");
    let stranger = node.user_kubeconfig("metrics-stranger");
    node.ok(&[
        "create",
        "rolebinding",
        "metrics-viewer",
        "--clusterrole=view",
        "--user=metrics-viewer",
    ]);
    node.eventually("the viewer to read pod metrics", || {
        let out = node.as_user(&viewer, &["top", "pod", "holder"]);
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("holder") {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    let denied = node.as_user(&stranger, &["top", "pod", "holder"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
}

/// A `docker-registry` on loopback with htpasswd auth (user `bulwark`,
/// password `s3cret`), killed by PID when dropped.
struct PrivateRegistry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateRegistry {
    fn start() -> PrivateRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = bulwark_testkit::free_loopback_port().unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", "bulwark", "s3cret"])
            .output()
            .expect("htpasswd (apache2-utils) is installed");
        std::fs::write(dir.path().join("htpasswd"), htpasswd.stdout).unwrap();
        let root = dir.path().display();
        std::fs::write(
            dir.path().join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n\
                 http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: bulwark-test\n    path: {root}/htpasswd\n"
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed");
        let registry = PrivateRegistry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    /// Pushes [`IMAGE`] from the node's image store (an OCI layout) as
    /// `repo` (with its tag).
    fn push(&self, node: &Node, repo: &str) {
        let out = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--dest-creds",
                "bulwark:s3cret",
            ])
            .arg(format!(
                "oci:{}:{IMAGE}",
                node.data().join("images").display()
            ))
            .arg(format!("docker://127.0.0.1:{}/{repo}", self.port))
            .output()
            .expect("skopeo is installed");
        assert!(
            out.status.success(),
            "skopeo push: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn image_pull_secrets_of_the_pod_or_its_service_account_unlock_a_private_registry() {
    require_root!();
    let registry = PrivateRegistry::start();
    let port = registry.port;
    // The node knows the registry speaks plain HTTP, but has no credentials.
    let scratch = tempfile::tempdir().unwrap();
    let registries = scratch.path().join("registries.yaml");
    std::fs::write(
        &registries,
        format!("mirrors:\n  \"127.0.0.1:{port}\":\n    endpoint:\n      - \"http://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let node = Node::start_with(
        "pullsecret",
        &["--registries", registries.to_str().unwrap()],
    );
    registry.push(&node, "private/busybox:v1");
    let image = format!("127.0.0.1:{port}/private/busybox:v1");
    let private_pod = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
{extra}  containers:
  - name: main
    image: {image}
    imagePullPolicy: Always
    command: [sleep, \"600\"]
"
        )
    };
    let waiting_reason = |pod: &str| {
        node.jsonpath(
            &["pod", pod],
            "{.status.containerStatuses[0].state.waiting.reason}",
        )
    };

    // Without credentials the registry refuses the pull.
    node.apply(&private_pod("locked-out", ""));
    node.eventually("the pull to be refused", || {
        let reason = waiting_reason("locked-out");
        if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
            Ok(())
        } else {
            Err(reason)
        }
    });
    let events = node.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=locked-out",
    ]);
    assert!(events.contains("401"), "{events}");

    // The pod's own pull secret.
    node.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server=127.0.0.1:{port}"),
        "--docker-username=bulwark",
        "--docker-password=s3cret",
    ]);
    node.apply(&private_pod(
        "with-secret",
        "  imagePullSecrets:\n  - name: regcred\n",
    ));
    node.wait_phase("with-secret", "Running");

    // Its ServiceAccount's, copied into the pod at admission.
    node.ok(&["create", "serviceaccount", "puller"]);
    node.ok(&[
        "patch",
        "serviceaccount",
        "puller",
        "-p",
        r#"{"imagePullSecrets": [{"name": "regcred"}]}"#,
    ]);
    node.apply(&private_pod(
        "via-account",
        "  serviceAccountName: puller\n",
    ));
    assert_eq!(
        node.jsonpath(&["pod", "via-account"], "{.spec.imagePullSecrets[0].name}"),
        "regcred"
    );
    node.wait_phase("via-account", "Running");

    // A secret that does not exist: upstream's warning, and the pull fails.
    node.apply(&private_pod(
        "missing-secret",
        "  imagePullSecrets:\n  - name: nowhere\n",
    ));
    node.eventually("the warning about the missing secret", || {
        let events = node.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=missing-secret",
        ]);
        if events.contains("FailedToRetrieveImagePullSecret") {
            Ok(())
        } else {
            Err(events)
        }
    });
}

#[test]
fn grpc_probes_and_resource_metrics_through_the_agent() {
    require_root!();
    let node = Node::start("grpc");
    // A gRPC readiness probe on a port nothing serves: never Ready, with
    // upstream's words in the Unhealthy event.
    node.apply(&pod(
        "unready",
        "Never",
        "sleep 600",
        "    readinessProbe:
      grpc:
        port: 9555
      periodSeconds: 1
",
    ));
    node.wait_phase("unready", "Running");
    node.eventually("the gRPC probe's failure event", || {
        let events = node.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=unready",
        ]);
        if events.contains("Readiness probe failed: timeout: failed to connect service") {
            Ok(())
        } else {
            Err(events)
        }
    });
    assert_eq!(
        node.jsonpath(
            &["pod", "unready"],
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "False"
    );

    // /metrics/resource: Prometheus text for whoever may get nodes/metrics.
    let ip = node.jsonpath(
        &["node", &node.name],
        "{.status.addresses[?(@.type==\"InternalIP\")].address}",
    );
    let url = format!("https://{ip}:{}/metrics/resource", node.agent_port);
    let ca = node.data().join("pki/ca.crt");
    node.ok(&[
        "create",
        "clusterrole",
        "node-metrics",
        "--verb=get",
        "--resource=nodes/metrics",
    ]);
    node.ok(&[
        "create",
        "clusterrolebinding",
        "node-metrics",
        "--clusterrole=node-metrics",
        "--user=metrics-scraper",
    ]);
    let (cert, key) = node.user_certificate("metrics-scraper");
    let text = node.eventually("the resource metrics", || {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg(&url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.contains("pod=\"unready\"") {
            Ok(text)
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        }
    });
    for family in [
        "node_cpu_usage_seconds_total",
        "node_memory_working_set_bytes",
        "container_memory_working_set_bytes{container=\"main\",namespace=\"default\",pod=\"unready\"}",
    ] {
        assert!(text.contains(family), "{family} not in\n{text}");
    }
}

#[test]
fn kubectl_run_it_gives_the_container_a_terminal() {
    require_root!();
    let node = Node::start("tty");
    let (guard, mut stdin) = node.terminal(&format!(
        "run -it --rm ttyrun --image {IMAGE} --restart=Never -- \
         sh -c 'read line; if [ -t 0 ]; then echo tty-$line; fi'"
    ));
    // Typed once the session is up (kubectl says so on the terminal).
    node.eventually("the interactive session", || {
        let out = guard.output();
        if out.contains("If you don't see a command prompt") {
            Ok(())
        } else {
            Err(out)
        }
    });
    std::io::Write::write_all(&mut stdin, b"hello\r").unwrap();
    node.eventually("the answer through the terminal", || {
        let out = guard.output();
        if out.contains("tty-hello") {
            Ok(())
        } else {
            Err(out)
        }
    });
    node.eventually("the pod to be deleted", || {
        let out = node.kubectl(&["get", "pod", "ttyrun"]);
        if out.status.success() {
            Err(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Ok(())
        }
    });
    drop(stdin);
}

/// The agent once hung up on `kubectl exec -it` with the client's frames
/// unread: the reset lost the exit status now and then ("websocket: close
/// 1006 (abnormal closure): unexpected EOF", about one run in 12).
#[test]
fn kubectl_exec_it_always_reports_the_exit_status() {
    require_root!();
    let node = Node::start("execit");
    node.apply(&pod("shell", "Never", "sleep 600", ""));
    node.wait_phase("shell", "Running");
    let mut failures = Vec::new();
    for round in 0..25 {
        // Exit code 4 only if stdin is a terminal.
        let (mut exec, stdin) = node.terminal("exec -it shell -- sh -c '[ -t 0 ] && exit 4'");
        let status = node.eventually("exec -it to finish", || {
            exec.exited().ok_or_else(|| exec.output())
        });
        if status.code() != Some(4) {
            failures.push(format!("round {round}: {status:?} {}", exec.output()));
        }
        drop(stdin);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn under_memory_pressure_best_effort_pods_are_refused_and_evicted_first() {
    require_root!();
    // A threshold no machine can satisfy: less than all of the memory is
    // always available, so the node is under memory pressure from the
    // start, whatever this machine has (nothing needs to use memory).
    let node = Node::start_with("evict", &["--eviction-hard", "memory.available<100%"]);
    node.eventually("MemoryPressure True and its taint", || {
        let pressure = node.jsonpath(
            &["node", &node.name],
            "{.status.conditions[?(@.type==\"MemoryPressure\")].status}",
        );
        let taints = node.jsonpath(&["node", &node.name], "{.spec.taints}");
        if pressure == "True"
            && taints.contains(r#""key":"node.kubernetes.io/memory-pressure""#)
            && taints.contains(r#""effect":"NoSchedule""#)
        {
            Ok(())
        } else {
            Err(format!("MemoryPressure={pressure:?} taints={taints}"))
        }
    });

    // Bound to the node directly: the taint keeps the scheduler away.
    let on_node = format!("  nodeName: {}\n", node.name);
    let tolerate = "  tolerations:\n  - key: node.kubernetes.io/memory-pressure\n    operator: Exists\n    effect: NoSchedule\n";
    let guaranteed = "    resources:\n      limits: {cpu: 100m, memory: 64Mi}\n";
    node.apply(&format!(
        "{}---\n{}---\n{}",
        pod("refused", "Never", "sleep 600", &on_node),
        pod(
            "besteffort",
            "Never",
            "sleep 600",
            &format!("{on_node}{tolerate}")
        ),
        pod(
            "guaranteed",
            "Never",
            "sleep 600",
            &format!("{guaranteed}{on_node}")
        ),
    ));

    // A new BestEffort pod is refused at admission, as upstream refuses it.
    node.wait_phase("refused", "Failed");
    assert_eq!(
        node.jsonpath(&["pod", "refused"], "{.status.reason}"),
        "Evicted"
    );
    assert_eq!(
        node.jsonpath(&["pod", "refused"], "{.status.message}"),
        "Pod was rejected: The node had condition: [MemoryPressure]. "
    );

    // Of the two admitted, the BestEffort one is evicted first; the
    // Guaranteed one is still there when it is.
    node.eventually("the BestEffort pod evicted", || {
        let phase = node.jsonpath(&["pod", "besteffort"], "{.status.phase}");
        let reason = node.jsonpath(&["pod", "besteffort"], "{.status.reason}");
        if phase == "Failed" && reason == "Evicted" {
            Ok(())
        } else {
            Err(format!("{phase} {reason}"))
        }
    });
    assert_ne!(
        node.jsonpath(&["pod", "guaranteed"], "{.status.reason}"),
        "Evicted",
        "the Guaranteed pod went first"
    );
    let message = node.jsonpath(&["pod", "besteffort"], "{.status.message}");
    assert!(
        message.starts_with("The node was low on resource: memory. Threshold quantity: ")
            && message.contains(", available: "),
        "{message}"
    );
    assert_eq!(
        node.jsonpath(
            &["pod", "besteffort"],
            "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}"
        ),
        "TerminationByKubelet"
    );
    let events = node.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Evicted,involvedObject.name=besteffort",
        "-o",
        "jsonpath={.items[*].type}",
    ]);
    assert!(events.contains("Warning"), "{events:?}");

    // The pressure stays, so the Guaranteed pod goes next.
    node.eventually("the Guaranteed pod evicted after it", || {
        let reason = node.jsonpath(&["pod", "guaranteed"], "{.status.reason}");
        if reason == "Evicted" {
            Ok(())
        } else {
            Err(reason)
        }
    });
    node.eventually("the evicted pods' containers stopped", || {
        let running = node
            .containers()
            .iter()
            .filter(|id| {
                std::fs::read_to_string(node.data().join("runtime/containers").join(id).join("pid"))
                    .ok()
                    .is_some_and(|pid| Path::new(&format!("/proc/{}", pid.trim())).exists())
            })
            .count();
        if running == 0 {
            Ok(())
        } else {
            Err(format!("{running} running"))
        }
    });
}

#[test]
fn a_static_pod_runs_from_its_manifest_and_is_mirrored() {
    require_root!();
    let manifests = tempfile::Builder::new()
        .prefix("bulwark-manifests-")
        .tempdir()
        .unwrap();
    let manifest = manifests.path().join("web.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\n  namespace: kube-system\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {IMAGE}\n    command: [sh, -c, 'echo from-a-file; exec sleep 600']\n"
        ),
    )
    .unwrap();
    let dir = manifests.path().to_str().unwrap().to_owned();
    let mut node = Node::start_with("static", &["--pod-manifest-path", &dir]);
    let mirror = format!("static-web-{}", node.name);
    let get = |node: &Node, path: &str| node.jsonpath(&["pod", "-n", "kube-system", &mirror], path);

    // The mirror: the node's name in it, annotated, owned by the Node, and
    // showing the pod's status.
    node.eventually("the mirror pod Running", || {
        let phase = get(&node, "{.status.phase}");
        if phase == "Running" {
            Ok(())
        } else {
            Err(format!("{phase:?} {}", get(&node, "{.status}")))
        }
    });
    assert!(
        !get(
            &node,
            "{.metadata.annotations.kubernetes\\.io/config\\.mirror}"
        )
        .is_empty()
    );
    assert_eq!(get(&node, "{.metadata.ownerReferences[0].kind}"), "Node");
    assert_eq!(get(&node, "{.metadata.ownerReferences[0].name}"), node.name);
    assert_eq!(
        get(&node, "{.metadata.ownerReferences[0].controller}"),
        "true"
    );
    assert_eq!(get(&node, "{.spec.nodeName}"), node.name);
    node.eventually("its log through the API", || {
        let out = node.kubectl(&["logs", "-n", "kube-system", &mirror]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text == "from-a-file\n" {
            Ok(())
        } else {
            Err(format!("{text:?} {}", String::from_utf8_lossy(&out.stderr)))
        }
    });
    let container = get(&node, "{.status.containerStatuses[0].containerID}");
    assert!(!container.is_empty());

    // Deleting the mirror deletes only the API's copy: it comes back, the
    // pod's container running on as it was.
    let first_uid = get(&node, "{.metadata.uid}");
    node.ok(&[
        "delete",
        "pod",
        "-n",
        "kube-system",
        &mirror,
        "--wait=false",
    ]);
    node.eventually("the mirror recreated", || {
        let uid = get(&node, "{.metadata.uid}");
        let phase = get(&node, "{.status.phase}");
        if !uid.is_empty() && uid != first_uid && phase == "Running" {
            Ok(())
        } else {
            Err(format!("{uid:?} {phase:?}"))
        }
    });
    assert_eq!(
        get(&node, "{.status.containerStatuses[0].containerID}"),
        container
    );
    assert_eq!(
        get(&node, "{.status.containerStatuses[0].restartCount}"),
        "0"
    );

    // A restarted agent finds the same static pod and re-adopts its
    // container rather than starting it again: a fresh mirror (whose status
    // only the new agent can have written) shows the same container.
    let mut containers = node.containers();
    containers.sort();
    node.kill();
    node.spawn();
    let before = get(&node, "{.metadata.uid}");
    node.eventually("the restarted agent answering", || {
        let out = node.kubectl(&[
            "delete",
            "pod",
            "-n",
            "kube-system",
            &mirror,
            "--wait=false",
        ]);
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    node.eventually("the static pod re-adopted", || {
        let uid = get(&node, "{.metadata.uid}");
        let id = get(&node, "{.status.containerStatuses[0].containerID}");
        let phase = get(&node, "{.status.phase}");
        if uid != before && !uid.is_empty() && phase == "Running" && id == container {
            Ok(())
        } else {
            Err(format!("{uid:?} {phase:?} {id:?}"))
        }
    });
    assert_eq!(
        get(&node, "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    let mut after = node.containers();
    after.sort();
    assert_eq!(after, containers, "no container was started again");

    // Removing the manifest stops the pod and takes its mirror away.
    std::fs::remove_file(&manifest).unwrap();
    node.eventually("the mirror gone", || {
        let out = node.kubectl(&["get", "pod", "-n", "kube-system", &mirror]);
        if String::from_utf8_lossy(&out.stderr).contains("NotFound") {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stdout).into_owned())
        }
    });
    node.eventually("its container gone", || {
        let left = node.containers();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
}
