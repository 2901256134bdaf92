//! Timestamp formats for text lines, in strftime notation (`%Y-%m-%d %H:%M:%S,%f`).

use super::time::{civil_from_days, Civil};
use crate::error::{Error, Result};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Clone, Debug, PartialEq)]
enum Item {
    Literal(u8),
    Space,
    Year4,
    Year2,
    Month,
    MonthName,
    DayName,
    Day,
    Hour,
    Minute,
    Second,
    Fraction,
    Offset,
    Epoch,
}

/// A compiled format. Years missing from the format are taken from the observed time.
#[derive(Clone, Debug)]
pub struct TimeFormat {
    items: Vec<Item>,
    has_year: bool,
}

impl TimeFormat {
    pub fn new(spec: &str) -> Result<TimeFormat> {
        let mut items = Vec::new();
        let mut bytes = spec.bytes();
        while let Some(b) = bytes.next() {
            let item = match b {
                b'%' => directive(bytes.next(), spec)?,
                b' ' => Item::Space,
                other => Item::Literal(other),
            };
            items.push(item);
        }
        let has_year = items
            .iter()
            .any(|i| matches!(i, Item::Year4 | Item::Year2 | Item::Epoch));
        Ok(TimeFormat { items, has_year })
    }

    /// UTC nanoseconds of `text`, which must match the whole format.
    pub fn parse(&self, text: &str, observed_ns: i64) -> Option<i64> {
        let s = text.as_bytes();
        let mut c = Civil {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            nanos: 0,
            offset_s: 0,
        };
        let mut i = 0;
        for item in &self.items {
            i = self.step(item, s, i, &mut c)?;
        }
        if i != s.len() {
            return None;
        }
        if self.items.contains(&Item::Epoch) {
            return (c.year * 1_000_000_000).checked_add(c.nanos as i64);
        }
        if !self.has_year {
            return yearless(c, observed_ns);
        }
        c.to_ns()
    }

    fn step(&self, item: &Item, s: &[u8], i: usize, c: &mut Civil) -> Option<usize> {
        let num = |min, max| number(s, i, min, max);
        Some(match item {
            Item::Literal(b) => (s.get(i) == Some(b)).then_some(i + 1)?,
            Item::Space => skip_spaces(s, i)?,
            Item::Year4 => num(4, 4).map(|(v, j)| (c.year = v, j).1)?,
            Item::Year2 => {
                num(2, 2).map(|(v, j)| (c.year = 2000 + v - 100 * (v >= 70) as i64, j).1)?
            }
            Item::Month => num(1, 2).map(|(v, j)| (c.month = v as u32, j).1)?,
            Item::Day => {
                let i = if s.get(i) == Some(&b' ') { i + 1 } else { i };
                number(s, i, 1, 2).map(|(v, j)| (c.day = v as u32, j).1)?
            }
            Item::Hour => num(1, 2).map(|(v, j)| (c.hour = v as u32, j).1)?,
            Item::Minute => num(2, 2).map(|(v, j)| (c.minute = v as u32, j).1)?,
            Item::Second => num(2, 2).map(|(v, j)| (c.second = v as u32, j).1)?,
            Item::Fraction => {
                let (v, j) = num(1, 9)?;
                c.nanos = (v as u64 * 10u64.pow(9 - (j - i) as u32)) as u32;
                j
            }
            Item::MonthName => name(s, i, &MONTHS).map(|(k, j)| (c.month = k as u32 + 1, j).1)?,
            Item::DayName => name(s, i, &DAYS)?.1,
            Item::Offset => offset(s, i, c)?,
            Item::Epoch => {
                let (v, j) = num(1, 12)?;
                c.year = v;
                j
            }
        })
    }
}

fn directive(next: Option<u8>, spec: &str) -> Result<Item> {
    Ok(match next {
        Some(b'Y') => Item::Year4,
        Some(b'y') => Item::Year2,
        Some(b'm') => Item::Month,
        Some(b'd') | Some(b'e') => Item::Day,
        Some(b'b') | Some(b'h') => Item::MonthName,
        Some(b'a') => Item::DayName,
        Some(b'H') => Item::Hour,
        Some(b'M') => Item::Minute,
        Some(b'S') => Item::Second,
        Some(b'f') => Item::Fraction,
        Some(b'z') => Item::Offset,
        Some(b's') => Item::Epoch,
        Some(b'%') => Item::Literal(b'%'),
        other => {
            let shown = other.map(|b| (b as char).to_string()).unwrap_or_default();
            return Err(Error::Config(format!(
                "timestamp format {spec:?}: unsupported directive %{shown} \
                 (supported: %Y %y %m %d %e %b %a %H %M %S %f %z %s %%)"
            )));
        }
    })
}

