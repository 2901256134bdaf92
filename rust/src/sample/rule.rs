//! Compiling a policy's rules into predicates and actions, with the checks that name the
//! offending rule and key.

use std::collections::HashSet;

use arrow_schema::DataType;
use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

use super::config::{RuleConfig, SamplePolicy};
use super::hash::Threshold;
use super::predicate::{CmpOp, Op, Predicate, Scalar, NO_LEVEL};
use crate::error::{Error, Result};
use crate::schema::{self, LEVELS};

/// Name of the built-in first rule that keeps audit records.
pub const AUDIT_RULE: &str = "audit (security.*)";
/// Name of the implicit last rule: rows no rule matched are kept.
pub const UNMATCHED_RULE: &str = "unmatched (kept)";
const AUDIT_PREFIX: &str = "security.";

/// What a matching rule does with a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Keep,
    Rate(Threshold),
    /// A threshold per level code; the rule's conditions only admit the listed levels.
    Levels([Threshold; LEVELS.len()]),
    /// Adaptive: `slot` indexes the adaptive state, `key` the schema columns of the key.
    Adaptive {
        slot: usize,
        target: f64,
        key: Vec<usize>,
    },
}

/// A rule ready to run.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub conditions: Vec<Predicate>,
    pub action: Action,
}

/// Compiles every rule of the policy, the built-in audit rule first.
pub fn compile(policy: &SamplePolicy) -> Result<Vec<Rule>> {
    check_adaptive(policy)?;
    let configs = policy.effective_rules()?;
    let mut rules = vec![audit_rule()];
    let mut names = HashSet::new();
    let mut slots = 0;
    for (n, config) in configs.iter().enumerate() {
        let err = |msg: String| Error::Config(format!("sampling rule '{}': {msg}", config.name));
        if config.name.is_empty() {
            return Err(Error::Config(format!(
                "sampling rule #{}: name is empty",
                n + 1
            )));
        }
        if [AUDIT_RULE, UNMATCHED_RULE].contains(&config.name.as_str()) {
            return Err(err(
                "the name is a built-in rule's, which the summary counts apart".into(),
            ));
        }
        if !names.insert(config.name.as_str()) {
            return Err(err("another rule has the same name".into()));
        }
        check_reachable(config, &configs[..n]).map_err(err)?;
        let rule = compile_rule(config, &mut slots).map_err(err)?;
        check_not_audit(config, &rule).map_err(err)?;
        rules.push(rule);
    }
    Ok(rules)
}

fn check_adaptive(policy: &SamplePolicy) -> Result<()> {
    let a = &policy.adaptive;
    if !(a.window_secs.is_finite() && a.window_secs > 0.0) {
        return Err(Error::Config(format!(
            "sampling adaptive.window_secs = {} must be a positive number of seconds",
            a.window_secs
        )));
    }
    if !(a.smoothing > 0.0 && a.smoothing <= 1.0) {
        return Err(Error::Config(format!(
            "sampling adaptive.smoothing = {} must lie in (0, 1]",
            a.smoothing
        )));
    }
    Ok(())
}

fn audit_rule() -> Rule {
    let op = Op::Prefix(vec![AUDIT_PREFIX.as_bytes().into()]);
    let index = column_index(schema::CATEGORY).expect("category is a schema column");
    Rule {
        name: AUDIT_RULE.into(),
        conditions: vec![Predicate::Column { index, op }],
        action: Action::Keep,
    }
}

/// A rule after a catch-all, or with the same conditions as an earlier one, never matches.
fn check_reachable(config: &RuleConfig, earlier: &[RuleConfig]) -> std::result::Result<(), String> {
    // Rules with level_rates admit only their listed levels, so they shadow nothing whole.
    for prev in earlier.iter().filter(|p| p.level_rates.is_none()) {
        if prev.conditions.is_empty() {
            return Err(format!(
                "can never match: rule '{}' before it has no conditions and matches every event",
                prev.name
            ));
        }
        if prev.conditions == config.conditions {
            return Err(format!(
                "can never match: rule '{}' before it has the same conditions",
                prev.name
            ));
        }
    }
    Ok(())
}

