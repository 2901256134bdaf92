//! Rows gathered by store partition as they are decoded: each partition (category, UTC hour)
//! gets column builders of its own, so its batch holds only its own bytes and nothing is
//! copied to split a batch afterwards.

use std::cell::RefCell;
use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, RecordBatch, StringViewArray, TimestampNanosecondArray, UInt32Array};
use arrow_select::take::take_record_batch;

use super::builder::BatchBuilder;
use crate::error::Result;
use crate::schema::{CATEGORY, TIMESTAMP};

/// A store partition: category (null when the events have none) and UTC hour since the epoch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub category: Option<String>,
    pub hour: i64,
}

/// Store partitions of consecutive runs of rows, each with its row count.
pub type PartitionRuns = Vec<(PartitionKey, usize)>;

/// Beyond this many partitions in one call, the rows of further partitions share one batch, in
/// runs. A batch costs the same to finish and to hand to Polars however few its rows, and its
/// builders hold memory of their own: events scattered over many hours (a few rows for each
/// partition) are cheaper gathered into one batch.
pub const MAX_PARTITION_BATCHES: usize = 16;

const NS_PER_HOUR: i64 = 3_600_000_000_000;

/// Rows the builders of a call's second and later partitions are first sized for.
const LATER_PARTITION_ROWS: usize = 512;

/// What one call's rows become: one batch in input order, or a batch per store partition.
pub trait Events: Sized {
    /// Whether rows are gathered by partition as they are committed.
    const SPLIT: bool;

    fn finish(parts: Parts, observed_ns: i64) -> Result<Self>;
}

impl Events for RecordBatch {
    const SPLIT: bool = false;

    fn finish(mut parts: Parts, observed_ns: i64) -> Result<RecordBatch> {
        parts.builders.swap_remove(0).finish(observed_ns)
    }
}

/// The rows of one call by store partition, in order of first appearance, each partition's
/// rows in input order. Rows are not sorted by time here: the store sorts each file it writes,
/// which holds rows of many calls.
#[derive(Default)]
pub struct Partitioned {
    /// The partition of each run of rows in `batches`, in order, with its row count.
    pub keys: PartitionRuns,
    /// A batch per partition; past `MAX_PARTITION_BATCHES` partitions the rest share one.
    pub batches: Vec<RecordBatch>,
}

impl Events for Partitioned {
    const SPLIT: bool = true;

    fn finish(parts: Parts, observed_ns: i64) -> Result<Partitioned> {
        let mut out = Partitioned::default();
        let has_rest = parts.has_rest();
        let mut builders = parts.builders.into_iter();
        let mut rest = has_rest.then(|| builders.next_back()).flatten();
        for (key, builder) in parts.keys.into_iter().zip(builders) {
            out.keys.push((key, builder.len()));
            out.batches.push(builder.finish(observed_ns)?);
        }
        remember_rows(&out.keys);
        if let Some(rest) = rest.take() {
            let (keys, batch) = in_runs(&rest.finish(observed_ns)?)?;
            out.keys.extend(keys);
            out.batches.push(batch);
        }
        Ok(out)
    }
}

/// The column builders rows are committed to.
pub struct Parts {
    keys: Vec<PartitionKey>,
    /// A builder per key, then one for the rows of further partitions once there are more
    /// than `MAX_PARTITION_BATCHES`.
    builders: Vec<BatchBuilder>,
    split: bool,
    /// Rows expected in the whole call, for the first builder's capacity.
    rows: usize,
    /// The builder of the previous row: rows mostly come in runs of one partition.
    last: usize,
}

impl Parts {
    pub fn new(split: bool, rows: usize) -> Parts {
        let builders = match split {
            true => Vec::new(),
            false => vec![BatchBuilder::with_capacity(rows)],
        };
        Parts {
            keys: Vec::new(),
            builders,
            split,
            rows,
            last: 0,
        }
    }

