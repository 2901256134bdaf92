//! Decisions per second, measured with `cargo test --release -- --ignored --nocapture`.

use std::time::Instant;

use super::{generate, Rng};
use crate::sample::{SamplePolicy, Sampler};

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn decisions_per_second() {
    let (batch, _) = generate(&mut Rng::new(1), 1 << 20, 0);
    let mut sampler = Sampler::new(SamplePolicy::cost_optimized()).unwrap();
    let rounds = 20;
    let start = Instant::now();
    let mut kept = 0;
    for _ in 0..rounds {
        kept += sampler.decide(&batch, 0).unwrap().kept();
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = (rounds * batch.num_rows()) as f64 / secs;
    println!(
        "cost-optimized: {:.1} M decisions/s (kept {kept})",
        rate / 1e6
    );
    assert!(kept > 0);
}
