"""The two `qlingest bench --compare` baselines: what a competent user writes without qlingest.

Both read an NDJSON file, normalize timestamps and levels, redact with the built-in rules,
sample with the `cost-optimized` policy, hash-chain audit records and write zstd-3 Parquet.
`run_python_baseline` uses only the standard library plus Polars to write the file;
`run_polars_baseline` stays inside Polars expressions wherever Polars can express the work.

Both redact only where one combined prefilter matches (Python: the raw line; Polars: the
rows of `message`, `stack`, `fields`), and both sample with the same draw (`draw`: splitmix64
of the trace id's first 16 hex digits, or of the row index), so on the standard mix they keep
the same rows. Where they differ from each other:

- credit cards: Python checks Luhn and issuer prefixes on every 12-19 digit candidate, and
  masks card numbers sent as JSON numbers; Polars matches issuer prefixes and 4-4-4-4 / 4-6-5
  grouping by regex, without Luhn (Limitation: so it also masks Luhn-failing look-alikes,
  and a card sent as a JSON number inside `fields` is masked without quotes).
- SSNs: Python rejects areas 000 and 666 and zero groups or serials; Polars rejects area 9xx.
- secret keys: Python masks any non-null value under a secret key name; Polars masks string
  values only (`"password": "..."` in the `fields` JSON).
- `fields`: Python writes only the keys an event has; Polars encodes the union struct of all
  keys, so absent keys appear as `null` members.
- counts: Python counts each substitution; Polars counts the masks present after replacing.

Where both differ from qlingest: the Python line prefilter reads the JSON text before
unescaping, so a secret visible only after unescaping (`\\/`, `\\uXXXX`) is not looked for;
neither has dead letters (a malformed line raises); timestamps that are neither RFC 3339 nor
epoch numbers stay null instead of falling back to `observed_at`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

__all__ = ["BaselineResult", "run_polars_baseline", "run_python_baseline"]

DEFAULT_HASH_KEY = b"qlingest-bench-hash-key"
GENESIS = "0" * 64
LEVELS = ("debug", "info", "warn", "error", "critical")
LEVEL_SYNONYMS = {
    "trace": 0, "debug": 0, "dbg": 0,
    "info": 1, "information": 1, "informational": 1, "notice": 1,
    "warn": 2, "warning": 2,
    "error": 3, "err": 3,
    "critical": 4, "crit": 4, "fatal": 4, "panic": 4, "alert": 4, "emerg": 4, "emergency": 4,
}  # fmt: skip
BASE_RATES = {0: 0.01, 1: 0.10}
COLUMNS = (
    "timestamp", "level", "category", "service", "trace_id", "span_id", "parent_span_id",
    "user_id", "session_id", "message", "stack", "feature", "cost_center", "user_tier",
    "revenue",
)  # fmt: skip
LEVEL_KEYS = ("level", "severity", "severity_text", "severity_number")
ID_COLUMNS = ("trace_id", "span_id", "parent_span_id")
OUTPUT_SCHEMA = {
    "timestamp": pl.Datetime("ns", "UTC"),
    "level": pl.Enum(LEVELS),
    **{c: pl.String for c in COLUMNS[2:14]},
    "fields": pl.String,
    "revenue": pl.Float64,
    "sample_rate": pl.Float64,
    "audit_chain": pl.String,
    "audit_seq": pl.UInt64,
    "audit_prev_hash": pl.String,
    "audit_hash": pl.String,
}


@dataclass
class BaselineResult:
    """What one baseline run did and how long it took."""

    name: str
    rows_in: int
    rows_out: int
    redactions: dict[str, int]
    elapsed_s: float
    output: Path
    input_bytes: int = 0
    audit_records: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.rows_in / self.elapsed_s if self.elapsed_s else 0.0


# --- the rules ----------------------------------------------------------------------------
# Each value rule is (name, regex, kept prefix group or 0). The patterns use only syntax that
# Python's `re` and Rust's `regex` (inside Polars) read the same way.

VALUE_RULES: list[tuple[str, str, int]] = [
    (
        "private_key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        0,
    ),
    ("jwt", r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", 0),
    ("bearer_token", r"(?i)(\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}", 1),
    ("url_password", r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@\"]+:)[^\s@/\"]+@", 1),
    (
        "query_token",
        r"(?i)([?&](?:token|access_token|api_key|apikey|password|secret|sig)=)[^&\s\"#]+",
        1,
    ),
    ("aws_access_key_id", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", 0),
    ("aws_secret_key", r"(?i)(aws_secret_access_key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+]{40}", 1),
    ("github_token", r"\bgh[pousr]_[A-Za-z0-9]{36,}", 0),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_-]{20,}", 0),
    ("slack_token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}", 0),
    ("stripe_key", r"\b[rs]k_live_[A-Za-z0-9]{16,}", 0),
    ("google_api_key", r"\bAIza[A-Za-z0-9_-]{35}", 0),
    (
        "openai_key",
        r"\bsk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}"
        r"|[A-Za-z0-9_-]{10,}T3BlbkFJ[A-Za-z0-9_-]{10,}|[A-Za-z0-9]{48}\b)",
        0,
    ),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_-]{40,}", 0),
    ("huggingface_token", r"\bhf_[A-Za-z]{34}\b", 0),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b", 0),
    ("sendgrid_key", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", 0),
]
CARD_CANDIDATE = r"\b\d(?:[ -]?\d){11,18}\b"
# Polars cannot call a Luhn validator inside an expression, so its card rule names the issuer
# prefixes and grouping instead.
CARD_BY_PREFIX = (
    r"\b(?:(?:4\d{3}|5[1-5]\d{2}|2[2-7]\d{2}|6011)(?:[ -]?\d{4}){3}"
    r"|3[47]\d{2}[ -]?\d{6}[ -]?\d{5})\b"
)
SSN_CANDIDATE = r"\b(\d{3})-(\d{2})-(\d{4})\b"
SSN_BY_RANGE = r"\b[0-8]\d{2}-\d{2}-\d{4}\b"
EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
SECRET_KEY_NAMES = r"api[_-]?key|x-api-key|password|passwd|secret|client[_-]?secret|token|access[_-]?token|authorization|cookie|set-cookie|card[_-]?number|cvv|ssn|private[_-]?key"
SECRET_KEY = re.compile(rf"(?i)^(?:{SECRET_KEY_NAMES})$")
SECRET_MEMBER = rf"(?i)(\"(?:{SECRET_KEY_NAMES})\"\s*:\s*)\"(?:[^\"\\]|\\.)*\""
CARD_PREFIXES = ("4", "34", "37", "6011", "65", *(str(n) for n in range(51, 56)))


def prefilter_pattern() -> str:
    """Every rule as one alternation, so a clean string costs a single search."""
    scoped = [re.sub(r"^\(\?i\)(.*)$", r"(?i:\1)", p) for _, p, _ in VALUE_RULES]
    return "|".join([*scoped, CARD_CANDIDATE, SSN_CANDIDATE, EMAIL])


def line_prefilter_pattern() -> str:
    """The prefilter plus the secret key names as JSON members, searched on the raw line."""
    return prefilter_pattern() + rf'|(?i:"(?:{SECRET_KEY_NAMES})"\s*:)'


def mask(rule: str) -> str:
    return f"[REDACTED:{rule}]"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_card(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    mc2 = len(digits) >= 4 and 2221 <= int(digits[:4]) <= 2720
    return 12 <= len(digits) <= 19 and (digits.startswith(CARD_PREFIXES) or mc2) and luhn_ok(digits)


def is_ssn(m: re.Match[str]) -> bool:
    area, group, serial = m.groups()
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


class PyRedactor:
    """The built-in rules in plain `re`, with counters per rule."""

    def __init__(self, hash_key: bytes = DEFAULT_HASH_KEY) -> None:
        self.key = hash_key
        self.counts: Counter[str] = Counter()
        self.rules = [(n, re.compile(p), g) for n, p, g in VALUE_RULES]
        self.card = re.compile(CARD_CANDIDATE)
        self.ssn = re.compile(SSN_CANDIDATE)
        self.email = re.compile(EMAIL)
        self.prefilter = re.compile(prefilter_pattern())

    def text(self, value: str) -> str:
        if not self.prefilter.search(value):
            return value
        for name, rx, group in self.rules:
            repl = rf"\g<{group}>{mask(name)}" if group else mask(name)
            value, n = rx.subn(repl, value)
            self.counts[name] += n
        value = self.card.sub(self._card, value)
        value = self.ssn.sub(self._ssn, value)
        return self.email.sub(self._email, value)

    def _card(self, m: re.Match[str]) -> str:
        if not is_card(m.group()):
            return m.group()
        self.counts["credit_card"] += 1
        return mask("credit_card")

    def _ssn(self, m: re.Match[str]) -> str:
        if not is_ssn(m):
            return m.group()
        self.counts["ssn"] += 1
        return mask("ssn")

    def _email(self, m: re.Match[str]) -> str:
        self.counts["email"] += 1
        return email_token(self.key, m.group())

    def value(self, value: Any) -> Any:
        """Redacts any JSON value: strings by the value rules, containers by key and value."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.member(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and is_card(str(value)):
            self.counts["credit_card"] += 1
            return mask("credit_card")
        return value

    def member(self, key: str, value: Any) -> Any:
        if value is not None and SECRET_KEY.match(key):
            self.counts["secret_key"] += 1
            return mask("secret_key")
        return self.value(value)


