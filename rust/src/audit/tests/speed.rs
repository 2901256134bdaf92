//! Throughput: `cargo test --release --lib audit::tests::speed -- --ignored --nocapture`.

use super::*;

#[test]
#[ignore]
fn speed_of_chaining_and_verifying() {
    let batch = batch_of(&events(8192));
    let record_bytes = {
        let canon = Canonicalizer::new(&batch, false).unwrap();
        let mut out = Vec::new();
        canon.write_row(
            0,
            Some(Links {
                chain: "w0",
                seq: 1,
                prev: GENESIS,
            }),
            &mut out,
        );
        out.len()
    };
    let rounds = 256;
    let mut chain = AuditChain::new("w0", None);
    let start = std::time::Instant::now();
    let mut batches = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        batches.push(chain.append(&batch, &all(8192)).unwrap());
    }
    let chaining = start.elapsed();
    let start = std::time::Instant::now();
    let mut verifier = Verifier::new("w0", vec![], None, false).unwrap();
    for b in &batches {
        verifier.push(b).unwrap();
    }
    let report = verifier.finish();
    let verifying = start.elapsed();
    let total = (rounds * 8192) as f64;
    assert_eq!(report.failure, None);
    assert_eq!(report.records, total as u64);
    eprintln!("records of ~{record_bytes} canonical bytes: {total} records");
    eprintln!(
        "chain:  {:.2} M records/s",
        total / chaining.as_secs_f64() / 1e6
    );
    eprintln!(
        "verify: {:.2} M records/s",
        total / verifying.as_secs_f64() / 1e6
    );
}
