//! Finding, merging and replacing secret spans in one string.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::ops::Range;

use super::config::Action;
use super::escape::{percent_view, unescape_view};
use super::prefilter::{bit, RuleMask, Scan};
use super::{Pattern, Redactor, Rule};

/// Bytes before a match searched for evidence keywords.
const KEYWORD_BEFORE: usize = 64;
/// Bytes after a match searched for evidence keywords.
const KEYWORD_AFTER: usize = 16;

/// A secret found at `start..end` of the string, by rule `rule`.
#[derive(Debug, Clone)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub rule: usize,
    /// The secret as matched in a decoded view, when it was found through one.
    pub decoded: Option<String>,
}

impl Redactor {
    /// Redacts `text`; `ctx` is the enclosing key name (evidence only). Second: a drop was asked.
    pub(crate) fn redact_in<'a>(
        &self,
        text: &'a str,
        ctx: &str,
        counts: &mut [u64],
    ) -> (Cow<'a, str>, bool) {
        let mut scan = self.prefilter.scan_text(text);
        scan.mask = self.gate_patterns(&[text], ctx, self.gate_assign([text], scan.mask));
        // A string with no prefilter hit and no escape cannot hold a match: one pass, no copy.
        match scan.mask != 0 || scan.encoded || self.ctx_may_wake(ctx) {
            true => self.redact_scanned(text, scan, ctx, counts),
            false => (Cow::Borrowed(text), false),
        }
    }

    /// Redacts `text` given its prefilter scan (`Scan::ALL` runs every rule on every view).
    pub(super) fn redact_scanned<'a>(
        &self,
        text: &'a str,
        scan: Scan,
        ctx: &str,
        counts: &mut [u64],
    ) -> (Cow<'a, str>, bool) {
        let mut spans = Vec::new();
        self.find_spans(text, scan, ctx, &mut spans);
        if spans.is_empty() {
            return (Cow::Borrowed(text), false);
        }
        self.drop_protected(text, &mut spans);
        if spans.is_empty() {
            return (Cow::Borrowed(text), false);
        }
        let merged = merge(spans, self.assign_rule);
        let (out, dropped) = self.replace(text, &merged, counts);
        (Cow::Owned(out), dropped)
    }

    /// Whether the prefilter and the rules' gates see nothing in `parts`: no rule can match, and
    /// no escape or percent sign can hide a secret.
    pub(crate) fn looks_clean(&self, parts: &[&str]) -> bool {
        let scan = self.prefilter.scan_parts_text(parts.iter().copied());
        let mask = self.gate_assign(parts.iter().copied(), scan.mask);
        self.gate_patterns(parts, "", mask) == 0 && !scan.encoded
    }

    /// Whether the key name `ctx` may wake a rule that takes its evidence from the key name.
    fn ctx_may_wake(&self, ctx: &str) -> bool {
        !ctx.is_empty()
            && self.keyword_mask != 0
            && self.prefilter.scan(ctx) & self.keyword_mask != 0
    }

    fn find_spans(&self, text: &str, scan: Scan, ctx: &str, spans: &mut Vec<Span>) {
        self.spans_plain(text, scan.mask, ctx, spans);
        if !scan.encoded {
            return;
        }
        // Limitation: one level of decoding; a secret both JSON-escaped and percent-encoded
        // inside the same string (`%5Cu0034…`) is not decoded twice.
        for view in [unescape_view(text), percent_view(text)]
            .into_iter()
            .flatten()
        {
            let mut inner = Vec::new();
            // A caller asking for every rule (`Scan::ALL`) gets every rule on the views too.
            let mask = match scan.mask {
                RuleMask::MAX => RuleMask::MAX,
                _ => self.prefilter.scan(&view.text),
            };
            self.spans_plain(&view.text, mask, ctx, &mut inner);
            for s in inner {
                let orig = view.original(s.start..s.end);
                let decoded = Some(view.text[s.start..s.end].to_string());
                spans.push(Span {
                    start: orig.start,
                    end: orig.end,
                    rule: s.rule,
                    decoded,
                });
            }
        }
    }

    /// Spans of the rules in `mask` (the text's prefilter scan) or woken by the key name `ctx`.
    fn spans_plain(&self, text: &str, mut mask: RuleMask, ctx: &str, spans: &mut Vec<Span>) {
        if !ctx.is_empty() && self.keyword_mask != 0 {
            mask |= self.prefilter.scan(ctx) & self.keyword_mask;
        }
        if mask == 0 {
            return;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if i >= 64 || mask & bit(i) != 0 {
                rule.find(text, ctx, i, spans);
            }
        }
        if let Some(i) = self.assign_rule.filter(|&i| i >= 64 || mask & bit(i) != 0) {
            self.assignment_spans(text, i, spans);
        }
    }

    /// Replacements already present (markers, hashes) are never replaced again.
    fn drop_protected(&self, text: &str, spans: &mut Vec<Span>) {
        let mut protected = self.renderer.protected(text);
        if protected.is_empty() {
            return;
        }
        // Sorted by start with running maximum ends, one binary search per span tells whether
        // some replacement starting at or before it reaches past its end.
        protected.sort_unstable_by_key(|p| p.start);
        let mut reach = 0;
        let furthest: Vec<usize> = protected
            .iter()
            .map(|p| {
                reach = reach.max(p.end);
                reach
            })
            .collect();
        spans.retain(|s| {
            let before = protected.partition_point(|p| p.start <= s.start);
            before == 0 || furthest[before - 1] < s.end
        });
    }

    fn replace(&self, text: &str, spans: &[Span], counts: &mut [u64]) -> (String, bool) {
        let mut out = String::with_capacity(text.len() + 16);
        let (mut last, mut dropped) = (0, false);
        for s in spans {
            out.push_str(&text[last..s.start]);
            let rule = &self.rules[s.rule];
            let value = s.decoded.as_deref().unwrap_or(&text[s.start..s.end]);
            self.renderer
                .render(rule.action, &rule.name, value, &mut out);
            dropped |= rule.action == Action::Drop;
            bump(counts, s.rule);
            last = s.end;
        }
        out.push_str(&text[last..]);
        (out, dropped)
    }
}

