//! Walking raw JSON text (`fields` members, dead letters) and re-emitting it redacted.
//!
//! The walker copies the sender's text through wherever nothing changed, so numbers keep their
//! exact digits and unchanged strings keep their escapes; only redacted values are re-encoded.

use std::borrow::Cow;
use std::ops::Range;

use memchr::memchr;

use super::args::{Arg, Client};
use super::config::Action;
use super::escape::{json_unescape, push_json_string};
use super::keys::{is_pair_name, is_pair_value, user_password_span, KeyKind};
use super::text::bump;
use super::Redactor;

/// Nesting depth past which a value is treated as malformed.
const MAX_DEPTH: usize = 128;

/// The input is not well-formed JSON (or nests too deeply).
#[derive(Debug)]
pub struct Malformed;

type Res<T> = Result<T, Malformed>;

/// One walk over a JSON text; `changed` tells whether any redaction happened.
pub struct Walker<'r, 'c> {
    r: &'r Redactor,
    counts: &'c mut [u64],
    depth: usize,
    pub changed: bool,
}

impl<'r, 'c> Walker<'r, 'c> {
    pub fn new(r: &'r Redactor, counts: &'c mut [u64]) -> Self {
        Walker {
            r,
            counts,
            depth: 0,
            changed: false,
        }
    }

    /// Walks a whole document (one value, surrounding whitespace allowed); false if dropped.
    pub fn document(&mut self, src: &str, ctx: &str, out: &mut String) -> Res<bool> {
        let mut pos = 0;
        let kept = self.value(src, &mut pos, ctx, out)?;
        skip_ws(src, &mut pos);
        match pos == src.len() {
            true => Ok(kept),
            false => Err(Malformed),
        }
    }

    /// Writes `key:value` of one member; false when the member is dropped.
    pub fn member(
        &mut self,
        key: &str,
        raw_key: Option<&str>,
        src: &str,
        pos: &mut usize,
        out: &mut String,
    ) -> Res<bool> {
        if !self.write_key(key, raw_key, out) {
            skip_value(src, pos)?;
            return Ok(false);
        }
        out.push(':');
        skip_ws(src, pos);
        let kind = self.r.keys.kind(key.as_bytes());
        match (kind, self.r.key_action, self.r.user_action) {
            (KeyKind::Secret, Some(action), _) => self.secret_value(action, src, pos, out),
            (KeyKind::User, _, Some(action)) if peek(src, *pos) == Some(b'"') => {
                self.user_value(action, key, src, pos, out)
            }
            _ => self.value(src, pos, key, out),
        }
    }

    fn value(&mut self, src: &str, pos: &mut usize, ctx: &str, out: &mut String) -> Res<bool> {
        skip_ws(src, pos);
        match peek(src, *pos).ok_or(Malformed)? {
            b'{' => self.object(src, pos, out),
            b'[' => self.array(src, pos, ctx, out),
            b'"' => self.string(src, pos, ctx, out),
            b'-' | b'0'..=b'9' => self.number(src, pos, ctx, out),
            _ => literal(src, pos, out).map(|_| true),
        }
    }

    fn object(&mut self, src: &str, pos: &mut usize, out: &mut String) -> Res<bool> {
        self.enter()?;
        let pair = self.secret_pair(src, *pos);
        *pos += 1;
        out.push('{');
        let mut first = true;
        skip_ws(src, pos);
        if peek(src, *pos) == Some(b'}') {
            *pos += 1;
        } else {
            loop {
                skip_ws(src, pos);
                let raw_key = string_raw(src, pos)?;
                skip_ws(src, pos);
                expect(src, pos, b':')?;
                let mark = out.len();
                if !first {
                    out.push(',');
                }
                let key = json_unescape(raw_key);
                let kept = match pair.filter(|_| is_pair_value(key.as_bytes())) {
                    Some(action) => self.pair_value(action, raw_key, src, pos, out)?,
                    None => self.member(&key, Some(raw_key), src, pos, out)?,
                };
                match kept {
                    true => first = false,
                    false => out.truncate(mark),
                }
                if close_or_comma(src, pos, b'}')? {
                    break;
                }
            }
        }
        out.push('}');
        self.depth -= 1;
        Ok(true)
    }

