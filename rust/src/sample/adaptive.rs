//! Adaptive rates: per key, an exponential moving average of the observed volume per window,
//! and the probability that brings the kept volume to the target.

use std::collections::HashMap;

use super::config::AdaptiveSettings;
use super::hash::Threshold;

/// Windows closed at most per call: after that many idle windows every average is ~0.
const MAX_CATCH_UP: u32 = 64;
/// Averages below this many events per second are forgotten, which bounds the key map.
const FORGET_BELOW: f64 = 1e-6;

/// The state of one key of one adaptive rule.
#[derive(Clone, Debug)]
struct KeyState {
    count: u64,
    average: Option<f64>,
    threshold: Threshold,
}

/// Adaptive state of every adaptive rule, carried across batches.
#[derive(Clone, Debug)]
pub struct Adaptive {
    window_ns: i64,
    window_secs: f64,
    smoothing: f64,
    window_end: Option<i64>,
    targets: Vec<f64>,
    keys: Vec<HashMap<u64, KeyState>>,
}

impl Adaptive {
    pub fn new(settings: &AdaptiveSettings, targets: Vec<f64>) -> Adaptive {
        Adaptive {
            window_ns: (settings.window_secs * 1e9).max(1.0) as i64,
            window_secs: settings.window_secs,
            smoothing: settings.smoothing,
            window_end: None,
            keys: vec![HashMap::new(); targets.len()],
            targets,
        }
    }

    /// Closes every window that ended at or before `now_ns`.
    pub fn advance(&mut self, now_ns: i64) {
        let end = *self
            .window_end
            .get_or_insert(now_ns.saturating_add(self.window_ns));
        let mut end = end;
        let mut closed = 0;
        while now_ns >= end && closed < MAX_CATCH_UP {
            self.close_window();
            end = end.saturating_add(self.window_ns);
            closed += 1;
        }
        if now_ns >= end {
            end = now_ns.saturating_add(self.window_ns);
        }
        self.window_end = Some(end);
    }

    /// Counts one event of `key` under rule `slot` and returns its current threshold.
    #[inline]
    pub fn threshold(&mut self, slot: usize, key: u64) -> Threshold {
        let state = self.keys[slot].entry(key).or_insert(KeyState {
            count: 0,
            average: None,
            // A key not seen before is kept whole until its first window closes.
            threshold: Threshold::ALWAYS,
        });
        state.count += 1;
        state.threshold
    }

    /// The current keep probability of `key` under rule `slot` (1 for an unseen key).
    pub fn probability(&self, slot: usize, key: u64) -> f64 {
        self.keys[slot]
            .get(&key)
            .map_or(1.0, |s| s.threshold.probability())
    }

    fn close_window(&mut self) {
        for (keys, &target) in self.keys.iter_mut().zip(&self.targets) {
            for state in keys.values_mut() {
                let observed = state.count as f64 / self.window_secs;
                let average = match state.average {
                    None => observed,
                    Some(a) => self.smoothing * observed + (1.0 - self.smoothing) * a,
                };
                state.average = Some(average);
                state.count = 0;
                state.threshold = match average > 0.0 {
                    true => Threshold::from_probability((target / average).min(1.0)),
                    false => Threshold::ALWAYS,
                };
            }
            keys.retain(|_, s| s.average.is_some_and(|a| a >= FORGET_BELOW));
        }
    }
}
