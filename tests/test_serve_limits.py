"""How many events one request and one log record may hold: a decoded event takes hundreds
of bytes however short its line, so bytes alone do not bound the server's memory."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from qlingest.config import ServeConfig
from qlingest.serve import otlp
from qlingest.serve.server import Server
from serve_helpers import ServeProcess, events, metric, stored


@pytest.fixture
def server(tmp_path):
    srv = ServeProcess(tmp_path / "store", "[serve]\nmax_request_events = 1000\n")
    yield srv
    if srv.proc.poll() is None:
        srv.kill()


def otlp_logs(n: int) -> bytes:
    records = [{"body": {"stringValue": f"r{i}"}} for i in range(n)]
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}).encode()


def test_a_request_of_more_events_than_the_limit_is_413_and_nothing_is_stored(server, tmp_path):
    # 1,001 empty objects are 3 KB: far under any byte limit, even compressed to 40 bytes.
    tiny = gzip.compress(b"{}\n" * 1001)
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    status, _, reply = server.post("/v1/events", tiny, headers)
    assert status == 413
    assert b"more than 1000 events in one request (serve.max_request_events)" in reply
    status, _, reply = server.post("/v1/events", events(range(1000)))
    assert (status, json.loads(reply)) == (200, {"accepted": 1000})
    _, text = server.get("/metrics")
    assert metric(text, "qlingest_requests_rejected_total", reason="too_many_events") == 1
    assert server.stop() == 0
    assert stored(tmp_path / "store").height == 1000


def test_an_otlp_request_of_more_records_than_the_limit_is_413(server, tmp_path):
    json_type = {"Content-Type": "application/json"}
    status, _, reply = server.post("/v1/logs", otlp_logs(1001), json_type, "otlp")
    assert status == 413
    assert "more than 1000 events" in json.loads(reply)["message"]
    status, _, _ = server.post("/v1/logs", otlp_logs(1000), json_type, "otlp")
    assert status == 200
    assert server.stop() == 0
    assert stored(tmp_path / "store").height == 1000


def group(requests: list[tuple[str, int, int]], **config) -> list[tuple[str, list[int]]]:
    """The log records ``Server._group`` makes of requests (source, bytes, events), each as
    its source and the sizes of its parts."""
    cfg = ServeConfig(**config)
    batch = [(source, b"x" * size, n, None) for source, size, n in requests]
    records = Server._group(SimpleNamespace(cfg=cfg), batch)
    return [(source, [len(p) for p in parts]) for _, source, parts in records]


def test_log_records_are_cut_by_events_as_well_as_by_bytes():
    small = dict(wal_record_bytes=100, max_request_events=10)
    # By events: 6 + 4 fill a record, the next starts one.
    assert group([("http", 1, 6), ("http", 1, 4), ("http", 1, 1)], **small) == [
        ("http", [1, 1]),
        ("http", [1]),
    ]
    # By bytes, as before; each source apart; one request over both limits stands alone.
    reqs = [("http", 60, 1), ("tcp", 5, 3), ("http", 60, 1), ("tcp", 5, 30), ("tcp", 5, 1)]
    assert group(reqs, **small) == [
        ("http", [60]),
        ("http", [60]),
        ("tcp", [5]),
        ("tcp", [5]),
        ("tcp", [5]),
    ]


def empty_log_records(n: int) -> bytes:
    """An export request of ``n`` empty log records: two bytes each on the wire."""
    req = logs_service_pb2.ExportLogsServiceRequest()
    records = req.resource_logs.add().scope_logs.add().log_records
    for _ in range(n):
        records.add()
    return req.SerializeToString()


def test_a_protobuf_request_of_too_many_records_is_measured_before_it_is_parsed(server):
    # 2,500 records in 5 KB: more than twice the limit's bytes, so it is counted on the wire.
    body = empty_log_records(2500)
    assert len(body) > 2 * 1000
    headers = {"Content-Type": "application/x-protobuf"}
    status, _, reply = server.post("/v1/logs", body, headers, "otlp")
    assert status == 413
    assert b"more than 1000 events" in reply
    assert server.stop() == 0


shapes = st.lists(st.lists(st.integers(0, 4), max_size=3), max_size=3)


@settings(max_examples=60, deadline=None)
@given(shapes, st.integers(0, 12), st.sampled_from(["logs", "traces", "metrics"]))
def test_records_counted_on_the_wire_match_the_parsed_message(shape, stop_after, name):
    """Resources of scopes of record counts, with attributes and names beside them that the
    count must step over; metrics spread their points over each kind of data."""
    if name == "logs":
        req = logs_service_pb2.ExportLogsServiceRequest()
        for scopes in shape:
            rl = req.resource_logs.add()
            rl.resource.attributes.add(key="service.name").value.string_value = "svc"
            for n in scopes:
                sl = rl.scope_logs.add()
                sl.scope.name = "scope"
                for i in range(n):
                    sl.log_records.add(severity_number=9).body.string_value = f"m{i}"
    elif name == "traces":
        req = trace_service_pb2.ExportTraceServiceRequest()
        for scopes in shape:
            rs = req.resource_spans.add()
            for n in scopes:
                ss = rs.scope_spans.add()
                for i in range(n):
                    ss.spans.add(name=f"s{i}", start_time_unix_nano=1 << 62)
    else:
        req = metrics_service_pb2.ExportMetricsServiceRequest()
        kinds = ["gauge", "sum", "histogram", "exponential_histogram", "summary"]
        for r, scopes in enumerate(shape):
            sm_list = req.resource_metrics.add().scope_metrics
            for s, n in enumerate(scopes):
                metric = sm_list.add().metrics.add(name="m", unit="1")
                data = getattr(metric, kinds[(r + s) % len(kinds)])
                for i in range(n):
                    data.data_points.add(time_unix_nano=i + 1)
    signal = next(sig for sig in otlp.SIGNALS.values() if sig.name == name)
    total = sum(n for scopes in shape for n in scopes)
    assert otlp.count_records(signal, req.SerializeToString(), stop_after) == min(
        total, stop_after + 1
    )
    # Unknown fields before the records, a group among them (wire type 3, nested), are
    # stepped over as the parser steps over them.
    wire = b"\x7b\x0b\x08\x01\x0c\x7c\xf8\x01\x05" + req.SerializeToString()
    assert otlp.count_records(signal, wire, stop_after) == min(total, stop_after + 1)
    for snake in (False, True):
        as_json = json_format.MessageToJson(req, preserving_proto_field_name=snake).encode()
        counted = otlp.count_json_records(as_json, stop_after)
        assert counted == (total if as_json.count(b"{") > stop_after else 0)


def test_a_malformed_body_counts_what_it_holds_and_the_parser_names_it():
    signal = otlp.SIGNALS["/v1/logs"]
    body = empty_log_records(3)
    assert otlp.count_records(signal, body[:-1], 10) == 0  # lengths now run past the end
    assert otlp.count_records(signal, b"\xff" * 20, 10) == 0
    assert otlp.count_records(signal, body + b"\x0f", 10) == 3  # wire type 7 stops the walk
    assert otlp.count_json_records(b'{"resourceLogs": 5}' + b"{}" * 20, 10) == 0
    # A null list reads as an empty one, as the parser reads it (round 3, item 2).
    records = b",".join([b"{}"] * 30)
    nulls = b'{"resourceLogs":[{"scopeLogs":null},{"scopeLogs":[{"logRecords":null},'
    assert otlp.count_json_records(nulls + b'{"log_records":[' + records + b"]}]}]}", 10) == 30
    # Millions of unknown fields take a bounded walk and count as too many (round 3, item 7).
    assert otlp.count_records(signal, b"\x78\x01" * 20_000 + body, 100) == 101
    # Inside a group too: its fields are steps of the same walk.
    group = b"\x7b" + b"\x78\x01" * 20_000 + b"\x7c"
    assert otlp.count_records(signal, group + body, 100) == 101


def metric_of_members(*members: tuple[str, int]) -> bytes:
    """A metrics export request of one metric whose data oneof is given once per member, in
    order, each with its number of points: the wire a protobuf encoder never writes."""
    data = b""
    for kind, n in members:
        metric = metrics_pb2.Metric(name="m")
        for i in range(n):
            getattr(metric, kind).data_points.add(time_unix_nano=i + 1)
        data += metric.SerializeToString()
    scope = b"\x12" + otlp._varint(len(data)) + data
    resource = b"\x12" + otlp._varint(len(scope)) + scope
    return b"\x0a" + otlp._varint(len(resource)) + resource


@pytest.mark.parametrize(
    ("members", "kept"),
    [
        ((("gauge", 2), ("sum", 3)), 3),
        ((("sum", 3), ("gauge", 2)), 2),
        ((("histogram", 1), ("summary", 4), ("histogram", 2)), 2),
        ((("gauge", 2), ("gauge", 3)), 5),
    ],
)
def test_a_metric_of_two_data_members_counts_the_points_the_parser_keeps(members, kept):
    """Attack report s14: gauge and sum in one metric were counted as both on the wire, while
    the parser keeps the last one given (one member given twice in a row merges)."""
    signal = otlp.SIGNALS["/v1/metrics"]
    body = metric_of_members(*members)

    assert otlp.count_records(signal, body, 100) == kept
    assert otlp.convert(signal, body, json=False).accepted == kept


def test_points_of_a_data_member_dropped_later_still_count_toward_the_stop():
    # The parser builds the gauge's 6 points before the sum replaces them.
    body = metric_of_members(("gauge", 6), ("sum", 1))

    assert otlp.count_records(otlp.SIGNALS["/v1/metrics"], body, 5) == 6


def test_an_otlp_request_whose_events_expand_too_far_is_413(tmp_path):
    """Attack report s13 round 3 item 1: each event repeats its resource's attributes, so a
    1 MB body of one large attribute and 300 tiny records took the server to 1.6 GB."""
    srv = ServeProcess(tmp_path / "store", "[serve]\nmax_body_bytes = 65536\n")
    try:
        big = {"key": "blob", "value": {"stringValue": "x" * 10_000}}
        records = [{"body": {"stringValue": f"r{i}"}} for i in range(100)]
        body = {"resourceLogs": [{"resource": {"attributes": [big]},
                                  "scopeLogs": [{"logRecords": records}]}]}  # fmt: skip
        json_type = {"Content-Type": "application/json"}
        status, _, reply = srv.post("/v1/logs", json.dumps(body).encode(), json_type, "otlp")
        assert status == 413
        assert "events come to more than 262144 bytes" in json.loads(reply)["message"]
        body["resourceLogs"][0]["scopeLogs"][0]["logRecords"] = records[:10]
        status, _, _ = srv.post("/v1/logs", json.dumps(body).encode(), json_type, "otlp")
        assert status == 200
        _, text = srv.get("/metrics")
        assert metric(text, "qlingest_requests_rejected_total", reason="too_large") == 1
        assert srv.stop() == 0
        assert stored(tmp_path / "store").height == 10
    finally:
        if srv.proc.poll() is None:
            srv.kill()


def log_of_attributes(attributes: bytes) -> bytes:
    """A logs export request of one record whose attribute fields are ``attributes``."""
    scope = b"\x12" + otlp._varint(len(attributes)) + attributes
    resource = b"\x12" + otlp._varint(len(scope)) + scope
    return b"\x0a" + otlp._varint(len(resource)) + resource


def smallest_attributes(n: int) -> logs_service_pb2.ExportLogsServiceRequest:
    """``n`` attributes of one-letter keys and empty values: the fewest bytes a real one takes."""
    req = logs_service_pb2.ExportLogsServiceRequest()
    record = req.resource_logs.add().scope_logs.add().log_records.add()
    for _ in range(n):
        record.attributes.add(key="k").value.string_value = ""
    return req


def test_attributes_are_counted_on_the_wire_at_every_level():
    signal = otlp.SIGNALS["/v1/logs"]
    req = smallest_attributes(300)
    rl = req.resource_logs[0]
    rl.resource.attributes.add(key="service.name").value.string_value = "svc"
    rl.scope_logs[0].scope.attributes.add(key="s").value.int_value = 5
    record = rl.scope_logs[0].log_records[0]
    nested = record.attributes.add(key="map").value.kvlist_value.values
    for i in range(40):
        nested.add(key=f"n{i}").value.array_value.values.add(bool_value=True)
    record.body.array_value.values.add().kvlist_value.values.add(key="x")
    body = req.SerializeToString()

    # 300 + 1 + 1 + (1 + 40 + 40) + (1 + 1): attributes, kvlist entries and array elements.
    assert otlp.count_values(signal, body, 1000) == 385
    assert otlp.count_values(signal, body, 100) == 101
    assert otlp.count_values(signal, body, len(body)) == 0  # too short to hold more


def test_a_body_of_the_smallest_real_attributes_stays_within_the_budget():
    # 9 bytes each: a body of max_body_bytes of them holds fewer than one per VALUE_BYTES.
    body = smallest_attributes(7000).SerializeToString()
    budget = 65536 // otlp.VALUE_BYTES
    assert len(body) < 65536
    assert otlp.count_values(otlp.SIGNALS["/v1/logs"], body, budget) == 7000 <= budget
    as_json = json_format.MessageToJson(smallest_attributes(2000)).encode()
    assert otlp.count_json_objects(as_json, 0) == 2000 * 2 + 4


TRACE_ID, SPAN_ID = bytes(range(1, 17)), bytes(range(1, 9))


def spans_with_parts(events: int, links: int) -> trace_service_pb2.ExportTraceServiceRequest:
    """One span holding ``events`` events and ``links`` links, each as small as a real one
    is: a one-letter name and a timestamp, two ids."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    span = (
        req.resource_spans.add()
        .scope_spans.add()
        .spans.add(trace_id=TRACE_ID, span_id=SPAN_ID, name="op")
    )
    for _ in range(events):
        span.events.add(name="e", time_unix_nano=1 << 60)
    for _ in range(links):
        span.links.add(trace_id=TRACE_ID, span_id=SPAN_ID)
    return req


