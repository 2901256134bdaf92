//! The verifier core: recomputes every link of one chain, fed in chain order, and checks its
//! checkpoints; reports the first failure and its kind.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch, UInt64Array};
use serde::Serialize;

use super::canonical::{Canonicalizer, StrCol, GENESIS};
use super::chain::row_link_hash;
use super::seal::Checkpoint;
use crate::error::{Error, Result};
use crate::schema::{AUDIT_HASH, AUDIT_PREV_HASH, AUDIT_SEQ};

/// Optional column naming the file (relative to the data directory) each row was read from.
pub const SOURCE_FILE: &str = "source_file";
/// Optional integer column giving each row's index inside its file.
pub const SOURCE_ROW: &str = "source_row";

/// What kind of tampering a failure shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A record's content or chain fields differ from what its hash (or its successor) proves.
    Modified,
    /// A sequence number is missing: the records between are gone.
    Deleted,
    /// A record that does not belong: a second record for a taken sequence number, or a
    /// record beyond the head sealed for its file.
    Inserted,
    /// A record links to one the chain holds at a later position: records changed places.
    Reordered,
    /// A checkpoint names a head beyond the last record: the tail was cut off.
    Truncated,
    /// A checkpoint carries no seal, or records lie beyond the last checkpoint, where seals are
    /// required.
    SealMissing,
    /// A checkpoint's seal does not verify under the key.
    SealInvalid,
}

impl FailureKind {
    /// The kind as reports name it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Modified => "modified",
            FailureKind::Deleted => "deleted",
            FailureKind::Inserted => "inserted",
            FailureKind::Reordered => "reordered",
            FailureKind::Truncated => "truncated",
            FailureKind::SealMissing => "seal_missing",
            FailureKind::SealInvalid => "seal_invalid",
        }
    }
}

/// Where a record was read from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: Option<String>,
    pub row: Option<u64>,
}

/// The first failure of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The sequence number at which the chain breaks.
    pub seq: u64,
    pub file: Option<String>,
    pub row: Option<u64>,
    /// What the chain proves at this place: a hash, a sequence number or a seal.
    pub expected: String,
    /// What the store holds there.
    pub found: String,
}

/// The verdict on one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub chain: String,
    /// Records whose links verified, up to the first failure.
    pub records: u64,
    /// The last verified (seq, hash); `(0, GENESIS)` when none.
    pub head: (u64, String),
    pub checkpoints: usize,
    /// Whether a key was given and every checkpoint's seal verified under it.
    pub sealed: bool,
    /// Verified records beyond the last checkpoint of a live writer: not yet sealed, not a
    /// failure.
    pub pending: u64,
    pub failure: Option<Failure>,
}

/// A link failure held back until later rows tell which kind it is.
struct Pending {
    failure: Failure,
    /// The sequence number and predecessor hash a genuine record at this place would have.
    seq: u64,
    expect_prev: String,
    /// The predecessor the failing record names, when it names an unexpected one.
    link: Option<String>,
    /// The failing record's own hash and place.
    hash: String,
    loc: Location,
}

impl Pending {
    /// The failure as `kind` at the held record.
    fn relocated(&self, kind: FailureKind, expected: String, found: String) -> Failure {
        let Location { file, row } = self.loc.clone();
        Failure {
            kind,
            seq: self.seq,
            file,
            row,
            expected,
            found,
        }
    }
}

/// Verifies one chain: `push` its batches in chain order (ascending `audit_seq`), then
/// `finish`.
pub struct Verifier {
    chain_id: String,
    checkpoints: Vec<Checkpoint>,
    key: Option<Vec<u8>>,
    require_seals: bool,
    /// Whether the chain's writer still runs, so its last records may await their checkpoint.
    live: bool,
    /// Checkpoint (seq, index) pairs in seq order, and the next one to meet.
    heads: Vec<(u64, usize)>,
    next_head: usize,
    /// The highest sealed seq of each checkpointed file, and that of the last file seen.
    file_bounds: HashMap<String, u64>,
    bound: (String, Option<u64>),
    expect_seq: u64,
    prev: [u8; 64],
    prev_loc: Location,
    max_seq: u64,
    records: u64,
    pending: Option<Pending>,
    failure: Option<Failure>,
    buf: Vec<u8>,
    /// Link hashes of the current batch's rows over their stored `audit_prev_hash`.
    stored: Vec<Option<[u8; 64]>>,
}

