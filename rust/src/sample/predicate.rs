//! Compiled conditions and their evaluation against one event: a row of a batch, or a row the
//! decoder has staged but not yet written.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType, UInt8Type};
use arrow_array::{
    Array, Float64Array, PrimitiveArray, RecordBatch, StringViewArray, TimestampNanosecondArray,
    UInt64Array,
};
use arrow_schema::{ArrowError, DataType};
use sonic_rs::{JsonType, JsonValueTrait};

use crate::schema::{self, LEVELS};

/// Schema indices of the columns the sampler reads by position (checked against the schema by
/// a test): a batch row and a staged row agree on them.
pub mod at {
    use crate::decode::builder::col;

    pub const TIMESTAMP: usize = 0;
    pub const OBSERVED_AT: usize = 1;
    pub const LEVEL: usize = 2;
    /// The first of the string columns, in the order of `schema::STRING_COLUMNS`.
    pub const FIRST_STRING: usize = 3;
    pub const SERVICE: usize = FIRST_STRING + col::SERVICE;
    pub const TRACE_ID: usize = FIRST_STRING + col::TRACE_ID;
    pub const SPAN_ID: usize = FIRST_STRING + col::SPAN_ID;
    pub const MESSAGE: usize = FIRST_STRING + col::MESSAGE;
    pub const FIELDS: usize = 15;
    pub const REVENUE: usize = 16;
    pub const SAMPLE_RATE: usize = 17;
}

/// Level code of a row whose level is missing or not a known name.
pub const NO_LEVEL: u8 = LEVELS.len() as u8;

/// A value a condition compares with.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Str(Box<[u8]>),
    Num(f64),
    Bool(bool),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
}

/// What a condition asks of one value.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    Prefix(Vec<Box<[u8]>>),
    Cmp(CmpOp, f64),
    Exists(bool),
}

/// One compiled condition of a rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    /// Bit `code` set for each accepted level code (bit 5: no level).
    Level(u8),
    /// A schema column by index.
    Column { index: usize, op: Op },
    /// A key inside the `fields` JSON: the nested path, then the same key flat ("a.b").
    Field {
        path: Vec<String>,
        flat: String,
        op: Op,
    },
}

/// One row's value as a condition sees it.
#[derive(Clone, Copy, Debug)]
pub enum Cell<'a> {
    Missing,
    Str(&'a [u8]),
    Num(f64),
    Bool(bool),
    /// An object or array inside `fields`: present, but equal to no scalar.
    Other,
}

impl Op {
    /// Whether the condition holds for a number (used to expand level comparisons).
    pub fn matches_num(&self, x: f64) -> bool {
        self.matches(Cell::Num(x))
    }

    pub fn matches(&self, cell: Cell) -> bool {
        match (self, cell) {
            (Op::Exists(want), c) => !matches!(c, Cell::Missing) == *want,
            (_, Cell::Missing) => false,
            (Op::In(values), c) => values.iter().any(|v| scalar_eq(v, c)),
            (Op::NotIn(values), c) => !values.iter().any(|v| scalar_eq(v, c)),
            (Op::Prefix(prefixes), Cell::Str(s)) => prefixes.iter().any(|p| s.starts_with(p)),
            (Op::Cmp(op, bound), Cell::Num(x)) => compare(*op, x, *bound),
            _ => false,
        }
    }
}

#[inline]
fn scalar_eq(v: &Scalar, c: Cell) -> bool {
    match (v, c) {
        (Scalar::Str(a), Cell::Str(b)) => **a == *b,
        (Scalar::Num(a), Cell::Num(b)) => *a == b,
        (Scalar::Bool(a), Cell::Bool(b)) => *a == b,
        _ => false,
    }
}

#[inline]
fn compare(op: CmpOp, x: f64, bound: f64) -> bool {
    match op {
        CmpOp::Gt => x > bound,
        CmpOp::Ge => x >= bound,
        CmpOp::Lt => x < bound,
        CmpOp::Le => x <= bound,
    }
}

