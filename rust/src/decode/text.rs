//! One raw text line into a staged row, parsed by the optional `parse` regex.

use std::borrow::Cow;

use super::builder::{col, Reason, Row};
use super::json::write_json_str;
use super::keys::{target, Target};
use super::level::level_from_text;
use super::ndjson::revenue_amount;
use super::time::parse_timestamp_str;
use super::{Decoder, Reject, State};

impl Decoder {
    pub(super) fn decode_text<'a>(
        &self,
        line: &'a str,
        row: &mut Row<'a>,
        st: &mut State<'_>,
        observed_ns: i64,
    ) -> Result<(), Reject> {
        let Some(parse) = &self.parse else {
            row.strings[col::MESSAGE] = Some(Cow::Borrowed(line));
            return Ok(());
        };
        // Limitation: redaction runs on the captured values, not on the line, so a `--parse`
        // pattern whose groups cut through a secret (a digit group inside a token) leaves
        // fragments no rule recognises.
        let Some(caps) = parse.captures(line) else {
            st.unparsed += 1;
            row.strings[col::MESSAGE] = Some(Cow::Borrowed(line));
            return Ok(());
        };
        for name in parse.capture_names().flatten() {
            if let Some(m) = caps.name(name) {
                self.place_text(name, m.as_str(), row, observed_ns)?;
            }
        }
        if row.strings[col::MESSAGE].is_none() {
            row.strings[col::MESSAGE] = Some(Cow::Borrowed(line));
        }
        Ok(())
    }

    fn place_text<'a>(
        &self,
        name: &str,
        value: &'a str,
        row: &mut Row<'a>,
        observed_ns: i64,
    ) -> Result<(), Reject> {
        let placed = match target(name) {
            Target::Str(i) => {
                row.strings[i] = Some(Cow::Borrowed(value));
                true
            }
            Target::Timestamp => self.text_timestamp(value, row, observed_ns)?,
            target @ (Target::Level | Target::SeverityNumber) => {
                row.level = level_from_text(value, target == Target::SeverityNumber);
                row.level.is_some()
            }
            Target::Revenue => {
                row.revenue = value.trim().parse().ok().and_then(revenue_amount);
                row.revenue.is_some()
            }
            Target::SampleRate | Target::Fields => false,
        };
        if !placed {
            let mut raw = String::with_capacity(value.len() + 2);
            write_json_str(&mut raw, value);
            row.members
                .push((Cow::Owned(name.to_owned()), Cow::Owned(raw)));
        }
        Ok(())
    }

    fn text_timestamp(
        &self,
        value: &str,
        row: &mut Row<'_>,
        observed_ns: i64,
    ) -> Result<bool, Reject> {
        let parsed = match &self.time_format {
            Some(format) => format.parse(value, observed_ns),
            None => parse_timestamp_str(value, self.config.epoch_unit),
        };
        row.timestamp = parsed;
        if parsed.is_none() && self.config.strict_timestamps {
            return Err(Reject::new(
                Reason::BadTimestamp,
                "timestamp does not match the format",
            ));
        }
        Ok(parsed.is_some())
    }
}
