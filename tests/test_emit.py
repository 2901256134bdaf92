"""Issue 7, embedded target: ``PendingBatch``, whose native ``emit`` is ``Emitter.emit``.

It encodes the common types of a dict itself, byte for byte as msgspec does, leaves every other
event to msgspec, and hands full batches over in the order they filled.
"""

from __future__ import annotations

import array
import collections
import dataclasses
import datetime
import enum
import threading
import time
import uuid

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from qlingest import _core
from qlingest.exceptions import EmitterClosedError, ForkedError, QlingestError
from qlingest.logging import Emitter

ENCODE = msgspec.json.Encoder().encode


class Batch:
    """A ``PendingBatch`` that records each hand-over and each call of the msgspec fallback."""

    def __init__(self, batch_bytes: int = 1 << 30, hand_over=None):
        self.fallbacks: list[object] = []
        self.handed: list[tuple[bytes, int]] = []

        def encode(event):
            self.fallbacks.append(event)
            return ENCODE(event)

        self.native = _core.PendingBatch(
            batch_bytes, encode=encode, hand_over=hand_over or self._record
        )

    def _record(self, data: bytes, events: int) -> None:
        self.handed.append((data, events))

    def line(self, event) -> bytes:
        """What ``emit`` appends for ``event``."""
        self.native.emit(event)
        data, events = self.native.take()
        assert events == 1
        return data


SPECIAL_TEXT = st.sampled_from(
    ['"', "\\", "\u2028", "\u2029", "\x7f", "\x00\x1f\x08\x0c", "\U0001f600", "é", "a\r\nb\t", "/"]
)
TEXT = st.text() | SPECIAL_TEXT | st.lists(SPECIAL_TEXT | st.text(max_size=3)).map("".join)
I64 = st.integers(-(2**63), 2**63 - 1) | st.sampled_from([-(2**63), 2**63 - 1, 0, -1])
FLOATS = st.floats() | st.sampled_from([-0.0, 1e300, 5e-324, 1e16, 1e-7, 0.1, 2.5e-5])
SCALARS = st.none() | st.booleans() | I64 | FLOATS | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(TEXT, inner, max_size=4)
    ),
    max_leaves=20,
)
EVENTS = st.dictionaries(TEXT, VALUES, max_size=6)


class TestNativeEncoding:
    @settings(max_examples=400, deadline=None)
    @given(EVENTS)
    @example({"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")})
    @example({"min": -(2**63), "max": 2**63 - 1, "zero": -0.0, "tiny": 5e-324, "big": 1e300})
    @example({"": {"": [[], {}, ()]}})
    def test_output_is_msgspecs_byte_for_byte(self, event):
        batch = Batch()
        line = batch.line(event)
        assert line == ENCODE(event) + b"\n"
        assert batch.fallbacks == []
        # NaN aside (null either way), the line reads back as the event.
        assert msgspec.json.decode(line) == msgspec.json.decode(ENCODE(event))

    def test_text_is_escaped_as_msgspec_escapes_it(self):
        event = {'k"\\': 'q" b\\ \x00\x01\x1f \b\t\n\f\r \x7f \u2028 é \U0001f600 /'}
        assert Batch().line(event) == (
            b'{"k\\"\\\\":"q\\" b\\\\ \\u0000\\u0001\\u001f \\b\\t\\n\\f\\r \x7f '
            b'\xe2\x80\xa8 \xc3\xa9 \xf0\x9f\x98\x80 /"}\n'
        )

    def test_floats_are_the_shortest_round_trip_text_and_not_finite_ones_null(self):
        event = {"a": -0.0, "b": 1e300, "c": 5e-324, "d": 1.5, "e": 1e16, "f": float("nan")}
        assert Batch().line(event) == (
            b'{"a":-0.0,"b":1e300,"c":5e-324,"d":1.5,"e":1e16,"f":null}\n'
        )

    def test_bytes_are_appended_as_they_are(self):
        class Raw(bytes):
            pass

        batch = Batch()
        batch.native.emit(b'{"a": 1}')
        batch.native.emit(Raw(b"not json"))
        assert batch.native.take() == (b'{"a": 1}\nnot json\n', 2)
        assert batch.fallbacks == []


class TestBytesLike:
    @pytest.mark.parametrize("kind", [bytearray, memoryview])
    def test_a_bytearray_or_memoryview_is_appended_as_bytes_are(self, kind):
        # The README's "bytes of one JSON object": read from a buffer, such an event was
        # stored as a dead letter holding '"eyJhIjoxfQ=="'.
        batch = Batch()
        batch.native.emit(kind(b'{"a":1}'))
        assert batch.native.take() == (b'{"a":1}\n', 1)


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    WARN = 30


