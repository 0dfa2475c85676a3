//! The placement core as a table: nodes, the pods already on them, and a
//! pod → the node it lands on, or upstream's message when none fits, or
//! the preemption chosen.

use bulwark_scheduler::{ScheduleError, Scheduler, Snapshot};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

/// A node with 4 CPUs, 8Gi, 110 pods and its hostname label.
fn node(name: &str) -> N {
    N(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
    }))
}

#[derive(Clone)]
struct N(Value);

impl N {
    fn alloc(mut self, name: &str, q: &str) -> N {
        self.0["status"]["allocatable"][name] = json!(q);
        self
    }
    fn label(mut self, k: &str, v: &str) -> N {
        self.0["metadata"]["labels"][k] = json!(v);
        self
    }
    fn taint(mut self, key: &str, value: &str, effect: &str) -> N {
        let taints = self.0["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut t = taints;
        t.push(json!({"key": key, "value": value, "effect": effect}));
        self.0["spec"]["taints"] = json!(t);
        self
    }
    fn image(mut self, name: &str, size: i64) -> N {
        let mut images = self.0["status"]["images"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        images.push(json!({"names": [name], "sizeBytes": size}));
        self.0["status"]["images"] = json!(images);
        self
    }
    fn unschedulable(mut self) -> N {
        self.0["spec"]["unschedulable"] = json!(true);
        self
    }
    fn build(self) -> Node {
        serde_json::from_value(self.0).expect("a valid node")
    }
}

/// A pod with one container requesting nothing.
fn pod(name: &str) -> P {
    P(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {}},
        "spec": {"containers": [{"name": "c"}]},
        "status": {}
    }))
}

#[derive(Clone)]
struct P(Value);

impl P {
    /// Requests of the first container: `"cpu=1,memory=1Gi"`.
    fn req(mut self, list: &str) -> P {
        self.0["spec"]["containers"][0]["resources"] = json!({"requests": parse(list)});
        self
    }
    fn container(mut self, list: &str) -> P {
        let n = self.0["spec"]["containers"].as_array().map_or(0, Vec::len);
        self.push(
            "containers",
            json!({"name": format!("c{n}"), "resources": {"requests": parse(list)}}),
        );
        self
    }
    fn init(mut self, list: &str) -> P {
        self.push(
            "initContainers",
            json!({"name": "i", "resources": {"requests": parse(list)}}),
        );
        self
    }
    fn sidecar(mut self, list: &str) -> P {
        self.push(
            "initContainers",
            json!({"name": "s", "restartPolicy": "Always", "resources": {"requests": parse(list)}}),
        );
        self
    }
    fn overhead(mut self, list: &str) -> P {
        self.0["spec"]["overhead"] = parse(list);
        self
    }
    fn on(mut self, node: &str) -> P {
        self.0["spec"]["nodeName"] = json!(node);
        self
    }
    fn node_name(self, node: &str) -> P {
        self.on(node)
    }
    fn prio(mut self, p: i32) -> P {
        self.0["spec"]["priority"] = json!(p);
        self
    }
    fn ns(mut self, ns: &str) -> P {
        self.0["metadata"]["namespace"] = json!(ns);
        self
    }
    fn label(mut self, k: &str, v: &str) -> P {
        self.0["metadata"]["labels"][k] = json!(v);
        self
    }
    fn spec(mut self, field: &str, v: Value) -> P {
        self.0["spec"][field] = v;
        self
    }
    fn tolerate(mut self, t: Value) -> P {
        self.push("tolerations", t);
        self
    }
    fn image(mut self, image: &str) -> P {
        self.0["spec"]["containers"][0]["image"] = json!(image);
        self
    }
    fn host_port(mut self, port: i32, protocol: &str, ip: &str) -> P {
        let mut p = json!({"containerPort": port, "hostPort": port, "protocol": protocol});
        if !ip.is_empty() {
            p["hostIP"] = json!(ip);
        }
        self.0["spec"]["containers"][0]["ports"] = json!([p]);
        self
    }
    fn terminating(mut self) -> P {
        self.0["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        self
    }
    fn push(&mut self, field: &str, v: Value) {
        let mut list = self.0["spec"][field]
            .as_array()
            .cloned()
            .unwrap_or_default();
        list.push(v);
        self.0["spec"][field] = json!(list);
    }
    fn build(self) -> Pod {
        serde_json::from_value(self.0).expect("a valid pod")
    }
}

fn parse(list: &str) -> Value {
    let mut m = serde_json::Map::new();
    for kv in list.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').expect("name=quantity");
        m.insert(k.into(), json!(v));
    }
    Value::Object(m)
}

