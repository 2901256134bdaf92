//! The prefilter's block pass: 16 bytes at a time, where a literal may start and where digits run.
//!
//! A three-byte fingerprint in nibble tables (the Teddy scheme) gives each position the buckets
//! of literals that may start there; a hit is only a candidate, which the exact tables then
//! check. The same pass marks digit runs and rare bytes, so clean strings are read once.

/// Bucket bit of literal `j`; buckets are filled in order of the literals' folded first bytes.
const BUCKETS: usize = 8;

/// Nibble tables of the literals' first three bytes, and of the rare bytes.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    /// `lo[k][n]`: buckets of the literals whose folded byte `k` has low nibble `n` (or that are
    /// shorter than `k + 1`); `hi` likewise for the high nibble.
    lo: [[u8; 16]; 3],
    hi: [[u8; 16]; 3],
    /// Nibble tables of the rare bytes (backslash, percent, trigger bytes), one bit per byte.
    rare_lo: [u8; 16],
    rare_hi: [u8; 16],
    /// Fewest digits a digit trigger needs; 0 when no rule has one.
    min_digits: usize,
}

/// What the block pass saw in a string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// A rare byte occurs.
    pub rare: bool,
    /// A run of digits (single spaces, dashes or dots between them) spans at least `min_digits`
    /// bytes.
    pub digit_run: bool,
}

/// Folds ASCII upper case onto lower case; other bytes move too, which only widens the filter.
fn fold(b: u8) -> u8 {
    b | 0x20
}

impl Fingerprint {
    /// Tables for lower-case `words`, rare bytes `rare` (at most 8) and digit runs of `min_digits`.
    pub fn new(words: &[Vec<u8>], rare: &[u8], min_digits: usize) -> Fingerprint {
        let mut fp = Fingerprint {
            lo: [[0; 16]; 3],
            hi: [[0; 16]; 3],
            rare_lo: [0; 16],
            rare_hi: [0; 16],
            min_digits,
        };
        for (w, bucket) in words.iter().zip(buckets(words)) {
            fp.add_word(w, 1 << bucket);
        }
        for (k, &b) in rare.iter().enumerate() {
            fp.rare_lo[(b & 15) as usize] |= 1 << (k % 8);
            fp.rare_hi[(b >> 4) as usize] |= 1 << (k % 8);
        }
        fp
    }

    fn add_word(&mut self, w: &[u8], bit: u8) {
        for k in 0..3 {
            match w.get(k) {
                Some(&c) => {
                    self.lo[k][(fold(c) & 15) as usize] |= bit;
                    self.hi[k][(fold(c) >> 4) as usize] |= bit;
                }
                None => {
                    self.lo[k].iter_mut().for_each(|x| *x |= bit);
                    self.hi[k].iter_mut().for_each(|x| *x |= bit);
                }
            }
        }
    }

    /// Whether this CPU runs the block pass (SSSE3 on x86_64).
    pub fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("ssse3");
        #[cfg(not(target_arch = "x86_64"))]
        return false;
    }

    /// Calls `candidate(i)` for each position where a literal may start; only when `available`.
    #[cfg(target_arch = "x86_64")]
    pub fn scan(&self, b: &[u8], candidate: impl FnMut(usize)) -> Seen {
        debug_assert!(Fingerprint::available());
        // SAFETY: the constructor of the owning prefilter checked that the CPU has SSSE3.
        unsafe { x86::scan(self, b, candidate) }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn scan(&self, _b: &[u8], _candidate: impl FnMut(usize)) -> Seen {
        unreachable!("the block pass runs only where `available` said so")
    }
}

/// Each word's bucket: words sorted by folded first bytes, cut into `BUCKETS` even runs, so a
/// bucket's nibble sets stay narrow.
fn buckets(words: &[Vec<u8>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..words.len()).collect();
    let key = |j: usize| {
        words[j]
            .iter()
            .take(3)
            .map(|&c| fold(c))
            .collect::<Vec<u8>>()
    };
    order.sort_by_key(|&j| key(j));
    let mut bucket = vec![0; words.len()];
    for (rank, &j) in order.iter().enumerate() {
        bucket[j] = rank * BUCKETS / words.len().max(1);
    }
    bucket
}

