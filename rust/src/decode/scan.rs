//! A scanner for the top level of one JSON object: it validates the whole object and finds each
//! member's key and raw value, or gives up on anything unusual (nesting past the limit, any
//! error) and leaves the line to the full parser, which then decides alone.
//! It accepts strict JSON only, a subset of what the full parser accepts, so a line it reads
//! is read the same by both.

use sonic_rs::JsonType;

/// One member of the object: byte ranges of its key (without quotes) and of its raw value.
#[derive(Clone, Copy, Debug)]
pub struct Member {
    pub key: (usize, usize),
    pub value: (usize, usize),
    pub kind: JsonType,
    /// Whether the value is a string holding an escape; any other string is read as it stands.
    pub escaped: bool,
    /// Whether the key holds an escape.
    pub key_escaped: bool,
}

/// The members of the object `text` into `members`, or `None` when the full parser must read
/// it: `text` is not a strict JSON object, or nesting passes `max_depth`
/// (the object itself counts one).
pub fn object(text: &str, max_depth: usize, members: &mut Vec<Member>) -> Option<()> {
    let b = text.as_bytes();
    let end = object_end(b, max_depth, members)?;
    (skip_ws(b, end) == b.len()).then_some(())
}

/// The members of the object at the start of `b` into `members`, and where it ends (past its
/// closing brace), or `None` as for [`object`]. White space does not include a newline here:
/// in a chunk of lines an object that a newline would cross is left to the line's parser.
pub fn object_end(b: &[u8], max_depth: usize, members: &mut Vec<Member>) -> Option<usize> {
    members.clear();
    let mut i = skip_ws(b, 0);
    if *b.get(i)? != b'{' {
        return None;
    }
    i = skip_ws(b, i + 1);
    if *b.get(i)? == b'}' {
        return Some(i + 1);
    }
    let nested = max_depth.checked_sub(1)?;
    loop {
        let (key, start, key_escaped) = key(b, i)?;
        // Most values are strings: read here, without the call `value` costs.
        let (end, kind, escaped) = match b.get(start) {
            Some(b'"') => {
                let (end, escaped) = string_end(b, start + 1)?;
                (end + 1, JsonType::String, escaped)
            }
            _ => value(b, start, nested)?,
        };
        members.push(Member {
            key,
            value: (start, end),
            kind,
            escaped,
            key_escaped,
        });
        i = skip_ws(b, end);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// The key at `b[i]` (its opening quote): its range, where its value starts and whether it
/// holds an escape.
#[inline(always)]
fn key(b: &[u8], i: usize) -> Option<((usize, usize), usize, bool)> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let (end, escaped) = string_end(b, i + 1)?;
    let colon = skip_ws(b, end + 1);
    if *b.get(colon)? != b':' {
        return None;
    }
    Some(((i + 1, end), skip_ws(b, colon + 1), escaped))
}

/// The end of the value starting at `b[i]`, its type and whether it is a string holding an
/// escape; containers nest at most `depth` deep.
#[inline]
fn value(b: &[u8], i: usize, depth: usize) -> Option<(usize, JsonType, bool)> {
    let end = |len: usize, word: &[u8]| b[i..].starts_with(word).then_some(i + len);
    let (end, kind) = match *b.get(i)? {
        b'"' => {
            let (end, escaped) = string_end(b, i + 1)?;
            return Some((end + 1, JsonType::String, escaped));
        }
        b'-' | b'0'..=b'9' => (number_end(b, i)?, JsonType::Number),
        b't' => (end(4, b"true")?, JsonType::Boolean),
        b'f' => (end(5, b"false")?, JsonType::Boolean),
        b'n' => (end(4, b"null")?, JsonType::Null),
        b'{' => (nested_end::<true>(b, i, depth)?, JsonType::Object),
        b'[' => (nested_end::<false>(b, i, depth)?, JsonType::Array),
        _ => return None,
    };
    Some((end, kind, false))
}

/// The end of the object (`OBJECT`) or array at `b[i]`, validated, at most `depth` levels
/// deep. Its members are read as the top level's are; a container inside is left to
/// `container_end`.
fn nested_end<const OBJECT: bool>(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    let inner = depth.checked_sub(1)?;
    let close = if OBJECT { b'}' } else { b']' };
    let mut i = skip_ws(b, i + 1);
    if *b.get(i)? == close {
        return Some(i + 1);
    }
    loop {
        let start = if OBJECT { key(b, i)?.1 } else { i };
        i = skip_ws(b, element_end(b, start, inner)?);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            c if c == close => return Some(i + 1),
            _ => return None,
        }
    }
}

/// The end of a value inside a container, containers in it at most `depth` levels deep.
#[inline(always)]
fn element_end(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => Some(string_end(b, i + 1)?.0 + 1),
        b'{' | b'[' => container_end(b, i, depth),
        _ => Some(value(b, i, 0)?.0),
    }
}

