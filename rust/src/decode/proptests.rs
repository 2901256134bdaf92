//! Property tests of the decoder: it never panics, every non-blank line is accounted for, and
//! unknown keys reach `fields` with their values intact.

use arrow_array::cast::AsArray;
use proptest::prelude::*;

use super::*;

fn decoder() -> Decoder {
    Decoder::new(DecodeConfig::default()).unwrap()
}

fn json_value() -> impl Strategy<Value = sonic_rs::Value> {
    let leaf = prop_oneof![
        Just(sonic_rs::json!(null)),
        any::<bool>().prop_map(|b| sonic_rs::json!(b)),
        any::<i64>().prop_map(|n| sonic_rs::json!(n)),
        (-1e12f64..1e12).prop_map(|f| sonic_rs::json!(f)),
        "\\PC{0,12}".prop_map(|s| sonic_rs::json!(s)),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| sonic_rs::json!(v)),
            prop::collection::btree_map("x_[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| sonic_rs::to_value(&m).unwrap()),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_every_line_is_counted(
        lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..20)
    ) {
        let data: Vec<u8> = lines.iter().flat_map(|l| {
            let mut l: Vec<u8> = l.iter().copied().filter(|b| *b != b'\n').collect();
            l.push(b'\n');
            l
        }).collect();
        let out = decoder().decode(&data, &NoScrub, "p", 1, 0).unwrap();
        let counted = out.events.num_rows() + out.dead_letters.num_rows() + out.blank_lines as usize;
        prop_assert_eq!(counted, lines.len());
        prop_assert_eq!(out.lines as usize, lines.len());
    }

    #[test]
    fn unknown_keys_reach_fields_with_equal_values(
        members in prop::collection::btree_map("x_[a-z]{1,8}", json_value(), 1..6),
        message in "\\PC{0,30}",
    ) {
        let mut object = members.clone();
        object.insert("message".to_owned(), sonic_rs::json!(message.clone()));
        let line = sonic_rs::to_string(&object).unwrap();
        let out = decoder().decode(line.as_bytes(), &NoScrub, "p", 1, 0).unwrap();
        prop_assert_eq!(out.events.num_rows(), 1);
        let col = |name: &str| out.events.column_by_name(name).unwrap().as_string_view().value(0).to_owned();
        prop_assert_eq!(col("message"), message);
        let fields: sonic_rs::Value = sonic_rs::from_str(&col("fields")).unwrap();
        prop_assert_eq!(fields, sonic_rs::to_value(&members).unwrap());
    }
}
