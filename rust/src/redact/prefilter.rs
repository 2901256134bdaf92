//! The cheap first pass: which rules can possibly match a string, so clean strings skip them all.

use std::cell::RefCell;

use aho_corasick::packed::{self, Searcher};
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind, Span};
use memchr::memchr;
use regex::RegexSet;

use super::rules::Trigger;
use crate::error::{Error, Result};

/// A bit mask over rule indices; rules at index 64 and above are run whenever anything may match.
pub type RuleMask = u64;

/// Finds the rules worth running on a string from literals, digit runs and rare bytes.
#[derive(Debug, Clone)]
pub struct Prefilter {
    pub(super) literals: Option<Literals>,
    literal_masks: Vec<RuleMask>,
    digits: Vec<(usize, RuleMask)>,
    bytes: Vec<(u8, RuleMask)>,
    custom: Option<(RegexSet, RuleMask)>,
    /// Fewest digits any digit trigger needs.
    min_digits: usize,
    overflow: bool,
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
            literals: None,
            literal_masks: Vec::new(),
            digits: Vec::new(),
            bytes: Vec::new(),
            custom: None,
            min_digits: 0,
            overflow: triggers.len() > 64,
        };
        let mut words: Vec<String> = Vec::new();
        for (i, t) in triggers.iter().enumerate() {
            pf.add(i, t, &mut words);
        }
        pf.literals = build_literals(&words)?;
        pf.min_digits = pf.digits.iter().map(|d| d.0).min().unwrap_or(0);
        pf.custom = build_custom(triggers, custom)?;
        Ok(pf)
    }

    fn add(&mut self, i: usize, trigger: &Trigger, words: &mut Vec<String>) {
        match trigger {
            Trigger::Literals(lits) => {
                for w in lits.iter().map(|w| w.to_ascii_lowercase()) {
                    match words.iter().position(|x| *x == w) {
                        Some(p) => self.literal_masks[p] |= bit(i),
                        None => {
                            words.push(w);
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

    /// The rules that may match `text`.
    pub fn scan(&self, text: &str) -> RuleMask {
        self.scan_parts([text])
    }

    /// The rules that may match any of `parts`, scanned in one pass (a newline between parts).
    pub fn scan_parts<'a, I>(&self, parts: I) -> RuleMask
    where
        I: IntoIterator<Item = &'a str> + Clone,
    {
        let mut mask = LOWER.with_borrow_mut(|buf| {
            lower_joined(parts.clone(), buf);
            self.scan_lower(buf)
        });
        if let Some((set, m)) = &self.custom {
            if parts.clone().into_iter().any(|p| set.is_match(p)) {
                mask |= m;
            }
        }
        self.widen(mask, parts.into_iter().any(|p| !p.is_empty()))
    }

    /// Literals, digit runs and bytes over the lower-cased text.
    fn scan_lower(&self, bytes: &[u8]) -> RuleMask {
        let mut mask = 0;
        if let Some(lits) = &self.literals {
            lits.each_match(bytes, |p| mask |= self.literal_masks[p]);
        }
        if !self.digits.is_empty() {
            let run = longest_digit_run(bytes, self.min_digits);
            mask |= self
                .digits
                .iter()
                .filter(|d| run >= d.0)
                .fold(0, |m, d| m | d.1);
        }
        for &(b, m) in &self.bytes {
            if mask & m != m && memchr(b, bytes).is_some() {
                mask |= m;
            }
        }
        mask
    }

    /// Rules past the mask width have no bit of their own: they run on any string.
    fn widen(&self, mask: RuleMask, non_empty: bool) -> RuleMask {
        match self.overflow && mask == 0 && non_empty {
            true => RuleMask::MAX,
            false => mask,
        }
    }
}

/// The literal matcher: SIMD Teddy when it applies (up to 64 patterns), else an automaton.
#[derive(Debug, Clone)]
pub(super) enum Literals {
    Packed(Searcher),
    Automaton(AhoCorasick),
}

impl Literals {
    /// Calls `f` with the pattern index of every occurrence, overlapping ones included.
    fn each_match(&self, hay: &[u8], mut f: impl FnMut(usize)) {
        match self {
            Literals::Packed(s) => {
                let mut at = 0;
                // Restarting one byte after each match start also finds overlapping literals.
                while let Some(m) = s.find_in(hay, Span::from(at..hay.len())) {
                    f(m.pattern().as_usize());
                    at = m.start() + 1;
                }
            }
            Literals::Automaton(ac) => {
                for m in ac.find_overlapping_iter(hay) {
                    f(m.pattern().as_usize());
                }
            }
        }
    }
}

fn build_literals(words: &[String]) -> Result<Option<Literals>> {
    if words.is_empty() {
        return Ok(None);
    }
    let mut packed = packed::Config::new()
        .match_kind(packed::MatchKind::LeftmostFirst)
        .builder();
    if let Some(searcher) = packed.extend(words).build() {
        return Ok(Some(Literals::Packed(searcher)));
    }
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(words)
        .map_err(|e| Error::Config(format!("redaction prefilter: {e}")))?;
    Ok(Some(Literals::Automaton(ac)))
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

thread_local! {
    /// Per-thread scratch for the lower-cased copy, reused across calls.
    static LOWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Lower-cases `parts` into `buf`, separated by newlines (no literal or digit run spans one).
fn lower_joined<'a>(parts: impl IntoIterator<Item = &'a str>, buf: &mut Vec<u8>) {
    buf.clear();
    for (i, p) in parts.into_iter().enumerate() {
        if i > 0 {
            buf.push(b'\n');
        }
        let start = buf.len();
        buf.extend_from_slice(p.as_bytes());
        buf[start..].make_ascii_lowercase();
    }
}

/// The most digits in one run, where single spaces or dashes may sit between digits; runs with
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

fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'-'
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

/// Whether `bytes[i]` exists and is a letter or underscore (the text is lower-cased).
fn is_word(bytes: &[u8], i: usize) -> bool {
    bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_uppercase() || *b == b'_')
}
