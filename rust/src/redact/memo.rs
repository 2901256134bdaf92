//! Per-thread memory of short strings already found clean, so the values that repeat (services,
//! categories, tiers, a trace's id) are not scanned again.
//!
//! A verdict depends only on the bytes and on the redactor's compiled rules, which never change
//! after it is built, so an entry names the redactor that gave it and is exact. Only clean
//! verdicts are kept: a clean string is returned as it came and counts nothing, so a hit has
//! nothing left to do. The decoder calls `Scrub` through `&self` from any thread; a table per
//! thread needs no lock and stays warm from one call to the next.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Longest text (bytes) whose verdict is kept; longer text is always scanned.
pub const TEXT_MAX: usize = 32;
/// Slots of the table (direct-mapped, a power of two): 10 KB per thread.
const SLOTS: usize = 256;
/// Golden-ratio multiplier: spreads the key's bits into the high bits the index is taken from.
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// Source of redactor ids; 0 marks an empty slot (ids stay below 2^58, the tag's room).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static MEMO: RefCell<Vec<Key>> = const { RefCell::new(Vec::new()) };
}

/// A fresh id for a newly built redactor, never given twice in a process.
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A string of at most `TEXT_MAX` bytes and the redactor judging it: the string's first and last
/// 16 bytes (8 or 4 below 16 and 8), which together cover every byte, and a tag of the owner and
/// the length, so equal keys mean equal strings under the same rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Key {
    words: [u64; 4],
    tag: u64,
}

impl Key {
    /// The key of `s` under redactor `owner`, or None when `s` is longer than `TEXT_MAX`.
    #[inline]
    pub fn of(owner: u64, s: &str) -> Option<Key> {
        let b = s.as_bytes();
        let n = b.len();
        let words = match n {
            0 => [0; 4],
            1..=3 => [
                u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16,
                0,
                0,
                0,
            ],
            4..=7 => [u64::from(u32_at(b, 0)), u64::from(u32_at(b, n - 4)), 0, 0],
            8..=15 => [u64_at(b, 0), u64_at(b, n - 8), 0, 0],
            16..=TEXT_MAX => [
                u64_at(b, 0),
                u64_at(b, 8),
                u64_at(b, n - 16),
                u64_at(b, n - 8),
            ],
            _ => return None,
        };
        Some(Key {
            words,
            tag: owner << 6 | n as u64,
        })
    }

    fn index(&self) -> usize {
        let [a, b, c, d] = self.words;
        let h = (a ^ b.rotate_left(16) ^ c.rotate_left(32) ^ d.rotate_left(48) ^ self.tag)
            .wrapping_mul(MIX);
        (h >> (64 - SLOTS.trailing_zeros())) as usize
    }

    /// Word by word in registers: a vector compare would reload the key from the stack.
    #[inline]
    pub fn same(&self, other: &Key) -> bool {
        let words = self.words.iter().zip(&other.words);
        words.fold(self.tag ^ other.tag, |d, (a, b)| d | (a ^ b)) == 0
    }
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
}

/// Whether the string of `key` was found clean on this thread by the redactor `key` names.
#[inline]
pub fn seen_clean(key: &Key) -> bool {
    MEMO.try_with(|m| m.borrow().get(key.index()).is_some_and(|k| k.same(key)))
        .unwrap_or(false)
}

/// Records that the string of `key` was found clean by the redactor `key` names.
pub fn remember(key: Key) {
    let _ = MEMO.try_with(|m| {
        let mut m = m.borrow_mut();
        if m.is_empty() {
            m.resize(SLOTS, Key::default());
        }
        m[key.index()] = key;
    });
}
