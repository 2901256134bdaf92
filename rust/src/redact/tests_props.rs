//! Property tests: planted secrets never survive, redaction is idempotent, output stays JSON.

use proptest::prelude::*;

use super::escape::push_json_string;
use super::validate::luhn;
use super::*;

/// A planted secret: the text to plant and the part that must not survive.
#[derive(Debug, Clone)]
pub struct Planted {
    pub text: String,
    pub secret: String,
}

fn planted(text: String, secret: String) -> Planted {
    Planted { text, secret }
}

fn alnum(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9]{{{},{}}}", len.start(), len.end()))
        .unwrap()
}

/// A card number with a real issuer prefix and a valid check digit, bare or grouped.
fn card() -> impl Strategy<Value = Planted> {
    let issuers = prop::sample::select(vec![
        ("4", 16),
        ("4", 13),
        ("51", 16),
        ("55", 16),
        ("2221", 16),
        ("2720", 16),
        ("34", 15),
        ("37", 15),
        ("6011", 16),
        ("65", 19),
        ("3528", 16),
        ("36", 14),
    ]);
    let sep = prop::sample::select(vec!["", " ", "-"]);
    (issuers, prop::collection::vec(0u8..10, 19), sep).prop_map(|((prefix, len), rest, sep)| {
        let mut d: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
        d.extend(rest.into_iter().take(len - d.len() - 1));
        d.push(0);
        let check = (0..10).find(|c| {
            *d.last_mut().unwrap() = *c;
            luhn(&d)
        });
        *d.last_mut().unwrap() = check.unwrap();
        let digits: String = d.iter().map(|x| char::from(b'0' + x)).collect();
        let grouped: Vec<String> = digits
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        planted(grouped.join(sep), digits)
    })
}

fn ssn() -> impl Strategy<Value = Planted> {
    (1u32..900, 1u32..100, 1u32..10000)
        .prop_filter("666 is never issued", |(a, _, _)| *a != 666)
        .prop_map(|(a, g, s)| {
            let t = format!("{a:03}-{g:02}-{s:04}");
            planted(t.clone(), t)
        })
}

fn prefixed() -> impl Strategy<Value = Planted> {
    let forms = prop::sample::select(vec![
        ("AKIA", 16usize, ""),
        ("ASIA", 16, ""),
        ("ghp_", 36, ""),
        ("glpat-", 20, ""),
        ("xoxb-1234-", 24, ""),
        ("sk_live_", 24, ""),
        ("AIza", 35, ""),
        ("github_pat_", 40, ""),
        ("sk-proj-", 48, ""),
        ("sk-ant-api03-", 60, ""),
        ("hf_", 34, ""),
        ("npm_", 36, ""),
        ("SG.", 22, ""),
    ]);
    (forms, alnum(60..=60)).prop_map(|((prefix, len, _), body)| {
        let body = match prefix {
            "AKIA" | "ASIA" => body.to_ascii_uppercase(),
            // Hugging Face tokens hold letters only.
            "hf_" => body.replace(|c: char| c.is_ascii_digit(), "x"),
            _ => body,
        };
        let t = match prefix {
            "SG." => format!("SG.{}.{}", &body[..len], &body[17..]),
            _ => format!("{prefix}{}", &body[..len]),
        };
        planted(t.clone(), t)
    })
}

