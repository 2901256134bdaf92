//! The sampling policy: ordered rules (first match wins), a seed and adaptive settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sonic_rs::{json, JsonContainerTrait, Value};

use crate::error::{Error, Result};

/// A sampling policy, deserialized from JSON (the TOML policy file, converted by Python).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplePolicy {
    /// A built-in policy whose rules run after this policy's own; `None` adds none.
    #[serde(default)]
    pub extends: Option<String>,
    /// Seed of the event hash used when a row has no trace id; 0 by default.
    #[serde(default)]
    pub seed: u64,
    /// Windows and smoothing of the adaptive rules.
    #[serde(default)]
    pub adaptive: AdaptiveSettings,
    /// Ordered rules: the first whose conditions all hold decides the row.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// Settings shared by every adaptive rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveSettings {
    /// Length of one window in seconds; rates are recomputed when a window closes (1.0).
    pub window_secs: f64,
    /// Weight of the newest window in the moving average, in (0, 1] (0.5).
    pub smoothing: f64,
}

impl Default for AdaptiveSettings {
    fn default() -> Self {
        AdaptiveSettings {
            window_secs: 1.0,
            smoothing: 0.5,
        }
    }
}

/// One rule: conditions (all must hold) and exactly one action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Names the rule in errors and in the ingest summary.
    pub name: String,
    /// Column (or `fields.<key>`) to condition: a value, a list of values, or operators.
    #[serde(default, rename = "where")]
    pub conditions: BTreeMap<String, Value>,
    /// `true`: always keep (sample_rate 1).
    #[serde(default)]
    pub keep: Option<bool>,
    /// Keep with this probability in [0, 1].
    #[serde(default)]
    pub rate: Option<f64>,
    /// A probability per level name; rows of other levels do not match the rule.
    #[serde(default)]
    pub level_rates: Option<BTreeMap<String, f64>>,
    /// Adaptive: events per second to keep for each value of `key`.
    #[serde(default)]
    pub target_per_sec: Option<f64>,
    /// Columns whose values form the adaptive key; empty means one key for the rule.
    #[serde(default)]
    pub key: Vec<String>,
}

/// Name of the built-in policy.
pub const COST_OPTIMIZED: &str = "cost-optimized";

impl SamplePolicy {
    /// The built-in `cost-optimized` policy (see docs/sampling.md).
    pub fn cost_optimized() -> SamplePolicy {
        SamplePolicy {
            rules: cost_optimized_rules(),
            ..SamplePolicy::default()
        }
    }

    /// Parses and validates a policy from JSON.
    pub fn from_json(text: &str) -> Result<SamplePolicy> {
        let policy: SamplePolicy = sonic_rs::from_str(text)
            .map_err(|e| crate::error::config_json("sampling policy", &e))?;
        super::rule::compile(&policy)?;
        Ok(policy)
    }

    /// The rules that run, in order: this policy's own, then those of `extends`.
    pub fn effective_rules(&self) -> Result<Vec<RuleConfig>> {
        let mut rules = self.rules.clone();
        match self.extends.as_deref() {
            None => {}
            Some(COST_OPTIMIZED) => rules.extend(cost_optimized_rules()),
            Some(other) => {
                return Err(Error::Config(format!(
                    "sampling policy: extends = {other:?} is not a built-in policy \
                     (known: {COST_OPTIMIZED:?})"
                )))
            }
        }
        Ok(rules)
    }
}

fn rule(name: &str, conditions: Value) -> RuleConfig {
    let conditions = conditions
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
        .unwrap_or_default();
    RuleConfig {
        name: name.into(),
        conditions,
        ..RuleConfig::default()
    }
}

fn keep(name: &str, conditions: Value) -> RuleConfig {
    RuleConfig {
        keep: Some(true),
        ..rule(name, conditions)
    }
}

/// Threshold above which `revenue` makes an event always kept in `cost-optimized`.
pub const REVENUE_THRESHOLD: f64 = 100.0;

fn cost_optimized_rules() -> Vec<RuleConfig> {
    let levels = [
        ("debug", 0.01),
        ("info", 0.1),
        ("warn", 1.0),
        ("error", 1.0),
        ("critical", 1.0),
    ];
    vec![
        keep("severe", json!({"level": {"ge": "warn"}})),
        keep("enterprise", json!({"user_tier": "enterprise"})),
        keep("revenue", json!({"revenue": {"gt": REVENUE_THRESHOLD}})),
        keep(
            "spans-and-metrics",
            json!({"category": {"prefix": ["trace.", "metric"]}}),
        ),
        RuleConfig {
            level_rates: Some(levels.iter().map(|(l, p)| (l.to_string(), *p)).collect()),
            ..rule("log-levels", json!({}))
        },
    ]
}
