//! The per-batch path in one call: decode, sample each row as it is staged, redact and write
//! the kept ones, then order them by store partition.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{
    Array, ArrayRef, RecordBatch, StringViewArray, TimestampNanosecondArray, UInt32Array,
};
use arrow_schema::DataType;
use arrow_select::take::take_record_batch;

use crate::decode::{DecodeOutput, Decoder, Gate, NoScrub, Scrub};
use crate::error::Result;
use crate::sample::Sampler;
use crate::schema::{CATEGORY, TIMESTAMP};

/// What one batch produced, with the counters the summary needs.
pub struct Output {
    /// Decoding's output, its `events` sampled.
    pub decoded: DecodeOutput,
    /// Events kept per sampling rule (empty without a sampler).
    pub kept: Vec<u64>,
    /// Events sampled out per sampling rule (empty without a sampler).
    pub sampled_out: Vec<u64>,
    /// Events whose trace id could not serve as randomness.
    pub fallback_hashes: u64,
    /// The sampled events, run by run of one store partition (see `split_by_partition`).
    pub partitions: Vec<RecordBatch>,
    /// The store partition of each run of rows in `partitions`, in order, with its rows.
    pub partition_keys: PartitionRuns,
}

/// Store partitions of consecutive runs of rows, each with its row count.
pub type PartitionRuns = Vec<(PartitionKey, usize)>;

/// A store partition: category (null when the events have none) and UTC hour since the epoch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub category: Option<String>,
    pub hour: i64,
}

/// The stages of the core, built once and shared by the threads that feed it.
pub struct Engine {
    decoder: Decoder,
    scrub: Box<dyn Scrub + Send>,
    sampler: Option<Sampler>,
}

