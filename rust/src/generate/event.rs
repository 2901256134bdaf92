//! One event of the standard mix: what it holds is decided first, then written in one pass.

use super::json::Obj;
use super::level::{write_level, LEVEL_WEIGHTS};
use super::rng::Rng;
use super::secrets::{self, Secret};
use super::time::write_timestamp;
use super::vocab::*;
use super::{Generator, Trace};

const HEX_LOWER: &[u8] = b"0123456789abcdef";
const HEX_UPPER: &[u8] = b"0123456789ABCDEF";
const SECRET_KEYS: [&str; 5] = [
    "password",
    "apiKey",
    "authorization",
    "client_secret",
    "passwd",
];

/// Where a planted secret sits in its event.
enum Place {
    Message,
    Nested,
    KeyTop(&'static str),
    KeyNested(&'static str),
}

/// Everything about one event that is decided before it is written.
struct Plan {
    level: usize,
    service: usize,
    category: &'static str,
    audit: bool,
    ids: Option<(String, String, Option<String>)>,
    message: String,
    escape_unicode: bool,
    secrets: Vec<(Secret, Place)>,
}

impl Generator {
    pub(super) fn write_event(&mut self, out: &mut Vec<u8>) {
        let plan = self.plan();
        self.count(&plan);

        let rng = &mut self.rng;
        let mut obj = Obj::open(out);
        write_timestamp(&mut obj, rng, self.clock_ns);
        write_level(&mut obj, rng, plan.level);
        obj.str("service", SERVICES[plan.service]);
        obj.str("category", plan.category);
        write_ids(&mut obj, &plan);
        if plan.escape_unicode {
            obj.str_ascii("message", &plan.message);
        } else {
            obj.str("message", &plan.message);
        }
        write_user(&mut obj, rng);
        write_body(&mut obj, rng, &plan);
        write_secret_fields(&mut obj, &plan);
        if plan.level >= 3 && rng.chance(0.6) {
            obj.str("stack", &stack(rng));
        }
        obj.close();
    }

    fn plan(&mut self) -> Plan {
        self.clock_ns += self.rng.below(2_000_000) as i64;
        let rng = &mut self.rng;
        let level = rng.weighted(&LEVEL_WEIGHTS);
        let service = rng.weighted(&SERVICE_WEIGHTS);
        let audit = rng.chance(0.05);
        let category = if audit {
            AUDIT_CATEGORY
        } else {
            pick_category(rng)
        };
        let mut message = if audit {
            audit_message(rng)
        } else {
            message(rng, level)
        };
        let escape_unicode = decorate(rng, &mut message);
        let secrets = if rng.chance(0.02) {
            plant(rng, &mut message)
        } else {
            Vec::new()
        };
        let ids = self.trace_ids();
        Plan {
            level,
            service,
            category,
            audit,
            ids,
            message,
            escape_unicode,
            secrets,
        }
    }

    fn count(&mut self, plan: &Plan) {
        let stats = &mut self.stats;
        stats.levels[plan.level] += 1;
        stats.services[plan.service] += 1;
        stats.audit += u64::from(plan.audit);
        stats.security += u64::from(plan.category.starts_with("security."));
        if !plan.secrets.is_empty() {
            stats.with_secrets += 1;
            if self.record_secrets {
                stats
                    .planted
                    .extend(plan.secrets.iter().map(|(s, _)| s.planted()));
            }
        }
    }

    /// Trace, span and parent span ids: most events belong to a trace of 1 to 12 events.
    fn trace_ids(&mut self) -> Option<(String, String, Option<String>)> {
        if !self.rng.chance(0.8) {
            return None;
        }
        if !matches!(&self.trace, Some(t) if t.remaining > 0) {
            let alphabet = if self.rng.chance(0.1) {
                HEX_UPPER
            } else {
                HEX_LOWER
            };
            let id = hex(&mut self.rng, alphabet, 32);
            let remaining = self.rng.range(1, 12) as u32;
            self.trace = Some(Trace {
                id,
                remaining,
                last_span: None,
            });
            self.stats.traces += 1;
        }
        let span = hex(&mut self.rng, HEX_LOWER, 16);
        let trace = self.trace.as_mut().expect("a trace was just ensured");
        trace.remaining -= 1;
        let parent = trace.last_span.replace(span.clone());
        Some((trace.id.clone(), span, parent))
    }
}

fn hex(rng: &mut Rng, alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| alphabet[rng.below(16) as usize] as char)
        .collect()
}

fn pick_category(rng: &mut Rng) -> &'static str {
    let weights: Vec<u32> = CATEGORIES.iter().map(|c| c.1).collect();
    CATEGORIES[rng.weighted(&weights)].0
}

fn fill_number(template: &str, rng: &mut Rng) -> String {
    template.replacen("{}", itoa::Buffer::new().format(rng.range(2, 9_999)), 1)
}

fn message(rng: &mut Rng, level: usize) -> String {
    fill_number(rng.pick(MESSAGES[level]), rng)
}

