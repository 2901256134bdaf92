//! Column builders: rows staged while a line is read, then appended to Arrow arrays.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::types::UInt8Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float64Array, RecordBatch, StringViewArray,
    TimestampNanosecondArray, UInt64Array, UInt8Array,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow_data::MAX_INLINE_VIEW_LEN;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::ndjson::PendingTime;
use super::scan::Member;
use super::time::HourMemo;
use crate::error::Result;
use crate::schema::{self, Level, LEVELS, STRING_COLUMNS};

/// Index of each string column in `STRING_COLUMNS`.
pub mod col {
    pub const CATEGORY: usize = 0;
    pub const SERVICE: usize = 1;
    pub const TRACE_ID: usize = 2;
    pub const SPAN_ID: usize = 3;
    pub const PARENT_SPAN_ID: usize = 4;
    pub const USER_ID: usize = 5;
    pub const SESSION_ID: usize = 6;
    pub const MESSAGE: usize = 7;
    pub const STACK: usize = 8;
    pub const FEATURE: usize = 9;
    pub const COST_CENTER: usize = 10;
    pub const USER_TIER: usize = 11;
}

/// One event being read; strings borrow from the input line where they can. One row is reused
/// for every line of a call, so its `members` keep their allocation.
#[derive(Default)]
pub struct Row<'a> {
    /// Whether reading the timestamp and unescaping the message and stack wait until the row
    /// is kept: worth it only where a sampler may drop the row.
    pub defer: bool,
    pub timestamp: Option<i64>,
    /// A timestamp member not read yet: rows the sampler drops never need it read.
    pub pending_time: Option<PendingTime<'a>>,
    pub level: Option<Level>,
    pub strings: [Option<Cow<'a, str>>; 12],
    /// The message and stack when they are still JSON string literals with escapes, read by
    /// `settle_text` once the row is kept: rows the sampler drops are never unescaped.
    pub literal: Literal,
    pub revenue: Option<f64>,
    pub sample_rate: Option<f64>,
    /// Members for `fields`: key and raw JSON value, redacted together when the row commits.
    pub members: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Scratch for the members the scanner finds, kept for its allocation.
    pub scanned: Vec<Member>,
    /// The hour of the last RFC 3339 timestamp read, kept from line to line.
    pub hour: HourMemo,
}

impl Row<'_> {
    /// Empties the row for the next line.
    pub fn clear(&mut self) {
        self.timestamp = None;
        self.pending_time = None;
        self.level = None;
        self.strings = Default::default();
        self.literal = Literal::default();
        self.revenue = None;
        self.sample_rate = None;
        self.members.clear();
    }

    /// Reads a pending timestamp into `timestamp` (`read` when the caller has read it
    /// already); one that cannot be read goes back among the members, where it was.
    pub fn settle_time(&mut self, read: Option<Option<i64>>) {
        let Some(pending) = self.pending_time.take() else {
            return;
        };
        match read.unwrap_or_else(|| pending.read_in(&mut self.hour)) {
            Some(ns) => self.timestamp = Some(ns),
            None => self.members.insert(pending.at, (pending.key, pending.raw)),
        }
    }

    /// Unescapes the message and stack left as literals.
    pub fn settle_text(&mut self) {
        for slot in [col::MESSAGE, col::STACK] {
            if self.literal.holds(slot) {
                if let Some(raw) = self.strings[slot].take() {
                    self.strings[slot] = Some(Literal::read(raw));
                }
            }
        }
        self.literal = Literal::default();
    }
}

/// Which of the message and stack columns of a row hold a JSON string literal, quotes and
/// escapes as sent, rather than its text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Literal(u8);

impl Literal {
    /// Whether string column `slot` may be left as a literal.
    pub fn deferrable(slot: usize) -> bool {
        slot == col::MESSAGE || slot == col::STACK
    }

    pub fn mark(&mut self, slot: usize) {
        debug_assert!(Literal::deferrable(slot));
        self.0 |= 1 << (slot - col::MESSAGE);
    }

