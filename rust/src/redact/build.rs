//! Building a `Redactor` from its configuration: validation and regex compilation.

use std::collections::HashSet;

use regex::{Regex, RegexBuilder};

use super::action::Renderer;
use super::config::{Action, CustomRule, RedactConfig};
use super::keys::{key_trigger, KeyMatcher};
use super::prefilter::{bit, Prefilter};
use super::rules::{
    BuiltinRule, Trigger, ASSIGN_RULE, BUILTIN, OPTIONAL, SECRET_KEY_RULE, USER_PASSWORD_RULE,
};
use super::validate::Validator;
use super::{Pattern, Redactor, Rule, REGEX_SIZE_LIMIT};
use crate::error::{Error, Result};

/// Columns that may be pseudonymized.
const PSEUDONYM_COLUMNS: &[&str] = &["user_id", "session_id"];

pub fn build(config: RedactConfig) -> Result<Redactor> {
    check_names(&config)?;
    let mut rules = Vec::new();
    for spec in BUILTIN.iter().filter(|s| enabled(s, &config)) {
        rules.push(builtin_rule(spec, &config)?);
    }
    for custom in &config.rules {
        rules.push(custom_rule(custom, &config)?);
    }
    let custom_patterns: Vec<&str> = config.rules.iter().map(|c| c.pattern.as_str()).collect();
    let prefilter = Prefilter::new(&triggers(&config), &custom_patterns)?;
    assemble(config, rules, prefilter)
}

/// The prefilter trigger of each rule, in rule order.
pub fn triggers(config: &RedactConfig) -> Vec<Trigger> {
    let builtin = BUILTIN.iter().filter(|s| enabled(s, config));
    let builtin = builtin.map(|spec| builtin_trigger(spec, config));
    builtin
        .chain(config.rules.iter().map(|_| Trigger::Always))
        .collect()
}

fn assemble(config: RedactConfig, rules: Vec<Rule>, prefilter: Prefilter) -> Result<Redactor> {
    let key_action = side_rule_action(SECRET_KEY_RULE, &config)?;
    let user_action = side_rule_action(USER_PASSWORD_RULE, &config)?;
    let renderer = Renderer::new(
        &config.marker,
        config.hash_key.as_deref(),
        &config.hash_key_id,
    );
    check_pseudonymize(&config, renderer.keyed())?;
    let wants_hash = rules
        .iter()
        .map(|r| Some(r.action))
        .chain([key_action, user_action]);
    let hash_fallback =
        !renderer.keyed() && wants_hash.into_iter().any(|a| a == Some(Action::Hash));
    let mut names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
    names.extend([SECRET_KEY_RULE.to_string(), USER_PASSWORD_RULE.to_string()]);
    let keyword_mask = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.patterns.iter().any(|p| !p.keywords.is_empty()))
        .fold(0, |m, (i, _)| m | bit(i));
    Ok(Redactor {
        assign_rule: rules.iter().position(|r| r.name == ASSIGN_RULE),
        rules,
        names,
        prefilter,
        keyword_mask,
        keys: KeyMatcher::new(&config.keys),
        key_action,
        user_action,
        renderer,
        pseudonymize: config.pseudonymize,
        hash_fallback,
        id: super::memo::next_id(),
    })
}

/// A rule's trigger; `secret_param` also wakes on the configured key names (it classifies names).
fn builtin_trigger(spec: &BuiltinRule, config: &RedactConfig) -> Trigger {
    match (spec.name == ASSIGN_RULE, (spec.trigger)()) {
        (true, Trigger::Literals(mut words)) => {
            words.extend(config.keys.iter().filter_map(|k| key_trigger(k)));
            Trigger::Literals(words)
        }
        (_, trigger) => trigger,
    }
}

fn enabled(spec: &BuiltinRule, config: &RedactConfig) -> bool {
    let opted_in = !spec.optional || config.optional.iter().any(|o| o == spec.name);
    config.builtin && opted_in && !config.disable.iter().any(|d| d == spec.name)
}