/// Adds one to `counts[i]` when the caller's slice is long enough.
pub fn bump(counts: &mut [u64], i: usize) {
    if let Some(c) = counts.get_mut(i) {
        *c += 1;
    }
}

/// Sorts spans and merges overlapping or touching ones; the earliest (longest) span names the rule,
/// and of equal spans a value rule before the generic `generic` (`pan=4111…` is a credit card),
/// then the rule listed first.
fn merge(mut spans: Vec<Span>, generic: Option<usize>) -> Vec<Span> {
    spans.sort_unstable_by_key(|s| (s.start, Reverse(s.end), Some(s.rule) == generic, s.rule));
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match merged.last_mut() {
            Some(last) if s.start <= last.end => {
                if s.end > last.end {
                    last.end = s.end;
                    last.decoded = None;
                }
            }
            _ => merged.push(s),
        }
    }
    merged
}

impl Rule {
    fn find(&self, text: &str, ctx: &str, index: usize, spans: &mut Vec<Span>) {
        let mut accepted = Vec::new();
        for p in self.patterns.iter().filter(|p| p.may_match(text, ctx)) {
            p.candidates(text, &mut accepted);
            for r in accepted.drain(..) {
                if p.keywords.is_empty() || keyword_near(text, &r, &p.keywords, ctx) {
                    spans.push(Span {
                        start: r.start,
                        end: r.end,
                        rule: index,
                        decoded: None,
                    });
                }
            }
        }
    }
}

impl Pattern {
    /// Whether the regex can match at all: a needed literal and a keyword (anywhere) are present.
    pub(super) fn may_match(&self, text: &str, ctx: &str) -> bool {
        self.may_match_parts(&[text], ctx)
    }

    /// Whether the regex can match a string whose literal and keyword come from any of `parts`.
    pub(super) fn may_match_parts(&self, parts: &[&str], ctx: &str) -> bool {
        let has = |n: &str| parts.iter().any(|p| contains(p.as_bytes(), n));
        let needed = self.needs.is_empty() || self.needs.iter().any(|n| has(n));
        let keyword = || {
            self.keywords.iter().any(|k| {
                parts
                    .iter()
                    .chain([&ctx])
                    .any(|p| contains_ignore_case(p.as_bytes(), k.as_bytes()))
            })
        };
        needed && (self.keywords.is_empty() || keyword())
    }

    // Limitation: each search of an iterator may read to the end of the text before settling on
    // a short match, so a custom pattern such as `a+b|a` takes time quadratic in a line of `a`s
    // (0.34 s at 20 KB, 5.4 s at 80 KB); the built-in patterns settle within a bounded distance
    // or match to the end (`redact::tests_scaling` measures them).
    /// Validated candidate ranges of this pattern in `text`.
    pub(super) fn candidates(&self, text: &str, out: &mut Vec<Range<usize>>) {
        if self.group == 0 {
            for m in self.regex.find_iter(text) {
                self.validator.accept(text, m.range(), out);
            }
            return;
        }
        for caps in self.regex.captures_iter(text) {
            if let Some(m) = caps.get(self.group) {
                self.validator.accept(text, m.range(), out);
            }
        }
    }
}

/// Whether one of `keywords` (lower case) occurs near `r` in `text` or in the key name `ctx`.
pub(super) fn keyword_near(text: &str, r: &Range<usize>, keywords: &[String], ctx: &str) -> bool {
    let b = text.as_bytes();
    let start = r.start.saturating_sub(KEYWORD_BEFORE);
    let end = (r.end + KEYWORD_AFTER).min(b.len());
    // The match itself is excluded: a random token containing "aws" is not evidence.
    let (before, after) = (&b[start..r.start], &b[r.end..end]);
    keywords.iter().any(|k| {
        [before, after, ctx.as_bytes()]
            .iter()
            .any(|w| contains_ignore_case(w, k.as_bytes()))
    })
}

fn contains(hay: &[u8], needle: &str) -> bool {
    match needle.as_bytes() {
        [b] => memchr::memchr(*b, hay).is_some(),
        n => memchr::memmem::find(hay, n).is_some(),
    }
}

/// Whether `needle` (lower case) occurs in `hay`, ASCII case ignored.
pub(super) fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    // Only where the first byte occurs (either case) is the rest compared.
    let last = hay.len().saturating_sub(rest.len());
    memchr::memchr2_iter(
        first.to_ascii_lowercase(),
        first.to_ascii_uppercase(),
        &hay[..last],
    )
    .any(|i| hay[i + 1..i + needle.len()].eq_ignore_ascii_case(rest))
}
