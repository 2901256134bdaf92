//! Sampling rows the decoder has staged, before they are redacted and written: conditions and
//! randomness read the event as sent, with ids normalized and defaults filled in.

use std::cell::OnceCell;

use super::predicate::{Cell, EventView, NO_LEVEL};
use super::sampler::RowDecider;
use crate::decode::{Gate, NoScrub, Row, Scrub};

/// Schema indices of the columns a staged row holds (checked against the schema by a test).
const TIMESTAMP: usize = 0;
const OBSERVED_AT: usize = 1;
const FIRST_STRING: usize = 3;
const FIELDS: usize = 15;
const REVENUE: usize = 16;
const SAMPLE_RATE: usize = 17;

/// A staged row as the sampler reads it.
pub struct StagedEvent<'r, 'a> {
    row: &'r Row<'a>,
    observed_ns: i64,
    /// The `fields` object as it would be written without redaction, built on first use.
    fields: OnceCell<Option<String>>,
}

impl<'r, 'a> StagedEvent<'r, 'a> {
    pub fn new(row: &'r Row<'a>, observed_ns: i64) -> StagedEvent<'r, 'a> {
        StagedEvent {
            row,
            observed_ns,
            fields: OnceCell::new(),
        }
    }
}

impl EventView for StagedEvent<'_, '_> {
    #[inline]
    fn level_code(&self) -> u8 {
        self.row.level.map_or(NO_LEVEL, |l| l as u8)
    }

    #[inline]
    fn cell(&self, index: usize) -> Cell<'_> {
        match index {
            TIMESTAMP => Cell::Num(self.timestamp() as f64),
            OBSERVED_AT => Cell::Num(self.observed_ns as f64),
            FIELDS => self
                .fields_json()
                .map_or(Cell::Missing, |f| Cell::Str(f.as_bytes())),
            REVENUE => self.row.revenue.map_or(Cell::Missing, Cell::Num),
            SAMPLE_RATE => Cell::Num(self.sample_rate()),
            _ => self.text(index).map_or(Cell::Missing, Cell::Str),
        }
    }

    #[inline]
    fn text(&self, index: usize) -> Option<&[u8]> {
        let slot = self.row.strings.get(index.checked_sub(FIRST_STRING)?)?;
        slot.as_deref().map(str::as_bytes)
    }

    fn fields_json(&self) -> Option<&str> {
        let members = &self.row.members;
        let json = self.fields.get_or_init(|| {
            if members.is_empty() {
                return None;
            }
            let pairs: Vec<(&str, &str)> = members.iter().map(|(k, v)| (&**k, &**v)).collect();
            let mut out = String::from("{");
            NoScrub.fields(&pairs, &mut out, &mut []);
            out.push('}');
            Some(out)
        });
        json.as_deref()
    }

    #[inline]
    fn timestamp(&self) -> i64 {
        self.row.timestamp.unwrap_or(self.observed_ns)
    }

    #[inline]
    fn sent_timestamp(&self) -> Option<i64> {
        self.row.timestamp
    }

    #[inline]
    fn sample_rate(&self) -> f64 {
        self.row.sample_rate.unwrap_or(1.0)
    }
}

impl Gate for RowDecider<'_> {
    #[inline]
    fn admit(&mut self, row: &Row<'_>, observed_ns: i64) -> Option<f64> {
        self.decide(&StagedEvent::new(row, observed_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, STRING_COLUMNS};

    #[test]
    fn column_indices_match_the_event_schema() {
        let schema = schema::event_schema();
        let index = |name| schema.index_of(name).unwrap();
        assert_eq!(index(schema::TIMESTAMP), TIMESTAMP);
        assert_eq!(index(schema::OBSERVED_AT), OBSERVED_AT);
        assert_eq!(index(STRING_COLUMNS[0]), FIRST_STRING);
        for (i, name) in STRING_COLUMNS.iter().enumerate() {
            assert_eq!(index(name), FIRST_STRING + i, "{name}");
        }
        assert_eq!(index(schema::FIELDS), FIELDS);
        assert_eq!(index(schema::REVENUE), REVENUE);
        assert_eq!(index(schema::SAMPLE_RATE), SAMPLE_RATE);
    }
}
