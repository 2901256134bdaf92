from __future__ import annotations

import base64
import json
import re

import polars as pl
import pytest
from serve_helpers import ServeProcess, metric, stored

sdk = pytest.importorskip("opentelemetry.sdk")
from opentelemetry._logs import SeverityNumber  # noqa: E402
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: E402
    OTLPMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: E402


@pytest.fixture
def server(tmp_path):
    srv = ServeProcess(tmp_path / "store")
    yield srv
    if srv.proc.poll() is None:
        srv.kill()


def url(server, signal: str) -> str:
    return f"http://127.0.0.1:{server.ports['otlp']}/v1/{signal}"


JSON = {"Content-Type": "application/json"}
RESOURCE = Resource.create({"service.name": "checkout", "deployment.environment": "test"})


def test_sdk_spans_keep_ids_parents_kind_and_status(server, tmp_path):
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=url(server, "traces")))
    )
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent,
        tracer.start_as_current_span("child", attributes={"db.system": "sqlite"}) as child,
    ):
        child.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    assert server.stop() == 0

    rows = {r["message"]: r for r in stored(tmp_path / "store").to_dicts()}
    p, c = rows["parent"], rows["child"]
    pctx, cctx = parent.get_span_context(), child.get_span_context()
    assert p["trace_id"] == c["trace_id"] == f"{pctx.trace_id:032x}"
    assert (p["span_id"], c["span_id"]) == (f"{pctx.span_id:016x}", f"{cctx.span_id:016x}")
    assert c["parent_span_id"] == p["span_id"] and p["parent_span_id"] is None
    assert (p["category"], p["service"], p["level"], c["level"]) == (
        "trace.spans",
        "checkout",
        "info",
        "error",
    )
    pf, cf = json.loads(p["fields"]), json.loads(c["fields"])
    assert (pf["kind"], cf["kind"], cf["status"], cf["status_message"]) == (
        "server",
        "internal",
        "error",
        "boom",
    )
    assert cf["db.system"] == "sqlite" and cf["duration_ns"] == cf["end_ns"] - cf["start_ns"] >= 0


def test_sdk_logs_map_severity_body_attributes_service_and_trace(server, tmp_path):
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=url(server, "logs")))
    )
    logger = provider.get_logger("test")
    tracer = TracerProvider(resource=RESOURCE).get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        logger.emit(
            severity_number=SeverityNumber.WARN,
            body="disk sda full",
            attributes={"tenant": "acme", "free_bytes": 12},
        )
    logger.emit(severity_number=SeverityNumber.ERROR, body="payment failed")
    provider.shutdown()
    assert server.stop() == 0

    rows = {r["message"]: r for r in stored(tmp_path / "store").to_dicts()}
    disk = rows["disk sda full"]
    assert (disk["level"], rows["payment failed"]["level"]) == ("warn", "error")
    assert disk["service"] == "checkout"
    assert disk["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert disk["span_id"] == f"{span.get_span_context().span_id:016x}"
    fields = json.loads(disk["fields"])
    assert (fields["tenant"], fields["free_bytes"]) == ("acme", 12)
    assert fields["resource"]["deployment.environment"] == "test"
    assert "service.name" not in fields["resource"]


def test_sdk_metrics_become_points_with_name_type_and_buckets(server, tmp_path):
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("test")
    meter.create_counter("orders", unit="1").add(3, {"region": "eu"})
    hist = meter.create_histogram("latency", unit="ms")
    for v in (3, 30, 300):
        hist.record(v)
    data = reader.get_metrics_data()
    assert OTLPMetricExporter(endpoint=url(server, "metrics")).export(data).name == "SUCCESS"
    provider.shutdown()
    assert server.stop() == 0

    frame = stored(tmp_path / "store")
    rows = {r["message"]: json.loads(r["fields"]) for r in frame.to_dicts()}
    assert frame["category"].unique().to_list() == ["metrics"]
    assert rows["orders"]["type"] == "sum" and rows["orders"]["value"] == 3
    assert rows["orders"]["region"] == "eu" and rows["orders"]["unit"] == "1"
    assert rows["latency"]["type"] == "histogram" and rows["latency"]["count"] == 3
    assert sum(rows["latency"]["buckets"]["counts"]) == 3


def test_json_encoding_and_partial_success(server, tmp_path):
    body = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]
                },
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": "1700000000000000000",
                                "severityNumber": 17,
                                "body": {"stringValue": "json ok"},
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                            },
                            {"body": {"stringValue": "bad id"}, "traceId": "abcd"},
                        ]
                    }
                ],
            }
        ]
    }
    status, _, reply = server.post(
        "/v1/logs", json.dumps(body).encode(), {"Content-Type": "application/json"}, "otlp"
    )
    assert status == 200
    assert json.loads(reply)["partialSuccess"]["rejectedLogRecords"] == "1"
    _, text = server.get("/metrics")
    assert metric(text, "qlingest_events_rejected_total", reason="otlp_logs") == 1
    assert server.stop() == 0
    (row,) = stored(tmp_path / "store").to_dicts()
    assert (row["message"], row["level"], row["service"]) == ("json ok", "error", "api")
    assert row["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (
        row["timestamp"] == pl.Series([1_700_000_000_000_000_000]).cast(pl.Datetime("ns", "UTC"))[0]
    )