@dataclasses.dataclass
class Point:
    x: int


class Text(str):
    pass


def nested(depth: int) -> dict:
    event: dict = {"leaf": 1}
    for _ in range(depth):
        event = {"n": [event]}
    return event


class TestFallback:
    """Whatever the native encoder does not cover goes to msgspec, for the whole event."""

    @pytest.mark.parametrize(
        "event",
        [
            {"at": datetime.datetime(2024, 1, 2, 3, 4, 5)},
            {"id": uuid.UUID(int=5)},
            {"color": Color.RED, "level": Level.WARN},
            {"point": Point(1)},
            {7: "int key", 1.5: "float key"},
            {"big": 2**63, "small": -(2**63) - 1},
            {"huge": [2**200]},
            {Text("key"): 1},
            {"inner": collections.OrderedDict(a=1)},
            {"set": {1}},
            nested(33),  # 67 containers deep
        ],
    )
    def test_an_event_the_native_encoder_does_not_cover_is_msgspecs(self, event):
        batch = Batch()
        assert batch.line(event) == ENCODE(event) + b"\n"
        assert batch.fallbacks == [event]

    def test_an_event_that_is_not_a_dict_is_msgspecs(self):
        batch = Batch()
        for event in (["a", 1], "text", 3, collections.OrderedDict(a=1)):
            batch.native.emit(event)
        assert batch.native.take() == (b'["a",1]\n"text"\n3\n{"a":1}\n', 4)
        assert len(batch.fallbacks) == 4

    def test_nesting_the_native_encoder_covers_stays_native(self):
        batch = Batch()
        assert batch.line(nested(32)) == ENCODE(nested(32)) + b"\n"  # 65 deep
        assert batch.fallbacks == []

    @pytest.mark.parametrize(
        "event",
        [
            {"obj": object()},
            {"deep": [{"obj": object()}]},
            {"name": "rep\udcffort.pdf"},
            {"nested": {"lone \ud800": 1}},
            {"value": Text("x")},
            {(1, 2): "tuple key"},
        ],
    )
    def test_an_unencodable_event_raises_as_msgspec_does_and_is_counted(self, event):
        batch = Batch()
        batch.native.emit({"before": 1})
        with pytest.raises(Exception) as raised:
            batch.native.emit(event)
        with pytest.raises(type(raised.value)) as expected:
            ENCODE(event)
        assert str(raised.value) == str(expected.value)
        assert batch.native.rejected_events == 1
        assert batch.native.take() == (b'{"before":1}\n', 1)

    def test_a_cycle_raises_recursion_error_and_is_counted(self):
        event: dict = {}
        event["self"] = event
        batch = Batch()
        with pytest.raises(RecursionError):
            batch.native.emit(event)
        assert batch.native.rejected_events == 1
        assert batch.native.take() is None


class TestRefusals:
    def test_the_errors_are_qlingest_and_runtime_errors(self):
        for error in (EmitterClosedError, ForkedError):
            assert issubclass(error, QlingestError) and issubclass(error, RuntimeError)
            assert error.__module__ == "qlingest.exceptions"

    @pytest.mark.parametrize("event", [{"a": 1}, b'{"a":1}', {"at": datetime.date(2024, 1, 1)}])
    def test_a_closed_batch_refuses_and_counts(self, event):
        batch = Batch()
        batch.native.emit({"kept": 1})
        batch.native.close()
        with pytest.raises(EmitterClosedError, match="this Emitter is closed: the event was not"):
            batch.native.emit(event)
        assert batch.native.rejected_events == 1
        assert batch.native.take() == (b'{"kept":1}\n', 1)

    def test_an_unencodable_event_is_refused_as_closed_without_the_encoders_error(self):
        batch = Batch()
        batch.native.close()
        with pytest.raises(EmitterClosedError) as raised:
            batch.native.emit({"obj": object()})
        assert raised.value.__cause__ is None and raised.value.__suppress_context__
        assert batch.native.rejected_events == 1

    def test_a_forked_batch_is_empty_refuses_and_keeps_the_counts(self):
        batch = Batch(batch_bytes=100)
        with pytest.raises(TypeError):
            batch.native.emit({"obj": object()})
        batch.native.emit({"parent": 1})
        child = batch.native.forked()
        with pytest.raises(ForkedError, match="built before a fork: a child cannot emit"):
            child.emit({"child": 1})
        assert (child.rejected_events, child.batch_bytes, child.events) == (2, 100, 0)
        # The size is read without the batch's lock, which a parent thread may hold at a fork.
        batch.native.batch_bytes = 250
        assert batch.native.forked().batch_bytes == 250
        assert child.take() is None
        # `forked` runs in the child: the batch it was called on is the parent's copy, and a
        # method bound to it before the fork refuses too, without taking its lock.
        with pytest.raises(ForkedError):
            batch.native.emit({"late": 1})
        assert batch.native.take() is None
        assert batch.native.rejected_events == 2


