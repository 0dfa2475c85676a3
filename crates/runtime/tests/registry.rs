//! Pulling from registries on loopback: Debian's `docker-registry` with basic
//! auth (images pushed with `skopeo`), and a small fake registry for the
//! Bearer token flow, server errors and timeouts.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_runtime::{ImageError, ImageStore, RegistryConfig};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `docker-registry` on loopback with htpasswd auth, stopped on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Self {
        Self::start_with(false)
    }

    /// With `tls`, serves HTTPS with a certificate from a fresh CA
    /// (`ca.pem` in the registry's directory) for 127.0.0.1.
    fn start_with(tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", "bulwark", "s3cret"])
            .output()
            .expect("htpasswd (apache2-utils) is installed");
        std::fs::write(dir.path().join("htpasswd"), htpasswd.stdout).expect("htpasswd file");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n\
             http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: bulwark-test\n    path: {root}/htpasswd\n",
            root = dir.path().display()
        );
        let config = if tls {
            make_certificates(dir.path());
            config.replace(
                &format!("  addr: 127.0.0.1:{port}\n"),
                &format!(
                    "  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {root}/server.pem\n    key: {root}/server.key\n",
                    root = dir.path().display()
                ),
            )
        } else {
            config
        };
        std::fs::write(dir.path().join("config.yml"), config).expect("config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed");
        let registry = Registry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    /// Pushes the test busybox layout as `repo:tag` with skopeo.
    fn push(&self, repo: &str) {
        let layout = common::busybox_oci_layout(self.dir.path(), "ignored/name:latest");
        let status = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
            ])
            .args(["--dest-creds", "bulwark:s3cret"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://127.0.0.1:{}/{repo}", self.port))
            .status()
            .expect("skopeo is installed");
        assert!(status.success(), "skopeo push failed");
    }

    /// registries.yaml mirroring docker.io to this registry.
    fn mirror_config(&self, password: &str) -> RegistryConfig {
        RegistryConfig::from_yaml(&format!(
            "disable_default_endpoint: true\nmirrors:\n  docker.io:\n    endpoint:\n      - \"http://127.0.0.1:{p}\"\n\
             configs:\n  \"127.0.0.1:{p}\":\n    auth:\n      username: bulwark\n      password: {password}\n",
            p = self.port
        ))
        .expect("yaml")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn store() -> (tempfile::TempDir, Arc<ImageStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path().join("images")).expect("store");
    (dir, Arc::new(store))
}

#[test]
fn pulls_docker_io_names_through_a_mirror_with_basic_auth() {
    let registry = Registry::start();
    registry.push("library/busybox:latest");
    let (_dir, store) = store();
    // Air-gapped (disable_default_endpoint): only loopback is ever contacted.
    let mut config = registry.mirror_config("s3cret");
    config.request_timeout = Some(Duration::from_secs(10));

    // Concurrent pulls of one image are done once, and all get it.
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let store = Arc::clone(&store);
            let config = config.clone();
            std::thread::spawn(move || store.pull("busybox", &config).map(|i| i.manifest_digest))
        })
        .collect();
    let digests: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().expect("thread").expect("pull"))
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    let image = store.get("busybox").expect("pulled image is in the store");
    assert!(image.layers[0].join("bin/busybox").is_file());
    // IfNotPresent: a present image never touches the registry (this
    // configuration points nowhere).
    let nowhere = RegistryConfig::from_yaml(
        "disable_default_endpoint: true\nmirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:1\"]\n",
    )
    .expect("yaml");
    let again = store.pull_if_missing("busybox", &nowhere).expect("present");
    assert_eq!(again.manifest_digest, image.manifest_digest);
    assert!(store.pull_if_missing("other", &nowhere).is_err());
    assert_eq!(image.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
}

#[test]
fn refused_credentials_and_unknown_images_are_clear_errors() {
    let registry = Registry::start();
    registry.push("library/busybox:latest");
    let (_dir, store) = store();
    let mut bad = registry.mirror_config("wrong");
    bad.request_timeout = Some(Duration::from_secs(2));
    let err = store.pull("busybox", &bad).expect_err("wrong password");
    let text = err.to_string();
    assert!(
        text.starts_with("pulling docker.io/library/busybox:latest: registry http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("401 Unauthorized"), "{text}");

    let good = registry.mirror_config("s3cret");
    let mut good_fast = good.clone();
    good_fast.request_timeout = Some(Duration::from_secs(2));
    let err = store
        .pull("nosuchimage", &good_fast)
        .expect_err("unknown image");
    assert!(err.to_string().contains("404 Not Found"), "{err}");
    assert!(matches!(
        store.get("nosuchimage"),
        Err(ImageError::NotFound(_))
    ));
}

/// A fake registry: Bearer token auth, serving one OCI layout; or failing
/// every request with `fail` (a status code) or never answering (`hang`).
#[derive(Clone, Copy)]
enum Behaviour {
    Serve,
    Fail(u16),
    Hang,
}

fn fake_registry(layout: PathBuf, behaviour: Behaviour) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let layout = layout.clone();
            std::thread::spawn(move || {
                let _ = serve(stream, &layout, port, behaviour);
            });
        }
    });
    port
}

