//! Column builders: rows staged while a line is read, then appended to Arrow arrays.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder, StringViewBuilder};
use arrow_array::types::UInt8Type;
use arrow_array::{
    new_null_array, ArrayRef, DictionaryArray, Float64Array, RecordBatch, StringViewArray,
    TimestampNanosecondArray, UInt64Array, UInt8Array,
};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::Result;
use crate::schema::{self, Level, LEVELS, STRING_COLUMNS};

/// Index of each string column in `STRING_COLUMNS`.
pub mod col {
    pub const CATEGORY: usize = 0;
    pub const SERVICE: usize = 1;
    pub const TRACE_ID: usize = 2;
    pub const SPAN_ID: usize = 3;
    pub const PARENT_SPAN_ID: usize = 4;
    pub const USER_ID: usize = 5;
    pub const SESSION_ID: usize = 6;
    pub const MESSAGE: usize = 7;
    pub const STACK: usize = 8;
    pub const FEATURE: usize = 9;
    pub const COST_CENTER: usize = 10;
    pub const USER_TIER: usize = 11;
}

/// One event being read; strings borrow from the input line where they can.
#[derive(Default)]
pub struct Row<'a> {
    pub timestamp: Option<i64>,
    pub level: Option<Level>,
    pub strings: [Option<Cow<'a, str>>; 12],
    pub revenue: Option<f64>,
    pub sample_rate: Option<f64>,
    /// Members for `fields`: key and raw JSON value, redacted together when the row commits.
    pub members: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// Accumulates rows into the columns of one event batch.
pub struct BatchBuilder {
    timestamp: Vec<i64>,
    level: Vec<u8>,
    level_valid: BooleanBufferBuilder,
    strings: Vec<StringViewBuilder>,
    fields: StringViewBuilder,
    revenue: Float64Builder,
    sample_rate: Vec<f64>,
}

impl BatchBuilder {
    pub fn with_capacity(rows: usize) -> BatchBuilder {
        BatchBuilder {
            timestamp: Vec::with_capacity(rows),
            level: Vec::with_capacity(rows),
            level_valid: BooleanBufferBuilder::new(rows),
            strings: (0..STRING_COLUMNS.len())
                .map(|_| StringViewBuilder::with_capacity(rows))
                .collect(),
            fields: StringViewBuilder::with_capacity(rows),
            revenue: Float64Builder::with_capacity(rows),
            sample_rate: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.timestamp.len()
    }

    /// Appends a finished row; `fields` is the JSON object of the other keys, if any.
    pub fn push(&mut self, row: &Row<'_>, fields: Option<&str>, observed_ns: i64) {
        self.timestamp.push(row.timestamp.unwrap_or(observed_ns));
        self.level.push(row.level.map_or(0, |l| l as u8));
        self.level_valid.append(row.level.is_some());
        for (builder, value) in self.strings.iter_mut().zip(&row.strings) {
            builder.append_option(value.as_deref());
        }
        self.fields.append_option(fields);
        self.revenue.append_option(row.revenue);
        self.sample_rate.push(row.sample_rate.unwrap_or(1.0));
    }

    pub fn finish(mut self, observed_ns: i64) -> Result<RecordBatch> {
        let rows = self.len();
        let ts = |v: Vec<i64>| Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC"));
        let mut columns: Vec<ArrayRef> = vec![
            ts(std::mem::take(&mut self.timestamp)),
            ts(vec![observed_ns; rows]),
            Arc::new(level_array(self.level, self.level_valid.finish().into())?),
        ];
        columns.extend(
            self.strings
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.fields.finish()));
        columns.push(Arc::new(self.revenue.finish()));
        columns.push(Arc::new(Float64Array::from(self.sample_rate)));
        columns.push(new_null_array(&DataType::Utf8View, rows));
        columns.push(new_null_array(&DataType::UInt64, rows));
        columns.push(new_null_array(&DataType::Utf8View, rows));
        columns.push(new_null_array(&DataType::Utf8View, rows));
        Ok(RecordBatch::try_new(schema::event_schema(), columns)?)
    }
}

fn level_array(codes: Vec<u8>, valid: NullBuffer) -> Result<DictionaryArray<UInt8Type>> {
    let keys = UInt8Array::new(codes.into(), Some(valid));
    let values = Arc::new(StringViewArray::from_iter_values(LEVELS));
    Ok(DictionaryArray::try_new(keys, values)?)
}

/// The schema of a dead-letter batch.
pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
    ]))
}

/// Why a record became a dead letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    MalformedJson,
    NotAnObject,
    InvalidUtf8,
    LineTooLong,
    TooDeep,
    BadTimestamp,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedJson => "malformed_json",
            Reason::NotAnObject => "not_an_object",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::LineTooLong => "line_too_long",
            Reason::TooDeep => "too_deep",
            Reason::BadTimestamp => "bad_timestamp",
        }
    }
}

/// Accumulates dead letters: raw line (already redacted), line number, reason and detail.
#[derive(Default)]
pub struct DeadLetters {
    line: Vec<u64>,
    reason: StringBuilder,
    detail: StringBuilder,
    raw: StringBuilder,
}

impl DeadLetters {
    pub fn push(&mut self, line: u64, reason: Reason, detail: &str, raw: &str) {
        self.line.push(line);
        self.reason.append_value(reason.as_str());
        self.detail.append_value(detail);
        self.raw.append_value(raw);
    }

    pub fn finish(mut self, source: &str) -> Result<RecordBatch> {
        let rows = self.line.len();
        let source = arrow_array::StringArray::from(vec![source; rows]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(source),
            Arc::new(UInt64Array::from(self.line)),
            Arc::new(self.reason.finish()),
            Arc::new(self.detail.finish()),
            Arc::new(self.raw.finish()),
        ];
        Ok(RecordBatch::try_new(dead_letter_schema(), columns)?)
    }
}