/// One row's chain fields and location.
struct RowView<'b> {
    seq: Option<u64>,
    prev: Option<&'b str>,
    hash: Option<&'b str>,
    file: Option<&'b str>,
    row: Option<u64>,
}

impl Verifier {
    /// A verifier for `chain_id` with that chain's checkpoint entries; `key` checks seals,
    /// `require_seals` fails records no seal covers.
    pub fn new(
        chain_id: &str,
        checkpoints: Vec<Checkpoint>,
        key: Option<&[u8]>,
        require_seals: bool,
    ) -> Result<Verifier> {
        if require_seals && key.is_none() {
            return Err(Error::Config("audit: require_seals needs a key".into()));
        }
        let checkpoints: Vec<Checkpoint> = checkpoints
            .into_iter()
            .filter(|c| c.chain == chain_id)
            .collect();
        let mut heads: Vec<(u64, usize)> = checkpoints
            .iter()
            .enumerate()
            .map(|(i, c)| (c.seq, i))
            .collect();
        heads.sort_unstable();
        let mut file_bounds: HashMap<String, u64> = HashMap::new();
        for c in &checkpoints {
            let bound = file_bounds.entry(c.file.clone()).or_default();
            *bound = (*bound).max(c.seq);
        }
        Ok(Verifier {
            chain_id: chain_id.to_string(),
            checkpoints,
            key: key.map(<[u8]>::to_vec),
            require_seals,
            live: false,
            heads,
            next_head: 0,
            file_bounds,
            bound: (String::new(), None),
            expect_seq: 1,
            prev: GENESIS.as_bytes().try_into().expect("64 bytes"),
            prev_loc: Location::default(),
            max_seq: 0,
            records: 0,
            pending: None,
            failure: None,
            buf: Vec::with_capacity(1024),
            stored: Vec::new(),
        })
    }

    /// Marks the chain's writer as running: records past its last checkpoint are pending, not
    /// unsealed, as a live writer appends the checkpoint just after committing the file.
    pub fn set_live(&mut self, live: bool) {
        self.live = live;
    }

