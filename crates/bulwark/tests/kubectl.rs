//! End-to-end: the real `kubectl` against a running `bulwark server`.
//!
//! Each test starts its own server (the binary built by cargo) on a free
//! loopback port with a temporary data dir, drives it with kubectl (with its
//! own discovery cache dir), and stops it by PID.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Cluster {
    child: Child,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bulwark-e2e-")
            .tempdir()
            .unwrap();
        let port = bulwark_testkit::free_loopback_port().unwrap();
        let data = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args([
                "server",
                "--disable-agent",
                "--port",
                &port.to_string(),
                "--data-dir",
            ])
            .arg(&data)
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let cluster = Cluster {
            child,
            kubeconfig: data.join("admin.kubeconfig"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if cluster.kubeconfig.exists()
                && cluster
                    .kubectl(&["get", "--raw", "/readyz"])
                    .status
                    .success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "server never became ready: {}",
                cluster.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn command(&self, args: &[&str]) -> Command {
        let kubectl = std::env::var("BULWARK_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let mut command = Command::new(kubectl);
        command
            .args(args)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .stdin(Stdio::null());
        command
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    /// Runs kubectl, expecting success; returns stdout.
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

    /// Runs kubectl, expecting failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(!out.status.success(), "kubectl {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    /// `kubectl apply`/`create` of a manifest given inline.
    fn with_manifest(&self, args: &[&str], manifest: &str) -> String {
        let path = self
            .dir
            .path()
            .join(format!("manifest-{}.yaml", rand_suffix()));
        std::fs::write(&path, manifest).unwrap();
        let mut full: Vec<&str> = args.to_vec();
        let path_str = path.to_str().unwrap().to_owned();
        full.extend(["-f", &path_str]);
        self.ok(&full)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        env: [{name: GREETING, value: hello}]
";

#[test]
fn version_discovery_and_default_namespaces() {
    let c = Cluster::start();
    let version = c.ok(&["version"]);
    assert!(
        version.contains("Server Version: v1.33.0+bulwark"),
        "{version}"
    );
    let resources = c.ok(&["api-resources"]);
    let deploy = resources
        .lines()
        .find(|l| l.starts_with("deployments"))
        .unwrap();
    assert!(
        deploy.contains("deploy") && deploy.contains("apps/v1") && deploy.contains("Deployment"),
        "{deploy}"
    );
    let versions = c.ok(&["api-versions"]);
    for gv in [
        "v1",
        "apps/v1",
        "batch/v1",
        "rbac.authorization.k8s.io/v1",
        "networking.k8s.io/v1",
    ] {
        assert!(
            versions.lines().any(|l| l == gv),
            "{gv} missing from {versions}"
        );
    }
    let namespaces = c.ok(&["get", "namespaces"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces
                .lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{namespaces}"
        );
    }
    let whoami = c.ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("bulwark-admin") && whoami.contains("system:masters"),
        "{whoami}"
    );
}

#[test]
fn apply_creates_updates_and_removes_fields() {
    let c = Cluster::start();
    let out = c.with_manifest(&["apply"], DEPLOYMENT);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let changed = DEPLOYMENT
        .replace("replicas: 2", "replicas: 3")
        .replace("        env: [{name: GREETING, value: hello}]\n", "");
    let out = c.with_manifest(&["apply"], &changed);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let state = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas}|{.spec.template.spec.containers[0].env}|{.metadata.generation}",
    ]);
    assert_eq!(
        state, "3||2",
        "replicas changed, env removed, generation bumped"
    );
    let out = c.with_manifest(&["apply"], &changed);
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
}

#[test]
fn get_in_every_output_format() {
    let c = Cluster::start();
    c.with_manifest(&["create"], DEPLOYMENT);
    c.with_manifest(
        &["create"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n",
    );
    c.with_manifest(
        &["create", "-n", "other"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, labels: {tier: backend}}\ndata: {a: '1', b: '2'}\n",
    );
    let table = c.ok(&["get", "deployments"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    // UP-TO-DATE depends on how far the controllers got; nothing is
    // available (no pod runs in this test).
    assert_eq!([row[0], row[1], row[3]], ["web", "0/2", "0"], "{table}");
    let wide = c.ok(&["get", "deploy", "-o", "wide"]);
    assert!(
        wide.contains("CONTAINERS") && wide.contains("busybox:1.36") && wide.contains("app=web"),
        "{wide}"
    );
    let yaml = c.ok(&["get", "deploy", "web", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Deployment")
            && yaml.contains("uid:")
            && yaml.contains("resourceVersion:"),
        "{yaml}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "deploy", "web", "-o", "json"])).unwrap();
    assert_eq!(
        json["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%",
        "defaults are filled"
    );
    let all = c.ok(&["get", "configmaps", "-A"]);
    assert!(
        all.lines()
            .any(|l| l.starts_with("other") && l.contains("settings") && l.contains(" 2 ")),
        "{all}"
    );
    let labelled = c.ok(&["get", "cm", "-A", "-l", "tier=backend", "-o", "name"]);
    assert_eq!(labelled.trim(), "configmap/settings");
    let none = c.ok(&["get", "cm", "-A", "-l", "tier!=backend,tier", "-o", "name"]);
    assert_eq!(none.trim(), "");
    let by_field = c.ok(&[
        "get",
        "cm",
        "-A",
        "--field-selector",
        "metadata.namespace=other,metadata.name!=kube-root-ca.crt",
        "-o",
        "name",
    ]);
    assert_eq!(by_field.trim(), "configmap/settings");
    let shown = c.ok(&["get", "cm", "settings", "-n", "other", "--show-labels"]);
    assert!(shown.contains("tier=backend"), "{shown}");
}

#[test]
fn patch_label_annotate_scale_and_delete() {
    let c = Cluster::start();
    c.with_manifest(&["create"], DEPLOYMENT);
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minReadySeconds":5}}"#,
    ]);
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ]);
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"busybox:1.37"}]}}}}"#,
    ]);
    c.ok(&["label", "deploy", "web", "tier=front"]);
    c.ok(&["annotate", "deploy", "web", "owner=team-a"]);
    let state = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.minReadySeconds}|{.spec.replicas}|{.spec.template.spec.containers[0].image}|{.spec.template.spec.containers[0].env[0].name}|{.metadata.labels.tier}|{.metadata.annotations.owner}",
    ]);
    assert_eq!(
        state, "5|4|busybox:1.37|GREETING|front|team-a",
        "strategic merge kept the env"
    );
    c.ok(&["scale", "deploy", "web", "--replicas=6"]);
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "6"
    );
    let out = c.ok(&["delete", "deploy", "web"]);
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    let err = c.fails(&["get", "deploy", "web"]);
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{err}"
    );
}