fn credentials() -> impl Strategy<Value = Planted> {
    let pw = "[A-Za-z0-9]{6,10}[0-9]";
    (
        proptest::string::string_regex(pw).unwrap(),
        0..11usize,
        alnum(20..=30),
    )
        .prop_map(|(pw, form, tok)| {
            let tok = format!("{tok}9");
            match form {
                0 => planted(format!("postgres://app:{pw}@db.internal:5432/main"), pw),
                1 => planted(format!("GET /cb?state=x&access_token={pw}&y=1"), pw),
                2 => planted(format!("Server=db;Password={pw};"), pw),
                3 => planted(format!("Authorization: Bearer {tok}"), tok),
                4 => {
                    let b64 = base64(format!("user:{pw}").as_bytes());
                    planted(format!("Authorization: Basic {b64}"), b64)
                }
                5 => planted(
                    format!("eyJhbGciOiJIUzI1NiJ9.eyJ{tok}.{pw}sig"),
                    format!("eyJ{tok}"),
                ),
                6 => planted(format!("{{:user => 'app', :password => '{pw}'}}"), pw),
                7 => planted(
                    format!("<user>app</user><db_password>{pw}</db_password>"),
                    pw,
                ),
                8 => planted(format!("AccountName=app;AccountKey={tok}==;"), tok),
                9 => planted(
                    format!("https://a.blob.core.windows.net/c?sp=r&sig={tok}"),
                    tok,
                ),
                _ => {
                    let body = format!("MIIE{tok}\n{pw}AB");
                    planted(
                        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----"),
                        body,
                    )
                }
            }
        })
}

fn email() -> impl Strategy<Value = Planted> {
    proptest::string::string_regex("[a-z][a-z0-9.]{0,10}[a-z]@[a-z]{2,8}\\.(com|org|io)")
        .unwrap()
        .prop_map(|t| planted(t.clone(), t))
}

/// A password on a client's command line, with other flags around it.
fn command_line() -> impl Strategy<Value = Planted> {
    let pw = "[A-Za-z0-9]{6,10}[0-9]";
    let flags = prop::sample::select(vec!["", "-v ", "-h db.internal ", "-s -S "]);
    (
        proptest::string::string_regex(pw).unwrap(),
        flags,
        0..4usize,
    )
        .prop_map(|(pw, f, form)| {
            let text = match form {
                0 => format!("curl {f}-u deploy:{pw} https://api.example.com/v1"),
                1 => format!("curl {f}--user 'deploy:{pw}' https://api.example.com/v1"),
                // sshpass reads only its own flags before `-p`; `-v` is one.
                2 if f.is_empty() => format!("sshpass -p {pw} ssh -p 2222 deploy@host"),
                2 => format!("sshpass -v -p{pw} ssh -p 2222 deploy@host"),
                _ => format!("redis-cli {f}-a {pw} ping"),
            };
            planted(text, pw)
        })
}

/// A secret of any supported kind.
pub fn any_secret() -> impl Strategy<Value = Planted> {
    prop_oneof![
        card(),
        ssn(),
        prefixed(),
        credentials(),
        email(),
        command_line()
    ]
}

fn base64(raw: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in raw.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            match i <= c.len() {
                true => out.push(char::from(T[(n >> (18 - 6 * i)) as usize & 63])),
                false => out.push('='),
            }
        }
    }
    out
}

/// Ordinary words around the secret.
fn words() -> impl Strategy<Value = String> {
    let vocab = prop::sample::select(vec![
        "request",
        "completed",
        "user",
        "password",
        "reset",
        "token",
        "bucket",
        "secret",
        "cache",
        "status=200",
        "in",
        "ms",
        "GET",
        "/api/v1/orders",
        "failed",
        "retry",
        "é",
        "ok",
        "",
    ]);
    prop::collection::vec(vocab, 0..8).prop_map(|w| w.join(" "))
}