/// Schedules `pod`; on a fit error tries preemption, as the scheduler does.
fn place(nodes: Vec<N>, existing: Vec<P>, pod: P) -> String {
    let mut snapshot = Snapshot::new();
    for n in nodes {
        snapshot.set_node(n.build());
    }
    for p in existing {
        snapshot.add_pod(p.build());
    }
    let pod = pod.build();
    let mut scheduler = Scheduler::new();
    match scheduler.schedule(&snapshot, &pod) {
        Ok(node) => node,
        Err(ScheduleError::Unschedulable(mut e)) => {
            match scheduler.preempt(&snapshot, &pod, &mut e) {
                Some(p) => {
                    let victims: Vec<String> = p
                        .victims
                        .iter()
                        .map(|(ns, n)| format!("{ns}/{n}"))
                        .collect();
                    format!("preempt on {} evicting {}", p.node, victims.join(" "))
                }
                None => e.to_string(),
            }
        }
        Err(e) => e.to_string(),
    }
}

fn check(nodes: Vec<N>, existing: Vec<P>, pod: P, expect: &str) {
    assert_eq!(place(nodes, existing, pod), expect);
}

/// Nodes that score alike are chosen among at random (upstream's
/// `selectHost`): over many attempts, each of `expect` and nothing else.
fn check_tie(nodes: Vec<N>, existing: Vec<P>, pod: P, expect: &[&str]) {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..64 {
        seen.insert(place(nodes.clone(), existing.clone(), pod.clone()));
    }
    assert_eq!(seen, expect.iter().map(|n| n.to_string()).collect());
}

const NOT_HELPFUL_3: &str =
    " preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..";

fn three() -> Vec<N> {
    vec![node("n1"), node("n2"), node("n3")]
}

// ---- resources ----

#[test]
fn fits_and_least_allocated_prefers_the_emptier_node() {
    check(
        three(),
        vec![
            pod("a").req("cpu=2").on("n1"),
            pod("b").req("cpu=1").on("n2"),
        ],
        pod("p").req("cpu=1"),
        "n3",
    );
    check(vec![node("n1")], vec![], pod("p"), "n1");
}

#[test]
fn pods_without_requests_count_as_100m_and_200mi_when_scoring() {
    // n1 holds 10 best-effort pods (1 CPU, 2000Mi as scored); n2 one
    // pod requesting 500m.
    let existing: Vec<P> = (0..10)
        .map(|i| pod(&format!("b{i}")).on("n1"))
        .collect::<Vec<_>>();
    let mut all = existing;
    all.push(pod("x").req("cpu=500m").on("n2"));
    check(
        vec![node("n1"), node("n2")],
        all,
        pod("p").req("cpu=100m,memory=100Mi"),
        "n2",
    );
}

#[test]
fn insufficient_cpu_everywhere_is_unresolvable_when_above_allocatable() {
    check(
        three(),
        vec![],
        pod("p").req("cpu=5"),
        &format!("0/3 nodes are available: 3 Insufficient cpu.{NOT_HELPFUL_3}"),
    );
}

#[test]
fn insufficient_cpu_with_equal_priority_pods_has_no_victims() {
    check(
        three(),
        vec![
            pod("a").req("cpu=3").on("n1"),
            pod("b").req("cpu=3").on("n2"),
            pod("c").req("cpu=3").on("n3"),
        ],
        pod("p").req("cpu=2"),
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..",
    );
}

