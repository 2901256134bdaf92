//! Chaining, restarts, the finished state and the selection config.

use super::canonical_form::{GOLDEN_FILE, GOLDEN_HASHES, GOLDEN_SEAL};
use super::*;

#[test]
fn append_chains_only_selected_rows() {
    let batch = batch_of(&events(4));
    let mask = BooleanArray::from(vec![true, false, true, false]);
    let mut chain = AuditChain::new("w0", None);
    let out = chain.append(&batch, &mask).unwrap();

    let seq = out.column_by_name(schema::AUDIT_SEQ).unwrap();
    assert_eq!(
        seq.as_ref(),
        &UInt64Array::from(vec![Some(1), None, Some(2), None]) as &dyn Array
    );
    assert_eq!(text(&out, schema::AUDIT_PREV_HASH, 0).unwrap(), GENESIS);
    assert_eq!(
        text(&out, schema::AUDIT_PREV_HASH, 2),
        text(&out, schema::AUDIT_HASH, 0)
    );
    assert_eq!(text(&out, schema::AUDIT_CHAIN, 1), None);
    assert_eq!(
        chain.head(),
        (2, text(&out, schema::AUDIT_HASH, 2).unwrap())
    );
    assert_eq!(out.schema(), event_schema());
}

#[test]
fn link_columns_are_valid_arrow_whatever_the_chain_id_and_mask() {
    let batch = batch_of(&events(5));
    let mask = BooleanArray::from(vec![false, true, true, false, true]);
    // Ids of up to 12 bytes sit in the views themselves, longer ones in a buffer.
    for id in ["w0", "writer-with-a-long-id"] {
        let out = AuditChain::new(id, None).append(&batch, &mask).unwrap();
        for name in [
            schema::AUDIT_CHAIN,
            schema::AUDIT_SEQ,
            schema::AUDIT_PREV_HASH,
            schema::AUDIT_HASH,
        ] {
            let column = out.column_by_name(name).unwrap();
            column.to_data().validate_full().unwrap();
            assert_eq!(column.null_count(), 2, "{name}");
        }
        assert_eq!(text(&out, schema::AUDIT_CHAIN, 4).as_deref(), Some(id));
        assert_eq!(text(&out, schema::AUDIT_HASH, 3), None);
        assert_eq!(text(&out, schema::AUDIT_PREV_HASH, 1).unwrap(), GENESIS);
        assert_eq!(
            text(&out, schema::AUDIT_PREV_HASH, 4),
            text(&out, schema::AUDIT_HASH, 2)
        );
    }
}

#[test]
fn chaining_across_batches_equals_one_batch() {
    let evs = events(7);
    let whole = AuditChain::new("w0", None)
        .append(&batch_of(&evs), &all(7))
        .unwrap();
    let mut chain = AuditChain::new("w0", None);
    chain.append(&batch_of(&evs[..3]), &all(3)).unwrap();
    // A restart: a new chain continues from the recovered head.
    let mut resumed = AuditChain::new("w0", Some(chain.finish().unwrap()));
    let tail = resumed.append(&batch_of(&evs[3..]), &all(4)).unwrap();
    assert_eq!(
        text(&tail, schema::AUDIT_HASH, 3),
        text(&whole, schema::AUDIT_HASH, 6)
    );
    assert_eq!(resumed.head().0, 7);
}

#[test]
fn a_large_batch_chains_like_small_batches() {
    // Every other row is selected, so the selected rows are not contiguous.
    let n = 2 * (3 * 4096 + 7);
    let evs = events(n);
    let mask = BooleanArray::from((0..n).map(|i| i % 2 == 0).collect::<Vec<_>>());
    let whole = AuditChain::new("w0", None)
        .append(&batch_of(&evs), &mask)
        .unwrap();
    let mut chain = AuditChain::new("w0", None);
    let mut hashes = Vec::new();
    for start in (0..n).step_by(1000) {
        let end = (start + 1000).min(n);
        let part = chain
            .append(&batch_of(&evs[start..end]), &mask.slice(start, end - start))
            .unwrap();
        hashes.extend((0..end - start).map(|i| text(&part, schema::AUDIT_HASH, i)));
    }
    let whole_hashes: Vec<_> = (0..n)
        .map(|i| text(&whole, schema::AUDIT_HASH, i))
        .collect();
    assert_eq!(whole_hashes, hashes);
    assert_eq!(whole_hashes.iter().flatten().count(), n / 2);
    let chained = arrow_select::filter::filter_record_batch(&whole, &mask).unwrap();
    let mut verifier = Verifier::new("w0", vec![], None, false).unwrap();
    verifier.push(&chained).unwrap();
    let verified = verifier.finish();
    assert_eq!((verified.failure, verified.records), (None, (n / 2) as u64));
}

