//! Adaptive rules: the kept volume follows the target after a load step.

use super::{batch, Row};
use crate::sample::{SamplePolicy, Sampler};

const WINDOW_NS: i64 = 100_000_000;

/// One window of `rows` events of one service, without trace ids (event hash).
fn window(n: i64, rows: usize) -> arrow_array::RecordBatch {
    let base = n * WINDOW_NS;
    let rows: Vec<Row> = (0..rows)
        .map(|i| Row {
            ts: base + i as i64,
            service: Some("search".into()),
            message: Some("m".into()),
            ..Row::new(1)
        })
        .collect();
    batch(&rows)
}

/// Target 100k/s in windows of 0.1 s: 10k kept per window, so counting noise is 1 %.
/// Load steps from 20k to 200k events per window (tenfold) at window 3.
#[test]
fn kept_volume_returns_to_target_within_six_windows_of_a_tenfold_step() {
    let policy = r#"{"adaptive":{"window_secs":0.1,"smoothing":0.5},"rules":[
        {"name":"severe","where":{"level":{"ge":"error"}},"keep":true},
        {"name":"per-service","target_per_sec":100000,"key":["service"]}]}"#;
    let mut s = Sampler::new(SamplePolicy::from_json(policy).unwrap()).unwrap();
    let mut kept = Vec::new();
    for n in 0..11 {
        let rows = if n < 3 { 20_000 } else { 200_000 };
        kept.push(s.decide(&window(n, rows), n * WINDOW_NS).unwrap().kept() as f64);
    }
    println!("kept per window: {kept:?}");
    // Window 3 is the step; windows 3 + 5 onwards must be within 10 % of the target.
    for (n, k) in kept.iter().enumerate().skip(8) {
        assert!((k - 10_000.0).abs() <= 1_000.0, "window {n}: kept {k}");
    }
    let p = s
        .adaptive_probability("per-service", &[Some("search")])
        .unwrap();
    assert!((p - 0.05).abs() < 0.005, "probability {p}");
}

#[test]
fn always_keep_rules_are_exempt_from_the_adaptive_target() {
    let policy = r#"{"rules":[
        {"name":"severe","where":{"level":{"ge":"error"}},"keep":true},
        {"name":"all","target_per_sec":10}]}"#;
    let mut s = Sampler::new(SamplePolicy::from_json(policy).unwrap()).unwrap();
    let errors: Vec<Row> = (0..5000)
        .map(|i| Row {
            ts: i,
            ..Row::new(3)
        })
        .collect();
    for n in 0..4 {
        let d = s.decide(&batch(&errors), n * 1_000_000_000).unwrap();
        assert_eq!(d.kept(), 5000);
    }
}

#[test]
fn keys_adapt_independently() {
    let policy = r#"{"rules":[{"name":"svc","target_per_sec":100,"key":["service"]}]}"#;
    let mut s = Sampler::new(SamplePolicy::from_json(policy).unwrap()).unwrap();
    let rows = |svc: &'static str, n: usize| {
        (0..n).map(move |i| Row {
            ts: i as i64,
            service: Some(svc.into()),
            ..Row::new(1)
        })
    };
    let all: Vec<Row> = rows("busy", 1000).chain(rows("quiet", 50)).collect();
    for n in 0..3 {
        s.decide(&batch(&all), n * 1_000_000_000).unwrap();
    }
    assert!((s.adaptive_probability("svc", &[Some("busy")]).unwrap() - 0.1).abs() < 1e-9);
    assert_eq!(s.adaptive_probability("svc", &[Some("quiet")]), Some(1.0));
}
