//! The fast paths of `redact_text` against the full scan: the per-thread memory of clean strings
//! and the proof that hex words are clean must answer exactly what `redact_in` answers.

use std::sync::OnceLock;

use proptest::prelude::*;

use super::memo::{Key, TEXT_MAX};
use super::*;

/// Configurations whose verdicts differ: built-in, optional kinds, a hex key name, no
/// `secret_param`, custom rules.
fn redactors() -> &'static [Redactor] {
    static R: OnceLock<Vec<Redactor>> = OnceLock::new();
    R.get_or_init(|| {
        let custom = |name: &str, pattern: &str| CustomRule {
            name: name.into(),
            pattern: pattern.into(),
            ..CustomRule::default()
        };
        let configs = [
            RedactConfig::default(),
            RedactConfig {
                optional: vec!["ipv4".into(), "ipv6".into(), "phone".into()],
                ..RedactConfig::default()
            },
            RedactConfig {
                keys: vec!["cafe".into()],
                ..RedactConfig::default()
            },
            // Secret key names then wake no literal: only the key rules see them.
            RedactConfig {
                disable: vec!["secret_param".into()],
                ..RedactConfig::default()
            },
            RedactConfig {
                rules: vec![
                    custom("svc", "svc-[0-9]{3}"),
                    custom("hexish", "[0-9a-f]{6}ee"),
                ],
                ..RedactConfig::default()
            },
        ];
        configs.map(|c| Redactor::new(c).unwrap()).into()
    })
}

/// Short strings around the memory's size bound, made of pieces that wake rules and pieces that
/// do not, so clean and dirty strings sit one byte apart.
fn short_text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "a", "f", "0", "7", "9", "-", "_", " ", "=", ":", ".", "@", "%", "\\", "x", "é", "svc-",
        "cafe", "ee", "ghp_", "key", "pwd", "4111", "123-45-", "u_", "eu-", "Bearer ", "user",
        "login", "password", "apiKey",
    ]);
    prop::collection::vec(piece, 0..14).prop_map(|p| p.concat())
}

/// `s` with byte `at` (modulo its length) replaced by `with`, when that leaves valid UTF-8.
fn one_byte_off(s: &str, at: usize, with: u8) -> Option<String> {
    let mut b = s.as_bytes().to_vec();
    let i = at.checked_rem(b.len())?;
    b[i] = with;
    String::from_utf8(b).ok()
}

/// Redacts `s` through the fast paths and through the full scan; both must agree, counts too.
fn agree(r: &Redactor, s: &str) -> Result<(), TestCaseError> {
    let (mut fast, mut full) = (vec![0; r.names.len()], vec![0; r.names.len()]);
    let got = r.redact_text(s, &mut fast);
    let want = r.redact_in(s, "", &mut full).0;
    prop_assert_eq!(&got, &want, "{:?} under {:?}", s, r.names);
    prop_assert_eq!(
        matches!(got, Cow::Borrowed(_)),
        matches!(want, Cow::Borrowed(_))
    );
    prop_assert_eq!(fast, full);
    Ok(())
}