/// Longest run of ones seen so far, fed 16 positions at a time.
struct Runs {
    need: u32,
    /// Ones at the end of what was fed.
    open: u32,
    found: bool,
}

impl Runs {
    /// Takes in the next `width` positions (1 to 16), bit `i` set where position `i` is in a run.
    #[inline(always)]
    fn feed(&mut self, r: u32, width: u32) {
        if r == 0 {
            self.open = 0;
            return;
        }
        if r == (1 << width) - 1 {
            self.open += width;
        } else {
            let inner = self.need <= width && has_run(r, self.need);
            self.found |= self.open + r.trailing_ones() >= self.need || inner;
            self.open = (r << (32 - width)).leading_ones();
        }
        self.found |= self.open >= self.need;
    }
}

/// Whether `r` holds `n` consecutive ones (`n` ≥ 1), by doubling the run length tested.
fn has_run(r: u32, n: u32) -> bool {
    let (mut x, mut k) = (r, 1);
    while k < n {
        let s = k.min(n - k);
        x &= x >> s;
        k += s;
    }
    x != 0
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Fingerprint, Runs, Seen};

    /// Bytes a block covers: 16 positions and the two bytes after the last.
    const READ: usize = 18;

    /// Bit masks of one block of 16 positions.
    struct Block {
        candidates: u32,
        digits: u32,
        /// Positions holding a digit one byte further on.
        next_digits: u32,
        separators: u32,
        rare: u32,
    }

    #[target_feature(enable = "ssse3")]
    pub unsafe fn scan(fp: &Fingerprint, b: &[u8], mut candidate: impl FnMut(usize)) -> Seen {
        let tables = Tables::new(fp);
        let mut pass = Pass {
            runs: Runs {
                need: fp.min_digits.max(1) as u32,
                open: 0,
                found: false,
            },
            rare: 0,
            prev_digit: 0,
            digits: fp.min_digits > 0,
        };
        let mut at = 0;
        while b.len() - at > 16 {
            let p = b.as_ptr().add(at);
            let v1 = _mm_loadu_si128(p.add(1).cast());
            // With 17 bytes left, the zero shifted in stands for the byte past the end.
            let v2 = match b.len() - at {
                17 => _mm_srli_si128::<1>(v1),
                _ => _mm_loadu_si128(p.add(2).cast()),
            };
            let v = [_mm_loadu_si128(p.cast()), v1, v2];
            pass.visit(at, tables.block(v), 0, 16, &mut candidate);
            at += 16;
        }
        if at < b.len() && b.len() >= 16 {
            // The last 16 bytes shifted in zeros stand for the bytes past the end: no digit, no
            // separator, no rare byte. Positions before `at` were seen already.
            let last = b.len() - 16;
            let v0 = _mm_loadu_si128(b.as_ptr().add(last).cast());
            let v = [v0, _mm_srli_si128::<1>(v0), _mm_srli_si128::<2>(v0)];
            let seen = (at - last) as u32;
            pass.visit(at, tables.block(v), seen, 16 - seen, &mut candidate);
        } else if at < b.len() {
            let mut pad = [0u8; READ];
            pad[..b.len()].copy_from_slice(b);
            let v = [0, 1, 2].map(|k| _mm_loadu_si128(pad.as_ptr().add(k).cast()));
            pass.visit(0, tables.block(v), 0, b.len() as u32, &mut candidate);
        }
        Seen {
            rare: pass.rare != 0,
            digit_run: pass.digits && pass.runs.found,
        }
    }

    /// What the blocks seen so far add up to.
    struct Pass {
        runs: Runs,
        rare: u32,
        /// Whether the last position of the previous block held a digit.
        prev_digit: u32,
        /// Whether digit runs are measured at all.
        digits: bool,
    }

    impl Pass {
        /// Takes in positions `at..at + width` of the string: those of the block from `skip` on.
        #[inline(always)]
        fn visit(
            &mut self,
            at: usize,
            blk: Block,
            skip: u32,
            width: u32,
            candidate: &mut impl FnMut(usize),
        ) {
            let window = |x: u32| (x >> skip) & ((1 << width) - 1);
            let mut c = window(blk.candidates);
            while c != 0 {
                candidate(at + c.trailing_zeros() as usize);
                c &= c - 1;
            }
            self.rare |= window(blk.rare);
            if self.digits {
                // Bit 0's neighbour before is the previous block's last byte, or skipped.
                let before = blk.digits << 1 | self.prev_digit;
                let joined = blk.separators & before & blk.next_digits;
                self.runs.feed(window(blk.digits | joined), width);
                self.prev_digit = blk.digits >> 15 & 1;
            }
        }
    }

    /// The fingerprint's tables as vectors, and the constants of a block.
    struct Tables {
        lo: [__m128i; 3],
        hi: [__m128i; 3],
        rare_lo: __m128i,
        rare_hi: __m128i,
    }

    impl Tables {
        #[target_feature(enable = "ssse3")]
        unsafe fn new(fp: &Fingerprint) -> Tables {
            let v = |t: &[u8; 16]| _mm_loadu_si128(t.as_ptr().cast());
            Tables {
                lo: [v(&fp.lo[0]), v(&fp.lo[1]), v(&fp.lo[2])],
                hi: [v(&fp.hi[0]), v(&fp.hi[1]), v(&fp.hi[2])],
                rare_lo: v(&fp.rare_lo),
                rare_hi: v(&fp.rare_hi),
            }
        }

        /// Masks of 16 positions, given the bytes from each position on (`v[k]`: from `k` on).
        #[inline]
        #[target_feature(enable = "ssse3")]
        unsafe fn block(&self, v: [__m128i; 3]) -> Block {
            let nib = _mm_set1_epi8(0x0f);
            let zero = _mm_setzero_si128();
            let mut hit = _mm_set1_epi8(-1);
            for ((v, lo), hi) in v.iter().zip(&self.lo).zip(&self.hi) {
                let f = _mm_or_si128(*v, _mm_set1_epi8(0x20));
                let lo = _mm_shuffle_epi8(*lo, _mm_and_si128(f, nib));
                let hi = _mm_shuffle_epi8(*hi, _mm_and_si128(_mm_srli_epi16::<4>(f), nib));
                hit = _mm_and_si128(hit, _mm_and_si128(lo, hi));
            }
            let rare_lo = _mm_shuffle_epi8(self.rare_lo, _mm_and_si128(v[0], nib));
            let rare_hi = _mm_and_si128(_mm_srli_epi16::<4>(v[0]), nib);
            let rare = _mm_and_si128(rare_lo, _mm_shuffle_epi8(self.rare_hi, rare_hi));
            let sep = _mm_or_si128(
                _mm_cmpeq_epi8(v[0], _mm_set1_epi8(b' ' as i8)),
                _mm_or_si128(
                    _mm_cmpeq_epi8(v[0], _mm_set1_epi8(b'-' as i8)),
                    _mm_cmpeq_epi8(v[0], _mm_set1_epi8(b'.' as i8)),
                ),
            );
            Block {
                candidates: !bits(_mm_cmpeq_epi8(hit, zero)) & 0xffff,
                digits: bits(digits(v[0])),
                next_digits: bits(digits(v[1])),
                separators: bits(sep),
                rare: !bits(_mm_cmpeq_epi8(rare, zero)) & 0xffff,
            }
        }
    }

    /// 0xff where the byte is an ASCII digit.
    #[inline]
    #[target_feature(enable = "ssse3")]
    unsafe fn digits(v: __m128i) -> __m128i {
        let x = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
        _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(9)), x)
    }

    #[inline]
    #[target_feature(enable = "ssse3")]
    unsafe fn bits(v: __m128i) -> u32 {
        _mm_movemask_epi8(v) as u32
    }
}