/// The end of the object or array at `b[i]`, validated, at most `depth` (and 64) levels deep.
fn container_end(b: &[u8], mut i: usize, depth: usize) -> Option<usize> {
    // One bit per open container, set for an object; the lowest bit is the innermost.
    let (mut open, mut level) = (0u64, 0usize);
    loop {
        // `b[i]` starts a value inside the open containers (or the outermost container itself).
        i = match *b.get(i)? {
            c @ (b'{' | b'[') => {
                level += 1;
                if level > depth.min(64) {
                    return None;
                }
                open = open << 1 | u64::from(c == b'{');
                let next = skip_ws(b, i + 1);
                let close = if c == b'{' { b'}' } else { b']' };
                if *b.get(next)? != close {
                    i = if c == b'{' { key(b, next)?.1 } else { next };
                    continue;
                }
                level -= 1;
                open >>= 1;
                next + 1
            }
            b'"' => string_end(b, i + 1)?.0 + 1,
            // Another scalar: no container starts here, so no depth is left to it.
            _ => value(b, i, 0)?.0,
        };
        // After a value: commas and closing brackets until the next value or the end.
        loop {
            if level == 0 {
                return Some(i);
            }
            i = skip_ws(b, i);
            let object = open & 1 == 1;
            match *b.get(i)? {
                b',' => {
                    let next = skip_ws(b, i + 1);
                    i = if object { key(b, next)?.1 } else { next };
                    break;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            level -= 1;
            open >>= 1;
            i += 1;
        }
    }
}

/// The end of the strict JSON number at `b[i]`.
fn number_end(b: &[u8], i: usize) -> Option<usize> {
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut j = i + usize::from(b[i] == b'-');
    j = match *b.get(j)? {
        b'0' => j + 1,
        b'1'..=b'9' => digits(j + 1),
        _ => return None,
    };
    if b.get(j) == Some(&b'.') {
        let end = digits(j + 1);
        if end == j + 1 {
            return None;
        }
        j = end;
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1 + usize::from(matches!(b.get(j + 1), Some(b'+' | b'-')));
        let end = digits(j);
        if end == j {
            return None;
        }
        j = end;
    }
    Some(j)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The index of the closing quote of the string whose text starts at `b[i]`, and whether it
/// holds an escape; `None` at a control character, a bad escape or the end of the input.
#[inline(always)]
fn string_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        i = special(b, i)?;
        match b[i] {
            b'"' => return Some((i, escaped)),
            b'\\' => {
                escaped = true;
                i += escape_len(&b[i + 1..])? + 1;
            }
            _ => return None,
        }
    }
}

/// The first quote, backslash or control character at or after `b[i]`, sixteen bytes at a time.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn special(b: &[u8], mut i: usize) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // Bit k of the mask flags byte k of the 16 at `chunk` when it is special.
    let mask = |chunk: &[u8]| -> u32 {
        assert!(chunk.len() >= 16);
        // SAFETY: SSE2 is part of the x86_64 baseline, and the unaligned load reads 16 bytes
        // that `chunk` holds (checked above).
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // Unsigned `v <= 0x1f`: the minimum with 0x1f is `v` itself.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
        }
    };
    while let Some(chunk) = b.get(i..i + 16) {
        let found = mask(chunk);
        if found != 0 {
            return Some(i + found.trailing_zeros() as usize);
        }
        i += 16;
    }
    if i >= b.len() || b.len() < 16 {
        return special_portable(b, i);
    }
    // The last bytes: one load of the final sixteen, ignoring those before `i` (already seen).
    let last = b.len() - 16;
    let found = mask(&b[last..]) >> (i - last);
    (found != 0).then(|| i + found.trailing_zeros() as usize)
}

#[cfg(not(target_arch = "x86_64"))]
fn special(b: &[u8], i: usize) -> Option<usize> {
    special_portable(b, i)
}

/// The first quote, backslash or control character at or after `b[i]`, eight bytes at a time.
pub(crate) fn special_portable(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(chunk) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // Each term flags its lowest matching byte exactly (borrows only run upward), so the
        // lowest flag of the three is the first special byte.
        let quote = has_zero(v ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(v ^ (ONES * u64::from(b'\\')));
        let control = v.wrapping_sub(ONES * 0x20) & !v & HIGHS;
        let found = quote | backslash | control;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let rest = b.get(i..)?;
    let at = rest
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    Some(i + at)
}

fn has_zero(v: u64) -> u64 {
    v.wrapping_sub(ONES) & !v & HIGHS
}

/// The length after the backslash of a strict JSON escape at the start of `rest`.
fn escape_len(rest: &[u8]) -> Option<usize> {
    match *rest.first()? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(1),
        b'u' if rest.get(1..5)?.iter().all(u8::is_ascii_hexdigit) => Some(5),
        _ => None,
    }
}

