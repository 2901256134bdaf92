"""OTLP/HTTP requests (protobuf or JSON) to NDJSON lines the Rust decoder reads.

Log records: severity number to ``severity_number`` (the decoder maps it to a level), body to
``message`` (as text: a structured body as JSON, so redaction sees every value), attributes
to top-level keys that land in ``fields`` (under ``attributes`` when named like a column's
key; ``user.id``, ``session.id`` and ``exception.stacktrace`` holding text fill their
columns), resource ``service.name`` to ``service``. Spans: category ``trace.spans`` with ids,
name, kind, status, start, end and duration. Metric points: category ``metrics`` with name,
unit, type and value or buckets.
Records with malformed ids or values, or no data, are rejected and reported as partial
success.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass
from typing import Any

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_svc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_svc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_svc

from qlingest import _core
from qlingest.redact import redact_message

__all__ = ["OtlpError", "Signal", "convert", "error_status", "response"]

SPAN_KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"]
STATUS_CODES = ["unset", "ok", "error"]
_encoder = msgspec.json.Encoder()
#: Top-level keys the decoder reads into schema columns (and ``attributes``, where attributes
#: named like them go).
_COLUMN_KEYS = frozenset([*(key for key, _ in _core.key_columns()), "attributes"])
#: Attributes of the OpenTelemetry semantic conventions that fill the column the decoder reads
#: them into (none of them files a record elsewhere or weighs its counts).
_CONVENTION_COLUMNS = frozenset(["user.id", "session.id", "exception.stacktrace"])
#: Deepest OTLP/JSON nesting looked at. The protobuf runtime refuses messages nested over 100
#: deep, and a message level is at most two JSON levels (an object in a list), so nothing
#: deeper can be valid; the limit also keeps the id fix-up below far from Python's stack limit.
MAX_JSON_DEPTH = 256


class OtlpError(ValueError):
    """A request body that is not a valid OTLP message."""


@dataclass(frozen=True)
class Signal:
    name: str
    request: type
    response: type
    rejected_field: str


SIGNALS = {
    "/v1/logs": Signal(
        "logs",
        logs_svc.ExportLogsServiceRequest,
        logs_svc.ExportLogsServiceResponse,
        "rejected_log_records",
    ),
    "/v1/traces": Signal(
        "traces",
        trace_svc.ExportTraceServiceRequest,
        trace_svc.ExportTraceServiceResponse,
        "rejected_spans",
    ),
    "/v1/metrics": Signal(
        "metrics",
        metrics_svc.ExportMetricsServiceRequest,
        metrics_svc.ExportMetricsServiceResponse,
        "rejected_data_points",
    ),
}


@dataclass
class Converted:
    lines: bytes
    accepted: int
    rejected: int
    error: str = ""


def parse(signal: Signal, body: bytes, *, json: bool) -> tuple[Any, int]:
    """The request message from protobuf or OTLP/JSON bytes, and how many OTLP/JSON records
    were left out of it for holding a malformed value."""
    message = signal.request()
    dropped = 0
    try:
        if json:
            try:
                raw = msgspec.json.decode(body)
            except RecursionError:
                # msgspec's own guard against nesting deeper than its stack allows.
                raise OtlpError("OTLP/JSON nested too deep") from None
            if not isinstance(raw, dict):
                raise OtlpError("OTLP/JSON body must be an object")
            raw = _hex_ids_to_base64(raw)
            dropped = _drop_malformed(raw, message.DESCRIPTOR)
            json_format.ParseDict(raw, message, ignore_unknown_fields=True)
        else:
            message.ParseFromString(body)
    except _Malformed as e:
        raise OtlpError(f"invalid OTLP {signal.name} request: {e}") from None
    except (DecodeError, msgspec.DecodeError, json_format.ParseError, ValueError) as e:
        raise OtlpError(f"invalid OTLP {signal.name} request: {e}") from None
    return message, dropped


#: Protobuf field numbers from an export request down to its records: resource, scope and
#: record lists for logs and spans; for metrics a metric's data (gauge 5, sum 7, histogram 9,
#: exponential histogram 10, summary 11) and then its data points (1) too.
_METRIC_DATA = (5, 7, 9, 10, 11)
_RECORD_PATHS = {
    "logs": ((1,), (2,), (2,)),
    "traces": ((1,), (2,), (2,)),
    "metrics": ((1,), (2,), (2,), _METRIC_DATA, (1,)),
}


# The shape of an OTLP/JSON export request down to its records, in OTLP/JSON's own names and
# in the protobuf field names the parser takes too; everything else in it is skipped unread.
class _Points(msgspec.Struct):
    dataPoints: list[msgspec.Raw] | None = None
    data_points: list[msgspec.Raw] | None = None


class _Metric(msgspec.Struct):
    gauge: _Points | None = None
    sum: _Points | None = None
    histogram: _Points | None = None
    exponentialHistogram: _Points | None = None
    exponential_histogram: _Points | None = None
    summary: _Points | None = None

    def points(self) -> int:
        data = _joined(
            (self.gauge, self.sum, self.histogram),
            (self.exponentialHistogram, self.exponential_histogram, self.summary),
        )
        return sum(len(_joined(d.dataPoints, d.data_points)) for d in data if d is not None)


class _Scope(msgspec.Struct):
    logRecords: list[msgspec.Raw] | None = None
    log_records: list[msgspec.Raw] | None = None
    spans: list[msgspec.Raw] | None = None
    metrics: list[_Metric] | None = None

    def records(self) -> int:
        points = sum(metric.points() for metric in self.metrics or ())
        return len(_joined(self.logRecords, self.log_records, self.spans)) + points


class _Resource(msgspec.Struct):
    scopeLogs: list[_Scope] | None = None
    scope_logs: list[_Scope] | None = None
    scopeSpans: list[_Scope] | None = None
    scope_spans: list[_Scope] | None = None
    scopeMetrics: list[_Scope] | None = None
    scope_metrics: list[_Scope] | None = None

    def scopes(self) -> list[_Scope]:
        return _joined(self.scopeLogs, self.scope_logs, self.scopeSpans, self.scope_spans,
                       self.scopeMetrics, self.scope_metrics)  # fmt: skip


class _Export(msgspec.Struct):
    resourceLogs: list[_Resource] | None = None
    resource_logs: list[_Resource] | None = None
    resourceSpans: list[_Resource] | None = None
    resource_spans: list[_Resource] | None = None
    resourceMetrics: list[_Resource] | None = None
    resource_metrics: list[_Resource] | None = None

    def resources(self) -> list[_Resource]:
        return _joined(self.resourceLogs, self.resource_logs, self.resourceSpans,
                       self.resource_spans, self.resourceMetrics, self.resource_metrics)  # fmt: skip


def _joined(*lists: Any) -> list:
    """The items of ``lists`` in order, a missing (null) list counting as empty."""
    return [item for items in lists if items for item in items]


_export_decoder = msgspec.json.Decoder(_Export)


def count_json_records(body: bytes, stop_after: int) -> int:
    """The records of an OTLP/JSON export request, or a number past ``stop_after``. A record
    is an object, so a body with no more braces than that needs no count; else the request
    is read as lists of raw records, a few tens of bytes each rather than the hundreds a
    parsed record takes. A body this cannot read counts 0: the parser names what is wrong."""
    if body.count(b"{") <= stop_after:
        return 0
    try:
        export = _export_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return 0
    return sum(scope.records() for resource in export.resources() for scope in resource.scopes())


def count_records(signal: Signal, body: bytes, stop_after: int) -> int:
    """The records of a protobuf export request, counted on the wire without parsing it: a
    record can take two bytes and parses into a hundred or more, so a request is measured
    before it is parsed. Counting stops once past ``stop_after``; a malformed body counts
    what it has, and the parser then names what is wrong.

    A metric's data is a oneof: of several members given, the parser keeps the last (fields
    of one member in a row merge), so only its points count. The points of a member dropped
    later are built first all the same, so they count toward the stop."""
    view = memoryview(body)
    read = 0
    # The walk reads every field above the records in Python: a body of millions of unknown
    # fields would take seconds. An honest request has a few fields besides its records, so
    # past this many steps it counts as too many.
    steps = [2 * stop_after + 4096]

    def walk(start: int, end: int, path: tuple[tuple[int, ...], ...]) -> int:
        """The records under ``view[start:end]`` that the parser keeps."""
        nonlocal read
        kept = member = 0
        for number, at, stop in _wire_fields(view, start, end, path[0], steps):
            if read > stop_after:
                break
            if len(path) == 1:
                read += 1
                found = 1
            else:
                found = walk(at, stop, path[1:])
            if path[0] == _METRIC_DATA and number != member:
                kept, member = 0, number  # another member of the oneof replaces the last
            kept += found
        return kept

    kept = walk(0, len(view), _RECORD_PATHS[signal.name])
    return kept if steps[0] >= 0 and read <= stop_after else max(kept, stop_after + 1)


#: An attribute with a one-letter key and an empty value of any kind takes 9 bytes on the wire,
#: and an OTLP/JSON object 8 bytes at least once it holds a key, so a body within
#: ``max_body_bytes`` holds fewer than ``max_body_bytes // VALUE_BYTES`` of them. An empty one
#: takes 2 (protobuf) or 3 (JSON) bytes and parses into fifty or more: counted against that
#: number, a body of empty ones cannot cost more than one of real attributes.
VALUE_BYTES = 8
#: Nesting the walk below follows at most; the parser refuses deeper messages anyway.
_MAX_WIRE_DEPTH = 100
_KEY_VALUE = "opentelemetry.proto.common.v1.KeyValue"
_ARRAY_VALUE = "opentelemetry.proto.common.v1.ArrayValue"
#: Messages that count one each wherever they are: attributes, and the parts of a record that
#: take two bytes on the wire when empty and a parsed object each (span events and links,
#: exemplars, summary quantiles). A real one of each takes 9 bytes at least: a name or a
#: value and a timestamp, two ids, a value and a timestamp, two doubles.
_COUNTED = frozenset(
    [
        _KEY_VALUE,
        "opentelemetry.proto.trace.v1.Span.Event",
        "opentelemetry.proto.trace.v1.Span.Link",
        "opentelemetry.proto.metrics.v1.Exemplar",
        "opentelemetry.proto.metrics.v1.SummaryDataPoint.ValueAtQuantile",
    ]
)


def count_values(signal: Signal, body: bytes, stop_after: int) -> int:
    """The attributes of a protobuf export request (its key-value pairs at every level, in
    kvlist values too), the elements of its array values, and its span events and links,
    exemplars and summary quantiles, counted on the wire; a number past ``stop_after`` once
    it is passed. Each takes two bytes at least, so a body of no more than twice
    ``stop_after`` bytes needs no count. A malformed body counts what it has, and the parser
    then names what is wrong."""
    if len(body) <= 2 * stop_after:
        return 0
    # Limitation: the walk is Python, about 1 µs an attribute: 16 MiB of small attributes
    # take about 2 s of CPU here before the parse (about 1.2 s) starts.
    # Limitation: an exponential histogram's bucket counts are not counted. They take a byte
    # each in a real histogram as in a body of zeros, and 24-28 bytes each once parsed in both,
    # so no count could tell them apart; they are bounded by the body's size alone.
    return _count_values(memoryview(body), 0, len(body), signal.request.DESCRIPTOR, stop_after, 0)


def _count_values(buf: memoryview, i: int, end: int, descriptor: Any, left: int, depth: int) -> int:
    """The values (see :func:`count_values`) of one message at ``buf[i:end]``, stopping once
    past ``left``. Every field is read once, two bytes at least, so the walk is linear in the
    body; this loop is the hot part of it, hence one-byte varints read inline."""
    plan = _value_plan(descriptor)
    found = 0
    while i < end and found <= left:
        key = buf[i]
        i += 1
        if key & 0x80:
            key, i = _read_varint(buf, i - 1, end)
        if key & 7 != 2:
            i = _skip_field(buf, i, end, key, [end])
            continue
        n = buf[i] if i < end else 0
        if n & 0x80:
            n, i = _read_varint(buf, i, end)
        else:
            i += 1
        step = plan.get(key >> 3)
        if step is not None:
            counted, sub, attribute = step
            found += counted
            if sub is not None and n > 0 and depth < _MAX_WIRE_DEPTH:
                stop = min(i + n, end)
                if not (attribute and _lone_scalar_attribute(buf, i, stop)):
                    found += _count_values(buf, i, stop, sub, left - found, depth + 1)
        i += n
    return found


#: The first byte of each AnyValue field that holds a scalar (string, bool, int, double,
#: bytes), and the wire type it is read by.
_SCALAR_TAGS = {0x0A: 2, 0x10: 0, 0x18: 0, 0x21: 1, 0x3A: 2}


def _lone_scalar_attribute(buf: memoryview, i: int, end: int) -> bool:
    """Whether ``buf[i:end]``, an attribute, is laid out as encoders write one (its key, then
    its value) with a value of one scalar field: nothing in it counts, and it is passed over
    without walking its fields one by one, which most attributes of a large body are."""
    if end - i < 4 or buf[i] != 0x0A or buf[i + 1] & 0x80:
        return False
    j = i + 2 + buf[i + 1]
    if j + 2 > end or buf[j] != 0x12 or buf[j + 1] & 0x80 or j + 2 + buf[j + 1] != end:
        return False
    k = j + 2
    if k == end:
        return True
    kind = _SCALAR_TAGS.get(buf[k])
    if kind == 2:
        return k + 2 <= end and not buf[k + 1] & 0x80 and k + 2 + buf[k + 1] == end
    if kind == 0:
        return _read_varint(buf, k + 1, end)[1] == end
    return kind == 1 and k + 9 == end


@functools.cache
def _value_plan(descriptor: Any) -> dict[int, tuple[int, Any, bool]]:
    """The message fields of ``descriptor`` that hold what :func:`count_values` counts, or
    lead to some: their number, whether each one counts, the message type to walk into (None
    when nothing inside it counts, a quantile say) and whether it is an attribute."""
    plan = {}
    for field in descriptor.fields:
        sub = field.message_type
        if sub is None or not _holds_values(sub):
            continue
        counted = sub.full_name in _COUNTED or descriptor.full_name == _ARRAY_VALUE
        inside = any(f.message_type is not None and _holds_values(f.message_type)
                     for f in sub.fields)  # fmt: skip
        plan[field.number] = (int(counted), sub if inside else None, sub.full_name == _KEY_VALUE)
    return plan


@functools.cache
def _holds_values(descriptor: Any, seen: frozenset = frozenset()) -> bool:
    if descriptor.full_name in _COUNTED or descriptor.full_name == _ARRAY_VALUE:
        return True
    seen |= {descriptor.full_name}
    return any(
        f.message_type is not None
        and f.message_type.full_name not in seen
        and _holds_values(f.message_type, seen)
        for f in descriptor.fields
    )


#: A JSON string, escapes and all.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def count_json_objects(body: bytes, stop_after: int) -> int:
    """The objects of an OTLP/JSON body (each attribute, array element, record or other
    message is one), or a number past ``stop_after``. A body with no more braces than that
    needs no closer look; else the braces inside strings are left out."""
    braces = body.count(b"{")
    if braces <= stop_after:
        return braces
    return _JSON_STRING.sub(b"", body).count(b"{")


def _wire_fields(buf: memoryview, start: int, end: int, numbers: tuple[int, ...], steps: list[int]):
    """The number, start and end of each length-delimited field of ``buf[start:end]``
    numbered one of ``numbers``; stops at the first malformed field, or once ``steps[0]``
    (shared by the whole walk, one taken a field) runs out."""
    i = start
    while i < end:
        steps[0] -= 1
        if steps[0] < 0:
            return
        key, i = _read_varint(buf, i, end)
        if key & 7 == 2:
            n, i = _read_varint(buf, i, end)
            if i + n > end:
                return
            if key >> 3 in numbers:
                yield key >> 3, i, i + n
            i += n
        else:
            i = _skip_field(buf, i, end, key, steps)


def _skip_field(buf: memoryview, i: int, end: int, key: int, steps: list[int]) -> int:
    """The index past the value of a field other than a length-delimited one whose key was
    read before ``i``; past ``end`` when it is malformed or ``steps`` runs out. A group (wire
    type 3, never sent by OTLP but skipped by the parser) is skipped to its end, nested
    groups and all, each field inside it a step."""
    kind = key & 7
    if kind == 0:
        return _read_varint(buf, i, end)[1]
    if kind == 1:
        return i + 8
    if kind == 5:
        return i + 4
    if kind != 3:
        return end + 1
    depth = 1
    while i < end:
        steps[0] -= 1
        if steps[0] < 0:
            return end + 1
        inner, i = _read_varint(buf, i, end)
        if inner & 7 == 4:
            depth -= 1
            if depth == 0:
                return i
        elif inner & 7 == 3:
            depth += 1
        elif inner & 7 == 2:
            n, i = _read_varint(buf, i, end)
            i += n
        else:
            i = _skip_field(buf, i, end, inner, steps)
    return end + 1


def _read_varint(buf: memoryview, i: int, end: int) -> tuple[int, int]:
    """The varint at ``buf[i]`` and the index after it; ``(0, end + 1)`` when it runs past
    ``end`` or ten bytes, which stops the caller's loop."""
    value = shift = 0
    while i < end and shift < 70:
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7
    return 0, end + 1


