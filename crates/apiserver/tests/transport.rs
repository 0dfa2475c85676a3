//! Transport limits and start-up configuration, against an in-process
//! server: a request that stalls (here: a client that never finishes its
//! body) is answered 504 at `--request-timeout` while a watch outlives it;
//! a body over 3 MiB is refused 413; nothing is served at /debug/pprof;
//! `--admission-control-config-file` replaces Pod Security's defaults and
//! exemptions, and a malformed one stops the server, naming the problem.

#![allow(clippy::unwrap_used)] // harness code outside #[test] fns: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use kube::Api;
use kube::api::{PostParams, WatchEvent, WatchParams};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn start(
    dir: &tempfile::TempDir,
    change: impl FnOnce(&mut bulwark_apiserver::Config),
) -> anyhow::Result<(bulwark_apiserver::Running, kube::Client)> {
    let mut config = bulwark_apiserver::Config {
        data_dir: dir.path().join("data"),
        port: 0,
        audit_log: bulwark_apiserver::AuditLog::Off,
        ..bulwark_apiserver::Config::default()
    };
    change(&mut config);
    let running = bulwark_apiserver::start(config).await?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&running.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    Ok((running, client))
}

/// A TLS connection as the admin (client certificate), for requests kube
/// cannot make: here, one whose body never ends.
async fn admin_connection(
    running: &bulwark_apiserver::Running,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let pki = &running.pki;
    let (cert, key) = pki.issue_client("admin", &["system:masters"]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut pki.ca_cert_pem.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert.as_bytes())
        .map(Result::unwrap)
        .collect();
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key.as_bytes())
        .unwrap()
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(running.address)
        .await
        .unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stalled_request_times_out_but_a_watch_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (running, client) = start(&dir, |c| c.request_timeout = Duration::from_secs(1))
        .await
        .unwrap();

    // A watch, long-running, is exempt from the limit.
    let maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut watch = maps
        .watch(&WatchParams::default().timeout(30), "0")
        .await
        .unwrap()
        .boxed();

    // The attack: headers promise a body that never comes, holding the
    // connection and the request's memory.
    let mut tls = admin_connection(&running).await;
    tls.write_all(
        b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"metadata\":",
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\"code\":504") {
        let n = tokio::time::timeout(Duration::from_secs(30), tls.read(&mut buf))
            .await
            .expect("the server answers within its timeout")
            .unwrap();
        assert!(
            n > 0,
            "closed without an answer: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("\"reason\":\"Timeout\""), "{answer}");
    assert!(
        answer.contains("request did not complete within requested timeout"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // Past the limit, the watch still delivers.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap();
    maps.create(&PostParams::default(), &cm).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = watch.next().await {
            if let Ok(WatchEvent::Added(cm)) = event
                && cm.metadata.name.as_deref() == Some("late")
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(seen, "the watch outlived the request timeout");
    running.stop();
}

#[tokio::test]
async fn oversized_bodies_and_profiling_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (running, client) = start(&dir, |_| {}).await.unwrap();
    let big = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big"},
        "data": {"blob": "x".repeat(4 << 20)},
    });
    let request = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&big).unwrap())
        .unwrap();
    match client.request_text(request).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 413);
            assert_eq!(status.message, "Request entity too large: limit is 3145728");
        }
        other => panic!("expected 413, got {other:?}"),
    }
    for path in ["/debug/pprof/", "/debug/pprof/profile", "/debug/flags/v"] {
        let request = http::Request::get(path).body(Vec::new()).unwrap();
        match client.request_text(request).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 404, "{path}"),
            other => panic!("{path}: expected 404, got {other:?}"),
        }
    }
    running.stop();
}

const ADMISSION: &str = "apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: restricted
      enforce-version: latest
    exemptions:
      namespaces: [legacy]
";

async fn namespace_with_account(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    let _ = namespaces.create(&PostParams::default(), &ns).await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    let _ = accounts.create(&PostParams::default(), &sa).await;
}

#[tokio::test]
async fn an_admission_config_file_sets_pod_security_defaults_and_exemptions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admission.yaml");
    std::fs::write(&file, ADMISSION).unwrap();
    let (running, client) = start(&dir, |c| c.admission_control_config = Some(file.clone()))
        .await
        .unwrap();
    namespace_with_account(&client, "apps").await;
    namespace_with_account(&client, "legacy").await;
    // Baseline allows it; the configured default (restricted) does not.
    let root: Pod = serde_json::from_value(json!({
        "metadata": {"name": "root"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }))
    .unwrap();
    let apps: Api<Pod> = Api::namespaced(client.clone(), "apps");
    match apps.create(&PostParams::default(), &root).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert!(
                status.message.starts_with(
                    "pods \"root\" is forbidden: violates PodSecurity \"restricted:latest\""
                ),
                "{}",
                status.message
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // The exempt namespace takes even a privileged pod.
    let privileged: Pod = serde_json::from_value(json!({
        "metadata": {"name": "privileged"},
        "spec": {"containers": [{"name": "app", "image": "busybox",
                                 "securityContext": {"privileged": true}}]},
    }))
    .unwrap();
    let legacy: Api<Pod> = Api::namespaced(client.clone(), "legacy");
    legacy
        .create(&PostParams::default(), &privileged)
        .await
        .unwrap();
    running.stop();
}

#[tokio::test]
async fn a_malformed_admission_config_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admission.yaml");
    std::fs::write(
        &file,
        ADMISSION.replace("enforce: restricted", "enforce: strictest"),
    )
    .unwrap();
    let err = start(&dir, |c| c.admission_control_config = Some(file.clone()))
        .await
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("PodSecurity"), "{message}");
    assert!(message.contains("strictest"), "{message}");

    std::fs::write(
        &file,
        "apiVersion: apiserver.config.k8s.io/v1\nplugins: [\n",
    )
    .unwrap();
    let err = start(&dir, |c| c.admission_control_config = Some(file.clone()))
        .await
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(message.contains("line"), "names the line: {message}");
}
