//! Decoding: newline-delimited JSON or text lines into event batches and dead letters.

pub(crate) mod builder;
mod config;
pub mod json;
pub(crate) mod keys;
pub mod level;
mod ndjson;
pub mod parts;
pub(crate) mod scan;
pub mod scrub;
#[cfg(all(test, target_arch = "x86_64"))]
mod stage1;
pub mod strptime;
mod text;
pub mod time;

#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod tests;

use std::borrow::Cow;

use arrow_array::RecordBatch;
use regex::Regex;

pub use builder::{dead_letter_schema, Reason, Row};
pub use config::{DecodeConfig, Format};
pub use ndjson::PendingTime;
pub use parts::{Events, PartitionKey, PartitionRuns, Partitioned, MAX_PARTITION_BATCHES};
pub use scrub::{NoScrub, Scrub};

use crate::error::{Error, Result};
use builder::{col, DeadLetters, ViewColumn};
use parts::Parts;
use strptime::TimeFormat;

/// Raw bytes kept in a dead letter, after redaction.
const MAX_DEAD_RAW: usize = 64 * 1024;

/// Bytes dropped before the cut of a line over the size limit (longer than any secret a rule
/// matches, PEM blocks aside, which are matched from their first line).
const CUT_MARGIN: usize = 4 * 1024;

/// What one call to [`Decoder::decode`] produced: its events in one batch in input order, or
/// by store partition ([`Partitioned`]).
pub struct DecodeOutput<E = RecordBatch> {
    pub events: E,
    pub dead_letters: RecordBatch,
    /// Lines consumed, blank ones included; the next call starts at `first_line + lines`.
    pub lines: u64,
    pub blank_lines: u64,
    /// Text lines that the `parse` regex did not match, stored whole in `message`.
    pub unparsed: u64,
    /// Redactions per rule, in the order of the redactor's rule names.
    pub redactions: Vec<u64>,
}

/// A decision on each row after it is read and normalized, before it is redacted and
/// written: the seam where sampling drops rows that would cost redaction and column space.
pub trait Gate {
    /// The row's `sample_rate` when it is kept; None drops it. A gate that reads a pending
    /// timestamp settles it (`Row::settle_time`), so a kept row does not read it twice.
    fn admit(&mut self, row: &mut Row<'_>, observed_ns: i64) -> Option<f64>;
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
            .map_err(|e| crate::error::config_json("decoder configuration", &e))?;
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
        self.decode_gated(data, scrub, None, source, first_line, observed_ns)
    }

