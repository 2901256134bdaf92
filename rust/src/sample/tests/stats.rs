//! Statistical checks of the cost-optimized policy over generated events. Decisions are
//! shared by every event of a trace, so variances are computed per trace (cluster), exactly.

use std::time::Instant;

use super::{generate, Rng, Truth, SERVICES};
use crate::sample::{Decisions, SamplePolicy, Sampler};

/// The rate cost-optimized gives each level of the generated log events.
const RATES: [f64; 5] = [0.01, 0.1, 1.0, 1.0, 1.0];
const BATCH: usize = 1 << 16;

#[derive(Default)]
struct Stats {
    rows: u64,
    count_level: [f64; 5],
    count_service: [f64; 4],
    kept_level: [f64; 5],
    est_level: [f64; 5],
    est_service: [f64; 4],
    /// Variance of the kept count per level.
    var_kept_level: [f64; 5],
    /// Variance of the reweighted count per level and per service.
    var_est_level: [f64; 5],
    var_est_service: [f64; 4],
}

impl Stats {
    fn add(&mut self, truth: &[Truth], d: &Decisions) {
        let mut start = 0;
        while start < truth.len() {
            let end = run_end(truth, start);
            self.add_cluster(&truth[start..end], d, start);
            start = end;
        }
        self.rows += truth.len() as u64;
    }

    /// One trace (or one event without trace id): checks consistency, adds its variance.
    fn add_cluster(&mut self, rows: &[Truth], d: &Decisions, first: usize) {
        let mut n = [[0.0f64; 5]; 4];
        let mut kept_by_level: [Option<bool>; 5] = [None; 5];
        for (k, t) in rows.iter().enumerate() {
            let (i, l, s) = (first + k, t.level as usize, t.service as usize);
            let kept = d.keep.value(i);
            // Every event of one trace at one rate shares one decision.
            assert_eq!(
                *kept_by_level[l].get_or_insert(kept),
                kept,
                "trace split at row {i}"
            );
            n[s][l] += 1.0;
            self.count_level[l] += 1.0;
            self.count_service[s] += 1.0;
            if kept {
                self.kept_level[l] += 1.0;
                self.est_level[l] += d.sample_rate.value(i);
                self.est_service[s] += d.sample_rate.value(i);
            }
        }
        // Kept at 1 % implies kept at 10 %: thresholds are nested.
        if kept_by_level[0] == Some(true) {
            assert_ne!(kept_by_level[1], Some(false), "debug kept but info dropped");
        }
        self.add_variance(&n);
    }

    fn add_variance(&mut self, n: &[[f64; 5]; 4]) {
        for l in 0..5 {
            let total: f64 = n.iter().map(|s| s[l]).sum();
            self.var_kept_level[l] += RATES[l] * (1.0 - RATES[l]) * total * total;
            self.var_est_level[l] += (1.0 / RATES[l] - 1.0) * total * total;
        }
        for (s, counts) in n.iter().enumerate() {
            self.var_est_service[s] += nested_variance(counts);
        }
    }

    /// Largest 4-sd relative error of the reweighted counts.
    fn worst_precision(&self) -> f64 {
        let level = (0..5).map(|l| 4.0 * self.var_est_level[l].sqrt() / self.count_level[l]);
        let service = (0..4).map(|s| 4.0 * self.var_est_service[s].sqrt() / self.count_service[s]);
        level.chain(service).fold(0.0, f64::max)
    }
}

/// Variance of sum(n/p * kept) for counts by rate where keeping at a rate implies keeping at
/// every higher one: cov(a, b) = n_a n_b (1/max(p_a, p_b) - 1).
fn nested_variance(n: &[f64; 5]) -> f64 {
    let mut v = 0.0;
    for a in 0..5 {
        for b in 0..5 {
            v += n[a] * n[b] * (1.0 / RATES[a].max(RATES[b]) - 1.0);
        }
    }
    v
}

fn run_end(truth: &[Truth], start: usize) -> usize {
    match truth[start].trace {
        None => start + 1,
        Some(t) => {
            start
                + truth[start..]
                    .iter()
                    .take_while(|r| r.trace == Some(t))
                    .count()
        }
    }
}

/// Runs cost-optimized over `rows` generated events (until `precision` is reached, if set).
fn run(rows: u64, precision: Option<f64>) -> Stats {
    let mut sampler = Sampler::new(SamplePolicy::cost_optimized()).unwrap();
    let mut rng = Rng::new(42);
    let mut stats = Stats::default();
    let mut trace = 0;
    while stats.rows < rows || precision.is_some_and(|p| stats.worst_precision() > p) {
        let (batch, truth) = generate(&mut rng, BATCH, trace);
        trace = truth.iter().filter_map(|t| t.trace).max().unwrap_or(trace) + 1;
        let d = sampler.decide(&batch, 0).unwrap();
        check_always_kept(&truth, &d);
        stats.add(&truth, &d);
    }
    stats
}

fn check_always_kept(truth: &[Truth], d: &Decisions) {
    for (i, t) in truth.iter().enumerate() {
        if RATES[t.level as usize] == 1.0 {
            assert!(
                d.keep.value(i) && d.sample_rate.value(i) == 1.0,
                "always-keep dropped row {i}"
            );
        }
    }
}