/// Audit records are never sampled: a rule that only matches them must keep them.
fn check_not_audit(config: &RuleConfig, rule: &Rule) -> std::result::Result<(), String> {
    if rule.action == Action::Keep {
        return Ok(());
    }
    let only_audit = rule.conditions.iter().any(|p| match p {
        Predicate::Column { index, op } if Some(*index) == column_index(schema::CATEGORY) => {
            op_only_audit(op)
        }
        _ => false,
    });
    match only_audit {
        true => Err(format!(
            "samples audit records (category {AUDIT_PREFIX}*), which are never sampled; \
             remove the rule or set keep = true (conditions: {:?})",
            config.conditions.keys().collect::<Vec<_>>()
        )),
        false => Ok(()),
    }
}

fn op_only_audit(op: &Op) -> bool {
    let audit = |b: &[u8]| b.starts_with(AUDIT_PREFIX.as_bytes());
    match op {
        Op::In(values) => values
            .iter()
            .all(|v| matches!(v, Scalar::Str(s) if audit(s))),
        Op::Prefix(prefixes) => prefixes.iter().all(|p| audit(p)),
        _ => false,
    }
}

fn compile_rule(config: &RuleConfig, slots: &mut usize) -> std::result::Result<Rule, String> {
    let mut conditions = Vec::new();
    for (column, value) in &config.conditions {
        compile_condition(column, value, &mut conditions)?;
    }
    let action = compile_action(config, slots, &mut conditions)?;
    Ok(Rule {
        name: config.name.clone(),
        conditions,
        action,
    })
}

fn compile_action(
    config: &RuleConfig,
    slots: &mut usize,
    conditions: &mut Vec<Predicate>,
) -> std::result::Result<Action, String> {
    let set: Vec<&str> = [
        ("keep", config.keep.is_some()),
        ("rate", config.rate.is_some()),
        ("level_rates", config.level_rates.is_some()),
        ("target_per_sec", config.target_per_sec.is_some()),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| *name)
    .collect();
    if set.len() != 1 {
        return Err(format!(
            "must set exactly one of keep, rate, level_rates, target_per_sec (it sets {})",
            if set.is_empty() {
                "none".to_string()
            } else {
                set.join(" and ")
            }
        ));
    }
    if !config.key.is_empty() && config.target_per_sec.is_none() {
        return Err("key is only used with target_per_sec".into());
    }
    match set[0] {
        "keep" if config.keep == Some(true) => Ok(Action::Keep),
        "keep" => Err("keep = false is not an action; use rate = 0 to drop events".into()),
        "rate" => Ok(Action::Rate(Threshold::from_probability(check_rate(
            "rate",
            config.rate,
        )?))),
        "level_rates" => level_action(config, conditions),
        _ => adaptive_action(config, slots),
    }
}

fn check_rate(what: &str, rate: Option<f64>) -> std::result::Result<f64, String> {
    match rate {
        Some(p) if (0.0..=1.0).contains(&p) => Ok(p),
        Some(p) => Err(format!("{what} {p} is outside [0, 1]")),
        None => Err(format!("{what} is missing")),
    }
}

fn level_action(
    config: &RuleConfig,
    conditions: &mut Vec<Predicate>,
) -> std::result::Result<Action, String> {
    let rates = config.level_rates.as_ref().expect("level_rates is set");
    let mut thresholds = [Threshold::ALWAYS; LEVELS.len()];
    let mut mask = 0u8;
    for (level, rate) in rates {
        let code = level_code(level)?;
        let p = check_rate(&format!("level_rates.{level}"), Some(*rate))?;
        thresholds[code as usize] = Threshold::from_probability(p);
        mask |= 1 << code;
    }
    if mask == 0 {
        return Err("level_rates is empty".into());
    }
    conditions.push(Predicate::Level(mask));
    Ok(Action::Levels(thresholds))
}

fn adaptive_action(config: &RuleConfig, slots: &mut usize) -> std::result::Result<Action, String> {
    let target = config.target_per_sec.expect("target_per_sec is set");
    if !(target.is_finite() && target > 0.0) {
        return Err(format!(
            "target_per_sec {target} must be a positive number of events"
        ));
    }
    let mut key = Vec::new();
    for column in &config.key {
        match column_index(column) {
            Some(i) if is_key_type(i) => key.push(i),
            Some(_) => {
                return Err(format!(
                    "key column '{column}' is not a string column or level"
                ))
            }
            None => return Err(unknown_column(column)),
        }
    }
    *slots += 1;
    Ok(Action::Adaptive {
        slot: *slots - 1,
        target,
        key,
    })
}