class OtlpTooLarge(ValueError):
    """An export request whose events come to more bytes than the server takes."""


class OtlpTooMany(ValueError):
    """An export request holding more attributes or other values than its size allows."""


class _Lines(list):
    """The events' lines, refusing more once they pass ``limit`` bytes: each event repeats
    its resource's attributes and its scope's and metric's names, so a small request can
    expand a thousandfold."""

    def __init__(self, limit: int | None) -> None:
        super().__init__()
        self.limit, self.size = limit, 0

    def append(self, line: bytes) -> None:
        self.size += len(line)
        if self.limit is not None and self.size > self.limit:
            raise OtlpTooLarge(
                f"the request's events come to more than {self.limit} bytes (each repeats "
                "its resource attributes and scope): send fewer records per request"
            )
        super().append(line)


def convert(signal: Signal, body: bytes, *, json: bool, max_bytes: int | None = None) -> Converted:
    """NDJSON lines for every accepted record of one export request; more than
    ``max_bytes`` of them raise :class:`OtlpTooLarge`."""
    message, rejected = parse(signal, body, json=json)
    out = _Lines(max_bytes)
    rejected += {"logs": _logs, "traces": _spans, "metrics": _metrics}[signal.name](message, out)
    error = f"{rejected} records with malformed ids or values, or no data" if rejected else ""
    return Converted(b"".join(out), len(out), rejected, error)


