//! Sampling rows the decoder has staged, before they are redacted and written: conditions and
//! randomness read the event as sent, with ids normalized and defaults filled in.

use std::borrow::Cow;
use std::cell::OnceCell;

use super::predicate::at::{FIELDS, FIRST_STRING, OBSERVED_AT, REVENUE, SAMPLE_RATE, TIMESTAMP};
use super::predicate::{Cell, EventView, NO_LEVEL};
use super::sampler::RowDecider;
use crate::decode::builder::{col, Literal};
use crate::decode::{Gate, NoScrub, Row, Scrub};

/// A staged row as the sampler reads it.
pub struct StagedEvent<'r, 'a> {
    row: &'r Row<'a>,
    observed_ns: i64,
    /// The row's pending timestamp once read, if a condition or the randomness needed it.
    pending_time: OnceCell<Option<i64>>,
    /// The message and stack once unescaped, where the row holds them as literals.
    texts: [OnceCell<Cow<'r, str>>; 2],
    /// The `fields` object as it would be written without redaction, built on first use.
    fields: OnceCell<Option<String>>,
}

impl<'r, 'a> StagedEvent<'r, 'a> {
    pub fn new(row: &'r Row<'a>, observed_ns: i64) -> StagedEvent<'r, 'a> {
        StagedEvent {
            row,
            observed_ns,
            pending_time: OnceCell::new(),
            texts: Default::default(),
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
        let slot = index.checked_sub(FIRST_STRING)?;
        let value = self.row.strings.get(slot)?.as_deref()?;
        if !self.row.literal.holds(slot) {
            return Some(value.as_bytes());
        }
        let text = &self.texts[slot - col::MESSAGE];
        Some(
            text.get_or_init(|| Literal::read(Cow::Borrowed(value)))
                .as_bytes(),
        )
    }

    fn fields_json(&self) -> Option<&str> {
        let members = &self.row.members;
        let json = self.fields.get_or_init(|| {
            // A pending timestamp that cannot be read is a member of `fields`, in its place.
            let unread = match &self.row.pending_time {
                Some(pending) if self.sent_timestamp().is_none() => Some(pending),
                _ => None,
            };
            if members.is_empty() && unread.is_none() {
                return None;
            }
            let mut pairs: Vec<(&str, &str)> = members.iter().map(|(k, v)| (&**k, &**v)).collect();
            if let Some(pending) = unread {
                pairs.insert(pending.at, (&pending.key, &pending.raw));
            }
            let mut out = String::from("{");
            NoScrub.fields(&pairs, &mut out, &mut []);
            out.push('}');
            Some(out)
        });
        json.as_deref()
    }

    #[inline]
    fn timestamp(&self) -> i64 {
        self.sent_timestamp().unwrap_or(self.observed_ns)
    }

    #[inline]
    fn sent_timestamp(&self) -> Option<i64> {
        match &self.row.pending_time {
            None => self.row.timestamp,
            Some(pending) => *self.pending_time.get_or_init(|| pending.read()),
        }
    }

    #[inline]
    fn sample_rate(&self) -> f64 {
        self.row.sample_rate.unwrap_or(1.0)
    }
}

impl Gate for RowDecider<'_> {
    #[inline]
    fn admit(&mut self, row: &mut Row<'_>, observed_ns: i64) -> Option<f64> {
        let event = StagedEvent::new(row, observed_ns);
        let rate = self.decide(&event);
        let read = event.pending_time.into_inner();
        if rate.is_some() && read.is_some() {
            row.settle_time(read);
        }
        rate
    }
}