    /// `decode`, with `gate` deciding which rows are kept before they are redacted, and the
    /// events in one batch or by partition (`E`).
    pub fn decode_gated<'s, E: Events>(
        &self,
        data: &[u8],
        scrub: &'s dyn Scrub,
        gate: Option<&'s mut (dyn Gate + 's)>,
        source: &str,
        first_line: u64,
        observed_ns: i64,
    ) -> Result<DecodeOutput<E>> {
        let defer = gate.is_some();
        let mut state = State::new(scrub, gate, Parts::new(E::SPLIT, data.len() / 256 + 1));
        let mut row = Row {
            defer,
            ..Row::default()
        };
        let mut line_no = first_line;
        let mut start = 0;
        while start < data.len() {
            // A window of whole lines is checked as UTF-8 at once, then decoded while it is
            // still in the cache: cut at newlines and around a BOM, valid text stays valid, so
            // its lines need no check of their own unless the window fails it. The SIMD check
            // is several times faster than the standard library's on long input.
            let stop = window_end(data, start);
            let window = &data[..stop];
            let text = simdutf8::basic::from_utf8(&window[start..]).ok();
            let offset = start;
            // An NDJSON line is scanned from the window, the scan finding where it ends; a line
            // the scanner leaves to the parser is cut at its newline first.
            let scan_first = self.config.format == Format::Ndjson && text.is_some();
            while start < stop {
                let scanned = scan_first
                    .then(|| self.scan_line(window, start, &mut row.scanned))
                    .flatten();
                let end = scanned.unwrap_or_else(|| {
                    memchr::memchr(b'\n', &window[start..]).map_or(stop, |at| start + at)
                });
                let (from, to) = trim_line(&data[start..end]);
                let (from, to) = (start + from, start + to);
                let line = Line {
                    bytes: &data[from..to],
                    text: text.map(|t| &t[from - offset..to - offset]),
                    scanned: scanned.is_some(),
                };
                self.decode_one(line, line_no, observed_ns, &mut row, &mut state);
                line_no += 1;
                start = end + 1;
            }
        }
        // The source names a file, and a file name can hold a secret (`token=...ndjson`).
        let source = if state.dead.is_empty() {
            Cow::Borrowed(source)
        } else {
            scrub.text(source, &mut state.counts)
        };
        Ok(DecodeOutput {
            events: E::finish(state.events, observed_ns)?,
            dead_letters: state.dead.finish(&source)?,
            lines: line_no - first_line,
            blank_lines: state.blank,
            unparsed: state.unparsed,
            redactions: state.counts,
        })
    }

    fn decode_one<'a>(
        &'a self,
        line: Line<'a>,
        line_no: u64,
        observed_ns: i64,
        row: &mut Row<'a>,
        st: &mut State<'_>,
    ) {
        if line.bytes.iter().all(u8::is_ascii_whitespace) {
            st.blank += 1;
            return;
        }
        row.clear();
        let text = match self.check(line) {
            Ok(text) => text,
            Err(reject) => return st.reject(line.bytes, line_no, reject),
        };
        let result = match self.config.format {
            Format::Ndjson => self.decode_json(text, line.scanned, row),
            Format::Text => self.decode_text(text, row, st, observed_ns),
        };
        if let Err(reject) = result {
            return st.reject(line.bytes, line_no, reject);
        }
        self.fill_defaults(row);
        normalize_ids(row);
        if let Some(gate) = st.gate.as_mut() {
            match gate.admit(row, observed_ns) {
                Some(rate) => row.sample_rate = Some(rate),
                None => return,
            }
        }
        if row.defer {
            row.settle_time(None);
            row.settle_text();
        }
        // Members of an NDJSON row may borrow from its line.
        let json = (self.config.format == Format::Ndjson).then_some(text);
        st.commit(row, json, observed_ns)
    }

    /// Scans the object starting the line at `data[start]` into `found` and returns where the
    /// line ends (its newline or the end of `data`), when the line is one strict JSON object
    /// with nothing after it but white space and fits `max_line_bytes`; else `None`, and the
    /// line is cut at its newline and read as any other.
    #[inline]
    fn scan_line(&self, data: &[u8], start: usize, found: &mut Vec<scan::Member>) -> Option<usize> {
        let max = self.config.max_line_bytes;
        let window = &data[start..data.len().min(start.saturating_add(max))];
        let mut end = start + scan::object_end(window, self.config.max_depth, found)?;
        while matches!(data.get(end), Some(b' ' | b'\t' | b'\r')) {
            end += 1;
        }
        let ends = matches!(data.get(end), Some(b'\n') | None);
        (ends && end - start <= max).then_some(end)
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

    fn check<'a>(&self, line: Line<'a>) -> std::result::Result<&'a str, Reject> {
        let len = line.bytes.len();
        if len > self.config.max_line_bytes {
            let detail = format!("{len} bytes, limit {}", self.config.max_line_bytes);
            return Err(Reject::new(Reason::LineTooLong, detail));
        }
        if let Some(text) = line.text {
            return Ok(text);
        }
        std::str::from_utf8(line.bytes).map_err(|e| {
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

/// One input line; `text` when the whole input was checked to be UTF-8.
#[derive(Clone, Copy)]
struct Line<'a> {
    bytes: &'a [u8],
    text: Option<&'a str>,
    /// The line is one JSON object whose members the row's `scanned` holds already.
    scanned: bool,
}

/// Bytes of input checked and decoded at a time: the check's pass and the decoder's then read
/// the same bytes from the cache rather than from memory.
const WINDOW_BYTES: usize = 256 << 10;

/// The end of the window of whole lines starting at `data[start]`: just past the first newline
/// `WINDOW_BYTES` on, or the end of `data`.
fn window_end(data: &[u8], start: usize) -> usize {
    let from = start.saturating_add(WINDOW_BYTES);
    match data.get(from..) {
        Some(rest) => memchr::memchr(b'\n', rest).map_or(data.len(), |at| from + at + 1),
        None => data.len(),
    }
}

/// The range of a line without a carriage return before the newline and a UTF-8 byte order mark.
fn trim_line(line: &[u8]) -> (usize, usize) {
    let to = line.len() - usize::from(line.ends_with(b"\r"));
    let from = if line[..to].starts_with(b"\xef\xbb\xbf") {
        3
    } else {
        0
    };
    (from, to)
}

/// Per-call state shared by the line decoders.
pub(crate) struct State<'s> {
    scrub: &'s dyn Scrub,
    /// The scrub changes nothing (`Scrub::is_identity`).
    identity: bool,
    gate: Option<&'s mut dyn Gate>,
    events: Parts,
    dead: DeadLetters,
    /// Scratch for a row's `fields` members, kept empty between rows (see `recycle`).
    pairs: Vec<(&'static str, &'static str)>,
    counts: Vec<u64>,
    blank: u64,
    unparsed: u64,
}

