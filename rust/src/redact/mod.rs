//! Redaction: finds secrets in text, `fields` JSON, key names and dead letters, and replaces them.
//!
//! A `Redactor` is built once from a `RedactConfig` and shared by every worker thread. Each
//! string first goes through a cheap prefilter (literals, digit runs, rare bytes); only the rules
//! it flags run their regexes, validators and evidence checks. See `docs/redaction.md`.

mod action;
mod args;
mod assign;
mod blocks;
mod build;
mod config;
mod escape;
mod field;
mod gate;
mod json;
mod keys;
mod lenient;
mod memo;
mod prefilter;
mod rules;
mod text;
mod validate;
mod work;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bench;
#[cfg(test)]
mod tests_blocks;
#[cfg(test)]
mod tests_corpus;
#[cfg(test)]
mod tests_gate;
#[cfg(test)]
mod tests_memo;
#[cfg(test)]
mod tests_prefilter;
#[cfg(test)]
mod tests_props;
#[cfg(test)]
mod tests_scaling;

use std::borrow::Cow;

use regex::Regex;

pub use config::{Action, CustomRule, RedactConfig};
pub use rules::{OPTIONAL, SECRET_KEY_RULE, USER_PASSWORD_RULE};
pub use validate::Validator;

use action::Renderer;
use keys::{KeyKind, KeyMatcher};
use prefilter::{Prefilter, RuleMask};

/// Upper bound on a compiled regex (bytes), so no configuration can blow up memory.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One regex of a value rule with its evidence requirements.
#[derive(Debug)]
struct Pattern {
    regex: Regex,
    group: usize,
    validator: Validator,
    /// Lower-case words; when not empty, one must be near the match or in the key name.
    keywords: Vec<String>,
    /// When not empty, the regex cannot match text holding none of these.
    needs: &'static [&'static str],
}

/// A value rule: finds spans inside strings.
#[derive(Debug)]
struct Rule {
    name: String,
    action: Action,
    patterns: Vec<Pattern>,
}

/// The redaction engine: `Send + Sync`, built once, used from many threads.
#[derive(Debug)]
pub struct Redactor {
    rules: Vec<Rule>,
    /// Value rule names, then `secret_key`, then `user_password`: index i is `counts[i]`.
    names: Vec<String>,
    pub(crate) prefilter: Prefilter,
    /// Rules whose evidence may come from the enclosing key name.
    keyword_mask: RuleMask,
    keys: KeyMatcher,
    /// Index of `secret_param`, which also takes values assigned to secret key names in text.
    assign_rule: Option<usize>,
    /// Action of key rules; None when `secret_key` is disabled.
    key_action: Option<Action>,
    /// Action of `user_password`; None when disabled.
    user_action: Option<Action>,
    renderer: Renderer,
    pseudonymize: Vec<String>,
    hash_fallback: bool,
    /// Names this redactor's verdicts in the per-thread memory of clean strings.
    id: u64,
}

impl Redactor {
    /// Builds the engine; a bad regex, action or rule name is an `Error::Config` naming the rule.
    pub fn new(config: RedactConfig) -> crate::error::Result<Redactor> {
        build::build(config)
    }

    /// Builds from the JSON form of `RedactConfig` that Python sends.
    pub fn from_json(text: &str) -> crate::error::Result<Redactor> {
        let config: RedactConfig = sonic_rs::from_str(text)
            .map_err(|e| crate::error::config_json("redaction config", &e))?;
        Redactor::new(config)
    }

    /// Rule names; `counts[i]` of every call counts replacements made by rule `i`.
    pub fn rule_names(&self) -> &[String] {
        &self.names
    }

    /// True when some rule asks for "hash" but no key is configured, so it masks instead.
    pub fn hash_fallback(&self) -> bool {
        self.hash_fallback
    }

    /// Redacts free text (message, stack, a log line); borrowed when nothing matched.
    pub fn redact_text<'a>(&self, text: &'a str, counts: &mut [u64]) -> Cow<'a, str> {
        // Ids are proven clean outright, and would only crowd the memory of repeated values.
        if self.prefilter.proven_clean(text) {
            return Cow::Borrowed(text);
        }
        let key = memo::Key::of(self.id, text);
        if key.is_some_and(|k| memo::seen_clean(&k)) {
            return Cow::Borrowed(text);
        }
        let redacted = self.redact_in(text, "", counts).0;
        if let (Some(k), Cow::Borrowed(_)) = (key, &redacted) {
            memo::remember(k);
        }
        redacted
    }

    /// Whether a key name alone makes its value secret (`password`, `apiKey`, `X-Api-Key`).
    pub fn is_secret_key(&self, key: &str) -> bool {
        self.key_action.is_some() && self.keys.kind(key.as_bytes()) == KeyKind::Secret
    }

    /// Keyed pseudonym `[HASH:<column>:<key id>:<hex>]` for a configured column, else None.
    pub fn pseudonymize(&self, column: &str, value: &str) -> Option<String> {
        if !self.pseudonymize.iter().any(|c| c == column) {
            return None;
        }
        if self.is_replacement(value) {
            return Some(value.to_string());
        }
        let mut out = String::with_capacity(48);
        self.renderer.hash(column, value, &mut out);
        Some(out)
    }

    /// Whether `s` is exactly a replacement this redactor writes (a marker or a hash).
    fn is_replacement(&self, s: &str) -> bool {
        self.renderer
            .protected(s)
            .iter()
            .any(|r| r.start == 0 && r.end == s.len())
    }
}

impl crate::decode::Scrub for Redactor {
    fn text<'a>(&self, text: &'a str, counts: &mut [u64]) -> Cow<'a, str> {
        self.redact_text(text, counts)
    }

    fn field(&self, key: &str, raw_value: &str, out: &mut String, counts: &mut [u64]) -> bool {
        self.write_field(key, raw_value, out, counts)
    }

    fn fields(&self, members: &[(&str, &str)], out: &mut String, counts: &mut [u64]) -> usize {
        self.write_fields(members, out, counts)
    }

    fn bytes<'a>(&self, raw: &'a [u8], counts: &mut [u64]) -> Cow<'a, [u8]> {
        self.redact_bytes(raw, counts)
    }

    fn pseudonym(&self, column: &str, value: &str) -> Option<String> {
        self.pseudonymize(column, value)
    }

    fn rule_count(&self) -> usize {
        self.names.len()
    }
}
