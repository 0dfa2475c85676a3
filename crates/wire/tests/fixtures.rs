//! Bodies captured from the real `kubectl` 1.32 (see `tests/capture/capture.py`),
//! decoded and compared with snapshots: each snapshot is the JSON object the
//! API server will see, then the unknown fields the decoder skipped.

use expect_test::{ExpectFile, expect_file};

fn check(fixture: &str, expect: ExpectFile) {
    let path = format!("{}/tests/fixtures/{fixture}.pb", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    let (object, unknown) =
        bulwark_wire::decode_with_unknown(&body).unwrap_or_else(|err| panic!("{fixture}: {err}"));
    let mut text = serde_json::to_string_pretty(&object).expect("a Value always serializes");
    text.push_str("\nunknown fields: ");
    text.push_str(&format!("{unknown:?}\n"));
    expect.assert_eq(&text);
}

macro_rules! fixtures {
    ($($test:ident => $fixture:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($fixture, expect_file![concat!("snapshots/", $fixture, ".json")]);
            }
        )*

        /// Every captured fixture has a test above.
        #[test]
        fn every_fixture_is_checked() {
            let known = [$($fixture),*];
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
            let mut missing = Vec::new();
            for entry in std::fs::read_dir(dir).expect("fixtures directory") {
                let name = entry.expect("directory entry").file_name().into_string().expect("UTF-8 name");
                if let Some(stem) = name.strip_suffix(".pb") {
                    if !known.contains(&stem) {
                        missing.push(stem.to_owned());
                    }
                }
            }
            assert!(missing.is_empty(), "fixtures without a test: {missing:?}");
        }
    };
}

fixtures! {
    create_configmap => "configmap",
    create_secret_generic => "secret",
    create_secret_docker_registry => "docker-registry",
    create_namespace => "namespace",
    create_serviceaccount => "serviceaccount",
    create_deployment => "deployment",
    create_job => "job",
    create_job_from_cronjob => "job-from-cronjob",
    create_job_from_rich_cronjob => "job-from-rich-cronjob",
    debug_copy_pod => "debug-copy-pod",
    create_cronjob => "cronjob",
    create_role => "role",
    create_clusterrole_aggregated => "clusterrole",
    create_rolebinding => "rolebinding",
    create_clusterrolebinding => "clusterrolebinding",
    create_service_clusterip => "service",
    create_quota => "quota",
    create_priorityclass => "priorityclass",
    create_poddisruptionbudget => "pdb",
    create_ingress => "ingress",
    auth_can_i => "can-i",
    auth_can_i_subresource => "can-i-subresource",
    auth_can_i_nonresource => "can-i-nonresource",
    auth_can_i_list => "can-i-list",
    auth_whoami => "whoami",
    create_token => "token",
    certificate_approve => "certificate-approve",
    debug_node_pod => "debug-node",
    autoscale_hpa => "autoscale",
    drain_delete_options => "drain-delete",
}

/// For every `kubectl create …` fixture, the decoded protobuf body is the
/// very object kubectl itself prints as JSON (`--dry-run=client -o json`),
/// except that JSON spells Go's zero times `null` where the decoder leaves
/// them out.
#[test]
fn decoded_bodies_equal_kubectls_own_json() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut compared = 0;
    for entry in std::fs::read_dir(dir).expect("fixtures directory") {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 name")
            .to_owned();
        let Some(stem) = name.strip_suffix(".kubectl.json") else {
            continue;
        };
        let json = std::fs::read(&path).expect("kubectl JSON");
        let mut expected: serde_json::Value =
            serde_json::from_slice(&json).expect("kubectl printed JSON");
        drop_nulls(&mut expected);
        let body = std::fs::read(format!("{dir}/{stem}.pb")).expect("matching .pb fixture");
        let actual = bulwark_wire::decode(&body).unwrap_or_else(|err| panic!("{stem}: {err}"));
        assert_eq!(
            actual,
            expected,
            "{stem}: decoded\n{}\nkubectl printed\n{}",
            serde_json::to_string_pretty(&actual).expect("serializes"),
            serde_json::to_string_pretty(&expected).expect("serializes"),
        );
        compared += 1;
    }
    assert!(compared >= 15, "only {compared} kubectl JSON fixtures");
}

fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
