//! One test per rule kind, and the behaviour around them (audit, upstream rates, apply).

use arrow_array::Array;

use super::{batch, Row};
use crate::sample::{apply, SamplePolicy, Sampler, AUDIT_RULE, UNMATCHED_RULE};

fn sampler(json: &str) -> Sampler {
    Sampler::new(SamplePolicy::from_json(json).unwrap()).unwrap()
}

fn keeps(s: &mut Sampler, rows: &[Row]) -> Vec<bool> {
    let d = s.decide(&batch(rows), 0).unwrap();
    d.keep.iter().map(Option::unwrap).collect()
}

/// `n` rows of one level with distinct trace ids, so rates show.
fn many(level: u8, n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            trace_id: Some(format!(
                "{:032x}",
                i as u128 * 0x9e37_79b9_7f4a_7c15_f39c + 1
            )),
            ..Row::new(level)
        })
        .collect()
}

#[test]
fn always_keep_by_level_keeps_warn_and_above() {
    let mut s = sampler(
        r#"{"rules":[{"name":"severe","where":{"level":{"ge":"warn"}},"keep":true},{"name":"rest","rate":0}]}"#,
    );
    let rows: Vec<Row> = (0..5).map(Row::new).collect();
    assert_eq!(keeps(&mut s, &rows), [false, false, true, true, true]);
}

