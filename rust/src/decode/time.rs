//! Timestamp parsing: RFC 3339, epoch numbers and strptime-style formats, all to UTC nanoseconds.

use serde::Deserialize;

const NS_PER_S: i64 = 1_000_000_000;

/// How bare epoch numbers are read.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EpochUnit {
    /// Inferred from magnitude: below 1e11 seconds, below 1e14 ms, below 1e17 µs, else ns.
    #[default]
    Auto,
    S,
    Ms,
    Us,
    Ns,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    match u32::try_from(year) {
        Ok(year) if year <= 9999 => days_from_year_0(year, month, day),
        _ => days_from_any_year(year, month, day),
    }
}

/// `days_from_civil` in signed arithmetic, for any year.
fn days_from_any_year(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if month <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        month,
        day,
    )
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Broken-down time as read from text, before conversion.
#[derive(Clone, Copy, Debug)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
    pub offset_s: i64,
}

impl Civil {
    /// UTC nanoseconds, or None when a field is out of range or the instant overflows i64 ns.
    pub fn to_ns(&self) -> Option<i64> {
        let valid = (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second <= 60
            && self.nanos < 1_000_000_000;
        if !valid {
            return None;
        }
        // A leap second is folded into the next one, as most parsers do.
        let secs = days_from_civil(self.year, self.month, self.day) * 86_400
            + (self.hour * 3600 + self.minute * 60 + self.second) as i64
            - self.offset_s;
        secs.checked_mul(NS_PER_S)?.checked_add(self.nanos as i64)
    }
}

/// RFC 3339 (and the common ISO 8601 relaxations: a space for `T`, no offset meaning UTC,
/// `+hhmm` offsets, 0–9 fraction digits, white space around it). Every field of the date and
/// time has a fixed width, so each is read at its fixed place.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    parse_rfc3339_in(text, &mut HourMemo::default())
}

/// The last date and hour an RFC 3339 timestamp named, as written, and the seconds at its
/// start: a stream's consecutive events mostly fall in one hour, whose date then need not be
/// read and checked again.
#[derive(Clone, Copy, Debug, Default)]
pub struct HourMemo {
    /// `YYYY-MM-DDThh` as two little-endian words; all zero (no digit) when empty.
    key: (u64, u64),
    /// Seconds from the epoch to that hour's start, before any offset.
    secs: i64,
}

/// The first thirteen bytes of `head` (date and hour) as two words.
fn hour_key(head: &[u8; 19]) -> (u64, u64) {
    let word = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("eight"));
    (word(0), word(8) & 0xff_ffff_ffff)
}

/// `parse_rfc3339`, reading the date and hour from `memo` when they repeat its own.
pub fn parse_rfc3339_in(text: &str, memo: &mut HourMemo) -> Option<i64> {
    // Most timestamps start with a digit and end with one or a `Z`: no white space to trim.
    let bare = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let s = match bare(text.as_bytes().first()) && bare(text.as_bytes().last()) {
        true => text.as_bytes(),
        false => text.trim().as_bytes(),
    };
    // The date and time as a fixed-size array: every place below is checked at compile time.
    let head: &[u8; 19] = s.get(..19)?.try_into().ok()?;
    let d = head.map(|c| c.wrapping_sub(b'0'));
    let key = hour_key(head);
    if key != memo.key {
        memo.secs = hour_start(head, &d)?;
        memo.key = key;
    }
    let (minute, second) = (two_digits(&d, 14), two_digits(&d, 17));
    let clock = head[13] == b':' && head[16] == b':';
    if !clock || d[14].max(d[15]).max(d[17]).max(d[18]) > 9 || minute > 59 || second > 60 {
        return None;
    }
    let (nanos, rest) = match &s[19..] {
        [b'.' | b',', rest @ ..] => fraction(rest)?,
        rest => (0, rest),
    };
    let offset_s = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            offset(*sign, [*h1, *h2, *m1, *m2])?
        }
        _ => return None,
    };
    // A leap second is folded into the next one, as most parsers do.
    let secs = memo.secs + i64::from(minute * 60 + second) - offset_s;
    secs.checked_mul(NS_PER_S)?.checked_add(i64::from(nanos))
}

/// The number written by the digits `d[i]` and `d[i + 1]` (each a byte minus `'0'`).
fn two_digits(d: &[u8; 19], i: usize) -> u32 {
    u32::from(d[i]) * 10 + u32::from(d[i + 1])
}