#[test]
fn watch_sees_a_change() {
    let c = Cluster::start();
    c.with_manifest(&["create"], DEPLOYMENT);
    let mut watch = c
        .command(&["get", "deploy", "web", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // A header, the current state, then the change.
    let header = rx.recv_timeout(Duration::from_secs(20)).expect("a header");
    assert!(
        header.starts_with("EVENT") && header.contains("READY"),
        "{header}"
    );
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("initial state");
    assert!(
        first.starts_with("ADDED") && first.contains("web"),
        "{first}"
    );
    c.ok(&["scale", "deploy", "web", "--replicas=9"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains("MODIFIED") && line.contains("0/9") {
                break;
            }
            seen.push(line);
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        Instant::now() < deadline,
        "no MODIFIED event with 0/9; saw {seen:?}"
    );
}

#[test]
fn a_list_manifest_is_created_and_its_items_still_validated_strictly() {
    let c = Cluster::start();
    let list = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: first}
  data: {a: b}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: second}
  data: {c: d}
";
    let path = c.dir.path().join("list.yaml");
    std::fs::write(&path, list).unwrap();
    let out = c.ok(&["create", "-f", path.to_str().unwrap()]);
    assert!(
        out.contains("configmap/first created") && out.contains("configmap/second created"),
        "{out}"
    );

    // kubectl validates nothing itself for a List; the server still does.
    let typo = list
        .replace("first", "third")
        .replace("second", "fourth")
        .replace("  data: {c: d}", "  dta: {c: d}");
    let path = c.dir.path().join("typo.yaml");
    std::fs::write(&path, typo).unwrap();
    let err = c.fails(&["create", "-f", path.to_str().unwrap()]);
    assert!(err.contains("unknown field \"dta\""), "{err}");
}

#[test]
fn errors_read_as_upstream_words_them() {
    let c = Cluster::start();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: once}\ndata: {a: b}\n";
    c.with_manifest(&["create"], cm);
    let path = c.dir.path().join("again.yaml");
    std::fs::write(&path, cm).unwrap();
    let err = c.fails(&["create", "-f", path.to_str().unwrap()]);
    assert!(
        err.contains("Error from server (AlreadyExists)")
            && err.contains("configmaps \"once\" already exists"),
        "{err}"
    );

    let bad = DEPLOYMENT
        .replace("name: web\n  labels", "name: Web_Bad\n  labels")
        .replace("image: busybox:1.36", "image: ''");
    let path = c.dir.path().join("bad.yaml");
    std::fs::write(&path, bad).unwrap();
    let err = c.fails(&["create", "-f", path.to_str().unwrap()]);
    assert!(
        err.contains("The Deployment \"Web_Bad\" is invalid"),
        "{err}"
    );
    assert!(
        err.contains("metadata.name: Invalid value: \"Web_Bad\""),
        "{err}"
    );

    let err = c.fails(&["get", "pods", "nope"]);
    assert!(
        err.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{err}"
    );
    let err = c.fails(&["get", "frobnicators"]);
    assert!(
        err.contains("the server doesn't have a resource type \"frobnicators\""),
        "{err}"
    );
}