def response(signal: Signal, converted: Converted, *, json: bool) -> bytes:
    """The export response, with partial success when records were rejected."""
    reply = signal.response()
    if converted.rejected:
        setattr(reply.partial_success, signal.rejected_field, converted.rejected)
        reply.partial_success.error_message = converted.error
    if json:
        return json_format.MessageToJson(reply, indent=None).encode()
    return reply.SerializeToString()


def error_status(code: int, message: str, *, json: bool) -> bytes:
    """A ``google.rpc.Status`` body, as OTLP/HTTP answers errors. The message is redacted: a
    parse error quotes the value it could not read, which can be a token or a card number."""
    message = redact_message(message)
    if json:
        return _encoder.encode({"code": code, "message": message})
    text = message.encode()
    return bytes([0x08, code]) + b"\x12" + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


#: What an OTLP/JSON id that is not hex becomes: one byte, a length no id has, so its record
#: is rejected as malformed (partial success), as a protobuf id of the wrong length is, and
#: the other records of the request are kept.
_MALFORMED_ID = base64.b64encode(b"\x00").decode()

#: Base64 as protobuf's JSON mapping writes it: standard or URL-safe, padding optional.
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
#: The id fields of records, spans, links and exemplars under both names the JSON mapping
#: reads (its JSON name and the proto name).
_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _hex_ids_to_base64(raw: dict) -> dict:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64 for bytes fields.
    Both names of an id are read (``traceId`` and ``trace_id``), as the mapping reads both.
    An id that is not hex (an odd length, other letters) or not a string at all is marked
    malformed, not refused."""

    def fix(obj: Any, depth: int) -> None:
        if depth > MAX_JSON_DEPTH:
            raise OtlpError(f"OTLP/JSON nested deeper than {MAX_JSON_DEPTH}")
        if isinstance(obj, dict):
            for key in _ID_KEYS:
                value = obj.get(key)
                if isinstance(value, str) and value:
                    try:
                        obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
                    except ValueError:
                        obj[key] = _MALFORMED_ID
                elif value is not None and not isinstance(value, str):
                    # A number, a list or an object where the id's text belongs.
                    obj[key] = _MALFORMED_ID
            # The JSON mapping's own parser skips what is not base64, so text sent here would
            # come out as bytes that are not UTF-8 and be stored base64, past redaction.
            for key in ("bytesValue", "bytes_value"):
                value = obj.get(key)
                if isinstance(value, str) and not _BASE64.fullmatch(value):
                    raise OtlpError(f"{key} is not base64")
            for value in obj.values():
                fix(value, depth + 1)
        elif isinstance(obj, list):
            for value in obj:
                fix(value, depth + 1)

    fix(raw, 1)
    return raw


#: Messages that are one record each: a malformed value in one rejects that record alone.
_RECORDS = frozenset(
    f"opentelemetry.proto.{name}"
    for name in (
        "logs.v1.LogRecord",
        "trace.v1.Span",
        "metrics.v1.NumberDataPoint",
        "metrics.v1.HistogramDataPoint",
        "metrics.v1.ExponentialHistogramDataPoint",
        "metrics.v1.SummaryDataPoint",
    )
)
_ANY_VALUE = "opentelemetry.proto.common.v1.AnyValue"
#: The JSON types an AnyValue's scalars take, under both names the JSON mapping reads;
#: 64-bit integers and doubles may be strings.
_ANY_SCALARS = {
    name: types
    for camel, snake, types in (
        ("stringValue", "string_value", (str,)),
        ("boolValue", "bool_value", (bool,)),
        ("intValue", "int_value", (int, str)),
        ("doubleValue", "double_value", (int, float, str)),
        ("bytesValue", "bytes_value", (str,)),
    )
    for name in (camel, snake)
}


class _Malformed(Exception):
    """An OTLP/JSON value of the wrong type where the JSON mapping would read it as empty."""


def _drop_malformed(raw: dict, descriptor: Any) -> int:
    """Leaves out of ``raw`` every record holding a malformed value; how many.

    The JSON mapping reads a message field that holds a string or a list (``"body": "text"``,
    ``{"kvlistValue": "text"}``) as an empty message, with unknown fields ignored, so the
    content would be stored empty. Such a value, an AnyValue scalar of the wrong type, or a
    field given under both its names (``resourceLogs`` and ``resource_logs``: the mapping keeps
    one and drops the other unread, while the early count counts both), rejects its record;
    outside any record it raises ``_Malformed``."""
    dropped = 0
    fields = _fields(descriptor)
    names: dict[int, str] = {}
    for key, value in raw.items():
        field = fields.get(key)
        if field is not None and names.setdefault(field.number, key) != key:
            raise _Malformed(f"{names[field.number]} and {key} are one field: send only one")
        if descriptor.full_name == _ANY_VALUE and key in _ANY_SCALARS:
            if not isinstance(value, _ANY_SCALARS[key]):
                raise _Malformed(f"{key} is a {type(value).__name__}")
            continue
        if field is None or field.message_type is None or value is None:
            continue
        sub = field.message_type
        if not field.is_repeated:
            if not isinstance(value, dict):
                raise _Malformed(f"{key} is not an object")
            dropped += _drop_malformed(value, sub)
        elif not isinstance(value, list):
            raise _Malformed(f"{key} is not a list")
        elif sub.full_name in _RECORDS:
            kept = [item for item in value if _record_ok(item, sub)]
            dropped += len(value) - len(kept)
            raw[key] = kept
        else:
            for item in value:
                if not isinstance(item, dict):
                    raise _Malformed(f"{key} holds a {type(item).__name__}, not an object")
                dropped += _drop_malformed(item, sub)
    return dropped


def _record_ok(record: Any, descriptor: Any) -> bool:
    if not isinstance(record, dict):
        return False
    try:
        _drop_malformed(record, descriptor)  # no record holds another
    except _Malformed:
        return False
    return True


@functools.cache
def _fields(descriptor: Any) -> dict[str, Any]:
    """A message's fields by their JSON and their proto names, both of which the mapping reads."""
    return {name: f for f in descriptor.fields for name in (f.name, f.json_name)}


