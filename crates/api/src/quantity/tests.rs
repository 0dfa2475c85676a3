use expect_test::expect;
use serde_json::json;

use super::*;

#[test]
fn canonical_forms() {
    let cases = [
        "0",
        "00",
        "-0",
        "1",
        "1.0",
        "0.5",
        "1.5",
        "100m",
        "1500m",
        "1000",
        "1200",
        "1k",
        "1000k",
        "1e3",
        "1E3",
        "1.5e3",
        "12e-1",
        "1Ki",
        "1024",
        "1.5Gi",
        "1536Mi",
        "1024Mi",
        "0.5Ki",
        "1023Ki",
        "10Ki",
        "1Ei",
        "8Ei",
        "100Mi",
        "0.1",
        "0.0001",
        "1n",
        "0.1n",
        "1u",
        "-1.5",
        "-1Gi",
        "+5",
        ".5",
        "5.",
        "1000E",
        "1M",
        "1G",
        "2T",
        "3P",
        "4E",
        "0.000000001",
        "123456789",
        "1.234567891",
        "1e-3",
    ];
    let out: Vec<String> = cases
        .iter()
        .map(|c| match Quantity::parse(c) {
            Ok(q) => format!("{c} -> {q}"),
            Err(e) => format!("{c} -> error: {e}"),
        })
        .collect();
    expect![[r#"
        0 -> 0
        00 -> 0
        -0 -> 0
        1 -> 1
        1.0 -> 1
        0.5 -> 500m
        1.5 -> 1500m
        100m -> 100m
        1500m -> 1500m
        1000 -> 1k
        1200 -> 1200
        1k -> 1k
        1000k -> 1M
        1e3 -> 1e3
        1E3 -> 1E3
        1.5e3 -> 1500
        12e-1 -> 1200e-3
        1Ki -> 1Ki
        1024 -> 1024
        1.5Gi -> 1536Mi
        1536Mi -> 1536Mi
        1024Mi -> 1Gi
        0.5Ki -> 512
        1023Ki -> 1023Ki
        10Ki -> 10Ki
        1Ei -> 1Ei
        8Ei -> 9223372036854775807
        100Mi -> 100Mi
        0.1 -> 100m
        0.0001 -> 100u
        1n -> 1n
        0.1n -> 1n
        1u -> 1u
        -1.5 -> -1500m
        -1Gi -> -1Gi
        +5 -> +5
        .5 -> 500m
        5. -> 5.
        1000E -> 1
        1M -> 1M
        1G -> 1G
        2T -> 2T
        3P -> 3P
        4E -> 4E
        0.000000001 -> 1n
        123456789 -> 123456789
        1.234567891 -> 1.234567891
        1e-3 -> 1e-3"#]]
    .assert_eq(&out.join("\n"));
}

#[test]
fn malformed() {
    let cases = [
        "",
        "abc",
        "1x",
        "1Kb",
        "1.5.5",
        "1e",
        "e3",
        "1i",
        "--1",
        "1 ",
        "1Gi3",
        "1e99999999999",
    ];
    let out: Vec<String> = cases
        .iter()
        .map(|c| match Quantity::parse(c) {
            Ok(q) => format!("{c:?} -> {q}"),
            Err(e) => format!("{c:?} -> error: {e}"),
        })
        .collect();
    expect![[r#"
        "" -> error: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'
        "abc" -> error: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'
        "1x" -> error: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'
        "1Kb" -> error: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'
        "1.5.5" -> error: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'
        "1e" -> error: unable to parse quantity's suffix
        "e3" -> 0
        "1i" -> error: unable to parse quantity's suffix
        "--1" -> error: unable to parse quantity's suffix
        "1 " -> error: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'
        "1Gi3" -> error: unable to parse quantity's suffix
        "1e99999999999" -> error: unable to parse quantity's suffix"#]].assert_eq(&out.join("\n"));
}

#[test]
fn values_and_order() {
    let q = |s: &str| Quantity::parse(s).expect("valid");
    assert_eq!(q("1.5").milli_value(), 1500);
    assert_eq!(q("0.0001").milli_value(), 1);
    assert_eq!(q("1.1").value(), 2);
    assert_eq!(q("-1.1").value(), -2);
    assert_eq!(q("1Gi").value(), 1 << 30);
    assert_eq!(q("1Ei").value(), 1 << 60);
    assert!(q("1Gi") > q("1G"));
    assert!(q("500m") == q("0.5"));
    assert!(q("-1") < q("0"));
    assert!(q("1e30") > q("1Ei"));
    let mut r = q("0.0001");
    r.round_up(-3);
    assert_eq!(r.to_string(), "1m");
}

#[test]
fn objects() {
    let mut pod = json!({"spec": {"containers": [{"name": "c", "resources": {
            "limits": {"cpu": 0.5, "memory": "1.5Gi"}, "requests": {"cpu": "0.0001", "memory": "1024Mi"}}}],
        "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1000Mi"}}]}});
    canonicalize_quantities("v1", "Pod", &mut pod).expect("valid");
    expect![[r#"{"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":"500m","memory":"1536Mi"},"requests":{"cpu":"1m","memory":"1Gi"}}}],"volumes":[{"emptyDir":{"sizeLimit":"1000Mi"},"name":"v"}]}}"#]].assert_eq(&crate::patch::test_util::canonical(&pod));
    let mut bad = json!({"spec": {"template": {"spec": {"containers": [{"resources": {"limits": {"cpu": "lots"}}}]}}}});
    assert_eq!(
        canonicalize_quantities("apps/v1", "Deployment", &mut bad).map_err(|e| e.to_string()),
        Err("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".to_owned())
    );
    let mut node =
        json!({"status": {"capacity": {"cpu": "4", "memory": "8053064Ki", "pods": 110}}});
    canonicalize_quantities("v1", "Node", &mut node).expect("valid");
    expect![[r#"{"status":{"capacity":{"cpu":"4","memory":"8053064Ki","pods":"110"}}}"#]]
        .assert_eq(&crate::patch::test_util::canonical(&node));
}
