//! RFC 8785 (JCS) canonical form of one event row, written straight into a reused buffer.

use std::cell::Cell;
use std::cmp::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType, UInt64Type};
use arrow_array::{Array, Float64Array, RecordBatch, TimestampNanosecondArray, UInt64Array};
use arrow_schema::{DataType, TimeUnit};

use crate::decode::time::civil_from_days;
use crate::error::{Error, Result};
use crate::schema::{self, event_schema};

/// The `audit_prev_hash` of the first record of every chain: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The largest integer JCS writes as a number; larger ones are written as strings.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Orders two keys by their UTF-16 code units, as RFC 8785 sorts object members.
pub fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Bytes that JSON strings escape: control characters, `"` and `\`.
static ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Writes `s` as a JSON string the way ECMAScript `JSON.stringify` does.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut copied, mut i) = (0, 0);
    // Blocks of 16 bytes are tested at once; each escaped byte of a block is found by its bit.
    while let Some(block) = bytes.get(i..i + 16) {
        let block: &[u8; 16] = block.try_into().expect("16 bytes");
        let (mut mask, control) = escape_masks(block);
        if mask != 0 && control == 0 {
            // Only `"` and `\`, as in the JSON text of `fields`: the block is written whole.
            put(out, &bytes[copied..i]);
            put_backslashed(out, block, mask);
            copied = i + 16;
            mask = 0;
        }
        while mask != 0 {
            let at = i + mask.trailing_zeros() as usize;
            put(out, &bytes[copied..at]);
            write_escape(out, bytes[at]);
            copied = at + 1;
            mask &= mask - 1;
        }
        i += 16;
    }
    for at in i..bytes.len() {
        if ESCAPED[bytes[at] as usize] {
            put(out, &bytes[copied..at]);
            write_escape(out, bytes[at]);
            copied = at + 1;
        }
    }
    put(out, &bytes[copied..]);
    out.push(b'"');
}

/// Appends `block` with a backslash before each byte whose bit is set in `mask`, without a
/// branch per byte.
#[inline]
fn put_backslashed(out: &mut Vec<u8>, block: &[u8; 16], mask: u32) {
    out.reserve(32);
    // SAFETY: `reserve` left room for 32 bytes: the 16 of `block` and at most 16 backslashes.
    // `set_len` counts only the bytes written.
    unsafe {
        let start = out.as_mut_ptr().add(out.len());
        let mut end = start;
        for (k, &b) in block.iter().enumerate() {
            *end = b'\\';
            end = end.add((mask >> k & 1) as usize);
            *end = b;
            end = end.add(1);
        }
        out.set_len(out.len() + end.offset_from(start) as usize);
    }
}

/// Appends `bytes` to `out`. Runs of up to 32 bytes, most of a record, are copied with a
/// pair of overlapping loads and stores instead of a call to `memcpy`.
#[inline(always)]
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = bytes.len();
    if n > 32 {
        return out.extend_from_slice(bytes);
    }
    out.reserve(32);
    // SAFETY: `reserve` left room for 32 more bytes. Each pair of copies reads `bytes[..w]`
    // and `bytes[n - w..]` with `w <= n`, writes the same places of that room, and together
    // they cover the `n` bytes that `set_len` then counts.
    unsafe {
        let (src, dst) = (bytes.as_ptr(), out.as_mut_ptr().add(out.len()));
        if n >= 16 {
            copy_ends::<u128>(src, dst, n);
        } else if n >= 8 {
            copy_ends::<u64>(src, dst, n);
        } else if n >= 4 {
            copy_ends::<u32>(src, dst, n);
        } else {
            for k in 0..n {
                *dst.add(k) = *src.add(k);
            }
        }
        out.set_len(out.len() + n);
    }
}

/// Copies the first and the last `size_of::<T>()` of `n` bytes from `src` to `dst`.
///
/// # Safety
/// `size_of::<T>() <= n`, `src` readable and `dst` writable for `n` bytes.
#[inline(always)]
unsafe fn copy_ends<T: Copy>(src: *const u8, dst: *mut u8, n: usize) {
    let w = std::mem::size_of::<T>();
    let (head, last) = (
        src.cast::<T>().read_unaligned(),
        src.add(n - w).cast::<T>().read_unaligned(),
    );
    dst.cast::<T>().write_unaligned(head);
    dst.add(n - w).cast::<T>().write_unaligned(last);
}