def test_protobuf_partial_success_response(server):
    req = logs_service_pb2.ExportLogsServiceRequest()
    rec = req.resource_logs.add().scope_logs.add().log_records.add()
    rec.body.string_value = "short trace id"
    rec.trace_id = b"\x01\x02"
    status, _, reply = server.post(
        "/v1/logs", req.SerializeToString(), {"Content-Type": "application/x-protobuf"}, "otlp"
    )
    parsed = logs_service_pb2.ExportLogsServiceResponse.FromString(reply)
    assert (status, parsed.partial_success.rejected_log_records) == (200, 1)
    assert server.stop() == 0


def deep_json_log(depth: int) -> bytes:
    """A log whose body is ``depth`` kvlistValues deep, built as text (json.dumps would recurse)."""
    opening = '{"kvlistValue":{"values":[{"key":"k","value":' * depth
    body = opening + '{"stringValue":"x"}' + "}]}}" * depth
    return ('{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":' + body + "}]}]}]}").encode()


def deep_protobuf_log(depth: int) -> bytes:
    def field(number: int, payload: bytes) -> bytes:
        return _tag(number) + _varint(len(payload)) + payload

    value = field(1, b"x")
    for _ in range(depth):
        value = field(6, field(1, field(1, b"k") + field(2, value)))
    return field(1, field(2, field(2, field(5, value))))


def _tag(number: int) -> bytes:
    return bytes([number << 3 | 2])


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_deeply_nested_otlp_is_400_and_counted(server):
    shallow = server.post(
        "/v1/logs", deep_json_log(3), {"Content-Type": "application/json"}, "otlp"
    )
    assert shallow[0] == 200
    for depth in (70, 5000, 50_000):
        status, _, reply = server.post(
            "/v1/logs", deep_json_log(depth), {"Content-Type": "application/json"}, "otlp"
        )
        assert status == 400, depth
        assert json.loads(reply)["code"] == 3
    ctype = {"Content-Type": "application/x-protobuf"}
    assert server.post("/v1/logs", deep_protobuf_log(5000), ctype, "otlp")[0] == 400
    text = server.get("/metrics")[1]
    assert metric(text, "qlingest_requests_rejected_total", reason="bad_otlp") == 4
    assert metric(text, "qlingest_requests_rejected_total", reason="internal_error") == 0
    assert server.stop() == 0


def json_logs(*records: dict, resource: list | None = None) -> bytes:
    """An OTLP/JSON logs request holding ``records``, under one resource."""
    scope = {"scopeLogs": [{"logRecords": list(records)}]}
    if resource is not None:
        scope["resource"] = {"attributes": resource}
    return json.dumps({"resourceLogs": [scope]}).encode()