#[test]
fn upstream_example_taint_and_cpu() {
    check(
        vec![
            node("cp").taint("node-role.kubernetes.io/control-plane", "", "NoSchedule"),
            node("n2"),
            node("n3"),
        ],
        vec![
            pod("a").req("cpu=3").on("n2"),
            pod("b").req("cpu=3").on("n3"),
        ],
        pod("p").req("cpu=2"),
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. \
         preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod..",
    );
}

#[test]
fn every_shortage_of_a_node_is_a_reason() {
    check(
        vec![node("n1")],
        vec![pod("a").req("cpu=3,memory=7Gi").on("n1")],
        pod("p").req("cpu=2,memory=2Gi"),
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. \
         preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..",
    );
}

#[test]
fn too_many_pods() {
    check(
        vec![node("n1").alloc("pods", "1")],
        vec![pod("a").on("n1")],
        pod("p"),
        "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..",
    );
}

#[test]
fn ephemeral_storage_and_extended_resources() {
    check(
        vec![node("n1").alloc("ephemeral-storage", "10Gi")],
        vec![],
        pod("p").req("ephemeral-storage=20Gi"),
        "0/1 nodes are available: 1 Insufficient ephemeral-storage. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling..",
    );
    check(
        vec![node("n1"), node("gpu").alloc("example.com/gpu", "2")],
        vec![],
        pod("p").req("example.com/gpu=1"),
        "gpu",
    );
    check(
        vec![node("n1")],
        vec![],
        pod("p").req("example.com/gpu=1"),
        "0/1 nodes are available: 1 Insufficient example.com/gpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling..",
    );
    check(
        vec![node("n1").alloc("hugepages-2Mi", "1Gi")],
        vec![pod("a").req("hugepages-2Mi=1Gi").on("n1")],
        pod("p").req("hugepages-2Mi=2Mi"),
        "0/1 nodes are available: 1 Insufficient hugepages-2Mi. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..",
    );
}

#[test]
fn init_containers_count_as_their_maximum() {
    let one_cpu = || vec![node("n1").alloc("cpu", "1")];
    // max(500m + 400m, 1) = 1: fits exactly.
    check(
        one_cpu(),
        vec![],
        pod("p").req("cpu=500m").container("cpu=400m").init("cpu=1"),
        "n1",
    );
    // max(500m, 1100m) = 1100m.
    check(
        one_cpu(),
        vec![],
        pod("p").req("cpu=500m").init("cpu=1100m"),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling..",
    );
    // Several init containers run one at a time: the largest counts.
    check(
        one_cpu(),
        vec![],
        pod("p").req("cpu=100m").init("cpu=900m").init("cpu=1"),
        "n1",
    );
}

#[test]
fn sidecars_add_up_with_containers_and_later_init_containers() {
    let one_cpu = || vec![node("n1").alloc("cpu", "1")];
    // Sidecar 500m runs alongside the 600m container.
    check(
        one_cpu(),
        vec![],
        pod("p").req("cpu=600m").sidecar("cpu=500m"),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling..",
    );
    // An init container after the sidecar runs next to it: 500m + 600m.
    check(
        one_cpu(),
        vec![],
        pod("p")
            .req("cpu=100m")
            .sidecar("cpu=500m")
            .init("cpu=600m"),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling..",
    );
    // An init container before it does not.
    check(
        one_cpu(),
        vec![],
        pod("p")
            .req("cpu=100m")
            .init("cpu=600m")
            .sidecar("cpu=400m"),
        "n1",
    );
}

#[test]
fn overhead_is_added() {
    check(
        vec![node("n1").alloc("cpu", "1")],
        vec![],
        pod("p").req("cpu=900m").overhead("cpu=200m"),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling..",
    );
}

// ---- node selection ----