/// A column of the batch, downcast once per batch.
enum Col<'a> {
    Str(&'a StringViewArray),
    F64(&'a Float64Array),
    U64(&'a UInt64Array),
    Ts(&'a TimestampNanosecondArray),
    Other,
}

/// Typed access to the columns of one batch with the event schema.
pub struct BatchView<'a> {
    columns: Vec<Col<'a>>,
    /// Level code per row (NO_LEVEL when missing).
    pub levels: Vec<u8>,
    pub fields: &'a StringViewArray,
    pub timestamp: &'a TimestampNanosecondArray,
    /// When present: a timestamp equal to it is the decoder's fallback, not the sender's.
    pub observed_at: Option<&'a TimestampNanosecondArray>,
    pub sample_rate: &'a Float64Array,
}

impl<'a> BatchView<'a> {
    pub fn new(batch: &'a RecordBatch) -> Result<BatchView<'a>, ArrowError> {
        let columns = batch.columns().iter().map(|c| col(c.as_ref())).collect();
        // The columns the event hash reads must be there with their types.
        for name in [
            schema::TRACE_ID,
            schema::SERVICE,
            schema::SPAN_ID,
            schema::MESSAGE,
        ] {
            string_column(batch, name)?;
        }
        Ok(BatchView {
            columns,
            levels: level_codes(batch)?,
            fields: string_column(batch, schema::FIELDS)?,
            timestamp: typed_column::<TimestampNanosecondType>(batch, schema::TIMESTAMP)?,
            observed_at: typed_column::<TimestampNanosecondType>(batch, schema::OBSERVED_AT).ok(),
            sample_rate: typed_column::<Float64Type>(batch, schema::SAMPLE_RATE)?,
        })
    }

    /// Row `i` as an event the conditions read.
    #[inline]
    pub fn row(&self, i: usize) -> BatchRow<'_, 'a> {
        BatchRow { view: self, i }
    }

    /// The bytes of string column `index` at row `i` (None when null or not a string).
    #[inline]
    fn str_at(&self, index: usize, i: usize) -> Option<&'a [u8]> {
        match &self.columns[index] {
            Col::Str(a) if a.is_valid(i) => Some(a.value(i).as_bytes()),
            _ => None,
        }
    }
}

/// One event as the sampler reads it; columns are indexed as in the event schema.
pub trait EventView {
    /// Level code (NO_LEVEL when missing).
    fn level_code(&self) -> u8;
    /// The value of schema column `index`.
    fn cell(&self, index: usize) -> Cell<'_>;
    /// The bytes of string column `index` (None when null or not a string).
    fn text(&self, index: usize) -> Option<&[u8]>;
    /// The `fields` object as JSON text (None when the event has none).
    fn fields_json(&self) -> Option<&str>;
    /// UTC nanoseconds, after the fallback to `observed_at`.
    fn timestamp(&self) -> i64;
    /// The timestamp the event carried (None when it fell back to `observed_at`).
    fn sent_timestamp(&self) -> Option<i64>;
    /// The sender's own rate (1 when it sent none).
    fn sample_rate(&self) -> f64;

    /// Whether `p` holds.
    #[inline]
    fn holds(&self, p: &Predicate) -> bool {
        match p {
            Predicate::Level(mask) => mask >> self.level_code() & 1 == 1,
            Predicate::Column { index, op } => op.matches(self.cell(*index)),
            Predicate::Field { path, flat, op } => {
                field_matches(self.fields_json(), path, flat, op)
            }
        }
    }
}

/// Row `i` of a `BatchView`.
pub struct BatchRow<'v, 'a> {
    view: &'v BatchView<'a>,
    i: usize,
}

impl EventView for BatchRow<'_, '_> {
    #[inline]
    fn level_code(&self) -> u8 {
        self.view.levels[self.i]
    }

    #[inline]
    fn cell(&self, index: usize) -> Cell<'_> {
        let i = self.i;
        match &self.view.columns[index] {
            Col::Str(a) if a.is_valid(i) => Cell::Str(a.value(i).as_bytes()),
            Col::F64(a) if a.is_valid(i) => Cell::Num(a.value(i)),
            Col::U64(a) if a.is_valid(i) => Cell::Num(a.value(i) as f64),
            Col::Ts(a) if a.is_valid(i) => Cell::Num(a.value(i) as f64),
            _ => Cell::Missing,
        }
    }

    #[inline]
    fn text(&self, index: usize) -> Option<&[u8]> {
        self.view.str_at(index, self.i)
    }

    fn fields_json(&self) -> Option<&str> {
        let fields = self.view.fields;
        fields.is_valid(self.i).then(|| fields.value(self.i))
    }

    #[inline]
    fn timestamp(&self) -> i64 {
        self.view.timestamp.value(self.i)
    }

    #[inline]
    fn sent_timestamp(&self) -> Option<i64> {
        let ts = self.timestamp();
        let fallback = self.view.observed_at.is_some_and(|o| o.value(self.i) == ts);
        (!fallback).then_some(ts)
    }

    #[inline]
    fn sample_rate(&self) -> f64 {
        self.view.sample_rate.value(self.i)
    }
}

/// Whether a condition on a key inside `fields` holds; the JSON is parsed lazily, only down
/// the path the condition names.
fn field_matches(json: Option<&str>, path: &[String], flat: &str, op: &Op) -> bool {
    let Some(json) = json else {
        return op.matches(Cell::Missing);
    };
    let nested = sonic_rs::get_from_str(json, path.iter().map(String::as_str));
    let found = match nested {
        Err(_) if path.len() > 1 => sonic_rs::get_from_str(json, [flat]),
        other => other,
    };
    let Ok(value) = found else {
        return op.matches(Cell::Missing);
    };
    let cell = match value.get_type() {
        JsonType::String => value
            .as_str()
            .map_or(Cell::Other, |s| Cell::Str(s.as_bytes())),
        JsonType::Number => value.as_f64().map_or(Cell::Other, Cell::Num),
        JsonType::Boolean => value.as_bool().map_or(Cell::Other, Cell::Bool),
        JsonType::Null => Cell::Missing,
        _ => Cell::Other,
    };
    op.matches(cell)
}

fn col(array: &dyn Array) -> Col<'_> {
    match array.data_type() {
        DataType::Utf8View => Col::Str(array.as_string_view()),
        DataType::Float64 => Col::F64(array.as_primitive()),
        DataType::UInt64 => Col::U64(array.as_primitive()),
        DataType::Timestamp(_, _) => array
            .as_primitive_opt::<TimestampNanosecondType>()
            .map_or(Col::Other, Col::Ts),
        _ => Col::Other,
    }
}

