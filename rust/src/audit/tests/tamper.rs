//! Verification: an intact chain verifies, and each tamper kind is reported where it happened.

use super::*;

fn chained(n: usize) -> (RecordBatch, Checkpoint) {
    let mut chain = AuditChain::new("w0", None);
    let batch = chain.append(&batch_of(&events(n)), &all(n)).unwrap();
    let (seq, head) = chain.finish().unwrap();
    let file = "hot/part-w0-1.parquet".to_string();
    (
        batch,
        Checkpoint {
            chain: "w0".into(),
            seq,
            head,
            time_ns: 7,
            file,
            seal: None,
        },
    )
}

fn sealed(mut c: Checkpoint, key: &[u8]) -> Checkpoint {
    c.seal = Some(seal(key, &c.chain, c.seq, &c.head, c.time_ns, &c.file));
    c
}

fn verify(batch: &RecordBatch, checkpoints: Vec<Checkpoint>, key: Option<&[u8]>) -> ChainReport {
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    let seq = batch.column_by_name(schema::AUDIT_SEQ).unwrap();
    let seq = seq.as_any().downcast_ref::<UInt64Array>().unwrap();
    order.sort_by_key(|&i| seq.value(i as usize));
    let sorted = take(batch, &order);
    let mut verifier = Verifier::new("w0", checkpoints, key, key.is_some()).unwrap();
    verifier.push(&sorted).unwrap();
    verifier.finish()
}

fn take(batch: &RecordBatch, rows: &[u32]) -> RecordBatch {
    take_record_batch(batch, &arrow_array::UInt32Array::from(rows.to_vec())).unwrap()
}

fn replace(batch: &RecordBatch, column: &str, array: ArrayRef) -> RecordBatch {
    let i = batch.schema().index_of(column).unwrap();
    let mut columns = batch.columns().to_vec();
    columns[i] = array;
    RecordBatch::try_new(batch.schema(), columns).unwrap()
}

fn with_text(batch: &RecordBatch, column: &str, row: usize, value: &str) -> RecordBatch {
    let values = (0..batch.num_rows()).map(|i| {
        if i == row {
            Some(value.to_string())
        } else {
            text(batch, column, i)
        }
    });
    replace(batch, column, Arc::new(values.collect::<StringViewArray>()))
}

fn with_seqs(batch: &RecordBatch, swap: (usize, usize)) -> RecordBatch {
    let seq = batch.column_by_name(schema::AUDIT_SEQ).unwrap();
    let mut values = seq
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap()
        .values()
        .to_vec();
    values.swap(swap.0, swap.1);
    replace(
        batch,
        schema::AUDIT_SEQ,
        Arc::new(UInt64Array::from(values)),
    )
}

/// Re-hashes row `row` after an edit, as a forger without the seal key would.
fn rehashed(batch: &RecordBatch, row: usize) -> RecordBatch {
    let prev = text(batch, schema::AUDIT_PREV_HASH, row).unwrap();
    let canon = Canonicalizer::new(batch, true).unwrap();
    let mut record = Vec::new();
    canon.write_row(row, None, &mut record);
    with_text(
        batch,
        schema::AUDIT_HASH,
        row,
        &chain::link_hash(&prev, &record),
    )
}

fn kind_and_seq(report: &ChainReport) -> Option<(FailureKind, u64)> {
    report.failure.as_ref().map(|f| (f.kind, f.seq))
}

#[test]
fn an_intact_chain_verifies() {
    let (batch, checkpoint) = chained(10);
    let report = verify(&batch, vec![sealed(checkpoint.clone(), b"k")], Some(b"k"));
    assert_eq!(report.failure, None);
    assert_eq!(report.records, 10);
    assert!(report.sealed);
    assert_eq!(report.head, (checkpoint.seq, checkpoint.head));
}

#[test]
fn rows_stored_out_of_seq_order_still_verify() {
    let (batch, checkpoint) = chained(6);
    let shuffled = take(&batch, &[3, 0, 5, 1, 4, 2]);
    assert_eq!(verify(&shuffled, vec![checkpoint], None).failure, None);
}