    /// Checks the rows of `batch`, which continue the chain in ascending `audit_seq`.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let canon = Canonicalizer::new(batch, true)?;
        let seq = column_u64(batch, AUDIT_SEQ)?;
        let prev = string_column(batch, AUDIT_PREV_HASH)?;
        let hash = string_column(batch, AUDIT_HASH)?;
        let file = batch
            .column_by_name(SOURCE_FILE)
            .and_then(|c| StrCol::new(c.as_ref()));
        let rows = batch.column_by_name(SOURCE_ROW);
        self.stored = stored_link_hashes(batch, &prev)?;
        for i in 0..batch.num_rows() {
            let view = RowView {
                seq: (!seq.is_null(i)).then(|| seq.value(i)),
                prev: prev.get(i),
                hash: hash.get(i),
                file: file.as_ref().and_then(|f| f.get(i)),
                row: rows.and_then(|r| row_index(r.as_ref(), i)),
            };
            self.check(&canon, i, &view)?;
        }
        Ok(())
    }

    /// Ends verification and reports the chain's first failure, if any.
    pub fn finish(mut self) -> ChainReport {
        if let Some(p) = self.pending.take() {
            self.failure.get_or_insert(p.failure);
        }
        let checkpoint_failure = self.check_checkpoints();
        let failure = match (self.failure.take(), checkpoint_failure) {
            (Some(a), Some(b)) => Some(if b.seq < a.seq { b } else { a }),
            (a, b) => a.or(b),
        };
        let sealed = self.key.is_some()
            && !self.checkpoints.is_empty()
            && !matches!(&failure, Some(f) if is_seal_kind(f.kind));
        let head = (self.expect_seq - 1, hex_str(&self.prev).into());
        let pending = if self.live {
            self.unsealed_records()
        } else {
            0
        };
        ChainReport {
            chain: self.chain_id,
            records: self.records,
            head,
            checkpoints: self.checkpoints.len(),
            sealed,
            pending,
            failure,
        }
    }

    fn check(&mut self, canon: &Canonicalizer<'_>, i: usize, r: &RowView<'_>) -> Result<()> {
        if self.failure.is_some() {
            return Ok(());
        }
        self.max_seq = self.max_seq.max(r.seq.unwrap_or(0));
        if self.pending.is_some() {
            self.resolve_pending(canon, i, r);
            return Ok(());
        }
        let (Some(seq), Some(prev), Some(hash)) = (r.seq, r.prev, r.hash) else {
            self.failure = Some(failure_at(
                FailureKind::Modified,
                self.expect_seq,
                r,
                "",
                "null",
            ));
            return Ok(());
        };
        if seq < self.expect_seq {
            return self.check_duplicate(seq, hash, r);
        }
        if seq > self.expect_seq {
            let (want, got) = (self.expect_seq.to_string(), seq.to_string());
            self.failure = Some(failure_at(
                FailureKind::Deleted,
                self.expect_seq,
                r,
                &want,
                &got,
            ));
            return Ok(());
        }
        let computed = match self.stored.get(i) {
            Some(Some(stored)) => *stored,
            _ => self.record_hash(canon, i, prev),
        };
        let intact = computed == hash.as_bytes();
        if prev.as_bytes() != self.prev {
            self.hold_link_failure(seq, prev, hash, intact, r);
        } else if !intact {
            let failure = failure_at(FailureKind::Modified, seq, r, hex_str(&computed), hash);
            self.hold(failure, seq, hash, None, r);
        } else {
            self.accept(seq, hash, r);
        }
        Ok(())
    }

    /// A row for a seq already verified: a copy (of a row or a whole file) was added.
    fn check_duplicate(&mut self, seq: u64, hash: &str, r: &RowView<'_>) -> Result<()> {
        let failure = if seq + 1 == self.expect_seq {
            let accepted = hex_str(&self.prev).to_string();
            failure_at(FailureKind::Inserted, seq, r, &accepted, hash)
        } else {
            // Only the last verified hash is kept, so name the seqs instead of the hashes.
            let expected = format!("seq {} or above", self.expect_seq);
            failure_at(FailureKind::Inserted, seq, r, &expected, &seq.to_string())
        };
        self.failure = Some(failure);
        Ok(())
    }

    /// A record whose predecessor hash is not the previous record's hash.
    fn hold_link_failure(&mut self, seq: u64, prev: &str, hash: &str, intact: bool, r: &RowView) {
        let expected = hex_str(&self.prev).to_string();
        // An intact record naming another predecessor proves that predecessor was changed.
        let failure = if intact && seq > 1 {
            Failure {
                kind: FailureKind::Modified,
                seq: seq - 1,
                file: self.prev_loc.file.clone(),
                row: self.prev_loc.row,
                expected: prev.to_string(),
                found: expected,
            }
        } else {
            failure_at(FailureKind::Modified, seq, r, &expected, prev)
        };
        self.hold(failure, seq, hash, Some(prev.to_string()), r);
    }

    fn hold(&mut self, failure: Failure, seq: u64, hash: &str, link: Option<String>, r: &RowView) {
        let expect_prev = hex_str(&self.prev).to_string();
        let loc = Location {
            file: r.file.map(str::to_string),
            row: r.row,
        };
        self.pending = Some(Pending {
            failure,
            seq,
            expect_prev,
            link,
            hash: hash.into(),
            loc,
        });
    }

    /// Decides a held failure from a later row: a reordering, an insertion, or as held.
    fn resolve_pending(&mut self, canon: &Canonicalizer<'_>, i: usize, r: &RowView<'_>) {
        let p = self.pending.take().expect("pending");
        let same_place = r.seq == Some(p.seq) && r.prev == Some(p.expect_prev.as_str());
        let resolved = if p.link.is_some() && p.link.as_deref() == r.hash {
            let found = p.link.clone().unwrap_or_default();
            Some(p.relocated(FailureKind::Reordered, p.expect_prev.clone(), found))
        } else if same_place && self.intact(canon, i, &p.expect_prev, r.hash) {
            // The held record was a forged copy sorted before the genuine one.
            let genuine = r.hash.unwrap_or_default().to_string();
            Some(p.relocated(FailureKind::Inserted, genuine, p.hash.clone()))
        } else if p.link.is_none() && r.seq != Some(p.seq) {
            Some(p.failure.clone())
        } else {
            None
        };
        match resolved {
            Some(failure) => self.failure = Some(failure),
            None => self.pending = Some(p),
        }
    }

    /// Whether `hash` is the link hash of `row` after `prev`.
    fn intact(
        &mut self,
        canon: &Canonicalizer<'_>,
        row: usize,
        prev: &str,
        hash: Option<&str>,
    ) -> bool {
        hash.map(str::as_bytes) == Some(&self.record_hash(canon, row, prev)[..])
    }

    fn accept(&mut self, seq: u64, hash: &str, r: &RowView<'_>) {
        if let Some(f) = self
            .check_sealed_head(seq, hash, r)
            .or_else(|| self.check_bound(seq, r))
        {
            self.failure = Some(f);
            return;
        }
        self.expect_seq = seq + 1;
        self.prev.copy_from_slice(hash.as_bytes());
        if self.prev_loc.file.as_deref() != r.file {
            self.prev_loc.file = r.file.map(str::to_string);
        }
        self.prev_loc.row = r.row;
        self.records += 1;
    }

    /// A checkpoint at this seq must name this record's hash, or the chain was rewritten.
    fn check_sealed_head(&mut self, seq: u64, hash: &str, r: &RowView<'_>) -> Option<Failure> {
        while let Some(&(at, index)) = self.heads.get(self.next_head) {
            if at > seq {
                break;
            }
            self.next_head += 1;
            let head = &self.checkpoints[index].head;
            if at == seq && head != hash {
                return Some(failure_at(FailureKind::Modified, seq, r, head, hash));
            }
        }
        None
    }

    /// A record beyond the head sealed for its own file was added after the commit.
    fn check_bound(&mut self, seq: u64, r: &RowView<'_>) -> Option<Failure> {
        let file = r.file?;
        // Rows come in runs from one file: look its bound up once per run.
        if self.bound.0 != file {
            self.bound = (file.to_string(), self.file_bounds.get(file).copied());
        }
        let bound = self.bound.1?;
        (seq > bound).then(|| {
            failure_at(
                FailureKind::Inserted,
                seq,
                r,
                &bound.to_string(),
                &seq.to_string(),
            )
        })
    }

    /// The hex link hash of `row` after `prev`, computed in the reused buffer.
    fn record_hash(&mut self, canon: &Canonicalizer<'_>, row: usize, prev: &str) -> [u8; 64] {
        row_link_hash(canon, row, prev, None, &mut self.buf)
    }

    fn check_checkpoints(&self) -> Option<Failure> {
        let mut first: Option<Failure> = None;
        for c in &self.checkpoints {
            let found = self.checkpoint_failure(c);
            if let Some(f) = found {
                if first.as_ref().map_or(true, |g| f.seq < g.seq) {
                    first = Some(f);
                }
            }
        }
        first.or_else(|| self.unsealed_tail())
    }

    fn checkpoint_failure(&self, c: &Checkpoint) -> Option<Failure> {
        let at = |kind, seq, expected: String, found: String| Failure {
            kind,
            seq,
            file: Some(c.file.clone()),
            row: None,
            expected,
            found,
        };
        if let Some(key) = &self.key {
            match c.seal_valid(key) {
                None => {
                    return Some(at(
                        FailureKind::SealMissing,
                        c.seq,
                        "seal".into(),
                        "none".into(),
                    ))
                }
                Some(false) => {
                    let found = c.seal.clone().unwrap_or_default();
                    return Some(at(
                        FailureKind::SealInvalid,
                        c.seq,
                        "valid seal".into(),
                        found,
                    ));
                }
                Some(true) => {}
            }
        }
        (c.seq > self.max_seq).then(|| {
            at(
                FailureKind::Truncated,
                self.max_seq + 1,
                c.seq.to_string(),
                self.max_seq.to_string(),
            )
        })
    }

    /// Verified records past the last checkpoint.
    fn unsealed_records(&self) -> u64 {
        let sealed = self.heads.last().map_or(0, |h| h.0);
        (self.expect_seq - 1).saturating_sub(sealed)
    }

    /// With seals required, records past the last checkpoint of a stopped writer are covered by
    /// no seal. With a key, so are the records of a chain with no checkpoint at all, required
    /// or not: a writer checkpoints each file it commits (one it crashed before checkpointing
    /// is checkpointed when it starts again), so only a chain written beside the writers,
    /// forged whole, holds records and no checkpoint.
    fn unsealed_tail(&self) -> Option<Failure> {
        let sealed = self.heads.last().map_or(0, |h| h.0);
        let last = self.expect_seq - 1;
        let uncheckpointed = self.key.is_some() && self.heads.is_empty();
        let unsealed = (self.require_seals || uncheckpointed) && !self.live && last > sealed;
        unsealed.then(|| Failure {
            kind: FailureKind::SealMissing,
            seq: sealed + 1,
            file: None,
            row: None,
            expected: format!("a checkpoint at seq {last}"),
            found: match uncheckpointed {
                true => "no checkpoint of this chain".into(),
                false => format!("last checkpoint at seq {sealed}"),
            },
        })
    }
}