impl<'s> State<'s> {
    fn new(scrub: &'s dyn Scrub, gate: Option<&'s mut dyn Gate>, events: Parts) -> State<'s> {
        State {
            scrub,
            identity: scrub.is_identity(),
            gate,
            events,
            dead: DeadLetters::default(),
            pairs: Vec::new(),
            counts: vec![0; scrub.rule_count()],
            blank: 0,
            unparsed: 0,
        }
    }

    /// Appends a row to its partition's columns. `json` is the NDJSON line the row was read
    /// from, which its members may borrow.
    fn commit(&mut self, row: &mut Row<'_>, json: Option<&str>, observed_ns: i64) {
        let timestamp = row.timestamp.unwrap_or(observed_ns);
        if self.identity {
            let builder = self
                .events
                .builder(row.strings[col::CATEGORY].as_deref(), timestamp);
            for (slot, column) in row.strings.iter().zip(&mut builder.strings) {
                column.push(slot.as_deref());
            }
            push_plain_fields(&mut builder.fields, &row.members, json);
            return builder.push(row, observed_ns);
        }
        let mut strings = row.strings.iter_mut().enumerate();
        // The category is cleaned first: its stored value names the row's partition.
        let (_, category) = strings.next().expect("the category column comes first");
        let category = category
            .take()
            .map(|value| self.clean(col::CATEGORY, value));
        self.events.builder(category.as_deref(), timestamp).strings[col::CATEGORY]
            .push(category.as_deref());
        for (i, slot) in strings {
            let value = slot.take().map(|v| self.clean(i, v));
            self.events.current().strings[i].push(value.as_deref());
        }
        self.push_fields(&row.members);
        self.events.current().push(row, observed_ns);
    }

    /// Writes the `fields` object of a row's other members straight into its column, redacted
    /// in one pass; null when no member is left.
    fn push_fields(&mut self, members: &[(Cow<'_, str>, Cow<'_, str>)]) {
        if members.is_empty() {
            return self.events.current().fields.push(None);
        }
        let mut pairs = recycle(std::mem::take(&mut self.pairs));
        pairs.extend(members.iter().map(|(k, v)| (&**k, &**v)));
        let (scrub, counts) = (self.scrub, &mut self.counts);
        self.events
            .current()
            .fields
            .push_with(fields_len(members), |out| {
                out.push('{');
                let kept = scrub.fields(&pairs, out, counts);
                out.push('}');
                kept > 0
            });
        self.pairs = recycle(pairs);
    }

    /// Normalizes and redacts one string column value.
    fn clean<'a>(&mut self, column: usize, value: Cow<'a, str>) -> Cow<'a, str> {
        match column {
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

/// An emptied vector of borrowed pairs under another lifetime. Collecting an empty `IntoIter`
/// into a vector of the same layout reuses its allocation, so rows allocate no scratch.
fn recycle<'b>(mut pairs: Vec<(&str, &str)>) -> Vec<(&'b str, &'b str)> {
    pairs.clear();
    pairs.into_iter().map(|_| unreachable!()).collect()
}