def points_with_parts(
    exemplars: int, quantiles: int
) -> metrics_service_pb2.ExportMetricsServiceRequest:
    """A gauge point, a histogram point and an exponential histogram point with ``exemplars``
    exemplars each (a value and a timestamp), and a summary point of ``quantiles``."""
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    metrics = req.resource_metrics.add().scope_metrics.add().metrics
    for kind in ("gauge", "histogram", "exponential_histogram"):
        point = getattr(metrics.add(name=kind), kind).data_points.add(time_unix_nano=1 << 60)
        for _ in range(exemplars):
            point.exemplars.add(as_double=0.5, time_unix_nano=1 << 60)
    summary = metrics.add(name="summary").summary.data_points.add(count=1)
    for _ in range(quantiles):
        summary.quantile_values.add(quantile=0.5, value=2.0)
    return req


def test_span_events_links_exemplars_and_quantiles_count_as_values():
    req = spans_with_parts(events=30, links=20)
    req.resource_spans[0].scope_spans[0].spans[0].events[0].attributes.add(key="k")
    req.resource_spans[0].scope_spans[0].spans[0].links[0].attributes.add(key="k")
    traces = req.SerializeToString()
    metrics = points_with_parts(exemplars=10, quantiles=40)
    exemplar = metrics.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
    exemplar.exemplars[0].filtered_attributes.add(key="k")
    metrics = metrics.SerializeToString()

    # 30 events and 20 links, each holding one attribute; 3 times 10 exemplars, one of them with
    # an attribute, and 40 quantiles.
    assert otlp.count_values(otlp.SIGNALS["/v1/traces"], traces, 60) == 52
    assert otlp.count_values(otlp.SIGNALS["/v1/metrics"], metrics, 80) == 71
    assert otlp.count_values(otlp.SIGNALS["/v1/metrics"], metrics, 50) == 51