def kv(key: str, value: dict) -> dict:
    return {"key": key, "value": value}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_bodies_that_are_not_strings_are_stored_as_readable_redacted_text(server, tmp_path):
    """Breaker report s5 S1: a kvlist body was stored base64-encoded, its secrets unredacted."""
    bodies = {
        "kvlist": {"kvlistValue": {"values": [kv("token", {"stringValue": "hunter28"})]}},
        "array": {"arrayValue": {"values": [{"stringValue": "password=hunter29"}]}},
        "int": {"intValue": "4111111111111111"},
        "bytes": {"bytesValue": b64("auth password=hunter30")},
        "bool": {"boolValue": True},
        "double": {"doubleValue": 1.5},
        "binary": {"bytesValue": base64.b64encode(b"\xff\x00").decode()},
    }
    records = [
        {"body": body, "attributes": [kv("shape", {"stringValue": shape})]}
        for shape, body in bodies.items()
    ]
    status, _, _ = server.post("/v1/logs", json_logs(*records), JSON, "otlp")
    assert status == 200 and server.stop() == 0

    rows = {
        json.loads(r["fields"])["shape"]: r["message"]
        for r in stored(tmp_path / "store").to_dicts()
    }
    assert json.loads(rows["kvlist"]) == {"token": "[REDACTED:secret_param]"}
    assert json.loads(rows["array"]) == ["password=[REDACTED:secret_param]"]
    assert rows["int"] == "[REDACTED:credit_card]"
    assert rows["bytes"] == "auth password=[REDACTED:secret_param]"
    assert (rows["bool"], rows["double"], rows["binary"]) == ("true", "1.5", "/wA=")


def test_a_400_answer_does_not_echo_a_secret_the_client_sent(server):
    """Breaker report s5 S2: the parse error quoted a GitHub token and a card number."""
    bad_time = json_logs({"timeUnixNano": "4111 1111 1111 1111 password=hunter2"})
    status, _, reply = server.post("/v1/logs", bad_time, JSON, "otlp")

    assert status == 400
    message = json.loads(reply)["message"]
    assert "[REDACTED:credit_card]" in message and "[REDACTED:secret_param]" in message
    assert "4111" not in message and "hunter2" not in message
    assert server.stop() == 0


GOOD_TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    "bad",
    [
        {"traceId": "zz" + GOOD_TRACE[2:]},
        {"traceId": GOOD_TRACE[:31]},
        {"spanId": "b7ad6b716920333"},
        {"traceId": "ghp_abcdefghijklmnopqrstuvwxyz0123456789"},
        {"traceId": 123},
        {"spanId": {"hex": GOOD_TRACE[:16]}},
        {"traceId": [GOOD_TRACE]},
    ],
)
def test_an_id_that_is_not_hex_rejects_its_record_only(server, tmp_path, bad):
    """Attack report s9: one such id answered 400 and lost the good records beside it."""
    good = {"body": {"stringValue": "kept"}, "traceId": GOOD_TRACE}
    status, _, reply = server.post(
        "/v1/logs", json_logs(good, {"body": {"stringValue": "bad"}, **bad}), JSON, "otlp"
    )

    assert status == 200 and b"ghp_" not in reply
    assert json.loads(reply)["partialSuccess"]["rejectedLogRecords"] == "1"
    assert server.stop() == 0
    (row,) = stored(tmp_path / "store").to_dicts()
    assert (row["message"], row["trace_id"]) == ("kept", GOOD_TRACE)


def test_a_span_with_an_id_that_is_not_hex_is_rejected_alone(server, tmp_path):
    span = {"name": "ok", "traceId": GOOD_TRACE, "spanId": "b7ad6b7169203331"}
    body = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [span, {**span, "name": "bad", "parentSpanId": "xyz"}]}]}
        ]
    }
    status, _, reply = server.post("/v1/traces", json.dumps(body).encode(), JSON, "otlp")

    assert status == 200
    assert json.loads(reply)["partialSuccess"]["rejectedSpans"] == "1"
    assert server.stop() == 0
    assert stored(tmp_path / "store")["message"].to_list() == ["ok"]