    pub fn holds(self, slot: usize) -> bool {
        Literal::deferrable(slot) && self.0 >> (slot - col::MESSAGE) & 1 == 1
    }

    /// The text of a literal the decoder accepted. Both of its parsers check every escape
    /// before a literal is left here, so reading it cannot fail; were it to, the literal's
    /// inside would be kept as sent rather than lost.
    pub fn read(raw: Cow<'_, str>) -> Cow<'_, str> {
        match super::json::unescape_cow(&raw) {
            Some(text) => text,
            None => {
                debug_assert!(false, "an accepted literal failed to unescape: {raw}");
                let inside = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"'));
                Cow::Owned(inside.unwrap_or(&raw).to_owned())
            }
        }
    }
}

/// A view column's data block holds at most this many bytes (one longer value aside), well
/// inside 32-bit view offsets.
const BLOCK_BYTES: usize = 1 << 30;

/// Bytes of a column's first data block per row expected.
const BYTES_PER_ROW: usize = 32;

/// A `Utf8View` column built in place: views, validity and data blocks, without the generic
/// builder's per-value checks. Values are `str`, so the data is UTF-8 by construction. A full
/// block is closed and a larger one started, so written data is never moved by a reallocation.
pub struct ViewColumn {
    views: Vec<u128>,
    valid: Validity,
    blocks: Vec<Buffer>,
    data: String,
}

/// A validity bitmap built one bit at a time, a word per 64 values, without the generic
/// builder's per-bit capacity checks. Its owner counts the values: each push is told how many
/// came before, and the nulls are counted once, when the bitmap is finished.
#[derive(Default)]
struct Validity {
    words: Vec<u64>,
    /// The bits of the word being filled, stored to `words` once full.
    word: u64,
}

impl Validity {
    fn with_capacity(rows: usize) -> Validity {
        Validity {
            words: Vec::with_capacity(rows.div_ceil(64)),
            ..Validity::default()
        }
    }

    /// Sets the bit of value `index` (the values before it pushed already).
    #[inline(always)]
    fn push(&mut self, valid: bool, index: usize) {
        let at = index % 64;
        self.word |= u64::from(valid) << at;
        if at == 63 {
            self.words.push(std::mem::take(&mut self.word));
        }
    }

    /// The bitmap of `len` values, or none when every value is valid.
    fn finish(mut self, len: usize) -> Option<NullBuffer> {
        if len % 64 != 0 {
            self.words.push(self.word);
        }
        let bits = BooleanBuffer::new(Buffer::from_vec(tight(self.words)), 0, len);
        Some(NullBuffer::new(bits)).filter(|nulls| nulls.null_count() > 0)
    }
}

/// Spare capacity kept after a data block's last value, so short copies may store whole words.
const SLACK: usize = 16;

impl ViewColumn {
    pub fn with_capacity(rows: usize) -> ViewColumn {
        ViewColumn {
            views: Vec::with_capacity(rows),
            valid: Validity::with_capacity(rows),
            blocks: Vec::new(),
            data: String::with_capacity(rows * BYTES_PER_ROW + SLACK),
        }
    }

    #[inline(always)]
    pub fn push(&mut self, value: Option<&str>) {
        match value {
            Some(s) if s.len() <= INLINE => self.push_view(inline_view(s.as_bytes()), true),
            Some(s) => {
                self.make_room(s.len());
                let start = self.data.len();
                append(&mut self.data, s);
                self.push_view(long_view(s.as_bytes(), self.blocks.len(), start), true);
            }
            None => self.push_view(0, false),
        }
    }

    /// Appends the value `write` appends to the data block, of about `hint` bytes (a wrong
    /// hint costs a reallocation, never a wrong value); null when `write` returns false.
    pub fn push_with(&mut self, hint: usize, write: impl FnOnce(&mut String) -> bool) {
        self.make_room(hint);
        let start = self.data.len();
        if !write(&mut self.data) {
            self.data.truncate(start);
            return self.push_view(0, false);
        }
        let value = &self.data.as_bytes()[start..];
        let view = if value.len() <= INLINE {
            let view = inline_view(value);
            // Short values live in the view itself.
            self.data.truncate(start);
            view
        } else {
            long_view(value, self.blocks.len(), start)
        };
        self.push_view(view, true);
    }

