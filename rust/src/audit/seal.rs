//! Sealed checkpoints: HMAC-SHA-256 over a chain head, and the checkpoint log entry.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::canonical::{write_i64, write_str, write_u64};
use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// One line of the checkpoint log `<data-dir>/audit/checkpoints-<chain>.ndjson`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub chain: String,
    pub seq: u64,
    pub head: String,
    pub time_ns: i64,
    /// The committed file, relative to the data directory, with `/` separators.
    pub file: String,
    /// Hex HMAC-SHA-256 of the entry; `None` when the writer had no key.
    pub seal: Option<String>,
}

impl Checkpoint {
    /// Parses one line of the checkpoint log.
    pub fn from_json(line: &str) -> Result<Checkpoint> {
        sonic_rs::from_str(line).map_err(|e| Error::Audit(format!("audit: bad checkpoint: {e}")))
    }

    /// Whether the entry's seal verifies under `key`; `None` when it carries no seal.
    pub fn seal_valid(&self, key: &[u8]) -> Option<bool> {
        let seal = hex::decode(self.seal.as_deref()?);
        let mac = mac_of(key, &self.message());
        Some(seal.is_ok_and(|s| mac.verify_slice(&s).is_ok()))
    }

    /// The sealed message of this entry.
    pub fn message(&self) -> Vec<u8> {
        seal_message(&self.chain, self.seq, &self.head, self.time_ns, &self.file)
    }
}

/// The bytes a seal covers: the JCS form of `{chain, file, head, seq, time_ns}`.
pub fn seal_message(
    chain_id: &str,
    seq: u64,
    head_hash: &str,
    time_ns: i64,
    file: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + chain_id.len() + file.len());
    out.extend_from_slice(b"{\"chain\":");
    write_str(&mut out, chain_id);
    out.extend_from_slice(b",\"file\":");
    write_str(&mut out, file);
    out.extend_from_slice(b",\"head\":");
    write_str(&mut out, head_hash);
    out.extend_from_slice(b",\"seq\":");
    write_u64(&mut out, seq);
    out.extend_from_slice(b",\"time_ns\":");
    write_i64(&mut out, time_ns);
    out.push(b'}');
    out
}

/// Seals a chain head: hex HMAC-SHA-256 under `key` of its [`seal_message`].
pub fn seal(
    key: &[u8],
    chain_id: &str,
    seq: u64,
    head_hash: &str,
    time_ns: i64,
    file: &str,
) -> String {
    let message = seal_message(chain_id, seq, head_hash, time_ns, file);
    hex::encode(mac_of(key, &message).finalize().into_bytes())
}

fn mac_of(key: &[u8], message: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac
}