    fn array(&mut self, src: &str, pos: &mut usize, ctx: &str, out: &mut String) -> Res<bool> {
        self.enter()?;
        *pos += 1;
        out.push('[');
        let mut first = true;
        skip_ws(src, pos);
        if peek(src, *pos) == Some(b']') {
            *pos += 1;
        } else {
            // The value after a flag naming a secret key (`"--password"`) is that secret, as
            // in a command line split into its arguments; so is the password a known client
            // takes after its short flag (`["curl", "-u", "bob:pw"]`).
            let (mut next, mut client) = (Arg::Plain, None);
            loop {
                let mark = out.len();
                if !first {
                    out.push(',');
                }
                skip_ws(src, pos);
                let start = *pos;
                let string = peek(src, start) == Some(b'"');
                let kept = self.argument(next, client, src, pos, ctx, out)?;
                match kept {
                    true => first = false,
                    false => out.truncate(mark),
                }
                next = Arg::Plain;
                if string {
                    let raw = &src[start..*pos];
                    let text = json_unescape(&raw[1..raw.len() - 1]);
                    next = self.read_argument(&text, &mut client);
                }
                if close_or_comma(src, pos, b']')? {
                    break;
                }
            }
        }
        out.push(']');
        self.depth -= 1;
        Ok(true)
    }

    /// Writes one array element, given what the element before it said (`next`) and the
    /// client whose arguments these are.
    fn argument(
        &mut self,
        next: Arg,
        client: Option<Client>,
        src: &str,
        pos: &mut usize,
        ctx: &str,
        out: &mut String,
    ) -> Res<bool> {
        let string = peek(src, *pos) == Some(b'"');
        match (next, self.r.key_action, self.r.user_action) {
            (Arg::NextPassword, Some(action), _) => self.secret_value(action, src, pos, out),
            (Arg::NextCredential, _, Some(action)) if string => {
                self.user_value(action, ctx, src, pos, out)
            }
            _ => match client.filter(|_| string) {
                Some(client) => self.client_argument(client, src, pos, ctx, out),
                None => self.value(src, pos, ctx, out),
            },
        }
    }

    /// What the array element `text` says about the next one: a flag naming a secret key, or a
    /// client's password flag; a client's name makes the elements after it its arguments.
    fn read_argument(&self, text: &str, client: &mut Option<Client>) -> Arg {
        if self.r.keys.is_secret_flag(text.as_bytes()) {
            return Arg::NextPassword;
        }
        let arg = client.map_or(Arg::Plain, |c| c.read(text));
        if arg == Arg::End {
            *client = None;
        }
        if let Some(named) = Client::named(text) {
            *client = Some(named);
        }
        arg
    }

    /// A string argument of `client`: a password glued to its flag (`-pS3cret`, `-ubob:S3cret`)
    /// is replaced, the flag and user name kept; any other argument is walked as a value.
    fn client_argument(
        &mut self,
        client: Client,
        src: &str,
        pos: &mut usize,
        ctx: &str,
        out: &mut String,
    ) -> Res<bool> {
        let start = *pos;
        let text = json_unescape(string_raw(src, pos)?);
        let Some((counter, action, span)) = self.glued_secret(client, &text) else {
            *pos = start;
            return self.value(src, pos, ctx, out);
        };
        self.changed = true;
        bump(self.counts, counter);
        if action == Action::Drop {
            return Ok(false);
        }
        let mut s = text[..span.start].to_string();
        let rule = &self.r.names[counter];
        self.r.renderer.render(action, rule, &text[span], &mut s);
        push_json_string(&s, out);
        Ok(true)
    }

