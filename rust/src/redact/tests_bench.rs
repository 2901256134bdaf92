//! Throughput of the engine on the standard mix: ~350-byte events, 2% carrying a secret.
//! Run: `cargo test --release --lib redact::tests_bench -- --ignored --nocapture`.

use std::time::Instant;

use super::*;
use crate::bench_clock::thread_cpu_seconds;

/// One generated event: its message and its `fields` members (key, raw JSON value).
pub struct Event {
    pub message: String,
    pub fields: Vec<(String, String)>,
}

/// A tiny deterministic generator, so the mix is the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/users/profile",
    "/checkout/confirm",
    "/health",
];
const SECRETS: &[&str] = &[
    "card 4111 1111 1111 1111 declined",
    "mail to alice@example.com failed",
    "token=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "auth Bearer abcDEF123456ghiJKL789mno",
    "ssn 123-45-6789 verified",
];

/// A ~350-byte event; `secret` plants one secret in the message or a nested field.
pub fn event(rng: &mut Rng, secret: bool) -> Event {
    let path = PATHS[rng.below(PATHS.len() as u64) as usize];
    let mut message = format!(
        "GET {path}/{} completed status={} in {}ms region=eu-west-1 pod=web-7f9c{}",
        rng.below(100_000),
        [200, 201, 404, 500][rng.below(4) as usize],
        rng.below(900),
        rng.below(1000)
    );
    let trace = format!("{:016x}{:016x}", rng.next(), rng.next());
    let mut note = format!("cache hit ratio {}.{}", rng.below(100), rng.below(10));
    if secret {
        let s = SECRETS[rng.below(SECRETS.len() as u64) as usize];
        match rng.below(2) {
            0 => message = format!("{message} {s}"),
            _ => note = s.to_string(),
        }
    }
    let fields = vec![
        ("http.method".into(), "\"GET\"".into()),
        ("http.status_code".into(), rng.below(600).to_string()),
        (
            "duration_ms".into(),
            format!("{}.{}", rng.below(900), rng.below(100)),
        ),
        ("trace_ref".into(), format!("\"{trace}\"")),
        ("tags".into(), "[\"checkout\",\"eu\",\"canary\"]".into()),
        (
            "http.user_agent".into(),
            "\"Mozilla/5.0 (X11; Linux x86_64) shop-client/2.4\"".into(),
        ),
        (
            "attrs".into(),
            format!(
                "{{\"retry\":{},\"note\":\"{note}\",\"cache\":\"hit\"}}",
                rng.below(3)
            ),
        ),
    ];
    Event { message, fields }
}

/// Redacts one event the way the pipeline will; returns the stored bytes.
pub fn redact_event(
    r: &Redactor,
    e: &Event,
    out: &mut String,
    counts: &mut [u64],
    batched: bool,
) -> usize {
    out.clear();
    let message = r.redact_text(&e.message, counts);
    out.push('{');
    if batched {
        let members: Vec<(&str, &str)> = e
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        r.write_fields(&members, out, counts);
    } else {
        for (k, v) in &e.fields {
            r.write_field(k, v, out, counts);
        }
    }
    out.push('}');
    message.len() + out.len()
}

#[test]
#[ignore = "throughput measurement; run in release with --ignored --nocapture"]
fn throughput_standard_mix() {
    for batched in [false, true] {
        measure(batched);
    }
}

fn measure(batched: bool) {
    let r = Redactor::new(RedactConfig::default()).unwrap();
    let mut rng = Rng::new(42);
    let events: Vec<Event> = (0..100_000).map(|i| event(&mut rng, i % 50 == 0)).collect();
    let bytes: usize = events
        .iter()
        .map(|e| {
            e.message.len()
                + e.fields
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 4)
                    .sum::<usize>()
        })
        .sum();
    let mut counts = vec![0; r.rule_names().len()];
    let mut out = String::new();
    let (mut best_cpu, mut best_wall) = (f64::MAX, f64::MAX);
    for _ in 0..10 {
        let (wall, cpu) = (Instant::now(), thread_cpu_seconds());
        let mut sink = 0;
        for e in &events {
            sink += redact_event(&r, e, &mut out, &mut counts, batched);
        }
        best_cpu = best_cpu.min(thread_cpu_seconds() - cpu);
        best_wall = best_wall.min(wall.elapsed().as_secs_f64());
        assert!(sink > bytes / 2);
    }
    // CPU time of this thread: the machine is shared, so wall time includes other people's work.
    let per_core = events.len() as f64 / best_cpu;
    println!(
        "redaction ({}): {:.2} M events/s per core (thread CPU time), {:.2} M/s wall, {:.0} MB/s, \
         mean event {} bytes, 2% with secrets",
        if batched {
            "write_fields"
        } else {
            "write_field per member"
        },
        per_core / 1e6,
        events.len() as f64 / best_wall / 1e6,
        bytes as f64 / best_cpu / 1e6,
        bytes / events.len()
    );
    assert!(counts.iter().sum::<u64>() >= 5 * 2000);
}

