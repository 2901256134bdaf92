//! Throughput: `cargo test --release --lib audit::tests::speed -- --ignored --nocapture`.

use std::time::Instant;

use sha2::{Digest, Sha256};

use super::*;

const ROWS: usize = 8192;
const ROUNDS: usize = 128;

/// Nanoseconds this thread has run on a CPU (Linux schedstat), so that a busy shared machine
/// does not distort the per-core figures; wall time where it is unavailable.
fn cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let first = stat.split_whitespace().next().and_then(|v| v.parse().ok());
    first.unwrap_or_else(|| START.get_or_init(Instant::now).elapsed().as_nanos() as u64)
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Millions of records per CPU-second of every thread since `start` (a [`process_cpu_s`]).
fn per_cpu_second(records: usize, start: Option<f64>) -> String {
    match (start, process_cpu_s()) {
        (Some(a), Some(b)) if b > a => format!("{:.2}", records as f64 / (b - a) / 1e6),
        _ => "n/a".to_string(),
    }
}

/// CPU seconds used by the whole process (all threads), from `/proc/self/stat` in clock ticks
/// of 10 ms; `None` where unavailable.
fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// Millions of records per CPU-second since `start` (a [`cpu_ns`] reading).
fn rate(records: usize, start: u64) -> f64 {
    records as f64 / (cpu_ns() - start) as f64 * 1e3
}

/// `batch` with the location columns a store reader adds.
fn with_source(batch: &RecordBatch, k: usize) -> RecordBatch {
    let file =
        format!("hot/category=security.audit_logs/date=2024-01-02/hour=03/part-w0-{k}.parquet");
    let files: StringViewArray = (0..ROWS).map(|_| Some(file.as_str())).collect();
    let batch = replace_or_add(batch, verify::SOURCE_FILE, Arc::new(files));
    let rows = arrow_array::UInt32Array::from_iter_values(0..ROWS as u32);
    replace_or_add(&batch, verify::SOURCE_ROW, Arc::new(rows))
}

#[test]
#[ignore]
fn speed_of_chaining_and_verifying() {
    let batch = batch_of(&events(ROWS));
    let total = ROWS * ROUNDS;
    let links = Some(Links {
        chain: "w0",
        seq: 1,
        prev: GENESIS,
    });
    let canon = Canonicalizer::new(&batch, false).unwrap();
    let mut buf = Vec::with_capacity(1024);

    let start = cpu_ns();
    let mut bytes = 0;
    for _ in 0..ROUNDS {
        for row in 0..ROWS {
            buf.clear();
            canon.write_row(row, links, &mut buf);
            bytes += buf.len();
        }
    }
    let encode = rate(total, start);
    let start = cpu_ns();
    let mut digest = [0u8; 32];
    for _ in 0..total {
        digest = Sha256::digest(&buf).into();
    }
    let hash = rate(total, start);
    assert_ne!(digest, [0u8; 32]);

    // Steady state, as in the pipeline: each chained batch is written and dropped. Large
    // batches are encoded on every core, so time by the clock and by all threads' CPU.
    let mut chain = AuditChain::new("w0", None);
    let (wall, cpu) = (Instant::now(), process_cpu_s());
    for _ in 0..ROUNDS {
        assert_eq!(chain.append(&batch, &all(ROWS)).unwrap().num_rows(), ROWS);
    }
    let chaining = total as f64 / wall.elapsed().as_secs_f64() / 1e6;
    let chaining_cpu = per_cpu_second(total, cpu);
    let mut chain = AuditChain::new("w0", None);
    let batches: Vec<_> = (0..ROUNDS)
        .map(|k| with_source(&chain.append(&batch, &all(ROWS)).unwrap(), k))
        .collect();
    // Verification spreads hashing over the cores: time it by the clock and by the CPU
    // seconds of every thread.
    let (wall, cpu) = (Instant::now(), process_cpu_s());
    let mut verifier = Verifier::new("w0", vec![], None, false).unwrap();
    batches.iter().for_each(|b| verifier.push(b).unwrap());
    let report = verifier.finish();
    let verifying = total as f64 / wall.elapsed().as_secs_f64() / 1e6;
    let verifying_cpu = per_cpu_second(total, cpu);

    assert_eq!((report.failure, report.records), (None, total as u64));
    eprintln!(
        "{total} records, {} canonical bytes each on average",
        bytes / total
    );
    eprintln!("per CPU-second: encode only: {encode:.2} M/s, SHA-256 only: {hash:.2} M/s");
    eprintln!("chain: {chaining:.2} M records/s wall, {chaining_cpu} M per CPU-second");
    eprintln!("verify: {verifying:.2} M records/s wall, {verifying_cpu} M per CPU-second");
}

/// The standard mix as the benches chain it: 200,000 generated events decoded, three
/// categories audited. `cargo test --release --lib audit::tests::speed::mix -- --ignored
/// --nocapture`
#[test]
#[ignore]
fn mix_chaining() {
    use crate::decode::{DecodeConfig, Decoder, NoScrub};
    let mut data = Vec::new();
    crate::generate::generate(200_000, 42, &mut data);
    let decoder = Decoder::new(DecodeConfig::default()).unwrap();
    let batch = decoder
        .decode(&data, &NoScrub, "bench", 1, 0)
        .unwrap()
        .events;
    let select = AuditConfig::from_json(
        r#"{"categories":["security.audit_logs","application.request_logs","application.logs"]}"#,
    )
    .unwrap();
    let mask = select.select(&batch).unwrap();
    let records = mask.true_count();

    let canon = Canonicalizer::new(&batch, false).unwrap();
    let links = Some(Links {
        chain: "w0",
        seq: 1,
        prev: GENESIS,
    });
    let (mut buf, mut bytes) = (Vec::with_capacity(1024), 0);
    let mut encode = f64::MAX;
    for _ in 0..5 {
        let start = cpu_ns();
        for row in (0..batch.num_rows()).filter(|&r| mask.value(r)) {
            buf.clear();
            buf.extend_from_slice(GENESIS.as_bytes());
            canon.write_row(row, links, &mut buf);
            bytes += buf.len();
        }
        encode = encode.min((cpu_ns() - start) as f64);
    }
    let mut hashed = f64::MAX;
    for _ in 0..5 {
        let start = cpu_ns();
        let mut prev = [b'0'; 64];
        for row in (0..batch.num_rows()).filter(|&r| mask.value(r)) {
            let prev_str = std::str::from_utf8(&prev).unwrap();
            prev = chain::row_link_hash(&canon, row, prev_str, links, &mut buf);
        }
        hashed = hashed.min((cpu_ns() - start) as f64);
    }
    let mut chain_best = f64::MAX;
    for _ in 0..5 {
        let mut chain = AuditChain::new("w0", None);
        let start = cpu_ns();
        chain.append(&batch, &mask).unwrap();
        chain_best = chain_best.min((cpu_ns() - start) as f64);
    }
    eprintln!(
        "{records} records of {} rows, {} bytes hashed per record on average",
        batch.num_rows(),
        bytes / records / 5
    );
    eprintln!(
        "per CPU-second: encode {:.2} M/s, encode and hash {:.2} M/s, chain {:.2} M/s",
        records as f64 / encode * 1e3,
        records as f64 / hashed * 1e3,
        records as f64 / chain_best * 1e3
    );
}