/// Seconds from the epoch to the start of the date and hour of `head` (`d` its bytes minus
/// `'0'`), when they are valid.
fn hour_start(head: &[u8; 19], d: &[u8; 19]) -> Option<i64> {
    let separators = head[4] == b'-' && head[7] == b'-' && matches!(head[10], b'T' | b't' | b' ');
    const DIGITS: [usize; 10] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12];
    if !separators || DIGITS.iter().fold(0, |max, &i| max.max(d[i])) > 9 {
        return None;
    }
    let two = |i: usize| two_digits(d, i);
    let (year, month, day, hour) = (i64::from(two(0) * 100 + two(2)), two(5), two(8), two(11));
    let valid =
        (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month) && hour < 24;
    valid.then(|| days_from_civil(year, month, day) * 86_400 + i64::from(hour) * 3600)
}

/// Powers of ten that scale a fraction of `9 - k` digits to nanoseconds.
const FRACTION_SCALE: [u32; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// The nanoseconds of the fraction digits starting `rest`, and what follows them. Digits past
/// nanoseconds are accepted and truncated.
fn fraction(rest: &[u8]) -> Option<(u32, &[u8])> {
    let (mut v, mut n) = (0u32, 0usize);
    for &c in rest {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        if n < 9 {
            v = v * 10 + u32::from(digit);
        }
        n += 1;
    }
    if n == 0 {
        return None;
    }
    Some((v * FRACTION_SCALE[9 - n.min(9)], &rest[n..]))
}

/// Seconds east of UTC of a `+hh:mm` or `+hhmm` offset.
fn offset(sign: u8, digits: [u8; 4]) -> Option<i64> {
    let d = digits.map(|c| c.wrapping_sub(b'0'));
    if d.iter().any(|&v| v > 9) {
        return None;
    }
    let (h, m) = (i64::from(d[0] * 10 + d[1]), i64::from(d[2] * 10 + d[3]));
    if h > 23 || m > 59 {
        return None;
    }
    let s = h * 3600 + m * 60;
    Some(if sign == b'-' { -s } else { s })
}

/// `days_from_civil` for the years four digits can write (0 to 9999), in unsigned arithmetic:
/// a year 400 ahead keeps every quotient positive, and its era is taken back at the end.
fn days_from_year_0(year: u32, month: u32, day: u32) -> i64 {
    let y = u64::from(year) + 400 - u64::from(month <= 2);
    let (era, yoe) = (y / 400, y % 400);
    let m = u64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + u64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era as i64 - 1) * 146_097 + doe as i64 - 719_468
}

fn scale(unit: EpochUnit, magnitude: f64) -> i64 {
    let unit = match unit {
        EpochUnit::Auto if magnitude < 1e11 => EpochUnit::S,
        EpochUnit::Auto if magnitude < 1e14 => EpochUnit::Ms,
        EpochUnit::Auto if magnitude < 1e17 => EpochUnit::Us,
        EpochUnit::Auto => EpochUnit::Ns,
        fixed => fixed,
    };
    match unit {
        EpochUnit::S => NS_PER_S,
        EpochUnit::Ms => 1_000_000,
        EpochUnit::Us => 1_000,
        _ => 1,
    }
}

/// An epoch number written as JSON number text (`1700000000`, `1521911721.255387`, `1.7e9`).
pub fn parse_epoch(text: &str, unit: EpochUnit) -> Option<i64> {
    if let Ok(v) = text.parse::<i64>() {
        return v.checked_mul(scale(unit, v.unsigned_abs() as f64));
    }
    if let Some((int, frac)) = text.split_once('.') {
        if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) {
            return parse_decimal_epoch(int, frac, unit);
        }
    }
    let v: f64 = text.parse().ok()?;
    let ns = v * scale(unit, v.abs()) as f64;
    (ns.is_finite() && ns.abs() < 9.2e18).then_some(ns as i64)
}

/// Exact decimal arithmetic so `1521911721.255387` keeps its microseconds.
fn parse_decimal_epoch(int: &str, frac: &str, unit: EpochUnit) -> Option<i64> {
    let whole: i64 = int.parse().ok()?;
    let factor = scale(unit, whole.unsigned_abs() as f64);
    let digits = factor.ilog10() as usize;
    let kept = &frac[..frac.len().min(digits)];
    let mut part: i64 = if kept.is_empty() {
        0
    } else {
        kept.parse().ok()?
    };
    part *= 10i64.pow((digits - kept.len()) as u32);
    let sign = if int.starts_with('-') { -1 } else { 1 };
    whole.checked_mul(factor)?.checked_add(sign * part)
}

