use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampNanosecondType, UInt8Type};
use arrow_array::RecordBatch;

use super::*;
use crate::bench_clock::thread_cpu_seconds;
use crate::schema;

const OBSERVED: i64 = 1_800_000_000_000_000_000;

fn decode_with(config: DecodeConfig, input: &[u8]) -> DecodeOutput {
    let decoder = Decoder::new(config).unwrap();
    decoder
        .decode(input, &NoScrub, "test", 1, OBSERVED)
        .unwrap()
}

fn decode(input: &[u8]) -> DecodeOutput {
    decode_with(DecodeConfig::default(), input)
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let col = batch.column_by_name(name).unwrap().as_string_view();
    col.iter().map(|v| v.map(str::to_owned)).collect()
}

fn one(batch: &RecordBatch, name: &str) -> Option<String> {
    strings(batch, name).remove(0)
}

fn timestamps(batch: &RecordBatch) -> Vec<i64> {
    let col = batch.column_by_name("timestamp").unwrap();
    col.as_primitive::<TimestampNanosecondType>()
        .values()
        .to_vec()
}

fn levels(batch: &RecordBatch) -> Vec<Option<&'static str>> {
    let dict = batch
        .column_by_name("level")
        .unwrap()
        .as_dictionary::<UInt8Type>();
    dict.keys()
        .iter()
        .map(|k| k.map(|k| schema::LEVELS[k as usize]))
        .collect()
}

fn reasons(out: &DecodeOutput) -> Vec<(u64, String)> {
    let lines = out
        .dead_letters
        .column(1)
        .as_primitive::<arrow_array::types::UInt64Type>();
    let reasons = out.dead_letters.column(2).as_string::<i32>();
    lines
        .values()
        .iter()
        .zip(reasons.iter())
        .map(|(l, r)| (*l, r.unwrap().to_owned()))
        .collect()
}

