//! End-to-end: service-account tokens, TokenReview, bootstrap tokens,
//! ServiceAccount admission and `kube-root-ca.crt`, with the real kubectl
//! against a real `bulwark server`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // harness code outside #[test] fns: a panic is the failure report

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Server;

const PATIENCE: Duration = Duration::from_secs(30);

struct Cluster {
    server: Server,
    url: String,
}

impl Cluster {
    fn start() -> Self {
        let server = Server::start();
        let kubeconfig = server.data().join("admin.kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            assert!(
                Instant::now() < deadline,
                "server never wrote its kubeconfig"
            );
            if let Ok(config) = std::fs::read_to_string(&kubeconfig)
                && let Some(url) = config
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("server: "))
            {
                break url.to_owned();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let cluster = Cluster { server, url };
        cluster.eventually("the server is ready", || {
            let out = cluster.kubectl(&["get", "--raw", "/readyz"]);
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| stderr(&out))
        });
        // Pods in `default` need its ServiceAccount, which the controller
        // creates just after start.
        cluster.eventually("the default ServiceAccount", || {
            let out = cluster.kubectl(&["get", "serviceaccount", "default"]);
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| stderr(&out))
        });
        cluster
    }

    fn dir(&self) -> PathBuf {
        self.server.data().parent().unwrap().to_owned()
    }

    fn command(&self, kubeconfig: &PathBuf, args: &[&str]) -> Command {
        let kubectl = std::env::var("BULWARK_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let mut command = Command::new(kubectl);
        command
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir().join("kube-cache"))
            .stdin(Stdio::null());
        command
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        let admin = self.server.data().join("admin.kubeconfig");
        self.command(&admin, args).output().expect("kubectl runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            stderr(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn apply(&self, manifest: &Value) -> Output {
        let path = self
            .dir()
            .join(format!("manifest-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, manifest.to_string()).unwrap();
        // Create-only kinds (TokenReview) have no PATCH operation in
        // OpenAPI v3, so kubectl falls back to the v2 document, which
        // describes no models: the server validates them, as any other.
        self.kubectl(&[
            "create",
            "--validate=strict",
            "-o",
            "json",
            "-f",
            path.to_str().unwrap(),
        ])
    }

    /// A kubeconfig with only the CA and this bearer token (no client
    /// certificate, which would win over the token).
    fn token_kubeconfig(&self, token: &str) -> PathBuf {
        let ca = self.server.data().join("pki").join("ca.crt");
        let config = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": self.url, "certificate-authority": ca}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        });
        let path = self
            .dir()
            .join(format!("token-{}.kubeconfig", uuid::Uuid::new_v4()));
        std::fs::write(&path, config.to_string()).unwrap();
        path
    }

    /// `kubectl auth whoami` as the bearer of `token`: the user, or the
    /// error kubectl prints.
    fn whoami(&self, token: &str) -> Result<Value, String> {
        let out = self
            .command(
                &self.token_kubeconfig(token),
                &["auth", "whoami", "-o", "json"],
            )
            .output()
            .unwrap();
        if out.status.success() {
            let review: Value = serde_json::from_slice(&out.stdout).unwrap();
            Ok(review["status"]["userInfo"].clone())
        } else {
            Err(stderr(&out))
        }
    }

    fn eventually<T>(&self, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match check() {
                Ok(value) => return value,
                Err(last) if Instant::now() > deadline => panic!("{what}: {last}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn create_token(&self, args: &[&str]) -> String {
        let mut full = vec!["create", "token"];
        full.extend(args);
        self.ok(&full).trim().to_owned()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn unauthorized(result: Result<Value, String>) -> bool {
    matches!(result, Err(e) if e.contains("You must be logged in to the server"))
}

fn pod(name: &str, extra: Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "initContainers": [{"name": "i", "image": "busybox"}]},
    });
    if let (Some(spec), Some(extra)) = (pod["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    pod
}

#[test]
fn kubectl_create_token_authenticates_as_the_service_account() {
    let c = Cluster::start();
    let token = c.create_token(&["default"]);
    let user = c.whoami(&token).unwrap();
    assert_eq!(user["username"], "system:serviceaccount:default:default");
    assert_eq!(
        user["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    let uid = c.ok(&["get", "sa", "default", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(user["uid"], uid.as_str());
    assert!(
        user["extra"]["authentication.kubernetes.io/credential-id"][0]
            .as_str()
            .unwrap()
            .starts_with("JTI=")
    );

    // The same with `kubectl --token=…` and a kubeconfig holding only the
    // CA (a client certificate in the kubeconfig would win over the token,
    // as upstream's authenticator order has it).
    let ca_only = c.token_kubeconfig("");
    let out = c
        .command(
            &ca_only,
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
                "--token",
                &token,
            ],
        )
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "system:serviceaccount:default:default",
        "{}",
        stderr(&out)
    );

    // A lifetime of at least ten minutes, as upstream requires.
    let token = c.create_token(&["default", "--duration", "10m"]);
    assert!(c.whoami(&token).is_ok());
    let out = c.kubectl(&["create", "token", "default", "--duration", "5m"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("may not specify a duration less than 10 minutes"),
        "{}",
        stderr(&out)
    );
    let out = c.kubectl(&["create", "token", "ghost"]);
    assert!(
        stderr(&out).contains("serviceaccounts \"ghost\" not found"),
        "{}",
        stderr(&out)
    );

    // Its RBAC is the service account's own: nothing beyond discovery.
    let out = c
        .command(&c.token_kubeconfig(&token), &["get", "secrets"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("Forbidden"), "{}", stderr(&out));
}

#[test]
fn a_token_outlives_neither_its_pod_nor_its_service_account() {
    let c = Cluster::start();
    let out = c.apply(&pod("holder", json!({})));
    assert!(out.status.success(), "{}", stderr(&out));
    let bound = c.create_token(&[
        "default",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "holder",
    ]);
    let user = c.whoami(&bound).unwrap();
    let pod_uid = c.ok(&["get", "pod", "holder", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["holder"])
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-uid"],
        json!([pod_uid])
    );

    // The attack: a token stolen from a pod, used after the pod is gone.
    c.ok(&["delete", "pod", "holder", "--wait=true"]);
    c.eventually("the pod-bound token is refused", || {
        unauthorized(c.whoami(&bound))
            .then_some(())
            .ok_or_else(|| "still accepted".to_owned())
    });
    // A pod by the same name is another pod.
    assert!(c.apply(&pod("holder", json!({}))).status.success());
    assert!(unauthorized(c.whoami(&bound)));
    // Binding to a pod that does not exist is refused.
    let out = c.kubectl(&[
        "create",
        "token",
        "default",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "nope",
    ]);
    assert!(
        stderr(&out).contains("pods \"nope\" not found"),
        "{}",
        stderr(&out)
    );

    // Bound to a Secret: dies with the Secret.
    c.ok(&[
        "create",
        "secret",
        "generic",
        "session",
        "--from-literal=k=v",
    ]);
    let to_secret = c.create_token(&[
        "default",
        "--bound-object-kind",
        "Secret",
        "--bound-object-name",
        "session",
    ]);
    assert!(c.whoami(&to_secret).is_ok());
    c.ok(&["delete", "secret", "session"]);
    c.eventually("the secret-bound token is refused", || {
        unauthorized(c.whoami(&to_secret))
            .then_some(())
            .ok_or_else(|| "still accepted".to_owned())
    });
    // A pod runs as one ServiceAccount; another's token cannot bind to it.
    c.ok(&["create", "serviceaccount", "other"]);
    let out = c.kubectl(&[
        "create",
        "token",
        "other",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "holder",
    ]);
    assert!(
        stderr(&out).contains("pod running with different serviceaccount name"),
        "{}",
        stderr(&out)
    );

    // A token of a ServiceAccount deleted (and recreated with a new UID).
    c.ok(&["create", "serviceaccount", "robot"]);
    let token = c.create_token(&["robot"]);
    assert!(c.whoami(&token).is_ok());
    c.ok(&["delete", "serviceaccount", "robot"]);
    c.ok(&["create", "serviceaccount", "robot"]);
    c.eventually("the old robot's token is refused", || {
        unauthorized(c.whoami(&token))
            .then_some(())
            .ok_or_else(|| "still accepted".to_owned())
    });
}

#[test]
fn forged_expired_and_foreign_audience_tokens_are_refused() {
    let c = Cluster::start();
    let token = c.create_token(&["default"]);
    assert!(c.whoami(&token).is_ok());

    // Tampered: the payload changed (to another account), signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("system:serviceaccount:kube-system:default");
    claims["kubernetes.io"]["namespace"] = json!("kube-system");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    assert!(unauthorized(c.whoami(&forged)));
    assert!(unauthorized(c.whoami("not-a-token")));

    // For another audience: good for that audience, not for the API.
    let vault = c.create_token(&["default", "--audience", "vault"]);
    assert!(unauthorized(c.whoami(&vault)));
    let review = c.apply(&json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": vault, "audiences": ["vault"]},
    }));
    assert!(review.status.success(), "{}", stderr(&review));
    let review: Value = serde_json::from_slice(&review.stdout).unwrap();
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(review["status"]["audiences"], json!(["vault"]));

    // Expired: signed with the cluster's own key, an hour past its expiry.
    let key = bulwark_apiserver::tokens::SigningKey::load_or_create(&c.server.data()).unwrap();
    let now = jiff::Timestamp::now().as_second();
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["exp"] = json!(now - 3600);
    claims["iat"] = json!(now - 7200);
    claims["nbf"] = json!(now - 7200);
    assert!(unauthorized(c.whoami(&key.sign(&claims))));
    // The same claims, current: accepted (so only the expiry was wrong).
    claims["exp"] = json!(now + 600);
    assert!(c.whoami(&key.sign(&claims)).is_ok());
}

#[test]
fn token_reviews_answer_for_good_and_bad_tokens() {
    let c = Cluster::start();
    let token = c.create_token(&["default"]);
    let review = |token: &str| -> Value {
        let out = c.apply(&json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token},
        }));
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let good = review(&token);
    assert_eq!(good["status"]["authenticated"], true);
    assert_eq!(
        good["status"]["user"]["username"],
        "system:serviceaccount:default:default"
    );
    assert_eq!(
        good["status"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let bad = review("abc.def.ghi");
    assert_ne!(bad["status"]["authenticated"], true);
    assert!(
        bad["status"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    // Discovery lists it.
    let resources = c.ok(&[
        "api-resources",
        "--api-group",
        "authentication.k8s.io",
        "-o",
        "name",
    ]);
    assert!(
        resources.contains("tokenreviews.authentication.k8s.io"),
        "{resources}"
    );
    // The token never reaches the audit log.
    let log = std::fs::read_to_string(c.server.data().join("audit/audit.log")).unwrap();
    assert!(log.contains("tokenreviews"));
    assert!(!log.contains(&token));
}

#[test]
fn bootstrap_tokens_authenticate_until_they_expire() {
    let c = Cluster::start();
    let secret = |id: &str, secret: &str, expiration: &str| {
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
            "stringData": {
                "token-id": id, "token-secret": secret, "expiration": expiration,
                "usage-bootstrap-authentication": "true",
                "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
            },
        })
    };
    let later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap()
        .to_string();
    let earlier = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap()
        .to_string();
    assert!(
        c.apply(&secret("abcdef", "0123456789abcdef", &later))
            .status
            .success()
    );
    assert!(
        c.apply(&secret("oldone", "0123456789abcdef", &earlier))
            .status
            .success()
    );
    let user = c.eventually("the bootstrap token authenticates", || {
        c.whoami("abcdef.0123456789abcdef")
    });
    assert_eq!(user["username"], "system:bootstrap:abcdef");
    assert_eq!(
        user["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:kubeadm:default-node-token",
            "system:authenticated"
        ])
    );
    assert!(
        unauthorized(c.whoami("abcdef.0123456789abcdee")),
        "wrong secret"
    );
    assert!(unauthorized(c.whoami("oldone.0123456789abcdef")), "expired");
    assert!(
        unauthorized(c.whoami("zzzzzz.0123456789abcdef")),
        "unknown id"
    );
}

#[test]
fn pods_get_the_token_volume_and_need_their_service_account() {
    let c = Cluster::start();
    let out = c.apply(&pod("web", json!({})));
    assert!(out.status.success(), "{}", stderr(&out));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["spec"]["serviceAccountName"], "default");
    let volumes = created["spec"]["volumes"].as_array().unwrap();
    let volume = volumes
        .iter()
        .find(|v| v["name"].as_str().unwrap().starts_with("kube-api-access-"))
        .expect("the token volume");
    let name = volume["name"].as_str().unwrap();
    assert_eq!(name.len(), "kube-api-access-".len() + 5);
    assert_eq!(
        volume["projected"]["sources"],
        json!([
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ])
    );
    for list in ["containers", "initContainers"] {
        assert_eq!(
            created["spec"][list][0]["volumeMounts"],
            json!([{"name": name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]),
            "{list}"
        );
    }
    // As upstream records ownership before mutating admission, what
    // admission added (the token volume, its mounts, tolerations) belongs
    // to no manager: the creator owns only what it sent, and defaults.
    let stored: Value =
        serde_json::from_str(&c.ok(&["get", "pod", "web", "-o", "json", "--show-managed-fields"]))
            .unwrap();
    let owned = stored["metadata"]["managedFields"].to_string();
    assert!(owned.contains("f:containers"), "{owned}");
    assert!(owned.contains("f:restartPolicy"), "a default: {owned}");
    for added in [
        "kube-api-access",
        "f:volumes",
        "f:volumeMounts",
        "f:serviceAccountName",
    ] {
        assert!(!owned.contains(added), "{added} in {owned}");
    }

    // No token where the pod (or its ServiceAccount) declines it.
    let out = c.apply(&pod(
        "quiet",
        json!({"automountServiceAccountToken": false}),
    ));
    let quiet: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(quiet["spec"].get("volumes").is_none(), "{quiet}");
    c.ok(&["create", "serviceaccount", "shy"]);
    c.ok(&[
        "patch",
        "serviceaccount",
        "shy",
        "-p",
        r#"{"automountServiceAccountToken":false}"#,
    ]);
    let out = c.apply(&pod("shy-pod", json!({"serviceAccountName": "shy"})));
    let shy: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(shy["spec"].get("volumes").is_none(), "{shy}");

    // A ServiceAccount that does not exist: refused, in upstream's words.
    let out = c.apply(&pod("lost", json!({"serviceAccountName": "ghost"})));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "pods \"lost\" is forbidden: error looking up service account default/ghost: serviceaccount \"ghost\" not found"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_namespace_gets_kube_root_ca_crt() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "team-a"]);
    let ca = std::fs::read_to_string(c.server.data().join("pki/ca.crt")).unwrap();
    let cm: Value = c.eventually("kube-root-ca.crt in team-a", || {
        let out = c.kubectl(&[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            "team-a",
            "-o",
            "json",
        ]);
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(stderr(&out))
        }
    });
    assert_eq!(cm["data"], json!({"ca.crt": ca}));
    assert!(
        cm["metadata"]["annotations"]["kubernetes.io/description"]
            .as_str()
            .unwrap()
            .starts_with("Contains a CA bundle")
    );
    // Tampered with, it is put back.
    c.ok(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "team-a",
        "-p",
        r#"{"data":{"ca.crt":"evil"}}"#,
    ]);
    c.eventually("kube-root-ca.crt restored", || {
        let data = c.ok(&[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ]);
        (data == ca).then_some(()).ok_or(data)
    });
}