#[test]
fn rate_zero_drops_and_rate_one_keeps() {
    let mut drop = sampler(r#"{"rules":[{"name":"none","rate":0.0}]}"#);
    let mut all = sampler(r#"{"rules":[{"name":"all","rate":1.0}]}"#);
    assert!(keeps(&mut drop, &many(1, 100)).iter().all(|k| !k));
    assert!(keeps(&mut all, &many(1, 100)).iter().all(|k| *k));
}

#[test]
fn rate_keeps_its_share_and_records_the_inverse() {
    let mut s = sampler(r#"{"rules":[{"name":"tenth","rate":0.1}]}"#);
    let d = s.decide(&batch(&many(1, 20_000)), 0).unwrap();
    let kept = d.kept() as f64;
    // Binomial(20000, 0.1): sd = 42.4; 4 sd = 170.
    assert!((kept - 2000.0).abs() < 170.0, "kept {kept}");
    let rates: Vec<f64> = (0..d.keep.len())
        .filter(|&i| d.keep.value(i))
        .map(|i| d.sample_rate.value(i))
        .collect();
    assert!(rates.iter().all(|r| (r - 10.0).abs() < 1e-9));
}

#[test]
fn level_rates_apply_per_level_and_skip_unlisted_levels() {
    let mut s = sampler(
        r#"{"rules":[{"name":"levels","level_rates":{"debug":0.0,"info":1.0}},{"name":"rest","rate":0}]}"#,
    );
    let rows = [
        Row::new(0),
        Row::new(1),
        Row::new(2),
        Row {
            level: None,
            ..Row::new(0)
        },
    ];
    let d = s.decide(&batch(&rows), 0).unwrap();
    assert_eq!(
        d.keep.iter().map(Option::unwrap).collect::<Vec<_>>(),
        [false, true, false, false]
    );
    assert_eq!(d.rule, [1, 1, 2, 2]);
}

#[test]
fn per_key_rate_matches_a_combination_of_columns() {
    let mut s = sampler(
        r#"{"rules":[{"name":"noisy","where":{"service":"search","category":["app.a","app.b"]},"rate":0}]}"#,
    );
    let row = |service: &str, category: &str| Row {
        service: Some(service.into()),
        category: Some(category.into()),
        ..Row::new(1)
    };
    let rows = [
        row("search", "app.a"),
        row("search", "app.b"),
        row("search", "app.c"),
        row("auth", "app.a"),
    ];
    assert_eq!(keeps(&mut s, &rows), [false, false, true, true]);
}

#[test]
fn enterprise_revenue_and_new_features_are_kept() {
    let policy = r#"{"extends":"cost-optimized","rules":[{"name":"new","where":{"feature":["checkout-v2"]},"keep":true}]}"#;
    let mut s = sampler(policy);
    let debug = || Row::new(0);
    let rows = [
        Row {
            user_tier: Some("enterprise".into()),
            ..debug()
        },
        Row {
            revenue: Some(100.5),
            ..debug()
        },
        Row {
            feature: Some("checkout-v2".into()),
            ..debug()
        },
        Row {
            revenue: Some(100.0),
            trace_id: Some("f".repeat(14) + "00"),
            ..debug()
        },
    ];
    let d = s.decide(&batch(&rows), 0).unwrap();
    let names = s.rule_names();
    let by: Vec<&str> = d.rule.iter().map(|&r| names[r as usize].as_str()).collect();
    assert_eq!(by, ["enterprise", "revenue", "new", "log-levels"]);
    assert!(d.keep.value(0) && d.keep.value(1) && d.keep.value(2));
}

#[test]
fn field_predicates_read_nested_and_flat_keys() {
    let policy = r#"{"rules":[
        {"name":"errors","where":{"fields.http.status":{"ge":500}},"keep":true},
        {"name":"vip","where":{"fields.customer.vip":true},"keep":true},
        {"name":"regions","where":{"fields.region":["eu","us"]},"keep":true},
        {"name":"traced","where":{"fields.debug_id":{"exists":true}},"keep":true},
        {"name":"rest","rate":0}]}"#;
    let mut s = sampler(policy);
    let with = |json: &str| Row {
        fields: Some(json.into()),
        ..Row::new(1)
    };
    let rows = [
        with(r#"{"http":{"status":503}}"#),
        with(r#"{"http.status":500}"#),
        with(r#"{"http":{"status":200}}"#),
        with(r#"{"customer":{"vip":true}}"#),
        with(r#"{"region":"eu"}"#),
        with(r#"{"region":"ap"}"#),
        with(r#"{"debug_id":[1,2]}"#),
        with("not json"),
        Row::new(1),
    ];
    assert_eq!(
        keeps(&mut s, &rows),
        [true, true, false, true, true, false, true, false, false]
    );
}

#[test]
fn prefix_not_in_and_exists_conditions() {
    let policy = r#"{"rules":[
        {"name":"spans","where":{"category":{"prefix":"trace."}},"keep":true},
        {"name":"others","where":{"service":{"not_in":["auth"]},"user_tier":{"exists":false}},"rate":0}]}"#;
    let mut s = sampler(policy);
    let row = |c: &str, svc: &str| Row {
        category: Some(c.into()),
        service: Some(svc.into()),
        ..Row::new(1)
    };
    let tiered = Row {
        user_tier: Some("free".into()),
        ..row("app", "search")
    };
    let rows = [
        row("trace.spans", "search"),
        row("app", "search"),
        row("app", "auth"),
        tiered,
    ];
    assert_eq!(keeps(&mut s, &rows), [true, false, true, true]);
}

#[test]
fn audit_records_are_never_sampled() {
    let mut s = sampler(r#"{"rules":[{"name":"drop-all","rate":0}]}"#);
    let audit = Row {
        category: Some("security.audit_logs".into()),
        ..Row::new(0)
    };
    let d = s.decide(&batch(&[audit, Row::new(0)]), 0).unwrap();
    assert_eq!(
        d.keep.iter().map(Option::unwrap).collect::<Vec<_>>(),
        [true, false]
    );
    assert_eq!(s.rule_names()[d.rule[0] as usize], AUDIT_RULE);
}

#[test]
fn unmatched_rows_are_kept_by_the_implicit_rule() {
    let mut s = sampler(r#"{"rules":[{"name":"debug","where":{"level":"debug"},"rate":0}]}"#);
    let d = s.decide(&batch(&[Row::new(1)]), 0).unwrap();
    assert!(d.keep.value(0));
    assert_eq!(s.rule_names()[d.rule[0] as usize], UNMATCHED_RULE);
    assert_eq!(d.kept_by_rule, [0, 0, 1]);
}

#[test]
fn upstream_sample_rate_is_multiplied() {
    let mut s = sampler(r#"{"rules":[{"name":"half","rate":0.5}]}"#);
    let rows: Vec<Row> = many(1, 200)
        .into_iter()
        .map(|r| Row {
            sample_rate: 4.0,
            ..r
        })
        .collect();
    let d = s.decide(&batch(&rows), 0).unwrap();
    for i in 0..rows.len() {
        let want = if d.keep.value(i) { 8.0 } else { 4.0 };
        assert_eq!(d.sample_rate.value(i), want);
    }
}

#[test]
fn unusable_trace_ids_fall_back_to_the_event_hash_and_are_counted() {
    let mut s = sampler(r#"{"rules":[{"name":"half","rate":0.5}]}"#);
    let id = |t: &str| Row {
        trace_id: Some(t.into()),
        ..Row::new(1)
    };
    let rows = [
        id(&"0".repeat(32)),
        id("abc"),
        id(&"a".repeat(32)),
        Row::new(1),
        id(""),
    ];
    assert_eq!(s.decide(&batch(&rows), 0).unwrap().fallback_hashes, 2);
}

#[test]
fn trace_randomness_is_the_trailing_56_bits() {
    use crate::sample::{trace_randomness, Randomness};
    let id = b"4bf92f3577b34da6a3ce929d0e0e4736";
    assert_eq!(trace_randomness(id), Randomness::Trace(0xce929d0e0e4736));
    assert_eq!(trace_randomness(b""), Randomness::Absent);
    assert_eq!(trace_randomness(b"0000000000000000"), Randomness::Unusable);
    assert_eq!(trace_randomness(b"000000000000000"), Randomness::Unusable);
    assert_eq!(
        trace_randomness(b"4BF92F3577B34DA6A3CE929D0E0E4736"),
        Randomness::Trace(0xce929d0e0e4736)
    );
}

/// The randomness of a trace id by a plain reading: hex digits one by one.
fn reference_randomness(id: &[u8]) -> crate::sample::Randomness {
    use crate::sample::{hash_bytes, Randomness};
    if id.is_empty() {
        return Randomness::Absent;
    }
    if id.len() < 16 || id.iter().all(|&b| b == b'0') {
        return Randomness::Unusable;
    }
    match std::str::from_utf8(id) {
        Ok(text) if text.chars().all(|c| c.is_ascii_hexdigit()) => {
            let tail = &text[id.len() - 14..];
            Randomness::Trace(u64::from_str_radix(tail, 16).unwrap())
        }
        _ => Randomness::Trace(hash_bytes(crate::sample::hash::TRACE_KEY, id) >> 8),
    }
}

proptest::proptest! {
    /// Ids of hex digits of either case, with bytes next to the digit and letter ranges
    /// (`/`, `:`, `@`, `G`, `` ` ``, `g`), a NUL and a non-ASCII byte, read as the plain
    /// reading does.
    #[test]
    fn trace_randomness_reads_ids_as_digits(
        id in proptest::collection::vec(
            proptest::sample::select(b"0123456789abcdefABCDEF0000/:@G`g\xff\x00-".to_vec()),
            0..40,
        )
    ) {
        proptest::prop_assert_eq!(
            crate::sample::trace_randomness(&id),
            reference_randomness(&id)
        );
    }
}

#[test]
fn apply_filters_rows_and_replaces_sample_rate() {
    let mut s = sampler(
        r#"{"rules":[{"name":"debug","where":{"level":"debug"},"rate":0},{"name":"info","where":{"level":"info"},"rate":1}]}"#,
    );
    let b = batch(&[
        Row::new(0),
        Row::new(1),
        Row {
            sample_rate: 3.0,
            ..Row::new(2)
        },
    ]);
    let out = apply(&b, &s.decide(&b, 0).unwrap()).unwrap();
    assert_eq!(out.num_rows(), 2);
    let rates = out.column_by_name("sample_rate").unwrap();
    let rates = rates
        .as_any()
        .downcast_ref::<arrow_array::Float64Array>()
        .unwrap();
    assert_eq!(rates.values().to_vec(), [1.0, 3.0]);
}
