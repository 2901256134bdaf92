//! Decoding: newline-delimited JSON or text lines into event batches and dead letters.

mod builder;
mod config;
pub mod json;
mod keys;
pub mod level;
mod ndjson;
pub mod scrub;
pub mod strptime;
mod text;
pub mod time;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use arrow_array::RecordBatch;
use regex::Regex;

pub use builder::{dead_letter_schema, Reason};
pub use config::{DecodeConfig, Format};
pub use scrub::{NoScrub, Scrub};

use crate::error::{Error, Result};
use builder::{col, BatchBuilder, DeadLetters, Row};
use strptime::TimeFormat;

/// Raw bytes kept in a dead letter, after redaction.
const MAX_DEAD_RAW: usize = 64 * 1024;

/// Bytes dropped before the cut of a line over the size limit (longer than any secret a rule
/// matches, PEM blocks aside, which are matched from their first line).
const CUT_MARGIN: usize = 4 * 1024;

/// What one call to [`Decoder::decode`] produced.
pub struct DecodeOutput {
    pub events: RecordBatch,
    pub dead_letters: RecordBatch,
    /// Lines consumed, blank ones included; the next call starts at `first_line + lines`.
    pub lines: u64,
    pub blank_lines: u64,
    /// Text lines that the `parse` regex did not match, stored whole in `message`.
    pub unparsed: u64,
    /// Redactions per rule, in the order of the redactor's rule names.
    pub redactions: Vec<u64>,
}

/// A decoder built once from its configuration and used for many batches, from many threads.
pub struct Decoder {
    config: DecodeConfig,
    parse: Option<Regex>,
    time_format: Option<TimeFormat>,
}

/// Why a line was rejected, with a detail that never quotes the payload.
pub(crate) struct Reject {
    reason: Reason,
    detail: String,
}

impl Reject {
    fn new(reason: Reason, detail: impl Into<String>) -> Reject {
        Reject {
            reason,
            detail: detail.into(),
        }
    }
}

impl Decoder {
    pub fn new(config: DecodeConfig) -> Result<Decoder> {
        let parse = config.parse.as_deref().map(compile_parse).transpose()?;
        let time_format = config
            .timestamp_format
            .as_deref()
            .map(TimeFormat::new)
            .transpose()?;
        if config.max_line_bytes == 0 || config.max_depth == 0 {
            return Err(Error::Config(
                "max_line_bytes and max_depth must be positive".into(),
            ));
        }
        Ok(Decoder {
            config,
            parse,
            time_format,
        })
    }

    pub fn from_json(text: &str) -> Result<Decoder> {
        let config = sonic_rs::from_str(text)
            .map_err(|e| Error::Config(format!("decoder configuration: {e}")))?;
        Decoder::new(config)
    }

    pub fn config(&self) -> &DecodeConfig {
        &self.config
    }

    /// Decodes every line of `data`; a final line without a newline is decoded too.
    pub fn decode(
        &self,
        data: &[u8],
        scrub: &dyn Scrub,
        source: &str,
        first_line: u64,
        observed_ns: i64,
    ) -> Result<DecodeOutput> {
        let mut state = State::new(scrub, data.len() / 256 + 1);
        let mut line_no = first_line;
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len())) {
            if end == data.len() && start == end {
                break;
            }
            let line = &data[start..end.min(data.len())];
            self.decode_one(trim_line(line), line_no, observed_ns, &mut state);
            line_no += 1;
            start = end + 1;
        }
        Ok(DecodeOutput {
            events: state.events.finish(observed_ns)?,
            dead_letters: state.dead.finish(source)?,
            lines: line_no - first_line,
            blank_lines: state.blank,
            unparsed: state.unparsed,
            redactions: state.counts,
        })
    }

    fn decode_one(&self, line: &[u8], line_no: u64, observed_ns: i64, st: &mut State<'_>) {
        if line.iter().all(u8::is_ascii_whitespace) {
            st.blank += 1;
            return;
        }
        let mut row = Row::default();
        let result = self.check(line).and_then(|text| match self.config.format {
            Format::Ndjson => self.decode_json(text, &mut row),
            Format::Text => self.decode_text(text, &mut row, st, observed_ns),
        });
        match result {
            Ok(()) => {
                self.fill_defaults(&mut row);
                st.commit(&mut row, observed_ns)
            }
            Err(reject) => st.reject(line, line_no, reject),
        }
    }

    fn fill_defaults<'a>(&'a self, row: &mut Row<'a>) {
        let category = &mut row.strings[col::CATEGORY];
        if category.is_none() {
            *category = Some(Cow::Borrowed(&self.config.category));
        }
        let service = &mut row.strings[col::SERVICE];
        if service.is_none() {
            *service = self.config.service.as_deref().map(Cow::Borrowed);
        }
    }

    fn check<'a>(&self, line: &'a [u8]) -> std::result::Result<&'a str, Reject> {
        if line.len() > self.config.max_line_bytes {
            let detail = format!("{} bytes, limit {}", line.len(), self.config.max_line_bytes);
            return Err(Reject::new(Reason::LineTooLong, detail));
        }
        std::str::from_utf8(line).map_err(|e| {
            let detail = format!("invalid UTF-8 at byte {}", e.valid_up_to());
            Reject::new(Reason::InvalidUtf8, detail)
        })
    }
}

