//! Service cluster IPs and NodePorts through the API, as a client sees
//! them: allocation, upstream's refusals, release on delete and type
//! change, the built-in `kubernetes` and `kube-dns` Services, and the real
//! kubectl's `expose` (skipped without `/usr/bin/kubectl`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bulwark_testkit::TestCluster;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a Service")
}

fn web(name: &str) -> Service {
    service(
        name,
        json!({"selector": {"app": name}, "ports": [{"port": 80}]}),
    )
}

async fn create(api: &Api<Service>, svc: &Service) -> Result<Service, kube::core::Status> {
    match api.create(&PostParams::default(), svc).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(status)) => Err(*status),
        Err(other) => panic!("creating a Service: {other}"),
    }
}

fn ip_of(svc: &Service) -> String {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn cluster_ips_are_allocated_unique_and_reusable() {
    let cluster = TestCluster::start().await.unwrap();
    let api: Api<Service> = Api::default_namespaced(cluster.admin());
    let mut seen = HashSet::new();
    for i in 0..50 {
        let created = create(&api, &web(&format!("web-{i}"))).await.unwrap();
        let spec = created.spec.unwrap();
        let ip = spec.cluster_ip.clone().unwrap();
        assert!(ip.starts_with("10.43."), "{ip} outside 10.43.0.0/16");
        assert!(
            ip != "10.43.0.1" && ip != "10.43.0.10",
            "{ip} is a built-in's"
        );
        assert_eq!(spec.cluster_ips, Some(vec![ip.clone()]));
        assert_eq!(spec.ip_families, Some(vec!["IPv4".to_owned()]));
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
        assert!(seen.insert(ip.clone()), "{ip} handed out twice");
    }
    // Asked for: honoured; asked for again: refused as upstream words it.
    let mut wanted = web("wanted");
    wanted.spec.as_mut().unwrap().cluster_ip = Some("10.43.0.77".into());
    assert_eq!(ip_of(&create(&api, &wanted).await.unwrap()), "10.43.0.77");
    let mut again = web("again");
    again.spec.as_mut().unwrap().cluster_ip = Some("10.43.0.77".into());
    let refused = create(&api, &again).await.unwrap_err();
    assert_eq!(refused.code, 422);
    assert_eq!(
        refused.message,
        "Service \"again\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.0.77\"}: failed to allocate IP 10.43.0.77: provided IP is already allocated"
    );
    let mut outside = web("outside");
    outside.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.5".into());
    assert_eq!(
        create(&api, &outside).await.unwrap_err().message,
        "Service \"outside\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.5\"}: failed to allocate IP 10.96.0.5: the provided IP (10.96.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
    );
    // Deleted: the address is free again.
    api.delete("wanted", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(ip_of(&create(&api, &again).await.unwrap()), "10.43.0.77");
    // A name taken twice gives its address back.
    let mut duplicate = web("again");
    duplicate.spec.as_mut().unwrap().cluster_ip = Some("10.43.0.78".into());
    assert_eq!(create(&api, &duplicate).await.unwrap_err().code, 409);
    let mut reuse = web("reuse");
    reuse.spec.as_mut().unwrap().cluster_ip = Some("10.43.0.78".into());
    assert_eq!(ip_of(&create(&api, &reuse).await.unwrap()), "10.43.0.78");
}

#[tokio::test]
async fn the_cluster_ip_cannot_change_and_survives_updates_that_omit_it() {
    let cluster = TestCluster::start().await.unwrap();
    let api: Api<Service> = Api::default_namespaced(cluster.admin());
    let created = create(&api, &web("web")).await.unwrap();
    let ip = ip_of(&created);
    // A replace without the allocated fields keeps them.
    let mut replaced = web("web");
    replaced.metadata.resource_version = created.metadata.resource_version.clone();
    replaced.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 8080;
    let replaced = api
        .replace("web", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(ip_of(&replaced), ip);
    let patch = json!({"spec": {"clusterIP": "10.43.0.99"}});
    let refused = match api
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Err(kube::Error::Api(status)) => status,
        other => panic!("changing the cluster IP: {other:?}"),
    };
    assert_eq!(refused.code, 422);
    assert_eq!(
        refused.message,
        "Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.99\"}: may not change once set"
    );
}

#[tokio::test]
async fn headless_and_external_name_services_hold_no_address() {
    let cluster = TestCluster::start().await.unwrap();
    let api: Api<Service> = Api::default_namespaced(cluster.admin());
    let headless = create(
        &api,
        &service(
            "db",
            json!({"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}),
        ),
    )
    .await
    .unwrap()
    .spec
    .unwrap();
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless.cluster_ips, Some(vec!["None".to_owned()]));
    let external = create(
        &api,
        &service(
            "ext",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ),
    )
    .await
    .unwrap()
    .spec
    .unwrap();
    assert_eq!(external.cluster_ip, None);
    assert_eq!(external.cluster_ips, None);
}

#[tokio::test]
async fn node_ports_are_allocated_refused_twice_and_released() {
    let cluster = TestCluster::start().await.unwrap();
    let api: Api<Service> = Api::default_namespaced(cluster.admin());
    let node_port = |svc: &Service| {
        svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
            .node_port
            .unwrap_or(0)
    };
    let any = create(
        &api,
        &service("any", json!({"type": "NodePort", "ports": [{"port": 80}]})),
    )
    .await
    .unwrap();
    assert!(
        (30000..=32767).contains(&node_port(&any)),
        "{}",
        node_port(&any)
    );
    let fixed = service(
        "fixed",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    assert_eq!(node_port(&create(&api, &fixed).await.unwrap()), 30080);
    let twice = service(
        "twice",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    let refused = create(&api, &twice).await.unwrap_err();
    assert_eq!(refused.code, 422);
    assert_eq!(
        refused.message,
        "Service \"twice\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    let low = service(
        "low",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}),
    );
    assert_eq!(
        create(&api, &low).await.unwrap_err().message,
        "Service \"low\" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    // NodePort → ClusterIP gives the port back; ClusterIP → NodePort takes one.
    let to_cluster_ip = json!({"spec": {"type": "ClusterIP"}});
    let changed = api
        .patch(
            "fixed",
            &PatchParams::default(),
            &Patch::Merge(&to_cluster_ip),
        )
        .await
        .unwrap();
    assert_eq!(node_port(&changed), 0);
    assert_eq!(node_port(&create(&api, &twice).await.unwrap()), 30080);
    let to_node_port = json!({"spec": {"type": "NodePort"}});
    let changed = api
        .patch(
            "fixed",
            &PatchParams::default(),
            &Patch::Merge(&to_node_port),
        )
        .await
        .unwrap();
    assert!((30000..=32767).contains(&node_port(&changed)));
    assert_ne!(node_port(&changed), 30080);
    // Deleting a NodePort Service frees its port.
    api.delete("twice", &DeleteParams::default()).await.unwrap();
    let later = service(
        "later",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    assert_eq!(node_port(&create(&api, &later).await.unwrap()), 30080);
}

#[tokio::test]
async fn the_built_in_services_exist_with_the_api_servers_endpoints() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.admin();
    let kubernetes = Api::<Service>::default_namespaced(client.clone())
        .get("kubernetes")
        .await
        .unwrap();
    let spec = kubernetes.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.43.0.1"));
    let port = &spec.ports.unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("https"), 443));
    let endpoints = Api::<Endpoints>::default_namespaced(client.clone())
        .get("kubernetes")
        .await
        .unwrap();
    let subset = &endpoints.subsets.unwrap()[0];
    assert_eq!(subset.addresses.as_ref().unwrap()[0].ip, "127.0.0.1");
    let target = subset.ports.as_ref().unwrap()[0].port;
    assert!(target > 0);
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(target))
    );
    let slice = Api::<EndpointSlice>::default_namespaced(client.clone())
        .get("kubernetes")
        .await
        .unwrap();
    assert_eq!(slice.endpoints[0].addresses, vec!["127.0.0.1".to_owned()]);
    let dns = Api::<Service>::namespaced(client, "kube-system")
        .get("kube-dns")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(dns.cluster_ip.as_deref(), Some("10.43.0.10"));
    let ports: Vec<(String, i32, String)> = dns
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port, p.protocol.unwrap()))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("dns".to_owned(), 53, "UDP".to_owned()),
            ("dns-tcp".to_owned(), 53, "TCP".to_owned()),
            ("metrics".to_owned(), 9153, "TCP".to_owned()),
        ]
    );
    // The built-ins' addresses are taken.
    let mut clash = web("clash");
    clash.spec.as_mut().unwrap().cluster_ip = Some("10.43.0.10".into());
    let api: Api<Service> = Api::default_namespaced(cluster.admin());
    assert_eq!(create(&api, &clash).await.unwrap_err().code, 422);
}