def email_token(key: bytes, email: str) -> str:
    digest = hmac.new(key, email.lower().encode(), hashlib.sha256).hexdigest()
    return f"[email:{digest[:16]}]"


# --- normalization ------------------------------------------------------------------------


def level_code(event: dict[str, Any]) -> int | None:
    number = event.get("severity_number")
    if isinstance(number, int) and 1 <= number <= 24:
        return (number - 1) // 4 - 1 if number > 4 else 0
    text = event.get("level", event.get("severity", event.get("severity_text")))
    return LEVEL_SYNONYMS.get(text.lower()) if isinstance(text, str) else None


def epoch_ns(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        for limit, scale in ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3)):
            if abs(value) < limit:
                return value * scale
        return value
    if isinstance(value, float):
        return round(value * 1e9)
    if isinstance(value, str):
        return rfc3339_ns(value)
    return None


RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$", re.I)


def rfc3339_ns(text: str) -> int | None:
    m = RFC3339.match(text)
    if not m:
        return None
    base, frac, zone = m.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    seconds = int(datetime.fromisoformat(base + zone).timestamp())
    return seconds * 10**9 + int((frac or "").ljust(9, "0"))


MASK64 = (1 << 64) - 1
HEX_PREFIX = re.compile(r"[0-9a-f]{1,16}")