#[test]
fn requests_without_a_valid_identity_are_refused() {
    let c = Cluster::start();
    // The same server and CA, with a made-up bearer token instead of the
    // client certificate.
    let config = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let anonymous: String = config
        .lines()
        .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace("  user:\n", "  user: {token: forged-token}\n");
    let path = c.dir.path().join("anonymous.kubeconfig");
    std::fs::write(&path, anonymous).unwrap();
    let out = Command::new("kubectl")
        .args([
            "get",
            "namespaces",
            "--kubeconfig",
            path.to_str().unwrap(),
            "--cache-dir",
        ])
        .arg(c.dir.path().join("anon-cache"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("You must be logged in to the server"), "{err}");
}

#[test]
fn diff_shows_changes_without_writing() {
    let c = Cluster::start();
    c.with_manifest(&["create"], DEPLOYMENT);
    let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 8");
    let path = c.dir.path().join("diff.yaml");
    std::fs::write(&path, changed).unwrap();
    let out = c.kubectl(&["diff", "-f", path.to_str().unwrap()]);
    // kubectl diff exits 1 when there are differences.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        diff.contains("-  replicas: 2") && diff.contains("+  replicas: 8"),
        "{diff}"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2",
        "diff wrote nothing"
    );
}

#[test]
fn imperative_creates_send_protobuf_and_work() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "team"]);
    c.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "team",
        "--from-literal=a=b",
    ]);
    c.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "team",
        "--image=busybox:1.36",
        "--replicas=2",
    ]);
    c.ok(&[
        "create",
        "job",
        "once",
        "-n",
        "team",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ]);
    c.ok(&[
        "create",
        "secret",
        "generic",
        "token",
        "-n",
        "team",
        "--from-literal=password=s3cret",
    ]);
    c.ok(&["create", "serviceaccount", "robot", "-n", "team"]);
    c.ok(&[
        "create",
        "role",
        "reader",
        "-n",
        "team",
        "--verb=get,list",
        "--resource=pods",
    ]);
    c.ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "team",
        "--tcp=80:8080",
    ]);
    let all = c.ok(&["get", "all", "-n", "team"]);
    for expected in ["deployment.apps/web", "job.batch/once", "service/web"] {
        assert!(all.contains(expected), "{expected} missing from:\n{all}");
    }
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "settings",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.a}"
        ]),
        "b"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "secret",
            "token",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "czNjcmV0",
        "stored base64, as the API shows Secrets"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "role",
            "reader",
            "-n",
            "team",
            "-o",
            "jsonpath={.rules[0].verbs}"
        ]),
        r#"["get","list"]"#
    );
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "busybox:1.36"
    );
}

