"""The typed Python face of events: msgspec Structs that encode straight to the NDJSON the
core decodes, for application code and collectors that build events one at a time.

Keys the schema does not know (an audit record's actor, action, resource, ...) land in the
``fields`` column; the schema's own columns fill from the keys of the same name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import msgspec

__all__ = ["AuditEvent", "Event", "Span", "decode_events", "encode"]

Level = Literal["debug", "info", "warn", "error", "critical"]


class Event(msgspec.Struct, kw_only=True):
    """A log event. ``timestamp`` is nanoseconds since the epoch or RFC 3339 text."""

    timestamp: int | str | None = None
    level: Level | None = None
    category: str | None = None
    service: str | None = None
    message: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    stack: str | None = None
    feature: str | None = None
    cost_center: str | None = None
    user_tier: str | None = None
    revenue: float | None = None
    #: Any other keys, stored in ``fields`` as they are.
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)


class Span(Event, kw_only=True):
    """A finished span, stored with category ``trace.spans``."""

    category: str | None = "trace.spans"
    name: str = ""
    kind: Literal["internal", "server", "client", "producer", "consumer"] = "internal"
    status: Literal["unset", "ok", "error"] = "unset"
    start_ns: int = 0
    end_ns: int = 0

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


class AuditEvent(Event, kw_only=True):
    """A compliance record: chained and sealed when stored, never sampled out."""

    category: str | None = "security.audit_logs"
    id: str | None = None
    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    result: Literal["success", "failure", "denied", "error"] | None = None
    ip: str | None = None
    user_agent: str | None = None
    data_category: list[Literal["PII", "PHI", "PCI"]] = msgspec.field(default_factory=list)
    regulation: list[Literal["GDPR", "HIPAA", "SOX"]] = msgspec.field(default_factory=list)


_encoder = msgspec.json.Encoder()


def encode(events: Iterable[Event], into: bytearray | None = None) -> bytearray:
    """NDJSON of ``events`` for ``Pipeline.process``; ``attributes`` are spread as top-level
    keys so they reach ``fields`` (a schema column name there is refused)."""
    out = into if into is not None else bytearray()
    for event in events:
        clash = set(event.attributes) & set(event.__struct_fields__)
        if clash:
            raise ValueError(f"attributes {sorted(clash)} clash with event columns")
        # Unset keys are left out (a kind's defaults, such as its category, are kept).
        body = {k: v for k, v in msgspec.structs.asdict(event).items() if v is not None and v != []}
        body.update(body.pop("attributes", {}))
        _encoder.encode_into(body, out, -1)
        out += b"\n"
    return out


def decode_events(data: bytes, kind: type[Event] = Event) -> list[Event]:
    """Typed events from NDJSON written by :func:`encode`; keys outside ``kind`` are kept in
    ``attributes``. For tests and tools, not the hot path (one object per event)."""
    events = []
    for line in data.splitlines():
        if not line.strip():
            continue
        raw = msgspec.json.decode(line)
        known = {k: raw.pop(k) for k in list(raw) if k in kind.__struct_fields__}
        events.append(msgspec.convert({**known, "attributes": raw}, kind))
    return events
