//! Property tests of the decoder: it never panics, every non-blank line is accounted for, and
//! unknown keys reach `fields` with their values intact.

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use proptest::prelude::*;
use sonic_rs::{JsonType, JsonValueTrait};

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

/// Every value of a batch as text, row by row, whatever the layout of its arrays.
fn render(batch: &RecordBatch) -> Vec<Vec<String>> {
    use arrow_array::types::{Float64Type, UInt64Type, UInt8Type};
    use arrow_array::Array;
    use arrow_schema::DataType;
    let columns: Vec<Vec<String>> =
        batch
            .columns()
            .iter()
            .map(|a| match a.data_type() {
                DataType::Utf8View => a
                    .as_string_view()
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect(),
                DataType::Utf8 => a
                    .as_string::<i32>()
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect(),
                DataType::Float64 => a
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect(),
                DataType::UInt64 => a
                    .as_primitive::<UInt64Type>()
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect(),
                DataType::Timestamp(..) => {
                    let ints = arrow_array::cast::downcast_array::<
                        arrow_array::TimestampNanosecondArray,
                    >(a.as_ref());
                    ints.iter().map(|v| format!("{v:?}")).collect()
                }
                DataType::Dictionary(..) => {
                    let dict = a.as_dictionary::<UInt8Type>();
                    let values = dict.values().as_string_view();
                    dict.keys()
                        .iter()
                        .map(|k| format!("{:?}", k.map(|k| values.value(k as usize))))
                        .collect()
                }
                other => panic!("no rendering for {other}"),
            })
            .collect();
    (0..batch.num_rows())
        .map(|row| columns.iter().map(|c| c[row].clone()).collect())
        .collect()
}

const KEYS: [&str; 14] = [
    "message",
    "msg",
    "level",
    "severity_number",
    "ts",
    "timestamp",
    "trace_id",
    "span_id",
    "service",
    "user_id",
    "revenue",
    "sample_rate",
    "x_a",
    "x_b",
];

/// One input line: an object over known and unknown keys (maybe with CRLF or a BOM), text,
/// blank, or arbitrary bytes.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let object =
        prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), json_value(), 0..6);
    prop_oneof![
        4 => (object, 0..4u8).prop_map(|(m, ending)| {
            let mut line = sonic_rs::to_string(&m).unwrap().into_bytes();
            match ending {
                1 => line.push(b'\r'),
                2 => line.splice(0..0, *b"\xef\xbb\xbf").for_each(drop),
                _ => {}
            }
            line
        }),
        1 => "\\PC{0,20}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..30),
    ]
    .prop_map(|mut l| {
        l.retain(|b| *b != b'\n');
        l
    })
}