#[test]
fn edit_explain_and_strict_field_validation() {
    let c = Cluster::start();
    c.with_manifest(&["create"], DEPLOYMENT);
    let editor = c.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/replicas: 2/replicas: 5/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = c
        .command(&["edit", "deploy", "web"])
        .env("EDITOR", &editor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );

    let explained = c.ok(&["explain", "pod.spec.containers.image"]);
    assert!(
        explained.contains("FIELD: image <string>") && explained.contains("Container image name"),
        "{explained}"
    );

    // kubectl validates strictly by default: the server refuses unknown fields.
    let typo = DEPLOYMENT
        .replace("name: web\n  labels", "name: typo\n  labels")
        .replace("replicas: 2", "replicas: 2\n  replicaz: 3");
    let path = c.dir.path().join("typo.yaml");
    std::fs::write(&path, typo).unwrap();
    let err = c.fails(&["create", "-f", path.to_str().unwrap()]);
    assert!(
        err.contains("strict decoding error: unknown field \"spec.replicaz\""),
        "{err}"
    );
    let err = c.fails(&["get", "deploy", "typo"]);
    assert!(err.contains("not found"), "nothing was written: {err}");
    // With validation relaxed to a warning, the field is dropped and reported.
    let out = c
        .command(&["create", "--validate=warn", "-f", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("unknown field \"spec.replicaz\""),
        "{warning}"
    );
}

#[test]
fn server_side_apply_conflicts_and_force() {
    let c = Cluster::start();
    let out = c.with_manifest(&["apply", "--server-side"], DEPLOYMENT);
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    // Another manager takes a field the applied configuration also sets.
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "--field-manager=tuner",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ]);
    let path = c.dir.path().join("ssa.yaml");
    std::fs::write(&path, DEPLOYMENT.replace("replicas: 2", "replicas: 3")).unwrap();
    let err = c.fails(&["apply", "--server-side", "-f", path.to_str().unwrap()]);
    assert!(err.contains("Apply failed with 1 conflict"), "{err}");
    assert!(
        err.contains("conflict with \"tuner\"") && err.contains(".spec.replicas"),
        "{err}"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "4",
        "nothing changed"
    );
    c.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        path.to_str().unwrap(),
    ]);
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    let managers = c.ok(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}:{.operation} {end}",
    ]);
    assert!(managers.contains("kubectl:Apply"), "{managers}");
}