    /// Appends a view and its validity bit.
    #[inline(always)]
    fn push_view(&mut self, view: u128, valid: bool) {
        self.valid.push(valid, self.views.len());
        self.views.push(view);
    }

    /// Closes the data block unless `len` more bytes (and the slack) fit in it without a
    /// reallocation.
    #[inline]
    fn make_room(&mut self, len: usize) {
        let used = self.data.len();
        if used + len + SLACK <= self.data.capacity() && used < BLOCK_BYTES {
            return;
        }
        self.next_block(len);
    }

    #[cold]
    fn next_block(&mut self, len: usize) {
        let next = (self.data.capacity() * 2).clamp(BYTES_PER_ROW, BLOCK_BYTES);
        let full = std::mem::replace(&mut self.data, String::with_capacity(next.max(len) + SLACK));
        if !full.is_empty() {
            self.blocks.push(Buffer::from(full.into_bytes()));
        }
    }

    /// The column. Its buffers give back their spare capacity first (in place, without a
    /// copy): a batch may be held long after, buffered for a file, and a partition's builders
    /// were sized for more rows than it got.
    pub fn finish(&mut self) -> StringViewArray {
        let mut blocks = std::mem::take(&mut self.blocks);
        if !self.data.is_empty() {
            blocks.push(Buffer::from(tight(
                std::mem::take(&mut self.data).into_bytes(),
            )));
        }
        let nulls = std::mem::take(&mut self.valid).finish(self.views.len());
        let views = ScalarBuffer::from(tight(std::mem::take(&mut self.views)));
        // SAFETY: every view holds a `str` inline or names the block and offset where the `str`
        // was written, with its length and first four bytes; the validity has one bit per view.
        unsafe { StringViewArray::new_unchecked(views, blocks.into(), nulls) }
    }
}

/// `v` without its spare capacity.
fn tight<T>(mut v: Vec<T>) -> Vec<T> {
    v.shrink_to_fit();
    v
}

/// Appends `s` to `data`, which has room for it and `SLACK` bytes more: values of eight bytes
/// or more are copied as overlapping words rather than by a call to `memcpy`.
#[inline(always)]
fn append(data: &mut String, s: &str) {
    let (n, len) = (s.len(), data.len());
    assert!(len + n + SLACK <= data.capacity());
    if n < 8 {
        return data.push_str(s);
    }
    let src = s.as_ptr();
    // SAFETY: the bytes written are those of `s`, a `str`, so the data stays UTF-8; every
    // write lands in `len..len + n` inside the capacity (checked above) and every read in `s`:
    // sixteen-byte words at `0, 16, ...` below `n - 16` then one ending at `n`, or for
    // 8..16 bytes two eight-byte words at `0` and `n - 8`.
    unsafe {
        let vec = data.as_mut_vec();
        let dst = vec.as_mut_ptr().add(len);
        if n >= 16 {
            let mut i = 0;
            while i + 16 < n {
                std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), 16);
                i += 16;
            }
            std::ptr::copy_nonoverlapping(src.add(n - 16), dst.add(n - 16), 16);
        } else {
            std::ptr::copy_nonoverlapping(src, dst, 8);
            std::ptr::copy_nonoverlapping(src.add(n - 8), dst.add(n - 8), 8);
        }
        vec.set_len(len + n);
    }
}

/// The longest value a view holds inline.
const INLINE: usize = MAX_INLINE_VIEW_LEN as usize;

/// The view of a value of at most `INLINE` bytes: its length, then its bytes, zero-padded.
fn inline_view(value: &[u8]) -> u128 {
    let n = value.len();
    let low = u128::from(word(&value[..n.min(8)]));
    // Bytes 8.. by the load of the last four, which overlaps bytes already placed with equals.
    let high = match n {
        9.. => u128::from(u32::from_le_bytes(value[n - 4..].try_into().unwrap())) << (8 * (n - 4)),
        _ => 0,
    };
    n as u128 | (low | high) << 32
}

