use expect_test::{Expect, expect};
use serde_json::json;

use super::*;

/// Parses `selector` and renders it back, or the error.
fn check(selector: &str, expect: Expect) {
    let rendered = match LabelSelector::parse(selector) {
        Ok(s) => format!("ok: {s}"),
        Err(e) => format!("error: {e}"),
    };
    expect.assert_eq(&rendered);
}

/// Renders which of a fixed set of label maps the selector matches.
fn check_matches(selector: &str, expect: Expect) {
    let sets = [
        ("none", json!({})),
        ("web", json!({"app": "web", "tier": "front", "v": "3"})),
        ("db", json!({"app": "db", "tier": "back", "v": "10"})),
        ("canary", json!({"app": "web", "canary": "", "v": "x"})),
    ];
    let s = LabelSelector::parse(selector).expect("valid selector");
    let names: Vec<&str> = sets
        .iter()
        .filter(|(_, l)| s.matches(l.as_object().expect("object")))
        .map(|(n, _)| *n)
        .collect();
    expect.assert_eq(&names.join(" "));
}

#[test]
fn parses_every_operator() {
    check("", expect!["ok: "]);
    check("a=b", expect!["ok: a=b"]);
    check("a==b", expect!["ok: a==b"]);
    check("a!=b", expect!["ok: a!=b"]);
    check("a", expect!["ok: a"]);
    check("!a", expect!["ok: !a"]);
    check("a in (x,y)", expect!["ok: a in (x,y)"]);
    check("a notin (z)", expect!["ok: a notin (z)"]);
    check("a>1,b<2", expect!["ok: a>1,b<2"]);
    check(
        " z = 1 , a in ( y , x ) , !m , k ",
        expect!["ok: a in (x,y),k,!m,z=1"],
    );
    check("a=", expect!["ok: a="]);
    check("a in ()", expect!["ok: a in ()"]);
    check("a in (,x)", expect!["ok: a in (,x)"]);
    check("a in (x,x,y)", expect!["ok: a in (x,y)"]);
    // `in` and `notin` are identifiers where values are expected.
    check("in in (in, notin)", expect!["ok: in in (in,notin)"]);
    check("example.com/app=x", expect!["ok: example.com/app=x"]);
    check("x in (a,,a,,)", expect!["ok: x in (,a)"]);
    check("x notin ( )", expect!["ok: x notin ()"]);
    check("\rx", expect!["ok: x"]);
    check(
        "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
        expect!["ok: 0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)"],
    );
    check(
        "x nott in (y)",
        expect![
            "error: unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt"
        ],
    );
    check(
        "a in (xyz)b notin ()",
        expect!["error: found 'b', expected: ',' or 'end of string'"],
    );
    check(
        "x,,y",
        expect!["error: found ',', expected: identifier after ','"],
    );
}

#[test]
fn parse_errors_are_upstreams() {
    check(
        "a in b",
        expect!["error: unable to parse requirement: found 'b' expected: '('"],
    );
    check(
        "a in (b",
        expect!["error: unable to parse requirement: found '', expected: ',' or ')'"],
    );
    check(
        "a b",
        expect![
            "error: unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        ],
    );
    check(
        "a=b,",
        expect!["error: found '', expected: identifier after ','"],
    );
    check(
        "a=b c",
        expect!["error: found 'c', expected: ',' or 'end of string'"],
    );
    check(
        ",a",
        expect!["error: found ',', expected: !, identifier, or 'end of string'"],
    );
    check(
        "!=a",
        expect!["error: found '!=', expected: !, identifier, or 'end of string'"],
    );
    check(
        "a=(b)",
        expect!["error: unable to parse requirement: found '(', expected: identifier"],
    );
    check(
        "-a=b",
        expect![[
            r#"error: unable to parse requirement: <nil>: Invalid value: "-a": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#
        ]],
    );
    check(
        "a=-b",
        expect![[
            r#"error: unable to parse requirement: values[0][a]: Invalid value: "-b": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#
        ]],
    );
    check(
        "a>x",
        expect![[
            r#"error: unable to parse requirement: values[0]: Invalid value: "x": for 'Gt', 'Lt' operators, the value must be an integer"#
        ]],
    );
    check(
        "a in (b c)",
        expect!["error: unable to parse requirement: found 'c', expected: ',' or ')'"],
    );
    check(
        "a<=1",
        expect!["error: unable to parse requirement: found '=', expected: identifier"],
    );
}

#[test]
fn matching() {
    check_matches("", expect!["none web db canary"]);
    check_matches("app=web", expect!["web canary"]);
    check_matches("app!=web", expect!["none db"]);
    check_matches("app in (web,db)", expect!["web db canary"]);
    check_matches("app notin (web)", expect!["none db"]);
    check_matches("canary", expect!["canary"]);
    check_matches("!canary", expect!["none web db"]);
    check_matches("app=web,!canary", expect!["web"]);
    check_matches("v>5", expect!["db"]);
    check_matches("v<5", expect!["web"]);
    check_matches("canary=", expect!["canary"]);
}

#[test]
fn label_selector_objects() {
    let render = |v: serde_json::Value| match LabelSelector::from_object(&v) {
        Ok(s) if s.matches(&Map::new()) && s.is_empty() => "everything".to_owned(),
        Ok(s) if s == LabelSelector::nothing() => "nothing".to_owned(),
        Ok(s) => format!("ok: {s}"),
        Err(e) => format!("error: {e}"),
    };
    let cases = [
        json!(null),
        json!({}),
        json!({"matchLabels": {"app": "web", "b": "2"}}),
        json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "x", "operator": "DoesNotExist"}]}),
        json!({"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]}),
        json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": []}]}),
        json!({"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["a"]}]}),
        json!({"matchLabels": {"bad key": "x"}}),
    ];
    let out: Vec<String> = cases.into_iter().map(render).collect();
    expect![[r#"
        nothing
        everything
        ok: app=web,b=2
        ok: app=web,tier in (a,b),!x
        error: "Gt" is not a valid label selector operator
        error: values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty
        error: values: Invalid value: ["a"]: values set must be empty for exists and does not exist
        error: key: Invalid value: "bad key": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#]]
    .assert_eq(&out.join("\n"));
    let s = LabelSelector::parse("app=web,tier in (a)").expect("valid");
    assert_eq!(s.requires_exact_match("app"), Some("web"));
    assert_eq!(s.requires_exact_match("tier"), Some("a"));
    assert_eq!(s.requires_exact_match("x"), None);
}

#[test]
fn random_input_never_panics() {
    let pieces = [
        "a", "b", "in", "notin", "(", ")", ",", "=", "==", "!=", "!", ">", "<", " ", "é", "-", "1",
        "x/y", "/", "",
    ];
    let mut seed: u64 = 0xdead_beef_cafe_f00d;
    for _ in 0..5000 {
        let mut s = String::new();
        for _ in 0..8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push_str(pieces[(seed % pieces.len() as u64) as usize]);
        }
        if let Ok(sel) = LabelSelector::parse(&s) {
            // What parses renders to something that parses to the same.
            let again = LabelSelector::parse(&sel.to_string());
            assert!(again.is_ok(), "{s:?} -> {sel} did not reparse");
        }
    }
}