#[test]
fn known_keys_fill_columns_and_the_rest_goes_to_fields() {
    let line = br#"{"ts":"2024-01-02T03:04:05.123456789+01:00","level":"WARNING","msg":"disk full","service":"api","trace_id":"4BF92F3577B34DA6A3CE929D0E0E4736","http":{"status":503,"path":"/x"},"n":123456789012345678901234567890}"#;
    let out = decode(line);
    let b = &out.events;
    assert_eq!(b.num_rows(), 1);
    assert_eq!(timestamps(b), vec![1_704_161_045_123_456_789]);
    assert_eq!(levels(b), vec![Some("warn")]);
    assert_eq!(one(b, "message").as_deref(), Some("disk full"));
    assert_eq!(one(b, "service").as_deref(), Some("api"));
    assert_eq!(
        one(b, "trace_id").as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(
        one(b, "fields").as_deref(),
        Some(r#"{"http":{"status":503,"path":"/x"},"n":123456789012345678901234567890}"#)
    );
    assert_eq!(one(b, "category").as_deref(), Some("application.logs"));
}

#[test]
fn missing_timestamp_falls_back_to_observed_at() {
    let out = decode(b"{\"message\":\"no time\"}\n{\"time\":\"yesterday\"}\n");
    assert_eq!(timestamps(&out.events), vec![OBSERVED, OBSERVED]);
    assert_eq!(one(&out.events, "fields"), None);
    assert_eq!(
        strings(&out.events, "fields")[1].as_deref(),
        Some(r#"{"time":"yesterday"}"#)
    );
}

/// A timestamp is read once the row is kept; one that cannot be read stays in `fields` where
/// it stood among the members, and a later timestamp key fills the column instead; a null
/// one is the column's null, kept nowhere.
#[test]
fn unreadable_timestamps_keep_their_place_in_fields() {
    /// A gate that keeps every row: the decoder then leaves timestamps to be read at the end.
    struct KeepAll;
    impl Gate for KeepAll {
        fn admit(&mut self, _: &mut Row<'_>, _: i64) -> Option<f64> {
            Some(1.0)
        }
    }
    let decoder = Decoder::new(DecodeConfig::default()).unwrap();
    let gated = |input: &[u8]| {
        let gate: &mut dyn Gate = &mut KeepAll;
        decoder
            .decode_gated::<RecordBatch>(input, &NoScrub, Some(gate), "test", 1, OBSERVED)
            .unwrap()
    };
    let input: &[u8] = b"{\"a\":1,\"time\":\"yesterday\",\"b\":2,\"ts\":1700000000,\"c\":3}\n\
          {\"a\":1,\"time\":\"yesterday\",\"b\":2}\n\
          {\"ts\":1700000000,\"time\":\"2023-11-14T22:13:21Z\"}\n\
          {\"timestamp\":null,\"ts\":1700000000,\"time\":null}\n";
    let (out, deferred) = (decode(input), gated(input));
    assert_eq!(out.events, deferred.events);
    assert_eq!(
        timestamps(&out.events),
        vec![
            1_700_000_000_000_000_000,
            OBSERVED,
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_000,
        ]
    );
    assert_eq!(
        strings(&out.events, "fields"),
        vec![
            Some(r#"{"a":1,"time":"yesterday","b":2,"c":3}"#.to_owned()),
            Some(r#"{"a":1,"time":"yesterday","b":2}"#.to_owned()),
            Some(r#"{"time":"2023-11-14T22:13:21Z"}"#.to_owned()),
            None,
        ]
    );
}

#[test]
fn strict_timestamps_dead_letter_unreadable_ones() {
    let config = DecodeConfig {
        strict_timestamps: true,
        ..Default::default()
    };
    let out = decode_with(
        config,
        b"{\"time\":\"yesterday\"}\n{\"time\":1700000000}\n\
          {\"timestamp\":null,\"ts\":1700000000}\n{\"time\":null}\n",
    );
    assert_eq!(reasons(&out), vec![(1, "bad_timestamp".to_owned())]);
    // A null timestamp is none at all: a later key fills the column, or the time observed.
    assert_eq!(
        timestamps(&out.events),
        vec![
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_000,
            OBSERVED
        ]
    );
    assert_eq!(strings(&out.events, "fields"), vec![None, None, None]);
}

#[test]
fn bad_records_become_dead_letters_and_the_rest_survives() {
    let input = b"{\"message\":\"ok 1\"}\n{bad json\n[1,2]\n\"str\"\n{\"a\":NaN}\n{\"a\":Infinity}\n\xff\xfe\n{\"a\":1} trailing\n{\"message\":\"ok 2\"}";
    let out = decode(input);
    assert_eq!(
        strings(&out.events, "message"),
        vec![Some("ok 1".into()), Some("ok 2".into())]
    );
    let expected = [
        (2, "malformed_json"),
        (3, "not_an_object"),
        (4, "not_an_object"),
        (5, "malformed_json"),
        (6, "malformed_json"),
        (7, "invalid_utf8"),
        (8, "malformed_json"),
    ];
    let expected: Vec<(u64, String)> = expected.iter().map(|(l, r)| (*l, r.to_string())).collect();
    assert_eq!(reasons(&out), expected);
    assert_eq!(out.lines, 9);
}

#[test]
fn crlf_bom_blank_lines_and_no_final_newline() {
    let out = decode(b"\xef\xbb\xbf{\"message\":\"a\"}\r\n\r\n   \n{\"message\":\"b\"}");
    assert_eq!(
        strings(&out.events, "message"),
        vec![Some("a".into()), Some("b".into())]
    );
    assert_eq!(out.blank_lines, 2);
    assert_eq!(out.dead_letters.num_rows(), 0);
}

#[test]
fn empty_input_gives_empty_batches() {
    let out = decode(b"");
    assert_eq!(out.events.num_rows(), 0);
    assert_eq!(out.lines, 0);
    assert_eq!(out.events.schema(), schema::event_schema());
}

#[test]
fn too_long_and_too_deep_lines_are_rejected() {
    let config = DecodeConfig {
        max_line_bytes: 20,
        max_depth: 3,
        ..Default::default()
    };
    let deep = br#"{"a":{"b":{"c":{}}}}"#;
    let long = br#"{"message":"this is longer than twenty bytes"}"#;
    let ok_in_strings = br#"{"a":"[[[[[["}"#;
    let input = [&deep[..], b"\n", long, b"\n", ok_in_strings].concat();
    let out = decode_with(config, &input);
    let expected = vec![(1, "too_deep".to_owned()), (2, "line_too_long".to_owned())];
    assert_eq!(reasons(&out), expected);
    assert_eq!(out.events.num_rows(), 1);
}

#[test]
fn duplicate_keys_first_fills_the_column_later_ones_stay_in_fields() {
    let out = decode(br#"{"message":"first","message":"second","x":1,"x":2}"#);
    assert_eq!(one(&out.events, "message").as_deref(), Some("first"));
    assert_eq!(
        one(&out.events, "fields").as_deref(),
        Some(r#"{"message":"second","x":1,"x":2}"#)
    );
}

#[test]
fn escapes_and_lone_surrogates() {
    let out = decode(br#"{"message":"caf\u00e9 \ud83c\udf89 \"q\""}"#);
    assert_eq!(
        one(&out.events, "message").as_deref(),
        Some("café 🎉 \"q\"")
    );
    let lone = decode(br#"{"message":"a\ud800b"}"#);
    assert_eq!(one(&lone.events, "message").as_deref(), Some("a\u{FFFD}b"));
}

#[test]
fn levels_from_names_and_numbers() {
    let input = br#"{"level":"err"}
{"level":30}
{"severity_number":21}
{"level":4}
{"level":"loud"}
{"level":"30"}
{"severityNumber":"5"}
{"severity_number":" 9 "}
{"level":"4"}"#;
    let out = decode(input);
    // A number written as a string is the level the number is.
    let expected = vec![
        Some("error"),
        Some("info"),
        Some("critical"),
        Some("warn"),
        None,
        Some("info"),
        Some("debug"),
        Some("info"),
        Some("warn"),
    ];
    assert_eq!(levels(&out.events), expected);
    assert_eq!(
        strings(&out.events, "fields")[4].as_deref(),
        Some(r#"{"level":"loud"}"#)
    );
}

#[test]
fn sender_sample_rate_is_used_and_kept() {
    let out = decode(br#"{"sample_rate":10,"message":"m"}"#);
    let rate = out.events.column_by_name("sample_rate").unwrap();
    assert_eq!(
        rate.as_primitive::<arrow_array::types::Float64Type>()
            .value(0),
        10.0
    );
    assert_eq!(
        one(&out.events, "fields").as_deref(),
        Some(r#"{"sample_rate":10}"#)
    );
}

/// A lone surrogate escape becomes U+FFFD in a top-level key as in a value or a nested key,
/// and an escaped key still finds its column.
#[test]
fn escaped_top_level_keys_are_unescaped() {
    let out = decode(b"{\"msg\":\"c\",\"k\\ud800\":1}\n{\"m\\u0073g\":\"d\"}\n");
    assert_eq!(out.dead_letters.num_rows(), 0);
    assert_eq!(
        strings(&out.events, "message"),
        [Some("c".into()), Some("d".into())]
    );
    assert_eq!(
        strings(&out.events, "fields")[0].as_deref(),
        Some("{\"k\u{fffd}\":1}")
    );
}

/// `fields` holds each member as `"key":value`: copied as sent when the line writes it so,
/// rebuilt around its raw value when white space, an escaped key or the full parser's reading
/// comes between; either way the same JSON.
#[test]
fn fields_members_are_written_compact() {
    let lines = [
        r#"{"a":1,"b" : {"c": 2},"msg":"x","\u0064":"y","e":"q\"z","f":[1, 2]}"#,
        // Not strict JSON for the scanner (a trailing space inside), read by the full parser.
        r#"{"a":1,"b":{"c": 2} ,"e":"q\"z","f":[1, 2] }"#,
        r#"{"a":1e400,"b":"\ud800","c":-0.0}"#,
    ];
    let out = decode(lines.join("\n").as_bytes());
    assert_eq!(out.dead_letters.num_rows(), 0);
    assert_eq!(
        strings(&out.events, "fields"),
        [
            Some(r#"{"a":1,"b":{"c": 2},"d":"y","e":"q\"z","f":[1, 2]}"#.into()),
            Some(r#"{"a":1,"b":{"c": 2},"e":"q\"z","f":[1, 2]}"#.into()),
            Some(r#"{"a":1e400,"b":"\ud800","c":-0.0}"#.into()),
        ]
    );
}

/// A sender's rate counts only from 1 to 2^56; others (a probability, an overflowing number,
/// text that is not a number) leave the column at 1 and stay in `fields` as sent.
#[test]
fn sender_sample_rates_out_of_range_are_not_multiplied_in() {
    let input = br#"{"sample_rate":1e308}
{"sample_rate":0.5}
{"sample_rate":"1e300"}
{"sample_rate":"12"}
{"sample_rate":72057594037927936}
{"sample_rate":-3}"#;
    let out = decode(input);
    let rates = out.events.column_by_name("sample_rate").unwrap();
    let rates = rates.as_primitive::<arrow_array::types::Float64Type>();
    assert_eq!(
        rates.values().to_vec(),
        [1.0, 1.0, 1.0, 12.0, 2f64.powi(56), 1.0]
    );
    assert_eq!(
        strings(&out.events, "fields")[0].as_deref(),
        Some(r#"{"sample_rate":1e308}"#)
    );
}

/// A revenue of twelve digits or more is no amount (a card number sent as one, say): it stays
/// in `fields`, where redaction reads it, and the column is null. So are infinities in text.
#[test]
fn revenue_of_card_length_stays_in_fields_where_it_is_redacted() {
    let input = br#"{"revenue":4111111111111111}
{"revenue":"4111 1111 1111 1111"}
{"revenue":99999999999.5}
{"revenue":12.5}"#;
    let redactor = crate::redact::Redactor::new(Default::default()).unwrap();
    let decoder = Decoder::new(DecodeConfig::default()).unwrap();
    let out = decoder.decode(input, &redactor, "t", 1, OBSERVED).unwrap();
    let revenue = out.events.column_by_name("revenue").unwrap();
    let revenue = revenue.as_primitive::<arrow_array::types::Float64Type>();
    let got: Vec<Option<f64>> = revenue.iter().collect();
    assert_eq!(got, [None, None, Some(99999999999.5), Some(12.5)]);
    let fields = strings(&out.events, "fields");
    assert_eq!(
        fields[0].as_deref(),
        Some(r#"{"revenue":"[REDACTED:credit_card]"}"#)
    );
    assert_eq!(
        fields[1].as_deref(),
        Some(r#"{"revenue":"[REDACTED:credit_card]"}"#)
    );
    let text = DecodeConfig {
        format: Format::Text,
        parse: Some(r"^(?P<revenue>\S+) (?P<message>.*)$".into()),
        ..Default::default()
    };
    let out = decode_with(text, b"4111111111111111 paid\ninf paid\n7.25 paid\n");
    let revenue = out.events.column_by_name("revenue").unwrap();
    let revenue = revenue.as_primitive::<arrow_array::types::Float64Type>();
    assert_eq!(revenue.iter().collect::<Vec<_>>(), [None, None, Some(7.25)]);
}

#[test]
fn text_lines_with_a_parse_regex() {
    let config = DecodeConfig {
        format: Format::Text,
        parse: Some(r"^(?P<timestamp>\d{6} \d{6}) (?P<pid>\d+) (?P<level>\w+) (?P<service>[^:]+): (?P<message>.*)$".into()),
        timestamp_format: Some("%y%m%d %H%M%S".into()),
        ..Default::default()
    };
    let input =
        b"081109 203615 148 INFO dfs.DataNode$PacketResponder: Received block\nnot matching\n";
    let out = decode_with(config, input);
    let b = &out.events;
    assert_eq!(
        timestamps(b)[0],
        time::parse_rfc3339("2008-11-09T20:36:15Z").unwrap()
    );
    assert_eq!(levels(b), vec![Some("info"), None]);
    assert_eq!(
        strings(b, "service")[0].as_deref(),
        Some("dfs.DataNode$PacketResponder")
    );
    assert_eq!(strings(b, "message")[0].as_deref(), Some("Received block"));
    assert_eq!(strings(b, "fields")[0].as_deref(), Some(r#"{"pid":"148"}"#));
    assert_eq!(strings(b, "message")[1].as_deref(), Some("not matching"));
    assert_eq!(out.unparsed, 1);
}

#[test]
fn bad_configuration_is_rejected_with_its_name() {
    let err = Decoder::from_json(r#"{"parse":"(unclosed"}"#)
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("parse regex"), "{err}");
    let err = Decoder::from_json(r#"{"fromat":"text"}"#)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("fromat"), "{err}");
}

/// `cargo test --release decode_throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn decode_throughput() {
    let mut data = Vec::new();
    crate::generate::generate(1_000_000, 7, &mut data);
    let decoder = Decoder::new(DecodeConfig::default()).unwrap();
    let redactor = crate::redact::Redactor::new(Default::default()).unwrap();
    let scrubs: [(&str, &dyn Scrub); 2] = [("no redaction", &NoScrub), ("redaction", &redactor)];
    for (name, scrub) in scrubs {
        let (mut best_wall, mut best_cpu) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let (start, cpu) = (std::time::Instant::now(), thread_cpu_seconds());
            let mut rows = 0;
            for chunk in chunks(&data, 4 << 20) {
                let out = decoder.decode(chunk, scrub, "bench", 1, OBSERVED).unwrap();
                rows += out.events.num_rows();
            }
            assert_eq!(rows, 1_000_000);
            best_cpu = best_cpu.min(thread_cpu_seconds() - cpu);
            best_wall = best_wall.min(start.elapsed().as_secs_f64());
        }
        // The machine is shared: thread CPU time leaves out other people's work, wall time not.
        let mb = data.len() as f64 / 1e6;
        println!(
            "decode, {name}: {:.2} M events/s, {:.0} MB/s wall; {:.2} M/s, {:.0} MB/s per CPU \
             second (best of 5)",
            1.0 / best_wall,
            mb / best_wall,
            1.0 / best_cpu,
            mb / best_cpu
        );
    }
}

/// `data` cut after the last newline of every `size` bytes, as the file reader frames it.
pub(crate) fn chunks(data: &[u8], size: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let cut = rest[..rest.len().min(size)]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out
}

#[test]
fn a_secret_in_the_source_name_of_a_dead_letter_is_redacted() {
    let decoder = Decoder::new(DecodeConfig::default()).unwrap();
    let redactor = crate::redact::Redactor::new(Default::default()).unwrap();
    let token = "ghp_aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1wX2";
    let source = format!("in/token={token}.ndjson");
    let out = decoder
        .decode(
            b"{oops\n{\"msg\":\"fine\"}\n",
            &redactor,
            &source,
            1,
            OBSERVED,
        )
        .unwrap();
    let sources = out.dead_letters.column_by_name("source").unwrap();
    let sources = sources.as_string::<i32>();
    assert_eq!(out.dead_letters.num_rows(), 1);
    assert!(!sources.value(0).contains(token), "{}", sources.value(0));
    assert!(sources.value(0).starts_with("in/token=[REDACTED:"));
    assert_eq!(out.events.num_rows(), 1);
}

/// `cargo test --release decode_stages -- --ignored --nocapture`
#[test]
#[ignore]
fn decode_stages() {
    let mut data = Vec::new();
    crate::generate::generate(1_000_000, 7, &mut data);
    let text = std::str::from_utf8(&data).unwrap();
    let time = |name: &str, f: &dyn Fn() -> usize| {
        let mut best = f64::MAX;
        let mut n = 0;
        for _ in 0..5 {
            let cpu = thread_cpu_seconds();
            n = f();
            best = best.min(thread_cpu_seconds() - cpu);
        }
        println!("{name}: {:.0} ns per line ({n})", best * 1e3);
    };
    time("lines", &|| text.lines().map(|l| l.len()).sum());
    time("utf8", &|| {
        simdutf8::basic::from_utf8(&data).map_or(0, |s| s.len())
    });
    time("scan", &|| {
        let mut found = Vec::new();
        text.lines()
            .map(|l| {
                super::scan::object(l, 64, &mut found).unwrap();
                found.len()
            })
            .sum()
    });
    #[cfg(target_arch = "x86_64")]
    if super::stage1::available() {
        let index = std::cell::RefCell::new(super::stage1::Index::default());
        let flat = std::cell::RefCell::new(Vec::new());
        // Buffers reused from run to run, as a chunked decoder would keep them.
        time("stage1", &|| {
            super::stage1::index(&data, &mut index.borrow_mut());
            index.borrow().structural.len()
        });
        time("flatten", &|| {
            super::stage1::flatten(&index.borrow(), &mut flat.borrow_mut());
            flat.borrow().len()
        });
        let flat = flat.into_inner();
        time("walk", &|| {
            flat.iter().map(|&i| usize::from(data[i as usize])).sum()
        });
    }
    let decoder = Decoder::new(DecodeConfig::default()).unwrap();
    time("decode_json", &|| {
        let mut row = builder::Row::default();
        text.lines()
            .map(|l| {
                row.clear();
                decoder.decode_json(l, false, &mut row).ok().unwrap();
                row.members.len()
            })
            .sum()
    });
    time("decode", &|| {
        decoder
            .decode(&data, &NoScrub, "b", 1, OBSERVED)
            .unwrap()
            .events
            .num_rows()
    });
    // One line of the mix repeated: every branch predicted, so the gap to the mix's 4 MB calls
    // is what the mix's variety costs in mispredictions.
    let line = text.lines().nth(2).unwrap();
    let same = format!("{line}\n").repeat(1_000_000);
    time("decode, one line repeated, 4 MB calls", &|| {
        chunks(same.as_bytes(), 4 << 20)
            .iter()
            .map(|c| decoder.decode(c, &NoScrub, "b", 1, OBSERVED).unwrap().lines as usize)
            .sum()
    });
    time("decode, the mix, 4 MB calls", &|| {
        chunks(&data, 4 << 20)
            .iter()
            .map(|c| decoder.decode(c, &NoScrub, "b", 1, OBSERVED).unwrap().lines as usize)
            .sum()
    });
    let mix = data.len() as f64 / 1e6;
    println!(
        "(the repeated line: {} bytes; the mix: {mix:.0} bytes a line)",
        line.len() + 1
    );
}