fn serve(stream: TcpStream, layout: &Path, port: u16, behaviour: Behaviour) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let mut authorization = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line
                .strip_prefix("Authorization: ")
                .or_else(|| line.strip_prefix("authorization: "))
            {
                authorization = v.trim().to_string();
            }
        }
        let respond = |stream: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{headers}\r\n",
                body.len()
            )?;
            stream.write_all(body)
        };
        match behaviour {
            Behaviour::Hang => {
                std::thread::sleep(Duration::from_secs(30));
                return Ok(());
            }
            Behaviour::Fail(code) => {
                respond(&mut stream, &format!("{code} Oops"), "", b"{}")?;
                continue;
            }
            Behaviour::Serve => {}
        }
        if path.starts_with("/token") {
            respond(
                &mut stream,
                "200 OK",
                "Content-Type: application/json\r\n",
                br#"{"token":"t0k3n"}"#,
            )?;
            continue;
        }
        if authorization != "Bearer t0k3n" {
            let challenge = format!(
                "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\",scope=\"repository:library/busybox:pull\"\r\n"
            );
            respond(&mut stream, "401 Unauthorized", &challenge, b"{}")?;
            continue;
        }
        // /v2/<repo>/manifests/<ref> or /v2/<repo>/blobs/<digest>
        let blob = |digest: &str| {
            std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:")),
            )
        };
        if let Some((_, reference)) = path.split_once("/manifests/") {
            let digest = if reference.starts_with("sha256:") {
                reference.to_string()
            } else {
                let index: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
                index["manifests"][0]["digest"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            match blob(&digest) {
                Ok(bytes) => {
                    let doc: serde_json::Value = serde_json::from_slice(&bytes)?;
                    let media = doc["mediaType"].as_str().unwrap_or_default().to_string();
                    respond(
                        &mut stream,
                        "200 OK",
                        &format!("Content-Type: {media}\r\n"),
                        &bytes,
                    )?;
                }
                Err(_) => respond(&mut stream, "404 Not Found", "", b"{}")?,
            }
        } else if let Some((_, digest)) = path.split_once("/blobs/") {
            match blob(digest) {
                Ok(bytes) => respond(&mut stream, "200 OK", "", &bytes)?,
                Err(_) => respond(&mut stream, "404 Not Found", "", b"{}")?,
            }
        } else {
            respond(&mut stream, "404 Not Found", "", b"{}")?;
        }
        let _ = reader.get_mut().read(&mut [])?;
    }
}

fn registry_config(port: u16, timeout: Duration) -> RegistryConfig {
    let mut config = RegistryConfig::from_yaml(&format!(
        "disable_default_endpoint: true\nmirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:{port}\"]\n"
    ))
    .expect("yaml");
    config.request_timeout = Some(timeout);
    config
}

#[test]
fn bearer_token_flow_and_multi_arch_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = common::busybox_oci_layout(dir.path(), "docker.io/library/busybox:latest");
    let port = fake_registry(layout, Behaviour::Serve);
    let (_store_dir, store) = store();
    let image = store
        .pull(
            "busybox:latest",
            &registry_config(port, Duration::from_secs(10)),
        )
        .expect("pull through the token flow");
    assert!(image.layers[0].join("bin/busybox").is_file());
}

#[test]
fn server_errors_and_timeouts_fail_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store_dir, store) = store();
    for (behaviour, want) in [
        (Behaviour::Fail(500), "registry answered 500"),
        (Behaviour::Hang, "timeout"),
    ] {
        let port = fake_registry(dir.path().to_path_buf(), behaviour);
        let err = store
            .pull("busybox", &registry_config(port, Duration::from_secs(1)))
            .expect_err("must fail");
        let text = err.to_string().to_lowercase();
        assert!(text.contains(want), "{text}");
    }
    assert!(store.list().expect("list").is_empty());
    let staged = std::fs::read_dir(store_dir.path().join("images/tmp"))
        .expect("tmp")
        .count();
    assert_eq!(staged, 0, "nothing left half-written");
}

/// A CA and a server certificate for 127.0.0.1 signed by it, with openssl.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is installed");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=bulwark test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
}

#[test]
fn https_registries_are_trusted_through_their_configured_ca() {
    let registry = Registry::start_with(true);
    let layout = common::busybox_oci_layout(registry.dir.path(), "ignored/name:latest");
    let status = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ])
        .args(["--dest-creds", "bulwark:s3cret"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!(
            "docker://127.0.0.1:{}/library/busybox:latest",
            registry.port
        ))
        .status()
        .expect("skopeo");
    assert!(status.success(), "push over https");
    let yaml = |ca: &str| {
        format!(
            "disable_default_endpoint: true\nmirrors:\n  docker.io:\n    endpoint: [\"https://127.0.0.1:{p}\"]\n\
             configs:\n  \"127.0.0.1:{p}\":\n    auth: {{username: bulwark, password: s3cret}}\n{ca}",
            p = registry.port
        )
    };
    let (_dir, store) = store();
    // Without the CA the certificate is refused...
    let mut untrusted = RegistryConfig::from_yaml(&yaml("")).expect("yaml");
    untrusted.request_timeout = Some(Duration::from_secs(10));
    let err = store.pull("busybox", &untrusted).expect_err("unknown CA");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // ...with it, the pull goes through.
    let ca = registry.dir.path().join("ca.pem");
    let mut trusted =
        RegistryConfig::from_yaml(&yaml(&format!("    tls: {{ca_file: {}}}\n", ca.display())))
            .expect("yaml");
    trusted.request_timeout = Some(Duration::from_secs(10));
    let image = store.pull("busybox", &trusted).expect("pull over https");
    assert!(image.layers[0].join("bin/busybox").is_file());
}