    /// The builder of a row of `category` stored at `timestamp`.
    #[inline]
    pub fn builder(&mut self, category: Option<&str>, timestamp: i64) -> &mut BatchBuilder {
        if self.split {
            self.last = self.find(category, timestamp.div_euclid(NS_PER_HOUR));
        }
        &mut self.builders[self.last]
    }

    /// The builder of the row being committed, as `builder` last chose it.
    #[inline]
    pub fn current(&mut self) -> &mut BatchBuilder {
        &mut self.builders[self.last]
    }

    fn find(&mut self, category: Option<&str>, hour: i64) -> usize {
        let same = |k: &PartitionKey| k.hour == hour && k.category.as_deref() == category;
        if self.keys.get(self.last).is_some_and(same) {
            return self.last;
        }
        if let Some(at) = self.keys.iter().position(same) {
            return at;
        }
        if self.keys.len() == MAX_PARTITION_BATCHES {
            if !self.has_rest() {
                self.builders.push(BatchBuilder::with_capacity(
                    self.rows.min(LATER_PARTITION_ROWS),
                ));
            }
            return self.builders.len() - 1;
        }
        let key = PartitionKey {
            category: category.map(str::to_string),
            hour,
        };
        // A builder that grows copies its columns each time it doubles, and a batch buffered
        // for a file keeps what its builder reserved. A stream's calls mostly repeat the same
        // partitions in the same shares: each starts at what it held in this thread's previous
        // call. Otherwise the first takes the call's rows (it often holds all of them), and
        // later ones start small.
        let rows = match previous_rows(&key) {
            Some(rows) => (rows + rows / 4 + 16).min(self.rows),
            None if self.builders.is_empty() => self.rows,
            None => self.rows.min(LATER_PARTITION_ROWS),
        };
        self.keys.push(key);
        self.builders.push(BatchBuilder::with_capacity(rows));
        // Once the rest has its builder no key is added, so that builder stays last.
        self.keys.len() - 1
    }

    /// Whether rows of partitions past the limit have their shared builder.
    fn has_rest(&self) -> bool {
        self.split && self.builders.len() > self.keys.len()
    }
}

thread_local! {
    /// The partitions with builders of their own in this thread's previous call, with the
    /// rows each got.
    static PREVIOUS: RefCell<PartitionRuns> = const { RefCell::new(Vec::new()) };
}

fn previous_rows(key: &PartitionKey) -> Option<usize> {
    PREVIOUS.with_borrow(|runs| runs.iter().find(|(k, _)| k == key).map(|&(_, rows)| rows))
}

fn remember_rows(runs: &PartitionRuns) {
    PREVIOUS.with_borrow_mut(|previous| previous.clone_from(runs));
}

/// `batch` reordered into runs of one partition each, in order of first appearance (rows of a
/// run in input order). Its builders held these rows alone, so its strings need no compaction.
fn in_runs(batch: &RecordBatch) -> Result<(PartitionRuns, RecordBatch)> {
    let category = batch.column_by_name(CATEGORY).map(|c| c.as_string_view());
    let ts = batch
        .column_by_name(TIMESTAMP)
        .map(|c| c.as_primitive::<TimestampNanosecondType>());
    let (Some(category), Some(ts)) = (category, ts) else {
        unreachable!("the event schema has a category and a timestamp");
    };
    let groups = partition_rows(category, ts);
    let keys = groups.iter().map(|(key, rows)| (key.clone(), rows.len()));
    let keys: PartitionRuns = keys.collect();
    let rows: Vec<u32> = groups.into_iter().flat_map(|(_, rows)| rows).collect();
    Ok((keys, take_record_batch(batch, &UInt32Array::from(rows))?))
}

/// Row indices per (category, UTC hour), in order of first appearance.
fn partition_rows(
    category: &StringViewArray,
    ts: &TimestampNanosecondArray,
) -> Vec<(PartitionKey, Vec<u32>)> {
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
