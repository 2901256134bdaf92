"""Configuration: typed with msgspec, loaded from TOML, handed to the Rust core as JSON."""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from qlingest.exceptions import ConfigError

__all__ = [
    "AuditConfig",
    "Config",
    "InputConfig",
    "RedactionConfig",
    "ServeConfig",
    "StoreConfig",
    "load_config",
    "policy_json",
    "sampling_policy",
]


Positive = Annotated[int, msgspec.Meta(gt=0)]
#: A writer id: it names files, ``writers/<id>.lock`` and ``wal/<id>``, so it holds no path
#: separator, is not ``.`` or ``..`` (it starts with no dot) and fits in a file name.
WRITER_ID_PATTERN = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}"
WriterId = Annotated[str, msgspec.Meta(pattern=rf"\A{WRITER_ID_PATTERN}\Z")]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class InputConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How input bytes become events (the Rust decoder's settings)."""

    format: Literal["ndjson", "text"] = "ndjson"
    #: Lines longer than this are dead-lettered as ``line_too_long``.
    max_line_bytes: Positive = 1 << 20
    #: JSON nested deeper than this is dead-lettered as ``too_deep``.
    max_depth: Positive = 64
    #: Unit of bare epoch numbers; ``auto`` infers it from the magnitude.
    epoch_unit: Literal["auto", "s", "ms", "us", "ns"] = "auto"
    #: Dead-letter events whose timestamp cannot be read instead of using ``observed_at``.
    strict_timestamps: bool = False
    #: Category of events that carry none.
    category: str = "application.logs"
    #: Service of events that carry none; ``None`` leaves the column null.
    service: str | None = None
    #: Text format: a regex with named groups (``timestamp``, ``level``, ``message``, ...).
    parse: str | None = None
    #: Text format: strftime-style format of the ``timestamp`` group; ``None`` tries RFC 3339.
    timestamp_format: str | None = None
    #: Threads that decode file chunks in parallel; 0 means one per core.
    threads: NonNegative = 0

    def core_json(self) -> str:
        """The decoder's settings as the core reads them (``threads`` is Python's)."""
        data = msgspec.structs.asdict(self)
        data.pop("threads")
        return msgspec.json.encode(data).decode()


class StoreConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How frames become Parquet files."""

    #: zstd level of the Parquet pages.
    compression_level: Annotated[int, msgspec.Meta(ge=1, le=22)] = 3
    #: A partition's buffered rows are written once they hold this many bytes in memory.
    target_file_bytes: Positive = 32 << 20
    #: All partitions together are flushed (largest first) beyond this many bytes in memory.
    max_buffer_bytes: Positive = 128 << 20
    #: At most this many partitions are buffered; beyond it the least recently started half
    #: is committed together. Each buffered partition costs some memory of its own, which
    #: events scattered over many hours (one partition each) would otherwise multiply.
    max_buffered_partitions: Positive = 512
    #: Rows per Parquet row group.
    row_group_size: Positive = 128 * 1024
    #: Writer id; ``None`` takes the lowest free ``w<N>`` under ``<data-dir>/writers``. Up to
    #: 64 letters, digits, ``.``, ``_`` or ``-``, not starting with ``.``: it names files.
    writer: WriterId | None = None
    #: fsync files and directories on commit. Off only for throwaway measurements.
    fsync: bool = True


#: A TCP port number; 0 asks the system for a free one.
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
#: Seconds between runs of a periodic job: 10 ms at least, so that an idle server does not
#: spin, and finite (a day at most; NaN is refused too).
Interval = Annotated[float, msgspec.Meta(ge=0.01, le=86400)]
#: Seconds a client or a stop is given: 100 ms at least, and finite (a day at most).
Timeout = Annotated[float, msgspec.Meta(ge=0.1, le=86400)]
#: A bearer token: visible ASCII without spaces, as ``Authorization: Bearer <token>`` carries
#: it (an empty one would accept a bare ``Bearer``; one with white space never matches).
Token = Annotated[str, msgspec.Meta(min_length=1, pattern=r"\A[!-~]+\Z")]


class ServeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``qlingest serve`` sidecar: receivers, limits, batching and the write-ahead log."""

    #: Address every receiver binds to; loopback unless set otherwise on purpose.
    host: str = "127.0.0.1"
    #: HTTP ``POST /v1/events`` (NDJSON); ``None`` turns it off, 0 picks a free port.
    http_port: Port | None = 9880
    #: OTLP/HTTP ``/v1/logs``, ``/v1/traces``, ``/v1/metrics``; ``None`` turns it off.
    otlp_port: Port | None = 4318
    #: TCP newline-delimited JSON; ``None`` (the default) turns it off.
    tcp_port: Port | None = None
    #: Bearer tokens accepted on HTTP; empty accepts every request.
    tokens: list[Token] = msgspec.field(default_factory=list)
    #: PEM certificate and key; both set turns TLS on for HTTP and TCP, one alone is an error.
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Largest request body, after decompression (413 beyond it).
    max_body_bytes: Positive = 16 << 20
    #: Largest request head: request line and headers together (431 beyond it); 1 KiB at least.
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 16 << 10
    #: Most header lines in one request (431 beyond it).
    max_headers: Positive = 100
    #: Most open connections over all receivers (503 to the ones beyond).
    max_connections: Positive = 512
    #: Bytes acknowledged or waiting for the log but not yet in the pipeline; beyond it HTTP
    #: answers 429 with ``Retry-After`` and TCP stops reading.
    max_queue_bytes: Positive = 256 << 20
    #: Seconds a refused client is told to wait.
    retry_after_s: NonNegative = 1
    #: Buffered partitions are committed at least this often (seconds), so data is queryable.
    #: ``qlingest ingest`` of a pipe reads it too: while the stream is quiet, rows buffered
    #: this long are committed.
    flush_interval_s: Interval = 1.0
    #: ``always``: fsync before every acknowledgement (group commit); ``interval``: acknowledge
    #: once written, fsync every ``wal_fsync_interval_s`` (a power loss may lose that window, a
    #: process crash loses nothing); ``never``: leave it to the OS.
    wal_fsync: Literal["always", "interval", "never"] = "always"
    wal_fsync_interval_s: Interval = 0.1
    #: A log segment is closed past this size and deleted once all of it is committed. 64 KiB
    #: at least: each segment costs a file and two fsyncs to start.
    wal_segment_bytes: Annotated[int, msgspec.Meta(ge=64 << 10)] = 64 << 20
    #: Requests grouped into one log record up to this many bytes.
    wal_record_bytes: Positive = 8 << 20
    #: Seconds to drain and commit on SIGTERM/SIGINT before giving up (the log keeps the rest).
    shutdown_deadline_s: Timeout = 30.0
    #: Connections that send nothing for this many seconds are closed: HTTP keep-alive
    #: connections between requests and TCP connections with nothing in hand.
    idle_timeout_s: Timeout = 60.0
    #: An HTTP request's head and body, or a TCP line, must arrive within this many seconds
    #: of its first byte (HTTP answers 408), so slow clients cannot hold connections forever.
    request_timeout_s: Timeout = 30.0
    #: Most events in one request (413 beyond it) and in one log record. An event's decoded
    #: row takes several hundred bytes however short its line, so a body of tiny events
    #: would otherwise take a hundred times its size in memory.
    max_request_events: Positive = 128 << 10

    def __post_init__(self) -> None:
        # Half a TLS configuration would serve plain HTTP to clients that meant to use TLS.
        if bool(self.tls_cert) != bool(self.tls_key):
            raise _config_error(
                "serve.tls_cert and serve.tls_key go together: set both for TLS, or neither"
            )


class CustomRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A value rule of the configuration: a linear-time regex, optionally with evidence."""

    name: str
    pattern: str
    #: The capture group replaced; 0 is the whole match.
    group: NonNegative = 0
    action: Literal["mask", "hash", "partial", "drop"] = "mask"
    #: Words that must appear near a match (or in its key) for it to count.
    keywords: list[str] = msgspec.field(default_factory=list)
    #: A check a match must pass: ``luhn``.
    validator: str | None = None


class RedactionConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the redaction stage replaces and how (see docs/redaction.md)."""

    #: Off only for measurements (``qlingest ingest --no-redact``).
    enabled: bool = True
    #: The built-in rule set.
    builtin: bool = True
    #: Opt-in built-in kinds: ``ipv4``, ``ipv6``, ``phone``.
    optional: list[str] = msgspec.field(default_factory=list)
    #: Built-in rule names to switch off.
    disable: list[str] = msgspec.field(default_factory=list)
    rules: list[CustomRule] = msgspec.field(default_factory=list)
    #: Extra key names whose values are secret whatever they hold.
    keys: list[str] = msgspec.field(default_factory=list)
    #: Per-rule action: ``mask``, ``hash``, ``partial`` or ``drop``.
    actions: dict[str, str] = msgspec.field(default_factory=dict)
    marker: str = "[REDACTED:{rule}]"
    #: HMAC key of keyed hashes; ``None`` reads ``QLINGEST_HASH_KEY``. Without a key, hash
    #: actions mask instead (a warning says so).
    hash_key: str | None = None
    #: Short id of the key, written in each hash so keys can rotate.
    hash_key_id: str = "k1"
    #: Columns to replace by a keyed pseudonym: ``user_id``, ``session_id``.
    pseudonymize: list[str] = msgspec.field(default_factory=list)

    def core_json(self) -> str | None:
        """The JSON the core reads, with the key filled from the environment; None when off."""
        if not self.enabled:
            return None
        data = msgspec.structs.asdict(self)
        data.pop("enabled")
        data["rules"] = [msgspec.structs.asdict(r) for r in self.rules]
        data["hash_key"] = self.hash_key or os.environ.get("QLINGEST_HASH_KEY") or None
        return msgspec.json.encode(data).decode()


class AuditConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which events are audit records, and the key that seals the chain."""

    #: Events of these categories are chained (and never sampled out when ``security.*``).
    categories: list[str] = msgspec.field(default_factory=lambda: ["security.audit_logs"])
    #: Further selections: ``{column = "...", values = [...]}``; a row matching any is chained.
    rules: list[dict[str, Any]] = msgspec.field(default_factory=list)
    #: HMAC key of the checkpoint seals; ``None`` reads ``QLINGEST_AUDIT_KEY``, and without
    #: either the chain is written unsealed (a warning says so once).
    key: str | None = None


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration; each section has its own defaults."""

    input: InputConfig = msgspec.field(default_factory=InputConfig)
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    serve: ServeConfig = msgspec.field(default_factory=ServeConfig)
    audit: AuditConfig = msgspec.field(default_factory=AuditConfig)
    redaction: RedactionConfig = msgspec.field(default_factory=RedactionConfig)
    #: The sampling policy (see docs/sampling.md); ``None`` samples nothing. Validated by the
    #: core, whose messages name the rule and key at fault.
    sampling: dict[str, Any] | None = None

    def to_core_json(self, section: str) -> str:
        """The JSON text of one section, as the Rust core reads it."""
        return msgspec.json.encode(getattr(self, section)).decode()


BUILTIN_POLICIES = ("cost-optimized",)


def sampling_policy(spec: str | Path | None) -> dict[str, Any] | None:
    """A policy from ``cost-optimized`` (a built-in name) or the path of a TOML policy file."""
    if spec is None:
        return None
    if str(spec) in BUILTIN_POLICIES:
        return {"extends": str(spec)}
    try:
        return tomllib.loads(Path(spec).read_text())
    except FileNotFoundError:
        known = ", ".join(BUILTIN_POLICIES)
        raise _config_error(
            f"sampling policy {spec!r}: not a file nor a built-in ({known})"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise _config_error(f"{spec}: invalid TOML: {e}") from None


def _config_error(message: str) -> ConfigError:
    """A :class:`ConfigError` with its message redacted: it can quote a path or a rejected
    value, and a secret pasted into the wrong key or file name would be printed as it is."""
    from qlingest.redact import redact_message  # redact imports this module

    return ConfigError(redact_message(message))


def policy_json(policy: dict[str, Any] | None) -> str | None:
    """The policy as the core reads it; a bare ``policy = "<name>"`` names a built-in."""
    if policy is None:
        return None
    if set(policy) == {"policy"}:
        policy = sampling_policy(policy["policy"])
    _check_finite(policy, "sampling")
    return msgspec.json.encode(policy).decode()


def _check_finite(value: Any, where: str) -> None:
    """JSON has no NaN or infinity (they would arrive as null): name the key instead."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _config_error(f"{where}: {value} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")


def load_config(path: str | Path | None = None, **overrides: object) -> Config:
    """Reads a TOML file (or the defaults) and applies ``section.key`` overrides."""
    raw: dict = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise _config_error(f"configuration file not found: {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise _config_error(f"{path}: invalid TOML: {e}") from None
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        if not key:
            raw[section] = value
            continue
        raw.setdefault(section, {})[key] = value
    where = f"{path}: " if path else ""
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as e:
        raise _config_error(f"{where}invalid configuration: {e}") from None
    _check_rules(config.redaction, where)
    return config


def _check_rules(redaction: RedactionConfig, where: str) -> None:
    """Custom redaction rules are compiled by the core now, so a bad pattern (one that does not
    parse, or matches the empty string) fails at load, naming the rule, not mid-ingest."""
    if not redaction.enabled or not redaction.rules:
        return
    from qlingest import _core

    try:
        _core.Redactor(redaction.core_json() or "{}")
    except ConfigError as e:
        raise _config_error(f"{where}{e}") from None