def _any_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    if kind == "array_value":
        return [_any_value(x) for x in v.array_value.values]
    if kind == "bytes_value":
        return _bytes_text(v.bytes_value)
    return getattr(v, kind)


def _bytes_text(data: bytes) -> str:
    """Bytes as their UTF-8 text, which redaction can read; base64 only when they are not text.

    Limitation: a secret inside bytes that are not UTF-8 is stored base64-encoded, unredacted.
    """
    try:
        return data.decode()
    except UnicodeDecodeError:
        return base64.b64encode(data).decode()


def _attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in kvs}


def _resource(resource: Any) -> tuple[dict[str, Any], str | None]:
    attrs = _attributes(resource.attributes)
    service = attrs.get("service.name")
    if not isinstance(service, str):
        # Not a name the service column can hold: kept with the other resource attributes.
        return attrs, None
    del attrs["service.name"]
    return attrs, service


def _base(
    ts: int, service: str | None, resource: dict, scope: Any, category: str | None = None
) -> dict[str, Any]:
    """The keys that fill schema columns, first, so attributes of the same name stay fields."""
    event: dict[str, Any] = {}
    if ts:
        event["timestamp"] = ts
    if category:
        event["category"] = category
    if service:
        event["service"] = service
    if resource:
        event["resource"] = resource
    if scope.name:
        event["scope"] = scope.name
    return event