#[test]
fn batches_hashed_on_several_threads_report_the_same_failures() {
    // Large enough that the verifier splits the hashing across threads.
    let (batch, cp) = chained(3 * 4096 + 5);
    assert_eq!(verify(&batch, vec![cp.clone()], None).failure, None);
    let edited = with_text(&batch, schema::MESSAGE, 9000, "nothing happened");
    assert_eq!(
        kind_and_seq(&verify(&edited, vec![cp.clone()], None)),
        Some((FailureKind::Modified, 9001))
    );
    let rewritten = rehashed(&edited, 9000);
    assert_eq!(
        kind_and_seq(&verify(&rewritten, vec![cp.clone()], None)),
        Some((FailureKind::Modified, 9001))
    );
    let mut rows: Vec<u32> = (0..batch.num_rows() as u32).collect();
    rows.remove(12_000);
    assert_eq!(
        kind_and_seq(&verify(&take(&batch, &rows), vec![cp], None)),
        Some((FailureKind::Deleted, 12_001))
    );
}

#[test]
fn each_tamper_kind_is_reported_where_it_happened() {
    let (batch, cp) = chained(8);
    let cps = || vec![cp.clone()];
    let edited = with_text(&batch, schema::MESSAGE, 3, "nothing happened");
    assert_eq!(
        kind_and_seq(&verify(&edited, cps(), None)),
        Some((FailureKind::Modified, 4))
    );
    let rewritten = rehashed(&edited, 3);
    assert_eq!(
        kind_and_seq(&verify(&rewritten, cps(), None)),
        Some((FailureKind::Modified, 4))
    );
    let deleted = take(&batch, &[0, 1, 2, 4, 5, 6, 7]);
    assert_eq!(
        kind_and_seq(&verify(&deleted, cps(), None)),
        Some((FailureKind::Deleted, 4))
    );
    let forged = with_text(
        &take(&batch, &[0, 1, 2, 3, 4, 5, 6, 7, 3]),
        schema::MESSAGE,
        8,
        "x",
    );
    assert_eq!(
        kind_and_seq(&verify(&forged, cps(), None)),
        Some((FailureKind::Inserted, 4))
    );
    let swapped = with_seqs(&batch, (2, 5));
    assert_eq!(
        kind_and_seq(&verify(&swapped, cps(), None)),
        Some((FailureKind::Reordered, 3))
    );
    let truncated = take(&batch, &[0, 1, 2, 3, 4, 5]);
    assert_eq!(
        kind_and_seq(&verify(&truncated, cps(), None)),
        Some((FailureKind::Truncated, 7))
    );
}

#[test]
fn seals_are_checked_under_the_key() {
    let (batch, cp) = chained(4);
    let missing = verify(&batch, vec![cp.clone()], Some(b"k"));
    assert_eq!(kind_and_seq(&missing), Some((FailureKind::SealMissing, 4)));
    let wrong = verify(&batch, vec![sealed(cp.clone(), b"other")], Some(b"k"));
    assert_eq!(kind_and_seq(&wrong), Some((FailureKind::SealInvalid, 4)));
    let uncovered = verify(&batch, vec![], Some(b"k"));
    assert_eq!(
        kind_and_seq(&uncovered),
        Some((FailureKind::SealMissing, 1))
    );
    let unsealed = verify(&batch, vec![cp], None);
    assert!(unsealed.failure.is_none() && !unsealed.sealed);
}

#[test]
fn a_row_appended_to_a_checkpointed_file_is_inserted() {
    let (batch, cp) = chained(5);
    let files: StringViewArray = (0..5).map(|_| Some(cp.file.as_str())).collect();
    let batch = replace_or_add(&batch, verify::SOURCE_FILE, Arc::new(files));
    let early = Checkpoint {
        seq: 4,
        head: text(&batch, schema::AUDIT_HASH, 3).unwrap(),
        ..cp
    };
    let report = verify(&batch, vec![early], None);
    assert_eq!(kind_and_seq(&report), Some((FailureKind::Inserted, 5)));
    assert_eq!(
        report.failure.unwrap().file.as_deref(),
        Some("hot/part-w0-1.parquet")
    );
}

#[test]
fn a_copied_file_of_earlier_rows_is_inserted_not_an_error() {
    let (batch, _) = chained(6);
    let mut verifier = Verifier::new("w0", vec![], None, false).unwrap();
    verifier.push(&batch).unwrap();
    // The copy of a file holding seqs 2..=3, visited after the genuine rows.
    verifier.push(&take(&batch, &[1, 2])).unwrap();
    let report = verifier.finish();
    assert_eq!(kind_and_seq(&report), Some((FailureKind::Inserted, 2)));
    let failure = report.failure.unwrap();
    assert_eq!(
        (failure.expected.as_str(), failure.found.as_str()),
        ("seq 7 or above", "2")
    );
}

