//! Which events are audit records: the selection configuration and its row mask.

use arrow_array::{BooleanArray, RecordBatch};
use serde::Deserialize;

use super::canonical::StrCol;
use crate::error::{Error, Result};
use crate::schema::CATEGORY;

/// The category whose events are audit records by default.
pub const AUDIT_CATEGORY: &str = "security.audit_logs";

/// Selects audit records. An event is one when its category is in `categories` or any rule
/// matches it. Example (TOML): `categories = ["security.audit_logs"]` and
/// `rules = [{ column = "service", values = ["iam"] }]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Audit categories; default `["security.audit_logs"]`.
    pub categories: Vec<String>,
    /// Further equality / set-membership rules on string columns; default none.
    pub rules: Vec<AuditRule>,
}

/// Events whose `column` holds one of `values` are audit records.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditRule {
    pub column: String,
    pub values: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            categories: vec![AUDIT_CATEGORY.to_string()],
            rules: Vec::new(),
        }
    }
}

impl AuditConfig {
    /// Parses the configuration from JSON text.
    pub fn from_json(text: &str) -> Result<AuditConfig> {
        sonic_rs::from_str(text).map_err(|e| crate::error::config_json("audit", &e))
    }

    /// The `is_audit` mask of `batch`: true for each audit record.
    pub fn select(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let mut mask = vec![false; batch.num_rows()];
        let rules = std::iter::once((CATEGORY, &self.categories))
            .chain(self.rules.iter().map(|r| (r.column.as_str(), &r.values)));
        for (column, values) in rules {
            if !values.is_empty() {
                mark(batch, column, values, &mut mask)?;
            }
        }
        Ok(BooleanArray::from(mask))
    }
}

fn mark(batch: &RecordBatch, column: &str, values: &[String], mask: &mut [bool]) -> Result<()> {
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| Error::Config(format!("audit.rules: the batch has no column `{column}`")))?;
    let text = StrCol::new(array.as_ref()).ok_or_else(|| {
        Error::Config(format!(
            "audit.rules: column `{column}` is not a string column"
        ))
    })?;
    for (row, selected) in mask.iter_mut().enumerate() {
        *selected |= text.get(row).is_some_and(|v| values.iter().any(|w| w == v));
    }
    Ok(())
}