fn audit_message(rng: &mut Rng) -> String {
    let action = rng.pick(&AUDIT_ACTIONS);
    format!(
        "audit: u_{} {action} {}",
        rng.below(5000),
        fill_number(rng.pick(&AUDIT_RESOURCES), rng)
    )
}

/// Adds unicode or a multi-kilobyte payload to some messages; true when the message should be
/// written with `\u` escapes rather than raw UTF-8.
fn decorate(rng: &mut Rng, message: &mut String) -> bool {
    if rng.chance(0.004) {
        let line = "payload chunk 0x3f9a: {\"items\":[1,2,3],\"note\":\"retry\"}; ";
        *message = format!(
            "{message}; body dump: {}",
            line.repeat(rng.range(30, 80) as usize)
        );
    }
    if !rng.chance(0.05) {
        return false;
    }
    message.push_str(" · ");
    message.push_str(rng.pick(&UNICODE));
    rng.chance(0.3)
}

/// Plants one or two secrets, some into `message` right away.
fn plant(rng: &mut Rng, message: &mut String) -> Vec<(Secret, Place)> {
    let n = if rng.chance(0.8) { 1 } else { 2 };
    let mut planted: Vec<(Secret, Place)> = Vec::with_capacity(n);
    for i in 0..n {
        let secret = secrets::make(rng.below(secrets::KINDS.len() as u64) as usize, rng);
        // The second secret takes the next key name, so no key is written twice.
        let place = place(rng, &secret, i);
        if matches!(place, Place::Message) {
            let lead = rng.pick(&[
                "rejected credentials",
                "debug dump:",
                "config loaded",
                "sent to",
            ]);
            *message = format!("{message} ({lead} {})", secret.text);
        }
        planted.push((secret, place));
    }
    planted
}

fn place(rng: &mut Rng, secret: &Secret, index: usize) -> Place {
    if secret.kind == "secret_key_name" {
        let key = SECRET_KEYS[index];
        return if rng.chance(0.5) {
            Place::KeyTop(key)
        } else {
            Place::KeyNested(key)
        };
    }
    if rng.chance(0.5) {
        Place::Message
    } else {
        Place::Nested
    }
}

fn write_ids(obj: &mut Obj<'_>, plan: &Plan) {
    let Some((trace, span, parent)) = &plan.ids else {
        return;
    };
    obj.str("trace_id", trace);
    obj.str("span_id", span);
    // Log lines name their span; only span records name the parent too.
    if let (Some(parent), "trace.spans") = (parent, plan.category) {
        obj.str("parent_span_id", parent);
    }
}

fn write_user(obj: &mut Obj<'_>, rng: &mut Rng) {
    if rng.chance(0.4) {
        obj.str("user_id", &format!("u_{}", rng.below(50_000)));
        if rng.chance(0.6) {
            obj.str("session_id", &hex(rng, HEX_LOWER, 16));
        }
    }
    if rng.chance(0.3) {
        obj.str("feature", rng.pick(&FEATURES));
        obj.str("cost_center", rng.pick(&COST_CENTERS));
    }
    if rng.chance(0.4) {
        let weights: Vec<u32> = TIERS.iter().map(|t| t.1).collect();
        obj.str("user_tier", TIERS[rng.weighted(&weights)].0);
    }
    if rng.chance(0.03) {
        obj.f64("revenue", (rng.range(50, 60_000) as f64) / 100.0);
    }
}

/// The category-specific part of an event and its optional `db` and `tags` members.
fn write_body(obj: &mut Obj<'_>, rng: &mut Rng, plan: &Plan) {
    match plan.category {
        "application.request_logs" => write_http(obj, rng),
        "trace.spans" => write_span(obj, rng),
        AUDIT_CATEGORY => write_audit(obj, rng, plan.level),
        _ => {}
    }
    if rng.chance(0.1) {
        write_db(obj, rng);
    }
    if rng.chance(0.1) {
        let mut tags = obj.arr("tags");
        for _ in 0..rng.range(1, 3) {
            tags.str(rng.pick(&TAGS));
        }
        tags.close();
    }
    if rng.chance(0.01) {
        write_card_lookalike(obj, rng);
    }
}

fn write_http(obj: &mut Obj<'_>, rng: &mut Rng) {
    let mut http = obj.obj("http");
    http.str("method", rng.pick(&HTTP_METHODS));
    http.str("path", rng.pick(&HTTP_PATHS));
    http.u64("status", rng.pick(&HTTP_STATUS));
    if rng.chance(0.5) {
        http.f64("duration_ms", rng.range(1, 250_000) as f64 / 100.0);
    }
    if rng.chance(0.08) {
        let mut headers = http.obj("headers");
        headers.str("user-agent", rng.pick(&USER_AGENTS));
        headers.str("content-type", rng.pick(&CONTENT_TYPES));
        headers.str("x-request-id", &hex(rng, HEX_LOWER, 20));
        headers.close();
    }
    http.close();
}

