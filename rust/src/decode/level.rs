//! Level normalization: names, abbreviations, syslog severities and OpenTelemetry numbers.

use crate::schema::Level;

/// A level from its usual spellings, case-insensitively (`WARNING`, `Warn`, `err`, `fatal`,
/// `panic`, `trace`, `notice`, ...); numbers are read by `level_from_text`.
pub fn level_from_str(text: &str) -> Option<Level> {
    // The spellings most senders use, as they write them, before any folding.
    match text.as_bytes() {
        b"info" | b"INFO" => return Some(Level::Info),
        b"debug" | b"DEBUG" => return Some(Level::Debug),
        b"warn" | b"WARN" | b"warning" | b"WARNING" => return Some(Level::Warn),
        b"error" | b"ERROR" => return Some(Level::Error),
        _ => {}
    }
    let t = text.trim();
    if t.len() > 12 {
        return None;
    }
    let mut buf = [0u8; 12];
    let lower = &mut buf[..t.len()];
    lower.copy_from_slice(t.as_bytes());
    lower.make_ascii_lowercase();
    let level = match &*lower {
        b"trace" | b"debug" | b"dbg" | b"verbose" | b"finest" | b"finer" | b"fine" | b"d"
        | b"t" | b"v" => Level::Debug,
        b"info" | b"information" | b"informational" | b"notice" | b"inf" | b"i" | b"n"
        | b"config" | b"ok" => Level::Info,
        b"warn" | b"warning" | b"wrn" | b"w" => Level::Warn,
        b"error" | b"err" | b"eror" | b"e" | b"severe" | b"failure" => Level::Error,
        b"critical" | b"crit" | b"fatal" | b"panic" | b"emerg" | b"emergency" | b"alert"
        | b"crt" | b"c" | b"f" => Level::Critical,
        _ => return None,
    };
    Some(level)
}

/// A level written as text: digits read as the same number would (`"30"` as `30`), anything
/// else by its name. `otel` says the key was an OpenTelemetry severity number.
pub fn level_from_text(text: &str, otel: bool) -> Option<Level> {
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
}
