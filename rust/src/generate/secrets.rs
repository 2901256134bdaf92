//! Secrets of the built-in redaction kinds, and where an event carries them.

use super::rng::Rng;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Secret kinds, named as the built-in redaction rules name them.
pub const KINDS: [&str; 16] = [
    "credit_card",
    "ssn",
    "email",
    "aws_access_key_id",
    "aws_secret_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "stripe_key",
    "google_api_key",
    "jwt",
    "bearer_token",
    "private_key",
    "url_password",
    "query_token",
    "secret_key_name",
];

/// One planted secret: its kind and the text that must not reach storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlantedSecret {
    pub kind: &'static str,
    pub value: String,
}

/// A secret ready to embed: `text` is what goes in the event, `value` the sensitive part.
pub struct Secret {
    pub kind: &'static str,
    pub text: String,
    pub value: String,
}

impl Secret {
    fn whole(kind: &'static str, text: String) -> Self {
        Secret {
            kind,
            value: text.clone(),
            text,
        }
    }

    pub fn planted(&self) -> PlantedSecret {
        PlantedSecret {
            kind: self.kind,
            value: self.value.clone(),
        }
    }
}

/// A secret of `kind` (an index into `KINDS`).
pub fn make(kind: usize, rng: &mut Rng) -> Secret {
    let name = KINDS[kind];
    match name {
        "credit_card" => Secret::whole(name, card(rng)),
        "ssn" => Secret::whole(name, ssn(rng)),
        "email" => Secret::whole(name, email(rng)),
        "aws_access_key_id" => {
            let prefix = if rng.chance(0.7) { "AKIA" } else { "ASIA" };
            Secret::whole(name, format!("{prefix}{}", chars(rng, UPPER_B32, 16)))
        }
        "aws_secret_key" => keyed(name, "aws_secret_access_key=", chars(rng, B64, 40)),
        "github_token" => Secret::whole(name, format!("ghp_{}", chars(rng, ALNUM, 36))),
        "gitlab_token" => Secret::whole(name, format!("glpat-{}", chars(rng, B64URL, 20))),
        "slack_token" => Secret::whole(name, slack(rng)),
        "stripe_key" => Secret::whole(name, format!("sk_live_{}", chars(rng, ALNUM, 24))),
        "google_api_key" => Secret::whole(name, format!("AIza{}", chars(rng, B64URL, 35))),
        "jwt" => Secret::whole(name, jwt(rng)),
        "bearer_token" => keyed(name, "Bearer ", chars(rng, ALNUM, 32)),
        "private_key" => private_key(rng),
        "url_password" => url_password(rng),
        "query_token" => query_token(rng),
        _ => Secret::whole(name, password(rng)),
    }
}

fn keyed(kind: &'static str, lead: &str, value: String) -> Secret {
    Secret {
        kind,
        text: format!("{lead}{value}"),
        value,
    }
}

fn chars(rng: &mut Rng, alphabet: &[u8], n: usize) -> String {
    (0..n).map(|_| rng.pick(alphabet) as char).collect()
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| (b'0' + rng.below(10) as u8) as char)
        .collect()
}

/// A Luhn-valid card number with a real issuer prefix, bare or grouped by spaces or dashes.
pub fn card(rng: &mut Rng) -> String {
    let (prefix, len) = match rng.below(5) {
        0 => ("4".to_string(), 16),
        1 => (format!("5{}", rng.range(1, 5)), 16),
        2 => (rng.range(2221, 2720).to_string(), 16),
        3 => (if rng.chance(0.5) { "34" } else { "37" }.to_string(), 15),
        _ => ("6011".to_string(), 16),
    };
    let mut number = prefix.clone();
    number.push_str(&digits(rng, len - prefix.len() - 1));
    number.push(luhn_check_digit(&number));
    group(&number, rng)
}

/// The digit that makes `body` followed by it pass the Luhn check.
pub fn luhn_check_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = (b - b'0') as u32;
            if i % 2 == 0 {
                let twice = d * 2;
                if twice > 9 {
                    twice - 9
                } else {
                    twice
                }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// Whether a digit string passes the Luhn check.
pub fn luhn_valid(number: &str) -> bool {
    let (body, last) = number.split_at(number.len() - 1);
    luhn_check_digit(body).to_string() == last
}

fn group(number: &str, rng: &mut Rng) -> String {
    let sep = match rng.below(3) {
        0 => return number.to_string(),
        1 => ' ',
        _ => '-',
    };
    let widths: &[usize] = if number.len() == 15 {
        &[4, 6, 5]
    } else {
        &[4, 4, 4, 4]
    };
    let mut out = String::with_capacity(number.len() + 3);
    let mut at = 0;
    for &w in widths {
        if at > 0 {
            out.push(sep);
        }
        out.push_str(&number[at..at + w]);
        at += w;
    }
    out
}

fn ssn(rng: &mut Rng) -> String {
    let mut area = rng.range(1, 899);
    if area == 666 {
        area = 667;
    }
    format!(
        "{area:03}-{:02}-{:04}",
        rng.range(1, 99),
        rng.range(1, 9999)
    )
}

fn email(rng: &mut Rng) -> String {
    const NAMES: [&str; 6] = [
        "jane.doe", "li.wei", "m.garcia", "ops-team", "k.tanaka", "j_smith",
    ];
    const DOMAINS: [&str; 4] = [
        "example.com",
        "mail.example.org",
        "corp.example.net",
        "ex.io",
    ];
    format!(
        "{}{}@{}",
        rng.pick(&NAMES),
        rng.below(1000),
        rng.pick(&DOMAINS)
    )
}

fn slack(rng: &mut Rng) -> String {
    format!(
        "xoxb-{}-{}-{}",
        digits(rng, 12),
        digits(rng, 13),
        chars(rng, ALNUM, 24)
    )
}

fn jwt(rng: &mut Rng) -> String {
    let payload = format!(
        r#"{{"sub":"u_{}","iat":{},"role":"user"}}"#,
        rng.below(100_000),
        1_736_899_200 + rng.below(86_400)
    );
    format!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}",
        base64url(payload.as_bytes()),
        chars(rng, B64URL, 43)
    )
}

/// Unpadded base64url, enough for JWT segments.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| acc << 8 | b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(B64URL[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A multi-line PEM block; the first body line stands for the secret.
fn private_key(rng: &mut Rng) -> Secret {
    let label = rng.pick(&["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"]);
    let lines: Vec<String> = (0..rng.range(4, 10)).map(|_| chars(rng, B64, 64)).collect();
    let text = format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----",
        lines.join("\n")
    );
    Secret {
        kind: "private_key",
        text,
        value: lines[0].clone(),
    }
}

fn url_password(rng: &mut Rng) -> Secret {
    let scheme = rng.pick(&["postgres", "mysql", "redis", "amqp", "https"]);
    let value = password(rng);
    let text = format!(
        "{scheme}://svc_{}:{value}@db-{}.internal:5432/app",
        rng.below(50),
        rng.below(9)
    );
    Secret {
        kind: "url_password",
        text,
        value,
    }
}

fn query_token(rng: &mut Rng) -> Secret {
    let param = rng.pick(&["token", "access_token", "api_key", "password"]);
    let value = chars(rng, ALNUM, 28);
    let text = format!("https://api.example.com/v1/export?{param}={value}&format=csv");
    Secret {
        kind: "query_token",
        text,
        value,
    }
}

fn password(rng: &mut Rng) -> String {
    format!(
        "{}{}!{}",
        chars(rng, ALNUM, 6),
        rng.below(100),
        chars(rng, ALNUM, 5)
    )
}
