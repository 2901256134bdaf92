//! Tests of the audit chain: fixtures here; JCS edge cases and golden vectors shared with
//! `tests/audit_reference.py`, chaining, tamper detection (proptest) and speed in submodules.

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

/// `n` events cycling through the golden ones, each with its own message.
pub(super) fn events(n: usize) -> Vec<Ev> {
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

/// `batch` with one more column.
pub(super) fn replace_or_add(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
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

mod canonical_form;
mod chaining;
mod speed;
mod tamper;