    /// The counter, action and byte range of a password glued to `client`'s flag in `text`:
    /// `secret_key` for a password, `user_password` for the half of `user:password`.
    fn glued_secret(&self, client: Client, text: &str) -> Option<(usize, Action, Range<usize>)> {
        let keyed = self.r.rules.len();
        let (counter, action, span) = match client.read(text) {
            Arg::GluedPassword(at) => (keyed, self.r.key_action?, at..text.len()),
            Arg::GluedCredential(at) => {
                let half = user_password_span(&text[at..])?;
                (
                    keyed + 1,
                    self.r.user_action?,
                    at + half.start..at + half.end,
                )
            }
            _ => return None,
        };
        (!self.r.is_replacement(&text[span.clone()])).then_some((counter, action, span))
    }

    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        match self.depth > MAX_DEPTH {
            true => Err(Malformed),
            false => Ok(()),
        }
    }

    fn string(&mut self, src: &str, pos: &mut usize, ctx: &str, out: &mut String) -> Res<bool> {
        let raw = string_raw(src, pos)?;
        let decoded = json_unescape(raw);
        if let Some(kept) = self.embedded_json(&decoded, raw, ctx, out) {
            return Ok(kept);
        }
        let (red, dropped) = self.r.redact_in(&decoded, ctx, self.counts);
        if dropped {
            self.changed = true;
            return Ok(false);
        }
        match red {
            Cow::Borrowed(_) => push_raw_string(raw, out),
            Cow::Owned(s) => {
                self.changed = true;
                push_json_string(&s, out);
            }
        }
        Ok(true)
    }

    /// A string holding a JSON object or array is walked as JSON; None if it is not JSON.
    fn embedded_json(&mut self, s: &str, raw: &str, ctx: &str, out: &mut String) -> Option<bool> {
        let t = s.trim_start();
        if !(t.starts_with('{') || t.starts_with('[')) || self.depth >= MAX_DEPTH {
            return None;
        }
        let mut inner_out = String::with_capacity(s.len());
        let mut inner = Walker {
            r: self.r,
            counts: &mut [],
            depth: self.depth + 1,
            changed: false,
        };
        inner.document(s, ctx, &mut inner_out).ok()?;
        if !inner.changed {
            push_raw_string(raw, out);
            return Some(true);
        }
        // Counted on a second pass so a string that turns out not to be JSON is not counted twice.
        let mut counted = Walker {
            r: self.r,
            counts: self.counts,
            depth: self.depth + 1,
            changed: false,
        };
        inner_out.clear();
        let kept = counted.document(s, ctx, &mut inner_out).ok()?;
        self.changed = true;
        if kept {
            push_json_string(&inner_out, out);
        }
        Some(kept)
    }

    fn number(&mut self, src: &str, pos: &mut usize, ctx: &str, out: &mut String) -> Res<bool> {
        let start = *pos;
        while peek(src, *pos)
            .is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        {
            *pos += 1;
        }
        let raw = &src[start..*pos];
        let (red, dropped) = self.r.redact_in(raw, ctx, self.counts);
        match (red, dropped) {
            (_, true) => {
                self.changed = true;
                Ok(false)
            }
            (Cow::Borrowed(_), _) => {
                out.push_str(raw);
                Ok(true)
            }
            (Cow::Owned(s), _) => {
                self.changed = true;
                push_json_string(&s, out);
                Ok(true)
            }
        }
    }

    /// Writes the (redacted) key; false when a drop action removes the member.
    fn write_key(&mut self, key: &str, raw_key: Option<&str>, out: &mut String) -> bool {
        let (red, dropped) = self.r.redact_in(key, "", self.counts);
        match (red, raw_key) {
            _ if dropped => {
                self.changed = true;
                return false;
            }
            (Cow::Borrowed(_), Some(raw)) => push_raw_string(raw, out),
            (Cow::Borrowed(k), None) => push_json_string(k, out),
            (Cow::Owned(k), _) => {
                self.changed = true;
                push_json_string(&k, out);
            }
        }
        true
    }

    /// The action for the `value` of a name/value pair whose name is a secret key name
    /// (`{"name": "DB_PASSWORD", "value": …}`, as Kubernetes lists environment variables, or
    /// `{"key": "password", "value": …}`); None for any other object. Malformed text is None
    /// here and fails the walk itself.
    fn secret_pair(&self, src: &str, at: usize) -> Option<Action> {
        let action = self.r.key_action?;
        let names = pair_names(src, at)?;
        names
            .iter()
            .any(|n| self.r.keys.kind(n.as_bytes()) == KeyKind::Secret)
            .then_some(action)
    }

    /// Writes `"value":` and the value of a secret name/value pair, replaced whole.
    pub fn pair_value(
        &mut self,
        action: Action,
        raw_key: &str,
        src: &str,
        pos: &mut usize,
        out: &mut String,
    ) -> Res<bool> {
        push_raw_string(raw_key, out);
        out.push(':');
        self.secret_value(action, src, pos, out)
    }

    /// A value under a secret key is replaced whole, whatever its type.
    fn secret_value(
        &mut self,
        action: Action,
        src: &str,
        pos: &mut usize,
        out: &mut String,
    ) -> Res<bool> {
        skip_ws(src, pos);
        let start = *pos;
        skip_value(src, pos)?;
        let raw = &src[start..*pos];
        let value = match raw.starts_with('"') {
            true => json_unescape(&raw[1..raw.len() - 1]),
            false => Cow::Borrowed(raw),
        };
        if self.r.is_replacement(&value) {
            out.push_str(raw);
            return Ok(true);
        }
        self.changed = true;
        bump(self.counts, self.r.rules.len());
        if action == Action::Drop {
            return Ok(false);
        }
        let mut rendered = String::new();
        self.r
            .renderer
            .render(action, super::SECRET_KEY_RULE, &value, &mut rendered);
        push_json_string(&rendered, out);
        Ok(true)
    }

    /// A user-name value: the password half of `name:password` is replaced, the rest walked.
    fn user_value(
        &mut self,
        action: Action,
        key: &str,
        src: &str,
        pos: &mut usize,
        out: &mut String,
    ) -> Res<bool> {
        skip_ws(src, pos);
        let start = *pos;
        let raw = string_raw(src, pos)?;
        let decoded = json_unescape(raw);
        let Some(span) =
            user_password_span(&decoded).filter(|s| !self.r.is_replacement(&decoded[s.clone()]))
        else {
            *pos = start;
            return self.value(src, pos, key, out);
        };
        self.changed = true;
        bump(self.counts, self.r.rules.len() + 1);
        if action == Action::Drop {
            return Ok(false);
        }
        let (name, _) = self.r.redact_in(&decoded[..span.start], key, self.counts);
        let mut s = name.into_owned();
        self.r
            .renderer
            .render(action, super::USER_PASSWORD_RULE, &decoded[span], &mut s);
        push_json_string(&s, out);
        Ok(true)
    }
}

