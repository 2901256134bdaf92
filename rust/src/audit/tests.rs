//! Tests of the audit chain: JCS edge cases, golden vectors shared with
//! `tests/audit_reference.py`, chaining, seals, and tamper detection (with proptest).

use std::sync::Arc;

use arrow_array::types::UInt8Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, Float64Array, RecordBatch, StringViewArray,
    TimestampNanosecondArray, UInt64Array, UInt8Array,
};
use arrow_select::take::take_record_batch;
use proptest::prelude::*;

use super::canonical::*;
use super::*;
use crate::error::Error;
use crate::schema::{self, event_schema, LEVELS};

/// One event of a fixture; columns not named here are null.
#[derive(Clone)]
pub(super) struct Ev {
    pub ts: i64,
    pub observed: i64,
    pub level: Option<u8>,
    pub category: Option<String>,
    pub service: Option<String>,
    pub trace_id: Option<String>,
    pub user_id: Option<String>,
    pub message: Option<String>,
    pub fields: Option<String>,
    pub user_tier: Option<String>,
    pub revenue: Option<f64>,
    pub sample_rate: f64,
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// The golden events; `tests/audit_reference.py` builds the same three.
pub(super) fn golden_events() -> Vec<Ev> {
    vec![
        Ev {
            ts: 1_704_164_645_123_456_789,
            observed: 1_704_164_645_200_000_000,
            level: Some(1),
            category: s("security.audit_logs"),
            service: s("auth"),
            trace_id: None,
            user_id: s("u-42"),
            message: s("login ok \"quoted\"\n\u{1}é😀"),
            fields: s(r#"{"action":"login","ip":"10.0.0.1"}"#),
            user_tier: s("gold"),
            revenue: None,
            sample_rate: 1.0,
        },
        Ev {
            ts: -1,
            observed: 0,
            level: Some(4),
            category: s("security.audit_logs"),
            service: s("iam"),
            trace_id: s("4bf92f3577b34da6a3ce929d0e0e4736"),
            user_id: None,
            message: s("permission denied"),
            fields: s("{}"),
            user_tier: None,
            revenue: Some(1e21),
            sample_rate: 0.1,
        },
        Ev {
            ts: 4_102_444_799_999_999_999,
            observed: 1_000_000_000,
            level: None,
            category: s("security.audit_logs"),
            service: s("\u{2028}svc\t"),
            trace_id: None,
            user_id: s(""),
            message: None,
            fields: s(r#"{"k":[1,2.5,null]}"#),
            user_tier: None,
            revenue: Some(-1.5e-7),
            sample_rate: 123_456_789.125,
        },
    ]
}

/// A batch with the event schema holding `events`, audit columns null.
pub(super) fn batch_of(events: &[Ev]) -> RecordBatch {
    let n = events.len();
    let texts = |f: fn(&Ev) -> Option<String>| -> ArrayRef {
        Arc::new(events.iter().map(f).collect::<StringViewArray>())
    };
    let null_text = || -> ArrayRef { Arc::new(StringViewArray::new_null(n)) };
    let time = |f: fn(&Ev) -> i64| -> ArrayRef {
        let a = TimestampNanosecondArray::from(events.iter().map(f).collect::<Vec<_>>());
        Arc::new(a.with_timezone("UTC"))
    };
    let keys = UInt8Array::from(events.iter().map(|e| e.level).collect::<Vec<_>>());
    let values = Arc::new(StringViewArray::from(LEVELS.to_vec()));
    let level: DictionaryArray<UInt8Type> = DictionaryArray::new(keys, values);
    let mut columns: Vec<ArrayRef> = vec![time(|e| e.ts), time(|e| e.observed), Arc::new(level)];
    for name in schema::STRING_COLUMNS {
        columns.push(match name {
            schema::CATEGORY => texts(|e| e.category.clone()),
            schema::SERVICE => texts(|e| e.service.clone()),
            schema::TRACE_ID => texts(|e| e.trace_id.clone()),
            schema::USER_ID => texts(|e| e.user_id.clone()),
            schema::MESSAGE => texts(|e| e.message.clone()),
            schema::USER_TIER => texts(|e| e.user_tier.clone()),
            _ => null_text(),
        });
    }
    columns.push(texts(|e| e.fields.clone()));
    columns.push(Arc::new(
        events.iter().map(|e| e.revenue).collect::<Float64Array>(),
    ));
    columns.push(Arc::new(Float64Array::from_iter_values(
        events.iter().map(|e| e.sample_rate),
    )));
    columns.extend([
        null_text(),
        Arc::new(UInt64Array::new_null(n)),
        null_text(),
        null_text(),
    ]);
    RecordBatch::try_new(event_schema(), columns).expect("fixture matches the schema")
}

fn all(n: usize) -> BooleanArray {
    BooleanArray::from(vec![true; n])
}

fn jcs<T>(write: fn(&mut Vec<u8>, T), v: T) -> String {
    let mut out = Vec::new();
    write(&mut out, v);
    String::from_utf8(out).unwrap()
}

fn text(batch: &RecordBatch, column: &str, row: usize) -> Option<String> {
    let c = batch.column_by_name(column).unwrap();
    StrCol::new(c.as_ref())
        .unwrap()
        .get(row)
        .map(str::to_string)
}

// ---- JCS edge cases ----

#[test]
fn numbers_take_the_ecmascript_form() {
    let cases = [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.5, "-1.5"),
        (0.1, "0.1"),
        (123_456_789.125, "123456789.125"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e21, "1.5e+21"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (-1.5e-7, "-1.5e-7"),
        (5e-324, "5e-324"),
        (f64::MAX, "1.7976931348623157e+308"),
        (9_007_199_254_740_993.0, "9007199254740992"),
        (0.000_123_4, "0.0001234"),
        (1.0 / 3.0, "0.3333333333333333"),
    ];
    for (value, expected) in cases {
        assert_eq!(jcs(write_f64, value), expected, "{value:e}");
    }
}

#[test]
fn non_finite_floats_become_strings() {
    assert_eq!(jcs(write_f64, f64::NAN), "\"NaN\"");
    assert_eq!(jcs(write_f64, f64::INFINITY), "\"Infinity\"");
    assert_eq!(jcs(write_f64, f64::NEG_INFINITY), "\"-Infinity\"");
}

#[test]
fn integers_beyond_2_pow_53_are_strings() {
    assert_eq!(jcs(write_u64, 0), "0");
    assert_eq!(jcs(write_u64, 9_007_199_254_740_991), "9007199254740991");
    assert_eq!(
        jcs(write_u64, 9_007_199_254_740_992),
        "\"9007199254740992\""
    );
    assert_eq!(jcs(write_u64, u64::MAX), "\"18446744073709551615\"");
    assert_eq!(jcs(write_i64, -9_007_199_254_740_991), "-9007199254740991");
    assert_eq!(jcs(write_i64, i64::MIN), "\"-9223372036854775808\"");
}

#[test]
fn strings_escape_like_json_stringify() {
    assert_eq!(jcs(write_str, "a\"b\\c/"), r#""a\"b\\c/""#);
    assert_eq!(jcs(write_str, "\u{8}\t\n\u{c}\r"), r#""\b\t\n\f\r""#);
    assert_eq!(
        jcs(write_str, "\u{0}\u{1f}\u{7f}"),
        "\"\\u0000\\u001f\u{7f}\""
    );
    assert_eq!(jcs(write_str, "é\u{2028}😀"), "\"é\u{2028}😀\"");
}

#[test]
fn keys_sort_by_utf16_code_units() {
    let mut keys = vec![
        "\u{ffff}",
        "\u{10000}",
        "a",
        "B",
        "\u{e000}",
        "😀",
        "aa",
        "",
    ];
    keys.sort_by(|a, b| utf16_cmp(a, b));
    // U+10000 and U+1F600 are surrogate pairs (0xD800…, 0xD83D…), below U+E000 and U+FFFF.
    assert_eq!(
        keys,
        [
            "",
            "B",
            "a",
            "aa",
            "\u{10000}",
            "😀",
            "\u{e000}",
            "\u{ffff}"
        ]
    );
}

#[test]
fn timestamps_are_rfc3339_with_nanoseconds() {
    assert_eq!(
        jcs(write_timestamp, 0),
        "\"1970-01-01T00:00:00.000000000Z\""
    );
    assert_eq!(
        jcs(write_timestamp, -1),
        "\"1969-12-31T23:59:59.999999999Z\""
    );
    assert_eq!(
        jcs(write_timestamp, 1_704_164_645_123_456_789),
        "\"2024-01-02T03:04:05.123456789Z\""
    );
    assert_eq!(
        jcs(write_timestamp, 951_782_400_000_000_000),
        "\"2000-02-29T00:00:00.000000000Z\""
    );
    assert_eq!(
        jcs(write_timestamp, i64::MIN),
        "\"1677-09-21T00:12:43.145224192Z\""
    );
    assert_eq!(
        jcs(write_timestamp, i64::MAX),
        "\"2262-04-11T23:47:16.854775807Z\""
    );
}

// ---- golden vectors, shared with tests/audit_reference.py ----

const GOLDEN_RECORD_1: &str = concat!(
    r#"{"audit_chain":"w0","audit_prev_hash":"#,
    r#""0000000000000000000000000000000000000000000000000000000000000000","#,
    r#""audit_seq":1,"category":"security.audit_logs","cost_center":null,"feature":null,"#,
    r#""fields":"{\"action\":\"login\",\"ip\":\"10.0.0.1\"}","level":"info","#,
    r#""message":"login ok \"quoted\"\n\u0001é😀","observed_at":"2024-01-02T03:04:05.200000000Z","#,
    r#""parent_span_id":null,"revenue":null,"sample_rate":1,"service":"auth","#,
    r#""session_id":null,"span_id":null,"stack":null,"timestamp":"2024-01-02T03:04:05.123456789Z","#,
    r#""trace_id":null,"user_id":"u-42","user_tier":"gold"}"#
);

const GOLDEN_HASHES: [&str; 3] = [
    "d4085545c48002789761bff9456500ab19494f7ae1b7a1e72ff6d27fad98e84c",
    "0b60c866a04a09ebcab53c3d63aa79ca235d6be85a4d46f4246789e6e7e36c84",
    "6f3d7dc975cb150248904b1c8ccb45b27bce21bfd2a25ac74784bd956cd65a42",
];

#[test]
fn golden_canonical_record() {
    let batch = batch_of(&golden_events());
    let canon = Canonicalizer::new(&batch, false).unwrap();
    let mut out = Vec::new();
    canon.write_row(
        0,
        Some(Links {
            chain: "w0",
            seq: 1,
            prev: GENESIS,
        }),
        &mut out,
    );
    assert_eq!(String::from_utf8(out).unwrap(), GOLDEN_RECORD_1);
}

#[test]
fn golden_chain_hashes() {
    let batch = batch_of(&golden_events());
    let chained = AuditChain::new("w0", None).append(&batch, &all(3)).unwrap();
    let hashes: Vec<_> = (0..3)
        .map(|i| text(&chained, schema::AUDIT_HASH, i).unwrap())
        .collect();
    assert_eq!(hashes, GOLDEN_HASHES);
}

const GOLDEN_FILE: &str =
    "hot/category=security.audit_logs/date=2024-01-02/hour=03/part-w0-1.parquet";
const GOLDEN_SEAL: &str = "5d03e30028c08b3b9cd17d7bfe9a5b2e5d04bd4a8ff1ffe040969c0f3655a829";
const GOLDEN_BIG_SEQ_HASH: &str =
    "043bbc3d7bb4ad1f08c08987aa30e31e6ef4fc51d63d722d8ef30e261f242f3d";

#[test]
fn golden_seal() {
    let time = 1_704_164_645_000_000_000;
    let message = seal::seal_message("w0", 3, GOLDEN_HASHES[2], time, GOLDEN_FILE);
    let expected = format!(
        r#"{{"chain":"w0","file":"{GOLDEN_FILE}","head":"{}","seq":3,"time_ns":"{time}"}}"#,
        GOLDEN_HASHES[2]
    );
    assert_eq!(String::from_utf8(message).unwrap(), expected);
    assert_eq!(
        seal(b"k3y", "w0", 3, GOLDEN_HASHES[2], time, GOLDEN_FILE),
        GOLDEN_SEAL
    );
}

#[test]
fn golden_sequence_beyond_2_pow_53_is_a_string() {
    let batch = batch_of(&golden_events()[..1]);
    let head = Some(((1 << 53) - 1, GOLDEN_HASHES[2].to_string()));
    let chained = AuditChain::new("w1", head).append(&batch, &all(1)).unwrap();
    assert_eq!(
        text(&chained, schema::AUDIT_HASH, 0).unwrap(),
        GOLDEN_BIG_SEQ_HASH
    );
}

// ---- the chain ----

fn events(n: usize) -> Vec<Ev> {
    let base = golden_events();
    (0..n)
        .map(|i| {
            let mut e = base[i % 3].clone();
            e.ts += i as i64;
            e.message = Some(format!("event {i}: user u-{} changed role", i % 97));
            e
        })
        .collect()
}

#[test]
fn append_chains_only_selected_rows() {
    let batch = batch_of(&events(4));
    let mask = BooleanArray::from(vec![true, false, true, false]);
    let mut chain = AuditChain::new("w0", None);
    let out = chain.append(&batch, &mask).unwrap();

    let seq = out.column_by_name(schema::AUDIT_SEQ).unwrap();
    assert_eq!(
        seq.as_ref(),
        &UInt64Array::from(vec![Some(1), None, Some(2), None]) as &dyn Array
    );
    assert_eq!(text(&out, schema::AUDIT_PREV_HASH, 0).unwrap(), GENESIS);
    assert_eq!(
        text(&out, schema::AUDIT_PREV_HASH, 2),
        text(&out, schema::AUDIT_HASH, 0)
    );
    assert_eq!(text(&out, schema::AUDIT_CHAIN, 1), None);
    assert_eq!(
        chain.head(),
        (2, text(&out, schema::AUDIT_HASH, 2).unwrap())
    );
    assert_eq!(out.schema(), event_schema());
}

#[test]
fn chaining_across_batches_equals_one_batch() {
    let evs = events(7);
    let whole = AuditChain::new("w0", None)
        .append(&batch_of(&evs), &all(7))
        .unwrap();
    let mut chain = AuditChain::new("w0", None);
    chain.append(&batch_of(&evs[..3]), &all(3)).unwrap();
    // A restart: a new chain continues from the recovered head.
    let mut resumed = AuditChain::new("w0", Some(chain.finish().unwrap()));
    let tail = resumed.append(&batch_of(&evs[3..]), &all(4)).unwrap();
    assert_eq!(
        text(&tail, schema::AUDIT_HASH, 3),
        text(&whole, schema::AUDIT_HASH, 6)
    );
    assert_eq!(resumed.head().0, 7);
}

#[test]
fn a_finished_chain_refuses_use() {
    let mut chain = AuditChain::new("w0", None);
    assert_eq!(chain.finish().unwrap(), (0, GENESIS.to_string()));
    let batch = batch_of(&events(1));
    assert!(matches!(
        chain.append(&batch, &all(1)),
        Err(Error::Audit(_))
    ));
    assert!(matches!(chain.finish(), Err(Error::Audit(_))));
}

#[test]
fn a_bad_head_or_mask_is_an_error() {
    let batch = batch_of(&events(2));
    let mut bad = AuditChain::new("w0", Some((3, "XYZ".into())));
    assert!(matches!(bad.append(&batch, &all(2)), Err(Error::Audit(_))));
    let mut chain = AuditChain::new("w0", None);
    assert!(matches!(
        chain.append(&batch, &all(3)),
        Err(Error::Audit(_))
    ));
}

#[test]
fn config_selects_categories_and_rules() {
    let mut evs = events(3);
    evs[1].category = s("application.request_logs");
    evs[2].category = s("application.request_logs");
    let batch = batch_of(&evs);
    let mask = AuditConfig::default().select(&batch).unwrap();
    assert_eq!(mask, BooleanArray::from(vec![true, false, false]));

    let config = AuditConfig::from_json(r#"{"rules":[{"column":"level","values":["critical"]}]}"#);
    let mask = config.unwrap().select(&batch).unwrap();
    assert_eq!(mask, BooleanArray::from(vec![true, true, false]));
    assert!(AuditConfig::from_json(r#"{"bogus":1}"#).is_err());
}

// ---- verification and tamper detection ----

fn chained(n: usize) -> (RecordBatch, Checkpoint) {
    let mut chain = AuditChain::new("w0", None);
    let batch = chain.append(&batch_of(&events(n)), &all(n)).unwrap();
    let (seq, head) = chain.finish().unwrap();
    let file = "hot/part-w0-1.parquet".to_string();
    (
        batch,
        Checkpoint {
            chain: "w0".into(),
            seq,
            head,
            time_ns: 7,
            file,
            seal: None,
        },
    )
}

fn sealed(mut c: Checkpoint, key: &[u8]) -> Checkpoint {
    c.seal = Some(seal(key, &c.chain, c.seq, &c.head, c.time_ns, &c.file));
    c
}

fn verify(batch: &RecordBatch, checkpoints: Vec<Checkpoint>, key: Option<&[u8]>) -> ChainReport {
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    let seq = batch.column_by_name(schema::AUDIT_SEQ).unwrap();
    let seq = seq.as_any().downcast_ref::<UInt64Array>().unwrap();
    order.sort_by_key(|&i| seq.value(i as usize));
    let sorted = take(batch, &order);
    let mut verifier = Verifier::new("w0", checkpoints, key, key.is_some()).unwrap();
    verifier.push(&sorted).unwrap();
    verifier.finish()
}

fn take(batch: &RecordBatch, rows: &[u32]) -> RecordBatch {
    take_record_batch(batch, &arrow_array::UInt32Array::from(rows.to_vec())).unwrap()
}

fn replace(batch: &RecordBatch, column: &str, array: ArrayRef) -> RecordBatch {
    let i = batch.schema().index_of(column).unwrap();
    let mut columns = batch.columns().to_vec();
    columns[i] = array;
    RecordBatch::try_new(batch.schema(), columns).unwrap()
}

fn with_text(batch: &RecordBatch, column: &str, row: usize, value: &str) -> RecordBatch {
    let values = (0..batch.num_rows()).map(|i| {
        if i == row {
            Some(value.to_string())
        } else {
            text(batch, column, i)
        }
    });
    replace(batch, column, Arc::new(values.collect::<StringViewArray>()))
}

fn with_seqs(batch: &RecordBatch, swap: (usize, usize)) -> RecordBatch {
    let seq = batch.column_by_name(schema::AUDIT_SEQ).unwrap();
    let mut values = seq
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap()
        .values()
        .to_vec();
    values.swap(swap.0, swap.1);
    replace(
        batch,
        schema::AUDIT_SEQ,
        Arc::new(UInt64Array::from(values)),
    )
}

/// Re-hashes row `row` after an edit, as a forger without the seal key would.
fn rehashed(batch: &RecordBatch, row: usize) -> RecordBatch {
    let prev = text(batch, schema::AUDIT_PREV_HASH, row).unwrap();
    let canon = Canonicalizer::new(batch, true).unwrap();
    let mut record = Vec::new();
    canon.write_row(row, None, &mut record);
    with_text(
        batch,
        schema::AUDIT_HASH,
        row,
        &chain::link_hash(&prev, &record),
    )
}

fn kind_and_seq(report: &ChainReport) -> Option<(FailureKind, u64)> {
    report.failure.as_ref().map(|f| (f.kind, f.seq))
}

#[test]
fn an_intact_chain_verifies() {
    let (batch, checkpoint) = chained(10);
    let report = verify(&batch, vec![sealed(checkpoint.clone(), b"k")], Some(b"k"));
    assert_eq!(report.failure, None);
    assert_eq!(report.records, 10);
    assert!(report.sealed);
    assert_eq!(report.head, (checkpoint.seq, checkpoint.head));
}

#[test]
fn rows_stored_out_of_seq_order_still_verify() {
    let (batch, checkpoint) = chained(6);
    let shuffled = take(&batch, &[3, 0, 5, 1, 4, 2]);
    assert_eq!(verify(&shuffled, vec![checkpoint], None).failure, None);
}

#[test]
fn each_tamper_kind_is_reported_where_it_happened() {
    let (batch, cp) = chained(8);
    let cps = || vec![cp.clone()];
    let edited = with_text(&batch, schema::MESSAGE, 3, "nothing happened");
    assert_eq!(
        kind_and_seq(&verify(&edited, cps(), None)),
        Some((FailureKind::Modified, 4))
    );
    let rewritten = rehashed(&edited, 3);
    assert_eq!(
        kind_and_seq(&verify(&rewritten, cps(), None)),
        Some((FailureKind::Modified, 4))
    );
    let deleted = take(&batch, &[0, 1, 2, 4, 5, 6, 7]);
    assert_eq!(
        kind_and_seq(&verify(&deleted, cps(), None)),
        Some((FailureKind::Deleted, 4))
    );
    let forged = with_text(
        &take(&batch, &[0, 1, 2, 3, 4, 5, 6, 7, 3]),
        schema::MESSAGE,
        8,
        "x",
    );
    assert_eq!(
        kind_and_seq(&verify(&forged, cps(), None)),
        Some((FailureKind::Inserted, 4))
    );
    let swapped = with_seqs(&batch, (2, 5));
    assert_eq!(
        kind_and_seq(&verify(&swapped, cps(), None)),
        Some((FailureKind::Reordered, 3))
    );
    let truncated = take(&batch, &[0, 1, 2, 3, 4, 5]);
    assert_eq!(
        kind_and_seq(&verify(&truncated, cps(), None)),
        Some((FailureKind::Truncated, 7))
    );
}

#[test]
fn seals_are_checked_under_the_key() {
    let (batch, cp) = chained(4);
    let missing = verify(&batch, vec![cp.clone()], Some(b"k"));
    assert_eq!(kind_and_seq(&missing), Some((FailureKind::SealMissing, 4)));
    let wrong = verify(&batch, vec![sealed(cp.clone(), b"other")], Some(b"k"));
    assert_eq!(kind_and_seq(&wrong), Some((FailureKind::SealInvalid, 4)));
    let uncovered = verify(&batch, vec![], Some(b"k"));
    assert_eq!(
        kind_and_seq(&uncovered),
        Some((FailureKind::SealMissing, 1))
    );
    let unsealed = verify(&batch, vec![cp], None);
    assert!(unsealed.failure.is_none() && !unsealed.sealed);
}

#[test]
fn a_row_appended_to_a_checkpointed_file_is_inserted() {
    let (batch, cp) = chained(5);
    let files: StringViewArray = (0..5).map(|_| Some(cp.file.as_str())).collect();
    let batch = replace_or_add(&batch, verify::SOURCE_FILE, Arc::new(files));
    let early = Checkpoint {
        seq: 4,
        head: text(&batch, schema::AUDIT_HASH, 3).unwrap(),
        ..cp
    };
    let report = verify(&batch, vec![early], None);
    assert_eq!(kind_and_seq(&report), Some((FailureKind::Inserted, 5)));
    assert_eq!(
        report.failure.unwrap().file.as_deref(),
        Some("hot/part-w0-1.parquet")
    );
}

fn replace_or_add(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
    let mut fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(arrow_schema::Field::new(
        name,
        array.data_type().clone(),
        true,
    ));
    let mut columns = batch.columns().to_vec();
    columns.push(array);
    RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns).unwrap()
}

#[derive(Clone, Debug)]
enum Tamper {
    Edit(usize),
    Rewrite(usize),
    Delete(usize),
    Insert(usize, bool),
    Swap(usize, usize),
}

fn tamper() -> impl Strategy<Value = (usize, Tamper)> {
    (3usize..30).prop_flat_map(|n| {
        let i = 0..n;
        let op = prop_oneof![
            i.clone().prop_map(Tamper::Edit),
            i.clone().prop_map(Tamper::Rewrite),
            i.clone().prop_map(Tamper::Delete),
            (i.clone(), any::<bool>()).prop_map(|(i, before)| Tamper::Insert(i, before)),
            (i.clone(), i)
                .prop_filter("two rows", |(a, b)| a < b)
                .prop_map(|(a, b)| Tamper::Swap(a, b)),
        ];
        (Just(n), op)
    })
}

fn apply(batch: &RecordBatch, n: usize, op: &Tamper) -> (RecordBatch, FailureKind, u64) {
    let rows: Vec<u32> = (0..n as u32).collect();
    match *op {
        Tamper::Edit(i) => (
            with_text(batch, schema::USER_ID, i, "root"),
            FailureKind::Modified,
            i as u64 + 1,
        ),
        Tamper::Rewrite(i) => (
            rehashed(&with_text(batch, schema::USER_ID, i, "root"), i),
            FailureKind::Modified,
            i as u64 + 1,
        ),
        Tamper::Delete(i) => {
            let kept: Vec<u32> = rows.into_iter().filter(|&r| r != i as u32).collect();
            let kind = if i + 1 == n {
                FailureKind::Truncated
            } else {
                FailureKind::Deleted
            };
            (take(batch, &kept), kind, i as u64 + 1)
        }
        Tamper::Insert(i, before) => {
            let mut order = rows;
            order.insert(if before { i } else { i + 1 }, i as u32);
            let at = if before { i } else { i + 1 };
            (
                with_text(&take(batch, &order), schema::MESSAGE, at, "forged"),
                FailureKind::Inserted,
                i as u64 + 1,
            )
        }
        Tamper::Swap(a, b) => (
            with_seqs(batch, (a, b)),
            FailureKind::Reordered,
            a as u64 + 1,
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn any_single_tamper_is_detected_with_its_kind((n, op) in tamper()) {
        let (batch, cp) = chained(n);
        let (tampered, kind, seq) = apply(&batch, n, &op);
        let report = verify(&tampered, vec![cp], None);
        prop_assert_eq!(kind_and_seq(&report), Some((kind, seq)), "{:?}", op);
    }
}

// ---- speed: cargo test --release audit::tests::speed -- --ignored --nocapture ----

#[test]
#[ignore]
fn speed_of_chaining_and_verifying() {
    let batch = batch_of(&events(8192));
    let record_bytes = {
        let canon = Canonicalizer::new(&batch, false).unwrap();
        let mut out = Vec::new();
        canon.write_row(
            0,
            Some(Links {
                chain: "w0",
                seq: 1,
                prev: GENESIS,
            }),
            &mut out,
        );
        out.len()
    };
    let rounds = 256;
    let mut chain = AuditChain::new("w0", None);
    let start = std::time::Instant::now();
    let mut batches = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        batches.push(chain.append(&batch, &all(8192)).unwrap());
    }
    let chaining = start.elapsed();
    let start = std::time::Instant::now();
    let mut verifier = Verifier::new("w0", vec![], None, false).unwrap();
    for b in &batches {
        verifier.push(b).unwrap();
    }
    let report = verifier.finish();
    let verifying = start.elapsed();
    let total = (rounds * 8192) as f64;
    assert_eq!(report.failure, None);
    assert_eq!(report.records, total as u64);
    eprintln!("records of ~{record_bytes} canonical bytes: {total} records");
    eprintln!(
        "chain:  {:.2} M records/s",
        total / chaining.as_secs_f64() / 1e6
    );
    eprintln!(
        "verify: {:.2} M records/s",
        total / verifying.as_secs_f64() / 1e6
    );
}