def decoded(batches: list[tuple[bytes, int]]) -> list:
    """Every event of the batches, in the order they were handed over; checks each count."""
    events = []
    for data, count in batches:
        lines = data.splitlines()
        assert len(lines) == count and data.endswith(b"\n")
        events.extend(msgspec.json.decode(line) for line in lines)
    return events


class TestHandOver:
    def test_a_full_batch_is_handed_over_with_its_event_count(self):
        batch = Batch(batch_bytes=20)
        for i in range(5):
            batch.native.emit({"i": i})  # 8 bytes with the newline
        assert batch.handed == [(b'{"i":0}\n{"i":1}\n{"i":2}\n', 3)]
        assert batch.native.events == 2

    def test_flush_hands_over_the_partial_batch_to_put(self):
        batch = Batch(batch_bytes=20)
        put: list[tuple[bytes, int]] = []
        for i in range(4):
            batch.native.emit({"i": i})
        batch.native.flush(lambda data, events: put.append((data, events)))
        assert batch.handed == [(b'{"i":0}\n{"i":1}\n{"i":2}\n', 3)]
        assert put == [(b'{"i":3}\n', 1)] and batch.native.events == 0

    def test_a_put_that_raises_leaves_the_batch_waiting(self):
        batch = Batch()
        batch.native.emit({"i": 0})

        given = []

        def refuse(data, events):
            given.append(data)
            raise TimeoutError("queue full")

        with pytest.raises(TimeoutError, match="queue full"):
            batch.native.flush(refuse)
        batch.native.emit({"i": 1})
        # The batch goes again as the object the failed call was given (it may have been
        # queued before the call raised: the ingesting side tells the two apart), then the rest.
        taken = batch.native.take()
        assert taken == (b'{"i":0}\n', 1) and taken[0] is given[0]
        assert batch.native.take() == (b'{"i":1}\n', 1)

    def test_events_from_many_threads_are_handed_over_once_each_in_order(self):
        # A slow hand-over lets the other threads fill batches meanwhile: they wait in line.
        handed: list[tuple[bytes, int]] = []

        def hand_over(data, events):
            time.sleep(0.0005)
            handed.append((data, events))

        batch = Batch(batch_bytes=300, hand_over=hand_over)

        def emit_many(thread):
            for i in range(3000):
                batch.native.emit({"thread": thread, "i": i, "pad": "x" * (i % 40)})

        threads = [threading.Thread(target=emit_many, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert batch.native.rejected_events == 0
        batch.native.flush(lambda data, events: handed.append((data, events)))

        events = decoded(handed)
        assert len(events) == 4 * 3000 and len(handed) > 100
        for thread in range(4):
            assert [e["i"] for e in events if e["thread"] == thread] == list(range(3000))

    def test_a_hand_over_that_emits_again_delivers_after_its_own_batch(self):
        # A finalizer or signal handler that logs can run inside the hand-over: it must neither
        # wait for itself nor overtake the batch being handed over.
        batch = Batch(batch_bytes=1)

        def hand_over(data, events):
            batch.handed.append((data, events))
            if len(batch.handed) == 1:
                batch.native.emit({"i": 1})  # fills a batch while this thread hands over
                assert batch.native.take() is None  # the line is the courier's
                batch.native.flush(lambda *a: pytest.fail("a nested flush delivers nothing"))

        batch.native = _core.PendingBatch(1, encode=ENCODE, hand_over=hand_over)
        batch.native.emit({"i": 0})
        assert batch.handed == [(b'{"i":0}\n', 1), (b'{"i":1}\n', 1)]

    def test_events_emitted_until_close_are_all_handed_over_once(self):
        handed: list[tuple[bytes, int]] = []
        batch = Batch(batch_bytes=200, hand_over=lambda data, n: handed.append((data, n)))
        accepted = [0] * 4

        def emit_until_closed(thread):
            while True:
                try:
                    batch.native.emit({"thread": thread, "i": accepted[thread]})
                except EmitterClosedError:
                    return
                accepted[thread] += 1

        threads = [threading.Thread(target=emit_until_closed, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        while min(accepted) < 1000:
            time.sleep(0.001)
        batch.native.close()  # while all four emit
        batch.native.flush(lambda data, n: handed.append((data, n)))
        for t in threads:
            t.join()

        events = decoded(handed)
        assert batch.native.events == 0 and batch.native.rejected_events == 4
        for thread in range(4):
            got = [e["i"] for e in events if e["thread"] == thread]
            assert got == list(range(accepted[thread]))


def test_emitter_emit_is_the_native_method():
    with Emitter(pipeline=RecordingPipeline()) as emitter:
        assert type(emitter.emit).__name__ == "builtin_function_or_method"
        assert emitter.emit.__self__ is emitter._batch
        emitter.emit({"message": "a"})
        Emitter.emit(emitter, {"message": "b"})  # through the class, too
    assert emitter.pipeline.batches == [b'{"message":"a"}\n{"message":"b"}\n']


class RecordingPipeline:
    buffered_rows = 0

    def __init__(self):
        self.batches: list[bytes] = []

    def process(self, data, **kwargs):
        self.batches.append(data)

    def close(self):
        pass


def test_a_subclass_that_overrides_emit_is_called():
    # Breaker report s7: the instance attribute bound to the native method hid the override,
    # so a subclass adding fields to every event stored them without.
    class Tagged(Emitter):
        def emit(self, event):
            super().emit({**event, "host": "web-1"})

    with Tagged(pipeline=RecordingPipeline()) as emitter:
        emitter.emit({"message": "a"})
    assert emitter.pipeline.batches == [b'{"message":"a","host":"web-1"}\n']


class TestOneEventPerEmit:
    def test_line_breaks_in_an_events_bytes_become_spaces(self):
        # Counted as one event, a pretty-printed object was stored as several broken lines.
        batch = Batch()
        batch.native.emit(b'{\n  "a": 1,\r\n  "b": "x"\n}')
        batch.native.emit(bytearray(b'{"c":\n2}'))
        data, events = batch.native.take()
        assert events == 2
        assert [msgspec.json.decode(line) for line in data.splitlines()] == [
            {"a": 1, "b": "x"},
            {"c": 2},
        ]

    @pytest.mark.parametrize("event", [b"", b"  \n", bytearray(b"\t"), memoryview(b"\r\n")])
    def test_blank_bytes_are_refused_and_counted(self, event):
        # They had vanished: neither stored, nor dead-lettered, nor counted.
        batch = Batch()
        with pytest.raises(ValueError, match="must hold one JSON object"):
            batch.native.emit(event)
        assert batch.native.rejected_events == 1
        assert batch.native.take() is None

    def test_a_memoryview_that_is_not_of_bytes_is_refused_and_counted(self):
        batch = Batch()
        with pytest.raises(BufferError):
            batch.native.emit(memoryview(array.array("i", [1, 2])))
        assert batch.native.rejected_events == 1


class TestWhatEmitTakes:
    """Attack report s9: None, numbers, str and lists were taken and dead-lettered later."""

    @pytest.mark.parametrize(
        ("event", "named"), [(None, "NoneType"), (5, "int"), ("{}", "str"), ([{"a": 1}], "list")]
    )
    def test_what_is_not_a_json_object_is_a_type_error(self, event, named):
        with Emitter(pipeline=RecordingPipeline()) as emitter:
            with pytest.raises(
                TypeError, match=f"takes a dict, or the bytes of one .*not {named}$"
            ):
                emitter.emit(event)
            assert emitter.rejected_events == 1
        assert emitter.pipeline.batches == []

    def test_other_objects_that_encode_as_json_objects_are_taken(self):
        @dataclasses.dataclass
        class Row:
            message: str

        class Tagged(msgspec.Struct):
            message: str

        events = [collections.OrderedDict(message="a"), Row("b"), Tagged("c")]
        with Emitter(pipeline=RecordingPipeline()) as emitter:
            for event in events:
                emitter.emit(event)
        assert emitter.pipeline.batches == [b'{"message":"a"}\n{"message":"b"}\n{"message":"c"}\n']

    def test_a_strided_memoryview_is_stored_as_the_bytes_it_shows(self):
        spaced = bytes(b for c in b'{"a": 1}' for b in (c, ord("#")))
        with Emitter(pipeline=RecordingPipeline()) as emitter:
            emitter.emit(memoryview(spaced)[::2])
        assert emitter.pipeline.batches == [b'{"a": 1}\n']