fn compile_parse(pattern: &str) -> Result<Regex> {
    regex::RegexBuilder::new(pattern)
        .size_limit(8 << 20)
        .build()
        .map_err(|e| Error::Config(format!("parse regex: {e}")))
}

/// Strips a carriage return before the newline and a UTF-8 byte order mark.
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line)
}

/// Per-call state shared by the line decoders.
pub(crate) struct State<'s> {
    scrub: &'s dyn Scrub,
    events: BatchBuilder,
    dead: DeadLetters,
    fields: String,
    counts: Vec<u64>,
    blank: u64,
    unparsed: u64,
}

impl<'s> State<'s> {
    fn new(scrub: &'s dyn Scrub, rows: usize) -> State<'s> {
        State {
            scrub,
            events: BatchBuilder::with_capacity(rows),
            dead: DeadLetters::default(),
            fields: String::with_capacity(512),
            counts: vec![0; scrub.rule_count()],
            blank: 0,
            unparsed: 0,
        }
    }

    fn commit(&mut self, row: &mut Row<'_>, observed_ns: i64) {
        for (i, slot) in row.strings.iter_mut().enumerate() {
            if let Some(value) = slot.take() {
                *slot = Some(self.clean(i, value));
            }
        }
        let has_fields = self.build_fields(&row.members);
        let fields = has_fields.then_some(self.fields.as_str());
        self.events.push(row, fields, observed_ns);
    }

    /// Builds the `fields` object of a row's other members in `self.fields`, redacted in one
    /// pass; false when no member is left.
    fn build_fields(&mut self, members: &[(Cow<'_, str>, Cow<'_, str>)]) -> bool {
        if members.is_empty() {
            return false;
        }
        let pairs: Vec<(&str, &str)> = members.iter().map(|(k, v)| (&**k, &**v)).collect();
        self.fields.clear();
        self.fields.push('{');
        let kept = self
            .scrub
            .fields(&pairs, &mut self.fields, &mut self.counts);
        self.fields.push('}');
        kept > 0
    }

    /// Normalizes and redacts one string column value.
    fn clean<'a>(&mut self, column: usize, value: Cow<'a, str>) -> Cow<'a, str> {
        match column {
            // Ids are normalized, then redacted like any text: a sender can put anything there.
            col::TRACE_ID | col::SPAN_ID | col::PARENT_SPAN_ID => {
                redact(self.scrub, normalize_id(value), &mut self.counts)
            }
            col::USER_ID | col::SESSION_ID => {
                let name = crate::schema::STRING_COLUMNS[column];
                match self.scrub.pseudonym(name, &value) {
                    Some(p) => Cow::Owned(p),
                    None => redact(self.scrub, value, &mut self.counts),
                }
            }
            _ => redact(self.scrub, value, &mut self.counts),
        }
    }

    /// A dead letter: the whole line is redacted before it is cut to `MAX_DEAD_RAW`, and a
    /// line that is not UTF-8 is redacted as its lossy text (U+FFFD for each bad sequence), so
    /// a secret can hide neither past the cut nor behind an invalid byte.
    fn reject(&mut self, line: &[u8], line_no: u64, reject: Reject) {
        let lossy = String::from_utf8_lossy(line);
        let mut raw = self
            .scrub
            .bytes(lossy.as_bytes(), &mut self.counts)
            .into_owned();
        if reject.reason == Reason::LineTooLong {
            // The line was cut by the reader: a secret straddling the cut is not whole here, so
            // the tail near the cut is dropped rather than kept half-redacted.
            let keep = raw.len().saturating_sub(CUT_MARGIN);
            truncate_utf8(&mut raw, keep);
        }
        truncate_utf8(&mut raw, MAX_DEAD_RAW);
        let detail = self
            .scrub
            .text(&reject.detail, &mut self.counts)
            .into_owned();
        self.dead.push(
            line_no,
            reject.reason,
            &detail,
            &String::from_utf8_lossy(&raw),
        );
    }
}

/// Cuts UTF-8 text to at most `len` bytes, at a character boundary.
fn truncate_utf8(text: &mut Vec<u8>, len: usize) {
    let mut end = len.min(text.len());
    while end > 0 && end < text.len() && text[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    text.truncate(end);
}

fn redact<'a>(scrub: &dyn Scrub, value: Cow<'a, str>, counts: &mut [u64]) -> Cow<'a, str> {
    match value {
        Cow::Borrowed(s) => scrub.text(s, counts),
        Cow::Owned(s) => Cow::Owned(scrub.text(&s, counts).into_owned()),
    }
}

/// Ids are stored as lower-case hex; anything that is not hex (or a dashed UUID) is kept as sent.
fn normalize_id(value: Cow<'_, str>) -> Cow<'_, str> {
    let bytes = value.as_bytes();
    let hexlike = bytes.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-');
    if hexlike && bytes.iter().any(u8::is_ascii_uppercase) {
        Cow::Owned(value.to_ascii_lowercase())
    } else {
        value
    }
}
