//! A tighter gate for `secret_param` than its stems, which also wake on `key=`, `span_name` and
//! prose: its forms need a secret name directly before `=` or `:`, or a flag (`--`, `-p`).

use std::sync::OnceLock;

use memchr::{memchr, memchr2_iter, memchr_iter};

use super::assign::{name_before, opening_tags, query_signature};
use super::keys::KeyKind;
use super::prefilter::{bit, RuleMask};
use super::rules::SECRET_NAMES;
use super::text::contains_ignore_case;
use super::Redactor;

/// Longest parameter name the gate compares; `param_names` holds none longer.
const LONGEST_NAME: usize = 32;

/// Names (lower case, without `_-.`) that `SECRET_PARAM` accepts at the end of a parameter
/// name, read from the alternation its regexes are built from (`api[_-]?key` is `apikey`,
/// `credentials?` both `credential` and `credentials`), so the two cannot drift apart.
fn param_names() -> &'static [Vec<u8>] {
    static NAMES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names = Vec::new();
        for alt in SECRET_NAMES.split('|') {
            let name = alt.replace("[_-]?", "");
            match name.strip_suffix("s?") {
                Some(stem) => names.extend([stem.to_string(), format!("{stem}s")]),
                None => names.push(name),
            }
        }
        let names: Vec<Vec<u8>> = names.into_iter().map(String::into_bytes).collect();
        assert!(
            names.iter().all(|n| n.len() <= LONGEST_NAME
                && n.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())),
            "secret_names! holds a form the secret_param gate cannot read: {SECRET_NAMES}"
        );
        names
    })
}

impl Redactor {
    /// `mask` without `secret_param` when none of `parts` can hold one of its forms.
    pub(super) fn gate_assign<'a, I>(&self, parts: I, mask: RuleMask) -> RuleMask
    where
        I: IntoIterator<Item = &'a str>,
    {
        let Some(rule) = self.assign_rule.map(bit).filter(|b| mask & b != 0) else {
            return mask;
        };
        match parts.into_iter().any(|p| self.may_assign(p.as_bytes())) {
            true => mask,
            false => mask & !rule,
        }
    }

    /// `mask` without the rules none of whose patterns may match `parts` under the key `ctx`.
    // Every string passes here, most with an empty mask: inlined, that costs a test.
    #[inline]
    pub(super) fn gate_patterns(&self, parts: &[&str], ctx: &str, mask: RuleMask) -> RuleMask {
        // Rules past the mask width share no bit of their own; those masks stay as they are.
        if self.rules.len() > 64 {
            return mask;
        }
        let mut gated = mask;
        let mut bits = mask & bit(self.rules.len()).wrapping_sub(1);
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            let matchable = self.rules[i]
                .patterns
                .iter()
                .any(|p| p.may_match_parts(parts, ctx));
            if !(matchable || self.elements_may_match(i, parts)) {
                gated &= !bit(i);
            }
            bits &= bits - 1;
        }
        gated
    }

    /// Whether rule `i` is the one whose assignment scan also reads elements
    /// (`<password>x</password>`), which no pattern of it needs, and `parts` hold a tag's end.
    #[inline(never)]
    fn elements_may_match(&self, i: usize, parts: &[&str]) -> bool {
        self.assign_rule == Some(i) && parts.iter().any(|p| memchr(b'>', p.as_bytes()).is_some())
    }

    /// Whether `b` may hold a secret assignment, element, flag or client password (`mysql -p…`).
    pub(super) fn may_assign(&self, b: &[u8]) -> bool {
        // Unicode case folding and whitespace (`\s`, K for KELVIN SIGN) are left to the regexes.
        !b.is_ascii()
            || has_flag(b)
            || memchr2_iter(b'=', b':', b).any(|sep| self.secret_before(b, sep))
            || self.secret_element(b)
    }

    /// Whether `b` opens an element a secret key name names (`<password>`); most text holds
    /// no `<`, which one plain search tells.
    fn secret_element(&self, b: &[u8]) -> bool {
        memchr(b'<', b).is_some()
            && opening_tags(b).any(|(name, _)| self.keys.kind(&b[name]) == KeyKind::Secret)
    }

    /// Whether the name before the separator at `sep` is one the regexes or key rules take.
    fn secret_before(&self, b: &[u8], sep: usize) -> bool {
        let keyed = name_before(b, sep).is_some_and(|n| {
            self.keys.kind(&b[n.clone()]) == KeyKind::Secret || query_signature(b, &n)
        });
        keyed || param_name_before(b, sep)
    }
}

/// Whether `b` holds `--` or `-p`, or a client's password flag that is a common pair of bytes
/// elsewhere (`-u` with `curl`, `-a` with `redis-cli`): one pass over the dashes, which most
/// strings lack, and a search for the client only when its flag is there.
fn has_flag(b: &[u8]) -> bool {
    let (mut u, mut a) = (false, false);
    for i in memchr_iter(b'-', b) {
        match b.get(i + 1) {
            Some(b'-' | b'p') => return true,
            Some(b'u') => u = true,
            Some(b'a') => a = true,
            _ => {}
        }
    }
    (u && contains_ignore_case(b, b"curl")) || (a && contains_ignore_case(b, b"redis-cli"))
}

/// Whether a `param_names` entry ends the name before `sep` (after whitespace and one quote).
fn param_name_before(b: &[u8], sep: usize) -> bool {
    let mut end = sep;
    while end > 0 && b[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    if end > 0 && matches!(b[end - 1], b'"' | b'\'') {
        end -= 1;
    }
    let mut tail = [0u8; LONGEST_NAME];
    let mut n = 0;
    let name = b[..end]
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
    for &c in name
        .filter(|c| c.is_ascii_alphanumeric())
        .take(LONGEST_NAME)
    {
        tail[LONGEST_NAME - 1 - n] = c.to_ascii_lowercase();
        n += 1;
    }
    let tail = &tail[LONGEST_NAME - n..];
    param_names().iter().any(|p| tail.ends_with(p))
}

#[cfg(test)]
mod tests {
    use super::param_names;

    #[test]
    fn param_names_are_read_from_the_regex_alternation() {
        let names: Vec<&str> = param_names()
            .iter()
            .map(|n| std::str::from_utf8(n).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "password",
                "passwd",
                "pwd",
                "passphrase",
                "secret",
                "token",
                "apikey",
                "accesskey",
                "privatekey",
                "clientsecret",
                "signature",
                "credential",
                "credentials",
            ]
        );
    }
}
