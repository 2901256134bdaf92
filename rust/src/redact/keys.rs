//! Key rules: key names that make a whole value secret, matched across spellings.

use memchr::{memchr, memchr_iter, memrchr};

/// Built-in secret key names, normalized (lower case, no `_`, `-`, `.` or spaces).
const SECRET_KEYS: &[&str] = &[
    "apikey",
    "xapikey",
    "password",
    "pass",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "clientsecret",
    "token",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "authtoken",
    "sessiontoken",
    "xauthtoken",
    "authorization",
    "proxyauthorization",
    "cookie",
    "setcookie",
    "cardnumber",
    "creditcard",
    "creditcardnumber",
    "ccnumber",
    "pan",
    "cvv",
    "cvc",
    "cvv2",
    "ssn",
    "privatekey",
    "secretkey",
    "secretaccesskey",
    // Azure storage connection strings (`AccountKey=…;`).
    "accountkey",
    "credentials",
];

/// A key ending in one of these (normalized) is secret too: `db_password`, `aws_secret_key`.
const SECRET_SUFFIXES: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "apikey",
    "accesstoken",
    "refreshtoken",
    "authtoken",
    "sessiontoken",
    "privatekey",
    "secretkey",
    "secretaccesskey",
    "clientsecret",
];

/// A key whose last word (after `_`, `-`, `.`, a space, or a case change as in `apiToken`) is one
/// of these is secret too, as in free text (`secret_param`): `api_token`, `X-Amz-Security-Token`,
/// `aws_access_key`; glued to a word in one case (`bigtoken`, `OLDPWD`) it names something else.
const SECRET_WORDS: &[&str] = &[
    "token",
    "signature",
    "credential",
    "credentials",
    "passphrase",
    "pwd",
    "accesskey",
];

/// Keys whose value may be `user:password` (Zeek ntlm `username`, for one).
const USER_KEYS: &[&str] = &[
    "username",
    "user",
    "login",
    "loginname",
    "account",
    "accountname",
];

/// What a key name says about its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Plain,
    /// The whole value is secret.
    Secret,
    /// A user name; a `name:password` value has its password half redacted.
    User,
}

/// Classifies key names; built once from the built-in list and `RedactConfig::keys`.
///
/// A trie over reversed normalized names: keys are read from their last byte, so most plain keys
/// are rejected after a byte or two, with no allocation and no hashing.
#[derive(Debug, Clone)]
pub struct KeyMatcher {
    nodes: Vec<Node>,
    /// The root's children by last byte (0: none), so most plain keys cost one lookup.
    root: Box<[u32; 256]>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    edges: Vec<(u8, u32)>,
    /// The kind of a key that is exactly this name.
    exact: Option<KeyKind>,
    /// Any key ending in this name is secret.
    suffix: bool,
    /// Any key whose last word is this name is secret.
    word: bool,
}

impl KeyMatcher {
    /// The built-in names plus `extra` (any spelling; normalized here).
    pub fn new(extra: &[String]) -> KeyMatcher {
        let mut m = KeyMatcher {
            nodes: vec![Node::default()],
            root: Box::new([0; 256]),
        };
        for k in SECRET_KEYS {
            m.insert(k.as_bytes()).exact = Some(KeyKind::Secret);
        }
        for k in extra
            .iter()
            .map(|k| normalize(k.as_bytes()))
            .filter(|k| !k.is_empty())
        {
            m.insert(&k).exact = Some(KeyKind::Secret);
        }
        for k in SECRET_SUFFIXES {
            m.insert(k.as_bytes()).suffix = true;
        }
        for k in SECRET_WORDS {
            m.insert(k.as_bytes()).word = true;
        }
        for k in USER_KEYS {
            let node = m.insert(k.as_bytes());
            node.exact = node.exact.or(Some(KeyKind::User));
        }
        for &(b, next) in &m.nodes[0].edges {
            m.root[b as usize] = next;
        }
        m
    }