/// The length of the `fields` object of `members` when no member changes: quotes, colon and
/// comma around each key and raw value, and the braces.
fn fields_len(members: &[(Cow<'_, str>, Cow<'_, str>)]) -> usize {
    2 + members
        .iter()
        .map(|(k, v)| k.len() + v.len() + 4)
        .sum::<usize>()
}

/// The `fields` object of `members` as they stand, without redaction. A member read from the
/// line `json` as `"key":value`, with nothing between its key and value, is copied from the
/// line whole: the line is valid JSON, so its text is the member's JSON as sent.
fn push_plain_fields(
    column: &mut ViewColumn,
    members: &[(Cow<'_, str>, Cow<'_, str>)],
    json: Option<&str>,
) {
    if members.is_empty() {
        return column.push(None);
    }
    column.push_with(fields_len(members), |out| {
        out.push('{');
        for (i, (key, raw)) in members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match json.and_then(|line| member_text(line, key, raw)) {
                Some(whole) => out.push_str(whole),
                None => json::write_member(out, key, raw),
            }
        }
        out.push('}');
        true
    });
}

/// The text of `line` from the quote before `key` to the end of `raw`, when both lie in
/// `line` as a key and the value right after its colon.
#[inline]
fn member_text<'a>(line: &'a str, key: &str, raw: &str) -> Option<&'a str> {
    // Offsets by address: a part held elsewhere (an unescaped key) does not lie in `line`, and
    // fails the checks below.
    let base = line.as_ptr() as usize;
    let k = (key.as_ptr() as usize).wrapping_sub(base);
    let v = (raw.as_ptr() as usize).wrapping_sub(base);
    let end = v.checked_add(raw.len())?;
    let quoted = k.checked_sub(1)?;
    // So `quoted < k < v <= end <= line.len()`.
    let fits = k.checked_add(key.len())?.checked_add(2)? == v && end <= line.len();
    let b = line.as_bytes();
    (fits && b[quoted] == b'"' && b[v - 2] == b'"' && b[v - 1] == b':')
        .then(|| line.get(quoted..end))
        .flatten()
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
        Cow::Owned(s) => {
            let redacted = match scrub.text(&s, counts) {
                Cow::Borrowed(_) => None,
                Cow::Owned(r) => Some(r),
            };
            // Unchanged text keeps its buffer rather than a copy of it.
            Cow::Owned(redacted.unwrap_or(s))
        }
    }
}

/// Normalizes the row's ids before they are sampled on; they are redacted like any text later,
/// as a sender can put anything there.
fn normalize_ids(row: &mut Row<'_>) {
    for slot in &mut row.strings[col::TRACE_ID..=col::PARENT_SPAN_ID] {
        if let Some(id) = slot.take() {
            *slot = Some(normalize_id(id));
        }
    }
}

/// Ids are stored as lower-case hex; anything that is not hex (or a dashed UUID) is kept as sent.
fn normalize_id(value: Cow<'_, str>) -> Cow<'_, str> {
    let bytes = value.as_bytes();
    // Most ids are already lower case: one branch-free pass settles them.
    let upper = bytes
        .iter()
        .fold(false, |any, b| any | b.is_ascii_uppercase());
    if upper && bytes.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-') {
        Cow::Owned(value.to_ascii_lowercase())
    } else {
        value
    }
}
