//! One NDJSON line into a staged row and its `fields` object.

use std::borrow::Cow;

use serde::de;
use sonic_rs::{JsonType, JsonValueTrait, LazyValue};

use super::builder::{Literal, Reason, Row};
use super::json::{bracket_count, exact_depth, unescape, unescape_cow};
use super::keys::{target, Target};
use super::level::{level_from_number, level_from_text};
use super::scan::{self, Member};
use super::time::{parse_epoch, parse_timestamp_str_in, EpochUnit, HourMemo};
use super::{Decoder, Reject};
use crate::schema::Level;

impl Decoder {
    /// Reads the NDJSON line `text` into `row`; `scanned` when the row's `scanned` holds the
    /// line's members already.
    pub(super) fn decode_json<'a>(
        &self,
        text: &'a str,
        scanned: bool,
        row: &mut Row<'a>,
    ) -> Result<(), Reject> {
        let mut found = std::mem::take(&mut row.scanned);
        let read = match scanned {
            true => Some(()),
            false => scan::object(text, self.config.max_depth, &mut found),
        };
        let result = match read {
            Some(()) => found.iter().try_for_each(|m| {
                let (key, raw) = (slice(text, m.key), slice(text, m.value));
                if !(m.key_escaped || m.escaped) {
                    return self.place_plain(key, m, raw, text, row);
                }
                let kind = Kind(m.kind, m.escaped);
                // An escaped key is unescaped here, a lone surrogate becoming U+FFFD as in values.
                let key = match m.key_escaped {
                    true => unescape(slice(text, (m.key.0 - 1, m.key.1 + 1)))
                        .ok_or_else(|| Reject::new(Reason::MalformedJson, "bad escape in a key"))?,
                    false => Cow::Borrowed(key),
                };
                self.place(key, kind, Cow::Borrowed(raw), row)
            }),
            None => self.decode_json_parsed(text, row),
        };
        row.scanned = found;
        result
    }

    /// The full parser's reading of a line, for any line the scanner leaves to it.
    pub(super) fn decode_json_parsed<'a>(
        &self,
        text: &'a str,
        row: &mut Row<'a>,
    ) -> Result<(), Reject> {
        self.check_shape(text)?;
        for_each_member(text, |key, value, raw| {
            // The parser does not say whether a string holds an escape: it is looked for.
            self.place(key, Kind(value.get_type(), true), raw, row)
        })
    }

    /// Cheap checks before parsing: an object, not too deep.
    fn check_shape(&self, text: &str) -> Result<(), Reject> {
        let start = text.trim_start();
        if !start.starts_with('{') {
            return Err(if sonic_rs::from_str::<sonic_rs::Value>(text).is_ok() {
                Reject::new(Reason::NotAnObject, "top-level value is not an object")
            } else {
                Reject::new(Reason::MalformedJson, "not a JSON object")
            });
        }
        let max = self.config.max_depth;
        if bracket_count(text.as_bytes()) > max && exact_depth(text.as_bytes()) > max {
            return Err(Reject::new(
                Reason::TooDeep,
                format!("nesting deeper than {max}"),
            ));
        }
        Ok(())
    }

    /// `place` for a member the scanner read without an escape in its key or value: its text
    /// is borrowed as it stands, and a string column's value needs no check of its quotes.
    #[inline(always)]
    fn place_plain<'a>(
        &self,
        key: &'a str,
        m: &Member,
        raw: &'a str,
        text: &'a str,
        row: &mut Row<'a>,
    ) -> Result<(), Reject> {
        let target = target(key);
        let Target::Str(i) = target else {
            // Most other keys are the sender's own, kept in `fields` as sent.
            if target == Target::Fields {
                row.members.push((key.into(), raw.into()));
                return Ok(());
            }
            let kind = Kind(m.kind, false);
            return self.place_at(target, key.into(), kind, raw.into(), row);
        };
        let value = match m.kind {
            // The scanner's range of a string runs from its opening quote to past its closing one.
            JsonType::String => Some(slice(text, (m.value.0 + 1, m.value.1 - 1))),
            JsonType::Number | JsonType::Boolean => Some(raw),
            _ => None,
        };
        match value {
            Some(value) if row.strings[i].is_none() => row.strings[i] = Some(value.into()),
            // A null for a schema column is the column's null; anything else not placed is kept.
            _ if m.kind != JsonType::Null => row.members.push((key.into(), raw.into())),
            _ => {}
        }
        Ok(())
    }

    fn place<'a>(
        &self,
        key: Cow<'a, str>,
        kind: Kind,
        raw: Cow<'a, str>,
        row: &mut Row<'a>,
    ) -> Result<(), Reject> {
        self.place_at(target(&key), key, kind, raw, row)
    }

    fn place_at<'a>(
        &self,
        target: Target,
        key: Cow<'a, str>,
        kind: Kind,
        raw: Cow<'a, str>,
        row: &mut Row<'a>,
    ) -> Result<(), Reject> {
        let kept = match target {
            Target::Str(i) if row.strings[i].is_none() => {
                if row.defer && kind.0 == JsonType::String && kind.1 && Literal::deferrable(i) {
                    row.literal.mark(i);
                    row.strings[i] = Some(raw);
                    return Ok(());
                }
                string_value(kind, &raw).map(|s| row.strings[i] = Some(s))
            }
            // A null is the column's null, as for any column: no timestamp rather than an
            // unreadable one, even when strict; not kept, and a later key may fill it.
            Target::Timestamp if kind.0 == JsonType::Null => None,
            Target::Timestamp if row.timestamp.is_none() => {
                if !row.defer || self.config.strict_timestamps {
                    self.timestamp(kind, &raw, row)?
                } else {
                    // A second timestamp key fills the column only if the first cannot.
                    row.settle_time(None);
                    if row.timestamp.is_none() {
                        let unit = self.config.epoch_unit;
                        let at = row.members.len();
                        row.pending_time = Some(PendingTime {
                            key,
                            raw,
                            kind,
                            unit,
                            at,
                        });
                        return Ok(());
                    }
                    None
                }
            }
            Target::Level | Target::SeverityNumber if row.level.is_none() => {
                let otel = target == Target::SeverityNumber;
                level_value(kind, &raw, otel).map(|l| row.level = Some(l))
            }
            Target::Revenue if row.revenue.is_none() => number_value(kind, &raw)
                .and_then(revenue_amount)
                .map(|v| row.revenue = Some(v)),
            Target::SampleRate if row.sample_rate.is_none() => {
                // The sender's own rate multiplies ours; its field stays in `fields` as sent.
                if let Some(rate) = number_value(kind, &raw).and_then(sender_rate) {
                    row.sample_rate = Some(rate);
                }
                None
            }
            _ => None,
        };
        // A null for a schema column is the column's null; anything else not placed is kept.
        if kept.is_none() && (target == Target::Fields || kind.0 != JsonType::Null) {
            row.members.push((key, raw));
        }
        Ok(())
    }

    fn timestamp(&self, kind: Kind, raw: &str, row: &mut Row<'_>) -> Result<Option<()>, Reject> {
        match read_time(kind, raw, self.config.epoch_unit, &mut row.hour) {
            Some(ns) => {
                row.timestamp = Some(ns);
                Ok(Some(()))
            }
            None if self.config.strict_timestamps => Err(Reject::new(
                Reason::BadTimestamp,
                "timestamp could not be read",
            )),
            // Kept in `fields` under its key; the event falls back to `observed_at`.
            None => Ok(None),
        }
    }
}

