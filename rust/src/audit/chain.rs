//! The audit hash chain of one writer: create, append many batches, finish once.

use std::sync::Arc;

use arrow_array::builder::{StringViewBuilder, UInt64Builder};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
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
        let canon = Canonicalizer::new(batch, false)?;
        let mut cols = LinkColumns::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            if is_audit.is_valid(row) && is_audit.value(row) {
                self.link(&canon, row, &mut cols);
            } else {
                cols.append_null();
            }
        }
        cols.replace_in(batch)
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
        cols.append(
            &self.chain_id,
            seq,
            prev,
            std::str::from_utf8(&hash).expect("hex"),
        );
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

/// Builders of the four audit columns of one output batch.
struct LinkColumns {
    chain: StringViewBuilder,
    seq: UInt64Builder,
    prev: StringViewBuilder,
    hash: StringViewBuilder,
}

impl LinkColumns {
    fn with_capacity(rows: usize) -> LinkColumns {
        LinkColumns {
            chain: StringViewBuilder::with_capacity(rows),
            seq: UInt64Builder::with_capacity(rows),
            prev: StringViewBuilder::with_capacity(rows),
            hash: StringViewBuilder::with_capacity(rows),
        }
    }

    fn append(&mut self, chain: &str, seq: u64, prev: &str, hash: &str) {
        self.chain.append_value(chain);
        self.seq.append_value(seq);
        self.prev.append_value(prev);
        self.hash.append_value(hash);
    }

    fn append_null(&mut self) {
        self.chain.append_null();
        self.seq.append_null();
        self.prev.append_null();
        self.hash.append_null();
    }

    /// `batch` with the audit columns replaced (or added, when absent).
    fn replace_in(mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let built: [(&str, ArrayRef); 4] = [
            (AUDIT_CHAIN, Arc::new(self.chain.finish())),
            (AUDIT_SEQ, Arc::new(self.seq.finish())),
            (AUDIT_PREV_HASH, Arc::new(self.prev.finish())),
            (AUDIT_HASH, Arc::new(self.hash.finish())),
        ];
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
}
