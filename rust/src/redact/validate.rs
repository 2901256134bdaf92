//! Validators: the checks that turn a weak pattern into evidence (Luhn, issuers, SSN ranges).

use std::ops::Range;

/// A check run on each regex match; it may narrow or reject the match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    /// The pattern alone is evidence.
    None,
    /// Digits of the match pass the Luhn check.
    Luhn,
    /// Payment cards inside a run of digit groups (Luhn, issuer prefix and length).
    Card,
    /// A US SSN with possible area, group and serial numbers.
    Ssn,
    /// A 40-character AWS secret key: upper, lower and digit all present.
    AwsSecret,
    /// A `Basic` credential: base64 of `user:password`.
    BasicAuth,
    /// A bearer token: 16+ characters with at least one digit.
    TokenShape,
    /// An IPv6 address with at least three groups.
    Ipv6,
    /// A parameter value: surrounding quotes are not part of it; an empty value is none.
    Unquote,
    /// A `user:password` parameter value: only the password after the first colon; a value
    /// with no colon or an empty password is none.
    PasswordHalf,
    /// An e-mail address that is not the `password@host` part of a URL authority.
    Email,
    /// A phone number that does not continue a dotted run of digits (an IPv4 address).
    Phone,
}

impl Validator {
    /// Parses the validator name of a custom rule.
    pub fn parse(name: &str) -> Option<Validator> {
        match name {
            "luhn" => Some(Validator::Luhn),
            "card" => Some(Validator::Card),
            "ssn" => Some(Validator::Ssn),
            _ => None,
        }
    }

    /// Pushes the accepted sub-ranges of `text[m]` to `out`.
    pub fn accept(self, text: &str, m: Range<usize>, out: &mut Vec<Range<usize>>) {
        let s = &text[m.clone()];
        let ok = match self {
            Validator::None => true,
            Validator::Luhn => luhn(digits(s).as_slice()),
            Validator::Card => return cards_in_run(text, m, out),
            Validator::Ssn => ssn(s) && !digit_neighbour(text, &m),
            Validator::AwsSecret => aws_secret(s),
            Validator::BasicAuth => basic_auth(s),
            Validator::TokenShape => s.len() >= 16 && s.bytes().any(|b| b.is_ascii_digit()),
            Validator::Ipv6 => ipv6(s),
            Validator::Unquote => return unquote(m, s, out),
            Validator::PasswordHalf => return password_half(m, s, out),
            Validator::Email => !in_url_authority(text, m.start),
            Validator::Phone => !dotted_neighbour(text, &m),
        };
        if ok {
            out.push(m);
        }
    }
}

/// The ASCII digits of `s`, in order.
pub fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// The Luhn checksum over digit values (0..=9).
pub fn luhn(d: &[u8]) -> bool {
    if d.len() < 2 {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| luhn_term(i, x))
        .sum();
    sum % 10 == 0
}

fn luhn_term(i: usize, x: u8) -> u32 {
    let x = u32::from(x);
    match i % 2 {
        0 => x,
        _ if x * 2 > 9 => x * 2 - 9,
        _ => x * 2,
    }
}

/// Whether the digits start with a card issuer's prefix valid for their length.
pub fn issuer_ok(d: &[u8]) -> bool {
    let n = d.len();
    let p = |k: usize| {
        d.iter()
            .take(k)
            .fold(0u32, |acc, &x| acc * 10 + u32::from(x))
    };
    match d.first() {
        Some(4) => matches!(n, 13 | 16 | 19),
        Some(5) if (51..=55).contains(&p(2)) => n == 16,
        Some(5) if matches!(p(2), 50 | 56..=58) => (12..=19).contains(&n),
        Some(2) if (2221..=2720).contains(&p(4)) => n == 16,
        Some(2) if (2200..=2204).contains(&p(4)) => (16..=19).contains(&n),
        Some(3) if matches!(p(2), 34 | 37) => n == 15,
        Some(3) if (3528..=3589).contains(&p(4)) => (16..=19).contains(&n),
        Some(3) if (300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39) => {
            (14..=19).contains(&n)
        }
        Some(6) if p(4) == 6011 || matches!(p(3), 644..=649) || matches!(p(2), 62 | 65) => {
            (16..=19).contains(&n)
        }
        Some(6) => n >= 12 && matches!(p(4), 6304 | 6759 | 6761..=6763),
        _ => false,
    }
}

/// A full card check on digit values: length, issuer prefix and Luhn.
pub fn card(d: &[u8]) -> bool {
    (12..=19).contains(&d.len()) && issuer_ok(d) && luhn(d)
}

/// Finds cards inside a run of digit groups separated by single spaces or dashes.
fn cards_in_run(text: &str, m: Range<usize>, out: &mut Vec<Range<usize>>) {
    let groups = digit_groups(text, m.clone());
    if is_uuid_shape(&groups) || glued_to_identifier(text, m.start) {
        return;
    }
    let mut i = 0;
    while i < groups.len() {
        match card_from(text, &groups[i..]) {
            Some((used, range)) => {
                out.push(range);
                i += used;
            }
            None => i += 1,
        }
    }
}

