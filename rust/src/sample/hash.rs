//! Consistent probability: thresholds on 56 bits of randomness, as in OpenTelemetry's
//! TraceState probability sampling, from the trace id or from a seeded hash of the event.

/// 2^56: the size of the randomness space and the largest adjusted count.
pub const MAX_ADJUSTED_COUNT: u64 = 1 << 56;

/// A rejection threshold: an event with randomness `r` is kept when `r >= threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Threshold(u64);

impl Threshold {
    /// Keeps every event (probability 1).
    pub const ALWAYS: Threshold = Threshold(0);

    /// The threshold of probability `p` in [0, 1]: 2^56 - round(p * 2^56).
    pub fn from_probability(p: f64) -> Threshold {
        // Rounding the kept share (not the rejected one) keeps tiny rates exact.
        let kept = (p.clamp(0.0, 1.0) * MAX_ADJUSTED_COUNT as f64).round() as u64;
        Threshold(MAX_ADJUSTED_COUNT - kept.min(MAX_ADJUSTED_COUNT))
    }

    pub fn value(self) -> u64 {
        self.0
    }

    /// Whether an event with 56-bit randomness `r` is kept.
    #[inline]
    pub fn keeps(self, r: u64) -> bool {
        r >= self.0
    }

    /// The probability this threshold keeps an event with.
    pub fn probability(self) -> f64 {
        (MAX_ADJUSTED_COUNT - self.0) as f64 / MAX_ADJUSTED_COUNT as f64
    }

    /// 1/p: how many events a kept one stands for (infinite when nothing is kept).
    pub fn adjusted_count(self) -> f64 {
        MAX_ADJUSTED_COUNT as f64 / (MAX_ADJUSTED_COUNT - self.0) as f64
    }
}

/// Where a row's randomness came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Randomness {
    /// From the trace id: every event of the trace shares it.
    Trace(u64),
    /// The trace id is present but carries no randomness (all zeros, too short).
    Unusable,
    /// No trace id.
    Absent,
}

/// Fewest characters a trace id needs to count as randomness (a 64-bit id in hex).
const MIN_TRACE_ID_LEN: usize = 16;

/// The 56 bits of randomness of a trace id: its trailing 14 hex digits.
// Limitation: the randomness is taken on trust; trace ids whose trailing bits are not random
// (W3C ids without the random flag, sequential ids) skew the kept share.
pub fn trace_randomness(id: &[u8]) -> Randomness {
    if id.is_empty() {
        return Randomness::Absent;
    }
    if id.len() < MIN_TRACE_ID_LEN {
        return Randomness::Unusable;
    }
    // Checks of the whole id without a branch or a table per byte, so they vectorize; only
    // the trailing 14 digits are read as a number.
    let hex = id.iter().fold(true, |ok, &b| ok & is_hex_digit(b));
    let zeros = id.iter().fold(true, |all, &b| all & (b == b'0'));
    match (hex, zeros) {
        (_, true) => Randomness::Unusable,
        (true, false) => {
            let tail = &id[id.len() - 14..];
            Randomness::Trace(tail.iter().fold(0, |r, &b| r << 4 | hex_value(b)))
        }
        // A non-hex id is still one key per trace: an unseeded hash keeps it consistent
        // across processes and machines.
        (false, false) => Randomness::Trace(hash_bytes(TRACE_KEY, id) >> 8),
    }
}

#[inline(always)]
fn is_hex_digit(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 6)
}

/// The value of a hex digit: its low four bits, plus nine for a letter of either case.
#[inline(always)]
fn hex_value(b: u8) -> u64 {
    u64::from((b & 0x0f) + 9 * (b >> 6))
}

pub(crate) const TRACE_KEY: u64 = 0x2d35_8dcc_aa6c_78a5;
const P1: u64 = 0x8bb8_4b93_962e_acc9;
const P2: u64 = 0x4b33_a62e_d433_d4a3;
const P3: u64 = 0x4d5a_2da5_1de1_aa47;

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline]
fn read8(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(w)
}

/// A fast 64-bit keyed hash (wyhash-style multiply-fold), good enough to draw randomness.
#[inline]
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed ^ P1;
    let mut chunks = bytes.chunks_exact(16);
    for c in &mut chunks {
        h = mix(read8(&c[..8]) ^ P2, read8(&c[8..]) ^ h);
    }
    let rest = chunks.remainder();
    let (a, b) = if rest.len() > 8 {
        (read8(&rest[..8]), read8(&rest[8..]))
    } else {
        (read8(rest), 0)
    };
    h = mix(a ^ P2, b ^ h);
    mix(h ^ P3, bytes.len() as u64 ^ P1)
}

/// Folds a 64-bit word into a running hash.
#[inline]
pub fn hash_u64(seed: u64, v: u64) -> u64 {
    mix(seed ^ P3, v ^ P2)
}

/// 56 bits of randomness from a 64-bit hash (its high bits, the best mixed).
#[inline]
pub fn randomness_of(hash: u64) -> u64 {
    hash >> 8
}
