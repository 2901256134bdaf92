//! The entry points for `fields` members and dead letters, with the copy-through fast path.

use std::borrow::Cow;

use memchr::memchr;

use super::config::Action;
use super::escape::{json_unescape, push_json_string};
use super::json::Walker;
use super::keys::{is_pair_name, is_pair_value, KeyKind};
use super::memo;
use super::Redactor;
use crate::decode::json::write_member;

impl Redactor {
    /// Appends `"key":value` to the `fields` object being built in `out`, redacted.
    ///
    /// `key` is the decoded key name; `raw_value` is the JSON text as the sender wrote it. A comma
    /// is written first unless `out` is empty or ends with `{`. Returns false (and leaves `out`
    /// untouched) when the member is dropped. Malformed `raw_value` is stored as a redacted string.
    pub fn write_field(
        &self,
        key: &str,
        raw_value: &str,
        out: &mut String,
        counts: &mut [u64],
    ) -> bool {
        let mark = open_member(out);
        if self.field_is_clean_remembered(key, raw_value) {
            write_member(out, key, raw_value);
            return true;
        }
        let kept = self.write_field_slow(key, raw_value, out, counts);
        if !kept {
            out.truncate(mark);
        }
        kept
    }

    pub(super) fn write_field_slow(
        &self,
        key: &str,
        raw_value: &str,
        out: &mut String,
        counts: &mut [u64],
    ) -> bool {
        let member_start = out.len();
        let mut pos = 0;
        // The walk counts into its own counters: a walk given up on malformed text replaced
        // nothing, so what it found must not be counted.
        let mut walked = vec![0; counts.len()];
        let mut walker = Walker::new(self, &mut walked);
        let result = walker.member(key, None, raw_value, &mut pos, out);
        let changed = walker.changed;
        match result {
            Ok(kept) if raw_value[pos..].trim().is_empty() && changed => {
                counts.iter_mut().zip(&walked).for_each(|(c, w)| *c += w);
                return kept;
            }
            Ok(_) if raw_value[pos..].trim().is_empty() => {
                // Nothing redacted: keep the sender's exact text (spacing, escapes).
                out.truncate(member_start);
                write_member(out, key, raw_value);
                return true;
            }
            _ => out.truncate(member_start),
        }
        // Malformed JSON: keep it as one string, redacted as text (secret-keyed pairs included).
        let (text, dropped) = self.redact_lenient(raw_value, key, counts);
        let key_text = self.redact_text(key, counts);
        if dropped {
            return false;
        }
        push_json_string(&key_text, out);
        out.push(':');
        push_json_string(&text, out);
        true
    }

    /// Appends every member of one `fields` object (see `write_field`); returns how many were kept.
    ///
    /// Each member is scanned once: a hit in one member sends only that member down the slow path.
    pub fn write_fields(
        &self,
        members: &[(&str, &str)],
        out: &mut String,
        counts: &mut [u64],
    ) -> usize {
        let pair = self.members_pair(members);
        members
            .iter()
            .filter(|(k, v)| match pair {
                Some(action) if is_pair_value(k.as_bytes()) => {
                    self.write_pair_value(action, k, v, out, counts)
                }
                _ => self.write_field(k, v, out, counts),
            })
            .count()
    }

    /// The action for the `value` member when `members` are a name/value pair whose name is a
    /// secret key name (`{"name": "DB_PASSWORD", "value": …}` as a whole event); else None.
    fn members_pair(&self, members: &[(&str, &str)]) -> Option<Action> {
        let action = self.key_action?;
        let has_value = members.iter().any(|(k, _)| is_pair_value(k.as_bytes()));
        let secret_name = |(k, v): &&(&str, &str)| {
            is_pair_name(k.as_bytes())
                && v.len() >= 2
                && v.starts_with('"')
                && self.keys.kind(json_unescape(&v[1..v.len() - 1]).as_bytes()) == KeyKind::Secret
        };
        (has_value && members.iter().any(|m| secret_name(&m))).then_some(action)
    }

    /// Appends `"<key>":` (a pair's `value`) and `raw_value` replaced whole, as under a secret
    /// key.
    fn write_pair_value(
        &self,
        action: Action,
        key: &str,
        raw_value: &str,
        out: &mut String,
        counts: &mut [u64],
    ) -> bool {
        let mark = open_member(out);
        let mut pos = 0;
        let mut walker = Walker::new(self, counts);
        // The key is a pair's value name, plain letters: its raw form is itself.
        match walker.pair_value(action, key, raw_value, &mut pos, out) {
            Ok(true) => true,
            // Dropped, or not JSON (decoded values always are): nothing of it is written.
            Ok(false) | Err(_) => {
                out.truncate(mark);
                false
            }
        }
    }