fn check_shares(s: &Stats) {
    for (l, p) in RATES.iter().enumerate() {
        let share = s.kept_level[l] / s.count_level[l];
        let sd = s.var_kept_level[l].sqrt() / s.count_level[l];
        println!("level {l}: kept share {share:.5} (rate {p}, sd {sd:.5})");
        assert!(
            (share - p).abs() <= 4.0 * sd,
            "level {l}: share {share} vs {p} (sd {sd})"
        );
    }
}

/// Reweighted counts lie within 4 sd of the truth, and within `within` (relative) if set.
fn check_reweighted(s: &Stats, within: Option<f64>) {
    let groups = (0..5)
        .map(|l| {
            (
                format!("level {l}"),
                s.est_level[l],
                s.count_level[l],
                s.var_est_level[l],
            )
        })
        .chain((0..4).map(|i| {
            (
                SERVICES[i].to_string(),
                s.est_service[i],
                s.count_service[i],
                s.var_est_service[i],
            )
        }));
    for (name, est, truth, var) in groups {
        let err = (est - truth) / truth;
        let sd = var.sqrt() / truth;
        println!("{name}: reweighted {est:.0} of {truth:.0}: error {err:+.5}, sd {sd:.5}");
        assert!(
            err.abs() <= 4.0 * sd,
            "{name}: error {err} beyond 4 sd {sd}"
        );
        if let Some(limit) = within {
            assert!(err.abs() <= limit, "{name}: error {err} beyond {limit}");
        }
    }
}

/// The issue's check at its own size: shares within 4 sd, reweighted counts within 4 sd of
/// their own variance (1 % holds for every level only from ~100M events, below), every trace
/// one decision, always-keep never dropping.
#[test]
fn shares_reweighting_and_traces_over_1m_events() {
    let s = run(1_000_000, None);
    check_shares(&s);
    check_reweighted(&s, None);
}

/// Runs until 4 sd of every reweighted count is within 1 %, so the 1 % check is sound.
#[test]
#[ignore = "about 100M events: run with --release -- --ignored"]
fn reweighted_counts_are_within_one_percent() {
    let start = Instant::now();
    let s = run(1_000_000, Some(0.01));
    println!("{} events, {:.1} s", s.rows, start.elapsed().as_secs_f64());
    check_shares(&s);
    check_reweighted(&s, Some(0.01));
}

#[test]
fn subset_property_across_rates() {
    let (batch, _) = generate(&mut Rng::new(7), 50_000, 0);
    let decide = |rate: f64| {
        let json = format!(r#"{{"rules":[{{"name":"r","rate":{rate}}}]}}"#);
        let mut s = Sampler::new(SamplePolicy::from_json(&json).unwrap()).unwrap();
        s.decide(&batch, 0).unwrap().keep
    };
    let (low, high) = (decide(0.01), decide(0.1));
    assert!(low.true_count() > 300, "kept {} at 1 %", low.true_count());
    for i in 0..low.len() {
        assert!(
            !low.value(i) || high.value(i),
            "row {i} kept at 1 % but not at 10 %"
        );
    }
}

#[test]
fn a_fixed_seed_reproduces_and_another_seed_differs() {
    let (batch, truth) = generate(&mut Rng::new(9), 50_000, 0);
    let decide = |seed: u64| {
        let json = format!(r#"{{"seed":{seed},"rules":[{{"name":"r","rate":0.5}}]}}"#);
        let mut s = Sampler::new(SamplePolicy::from_json(&json).unwrap()).unwrap();
        s.decide(&batch, 0).unwrap().keep
    };
    assert_eq!(decide(1), decide(1));
    let (a, b) = (decide(1), decide(2));
    let differ = |traced: bool| {
        (0..a.len())
            .filter(|&i| truth[i].trace.is_some() == traced && a.value(i) != b.value(i))
            .count()
    };
    // The seed drives the event hash only: traced events keep their trace's decision.
    assert_eq!(differ(true), 0);
    assert!(
        differ(false) > 1000,
        "{} untraced rows differ",
        differ(false)
    );
}

#[test]
fn one_trace_gets_one_decision_across_batches() {
    let (batch, truth) = generate(&mut Rng::new(11), 20_000, 0);
    let mut s =
        Sampler::new(SamplePolicy::from_json(r#"{"rules":[{"name":"r","rate":0.3}]}"#).unwrap())
            .unwrap();
    let whole = s.decide(&batch, 0).unwrap().keep;
    let (a, b) = (
        batch.slice(0, 7_777),
        batch.slice(7_777, batch.num_rows() - 7_777),
    );
    let parts: Vec<bool> = [a, b]
        .iter()
        .flat_map(|p| {
            s.decide(p, 0)
                .unwrap()
                .keep
                .iter()
                .map(Option::unwrap)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(whole.iter().map(Option::unwrap).collect::<Vec<_>>(), parts);
    let mut start = 0;
    while start < truth.len() {
        let end = run_end(&truth, start);
        assert!(
            (start..end).all(|i| whole.value(i) == whole.value(start)),
            "trace at {start}"
        );
        start = end;
    }
}
