//! Kept rows written straight into the batch of their store partition, so a batch needs no
//! second pass that gathers each partition's rows into a batch of its own.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{RecordBatch, UInt32Array};
use arrow_select::concat::concat_batches;
use arrow_select::take::take_record_batch;

use super::builder::BatchBuilder;
use crate::engine::{split_by_partition, PartitionKey, PartitionRuns, MAX_PARTITION_BATCHES};
use crate::error::Result;
use crate::schema::{self, TIMESTAMP};

const NS_PER_HOUR: i64 = 3_600_000_000_000;

/// Where committed rows go: one batch in input order, or one batch per store partition.
pub(crate) enum Sink {
    Whole(BatchBuilder),
    Parts(Parts),
}

impl Sink {
    /// The builder the row of this (redacted) category and timestamp goes to.
    #[inline(always)]
    pub fn builder(&mut self, category: Option<&str>, timestamp: i64) -> &mut BatchBuilder {
        match self {
            Sink::Whole(rows) => rows,
            Sink::Parts(parts) => parts.builder(category, timestamp),
        }
    }
}

/// The partitions of one batch in order of first appearance, each with its rows in input
/// order. Past `MAX_PARTITION_BATCHES` partitions (events scattered over many hours) the
/// remaining rows go to one batch in input order, and the whole is split by runs at the end.
pub(crate) struct Parts {
    parts: Vec<Part>,
    /// Rows expected per partition, for a new partition's first allocation.
    rows_hint: usize,
    scattered: Option<BatchBuilder>,
}

struct Part {
    category: Option<Box<str>>,
    hour: i64,
    rows: BatchBuilder,
    /// The last timestamp written, and whether the rows so far are in timestamp order.
    last: i64,
    in_order: bool,
}

impl Parts {
    pub fn new(rows_hint: usize) -> Parts {
        Parts {
            parts: Vec::new(),
            rows_hint,
            scattered: None,
        }
    }

    #[inline(never)]
    fn builder(&mut self, category: Option<&str>, timestamp: i64) -> &mut BatchBuilder {
        match self.slot(category, timestamp) {
            Some(at) => &mut self.parts[at].rows,
            None => {
                let hint = self.rows_hint;
                self.scattered
                    .get_or_insert_with(|| BatchBuilder::with_capacity(hint))
            }
        }
    }

    /// The index of the row's partition, made if new; none once rows are scattered.
    #[inline]
    fn slot(&mut self, category: Option<&str>, timestamp: i64) -> Option<usize> {
        if self.scattered.is_some() {
            return None;
        }
        let hour = timestamp.div_euclid(NS_PER_HOUR);
        let found = self
            .parts
            .iter()
            .position(|p| p.hour == hour && p.category.as_deref() == category);
        let at = match found {
            Some(at) => at,
            None if self.parts.len() == MAX_PARTITION_BATCHES => return None,
            None => {
                self.parts.push(Part {
                    category: category.map(Box::from),
                    hour,
                    rows: BatchBuilder::with_capacity(self.rows_hint),
                    last: i64::MIN,
                    in_order: true,
                });
                self.parts.len() - 1
            }
        };
        let part = &mut self.parts[at];
        part.in_order &= part.last <= timestamp;
        part.last = timestamp;
        Some(at)
    }

    /// Each partition's batch, rows sorted by timestamp (ties in input order), with its key
    /// and row count.
    pub fn finish(self, observed_ns: i64) -> Result<(PartitionRuns, Vec<RecordBatch>)> {
        let mut keys = PartitionRuns::with_capacity(self.parts.len());
        let mut batches = Vec::with_capacity(self.parts.len());
        for part in self.parts {
            let batch = part.rows.finish(observed_ns)?;
            let batch = if part.in_order {
                batch
            } else {
                by_time(&batch)?
            };
            let key = PartitionKey {
                category: part.category.map(String::from),
                hour: part.hour,
            };
            keys.push((key, batch.num_rows()));
            batches.push(batch);
        }
        match self.scattered {
            None => Ok((keys, batches)),
            Some(rest) => {
                batches.push(rest.finish(observed_ns)?);
                split_by_partition(&concat_batches(&schema::event_schema(), &batches)?)
            }
        }
    }
}

/// The batch with its rows in timestamp order, ties in input order. The string columns keep
/// their data blocks, which hold this partition's bytes alone.
fn by_time(batch: &RecordBatch) -> Result<RecordBatch> {
    let ts = batch
        .column_by_name(TIMESTAMP)
        .expect("the event schema has a timestamp")
        .as_primitive::<TimestampNanosecondType>();
    let mut rows: Vec<u32> = (0..batch.num_rows() as u32).collect();
    rows.sort_by_key(|&row| ts.value(row as usize));
    Ok(take_record_batch(batch, &UInt32Array::from(rows))?)
}