proptest! {
    /// The chunk's single UTF-8 check and the row reused across lines change nothing: a chunk
    /// decodes as its lines one by one, and as itself checked line by line (forced by an
    /// invalid last line).
    #[test]
    fn a_chunk_decodes_as_its_lines_one_by_one(lines in prop::collection::vec(line(), 1..12)) {
        let data: Vec<u8> = lines.iter().flat_map(|l| l.iter().chain(b"\n")).copied().collect();
        let whole = decoder().decode(&data, &NoScrub, "p", 1, 0).unwrap();
        let (mut events, mut dead) = (Vec::new(), Vec::new());
        for (i, l) in lines.iter().enumerate() {
            let one = decoder().decode(l, &NoScrub, "p", i as u64 + 1, 0).unwrap();
            events.extend(render(&one.events));
            dead.extend(render(&one.dead_letters));
        }
        prop_assert_eq!(&render(&whole.events), &events);
        prop_assert_eq!(&render(&whole.dead_letters), &dead);
        let slow_data = [&data[..], b"\xff\n"].concat();
        let slow = decoder().decode(&slow_data, &NoScrub, "p", 1, 0).unwrap();
        prop_assert_eq!(render(&slow.events), events);
        prop_assert_eq!(slow.dead_letters.num_rows(), dead.len() + 1);
        prop_assert_eq!(render(&slow.dead_letters.slice(0, dead.len())), dead);
    }

    /// Values built into views directly read back equal, inline or not, nulls included, at every
    /// length the word copies of long values branch on.
    #[test]
    fn view_columns_hold_what_was_pushed(
        values in prop::collection::vec(prop::option::of(prop_oneof!["\\PC{0,20}", "[a-z\u{e9}]{0,70}"]), 0..80)
    ) {
        let mut column = builder::ViewColumn::with_capacity(2);
        for (i, v) in values.iter().enumerate() {
            if i % 3 == 0 {
                column.push_with(i % 7, |out| match v {
                    Some(s) => { out.push_str(s); true }
                    None => { out.push_str("dropped"); false }
                });
            } else {
                column.push(v.as_deref());
            }
        }
        let array = column.finish();
        let read: Vec<Option<String>> = array.iter().map(|v| v.map(str::to_owned)).collect();
        prop_assert_eq!(&read, &values);
        prop_assert_eq!(arrow_array::Array::null_count(&array), values.iter().filter(|v| v.is_none()).count());
        // Length and prefix in each view, as Arrow's own builder writes them.
        for (view, value) in array.views().iter().zip(&values) {
            let bytes = value.as_deref().unwrap_or("").as_bytes();
            let expected = arrow_array::builder::make_view(bytes, 0, 0);
            prop_assert_eq!(*view as u64, expected as u64);
        }
    }
}

/// The members as sonic's object iterator reads them (copying every key), with a tail check:
/// the reference `ndjson::for_each_member` must equal.
fn members_by_iterator(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut end = 0;
    for item in sonic_rs::to_object_iter(text) {
        let (key, value) = item.map_err(|e| format!("invalid JSON at column {}", e.column()))?;
        let raw = value.as_raw_str();
        end = raw.as_ptr() as usize + raw.len() - text.as_ptr() as usize;
        out.push((key.into_owned(), raw.to_owned()));
    }
    let rest = if end == 0 {
        text.trim().strip_prefix('{').unwrap_or("").trim_start()
    } else {
        text[end..].trim_start()
    };
    match rest.strip_prefix('}') {
        Some(after) if after.trim().is_empty() => Ok(out),
        _ => Err("unexpected text after the object".to_owned()),
    }
}

fn members_by_serde(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    ndjson::for_each_member(text, |key, _, raw| {
        out.push((key.into_owned(), raw.into_owned()));
        Ok(())
    })
    .map_err(|reject| reject.detail)?;
    Ok(out)
}

/// An object text, often damaged: cut, with a byte inserted, or with text after it.
fn object_text() -> impl Strategy<Value = String> {
    let object = prop::collection::btree_map("[a-z\"\\\\é]{0,4}", json_value(), 0..5)
        .prop_map(|m| sonic_rs::to_string(&m).unwrap());
    (
        object,
        0..5u8,
        any::<prop::sample::Index>(),
        "[ ,:}{\\]\"a0\\\\n-]{1,3}",
    )
        .prop_map(|(text, damage, at, junk)| {
            let mut cut = at.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            match damage {
                1 => text[..cut].to_owned(),
                2 => format!("{}{junk}{}", &text[..cut], &text[cut..]),
                3 => format!("{text}{junk}"),
                _ => format!(" {text} "),
            }
        })
}

proptest! {
    /// Members read through serde equal those of sonic's object iterator, key, raw value and
    /// error detail alike.
    #[test]
    fn members_read_as_by_the_object_iterator(text in object_text()) {
        prop_assume!(text.trim_start().starts_with('{'));
        prop_assert_eq!(members_by_serde(&text), members_by_iterator(&text));
    }
}