/// Rows a batch needs before its hashes are computed on several threads.
const PARALLEL_ROWS: usize = 4096;

/// The link hash of every row over its own stored `audit_prev_hash` (`None` where that is
/// null). Rows are independent given their stored links, so the work spreads over the cores;
/// the sequential walk then only compares.
fn stored_link_hashes(batch: &RecordBatch, prev: &StrCol<'_>) -> Result<Vec<Option<[u8; 64]>>> {
    let rows = batch.num_rows();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.min(rows.div_ceil(PARALLEL_ROWS)).max(1);
    let mut hashes = vec![None; rows];
    let per_thread = rows.div_ceil(threads).max(1);
    let hash_range = |start: usize, part: &mut [Option<[u8; 64]>]| -> Result<()> {
        let canon = Canonicalizer::new(batch, true)?;
        let mut buf = Vec::with_capacity(1024);
        for (offset, slot) in part.iter_mut().enumerate() {
            let row = start + offset;
            *slot = prev
                .get(row)
                .map(|p| row_link_hash(&canon, row, p, None, &mut buf));
        }
        Ok(())
    };
    if threads == 1 {
        hash_range(0, &mut hashes)?;
        return Ok(hashes);
    }
    std::thread::scope(|scope| {
        let parts = hashes.chunks_mut(per_thread).enumerate();
        let handles: Vec<_> = parts
            .map(|(k, part)| scope.spawn(move || hash_range(k * per_thread, part)))
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("hashing thread panicked"))
    })?;
    Ok(hashes)
}

