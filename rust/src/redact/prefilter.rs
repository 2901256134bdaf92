//! The cheap first pass: which rules can possibly match a string, so clean strings skip them all.
//!
//! One pass over the original bytes, with no copy: each position's next three bytes are looked up in
//! three tables whose bits say which literals (ASCII case-insensitive) may start there; the first
//! table also carries class bits (digit, backslash, percent, trigger bytes) OR-ed over the string.

use memchr::memchr;
use regex::RegexSet;

use super::blocks::Fingerprint;
use super::rules::Trigger;
use crate::error::{Error, Result};

/// A bit mask over rule indices; rules at index 64 and above are run whenever anything may match.
pub type RuleMask = u64;

/// Table bits shared by literals; literal `j` owns bit `j % LITERAL_BITS`.
const LITERAL_BITS: usize = 56;
const LITERAL_MASK: u64 = (1 << LITERAL_BITS) - 1;
/// Shortest string worth the block pass: below it, setting the pass up costs more than it saves.
const BLOCK_MIN: usize = 16;
/// Class bits, above the literal bits of the first table.
const DIGIT: u64 = 1 << 63;
const BACKSLASH: u64 = 1 << 62;
const PERCENT: u64 = 1 << 61;
/// Trigger byte `k` owns bit `TRIGGER_BASE << (k % TRIGGER_BITS)`.
const TRIGGER_BASE: u64 = 1 << LITERAL_BITS;
const TRIGGER_BITS: usize = 5;

/// Finds the rules worth running on a string from literals, digit runs and rare bytes.
#[derive(Debug, Clone)]
pub struct Prefilter {
    /// `tables[k][c]`: bits of the literals whose byte `k` is `c` (either case), or that are
    /// shorter than `k + 1`; `tables[0]` also holds the class bits of `c`.
    tables: Box<[[u64; 256]; 3]>,
    /// Literal indices of each literal bit.
    groups: Vec<Vec<usize>>,
    /// Lower-case literals, and the rules each one wakes.
    words: Vec<Vec<u8>>,
    literal_masks: Vec<RuleMask>,
    digits: Vec<(usize, RuleMask)>,
    bytes: Vec<(u8, RuleMask)>,
    custom: Option<(RegexSet, RuleMask)>,
    /// Fewest digits any digit trigger needs.
    min_digits: usize,
    overflow: bool,
    /// The block pass, where the CPU runs it; else every string takes the byte-wise pass.
    blocks: Option<Fingerprint>,
    /// Whether every hex word (hex digits with a letter, as ids are) is proven to wake nothing.
    hex_clean: bool,
}

/// What one pass over a string found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// The rules that may match.
    pub mask: RuleMask,
    /// The string holds a backslash or a percent sign, so an escaped secret may hide in it.
    pub encoded: bool,
}

#[cfg(test)]
impl Scan {
    /// Every rule, every decoded view: what the prefilter may only ever narrow.
    pub const ALL: Scan = Scan {
        mask: RuleMask::MAX,
        encoded: true,
    };
}

/// Bit of rule `i` (0 for indices past the mask width).
pub fn bit(i: usize) -> RuleMask {
    if i < 64 {
        1 << i
    } else {
        0
    }
}

impl Prefilter {
    /// Builds from each rule's trigger; `custom` holds the patterns of `Trigger::Always` rules.
    pub fn new(triggers: &[Trigger], custom: &[&str]) -> Result<Prefilter> {
        let mut pf = Prefilter {
            tables: Box::new([[0; 256]; 3]),
            groups: vec![Vec::new(); LITERAL_BITS],
            words: Vec::new(),
            literal_masks: Vec::new(),
            digits: Vec::new(),
            bytes: Vec::new(),
            custom: None,
            min_digits: 0,
            overflow: triggers.len() > 64,
            blocks: None,
            hex_clean: false,
        };
        for (i, t) in triggers.iter().enumerate() {
            pf.add(i, t);
        }
        pf.fill_tables();
        pf.min_digits = pf.digits.iter().map(|d| d.0).min().unwrap_or(0);
        pf.custom = build_custom(triggers, custom)?;
        pf.blocks = Fingerprint::available().then(|| pf.fingerprint());
        pf.hex_clean = pf.hex_words_wake_nothing();
        Ok(pf)
    }

