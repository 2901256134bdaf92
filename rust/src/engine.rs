//! The per-batch path in one call: decode (with redaction), then sampling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{
    Array, ArrayRef, RecordBatch, StringViewArray, TimestampNanosecondArray, UInt32Array,
};
use arrow_schema::DataType;
use arrow_select::take::take_record_batch;

use crate::decode::{DecodeOutput, Decoder, NoScrub, Scrub};
use crate::error::Result;
use crate::sample::{self, Sampler};
use crate::schema::{CATEGORY, TIMESTAMP};

/// What one batch produced, with the counters the summary needs.
pub struct Output {
    /// Decoding's output, its `events` sampled.
    pub decoded: DecodeOutput,
    /// Events sampled out per sampling rule (empty without a sampler).
    pub sampled_out: Vec<u64>,
    /// Events whose trace id could not serve as randomness.
    pub fallback_hashes: u64,
    /// The sampled events split by store partition (see `split_by_partition`).
    pub partitions: Vec<RecordBatch>,
    /// The store partition of each batch of `partitions`.
    pub partition_keys: Vec<PartitionKey>,
}

/// A store partition: category (null when the events have none) and UTC hour since the epoch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub category: Option<String>,
    pub hour: i64,
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
        let mut decoded =
            self.decoder
                .decode(data, self.scrub.as_ref(), source, first_line, observed_ns)?;
        let (mut sampled_out, mut fallback_hashes) = (Vec::new(), 0);
        if let Some(sampler) = &self.sampler {
            let decisions = lock(sampler).decide(&decoded.events, observed_ns)?;
            decoded.events = sample::apply(&decoded.events, &decisions)?;
            sampled_out = decisions.dropped_by_rule;
            fallback_hashes = decisions.fallback_hashes;
        }
        let (partition_keys, partitions) = split_by_partition(&decoded.events)?.into_iter().unzip();
        Ok(Output {
            decoded,
            sampled_out,
            fallback_hashes,
            partitions,
            partition_keys,
        })
    }
}

/// The batch split by store partition (category, UTC date and hour), in order of first
/// appearance, rows sorted by timestamp within each part (ties keep their input order), each
/// part with its own compact string buffers. A part buffered for a later file then holds only
/// its own bytes, not the whole input chunk its rows came from, nor the builders' spare
/// capacity; and a file made of parts that follow each other in time needs no sort.
pub fn split_by_partition(batch: &RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>> {
    let category = batch.column_by_name(CATEGORY).map(|c| c.as_string_view());
    let ts = batch
        .column_by_name(TIMESTAMP)
        .map(|c| c.as_primitive::<TimestampNanosecondType>());
    let (Some(category), Some(ts)) = (category, ts) else {
        let key = PartitionKey {
            category: None,
            hour: 0,
        };
        return Ok(vec![(key, compact(batch.clone())?)]);
    };
    let mut groups = partition_rows(category, ts);
    let in_order = |rows: &[u32]| {
        rows.windows(2)
            .all(|w| ts.value(w[0] as usize) <= ts.value(w[1] as usize))
    };
    let whole = groups.len() == 1 && in_order(&groups[0].1);
    if whole {
        let (key, _) = groups.pop().expect("one group");
        return Ok(vec![(key, compact(batch.clone())?)]);
    }
    groups
        .into_iter()
        .map(|(key, mut rows)| {
            if !in_order(&rows) {
                rows.sort_by_key(|&row| ts.value(row as usize));
            }
            let part = take_record_batch(batch, &UInt32Array::from(rows))?;
            Ok((key, compact(part)?))
        })
        .collect()
}

/// Row indices per (category, UTC hour), in order of first appearance.
fn partition_rows(
    category: &StringViewArray,
    ts: &TimestampNanosecondArray,
) -> Vec<(PartitionKey, Vec<u32>)> {
    const NS_PER_HOUR: i64 = 3_600_000_000_000;
    let mut index: HashMap<(Option<&str>, i64), usize> = HashMap::new();
    let mut groups: Vec<(PartitionKey, Vec<u32>)> = Vec::new();
    for row in 0..ts.len() {
        let name = category.is_valid(row).then(|| category.value(row));
        let hour = ts.value(row).div_euclid(NS_PER_HOUR);
        let slot = *index.entry((name, hour)).or_insert_with(|| {
            let category = name.map(str::to_string);
            groups.push((PartitionKey { category, hour }, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(row as u32);
    }
    groups
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

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;

    use super::*;
    use crate::decode::DecodeConfig;

    fn messages(batch: &RecordBatch) -> Vec<&str> {
        let column = batch.column_by_name("message").unwrap();
        column.as_string_view().iter().flatten().collect()
    }

    #[test]
    fn batches_split_by_category_and_hour_in_order_of_first_appearance() {
        let engine = Engine::new(Decoder::new(DecodeConfig::default()).unwrap(), None, None);
        let input = br#"{"ts":0,"category":"b","msg":"1"}
{"ts":0,"category":"a","msg":"2"}
{"ts":3600,"category":"b","msg":"3"}
{"ts":1,"category":"b","msg":"4"}"#;
        let out = engine.process(input, "t", 1, 0).unwrap();
        let messages: Vec<Vec<&str>> = out.partitions.iter().map(messages).collect();
        assert_eq!(messages, vec![vec!["1", "4"], vec!["2"], vec!["3"]]);
        let keys: Vec<(Option<&str>, i64)> = out
            .partition_keys
            .iter()
            .map(|k| (k.category.as_deref(), k.hour))
            .collect();
        assert_eq!(keys, vec![(Some("b"), 0), (Some("a"), 0), (Some("b"), 1)]);
    }

    #[test]
    fn rows_of_each_part_are_sorted_by_timestamp_ties_in_input_order() {
        let engine = Engine::new(Decoder::new(DecodeConfig::default()).unwrap(), None, None);
        let input = br#"{"ts":5,"category":"a","msg":"1"}
{"ts":2,"category":"a","msg":"2"}
{"ts":5,"category":"a","msg":"3"}
{"ts":1,"category":"a","msg":"4"}"#;
        let out = engine.process(input, "t", 1, 0).unwrap();
        assert_eq!(out.partitions.len(), 1);
        assert_eq!(messages(&out.partitions[0]), vec!["4", "2", "1", "3"]);
    }
}