fn kubectl_binary() -> Option<PathBuf> {
    let path = std::env::var("BULWARK_KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".into());
    Path::new(&path).exists().then(|| PathBuf::from(path))
}

async fn kubectl(kubectl: &Path, kubeconfig: &Path, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("kubectl finishes")
    .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubectl {args:?}: {text}");
    text
}

#[tokio::test]
async fn kubectl_expose_and_get_show_the_cluster_ip() {
    let Some(binary) = kubectl_binary() else {
        eprintln!("skipped: no kubectl");
        return;
    };
    let cluster = TestCluster::start().await.unwrap();
    let config = cluster.kubeconfig();
    kubectl(
        &binary,
        &config,
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox",
            "--port=8080",
        ],
    )
    .await;
    let out = kubectl(
        &binary,
        &config,
        &[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--target-port=8080",
        ],
    )
    .await;
    assert!(out.contains("service/web exposed"), "{out}");
    let ip = kubectl(
        &binary,
        &config,
        &["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"],
    )
    .await;
    assert!(ip.starts_with("10.43."), "{ip}");
    let table = kubectl(&binary, &config, &["get", "svc"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("CLUSTER-IP"), "{table}");
    assert!(
        lines.iter().any(|l| l.starts_with("kubernetes")
            && l.contains("10.43.0.1")
            && l.contains("443/TCP")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("web") && l.contains(&ip) && l.contains("80/TCP")),
        "{table}"
    );
    let out = kubectl(
        &binary,
        &config,
        &[
            "expose",
            "deployment",
            "web",
            "--name=web-np",
            "--type=NodePort",
            "--port=80",
        ],
    )
    .await;
    assert!(out.contains("service/web-np exposed"), "{out}");
    let np = kubectl(
        &binary,
        &config,
        &[
            "get",
            "svc",
            "web-np",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
    )
    .await;
    let np: u16 = np.trim().parse().expect("a node port");
    assert!((30000..=32767).contains(&np));
    // Applied twice (client-side, then server-side) with a changed port:
    // the address stays.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("svc.yaml");
    let write = |port: u16| {
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: applied\nspec:\n  selector:\n    app: web\n  ports:\n  - port: {port}\n"
            ),
        )
        .unwrap();
    };
    let file = manifest.to_str().unwrap();
    write(80);
    kubectl(&binary, &config, &["apply", "-f", file]).await;
    let first = kubectl(
        &binary,
        &config,
        &["get", "svc", "applied", "-o", "jsonpath={.spec.clusterIP}"],
    )
    .await;
    write(81);
    kubectl(&binary, &config, &["apply", "-f", file]).await;
    write(82);
    kubectl(
        &binary,
        &config,
        &["apply", "--server-side", "--force-conflicts", "-f", file],
    )
    .await;
    let after = kubectl(
        &binary,
        &config,
        &[
            "get",
            "svc",
            "applied",
            "-o",
            "jsonpath={.spec.clusterIP} {.spec.ports[*].port}",
        ],
    )
    .await;
    // Server-side apply adds port 82 (port 81 stays while the client-side
    // manager owns it, as upstream merges keyed lists).
    let mut words = after.split(' ');
    assert_eq!(words.next(), Some(first.as_str()), "{after}");
    assert!(words.any(|p| p == "82"), "{after}");
}