/// One bit per byte of `block` to escape (control characters, `"` and `\`), and one per
/// control character alone. SSE2 is part of the x86-64 baseline.
#[cfg(target_arch = "x86_64")]
#[inline]
fn escape_masks(block: &[u8; 16]) -> (u32, u32) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is always present on x86-64, and the load reads the 16 bytes of `block`.
    unsafe {
        let bytes = _mm_loadu_si128(block.as_ptr().cast());
        let space = _mm_set1_epi8(0x1f);
        // A byte is a control character when max(byte, 0x1f) is 0x1f (unsigned).
        let control = _mm_cmpeq_epi8(_mm_max_epu8(bytes, space), space);
        let quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
        let all = _mm_or_si128(control, _mm_or_si128(quote, backslash));
        (
            _mm_movemask_epi8(all) as u32,
            _mm_movemask_epi8(control) as u32,
        )
    }
}

/// One bit per byte of `block` to escape (control characters, `"` and `\`), and one per
/// control character alone.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn escape_masks(block: &[u8; 16]) -> (u32, u32) {
    let bits = block.iter().enumerate();
    bits.fold((0, 0), |(all, control), (k, &b)| {
        let (escaped, low) = (ESCAPED[b as usize] as u32, (b < 0x20) as u32);
        (all | escaped << k, control | low << k)
    })
}

fn write_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x09 => b't',
        0x0a => b'n',
        0x0c => b'f',
        0x0d => b'r',
        _ => 0,
    };
    if short != 0 {
        out.extend_from_slice(&[b'\\', short]);
    } else {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(b >> 4) as usize],
            HEX[(b & 15) as usize],
        ]);
    }
}

/// Writes an unsigned integer: a JSON number up to 2^53 - 1, a decimal string beyond.
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n).as_bytes();
    write_integer_digits(out, digits, n <= MAX_SAFE_INTEGER);
}

/// Writes a signed integer: a JSON number within ±(2^53 - 1), a decimal string beyond.
pub fn write_i64(out: &mut Vec<u8>, n: i64) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n).as_bytes();
    write_integer_digits(out, digits, n.unsigned_abs() <= MAX_SAFE_INTEGER);
}

fn write_integer_digits(out: &mut Vec<u8>, digits: &[u8], safe: bool) {
    if safe {
        out.extend_from_slice(digits);
    } else {
        out.push(b'"');
        out.extend_from_slice(digits);
        out.push(b'"');
    }
}

/// Writes a float in the ECMAScript `Number.prototype.toString` form; non-finite values,
/// which JSON cannot carry, become the strings "NaN", "Infinity" and "-Infinity".
pub fn write_f64(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        let name = if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        return write_str(out, name);
    }
    if f == 0.0 {
        return out.push(b'0');
    }
    if f < 0.0 {
        out.push(b'-');
    }
    let magnitude = f.abs();
    if magnitude < 1e15 && magnitude.fract() == 0.0 {
        // Whole numbers below 10^21 print as plain digits; this range is exact in a u64.
        let whole = magnitude as u64;
        return out.extend_from_slice(itoa::Buffer::new().format(whole).as_bytes());
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(magnitude);
    if !text.contains('e') {
        // Ryu's plain form covers a narrower range than ECMAScript's and agrees with it there,
        // save the ".0" it puts after whole numbers.
        return out.extend_from_slice(text.strip_suffix(".0").unwrap_or(text).as_bytes());
    }
    let mut digits = [0u8; 24];
    let (len, n) = shortest_digits(text, &mut digits);
    write_es_number(out, &digits[..len], n);
}

/// Copies ryu's significant digits into `digits` (returning how many) and finds the
/// ECMAScript exponent `n`, where the value is `0.d1d2…dk × 10^n`.
fn shortest_digits(text: &str, digits: &mut [u8; 24]) -> (usize, i32) {
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut point = int_part.len() as i32 + exp;
    let mut len = 0;
    for d in int_part.bytes().chain(frac_part.bytes()) {
        if len == 0 && d == b'0' {
            point -= 1; // a leading zero moves the point, it is not a significant digit
            continue;
        }
        digits[len] = d;
        len += 1;
    }
    while len > 0 && digits[len - 1] == b'0' {
        len -= 1;
    }
    (len, point)
}