    fn insert(&mut self, name: &[u8]) -> &mut Node {
        let mut at = 0;
        for &b in name.iter().rev() {
            at = match self.child(at, b) {
                Some(next) => next,
                None => {
                    self.nodes.push(Node::default());
                    let next = self.nodes.len() - 1;
                    self.nodes[at].edges.push((b, next as u32));
                    next
                }
            };
        }
        &mut self.nodes[at]
    }

    fn child(&self, at: usize, b: u8) -> Option<usize> {
        self.nodes[at]
            .edges
            .iter()
            .find(|e| e.0 == b)
            .map(|e| e.1 as usize)
    }

    /// Classifies a decoded key name.
    pub fn kind(&self, key: &[u8]) -> KeyKind {
        let mut at = 0;
        for (i, &b) in key.iter().enumerate().rev() {
            if is_separator(b) {
                continue;
            }
            let b = b.to_ascii_lowercase();
            let next = match at {
                0 => Some(self.root[b as usize] as usize).filter(|&n| n != 0),
                _ => self.child(at, b),
            };
            let Some(next) = next else {
                return KeyKind::Plain;
            };
            let node = &self.nodes[next];
            let word_start = i == 0 || starts_word(key[i - 1], key[i]);
            if node.suffix || (node.word && word_start) {
                return KeyKind::Secret;
            }
            at = next;
        }
        self.nodes[at].exact.unwrap_or(KeyKind::Plain)
    }

    /// Whether raw JSON text without backslashes may hold a secret or user key at any depth.
    ///
    /// A key is a quoted string before a colon. Read back from each colon, the string it closes
    /// is found with no walk over the values; in malformed text (`x" "pass":1`) this may take a
    /// key that pairing quotes from the start would not, which only sends more to the slow path.
    pub fn raw_has_sensitive_key(&self, raw: &[u8]) -> bool {
        memchr_iter(b':', raw).any(|colon| {
            let Some((start, end)) = string_before(raw, colon) else {
                return false;
            };
            let key = &raw[start..end];
            match self.kind(key) {
                KeyKind::Secret => true,
                KeyKind::User => user_value_has_colon(raw, colon + 1),
                KeyKind::Plain if is_pair_name(key) => self.string_after_is_secret(raw, colon + 1),
                KeyKind::Plain => false,
            }
        })
    }

    /// Whether raw JSON text without backslashes holds a string that is a command-line flag
    /// naming a secret key (`"--password"`, `"-api-key"`): in an array, the string after it
    /// is the secret (`["mysql", "--password", "hunter2"]`, OpenTelemetry's
    /// `process.command_args`). A quote that closes a string may be taken for an opening one
    /// here, which only sends more to the slow path.
    pub fn raw_has_secret_flag(&self, raw: &[u8]) -> bool {
        // A dash is rarer than a quote: each one right after a quote starts a candidate.
        memchr_iter(b'-', raw).any(|at| {
            at > 0
                && raw[at - 1] == b'"'
                && memchr(b'"', &raw[at..])
                    .and_then(|len| flag_name(&raw[at..at + len]))
                    .is_some_and(|name| self.kind(name) == KeyKind::Secret)
        })
    }

    /// Whether `text` is a command-line flag naming a secret key (see `raw_has_secret_flag`).
    pub fn is_secret_flag(&self, text: &[u8]) -> bool {
        flag_name(text).is_some_and(|name| self.kind(name) == KeyKind::Secret)
    }

    /// Whether the string value starting after `after_colon` is a secret key name: the `name` of
    /// a name/value pair (`{"name": "DB_PASSWORD", "value": …}`), whose value is then secret.
    fn string_after_is_secret(&self, raw: &[u8], after_colon: usize) -> bool {
        let i = skip_ws(raw, after_colon);
        match next_string(raw, i) {
            Some((start, end)) if start == i + 1 => self.kind(&raw[start..end]) == KeyKind::Secret,
            _ => false,
        }
    }
}