#[test]
fn node_selector_and_required_affinity() {
    let nodes = || {
        vec![
            node("n1").label("disk", "ssd"),
            node("n2").label("disk", "hdd").label("gen", "5"),
            node("n3"),
        ]
    };
    check(
        nodes(),
        vec![],
        pod("p").spec("nodeSelector", json!({"disk": "hdd"})),
        "n2",
    );
    check(
        nodes(),
        vec![],
        pod("p").spec("nodeSelector", json!({"disk": "nvme"})),
        &format!(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.{NOT_HELPFUL_3}"
        ),
    );
    let affinity = |exprs: Value| {
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": exprs}]}}})
    };
    check(
        nodes(),
        vec![],
        pod("p").spec(
            "affinity",
            affinity(json!([{"key": "gen", "operator": "Gt", "values": ["4"]}])),
        ),
        "n2",
    );
    check(
        nodes(),
        vec![],
        pod("p").spec(
            "affinity",
            affinity(json!([{"key": "disk", "operator": "DoesNotExist"}])),
        ),
        "n3",
    );
    check(
        nodes(),
        vec![],
        pod("p").spec(
            "affinity",
            affinity(json!([{"key": "disk", "operator": "NotIn", "values": ["ssd", "hdd"]}])),
        ),
        "n3",
    );
    // matchFields on metadata.name.
    check(
        nodes(),
        vec![],
        pod("p").spec(
            "affinity",
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]}]}}}),
        ),
        "n3",
    );
}

#[test]
fn preferred_node_affinity_wins_over_a_little_more_room() {
    check(
        vec![node("n1"), node("n2").label("zone", "b")],
        vec![pod("a").req("cpu=1").on("n2")],
        pod("p").spec(
            "affinity",
            json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}}]}}),
        ),
        "n2",
    );
}