impl Engine {
    pub fn new(
        decoder: Decoder,
        scrub: Option<Box<dyn Scrub + Send>>,
        sampler: Option<Sampler>,
    ) -> Engine {
        Engine {
            decoder,
            scrub: scrub.unwrap_or_else(|| Box::new(NoScrub)),
            sampler,
        }
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    pub fn scrub(&self) -> &dyn Scrub {
        self.scrub.as_ref()
    }

    /// Names of the sampling rules, in the order of `Output::sampled_out`.
    pub fn sampling_rules(&self) -> Vec<String> {
        self.sampler
            .as_ref()
            .map_or_else(Vec::new, Sampler::rule_names)
    }

    /// Decodes, samples and redacts one run of whole lines. Rows are sampled as the decoder
    /// stages them, before redaction: a dropped row costs neither redaction nor column space,
    /// and sampling conditions read values as sent.
    pub fn process(
        &self,
        data: &[u8],
        source: &str,
        first_line: u64,
        observed_ns: i64,
    ) -> Result<Output> {
        let scrub = self.scrub.as_ref();
        let mut rows = self.sampler.as_ref().map(|s| s.rows(observed_ns));
        let gate = rows.as_mut().map(|r| r as &mut dyn Gate);
        let decoded =
            self.decoder
                .decode_gated(data, scrub, gate, source, first_line, observed_ns)?;
        let tally = rows.map(|r| r.tally).unwrap_or_default();
        let (partition_keys, partitions) = split_by_partition(&decoded.events)?;
        Ok(Output {
            decoded,
            kept: tally.kept_by_rule,
            sampled_out: tally.dropped_by_rule,
            fallback_hashes: tally.fallback_hashes,
            partitions,
            partition_keys,
        })
    }
}

/// Beyond this many partitions in one batch their runs share one batch: a batch per partition
/// costs far more memory than its few rows when events are scattered over many hours.
pub const MAX_PARTITION_BATCHES: usize = 64;

/// The batch ordered by store partition (category, UTC date and hour), in order of first
/// appearance, rows sorted by timestamp within each partition (ties keep their input order),
/// with each partition's key and row count. Each partition is its own batch with compact
/// string buffers, so a part buffered for a later file holds only its own bytes, not the
/// whole input chunk; past `MAX_PARTITION_BATCHES` partitions the runs share one batch.
pub fn split_by_partition(batch: &RecordBatch) -> Result<(PartitionRuns, Vec<RecordBatch>)> {
    let category = batch.column_by_name(CATEGORY).map(|c| c.as_string_view());
    let ts = batch
        .column_by_name(TIMESTAMP)
        .map(|c| c.as_primitive::<TimestampNanosecondType>());
    let (Some(category), Some(ts)) = (category, ts) else {
        let key = PartitionKey {
            category: None,
            hour: 0,
        };
        return Ok((vec![(key, batch.num_rows())], vec![compact(batch.clone())?]));
    };
    let mut groups = partition_rows(category, ts);
    let in_order = |rows: &[u32]| {
        rows.windows(2)
            .all(|w| ts.value(w[0] as usize) <= ts.value(w[1] as usize))
    };
    for (_, rows) in &mut groups {
        if !in_order(rows) {
            rows.sort_by_key(|&row| ts.value(row as usize));
        }
    }
    let keys = groups.iter().map(|(key, rows)| (key.clone(), rows.len()));
    let keys: PartitionRuns = keys.collect();
    let whole = groups.len() == 1
        && groups[0]
            .1
            .iter()
            .enumerate()
            .all(|(i, &r)| i == r as usize);
    if whole {
        return Ok((keys, vec![compact(batch.clone())?]));
    }
    if groups.len() > MAX_PARTITION_BATCHES {
        let rows: Vec<u32> = groups.into_iter().flat_map(|(_, rows)| rows).collect();
        let part = take_record_batch(batch, &UInt32Array::from(rows))?;
        return Ok((keys, vec![compact(part)?]));
    }
    let parts = groups
        .into_iter()
        .map(|(_, rows)| compact(take_record_batch(batch, &UInt32Array::from(rows))?))
        .collect::<Result<Vec<_>>>()?;
    Ok((keys, parts))
}

/// Row indices per (category, UTC hour), in order of first appearance.
fn partition_rows(
    category: &StringViewArray,
    ts: &TimestampNanosecondArray,
) -> Vec<(PartitionKey, Vec<u32>)> {
    const NS_PER_HOUR: i64 = 3_600_000_000_000;
    // A batch mostly holds a few partitions: they are found by comparing keys, and the map
    // (with its hashing of every row) serves only batches that hold many.
    const SCANNED: usize = 16;
    let mut index: HashMap<(Option<&str>, i64), usize> = HashMap::new();
    let mut groups: Vec<(PartitionKey, Vec<u32>)> = Vec::new();
    for row in 0..ts.len() {
        let name = category.is_valid(row).then(|| category.value(row));
        let hour = ts.value(row).div_euclid(NS_PER_HOUR);
        let found = match groups.len() <= SCANNED {
            true => groups
                .iter()
                .position(|(k, _)| k.hour == hour && k.category.as_deref() == name),
            false => index.get(&(name, hour)).copied(),
        };
        let slot = found.unwrap_or_else(|| {
            let category = name.map(str::to_string);
            groups.push((PartitionKey { category, hour }, Vec::new()));
            index.insert((name, hour), groups.len() - 1);
            groups.len() - 1
        });
        groups[slot].1.push(row as u32);
    }
    groups
}

/// The batch with string columns that hold only their own bytes: a column whose data blocks
/// hold bytes no view points at (a part taken from a larger batch) is copied into fresh ones.
fn compact(batch: RecordBatch) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View => {
                let strings = c.as_string_view();
                let held: usize = strings.data_buffers().iter().map(|b| b.len()).sum();
                // Columns the decoder built for the kept rows alone hold no stranger's bytes.
                match held == strings.total_buffer_bytes_used() {
                    true => c.clone(),
                    false => Arc::new(strings.gc()) as ArrayRef,
                }
            }
            _ => c.clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;

    use super::*;
    use crate::decode::DecodeConfig;
    use crate::sample::SamplePolicy;

    fn messages(batch: &RecordBatch) -> Vec<&str> {
        let column = batch.column_by_name("message").unwrap();
        column.as_string_view().iter().flatten().collect()
    }

