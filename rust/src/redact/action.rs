//! Rendering a replacement: marker, keyed hash, last four digits.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::config::Action;

type HmacSha256 = Hmac<Sha256>;

/// Hex digits kept from each HMAC: 64 bits, enough to join on without collisions in practice.
const HASH_HEX: usize = 16;

/// Turns a matched secret into its replacement text.
#[derive(Clone)]
pub struct Renderer {
    marker: String,
    mac: Option<HmacSha256>,
    key_id: String,
}

impl Renderer {
    /// `key` None makes every hash a mask (the caller reports that through `hash_fallback`).
    pub fn new(marker: &str, key: Option<&str>, key_id: &str) -> Renderer {
        let mac = key.map(|k| HmacSha256::new_from_slice(k.as_bytes()).expect("any key size"));
        let key_id = match (key_id.is_empty(), &mac) {
            (false, _) => key_id.to_string(),
            (true, Some(m)) => derived_key_id(m),
            (true, None) => String::new(),
        };
        Renderer {
            marker: marker.to_string(),
            mac,
            key_id,
        }
    }

    /// Whether a keyed hash is available.
    pub fn keyed(&self) -> bool {
        self.mac.is_some()
    }

    /// Appends the replacement of `value` matched by `rule` under `action` (drop appends nothing).
    pub fn render(&self, action: Action, rule: &str, value: &str, out: &mut String) {
        match action {
            Action::Mask => self.mask(rule, out),
            Action::Hash => self.hash(rule, value, out),
            Action::Partial => self.partial(rule, value, out),
            Action::Drop => {}
        }
    }

    /// Appends the marker with `{rule}` filled in.
    pub fn mask(&self, rule: &str, out: &mut String) {
        let mut parts = self.marker.split("{rule}");
        out.push_str(parts.next().unwrap_or_default());
        for part in parts {
            out.push_str(rule);
            out.push_str(part);
        }
    }

    /// Appends `[HASH:<rule>:<key id>:<16 hex>]`, or the marker when no key is configured.
    pub fn hash(&self, rule: &str, value: &str, out: &mut String) {
        match self.hex(rule, value) {
            Some(hex) => {
                out.push_str("[HASH:");
                out.push_str(rule);
                out.push(':');
                out.push_str(&self.key_id);
                out.push(':');
                out.push_str(&hex);
                out.push(']');
            }
            None => self.mask(rule, out),
        }
    }

    /// The shortened HMAC of a value; emails are compared case-insensitively.
    fn hex(&self, rule: &str, value: &str) -> Option<String> {
        let mut mac = self.mac.clone()?;
        match rule {
            "email" => mac.update(value.to_ascii_lowercase().as_bytes()),
            _ => mac.update(value.as_bytes()),
        }
        let digest = mac.finalize().into_bytes();
        Some(hex::encode(&digest[..HASH_HEX / 2]))
    }

    /// The marker with `<rule>:<last four digits>` when the value holds 12+ digits; else a mask.
    pub fn partial(&self, rule: &str, value: &str, out: &mut String) {
        let digits: Vec<char> = value.chars().filter(char::is_ascii_digit).collect();
        if digits.len() < 12 {
            return self.mask(rule, out);
        }
        let last4: String = digits[digits.len() - 4..].iter().collect();
        self.mask(&format!("{rule}:{last4}"), out);
    }

    /// Byte ranges of replacements already in `text` (markers and hashes), left alone on re-runs.
    pub fn protected(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let (prefix, suffix) = match self.marker.split_once("{rule}") {
            Some((p, s)) => (p, s),
            None => (self.marker.as_str(), ""),
        };
        for (p, s) in [(prefix, suffix), ("[HASH:", "]")] {
            if !p.is_empty() {
                find_wrapped(text, p, s, &mut out);
            }
        }
        out
    }
}

/// Longest text between a replacement's prefix and suffix (a rule name, a key id, a hash).
const MAX_BODY: usize = 96;

/// Appends the ranges `prefix ... suffix` (or the bare prefix when the suffix is empty).
fn find_wrapped(text: &str, prefix: &str, suffix: &str, out: &mut Vec<std::ops::Range<usize>>) {
    let b = text.as_bytes();
    for (start, _) in text.match_indices(prefix) {
        let body = start + prefix.len();
        // The suffix is looked for only where it may end a replacement, not to the text's end.
        let window = &b[body..(body + MAX_BODY + suffix.len()).min(b.len())];
        let end = match suffix.is_empty() {
            true => Some(0),
            false => memchr::memmem::find(window, suffix.as_bytes()),
        };
        super::work::add(end.map_or(window.len(), |e| e + suffix.len()));
        if let Some(e) = end.filter(|e| *e <= MAX_BODY) {
            out.push(start..body + e + suffix.len());
        }
    }
}

fn derived_key_id(mac: &HmacSha256) -> String {
    let mut mac = mac.clone();
    mac.update(b"qlingest key id");
    hex::encode(&mac.finalize().into_bytes()[..3])
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("marker", &self.marker)
            .field("keyed", &self.mac.is_some())
            .field("key_id", &self.key_id)
            .finish()
    }
}
