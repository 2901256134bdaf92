//! A measurement of simdjson's stage 1 over a whole chunk (AVX2, 64 bytes a step): the cost of
//! indexing structural characters before any per-line scanning, set against the scanner's.

use std::arch::x86_64::*;

/// Per 64-byte block: structural characters outside strings (string quotes included), control
/// bytes inside strings, and newlines.
#[derive(Default)]
pub struct Index {
    pub structural: Vec<u64>,
    pub control: Vec<u64>,
    pub newline: Vec<u64>,
}

const EVEN: u64 = 0x5555_5555_5555_5555;

/// Carries between blocks: whether the next byte is escaped, whether a string is open.
#[derive(Default)]
struct Carry {
    escaped: u64,
    in_string: u64,
}

/// Whether this machine runs the probe: it has no fallback of its own.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("pclmulqdq")
}

/// The index of `data`; its last partial block is padded with spaces.
pub fn index(data: &[u8], out: &mut Index) {
    assert!(available());
    let blocks = data.len().div_ceil(64);
    out.structural.clear();
    out.control.clear();
    out.newline.clear();
    out.structural.reserve(blocks);
    out.control.reserve(blocks);
    out.newline.reserve(blocks);
    let mut carry = Carry::default();
    let mut chunks = data.chunks_exact(64);
    for block in &mut chunks {
        // SAFETY: AVX2 and PCLMULQDQ were detected above; the block holds 64 bytes.
        unsafe { step(block.as_ptr(), &mut carry, out) };
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [b' '; 64];
        last[..rest.len()].copy_from_slice(rest);
        // SAFETY: as above.
        unsafe { step(last.as_ptr(), &mut carry, out) };
    }
}

#[target_feature(enable = "avx2,pclmulqdq")]
unsafe fn step(p: *const u8, carry: &mut Carry, out: &mut Index) {
    let lo = _mm256_loadu_si256(p.cast());
    let hi = _mm256_loadu_si256(p.add(32).cast());
    let eq = |c: u8| {
        let c = _mm256_set1_epi8(c as i8);
        let l = _mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, c)) as u32 as u64;
        let h = _mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, c)) as u32 as u64;
        l | h << 32
    };
    let quote = eq(b'"');
    let backslash = eq(b'\\');
    let newline = eq(b'\n');
    // Structural characters by a nibble lookup, as simdjson classifies them.
    let ops = {
        let class = |v: __m256i| {
            // `{`, `}`, `[`, `]`: 0x7b 0x7d 0x5b 0x5d (| 0x20 folds brackets onto braces);
            // `:` 0x3a, `,` 0x2c.
            let folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
            let brace = _mm256_or_si256(
                _mm256_cmpeq_epi8(folded, _mm256_set1_epi8(0x7b)),
                _mm256_cmpeq_epi8(folded, _mm256_set1_epi8(0x7d)),
            );
            let colon = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b':' as i8));
            let comma = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b',' as i8));
            _mm256_movemask_epi8(_mm256_or_si256(brace, _mm256_or_si256(colon, comma))) as u32
        };
        u64::from(class(lo)) | u64::from(class(hi)) << 32
    };
    let control = {
        let ctl = |v: __m256i| {
            let min = _mm256_min_epu8(v, _mm256_set1_epi8(0x1f));
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(min, v)) as u32
        };
        u64::from(ctl(lo)) | u64::from(ctl(hi)) << 32
    };

    let escaped = escaped(backslash, &mut carry.escaped);
    let quote = quote & !escaped;
    let mut in_string = prefix_xor(quote) ^ carry.in_string;
    // A line never continues a string: the parity restarts after each newline, so a broken
    // line leaves the next one alone.
    let mut lines = newline;
    while lines != 0 {
        let at = lines.trailing_zeros();
        if in_string >> at & 1 == 1 {
            in_string ^= u64::MAX << at;
        }
        lines &= lines - 1;
    }
    carry.in_string = ((in_string as i64) >> 63) as u64;

    out.structural.push(ops & !in_string | quote);
    out.control.push(control & in_string);
    out.newline.push(newline);
}

/// The bytes escaped by a backslash, with the carry into the next block.
#[inline(always)]
fn escaped(backslash: u64, carry: &mut u64) -> u64 {
    let backslash = backslash & !*carry;
    let follows = backslash << 1 | *carry;
    let odd_starts = backslash & !EVEN & !follows;
    let (even_runs, overflow) = odd_starts.overflowing_add(backslash);
    *carry = u64::from(overflow);
    (EVEN ^ even_runs << 1) & follows
}

#[target_feature(enable = "pclmulqdq")]
unsafe fn prefix_xor(bits: u64) -> u64 {
    let x = _mm_set_epi64x(0, bits as i64);
    _mm_cvtsi128_si64(_mm_clmulepi64_si128(x, _mm_set1_epi8(-1), 0)) as u64
}

/// The structural positions of an index, as simdjson's stage 2 reads them.
pub fn flatten(index: &Index, out: &mut Vec<u32>) {
    out.clear();
    for (b, &bits) in index.structural.iter().enumerate() {
        let base = (b * 64) as u32;
        let mut bits = bits;
        out.reserve(64);
        while bits != 0 {
            out.push(base + bits.trailing_zeros());
            bits &= bits - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Structural positions by a plain byte walk.
    fn naive(data: &[u8]) -> Vec<u32> {
        let (mut out, mut in_str, mut esc) = (Vec::new(), false, false);
        for (i, &c) in data.iter().enumerate() {
            if c == b'\n' {
                (in_str, esc) = (false, false);
                continue;
            }
            // An escape hides a quote or a backslash; outside strings it changes nothing else.
            let escaped = std::mem::take(&mut esc);
            match c {
                b'\\' if !escaped => esc = true,
                b'"' if !escaped => {
                    in_str = !in_str;
                    out.push(i as u32);
                }
                _ if !in_str && b"{}[]:,".contains(&c) => out.push(i as u32),
                _ => {}
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn structurals_match_a_byte_walk(s in "[\"\\\\{}\\[\\]:,a\n é]{0,200}") {
            if !available() {
                return Ok(());
            }
            let mut idx = Index::default();
            index(s.as_bytes(), &mut idx);
            let mut flat = Vec::new();
            flatten(&idx, &mut flat);
            proptest::prop_assert_eq!(flat, naive(s.as_bytes()));
        }
    }
}
