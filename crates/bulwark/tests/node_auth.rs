//! End-to-end: what a node identity may do (Node authorizer + NodeRestriction)
//! and kubelet TLS bootstrap through CertificateSigningRequests, with the
//! real kubectl against a running `bulwark server`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // harness code outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

struct Cluster {
    server: support::Server,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let cluster = Cluster {
            server: support::Server::start(),
            dir: tempfile::Builder::new()
                .prefix("bulwark-nodeauth-")
                .tempdir()
                .unwrap(),
        };
        cluster.eventually("the server is ready", || {
            let out = cluster.kubectl(&["get", "--raw", "/readyz"]);
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| text(&out.stderr))
        });
        cluster
    }

    fn admin(&self) -> PathBuf {
        self.server.data().join("admin.kubeconfig")
    }

    fn as_user(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let kubectl = std::env::var("BULWARK_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        Command::new(kubectl)
            .args(args)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.as_user(&self.admin(), args)
    }

    /// kubectl as the admin, expecting success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Writes `manifest` and runs `kubectl <args> -f` on it as `kubeconfig`.
    fn with_manifest(&self, kubeconfig: &Path, args: &[&str], manifest: &str) -> Output {
        let path = self
            .dir
            .path()
            .join(format!("manifest-{}.yaml", uuid::Uuid::new_v4()));
        std::fs::write(&path, manifest).unwrap();
        let mut full = args.to_vec();
        let path = path.to_str().unwrap().to_owned();
        full.extend(["-f", &path]);
        self.as_user(kubeconfig, &full)
    }

    /// A kubeconfig from `bulwark kubeconfig --user … --group …`.
    fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> PathBuf {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bulwark"));
        command
            .args(["kubeconfig", "--data-dir"])
            .arg(self.server.data())
            .args(["--user", user]);
        for group in groups {
            command.args(["--group", group]);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let path = self
            .dir
            .path()
            .join(format!("{}.kubeconfig", user.replace(':', "_")));
        std::fs::write(&path, out.stdout).unwrap();
        path
    }

    /// A kubeconfig that authenticates with `cert_pem` / `key_pem` (the
    /// cluster and CA from the admin's).
    fn kubeconfig_with(&self, name: &str, cert_pem: &str, key_pem: &str) -> PathBuf {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let admin = std::fs::read_to_string(self.admin()).unwrap();
        let field = |key: &str| {
            admin
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .unwrap()
                .trim()
                .to_owned()
        };
        let config = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: {}
    certificate-authority-data: {}
users:
- name: u
  user:
    client-certificate-data: {}
    client-key-data: {}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
",
            field("server:"),
            field("certificate-authority-data:"),
            b64(cert_pem),
            b64(key_pem)
        );
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, config).unwrap();
        path
    }

    /// Polls `check` until it passes (60 s deadline).
    fn eventually<T>(&self, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match check() {
                Ok(value) => return value,
                Err(last) if Instant::now() >= deadline => {
                    panic!("{what}: never; last seen:\n{last}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails unless `out` failed with all of `needles` in stderr.
fn refused(out: &Output, needles: &[&str]) {
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "should have been refused: {}",
        text(&out.stdout)
    );
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    }
}

/// A pod bound to `node`, mounting `secret` unless it is empty.
fn pod(name: &str, node: &str, secret: &str, annotations: &str) -> String {
    let volumes = if secret.is_empty() {
        String::new()
    } else {
        format!("  volumes:\n  - name: s\n    secret:\n      secretName: {secret}\n")
    };
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  annotations: {{{annotations}}}
spec:
  nodeName: {node}
  containers:
  - name: c
    image: busybox
{volumes}"
    )
}

#[test]
fn a_node_reaches_only_what_its_pods_use_and_changes_only_its_own_objects() {
    let c = Cluster::start();
    let n1 = c.kubeconfig_for("system:node:n1", &["system:nodes"]);
    // Nodes first (pods bound to a missing node are garbage): a node
    // registers its own Node, never another.
    let node = |name: &str| format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n");
    let out = c.with_manifest(&n1, &["create"], &node("n1"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    refused(
        &c.with_manifest(&n1, &["create"], &node("n3")),
        &[r#"node "n1" is not allowed to modify node "n3""#],
    );
    c.with_manifest(&c.admin(), &["create"], &node("n2"));
    for (secret, node) in [("s1", "n1"), ("s2", "n2")] {
        c.ok(&["create", "secret", "generic", secret, "--from-literal=k=v"]);
        let out = c.with_manifest(
            &c.admin(),
            &["create"],
            &pod(&format!("p-{node}"), node, secret, ""),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    // The secret of its own pod: once the graph has the pod.
    c.eventually("node n1 reads its pod's secret", || {
        let out = c.as_user(&n1, &["get", "secret", "s1"]);
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| text(&out.stderr))
    });
    // Another node's pod's secret, and listing secrets: no.
    refused(
        &c.as_user(&n1, &["get", "secret", "s2"]),
        &[
            "Forbidden",
            "no relationship found between node 'n1' and this object",
        ],
    );
    refused(
        &c.as_user(&n1, &["get", "secrets"]),
        &[r#"User "system:node:n1" cannot list resource "secrets""#],
    );
    // Its own pods, listed by node; not everyone's.
    assert!(
        c.as_user(&n1, &["get", "pods", "--field-selector=spec.nodeName=n1"])
            .status
            .success()
    );
    refused(
        &c.as_user(&n1, &["get", "pods"]),
        &["can only list/watch pods with spec.nodeName field selector"],
    );

    refused(
        &c.as_user(
            &n1,
            &[
                "patch",
                "node",
                "n2",
                "--type=merge",
                "-p",
                r#"{"metadata":{"labels":{"owned":"yes"}}}"#,
            ],
        ),
        // kubectl reads the node before patching it: the Node authorizer
        // refuses that read already (NodeRestriction would the write).
        &["Forbidden", "only its own Node object"],
    );
    assert_eq!(
        c.ok(&[
            "get",
            "node",
            "n2",
            "-o",
            "jsonpath={.metadata.labels.owned}"
        ]),
        ""
    );
    // Labels that steer workloads, and taints, stay the admin's.
    refused(
        &c.as_user(
            &n1,
            &[
                "label",
                "node",
                "n1",
                "node-restriction.kubernetes.io/pci=true",
            ],
        ),
        &["is not allowed to modify labels: node-restriction.kubernetes.io/pci"],
    );
    refused(
        &c.as_user(&n1, &["taint", "node", "n1", "dedicated=x:NoSchedule"]),
        &[r#"node "n1" is not allowed to modify taints"#],
    );
    assert!(
        c.as_user(&n1, &["label", "node", "n1", "team=a"])
            .status
            .success(),
        "a node may set ordinary labels on itself"
    );

    // Pod status: of its own pods only. (A kubelet writes status without
    // reading pods/status first, which nodes may not; so does `replace`.)
    let status_update = |pod: &str| {
        let mut object: serde_json::Value =
            serde_json::from_str(&c.ok(&["get", "pod", pod, "-o", "json"])).unwrap();
        object["status"]["message"] = serde_json::json!("seen");
        c.with_manifest(
            &n1,
            &["replace", "--subresource=status"],
            &object.to_string(),
        )
    };
    let out = status_update("p-n1");
    assert!(out.status.success(), "{}", text(&out.stderr));
    refused(
        &status_update("p-n2"),
        &[r#"node "n1" can only update pod status for pods with spec.nodeName set to itself"#],
    );

    // Pods: only mirror pods, bound to itself, referencing no secrets.
    let mirror = r#""kubernetes.io/config.mirror": "x""#;
    refused(
        &c.with_manifest(&n1, &["create"], &pod("plain", "n1", "s1", "")),
        &[r#"node "n1" can only create mirror pods"#],
    );
    refused(
        &c.with_manifest(&n1, &["create"], &pod("elsewhere", "n2", "", mirror)),
        &[r#"node "n1" can only create pods with spec.nodeName set to itself"#],
    );
    refused(
        &c.with_manifest(&n1, &["create"], &pod("sneaky", "n1", "s2", mirror)),
        // (ServiceAccount admission, which runs first as upstream orders
        // it, refuses a mirror pod with secrets too.)
        &["reference secrets"],
    );
    // A mirror pod owned by the node: by this Node, not an earlier one of
    // the same name (its UID), as upstream checks.
    let owned_mirror = |name: &str, uid: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","annotations":{{{mirror}}},
            "ownerReferences":[{{"apiVersion":"v1","kind":"Node","name":"n1","uid":"{uid}","controller":true}}]}},
            "spec":{{"nodeName":"n1","containers":[{{"name":"c","image":"busybox"}}]}}}}"#
        )
    };
    refused(
        &c.with_manifest(&n1, &["create"], &owned_mirror("stale-owner", "0000-old")),
        &[r#"node n1 UID mismatch: expected 0000-old got"#],
    );
    let n1_uid = c.ok(&["get", "node", "n1", "-o", "jsonpath={.metadata.uid}"]);
    let out = c.with_manifest(&n1, &["create"], &owned_mirror("owned", n1_uid.trim()));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Deleting: its own pods only.
    refused(
        &c.as_user(&n1, &["delete", "pod", "p-n2", "--wait=false"]),
        &[r#"node "n1" can only delete pods with spec.nodeName set to itself"#],
    );
    // Evicting: its own pods only.
    let eviction = |pod: &str| {
        let body = format!(
            r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#
        );
        let path = format!("/api/v1/namespaces/default/pods/{pod}/eviction");
        c.with_manifest(&n1, &["create", "--raw", &path], &body)
    };
    refused(
        &eviction("p-n2"),
        &["node n1 can only evict pods with spec.nodeName set to itself"],
    );
    // Service-account tokens: only bound to a pod running on the node.
    let uid = |pod: &str| c.ok(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"]);
    let token = |pod: &str, uid: &str| {
        c.as_user(
            &n1,
            &[
                "create",
                "token",
                "default",
                "--bound-object-kind=Pod",
                &format!("--bound-object-name={pod}"),
                &format!("--bound-object-uid={uid}"),
            ],
        )
    };
    let out = token("p-n1", &uid("p-n1"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    refused(
        &token("p-n2", &uid("p-n2")),
        &["node requested token bound to a pod scheduled on a different node"],
    );
    refused(
        &c.as_user(&n1, &["create", "token", "default"]),
        &["node requested token not bound to a pod"],
    );
    // Leases: its own, in kube-node-lease.
    let lease = |name: &str, namespace: &str| {
        format!(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  holderIdentity: {name}\n"
        )
    };
    let out = c.with_manifest(&n1, &["create"], &lease("n1", "kube-node-lease"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    refused(
        &c.with_manifest(&n1, &["create"], &lease("n2", "kube-node-lease")),
        &["can only access node lease with the same name as the requesting node"],
    );
    refused(
        &c.with_manifest(&n1, &["create"], &lease("n1", "default")),
        &[r#"can only access leases in the "kube-node-lease" system namespace"#],
    );
}

/// A key and a PEM certificate request for `cn` in `orgs`.
fn request(cn: &str, orgs: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    for org in orgs {
        dn.push(rcgen::DnType::OrganizationName, *org);
    }
    dn.push(rcgen::DnType::CommonName, cn);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).unwrap();
    (csr.pem().unwrap(), key.serialize_pem())
}

fn csr_manifest(name: &str, pem: &str, signer: &str, extra: &str) -> String {
    use base64::Engine as _;
    format!(
        "apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: {name}
spec:
  request: {}
  signerName: {signer}
  usages: [digital signature, client auth]
{extra}",
        base64::engine::general_purpose::STANDARD.encode(pem)
    )
}

impl Cluster {
    fn csr_field(&self, name: &str, path: &str) -> String {
        self.ok(&["get", "csr", name, "-o", &format!("jsonpath={{{path}}}")])
    }

    /// Waits for the certificate of CSR `name`; returns its PEM.
    fn issued(&self, name: &str) -> String {
        use base64::Engine as _;
        let encoded = self.eventually(&format!("CSR {name} is issued"), || {
            let cert = self.csr_field(name, ".status.certificate");
            (!cert.is_empty())
                .then_some(cert)
                .ok_or_else(|| self.ok(&["get", "csr", name, "-o", "yaml"]))
        });
        text(
            &base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
    }
}

#[test]
fn kubelet_tls_bootstrap_and_client_certificates_through_csrs() {
    let c = Cluster::start();
    let bootstrap = c.kubeconfig_for("system:bootstrap:abcdef", &["system:bootstrappers"]);

    // A profile the kubelet signer refuses, asked for first: CN admin in
    // system:masters. The approver leaves it alone.
    let (evil, _) = request("admin", &["system:masters"]);
    let out = c.with_manifest(
        &bootstrap,
        &["create"],
        &csr_manifest(
            "evil",
            &evil,
            "kubernetes.io/kube-apiserver-client-kubelet",
            "",
        ),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The kubelet's request, claiming to come from someone else: the server
    // records the real requester, and the approver approves, the signer signs.
    let (pem, key) = request("system:node:n1", &["system:nodes"]);
    let spoof = "  username: system:node:n1\n  groups: [system:masters]\n";
    let out = c.with_manifest(
        &bootstrap,
        &["create"],
        &csr_manifest(
            "node-n1",
            &pem,
            "kubernetes.io/kube-apiserver-client-kubelet",
            spoof,
        ),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        c.csr_field("node-n1", ".spec.username"),
        "system:bootstrap:abcdef"
    );
    let cert = c.issued("node-n1");
    let table = c.ok(&["get", "csr", "node-n1"]);
    assert!(
        table.contains("NAME")
            && table.contains("SIGNERNAME")
            && table.contains("REQUESTOR")
            && table.contains("REQUESTEDDURATION")
            && table.contains("CONDITION")
            && table.contains("system:bootstrap:abcdef")
            && table.contains("Approved,Issued"),
        "{table}"
    );
    assert_eq!(
        c.csr_field("node-n1", ".status.conditions[0].reason"),
        "AutoApproved"
    );

    // The certificate authenticates as the node (and only as the node).
    let node = c.kubeconfig_with("n1-issued", &cert, &key);
    refused(
        &c.as_user(&node, &["get", "secrets"]),
        &[r#"User "system:node:n1" cannot list resource "secrets""#],
    );
    let out = c.as_user(
        &node,
        &[
            "get",
            "--raw",
            "/api/v1/nodes?fieldSelector=metadata.name%3Dn1",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The node renews its own certificate (selfnodeclient); asking for
    // another node's name it gets nothing (it may not create nodeclient).
    let (other, _) = request("system:node:n2", &["system:nodes"]);
    let kubelet = "kubernetes.io/kube-apiserver-client-kubelet";
    let out = c.with_manifest(
        &node,
        &["create"],
        &csr_manifest("n1-as-n2", &other, kubelet, ""),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (renewal, _) = request("system:node:n1", &["system:nodes"]);
    let out = c.with_manifest(
        &node,
        &["create"],
        &csr_manifest("n1-renewal", &renewal, kubelet, ""),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    c.issued("n1-renewal");
    assert_eq!(c.csr_field("n1-as-n2", ".status.conditions"), "");

    // The misfit was processed before the kubelet's request and never
    // approved; a bootstrapper cannot approve it either.
    assert_eq!(c.csr_field("evil", ".status.conditions"), "");
    refused(
        &c.as_user(&bootstrap, &["certificate", "approve", "evil"]),
        &["Forbidden"],
    );
    // Approved by the admin, the kubelet signer still refuses to sign it.
    c.ok(&["certificate", "approve", "evil"]);
    c.eventually("the misfit is marked Failed", || {
        let table = c.ok(&["get", "csr", "evil"]);
        table.contains("Approved,Failed").then_some(()).ok_or(table)
    });
    assert_eq!(c.csr_field("evil", ".status.certificate"), "");

    // Nobody gets system:masters from the client signer.
    let (masters, _) = request("mallory", &["system:masters"]);
    refused(
        &c.with_manifest(
            &c.admin(),
            &["create"],
            &csr_manifest(
                "masters",
                &masters,
                "kubernetes.io/kube-apiserver-client",
                "",
            ),
        ),
        &[
            "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed",
        ],
    );

    // A user's client certificate: pending until `kubectl certificate approve`.
    let (pem, key) = request("alice", &["devs"]);
    let out = c.with_manifest(
        &c.admin(),
        &["create"],
        &csr_manifest(
            "alice",
            &pem,
            "kubernetes.io/kube-apiserver-client",
            "  expirationSeconds: 86400\n",
        ),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = c.ok(&["get", "csr", "alice"]);
    assert!(
        table.contains("Pending") && table.contains("24h"),
        "{table}"
    );
    c.ok(&["certificate", "approve", "alice"]);
    let cert = c.issued("alice");
    let alice = c.kubeconfig_with("alice", &cert, &key);
    refused(
        &c.as_user(&alice, &["get", "pods"]),
        &[r#"User "alice" cannot list resource "pods""#],
    );
    // Denied stays denied.
    let (pem, _) = request("bob", &[]);
    c.with_manifest(
        &c.admin(),
        &["create"],
        &csr_manifest("bob", &pem, "kubernetes.io/kube-apiserver-client", ""),
    );
    c.ok(&["certificate", "deny", "bob"]);
    assert!(c.ok(&["get", "csr", "bob"]).contains("Denied"));
    refused(&c.kubectl(&["certificate", "approve", "bob"]), &[]);
}

/// A node's serving certificate request, sent (as a joining agent does)
/// right after it creates its Node and before its first status write
/// gives the Node its addresses: approved once they show, not left
/// pending because the approver looked too early.
#[test]
fn a_serving_request_waits_for_its_nodes_addresses() {
    let c = Cluster::start();
    c.with_manifest(
        &c.admin(),
        &["create"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: n3}\n",
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["n3".to_owned(), "10.0.0.3".to_owned()]).unwrap();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    dn.push(rcgen::DnType::CommonName, "system:node:n3");
    params.distinguished_name = dn;
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let node = c.kubeconfig_for("system:node:n3", &["system:nodes"]);
    let manifest = csr_manifest("n3-serving", &pem, "kubernetes.io/kubelet-serving", "")
        .replace("client auth", "server auth");
    let out = c.with_manifest(&node, &["create"], &manifest);
    assert!(out.status.success(), "{}", text(&out.stderr));
    c.ok(&[
        "patch",
        "node",
        "n3",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.3"},{"type":"Hostname","address":"n3"}]}}"#,
    ]);
    c.issued("n3-serving");
}
