from __future__ import annotations

import json

import pytest
from qlingest.config import load_config
from qlingest.events import AuditEvent, Event, Span, decode_events, encode
from qlingest.pipeline import Pipeline


def test_typed_events_encode_to_what_the_core_stores(tmp_path):
    events = [
        Event(timestamp=1_700_000_000_000_000_000, level="warn", message="disk", service="api",
              attributes={"host": "a", "disk": {"free": 3}}),
        Span(trace_id="AB" * 16, span_id="cd" * 8, name="GET /", kind="server", start_ns=1, end_ns=5),
        AuditEvent(actor="alice", action="login", resource="console", result="success",
                   ip="10.0.0.1", data_category=["PII"], regulation=["GDPR"]),
    ]  # fmt: skip
    with Pipeline(tmp_path, load_config(**{"audit.key": "k"})) as p:
        batch = p.process(bytes(encode(events)))
    rows = {r["category"]: r for r in batch.events.iter_rows(named=True)}
    assert json.loads(rows["application.logs"]["fields"]) == {"host": "a", "disk": {"free": 3}}
    assert rows["application.logs"]["level"] == "warn"
    assert rows["trace.spans"]["trace_id"] == "ab" * 16
    assert json.loads(rows["trace.spans"]["fields"])["name"] == "GET /"
    audit = json.loads(rows["security.audit_logs"]["fields"])
    assert audit["actor"] == "alice" and audit["regulation"] == ["GDPR"]


def test_round_trip_through_ndjson():
    event = AuditEvent(actor="bob", action="delete", resource="db/users", result="denied")
    (back,) = decode_events(bytes(encode([event])), AuditEvent)
    assert back == event


def test_attributes_may_not_shadow_columns():
    with pytest.raises(ValueError, match="message"):
        encode([Event(message="m", attributes={"message": "x"})])