    /// Whether the tables prove that no hex word wakes a rule: no literal is made of hex digits
    /// alone (either case), no trigger byte is one, no backslash or percent sign can occur, and a
    /// digit run glued to a letter never counts (`longest_digit_run`), so a hex word with a
    /// letter has none. Custom patterns and rules past the mask width run on any string.
    fn hex_words_wake_nothing(&self) -> bool {
        let hex = |w: &[u8]| w.iter().all(u8::is_ascii_hexdigit);
        self.custom.is_none()
            && !self.overflow
            && !self.words.iter().any(|w| hex(w))
            && !self.bytes.iter().any(|(b, _)| b.is_ascii_hexdigit())
    }

    /// Whether `text` is a hex word (hex digits only, a letter among them: trace, span and
    /// session ids) and the tables prove such words clean; then no rule can match it.
    pub fn proven_clean(&self, text: &str) -> bool {
        self.hex_clean && hex_word(text.as_bytes())
    }

    fn fingerprint(&self) -> Fingerprint {
        let rare: Vec<u8> = [b'\\', b'%']
            .into_iter()
            .chain(self.bytes.iter().map(|b| b.0))
            .collect();
        // A digit rule needs at least one digit, so `min_digits` 0 would mean no digit rule.
        let min_digits = if self.digits.is_empty() {
            0
        } else {
            self.min_digits.max(1)
        };
        Fingerprint::new(&self.words, &rare, min_digits)
    }

    fn add(&mut self, i: usize, trigger: &Trigger) {
        match trigger {
            Trigger::Literals(lits) => {
                for w in lits.iter().map(|w| w.to_ascii_lowercase().into_bytes()) {
                    match self.words.iter().position(|x| *x == w) {
                        Some(p) => self.literal_masks[p] |= bit(i),
                        None if w.is_empty() => {}
                        None => {
                            self.words.push(w);
                            self.literal_masks.push(bit(i));
                        }
                    }
                }
            }
            Trigger::Digits(n) => self.digits.push((*n, bit(i))),
            Trigger::Byte(b) => self.bytes.push((*b, bit(i))),
            Trigger::Always => {}
        }
    }

    fn fill_tables(&mut self) {
        for (j, w) in self.words.iter().enumerate() {
            let b = 1 << (j % LITERAL_BITS);
            self.groups[j % LITERAL_BITS].push(j);
            for (k, table) in self.tables.iter_mut().enumerate() {
                match w.get(k) {
                    Some(&c) => set_either_case(table, c, b),
                    None => table.iter_mut().for_each(|t| *t |= b),
                }
            }
        }
        let first = &mut self.tables[0];
        first[b'0' as usize..=b'9' as usize]
            .iter_mut()
            .for_each(|f| *f |= DIGIT);
        first[b'\\' as usize] |= BACKSLASH;
        first[b'%' as usize] |= PERCENT;
        for (k, &(b, _)) in self.bytes.iter().enumerate() {
            first[b as usize] |= trigger_bit(k);
        }
    }

    /// The rules that may match `text`.
    pub fn scan(&self, text: &str) -> RuleMask {
        self.scan_text(text).mask
    }

    /// The rules that may match `text`, and whether it holds escapes.
    pub fn scan_text(&self, text: &str) -> Scan {
        let (mask, class) = self.scan_bytes(text.as_bytes());
        let mask = mask | self.custom_mask([text]);
        Scan {
            mask: self.widen(mask, !text.is_empty()),
            encoded: class & (BACKSLASH | PERCENT) != 0,
        }
    }

    /// The rules that may match any of `parts` (no literal or digit run spans two parts), and
    /// whether any part holds escapes.
    pub fn scan_parts_text<'a, I>(&self, parts: I) -> Scan
    where
        I: IntoIterator<Item = &'a str> + Clone,
    {
        let (mut mask, mut class) = (0, 0);
        let mut non_empty = false;
        for p in parts.clone() {
            let (m, c) = self.scan_bytes(p.as_bytes());
            (mask, class) = (mask | m, class | c);
            non_empty |= !p.is_empty();
        }
        Scan {
            mask: self.widen(mask | self.custom_mask(parts), non_empty),
            encoded: class & (BACKSLASH | PERCENT) != 0,
        }
    }

    /// Literals, digit runs and trigger bytes of `b`, and the OR of its class bits.
    fn scan_bytes(&self, b: &[u8]) -> (RuleMask, u64) {
        match &self.blocks {
            Some(fp) if b.len() >= BLOCK_MIN => self.scan_blocks(fp, b),
            _ => self.scan_bytewise(b),
        }
    }

