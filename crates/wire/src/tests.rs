//! Hand-built bodies: the cases kubectl's captures do not reach (special
//! types, unknown fields, malformed input), and checks of the schema table.

use expect_test::{Expect, expect};

use crate::schema::{self, Shape, Ty};
use crate::{WireError, decode, decode_with_unknown};

/// A protobuf writer just big enough to build test bodies.
#[derive(Default, Clone)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(mut self, mut v: u64) -> Self {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }
    fn key(self, number: u64, wire_type: u64) -> Self {
        self.varint(number << 3 | wire_type)
    }
    fn int(self, number: u64, v: i64) -> Self {
        self.key(number, 0).varint(v as u64)
    }
    fn bytes(self, number: u64, b: &[u8]) -> Self {
        let mut pb = self.key(number, 2).varint(b.len() as u64);
        pb.0.extend_from_slice(b);
        pb
    }
    fn str(self, number: u64, s: &str) -> Self {
        self.bytes(number, s.as_bytes())
    }
    fn msg(self, number: u64, m: Pb) -> Self {
        self.bytes(number, &m.0)
    }
    /// A map entry whose value is a message.
    fn entry(self, number: u64, key: &str, value: Pb) -> Self {
        self.msg(number, Pb::default().str(1, key).msg(2, value))
    }
    /// A map entry whose value is a string or bytes.
    fn entry_str(self, number: u64, key: &str, value: &[u8]) -> Self {
        self.msg(number, Pb::default().str(1, key).bytes(2, value))
    }
}

/// A whole body: magic, envelope, object.
fn body(api_version: &str, kind: &str, raw: Pb) -> Vec<u8> {
    let type_meta = Pb::default().str(1, api_version).str(2, kind);
    let envelope = Pb::default()
        .msg(1, type_meta)
        .msg(2, raw)
        .str(3, "")
        .str(4, "");
    let mut out = b"k8s\0".to_vec();
    out.extend(envelope.0);
    out
}

fn check(body: &[u8], expect: Expect) {
    let actual = match decode_with_unknown(body) {
        Ok((object, unknown)) => {
            let mut text = serde_json::to_string(&object).expect("a Value serializes");
            if !unknown.is_empty() {
                text.push_str(&format!("\nunknown: {unknown:?}"));
            }
            text
        }
        Err(err) => format!("error: {err}"),
    };
    expect.assert_eq(&actual);
}

fn meta(name: &str) -> Pb {
    Pb::default().str(1, name)
}

#[test]
fn times_quantities_and_int_or_strings() {
    let lease_spec = Pb::default()
        .str(1, "holder")
        .int(2, 15)
        .msg(3, Pb::default().int(1, 1_704_067_200).int(2, 123_456_789))
        .msg(4, Pb::default().int(1, 1_704_067_200).int(2, 5));
    check(
        &body(
            "coordination.k8s.io/v1",
            "Lease",
            Pb::default().msg(1, meta("l")).msg(2, lease_spec),
        ),
        expect![[
            r##"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l"},"spec":{"acquireTime":"2024-01-01T00:00:00.123456Z","holderIdentity":"holder","leaseDurationSeconds":15,"renewTime":"2024-01-01T00:00:00.000000Z"}}"##
        ]],
    );
    // metav1.Time drops nanos; an empty Time is Go's zero time: absent.
    let meta = meta("t")
        .msg(8, Pb::default().int(1, 0).int(2, 999))
        .msg(9, Pb::default());
    let limits = Pb::default()
        .entry(1, "cpu", Pb::default().str(1, "500m"))
        .entry(1, "memory", Pb::default());
    let container = Pb::default().str(1, "c").msg(8, limits);
    let rolling = Pb::default()
        .msg(1, Pb::default().int(1, 1).str(3, "25%"))
        .msg(2, Pb::default().int(2, 3));
    let strategy = Pb::default().str(1, "RollingUpdate").msg(2, rolling);
    let template = Pb::default().msg(2, Pb::default().msg(2, container));
    let spec = Pb::default().int(1, 1).msg(3, template).msg(4, strategy);
    check(
        &body(
            "apps/v1",
            "Deployment",
            Pb::default().msg(1, meta).msg(2, spec),
        ),
        expect![[
            r##"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"creationTimestamp":"1970-01-01T00:00:00Z","name":"t"},"spec":{"replicas":1,"strategy":{"rollingUpdate":{"maxSurge":3,"maxUnavailable":"25%"},"type":"RollingUpdate"},"template":{"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":"500m","memory":"0"}}}]}}}}"##
        ]],
    );
}