def _ids(event: dict, trace_id: bytes, span_id: bytes, parent: bytes = b"") -> bool:
    """Adds hex ids; ``False`` when one has the wrong length."""
    if (trace_id and len(trace_id) != 16) or (span_id and len(span_id) != 8):
        return False
    if parent and len(parent) != 8:
        return False
    if trace_id:
        event["trace_id"] = trace_id.hex()
    if span_id:
        event["span_id"] = span_id.hex()
    if parent:
        event["parent_span_id"] = parent.hex()
    return True


def _emit(out: list[bytes], event: dict, attributes: Any) -> None:
    """Adds the attributes as top-level keys, which the decoder puts in ``fields``; those named
    like a key the decoder reads into a column, or like one set above, go under
    ``attributes``, so an attribute never fills a column (``category``, ``user_id``,
    ``sample_rate``) nor overwrites what the mapping set. The exceptions are the semantic
    conventions' ``user.id``, ``session.id`` and ``exception.stacktrace`` holding text: they
    fill ``user_id``, ``session_id`` and ``stack``, as the same keys of an NDJSON line do."""
    nested = {}
    for key, value in _attributes(attributes).items():
        if key in _CONVENTION_COLUMNS and isinstance(value, str) and key not in event:
            event[key] = value
        elif key in event or key in _COLUMN_KEYS:
            nested[key] = value
        else:
            event[key] = value
    if nested:
        event["attributes"] = nested
    out.append(_encoder.encode(event) + b"\n")


