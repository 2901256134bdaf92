//! The event schema shared by every stage: column names, Arrow types and level codes.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const TIMESTAMP: &str = "timestamp";
pub const OBSERVED_AT: &str = "observed_at";
pub const LEVEL: &str = "level";
pub const CATEGORY: &str = "category";
pub const SERVICE: &str = "service";
pub const TRACE_ID: &str = "trace_id";
pub const SPAN_ID: &str = "span_id";
pub const PARENT_SPAN_ID: &str = "parent_span_id";
pub const USER_ID: &str = "user_id";
pub const SESSION_ID: &str = "session_id";
pub const MESSAGE: &str = "message";
pub const STACK: &str = "stack";
pub const FIELDS: &str = "fields";
pub const FEATURE: &str = "feature";
pub const COST_CENTER: &str = "cost_center";
pub const USER_TIER: &str = "user_tier";
pub const REVENUE: &str = "revenue";
pub const SAMPLE_RATE: &str = "sample_rate";
pub const AUDIT_CHAIN: &str = "audit_chain";
pub const AUDIT_SEQ: &str = "audit_seq";
pub const AUDIT_PREV_HASH: &str = "audit_prev_hash";
pub const AUDIT_HASH: &str = "audit_hash";

/// Level names in code order: the `level` column is a dictionary whose keys are these codes.
pub const LEVELS: [&str; 5] = ["debug", "info", "warn", "error", "critical"];

/// Level codes, the keys of the `level` dictionary column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
    Critical = 4,
}

impl Level {
    pub fn name(self) -> &'static str {
        LEVELS[self as usize]
    }

    pub fn from_code(code: u8) -> Option<Level> {
        [
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
            Level::Critical,
        ]
        .get(code as usize)
        .copied()
    }
}

/// String-typed columns, in schema order after the timestamps and level.
pub const STRING_COLUMNS: [&str; 12] = [
    CATEGORY,
    SERVICE,
    TRACE_ID,
    SPAN_ID,
    PARENT_SPAN_ID,
    USER_ID,
    SESSION_ID,
    MESSAGE,
    STACK,
    FEATURE,
    COST_CENTER,
    USER_TIER,
];

fn utc_ns() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The Arrow type of the `level` column.
pub fn level_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8View))
}

/// The schema of every batch the core produces. String columns are `Utf8View`, the layout
/// Polars keeps natively, so frames cross without a copy.
pub fn event_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields = vec![
                Field::new(TIMESTAMP, utc_ns(), false),
                Field::new(OBSERVED_AT, utc_ns(), false),
                Field::new(LEVEL, level_type(), true),
            ];
            for name in STRING_COLUMNS {
                fields.push(Field::new(name, DataType::Utf8View, true));
            }
            fields.extend([
                Field::new(FIELDS, DataType::Utf8View, true),
                Field::new(REVENUE, DataType::Float64, true),
                Field::new(SAMPLE_RATE, DataType::Float64, false),
                Field::new(AUDIT_CHAIN, DataType::Utf8View, true),
                Field::new(AUDIT_SEQ, DataType::UInt64, true),
                Field::new(AUDIT_PREV_HASH, DataType::Utf8View, true),
                Field::new(AUDIT_HASH, DataType::Utf8View, true),
            ]);
            Arc::new(Schema::new(fields))
        })
        .clone()
}