def test_empty_span_events_links_exemplars_and_quantiles_count_two_bytes_each():
    """Hardening s14: each took two bytes on the wire and a parsed object (a dict too, for an
    event) uncounted: a 16 MiB body of empty span events took the server up by 2.5 GB."""
    budget = 65536 // otlp.VALUE_BYTES
    traces = otlp.SIGNALS["/v1/traces"]
    metrics = otlp.SIGNALS["/v1/metrics"]
    bombs = {
        traces: [span_of(b"\x5a\x00" * 9000), span_of(b"\x6a\x00" * 9000)],
        metrics: [
            metric_of(5, b"\x2a\x00" * 9000),  # gauge point exemplars
            metric_of(9, b"\x42\x00" * 9000),  # histogram point exemplars
            metric_of(10, b"\x5a\x00" * 9000),  # exponential histogram point exemplars
            metric_of(11, b"\x32\x00" * 9000),  # summary quantiles
        ],
    }
    for signal, bodies in bombs.items():
        for body in bodies:
            assert len(body) < 65536
            assert otlp.count_values(signal, body, budget) == budget + 1


def test_a_body_of_the_smallest_real_events_links_exemplars_and_quantiles_fits_the_budget():
    budget = 65536 // otlp.VALUE_BYTES
    # 14 bytes an event, 30 a link, 20 an exemplar or a quantile.
    traces = spans_with_parts(events=2000, links=1000).SerializeToString()
    metrics = points_with_parts(exemplars=500, quantiles=1500).SerializeToString()
    assert len(traces) < 65536 and len(metrics) < 65536
    assert otlp.count_values(otlp.SIGNALS["/v1/traces"], traces, budget) == 3000 <= budget
    assert otlp.count_values(otlp.SIGNALS["/v1/metrics"], metrics, budget) == 3000 <= budget