def mix64(x: int) -> int:
    """The splitmix64 finalizer, written so Polars integer expressions compute the same."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def draw(trace_id: Any, row: int, seed: int) -> float:
    """A uniform draw in [0, 1) shared by every event of a trace (by row without one)."""
    prefix = trace_id[:16] if isinstance(trace_id, str) else ""
    key = int(prefix, 16) if HEX_PREFIX.fullmatch(prefix) else row
    return (mix64(key ^ seed) >> 11) / 2.0**53


def sample_rate(row: dict[str, Any], level: int | None) -> float:
    """The rate of the `cost-optimized` rule matching `row`: 1.0 for always-keep rules."""
    if level is None or level >= 2 or (row["category"] or "").startswith("security."):
        return 1.0
    if row["category"] == "trace.spans" or row["user_tier"] == "enterprise":
        return 1.0
    if isinstance(row["revenue"], int | float) and row["revenue"] > 100:
        return 1.0
    return BASE_RATES[level]


def chain(rows: list[dict[str, Any]], chain_id: str) -> int:
    """Hash-chains the audit rows in order with SHA-256; returns how many were chained."""
    prev, seq = GENESIS, 0
    for row in rows:
        if row["category"] != "security.audit_logs":
            continue
        seq += 1
        row.update(audit_chain=chain_id, audit_seq=seq, audit_prev_hash=prev)
        record = {k: v for k, v in row.items() if k != "audit_hash"}
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
        prev = hashlib.sha256(prev.encode() + canonical.encode()).hexdigest()
        row["audit_hash"] = prev
    return seq


# --- plain Python -------------------------------------------------------------------------


def python_row(
    event: dict[str, Any], redactor: PyRedactor, dirty: bool = True
) -> tuple[dict[str, Any], int | None]:
    level = level_code(event)
    row = {c: event.pop(c, None) for c in COLUMNS}
    for key in LEVEL_KEYS:
        event.pop(key, None)
    row["timestamp"] = epoch_ns(row["timestamp"])
    row["level"] = LEVELS[level] if level is not None else None
    for key in ID_COLUMNS:
        if isinstance(row[key], str):
            row[key] = row[key].lower()
    if dirty:
        for key in ("message", "stack"):
            if isinstance(row[key], str):
                row[key] = redactor.text(row[key])
        event = redactor.value(event)
    row["fields"] = json.dumps(event, ensure_ascii=False) if event else None
    return row, level


def run_python_baseline(
    path: str | Path, out_dir: str | Path, *, seed: int = 42, hash_key: bytes = DEFAULT_HASH_KEY
) -> BaselineResult:
    """The plain-Python baseline: `json`, `re`, `hmac`, `random`, `hashlib`, then Polars."""
    path, out = Path(path), Path(out_dir) / "python.parquet"
    start = time.perf_counter()
    redactor, line_filter = PyRedactor(hash_key), re.compile(line_prefilter_pattern())
    rows, rows_in = [], 0
    with path.open("rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            text = line.decode()
            row, level = python_row(json.loads(text), redactor, bool(line_filter.search(text)))
            rate = sample_rate(row, level)
            kept = rate >= 1.0 or draw(row["trace_id"], rows_in, seed) < rate
            rows_in += 1
            if kept:
                row["sample_rate"] = 1.0 / rate
                rows.append(row)
    audit = chain(rows, "python-baseline")
    frame = pl.DataFrame(rows, schema=OUTPUT_SCHEMA | {"timestamp": pl.Int64}, orient="row")
    frame = frame.with_columns(pl.col("timestamp").cast(pl.Datetime("ns", "UTC")))
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(out, compression="zstd", compression_level=3)
    elapsed = time.perf_counter() - start
    return BaselineResult(
        "python", rows_in, len(rows), dict(redactor.counts), elapsed, out,
        path.stat().st_size, audit,
    )  # fmt: skip


# --- plain Polars -------------------------------------------------------------------------


def polars_timestamp(col: str = "timestamp") -> pl.Expr:
    text = pl.col(col).cast(pl.String)
    whole = text.cast(pl.Int64, strict=False)
    frac = text.cast(pl.Float64, strict=False)
    by_magnitude = (
        pl.when(whole.abs() < 10**11).then(whole * 10**9)
        .when(whole.abs() < 10**14).then(whole * 10**6)
        .when(whole.abs() < 10**17).then(whole * 10**3)
        .otherwise(whole)
    )  # fmt: skip
    parsed = (
        text.str.replace(r"[Zz]$", "+00:00")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="ns")
        .dt.epoch("ns")
    )
    ns = (
        pl.when(whole.is_not_null()).then(by_magnitude)
        .when(frac.is_not_null()).then((frac * 1e9).round().cast(pl.Int64))
        .otherwise(parsed)
    )  # fmt: skip
    return ns.cast(pl.Datetime("ns", "UTC")).alias(col)


def polars_level(columns: list[str]) -> pl.Expr:
    text = [pl.col(c) for c in ("level", "severity", "severity_text") if c in columns]
    by_name = (
        pl.coalesce(text).str.to_lowercase().replace_strict(LEVEL_SYNONYMS, default=None)
        if text
        else pl.lit(None, pl.Int64)
    )
    if "severity_number" in columns:
        number = pl.col("severity_number").cast(pl.Int64, strict=False)
        by_number = pl.when(number.is_between(1, 24)).then(((number - 1) // 4 - 1).clip(0, 4))
        by_name = pl.coalesce(by_number, by_name)
    return by_name.cast(pl.UInt8).alias("_level")


def polars_redact(frame: pl.DataFrame, columns: list[str], hash_key: bytes) -> tuple:
    """Applies the rules as `str.replace_all` over `columns` of the rows the prefilter flags;
    emails get keyed hashes. Counts come from the masks, in one pass after the replacing."""
    frame = frame.with_row_index("_row")
    flagged = pl.any_horizontal(
        pl.col(columns).str.contains(prefilter_pattern() + "|" + SECRET_MEMBER)
    )
    dirty = frame.filter(flagged.fill_null(False))
    clean = frame.filter(~flagged.fill_null(False))
    rules = [("secret_key", SECRET_MEMBER, 1), *VALUE_RULES]
    rules += [("credit_card", CARD_BY_PREFIX, 0), ("ssn", SSN_BY_RANGE, 0)]
    for name, pattern, group in rules:
        repl = f"${{{group}}}{mask(name)}" if group else mask(name)
        if name == "secret_key":
            repl = f'${{{group}}}"{mask(name)}"'
        dirty = dirty.with_columns(pl.col(columns).str.replace_all(pattern, repl))
    emails = pl.concat([dirty[c].str.extract_all(EMAIL).explode() for c in columns]).drop_nulls()
    if emails.len():
        tokens = {e: email_token(hash_key, e) for e in emails.unique().to_list()}
        dirty = dirty.with_columns(pl.col(columns).str.replace_many(tokens))
    counts = Counter({"email": emails.len()})
    counts.update(_mask_counts(dirty, columns))
    return pl.concat([clean, dirty]).sort("_row").drop("_row"), counts


def _mask_counts(frame: pl.DataFrame, columns: list[str]) -> dict[str, int]:
    found = pl.concat(
        [frame[c].str.extract_all(r"\[REDACTED:([a-z_]+)\]").explode() for c in columns]
    ).drop_nulls()
    names = found.str.slice(10).str.strip_suffix("]")
    return dict(names.value_counts().iter_rows())


def polars_sample(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    level, category = pl.col("_level"), pl.col("category").fill_null("")
    always = (
        level.is_null() | (level >= 2) | category.str.starts_with("security.")
        | (category == "trace.spans")
    )  # fmt: skip
    if "user_tier" in frame.columns:
        always = always | (pl.col("user_tier") == "enterprise").fill_null(False)
    if "revenue" in frame.columns:
        always = always | (pl.col("revenue") > 100).fill_null(False)
    rate = pl.when(always).then(1.0).when(level == 0).then(0.01).otherwise(0.10)
    return frame.with_columns(sample_rate=1.0 / rate).filter(always | (polars_draw(seed) < rate))


def polars_draw(seed: int) -> pl.Expr:
    """`draw` as expressions: consistent by trace id, by row index without one."""
    prefix = pl.col("trace_id").str.slice(0, 16)
    parsed = prefix.str.to_integer(base=16, dtype=pl.UInt64, strict=False)
    hexed = prefix.str.contains(r"^[0-9a-f]{1,16}$").fill_null(False)
    key = pl.when(hexed).then(parsed).otherwise(pl.int_range(pl.len(), dtype=pl.UInt64))
    x = key.xor(pl.lit(seed, pl.UInt64))
    x = x.xor(x // 2**30) * pl.lit(0xBF58476D1CE4E5B9, pl.UInt64)
    x = x.xor(x // 2**27) * pl.lit(0x94D049BB133111EB, pl.UInt64)
    x = x.xor(x // 2**31)
    return (x // 2**11).cast(pl.Float64) / 2.0**53


def run_polars_baseline(
    path: str | Path, out_dir: str | Path, *, seed: int = 42, hash_key: bytes = DEFAULT_HASH_KEY
) -> BaselineResult:
    """The plain-Polars baseline: `read_ndjson`, `str.replace_all`, a filter, `write_parquet`."""
    path, out = Path(path), Path(out_dir) / "polars.parquet"
    start = time.perf_counter()
    # The whole file is read for the schema: a rare key inferred late is still a column, so a
    # secret under it is neither dropped nor missed.
    frame = pl.read_ndjson(path, infer_schema_length=None)
    rows_in, names = frame.height, frame.columns
    rest = [c for c in names if c not in COLUMNS and c not in LEVEL_KEYS]
    frame = frame.with_columns(
        polars_timestamp(),
        polars_level(names),
        *[pl.col(c).str.to_lowercase() for c in ID_COLUMNS if c in names],
        (pl.struct(rest).struct.json_encode() if rest else pl.lit(None, pl.String)).alias("fields"),
        *[pl.lit(None, OUTPUT_SCHEMA[c]).alias(c) for c in COLUMNS if c not in names],
    )
    text = [c for c in ("message", "stack", "fields") if frame.schema[c] == pl.String]
    frame, counts = polars_redact(frame, text, hash_key)
    frame = polars_sample(frame, seed)
    frame = frame.with_columns(
        pl.col("_level")
        .replace_strict(dict(enumerate(LEVELS)), default=None, return_dtype=pl.Enum(LEVELS))
        .alias("level")
    )
    frame, audit = polars_chain(frame)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(out, compression="zstd", compression_level=3)
    elapsed = time.perf_counter() - start
    return BaselineResult(
        "polars", rows_in, frame.height, dict(counts), elapsed, out, path.stat().st_size, audit
    )


def polars_chain(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Chains the audit rows in Python (a hash chain is sequential) and joins the links back."""
    base = frame.select([*list(OUTPUT_SCHEMA)[:-5], "sample_rate"]).with_row_index("_row")
    audit = base.filter(pl.col("category") == "security.audit_logs")
    rows = audit.with_columns(pl.col("timestamp").dt.epoch("ns")).to_dicts()
    index = [r.pop("_row") for r in rows]
    count = chain(rows, "polars-baseline")
    links = pl.DataFrame(
        {
            "_row": index,
            **{k: [r.get(k) for r in rows] for k in list(OUTPUT_SCHEMA)[-4:]},
        },
        schema={"_row": pl.UInt32, **{k: OUTPUT_SCHEMA[k] for k in list(OUTPUT_SCHEMA)[-4:]}},
    )
    return base.join(links, on="_row", how="left").drop("_row"), count
