//! The per-batch path in one call: decode (with redaction), then sampling.

use std::sync::Mutex;

use arrow_array::RecordBatch;

use crate::decode::{DecodeOutput, Decoder, NoScrub, Scrub};
use crate::error::Result;
use crate::sample::{self, Sampler};

/// What one batch produced, with the counters the summary needs.
pub struct Output {
    pub events: RecordBatch,
    pub dead_letters: RecordBatch,
    pub lines: u64,
    pub blank_lines: u64,
    pub unparsed: u64,
    /// Redactions per redaction rule.
    pub redactions: Vec<u64>,
    /// Events sampled out per sampling rule (empty without a sampler).
    pub sampled_out: Vec<u64>,
    /// Events whose trace id could not serve as randomness.
    pub fallback_hashes: u64,
}

/// The stages of the core, built once and shared by the threads that feed it.
pub struct Engine {
    decoder: Decoder,
    scrub: Box<dyn Scrub + Send>,
    sampler: Option<Mutex<Sampler>>,
}

impl Engine {
    pub fn new(
        decoder: Decoder,
        scrub: Option<Box<dyn Scrub + Send>>,
        sampler: Option<Sampler>,
    ) -> Engine {
        Engine {
            decoder,
            scrub: scrub.unwrap_or_else(|| Box::new(NoScrub)),
            sampler: sampler.map(Mutex::new),
        }
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    pub fn scrub(&self) -> &dyn Scrub {
        self.scrub.as_ref()
    }

    /// Names of the sampling rules, in the order of `Output::sampled_out`.
    pub fn sampling_rules(&self) -> Vec<String> {
        self.sampler
            .as_ref()
            .map_or_else(Vec::new, |s| lock(s).rule_names())
    }

    /// Decodes, redacts and samples one run of whole lines.
    pub fn process(
        &self,
        data: &[u8],
        source: &str,
        first_line: u64,
        observed_ns: i64,
    ) -> Result<Output> {
        let decoded =
            self.decoder
                .decode(data, self.scrub.as_ref(), source, first_line, observed_ns)?;
        let DecodeOutput {
            events,
            dead_letters,
            lines,
            blank_lines,
            unparsed,
            redactions,
        } = decoded;
        let mut out = Output {
            events,
            dead_letters,
            lines,
            blank_lines,
            unparsed,
            redactions,
            sampled_out: Vec::new(),
            fallback_hashes: 0,
        };
        if let Some(sampler) = &self.sampler {
            let decisions = lock(sampler).decide(&out.events, observed_ns)?;
            out.events = sample::apply(&out.events, &decisions)?;
            out.sampled_out = decisions.dropped_by_rule;
            out.fallback_hashes = decisions.fallback_hashes;
        }
        Ok(out)
    }
}

fn lock(sampler: &Mutex<Sampler>) -> std::sync::MutexGuard<'_, Sampler> {
    // A panic while deciding leaves adaptive state that is still usable.
    sampler.lock().unwrap_or_else(|e| e.into_inner())
}