#[test]
fn records_past_the_last_checkpoint_of_a_live_writer_are_pending() {
    let key = b"k3y".as_slice();
    let (batch, cp) = chained(5);
    let early = Checkpoint {
        seq: 3,
        head: text(&batch, schema::AUDIT_HASH, 2).unwrap(),
        ..cp
    };
    let early = sealed(early, key);
    let stopped = verify(&batch, vec![early.clone()], Some(key));
    assert_eq!(kind_and_seq(&stopped), Some((FailureKind::SealMissing, 4)));
    assert_eq!(stopped.pending, 0);

    let mut verifier = Verifier::new("w0", vec![early], Some(key), true).unwrap();
    verifier.set_live(true);
    verifier.push(&batch).unwrap();
    let live = verifier.finish();
    assert_eq!((live.failure, live.pending, live.records), (None, 2, 5));
}

#[test]
fn a_live_writer_does_not_hide_an_edited_record() {
    let (batch, _) = chained(5);
    let mut verifier = Verifier::new("w0", vec![], Some(b"k3y"), true).unwrap();
    verifier.set_live(true);
    verifier
        .push(&with_text(&batch, schema::MESSAGE, 4, "forged"))
        .unwrap();
    let report = verifier.finish();
    assert_eq!(kind_and_seq(&report), Some((FailureKind::Modified, 5)));
    assert_eq!(report.pending, 4);
}

#[derive(Clone, Debug)]
enum Tamper {
    Edit(usize),
    Rewrite(usize),
    Delete(usize),
    Insert(usize, bool),
    Swap(usize, usize),
}

fn tamper() -> impl Strategy<Value = (usize, Tamper)> {
    (3usize..30).prop_flat_map(|n| {
        let i = 0..n;
        let op = prop_oneof![
            i.clone().prop_map(Tamper::Edit),
            i.clone().prop_map(Tamper::Rewrite),
            i.clone().prop_map(Tamper::Delete),
            (i.clone(), any::<bool>()).prop_map(|(i, before)| Tamper::Insert(i, before)),
            (i.clone(), i)
                .prop_filter("two rows", |(a, b)| a < b)
                .prop_map(|(a, b)| Tamper::Swap(a, b)),
        ];
        (Just(n), op)
    })
}

fn apply(batch: &RecordBatch, n: usize, op: &Tamper) -> (RecordBatch, FailureKind, u64) {
    let rows: Vec<u32> = (0..n as u32).collect();
    match *op {
        Tamper::Edit(i) => (
            with_text(batch, schema::USER_ID, i, "root"),
            FailureKind::Modified,
            i as u64 + 1,
        ),
        Tamper::Rewrite(i) => (
            rehashed(&with_text(batch, schema::USER_ID, i, "root"), i),
            FailureKind::Modified,
            i as u64 + 1,
        ),
        Tamper::Delete(i) => {
            let kept: Vec<u32> = rows.into_iter().filter(|&r| r != i as u32).collect();
            let kind = if i + 1 == n {
                FailureKind::Truncated
            } else {
                FailureKind::Deleted
            };
            (take(batch, &kept), kind, i as u64 + 1)
        }
        Tamper::Insert(i, before) => {
            let mut order = rows;
            order.insert(if before { i } else { i + 1 }, i as u32);
            let at = if before { i } else { i + 1 };
            (
                with_text(&take(batch, &order), schema::MESSAGE, at, "forged"),
                FailureKind::Inserted,
                i as u64 + 1,
            )
        }
        Tamper::Swap(a, b) => (
            with_seqs(batch, (a, b)),
            FailureKind::Reordered,
            a as u64 + 1,
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn any_single_tamper_is_detected_with_its_kind((n, op) in tamper()) {
        let (batch, cp) = chained(n);
        let (tampered, kind, seq) = apply(&batch, n, &op);
        let report = verify(&tampered, vec![cp], None);
        prop_assert_eq!(kind_and_seq(&report), Some((kind, seq)), "{:?}", op);
    }
}
