//! Level normalization: names, abbreviations, syslog severities and OpenTelemetry numbers.

use super::builder::word;
use crate::schema::Level;

/// A level from its usual spellings, case-insensitively (`WARNING`, `Warn`, `err`, `fatal`,
/// `panic`, `trace`, `notice`, ...); numbers are read by `level_from_text`.
pub fn level_from_str(text: &str) -> Option<Level> {
    // Names of up to eight letters, as most senders write them: folded to lower case as one
    // word (`OR 0x20` turns a letter of either case into its lower case, and no other byte
    // into a letter) and matched whole.
    let b = text.as_bytes();
    if (1..=8).contains(&b.len()) {
        let lower = word(b) | (u64::MAX >> (8 * (8 - b.len())) & 0x2020_2020_2020_2020);
        if let Some(level) = level_by_name(lower) {
            return Some(level);
        }
    }
    level_by_folding(text)
}

/// `level_from_str` by trimming and folding to lower case byte by byte.
fn level_by_folding(text: &str) -> Option<Level> {
    let t = text.trim();
    // The longest spelling, `informational`, has thirteen letters.
    if t.len() > 13 {
        return None;
    }
    let mut buf = [0u8; 13];
    let lower = &mut buf[..t.len()];
    lower.copy_from_slice(t.as_bytes());
    lower.make_ascii_lowercase();
    match &*lower {
        b"information" | b"informational" => Some(Level::Info),
        b"emergency" => Some(Level::Critical),
        short if short.len() <= 8 => level_by_name(word(short)),
        _ => None,
    }
}

/// The level of a name of up to eight lower-case letters given as a little-endian word: every
/// spelling but the three longer ones `level_by_folding` names.
fn level_by_name(name: u64) -> Option<Level> {
    const fn w(name: &[u8]) -> u64 {
        let mut word = 0;
        let mut i = name.len();
        while i > 0 {
            i -= 1;
            word = word << 8 | name[i] as u64;
        }
        word
    }
    const TRACE: u64 = w(b"trace");
    const DEBUG: u64 = w(b"debug");
    const DBG: u64 = w(b"dbg");
    const VERBOSE: u64 = w(b"verbose");
    const FINEST: u64 = w(b"finest");
    const FINER: u64 = w(b"finer");
    const FINE: u64 = w(b"fine");
    const INFO: u64 = w(b"info");
    const NOTICE: u64 = w(b"notice");
    const INF: u64 = w(b"inf");
    const CONFIG: u64 = w(b"config");
    const OK: u64 = w(b"ok");
    const WARN: u64 = w(b"warn");
    const WARNING: u64 = w(b"warning");
    const WRN: u64 = w(b"wrn");
    const ERROR: u64 = w(b"error");
    const ERR: u64 = w(b"err");
    const EROR: u64 = w(b"eror");
    const SEVERE: u64 = w(b"severe");
    const FAILURE: u64 = w(b"failure");
    const CRITICAL: u64 = w(b"critical");
    const CRIT: u64 = w(b"crit");
    const FATAL: u64 = w(b"fatal");
    const PANIC: u64 = w(b"panic");
    const EMERG: u64 = w(b"emerg");
    const ALERT: u64 = w(b"alert");
    const CRT: u64 = w(b"crt");
    const D: u64 = w(b"d");
    const T: u64 = w(b"t");
    const V: u64 = w(b"v");
    const I: u64 = w(b"i");
    const N: u64 = w(b"n");
    const W: u64 = w(b"w");
    const E: u64 = w(b"e");
    const C: u64 = w(b"c");
    const F: u64 = w(b"f");
    Some(match name {
        TRACE | DEBUG | DBG | VERBOSE | FINEST | FINER | FINE | D | T | V => Level::Debug,
        INFO | NOTICE | INF | I | N | CONFIG | OK => Level::Info,
        WARN | WARNING | WRN | W => Level::Warn,
        ERROR | ERR | EROR | E | SEVERE | FAILURE => Level::Error,
        CRITICAL | CRIT | FATAL | PANIC | EMERG | ALERT | CRT | C | F => Level::Critical,
        _ => return None,
    })
}

/// A level written as text: digits read as the same number would (`"30"` as `30`), anything
/// else by its name. `otel` says the key was an OpenTelemetry severity number.
pub fn level_from_text(text: &str, otel: bool) -> Option<Level> {
    if text.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
        return level_from_str(text);
    }
    let t = text.trim();
    match t.as_bytes().first() {
        Some(b'0'..=b'9' | b'-' | b'+') => t.parse().ok().and_then(|n| level_from_number(n, otel)),
        _ => level_from_str(text),
    }
}