#[test]
fn negative_numbers_bytes_and_inline_structs() {
    // int32 -1 travels as ten bytes; Probe.handler and Volume.volumeSource
    // are embedded Go structs whose fields belong to the parent object.
    let probe = Pb::default()
        .msg(1, Pb::default().msg(1, Pb::default().str(1, "true")))
        .int(2, -1);
    let container = Pb::default().str(1, "c").msg(10, probe);
    let volume = Pb::default()
        .str(1, "v")
        .msg(2, Pb::default().msg(2, Pb::default().str(1, "Memory")));
    let spec = Pb::default().msg(1, volume).msg(2, container);
    check(
        &body("v1", "Pod", Pb::default().msg(1, meta("p")).msg(2, spec)),
        expect![[
            r##"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"livenessProbe":{"exec":{"command":["true"]},"initialDelaySeconds":-1},"name":"c"}],"volumes":[{"emptyDir":{"medium":"Memory"},"name":"v"}]}}"##
        ]],
    );
    check(
        &body(
            "v1",
            "Secret",
            Pb::default()
                .msg(1, meta("s"))
                .entry_str(2, "k", &[0, 255])
                .str(3, ""),
        ),
        expect![[
            r##"{"apiVersion":"v1","data":{"k":"AP8="},"kind":"Secret","metadata":{"name":"s"}}"##
        ]],
    );
}

#[test]
fn zero_values_follow_the_json_tags() {
    // ServicePort.nodePort is a non-pointer int32 with omitempty: 0 is
    // absent in JSON. Secret.immutable is a *bool: false is kept.
    // ContainerPort.containerPort has no omitempty: 0 is kept.
    let port = Pb::default()
        .str(1, "")
        .str(2, "TCP")
        .int(3, 80)
        .msg(4, Pb::default())
        .int(5, 0);
    let svc = Pb::default()
        .msg(1, meta("s"))
        .msg(2, Pb::default().msg(1, port).str(4, "").str(7, ""));
    check(
        &body("v1", "Service", svc),
        expect![[
            r##"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":[{"port":80,"protocol":"TCP","targetPort":0}]}}"##
        ]],
    );
    check(
        &body("v1", "Secret", Pb::default().msg(1, meta("s")).int(5, 0)),
        expect![[
            r##"{"apiVersion":"v1","immutable":false,"kind":"Secret","metadata":{"name":"s"}}"##
        ]],
    );
}