fn is_key_type(index: usize) -> bool {
    let schema = schema::event_schema();
    let field = schema.field(index);
    field.name() == schema::LEVEL || field.data_type() == &DataType::Utf8View
}

/// Index of a column in the event schema.
pub fn column_index(name: &str) -> Option<usize> {
    schema::event_schema().index_of(name).ok()
}

fn unknown_column(column: &str) -> String {
    format!(
        "unknown column '{column}' (use a column of the event schema, or fields.<key> for a \
         key inside fields)"
    )
}

fn level_code(name: &str) -> std::result::Result<u8, String> {
    LEVELS
        .iter()
        .position(|l| *l == name)
        .map(|c| c as u8)
        .ok_or_else(|| format!("unknown level '{name}' (levels: {})", LEVELS.join(", ")))
}

/// The kind of value a condition's column holds.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Level,
    Str,
    Num,
    /// A key inside `fields`: any JSON scalar.
    Any,
}

fn compile_condition(
    column: &str,
    value: &Value,
    out: &mut Vec<Predicate>,
) -> std::result::Result<(), String> {
    let target = Target::resolve(column)?;
    for op in parse_ops(column, value, target.kind())? {
        out.push(target.predicate(op)?);
    }
    Ok(())
}

/// Where a condition looks.
enum Target {
    Level,
    Column(usize, Kind),
    Field(Vec<String>, String),
}

impl Target {
    fn resolve(column: &str) -> std::result::Result<Target, String> {
        if let Some(key) = column.strip_prefix("fields.") {
            if key.is_empty() || key.split('.').any(str::is_empty) {
                return Err(format!("'{column}' is not a key path (write fields.a.b)"));
            }
            return Ok(Target::Field(
                key.split('.').map(String::from).collect(),
                key.into(),
            ));
        }
        let index = column_index(column).ok_or_else(|| unknown_column(column))?;
        let kind = match schema::event_schema().field(index).data_type() {
            _ if column == schema::LEVEL => return Ok(Target::Level),
            DataType::Utf8View => Kind::Str,
            _ => Kind::Num,
        };
        Ok(Target::Column(index, kind))
    }

    fn kind(&self) -> Kind {
        match self {
            Target::Level => Kind::Level,
            Target::Column(_, kind) => *kind,
            Target::Field(..) => Kind::Any,
        }
    }

    fn predicate(&self, op: Op) -> std::result::Result<Predicate, String> {
        Ok(match self {
            Target::Level => Predicate::Level(level_mask(&op)?),
            Target::Column(index, _) => Predicate::Column { index: *index, op },
            Target::Field(path, flat) => Predicate::Field {
                path: path.clone(),
                flat: flat.clone(),
                op,
            },
        })
    }
}

/// A level condition as the set of level codes it admits (bit NO_LEVEL: no level).
fn level_mask(op: &Op) -> std::result::Result<u8, String> {
    let code_of = |s: &Scalar| match s {
        Scalar::Num(c) => *c as u8,
        _ => NO_LEVEL,
    };
    let all: u8 = (1 << LEVELS.len()) - 1;
    let mask = match op {
        Op::In(v) => v.iter().fold(0, |m, s| m | 1 << code_of(s)),
        Op::NotIn(v) => all & !v.iter().fold(0, |m, s| m | 1 << code_of(s)),
        Op::Cmp(cmp, bound) => (0..LEVELS.len() as u8)
            .filter(|&c| super::predicate::Op::Cmp(*cmp, *bound).matches_num(c as f64))
            .fold(0, |m, c| m | 1 << c),
        Op::Exists(true) => all,
        Op::Exists(false) => 1 << NO_LEVEL,
        Op::Prefix(_) => return Err("prefix does not apply to level".into()),
    };
    Ok(mask)
}

