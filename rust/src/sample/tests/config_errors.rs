//! Configuration errors name the rule and key at fault.

use crate::error::Error;
use crate::sample::{SamplePolicy, Sampler};

fn error_of(json: &str) -> String {
    match SamplePolicy::from_json(json) {
        Err(Error::Config(msg)) => msg,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn unknown_column_is_named() {
    let msg = error_of(r#"{"rules":[{"name":"r1","where":{"servce":"a"},"rate":0.5}]}"#);
    assert!(
        msg.starts_with("sampling rule 'r1': unknown column 'servce'"),
        "{msg}"
    );
}

#[test]
fn rate_outside_unit_interval_is_rejected() {
    let msg = error_of(r#"{"rules":[{"name":"r1","rate":1.5}]}"#);
    assert_eq!(msg, "sampling rule 'r1': rate 1.5 is outside [0, 1]");
    let msg = error_of(r#"{"rules":[{"name":"r2","level_rates":{"debug":-0.1}}]}"#);
    assert_eq!(
        msg,
        "sampling rule 'r2': level_rates.debug -0.1 is outside [0, 1]"
    );
}

#[test]
fn two_actions_in_one_rule_conflict() {
    let msg = error_of(r#"{"rules":[{"name":"r1","rate":0.5,"keep":true}]}"#);
    assert!(msg.contains("'r1': must set exactly one of keep, rate, level_rates, target_per_sec (it sets keep and rate)"), "{msg}");
    let msg = error_of(r#"{"rules":[{"name":"r1"}]}"#);
    assert!(msg.ends_with("(it sets none)"), "{msg}");
}

#[test]
fn rules_shadowed_by_earlier_ones_conflict() {
    let msg = error_of(
        r#"{"rules":[{"name":"all","rate":0.5},{"name":"late","where":{"level":"debug"},"rate":0.1}]}"#,
    );
    assert!(
        msg.contains("'late': can never match: rule 'all' before it has no conditions"),
        "{msg}"
    );
    let msg = error_of(
        r#"{"rules":[{"name":"a","where":{"service":"x"},"rate":0.5},{"name":"b","where":{"service":"x"},"keep":true}]}"#,
    );
    assert!(
        msg.contains("'b': can never match: rule 'a' before it has the same conditions"),
        "{msg}"
    );
    let msg = error_of(r#"{"rules":[{"name":"a","rate":0.5},{"name":"a","rate":0.1}]}"#);
    assert!(msg.contains("'a': another rule has the same name"), "{msg}");
}

#[test]
fn sampling_audit_records_conflicts_with_the_audit_guarantee() {
    let msg = error_of(
        r#"{"rules":[{"name":"audit","where":{"category":{"prefix":"security."}},"rate":0.1}]}"#,
    );
    assert!(
        msg.contains("'audit': samples audit records (category security.*)"),
        "{msg}"
    );
}

#[test]
fn operators_and_values_are_checked_against_the_column() {
    let cases = [
        (
            r#"{"level":{"gte":"warn"}}"#,
            "unknown operator 'gte' on 'level'",
        ),
        (
            r#"{"level":"verbose"}"#,
            "unknown level 'verbose' (levels: debug, info, warn, error, critical)",
        ),
        (
            r#"{"revenue":{"prefix":"1"}}"#,
            "prefix needs a string column, 'revenue' is not one",
        ),
        (
            r#"{"service":{"gt":3}}"#,
            "gt needs a numeric column, 'service' holds strings",
        ),
        (
            r#"{"revenue":"lots"}"#,
            "'revenue' is numeric, got \"lots\"",
        ),
        (r#"{"service":[]}"#, "'service' has an empty list of values"),
        (
            r#"{"fields.":1}"#,
            "'fields.' is not a key path (write fields.a.b)",
        ),
    ];
    for (conditions, want) in cases {
        let msg = error_of(&format!(
            r#"{{"rules":[{{"name":"r","where":{conditions},"rate":0.5}}]}}"#
        ));
        assert!(
            msg.starts_with(&format!("sampling rule 'r': {want}")),
            "{msg}"
        );
    }
}

#[test]
fn adaptive_settings_are_checked() {
    let msg = error_of(r#"{"rules":[{"name":"r","key":["service"],"rate":0.5}]}"#);
    assert_eq!(
        msg,
        "sampling rule 'r': key is only used with target_per_sec"
    );
    let msg = error_of(r#"{"rules":[{"name":"r","target_per_sec":0}]}"#);
    assert!(
        msg.contains("target_per_sec 0 must be a positive number"),
        "{msg}"
    );
    let msg = error_of(r#"{"rules":[{"name":"r","target_per_sec":5,"key":["revenue"]}]}"#);
    assert!(
        msg.contains("key column 'revenue' is not a string column or level"),
        "{msg}"
    );
    let msg = error_of(r#"{"adaptive":{"smoothing":0}}"#);
    assert!(
        msg.contains("adaptive.smoothing = 0 must lie in (0, 1]"),
        "{msg}"
    );
}

#[test]
fn unknown_keys_and_policies_are_rejected() {
    assert!(error_of(r#"{"rulez":[]}"#).contains("unknown field `rulez`"));
    let msg = error_of(r#"{"extends":"cheap"}"#);
    assert!(
        msg.contains("extends = \"cheap\" is not a built-in policy"),
        "{msg}"
    );
    let msg = error_of(r#"{"rules":[{"name":"r","keep":false}]}"#);
    assert!(
        msg.contains("keep = false is not an action; use rate = 0"),
        "{msg}"
    );
}

#[test]
fn the_built_in_policy_is_valid() {
    let s = Sampler::new(SamplePolicy::cost_optimized()).unwrap();
    let names = s.rule_names();
    assert_eq!(names.len(), 7);
    assert_eq!(
        names[1..6],
        [
            "severe",
            "enterprise",
            "revenue",
            "spans-and-metrics",
            "log-levels"
        ]
    );
}

#[test]
fn built_in_rule_names_are_taken() {
    for name in ["audit (security.*)", "unmatched (kept)"] {
        let msg = error_of(&format!(r#"{{"rules":[{{"name":"{name}","rate":0.5}}]}}"#));
        assert_eq!(
            msg,
            format!("sampling rule '{name}': the name is a built-in rule's, which the summary counts apart")
        );
    }
}
