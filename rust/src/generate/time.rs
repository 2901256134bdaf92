//! Timestamps in the mixed formats senders use: RFC 3339 with any offset and 0-9 fraction
//! digits, and epoch numbers in seconds, milliseconds, microseconds or nanoseconds.

use super::json::Obj;
use super::rng::Rng;
use crate::decode::time::civil_from_days;

const NS_PER_S: i64 = 1_000_000_000;

/// Offsets in minutes east of UTC, including half-hour zones and an explicit `+00:00`.
const OFFSETS: [i64; 6] = [120, -300, 330, 0, -210, 540];

/// Relative weights of fraction digit counts 0..=9: milli, micro and nano dominate.
const FRACTION_WEIGHTS: [u32; 10] = [10, 2, 2, 30, 2, 2, 30, 2, 2, 18];

/// Writes the `timestamp` member for the instant `ns` (UTC nanoseconds) in a random format.
pub fn write_timestamp(obj: &mut Obj<'_>, rng: &mut Rng, ns: i64) {
    let mut text = String::with_capacity(40);
    match rng.weighted(&[45, 15, 5, 5, 15, 7, 8]) {
        0 => rfc3339(&mut text, ns, 0, rng.weighted(&FRACTION_WEIGHTS), true),
        1 => rfc3339(
            &mut text,
            ns,
            rng.pick(&OFFSETS),
            rng.weighted(&FRACTION_WEIGHTS),
            false,
        ),
        2 => return obj.u64("timestamp", (ns / NS_PER_S) as u64),
        3 => return obj.f64("timestamp", (ns / 1_000) as f64 / 1e6),
        4 => return obj.u64("timestamp", (ns / 1_000_000) as u64),
        5 => return obj.u64("timestamp", (ns / 1_000) as u64),
        _ => return obj.u64("timestamp", ns as u64),
    }
    obj.str("timestamp", &text);
}

/// Formats `ns` as RFC 3339 at `offset_min` from UTC with `digits` fraction digits.
pub fn rfc3339(out: &mut String, ns: i64, offset_min: i64, digits: usize, zulu: bool) {
    use std::fmt::Write;

    let local = ns + offset_min * 60 * NS_PER_S;
    let (secs, frac) = (local.div_euclid(NS_PER_S), local.rem_euclid(NS_PER_S));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if digits > 0 {
        let _ = write!(out, ".{:09}", frac);
        out.truncate(out.len() - (9 - digits));
    }
    if zulu {
        out.push('Z');
    } else {
        let sign = if offset_min < 0 { '-' } else { '+' };
        let _ = write!(
            out,
            "{sign}{:02}:{:02}",
            offset_min.abs() / 60,
            offset_min.abs() % 60
        );
    }
}