    /// `scan_bytes` 16 bytes at a time: candidates are checked on the exact tables.
    fn scan_blocks(&self, fp: &Fingerprint, b: &[u8]) -> (RuleMask, u64) {
        let mut mask = 0;
        let seen = fp.scan(b, |i| {
            let m = self.exact_at(b, i);
            if m != 0 {
                mask |= self.literals_at(b, i, m);
            }
        });
        // Rare bytes are rare: the exact class bits are worth a second, byte-wise look then.
        let class = match seen.rare {
            true => b.iter().fold(0, |c, &x| c | self.tables[0][x as usize]),
            false => 0,
        };
        if seen.digit_run {
            mask |= self.digit_mask(b);
        }
        (mask | self.byte_mask(b, class), class)
    }

    /// Literal bits of the exact tables at `i` (a missing byte rules nothing out).
    fn exact_at(&self, b: &[u8], i: usize) -> u64 {
        let [t0, t1, t2] = &*self.tables;
        let at = |t: &[u64; 256], k: usize| b.get(k).map_or(u64::MAX, |&c| t[c as usize]);
        at(t0, i) & at(t1, i + 1) & at(t2, i + 2) & LITERAL_MASK
    }

    /// Both passes over `b` (the block pass where the CPU runs it), so tests can compare them.
    #[cfg(test)]
    pub fn both_passes(&self, b: &[u8]) -> (Option<(RuleMask, u64)>, (RuleMask, u64)) {
        let blocks = self.blocks.as_ref().map(|fp| self.scan_blocks(fp, b));
        (blocks, self.scan_bytewise(b))
    }

    /// `scan_bytes` one position at a time.
    fn scan_bytewise(&self, b: &[u8]) -> (RuleMask, u64) {
        let [t0, t1, t2] = &*self.tables;
        let (mut mask, mut class) = (0, 0);
        for (i, w) in b.windows(3).enumerate() {
            let f = t0[w[0] as usize];
            class |= f;
            let m = f & t1[w[1] as usize] & t2[w[2] as usize] & LITERAL_MASK;
            if m != 0 {
                mask |= self.literals_at(b, i, m);
            }
        }
        // The last two positions: a missing byte rules nothing out, the check does.
        for i in b.len().saturating_sub(2)..b.len() {
            let f = t0[b[i] as usize];
            class |= f;
            let m = f & b.get(i + 1).map_or(u64::MAX, |&c| t1[c as usize]) & LITERAL_MASK;
            if m != 0 {
                mask |= self.literals_at(b, i, m);
            }
        }
        let digits = match class & DIGIT {
            0 => 0,
            _ => self.digit_mask(b),
        };
        (mask | digits | self.byte_mask(b, class), class)
    }

    /// The rules of the literals among `bits` that occur at `at`.
    #[inline(never)]
    fn literals_at(&self, b: &[u8], at: usize, bits: u64) -> RuleMask {
        let mut mask = 0;
        let mut bits = bits;
        while bits != 0 {
            for &j in &self.groups[bits.trailing_zeros() as usize] {
                let w = &self.words[j];
                if b.len() - at >= w.len() && b[at..at + w.len()].eq_ignore_ascii_case(w) {
                    mask |= self.literal_masks[j];
                }
            }
            bits &= bits - 1;
        }
        mask
    }

    /// Digit-run rules of `b`.
    fn digit_mask(&self, b: &[u8]) -> RuleMask {
        // A string shorter than the fewest digits any rule needs holds no run worth measuring.
        if self.digits.is_empty() || b.len() < self.min_digits {
            return 0;
        }
        let run = longest_digit_run(b, self.min_digits);
        self.digits
            .iter()
            .filter(|d| run >= d.0)
            .fold(0, |m, d| m | d.1)
    }

    /// Trigger-byte rules, from the class bits seen.
    fn byte_mask(&self, b: &[u8], class: u64) -> RuleMask {
        let mut mask = 0;
        for (k, &(byte, m)) in self.bytes.iter().enumerate() {
            // A trigger bit is shared past `TRIGGER_BITS` bytes; then the byte itself is checked.
            let shared = self.bytes.len() > TRIGGER_BITS;
            if class & trigger_bit(k) != 0 && (!shared || memchr(byte, b).is_some()) {
                mask |= m;
            }
        }
        mask
    }

    fn custom_mask<'a>(&self, parts: impl IntoIterator<Item = &'a str>) -> RuleMask {
        match &self.custom {
            Some((set, m)) if parts.into_iter().any(|p| set.is_match(p)) => *m,
            _ => 0,
        }
    }

    /// Rules past the mask width have no bit of their own: they run on any string.
    fn widen(&self, mask: RuleMask, non_empty: bool) -> RuleMask {
        match self.overflow && mask == 0 && non_empty {
            true => RuleMask::MAX,
            false => mask,
        }
    }
}