/// A timestamp member left unread until the row is kept (or the sampler asks for it): most
/// rows a policy drops are decided by their level and trace id alone. One that cannot be read
/// goes back among the members at `at`, its place in the line, and the event falls back to
/// `observed_at`.
pub struct PendingTime<'a> {
    pub(crate) key: Cow<'a, str>,
    pub(crate) raw: Cow<'a, str>,
    kind: Kind,
    unit: EpochUnit,
    pub(crate) at: usize,
}

impl PendingTime<'_> {
    /// The timestamp in UTC nanoseconds, if it can be read.
    pub fn read(&self) -> Option<i64> {
        self.read_in(&mut HourMemo::default())
    }

    /// `read`, with the hour of the last RFC 3339 timestamp read in `memo`.
    pub fn read_in(&self, memo: &mut HourMemo) -> Option<i64> {
        read_time(self.kind, &self.raw, self.unit, memo)
    }
}

fn read_time(kind: Kind, raw: &str, unit: EpochUnit, memo: &mut HourMemo) -> Option<i64> {
    match kind.0 {
        JsonType::String => text(raw, kind).and_then(|s| parse_timestamp_str_in(&s, unit, memo)),
        JsonType::Number => parse_epoch(raw, unit),
        _ => None,
    }
}

/// Calls `place` with each member of the object `text`: its key, its value and the value's raw
/// text, borrowed from `text` unless it is a string with escapes. The members are read through
/// serde, whose keys are borrowed when they hold no escape (sonic's object iterator copies
/// every key); trailing text after the object is rejected.
pub(super) fn for_each_member<'a>(
    text: &'a str,
    place: impl FnMut(Cow<'a, str>, &LazyValue<'_>, Cow<'a, str>) -> Result<(), Reject>,
) -> Result<(), Reject> {
    let mut visitor = Members {
        text,
        place,
        rejected: None,
    };
    let mut de = sonic_rs::Deserializer::from_str(text);
    let parsed = de::Deserializer::deserialize_map(&mut de, &mut visitor);
    if let Some(reject) = visitor.rejected {
        return Err(reject);
    }
    parsed.map_err(|e| malformed(&e))?;
    de.end()
        .map_err(|_| Reject::new(Reason::MalformedJson, "unexpected text after the object"))
}

