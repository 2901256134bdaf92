//! The per-batch path in one call: decode (with redaction), then sampling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::DataType;
use arrow_select::take::take_record_batch;

use crate::decode::{DecodeOutput, Decoder, NoScrub, Scrub};
use crate::error::Result;
use crate::sample::{self, Sampler};
use crate::schema::{CATEGORY, TIMESTAMP};

/// What one batch produced, with the counters the summary needs.
pub struct Output {
    pub events: RecordBatch,
    pub dead_letters: RecordBatch,
    pub lines: u64,
    pub blank_lines: u64,
    pub unparsed: u64,
    /// Redactions per redaction rule.
    pub redactions: Vec<u64>,
    /// Events sampled out per sampling rule (empty without a sampler).
    pub sampled_out: Vec<u64>,
    /// Events whose trace id could not serve as randomness.
    pub fallback_hashes: u64,
    /// `events` split by store partition (see `split_by_partition`).
    pub partitions: Vec<RecordBatch>,
}

/// The stages of the core, built once and shared by the threads that feed it.
pub struct Engine {
    decoder: Decoder,
    scrub: Box<dyn Scrub + Send>,
    sampler: Option<Mutex<Sampler>>,
}

impl Engine {
    pub fn new(
        decoder: Decoder,
        scrub: Option<Box<dyn Scrub + Send>>,
        sampler: Option<Sampler>,
    ) -> Engine {
        Engine {
            decoder,
            scrub: scrub.unwrap_or_else(|| Box::new(NoScrub)),
            sampler: sampler.map(Mutex::new),
        }
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    pub fn scrub(&self) -> &dyn Scrub {
        self.scrub.as_ref()
    }

    /// Names of the sampling rules, in the order of `Output::sampled_out`.
    pub fn sampling_rules(&self) -> Vec<String> {
        self.sampler
            .as_ref()
            .map_or_else(Vec::new, |s| lock(s).rule_names())
    }

    /// Decodes, redacts and samples one run of whole lines.
    pub fn process(
        &self,
        data: &[u8],
        source: &str,
        first_line: u64,
        observed_ns: i64,
    ) -> Result<Output> {
        let decoded =
            self.decoder
                .decode(data, self.scrub.as_ref(), source, first_line, observed_ns)?;
        let DecodeOutput {
            events,
            dead_letters,
            lines,
            blank_lines,
            unparsed,
            redactions,
        } = decoded;
        let mut out = Output {
            events,
            dead_letters,
            lines,
            blank_lines,
            unparsed,
            redactions,
            sampled_out: Vec::new(),
            fallback_hashes: 0,
            partitions: Vec::new(),
        };
        if let Some(sampler) = &self.sampler {
            let decisions = lock(sampler).decide(&out.events, observed_ns)?;
            out.events = sample::apply(&out.events, &decisions)?;
            out.sampled_out = decisions.dropped_by_rule;
            out.fallback_hashes = decisions.fallback_hashes;
        }
        out.partitions = split_by_partition(&out.events)?;
        Ok(out)
    }
}

/// The batch split by store partition (category, UTC date and hour), each part with its own
/// compact string buffers. A part buffered for a later file then holds only its own bytes,
/// not the whole input chunk its rows came from, nor the builders' spare capacity.
pub fn split_by_partition(batch: &RecordBatch) -> Result<Vec<RecordBatch>> {
    const NS_PER_HOUR: i64 = 3_600_000_000_000;
    let category = batch
        .column_by_name(CATEGORY)
        .map(|c| c.as_string_view().clone());
    let ts = batch
        .column_by_name(TIMESTAMP)
        .map(|c| c.as_primitive::<TimestampNanosecondType>().clone());
    let (Some(category), Some(ts)) = (category, ts) else {
        return Ok(vec![compact(batch.clone())?]);
    };
    let mut groups: HashMap<(Option<&str>, i64), Vec<u32>> = HashMap::new();
    for row in 0..batch.num_rows() {
        let key = (
            category.is_valid(row).then(|| category.value(row)),
            ts.value(row).div_euclid(NS_PER_HOUR),
        );
        groups.entry(key).or_default().push(row as u32);
    }
    if groups.len() <= 1 {
        return Ok(vec![compact(batch.clone())?]);
    }
    let mut parts: Vec<(usize, RecordBatch)> = Vec::with_capacity(groups.len());
    for rows in groups.into_values() {
        let first = rows[0] as usize;
        let part = take_record_batch(batch, &UInt32Array::from(rows))?;
        parts.push((first, compact(part)?));
    }
    // Input order of first appearance, so the split is deterministic.
    parts.sort_by_key(|(first, _)| *first);
    Ok(parts.into_iter().map(|(_, b)| b).collect())
}

fn compact(batch: RecordBatch) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View => Arc::new(c.as_string_view().gc()) as ArrayRef,
            _ => c.clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

fn lock(sampler: &Mutex<Sampler>) -> std::sync::MutexGuard<'_, Sampler> {
    // A panic while deciding leaves adaptive state that is still usable.
    sampler.lock().unwrap_or_else(|e| e.into_inner())
}