fn write_span(obj: &mut Obj<'_>, rng: &mut Rng) {
    obj.str("span_name", rng.pick(&SPAN_NAMES));
    if rng.chance(0.5) {
        obj.str("span_kind", rng.pick(&SPAN_KINDS));
    }
    obj.u64("duration_ns", rng.range(10_000, 900_000_000));
    obj.str("status_code", if rng.chance(0.95) { "OK" } else { "ERROR" });
}

fn write_audit(obj: &mut Obj<'_>, rng: &mut Rng, level: usize) {
    obj.str("actor", &format!("u_{}", rng.below(5000)));
    obj.str("action", rng.pick(&AUDIT_ACTIONS));
    obj.str("resource", &fill_number(rng.pick(&AUDIT_RESOURCES), rng));
    obj.str("result", if level >= 2 { "denied" } else { "allowed" });
    let ip = format!(
        "10.{}.{}.{}",
        rng.below(256),
        rng.below(256),
        rng.range(1, 254)
    );
    obj.str("ip", &ip);
    obj.str("user_agent", rng.pick(&USER_AGENTS));
    obj.str("data_category", rng.pick(&DATA_CATEGORIES));
    obj.str("regulation", rng.pick(&REGULATIONS));
}

fn write_db(obj: &mut Obj<'_>, rng: &mut Rng) {
    let mut db = obj.obj("db");
    db.str("system", rng.pick(&DB_SYSTEMS));
    db.str("statement", &fill_number(rng.pick(&DB_STATEMENTS), rng));
    db.u64("rows", rng.below(500));
    db.close();
}

/// A 16-digit number with a card issuer prefix that fails Luhn: it must not be redacted.
fn write_card_lookalike(obj: &mut Obj<'_>, rng: &mut Rng) {
    let body: String = std::iter::once('4')
        .chain((0..14).map(|_| char::from(b'0' + rng.below(10) as u8)))
        .collect();
    let check = secrets::luhn_check_digit(&body) as u8 - b'0';
    let wrong = char::from(b'0' + (check + 1 + rng.below(9) as u8) % 10);
    obj.str("order_number", &format!("{body}{wrong}"));
}

/// Secrets placed outside the message: in one nested `context` object, in one
/// `credentials` object, or under a secret-named key at the top level.
fn write_secret_fields(obj: &mut Obj<'_>, plan: &Plan) {
    let placed = |want: fn(&Place) -> bool| plan.secrets.iter().filter(move |(_, p)| want(p));
    for (secret, place) in placed(|p| matches!(p, Place::KeyTop(_))) {
        if let Place::KeyTop(key) = place {
            obj.str(key, &secret.text);
        }
    }
    if placed(|p| matches!(p, Place::KeyNested(_)))
        .next()
        .is_some()
    {
        let mut credentials = obj.obj("credentials");
        for (secret, place) in placed(|p| matches!(p, Place::KeyNested(_))) {
            if let Place::KeyNested(key) = place {
                credentials.str(key, &secret.text);
            }
        }
        credentials.close();
    }
    if placed(|p| matches!(p, Place::Nested)).next().is_some() {
        let mut context = obj.obj("context");
        for (i, (secret, _)) in placed(|p| matches!(p, Place::Nested)).enumerate() {
            write_nested(&mut context, secret, if i == 0 { "" } else { "_2" });
        }
        context.close();
    }
}

/// One secret inside `context`, under a key that suits its kind (suffixed to stay unique).
fn write_nested(context: &mut Obj<'_>, secret: &Secret, suffix: &str) {
    let key = |name: &str| format!("{name}{suffix}");
    match secret.kind {
        "email" => {
            let mut to = context.arr(&key("recipients"));
            to.str(&secret.text);
            to.str("on-call rotation");
            to.close();
        }
        "credit_card" if secret.text.bytes().all(|b| b.is_ascii_digit()) => {
            // A card sent as a JSON number, as some clients do.
            context.raw(&key("pan"), &secret.text);
        }
        "url_password" => context.str(&key("dsn"), &secret.text),
        "query_token" => context.str(&key("callback_url"), &secret.text),
        "bearer_token" | "jwt" => {
            let mut upstream = context.obj(&key("upstream"));
            upstream.str("forwarded_auth", &secret.text);
            upstream.close();
        }
        _ => context.str(&key("detail"), &format!("value seen: {}", secret.text)),
    }
}

fn stack(rng: &mut Rng) -> String {
    let python = rng.chance(0.5);
    let mut text = String::from(if python {
        "Traceback (most recent call last):\n"
    } else {
        "java.lang.IllegalStateException: order total mismatch\n"
    });
    let frames: &[&str] = if python { &PY_FRAMES } else { &JAVA_FRAMES };
    for _ in 0..rng.range(3, 12) {
        text.push_str(&fill_number(rng.pick(frames), rng));
    }
    if python {
        text.push_str("ValueError: order total mismatch");
    }
    text
}