    #[test]
    fn batches_split_by_category_and_hour_in_order_of_first_appearance() {
        let engine = Engine::new(Decoder::new(DecodeConfig::default()).unwrap(), None, None);
        let input = br#"{"ts":0,"category":"b","msg":"1"}
{"ts":0,"category":"a","msg":"2"}
{"ts":3600,"category":"b","msg":"3"}
{"ts":1,"category":"b","msg":"4"}"#;
        let out = engine.process(input, "t", 1, 0).unwrap();
        let messages: Vec<Vec<&str>> = out.partitions.iter().map(messages).collect();
        assert_eq!(messages, vec![vec!["1", "4"], vec!["2"], vec!["3"]]);
        let keys: Vec<(Option<&str>, i64, usize)> = out
            .partition_keys
            .iter()
            .map(|(k, rows)| (k.category.as_deref(), k.hour, *rows))
            .collect();
        assert_eq!(
            keys,
            vec![(Some("b"), 0, 2), (Some("a"), 0, 1), (Some("b"), 1, 1)]
        );
    }

    #[test]
    fn many_partitions_share_one_batch_in_runs_sorted_by_time() {
        let engine = Engine::new(Decoder::new(DecodeConfig::default()).unwrap(), None, None);
        let m = MAX_PARTITION_BATCHES;
        // Lines 0..=m fall in hours m down to 0; line m + 1 in hour 0 again, before line m.
        let mut input: String = (0..=m)
            .map(|i| format!("{{\"ts\":{},\"msg\":\"{i}\"}}\n", (m - i) * 3600 + 100))
            .collect();
        input.push_str(&format!("{{\"ts\":50,\"msg\":\"{}\"}}\n", m + 1));
        let out = engine.process(input.as_bytes(), "t", 1, 0).unwrap();
        assert_eq!(out.partitions.len(), 1);
        let runs: Vec<(i64, usize)> = out
            .partition_keys
            .iter()
            .map(|(k, n)| (k.hour, *n))
            .collect();
        let mut expected: Vec<(i64, usize)> = (0..=m as i64).rev().map(|h| (h, 1)).collect();
        expected[m].1 = 2;
        assert_eq!(runs, expected);
        let all = messages(&out.partitions[0]);
        assert_eq!(all[0], "0");
        assert_eq!(&all[m..], &[(m + 1).to_string(), m.to_string()]);
    }