/// A timestamp given as a string: RFC 3339 first, then a string of epoch digits.
pub fn parse_timestamp_str(text: &str, unit: EpochUnit) -> Option<i64> {
    parse_timestamp_str_in(text, unit, &mut HourMemo::default())
}

/// `parse_timestamp_str` with the hour of the last RFC 3339 timestamp read in `memo`.
pub fn parse_timestamp_str_in(text: &str, unit: EpochUnit, memo: &mut HourMemo) -> Option<i64> {
    let first = text.as_bytes().first()?;
    if text.len() >= 10 && text.as_bytes().get(4) == Some(&b'-') {
        return parse_rfc3339_in(text, memo);
    }
    if first.is_ascii_digit() || *first == b'-' {
        return parse_epoch(text.trim(), unit);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unsigned day count agrees with the signed one on the first and last day of every
    /// month of every year four digits can write.
    #[test]
    fn days_from_year_0_matches_days_from_any_year() {
        for year in 0..=9999u32 {
            for month in 1..=12 {
                for day in [1, days_in_month(i64::from(year), month)] {
                    assert_eq!(
                        days_from_year_0(year, month, day),
                        days_from_any_year(i64::from(year), month, day),
                        "{year}-{month}-{day}"
                    );
                }
            }
        }
    }

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.5Z"), Some(500_000_000));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.000000001Z"), Some(1));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.0000000019Z"), Some(1));
        assert_eq!(
            parse_rfc3339("2024-02-29 12:00:00-0530"),
            Some(1_709_227_800_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2018-03-24T17:15:21.255387Z"),
            Some(1_521_911_721_255_387_000)
        );
    }

    #[test]
    fn rfc3339_rejects_impossible_dates() {
        assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2023-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2023-01-01T24:00:00Z"), None);
        assert_eq!(parse_rfc3339("2023-01-01T00:00:00+25:00"), None);
        assert_eq!(parse_rfc3339("2023-01-01T00:00:00Zjunk"), None);
        assert_eq!(
            parse_rfc3339("3000-01-01T00:00:00Z"),
            None,
            "beyond i64 nanoseconds"
        );
    }

    #[test]
    fn epoch_units_are_inferred_by_magnitude() {
        let ns = 1_700_000_000_000_000_000;
        for text in [
            "1700000000",
            "1700000000000",
            "1700000000000000",
            "1700000000000000000",
        ] {
            assert_eq!(parse_epoch(text, EpochUnit::Auto), Some(ns), "{text}");
        }
        assert_eq!(
            parse_epoch("1521911721.255387", EpochUnit::Auto),
            Some(1_521_911_721_255_387_000)
        );
        assert_eq!(parse_epoch("1.7e9", EpochUnit::Auto), Some(ns));
        assert_eq!(
            parse_epoch("1700000000", EpochUnit::Ms),
            Some(1_700_000_000_000_000)
        );
    }

    /// RFC 3339 read another way, as the oracle of the property below: the text cut at its
    /// separators, each field parsed on its own.
    fn reference(text: &str) -> Option<i64> {
        let t = text.trim();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let num = |s: &str| digits(s).then(|| s.parse::<u32>().unwrap());
        let (date, rest) = (t.get(..10)?, t.get(11..)?);
        if !matches!(t.as_bytes()[10], b'T' | b't' | b' ') {
            return None;
        }
        let [y, mo, d]: [&str; 3] = date.split('-').collect::<Vec<_>>().try_into().ok()?;
        let [h, mi, se]: [&str; 3] = rest
            .get(..8)?
            .split(':')
            .collect::<Vec<_>>()
            .try_into()
            .ok()?;
        let (widths, mut rest) = ([y, mo, d, h, mi, se].map(str::len), &rest[8..]);
        if widths != [4, 2, 2, 2, 2, 2] {
            return None;
        }
        let mut nanos = 0;
        if let Some(frac) = rest.strip_prefix(['.', ',']) {
            let n = frac.bytes().take_while(u8::is_ascii_digit).count();
            let kept: String = frac[..n]
                .chars()
                .chain("000000000".chars())
                .take(9)
                .collect();
            nanos = num(&kept).filter(|_| n > 0)?;
            rest = &frac[n..];
        }
        let offset_s = match rest {
            "" | "Z" | "z" => 0,
            _ => {
                let sign = if rest.starts_with('-') { -1 } else { 1 };
                let hhmm = rest.strip_prefix(['+', '-'])?.replacen(':', "", 1);
                let (oh, om) = (num(hhmm.get(..2)?)?, num(hhmm.get(2..)?)?);
                if hhmm.len() != 4 || oh > 23 || om > 59 {
                    return None;
                }
                sign * i64::from(oh * 3600 + om * 60)
            }
        };
        let civil = Civil {
            year: i64::from(num(y)?),
            month: num(mo)?,
            day: num(d)?,
            hour: num(h)?,
            minute: num(mi)?,
            second: num(se)?,
            nanos,
            offset_s,
        };
        civil.to_ns()
    }

    #[test]
    fn the_reference_reads_what_rfc3339_allows() {
        assert_eq!(reference("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            reference(" 2024-02-29 12:00:00-0530"),
            Some(1_709_227_800_000_000_000)
        );
        assert_eq!(
            reference("2018-03-24T17:15:21.255387Z"),
            Some(1_521_911_721_255_387_000)
        );
        assert_eq!(reference("1970-01-01T00:00:00.0000000019z"), Some(1));
        assert_eq!(reference("2023-02-29T00:00:00Z"), None);
        assert_eq!(reference("2023-01-01T00:00:00Zjunk"), None);
    }

    proptest::proptest! {
        /// The fixed-place reading answers as the field-by-field reference does, on
        /// timestamps of every shape and on strings near them.
        #[test]
        fn rfc3339_reads_as_the_reference(
            date in (0u32..10_000, 0u32..14, 0u32..33),
            time in (0u32..25, 0u32..61, 0u32..62),
            sep in proptest::sample::select(vec!["T", "t", " ", "_"]),
            frac in "([.,][0-9]{0,11})?",
            offset in "(Z|z|[+-][0-9]{2}:?[0-9]{2}|[+-]2[0-9]:?7[0-9])?",
            pad in proptest::sample::select(vec!["", " ", "\u{a0}"]),
            noise in proptest::option::of((0usize..30, proptest::num::u8::ANY)),
        ) {
            let ((y, mo, d), (h, mi, se)) = (date, time);
            let mut text = format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{se:02}{frac}{offset}");
            if let Some((at, byte)) = noise {
                let mut bytes = text.into_bytes();
                let at = at.min(bytes.len() - 1);
                bytes[at] = byte & 0x7f;
                text = String::from_utf8(bytes).unwrap();
            }
            let text = format!("{pad}{text}{pad}");
            proptest::prop_assert_eq!(parse_rfc3339(&text), reference(&text), "{}", text);
        }
    }

    /// Timestamps of a few dates and hours read in a row with one memo, as a stream's are: each
    /// answers as it does alone, whatever came before it.
    #[test]
    fn rfc3339_in_a_row_reads_as_alone() {
        let mut runner = proptest::test_runner::TestRunner::default();
        let year = proptest::sample::select(vec![1677u32, 1970, 2024, 2262, 9999]);
        let day = proptest::sample::select(vec![0u32, 1, 28, 29, 30, 31, 32]);
        let hour = proptest::sample::select(vec![0u32, 9, 23, 24]);
        let stamp = (
            year,
            0u32..14,
            day,
            hour,
            0u32..61,
            0u32..62,
            "(\\.[0-9]{1,9})?Z?",
        );
        let noise = proptest::option::weighted(0.2, (0usize..19, proptest::num::u8::ANY));
        let stamps = proptest::collection::vec((stamp, noise), 1..12);
        runner
            .run(&stamps, |stamps| {
                let mut memo = HourMemo::default();
                for ((y, mo, d, h, mi, se, tail), noise) in stamps {
                    let mut text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{tail}");
                    if let Some((at, byte)) = noise {
                        text.replace_range(at..at + 1, &char::from(byte & 0x7f).to_string());
                    }
                    let alone = reference(&text);
                    proptest::prop_assert_eq!(
                        parse_rfc3339_in(&text, &mut memo),
                        alone,
                        "{}",
                        text
                    );
                }
                Ok(())
            })
            .unwrap();
        // The earliest instant of i64 nanoseconds lies inside an hour whose start does not.
        assert_eq!(
            parse_rfc3339("1677-09-21T00:12:44Z"),
            Some(-9_223_372_036_000_000_000)
        );
        assert_eq!(parse_rfc3339("1677-09-21T00:12:43Z"), None);
    }

    #[test]
    fn civil_round_trip() {
        for days in [-719_468, -1, 0, 1, 11_016, 19_782, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