    /// `field_is_clean`, answered from this thread's memory of clean members when the same key
    /// and value were judged before: fields repeat (a method, a route, a status, a user agent).
    fn field_is_clean_remembered(&self, key: &str, raw: &str) -> bool {
        let Some(entry) = memo::Member::of(self.id, key, raw) else {
            return self.field_is_clean(key, raw);
        };
        if memo::member_seen_clean(&entry) {
            return true;
        }
        let clean = self.field_is_clean(key, raw);
        if clean {
            memo::remember_member(&entry);
        }
        clean
    }

    /// No key rule, no escape, no percent-encoding and no prefilter hit: copy it through.
    pub(super) fn field_is_clean(&self, key: &str, raw: &str) -> bool {
        // The prefilter's scan also finds the backslashes and percent signs, which the nested
        // key check must not meet.
        self.looks_clean(&[key, raw]) && self.field_shape_ok(key, raw)
    }

    /// No key rule and no sensitive nested key.
    fn field_shape_ok(&self, key: &str, raw: &str) -> bool {
        let key_ok = match self.keys.kind(key.as_bytes()) {
            KeyKind::Plain => true,
            KeyKind::Secret => self.key_action.is_none(),
            KeyKind::User => self.user_action.is_none() || memchr(b':', raw.as_bytes()).is_none(),
        };
        // Malformed text (`1, "api key": 2`) is read by the lenient scan, which takes its keys too.
        let bytes = raw.as_bytes();
        let keyed = matches!(bytes.first(), Some(b'{' | b'[')) || bytes.contains(&b':');
        // The lenient scan ends an unclosed string at a line end (`"cvv` then `\n:`), where
        // the nested key check reads on: text with a raw newline takes the slow path.
        let multiline = keyed && self.nested_key_rules() && memchr(b'\n', bytes).is_some();
        key_ok && !multiline && !(keyed && self.nested_keys_sensitive(bytes))
    }

    fn nested_keys_sensitive(&self, raw: &[u8]) -> bool {
        self.nested_key_rules()
            && (self.keys.raw_has_sensitive_key(raw)
                || (self.key_action.is_some() && self.keys.raw_has_secret_flag(raw)))
    }

    fn nested_key_rules(&self) -> bool {
        self.key_action.is_some() || self.user_action.is_some()
    }

    /// Redacts a dead letter: a JSON document is walked; anything else is redacted as text, with
    /// key rules applied to the `"key": value` pairs a lenient scan finds.
    pub fn redact_bytes<'a>(&self, raw: &'a [u8], counts: &mut [u64]) -> Cow<'a, [u8]> {
        let Ok(text) = std::str::from_utf8(raw) else {
            return self.redact_invalid_utf8(raw, counts);
        };
        if matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'[')) {
            let mut out = String::with_capacity(text.len());
            let mut walker = Walker::new(self, &mut []);
            if walker.document(text, "", &mut out).is_ok() {
                if !walker.changed {
                    return Cow::Borrowed(raw);
                }
                out.clear();
                let mut counted = Walker::new(self, counts);
                let kept = counted.document(text, "", &mut out).unwrap_or(true);
                return Cow::Owned(if kept { out.into_bytes() } else { Vec::new() });
            }
        }
        match self.redact_lenient(text, "", counts).0 {
            Cow::Borrowed(_) => Cow::Borrowed(raw),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        }
    }

    /// Each valid UTF-8 stretch is redacted on its own; invalid bytes are kept as they are.
    fn redact_invalid_utf8<'a>(&self, raw: &'a [u8], counts: &mut [u64]) -> Cow<'a, [u8]> {
        let mut out = Vec::with_capacity(raw.len());
        let mut changed = false;
        for chunk in raw.utf8_chunks() {
            let (red, _) = self.redact_lenient(chunk.valid(), "", counts);
            changed |= matches!(red, Cow::Owned(_));
            out.extend_from_slice(red.as_bytes());
            out.extend_from_slice(chunk.invalid());
        }
        match changed {
            true => Cow::Owned(out),
            false => Cow::Borrowed(raw),
        }
    }
}

/// Writes the comma before a member unless `out` is empty or ends with `{`; returns where the
/// member starts, for a member dropped after all.
fn open_member(out: &mut String) -> usize {
    let mark = out.len();
    if !(out.is_empty() || out.ends_with('{')) {
        out.push(',');
    }
    mark
}
