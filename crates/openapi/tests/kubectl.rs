//! The real `kubectl` against the generated documents.
//!
//! A minimal fake API server on a loopback port serves legacy discovery,
//! `/openapi/v3` and the documents, stores what is POSTed and records what
//! is PATCHed. Three things only the real client shows: `--validate=strict`
//! finds `fieldValidation`, `explain` prints a field's own description, and
//! client-side `apply` computes a keyed strategic merge patch from the
//! schemas' patch tags. Skipped (with a note) where `kubectl` is missing.

use bulwark_openapi::{ResourceInfo, discovery, group_version_document};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

const RESOURCES: &[ResourceInfo<'static>] = &[
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        subresources: &[],
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        subresources: &[("status", None)],
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        subresources: &[
            ("scale", Some(("autoscaling", "v1", "Scale"))),
            ("status", None),
        ],
    },
    ResourceInfo {
        group: "stable.example.com",
        version: "v1",
        kind: "CronTab",
        plural: "crontabs",
        namespaced: true,
        subresources: &[],
    },
];

/// What the fake server saw and holds.
#[derive(Default)]
struct State {
    /// Objects by item path.
    objects: BTreeMap<String, Value>,
    /// Every write: method, path with query, content type, body.
    writes: Vec<(String, String, String, String)>,
}

/// The fake API server: fixed routes, plus the objects in `state`.
struct Server {
    routes: BTreeMap<String, Value>,
    state: Mutex<State>,
}

impl Server {
    fn new() -> Server {
        let mut routes = BTreeMap::new();
        let root = discovery(RESOURCES);
        let gvs: BTreeSet<(&str, &str)> = RESOURCES.iter().map(|r| (r.group, r.version)).collect();
        let mut groups = Vec::new();
        for &(group, version) in &gvs {
            let doc = group_version_document(RESOURCES, group, version).expect("served");
            let (key, group_version) = if group.is_empty() {
                (format!("api/{version}"), version.to_owned())
            } else {
                let gv = format!("{group}/{version}");
                groups.push(json!({
                    "name": group,
                    "versions": [{"groupVersion": gv, "version": version}],
                    "preferredVersion": {"groupVersion": gv, "version": version},
                }));
                (format!("apis/{gv}"), gv)
            };
            routes.insert(format!("/openapi/v3/{key}"), doc);
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| (r.group, r.version) == (group, version))
                .map(|r| {
                    json!({
                        "name": r.plural, "singularName": r.kind.to_lowercase(),
                        "namespaced": r.namespaced, "kind": r.kind,
                        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                    })
                })
                .collect();
            routes.insert(
                format!("/{key}"),
                json!({"kind": "APIResourceList", "apiVersion": "v1",
                       "groupVersion": group_version, "resources": resources}),
            );
        }
        routes.insert("/openapi/v3".to_owned(), root);
        routes.insert(
            "/api".to_owned(),
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        );
        routes.insert(
            "/apis".to_owned(),
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
        );
        Server {
            routes,
            state: Mutex::default(),
        }
    }

    /// Answers one request: status code and JSON body.
    fn answer(&self, method: &str, target: &str, content_type: &str, body: &str) -> (u16, Value) {
        let path = target.split('?').next().unwrap_or(target);
        let mut state = self.state.lock().expect("not poisoned");
        match method {
            "GET" => match self.routes.get(path).or_else(|| state.objects.get(path)) {
                Some(v) => (200, v.clone()),
                None => {
                    let (kind, name) = path
                        .rsplit_once('/')
                        .map(|(rest, name)| (rest.rsplit('/').next().unwrap_or(""), name))
                        .unwrap_or(("", path));
                    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": format!("{kind} \"{name}\" not found"),
                        "details": {"name": name, "kind": kind}});
                    (404, status)
                }
            },
            "POST" => {
                state.writes.push((
                    method.into(),
                    target.into(),
                    content_type.into(),
                    body.into(),
                ));
                let mut object: Value = serde_json::from_str(body).expect("kubectl sends JSON");
                let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
                object["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001".into();
                object["metadata"]["resourceVersion"] = "1".into();
                state
                    .objects
                    .insert(format!("{path}/{name}"), object.clone());
                (201, object)
            }
            "PATCH" => {
                state.writes.push((
                    method.into(),
                    target.into(),
                    content_type.into(),
                    body.into(),
                ));
                let object = state.objects.get(path).cloned().unwrap_or(Value::Null);
                (200, object)
            }
            _ => (405, json!({"kind": "Status", "code": 405})),
        }
    }

    fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (mut length, mut content_type) = (0, String::new());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "content-type" => content_type = value.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let (code, answer) = self.answer(
            method,
            target,
            &content_type,
            &String::from_utf8_lossy(&body),
        );
        let answer = answer.to_string();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )
    }

    fn writes(&self) -> Vec<(String, String, String, String)> {
        self.state.lock().expect("not poisoned").writes.clone()
    }
}