#[test]
fn string_lists_and_raw_extensions() {
    let spec = Pb::default().str(3, "alice").str(4, "admin").entry(
        5,
        "scopes",
        Pb::default().str(1, "x").str(1, "y"),
    );
    check(
        &body(
            "authorization.k8s.io/v1",
            "SubjectAccessReview",
            Pb::default().msg(2, spec),
        ),
        expect![[
            r##"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"extra":{"scopes":["x","y"]},"groups":["admin"],"user":"alice"}}"##
        ]],
    );
    // ControllerRevision.data is a RawExtension: JSON, or a protobuf object.
    let inner = body("v1", "ConfigMap", Pb::default().msg(1, meta("inner")));
    let revision = Pb::default()
        .msg(1, meta("r"))
        .msg(2, Pb::default().bytes(1, &inner))
        .int(3, 2);
    check(
        &body("apps/v1", "ControllerRevision", revision),
        expect![[
            r##"{"apiVersion":"apps/v1","data":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"inner"}},"kind":"ControllerRevision","metadata":{"name":"r"},"revision":2}"##
        ]],
    );
    let revision = Pb::default().msg(2, Pb::default().bytes(1, br#"{"spec":{"x":1}}"#));
    check(
        &body("apps/v1", "ControllerRevision", revision),
        expect![[
            r##"{"apiVersion":"apps/v1","data":{"spec":{"x":1}},"kind":"ControllerRevision"}"##
        ]],
    );
    let revision = Pb::default().msg(2, Pb::default().bytes(1, b"\x01not json"));
    check(
        &body("apps/v1", "ControllerRevision", revision),
        expect![
            "error: invalid value for field data: embedded object is neither JSON nor protobuf: expected value at line 1 column 1"
        ],
    );
}

#[test]
fn unknown_fields_are_skipped_and_reported() {
    let container = Pb::default().str(1, "c").int(99, 7);
    let mut fixed = Pb::default().key(97, 1).0;
    fixed.extend([0; 8]);
    let spec = Pb::default().msg(2, container).bytes(300, b"xyz");
    let mut raw = Pb::default()
        .msg(1, meta("p").entry_str(11, "a", b"b").int(40, 1))
        .msg(2, spec)
        .0;
    raw.extend(fixed);
    check(
        &body("v1", "Pod", Pb(raw)),
        expect![[r##"
            {"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"a":"b"},"name":"p"},"spec":{"containers":[{"name":"c"}]}}
            unknown: ["metadata.#40", "spec.containers[0].#99", "spec.#300", "#97"]"##]],
    );
    // Unknown fields inside a map entry and a Time name their place.
    let meta = meta("q")
        .msg(11, Pb::default().str(1, "k").str(2, "v").int(3, 1))
        .msg(8, Pb::default().int(1, 5).int(7, 1));
    check(
        &body("v1", "ConfigMap", Pb::default().msg(1, meta)),
        expect![[r##"
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"creationTimestamp":"1970-01-01T00:00:05Z","labels":{"k":"v"},"name":"q"}}
            unknown: ["metadata.labels.#3", "metadata.creationTimestamp.#7"]"##]],
    );
}

#[test]
fn errors_name_what_was_wrong() {
    check(
        b"k8s",
        expect![
            "error: not a Kubernetes protobuf body: it must start with the magic bytes \"k8s\\0\""
        ],
    );
    check(
        b"{\"kind\":\"Pod\"}",
        expect![
            "error: not a Kubernetes protobuf body: it must start with the magic bytes \"k8s\\0\""
        ],
    );
    check(
        b"k8s\0",
        expect!["error: the protobuf envelope names no apiVersion"],
    );
    check(
        &body("v1", "", Pb::default()),
        expect!["error: the protobuf envelope names no kind"],
    );
    check(
        &body("apps/v1", "Foo", Pb::default()),
        expect!["error: unknown kind apps/v1 Foo: send it as application/json"],
    );
    let mut gzip = body("v1", "Pod", Pb::default());
    gzip.extend(Pb::default().str(3, "gzip").0);
    check(
        &gzip,
        expect![[r##"error: unsupported content encoding "gzip": send the object unencoded"##]],
    );
    check(
        &body(
            "apps/v1",
            "Deployment",
            Pb::default().msg(2, Pb::default().str(1, "two")),
        ),
        expect![
            "error: wrong wire type for field spec.replicas: expected varint, found length-delimited at byte 32"
        ],
    );
    check(
        &body(
            "v1",
            "ConfigMap",
            Pb::default().msg(1, Pb::default().bytes(1, &[0xff])),
        ),
        expect!["error: field metadata.name is not valid UTF-8 (at byte 27)"],
    );
    check(
        &body(
            "apps/v1",
            "Deployment",
            Pb::default().msg(
                2,
                Pb::default().msg(
                    4,
                    Pb::default().msg(2, Pb::default().msg(1, Pb::default().int(1, 7))),
                ),
            ),
        ),
        expect![
            "error: invalid value for field spec.strategy.rollingUpdate.maxUnavailable: IntOrString type 7 is neither 0 (int) nor 1 (string)"
        ],
    );
    check(
        &body(
            "v1",
            "Namespace",
            Pb::default().msg(1, meta("n").msg(8, Pb::default().int(1, i64::MAX))),
        ),
        expect![
            "error: invalid value for field metadata.creationTimestamp: time 9223372036854775807s since 1970 falls in year 292277026596, outside 0000-9999"
        ],
    );
    let mut truncated = body("v1", "ConfigMap", Pb::default().msg(1, meta("name")));
    truncated.truncate(truncated.len() - 7);
    check(
        &truncated,
        expect!["error: truncated length-delimited field at byte 22"],
    );
    check(
        b"k8s\0\x0b",
        expect!["error: unsupported wire type 3 (groups) at byte 4"],
    );
    check(
        b"k8s\0\x0a\xff",
        expect!["error: truncated varint at byte 5"],
    );
}

#[test]
fn every_kind_has_a_sound_table() {
    for (api_version, kind) in schema::kinds() {
        let message = schema::lookup(&api_version, kind).expect("registered");
        assert_eq!(message.name, kind, "{api_version} {kind}");
        assert!(crate::is_supported(&api_version, kind));
        walk(message, &mut Vec::new());
    }
    assert!(crate::is_supported("meta.k8s.io/v1", "DeleteOptions"));
    assert!(crate::is_supported("policy/v1beta1", "Eviction"));
    assert!(!crate::is_supported("apps/v1beta1", "Deployment"));

    /// Checks one message and its children; `ancestors` proves the table
    /// has no cycles, so nesting is bounded by the schema itself.
    fn walk(message: &'static schema::Message, ancestors: &mut Vec<&'static str>) {
        assert!(
            !ancestors.contains(&message.name),
            "cycle: {ancestors:?} -> {}",
            message.name
        );
        let numbers: Vec<u32> = message.fields.iter().map(|f| f.number).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{}: field numbers out of order",
            message.name
        );
        ancestors.push(message.name);
        for field in message.fields {
            assert!(!field.name.is_empty());
            assert!(
                !(field.inline && field.shape != Shape::One),
                "{}.{}",
                message.name,
                field.name
            );
            if let Ty::Msg(child) = field.ty {
                walk(child, ancestors);
            }
        }
        ancestors.pop();
    }
}

/// A deterministic xorshift generator: the same "random" bodies every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn bad_input_never_panics() {
    let fixtures = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
        .expect("fixtures");
    let bodies: Vec<Vec<u8>> = fixtures
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "pb"))
        .map(|path| std::fs::read(path).expect("fixture"))
        .collect();
    assert!(!bodies.is_empty());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for body in &bodies {
        assert!(decode(body).is_ok());
        // Every truncation.
        for len in 0..body.len() {
            let _ = decode(&body[..len]);
        }
        // Flipped bytes, a few at a time.
        for _ in 0..2000 {
            let mut mutated = body.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = 4 + (rng.next() as usize) % (mutated.len() - 4);
                mutated[at] = rng.next() as u8;
            }
            let _ = decode(&mutated);
        }
    }
    // Pure noise behind the magic.
    for _ in 0..5000 {
        let len = (rng.next() % 200) as usize;
        let mut noise = b"k8s\0".to_vec();
        noise.extend((0..len).map(|_| rng.next() as u8));
        let _ = decode(&noise);
    }
}

#[test]
fn deeply_nested_raw_objects_are_refused() {
    // A ControllerRevision whose data embeds a ControllerRevision, … .
    let mut object = body("v1", "ConfigMap", Pb::default());
    for _ in 0..100 {
        object = body(
            "apps/v1",
            "ControllerRevision",
            Pb::default().msg(2, Pb::default().bytes(1, &object)),
        );
    }
    assert!(matches!(decode(&object), Err(WireError::TooDeep { .. })));
}

#[test]
fn evictions_carry_delete_options() {
    // kubectl 1.32 evicts in JSON, but client-go's typed clients (and so
    // controllers built on it) may send protobuf.
    let preconditions = Pb::default().str(1, "u-1").str(2, "42");
    let options = Pb::default()
        .int(1, 0)
        .msg(2, preconditions)
        .str(4, "Foreground")
        .str(5, "All");
    let eviction = Pb::default()
        .msg(1, meta("web-1").str(3, "default"))
        .msg(2, options);
    check(
        &body("policy/v1", "Eviction", eviction.clone()),
        expect![[
            r##"{"apiVersion":"policy/v1","deleteOptions":{"dryRun":["All"],"gracePeriodSeconds":0,"preconditions":{"resourceVersion":"42","uid":"u-1"},"propagationPolicy":"Foreground"},"kind":"Eviction","metadata":{"name":"web-1","namespace":"default"}}"##
        ]],
    );
    assert!(decode(&body("policy/v1beta1", "Eviction", eviction)).is_ok());
}

#[test]
fn pointer_strings_keep_their_empty_value() {
    // PersistentVolumeClaimSpec.storageClassName is a *string: "" means
    // "no class", unlike an absent one, so it must survive.
    let resources = Pb::default().entry(2, "storage", Pb::default().str(1, "1Gi"));
    let claim_spec = Pb::default()
        .str(1, "ReadWriteOnce")
        .msg(2, resources)
        .str(3, "")
        .str(5, "");
    let claim = Pb::default().msg(1, meta("data")).msg(2, claim_spec);
    let spec = Pb::default()
        .int(1, 3)
        .msg(4, claim)
        .str(5, "db")
        .str(6, "");
    check(
        &body(
            "apps/v1",
            "StatefulSet",
            Pb::default().msg(1, meta("db")).msg(2, spec),
        ),
        expect![[
            r##"{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},"spec":{"replicas":3,"serviceName":"db","volumeClaimTemplates":[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}},"storageClassName":""}}]}}"##
        ]],
    );
}

#[test]
fn network_policy_ports() {
    let port = Pb::default()
        .str(1, "TCP")
        .msg(2, Pb::default().int(1, 1).str(3, "http"))
        .int(3, 8090);
    let peer = Pb::default().msg(3, Pb::default().str(1, "10.0.0.0/8").str(2, "10.1.0.0/16"));
    let rule = Pb::default().msg(1, port).msg(2, peer);
    let spec = Pb::default()
        .msg(1, Pb::default())
        .msg(2, rule)
        .str(4, "Ingress");
    check(
        &body(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Pb::default().msg(1, meta("np")).msg(2, spec),
        ),
        expect![[
            r##"{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"np"},"spec":{"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}}],"ports":[{"endPort":8090,"port":"http","protocol":"TCP"}]}],"podSelector":{},"policyTypes":["Ingress"]}}"##
        ]],
    );
}

#[test]
fn packed_and_unpacked_repeated_numbers() {
    // Kubernetes writes repeated int32 unpacked (proto2); a packed run must
    // decode the same. PodFailurePolicyOnExitCodesRequirement.values = 3.
    let unpacked = Pb::default().str(2, "In").int(3, 1).int(3, 42);
    let packed = Pb::default().str(2, "In").bytes(3, &[1, 42]);
    for exit_codes in [unpacked, packed] {
        let rule = Pb::default().str(1, "FailJob").msg(2, exit_codes);
        let spec = Pb::default().msg(11, Pb::default().msg(1, rule));
        check(
            &body("batch/v1", "Job", Pb::default().msg(2, spec)),
            expect![[
                r##"{"apiVersion":"batch/v1","kind":"Job","spec":{"podFailurePolicy":{"rules":[{"action":"FailJob","onExitCodes":{"operator":"In","values":[1,42]}}]}}}"##
            ]],
        );
    }
}

#[test]
fn unknown_field_paths_are_capped() {
    let mut raw = Pb::default();
    for _ in 0..1000 {
        raw = raw.int(99, 0);
    }
    let (_, unknown) = decode_with_unknown(&body("v1", "ConfigMap", raw)).expect("decodes");
    assert_eq!(unknown.len(), crate::decode::MAX_UNKNOWN + 1);
    assert_eq!(unknown[0], "#99");
    assert_eq!(unknown[100], "… and 900 more unknown fields");
}