/// Past the white space at `b[i]`, a newline aside: a line holds none, and an object read from
/// a chunk must not run on past its line.
#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    // Compact JSON holds none: one comparison settles most calls.
    while let Some(&c) = b.get(i) {
        if c > b' ' || !matches!(c, b' ' | b'\t' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Option<Vec<(&str, &str, JsonType)>> {
        let mut found = Vec::new();
        object(text, 3, &mut found)?;
        let slice = |(from, to): (usize, usize)| &text[from..to];
        Some(
            found
                .iter()
                .map(|m| (slice(m.key), slice(m.value), m.kind))
                .collect(),
        )
    }

    #[test]
    fn plain_objects_are_read() {
        let text = r#" { "a" : "x\"\u00e9" ,"b":-1.5e3,"c":[1,{"d":null}],"e":{},"f":true} "#;
        let members = read(text).unwrap();
        assert!(read(r#"{"a":{"\u0062":1}}"#).is_some());
        let kinds: Vec<JsonType> = members.iter().map(|m| m.2).collect();
        assert_eq!(members[0], ("a", r#""x\"\u00e9""#, JsonType::String));
        assert_eq!(members[2], ("c", r#"[1,{"d":null}]"#, JsonType::Array));
        use JsonType::*;
        assert_eq!(kinds, [String, Number, Array, Object, Boolean]);
        assert_eq!(read("{}"), Some(vec![]));
    }

    #[test]
    fn escaped_keys_are_read_and_flagged() {
        let text = r#"{"\u0061":1,"b\"c":2,"d":3}"#;
        let mut found = Vec::new();
        object(text, 3, &mut found).unwrap();
        let keys: Vec<(&str, bool)> = found
            .iter()
            .map(|m| (&text[m.key.0..m.key.1], m.key_escaped))
            .collect();
        assert_eq!(keys, [(r"\u0061", true), (r#"b\"c"#, true), ("d", false)]);
    }

    #[test]
    fn anything_unusual_is_left_to_the_parser() {
        for text in [
            r#"{"a":1."}"#,
            r#"{"a":1.}"#,
            r#"{"a":1.e5}"#,
            r#"{"a":01}"#,
            r#"{"a":-}"#,
            r#"{"a":"\uZZZZ"}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":1}x"#,
            r#"{"a":1"#,
            r#"{"a":tru}"#,
            r#"{"a":[[[1]]]}"#,
            "{\"a\":1}\u{c}",
            r#"["a"]"#,
        ] {
            assert_eq!(read(text), None, "{text}");
        }
        assert!(read(r#"{"a":[[1]]}"#).is_some());
    }

    /// The first special byte by the plainest search.
    fn naive(b: &[u8], i: usize) -> Option<usize> {
        let at = b
            .get(i..)?
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        Some(i + at)
    }

    proptest::proptest! {
        /// Both searches find the first special byte wherever it sits around 16-byte
        /// boundaries, among multibyte UTF-8 and bytes one away from the special ones.
        #[test]
        fn special_bytes_are_found_at_every_offset(
            filler in "[a-z!#\\[\\]\u{7f}\u{e9}\u{20ac}\u{1f389} ]{0,40}",
            specials in proptest::collection::vec(
                (proptest::sample::select(vec![b'"', b'\\', 0u8, 0x1f, b'\n']), 0..48usize),
                0..3,
            ),
            from in 0..48usize,
        ) {
            let mut b = filler.into_bytes();
            for (byte, at) in specials {
                let at = at.min(b.len());
                b.insert(at, byte);
            }
            let from = from.min(b.len());
            proptest::prop_assert_eq!(special(&b, from), naive(&b, from));
            proptest::prop_assert_eq!(special_portable(&b, from), naive(&b, from));
        }
    }

    #[test]
    fn long_strings_with_escapes_are_read_and_flagged() {
        let long = "x".repeat(15);
        for pad in 0..34 {
            let plain = format!(
                r#"{{"k":"{}{long}","e":"{}\"{long}"}}"#,
                "y".repeat(pad),
                "é".repeat(pad)
            );
            let mut found = Vec::new();
            object(&plain, 3, &mut found).unwrap();
            assert_eq!(
                &plain[found[0].value.0..found[0].value.1],
                format!(r#""{}{long}""#, "y".repeat(pad))
            );
            assert!(!found[0].escaped && found[1].escaped, "{plain}");
            assert!(plain[found[1].value.0..found[1].value.1].ends_with(&format!(r#"\"{long}""#)));
            let ctl = plain.replace("xx", "x\u{1}");
            assert!(object(&ctl, 3, &mut found).is_none(), "{ctl}");
        }
    }
}