/// Where in an event the secret goes: (key, raw JSON value) of one `fields` member.
fn placed(secret: &str, before: &str, after: &str, place: usize) -> (String, String) {
    let text = format!("{before} {secret} {after}");
    let mut s = String::new();
    push_json_string(&text, &mut s);
    match place {
        0 => ("note".into(), s),
        1 => (
            "ctx".into(),
            format!(r#"{{"a":{{"b":[1,{s},null]}},"c":true}}"#),
        ),
        2 => {
            let mut k = String::new();
            push_json_string(secret, &mut k);
            ("obj".into(), format!("{{{k}:1}}"))
        }
        3 => ("esc".into(), escape_first(&s)),
        _ => {
            let mut inner = String::new();
            push_json_string(&format!(r#"{{"msg":{s}}}"#), &mut inner);
            ("embedded".into(), inner)
        }
    }
}

/// Writes the first letter or digit of the string as a `\u00XX` escape.
fn escape_first(json: &str) -> String {
    let Some(i) = json[1..]
        .find(|c: char| c.is_ascii_alphanumeric())
        .map(|i| i + 1)
    else {
        return json.to_string();
    };
    format!(
        "{}\\u{:04x}{}",
        &json[..i],
        json.as_bytes()[i],
        &json[i + 1..]
    )
}

fn all_strings(v: &sonic_rs::Value, out: &mut Vec<String>) {
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    if let Some(s) = v.as_str() {
        out.push(s.to_string());
    } else if let Some(a) = v.as_array() {
        a.iter().for_each(|x| all_strings(x, out));
    } else if let Some(o) = v.as_object() {
        for (k, x) in o.iter() {
            out.push(k.to_string());
            all_strings(x, out);
        }
    }
}

fn redactor() -> &'static Redactor {
    static R: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
    R.get_or_init(|| Redactor::new(RedactConfig::default()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn planted_secret_never_survives_in_text(p in any_secret(), a in words(), b in words()) {
        let out = redactor().redact_text(&format!("{a} {} {b}", p.text), &mut []).into_owned();
        prop_assert!(!out.contains(&p.secret), "{} survived in {}", p.secret, out);
    }

    #[test]
    fn planted_secret_never_survives_in_fields(p in any_secret(), a in words(), b in words(), place in 0..5usize) {
        let (key, raw) = placed(&p.text, &a, &b, place);
        let mut out = String::from("{");
        redactor().write_field(&key, &raw, &mut out, &mut []);
        out.push('}');
        let value: sonic_rs::Value = sonic_rs::from_str(&out).map_err(|e| TestCaseError::fail(format!("{e}: {out}")))?;
        let mut strings = Vec::new();
        all_strings(&value, &mut strings);
        prop_assert!(!out.contains(&p.secret), "{} survived in {}", p.secret, out);
        prop_assert!(strings.iter().all(|s| !s.contains(&p.secret)), "{} survived in {:?}", p.secret, strings);
    }

    #[test]
    fn redacting_twice_equals_once(p in any_secret(), a in words(), b in words(), place in 0..5usize) {
        let r = redactor();
        let text = format!("{a} {} {b}", p.text);
        let once = r.redact_text(&text, &mut []).into_owned();
        prop_assert_eq!(r.redact_text(&once, &mut []).into_owned(), once);
        let (key, raw) = placed(&p.text, &a, &b, place);
        let mut first = String::new();
        r.write_field(&key, &raw, &mut first, &mut []);
        let (k2, v2) = first.split_once("\":").map(|(k, v)| (k[1..].to_string(), v.to_string())).unwrap();
        let mut second = String::new();
        r.write_field(&super::escape::json_unescape(&k2), &v2, &mut second, &mut []);
        prop_assert_eq!(second, first);
    }

    #[test]
    fn write_field_output_is_valid_json(raw in json_value(), key in "[a-z_]{1,8}") {
        let mut out = String::from("{");
        redactor().write_field(&key, &raw, &mut out, &mut []);
        out.push('}');
        prop_assert!(sonic_rs::from_str::<sonic_rs::Value>(&out).is_ok(), "invalid: {}", out);
    }
}

/// Random JSON text with strings that sometimes hold secrets, escapes or embedded JSON.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        (0u64..u64::MAX).prop_map(|n| n.to_string()),
        Just("123456789012345678901234567890".to_string()),
        any_secret().prop_map(|p| {
            let mut s = String::new();
            push_json_string(&p.text, &mut s);
            s
        }),
        words().prop_map(|w| {
            let mut s = String::new();
            push_json_string(&w, &mut s);
            escape_first(&s)
        }),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("(token|name|password|user|x)", inner), 0..4).prop_map(|v| {
                let members: Vec<String> =
                    v.into_iter().map(|(k, x)| format!("\"{k}\":{x}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}