def test_bytes_that_are_not_base64_are_refused_not_stored(server, tmp_path):
    """Breaker report s5, second round: text sent as ``bytesValue`` was read leniently as
    base64 and stored re-encoded, a token in it legible and unredacted."""
    sent = {"bytesValue": "hunter41 ghp_abcdefghijklmnopqrstuvwxyz0123456789"}
    status, _, reply = server.post("/v1/logs", json_logs({"body": sent}), JSON, "otlp")
    assert status == 400 and "bytesValue is not base64" in json.loads(reply)["message"]
    assert server.stop() == 0
    assert not list((tmp_path / "store").rglob("*.parquet"))


def test_a_service_name_that_is_not_a_string_stays_in_the_resource(server, tmp_path):
    """Breaker report s5 (minor): it was dropped from both ``service`` and ``fields``."""
    resource = [kv("service.name", {"intValue": "42"}), kv("team", {"stringValue": "a"})]
    body = json_logs({"body": {"stringValue": "hello"}}, resource=resource)
    assert server.post("/v1/logs", body, JSON, "otlp")[0] == 200
    assert server.stop() == 0

    (row,) = stored(tmp_path / "store").to_dicts()
    assert row["service"] is None
    assert json.loads(row["fields"])["resource"] == {"service.name": 42, "team": "a"}


#: Attributes named like keys the decoder reads into columns.
COLUMN_NAMED = {
    "category": "security.audit_logs",
    "user_id": "root",
    "level": "critical",
    "sample_rate": 5000.0,
    "ts": "2001-01-01T00:00:00Z",
    "service.name": "other",
}
COLUMN_NAMED_RESOURCE = [
    kv("service.name", {"stringValue": "svc"}),
    kv("user_id", {"stringValue": "res"}),
]


def attribute_list(attrs: dict) -> list[dict]:
    return [
        kv(k, {"doubleValue": v} if isinstance(v, float) else {"stringValue": v})
        for k, v in attrs.items()
    ]


def otlp_request(signal: str) -> dict:
    """One record of ``signal`` at 1700000000 s, with column-named attributes everywhere."""
    attrs = attribute_list(COLUMN_NAMED)
    t = "1700000000000000000"
    if signal == "logs":
        record = {"timeUnixNano": t, "severityNumber": 9, "body": {"stringValue": "b"}}
        inner = {"scopeLogs": [{"logRecords": [{**record, "attributes": attrs}]}]}
    elif signal == "traces":
        span = {"traceId": GOOD_TRACE, "spanId": "b7ad6b7169203331", "name": "op"}
        span |= {"startTimeUnixNano": t, "endTimeUnixNano": t, "attributes": attrs}
        inner = {"scopeSpans": [{"spans": [span]}]}
    else:
        point = {"timeUnixNano": t, "asDouble": 1.5, "attributes": attrs}
        metric = {"name": "m", "gauge": {"dataPoints": [point]}}
        inner = {"scopeMetrics": [{"metrics": [metric]}]}
    top = {"logs": "resourceLogs", "traces": "resourceSpans", "metrics": "resourceMetrics"}
    return {top[signal]: [{"resource": {"attributes": COLUMN_NAMED_RESOURCE}, **inner}]}


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "protobuf"])
@pytest.mark.parametrize(
    ("signal", "category", "level"),
    [
        ("logs", "application.logs", "info"),
        ("traces", "trace.spans", "info"),
        ("metrics", "metrics", None),
    ],
)
def test_attributes_named_like_columns_stay_in_fields(signal, category, level, as_json):
    """Attack report s10: a log attribute category=security.audit_logs filed the record in the
    audit chain, and sample_rate=5000 multiplied its counts."""
    from qlingest.pipeline import Pipeline
    from qlingest.serve import otlp

    kind = otlp.SIGNALS[f"/v1/{signal}"]
    body = json.dumps(otlp_request(signal)).encode()
    if not as_json:
        body = otlp.parse(kind, body, json=True)[0].SerializeToString()
    converted = otlp.convert(kind, body, json=as_json)
    (row,) = Pipeline().decode(converted.lines, source=f"otlp.{signal}").events.to_dicts()

    assert (row["category"], row["service"]) == (category, "svc")
    assert (row["user_id"], row["sample_rate"], row["level"]) == (None, 1.0, level)
    assert row["timestamp"].timestamp() == 1_700_000_000
    fields = json.loads(row["fields"])
    assert fields["attributes"] == COLUMN_NAMED
    assert fields["resource"] == {"user_id": "res"}