fn write_es_number(out: &mut Vec<u8>, digits: &[u8], n: i32) {
    let k = digits.len() as i32;
    if k <= n && n <= 21 {
        out.extend_from_slice(digits);
        out.resize(out.len() + (n - k) as usize, b'0');
    } else if 0 < n && n <= 21 {
        out.extend_from_slice(&digits[..n as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-n) as usize, b'0');
        out.extend_from_slice(digits);
    } else {
        out.push(digits[0]);
        if k > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.extend_from_slice(if n > 0 { b"e+" } else { b"e-" });
        out.extend_from_slice(
            itoa::Buffer::new()
                .format((n - 1).unsigned_abs())
                .as_bytes(),
        );
    }
}

/// Writes nanoseconds since the Unix epoch as `"YYYY-MM-DDTHH:MM:SS.fffffffffZ"`.
pub fn write_timestamp(out: &mut Vec<u8>, ns: i64) {
    write_timestamp_with(out, ns, &SecondCache::default());
}

/// The last whole second written by one column and its `"YYYY-MM-DDTHH:MM:SS` text: the
/// events of a batch mostly share their second. One per column, as `timestamp` and
/// `observed_at` of a row seldom share theirs.
#[derive(Default)]
pub struct SecondCache(Cell<Option<(i64, [u8; 20])>>);

impl SecondCache {
    fn text(&self, secs: i64) -> [u8; 20] {
        if let Some((cached, text)) = self.0.get() {
            if cached == secs {
                return text;
            }
        }
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let tod = secs.rem_euclid(86_400) as u32;
        let mut text = *b"\"YYYY-MM-DDThh:mm:ss";
        fill_digits(&mut text[1..5], y as u32);
        fill_digits(&mut text[6..8], m);
        fill_digits(&mut text[9..11], d);
        fill_digits(&mut text[12..14], tod / 3600);
        fill_digits(&mut text[15..17], tod / 60 % 60);
        fill_digits(&mut text[18..20], tod % 60);
        self.0.set(Some((secs, text)));
        text
    }
}

/// [`write_timestamp`] reusing the text of the previous call's second when it is the same.
pub fn write_timestamp_with(out: &mut Vec<u8>, ns: i64, seconds: &SecondCache) {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000) as u32;
    let mut text = *b"\"YYYY-MM-DDThh:mm:ss.fffffffffZ\"";
    text[..20].copy_from_slice(&seconds.text(secs));
    // Nine fraction digits as a four-digit and a five-digit half: fewer dependent divisions.
    fill_digits(&mut text[21..25], frac / 100_000);
    fill_digits(&mut text[25..30], frac % 100_000);
    out.extend_from_slice(&text);
}

/// Writes `v` in decimal into `slot`, zero-padded to its width.
fn fill_digits(slot: &mut [u8], mut v: u32) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The last float written by one column and its text: rates and amounts repeat across rows.
#[derive(Default)]
struct FloatCache(Cell<Option<(u64, [u8; 32], u8)>>);

impl FloatCache {
    fn write(&self, out: &mut Vec<u8>, f: f64) {
        if let Some((bits, text, len)) = self.0.get() {
            if bits == f.to_bits() {
                return put(out, &text[..len as usize]);
            }
        }
        let start = out.len();
        write_f64(out, f);
        let written = &out[start..];
        if written.len() <= 32 {
            let mut text = [0u8; 32];
            text[..written.len()].copy_from_slice(written);
            self.0.set(Some((f.to_bits(), text, written.len() as u8)));
        }
    }
}

