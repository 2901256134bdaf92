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

/// Longest `fields` member (key and raw value together, bytes) whose verdict is kept.
pub const MEMBER_MAX: usize = 118;
/// Slots of the members' table (direct-mapped, a power of two): 64 KB per thread.
const MEMBER_SLOTS: usize = 512;

/// A `fields` member being looked up: its key and raw value, borrowed, with the redactor judging
/// it. A slot holds the bytes themselves and is compared byte for byte, so a hit means the very
/// same key and value under the very same rules.
pub struct Member<'a> {
    owner: u64,
    key: &'a [u8],
    raw: &'a [u8],
    index: usize,
}

/// A remembered member: the key's length, then key and value end to end.
#[derive(Clone, Copy)]
struct Slot {
    owner: u64,
    key_len: u8,
    len: u8,
    bytes: [u8; MEMBER_MAX],
}

impl<'a> Member<'a> {
    /// The entry of `key` and `raw` under redactor `owner`, or None when they are too long.
    #[inline]
    pub fn of(owner: u64, key: &'a str, raw: &'a str) -> Option<Member<'a>> {
        let (key, raw) = (key.as_bytes(), raw.as_bytes());
        if key.len() + raw.len() > MEMBER_MAX {
            return None;
        }
        let h = hash_words(hash_words(owner ^ (key.len() as u64) << 8, key), raw);
        let index = (h.wrapping_mul(MIX) >> (64 - MEMBER_SLOTS.trailing_zeros())) as usize;
        Some(Member {
            owner,
            key,
            raw,
            index,
        })
    }

    fn is_in(&self, slot: &Slot) -> bool {
        let key_len = self.key.len();
        slot.owner == self.owner
            && usize::from(slot.key_len) == key_len
            && usize::from(slot.len) == key_len + self.raw.len()
            && slot.bytes[..key_len] == *self.key
            && slot.bytes[key_len..usize::from(slot.len)] == *self.raw
    }

    fn write_to(&self, slot: &mut Slot) {
        let key_len = self.key.len();
        slot.owner = self.owner;
        slot.key_len = key_len as u8;
        slot.len = (key_len + self.raw.len()) as u8;
        slot.bytes[..key_len].copy_from_slice(self.key);
        slot.bytes[key_len..key_len + self.raw.len()].copy_from_slice(self.raw);
    }
}

/// Mixes `b` into `h` eight bytes at a time (the last word zero-padded).
fn hash_words(h: u64, b: &[u8]) -> u64 {
    let mut words = b.chunks_exact(8);
    let mut h = words.by_ref().fold(h, |h, w| {
        (h ^ u64::from_le_bytes(w.try_into().unwrap()))
            .wrapping_mul(MIX)
            .rotate_left(29)
    });
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w))
            .wrapping_mul(MIX)
            .rotate_left(29);
    }
    h ^ b.len() as u64
}

thread_local! {
    static MEMBERS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// Whether `member` was found clean on this thread by the redactor it names.
#[inline]
pub fn member_seen_clean(member: &Member) -> bool {
    MEMBERS
        .try_with(|m| {
            m.borrow()
                .get(member.index)
                .is_some_and(|s| member.is_in(s))
        })
        .unwrap_or(false)
}

/// Records that `member` was found clean by the redactor it names.
pub fn remember_member(member: &Member) {
    let _ = MEMBERS.try_with(|m| {
        let mut m = m.borrow_mut();
        if m.is_empty() {
            let empty = Slot {
                owner: 0,
                key_len: 0,
                len: 0,
                bytes: [0; MEMBER_MAX],
            };
            m.resize(MEMBER_SLOTS, empty);
        }
        member.write_to(&mut m[member.index]);
    });
}
