//! Tests of the sampling stage, with a small seeded generator of event batches.

mod adaptive;
mod bench;
mod config_errors;
mod rules;
mod stats;

use std::sync::Arc;

use arrow_array::builder::StringViewBuilder;
use arrow_array::types::UInt8Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float64Array, RecordBatch, StringViewArray,
    TimestampNanosecondArray, UInt64Array, UInt8Array,
};

use crate::schema::{self, LEVELS};

/// One generated event; `None` leaves the column null.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub ts: i64,
    pub level: Option<u8>,
    pub category: Option<String>,
    pub service: Option<String>,
    pub trace_id: Option<String>,
    pub message: Option<String>,
    pub fields: Option<String>,
    pub feature: Option<String>,
    pub user_tier: Option<String>,
    pub revenue: Option<f64>,
    pub sample_rate: f64,
}

impl Row {
    pub fn new(level: u8) -> Row {
        Row {
            level: Some(level),
            sample_rate: 1.0,
            ..Row::default()
        }
    }
}

/// Builds a batch with the event schema from rows.
pub fn batch(rows: &[Row]) -> RecordBatch {
    let strings = |get: &dyn Fn(&Row) -> Option<&str>| -> ArrayRef {
        let mut b = StringViewBuilder::with_capacity(rows.len());
        rows.iter().for_each(|r| b.append_option(get(r)));
        Arc::new(b.finish())
    };
    let ts: ArrayRef = Arc::new(
        TimestampNanosecondArray::from(rows.iter().map(|r| r.ts).collect::<Vec<_>>())
            .with_timezone("UTC"),
    );
    let keys = UInt8Array::from(rows.iter().map(|r| r.level).collect::<Vec<_>>());
    let names: ArrayRef = Arc::new(StringViewArray::from(LEVELS.to_vec()));
    let level: ArrayRef = Arc::new(DictionaryArray::<UInt8Type>::try_new(keys, names).unwrap());

    // Observed at a time no row was sent at, as the decoder's batches are: every row's
    // timestamp is its own.
    let observed: ArrayRef =
        Arc::new(TimestampNanosecondArray::from(vec![i64::MIN; rows.len()]).with_timezone("UTC"));
    let mut columns = vec![ts, observed, level];
    for name in schema::STRING_COLUMNS {
        columns.push(match name {
            schema::CATEGORY => strings(&|r| r.category.as_deref()),
            schema::SERVICE => strings(&|r| r.service.as_deref()),
            schema::TRACE_ID => strings(&|r| r.trace_id.as_deref()),
            schema::MESSAGE => strings(&|r| r.message.as_deref()),
            schema::FEATURE => strings(&|r| r.feature.as_deref()),
            schema::USER_TIER => strings(&|r| r.user_tier.as_deref()),
            _ => strings(&|_| None),
        });
    }
    columns.push(strings(&|r| r.fields.as_deref()));
    columns.push(Arc::new(Float64Array::from(
        rows.iter().map(|r| r.revenue).collect::<Vec<_>>(),
    )));
    columns.push(Arc::new(Float64Array::from(
        rows.iter().map(|r| r.sample_rate).collect::<Vec<_>>(),
    )));
    columns.push(strings(&|_| None));
    columns.push(Arc::new(UInt64Array::from(vec![None::<u64>; rows.len()])));
    columns.push(strings(&|_| None));
    columns.push(strings(&|_| None));
    RecordBatch::try_new(schema::event_schema(), columns).unwrap()
}

/// SplitMix64: a small seeded generator for reproducible test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn trace_id(&mut self) -> String {
        format!("{:016x}{:016x}", self.next(), self.next())
    }
}

pub const SERVICES: [&str; 4] = ["checkout", "search", "auth", "billing"];
/// Share of each level among generated log events, in percent.
const LEVEL_WEIGHTS: [u64; 5] = [40, 35, 15, 8, 2];

/// What the generator knows about each row, for the statistical checks.
#[derive(Clone, Copy, Debug)]
pub struct Truth {
    pub level: u8,
    pub service: u8,
    /// The trace group, or None for an event without trace id.
    pub trace: Option<u64>,
}

/// Log events in whole traces (1 to 8 events, 70 % of groups) or alone without a trace id.
pub fn generate(rng: &mut Rng, rows: usize, first_trace: u64) -> (RecordBatch, Vec<Truth>) {
    let mut out = Vec::with_capacity(rows);
    let mut truth = Vec::with_capacity(rows);
    let mut trace = first_trace;
    while out.len() < rows {
        let traced = rng.below(10) < 7;
        let size = if traced { 1 + rng.below(8) as usize } else { 1 };
        let id = traced.then(|| rng.trace_id());
        for _ in 0..size.min(rows - out.len()) {
            let (row, t) = log_row(rng, out.len() as i64, id.clone(), traced.then_some(trace));
            out.push(row);
            truth.push(t);
        }
        trace += 1;
    }
    (batch(&out), truth)
}

fn log_row(rng: &mut Rng, n: i64, trace_id: Option<String>, trace: Option<u64>) -> (Row, Truth) {
    let mut pick = rng.below(100);
    let mut level = 0;
    while pick >= LEVEL_WEIGHTS[level] {
        pick -= LEVEL_WEIGHTS[level];
        level += 1;
    }
    let level = level as u8;
    let service = rng.below(SERVICES.len() as u64) as u8;
    let row = Row {
        ts: 1_700_000_000_000_000_000 + n * 1000,
        category: Some("application.request_logs".into()),
        service: Some(SERVICES[service as usize].into()),
        message: Some(format!("request {n} handled")),
        trace_id,
        ..Row::new(level)
    };
    (
        row,
        Truth {
            level,
            service,
            trace,
        },
    )
}