def wire(number: int, payload: bytes) -> bytes:
    return otlp._varint(number << 3 | 2) + otlp._varint(len(payload)) + payload


def span_of(fields: bytes) -> bytes:
    """A traces export request of one span (with ids and a name) holding ``fields`` too."""
    span = wire(1, TRACE_ID) + wire(2, SPAN_ID) + wire(5, b"op") + fields
    return wire(1, wire(2, wire(2, span)))


def metric_of(data: int, point: bytes) -> bytes:
    """A metrics export request of one metric whose data member ``data`` holds one point."""
    return wire(1, wire(2, wire(2, wire(1, b"m") + wire(data, wire(1, point)))))


def test_braces_inside_json_strings_are_not_objects():
    body = json.dumps({"resourceLogs": [{"note": "{" * 50 + '\\"{'}]}).encode()
    assert otlp.count_json_objects(body, 100) == 53  # too few braces to look closer
    assert otlp.count_json_objects(body, 10) == 2


def test_a_record_of_millions_of_empty_attributes_is_413_before_it_is_parsed(tmp_path):
    """Attack report s14: one record of empty attributes (two bytes each on the wire) passed
    the record count and took the server's memory up by about 214 MB for 16 MiB."""
    srv = ServeProcess(tmp_path / "store", "[serve]\nmax_body_bytes = 65536\n")
    try:
        proto = {"Content-Type": "application/x-protobuf"}
        bomb = log_of_attributes(b"\x32\x00" * 9000)
        status, _, reply = srv.post("/v1/logs", bomb, proto, "otlp")
        assert status == 413 and b"more than 8192 attributes" in reply
        objects = b",".join([b"{}"] * 9000)
        json_bomb = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"attributes":['
        json_bomb += objects + b"]}]}]}]}"
        status, _, reply = srv.post(
            "/v1/logs", json_bomb, {"Content-Type": "application/json"}, "otlp"
        )
        assert status == 413 and "more than 8192 attributes" in json.loads(reply)["message"]
        honest = smallest_attributes(7000).SerializeToString()
        assert srv.post("/v1/logs", honest, proto, "otlp")[0] == 200
        _, text = srv.get("/metrics")
        assert metric(text, "qlingest_requests_rejected_total", reason="too_many_values") == 2
        assert srv.stop() == 0
        assert stored(tmp_path / "store").height == 1
    finally:
        if srv.proc.poll() is None:
            srv.kill()


def test_a_span_of_millions_of_empty_events_is_413_before_it_is_parsed(tmp_path):
    """Hardening s14: 16 MiB of empty span events took the server up by 2.5 GB and 16 s before
    the events' lines were found too large; empty quantiles by 2.9 GB."""
    srv = ServeProcess(tmp_path / "store", "[serve]\nmax_body_bytes = 65536\n")
    try:
        proto = {"Content-Type": "application/x-protobuf"}
        status, _, reply = srv.post("/v1/traces", span_of(b"\x5a\x00" * 9000), proto, "otlp")
        assert status == 413 and b"more than 8192 attributes" in reply
        quantiles = metric_of(11, b"\x32\x00" * 9000)
        assert srv.post("/v1/metrics", quantiles, proto, "otlp")[0] == 413
        honest = spans_with_parts(events=2000, links=1000).SerializeToString()
        assert srv.post("/v1/traces", honest, proto, "otlp")[0] == 200
        _, text = srv.get("/metrics")
        assert metric(text, "qlingest_requests_rejected_total", reason="too_many_values") == 2
        assert srv.stop() == 0
        assert stored(tmp_path / "store").height == 1
    finally:
        if srv.proc.poll() is None:
            srv.kill()