/// Most members a name/value pair object is looked at with.
const PAIR_MEMBERS: usize = 6;

/// The string values of the `name` and `key` members of the object at `src[at]` (its `{`), when
/// it also has a `value` member; None for any other object, and as soon as a member other than
/// `value` holds a container or the object has more than `PAIR_MEMBERS` members, so nested
/// objects are not read again level after level.
fn pair_names(src: &str, at: usize) -> Option<Vec<Cow<'_, str>>> {
    let mut pos = at + 1;
    let (mut names, mut has_value) = (Vec::new(), false);
    skip_ws(src, &mut pos);
    if peek(src, pos) == Some(b'}') {
        return None;
    }
    for _ in 0..PAIR_MEMBERS {
        skip_ws(src, &mut pos);
        let key = json_unescape(string_raw(src, &mut pos).ok()?);
        skip_ws(src, &mut pos);
        expect(src, &mut pos, b':').ok()?;
        skip_ws(src, &mut pos);
        let start = pos;
        let first = peek(src, pos)?;
        let value = is_pair_value(key.as_bytes());
        if !value && matches!(first, b'{' | b'[') {
            return None;
        }
        skip_value(src, &mut pos).ok()?;
        if value {
            has_value = true;
        } else if first == b'"' && is_pair_name(key.as_bytes()) {
            names.push(json_unescape(&src[start + 1..pos - 1]));
        }
        if close_or_comma(src, &mut pos, b'}').ok()? {
            return (has_value && !names.is_empty()).then_some(names);
        }
    }
    None
}

fn peek(src: &str, pos: usize) -> Option<u8> {
    src.as_bytes().get(pos).copied()
}

fn skip_ws(src: &str, pos: &mut usize) {
    while peek(src, *pos).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        *pos += 1;
    }
}

fn expect(src: &str, pos: &mut usize, b: u8) -> Res<()> {
    match peek(src, *pos) == Some(b) {
        true => {
            *pos += 1;
            Ok(())
        }
        false => Err(Malformed),
    }
}

/// After a member or element: true at the closing bracket, false after a comma.
fn close_or_comma(src: &str, pos: &mut usize, close: u8) -> Res<bool> {
    skip_ws(src, pos);
    let b = peek(src, *pos).ok_or(Malformed)?;
    *pos += 1;
    match b {
        b',' => Ok(false),
        b if b == close => Ok(true),
        _ => Err(Malformed),
    }
}

/// The raw content of the string at `pos` (between the quotes, escapes untouched).
fn string_raw<'s>(src: &'s str, pos: &mut usize) -> Res<&'s str> {
    expect(src, pos, b'"')?;
    let bytes = src.as_bytes();
    let start = *pos;
    let mut i = start;
    loop {
        let q = i + memchr(b'"', &bytes[i..]).ok_or(Malformed)?;
        let backslashes = bytes[start..q]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            *pos = q + 1;
            return Ok(&src[start..q]);
        }
        i = q + 1;
    }
}

fn push_raw_string(raw: &str, out: &mut String) {
    out.push('"');
    out.push_str(raw);
    out.push('"');
}

fn literal(src: &str, pos: &mut usize, out: &mut String) -> Res<()> {
    for lit in ["true", "false", "null"] {
        if src[*pos..].starts_with(lit) {
            out.push_str(lit);
            *pos += lit.len();
            return Ok(());
        }
    }
    Err(Malformed)
}

/// Moves past one value without writing it.
fn skip_value(src: &str, pos: &mut usize) -> Res<()> {
    skip_ws(src, pos);
    match peek(src, *pos).ok_or(Malformed)? {
        b'"' => string_raw(src, pos).map(|_| ()),
        b'{' | b'[' => skip_container(src, pos),
        _ => {
            let start = *pos;
            while peek(src, *pos)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                *pos += 1;
            }
            match *pos > start {
                true => Ok(()),
                false => Err(Malformed),
            }
        }
    }
}

fn skip_container(src: &str, pos: &mut usize) -> Res<()> {
    let mut depth = 0usize;
    loop {
        match peek(src, *pos).ok_or(Malformed)? {
            b'"' => {
                string_raw(src, pos)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
        *pos += 1;
        if depth == 0 {
            return Ok(());
        }
    }
}