    /// A policy touching every kind of condition and action, adaptive rules included.
    const MIXED_POLICY: &str = r#"{"adaptive":{"window_secs":1.0},"rules":[
        {"name":"slow-http","where":{"fields.http.status":{"ge":500}},"rate":0.5},
        {"name":"flat","where":{"fields.http.method":"GET","service":{"prefix":"a"}},"keep":true},
        {"name":"db","where":{"fields.db.rows":{"lt":100},"trace_id":{"exists":false}},"rate":0.2},
        {"name":"per-service","where":{"level":"debug"},"target_per_sec":50,"key":["service","level"]},
        {"name":"levels","level_rates":{"info":0.3,"warn":0.6}}]}"#;

    fn sampled_engine(policy: &str) -> Engine {
        let sampler = Sampler::new(SamplePolicy::from_json(policy).unwrap()).unwrap();
        Engine::new(
            Decoder::new(DecodeConfig::default()).unwrap(),
            None,
            Some(sampler),
        )
    }

    /// Rows sampled as the decoder stages them get the decisions the batch sampler makes on
    /// the same rows decoded whole: same rows kept, same rates, same counters, across windows.
    #[test]
    fn staged_sampling_decides_as_the_batch_sampler() {
        let mut data = Vec::new();
        crate::generate::generate(6_000, 11, &mut data);
        let cut = data[..data.len() / 2]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap()
            + 1;
        let decoder = Decoder::new(DecodeConfig::default()).unwrap();
        for policy in [r#"{"extends":"cost-optimized"}"#, MIXED_POLICY] {
            let engine = sampled_engine(policy);
            let mut batch = Sampler::new(SamplePolicy::from_json(policy).unwrap()).unwrap();
            let mut dropped = Vec::new();
            // Two calls two seconds apart: the second sees closed adaptive windows.
            for (part, now) in [(&data[..cut], 5_000_000_000), (&data[cut..], 7_000_000_000)] {
                let out = engine.process(part, "t", 1, now).unwrap();
                let whole = decoder.decode(part, &NoScrub, "t", 1, now).unwrap().events;
                let decisions = batch.decide(&whole, now).unwrap();
                let expected = crate::sample::apply(&whole, &decisions).unwrap();
                assert_eq!(out.decoded.events, expected);
                assert_eq!(out.sampled_out, decisions.dropped_by_rule);
                assert_eq!(out.kept, decisions.kept_by_rule);
                assert_eq!(out.fallback_hashes, decisions.fallback_hashes);
                assert!(
                    decisions.dropped() > 300,
                    "{policy}: {}",
                    decisions.dropped()
                );
                dropped = out.sampled_out;
            }
            if policy == MIXED_POLICY {
                // Every rule that can drop did, the adaptive one (4) once its window closed.
                assert!([1, 3, 4, 5].iter().all(|&r| dropped[r] > 0), "{dropped:?}");
            }
        }
    }

    /// Events without a timestamp or a trace id get the same decisions whenever they are
    /// read, by the staged and the batch sampler alike: the time they were observed (their
    /// stored timestamp) is no part of their randomness.
    #[test]
    fn untimed_events_get_the_same_decisions_at_any_time() {
        let policy = r#"{"rules":[{"name":"half","rate":0.5}]}"#;
        let input: String = (0..400)
            .map(|i| format!("{{\"msg\":\"request {i} served\"}}\n"))
            .collect();
        let kept = |now: i64| {
            let out = sampled_engine(policy)
                .process(input.as_bytes(), "t", 1, now)
                .unwrap();
            messages(&out.decoded.events).join(",")
        };
        let first = kept(1_000_000_000);
        assert_eq!(first, kept(9_000_000_000_000));
        let n = first.split(',').count();
        assert!((140..260).contains(&n), "{n}");
        let decoder = Decoder::new(DecodeConfig::default()).unwrap();
        let batch = |now: i64| {
            let events = decoder
                .decode(input.as_bytes(), &NoScrub, "t", 1, now)
                .unwrap()
                .events;
            let mut sampler = Sampler::new(SamplePolicy::from_json(policy).unwrap()).unwrap();
            let kept = crate::sample::apply(&events, &sampler.decide(&events, now).unwrap());
            messages(&kept.unwrap()).join(",")
        };
        assert_eq!(batch(5), first);
        assert_eq!(batch(77_000_000_000), first);
    }

    /// Conditions read values as sent: a rule on a user id matches the id in clear even
    /// though the stored column holds its keyed pseudonym.
    #[test]
    fn conditions_read_values_before_redaction() {
        let policy = r#"{"rules":[{"name":"vip","where":{"user_id":"u-1"},"keep":true},
            {"name":"rest","rate":0}]}"#;
        let sampler = Sampler::new(SamplePolicy::from_json(policy).unwrap()).unwrap();
        let config = r#"{"hash_key":"k","pseudonymize":["user_id"]}"#;
        let rules = crate::redact::Redactor::from_json(config).unwrap();
        let engine = Engine::new(
            Decoder::new(DecodeConfig::default()).unwrap(),
            Some(Box::new(rules)),
            Some(sampler),
        );
        let input = b"{\"user_id\":\"u-1\",\"msg\":\"a\"}\n{\"user_id\":\"u-2\",\"msg\":\"b\"}\n";
        let out = engine.process(input, "t", 1, 0).unwrap();
        assert_eq!(messages(&out.decoded.events), vec!["a"]);
        let users = out.decoded.events.column_by_name("user_id").unwrap();
        assert_ne!(users.as_string_view().value(0), "u-1");
        assert_eq!(out.sampled_out, vec![0, 0, 1, 0]);
    }

    /// A part's string columns hold only its own bytes: a whole batch keeps the decoder's
    /// blocks, a part taken from two partitions gets fresh ones of its own size.
    #[test]
    fn parts_hold_only_their_own_string_bytes() {
        let engine = Engine::new(Decoder::new(DecodeConfig::default()).unwrap(), None, None);
        let long = "x".repeat(100);
        let line = |c: &str| format!("{{\"ts\":0,\"category\":\"{c}\",\"msg\":\"{long}\"}}\n");
        let held = |b: &RecordBatch| {
            let m = b.column_by_name("message").unwrap().as_string_view();
            let held: usize = m.data_buffers().iter().map(|b| b.len()).sum();
            (held, m.total_buffer_bytes_used())
        };
        let whole = engine
            .process(line("a").repeat(3).as_bytes(), "t", 1, 0)
            .unwrap();
        assert_eq!(held(&whole.partitions[0]), (300, 300));
        let mixed = format!("{}{}{}", line("a"), line("b"), line("a"));
        let out = engine.process(mixed.as_bytes(), "t", 1, 0).unwrap();
        let sizes: Vec<(usize, usize)> = out.partitions.iter().map(held).collect();
        assert_eq!(sizes, vec![(200, 200), (100, 100)]);
    }

    #[test]
    fn rows_of_each_part_are_sorted_by_timestamp_ties_in_input_order() {
        let engine = Engine::new(Decoder::new(DecodeConfig::default()).unwrap(), None, None);
        let input = br#"{"ts":5,"category":"a","msg":"1"}
{"ts":2,"category":"a","msg":"2"}
{"ts":5,"category":"a","msg":"3"}
{"ts":1,"category":"a","msg":"4"}"#;
        let out = engine.process(input, "t", 1, 0).unwrap();
        assert_eq!(out.partitions.len(), 1);
        assert_eq!(messages(&out.partitions[0]), vec!["4", "2", "1", "3"]);
    }

    /// The core's cost per event on the standard mix with the bench's stages (redaction, the
    /// cost-optimized policy): `cargo test --release --lib engine::tests::process_throughput
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn process_throughput() {
        use crate::bench_clock::thread_cpu_seconds;
        let mut data = Vec::new();
        crate::generate::generate(400_000, 7, &mut data);
        let redactor = || crate::redact::Redactor::new(Default::default()).unwrap();
        let decoder = || Decoder::new(DecodeConfig::default()).unwrap();
        let drop_all = r#"{"rules":[{"name":"none","rate":0}]}"#;
        let sampler =
            |json: &str| Some(Sampler::new(SamplePolicy::from_json(json).unwrap()).unwrap());
        let engines = [
            (
                "redaction, cost-optimized",
                true,
                sampler(r#"{"extends":"cost-optimized"}"#),
            ),
            ("redaction, keep all", true, None),
            ("redaction, drop all", true, sampler(drop_all)),
            ("decode only, keep all", false, None),
        ];
        let only = std::env::var("QLINGEST_ENGINE").ok();
        let engines = engines
            .into_iter()
            .filter(|(n, _, _)| only.as_deref().map_or(true, |o| n.contains(o)));
        for (name, redact, sampler) in engines {
            let redactor: Option<Box<dyn Scrub + Send>> = redact.then(|| Box::new(redactor()) as _);
            let engine = Engine::new(decoder(), redactor, sampler);
            let mut best = f64::MAX;
            for _ in 0..5 {
                let cpu = thread_cpu_seconds();
                let mut lines = 0;
                for chunk in crate::decode::tests::chunks(&data, 4 << 20) {
                    lines += engine.process(chunk, "bench", 1, 0).unwrap().decoded.lines;
                }
                assert_eq!(lines, 400_000);
                best = best.min(thread_cpu_seconds() - cpu);
            }
            let per_event = best / 400_000.0 * 1e6;
            println!(
                "process, {name}: {per_event:.3} us per event, {:.2} M/s per CPU second",
                1.0 / per_event
            );
        }
    }
}