/// A `fields` member's raw JSON value: a string, a number or a small object of short texts.
fn raw_value() -> impl Strategy<Value = String> {
    let string = || short_text().prop_map(|s| sonic_rs::to_string(&s).unwrap());
    prop_oneof![
        string(),
        "-?[0-9]{1,14}",
        (string(), string()).prop_map(|(a, b)| format!(r#"{{"name":{a},"value":{b}}}"#)),
    ]
}

/// `write_field` through the memory of clean members against the full check, counts too.
fn member_agrees(r: &Redactor, key: &str, raw: &str) -> Result<(), TestCaseError> {
    let (mut fast, mut full) = (vec![0; r.names.len()], vec![0; r.names.len()]);
    let (mut got, mut want) = (String::new(), String::new());
    let kept = r.write_field(key, raw, &mut got, &mut fast);
    let wanted = match r.field_is_clean(key, raw) {
        true => {
            crate::decode::json::write_member(&mut want, key, raw);
            true
        }
        false => r.write_field_slow(key, raw, &mut want, &mut full),
    };
    prop_assert_eq!((kept, &got), (wanted, &want), "{:?}: {:?}", key, raw);
    prop_assert_eq!(fast, full);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn remembered_members_answer_what_the_check_answers(
        members in prop::collection::vec(
            (prop::sample::select(vec!["k", "env", "pass", "user", "name", "svc", "apiToken"]),
             raw_value()),
            1..16,
        ),
    ) {
        for _ in 0..2 {
            for (key, raw) in &members {
                for r in redactors() {
                    member_agrees(r, key, raw)?;
                }
            }
        }
    }

    #[test]
    fn memory_and_proof_answer_what_the_scan_answers(
        texts in prop::collection::vec(short_text(), 1..24),
        edits in prop::collection::vec((any::<usize>(), b' '..=b'~'), 24),
    ) {
        let variants = texts
            .iter()
            .zip(&edits)
            .filter_map(|(s, (at, with))| one_byte_off(s, *at, *with));
        let all: Vec<String> = texts.iter().cloned().chain(variants).collect();
        // Twice over, so the second round answers from the memory what the first one put there,
        // with every redactor's verdicts in the same per-thread table.
        for _ in 0..2 {
            for s in &all {
                for r in redactors() {
                    agree(r, s)?;
                }
            }
        }
    }

    #[test]
    fn hex_words_proven_clean_are_clean(
        word in "[0-9a-fA-F]{0,40}",
        r in 0..5usize,
    ) {
        let r = &redactors()[r];
        if r.prefilter.proven_clean(&word) {
            let mut counts = vec![0; r.names.len()];
            let out = r.redact_scanned(&word, prefilter::Scan::ALL, "", &mut counts).0;
            prop_assert!(matches!(out, Cow::Borrowed(_)), "{word} under {:?}", r.names);
            prop_assert!(counts.iter().all(|c| *c == 0));
        }
        agree(r, &word)?;
    }

    #[test]
    fn keys_are_equal_exactly_when_strings_are(
        a in "[ -~]{0,40}",
        at in any::<usize>(),
        with in b' '..=b'~',
    ) {
        let b = one_byte_off(&a, at, with).unwrap_or_default();
        match (Key::of(1, &a), Key::of(1, &b)) {
            (Some(x), Some(y)) => prop_assert_eq!(x.same(&y), a == b),
            (x, _) => prop_assert_eq!(x.is_none(), a.len() > TEXT_MAX),
        }
    }
}

#[test]
fn the_hex_proof_follows_the_compiled_rules() {
    let proven: Vec<bool> = redactors()
        .iter()
        .map(|r| r.prefilter.proven_clean("0bdca9d4f9d18ce1"))
        .collect();
    // A hex key name (`cafe`) is a literal of the prefilter, and custom patterns run on anything.
    assert_eq!(proven, [true, true, false, true, false]);
    let r = &redactors()[0];
    // All digits is a number, not a hex id; mixed with other bytes it is not a hex word.
    for s in ["4111111111111111", "", "0bdca9d4-f9d1-8ce1", "ghp_0bdca9d4"] {
        assert!(!r.prefilter.proven_clean(s), "{s}");
    }
}

#[test]
fn a_verdict_belongs_to_the_redactor_that_gave_it() {
    let (plain, custom) = (&redactors()[0], &redactors()[4]);
    let mut counts = vec![0; custom.names.len()];
    for _ in 0..3 {
        assert_eq!(plain.redact_text("svc-123", &mut []), "svc-123");
        let out = custom.redact_text("svc-123", &mut counts);
        assert_eq!(out, "[REDACTED:svc]");
    }
    let svc = custom.names.iter().position(|n| n == "svc").unwrap();
    assert_eq!(counts[svc], 3);
}

#[test]
fn strings_past_the_bound_are_scanned_every_time() {
    let long = "x".repeat(TEXT_MAX) + "@example.com";
    assert!(Key::of(1, &long).is_none());
    assert!(Key::of(1, &long[..TEXT_MAX]).is_some());
    let r = &redactors()[0];
    let mut counts = vec![0; r.names.len()];
    for _ in 0..2 {
        assert!(r
            .redact_text(&long, &mut counts)
            .contains("[REDACTED:email]"));
    }
    let email = r.names.iter().position(|n| n == "email").unwrap();
    assert_eq!(counts[email], 2);
}

#[test]
fn a_member_is_its_key_and_value_not_their_bytes_end_to_end() {
    let r = &redactors()[0];
    // `passwor` + `d"x1"` and `password` + `"x1"` are the same bytes end to end; the first is
    // clean (kept as sent), and must not answer for the second.
    for _ in 0..2 {
        let mut out = String::new();
        r.write_field("passwor", r#"d"x1""#, &mut out, &mut []);
        assert_eq!(out, r#""passwor":d"x1""#);
        out.clear();
        r.write_field("password", r#""x1""#, &mut out, &mut []);
        assert_eq!(out, r#""password":"[REDACTED:secret_key]""#);
    }
}