/// Every name the configuration mentions must exist, so typos fail loudly.
fn check_names(config: &RedactConfig) -> Result<()> {
    for o in &config.optional {
        if !OPTIONAL.contains(&o.as_str()) {
            return Err(Error::Config(format!(
                "redaction: unknown optional rule {o:?} (use {})",
                OPTIONAL.join(", ")
            )));
        }
    }
    let builtin: Vec<&str> = BUILTIN
        .iter()
        .map(|r| r.name)
        .chain([SECRET_KEY_RULE, USER_PASSWORD_RULE])
        .collect();
    for d in &config.disable {
        if !builtin.contains(&d.as_str()) {
            return Err(Error::Config(format!(
                "redaction: cannot disable unknown rule {d:?}"
            )));
        }
    }
    let mut seen: HashSet<&str> = builtin.iter().copied().collect();
    for r in &config.rules {
        if r.name.is_empty() || !seen.insert(r.name.as_str()) {
            return Err(Error::Config(format!(
                "redaction rule {:?}: name is empty or already used",
                r.name
            )));
        }
    }
    for name in config.actions.keys() {
        if !seen.contains(name.as_str()) {
            return Err(Error::Config(format!(
                "redaction: action given for unknown rule {name:?}"
            )));
        }
    }
    Ok(())
}

fn action_for(name: &str, default: Action, config: &RedactConfig) -> Result<Action> {
    match config.actions.get(name) {
        Some(a) => Action::parse(a, name),
        None => Ok(default),
    }
}

fn side_rule_action(name: &str, config: &RedactConfig) -> Result<Option<Action>> {
    if !config.builtin || config.disable.iter().any(|d| d == name) {
        return Ok(None);
    }
    action_for(name, Action::Mask, config).map(Some)
}

fn builtin_rule(spec: &BuiltinRule, config: &RedactConfig) -> Result<Rule> {
    let mut patterns = Vec::new();
    for p in spec.patterns {
        patterns.push(Pattern {
            regex: compile(spec.name, p.regex)?,
            group: p.group,
            validator: p.validator,
            keywords: p.keywords.iter().map(|k| k.to_string()).collect(),
            needs: p.needs,
        });
    }
    let action = action_for(spec.name, spec.action, config)?;
    Ok(Rule {
        name: spec.name.to_string(),
        action,
        patterns,
    })
}

fn custom_rule(custom: &CustomRule, config: &RedactConfig) -> Result<Rule> {
    let name = &custom.name;
    custom.check_pattern()?;
    let regex = compile(name, &custom.pattern)?;
    if custom.group >= regex.captures_len() {
        return Err(Error::Config(format!(
            "redaction rule {name:?}: group {} does not exist in the pattern",
            custom.group
        )));
    }
    let validator = match custom.validator.as_deref() {
        None => Validator::None,
        Some(v) => Validator::parse(v).ok_or_else(|| {
            Error::Config(format!(
                "redaction rule {name:?}: unknown validator {v:?} (use luhn, card or ssn)"
            ))
        })?,
    };
    let default = match custom.action.as_deref() {
        Some(a) => Action::parse(a, name)?,
        None => Action::Mask,
    };
    let keywords = custom
        .keywords
        .iter()
        .map(|k| k.to_ascii_lowercase())
        .collect();
    let pattern = Pattern {
        regex,
        group: custom.group,
        validator,
        keywords,
        needs: &[],
    };
    let action = action_for(name, default, config)?;
    Ok(Rule {
        name: name.clone(),
        action,
        patterns: vec![pattern],
    })
}

/// Compiles with bounded size; the `regex` crate never backtracks, so matching is linear.
fn compile(rule: &str, pattern: &str) -> Result<Regex> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT * 2)
        .build()
        .map_err(|e| Error::Config(format!("redaction rule {rule:?}: invalid pattern: {e}")))
}

fn check_pseudonymize(config: &RedactConfig, keyed: bool) -> Result<()> {
    for c in &config.pseudonymize {
        if !PSEUDONYM_COLUMNS.contains(&c.as_str()) {
            return Err(Error::Config(format!(
                "redaction: cannot pseudonymize {c:?} (use user_id or session_id)"
            )));
        }
    }
    if !config.pseudonymize.is_empty() && !keyed {
        return Err(Error::Config(
            "redaction: pseudonymize needs hash_key (or QLINGEST_HASH_KEY)".to_string(),
        ));
    }
    Ok(())
}