fn number(s: &[u8], i: usize, min: usize, max: usize) -> Option<(i64, usize)> {
    let mut j = i;
    let mut v: i64 = 0;
    while j < s.len() && j - i < max && s[j].is_ascii_digit() {
        v = v * 10 + (s[j] - b'0') as i64;
        j += 1;
    }
    (j - i >= min).then_some((v, j))
}

fn skip_spaces(s: &[u8], i: usize) -> Option<usize> {
    let n = s[i.min(s.len())..]
        .iter()
        .take_while(|b| **b == b' ')
        .count();
    (n > 0).then_some(i + n)
}

fn name(s: &[u8], i: usize, names: &[&str]) -> Option<(usize, usize)> {
    let word = s.get(i..i + 3)?;
    let k = names
        .iter()
        .position(|n| n.as_bytes().eq_ignore_ascii_case(word))?;
    let rest = s[i + 3..]
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    Some((k, i + 3 + rest))
}

fn offset(s: &[u8], i: usize, c: &mut Civil) -> Option<usize> {
    match *s.get(i)? {
        b'Z' => {
            c.offset_s = 0;
            Some(i + 1)
        }
        sign @ (b'+' | b'-') => {
            let (h, j) = number(s, i + 1, 2, 2)?;
            let j = if s.get(j) == Some(&b':') { j + 1 } else { j };
            let (m, j) = number(s, j, 2, 2)?;
            let secs = h * 3600 + m * 60;
            c.offset_s = if sign == b'-' { -secs } else { secs };
            Some(j)
        }
        _ => None,
    }
}

/// A time without a year belongs to the observed year, or the one before when that would put it
/// more than a day in the future (a December line read in January).
fn yearless(mut c: Civil, observed_ns: i64) -> Option<i64> {
    let (year, _, _) = civil_from_days(observed_ns.div_euclid(86_400 * 1_000_000_000));
    c.year = year;
    let ns = c.to_ns()?;
    if ns > observed_ns + 86_400 * 1_000_000_000 {
        c.year -= 1;
        return c.to_ns();
    }
    Some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::time::parse_rfc3339;

    fn at(text: &str) -> i64 {
        parse_rfc3339(text).unwrap()
    }

    #[test]
    fn loghub_formats() {
        let obs = at("2026-12-04T00:00:00Z");
        let hdfs = TimeFormat::new("%y%m%d %H%M%S").unwrap();
        assert_eq!(
            hdfs.parse("081109 203615", obs),
            Some(at("2008-11-09T20:36:15Z"))
        );
        let apache = TimeFormat::new("%a %b %d %H:%M:%S %Y").unwrap();
        let got = apache.parse("Sun Dec 04 04:47:44 2005", obs);
        assert_eq!(got, Some(at("2005-12-04T04:47:44Z")));
        let zk = TimeFormat::new("%Y-%m-%d %H:%M:%S,%f").unwrap();
        let got = zk.parse("2015-07-29 17:41:44,747", obs);
        assert_eq!(got, Some(at("2015-07-29T17:41:44.747Z")));
        let access = TimeFormat::new("%d/%b/%Y:%H:%M:%S %z").unwrap();
        let got = access.parse("17/May/2015:10:05:03 +0000", obs);
        assert_eq!(got, Some(at("2015-05-17T10:05:03Z")));
    }

    #[test]
    fn yearless_syslog_takes_the_observed_year_unless_in_the_future() {
        let f = TimeFormat::new("%b %d %H:%M:%S").unwrap();
        let obs = at("2026-12-04T00:00:00Z");
        assert_eq!(
            f.parse("Jun 14 15:16:01", obs),
            Some(at("2026-06-14T15:16:01Z"))
        );
        assert_eq!(
            f.parse("Jun  4 15:16:01", obs),
            Some(at("2026-06-04T15:16:01Z"))
        );
        let january = at("2027-01-02T00:00:00Z");
        assert_eq!(
            f.parse("Dec 31 23:00:00", january),
            Some(at("2026-12-31T23:00:00Z"))
        );
    }

    #[test]
    fn bad_directive_and_mismatch() {
        let err = TimeFormat::new("%Q").unwrap_err().to_string();
        assert!(err.contains("%Q"), "{err}");
        let f = TimeFormat::new("%Y-%m-%d").unwrap();
        assert_eq!(f.parse("2020-01-01 extra", 0), None);
        assert_eq!(f.parse("2020-02-30", 0), None);
    }
}