#[test]
fn node_name_and_unschedulable() {
    check(three(), vec![], pod("p").node_name("n2"), "n2");
    check(
        vec![node("n1").unschedulable(), node("n2"), node("n3")],
        vec![],
        pod("p").node_name("n1"),
        &format!(
            "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match the requested node name.{NOT_HELPFUL_3}"
        ),
    );
    check(
        vec![node("n1").unschedulable()],
        vec![],
        pod("p").tolerate(json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"})),
        "n1",
    );
}

#[test]
fn taints_and_tolerations() {
    let tainted = || {
        vec![
            node("n1").taint("dedicated", "gpu", "NoSchedule"),
            node("n2").taint("x", "", "NoExecute"),
        ]
    };
    check(
        tainted(),
        vec![],
        pod("p"),
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) had untolerated taint {x: }. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling..",
    );
    check(
        tainted(),
        vec![],
        pod("p").tolerate(json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})),
        "n1",
    );
    check(
        tainted(),
        vec![],
        pod("p").tolerate(json!({"key": "x", "operator": "Exists"})),
        "n2",
    );
    check(
        tainted(),
        vec![],
        pod("p")
            .tolerate(json!({"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}))
            .tolerate(json!({"key": "x", "operator": "Exists", "effect": "NoSchedule"})),
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) had untolerated taint {x: }. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling..",
    );
    // Tolerate everything: either node.
    check_tie(
        tainted(),
        vec![],
        pod("p").tolerate(json!({"operator": "Exists"})),
        &["n1", "n2"],
    );
}

#[test]
fn prefer_no_schedule_taints_score_lower() {
    check(
        vec![node("n1").taint("spot", "", "PreferNoSchedule"), node("n2")],
        vec![],
        pod("p"),
        "n2",
    );
    check(
        vec![
            node("n1").taint("spot", "", "PreferNoSchedule"),
            node("n2")
                .taint("a", "", "PreferNoSchedule")
                .taint("b", "", "PreferNoSchedule"),
        ],
        vec![],
        pod("p"),
        "n1",
    );
}

#[test]
fn host_ports() {
    let busy = || vec![pod("a").host_port(80, "TCP", "").on("n1")];
    check(
        vec![node("n1")],
        busy(),
        pod("p").host_port(80, "TCP", ""),
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. \
         preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..",
    );
    check(
        vec![node("n1")],
        busy(),
        pod("p").host_port(80, "UDP", ""),
        "n1",
    );
    check(
        vec![node("n1"), node("n2")],
        busy(),
        pod("p").host_port(80, "TCP", "10.0.0.1"),
        "n2",
    );
    check(
        vec![node("n1")],
        vec![pod("a").host_port(80, "TCP", "10.0.0.1").on("n1")],
        pod("p").host_port(80, "TCP", "10.0.0.2"),
        "n1",
    );
}

#[test]
fn nodes_with_the_image_score_higher() {
    let nodes = || {
        vec![
            node("n1").image("docker.io/library/nginx:1.25", 600 << 20),
            node("n2").image("nginx:latest", 600 << 20),
            node("n3").image("nginx:latest", 600 << 20),
        ]
    };
    check_tie(nodes(), vec![], pod("p").image("nginx"), &["n2", "n3"]);
    // On one node of three: a third of its size counts.
    check(
        vec![
            node("n1"),
            node("n2"),
            node("n3").image("redis:7", 600 << 20),
        ],
        vec![],
        pod("p").image("redis:7"),
        "n3",
    );
    // Too small to matter: LeastAllocated decides.
    check(
        vec![node("n1").image("pause:latest", 1 << 20), node("n2")],
        vec![pod("x").req("cpu=1").on("n1")],
        pod("p").image("pause"),
        "n2",
    );
}

// ---- topology spread ----

fn zones() -> Vec<N> {
    vec![
        node("a1").label("zone", "a"),
        node("a2").label("zone", "a"),
        node("b1").label("zone", "b"),
        node("x"),
    ]
}

fn spread(when: &str, skew: i32) -> Value {
    json!([{"maxSkew": skew, "topologyKey": "zone", "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}}])
}

#[test]
fn spread_do_not_schedule_picks_the_emptier_zone() {
    check(
        zones(),
        vec![pod("w1").label("app", "web").on("a1")],
        pod("p")
            .label("app", "web")
            .spec("topologySpreadConstraints", spread("DoNotSchedule", 1)),
        "b1",
    );
}

#[test]
fn spread_violation_and_missing_label() {
    check(
        zones(),
        vec![
            pod("w1").label("app", "web").on("a1"),
            pod("w2").label("app", "web").on("b1").ns("other"),
        ],
        pod("p")
            .label("app", "web")
            .spec("topologySpreadConstraints", spread("DoNotSchedule", 1))
            .spec("nodeSelector", json!({"zone": "a"})),
        // b1 is not counted (node affinity honoured), so zone a is the only domain: skew 1 + 1 - 1 = 1.
        "a2",
    );
    // Excluded by node affinity, b1 is no domain: zone a alone, skew 1.
    let not_b = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}]}}});
    check(
        vec![
            node("a1").label("zone", "a"),
            node("b1").label("zone", "b"),
            node("x"),
        ],
        vec![pod("w1").label("app", "web").on("a1")],
        pod("p")
            .label("app", "web")
            .spec("topologySpreadConstraints", spread("DoNotSchedule", 1))
            .spec("affinity", not_b),
        "a1",
    );
    // Zone b is a domain with 0 pods even though b1 is full.
    check(
        vec![
            node("a1").label("zone", "a"),
            node("b1").label("zone", "b"),
            node("x"),
        ],
        vec![
            pod("w1").label("app", "web").on("a1"),
            pod("w2").label("app", "web").on("a1"),
            pod("big").req("cpu=4").on("b1"),
        ],
        pod("p")
            .label("app", "web")
            .req("cpu=1")
            .spec("topologySpreadConstraints", spread("DoNotSchedule", 1)),
        "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod topology spread constraints, \
         1 node(s) didn't match pod topology spread constraints (missing required label). \
         preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod..",
    );
}

#[test]
fn spread_ignores_terminating_pods_and_other_namespaces() {
    check(
        vec![node("a1").label("zone", "a"), node("b1").label("zone", "b")],
        vec![
            pod("w1").label("app", "web").on("b1").terminating(),
            pod("w2").label("app", "web").on("b1").ns("other"),
            pod("w3").label("app", "web").on("a1"),
        ],
        pod("p")
            .label("app", "web")
            .spec("topologySpreadConstraints", spread("DoNotSchedule", 1)),
        "b1",
    );
}