def test_a_log_attribute_category_does_not_reach_the_audit_chain(server, tmp_path):
    status, _, _ = server.post("/v1/logs", json.dumps(otlp_request("logs")).encode(), JSON, "otlp")
    assert status == 200 and server.stop() == 0

    (row,) = stored(tmp_path / "store").to_dicts()
    assert (row["category"], row["user_id"], row["sample_rate"]) == ("application.logs", None, 1.0)
    assert json.loads(row["fields"])["attributes"]["category"] == "security.audit_logs"
    assert not (tmp_path / "store" / "hot" / "category=security.audit_logs").exists()


@pytest.mark.parametrize(
    "bad",
    [
        {"body": {"kvlistValue": "important text"}},
        {"body": {"arrayValue": "important text"}},
        {"body": "important text"},
        {"body": {"kvlistValue": {"values": ["important text"]}}},
        {"body": {"kvlistValue": {"values": "important text"}}},
        {"body": {"stringValue": ["important text"]}},
        {"attributes": [kv("k", "important text")]},
        {"attributes": [kv("k", {"arrayValue": {"values": ["important text"]}})]},
        {"attributes": "important text"},
    ],
)
def test_a_value_of_the_wrong_type_rejects_its_record_only(server, tmp_path, bad):
    """Attack report s10: a kvlistValue that was a string was stored as message "{}"."""
    good = {"body": {"stringValue": "kept"}}
    status, _, reply = server.post("/v1/logs", json_logs(good, bad), JSON, "otlp")

    assert status == 200
    assert json.loads(reply)["partialSuccess"]["rejectedLogRecords"] == "1"
    assert server.stop() == 0
    assert stored(tmp_path / "store")["message"].to_list() == ["kept"]


def test_spans_and_points_with_a_value_of_the_wrong_type_are_rejected_alone(server, tmp_path):
    span = {"traceId": GOOD_TRACE, "spanId": "b7ad6b7169203331", "name": "ok"}
    bad_span = {**span, "name": "bad", "attributes": [kv("k", {"kvlistValue": "x"})]}
    spans = {"resourceSpans": [{"scopeSpans": [{"spans": [span, bad_span]}]}]}
    point = {"asDouble": 1.0}
    bad_point = {"asDouble": 2.0, "attributes": [kv("k", {"arrayValue": "x"})]}
    gauge = {"name": "g", "gauge": {"dataPoints": [point, bad_point]}}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [gauge]}]}]}

    _, _, reply = server.post("/v1/traces", json.dumps(spans).encode(), JSON, "otlp")
    assert json.loads(reply)["partialSuccess"]["rejectedSpans"] == "1"
    _, _, reply = server.post("/v1/metrics", json.dumps(metrics).encode(), JSON, "otlp")
    assert json.loads(reply)["partialSuccess"]["rejectedDataPoints"] == "1"
    assert server.stop() == 0
    rows = stored(tmp_path / "store").to_dicts()
    assert sorted(r["message"] for r in rows) == ["g", "ok"]
    assert [json.loads(r["fields"])["value"] for r in rows if r["message"] == "g"] == [1.0]


