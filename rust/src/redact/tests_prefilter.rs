//! The one-pass prefilter agrees with a plain reference: lower-case copy, substring search.

use std::sync::OnceLock;

use proptest::prelude::*;

use super::prefilter::{bit, longest_digit_run, Prefilter, RuleMask};
use super::rules::Trigger;
use super::*;

/// What the prefilter must answer, computed the slow, obvious way.
fn reference(triggers: &[Trigger], text: &str) -> RuleMask {
    let lower = text.to_ascii_lowercase();
    let mut mask = 0;
    for (i, t) in triggers.iter().enumerate() {
        let hit = match t {
            Trigger::Literals(words) => words
                .iter()
                .any(|w| !w.is_empty() && lower.contains(&w.to_ascii_lowercase())),
            Trigger::Digits(n) => longest_digit_run(text.as_bytes(), 1) >= *n,
            Trigger::Byte(b) => text.as_bytes().contains(b),
            Trigger::Always => false,
        };
        if hit {
            mask |= bit(i);
        }
    }
    mask
}

/// Triggers with one-byte and shared-prefix literals, and more literals than table bits.
fn triggers() -> Vec<Trigger> {
    let many: Vec<String> = (0..70).map(|i| format!("w{i}x")).collect();
    vec![
        Trigger::Literals(vec!["pass".into(), "passwd".into(), "Key".into()]),
        Trigger::Literals(vec!["q".into(), "-----begin".into(), "://".into()]),
        Trigger::Digits(12),
        Trigger::Digits(9),
        Trigger::Byte(b'@'),
        Trigger::Literals(many),
        Trigger::Literals(vec!["ey".into(), "key".into()]),
    ]
}

/// The testing triggers and their prefilter, built once.
fn testing() -> &'static (Prefilter, Vec<Trigger>) {
    static PF: OnceLock<(Prefilter, Vec<Trigger>)> = OnceLock::new();
    PF.get_or_init(|| {
        let t = triggers();
        (Prefilter::new(&t, &[]).unwrap(), t)
    })
}

/// The built-in triggers and their prefilter, built once.
fn builtin() -> &'static (Prefilter, Vec<Trigger>) {
    static PF: OnceLock<(Prefilter, Vec<Trigger>)> = OnceLock::new();
    PF.get_or_init(|| {
        let t = super::build::triggers(&RedactConfig::default());
        (Prefilter::new(&t, &[]).unwrap(), t)
    })
}

/// Text built from pieces that come close to the literals, in any case.
fn text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "pas",
        "pass",
        "PASSWD",
        "ke",
        "kEy",
        "q",
        "Q",
        "-----BEGIN",
        "----",
        ":/",
        "://",
        "w1",
        "w69x",
        "W42X",
        "w7",
        "x",
        " ",
        "-",
        "4111",
        "1111 ",
        "123-45-",
        "6789",
        "a",
        "@",
        "é",
        "\\",
        "%",
        "_",
        "ey",
        "EY",
    ]);
    // Up to a few hundred bytes, so long strings take the block pass and its byte-wise tail.
    prop::collection::vec(piece, 0..80).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn one_pass_scan_matches_the_reference(t in text()) {
        let (pf, triggers) = testing();
        prop_assert_eq!(pf.scan(&t), reference(triggers, &t), "{:?}", t);
        let encoded = t.contains('\\') || t.contains('%');
        prop_assert_eq!(pf.scan_text(&t).encoded, encoded);
    }

    #[test]
    fn parts_scan_is_the_union_of_each_part(a in text(), b in text()) {
        let (pf, _) = testing();
        let parts = pf.scan_parts_text([a.as_str(), b.as_str()]);
        prop_assert_eq!(parts.mask, pf.scan(&a) | pf.scan(&b));
        prop_assert_eq!(parts.encoded, pf.scan_text(&a).encoded || pf.scan_text(&b).encoded);
    }

    #[test]
    fn builtin_scan_matches_the_reference(t in text()) {
        let (pf, triggers) = builtin();
        prop_assert_eq!(pf.scan(&t), reference(triggers, &t), "{:?}", t);
    }
}

#[test]
fn builtin_literals_are_found_in_any_case() {
    let r = Redactor::new(RedactConfig::default()).unwrap();
    let rule = |name: &str| bit(r.rule_names().iter().position(|n| n == name).unwrap());
    assert_eq!(
        r.prefilter.scan("Authorization: BEARER x"),
        rule("auth_header") | rule("secret_param")
    );
    assert_eq!(
        r.prefilter.scan("pay 4111 1111 1111 1111"),
        rule("credit_card") | rule("ssn")
    );
    assert_eq!(r.prefilter.scan("eyJ"), rule("jwt"));
    assert_eq!(r.prefilter.scan("a@b"), rule("email"));
    assert_eq!(r.prefilter.scan("GET /api/v2/products returned 200"), 0);
    assert_eq!(r.prefilter.scan(""), 0);
}

/// Text near every built-in rule: secrets, their lookalikes, separators, escapes, in any case.
fn near_secrets() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "password",
        "PassWd",
        "=",
        ":",
        " ",
        "\"",
        "--",
        "-p",
        "mysql",
        "-uroot",
        "api_key",
        "token",
        "ssn",
        "PAN",
        "card_number",
        "cc_number",
        "CcNum",
        "credit-card",
        "S3cret9",
        "4111 1111 1111 1111",
        "4111111111111111",
        "123-45-6789",
        "123456789",
        "Social Security",
        "alice@example.com",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
        "Bearer ",
        "abcDEF123456ghiJKL789mno",
        "AKIAABCDEFGHIJKLMNOP",
        "aws",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "https://u:pw@host/",
        "\\u0034111",
        "%40",
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
        "10.0.0.1",
        "+1 415 555 0100",
        "415.555.0100",
        ".",
        "x",
        "\n",
    ]);
    prop::collection::vec(piece, 0..16).prop_map(|p| p.concat())
}

/// Every rule on, optional kinds included, so each gate is exercised.
fn all_rules() -> &'static Redactor {
    static R: OnceLock<Redactor> = OnceLock::new();
    R.get_or_init(|| {
        let config = RedactConfig {
            optional: super::OPTIONAL.iter().map(|s| s.to_string()).collect(),
            ..RedactConfig::default()
        };
        Redactor::new(config).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn prefiltered_redaction_equals_running_every_rule(
        t in near_secrets(),
        ctx in prop::sample::select(vec!["", "note", "ssn", "aws_key", "password"]),
    ) {
        let r = all_rules();
        let (fast, fast_drop) = r.redact_in(&t, ctx, &mut []);
        let (full, full_drop) = r.redact_scanned(&t, super::prefilter::Scan::ALL, ctx, &mut []);
        prop_assert_eq!(fast, full, "{:?} under {:?}", t, ctx);
        prop_assert_eq!(fast_drop, full_drop);
    }

    #[test]
    fn a_gated_pattern_finds_nothing_where_its_gate_is_shut(
        t in near_secrets(),
        ctx in prop::sample::select(vec!["", "ssn", "aws_key"]),
    ) {
        for p in all_rules().rules.iter().flat_map(|r| &r.patterns) {
            if !p.may_match(&t, ctx) {
                let mut found = Vec::new();
                p.candidates(&t, &mut found);
                found.retain(|r| p.keywords.is_empty() || super::text::keyword_near(&t, r, &p.keywords, ctx));
                prop_assert!(found.is_empty(), "{:?} found {:?} in {:?}", p.regex, found, t);
            }
        }
    }
}