#[test]
fn spread_schedule_anyway_scores() {
    check_tie(
        zones(),
        vec![
            pod("w1").label("app", "web").on("b1"),
            pod("w2").label("app", "web").on("b1"),
        ],
        pod("p")
            .label("app", "web")
            .spec("topologySpreadConstraints", spread("ScheduleAnyway", 1)),
        &["a1", "a2"],
    );
}

#[test]
fn spread_min_domains() {
    // Two domains exist, three are wanted: the minimum counts as 0, so a
    // domain with one pod already has skew 2 > 1.
    let c = json!([{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "minDomains": 3,
        "labelSelector": {"matchLabels": {"app": "web"}}}]);
    check(
        vec![node("a1").label("zone", "a"), node("b1").label("zone", "b")],
        vec![
            pod("w1").label("app", "web").on("a1"),
            pod("w2").label("app", "web").on("b1"),
        ],
        pod("p")
            .label("app", "web")
            .spec("topologySpreadConstraints", c),
        "0/2 nodes are available: 2 node(s) didn't match pod topology spread constraints. \
         preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod..",
    );
}

// ---- inter-pod affinity ----

fn term(key: &str, app: &str) -> Value {
    json!({"topologyKey": key, "labelSelector": {"matchLabels": {"app": app}}})
}

#[test]
fn required_anti_affinity_of_the_pod() {
    let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("kubernetes.io/hostname", "web")]}});
    check(
        vec![node("n1"), node("n2")],
        vec![pod("w1").label("app", "web").on("n1")],
        pod("p").label("app", "web").spec("affinity", anti.clone()),
        "n2",
    );
    check(
        vec![node("n1"), node("n2")],
        vec![
            pod("w1").label("app", "web").on("n1"),
            pod("w2").label("app", "web").on("n2"),
        ],
        pod("p").label("app", "web").spec("affinity", anti),
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. \
         preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod..",
    );
}

#[test]
fn required_anti_affinity_of_existing_pods() {
    let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("zone", "web")]}});
    check(
        vec![
            node("a1").label("zone", "a"),
            node("a2").label("zone", "a"),
            node("b1").label("zone", "b"),
        ],
        vec![
            pod("db").label("app", "db").spec("affinity", anti).on("a1"),
            pod("x").req("cpu=3").on("b1"),
        ],
        pod("p").label("app", "web").req("cpu=2"),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy existing pods anti-affinity rules. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..",
    );
}

#[test]
fn required_affinity() {
    let aff = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("zone", "db")]}});
    let nodes = || {
        vec![
            node("a1").label("zone", "a"),
            node("b1").label("zone", "b"),
            node("b2").label("zone", "b"),
        ]
    };
    check(
        nodes(),
        vec![pod("db").label("app", "db").on("b2").req("cpu=4")],
        pod("p").spec("affinity", aff.clone()),
        "b1",
    );
    check(
        nodes(),
        vec![],
        pod("p").spec("affinity", aff.clone()),
        "0/3 nodes are available: 3 node(s) didn't match pod affinity rules. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..",
    );
    // The first pod of a group with affinity to itself may go anywhere.
    check_tie(
        nodes(),
        vec![],
        pod("p").label("app", "db").spec("affinity", aff),
        &["a1", "b1", "b2"],
    );
}

#[test]
fn affinity_namespaces() {
    let aff =
        |t: Value| json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}});
    let mut t = term("kubernetes.io/hostname", "db");
    let existing = || vec![pod("db").label("app", "db").ns("data").on("n2")];
    check(
        vec![node("n1"), node("n2")],
        existing(),
        pod("p").label("app", "db").spec("affinity", aff(t.clone())),
        "n1",
    );
    t["namespaces"] = json!(["data"]);
    check(
        vec![node("n1"), node("n2")],
        existing(),
        pod("p").spec("affinity", aff(t.clone())),
        "n2",
    );
    t["namespaces"] = json!([]);
    t["namespaceSelector"] = json!({});
    check(
        vec![node("n1"), node("n2")],
        existing(),
        pod("p").spec("affinity", aff(t)),
        "n2",
    );
}