#[test]
fn a_finished_chain_refuses_use() {
    let mut chain = AuditChain::new("w0", None);
    assert_eq!(chain.finish().unwrap(), (0, GENESIS.to_string()));
    let batch = batch_of(&events(1));
    assert!(matches!(
        chain.append(&batch, &all(1)),
        Err(Error::Audit(_))
    ));
    assert!(matches!(chain.finish(), Err(Error::Audit(_))));
}

#[test]
fn a_bad_head_or_mask_is_an_error() {
    let batch = batch_of(&events(2));
    let mut bad = AuditChain::new("w0", Some((3, "XYZ".into())));
    assert!(matches!(bad.append(&batch, &all(2)), Err(Error::Audit(_))));
    let mut chain = AuditChain::new("w0", None);
    assert!(matches!(
        chain.append(&batch, &all(3)),
        Err(Error::Audit(_))
    ));
}

#[test]
fn config_selects_categories_and_rules() {
    let mut evs = events(3);
    evs[1].category = s("application.request_logs");
    evs[2].category = s("application.request_logs");
    let batch = batch_of(&evs);
    let mask = AuditConfig::default().select(&batch).unwrap();
    assert_eq!(mask, BooleanArray::from(vec![true, false, false]));

    let config = AuditConfig::from_json(r#"{"rules":[{"column":"level","values":["critical"]}]}"#);
    let mask = config.unwrap().select(&batch).unwrap();
    assert_eq!(mask, BooleanArray::from(vec![true, true, false]));
    assert!(AuditConfig::from_json(r#"{"bogus":1}"#).is_err());
}

#[test]
fn checkpoint_lines_parse_and_their_seals_verify() {
    let line = format!(
        r#"{{"chain":"w0","seq":3,"head":"{}","time_ns":1704164645000000000,"file":"{}","seal":"{}"}}"#,
        GOLDEN_HASHES[2], GOLDEN_FILE, GOLDEN_SEAL
    );
    let checkpoint = Checkpoint::from_json(&line).unwrap();
    assert_eq!(
        (checkpoint.seq, checkpoint.time_ns),
        (3, 1_704_164_645_000_000_000)
    );
    assert_eq!(checkpoint.seal_valid(b"k3y"), Some(true));
    assert_eq!(checkpoint.seal_valid(b"other"), Some(false));

    let unsealed = line.replace(&format!(r#""{GOLDEN_SEAL}""#), "null");
    assert_eq!(
        Checkpoint::from_json(&unsealed).unwrap().seal_valid(b"k3y"),
        None
    );
    assert!(matches!(
        Checkpoint::from_json("{\"chain\":"),
        Err(Error::Audit(_))
    ));
}

#[test]
fn a_head_at_the_last_seq_is_an_error_not_a_wrap() {
    let head = |seq| Some((seq, GOLDEN_HASHES[0].to_string()));
    let at_max = AuditChain::new("w0", head(u64::MAX));
    assert!(at_max.check().unwrap_err().to_string().contains("no seq"));
    let mut near = AuditChain::new("w0", head(u64::MAX - 1));
    let two = near.append(&batch_of(&events(2)), &all(2)).unwrap_err();
    assert!(two.to_string().contains("overflow"), "{two}");
    assert_eq!(near.head().0, u64::MAX - 1);
    near.append(&batch_of(&events(1)), &all(1)).unwrap();
    assert_eq!(near.head().0, u64::MAX);
    assert!(near.append(&batch_of(&events(1)), &all(1)).is_err());
}

#[test]
fn an_empty_chain_id_fails_the_check() {
    assert!(AuditChain::new("", None).check().is_err());
    assert!(AuditChain::new("w0", None).check().is_ok());
}