/// Hex digits only, with at least one letter; read 16 bytes at a time so prose fails early,
/// after its first four bytes alone (most words that are not ids fail there).
fn hex_word(b: &[u8]) -> bool {
    if !b.iter().take(4).all(u8::is_ascii_hexdigit) {
        return false;
    }
    let mut letter = false;
    for chunk in b.chunks(16) {
        let (hex, alpha) = chunk.iter().fold((true, false), |(h, a), c| {
            (h & c.is_ascii_hexdigit(), a | c.is_ascii_alphabetic())
        });
        if !hex {
            return false;
        }
        letter |= alpha;
    }
    letter
}

fn trigger_bit(k: usize) -> u64 {
    TRIGGER_BASE << (k % TRIGGER_BITS)
}

fn set_either_case(table: &mut [u64; 256], byte: u8, bits: u64) {
    table[byte.to_ascii_lowercase() as usize] |= bits;
    table[byte.to_ascii_uppercase() as usize] |= bits;
}

fn build_custom(triggers: &[Trigger], patterns: &[&str]) -> Result<Option<(RegexSet, RuleMask)>> {
    let mask = triggers
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == Trigger::Always)
        .fold(0, |m, (i, _)| m | bit(i));
    if patterns.is_empty() {
        return Ok(None);
    }
    let set = regex::RegexSetBuilder::new(patterns)
        .size_limit(super::REGEX_SIZE_LIMIT * 4)
        .dfa_size_limit(super::REGEX_SIZE_LIMIT * 4)
        .build()
        .map_err(|e| Error::Config(format!("redaction rules: {e}")))?;
    Ok(Some((set, mask)))
}

/// The most digits in one run, where single spaces, dashes or dots may sit between digits; runs with
/// fewer than `min` digits may be missed (the answer is then below `min` all the same).
pub fn longest_digit_run(bytes: &[u8], min: usize) -> usize {
    let min = min.max(1);
    let mut best = 0;
    // A run of `min` digits spans at least `min` bytes, so probing every `min`-th byte finds it.
    let mut p = min - 1;
    while p < bytes.len() {
        if !in_digit_run(bytes, p) {
            p += min;
            continue;
        }
        let start = run_start(bytes, p);
        let run = run_from(bytes, start);
        // A group glued to letters (`c3181831697bc`, hex ids) never matches: rules need a boundary.
        let mut digits = run.digits;
        if is_word(bytes, start.wrapping_sub(1)) {
            digits -= run.first_group;
        }
        if is_word(bytes, run.last) {
            digits = digits.saturating_sub(run.last_group);
        }
        best = best.max(digits);
        let end = run.end;
        p = end.max(p + 1) + min - 1;
    }
    best
}

/// A digit, or a single separator between two digits.
fn in_digit_run(bytes: &[u8], p: usize) -> bool {
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    digit(p) || (is_sep(bytes[p]) && p > 0 && digit(p - 1) && digit(p + 1))
}

/// A byte that may sit between digit groups: `phone` takes dots as well as spaces and dashes.
fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.')
}

/// Walks left from `p` to the first digit of the run holding it.
fn run_start(bytes: &[u8], p: usize) -> usize {
    let mut s = p + 1;
    while s > 0 {
        let b = bytes[s - 1];
        let joined_sep = is_sep(b) && s >= 2 && bytes[s - 2].is_ascii_digit();
        if !(b.is_ascii_digit() || joined_sep) {
            break;
        }
        s -= 1;
    }
    s
}

/// One run of digit groups.
struct Run {
    digits: usize,
    first_group: usize,
    last_group: usize,
    /// Index just past the last digit.
    last: usize,
    /// Index where the scan stopped.
    end: usize,
}

fn run_from(bytes: &[u8], start: usize) -> Run {
    let mut run = Run {
        digits: 0,
        first_group: 0,
        last_group: 0,
        last: start,
        end: start,
    };
    let (mut sep, mut seen_sep) = (false, false);
    while run.end < bytes.len() {
        let b = bytes[run.end];
        if b.is_ascii_digit() {
            run.digits += 1;
            run.last_group = if sep { 1 } else { run.last_group + 1 };
            if !seen_sep {
                run.first_group += 1;
            }
            sep = false;
            run.last = run.end + 1;
        } else if is_sep(b) && run.digits > 0 && !sep {
            sep = true;
            seen_sep = true;
        } else {
            break;
        }
        run.end += 1;
    }
    run
}

/// Whether `bytes[i]` exists and is a letter or underscore.
fn is_word(bytes: &[u8], i: usize) -> bool {
    bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
}
