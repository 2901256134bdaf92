//! Named assignments in free text (`name=value`, `name: value`, `"name": "value"`) whose name the
//! key classifier calls secret, so text and JSON agree on which names hold secrets.

use std::ops::Range;

use memchr::memchr2_iter;

use super::keys::{normalize, KeyKind};
use super::text::Span;
use super::validate::without_closers;
use super::Redactor;

/// Longest quoted value taken; a longer one is treated as unclosed.
const MAX_QUOTED: usize = 256;

/// Names whose `name: value` form is an HTTP header: the value runs to the line end.
const HEADER_NAMES: &[&[u8]] = &[b"cookie", b"setcookie"];

/// Names whose header value starts with a scheme word (`Bearer`, `Basic`) that is kept.
const SCHEME_NAMES: &[&[u8]] = &[b"authorization", b"proxyauthorization"];

impl Redactor {
    /// Pushes, as rule `rule`, the value of every assignment to a secret name in `text`, and
    /// the content of every element a secret name names (`<password>x</password>`).
    pub(super) fn assignment_spans(&self, text: &str, rule: usize, spans: &mut Vec<Span>) {
        let b = text.as_bytes();
        for (name, gt) in opening_tags(b) {
            if self.keys.kind(&b[name]) != KeyKind::Secret {
                continue;
            }
            if let Some(v) = element_value(b, gt + 1) {
                spans.push(Span {
                    start: v.start,
                    end: v.end,
                    rule,
                    decoded: None,
                });
            }
        }
        let mut ends = Ends::default();
        for sep in memchr2_iter(b'=', b':', b) {
            let Some(name) = name_before(b, sep) else {
                continue;
            };
            if self.keys.kind(&b[name.clone()]) != KeyKind::Secret && !query_signature(b, &name) {
                continue;
            }
            if let Some(v) = value_after(b, sep, &b[name], &mut ends) {
                spans.push(Span {
                    start: v.start,
                    end: v.end,
                    rule,
                    decoded: None,
                });
            }
        }
    }
}

/// Value and line ends already found, so the values of chained assignments (`pwd=pwd=pwd=…`,
/// `cookie:cookie:…`) share one scan instead of each rescanning to the same end.
#[derive(Default)]
struct Ends {
    /// `from..stop`: `stop` is the first bare-value stop byte at or after any index in the range.
    bare: Range<usize>,
    /// `from..newline` and the trimmed end of that line (not below `from`).
    line: (Range<usize>, usize),
}

impl Ends {
    /// The end of a bare value starting at `i`.
    fn bare(&mut self, b: &[u8], i: usize) -> usize {
        if !(self.bare.start <= i && i <= self.bare.end && self.bare.end > 0) {
            let len = b[i..].iter().position(|&c| is_bare_stop(c));
            super::work::add(len.map_or(b.len() - i, |l| l + 1));
            self.bare = i..i + len.unwrap_or(b.len() - i);
        }
        self.bare.end
    }

    /// The end of the line holding `i`, trailing whitespace excluded (never before `i`).
    fn line(&mut self, b: &[u8], i: usize) -> usize {
        let (range, trimmed) = &self.line;
        if range.start <= i && i <= range.end && range.end > 0 {
            return (*trimmed).max(i);
        }
        let newline = i + memchr::memchr(b'\n', &b[i..]).unwrap_or(b.len() - i);
        let mut end = newline;
        while end > i && b[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        super::work::add(newline - i);
        self.line = (i..newline, end);
        end
    }
}

/// A byte that ends a bare (unquoted) value.
fn is_bare_stop(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'"' | b'\'' | b'&' | b';' | b',' | b'<' | b'>')
}