#[tokio::test]
async fn a_deleted_kubernetes_service_comes_back() {
    let cluster = TestCluster::start().await.unwrap();
    let api: Api<Service> = Api::default_namespaced(cluster.admin());
    api.delete("kubernetes", &DeleteParams::default())
        .await
        .unwrap();
    let back = bulwark_testkit::wait_for("the kubernetes Service", Duration::from_secs(30), || {
        let api = api.clone();
        async move {
            match api.get_opt("kubernetes").await {
                Ok(Some(svc)) => Ok(svc),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ip_of(&back), "10.43.0.1");
}

/// Two API servers sharing one etcd (the HA layout): concurrent creates on
/// both never get the same cluster IP or NodePort.
#[tokio::test]
async fn two_servers_on_one_etcd_never_hand_out_the_same_ip() {
    let etcd = match bulwark_testkit::EtcdServer::start() {
        Ok(etcd) => etcd,
        Err(err) => {
            eprintln!("skipped: {err}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for (name, advertised) in [("a", [127, 0, 0, 2]), ("b", [127, 0, 0, 3])] {
        let running = bulwark_apiserver::start(bulwark_apiserver::Config {
            data_dir: dir.path().join(name),
            port: 0,
            advertise_address: Some(std::net::IpAddr::from(advertised)),
            store: bulwark_apiserver::StoreChoice::Etcd(bulwark_store::EtcdConfig::new(vec![
                etcd.endpoint(),
            ])),
            audit_log: bulwark_apiserver::AuditLog::Off,
            ..bulwark_apiserver::Config::default()
        })
        .await
        .unwrap();
        let kubeconfig = kube::config::Kubeconfig::read_from(&running.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        clients.push(kube::Client::try_from(config).unwrap());
        servers.push(running);
    }
    let mut tasks = Vec::new();
    for i in 0..60 {
        let api: Api<Service> = Api::default_namespaced(clients[i % 2].clone());
        tasks.push(tokio::spawn(async move {
            let svc = service(
                &format!("svc-{i}"),
                json!({"type": "NodePort", "ports": [{"port": 80}]}),
            );
            create(&api, &svc).await.unwrap()
        }));
    }
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for task in tasks {
        let created = task.await.unwrap();
        let spec = created.spec.unwrap();
        assert!(ips.insert(spec.cluster_ip.clone().unwrap()), "{spec:?}");
        let port = spec.ports.unwrap()[0].node_port.unwrap();
        assert!(ports.insert(port), "node port {port} handed out twice");
    }
    // Both servers are in the kubernetes endpoints (each renews a lease;
    // neither overwrites the other).
    let endpoints = Api::<Endpoints>::default_namespaced(clients[0].clone())
        .get("kubernetes")
        .await
        .unwrap();
    let addresses: Vec<String> = endpoints.subsets.unwrap()[0]
        .addresses
        .iter()
        .flatten()
        .map(|a| a.ip.clone())
        .collect();
    assert_eq!(addresses, vec!["127.0.0.2", "127.0.0.3"]);
    for server in servers {
        server.stop();
    }
}

#[tokio::test]
async fn local_load_balancers_get_a_health_check_port() {
    let cluster = TestCluster::start().await.unwrap();
    let api: Api<Service> = Api::default_namespaced(cluster.admin());
    let lb = |name: &str, extra: Value| {
        let mut spec = json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        service(name, spec)
    };
    let created = create(&api, &lb("lb", json!({})))
        .await
        .unwrap()
        .spec
        .unwrap();
    let health = created.health_check_node_port.unwrap();
    let node_port = created.ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&health));
    assert_ne!(health, node_port);
    let taken = create(&api, &lb("lb2", json!({"healthCheckNodePort": health})))
        .await
        .unwrap_err();
    assert_eq!(
        taken.message,
        format!(
            "Internal error occurred: failed to allocate requested HealthCheck NodePort {health}: provided port is already allocated"
        )
    );
    // Cluster policy: the health check port is given back.
    let patch = json!({"spec": {"externalTrafficPolicy": "Cluster"}});
    let changed = api
        .patch("lb", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(changed.spec.unwrap().health_check_node_port, None);
    let reused = create(&api, &lb("lb2", json!({"healthCheckNodePort": health})))
        .await
        .unwrap();
    assert_eq!(reused.spec.unwrap().health_check_node_port, Some(health));
}