fn hex_str(hash: &[u8; 64]) -> &str {
    std::str::from_utf8(hash).expect("hex is ASCII")
}

fn is_seal_kind(kind: FailureKind) -> bool {
    matches!(kind, FailureKind::SealMissing | FailureKind::SealInvalid)
}

fn failure_at(
    kind: FailureKind,
    seq: u64,
    r: &RowView<'_>,
    expected: &str,
    found: &str,
) -> Failure {
    Failure {
        kind,
        seq,
        file: r.file.map(str::to_string),
        row: r.row,
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

fn column_u64<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b UInt64Array> {
    let column = batch.column_by_name(name);
    column
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
        .ok_or_else(|| missing(name))
}

fn string_column<'b>(batch: &'b RecordBatch, name: &str) -> Result<StrCol<'b>> {
    let column = batch.column_by_name(name);
    column
        .and_then(|c| StrCol::new(c.as_ref()))
        .ok_or_else(|| missing(name))
}

fn missing(name: &str) -> Error {
    Error::Audit(format!("audit: the batch has no usable column `{name}`"))
}

fn row_index(array: &dyn Array, i: usize) -> Option<u64> {
    if array.is_null(i) {
        return None;
    }
    if let Some(a) = array.as_primitive_opt::<UInt64Type>() {
        return Some(a.value(i));
    }
    if let Some(a) = array.as_primitive_opt::<UInt32Type>() {
        return Some(a.value(i).into());
    }
    if let Some(a) = array.as_primitive_opt::<Int64Type>() {
        return u64::try_from(a.value(i)).ok();
    }
    array
        .as_primitive_opt::<Int32Type>()
        .and_then(|a| u64::try_from(a.value(i)).ok())
}
