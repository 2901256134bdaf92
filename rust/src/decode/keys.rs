//! Which input keys fill which schema columns.

use std::sync::OnceLock;

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
/// (synonyms or duplicates) stay in `fields`. Any other key is `Target::Fields`.
pub const KEYS: &[(&str, Target)] = &[
    ("timestamp", Target::Timestamp),
    ("@timestamp", Target::Timestamp),
    ("ts", Target::Timestamp),
    ("time", Target::Timestamp),
    ("Timestamp", Target::Timestamp),
    ("datetime", Target::Timestamp),
    ("eventTime", Target::Timestamp),
    ("time_unix_nano", Target::Timestamp),
    ("timeUnixNano", Target::Timestamp),
    ("level", Target::Level),
    ("severity", Target::Level),
    ("lvl", Target::Level),
    ("loglevel", Target::Level),
    ("log_level", Target::Level),
    ("log.level", Target::Level),
    ("levelname", Target::Level),
    ("severity_text", Target::Level),
    ("severityText", Target::Level),
    ("Level", Target::Level),
    ("Severity", Target::Level),
    ("severity_number", Target::SeverityNumber),
    ("severityNumber", Target::SeverityNumber),
    ("message", Target::Str(col::MESSAGE)),
    ("msg", Target::Str(col::MESSAGE)),
    ("log", Target::Str(col::MESSAGE)),
    ("body", Target::Str(col::MESSAGE)),
    ("Message", Target::Str(col::MESSAGE)),
    ("MESSAGE", Target::Str(col::MESSAGE)),
    ("category", Target::Str(col::CATEGORY)),
    ("event.category", Target::Str(col::CATEGORY)),
    ("service", Target::Str(col::SERVICE)),
    ("service.name", Target::Str(col::SERVICE)),
    ("service_name", Target::Str(col::SERVICE)),
    ("serviceName", Target::Str(col::SERVICE)),
    ("app", Target::Str(col::SERVICE)),
    ("trace_id", Target::Str(col::TRACE_ID)),
    ("traceId", Target::Str(col::TRACE_ID)),
    ("trace.id", Target::Str(col::TRACE_ID)),
    ("traceid", Target::Str(col::TRACE_ID)),
    ("span_id", Target::Str(col::SPAN_ID)),
    ("spanId", Target::Str(col::SPAN_ID)),
    ("span.id", Target::Str(col::SPAN_ID)),
    ("spanid", Target::Str(col::SPAN_ID)),
    ("parent_span_id", Target::Str(col::PARENT_SPAN_ID)),
    ("parentSpanId", Target::Str(col::PARENT_SPAN_ID)),
    ("parent_id", Target::Str(col::PARENT_SPAN_ID)),
    ("parent.id", Target::Str(col::PARENT_SPAN_ID)),
    ("user_id", Target::Str(col::USER_ID)),
    ("userId", Target::Str(col::USER_ID)),
    ("user.id", Target::Str(col::USER_ID)),
    ("session_id", Target::Str(col::SESSION_ID)),
    ("sessionId", Target::Str(col::SESSION_ID)),
    ("session.id", Target::Str(col::SESSION_ID)),
    ("stack", Target::Str(col::STACK)),
    ("stack_trace", Target::Str(col::STACK)),
    ("stacktrace", Target::Str(col::STACK)),
    ("stackTrace", Target::Str(col::STACK)),
    ("exception.stacktrace", Target::Str(col::STACK)),
    ("feature", Target::Str(col::FEATURE)),
    ("cost_center", Target::Str(col::COST_CENTER)),
    ("costCenter", Target::Str(col::COST_CENTER)),
    ("user_tier", Target::Str(col::USER_TIER)),
    ("userTier", Target::Str(col::USER_TIER)),
    ("revenue", Target::Revenue),
    ("sample_rate", Target::SampleRate),
    ("sampleRate", Target::SampleRate),
];

/// Slots of the key table: a power of two, roomy enough that most slots hold one key.
const SLOTS: usize = 256;

/// Where `key` goes, by one hash and at most a few byte compares.
pub fn target(key: &str) -> Target {
    static TABLE: OnceLock<Vec<Vec<(&'static str, Target)>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = vec![Vec::new(); SLOTS];
        for &(name, target) in KEYS {
            table[slot(name.as_bytes())].push((name, target));
        }
        table
    });
    let bytes = key.as_bytes();
    table[slot(bytes)]
        .iter()
        .find(|(name, _)| name.as_bytes() == bytes)
        .map_or(Target::Fields, |&(_, target)| target)
}

/// The table slot of a key: its length and its first, second and last bytes mixed.
fn slot(key: &[u8]) -> usize {
    let (Some(&first), Some(&last)) = (key.first(), key.last()) else {
        return 0;
    };
    let second = key.get(1).copied().unwrap_or(0);
    let mixed = (key.len() as u32)
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(u32::from(first) * 31 + u32::from(second) * 7 + u32::from(last))
        .wrapping_mul(0x85EB_CA6B);
    (mixed >> 24) as usize % SLOTS
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn linear(key: &str) -> Target {
        KEYS.iter()
            .find(|(name, _)| *name == key)
            .map_or(Target::Fields, |&(_, t)| t)
    }

    #[test]
    fn every_known_key_finds_its_column_and_near_misses_do_not() {
        for &(name, expected) in KEYS {
            assert_eq!(target(name), expected, "{name}");
            assert_eq!(target(&format!("{name}x")), Target::Fields, "{name}x");
            assert_eq!(target(&name[1..]), linear(&name[1..]), "{name}");
        }
        assert_eq!(target(""), Target::Fields);
        assert_eq!(target("service.name"), Target::Str(col::SERVICE));
        assert_eq!(target("Timestamp"), Target::Timestamp);
        assert_eq!(target("TIMESTAMP"), Target::Fields);
    }

    #[test]
    fn few_keys_share_a_slot() {
        let mut counts = vec![0; SLOTS];
        for (name, _) in KEYS {
            counts[slot(name.as_bytes())] += 1;
        }
        assert!(counts.iter().all(|c| *c <= 3), "{counts:?}");
    }

    proptest! {
        #[test]
        fn table_lookup_equals_the_linear_search(key in "[a-zA-Z_.@]{0,22}|\\PC{0,8}") {
            prop_assert_eq!(target(&key), linear(&key));
        }
    }
}