def test_a_value_of_the_wrong_type_outside_any_record_is_400(server):
    body = json_logs({"body": {"stringValue": "b"}}, resource=[kv("k", "text")])
    status, _, reply = server.post("/v1/logs", body, JSON, "otlp")

    assert status == 400 and "value is not an object" in json.loads(reply)["message"]
    assert server.stop() == 0


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "protobuf"])
def test_convention_attributes_fill_user_session_and_stack(as_json):
    from qlingest.pipeline import Pipeline
    from qlingest.serve import otlp

    trace = 'Traceback (most recent call last):\n  File "app.py", line 3\nValueError: x'
    attrs = [
        kv("user.id", {"stringValue": "u_42"}),
        kv("session.id", {"stringValue": "s-9"}),
        kv("exception.stacktrace", {"stringValue": trace}),
        kv("exception.type", {"stringValue": "ValueError"}),
    ]
    record = {"timeUnixNano": "1700000000000000000", "body": {"stringValue": "failed"}}
    request = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record | {"attributes": attrs}]}]}]}
    kind = otlp.SIGNALS["/v1/logs"]
    body = json.dumps(request).encode()
    if not as_json:
        body = otlp.parse(kind, body, json=True)[0].SerializeToString()
    converted = otlp.convert(kind, body, json=as_json)
    (row,) = Pipeline().decode(converted.lines, source="otlp.logs").events.to_dicts()

    assert (row["user_id"], row["session_id"], row["stack"]) == ("u_42", "s-9", trace)
    assert json.loads(row["fields"]) == {"exception.type": "ValueError"}


def test_a_convention_attribute_that_is_not_text_stays_in_fields():
    from qlingest.pipeline import Pipeline
    from qlingest.serve import otlp

    attrs = [kv("user.id", {"intValue": "42"})]
    record = {"timeUnixNano": "1700000000000000000", "attributes": attrs}
    request = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    converted = otlp.convert(otlp.SIGNALS["/v1/logs"], json.dumps(request).encode(), json=True)
    (row,) = Pipeline().decode(converted.lines, source="otlp.logs").events.to_dicts()

    assert row["user_id"] is None
    assert json.loads(row["fields"]) == {"attributes": {"user.id": 42}}


LOGS = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "r"}}]}]}]}
SPAN = {"traceId": GOOD_TRACE, "spanId": "b7ad6b7169203331", "name": "s"}
SPANS = {"resourceSpans": [{"scopeSpans": [{"spans": [SPAN]}]}]}
HISTOGRAM = {"exponentialHistogram": {"dataPoints": [{"count": "1"}]}}
METRICS = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", **HISTOGRAM}]}]}]}


def doubled(body: dict, camel: str, snake: str) -> bytes:
    """``body`` as JSON with each ``camel`` key also given as ``snake``, holding the same."""

    def walk(obj: object) -> object:
        if isinstance(obj, list):
            return [walk(item) for item in obj]
        if not isinstance(obj, dict):
            return obj
        out = {key: walk(value) for key, value in obj.items()}
        if camel in out:
            out[snake] = out[camel]
        return out

    return json.dumps(walk(body)).encode()


@pytest.mark.parametrize(
    ("path", "body", "camel", "snake"),
    [
        ("/v1/logs", LOGS, "resourceLogs", "resource_logs"),
        ("/v1/logs", LOGS, "scopeLogs", "scope_logs"),
        ("/v1/logs", LOGS, "logRecords", "log_records"),
        ("/v1/traces", SPANS, "resourceSpans", "resource_spans"),
        ("/v1/traces", SPANS, "scopeSpans", "scope_spans"),
        ("/v1/metrics", METRICS, "resourceMetrics", "resource_metrics"),
        ("/v1/metrics", METRICS, "scopeMetrics", "scope_metrics"),
        ("/v1/metrics", METRICS, "exponentialHistogram", "exponential_histogram"),
        ("/v1/metrics", METRICS, "dataPoints", "data_points"),
    ],
)
def test_a_list_given_under_both_its_names_is_refused_naming_both(path, body, camel, snake):
    """Attack report s14: the parser kept one of the two lists, the early count counted both."""
    from qlingest.serve import otlp

    signal = otlp.SIGNALS[path]
    assert otlp.convert(signal, json.dumps(body).encode(), json=True).accepted == 1
    with pytest.raises(otlp.OtlpError) as refused:
        otlp.convert(signal, doubled(body, camel, snake), json=True)
    assert str(refused.value) == (
        f"invalid OTLP {signal.name} request: {camel} and {snake} are one field: send only one"
    )