#[test]
#[ignore = "throughput measurement of the prefilter alone"]
fn throughput_prefilter_parts() {
    let r = Redactor::new(RedactConfig::default()).unwrap();
    let mut rng = Rng::new(7);
    let events: Vec<Event> = (0..100_000).map(|_| event(&mut rng, false)).collect();
    let texts: Vec<String> = events
        .iter()
        .map(|e| {
            e.fields
                .iter()
                .fold(e.message.clone(), |acc, (k, v)| format!("{acc}\n{k}\n{v}"))
        })
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let start = thread_cpu_seconds();
    let hits = texts.iter().filter(|t| r.prefilter.scan(t) != 0).count();
    let secs = thread_cpu_seconds() - start;
    let mut by_rule = vec![0; 64];
    for t in &texts {
        let m = r.prefilter.scan(t);
        (0..r.rules.len())
            .filter(|i| m & (1 << i) != 0)
            .for_each(|i| by_rule[i] += 1);
    }
    let named: Vec<(&str, i32)> = r
        .rules
        .iter()
        .zip(&by_rule)
        .filter(|(_, c)| **c > 0)
        .map(|(r, c)| (r.name.as_str(), *c))
        .collect();
    println!(
        "prefilter hits by rule: {named:?} e.g. {:?}",
        texts.iter().find(|t| r.prefilter.scan(t) != 0)
    );
    println!(
        "prefilter: {:.0} MB/s, {:.2} M events/s, {hits} hits",
        bytes as f64 / secs / 1e6,
        texts.len() as f64 / secs / 1e6
    );
}

/// What redaction adds inside the decoder, in CPU time of this thread (the machine is shared).
/// Run: `cargo test --release --lib redact::tests_bench::decode_cost -- --ignored --nocapture`.
#[test]
#[ignore = "throughput measurement; run in release with --ignored --nocapture"]
fn decode_cost() {
    use crate::decode::{DecodeConfig, Decoder, NoScrub, Scrub};
    let mut data = Vec::new();
    crate::generate::generate(200_000, 7, &mut data);
    let cut = data[..data.len() / 2]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    let decoder = Decoder::new(DecodeConfig::default()).unwrap();
    let redactor = Redactor::new(RedactConfig::default()).unwrap();
    let scrubs: [&dyn Scrub; 2] = [&NoScrub, &redactor];
    let best = scrubs.map(|scrub| {
        (0..5)
            .map(|_| {
                let start = thread_cpu_seconds();
                for chunk in [&data[..cut], &data[cut..]] {
                    decoder.decode(chunk, scrub, "bench", 1, 0).unwrap();
                }
                thread_cpu_seconds() - start
            })
            .fold(f64::MAX, f64::min)
    });
    let per_event = |secs: f64| secs / 200_000.0 * 1e6;
    println!(
        "decode per core (thread CPU time): {:.2} M events/s without redaction, {:.2} M/s with; \
         redaction adds {:.2} µs per event",
        1.0 / per_event(best[0]),
        1.0 / per_event(best[1]),
        per_event(best[1] - best[0])
    );
}

/// Redaction of one part of a row only: column values and messages, or `fields`.
struct Part<'r> {
    redactor: &'r Redactor,
    columns: bool,
}