/// Parses a condition value: a scalar (equality), a list (membership) or a table of operators.
fn parse_ops(column: &str, value: &Value, kind: Kind) -> std::result::Result<Vec<Op>, String> {
    if value.is_array() {
        return Ok(vec![Op::In(scalars(column, value, kind)?)]);
    }
    let Some(ops) = value.as_object() else {
        return Ok(vec![Op::In(vec![scalar(column, value, kind)?])]);
    };
    if ops.is_empty() {
        return Err(format!("'{column}' has an empty table of operators"));
    }
    ops.iter()
        .map(|(name, v)| parse_op(column, name, v, kind))
        .collect()
}

fn parse_op(column: &str, name: &str, v: &Value, kind: Kind) -> std::result::Result<Op, String> {
    let cmp = |op| -> std::result::Result<Op, String> {
        if kind == Kind::Str {
            return Err(format!(
                "{name} needs a numeric column, '{column}' holds strings"
            ));
        }
        match scalar(column, v, kind)? {
            Scalar::Num(x) => Ok(Op::Cmp(op, x)),
            _ => Err(format!("{name} on '{column}' needs a number")),
        }
    };
    match name {
        "eq" => Ok(Op::In(vec![scalar(column, v, kind)?])),
        "ne" => Ok(Op::NotIn(vec![scalar(column, v, kind)?])),
        "in" => Ok(Op::In(scalars(column, v, kind)?)),
        "not_in" => Ok(Op::NotIn(scalars(column, v, kind)?)),
        "gt" => cmp(CmpOp::Gt),
        "ge" => cmp(CmpOp::Ge),
        "lt" => cmp(CmpOp::Lt),
        "le" => cmp(CmpOp::Le),
        "prefix" => prefixes(column, v, kind),
        "exists" => v
            .as_bool()
            .map(Op::Exists)
            .ok_or_else(|| format!("exists on '{column}' needs true or false")),
        other => Err(format!(
            "unknown operator '{other}' on '{column}' (use eq, ne, in, not_in, gt, ge, lt, le, \
             prefix, exists)"
        )),
    }
}

fn prefixes(column: &str, v: &Value, kind: Kind) -> std::result::Result<Op, String> {
    if kind == Kind::Num || kind == Kind::Level {
        return Err(format!(
            "prefix needs a string column, '{column}' is not one"
        ));
    }
    let list = if v.is_array() {
        scalars(column, v, Kind::Str)?
    } else {
        vec![scalar(column, v, Kind::Str)?]
    };
    let bytes = list.into_iter().map(|s| match s {
        Scalar::Str(b) => Ok(b),
        _ => Err(format!("prefix on '{column}' needs strings")),
    });
    Ok(Op::Prefix(bytes.collect::<std::result::Result<_, _>>()?))
}

fn scalars(column: &str, v: &Value, kind: Kind) -> std::result::Result<Vec<Scalar>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("'{column}' needs a list of values"))?;
    if items.is_empty() {
        return Err(format!("'{column}' has an empty list of values"));
    }
    items
        .iter()
        .map(|item| scalar(column, item, kind))
        .collect()
}

/// One value, typed against its column: level names become level codes.
fn scalar(column: &str, v: &Value, kind: Kind) -> std::result::Result<Scalar, String> {
    let value = if let Some(s) = v.as_str() {
        Scalar::Str(s.as_bytes().into())
    } else if let Some(b) = v.as_bool() {
        Scalar::Bool(b)
    } else if let Some(x) = v.as_f64() {
        Scalar::Num(x)
    } else {
        return Err(format!(
            "'{column}' needs a string, number or boolean, got {v}"
        ));
    };
    match (kind, &value) {
        (Kind::Level, Scalar::Str(s)) => {
            Ok(Scalar::Num(level_code(&String::from_utf8_lossy(s))? as f64))
        }
        (Kind::Level, _) => Err(format!(
            "'{column}' needs a level name ({})",
            LEVELS.join(", ")
        )),
        (Kind::Str, Scalar::Str(_)) | (Kind::Num, Scalar::Num(_)) | (Kind::Any, _) => Ok(value),
        (Kind::Str, _) => Err(format!("'{column}' holds strings, got {v}")),
        (Kind::Num, _) => Err(format!("'{column}' is numeric, got {v}")),
    }
}