def test_a_record_field_given_under_both_its_names_rejects_that_record_only():
    from qlingest.serve import otlp

    twice = {"timeUnixNano": "1700000000000000000", "time_unix_nano": "1800000000000000000"}
    body = json_logs({"body": {"stringValue": "kept"}}, {"body": {"stringValue": "x"}, **twice})
    converted = otlp.convert(otlp.SIGNALS["/v1/logs"], body, json=True)

    assert (converted.accepted, converted.rejected) == (1, 1)
    assert json.loads(converted.lines) == {"message": "kept"}


def test_both_names_of_one_list_get_400_from_the_server(server, tmp_path):
    body = doubled(LOGS, "logRecords", "log_records")
    status, _, reply = server.post("/v1/logs", body, JSON, "otlp")

    assert status == 400
    assert "logRecords and log_records are one field" in json.loads(reply)["message"]
    _, text = server.get("/metrics")
    assert metric(text, "qlingest_requests_rejected_total", reason="bad_otlp") == 1
    assert server.stop() == 0
    assert stored(tmp_path / "store").height == 0


def snake_case(obj: object) -> object:
    """An OTLP/JSON body with every key in the proto's own spelling (``trace_id``)."""
    if isinstance(obj, list):
        return [snake_case(item) for item in obj]
    if not isinstance(obj, dict):
        return obj
    return {re.sub("([A-Z])", r"_\1", k).lower(): snake_case(v) for k, v in obj.items()}


LINKED_SPAN = {
    **SPAN,
    "parentSpanId": "00f067aa0ba902b7",
    "links": [{"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7"}],
}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/traces", {"resourceSpans": [{"scopeSpans": [{"spans": [LINKED_SPAN]}]}]}),
        ("/v1/logs", json.loads(json_logs({"traceId": GOOD_TRACE, "spanId": SPAN["spanId"]}))),
    ],
)
def test_ids_in_snake_case_are_hex_as_in_camel_case(path, body):
    """Hardening s14: ``trace_id`` was read as base64, so every such record was rejected."""
    from qlingest.serve import otlp

    signal = otlp.SIGNALS[path]
    camel = otlp.convert(signal, json.dumps(body).encode(), json=True)
    snake = otlp.convert(signal, json.dumps(snake_case(body)).encode(), json=True)

    assert (snake.accepted, snake.rejected) == (camel.accepted, camel.rejected) == (1, 0)
    assert snake.lines == camel.lines
    assert json.loads(snake.lines)["trace_id"] == GOOD_TRACE


def test_an_id_in_snake_case_that_is_not_hex_rejects_its_record_only():
    from qlingest.serve import otlp

    body = json_logs({"body": {"stringValue": "kept"}}, {"trace_id": "zz" + GOOD_TRACE[2:]})
    converted = otlp.convert(otlp.SIGNALS["/v1/logs"], body, json=True)

    assert (converted.accepted, converted.rejected) == (1, 1)
    assert json.loads(converted.lines) == {"message": "kept"}


@pytest.mark.parametrize(
    "value",
    [
        {"string_value": 5},
        {"bool_value": "true"},
        {"int_value": [1]},
        {"double_value": {"v": 1.5}},
        {"bytes_value": 5},
    ],
)
def test_an_any_value_scalar_in_snake_case_of_the_wrong_type_rejects_its_record_only(value):
    """Hardening s14: only the camelCase scalar names were checked, so ``{"string_value": 5}``
    failed the whole request instead of its record."""
    from qlingest.serve import otlp

    body = json_logs({"body": {"stringValue": "kept"}}, {"body": value})
    converted = otlp.convert(otlp.SIGNALS["/v1/logs"], body, json=True)

    assert (converted.accepted, converted.rejected) == (1, 1)
    assert json.loads(converted.lines) == {"message": "kept"}


def test_bytes_in_snake_case_that_are_not_base64_are_refused():
    from qlingest.serve import otlp

    sent = {"bytes_value": "hunter41 ghp_abcdefghijklmnopqrstuvwxyz0123456789"}
    with pytest.raises(otlp.OtlpError) as refused:
        otlp.convert(otlp.SIGNALS["/v1/logs"], json_logs({"body": sent}), json=True)
    assert str(refused.value) == "invalid OTLP logs request: bytes_value is not base64"
