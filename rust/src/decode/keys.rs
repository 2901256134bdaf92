//! Which input keys fill which schema columns.

use super::builder::{col, word};

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

/// Keys one slot holds at most.
const WAYS: usize = 3;

/// A key of the table as words: its first eight bytes and its last eight past the eighth
/// (both zero-padded, see `halves`), its length and its target.
#[derive(Clone, Copy)]
struct Entry {
    lo: u64,
    hi: u64,
    /// `u8::MAX` marks a free way: no key is that long.
    len: u8,
    /// Index into `KEYS`, for the keys longer than the sixteen bytes the words hold.
    index: u8,
}

const FREE: Entry = Entry {
    lo: 0,
    hi: 0,
    len: u8::MAX,
    index: 0,
};

/// Each slot's keys as words, built at compile time so a lookup is one hash, one load and a
/// few word compares without a branch per byte or per length.
static TABLE: [[Entry; WAYS]; SLOTS] = table();

const fn table() -> [[Entry; WAYS]; SLOTS] {
    let mut table = [[FREE; WAYS]; SLOTS];
    let mut k = 0;
    while k < KEYS.len() {
        let key = KEYS[k].0.as_bytes();
        let ways = &mut table[slot(key)];
        let mut w = 0;
        // Indexing past `WAYS` fails the build: a crowded slot is caught at compile time.
        while ways[w].len != u8::MAX {
            w += 1;
        }
        let (lo, hi) = const_halves(key);
        assert!(key.len() < u8::MAX as usize && k < u8::MAX as usize);
        ways[w] = Entry {
            lo,
            hi,
            len: key.len() as u8,
            index: k as u8,
        };
        k += 1;
    }
    table
}

/// Where `key` goes, by one hash and at most a few word compares.
#[inline(always)]
pub fn target(key: &str) -> Target {
    let bytes = key.as_bytes();
    let (lo, hi) = halves(bytes);
    for entry in &TABLE[slot(bytes)] {
        // Non-short-circuit `&`: one branch per way rather than one per word.
        let hit = (usize::from(entry.len) == bytes.len()) & (entry.lo == lo) & (entry.hi == hi);
        if hit {
            let (name, target) = KEYS[usize::from(entry.index)];
            // The words cover sixteen bytes; a longer key is compared whole.
            if bytes.len() <= 16 || name.as_bytes() == bytes {
                return target;
            }
        }
    }
    Target::Fields
}

/// The first eight bytes of a key and, when it is longer, its last eight bytes, each as a
/// little-endian word zero-padded (the two overlap for keys of nine to fifteen bytes).
fn halves(key: &[u8]) -> (u64, u64) {
    let n = key.len();
    if n > 8 {
        let hi = u64::from_le_bytes(key[n - 8..].try_into().expect("eight bytes"));
        (word(key), hi)
    } else {
        (word(key), 0)
    }
}

/// `halves` at compile time.
const fn const_halves(key: &[u8]) -> (u64, u64) {
    let n = key.len();
    let (mut lo, mut hi, mut i) = (0u64, 0u64, 0);
    while i < n && i < 8 {
        lo |= (key[i] as u64) << (8 * i);
        i += 1;
    }
    if n > 8 {
        i = 0;
        while i < 8 {
            hi |= (key[n - 8 + i] as u64) << (8 * i);
            i += 1;
        }
    }
    (lo, hi)
}

/// The table slot of a key: its length and its first, middle and last bytes mixed (all three
/// loads are in bounds for any key but the empty one, so no branch picks them).
const fn slot(key: &[u8]) -> usize {
    let len = key.len();
    if len == 0 {
        return 0;
    }
    let mixed = (len as u32)
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(key[0] as u32 * 31 + key[len / 2] as u32 * 7 + key[len - 1] as u32)
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
        assert!(counts.iter().all(|c| *c <= WAYS), "{counts:?}");
    }

    proptest! {
        #[test]
        fn table_lookup_equals_the_linear_search(key in "[a-zA-Z_.@]{0,22}|\\PC{0,8}") {
            prop_assert_eq!(target(&key), linear(&key));
        }

        #[test]
        fn known_keys_with_one_byte_changed_are_looked_up_right(
            known in prop::sample::select(KEYS.to_vec()),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b"._@aeidxIT0".to_vec()),
        ) {
            let mut key = known.0.as_bytes().to_vec();
            let i = at.index(key.len());
            key[i] = byte;
            let key = String::from_utf8(key).unwrap();
            prop_assert_eq!(target(&key), linear(&key));
        }

        #[test]
        fn word_holds_the_first_eight_bytes(s in prop::collection::vec(any::<u8>(), 0..12)) {
            let mut padded = [0u8; 8];
            let n = s.len().min(8);
            padded[..n].copy_from_slice(&s[..n]);
            prop_assert_eq!(word(&s), u64::from_le_bytes(padded));
        }
    }
}
