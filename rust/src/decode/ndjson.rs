//! One NDJSON line into a staged row and its `fields` object.

use std::borrow::Cow;

use sonic_rs::{JsonType, JsonValueTrait, LazyValue};

use super::builder::{Reason, Row};
use super::json::{bracket_count, exact_depth, unescape};
use super::keys::{target, Target};
use super::level::{level_from_otel, level_from_str, level_from_syslog};
use super::time::{parse_epoch, parse_timestamp_str};
use super::{Decoder, Reject};
use crate::schema::Level;

impl Decoder {
    pub(super) fn decode_json<'a>(&self, text: &'a str, row: &mut Row<'a>) -> Result<(), Reject> {
        self.check_shape(text)?;
        let mut end = 0;
        for item in sonic_rs::to_object_iter(text) {
            let (key, value) = item.map_err(|e| malformed(&e))?;
            let raw = value.as_raw_str();
            end = raw.as_ptr() as usize + raw.len() - text.as_ptr() as usize;
            self.place(key, &value, row)?;
        }
        check_tail(text, end)
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

    fn place<'a>(
        &self,
        key: Cow<'a, str>,
        value: &LazyValue<'a>,
        row: &mut Row<'a>,
    ) -> Result<(), Reject> {
        let raw: &'a str = lazy_raw(value);
        let target = target(&key);
        let kept = match target {
            Target::Str(i) if row.strings[i].is_none() => string_value(value, raw).map(|s| {
                row.strings[i] = Some(s);
            }),
            Target::Timestamp if row.timestamp.is_none() => self.timestamp(value, raw, row)?,
            Target::Level | Target::SeverityNumber if row.level.is_none() => {
                let otel = target == Target::SeverityNumber;
                level_value(value, raw, otel).map(|l| row.level = Some(l))
            }
            Target::Revenue if row.revenue.is_none() => {
                number_value(value, raw).map(|v| row.revenue = Some(v))
            }
            Target::SampleRate if row.sample_rate.is_none() => {
                // The sender's own rate multiplies ours; its field stays in `fields` as sent.
                if let Some(rate) = number_value(value, raw).filter(|r| *r > 0.0) {
                    row.sample_rate = Some(rate);
                }
                None
            }
            _ => None,
        };
        // A null for a schema column is the column's null; anything else not placed is kept.
        if kept.is_none() && (target == Target::Fields || !value.is_null()) {
            row.members.push((key, Cow::Borrowed(raw)));
        }
        Ok(())
    }

    fn timestamp<'a>(
        &self,
        value: &LazyValue<'a>,
        raw: &'a str,
        row: &mut Row<'a>,
    ) -> Result<Option<()>, Reject> {
        let unit = self.config.epoch_unit;
        let parsed = match value.get_type() {
            JsonType::String => unescape(raw).and_then(|s| parse_timestamp_str(&s, unit)),
            JsonType::Number => parse_epoch(raw, unit),
            _ => None,
        };
        match parsed {
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

/// The raw text of a value with the lifetime of the input line.
fn lazy_raw<'a>(value: &LazyValue<'a>) -> &'a str {
    let raw = value.as_raw_str();
    // SAFETY: a LazyValue from `to_object_iter` over a `&'a str` is a sub-slice of that input,
    // so the bytes live for 'a.
    unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(raw.as_ptr(), raw.len())) }
}

fn string_value<'a>(value: &LazyValue<'a>, raw: &'a str) -> Option<Cow<'a, str>> {
    match value.get_type() {
        JsonType::String => unescape(raw),
        JsonType::Number | JsonType::Boolean => Some(Cow::Borrowed(raw)),
        _ => None,
    }
}

fn number_value(value: &LazyValue<'_>, raw: &str) -> Option<f64> {
    let v: f64 = match value.get_type() {
        JsonType::Number => raw.parse().ok()?,
        JsonType::String => unescape(raw)?.trim().parse().ok()?,
        _ => return None,
    };
    v.is_finite().then_some(v)
}

/// Numeric levels: syslog 0–7, pino/bunyan 10–60 in tens, OpenTelemetry numbers otherwise.
fn level_value(value: &LazyValue<'_>, raw: &str, otel: bool) -> Option<Level> {
    match value.get_type() {
        JsonType::String => unescape(raw).and_then(|s| level_from_str(&s)),
        JsonType::Number => {
            let n: i64 = raw.parse().ok()?;
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
        _ => None,
    }
}

/// The iterator stops at the closing brace without looking past it: anything after is an error.
fn check_tail(text: &str, end: usize) -> Result<(), Reject> {
    let rest = if end == 0 {
        // No members: the text must be `{` `}` with only whitespace around.
        text.trim().strip_prefix('{').unwrap_or("").trim_start()
    } else {
        text[end..].trim_start()
    };
    match rest.strip_prefix('}') {
        Some(after) if after.trim().is_empty() => Ok(()),
        _ => Err(Reject::new(
            Reason::MalformedJson,
            "unexpected text after the object",
        )),
    }
}

fn malformed(e: &sonic_rs::Error) -> Reject {
    Reject::new(
        Reason::MalformedJson,
        format!("invalid JSON at column {}", e.column()),
    )
}
