//! The standard mix: a deterministic, seeded generator of realistic NDJSON events for
//! benchmarks and tests, with the ground truth (levels, services, planted secrets) alongside.

mod event;
mod json;
mod level;
mod rng;
mod secrets;
mod time;
mod vocab;

#[cfg(test)]
mod tests;

pub use level::LEVEL_WEIGHTS;
pub use rng::Rng;
pub use secrets::{luhn_valid, PlantedSecret, KINDS as SECRET_KINDS};
pub use vocab::SERVICES;

/// 2025-01-15T00:00:00Z, where every generated stream starts its clock.
const START_NS: i64 = 1_736_899_200_000_000_000;

/// What a generated stream holds, for tests and reports to check results against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenStats {
    pub events: u64,
    /// Bytes written, newlines included.
    pub bytes: u64,
    /// Events per level code (debug, info, warn, error, critical), whatever the spelling.
    pub levels: [u64; 5],
    /// Events per service, in the order of `SERVICES`.
    pub services: [u64; 12],
    /// Events of category `security.audit_logs`.
    pub audit: u64,
    /// Events whose category starts with `security.` (audit records included).
    pub security: u64,
    /// Events carrying at least one planted secret.
    pub with_secrets: u64,
    /// Distinct trace ids started.
    pub traces: u64,
    /// Every planted secret, in stream order; empty unless recording is on.
    pub planted: Vec<PlantedSecret>,
}

impl GenStats {
    /// Event counts per service name.
    pub fn service_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SERVICES.iter().copied().zip(self.services.iter().copied())
    }
}

/// The trace that the next events belong to.
#[derive(Clone, Debug)]
struct Trace {
    id: String,
    remaining: u32,
    last_span: Option<String>,
}

/// A streaming generator: successive `fill` calls continue one stream, so the bytes do not
/// depend on how the stream is cut into chunks.
#[derive(Clone, Debug)]
pub struct Generator {
    rng: Rng,
    clock_ns: i64,
    trace: Option<Trace>,
    record_secrets: bool,
    stats: GenStats,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: Rng::new(seed),
            clock_ns: START_NS,
            trace: None,
            record_secrets: false,
            stats: GenStats::default(),
        }
    }

    /// Keeps every planted secret in `stats().planted` (memory grows with the stream).
    pub fn with_recorded_secrets(mut self) -> Self {
        self.record_secrets = true;
        self
    }

    /// Appends `n` events, one JSON object per line, to `out`.
    pub fn fill(&mut self, n: usize, out: &mut Vec<u8>) {
        let start = out.len();
        out.reserve(n * 400);
        for _ in 0..n {
            self.write_event(out);
            out.push(b'\n');
        }
        self.stats.events += n as u64;
        self.stats.bytes += (out.len() - start) as u64;
    }

    /// The ground truth of everything generated so far.
    pub fn stats(&self) -> &GenStats {
        &self.stats
    }

    /// Ends the stream and hands back its ground truth.
    pub fn into_stats(self) -> GenStats {
        self.stats
    }
}

/// Appends `count` events of the standard mix for `seed` to `out` and returns their ground
/// truth, planted secrets included.
pub fn generate(count: u64, seed: u64, out: &mut Vec<u8>) -> GenStats {
    let mut generator = Generator::new(seed).with_recorded_secrets();
    generator.fill(count as usize, out);
    generator.into_stats()
}
