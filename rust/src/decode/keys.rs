//! Which input keys fill which schema columns.

use super::builder::col;

/// Where a top-level key (or a named regex group) goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Timestamp,
    Level,
    /// An OpenTelemetry SeverityNumber.
    SeverityNumber,
    Str(usize),
    Revenue,
    SampleRate,
    Fields,
}

/// Schema columns by their usual key names; the first key present fills the column, later ones
/// (synonyms or duplicates) stay in `fields`.
pub fn target(key: &str) -> Target {
    match key {
        "timestamp" | "@timestamp" | "ts" | "time" | "Timestamp" | "datetime" | "eventTime"
        | "time_unix_nano" | "timeUnixNano" => Target::Timestamp,
        "level" | "severity" | "lvl" | "loglevel" | "log_level" | "log.level" | "levelname"
        | "severity_text" | "severityText" | "Level" | "Severity" => Target::Level,
        "severity_number" | "severityNumber" => Target::SeverityNumber,
        "message" | "msg" | "log" | "body" | "Message" | "MESSAGE" => Target::Str(col::MESSAGE),
        "category" | "event.category" => Target::Str(col::CATEGORY),
        "service" | "service.name" | "service_name" | "serviceName" | "app" => {
            Target::Str(col::SERVICE)
        }
        "trace_id" | "traceId" | "trace.id" | "traceid" => Target::Str(col::TRACE_ID),
        "span_id" | "spanId" | "span.id" | "spanid" => Target::Str(col::SPAN_ID),
        "parent_span_id" | "parentSpanId" | "parent_id" | "parent.id" => {
            Target::Str(col::PARENT_SPAN_ID)
        }
        "user_id" | "userId" | "user.id" => Target::Str(col::USER_ID),
        "session_id" | "sessionId" | "session.id" => Target::Str(col::SESSION_ID),
        "stack" | "stack_trace" | "stacktrace" | "stackTrace" | "exception.stacktrace" => {
            Target::Str(col::STACK)
        }
        "feature" => Target::Str(col::FEATURE),
        "cost_center" | "costCenter" => Target::Str(col::COST_CENTER),
        "user_tier" | "userTier" => Target::Str(col::USER_TIER),
        "revenue" => Target::Revenue,
        "sample_rate" | "sampleRate" => Target::SampleRate,
        _ => Target::Fields,
    }
}