def _logs(message: Any, out: list[bytes]) -> int:
    rejected = 0
    for rl in message.resource_logs:
        resource, service = _resource(rl.resource)
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                ts = rec.time_unix_nano or rec.observed_time_unix_nano
                event = _base(ts, service, resource, sl.scope)
                if not _ids(event, rec.trace_id, rec.span_id):
                    rejected += 1
                    continue
                if rec.severity_number:
                    event["severity_number"] = rec.severity_number
                elif rec.severity_text:
                    event["level"] = rec.severity_text
                body = _any_value(rec.body)
                if body is not None:
                    event["message"] = _text(body)
                if rec.event_name:
                    event["event_name"] = rec.event_name
                _emit(out, event, rec.attributes)
    return rejected


def _text(body: Any) -> str:
    """A log body as the text of ``message``: a string as it is, any other value as JSON."""
    return body if isinstance(body, str) else _encoder.encode(body).decode()


def _spans(message: Any, out: list[bytes]) -> int:
    rejected = 0
    for rs in message.resource_spans:
        resource, service = _resource(rs.resource)
        for ss in rs.scope_spans:
            for span in ss.spans:
                event = _base(span.start_time_unix_nano, service, resource, ss.scope, "trace.spans")
                if not span.trace_id or not span.span_id:
                    rejected += 1
                    continue
                if not _ids(event, span.trace_id, span.span_id, span.parent_span_id):
                    rejected += 1
                    continue
                status = STATUS_CODES[span.status.code] if span.status.code < 3 else "unset"
                event["level"] = "error" if status == "error" else "info"
                event["message"] = span.name
                event["name"] = span.name
                event["kind"] = SPAN_KINDS[span.kind] if span.kind < 6 else "unspecified"
                event["status"] = status
                if span.status.message:
                    event["status_message"] = span.status.message
                event["start_ns"] = span.start_time_unix_nano
                event["end_ns"] = span.end_time_unix_nano
                event["duration_ns"] = span.end_time_unix_nano - span.start_time_unix_nano
                if span.events:
                    event["events"] = [
                        {"name": e.name, "time_ns": e.time_unix_nano, **_attributes(e.attributes)}
                        for e in span.events
                    ]
                _emit(out, event, span.attributes)
    return rejected


