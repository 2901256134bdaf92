//! Small JSON helpers: escaping, unescaping and a cheap depth bound.

use std::borrow::Cow;

/// Appends `s` as a JSON string literal.
pub fn write_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    // Most keys and values need no escape: checked eight bytes at a time.
    if crate::decode::scan::special_portable(s.as_bytes(), 0).is_none() {
        out.push_str(s);
        out.push('"');
        return;
    }
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends the object member `"key":raw_value`.
pub fn write_member(out: &mut String, key: &str, raw_value: &str) {
    write_json_str(out, key);
    out.push(':');
    out.push_str(raw_value);
}

/// The text of a JSON string literal; borrowed when it holds no escape. A lone surrogate
/// escape, which UTF-8 cannot hold, becomes U+FFFD.
pub fn unescape(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    match memchr::memchr(b'\\', inner.as_bytes()) {
        None => Some(Cow::Borrowed(inner)),
        Some(first) => unescape_from(inner, first).map(Cow::Owned),
    }
}

/// `text` with its escapes read, the first at `first`. Stack traces and quoted JSON hold an
/// escape every few words: the runs between them are stored sixteen bytes at a time, and the
/// short escapes are read from a table.
fn unescape_from(text: &str, first: usize) -> Option<String> {
    let b = text.as_bytes();
    // Every escape is longer than the text it stands for (`\n` one byte, `\uXXXX` at most
    // three, a surrogate pair's twelve bytes four), so the output never outruns the input read:
    // `len <= at` throughout. Sixteen spare bytes let a run's last block be stored whole.
    let mut out: Vec<u8> = Vec::with_capacity(b.len() + 16);
    let dst = out.as_mut_ptr();
    // SAFETY (every write below): `len <= at <= b.len()`, and each write ends by
    // `len + 16 <= b.len() + 16`, the capacity; reads of `b` are bounds-checked or, for the
    // sixteen-byte blocks, guarded by `at + 16 <= b.len()`.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), dst, first) };
    let (mut at, mut len) = (first, first);
    loop {
        // `b[at]` is a backslash.
        let next = *b.get(at + 1)?;
        match SHORT_ESCAPES[usize::from(next)] {
            0 => {
                let (c, used) = match next {
                    b'u' => unicode_escape(text, at)?,
                    _ => return None,
                };
                let mut utf8 = [0; 4];
                let n = c.encode_utf8(&mut utf8).len();
                unsafe { std::ptr::copy_nonoverlapping(utf8.as_ptr(), dst.add(len), 4) };
                (at, len) = (at + used, len + n);
            }
            byte => {
                unsafe { dst.add(len).write(byte) };
                (at, len) = (at + 2, len + 1);
            }
        }
        // The run up to the next backslash or the end.
        loop {
            if at + 16 > b.len() {
                let rest = &b[at..];
                let k = memchr::memchr(b'\\', rest).unwrap_or(rest.len());
                unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), dst.add(len), k) };
                (at, len) = (at + k, len + k);
                break;
            }
            let block: &[u8; 16] = b[at..at + 16].try_into().expect("sixteen bytes");
            unsafe { std::ptr::copy_nonoverlapping(block.as_ptr(), dst.add(len), 16) };
            let k = first_backslash(block);
            (at, len) = (at + k, len + k);
            if k < 16 {
                break;
            }
        }
        if at == b.len() {
            // SAFETY: `len` bytes were written. Each run copied is a slice of `text` between
            // backslashes (ASCII) or its ends, so whole characters, and each escape was written
            // as a `char`'s UTF-8 or an ASCII byte: the bytes are UTF-8.
            unsafe {
                out.set_len(len);
                return Some(String::from_utf8_unchecked(out));
            }
        }
    }
}

/// The byte each one-letter escape stands for, by the letter; 0 for any other byte.
const SHORT_ESCAPES: [u8; 256] = {
    let mut table = [0; 256];
    let pairs = [
        (b'"', b'"'),
        (b'\\', b'\\'),
        (b'/', b'/'),
        (b'b', 0x08),
        (b'f', 0x0c),
        (b'n', b'\n'),
        (b'r', b'\r'),
        (b't', b'\t'),
    ];
    let mut i = 0;
    while i < pairs.len() {
        table[pairs[i].0 as usize] = pairs[i].1;
        i += 1;
    }
    table
};

/// The index of the first backslash in `block`, or 16 when it holds none.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn first_backslash(block: &[u8; 16]) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline; the load reads the sixteen bytes of `block`.
    let mask = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8))) as u32
    };
    (mask | 1 << 16).trailing_zeros() as usize
}