impl crate::decode::Scrub for Part<'_> {
    fn text<'a>(&self, text: &'a str, counts: &mut [u64]) -> Cow<'a, str> {
        match self.columns {
            true => self.redactor.redact_text(text, counts),
            false => Cow::Borrowed(text),
        }
    }

    fn field(&self, key: &str, raw: &str, out: &mut String, counts: &mut [u64]) -> bool {
        match self.columns {
            true => crate::decode::NoScrub.field(key, raw, out, counts),
            false => self.redactor.write_field(key, raw, out, counts),
        }
    }

    fn bytes<'a>(&self, raw: &'a [u8], counts: &mut [u64]) -> Cow<'a, [u8]> {
        self.redactor.redact_bytes(raw, counts)
    }

    fn pseudonym(&self, column: &str, value: &str) -> Option<String> {
        self.redactor.pseudonymize(column, value)
    }

    fn rule_count(&self) -> usize {
        self.redactor.names.len()
    }
}

/// `decode_cost` split: what redacting column values and messages adds, and what `fields` adds.
/// Run: `cargo test --release --lib redact::tests_bench::decode_cost_by_part -- --ignored
/// --nocapture`.
#[test]
#[ignore = "throughput measurement; run in release with --ignored --nocapture"]
fn decode_cost_by_part() {
    use crate::decode::{DecodeConfig, Decoder, NoScrub, Scrub};
    let mut data = Vec::new();
    crate::generate::generate(200_000, 7, &mut data);
    let decoder = Decoder::new(DecodeConfig::default()).unwrap();
    let redactor = Redactor::new(RedactConfig::default()).unwrap();
    let columns = Part {
        redactor: &redactor,
        columns: true,
    };
    let fields = Part {
        redactor: &redactor,
        columns: false,
    };
    let scrubs: [&dyn Scrub; 4] = [&NoScrub, &columns, &fields, &redactor];
    let best = scrubs.map(|scrub| {
        (0..5)
            .map(|_| {
                let start = thread_cpu_seconds();
                decoder.decode(&data, scrub, "bench", 1, 0).unwrap();
                thread_cpu_seconds() - start
            })
            .fold(f64::MAX, f64::min)
    });
    let added = |secs: f64| (secs - best[0]) / 200_000.0 * 1e6;
    println!(
        "redaction adds per event (thread CPU time): column values and messages {:.2} µs, \
         fields {:.2} µs, both {:.2} µs",
        added(best[1]),
        added(best[2]),
        added(best[3])
    );
}

/// CPU per `write_field` call for each `fields` key of the standard mix, with how many of its
/// values are clean; `QLINGEST_KEY` picks one key, `QLINGEST_ROUNDS` the passes (20):
/// `cargo test --release --lib field_cost_by_key -- --ignored --nocapture`.
#[test]
#[ignore]
fn field_cost_by_key() {
    use sonic_rs::JsonContainerTrait;
    let mut data = Vec::new();
    crate::generate::generate(50_000, 7, &mut data);
    let mut by_key: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: sonic_rs::Value = sonic_rs::from_slice(line).unwrap();
        for (k, val) in v.as_object().unwrap().iter() {
            // The members that reach `fields`: no column of the schema takes them.
            if crate::decode::keys::target(k) == crate::decode::keys::Target::Fields {
                by_key
                    .entry(k.to_string())
                    .or_default()
                    .push(val.to_string());
            }
        }
    }
    let r = crate::redact::Redactor::new(Default::default()).unwrap();
    let mut counts = vec![0; r.rule_names().len()];
    let mut out = String::new();
    let only = std::env::var("QLINGEST_KEY").ok();
    let rounds: usize = std::env::var("QLINGEST_ROUNDS").map_or(20, |r| r.parse().unwrap());
    for (k, vals) in by_key
        .iter()
        .filter(|(k, _)| only.as_ref().map_or(true, |o| o == *k))
    {
        let t = crate::bench_clock::thread_cpu_seconds();
        for _ in 0..rounds {
            for v in vals {
                out.clear();
                r.write_field(k, v, &mut out, &mut counts);
            }
        }
        let per =
            (crate::bench_clock::thread_cpu_seconds() - t) / (rounds as f64 * vals.len() as f64);
        let clean = vals.iter().filter(|v| r.field_is_clean(k, v)).count();
        println!(
            "{:>8} {:>8.0} ns  clean {:>6}  {k}",
            vals.len(),
            per * 1e9,
            clean
        );
    }
}