/// Members with the type of each value, as the scanner finds them.
fn members_by_scanner(text: &str, max_depth: usize) -> Option<Vec<(String, String, JsonType)>> {
    let mut found = Vec::new();
    scan::object(text, max_depth, &mut found)?;
    let slice = |(from, to): (usize, usize)| text[from..to].to_owned();
    // Escaped keys are unescaped as the decoder does it.
    let key = |m: &scan::Member| match m.key_escaped {
        true => json::unescape(&text[m.key.0 - 1..m.key.1 + 1])
            .map_or_else(|| "<bad escape>".to_owned(), |k| k.into_owned()),
        false => slice(m.key),
    };
    Some(
        found
            .iter()
            .map(|m| (key(m), slice(m.value), m.kind))
            .collect(),
    )
}

/// Members with the type of each value, as the full parser reads them.
fn members_with_types(text: &str) -> std::result::Result<Vec<(String, String, JsonType)>, String> {
    let mut out = Vec::new();
    ndjson::for_each_member(text, |key, value, raw| {
        out.push((key.into_owned(), raw.into_owned(), value.get_type()));
        Ok(())
    })
    .map_err(|reject| reject.detail)?;
    Ok(out)
}

/// A strict JSON number, or number-like text that may not be one.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,6})?([eE][-+]?[0-9]{1,4})?",
        2 => "[-+]?[0-9]{0,2}\\.?[0-9]?([eE][-+]?[0-9]?)?",
        1 => "[-+0-9.eE]{1,6}",
    ]
}

/// A string literal with escapes, valid or not.
fn escaped_text() -> impl Strategy<Value = String> {
    "\"([a-z]|\\\\[\"\\\\/bfnrtuxX0-9a-fA-F]|\\\\u[0-9a-fA-FgG]{4}|\\\\u[dD][89abAB][0-9a-f]{2}){0,5}\\\""
}

/// Literals and small containers, valid or not.
const LITERALS: [&str; 9] = [
    "true",
    "fals",
    "nulll",
    "null",
    "[1,]",
    "{\"a\":1,}",
    "[[],{},[{}]]",
    "{\"a\" :[ 1 , \"\\u0000\" ]}",
    "[\"\\ud800\",-0.0e-0]",
];