#[cfg(not(target_arch = "x86_64"))]
fn first_backslash(block: &[u8; 16]) -> usize {
    block.iter().position(|&c| c == b'\\').unwrap_or(16)
}

/// `unescape` of a literal held borrowed or owned: its text borrows only from a borrowed one.
pub fn unescape_cow<'a>(raw: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    match raw {
        Cow::Borrowed(raw) => unescape(raw),
        Cow::Owned(raw) => unescape(raw).map(|s| Cow::Owned(s.into_owned())),
    }
}

/// The character of the escape at `text[at]` (a backslash) and the bytes it spans.
pub fn escape_at(text: &str, at: usize) -> Option<(char, usize)> {
    let c = match text.as_bytes().get(at + 1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => return unicode_escape(text, at),
        _ => return None,
    };
    Some((c, 2))
}

fn unicode_escape(text: &str, at: usize) -> Option<(char, usize)> {
    let hi = hex4(text, at + 2)?;
    if !(0xD800..0xDC00).contains(&hi) {
        return Some((char::from_u32(hi).unwrap_or('\u{FFFD}'), 6));
    }
    let low = text
        .get(at + 6..at + 8)
        .filter(|s| *s == "\\u")
        .and_then(|_| hex4(text, at + 8));
    match low {
        Some(lo) if (0xDC00..0xE000).contains(&lo) => {
            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            Some((char::from_u32(c).unwrap_or('\u{FFFD}'), 12))
        }
        _ => Some(('\u{FFFD}', 6)),
    }
}

fn hex4(text: &str, at: usize) -> Option<u32> {
    u32::from_str_radix(text.get(at..at + 4)?, 16).ok()
}

/// An upper bound of the nesting depth: the number of opening brackets, strings included.
pub fn bracket_count(line: &[u8]) -> usize {
    memchr::memchr2_iter(b'{', b'[', line).count()
}

/// The exact nesting depth, skipping brackets inside strings.
#[cold]
pub fn exact_depth(line: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in line {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_through_a_parser() {
        for s in [
            "plain",
            "quote \" and \\ back",
            "ctl \u{1} \n\t",
            "日本語 🎉",
        ] {
            let mut out = String::new();
            write_json_str(&mut out, s);
            assert_eq!(sonic_rs::from_str::<String>(&out).unwrap(), s);
            assert_eq!(unescape(&out).unwrap(), s);
        }
    }

    /// `s` as a JSON string with every character written as a `\u` escape (pairs beyond the
    /// basic plane), `\\` and `\/` as short escapes.
    fn escaped_throughout(s: &str) -> String {
        let mut out = String::from('"');
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '/' => out.push_str("\\/"),
                c => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
            }
        }
        out.push('"');
        out
    }

    proptest::proptest! {
        #[test]
        fn unescape_reads_back_any_escaping(s in "(\\PC|[\"\\\\/\n\t\r\u{1}\u{8}\u{c}])*") {
            let mut plain = String::new();
            write_json_str(&mut plain, &s);
            proptest::prop_assert_eq!(unescape(&plain).unwrap(), s.as_str());
            let escaped = escaped_throughout(&s);
            proptest::prop_assert_eq!(unescape(&escaped).unwrap(), s.as_str());
            let parsed: String = sonic_rs::from_str(&plain).unwrap();
            proptest::prop_assert_eq!(parsed, s);
        }
    }

    /// Escapes at every distance from each other and from the ends, across the sixteen-byte
    /// steps of the copy, with multibyte text between them.
    #[test]
    fn escapes_are_read_at_every_offset() {
        for lead in 0..36 {
            for gap in 0..36 {
                for tail in 0..10 {
                    let (a, b, c) = (
                        "é".repeat(lead / 2) + &"a".repeat(lead % 2),
                        "x".repeat(gap),
                        "🎉z".repeat(tail / 3) + &"y".repeat(tail % 3),
                    );
                    let raw = format!(r#""{a}\n{b}\u00e9\"{c}""#);
                    let want = format!("{a}\n{b}é\"{c}");
                    assert_eq!(unescape(&raw).unwrap(), want, "{raw}");
                }
            }
        }
        assert_eq!(unescape(r#""12345678\x""#), None);
        assert_eq!(unescape(r#""\\""#).unwrap(), "\\");
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(unescape(r#""a\ud800b""#).unwrap(), "a\u{FFFD}b");
        assert_eq!(unescape(r#""\udc00\ud83c\udf89""#).unwrap(), "\u{FFFD}🎉");
        assert_eq!(unescape(r#""bad \x""#), None);
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(exact_depth(br#"{"a":"[[[[{{{","b":[{}]}"#), 3);
        assert_eq!(bracket_count(br#"{"a":"[["}"#), 3);
    }
}