/// The name of a command-line flag, `--name` or `-name`, without a value of its own (`=`).
fn flag_name(text: &[u8]) -> Option<&[u8]> {
    let name = text
        .strip_prefix(b"--")
        .or_else(|| text.strip_prefix(b"-"))?;
    let plain = name.first().is_some_and(u8::is_ascii_alphabetic) && !name.contains(&b'=');
    plain.then_some(name)
}

/// The member names that name the value member of a name/value pair, in any case: `name` and
/// `key` (Kubernetes, OpenTelemetry attributes, AWS `Name`/`Key` tags and parameters) and
/// CloudFormation's `ParameterKey`.
pub fn is_pair_name(key: &[u8]) -> bool {
    [&b"name"[..], b"key", b"parameterkey"]
        .iter()
        .any(|name| key.eq_ignore_ascii_case(name))
}

/// The member names of the value a pair's name names, in any case: `value`, and
/// CloudFormation's `ParameterValue`.
pub fn is_pair_value(key: &[u8]) -> bool {
    key.eq_ignore_ascii_case(b"value") || key.eq_ignore_ascii_case(b"parametervalue")
}

// Limitation: a configured key is seen in free text only when its last word is written as
// configured (`keys = ["sessionid"]` misses `session_id=…`; `["session_id"]` finds both).
/// The prefilter literal of a configured key: its last word, lower case (`session_id` -> `id`).
pub fn key_trigger(key: &str) -> Option<String> {
    let word = key
        .rsplit(|c: char| is_separator(c as u8) && c.is_ascii())
        .next()?;
    (!word.is_empty()).then(|| word.to_ascii_lowercase())
}

/// Lower case with `_`, `-`, `.` and spaces removed: `X-Api-Key` -> `xapikey`.
pub fn normalize(key: &[u8]) -> Vec<u8> {
    key.iter()
        .filter(|b| !is_separator(**b))
        .map(u8::to_ascii_lowercase)
        .collect()
}

/// Whether `b` starts a word after `before`: after a separator, or upper case after lower case
/// or a digit (`apiToken`, `oauth2Token`).
fn starts_word(before: u8, b: u8) -> bool {
    is_separator(before)
        || (b.is_ascii_uppercase() && (before.is_ascii_lowercase() || before.is_ascii_digit()))
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'_' | b'-' | b'.' | b' ')
}

/// The content range of the next `"..."` at or after `from` (the text has no escapes).
fn next_string(raw: &[u8], from: usize) -> Option<(usize, usize)> {
    let start = from + memchr(b'"', raw.get(from..)?)? + 1;
    let end = start + memchr(b'"', &raw[start..])?;
    Some((start, end))
}

/// The content range of the `"..."` that ends right before `at`, whitespace between them skipped.
fn string_before(raw: &[u8], at: usize) -> Option<(usize, usize)> {
    let end = raw[..at].iter().rposition(|b| !b.is_ascii_whitespace())?;
    if raw[end] != b'"' {
        return None;
    }
    let start = memrchr(b'"', &raw[..end])? + 1;
    Some((start, end))
}

fn skip_ws(raw: &[u8], mut i: usize) -> usize {
    while raw.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

fn user_value_has_colon(raw: &[u8], after_colon: usize) -> bool {
    let i = skip_ws(raw, after_colon);
    match next_string(raw, i) {
        Some((start, end)) if start == i + 1 => memchr(b':', &raw[start..end]).is_some(),
        _ => false,
    }
}

/// The password half of a `name:password` value: the byte range after the first colon.
pub fn user_password_span(value: &str) -> Option<std::ops::Range<usize>> {
    let colon = value.find(':')?;
    let (name, rest) = (&value[..colon], &value[colon + 1..]);
    let plausible = !name.is_empty() && !rest.is_empty() && !rest.starts_with("//");
    let no_space = !value.bytes().any(|b| b.is_ascii_whitespace());
    (plausible && no_space).then(|| colon + 1..value.len())
}