/// The view of a longer value written at `start` in data block `block`.
fn long_view(value: &[u8], block: usize, start: usize) -> u128 {
    let prefix = u32::from_le_bytes(value[..4].try_into().unwrap());
    (value.len() as u128) | (prefix as u128) << 32 | (block as u128) << 64 | (start as u128) << 96
}

/// The first eight bytes of `s` (fewer zero-padded) as a little-endian word, by at most two
/// overlapping loads.
pub fn word(s: &[u8]) -> u64 {
    let n = s.len();
    let at = |i: usize| u64::from(s[i]);
    let u32_at = |i: usize| u64::from(u32::from_le_bytes(s[i..i + 4].try_into().unwrap()));
    match n {
        0 => 0,
        // Byte `n / 2` and the last byte may repeat the first: they land on their own places.
        1..=3 => at(0) | at(n / 2) << (8 * (n / 2)) | at(n - 1) << (8 * (n - 1)),
        4..=7 => u32_at(0) | u32_at(n - 4) << (8 * (n - 4)),
        _ => u64::from_le_bytes(s[..8].try_into().unwrap()),
    }
}

/// Accumulates rows into the columns of one event batch.
pub struct BatchBuilder {
    timestamp: Vec<i64>,
    level: Vec<u8>,
    level_valid: Validity,
    /// The string columns in `STRING_COLUMNS` order.
    pub strings: Vec<ViewColumn>,
    /// The JSON object of the other keys, written straight into its column.
    pub fields: ViewColumn,
    revenue: Vec<f64>,
    revenue_valid: Validity,
    sample_rate: Vec<f64>,
}

