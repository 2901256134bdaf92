//! The labelled corpus (planted secrets in every place, clean lines) and the real-data checks.
//! Figures are printed: `cargo test --lib redact::tests_corpus -- --nocapture`.

use std::path::{Path, PathBuf};

use super::escape::push_json_string;
use super::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/redaction").join(name)).unwrap()
}

/// `(kind, planted text, part that must vanish)` from `planted.tsv`.
fn planted() -> Vec<(String, String, String)> {
    fixture("planted.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let text = cols[1].replace("\\n", "\n");
            (cols[0].to_string(), text, cols[2].to_string())
        })
        .collect()
}

fn json_str(s: &str) -> String {
    let mut out = String::new();
    push_json_string(s, &mut out);
    out
}

/// One place a secret can sit: (place, message, fields members).
type Place = (&'static str, String, Vec<(String, String)>);

/// Every place a secret can sit.
fn places(secret: &str) -> Vec<Place> {
    let msg = format!("payment step failed: {secret} (retrying)");
    let first = secret.find(|c: char| c.is_ascii_alphanumeric()).unwrap();
    let esc_secret = format!(
        "{}\\u{:04x}{}",
        &secret[..first],
        secret.as_bytes()[first],
        &secret[first + 1..]
    );
    let esc_json = json_str(&esc_secret).replace("\\\\u", "\\u");
    vec![
        ("message", msg.clone(), vec![]),
        (
            "stack",
            format!("Traceback:\n  File \"app.py\"\nValueError: {secret}"),
            vec![],
        ),
        (
            "field",
            String::new(),
            vec![("detail".into(), json_str(&msg))],
        ),
        (
            "nested",
            String::new(),
            vec![(
                "req".into(),
                format!(r#"{{"h":{{"x":{}}}}}"#, json_str(secret)),
            )],
        ),
        (
            "array",
            String::new(),
            vec![(
                "items".into(),
                format!(r#"[1,{{"v":[{}]}}]"#, json_str(&msg)),
            )],
        ),
        (
            "key_name",
            String::new(),
            vec![("m".into(), format!(r#"{{{}:true}}"#, json_str(secret)))],
        ),
        ("escaped", String::new(), vec![("e".into(), esc_json)]),
        (
            "embedded_json",
            String::new(),
            vec![(
                "body".into(),
                json_str(&format!(r#"{{"err":{}}}"#, json_str(&msg))),
            )],
        ),
        (
            "url_encoded",
            String::new(),
            vec![("q".into(), json_str(&url_encode(&msg)))],
        ),
    ]
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The stored text of one event: redacted message and `fields` object.
fn store(r: &Redactor, message: &str, fields: &[(String, String)], counts: &mut [u64]) -> String {
    let mut out = r.redact_text(message, counts).into_owned();
    let mut obj = String::from("{");
    for (k, v) in fields {
        r.write_field(k, v, &mut obj, counts);
    }
    obj.push('}');
    assert!(
        sonic_rs::from_str::<sonic_rs::Value>(&obj).is_ok(),
        "invalid JSON {obj}"
    );
    out.push('\n');
    out.push_str(&obj);
    out
}

/// Whether `secret` or its URL-encoded or JSON-escaped form survives in `stored`.
fn survives(stored: &str, secret: &str) -> bool {
    stored.contains(secret)
        || stored.contains(&url_encode(secret))
        || stored.contains(json_str(secret).trim_matches('"'))
}

#[test]
fn labelled_corpus_recall_and_clean_change_rate() {
    let r = Redactor::new(RedactConfig::default()).unwrap();
    let mut counts = vec![0; r.rule_names().len()];
    let (mut planted_total, mut caught, mut missed) = (0, 0, Vec::new());
    for (kind, text, secret) in planted() {
        for (place, message, fields) in places(&text) {
            planted_total += 1;
            match survives(&store(&r, &message, &fields, &mut counts), &secret) {
                false => caught += 1,
                true => missed.push(format!("{kind} in {place}")),
            }
        }
    }
    let clean = clean_lines();
    let changed: Vec<&String> = clean
        .iter()
        .filter(|l| r.redact_text(l, &mut counts) != l.as_str())
        .collect();
    let rate = changed.len() as f64 / clean.len() as f64;
    println!(
        "redaction corpus: recall {caught}/{planted_total} = {:.2}% on planted secrets; \
         clean lines changed {}/{} = {:.4}%",
        100.0 * caught as f64 / planted_total as f64,
        changed.len(),
        clean.len(),
        100.0 * rate
    );
    assert!(missed.is_empty(), "missed: {missed:?}");
    assert!(rate < 0.001, "changed clean lines: {changed:?}");
}

#[test]
fn malformed_dead_letters_lose_secret_keyed_values() {
    let r = Redactor::new(RedactConfig::default()).unwrap();
    let cases: Vec<(String, String)> = fixture("dead_letters.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (text, secret) = l.split_once('\t').unwrap();
            (text.to_string(), secret.to_string())
        })
        .collect();
    assert!(cases.len() >= 3);
    for (text, secret) in &cases {
        let out = r.redact_bytes(text.as_bytes(), &mut []);
        let out = String::from_utf8_lossy(&out);
        assert!(!out.contains(secret.as_str()), "{secret} survived in {out}");
        assert!(out.contains("[REDACTED:secret_key]"), "{out}");
    }
}

/// The clean fixture plus every loghub line when `../shared/data` is present.
fn clean_lines() -> Vec<String> {
    let mut lines: Vec<String> = fixture("clean.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(String::from)
        .collect();
    for path in data_files("loghub", "log") {
        lines.extend(
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(String::from),
        );
    }
    lines
}

fn data_dir() -> PathBuf {
    repo().join("../shared/data")
}

fn data_files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data_dir().join(dir)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

#[test]
fn loghub_lines_change_only_where_an_email_address_is_written() {
    let r = Redactor::new(RedactConfig::default()).unwrap();
    let files = data_files("loghub", "log");
    if files.is_empty() {
        eprintln!("skipped: {} not present", data_dir().display());
        return;
    }
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut counts = vec![0; r.rule_names().len()];
        let changed: Vec<&str> = text
            .lines()
            .filter(|l| r.redact_text(l, &mut counts) != *l)
            .collect();
        println!(
            "{}: {} lines, {} changed {:?}",
            name(&path),
            text.lines().count(),
            changed.len(),
            changed
        );
        // The one real find: the kernel banner of Linux_2k.log names its builder's address.
        let emails = counts[r.rule_names().iter().position(|n| n == "email").unwrap()];
        assert_eq!(
            counts.iter().sum::<u64>(),
            emails,
            "{}: {changed:?}",
            name(&path)
        );
        assert!(
            changed.iter().all(|l| l.contains("bhcompile@")),
            "{}: {changed:?}",
            name(&path)
        );
    }
}

#[test]
fn loghub_with_optional_rules_changes_only_by_optional_rules_and_email() {
    let config = RedactConfig {
        optional: vec!["ipv4".into(), "ipv6".into(), "phone".into()],
        ..Default::default()
    };
    let r = Redactor::new(config).unwrap();
    for path in data_files("loghub", "log") {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut counts = vec![0; r.rule_names().len()];
        for line in text.lines() {
            r.redact_text(line, &mut counts);
        }
        let by_other: u64 = r
            .rule_names()
            .iter()
            .zip(&counts)
            .filter(|(n, _)| !OPTIONAL.contains(&n.as_str()) && n.as_str() != "email")
            .map(|(_, c)| c)
            .sum();
        assert_eq!(by_other, 0, "{}", name(&path));
    }
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Redacts an NDJSON line member by member through `write_field`, as the decoder will.
fn store_ndjson_line(r: &Redactor, line: &str, counts: &mut [u64]) -> String {
    use sonic_rs::JsonContainerTrait;
    let value: sonic_rs::Value = sonic_rs::from_str(line).unwrap();
    let mut out = String::from("{");
    for (k, v) in value.as_object().unwrap().iter() {
        r.write_field(k, &sonic_rs::to_string(v).unwrap(), &mut out, counts);
    }
    out.push('}');
    out
}

fn real_ndjson(file: &str) -> Option<String> {
    std::fs::read_to_string(data_dir().join(file)).ok()
}

fn captures(text: &str, pattern: &str) -> Vec<String> {
    let re = regex::Regex::new(pattern).unwrap();
    let mut found: Vec<String> = re.captures_iter(text).map(|c| c[1].to_string()).collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn zeek_ntlm_passwords_in_usernames_are_redacted() {
    let Some(text) = real_ndjson("zeek/ntlm.ndjson") else {
        return eprintln!("skipped: zeek/ntlm.ndjson not present");
    };
    let r = Redactor::new(RedactConfig::default()).unwrap();
    let pairs = captures(&text, r#""username":"([^":]+:[^"]+)""#);
    assert!(pairs.len() >= 10);
    let mut counts = vec![0; r.rule_names().len()];
    let stored: Vec<String> = text
        .lines()
        .map(|l| store_ndjson_line(&r, l, &mut counts))
        .collect();
    for pair in &pairs {
        let password = pair.split_once(':').unwrap().1;
        let leaked = format!(":{password}\"");
        assert!(
            stored.iter().all(|s| !s.contains(&leaked)),
            "{password} survived"
        );
    }
    let users = stored
        .iter()
        .filter(|s| s.contains("Administrator:[REDACTED:user_password]"))
        .count();
    println!(
        "ntlm: {} leaked user:password pairs redacted, {users} Administrator lines",
        pairs.len()
    );
    assert!(users > 0);
}

#[test]
fn zeek_smtp_emails_are_redacted() {
    let Some(text) = real_ndjson("zeek/smtp.ndjson") else {
        return eprintln!("skipped: zeek/smtp.ndjson not present");
    };
    let r = Redactor::new(RedactConfig::default()).unwrap();
    let emails = captures(
        &text,
        r"([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})",
    );
    let stored: String = text
        .lines()
        .map(|l| store_ndjson_line(&r, l, &mut []) + "\n")
        .collect();
    println!("smtp: {} distinct emails", emails.len());
    assert!(!emails.is_empty());
    for e in &emails {
        assert!(!stored.contains(e.as_str()), "{e} survived");
    }
}

#[test]
fn cloudtrail_access_key_ids_are_redacted() {
    let Some(text) = real_ndjson("otrf/cloudtrail_ec2_proxy_s3_exfiltration.ndjson") else {
        return eprintln!("skipped: cloudtrail file not present");
    };
    let r = Redactor::new(RedactConfig::default()).unwrap();
    let ids = captures(&text, r#""accessKeyId":"((?:ASIA|AKIA)[A-Z0-9]{16})""#);
    let stored: String = text
        .lines()
        .map(|l| store_ndjson_line(&r, l, &mut []) + "\n")
        .collect();
    let via_bytes: Vec<u8> = text
        .lines()
        .flat_map(|l| r.redact_bytes(l.as_bytes(), &mut []).into_owned())
        .collect();
    println!("cloudtrail: {} distinct access key ids", ids.len());
    assert!(ids.len() >= 5);
    for id in &ids {
        assert!(!stored.contains(id.as_str()), "{id} survived");
        assert!(
            !String::from_utf8_lossy(&via_bytes).contains(id.as_str()),
            "{id} survived in dead letters"
        );
    }
    assert!(
        stored.contains("\"eventName\":\"DescribeInstanceTypes\""),
        "clean members must stay"
    );
}
