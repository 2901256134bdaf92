//! A scanner for the top level of one JSON object: it validates the whole object and finds each
//! member's key and raw value, or gives up on anything unusual (an escaped key, nesting past
//! the limit, any error) and leaves the line to the full parser, which then decides alone.
//! It accepts strict JSON only, a subset of what the full parser accepts, so a line it reads
//! is read the same by both.

use sonic_rs::JsonType;

/// One member of the object: byte ranges of its key (without quotes) and of its raw value.
#[derive(Clone, Copy, Debug)]
pub struct Member {
    pub key: (usize, usize),
    pub value: (usize, usize),
    pub kind: JsonType,
}

/// The members of the object `text` into `members`, or `None` when the full parser must read
/// it: `text` is not a strict JSON object, a key holds an escape, or nesting passes `max_depth`
/// (the object itself counts one).
pub fn object(text: &str, max_depth: usize, members: &mut Vec<Member>) -> Option<()> {
    members.clear();
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if *b.get(i)? != b'{' {
        return None;
    }
    i = skip_ws(b, i + 1);
    if *b.get(i)? == b'}' {
        return (skip_ws(b, i + 1) == b.len()).then_some(());
    }
    let nested = max_depth.checked_sub(1)?;
    loop {
        let (key, start) = key(b, i, true)?;
        let (end, kind) = value(b, start, nested)?;
        members.push(Member {
            key,
            value: (start, end),
            kind,
        });
        i = skip_ws(b, end);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return (skip_ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

/// The key at `b[i]` (its opening quote): its range and where its value starts. A top-level
/// key is read as it stands, so it must hold no escape.
fn key(b: &[u8], i: usize, top: bool) -> Option<((usize, usize), usize)> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let (end, escaped) = string_end(b, i + 1)?;
    if escaped && top {
        return None;
    }
    let colon = skip_ws(b, end + 1);
    if *b.get(colon)? != b':' {
        return None;
    }
    Some(((i + 1, end), skip_ws(b, colon + 1)))
}

/// The end of the value starting at `b[i]` and its type; containers nest at most `depth` deep.
fn value(b: &[u8], i: usize, depth: usize) -> Option<(usize, JsonType)> {
    let end = |len: usize, word: &[u8]| b[i..].starts_with(word).then_some(i + len);
    match *b.get(i)? {
        b'"' => Some((string_end(b, i + 1)?.0 + 1, JsonType::String)),
        b'-' | b'0'..=b'9' => Some((number_end(b, i)?, JsonType::Number)),
        b't' => Some((end(4, b"true")?, JsonType::Boolean)),
        b'f' => Some((end(5, b"false")?, JsonType::Boolean)),
        b'n' => Some((end(4, b"null")?, JsonType::Null)),
        b'{' => Some((container_end(b, i, depth)?, JsonType::Object)),
        b'[' => Some((container_end(b, i, depth)?, JsonType::Array)),
        _ => None,
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
                    i = if c == b'{' {
                        key(b, next, false)?.1
                    } else {
                        next
                    };
                    continue;
                }
                level -= 1;
                open >>= 1;
                next + 1
            }
            // A scalar: no container starts here, so no depth is left to it.
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
                    i = if object { key(b, next, false)?.1 } else { next };
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

/// The first quote, backslash or control character at or after `b[i]`, eight bytes at a time.
fn special(b: &[u8], mut i: usize) -> Option<usize> {
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

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
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
            r#"{"\u0061":1}"#,
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
}