fn missing(name: &str, want: &str) -> ArrowError {
    ArrowError::SchemaError(format!("sampling needs column '{name}' of type {want}"))
}

fn string_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a StringViewArray, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_view_opt())
        .ok_or_else(|| missing(name, "Utf8View"))
}

fn typed_column<'a, T: arrow_array::ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a PrimitiveArray<T>, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<T>())
        .ok_or_else(|| missing(name, &T::DATA_TYPE.to_string()))
}

/// Level code per row, mapping the dictionary's values to codes by name.
fn level_codes(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let column = batch
        .column_by_name(schema::LEVEL)
        .ok_or_else(|| missing("level", "Dictionary"))?;
    let dict = column
        .as_dictionary_opt::<UInt8Type>()
        .ok_or_else(|| missing("level", "Dictionary(UInt8, Utf8View)"))?;
    let names = dict
        .values()
        .as_string_view_opt()
        .ok_or_else(|| missing("level", "Utf8View values"))?;
    let mut remap = [NO_LEVEL; 256];
    for (slot, name) in remap.iter_mut().zip(names.iter()) {
        let code = name.and_then(|n| LEVELS.iter().position(|l| *l == n));
        *slot = code.map_or(NO_LEVEL, |c| c as u8);
    }
    let keys = dict.keys();
    let mut codes: Vec<u8> = keys.values().iter().map(|&k| remap[k as usize]).collect();
    if let Some(nulls) = keys.nulls() {
        for i in nulls.iter().enumerate().filter(|(_, v)| !v).map(|(i, _)| i) {
            codes[i] = NO_LEVEL;
        }
    }
    Ok(codes)
}

/// The name of a level code (None for NO_LEVEL).
pub fn level_name(code: u8) -> Option<&'static str> {
    LEVELS.get(code as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::at;
    use crate::schema::{self, STRING_COLUMNS};

    #[test]
    fn column_positions_match_the_event_schema() {
        let schema = schema::event_schema();
        let index = |name| schema.index_of(name).unwrap();
        assert_eq!(index(schema::TIMESTAMP), at::TIMESTAMP);
        assert_eq!(index(schema::OBSERVED_AT), at::OBSERVED_AT);
        assert_eq!(index(schema::LEVEL), at::LEVEL);
        for (i, name) in STRING_COLUMNS.iter().enumerate() {
            assert_eq!(index(name), at::FIRST_STRING + i, "{name}");
        }
        assert_eq!(index(schema::SERVICE), at::SERVICE);
        assert_eq!(index(schema::TRACE_ID), at::TRACE_ID);
        assert_eq!(index(schema::SPAN_ID), at::SPAN_ID);
        assert_eq!(index(schema::MESSAGE), at::MESSAGE);
        assert_eq!(index(schema::FIELDS), at::FIELDS);
        assert_eq!(index(schema::REVENUE), at::REVENUE);
        assert_eq!(index(schema::SAMPLE_RATE), at::SAMPLE_RATE);
    }
}