/// A string-valued column in any of the layouts Arrow and Polars use for text.
pub enum StrCol<'a> {
    View(&'a arrow_array::StringViewArray),
    Utf8(&'a arrow_array::StringArray),
    Large(&'a arrow_array::LargeStringArray),
    Dict {
        array: &'a dyn Array,
        keys: Vec<usize>,
        values: Box<StrCol<'a>>,
    },
}

impl<'a> StrCol<'a> {
    /// Views `array` as text, or `None` when it holds something else.
    pub fn new(array: &'a dyn Array) -> Option<StrCol<'a>> {
        if let Some(a) = array.as_string_view_opt() {
            return Some(StrCol::View(a));
        }
        if let Some(a) = array.as_string_opt::<i32>() {
            return Some(StrCol::Utf8(a));
        }
        if let Some(a) = array.as_string_opt::<i64>() {
            return Some(StrCol::Large(a));
        }
        let dict = array.as_any_dictionary_opt()?;
        let values = Box::new(StrCol::new(dict.values().as_ref())?);
        let keys = if dict.values().is_empty() {
            Vec::new()
        } else {
            dict.normalized_keys()
        };
        Some(StrCol::Dict {
            array,
            keys,
            values,
        })
    }

    /// The text at `row`, `None` when null.
    #[inline(always)]
    pub fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            StrCol::View(a) => (!a.is_null(row)).then(|| a.value(row)),
            StrCol::Utf8(a) => (!a.is_null(row)).then(|| a.value(row)),
            StrCol::Large(a) => (!a.is_null(row)).then(|| a.value(row)),
            StrCol::Dict { .. } => self.dict_get(row),
        }
    }

    /// `get` of a dictionary column, out of line: it recurses into the values, and keeping it
    /// apart lets `get` be inlined into every caller for the plain layouts.
    #[inline(never)]
    fn dict_get(&self, row: usize) -> Option<&'a str> {
        let StrCol::Dict {
            array,
            keys,
            values,
        } = self
        else {
            unreachable!("dict_get is called for dictionary columns only")
        };
        if array.is_null(row) {
            return None;
        }
        values.get(*keys.get(row)?)
    }
}

/// Chain fields to encode instead of the stored ones, used while chaining a new record.
#[derive(Clone, Copy)]
pub struct Links<'s> {
    pub chain: &'s str,
    pub seq: u64,
    pub prev: &'s str,
}

enum Value<'a> {
    Time(&'a TimestampNanosecondArray, SecondCache),
    Text(StrCol<'a>),
    Float(&'a Float64Array, FloatCache),
    Chain(Option<StrCol<'a>>),
    Seq(Option<&'a UInt64Array>),
    Prev(Option<StrCol<'a>>),
}

struct Member<'a> {
    /// The bytes before the value, ready to copy: `,"name":` (or `{"name":`), after any
    /// members that are null in every row of the batch, written out once.
    prefix: Vec<u8>,
    value: Value<'a>,
}

/// Encodes rows of one batch with the event schema as canonical records.
pub struct Canonicalizer<'a> {
    members: Vec<Member<'a>>,
    /// The bytes after the last member with a value: null members, then `}`.
    tail: Vec<u8>,
}

impl<'a> Canonicalizer<'a> {
    /// Binds the record columns of `batch`; with `read_links` false the chain columns may be
    /// absent and must be supplied per row.
    pub fn new(batch: &'a RecordBatch, read_links: bool) -> Result<Canonicalizer<'a>> {
        let mut names = record_columns();
        names.sort_by(|a, b| utf16_cmp(a, b));
        let mut members = Vec::with_capacity(names.len());
        // Columns null in every row (most of the audit columns, for most categories) are
        // constant text: they join the static bytes around the members that vary.
        let mut pending = vec![b'{'];
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                pending.push(b',');
            }
            write_str(&mut pending, name);
            pending.push(b':');
            let value = bind(batch, name, read_links)?;
            if value.null_in_every_row(batch.num_rows()) {
                pending.extend_from_slice(b"null");
            } else {
                let prefix = std::mem::take(&mut pending);
                members.push(Member { prefix, value });
            }
        }
        pending.push(b'}');
        Ok(Canonicalizer {
            members,
            tail: pending,
        })
    }

    /// Appends the canonical record of `row` to `out`; `links` replaces the stored chain fields.
    pub fn write_row(&self, row: usize, links: Option<Links<'_>>, out: &mut Vec<u8>) {
        for k in 0..self.members.len() {
            self.write_member(k, row, links, out);
        }
        out.extend_from_slice(&self.tail);
    }

    #[inline]
    fn write_member(&self, k: usize, row: usize, links: Option<Links<'_>>, out: &mut Vec<u8>) {
        let member = &self.members[k];
        put(out, &member.prefix);
        write_value(&member.value, row, links, out);
    }
}

/// The names of the columns in a canonical record: every event column except `audit_hash`.
pub fn record_columns() -> Vec<String> {
    let schema = event_schema();
    let names = schema.fields().iter().map(|f| f.name().clone());
    names.filter(|n| n != schema::AUDIT_HASH).collect()
}

fn bind<'a>(batch: &'a RecordBatch, name: &str, read_links: bool) -> Result<Value<'a>> {
    let link = matches!(
        name,
        schema::AUDIT_CHAIN | schema::AUDIT_SEQ | schema::AUDIT_PREV_HASH
    );
    let column = match batch.column_by_name(name) {
        Some(c) => c.as_ref(),
        None if link && !read_links => return Ok(unbound_link(name)),
        None => {
            return Err(Error::Audit(format!(
                "audit: the batch has no column `{name}`"
            )))
        }
    };
    let value = match name {
        schema::TIMESTAMP | schema::OBSERVED_AT => {
            time_column(column).map(|c| Value::Time(c, SecondCache::default()))
        }
        schema::REVENUE | schema::SAMPLE_RATE => column
            .as_primitive_opt::<Float64Type>()
            .map(|c| Value::Float(c, FloatCache::default())),
        schema::AUDIT_SEQ => column
            .as_primitive_opt::<UInt64Type>()
            .map(|c| Value::Seq(Some(c))),
        schema::AUDIT_CHAIN => StrCol::new(column).map(|c| Value::Chain(Some(c))),
        schema::AUDIT_PREV_HASH => StrCol::new(column).map(|c| Value::Prev(Some(c))),
        _ => StrCol::new(column).map(Value::Text),
    };
    value.ok_or_else(|| {
        Error::Audit(format!(
            "audit: column `{name}` has unsupported type {}",
            column.data_type()
        ))
    })
}

