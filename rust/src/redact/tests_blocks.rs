//! The block pass of the prefilter answers exactly as the byte-wise pass, at every offset.

use std::sync::OnceLock;

use proptest::prelude::*;

use super::prefilter::{Prefilter, RuleMask};
use super::rules::Trigger;
use super::*;

/// Built-in triggers with every optional kind, plus triggers with short literals and many bytes.
fn prefilters() -> &'static [Prefilter] {
    static PF: OnceLock<Vec<Prefilter>> = OnceLock::new();
    PF.get_or_init(|| {
        let all = RedactConfig {
            optional: OPTIONAL.iter().map(|s| s.to_string()).collect(),
            ..RedactConfig::default()
        };
        let odd = vec![
            Trigger::Literals(vec!["q".into(), "ey".into(), "Key".into(), "é".into()]),
            Trigger::Digits(3),
            Trigger::Digits(20),
            Trigger::Byte(b'@'),
            Trigger::Byte(b'#'),
            Trigger::Byte(b'!'),
            Trigger::Byte(b'~'),
            Trigger::Byte(b'^'),
            Trigger::Byte(b'*'),
            Trigger::Byte(b'$'),
        ];
        [
            super::build::triggers(&RedactConfig::default()),
            super::build::triggers(&all),
            odd,
        ]
        .iter()
        .map(|t| Prefilter::new(t, &[]).unwrap())
        .collect()
    })
}

/// Whether the block pass, where this CPU runs it, agrees with the byte-wise pass on `text`.
fn agree(text: &str) -> Result<(), TestCaseError> {
    for pf in prefilters() {
        let (blocks, bytewise) = pf.both_passes(text.as_bytes());
        let Some(blocks) = blocks else {
            return Ok(());
        };
        let encoded = |c: u64| c & (3 << 61);
        prop_assert_eq!(blocks.0, bytewise.0, "rules of {:?}", text);
        prop_assert_eq!(
            encoded(blocks.1),
            encoded(bytewise.1),
            "escapes of {:?}",
            text
        );
    }
    Ok(())
}

/// Filler of one-, two- and three-byte characters, so triggers sit next to multibyte UTF-8.
fn filler(n: usize) -> String {
    "aé日 x-".chars().cycle().take(n).collect()
}

/// Triggers of every kind, each planted at every offset around the first 16-byte boundaries.
#[test]
fn triggers_at_every_offset_around_block_edges() {
    let triggers = [
        "PASSWORD",
        "pwd",
        "eYj",
        "-----BEGIN",
        "://",
        "ghp_",
        "4111 1111 1111 1111",
        "123-45-6789",
        "123456789",
        "12345678",
        "1-2-3-4-5-6-7-8-9",
        "415 555 0100",
        "a@b",
        "\\u0041",
        "%41",
        "10.0.0.1",
        "::1",
        "q",
        "é",
        "#!~^*$",
    ];
    for t in triggers {
        for before in 0..40 {
            for after in [0, 1, 2, 3, 15, 16, 17] {
                let text = format!("{}{t}{}", filler(before), filler(after));
                agree(&text).unwrap();
            }
        }
    }
}

/// A digit run cut by the end of a block, or glued to letters, is measured the same way.
#[test]
fn digit_runs_across_block_edges() {
    for before in 0..34 {
        for len in 1..24 {
            let digits: String = (0..len)
                .map(|i| char::from(b'0' + (i % 10) as u8))
                .collect();
            for pad in ["", "x", " ", "-", ".", "7"] {
                agree(&format!("{}{pad}{digits}{pad}", "y".repeat(before))).unwrap();
                agree(&format!("{}{pad}{digits} 1", "-".repeat(before))).unwrap();
            }
        }
    }
}

/// Text built from pieces near the triggers, any case, multibyte characters between.
fn text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "pas", "PASS", "wd", "key", "KE", "y", "eyj", "://", ":", "@", "\\", "%", ".", "0", "1",
        "4111", " ", "-", "12-", "é", "日本", "🙂", "q", "#", "x", "ghp_", "-----", "begin",
    ]);
    prop::collection::vec(piece, 0..120).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn block_pass_equals_bytewise_pass(t in text()) {
        agree(&t)?;
    }

    #[test]
    fn block_pass_equals_bytewise_pass_on_any_bytes(t in "\\PC{0,200}") {
        agree(&t)?;
    }
}

/// The block pass runs on this CPU when it can, so the tests above compare two passes.
#[test]
fn block_pass_is_used_where_available() {
    let (blocks, _) = prefilters()[0].both_passes(b"password");
    assert_eq!(blocks.is_some(), super::blocks::Fingerprint::available());
    let mask: RuleMask = blocks.map_or(1, |b| b.0);
    assert_ne!(mask, 0);
}
