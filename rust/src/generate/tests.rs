use sonic_rs::{JsonValueTrait, Value};

use super::secrets::luhn_valid;
use super::time::rfc3339;
use super::*;

fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

fn parse(line: &[u8]) -> Value {
    sonic_rs::from_slice(line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)))
}

/// The level code an event's spelling stands for, read back independently of the generator.
fn level_of(event: &Value) -> usize {
    if let Some(n) = event.get("severity_number").and_then(|v| v.as_u64()) {
        return ((n - 1) / 4) as usize - 1;
    }
    let text = event
        .get("level")
        .or(event.get("severity"))
        .and_then(|v| v.as_str())
        .unwrap();
    match text.to_ascii_lowercase().as_str() {
        "debug" | "trace" => 0,
        "info" | "notice" => 1,
        "warn" | "warning" => 2,
        "error" | "err" => 3,
        "critical" | "fatal" | "crit" | "panic" => 4,
        other => panic!("unexpected level spelling {other}"),
    }
}

#[test]
fn same_seed_gives_same_bytes() {
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    generate(2_000, 7, &mut a);
    generate(2_000, 7, &mut b);
    generate(2_000, 8, &mut c);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn chunked_fill_equals_one_shot() {
    let mut whole = Vec::new();
    let stats = generate(1_000, 3, &mut whole);

    let mut generator = Generator::new(3).with_recorded_secrets();
    let mut chunked = Vec::new();
    for n in [1, 299, 700] {
        generator.fill(n, &mut chunked);
    }
    assert_eq!(whole, chunked);
    assert_eq!(&stats, generator.stats());
}

#[test]
fn every_line_is_a_json_object_with_the_common_keys() {
    let mut out = Vec::new();
    let stats = generate(20_000, 11, &mut out);

    let mut count = 0;
    for line in lines(&out) {
        let event = parse(line);
        assert!(event.is_object());
        for key in ["timestamp", "service", "category", "message"] {
            assert!(event.get(key).is_some(), "{key} missing");
        }
        count += 1;
    }
    assert_eq!(count, stats.events);
    assert_eq!(out.len() as u64, stats.bytes);
}

#[test]
fn mean_size_is_about_350_bytes_with_a_long_tail() {
    let mut out = Vec::new();
    let stats = generate(50_000, 1, &mut out);

    let mean = stats.bytes as f64 / stats.events as f64;
    let largest = lines(&out).map(<[u8]>::len).max().unwrap();
    assert!((300.0..=400.0).contains(&mean), "mean {mean}");
    assert!(largest > 4_000, "largest {largest}");
}

#[test]
fn level_shares_match_the_mix_and_the_stats() {
    let mut out = Vec::new();
    let stats = generate(100_000, 5, &mut out);

    let mut seen = [0u64; 5];
    for line in lines(&out) {
        seen[level_of(&parse(line))] += 1;
    }
    assert_eq!(seen, stats.levels);
    for (code, &weight) in LEVEL_WEIGHTS.iter().enumerate() {
        let p = weight as f64 / 1000.0;
        let sd = (p * (1.0 - p) / stats.events as f64).sqrt();
        let share = seen[code] as f64 / stats.events as f64;
        assert!((share - p).abs() < 4.0 * sd, "level {code}: {share} vs {p}");
    }
}

#[test]
fn services_audit_and_secret_shares_are_as_documented() {
    let mut out = Vec::new();
    let stats = generate(100_000, 9, &mut out);

    let audit = lines(&out)
        .filter(|l| {
            parse(l).get("category").and_then(|v| v.as_str()) == Some("security.audit_logs")
        })
        .count() as u64;
    assert_eq!(audit, stats.audit);
    assert!(
        (4_600..5_400).contains(&stats.audit),
        "audit {}",
        stats.audit
    );
    assert!(
        (1_700..2_300).contains(&stats.with_secrets),
        "secrets {}",
        stats.with_secrets
    );
    assert_eq!(stats.services.iter().sum::<u64>(), stats.events);
    assert!(stats.service_counts().all(|(_, n)| n > 1_000));
}

#[test]
fn audit_records_carry_the_audit_keys() {
    let mut out = Vec::new();
    generate(5_000, 2, &mut out);

    let audits: Vec<Value> = lines(&out)
        .map(parse)
        .filter(|e| e.get("category").and_then(|v| v.as_str()) == Some("security.audit_logs"))
        .collect();
    assert!(!audits.is_empty());
    for event in audits {
        for key in [
            "actor",
            "action",
            "resource",
            "result",
            "ip",
            "user_agent",
            "data_category",
            "regulation",
        ] {
            assert!(event.get(key).is_some(), "audit record without {key}");
        }
    }
}

#[test]
fn planted_secrets_are_in_the_output_and_cover_every_kind() {
    let mut out = Vec::new();
    let stats = generate(30_000, 4, &mut out);
    let text = String::from_utf8(out).unwrap();

    assert!(stats.planted.len() as u64 >= stats.with_secrets);
    for secret in &stats.planted {
        assert!(
            text.contains(&secret.value),
            "{} {:?} not in output",
            secret.kind,
            secret.value
        );
    }
    for kind in SECRET_KINDS {
        assert!(
            stats.planted.iter().any(|s| s.kind == kind),
            "no {kind} planted"
        );
    }
}

#[test]
fn planted_cards_pass_luhn_and_lookalikes_fail_it() {
    let mut out = Vec::new();
    let stats = generate(50_000, 6, &mut out);

    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let cards: Vec<_> = stats
        .planted
        .iter()
        .filter(|s| s.kind == "credit_card")
        .collect();
    assert!(cards.len() > 20);
    assert!(cards.iter().all(|c| luhn_valid(&digits(&c.value))));
    let lookalikes: Vec<String> = lines(&out)
        .filter_map(|l| {
            parse(l)
                .get("order_number")
                .and_then(|v| v.as_str().map(String::from))
        })
        .collect();
    assert!(lookalikes.len() > 100);
    assert!(lookalikes.iter().all(|n| n.len() == 16 && !luhn_valid(n)));
}

#[test]
fn traces_group_events_and_ids_are_hex() {
    let mut out = Vec::new();
    let stats = generate(10_000, 12, &mut out);

    let mut traced = 0u64;
    for event in lines(&out).map(parse) {
        let Some(trace) = event.get("trace_id").and_then(|v| v.as_str()) else {
            continue;
        };
        traced += 1;
        assert_eq!(trace.len(), 32);
        assert!(trace.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            event.get("span_id").and_then(|v| v.as_str()).map(str::len),
            Some(16)
        );
    }
    assert!(
        stats.traces * 3 < traced,
        "{} traces over {traced} events",
        stats.traces
    );
}

#[test]
fn nested_fields_and_unicode_occur() {
    let mut out = Vec::new();
    generate(10_000, 13, &mut out);

    let events: Vec<Value> = lines(&out).map(parse).collect();
    let with = |key: &str| events.iter().filter(|e| e.get(key).is_some()).count();
    assert!(with("http") > 3_000);
    assert!(with("db") > 1_000);
    assert!(with("tags") > 1_000);
    let headers = events
        .iter()
        .filter(|e| e.get("http").and_then(|h| h.get("headers")).is_some());
    assert!(headers.count() > 200);
    let non_ascii = events
        .iter()
        .filter(|e| {
            e.get("message")
                .and_then(|m| m.as_str())
                .is_some_and(|m| !m.is_ascii())
        })
        .count();
    assert!(non_ascii > 300, "{non_ascii}");
    assert!(
        String::from_utf8_lossy(&out).contains("\\ud83d"),
        "no escaped surrogate pair"
    );
}

#[test]
fn timestamps_mix_text_and_numbers() {
    let mut out = Vec::new();
    generate(5_000, 14, &mut out);

    let events: Vec<Value> = lines(&out).map(parse).collect();
    let text = events
        .iter()
        .filter(|e| e.get("timestamp").unwrap().is_str())
        .count();
    let numbers = events
        .iter()
        .filter(|e| e.get("timestamp").unwrap().is_number())
        .count();
    assert!(
        text > 2_500 && numbers > 1_000,
        "{text} text, {numbers} numbers"
    );
    assert!(events.iter().any(|e| e
        .get("timestamp")
        .unwrap()
        .as_str()
        .is_some_and(|t| t.ends_with("+05:30"))));
}

#[test]
fn rfc3339_formats_offsets_and_fractions() {
    let mut s = String::new();
    rfc3339(&mut s, 0, 0, 0, true);
    assert_eq!(s, "1970-01-01T00:00:00Z");

    s.clear();
    rfc3339(&mut s, START_NS + 123_456_789, 330, 6, false);
    assert_eq!(s, "2025-01-15T05:30:00.123456+05:30");

    s.clear();
    rfc3339(&mut s, 951_782_400_000_000_000 - 1, -300, 9, false);
    assert_eq!(s, "2000-02-28T18:59:59.999999999-05:00");
}

#[test]
fn luhn_check_digit_matches_known_numbers() {
    assert!(luhn_valid("4111111111111111"));
    assert!(luhn_valid("378282246310005"));
    assert!(!luhn_valid("4111111111111112"));
}

/// Throughput of the generator: `cargo test --release generate -- --ignored --nocapture`.
#[test]
#[ignore]
fn generator_throughput() {
    let mut generator = Generator::new(1);
    let mut out = Vec::with_capacity(64 << 20);
    let start = std::time::Instant::now();
    for _ in 0..10 {
        out.clear();
        generator.fill(100_000, &mut out);
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = generator.stats();
    println!(
        "generated {} events, {:.1} MB in {secs:.2}s: {:.0} MB/s, {:.2} M events/s",
        stats.events,
        stats.bytes as f64 / 1e6,
        stats.bytes as f64 / 1e6 / secs,
        stats.events as f64 / 1e6 / secs
    );
}

/// Writes `QLINGEST_GEN_COUNT` events (seed `QLINGEST_GEN_SEED`) to `QLINGEST_GEN_OUT`.
#[test]
#[ignore]
fn write_mix_file() {
    let Ok(path) = std::env::var("QLINGEST_GEN_OUT") else {
        return;
    };
    let count = std::env::var("QLINGEST_GEN_COUNT").map_or(200_000, |v| v.parse().unwrap());
    let seed = std::env::var("QLINGEST_GEN_SEED").map_or(42, |v| v.parse().unwrap());
    let mut out = Vec::new();
    let stats = generate(count, seed, &mut out);
    std::fs::write(&path, &out).unwrap();
    println!(
        "wrote {} events, {} bytes to {path}: {:?}",
        stats.events, stats.bytes, stats.levels
    );
}
