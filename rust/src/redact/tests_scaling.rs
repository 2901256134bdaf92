//! Redaction work against input length on adversarial lines (chained assignments, deep nesting,
//! unclosed markers). The tests count the bytes redaction's own scans read (`work`), so they hold
//! the work linear without timing; the ignored measurement prints the times.
//! Run: `cargo test --release --lib redact::tests_scaling -- --ignored --nocapture`.

use std::time::Instant;

use super::*;

/// Each adversarial input at about `n` bytes, and whether it is a dead letter (raw bytes).
fn inputs(n: usize) -> Vec<(&'static str, String, bool)> {
    let repeat = |unit: &str| unit.repeat(n / unit.len());
    vec![
        ("pwd=", repeat("pwd="), false),
        ("token=", repeat("token="), false),
        ("secret=", repeat("secret="), false),
        ("cookie:", repeat("cookie:"), false),
        ("authorization:", repeat("authorization:"), false),
        ("cookie lines", repeat("cookie:x  \n"), false),
        ("quoted pwd", repeat("pwd=\"a pwd='b "), false),
        ("curl -u", repeat("curl -u a:b "), false),
        ("open elements", repeat("<password>x"), false),
        ("closed elements", repeat("<pwd>x</pwd>"), false),
        (
            "bare brackets",
            format!("<pwd>x</pwd>{}", repeat("<>")),
            false,
        ),
        ("curl words", repeat("curl x "), false),
        ("sshpass -p", repeat("sshpass -v -p x "), false),
        ("redis-cli -a", repeat("redis-cli -a "), false),
        ("unclosed markers", repeat("[REDACTED:"), false),
        (
            "markers and secrets",
            repeat("[REDACTED:secret_param] pwd=x "),
            false,
        ),
        ("nested dead letter", repeat("{\"a\":"), true),
        ("nested arrays", repeat("[{\"a\":["), true),
        (
            "lenient pwd",
            format!("{{\"m\":{}", repeat("\"pwd\":")),
            true,
        ),
        (
            "lenient bare",
            format!("{{\"m\":{}", repeat("\"a\": x ")),
            true,
        ),
        ("dead pwd=", format!("{{\"msg\":\"{}", repeat("pwd=")), true),
        ("strings in strings", strings_in_strings(n), true),
    ]
}

/// A JSON document whose string holds JSON whose string holds JSON…, a secret at the bottom, up
/// to `n` bytes: each level is walked as embedded JSON.
fn strings_in_strings(n: usize) -> String {
    let mut doc = String::from(r#"{"pwd":"x"}"#);
    loop {
        let mut quoted = String::new();
        escape::push_json_string(&doc, &mut quoted);
        let next = format!(r#"{{"a":{quoted},"b":[{quoted}]}}"#);
        if next.len() > n {
            return doc;
        }
        doc = next;
    }
}

fn redact(r: &Redactor, text: &str, dead: bool) -> usize {
    let mut counts = vec![0u64; r.rule_names().len()];
    match dead {
        true => r.redact_bytes(text.as_bytes(), &mut counts).len(),
        false => r.redact_text(text, &mut counts).len(),
    }
}

#[test]
fn scans_read_each_byte_a_bounded_number_of_times() {
    let r = Redactor::new(RedactConfig::default()).unwrap();
    let (small, large) = (16_000, 64_000);
    for ((name, short, dead), (_, long, _)) in inputs(small).into_iter().zip(inputs(large)) {
        work::take();
        redact(&r, &short, dead);
        let w_short = work::take();
        redact(&r, &long, dead);
        let w_long = work::take();
        // Quadratic scans read ~n²/unit bytes: 4x the input would be 16x the work.
        assert!(
            w_long <= 8 * long.len() as u64,
            "{name}: {w_long} bytes read for {} bytes of input",
            long.len()
        );
        assert!(
            w_long <= 5 * w_short.max(1),
            "{name}: work {w_short} -> {w_long} for 4x the input"
        );
    }
}

#[test]
fn chained_assignments_are_still_redacted() {
    let r = Redactor::new(RedactConfig::default()).unwrap();
    let mut counts = vec![0u64; r.rule_names().len()];
    let out = r.redact_text("pwd=pwd=pwd=x y", &mut counts);
    assert_eq!(out, "pwd=[REDACTED:secret_param] y");
    let out = r.redact_text("cookie:cookie:a b  \nnext", &mut counts);
    assert_eq!(out, "cookie:[REDACTED:secret_param]  \nnext");
    let out = r.redact_text("[REDACTED:secret_param] pwd=x [REDACTED:", &mut counts);
    assert_eq!(
        out,
        "[REDACTED:secret_param] pwd=[REDACTED:secret_param] [REDACTED:"
    );
    let raw = br#"{"a":{"a":{"pwd":"hunter2","b":1"#;
    let out = r.redact_bytes(raw, &mut counts);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"a":{"a":{"pwd":"[REDACTED:secret_key]","b":1"#
    );
}

#[test]
#[ignore = "scaling measurement; run in release with --ignored --nocapture"]
fn scaling_adversarial() {
    let r = Redactor::new(RedactConfig::default()).unwrap();
    for n in [56_000, 225_000, 1 << 20] {
        for (name, text, dead) in inputs(n) {
            let t = Instant::now();
            let len = redact(&r, &text, dead);
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{name:20} {:>8} bytes -> {len:>8}: {secs:8.4} s",
                text.len()
            );
        }
    }
}