impl BatchBuilder {
    pub fn with_capacity(rows: usize) -> BatchBuilder {
        BatchBuilder {
            timestamp: Vec::with_capacity(rows),
            level: Vec::with_capacity(rows),
            level_valid: Validity::with_capacity(rows),
            strings: (0..STRING_COLUMNS.len())
                .map(|_| ViewColumn::with_capacity(rows))
                .collect(),
            fields: ViewColumn::with_capacity(rows),
            revenue: Vec::with_capacity(rows),
            revenue_valid: Validity::with_capacity(rows),
            sample_rate: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.timestamp.len()
    }

    /// Appends the rest of a row whose `strings` and `fields` were pushed to their columns.
    pub fn push(&mut self, row: &Row<'_>, observed_ns: i64) {
        self.timestamp.push(row.timestamp.unwrap_or(observed_ns));
        self.level_valid.push(row.level.is_some(), self.level.len());
        self.level.push(row.level.map_or(0, |l| l as u8));
        self.revenue_valid
            .push(row.revenue.is_some(), self.revenue.len());
        self.revenue.push(row.revenue.unwrap_or(0.0));
        self.sample_rate.push(row.sample_rate.unwrap_or(1.0));
    }

    pub fn finish(mut self, observed_ns: i64) -> Result<RecordBatch> {
        let rows = self.len();
        let ts = |v: Vec<i64>| Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC"));
        let mut columns: Vec<ArrayRef> = vec![
            ts(tight(std::mem::take(&mut self.timestamp))),
            ts(vec![observed_ns; rows]),
            Arc::new(level_array(
                tight(self.level),
                self.level_valid.finish(rows),
            )?),
        ];
        columns.extend(
            self.strings
                .iter_mut()
                .map(|c| Arc::new(c.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.fields.finish()));
        let revenue =
            Float64Array::new(tight(self.revenue).into(), self.revenue_valid.finish(rows));
        columns.push(Arc::new(revenue));
        columns.push(Arc::new(Float64Array::from(tight(self.sample_rate))));
        // The chain's columns, filled later for audit rows.
        let zeros = zeros(rows * 16);
        columns.push(null_views(&zeros, rows));
        columns.push(null_u64(&zeros, rows));
        columns.push(null_views(&zeros, rows));
        columns.push(null_views(&zeros, rows));
        Ok(RecordBatch::try_new(schema::event_schema(), columns)?)
    }
}

/// Batches of at most this many rows take their null columns' buffers from one shared block
/// of zeros; larger ones get their own.
const SHARED_ZERO_ROWS: usize = 1 << 16;

/// A buffer of `len` zero bytes: a slice of one block shared by every batch up to
/// `SHARED_ZERO_ROWS` rows, so a batch's all-null columns cost no memory of their own.
fn zeros(len: usize) -> Buffer {
    static BLOCK: std::sync::OnceLock<Buffer> = std::sync::OnceLock::new();
    if len > SHARED_ZERO_ROWS * 16 {
        return Buffer::from(vec![0u8; len]);
    }
    BLOCK
        .get_or_init(|| Buffer::from(vec![0u8; SHARED_ZERO_ROWS * 16]))
        .slice_with_length(0, len)
}

/// All-null validity of `rows` rows over `zeros` (at least `rows / 8` bytes of zeros).
fn all_null(zeros: &Buffer, rows: usize) -> NullBuffer {
    let bits = BooleanBuffer::new(zeros.clone(), 0, rows);
    // SAFETY: every bit is zero, so all `rows` are null.
    unsafe { NullBuffer::new_unchecked(bits, rows) }
}

/// A `Utf8View` column of `rows` nulls over `zeros` (`16 * rows` bytes).
fn null_views(zeros: &Buffer, rows: usize) -> ArrayRef {
    let views = ScalarBuffer::new(zeros.clone(), 0, rows);
    // SAFETY: every view is zero (an empty inline value) and every row is null.
    let array = unsafe {
        StringViewArray::new_unchecked(views, Vec::new().into(), Some(all_null(zeros, rows)))
    };
    Arc::new(array)
}

/// A `UInt64` column of `rows` nulls over `zeros` (`8 * rows` bytes at least).
fn null_u64(zeros: &Buffer, rows: usize) -> ArrayRef {
    let values = ScalarBuffer::new(zeros.clone(), 0, rows);
    Arc::new(UInt64Array::new(values, Some(all_null(zeros, rows))))
}

fn level_array(codes: Vec<u8>, valid: Option<NullBuffer>) -> Result<DictionaryArray<UInt8Type>> {
    let keys = UInt8Array::new(codes.into(), valid);
    let values = Arc::new(StringViewArray::from_iter_values(LEVELS));
    Ok(DictionaryArray::try_new(keys, values)?)
}

/// The schema of a dead-letter batch.
pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
    ]))
}

/// Why a record became a dead letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    MalformedJson,
    NotAnObject,
    InvalidUtf8,
    LineTooLong,
    TooDeep,
    BadTimestamp,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedJson => "malformed_json",
            Reason::NotAnObject => "not_an_object",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::LineTooLong => "line_too_long",
            Reason::TooDeep => "too_deep",
            Reason::BadTimestamp => "bad_timestamp",
        }
    }
}

/// Accumulates dead letters: raw line (already redacted), line number, reason and detail.
#[derive(Default)]
pub struct DeadLetters {
    line: Vec<u64>,
    reason: StringBuilder,
    detail: StringBuilder,
    raw: StringBuilder,
}

impl DeadLetters {
    pub fn push(&mut self, line: u64, reason: Reason, detail: &str, raw: &str) {
        self.line.push(line);
        self.reason.append_value(reason.as_str());
        self.detail.append_value(detail);
        self.raw.append_value(raw);
    }

    /// Whether no line was dead-lettered.
    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    pub fn finish(mut self, source: &str) -> Result<RecordBatch> {
        let rows = self.line.len();
        let source = arrow_array::StringArray::from(vec![source; rows]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(source),
            Arc::new(UInt64Array::from(self.line)),
            Arc::new(self.reason.finish()),
            Arc::new(self.detail.finish()),
            Arc::new(self.raw.finish()),
        ];
        Ok(RecordBatch::try_new(dead_letter_schema(), columns)?)
    }
}