#[test]
fn preferred_pod_affinity_and_anti_affinity_score() {
    let pref = |kind: &str| {
        json!({kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": term("kubernetes.io/hostname", "cache")}]}})
    };
    let existing = || {
        vec![
            pod("c").label("app", "cache").on("n2"),
            pod("x").req("cpu=1").on("n1"),
        ]
    };
    check(
        vec![node("n1"), node("n2"), node("n3")],
        existing(),
        pod("p").spec("affinity", pref("podAffinity")),
        "n2",
    );
    check(
        vec![node("n1"), node("n2")],
        existing(),
        pod("p").spec("affinity", pref("podAntiAffinity")),
        "n1",
    );
}

// ---- preemption ----

#[test]
fn preemption_evicts_the_fewest_lowest_priority_pods() {
    check(
        vec![node("n1"), node("n2")],
        vec![
            pod("l1").req("cpu=2").prio(1).on("n1"),
            pod("l2").req("cpu=2").prio(1).on("n1"),
            pod("m1").req("cpu=4").prio(5).on("n2"),
        ],
        pod("p").req("cpu=2").prio(10),
        // l1 and l2 are equally important: the first is reprieved.
        "preempt on n1 evicting default/l2",
    );
    // Equal highest priority: the lower sum wins, then fewer victims.
    check(
        vec![node("n1"), node("n2")],
        vec![
            pod("a").req("cpu=1").prio(1).on("n1"),
            pod("b").req("cpu=3").prio(1).on("n1"),
            pod("c").req("cpu=4").prio(1).on("n2"),
        ],
        pod("p").req("cpu=4").prio(10),
        "preempt on n2 evicting default/c",
    );
}

#[test]
fn preemption_reprieves_what_it_can_and_keeps_higher_priority_pods() {
    check(
        vec![node("n1")],
        vec![
            pod("hi").req("cpu=1").prio(100).on("n1"),
            pod("lo1").req("cpu=1").prio(1).on("n1"),
            pod("lo2").req("cpu=1").prio(2).on("n1"),
            pod("lo3").req("cpu=1").prio(3).on("n1"),
        ],
        pod("p").req("cpu=2").prio(10),
        "preempt on n1 evicting default/lo2 default/lo1",
    );
}

#[test]
fn preemption_is_not_tried_for_never_or_helpless_nodes() {
    check(
        vec![node("n1")],
        vec![pod("lo").req("cpu=4").prio(1).on("n1")],
        pod("p")
            .req("cpu=2")
            .prio(10)
            .spec("preemptionPolicy", json!("Never")),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never..",
    );
    check(
        vec![node("n1").taint("t", "", "NoSchedule"), node("n2")],
        vec![
            pod("lo").req("cpu=4").prio(1).on("n1"),
            pod("hi").req("cpu=4").prio(20).on("n2"),
        ],
        pod("p").req("cpu=2").prio(10),
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {t: }. \
         preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling..",
    );
}

#[test]
fn preemption_for_anti_affinity() {
    let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("kubernetes.io/hostname", "web")]}});
    check(
        vec![node("n1")],
        vec![
            pod("w").label("app", "web").prio(1).on("n1"),
            pod("other").prio(1).on("n1"),
        ],
        pod("p").prio(10).spec("affinity", anti),
        "preempt on n1 evicting default/w",
    );
}

#[test]
fn no_nodes() {
    check(
        vec![],
        vec![],
        pod("p"),
        "no nodes available to schedule pods",
    );
}

// ---- a sequence of pods ----

