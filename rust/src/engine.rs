//! The per-batch path in one call: decode, sample each row as it is staged, redact and write
//! the kept ones into the columns of their store partition.

use crate::decode::{DecodeOutput, Decoder, Events, Gate, NoScrub, Scrub};
pub use crate::decode::{PartitionKey, PartitionRuns, Partitioned, MAX_PARTITION_BATCHES};
use crate::error::Result;
use crate::sample::Sampler;

/// What one batch produced, with the counters the summary needs.
pub struct Output<E = Partitioned> {
    /// Decoding's output, its `events` sampled: by store partition, or (`E` a `RecordBatch`)
    /// one batch in input order.
    pub decoded: DecodeOutput<E>,
    /// Events kept per sampling rule (empty without a sampler).
    pub kept: Vec<u64>,
    /// Events sampled out per sampling rule (empty without a sampler).
    pub sampled_out: Vec<u64>,
    /// Events whose trace id could not serve as randomness.
    pub fallback_hashes: u64,
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

    /// Decodes, samples and redacts one run of whole lines into the columns of their store
    /// partitions. Rows are sampled as the decoder stages them, before redaction: a dropped row
    /// costs neither redaction nor column space, and sampling conditions read values as sent.
    pub fn process(
        &self,
        data: &[u8],
        source: &str,
        first_line: u64,
        observed_ns: i64,
    ) -> Result<Output> {
        self.process_as(data, source, first_line, observed_ns)
    }