/// Object text for the scanner: valid or damaged (cut, or a byte inserted or replaced), compact or spread with whitespace (JSON's and
/// not), with nesting, odd numbers, escapes and literals.
fn scanned_text() -> impl Strategy<Value = String> {
    let compact = prop::collection::btree_map("[a-z]{1,4}", json_value(), 0..5)
        .prop_map(|m| sonic_rs::to_string(&m).unwrap());
    let pretty = prop::collection::btree_map("[a-z]{1,4}", json_value(), 0..5).prop_map(|m| {
        sonic_rs::to_string_pretty(&m)
            .unwrap()
            .replace("  ", " \t\r")
    });
    let odd = prop::collection::vec(
        prop_oneof![
            4 => number_text(),
            2 => escaped_text(),
            1 => prop::sample::select(LITERALS.to_vec()).prop_map(str::to_owned),
        ],
        0..4,
    )
    .prop_map(|values| {
        let members: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("\"k{i}\":{v}"))
            .collect();
        format!("{{{}}}", members.join(","))
    });
    let text = prop_oneof![1 => object_text(), 1 => compact, 1 => pretty, 3 => odd];
    (
        text,
        0..7u8,
        any::<prop::sample::Index>(),
        "[ \t\u{c}\u{a0},:\\]\"x0\\\\}{\u{1}\u{1f}]{1,2}",
    )
        .prop_map(|(text, damage, at, junk)| {
            let mut cut = at.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let next = text[cut..]
                .chars()
                .next()
                .map_or(cut, |c| cut + c.len_utf8());
            match damage {
                0 => format!("{}{junk}{}", &text[..cut], &text[cut..]),
                1 => text[..cut].to_owned(),
                2 => format!("{}{junk}{}", &text[..cut], &text[next..]),
                _ => text,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// What the scanner reads, the full parser reads the same: keys, raw values and types. It
    /// leaves a valid object to the parser only for an escape or nesting past the limit.
    #[test]
    fn the_scanner_reads_as_the_parser(text in scanned_text(), max_depth in 1..5usize) {
        let parsed = members_with_types(&text);
        let depth = json::exact_depth(text.as_bytes());
        match members_by_scanner(&text, max_depth) {
            Some(scanned) => {
                prop_assert!(depth <= max_depth);
                // The parser refuses a key with a lone surrogate escape, which the decoder
                // reads as U+FFFD, as it reads values.
                if parsed.is_err() && scanned.iter().any(|(k, ..)| k.contains('\u{fffd}')) {
                    return Ok(());
                }
                prop_assert_eq!(Ok(scanned), parsed);
            }
            None => {
                // An escaped key, a `\u` escape the parser lets through unchecked, or a newline
                // between tokens (no line holds one; in a chunk it ends the line).
                let escaped = |k: &String| k.chars().any(|c| c < ' ' || c == '"' || c == '\\');
                let left = match &parsed {
                    Ok(members) => {
                        members.iter().any(|(k, ..)| escaped(k))
                            || text.contains("\\u")
                            || text.contains('\n')
                    }
                    Err(_) => true,
                };
                prop_assert!(left || depth > max_depth, "the scanner gave up on a plain object");
            }
        }
    }

    /// A line decodes to the same row or the same rejection whether the scanner or the full
    /// parser reads it, at any depth limit, with strict timestamps or not, reading the
    /// timestamp and unescaping the message at once or once the row is kept.
    #[test]
    fn scanned_lines_decode_as_parsed_lines(
        text in prop_oneof![scanned_text(), line().prop_map(|l| String::from_utf8_lossy(&l).into_owned())],
        max_depth in 1..5usize,
        strict_timestamps in any::<bool>(),
        defer in any::<bool>(),
    ) {
        let config = DecodeConfig { max_depth, strict_timestamps, ..DecodeConfig::default() };
        let decoder = Decoder::new(config).unwrap();
        let row = || Row { defer, ..Row::default() };
        let (mut scanned, mut parsed) = (row(), row());
        let a = decoder.decode_json(&text, false, &mut scanned);
        let b = decoder.decode_json_parsed(&text, &mut parsed);
        // What is left to read once the row is kept is read, so rows compare whole.
        for row in [&mut scanned, &mut parsed] {
            row.settle_time(None);
            row.settle_text();
        }
        prop_assert_eq!(row_text(a, &scanned), row_text(b, &parsed));
    }
}

/// A decoded row, or its rejection, as text.
fn row_text(result: std::result::Result<(), Reject>, row: &Row<'_>) -> String {
    match result {
        Ok(()) => format!(
            "{:?} {:?} {:?} {:?} {:?} {:?}",
            row.timestamp, row.level, row.strings, row.revenue, row.sample_rate, row.members
        ),
        Err(reject) => format!("{} {}", reject.reason.as_str(), reject.detail),
    }
}

/// Pieces of lines: objects, white space, halves of an object, text after one.
fn line_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        r#"{"a":1}"#,
        r#"{ "msg" : "x\ty" , "b":[1, {"c":null}] }"#,
        r#"{"level":"warn","n":-2.5e3}"#,
        "{\"m\":\"é\"}",
        "{}",
        "{\"a\":",
        "1}",
        "[1]",
        " ",
        "\t",
        "\r",
        "\u{feff}",
        " x",
        r#"{"b":2}"#,
    ])
}

