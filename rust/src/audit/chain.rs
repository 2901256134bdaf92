//! The audit hash chain of one writer: create, append many batches, finish once.

use std::sync::Arc;

use arrow_array::builder::make_view;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringViewArray, UInt64Array};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer};
use arrow_data::ByteView;
use arrow_schema::{Field, Schema};
use sha2::{Digest, Sha256};

use super::canonical::{Canonicalizer, Links, GENESIS};
use crate::error::{Error, Result};
use crate::schema::{AUDIT_CHAIN, AUDIT_HASH, AUDIT_PREV_HASH, AUDIT_SEQ};

/// A writer's audit chain: each appended audit record links to the hash of the one before.
pub struct AuditChain {
    chain_id: String,
    seq: u64,
    head: [u8; 64],
    finished: bool,
    buf: Vec<u8>,
    error: Option<String>,
}

impl AuditChain {
    /// Starts chain `chain_id` at `head` (last seq, last hash) recovered from storage, or at
    /// genesis when `None`.
    pub fn new(chain_id: &str, head: Option<(u64, String)>) -> AuditChain {
        let (seq, hash) = head.unwrap_or((0, GENESIS.to_string()));
        let mut chain = AuditChain {
            chain_id: chain_id.to_string(),
            seq,
            head: [b'0'; 64],
            finished: false,
            buf: Vec::with_capacity(1024),
            error: None,
        };
        // An invalid start is reported by the first append, as `new` cannot fail.
        if chain_id.is_empty() {
            chain.error = Some("audit: the chain id is empty".into());
        } else if seq == u64::MAX {
            chain.error = Some(format!(
                "audit: head seq {seq} leaves no seq for a next record"
            ));
        } else if !is_hash(&hash) {
            chain.error = Some(format!(
                "audit: head hash {hash:?} is not 64 lower-case hex digits"
            ));
        } else {
            chain.head.copy_from_slice(hash.as_bytes());
        }
        chain
    }

    /// Whether the chain can take records: an invalid start (empty id, malformed head hash, head
    /// seq at `u64::MAX`) is an error here, for callers that want it at construction.
    pub fn check(&self) -> Result<()> {
        self.check_usable()
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// The last sequence number and hash; `(0, GENESIS)` before the first record.
    pub fn head(&self) -> (u64, String) {
        (self.seq, self.head_str().to_string())
    }

    /// Chains the rows selected by `is_audit`, in row order, and returns `batch` with the four
    /// audit columns filled for them and null elsewhere.
    pub fn append(&mut self, batch: &RecordBatch, is_audit: &BooleanArray) -> Result<RecordBatch> {
        self.check_usable()?;
        if is_audit.len() != batch.num_rows() {
            let (n, m) = (is_audit.len(), batch.num_rows());
            return Err(Error::Audit(format!(
                "audit: mask has {n} rows, batch has {m}"
            )));
        }
        // A seq past u64::MAX would wrap to 0; refuse the batch before chaining any of it.
        let records = is_audit.true_count() as u64;
        if self.seq.checked_add(records).is_none() {
            let seq = self.seq;
            return Err(Error::Audit(format!(
                "audit: {records} records after seq {seq} overflow the 64-bit sequence number"
            )));
        }
        // The hashes share one buffer that 32-bit view offsets address; refuse before chaining.
        if 64 * (records + 1) > u64::from(u32::MAX) {
            return Err(Error::Audit(format!(
                "audit: {records} records in one batch; split it below 67 million"
            )));
        }
        let canon = Canonicalizer::new(batch, false)?;
        let mut cols = LinkColumns::new(batch.num_rows(), records as usize, &self.head);
        let mut done = 0;
        for row in (0..batch.num_rows()).filter(|&r| is_audit.is_valid(r) && is_audit.value(r)) {
            cols.append_nulls(row - done);
            self.link(&canon, row, &mut cols);
            done = row + 1;
        }
        cols.append_nulls(batch.num_rows() - done);
        cols.replace_in(batch, &self.chain_id)
    }

    /// Ends the chain and returns its head; any later `append` or `finish` is an error.
    pub fn finish(&mut self) -> Result<(u64, String)> {
        self.check_usable()?;
        self.finished = true;
        Ok(self.head())
    }

    fn link(&mut self, canon: &Canonicalizer<'_>, row: usize, cols: &mut LinkColumns) {
        let seq = self.seq + 1;
        let prev = std::str::from_utf8(&self.head).expect("hex is ASCII");
        let links = Links {
            chain: &self.chain_id,
            seq,
            prev,
        };
        let hash = row_link_hash(canon, row, prev, Some(links), &mut self.buf);
        cols.append(seq, &hash);
        self.seq = seq;
        self.head = hash;
    }

    fn head_str(&self) -> &str {
        std::str::from_utf8(&self.head).expect("hex is ASCII")
    }

    fn check_usable(&self) -> Result<()> {
        if self.finished {
            let id = &self.chain_id;
            return Err(Error::Audit(format!(
                "audit: chain {id:?} is finished; start a new one"
            )));
        }
        match &self.error {
            Some(message) => Err(Error::Audit(message.clone())),
            None => Ok(()),
        }
    }
}

/// Whether `s` is a SHA-256 digest in lower-case hex.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The hex link hash of `row` after `prev`, its record encoded through `buf`; `links`
/// replaces the stored chain fields while a row is being chained.
pub(crate) fn row_link_hash(
    canon: &Canonicalizer<'_>,
    row: usize,
    prev: &str,
    links: Option<Links<'_>>,
    buf: &mut Vec<u8>,
) -> [u8; 64] {
    buf.clear();
    buf.extend_from_slice(prev.as_bytes());
    canon.write_row(row, links, buf);
    let mut out = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(&buf[..]), &mut out).expect("64 hex digits");
    out
}