def _metrics(message: Any, out: list[bytes]) -> int:
    rejected = 0
    for rm in message.resource_metrics:
        resource, service = _resource(rm.resource)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    rejected += 1
                    continue
                data = getattr(metric, kind)
                for point in data.data_points:
                    event = _base(point.time_unix_nano, service, resource, sm.scope, "metrics")
                    event["message"] = metric.name
                    event["name"] = metric.name
                    if metric.unit:
                        event["unit"] = metric.unit
                    event["type"] = kind
                    _point(event, kind, data, point)
                    _emit(out, event, point.attributes)
    return rejected


def _point(event: dict, kind: str, data: Any, point: Any) -> None:
    if kind in ("gauge", "sum"):
        which = point.WhichOneof("value")
        event["value"] = getattr(point, which) if which else None
        if kind == "sum":
            event["monotonic"] = data.is_monotonic
            event["temporality"] = data.aggregation_temporality
        return
    event["count"] = point.count
    event["sum"] = point.sum
    if kind == "histogram":
        event["buckets"] = {
            "bounds": list(point.explicit_bounds),
            "counts": list(point.bucket_counts),
        }
        if point.HasField("min"):
            event["min"], event["max"] = point.min, point.max
    elif kind == "exponential_histogram":
        event["buckets"] = {
            "scale": point.scale,
            "zero_count": point.zero_count,
            "positive": {
                "offset": point.positive.offset,
                "counts": list(point.positive.bucket_counts),
            },
            "negative": {
                "offset": point.negative.offset,
                "counts": list(point.negative.bucket_counts),
            },
        }
    else:
        event["quantiles"] = [
            {"quantile": q.quantile, "value": q.value} for q in point.quantile_values
        ]
    if kind != "summary" and point.start_time_unix_nano:
        event["start_ns"] = point.start_time_unix_nano
