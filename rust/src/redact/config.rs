//! Redaction configuration as Python sends it (JSON, every field defaulted).

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The redaction settings; `RedactConfig::default()` is the built-in rule set with masking.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactConfig {
    /// Run the built-in rule set (default true).
    pub builtin: bool,
    /// Opt-in built-in kinds, off by default: "ipv4", "ipv6", "phone".
    pub optional: Vec<String>,
    /// Built-in rule names to switch off (e.g. "email").
    pub disable: Vec<String>,
    /// Custom value rules, run after the built-in ones.
    pub rules: Vec<CustomRule>,
    /// Extra key names whose whole value is secret, matched like the built-in key list.
    pub keys: Vec<String>,
    /// Per-rule action override: "mask" | "hash" | "partial" | "drop".
    pub actions: HashMap<String, String>,
    /// Replacement for masked spans; `{rule}` becomes the rule name.
    pub marker: String,
    /// HMAC-SHA-256 key for "hash" actions and pseudonyms; None makes "hash" fall back to mask.
    pub hash_key: Option<String>,
    /// Short id of the key written into every hash; empty derives one from the key.
    pub hash_key_id: String,
    /// Columns pseudonymized by keyed hash: "user_id", "session_id".
    pub pseudonymize: Vec<String>,
}

impl Default for RedactConfig {
    fn default() -> Self {
        RedactConfig {
            builtin: true,
            optional: Vec::new(),
            disable: Vec::new(),
            rules: Vec::new(),
            keys: Vec::new(),
            actions: HashMap::new(),
            marker: "[REDACTED:{rule}]".to_string(),
            hash_key: None,
            hash_key_id: String::new(),
            pseudonymize: Vec::new(),
        }
    }
}

/// A user-defined value rule: a linear-time regex plus optional evidence.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomRule {
    /// Rule name, used in markers, counters and `actions`.
    pub name: String,
    /// Regex (Rust `regex` syntax, no backtracking).
    pub pattern: String,
    /// Capture group to replace; 0 (default) replaces the whole match.
    pub group: usize,
    /// Default action of this rule; None means "mask".
    pub action: Option<String>,
    /// If not empty, a match counts only with one of these words nearby (case-insensitive).
    pub keywords: Vec<String>,
    /// Optional validator of the match: "luhn", "card" or "ssn".
    pub validator: Option<String>,
}

impl CustomRule {
    /// Refuses a pattern that can match the empty string: it would match between every byte.
    pub fn check_pattern(&self) -> Result<()> {
        let name = &self.name;
        let hir = regex_automata::util::syntax::parse(&self.pattern)
            .map_err(|e| Error::Config(format!("redaction rule {name:?}: invalid pattern: {e}")))?;
        if hir.properties().minimum_len() == Some(0) {
            return Err(Error::Config(format!(
                "redaction rule {name:?}: pattern {:?} can match the empty string",
                self.pattern
            )));
        }
        Ok(())
    }
}

/// What happens to a matched secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace by the marker.
    Mask,
    /// Replace by a keyed hash `[HASH:<rule>:<key id>:<16 hex>]`.
    Hash,
    /// Keep the last four digits of a value holding 12 or more digits; mask otherwise.
    Partial,
    /// Remove the span from text, or the member/element holding it from `fields`.
    Drop,
}

impl Action {
    /// Parses an action name; the error names the rule it was given for.
    pub fn parse(text: &str, rule: &str) -> Result<Action> {
        match text {
            "mask" => Ok(Action::Mask),
            "hash" => Ok(Action::Hash),
            "partial" => Ok(Action::Partial),
            "drop" => Ok(Action::Drop),
            other => Err(Error::Config(format!(
                "redaction rule {rule:?}: unknown action {other:?} (use mask, hash, partial or drop)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CustomRule;

    fn rule(pattern: &str) -> CustomRule {
        CustomRule {
            name: "r".to_string(),
            pattern: pattern.to_string(),
            ..CustomRule::default()
        }
    }

    #[test]
    fn empty_matching_patterns_are_refused() {
        for p in ["", "a*", "(?m)^", "\\b", "x?|y", "(abc)?"] {
            let err = rule(p).check_pattern().unwrap_err().to_string();
            assert!(
                err.contains("\"r\"") && err.contains("empty string"),
                "{p}: {err}"
            );
        }
        for p in ["a+", "secret-[0-9]{4}", "\\bkey\\b"] {
            assert!(rule(p).check_pattern().is_ok(), "{p}");
        }
    }
}
