//! `secret_param`'s gate: shut on stems that assign nothing, never hiding a match the rule finds.

use std::sync::OnceLock;

use proptest::prelude::*;

use super::prefilter::Scan;
use super::*;

fn redactor() -> &'static Redactor {
    static R: OnceLock<Redactor> = OnceLock::new();
    R.get_or_init(|| Redactor::new(RedactConfig::default()).unwrap())
}

#[test]
fn stems_that_assign_nothing_shut_the_gate() {
    let r = redactor();
    for t in [
        "cache lookup key=product:1008 hit",
        "trace.spans",
        "span_name",
        "card declined: retry",
        "monkey: banana",
        "checkout-api token bucket refilled",
        "x-user-id key rotated",
        "<tokenizer>bpe</tokenizer>",
        "key rotated for pid=1 sig=11",
    ] {
        assert!(!r.may_assign(t.as_bytes()), "{t:?}");
    }
}

#[test]
fn every_form_of_secret_param_opens_the_gate() {
    let r = redactor();
    for t in [
        "password=hunter2",
        "DB_PASSWORD\n=\nhunter2",
        "x api-key: abc",
        "\"client_secret\" : \"abc\"",
        "'token'='abc'",
        "run --token abc",
        "mysql -uroot -pS3cret db",
        "CURL -u bob:S3cret",
        "redis-cli -a S3cret",
        "sshpass -pS3cret ssh h",
        "AccountKey=abc",
        "/c?sp=r&sig=abc",
        "<ns:Password a=\"b\">S3cret</ns:Password>",
        "pan=4111111111111111",
        "cookie: a=b",
        "pass\u{3000}=x",
    ] {
        assert!(r.may_assign(t.as_bytes()), "{t:?}");
    }
}

#[test]
fn a_shut_gate_keeps_a_frequent_message_borrowed() {
    let r = redactor();
    let mut counts = vec![0; r.rule_names().len()];
    let out = r.redact_text("cache lookup key=product:1008 hit", &mut counts);
    assert!(matches!(out, std::borrow::Cow::Borrowed(_)));
    assert_eq!(counts.iter().sum::<u64>(), 0);
}

#[test]
fn a_field_whose_key_holds_a_stem_is_copied_through() {
    let r = redactor();
    let mut out = String::new();
    assert!(r.write_field("span_name", "\"cache.get\"", &mut out, &mut []));
    assert_eq!(out, "\"span_name\":\"cache.get\"");
}

/// Text built from secret and plain names, separators, quotes and whitespace around them.
fn assignments() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "password",
        "Passwd",
        "pwd",
        "passphrase",
        "secret",
        "TOKEN",
        "api_key",
        "api-key",
        "access.key",
        "privateKey",
        "client_secret",
        "signature",
        "credentials",
        "key",
        "span",
        "pan",
        "card",
        "cvv",
        "ssn",
        "cookie",
        "Authorization",
        "monkey",
        "db",
        "my_",
        "x.",
        "=",
        ":",
        " : ",
        " = ",
        "\"",
        "'",
        " ",
        "\t",
        "\n",
        "--",
        "-p",
        "-u ",
        "-a ",
        "--user ",
        "curl ",
        "sshpass ",
        "redis-cli ",
        "bob:pw",
        "sig=",
        "&sig",
        "AccountKey",
        "<",
        "</",
        ">",
        "password>",
        "ns:",
        "mysql ",
        "hunter2",
        "Bearer ",
        "\u{212A}",
        "\u{3000}",
        ",",
        "&",
        "?",
        "123-45-6789",
        "123456789",
        "4111 1111 1111 1111",
        "social security",
        "AKIAIOSFODNN7EXAMPLE",
        "aws",
        "a@b.io",
        "ghp_",
        "-----BEGIN ",
    ]);
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn gated_redaction_equals_running_every_rule(t in assignments()) {
        let r = redactor();
        let (fast, _) = r.redact_in(&t, "", &mut []);
        let (full, _) = r.redact_scanned(&t, Scan::ALL, "", &mut []);
        prop_assert_eq!(fast, full, "{:?}", t);
    }

    #[test]
    fn a_field_copied_through_holds_nothing_the_walker_redacts(
        key in assignments(),
        value in assignments(),
    ) {
        let r = redactor();
        let inner = value.replace(['\\', '"'], "'");
        let object = format!("{{\"k\":\"{inner}\"}}");
        let malformed = format!("1, \"{inner}\" : 2");
        for raw in [object.as_str(), malformed.as_str(), "1"] {
            if r.field_is_clean(&key, raw) {
                // The slow path stores clean malformed text as a string; what counts is no match.
                let mut counts = vec![0; r.rule_names().len()];
                let kept = r.write_field_slow(&key, raw, &mut String::new(), &mut counts);
                prop_assert!(kept && counts.iter().all(|c| *c == 0), "{:?} {:?}", key, raw);
            }
        }
    }
}