#[test]
fn pods_assumed_one_after_another_fill_the_cluster() {
    let mut snapshot = Snapshot::new();
    for n in three() {
        snapshot.set_node(n.build());
    }
    let mut scheduler = Scheduler::new();
    let mut placed = Vec::new();
    for i in 0..7 {
        let p = pod(&format!("p{i}")).req("cpu=1500m").build();
        match scheduler.schedule(&snapshot, &p) {
            Ok(n) => {
                snapshot.assume(&p, &n);
                placed.push(n);
            }
            Err(e) => placed.push(e.to_string()),
        }
    }
    // Each round of three spreads over the three nodes (which node first
    // is a coin toss among equals), then the cluster is full.
    for round in placed[..6].chunks(3) {
        let mut round = round.to_vec();
        round.sort();
        assert_eq!(round, ["n1", "n2", "n3"], "{placed:?}");
    }
    assert_eq!(placed[6], "0/3 nodes are available: 3 Insufficient cpu.");
    snapshot.remove_pod("default", "p0");
    let p = pod("again").req("cpu=1500m").build();
    assert_eq!(
        scheduler.schedule(&snapshot, &p).as_deref(),
        Ok(placed[0].as_str()),
        "the room p0 left"
    );
}

#[test]
fn a_nominated_pod_keeps_its_room_from_lower_priority_pods() {
    let mut snapshot = Snapshot::new();
    snapshot.set_node(node("n1").build());
    snapshot.set_node(node("n2").build());
    snapshot.add_pod(pod("x").req("cpu=3").on("n2").build());
    let high = pod("high").req("cpu=3").prio(10).build();
    snapshot.nominate(&high, Some("n1"));
    let mut scheduler = Scheduler::new();
    let low = pod("low").req("cpu=2").prio(1).build();
    assert_eq!(
        scheduler
            .schedule(&snapshot, &low)
            .map_err(|e| e.to_string()),
        Err("0/2 nodes are available: 2 Insufficient cpu.".to_owned())
    );
    // Higher priority than the nominated pod: the room is its to take.
    let higher = pod("higher").req("cpu=2").prio(20).build();
    assert_eq!(scheduler.schedule(&snapshot, &higher).as_deref(), Ok("n1"));
    // The nominated pod itself fits there.
    assert_eq!(scheduler.schedule(&snapshot, &high).as_deref(), Ok("n1"));
    snapshot.nominate(&high, None);
    assert_eq!(scheduler.schedule(&snapshot, &low).as_deref(), Ok("n1"));
}

#[test]
fn default_spreading_follows_the_pods_controller_and_services() {
    let owned = |name: &str| {
        let mut p = pod(name).label("app", "web");
        p.0["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "web", "uid": "u", "controller": true}]);
        p
    };
    let snapshot = |rs: bool, service: bool| {
        let mut s = Snapshot::new();
        s.set_node(node("n1").build());
        s.set_node(node("n2").build());
        s.add_pod(owned("w1").on("n1").build());
        s.add_pod(owned("w2").on("n1").build());
        s.add_pod(pod("big").req("cpu=2").on("n2").build());
        if rs {
            let rs: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {}}
            }))
            .unwrap();
            s.set_controller(&rs);
        }
        if service {
            let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"app": "web"}}
            }))
            .unwrap();
            s.set_service(&svc);
        }
        s
    };
    let p = owned("p").req("cpu=100m").build();
    // Alone, the resource scores prefer the emptier n1 …
    assert_eq!(
        Scheduler::new()
            .schedule(&snapshot(false, false), &p)
            .as_deref(),
        Ok("n1")
    );
    // … but spreading the ReplicaSet's (or the Service's) pods wins.
    assert_eq!(
        Scheduler::new()
            .schedule(&snapshot(true, false), &p)
            .as_deref(),
        Ok("n2")
    );
    assert_eq!(
        Scheduler::new()
            .schedule(&snapshot(false, true), &p)
            .as_deref(),
        Ok("n2")
    );
    // The pod's own constraints replace the defaults.
    let own = owned("p")
        .req("cpu=100m")
        .spec("topologySpreadConstraints", spread("ScheduleAnyway", 1))
        .build();
    assert_eq!(
        Scheduler::new()
            .schedule(&snapshot(true, true), &own)
            .as_deref(),
        Ok("n1")
    );
}