    /// `process`, with the events in one batch in input order or by partition (`E`).
    pub fn process_as<E: Events>(
        &self,
        data: &[u8],
        source: &str,
        first_line: u64,
        observed_ns: i64,
    ) -> Result<Output<E>> {
        let scrub = self.scrub.as_ref();
        let mut rows = self.sampler.as_ref().map(|s| s.rows(observed_ns));
        let gate = rows.as_mut().map(|r| r as &mut dyn Gate);
        let decoded =
            self.decoder
                .decode_gated(data, scrub, gate, source, first_line, observed_ns)?;
        let tally = rows.map(|r| r.tally).unwrap_or_default();
        Ok(Output {
            decoded,
            kept: tally.kept_by_rule,
            sampled_out: tally.dropped_by_rule,
            fallback_hashes: tally.fallback_hashes,
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::RecordBatch;

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
        let out = engine.process(input, "t", 1, 0).unwrap().decoded.events;
        let messages: Vec<Vec<&str>> = out.batches.iter().map(messages).collect();
        assert_eq!(messages, vec![vec!["1", "4"], vec!["2"], vec!["3"]]);
        let keys: Vec<(Option<&str>, i64, usize)> = out
            .keys
            .iter()
            .map(|(k, rows)| (k.category.as_deref(), k.hour, *rows))
            .collect();
        assert_eq!(
            keys,
            vec![(Some("b"), 0, 2), (Some("a"), 0, 1), (Some("b"), 1, 1)]
        );
    }

    #[test]
    fn partitions_past_the_limit_share_one_batch_in_runs() {
        let engine = Engine::new(Decoder::new(DecodeConfig::default()).unwrap(), None, None);
        let m = MAX_PARTITION_BATCHES;
        // Lines 0..=m fall in hours m + 1 down to 1, line m past the limit; then hour 0, hour
        // 2 (line m - 1's, which has its batch) and hour 0 again.
        let mut input: String = (0..=m)
            .map(|i| format!("{{\"ts\":{},\"msg\":\"{i}\"}}\n", (m + 1 - i) * 3600 + 100))
            .collect();
        for (ts, msg) in [(50, "x"), (7250, "y"), (60, "z")] {
            input.push_str(&format!("{{\"ts\":{ts},\"msg\":\"{msg}\"}}\n"));
        }
        let out = engine
            .process(input.as_bytes(), "t", 1, 0)
            .unwrap()
            .decoded
            .events;
        assert_eq!(out.batches.len(), m + 1);
        let runs: Vec<(i64, usize)> = out.keys.iter().map(|(k, n)| (k.hour, *n)).collect();
        let mut expected: Vec<(i64, usize)> = (2..=m as i64 + 1).rev().map(|h| (h, 1)).collect();
        expected[m - 1].1 = 2;
        expected.extend([(1, 1), (0, 2)]);
        assert_eq!(runs, expected);
        let y = vec![(m - 1).to_string(), "y".into()];
        assert_eq!(messages(&out.batches[m - 1]), y);
        assert_eq!(
            messages(&out.batches[m]),
            vec![m.to_string(), "x".into(), "z".into()]
        );
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
                let out = engine.process_as::<RecordBatch>(part, "t", 1, now).unwrap();
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
                .process_as::<RecordBatch>(input.as_bytes(), "t", 1, now)
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

    /// A condition on the timestamp reads it before the row is kept; a kept row whose
    /// timestamp cannot be read keeps it in `fields`, in its place, and is stored at the time
    /// it was observed.
    #[test]
    fn conditions_on_time_read_pending_timestamps() {
        let policy = r#"{"rules":[{"name":"late","where":{"timestamp":{"gt":1e18}},"keep":true},
            {"name":"rest","rate":0}]}"#;
        let input = concat!(
            "{\"a\":1,\"time\":\"yesterday\",\"b\":2,\"msg\":\"unread\"}\n",
            "{\"time\":\"1970-01-01T00:00:05Z\",\"msg\":\"early\"}\n",
            "{\"time\":1700000000,\"msg\":\"late\"}\n",
        );
        let now = 1_800_000_000_000_000_000;
        let out = sampled_engine(policy)
            .process_as::<RecordBatch>(input.as_bytes(), "t", 1, now)
            .unwrap();
        let events = &out.decoded.events;
        assert_eq!(messages(events), ["unread", "late"]);
        let times = events.column_by_name("timestamp").unwrap();
        let times = times.as_primitive::<arrow_array::types::TimestampNanosecondType>();
        assert_eq!(times.values().to_vec(), [now, 1_700_000_000_000_000_000]);
        let fields = events.column_by_name("fields").unwrap().as_string_view();
        assert_eq!(fields.value(0), r#"{"a":1,"time":"yesterday","b":2}"#);
        assert!(arrow_array::Array::is_null(fields, 1));
    }

    /// A timestamp that cannot be read is a member of `fields` to the conditions, in its
    /// place among the others, as it is once stored: the staged sampler decides as the batch
    /// sampler does on the stored rows.
    #[test]
    fn conditions_on_fields_see_unreadable_timestamps() {
        let policy = r#"{"rules":[{"name":"has-ts","where":{"fields.ts":{"exists":true}},
            "keep":true},{"name":"rest","rate":0}]}"#;
        let input = concat!(
            "{\"ts\":\"yesterday\",\"msg\":\"unread\"}\n",
            "{\"ts\":1700000000,\"msg\":\"read\"}\n",
            "{\"a\":1,\"time\":{\"ts\":5},\"msg\":\"nested\"}\n",
        );
        let out = sampled_engine(policy)
            .process_as::<RecordBatch>(input.as_bytes(), "t", 1, 0)
            .unwrap();
        assert_eq!(messages(&out.decoded.events), ["unread"]);
        let exact = r#"{"rules":[{"name":"exact","where":{"fields":"{\"a\":1,\"time\":{\"ts\":5}}"},
            "keep":true},{"name":"rest","rate":0}]}"#;
        let out = sampled_engine(exact)
            .process_as::<RecordBatch>(input.as_bytes(), "t", 1, 0)
            .unwrap();
        assert_eq!(messages(&out.decoded.events), ["nested"]);
    }

    /// A message or stack with escapes is unescaped once its row is kept, and read unescaped
    /// by a condition before that.
    #[test]
    fn conditions_read_escaped_messages_as_text() {
        let policy = r#"{"rules":[{"name":"alarms","where":{"message":{"prefix":["Alarm \""]}},
            "keep":true},{"name":"rest","rate":0}]}"#;
        let input = concat!(
            r#"{"msg":"\u0041larm \"disk\"","stack":"at a\n\tat b"}"#,
            "\n",
            r#"{"msg":"Quiet \"disk\"","stack":"at c\n"}"#,
            "\n",
            r#"{"msg":"Alarm \"net\""}"#,
            "\n",
        );
        let out = sampled_engine(policy)
            .process_as::<RecordBatch>(input.as_bytes(), "t", 1, 0)
            .unwrap();
        let events = &out.decoded.events;
        assert_eq!(messages(events), [r#"Alarm "disk""#, r#"Alarm "net""#]);
        let stacks = events.column_by_name("stack").unwrap().as_string_view();
        assert_eq!(stacks.value(0), "at a\n\tat b");
        assert!(arrow_array::Array::is_null(stacks, 1));
        assert_eq!(out.sampled_out.iter().sum::<u64>(), 1);
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
        let out = engine.process_as::<RecordBatch>(input, "t", 1, 0).unwrap();
        assert_eq!(messages(&out.decoded.events), vec!["a"]);
        let users = out.decoded.events.column_by_name("user_id").unwrap();
        assert_ne!(users.as_string_view().value(0), "u-1");
        assert_eq!(out.sampled_out, vec![0, 0, 1, 0]);
    }

    /// A part's string columns hold only its own bytes: each partition has its own builders.
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
        let mixed = format!("{}{}{}", line("a"), line("b"), line("a"));
        let out = engine.process(mixed.as_bytes(), "t", 1, 0).unwrap();
        let sizes: Vec<(usize, usize)> = out.decoded.events.batches.iter().map(held).collect();
        assert_eq!(sizes, vec![(200, 200), (100, 100)]);
    }

    /// Rows keep their input order within a part: the store sorts each file it writes by time
    /// (ties in input order), which a part's own order does not spare when files hold rows of
    /// many calls.
    #[test]
    fn rows_of_each_part_keep_their_input_order() {
        let engine = Engine::new(Decoder::new(DecodeConfig::default()).unwrap(), None, None);
        let input = br#"{"ts":5,"category":"a","msg":"1"}
{"ts":2,"category":"a","msg":"2"}
{"ts":5,"category":"a","msg":"3"}
{"ts":1,"category":"a","msg":"4"}"#;
        let out = engine.process(input, "t", 1, 0).unwrap().decoded.events;
        assert_eq!(out.batches.len(), 1);
        assert_eq!(messages(&out.batches[0]), vec!["1", "2", "3", "4"]);
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
