//! The seam between decoding and redaction: what the decoder asks of a redactor.

use std::borrow::Cow;

use super::json::write_member;

/// Redaction as the decoder uses it. `counts` is indexed by rule.
pub trait Scrub: Sync {
    /// Free text with every match replaced; borrowed when nothing matched.
    fn text<'a>(&self, text: &'a str, counts: &mut [u64]) -> Cow<'a, str>;
    /// Appends the `fields` member `"key":raw_value`, redacted, with a comma before it unless
    /// `out` is empty or ends with `{`; false when the member is dropped.
    fn field(&self, key: &str, raw_value: &str, out: &mut String, counts: &mut [u64]) -> bool;
    /// Appends every member of one event's `fields`, redacted; returns how many were kept.
    fn fields(&self, members: &[(&str, &str)], out: &mut String, counts: &mut [u64]) -> usize {
        members
            .iter()
            .filter(|(k, v)| self.field(k, v, out, counts))
            .count()
    }
    /// A raw dead-letter line, which may be neither JSON nor UTF-8.
    fn bytes<'a>(&self, raw: &'a [u8], counts: &mut [u64]) -> Cow<'a, [u8]>;
    /// The keyed pseudonym of a `user_id` or `session_id` value, when configured.
    fn pseudonym(&self, column: &str, value: &str) -> Option<String>;
    /// How many counters `counts` must hold.
    fn rule_count(&self) -> usize;
    /// Whether this changes nothing at all: column values are then stored without a call per
    /// value.
    fn is_identity(&self) -> bool {
        false
    }
}

/// No redaction at all: for measurements and for callers that redact elsewhere.
pub struct NoScrub;

impl Scrub for NoScrub {
    fn text<'a>(&self, text: &'a str, _: &mut [u64]) -> Cow<'a, str> {
        Cow::Borrowed(text)
    }

    fn field(&self, key: &str, raw_value: &str, out: &mut String, _: &mut [u64]) -> bool {
        if !(out.is_empty() || out.ends_with('{')) {
            out.push(',');
        }
        write_member(out, key, raw_value);
        true
    }

    fn bytes<'a>(&self, raw: &'a [u8], _: &mut [u64]) -> Cow<'a, [u8]> {
        Cow::Borrowed(raw)
    }

    fn pseudonym(&self, _: &str, _: &str) -> Option<String> {
        None
    }

    fn rule_count(&self) -> usize {
        0
    }

    fn is_identity(&self) -> bool {
        true
    }
}