/// A fake server on a loopback port, and a kubeconfig and HOME for kubectl.
struct Cluster {
    server: Arc<Server>,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("bound").port();
        let server = Arc::new(Server::new());
        let s = Arc::clone(&server);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || s.serve(stream));
            }
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: c, cluster: {{server: \"http://127.0.0.1:{port}\"}}}}]\n\
             users: [{{name: u, user: {{}}}}]\n\
             contexts: [{{name: c, context: {{cluster: c, user: u, namespace: default}}}}]\n\
             current-context: c\n"
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).expect("write kubeconfig");
        Cluster { server, dir }
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write manifest");
        path
    }

    /// Runs kubectl; its stdout, or a panic with its stderr.
    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HOME", self.dir.path())
            .output()
            .expect("kubectl runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "kubectl {args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn have_kubectl() -> bool {
    let found = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok();
    if !found {
        eprintln!("skipped: no kubectl on PATH");
    }
    found
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        env: [{name: A, value: \"1\"}, {name: B, value: \"2\"}]
      - name: side
        image: busybox
";

#[test]
fn create_validates_strictly_for_builtin_and_custom_kinds() {
    if !have_kubectl() {
        return;
    }
    let cluster = Cluster::start();
    let manifest = format!(
        "{DEPLOYMENT}---\napiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {{name: ct}}\nspec: {{cronSpec: x}}\n"
    );
    let file = cluster.file("create.yaml", &manifest);
    cluster.kubectl(&["create", "-f", path_str(&file)]);
    let posts: Vec<String> = cluster
        .server
        .writes()
        .into_iter()
        .map(|(_, target, ..)| target)
        .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    for target in posts {
        assert!(target.contains("fieldValidation=Strict"), "{target}");
    }
}

#[test]
fn explain_prints_the_fields_own_description() {
    if !have_kubectl() {
        return;
    }
    let cluster = Cluster::start();
    let out = cluster.kubectl(&["explain", "deployment.spec.strategy.rollingUpdate.maxSurge"]);
    assert!(out.contains("FIELD: maxSurge <IntOrString>"), "{out}");
    assert!(
        out.contains("The maximum number of pods that can be scheduled"),
        "{out}"
    );
    let out = cluster.kubectl(&["explain", "pod.spec.containers"]);
    assert!(out.contains("FIELD: containers <[]Container>"), "{out}");
    assert!(out.contains("image\t<string>"), "{out}");
}

#[test]
fn apply_sends_a_keyed_strategic_merge_patch() {
    if !have_kubectl() {
        return;
    }
    let cluster = Cluster::start();
    let first = cluster.file("first.yaml", DEPLOYMENT);
    let second = cluster.file(
        "second.yaml",
        &DEPLOYMENT.replace(", {name: B, value: \"2\"}", ""),
    );
    cluster.kubectl(&["apply", "-f", path_str(&first)]);
    cluster.kubectl(&["apply", "-f", path_str(&second)]);
    let writes = cluster.server.writes();
    let (_, target, content_type, body) = writes
        .iter()
        .find(|(method, ..)| method == "PATCH")
        .expect("the second apply patches");
    assert!(target.contains("fieldValidation=Strict"), "{target}");
    assert_eq!(content_type, "application/strategic-merge-patch+json");
    let patch: Value = serde_json::from_str(body).expect("JSON patch");
    assert_eq!(
        patch["spec"]["template"]["spec"],
        json!({
            "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}],
                "env": [{"$patch": "delete", "name": "B"}],
                "name": "web",
            }],
        })
    );
}
