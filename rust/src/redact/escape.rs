//! Decoded views of text (JSON escapes, URL percent-encoding) that map back to original offsets.

use std::ops::Range;

use crate::decode::json::escape_at;
use memchr::memchr;

/// Text decoded from an original, with each decoded byte's source offset.
#[derive(Debug)]
pub struct View {
    pub text: String,
    /// `map[i]` is where decoded byte `i` starts in the original; `map[len]` is the original length.
    map: Vec<usize>,
}

impl View {
    /// The original range a decoded range came from.
    pub fn original(&self, r: Range<usize>) -> Range<usize> {
        self.map[r.start]..self.map[r.end]
    }

    fn push(&mut self, c: char, source: usize) {
        let mut buf = [0u8; 4];
        for _ in 0..c.encode_utf8(&mut buf).len() {
            self.map.push(source);
        }
        self.text.push(c);
    }

    fn push_str(&mut self, s: &str, source: usize) {
        self.map.extend(source..source + s.len());
        self.text.push_str(s);
    }

    fn finish(mut self, original_len: usize) -> View {
        self.map.push(original_len);
        self
    }
}

/// JSON string escapes decoded (`\u0034` -> `4`); None when `text` holds no backslash.
pub fn unescape_view(text: &str) -> Option<View> {
    memchr(b'\\', text.as_bytes())?;
    let mut view = View {
        text: String::with_capacity(text.len()),
        map: Vec::new(),
    };
    let mut i = 0;
    while i < text.len() {
        let next = text[i..].find('\\').map_or(text.len(), |p| i + p);
        view.push_str(&text[i..next], i);
        if next == text.len() {
            break;
        }
        let (c, used) = escape_at(text, next).unwrap_or(('\\', 1));
        view.push(c, next);
        i = next + used;
    }
    Some(view.finish(text.len()))
}

/// URL percent-encoding decoded (`%40` -> `@`); None without a `%XX` or if the result is not UTF-8.
pub fn percent_view(text: &str) -> Option<View> {
    let b = text.as_bytes();
    let first = memchr::memmem::find_iter(b, b"%").find(|&p| hex_pair(b, p + 1).is_some())?;
    let mut bytes = Vec::with_capacity(b.len());
    let mut map = Vec::with_capacity(b.len() + 1);
    bytes.extend_from_slice(&b[..first]);
    map.extend(0..first);
    let mut i = first;
    while i < b.len() {
        match (b[i], hex_pair(b, i + 1)) {
            (b'%', Some(v)) => {
                bytes.push(v);
                map.push(i);
                i += 3;
            }
            (c, _) => {
                bytes.push(c);
                map.push(i);
                i += 1;
            }
        }
    }
    map.push(b.len());
    let text = String::from_utf8(bytes).ok()?;
    Some(View { text, map })
}

fn hex_pair(b: &[u8], at: usize) -> Option<u8> {
    let hi = (*b.get(at)? as char).to_digit(16)?;
    let lo = (*b.get(at + 1)? as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

/// Decodes the content of a JSON string (between the quotes).
pub fn json_unescape(raw: &str) -> std::borrow::Cow<'_, str> {
    match unescape_view(raw) {
        Some(view) => view.text.into(),
        None => raw.into(),
    }
}

/// Appends `s` as a JSON string literal, quotes included.
pub fn push_json_string(s: &str, out: &mut String) {
    crate::decode::json::write_json_str(out, s);
}