#[test]
fn malformed_values_with_secret_keys_are_not_copied_through() {
    let r = redactor();
    for raw in ["1, \"api key\": 2", "x \"cvv\"\n: 123"] {
        let mut out = String::new();
        assert!(r.write_field("note", raw, &mut out, &mut []));
        assert!(out.contains("[REDACTED:secret_key]"), "{raw:?} -> {out}");
    }
}

#[test]
fn a_number_without_separators_or_keyword_skips_the_ssn_rule() {
    let r = redactor();
    assert!(r.looks_clean(&["duration_ns", "260797874"]));
    assert!(!r.looks_clean(&["ssn", "260797874"]));
    assert!(!r.looks_clean(&["note", "\"123-45-6789\""]));
}

#[test]
fn a_malformed_value_counts_only_what_is_replaced() {
    let r = redactor();
    let mut counts = vec![0; r.rule_names().len()];
    let mut out = String::new();
    // The walker reads a card number, then trailing text: the value is redacted as one string,
    // and its one card counted once.
    assert!(r.write_field("note", "4111111111111111 x", &mut out, &mut counts));
    assert_eq!(out, "\"note\":\"[REDACTED:credit_card] x\"");
    assert_eq!(counts.iter().sum::<u64>(), 1);
}

/// Keys the way a walk pairing quotes from the start finds them: what the colon scan must cover.
fn keys_paired_from_the_start(raw: &[u8]) -> Vec<&[u8]> {
    let mut keys = Vec::new();
    let mut i = 0;
    while let Some(open) = raw[i..].iter().position(|&b| b == b'"').map(|p| p + i) {
        let Some(close) = raw[open + 1..].iter().position(|&b| b == b'"') else {
            break;
        };
        let close = open + 1 + close;
        let after = raw[close + 1..]
            .iter()
            .position(|b| !b.is_ascii_whitespace());
        if after.is_some_and(|a| raw[close + 1 + a] == b':') {
            keys.push(&raw[open + 1..close]);
        }
        i = close + 1;
    }
    keys
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_colon_scan_finds_every_key_the_pairing_walk_finds(t in assignments()) {
        let r = redactor();
        let raw = t.replace('\\', "/");
        let secret = keys_paired_from_the_start(raw.as_bytes())
            .iter()
            .any(|k| r.keys.kind(k) == super::keys::KeyKind::Secret);
        if secret {
            prop_assert!(r.keys.raw_has_sensitive_key(raw.as_bytes()), "{:?}", raw);
        }
    }

    #[test]
    fn case_blind_search_agrees_with_comparing_every_window(
        hay in "[a-zA-Z _KkSs]{0,24}",
        needle in prop::sample::select(vec!["ssn", "social security", "aws", "secret", "k", ""]),
    ) {
        let slow = needle.is_empty()
            || hay.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
        prop_assert_eq!(super::text::contains_ignore_case(hay.as_bytes(), needle.as_bytes()), slow);
    }
}

/// Found by the property test above: malformed text whose quoted key ends in a colon.
#[test]
fn a_malformed_value_with_a_colon_in_a_quoted_key_is_not_copied_through() {
    let r = redactor();
    let (key, raw) = ("TOKENpwd", "1, \"cvv\n:\" : 2");
    let mut counts = vec![0; r.rule_names().len()];
    let mut out = String::new();
    r.write_field_slow(key, raw, &mut out, &mut counts);
    // The lenient scan ends the unclosed `"cvv` at the line end and finds a secret key there.
    assert_eq!(out, r#""TOKENpwd":"1, \"cvv\n:\"[REDACTED:secret_key]\"""#);
    assert!(!r.field_is_clean(key, raw));
}
