//! Level spellings: canonical names most of the time, the synonyms senders use otherwise.

use super::json::Obj;
use super::rng::Rng;

/// Shares of debug, info, warn, error and critical, in thousandths.
pub const LEVEL_WEIGHTS: [u32; 5] = [300, 550, 100, 40, 10];

/// Spellings per level code; the first is the canonical one and the most frequent.
const SPELLINGS: [&[&str]; 5] = [
    &["debug", "DEBUG", "Debug", "trace", "TRACE"],
    &["info", "INFO", "Info", "notice"],
    &["warn", "WARNING", "warning", "WARN", "Warn"],
    &["error", "ERROR", "err", "Error"],
    &["critical", "CRITICAL", "fatal", "FATAL", "crit", "panic"],
];

/// The lowest OpenTelemetry severity number of each level (each range spans four numbers).
const OTEL_BASE: [u64; 5] = [5, 9, 13, 17, 21];

/// Writes the level of code `level` under `level`, `severity` or `severity_number`.
pub fn write_level(obj: &mut Obj<'_>, rng: &mut Rng, level: usize) {
    match rng.weighted(&[80, 10, 10]) {
        0 => obj.str("level", spelling(rng, level)),
        1 => obj.str("severity", spelling(rng, level)),
        _ => obj.u64("severity_number", OTEL_BASE[level] + rng.below(4)),
    }
}

fn spelling(rng: &mut Rng, level: usize) -> &'static str {
    let options = SPELLINGS[level];
    if rng.chance(0.7) {
        options[0]
    } else {
        rng.pick(&options[1..])
    }
}