proptest! {
    /// A chunk decodes as its lines decode one by one, the scanner finding where each ends or
    /// leaving it to be cut at its newline: an object that a newline splits, text after an
    /// object, a carriage return, a byte order mark, lines past the size limit.
    #[test]
    fn a_chunk_of_split_objects_decodes_as_its_lines(
        lines in prop::collection::vec(prop::collection::vec(line_piece(), 0..5), 1..8),
        last_newline in any::<bool>(),
        max_line_bytes in prop::sample::select(vec![12usize, 40, 1 << 20]),
    ) {
        let lines: Vec<String> = lines.iter().map(|pieces| pieces.concat()).collect();
        let mut data = lines.join("\n");
        if last_newline {
            data.push('\n');
        }
        let config = DecodeConfig { max_line_bytes, ..DecodeConfig::default() };
        let decoder = Decoder::new(config).unwrap();
        let whole = decoder.decode(data.as_bytes(), &NoScrub, "p", 1, 7).unwrap();
        let (mut events, mut dead, mut blank) = (Vec::new(), Vec::new(), 0);
        for (i, line) in lines.iter().enumerate() {
            let ended = i + 1 < lines.len() || last_newline;
            let line = if ended { format!("{line}\n") } else { line.clone() };
            let one = decoder.decode(line.as_bytes(), &NoScrub, "p", 1 + i as u64, 7).unwrap();
            events.push(one.events);
            dead.push(one.dead_letters);
            blank += one.blank_lines;
        }
        let events = arrow_select::concat::concat_batches(&whole.events.schema(), &events).unwrap();
        let dead = arrow_select::concat::concat_batches(&whole.dead_letters.schema(), &dead).unwrap();
        prop_assert_eq!(whole.events, events);
        prop_assert_eq!(whole.dead_letters, dead);
        prop_assert_eq!(whole.blank_lines, blank);
        // An empty last line without a newline is no line.
        let counted = data.matches('\n').count() + usize::from(!data.ends_with('\n') && !data.is_empty());
        prop_assert_eq!(whole.lines as usize, counted);
    }
}

proptest! {
    /// Ids are lower-cased exactly when they hold an upper-case letter and are all hex
    /// digits and dashes; anything else is kept as sent.
    #[test]
    fn ids_are_lower_cased_as_byte_by_byte(id in "([0-9a-fA-F-]{0,40}|[0-9A-Fa-z\u{e9}\u{ff}-]{0,20})") {
        let plain = id.bytes().any(|b| b.is_ascii_uppercase())
            && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        let want = if plain { id.to_ascii_lowercase() } else { id.clone() };
        prop_assert_eq!(normalize_id(Cow::Borrowed(&id)), want);
    }
}

/// A chunk of several checking windows decodes as its lines one by one: lines across the
/// windows' cuts, a line longer than a window, invalid UTF-8 and a byte order mark in some
/// windows and not others, no final newline.
#[test]
fn a_chunk_of_many_windows_decodes_as_its_lines() {
    let pieces: [&[u8]; 9] = [
        br#"{"message":"plain","level":"warn","n":1}"#,
        br#"{"a":{"b":[1,2,{"c":"d"}]},"msg":"x\ty"}"#,
        b"not json",
        b"{\"m\":\"\xff\"}",
        b"\xef\xbb\xbf{\"m\":\"bom\"}",
        b"",
        "{\"m\":\"é\"}  ".as_bytes(),
        b"{\"a\":\r\n1}",
        b"{\"m\":\"tail\"}\r",
    ];
    let (mut lines, mut size): (Vec<Vec<u8>>, usize) = (Vec::new(), 0);
    let mut state = 7u64;
    while size < 3 * super::WINDOW_BYTES {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pick = (state >> 33) as usize;
        let mut line = pieces[pick % pieces.len()].to_vec();
        if lines.len() % 4000 == 2000 {
            // Longer than a window, as one string.
            line = format!(r#"{{"m":"{}"}}"#, "z".repeat(super::WINDOW_BYTES + 10)).into_bytes();
        }
        size += line.len() + 1;
        lines.push(line);
    }
    let mut data = lines.join(&b"\n"[..]);
    data.extend_from_slice(br#"{"m":"last"}"#);
    let whole = decoder().decode(&data, &NoScrub, "p", 1, 0).unwrap();
    let (mut events, mut dead, mut number) = (Vec::new(), Vec::new(), 1u64);
    for line in data.split(|&b| b == b'\n') {
        let one = decoder().decode(line, &NoScrub, "p", number, 0).unwrap();
        events.extend(render(&one.events));
        dead.extend(render(&one.dead_letters));
        number += 1;
    }
    assert!(whole.dead_letters.num_rows() > 0 && whole.events.num_rows() > 1000);
    assert_eq!(render(&whole.events), events);
    assert_eq!(render(&whole.dead_letters), dead);
}