/// The longest card starting at the first group: (groups used, byte range).
fn card_from(text: &str, groups: &[Range<usize>]) -> Option<(usize, Range<usize>)> {
    let mut best = None;
    let mut count = 0;
    for (j, g) in groups.iter().enumerate() {
        count += g.len();
        if count > 19 || (j > 0 && !(3..=6).contains(&g.len())) {
            break;
        }
        let multi_ok = j == 0 || (3..=6).contains(&groups[0].len());
        let range = groups[0].start..g.end;
        if multi_ok && count >= 12 && card(&digits(&text[range.clone()])) {
            best = Some((j + 1, range));
        }
    }
    best
}

fn digit_groups(text: &str, m: Range<usize>) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut groups = Vec::new();
    let mut i = m.start;
    while i < m.end {
        let start = i;
        while i < m.end && bytes[i].is_ascii_digit() {
            i += 1;
        }
        groups.push(start..i);
        i += 1;
    }
    groups
}

/// An all-digit UUID (8-4-4-4-12) is an identifier, not a card.
fn is_uuid_shape(groups: &[Range<usize>]) -> bool {
    let lens: Vec<usize> = groups.iter().map(Range::len).collect();
    lens.windows(5).any(|w| w == [8, 4, 4, 4, 12])
}

/// Digits right after `<digit>.` (a fraction) or after a dash or plus (`blk_-6952…`, a signed
/// number) are not a card.
fn glued_to_identifier(text: &str, start: usize) -> bool {
    let b = text.as_bytes();
    let fraction = start >= 2 && b[start - 1] == b'.' && b[start - 2].is_ascii_digit();
    fraction || (start >= 1 && matches!(b[start - 1], b'-' | b'+'))
}

fn digit_neighbour(text: &str, m: &Range<usize>) -> bool {
    let b = text.as_bytes();
    let before = m.start > 0 && matches!(b[m.start - 1], b'0'..=b'9' | b'-' | b'.');
    let after = m.end < b.len() && matches!(b[m.end], b'0'..=b'9' | b'-');
    before || after
}

/// A US SSN (9 digits, separators ignored) outside the impossible ranges.
pub fn ssn(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 9 {
        return false;
    }
    let num = |r: Range<usize>| d[r].iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    let (area, group, serial) = (num(0..3), num(3..5), num(5..9));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

fn aws_secret(s: &str) -> bool {
    let has = |f: fn(&u8) -> bool| s.as_bytes().iter().any(f);
    has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase) && has(u8::is_ascii_digit)
}

fn basic_auth(s: &str) -> bool {
    match base64_decode(s) {
        Some(raw) => raw.contains(&b':') && raw.iter().all(|b| (0x20..0x7f).contains(b)),
        None => false,
    }
}

/// Standard base64 decoding (padding optional); None on any other character.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.trim_end_matches('=').bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn ipv6(s: &str) -> bool {
    let groups = s.split(':').filter(|g| !g.is_empty()).count();
    s.parse::<std::net::Ipv6Addr>().is_ok() && (groups >= 3 || s == "::1")
}

/// Whether `start` lies in the password of `scheme://user:password@host`: from there on the
/// match is a URL's credentials and host, not an e-mail address.
fn in_url_authority(text: &str, start: usize) -> bool {
    let before = &text.as_bytes()[..start];
    let from = before
        .iter()
        .rposition(|b| matches!(b, b'/' | b'?' | b'#' | b'@') || is_space_or_quote(*b));
    match from {
        // `user:` (the user name may be empty) sits between `://` and the match.
        Some(i) => before[..=i].ends_with(b"://") && memchr::memchr(b':', &before[i..]).is_some(),
        None => false,
    }
}

fn is_space_or_quote(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'<' | b'>')
}

/// Pushes `m` without the quotes around it (when `s`, its text, is quoted) unless that is empty.
fn unquote(m: Range<usize>, s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let quoted = b.len() >= 2 && matches!(b[0], b'"' | b'\'') && b[b.len() - 1] == b[0];
    let inner = match quoted {
        true => m.start + 1..m.end - 1,
        false => m.start..m.start + without_closers(b),
    };
    if !inner.is_empty() {
        out.push(inner);
    }
}

/// Pushes the part of `m` after the first colon of its unquoted text (`s`), unless empty.
fn password_half(m: Range<usize>, s: &str, out: &mut Vec<Range<usize>>) {
    let start = m.start;
    let mut value = Vec::with_capacity(1);
    unquote(m, s, &mut value);
    let Some(v) = value.pop() else {
        return;
    };
    let inner = &s.as_bytes()[v.start - start..v.end - start];
    if let Some(colon) = memchr::memchr(b':', inner) {
        let password = v.start + colon + 1..v.end;
        if !password.is_empty() {
            out.push(password);
        }
    }
}

// Limitation: a bare value's closing brackets at its end are left, so a password ending in
// `}` or `]` keeps that last character.
/// The length of a bare value without the `}` and `]` that end it: those close the JSON or
/// brackets the assignment sits in (`{"apiKey": 12345678}` in a message), not the value.
pub fn without_closers(value: &[u8]) -> usize {
    let mut end = value.len();
    while end > 0 && matches!(value[end - 1], b'}' | b']') {
        end -= 1;
    }
    end
}

/// Whether `text[m]` continues a run of digit groups joined by dots on either side: dotted
/// groups of an IPv4 address or a version number are no phone number.
fn dotted_neighbour(text: &str, m: &Range<usize>) -> bool {
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let after = b.get(m.end) == Some(&b'.') && digit(m.end + 1);
    let before = m.start >= 2 && b[m.start - 1] == b'.' && digit(m.start - 2);
    after || before
}