impl Value<'_> {
    /// Whether the value is null in all `rows` rows whatever the row; never for the chain
    /// fields, which a row being chained supplies itself.
    fn null_in_every_row(&self, rows: usize) -> bool {
        let all_null = |array: &dyn Array| array.null_count() == rows;
        match self {
            Value::Time(a, _) => all_null(*a),
            Value::Float(a, _) => all_null(*a),
            Value::Text(StrCol::View(a)) => all_null(*a),
            Value::Text(StrCol::Utf8(a)) => all_null(*a),
            Value::Text(StrCol::Large(a)) => all_null(*a),
            Value::Text(StrCol::Dict { array, .. }) => all_null(*array),
            Value::Chain(_) | Value::Seq(_) | Value::Prev(_) => false,
        }
    }
}

fn unbound_link<'a>(name: &str) -> Value<'a> {
    match name {
        schema::AUDIT_CHAIN => Value::Chain(None),
        schema::AUDIT_SEQ => Value::Seq(None),
        _ => Value::Prev(None),
    }
}

fn time_column(column: &dyn Array) -> Option<&TimestampNanosecondArray> {
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            column.as_primitive_opt::<TimestampNanosecondType>()
        }
        _ => None,
    }
}

#[inline]
fn write_value(value: &Value<'_>, row: usize, links: Option<Links<'_>>, out: &mut Vec<u8>) {
    match value {
        Value::Time(a, _) if a.is_null(row) => out.extend_from_slice(b"null"),
        Value::Time(a, seconds) => write_timestamp_with(out, a.value(row), seconds),
        Value::Text(c) => write_opt(out, c.get(row), write_str),
        Value::Float(a, _) if a.is_null(row) => out.extend_from_slice(b"null"),
        Value::Float(a, cache) => cache.write(out, a.value(row)),
        Value::Chain(c) => match links {
            Some(l) => write_str(out, l.chain),
            None => write_opt(out, c.as_ref().and_then(|c| c.get(row)), write_str),
        },
        Value::Seq(a) => match links {
            Some(l) => write_u64(out, l.seq),
            None => write_opt(
                out,
                a.filter(|a| !a.is_null(row)).map(|a| a.value(row)),
                write_u64,
            ),
        },
        Value::Prev(c) => match links {
            Some(l) => write_str(out, l.prev),
            None => write_opt(out, c.as_ref().and_then(|c| c.get(row)), write_str),
        },
    }
}

#[inline]
fn write_opt<T>(out: &mut Vec<u8>, value: Option<T>, write: fn(&mut Vec<u8>, T)) {
    match value {
        Some(v) => write(out, v),
        None => out.extend_from_slice(b"null"),
    }
}