/// The serde visitor of one top-level object; a member `place` rejects stops the parse.
struct Members<'a, F> {
    text: &'a str,
    place: F,
    rejected: Option<Reject>,
}

impl<'a, F> de::Visitor<'a> for &mut Members<'a, F>
where
    F: FnMut(Cow<'a, str>, &LazyValue<'_>, Cow<'a, str>) -> Result<(), Reject>,
{
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: de::MapAccess<'a>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Key)? {
            let value: LazyValue<'a> = map.next_value()?;
            let raw = within(self.text, value.as_raw_str());
            if let Err(reject) = (self.place)(key, &value, raw) {
                self.rejected = Some(reject);
                return Err(de::Error::custom("rejected"));
            }
        }
        Ok(())
    }
}

/// A key, borrowed from the input when it holds no escape.
struct Key;

impl<'a> de::DeserializeSeed<'a> for Key {
    type Value = Cow<'a, str>;

    fn deserialize<D: de::Deserializer<'a>>(self, d: D) -> Result<Cow<'a, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'a> de::Visitor<'a> for Key {
    type Value = Cow<'a, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, v: &'a str) -> Result<Cow<'a, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'a, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// `part` as a slice of `text` when it lies inside it, else a copy (a string value with escapes
/// reaches the visitor copied).
fn within<'a>(text: &'a str, part: &str) -> Cow<'a, str> {
    let offset = (part.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    match text.get(offset..offset.wrapping_add(part.len())) {
        Some(slice) if slice.as_ptr() == part.as_ptr() => Cow::Borrowed(slice),
        _ => Cow::Owned(part.to_owned()),
    }
}

/// The text of a range the scanner found in `text`.
#[inline(always)]
fn slice(text: &str, (from, to): (usize, usize)) -> &str {
    assert!(from <= to && to <= text.len());
    debug_assert!(text.is_char_boundary(from) && text.is_char_boundary(to));
    // SAFETY: in bounds (checked above), and the scanner's ranges start and end next to ASCII
    // bytes (quotes, brackets, digits, letters of literals) or at the ends of `text`, so both
    // ends are character boundaries.
    unsafe { text.get_unchecked(from..to) }
}

/// A value's JSON type, and whether it may be a string holding an escape (the scanner knows;
/// the full parser's strings are searched).
#[derive(Clone, Copy)]
struct Kind(JsonType, bool);

/// The text of the string literal `raw`: its inside when it holds no escape, else unescaped.
fn text(raw: &str, kind: Kind) -> Option<Cow<'_, str>> {
    if kind.1 {
        return unescape(raw);
    }
    raw.strip_prefix('"')?.strip_suffix('"').map(Cow::Borrowed)
}

fn string_value<'a>(kind: Kind, raw: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    match kind.0 {
        JsonType::String => match raw {
            Cow::Borrowed(raw) => text(raw, kind),
            owned => unescape_cow(owned),
        },
        JsonType::Number | JsonType::Boolean => Some(raw.clone()),
        _ => None,
    }
}

fn number_value(kind: Kind, raw: &str) -> Option<f64> {
    let v: f64 = match kind.0 {
        JsonType::Number => raw.parse().ok()?,
        JsonType::String => text(raw, kind)?.trim().parse().ok()?,
        _ => return None,
    };
    v.is_finite().then_some(v)
}

/// A revenue amount: finite and under 10^11. A number of a payment card's 12 digits or more
/// is no amount; left out of the column it stays in `fields`, where redaction reads it.
pub(super) fn revenue_amount(v: f64) -> Option<f64> {
    (v.is_finite() && v.abs() < 1e11).then_some(v)
}

/// A sender's own `sample_rate`: how many events one stands for, 1 to 2^56 (the most a
/// probability sampler can claim). Anything else (a probability below 1, an overflowing
/// number) is left to `fields` as sent rather than multiplied into every estimate.
fn sender_rate(v: f64) -> Option<f64> {
    (1.0..=crate::sample::MAX_ADJUSTED_COUNT as f64)
        .contains(&v)
        .then_some(v)
}

/// A level member's value: a number, or a string of a number or a name (see `level`).
fn level_value(kind: Kind, raw: &str, otel: bool) -> Option<Level> {
    match kind.0 {
        JsonType::String => text(raw, kind).and_then(|s| level_from_text(&s, otel)),
        JsonType::Number => level_from_number(raw.parse().ok()?, otel),
        _ => None,
    }
}

fn malformed(e: &sonic_rs::Error) -> Reject {
    Reject::new(
        Reason::MalformedJson,
        format!("invalid JSON at column {}", e.column()),
    )
}