/// A name byte: letters, digits and the separators the classifier ignores.
fn is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// The name assigned by the `=` or `:` at `sep`: `name=`, `name =`, `name:`, `"name": `.
pub(super) fn name_before(b: &[u8], sep: usize) -> Option<Range<usize>> {
    let mut end = sep;
    while end > 0 && matches!(b[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    let quote = end
        .checked_sub(1)
        .map(|i| b[i])
        .filter(|q| matches!(q, b'"' | b'\''));
    // `name :` is prose more often than a label; only `=` and quoted keys allow the space.
    if end < sep && b[sep] == b':' && quote.is_none() {
        return None;
    }
    if quote.is_some() {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && is_name(b[start - 1]) {
        start -= 1;
    }
    super::work::add(sep - start);
    let opened = quote.is_none() || (start > 0 && Some(b[start - 1]) == quote);
    (start < end && opened).then_some(start..end)
}

/// Whether `name` is `sig` as a URL query parameter (`?sig=`, `&sig=`): the signature of an
/// Azure shared access signature, and of other signed URLs. Elsewhere `sig` is often a
/// signal number (`sig=11` in an audit record), so the name alone says nothing.
pub(super) fn query_signature(b: &[u8], name: &Range<usize>) -> bool {
    name.start > 0
        && matches!(b[name.start - 1], b'?' | b'&')
        && b[name.clone()].eq_ignore_ascii_case(b"sig")
}

/// The value after the separator at `sep`, without quotes; None when there is none.
fn value_after(b: &[u8], sep: usize, name: &[u8], ends: &mut Ends) -> Option<Range<usize>> {
    let mut i = sep + 1;
    // Ruby, Perl and PHP hashes pair a name and its value with `=>` (`password => "x"`).
    if b[sep] == b'=' && b.get(i) == Some(&b'>') {
        i += 1;
    }
    while i < b.len() && matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    let first = *b.get(i)?;
    if first == b'=' || (first == b':' && b[sep] == b':') {
        return None;
    }
    if matches!(first, b'"' | b'\'') {
        if let Some(end) = quoted_end(b, i) {
            return (end > i + 1).then_some(i + 1..end);
        }
    }
    if b[sep] == b':' && !matches!(first, b'"' | b'\'') {
        let norm = normalize(name);
        if HEADER_NAMES.contains(&norm.as_slice()) {
            return non_empty(i..ends.line(b, i));
        }
        if SCHEME_NAMES.contains(&norm.as_slice()) {
            return non_empty(after_scheme(b, i)..ends.line(b, i));
        }
    }
    let end = ends.bare(b, i);
    non_empty(i..i + without_closers(&b[i..end]))
}

/// The names of the opening tags in `b` (`<password>`, `<ns:password type="x">`; the name
/// without its namespace prefix), each with the index of its `>`. Closing tags, empty-element
/// tags (`<password/>`), comments and declarations name nothing.
pub(super) fn opening_tags(b: &[u8]) -> impl Iterator<Item = (Range<usize>, usize)> + '_ {
    let mut open = None;
    memchr2_iter(b'<', b'>', b).filter_map(move |at| {
        if b[at] == b'<' {
            open = Some(at);
            return None;
        }
        let lt = open.take()?;
        let tag = &b[lt + 1..at];
        let len = tag.iter().take_while(|&&c| is_name(c) || c == b':').count();
        super::work::add(len + 1);
        let ends_name = tag.get(len).map_or(true, u8::is_ascii_whitespace);
        let local = tag[..len]
            .iter()
            .rposition(|&c| c == b':')
            .map_or(0, |i| i + 1);
        let named = local < len && ends_name && tag.last() != Some(&b'/');
        named.then_some((lt + 1 + local..lt + 1 + len, at))
    })
}

/// The content after an opening tag, trimmed: up to a closing tag (`</`). An element left open
/// at the end of the text counts only when its content holds no whitespace (a cut-off
/// `<password>x`, not prose such as `log in with <token> and --verbose`).
fn element_value(b: &[u8], from: usize) -> Option<Range<usize>> {
    let rest = &b[from..];
    let end = match memchr::memchr(b'<', rest) {
        Some(n) if rest.get(n + 1) == Some(&b'/') => from + n,
        Some(_) => return None,
        None if rest.iter().any(u8::is_ascii_whitespace) => return None,
        None => b.len(),
    };
    super::work::add(end - from);
    let content = &b[from..end];
    let start = from
        + content
            .iter()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
    let trailing = content
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    non_empty(start..(end - trailing).max(start))
}

fn non_empty(r: Range<usize>) -> Option<Range<usize>> {
    (r.start < r.end).then_some(r)
}

/// Index of the quote closing the one at `open`, on the same line and within `MAX_QUOTED`.
fn quoted_end(b: &[u8], open: usize) -> Option<usize> {
    let q = b[open];
    let mut i = open + 1;
    while i < b.len() && i <= open + MAX_QUOTED {
        match b[i] {
            c if c == q => break,
            b'\n' => break,
            b'\\' if q == b'"' => i += 2,
            _ => i += 1,
        }
    }
    super::work::add(i - open);
    (b.get(i) == Some(&q) && i <= open + MAX_QUOTED).then_some(i)
}

/// Past a leading scheme word and its space (`Bearer x` -> `x`); `i` when there is none.
fn after_scheme(b: &[u8], i: usize) -> usize {
    let word = b[i..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    match b.get(i + word) {
        Some(b' ')
            if word > 0
                && b.get(i + word + 1)
                    .is_some_and(|c| !c.is_ascii_whitespace()) =>
        {
            i + word + 1
        }
        _ => i,
    }
}
