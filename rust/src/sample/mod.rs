//! Sampling: decide which events to keep, and record on each kept event how many it stands
//! for (`sample_rate`), so counts stay correct. See docs/sampling.md.

mod adaptive;
mod config;
mod hash;
mod predicate;
mod rule;
mod sampler;
mod staged;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch};
use arrow_select::filter::filter_record_batch;

pub use config::{AdaptiveSettings, RuleConfig, SamplePolicy, COST_OPTIMIZED, REVENUE_THRESHOLD};
pub use hash::{hash_bytes, trace_randomness, Randomness, Threshold, MAX_ADJUSTED_COUNT};
pub use rule::{AUDIT_RULE, UNMATCHED_RULE};
pub use sampler::{Decision, RowDecider, Sampler, Tally};
pub use staged::StagedEvent;

use crate::error::{Error, Result};
use crate::schema::SAMPLE_RATE;

/// The decisions for one batch, one entry per row.
#[derive(Clone, Debug)]
pub struct Decisions {
    /// Whether each row is kept.
    pub keep: BooleanArray,
    /// The new `sample_rate`: the sender's rate times 1/p of the deciding rule when kept;
    /// the sender's rate unchanged when dropped.
    pub sample_rate: Float64Array,
    /// Index (into `Sampler::rule_names`) of the rule that decided each row.
    pub rule: Vec<u16>,
    /// Rows kept, per rule index.
    pub kept_by_rule: Vec<u64>,
    /// Rows sampled out, per rule index.
    pub dropped_by_rule: Vec<u64>,
    /// Rows whose trace id was present but unusable (all zeros, too short): event hash used.
    pub fallback_hashes: u64,
}

impl Decisions {
    /// Number of rows kept.
    pub fn kept(&self) -> u64 {
        self.kept_by_rule.iter().sum()
    }

    /// Number of rows sampled out.
    pub fn dropped(&self) -> u64 {
        self.dropped_by_rule.iter().sum()
    }
}

/// Applies decisions: replaces the `sample_rate` column and keeps only the kept rows.
pub fn apply(batch: &RecordBatch, d: &Decisions) -> Result<RecordBatch> {
    if d.keep.len() != batch.num_rows() || d.sample_rate.len() != batch.num_rows() {
        return Err(Error::Config(format!(
            "sampling decisions cover {} rows, the batch has {}",
            d.keep.len(),
            batch.num_rows()
        )));
    }
    let index = batch.schema().index_of(SAMPLE_RATE)?;
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[index] = Arc::new(d.sample_rate.clone());
    let with_rates = RecordBatch::try_new(batch.schema(), columns)?;
    Ok(filter_record_batch(&with_rates, &d.keep)?)
}
