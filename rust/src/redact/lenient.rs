//! A lenient scan of text that is not well-formed JSON: values of `"<secret key>": value` pairs.
//!
//! A truncated or broken dead letter cannot be walked, but its secret-keyed pairs are still
//! readable; their values are replaced as the walker would (`[REDACTED:secret_key]`).

use std::borrow::Cow;
use std::ops::Range;

use memchr::memchr;

use super::config::Action;
use super::escape::{json_unescape, push_json_string};
use super::keys::KeyKind;
use super::text::bump;
use super::Redactor;

impl Redactor {
    /// Key rules, then value rules, over text that did not parse as JSON.
    pub(crate) fn redact_lenient<'a>(
        &self,
        text: &'a str,
        ctx: &str,
        counts: &mut [u64],
    ) -> (Cow<'a, str>, bool) {
        match self.lenient_keys(text, counts) {
            None => self.redact_in(text, ctx, counts),
            Some(keyed) => {
                let (red, dropped) = self.redact_in(&keyed, ctx, counts);
                (Cow::Owned(red.into_owned()), dropped)
            }
        }
    }

    // Limitation: only secret keys; a `"username": "name:password"` pair in broken JSON keeps
    // its password unless a value rule finds it.
    /// `text` with the value of every `"<secret key>": value` pair replaced; None if none is.
    fn lenient_keys(&self, text: &str, counts: &mut [u64]) -> Option<String> {
        let action = self.key_action?;
        let bytes = text.as_bytes();
        let (mut out, mut last, mut at) = (String::new(), 0, 0);
        while let Some(key) = next_string(bytes, at) {
            at = key.end + 1;
            let colon = skip_ws(bytes, at);
            if bytes.get(colon) != Some(&b':') {
                continue;
            }
            // The kind first: measuring the value of every plain key (`{"a":{"a":…`) would rescan
            // the rest of the text once per key.
            if self.keys.kind(json_unescape(&text[key]).as_bytes()) != KeyKind::Secret {
                continue;
            }
            let start = skip_ws(bytes, colon + 1);
            let Some(end) = value_end(bytes, start) else {
                continue;
            };
            at = end;
            let value = unquoted(&text[start..end]);
            if self.is_replacement(&value) {
                continue;
            }
            out.push_str(&text[last..start]);
            self.push_replacement(action, &value, &mut out);
            bump(counts, self.rules.len());
            last = end;
        }
        (last > 0).then(|| out + &text[last..])
    }

    /// The replacement of a secret-keyed value as a JSON string (nothing for a drop).
    fn push_replacement(&self, action: Action, value: &str, out: &mut String) {
        if action != Action::Drop {
            let mut rendered = String::new();
            self.renderer
                .render(action, super::SECRET_KEY_RULE, value, &mut rendered);
            push_json_string(&rendered, out);
        }
    }
}

/// The content range of the next `"…"` at or after `from`; an unclosed one ends at the line end.
fn next_string(b: &[u8], from: usize) -> Option<Range<usize>> {
    let start = from + memchr(b'"', b.get(from..)?)? + 1;
    Some(start..string_end(b, start))
}

/// Index of the closing quote of the string whose content starts at `start` (or the line end).
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < b.len() && !matches!(b[i], b'"' | b'\n') {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    super::work::add(i - start);
    i.min(b.len())
}

/// End of the value at `start`: a string (quotes included), or a bare word or number.
fn value_end(b: &[u8], start: usize) -> Option<usize> {
    let end = match b.get(start)? {
        b'"' => (string_end(b, start + 1) + 1).min(b.len()),
        _ => {
            let len = b[start..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace())
                .unwrap_or(b.len() - start);
            super::work::add(len);
            start + len
        }
    };
    (end > start && &b[start..end] != b"\"").then_some(end)
}

/// A value without its quotes, JSON escapes decoded.
fn unquoted(raw: &str) -> Cow<'_, str> {
    match raw.strip_prefix('"') {
        Some(inner) => json_unescape(inner.strip_suffix('"').unwrap_or(inner)),
        None => Cow::Borrowed(raw),
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}