/// SHA-256 of `prev ‖ record` in lower-case hex: the link rule of the chain.
pub fn link_hash(prev: &str, record: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(record);
    hex::encode(hasher.finalize())
}

/// The four audit columns of one output batch. The hashes share one buffer, which starts with
/// the head before the batch: each record's `audit_prev_hash` is a view of the hash before it.
struct LinkColumns {
    hashes: Vec<u8>,
    seqs: Vec<u64>,
    records: BooleanBufferBuilder,
}

impl LinkColumns {
    fn new(rows: usize, records: usize, head: &[u8; 64]) -> LinkColumns {
        let mut hashes = Vec::with_capacity(64 * (records + 1));
        hashes.extend_from_slice(head);
        LinkColumns {
            hashes,
            seqs: Vec::with_capacity(rows),
            records: BooleanBufferBuilder::new(rows),
        }
    }

    fn append(&mut self, seq: u64, hash: &[u8; 64]) {
        self.records.append(true);
        self.seqs.push(seq);
        self.hashes.extend_from_slice(hash);
    }

    fn append_nulls(&mut self, n: usize) {
        self.records.append_n(n, false);
        self.seqs.resize(self.seqs.len() + n, 0);
    }

    /// `batch` with the audit columns of chain `chain` replaced (or added, when absent).
    fn replace_in(self, batch: &RecordBatch, chain: &str) -> Result<RecordBatch> {
        let LinkColumns {
            hashes,
            seqs,
            mut records,
        } = self;
        let valid = NullBuffer::new(records.finish());
        let (prev, hash) = hash_columns(hashes, &valid);
        let chain_view = make_view(chain.as_bytes(), 0, 0);
        let chains = valid
            .iter()
            .map(|v| if v { chain_view } else { 0 })
            .collect();
        let buffers = Arc::from([Buffer::from(chain.as_bytes().to_vec())]);
        // SAFETY: every view is null or the view of `chain`, a `str`, in its own buffer.
        let chains =
            unsafe { StringViewArray::new_unchecked(chains, buffers, Some(valid.clone())) };
        let seqs = UInt64Array::new(seqs.into(), Some(valid));
        let built: [(&str, ArrayRef); 4] = [
            (AUDIT_CHAIN, Arc::new(chains)),
            (AUDIT_SEQ, Arc::new(seqs)),
            (AUDIT_PREV_HASH, Arc::new(prev)),
            (AUDIT_HASH, Arc::new(hash)),
        ];
        replace_columns(batch, built)
    }
}

/// The `audit_prev_hash` and `audit_hash` columns, views into the one hash buffer.
fn hash_columns(hashes: Vec<u8>, valid: &NullBuffer) -> (StringViewArray, StringViewArray) {
    let hashes = Buffer::from(hashes);
    debug_assert!(
        hashes.len() <= u32::MAX as usize,
        "append checks the batch size"
    );
    let view = |k: usize| {
        let offset = 64 * k;
        let prefix = &hashes[offset..offset + 4];
        ByteView::new(64, prefix)
            .with_offset(offset as u32)
            .as_u128()
    };
    let (mut prev, mut hash) = (
        Vec::with_capacity(valid.len()),
        Vec::with_capacity(valid.len()),
    );
    let mut k = 0;
    for record in valid.iter() {
        if record {
            prev.push(view(k));
            hash.push(view(k + 1));
            k += 1;
        } else {
            prev.push(0);
            hash.push(0);
        }
    }
    let column = |views: Vec<u128>| {
        let buffers = Arc::from([hashes.clone()]);
        // SAFETY: every view is null or 64 bytes of hex digits (ASCII) within `hashes`, whose
        // length fits the views' 32-bit offsets (checked above).
        unsafe { StringViewArray::new_unchecked(views.into(), buffers, Some(valid.clone())) }
    };
    (column(prev), column(hash))
}

/// `batch` with the `built` columns in place of its own of the same name, or added.
fn replace_columns(batch: &RecordBatch, built: [(&str, ArrayRef); 4]) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = batch.columns().to_vec();
    for (name, array) in built {
        let field = Field::new(name, array.data_type().clone(), true);
        match schema.index_of(name) {
            Ok(i) => (fields[i], columns[i]) = (field, array),
            Err(_) => {
                fields.push(field);
                columns.push(array);
            }
        }
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}