/// Numeric levels: syslog 0–7, pino/bunyan 10–60 in tens, OpenTelemetry numbers otherwise
/// (and always for an OpenTelemetry severity number).
pub fn level_from_number(n: i64, otel: bool) -> Option<Level> {
    match n {
        _ if otel => level_from_otel(n),
        0..=7 => level_from_syslog(n),
        10 | 20 => Some(Level::Debug),
        30 => Some(Level::Info),
        40 => Some(Level::Warn),
        50 => Some(Level::Error),
        60 => Some(Level::Critical),
        _ => level_from_otel(n),
    }
}

/// Syslog severity 0 (emergency) to 7 (debug).
pub fn level_from_syslog(severity: i64) -> Option<Level> {
    Some(match severity {
        0..=2 => Level::Critical,
        3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        7 => Level::Debug,
        _ => return None,
    })
}

/// OpenTelemetry SeverityNumber 1–24 (TRACE 1–4, DEBUG 5–8, INFO 9–12, WARN 13–16, ERROR 17–20,
/// FATAL 21–24).
pub fn level_from_otel(number: i64) -> Option<Level> {
    Some(match number {
        1..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Critical,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_map_to_levels() {
        let cases = [
            ("WARNING", Level::Warn),
            ("Warn", Level::Warn),
            ("err", Level::Error),
            ("fatal", Level::Critical),
            ("panic", Level::Critical),
            ("trace", Level::Debug),
            ("notice", Level::Info),
            ("Informational", Level::Info),
            ("EMERGENCY", Level::Critical),
            (" INFO ", Level::Info),
            ("3", Level::Error),
            ("7", Level::Debug),
        ];
        for (text, level) in cases {
            assert_eq!(level_from_text(text, false), Some(level), "{text}");
        }
        assert_eq!(level_from_text("loud", false), None);
    }

    /// A number written as a string is the level the number is, whatever the key.
    #[test]
    fn numeric_strings_read_as_numbers() {
        for n in [
            -1, 0, 3, 4, 5, 7, 8, 9, 10, 13, 17, 20, 21, 24, 30, 40, 50, 60, 61, 1000,
        ] {
            let signed = if n < 0 { None } else { Some(format!("+{n}")) };
            let texts = [Some(n.to_string()), Some(format!(" {n} ")), signed];
            for (text, otel) in texts.iter().flatten().flat_map(|t| [(t, false), (t, true)]) {
                let number = level_from_number(n, otel);
                assert_eq!(level_from_text(text, otel), number, "{text:?}");
            }
        }
        assert_eq!(level_from_text("30", false), Some(Level::Info));
        assert_eq!(level_from_text("5", true), Some(Level::Debug));
        assert_eq!(level_from_text("5", false), Some(Level::Info));
        assert_eq!(level_from_text("WARN", true), Some(Level::Warn));
        assert_eq!(level_from_text("3.0", false), None);
    }

    #[test]
    fn otel_numbers_cover_each_band() {
        assert_eq!(level_from_otel(1), Some(Level::Debug));
        assert_eq!(level_from_otel(9), Some(Level::Info));
        assert_eq!(level_from_otel(13), Some(Level::Warn));
        assert_eq!(level_from_otel(17), Some(Level::Error));
        assert_eq!(level_from_otel(24), Some(Level::Critical));
        assert_eq!(level_from_otel(0), None);
        assert_eq!(level_from_otel(25), None);
    }

    proptest::proptest! {
        /// Folding a whole word at once answers as folding byte by byte does, on the names in
        /// any case, with spaces, and on strings near them.
        #[test]
        fn names_read_as_by_folding(
            name in proptest::sample::select(vec![
                "trace", "debug", "dbg", "verbose", "finest", "finer", "fine", "d", "t", "v",
                "info", "information", "notice", "inf", "i", "n", "config", "ok", "warn",
                "warning", "wrn", "w", "error", "err", "eror", "e", "severe", "failure",
                "critical", "crit", "fatal", "panic", "emerg", "emergency", "alert", "crt", "c",
                "f", "x", "",
            ]),
            upper in proptest::collection::vec(proptest::bool::ANY, 13),
            noise in proptest::option::of((0usize..13, proptest::num::u8::ANY)),
            pad in proptest::sample::select(vec!["", " ", "\t"]),
        ) {
            let mut bytes: Vec<u8> = name
                .bytes()
                .zip(&upper)
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            if let Some((at, byte)) = noise {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = byte & 0x7f;
                }
            }
            let text = format!("{pad}{}{pad}", String::from_utf8(bytes).unwrap());
            proptest::prop_assert_eq!(level_from_str(&text), level_by_folding(&text), "{:?}", text);
        }
    }
}