#[test]
fn wait_for_a_condition_and_for_deletion() {
    let c = Cluster::start();
    c.with_manifest(
        &["create"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox}]\n",
    );
    let wait = c
        .command(&["wait", "--for=condition=Ready", "--timeout=30s", "pod/p"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // What a node agent would report.
    c.ok(&[
        "patch",
        "pod",
        "p",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    let out = wait.wait_with_output().unwrap();
    assert!(out.status.success(), "kubectl wait saw the condition");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pod/p condition met"));

    c.with_manifest(
        &["create"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n",
    );
    c.ok(&["delete", "configmap", "held", "--wait=false"]);
    let wait = c
        .command(&["wait", "--for=delete", "--timeout=30s", "configmap/held"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.ok(&[
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    let out = wait.wait_with_output().unwrap();
    assert!(out.status.success(), "kubectl wait saw the deletion");
}

#[test]
fn tables_show_upstream_columns_for_rbac_policy_and_scheduling_kinds() {
    let c = Cluster::start();
    c.ok(&["create", "role", "r", "--verb=get", "--resource=pods"]);
    c.ok(&[
        "create",
        "rolebinding",
        "rb",
        "--role=r",
        "--user=alice",
        "--serviceaccount=default:robot",
    ]);
    c.ok(&[
        "create",
        "pdb",
        "budget",
        "--selector=app=x",
        "--min-available=1",
    ]);
    c.ok(&["create", "priorityclass", "high", "--value=1000"]);
    let header = |kind: &str| -> Vec<String> {
        let out = c.ok(&["get", kind, "-o", "wide"]);
        out.lines()
            .next()
            .unwrap()
            .split("  ")
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_owned())
            .collect()
    };
    assert_eq!(header("role"), ["NAME", "CREATED AT"]);
    assert_eq!(
        header("rolebinding"),
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    );
    assert_eq!(
        header("pdb"),
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ]
    );
    assert_eq!(
        header("priorityclass"),
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    );
    let binding = c.ok(&["get", "rolebinding", "rb", "-o", "wide", "--no-headers"]);
    assert!(
        binding.contains("Role/r")
            && binding.contains("alice")
            && binding.contains("default/robot"),
        "{binding}"
    );
}

const PRIVILEGED_POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"escape"},"spec":{"hostPID":true,"containers":[{"name":"c","image":"busybox","securityContext":{"privileged":true}}]}}"#;

#[test]
fn pod_security_enforces_baseline_and_warns_restricted_by_default() {
    let c = Cluster::start();
    let path = c.dir.path().join("escape.json");
    std::fs::write(&path, PRIVILEGED_POD).unwrap();
    let err = c.fails(&["create", "-f", path.to_str().unwrap()]);
    assert!(
        err.contains(r#"pods "escape" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostPID=true), privileged (container "c" must not set securityContext.privileged=true)"#),
        "{err}"
    );
    assert!(
        c.fails(&["get", "pod", "escape"]).contains("not found"),
        "nothing was created"
    );

    // A namespace may opt out explicitly, as upstream's labels allow.
    c.ok(&["create", "namespace", "lax"]);
    c.ok(&[
        "label",
        "namespace",
        "lax",
        "pod-security.kubernetes.io/enforce=privileged",
    ]);
    let out = c
        .command(&["create", "-n", "lax", "-f", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains(r#"Warning: would violate PodSecurity "restricted:latest""#),
        "{warning}"
    );

    // A compliant pod passes baseline and is warned about restricted.
    let out = c
        .command(&["run", "plain", "--image=busybox"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("allowPrivilegeEscalation != false"),
        "{warning}"
    );
}

impl Cluster {
    /// A kubeconfig for `user` in `groups` (from `bulwark kubeconfig`).
    fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> PathBuf {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bulwark"));
        command
            .args(["kubeconfig", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--user", user]);
        for group in groups {
            command.args(["--group", group]);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = self
            .dir
            .path()
            .join(format!("{}.kubeconfig", user.replace(':', "_")));
        std::fs::write(&path, out.stdout).unwrap();
        path
    }

    /// kubectl as the user of `kubeconfig`.
    fn as_user(&self, kubeconfig: &PathBuf, args: &[&str]) -> Output {
        let mut command = self.command(args);
        command.env("KUBECONFIG", kubeconfig);
        command.output().unwrap()
    }

    /// Polls (RBAC changes reach the authorizer asynchronously) until
    /// `kubectl auth can-i` answers `expected` for the user.
    fn wait_can_i(&self, kubeconfig: &PathBuf, args: &[&str], expected: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut full = vec!["auth", "can-i"];
        full.extend_from_slice(args);
        while self.as_user(kubeconfig, &full).status.success() != expected {
            assert!(
                Instant::now() < deadline,
                "can-i {args:?} never became {expected}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn rbac_grants_least_privilege_and_stops_escalation() {
    let c = Cluster::start();
    let alice = c.kubeconfig_for("alice", &[]);
    let stderr = |o: Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // Authenticated is not authorized.
    let err = stderr(c.as_user(&alice, &["get", "pods"]));
    assert!(
        err.contains(r#"Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{err}"
    );
    let out = c.as_user(&alice, &["auth", "can-i", "list", "pods"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    assert!(
        c.as_user(&alice, &["auth", "whoami"]).status.success(),
        "everyone may ask who they are"
    );

    // view: read pods, not secrets.
    c.ok(&[
        "create",
        "rolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
    ]);
    c.wait_can_i(&alice, &["list", "pods"], true);
    assert!(c.as_user(&alice, &["get", "pods"]).status.success());
    let err = stderr(c.as_user(&alice, &["get", "secrets"]));
    assert!(
        err.contains(r#"secrets is forbidden: User "alice" cannot list resource "secrets""#),
        "{err}"
    );
    // Only in the namespace bound.
    let err = stderr(c.as_user(&alice, &["get", "pods", "-n", "kube-system"]));
    assert!(err.contains(r#"in the namespace "kube-system""#), "{err}");

    // admin in default may manage RBAC there, but not grant what it lacks.
    c.ok(&[
        "create",
        "rolebinding",
        "alice-admin",
        "--clusterrole=admin",
        "--user=alice",
    ]);
    c.wait_can_i(&alice, &["create", "rolebindings"], true);
    let err = stderr(c.as_user(
        &alice,
        &[
            "create",
            "rolebinding",
            "grab",
            "--clusterrole=cluster-admin",
            "--user=alice",
        ],
    ));
    assert!(
        err.contains(r#"rolebindings.rbac.authorization.k8s.io "grab" is forbidden: user "alice""#)
            && err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    let err = stderr(c.as_user(
        &alice,
        &["create", "role", "nodes", "--verb=get", "--resource=nodes"],
    ));
    assert!(
        err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    // Within what it holds, it may delegate.
    assert!(
        c.as_user(
            &alice,
            &[
                "create",
                "rolebinding",
                "bob-view",
                "--clusterrole=view",
                "--user=bob"
            ]
        )
        .status
        .success()
    );

    // A node identity gets no secrets it has no pod for.
    c.ok(&["create", "secret", "generic", "db", "--from-literal=p=x"]);
    let node = c.kubeconfig_for("system:node:n1", &["system:nodes"]);
    let err = stderr(c.as_user(&node, &["get", "secret", "db"]));
    assert!(
        err.contains("Forbidden")
            && err.contains(r#"User "system:node:n1" cannot get resource "secrets""#),
        "{err}"
    );
}

#[test]
fn impersonation_needs_the_impersonate_verb() {
    let c = Cluster::start();
    // The admin may impersonate; the impersonated user gets only its own rights.
    let err = String::from_utf8_lossy(&c.kubectl(&["get", "pods", "--as=bob"]).stderr).into_owned();
    assert!(
        err.contains(r#"pods is forbidden: User "bob" cannot list resource "pods""#),
        "{err}"
    );
    assert!(
        !c.kubectl(&["auth", "can-i", "list", "pods", "--as=bob"])
            .status
            .success()
    );
    c.ok(&[
        "create",
        "rolebinding",
        "bob-view",
        "--clusterrole=view",
        "--user=bob",
    ]);
    c.wait_can_i(&c.kubeconfig.clone(), &["list", "pods", "--as=bob"], true);
    // Without the verb, impersonation is refused with upstream's words.
    let alice = c.kubeconfig_for("alice", &[]);
    let err = String::from_utf8_lossy(&c.as_user(&alice, &["get", "pods", "--as=bob"]).stderr)
        .into_owned();
    assert!(
        err.contains(r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{err}"
    );
}

#[test]
fn services_may_not_gain_external_ips() {
    let c = Cluster::start();
    let path = c.dir.path().join("svc.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Service\nmetadata: {name: intercept}\nspec:\n  ports: [{port: 80}]\n  externalIPs: [203.0.113.7]\n",
    )
    .unwrap();
    let err = c.fails(&["create", "-f", path.to_str().unwrap()]);
    assert!(
        err.contains(r#"services "intercept" is forbidden: externalIPs have been disabled"#),
        "{err}"
    );
}

#[test]
fn local_access_reviews_are_authorized_in_their_namespace() {
    let c = Cluster::start();
    let alice = c.kubeconfig_for("alice", &[]);
    let body = c.dir.path().join("lsar.json");
    std::fs::write(
        &body,
        r#"{"apiVersion":"authorization.k8s.io/v1","kind":"LocalSubjectAccessReview","spec":{"user":"bob","resourceAttributes":{"verb":"get","resource":"pods"}}}"#,
    )
    .unwrap();
    let path = "/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews";
    let out = c.as_user(
        &alice,
        &["create", "--raw", path, "-f", body.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"User "alice" cannot create resource "localsubjectaccessreviews" in API group "authorization.k8s.io" in the namespace "default""#),
        "{err}"
    );
    // The admin may ask; the answer is about bob.
    let answer = c.ok(&["create", "--raw", path, "-f", body.to_str().unwrap()]);
    assert!(answer.contains(r#""allowed":false"#), "{answer}");
}

/// `bulwark fake-nodes` as a child process against a cluster, stopped by
/// PID when dropped.
struct FakeNodesProcess(Child);

impl FakeNodesProcess {
    fn start(cluster: &Cluster, count: usize) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(["fake-nodes", "--count", &count.to_string(), "--kubeconfig"])
            .arg(&cluster.kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nodes = FakeNodesProcess(child);
        cluster.eventually("the fake nodes are Ready", || {
            let out = cluster.ok(&["get", "nodes", "--no-headers"]);
            let ready = out.lines().filter(|l| l.contains(" Ready ")).count();
            (ready == count).then_some(()).ok_or(out)
        });
        nodes
    }
}

impl Drop for FakeNodesProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Cluster {
    /// Polls `check` until it passes (60 s deadline), or fails with its last
    /// observation and the server log.
    fn eventually<T>(&self, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match check() {
                Ok(value) => return value,
                Err(last) if Instant::now() >= deadline => {
                    panic!(
                        "{what}: never; last seen:\n{last}\n--- server log ---\n{}",
                        self.log()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

#[test]
fn delete_cascades_orphan_and_namespace_deletion() {
    let cluster = Cluster::start();
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1.36",
        "--replicas=2",
    ]);
    let rs = cluster.eventually("the Deployment's ReplicaSet", || {
        let out = cluster.ok(&["get", "rs", "-l", "app=web", "-o", "name"]);
        out.lines().next().map(str::to_owned).ok_or(out)
    });
    cluster.eventually("two pods", || {
        let out = cluster.ok(&["get", "pods", "-l", "app=web", "--no-headers"]);
        (out.lines().count() == 2).then_some(()).ok_or(out)
    });
    // Orphan: the Deployment goes, its ReplicaSet stays, released.
    cluster.ok(&["delete", "deployment", "web", "--cascade=orphan"]);
    cluster.fails(&["get", "deployment", "web"]);
    let owners = cluster.ok(&["get", &rs, "-o", "jsonpath={.metadata.ownerReferences}"]);
    assert_eq!(owners.trim(), "", "the ReplicaSet was released");
    // Background (kubectl's default): the ReplicaSet's pods go with it.
    cluster.ok(&["delete", &rs]);
    cluster.eventually("the pods are collected", || {
        let out = cluster.ok(&["get", "pods", "-l", "app=web", "--no-headers"]);
        out.trim().is_empty().then_some(()).ok_or(out)
    });
    // Foreground: kubectl waits until the dependents are gone first.
    cluster.ok(&[
        "create",
        "deployment",
        "fg",
        "--image=busybox:1.36",
        "--replicas=1",
    ]);
    cluster.eventually("the fg ReplicaSet", || {
        let out = cluster.ok(&["get", "rs", "-l", "app=fg", "-o", "name"]);
        (!out.trim().is_empty()).then_some(()).ok_or(out)
    });
    cluster.ok(&["delete", "deployment", "fg", "--cascade=foreground"]);
    assert_eq!(
        cluster
            .ok(&["get", "rs", "-l", "app=fg", "-o", "name"])
            .trim(),
        ""
    );

    // Namespace deletion: kubectl waits until the namespace is gone.
    cluster.ok(&["create", "namespace", "doomed"]);
    cluster.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "doomed",
        "--from-literal=a=b",
    ]);
    cluster.ok(&[
        "create",
        "deployment",
        "app",
        "-n",
        "doomed",
        "--image=busybox:1.36",
    ]);
    cluster.ok(&["delete", "namespace", "doomed", "--timeout=60s"]);
    let err = cluster.fails(&["get", "namespace", "doomed"]);
    assert!(err.contains("not found"), "{err}");
    // And every namespace has its default service account.
    cluster.ok(&["create", "namespace", "fresh"]);
    cluster.eventually("the default service account", || {
        let out = cluster.kubectl(&["get", "serviceaccount", "default", "-n", "fresh"]);
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
    });
}

/// `(pod, node, phase)` of the pods labelled `app=<app>`.
fn placements(cluster: &Cluster, app: &str) -> Vec<(String, String, String)> {
    let out = cluster.ok(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn deployments_schedule_roll_out_and_drain_with_a_budget_on_fake_nodes() {
    let cluster = Cluster::start();
    let _nodes = FakeNodesProcess::start(&cluster, 3);
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1.36",
        "--replicas=3",
    ]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let placed = placements(&cluster, "web");
    assert_eq!(placed.len(), 3, "{placed:?}");
    assert!(
        placed
            .iter()
            .all(|(_, node, phase)| node.starts_with("fake-node-") && phase == "Running"),
        "{placed:?}"
    );
    let scheduled = cluster.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Scheduled",
        "-o",
        "name",
    ]);
    assert!(
        scheduled.lines().count() >= 3,
        "a Scheduled event per pod: {scheduled}"
    );
    // --sort-by asks for Table rows with whole objects (includeObject=Object).
    let sorted = cluster.ok(&["get", "events", "--sort-by=.lastTimestamp"]);
    assert!(
        sorted.contains("Scheduled") && sorted.contains("Successfully assigned default/web-"),
        "{sorted}"
    );

    // Scale, change the image, roll back.
    cluster.ok(&["scale", "deployment/web", "--replicas=5"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    cluster.ok(&["set", "image", "deployment/web", "busybox=busybox:1.37"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    cluster.ok(&["rollout", "undo", "deployment/web"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let image = cluster.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "busybox:1.36");

    // A budget that allows no disruption blocks the drain.
    cluster.ok(&[
        "create",
        "poddisruptionbudget",
        "web",
        "--selector=app=web",
        "--min-available=5",
    ]);
    cluster.eventually("the budget is computed", || {
        let out = cluster.ok(&[
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.status.currentHealthy}",
        ]);
        (out == "5").then_some(()).ok_or(out)
    });
    let busy = placements(&cluster, "web")
        .into_iter()
        .find(|(_, _, phase)| phase == "Running")
        .map(|(_, node, _)| node)
        .unwrap();
    let blocked = cluster.kubectl(&["drain", &busy, "--timeout=8s"]);
    assert!(
        !blocked.status.success(),
        "the drain must wait for the budget"
    );
    let err = String::from_utf8_lossy(&blocked.stderr);
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{err}"
    );
    let unschedulable = cluster.ok(&["get", "node", &busy, "-o", "jsonpath={.spec.unschedulable}"]);
    assert_eq!(unschedulable, "true", "drain cordons first");

    // Once the budget allows one disruption at a time, the drain completes:
    // each evicted pod is replaced on another node before the next goes.
    cluster.ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":4}}"#,
    ]);
    cluster.ok(&["drain", &busy, "--timeout=120s"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let placed = placements(&cluster, "web");
    assert!(
        placed.iter().all(|(_, node, _)| *node != busy),
        "{placed:?}"
    );
    cluster.ok(&["uncordon", &busy]);
    let unschedulable = cluster.ok(&["get", "node", &busy, "-o", "jsonpath={.spec.unschedulable}"]);
    assert_eq!(unschedulable, "", "uncordoned");

    // A pod no node can hold says why, in upstream's words.
    cluster.ok(&["run", "huge", "--image=busybox:1.36", "--overrides", r#"{"spec":{"containers":[{"name":"huge","image":"busybox:1.36","resources":{"requests":{"cpu":"1000"}}}]}}"#]);
    cluster.eventually("the pod is unschedulable", || {
        let out = cluster.ok(&[
            "get",
            "pod",
            "huge",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
        ]);
        out.starts_with("0/3 nodes are available: 3 Insufficient cpu.")
            .then_some(())
            .ok_or(out)
    });
}

#[test]
fn quota_refuses_a_pod_over_its_limit_and_describe_shows_usage() {
    let cluster = Cluster::start();
    cluster.ok(&["create", "quota", "pods-only", "--hard=pods=1"]);
    // The resourcequota controller fills in status (until then admission
    // does not charge against the quota, as upstream).
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.ok(&[
        "get",
        "quota",
        "pods-only",
        "-o",
        "jsonpath={.status.used.pods}",
    ]) != "0"
    {
        assert!(Instant::now() < deadline, "status.used never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.ok(&["run", "first", "--image=busybox:1.36"]);
    let refused = cluster.fails(&["run", "second", "--image=busybox:1.36"]);
    assert!(
        refused.contains(
            "pods \"second\" is forbidden: exceeded quota: pods-only, requested: pods=1, used: pods=1, limited: pods=1"
        ),
        "{refused}"
    );
    let table = cluster.ok(&["get", "quota", "pods-only"]);
    assert!(
        table.contains("REQUEST") && table.contains("pods: 1/1"),
        "{table}"
    );
    let described = cluster.ok(&["describe", "quota", "pods-only"]);
    assert!(
        described
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "1", "1"]),
        "{described}"
    );
}
