"""Embedded use: hand events to a background pipeline from application code.

``Emitter.emit`` is the native method of the pending batch (``_core.PendingBatch``): it
encodes an event on the caller's thread (in Rust for the common types of a dict, msgspec for
the rest) and appends it to the batch, with no Python frame of its own, so the call costs a
fraction of a microsecond. A full batch is put on a bounded queue, from which a background
thread takes it and runs it through a ``Pipeline``. When the queue is full the batch is
dropped and counted rather than blocking the application. ``Handler`` is the same thing as a
``logging.Handler``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from qlingest import _core
from qlingest.config import Config, load_config
from qlingest.exceptions import EmitterClosedError, ForkedError, drop_locals, error_line
from qlingest.pipeline import Pipeline
from qlingest.redact import redact_message

__all__ = ["Emitter", "EmitterClosedError", "ForkedError", "Handler"]

log = logging.getLogger("qlingest")

#: A buffer is handed to the pipeline once it holds this many bytes.
BATCH_BYTES = 1 << 20
#: Full buffers waiting for the pipeline; beyond this, buffers are dropped and counted.
QUEUE_BATCHES = 64
#: The background thread takes a partial buffer after this many seconds without one.
FLUSH_INTERVAL_S = 0.5
#: Longest wait between retries of a failing commit once the buffers are full.
RETRY_MAX_S = 10.0


class Emitter:
    """Encodes events on the caller's thread and ingests them on a background thread.

    ``pipeline`` is used as given (and closed by ``close``); otherwise one is built on
    ``data_dir`` with ``config``. One of the two is required, and a given pipeline must have
    a store: a decode-only pipeline would discard every event. An emitter still open when
    the interpreter exits is closed then, so what it buffered is stored. An emitter belongs
    to the process that built it: in a child forked from that process ``emit`` raises
    :class:`ForkedError` (what the parent buffered is the parent's to store) and ``close``
    returns at once.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        config: Config | None = None,
        *,
        pipeline: Pipeline | None = None,
        batch_bytes: int = BATCH_BYTES,
        queue_batches: int = QUEUE_BATCHES,
        flush_interval: float = FLUSH_INTERVAL_S,
        commit_interval: float | None = None,
    ) -> None:
        # Checked before anything is built: a negative interval would end the background
        # thread at its first wait, and close would then wait for it forever.
        for name, value in (("flush_interval", flush_interval),
                            ("commit_interval", commit_interval)):  # fmt: skip
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        _check_destination("Emitter", data_dir, pipeline)
        self.pipeline = pipeline or Pipeline(data_dir, config)
        self.flush_interval = flush_interval
        #: Rows ingested are committed once the oldest has waited this long (the pipeline's
        #: ``serve.flush_interval_s`` unless given), so events are on disk and queryable
        #: within about that time, not only when a partition fills or the emitter closes.
        config = getattr(self.pipeline, "config", None) or load_config()
        self.commit_interval = commit_interval or config.serve.flush_interval_s
        #: Events dropped because the queue was full.
        self.dropped_events = 0
        #: The last error of the background thread: a batch or commit that failed.
        self.error: BaseException | None = None
        #: Set while commits fail (a full disk): once the pipeline's buffers then pass
        #: ``store.max_buffer_bytes`` the background thread retries commits instead of taking
        #: batches, so the queue fills and ``emit`` drops (and counts) what does not fit.
        self._failing = False
        #: Set when ``close`` begins: a thread waiting for room stops waiting.
        self._closing_now = threading.Event()
        self._queue: queue.Queue[tuple[bytes, int] | None] = queue.Queue(queue_batches)
        #: The events not yet handed over, with the lock, counts and closed state of ``emit``.
        self._batch = _core.PendingBatch(
            batch_bytes,
            encode=functools.partial(_encode_object, msgspec.json.Encoder().encode),
            hand_over=self._hand_over,
        )
        self._bind_emit()
        # Reentrant: a signal handler or finalizer that closes may land in ``close`` itself.
        self._close_lock = threading.RLock()
        #: Set while ``close`` runs, so that such a nested call returns at once.
        self._closing = False
        #: Set once ``close`` has told the background thread to stop.
        self._stop_sent = False
        self._thread = threading.Thread(target=self._run, name="qlingest-emitter", daemon=True)
        #: The batch ingested last, so that a batch handed over twice is stored once.
        self._last_ingested: bytes | None = None
        #: Set once ``close`` has stored what was left.
        self._done = False
        self._forked = False
        #: The Handler that built this emitter: ``logging.shutdown`` closes it then.
        self._owner: weakref.ref[Handler] | None = None
        self._thread.start()
        _open_emitters.add(self)

    def emit(self, event: dict[str, Any] | bytes | bytearray | memoryview) -> None:
        """Queues one event: a dict (encoded here) or the bytes of one JSON object (line
        breaks in them become spaces, so they stay one event). Other objects that msgspec
        encodes as a JSON object (a dict subclass, a ``msgspec.Struct``, a dataclass) are
        taken too; anything else (``None``, a number, a str, a list) raises ``TypeError``.

        An event that cannot be encoded (an ``object()``, a lone surrogate in a string) or
        whose bytes are blank raises, is counted in ``rejected_events`` and leaves the batch
        as it was; so does an event emitted after ``close`` (:class:`EmitterClosedError`) or
        in a forked child.
        """
        # Each instance binds ``emit`` to its batch's native method; this one serves calls
        # through the class.
        self._batch.emit(event)

    def _bind_emit(self) -> None:
        """Binds ``emit`` to the batch's native method, so no Python frame runs per event;
        a subclass that overrides ``emit`` keeps its own."""
        if type(self).emit is Emitter.emit:
            self.emit: Callable[[dict[str, Any] | bytes | bytearray | memoryview], None] = (
                self._batch.emit
            )

    @property
    def batch_bytes(self) -> int:
        """A batch is handed over once it holds this many bytes, newlines included."""
        return self._batch.batch_bytes

    @batch_bytes.setter
    def batch_bytes(self, value: int) -> None:
        self._batch.batch_bytes = value

    @property
    def rejected_events(self) -> int:
        """Events ``emit`` raised on, stored nowhere: not encodable as JSON, or emitted after
        ``close`` or in a forked child."""
        return self._batch.rejected_events

    def _hand_over(self, data: bytes, events: int) -> None:
        """Queues a full batch; a full queue drops it, counted. The batch calls this from one
        thread at a time, in the order the batches filled, without its lock held."""
        if self._stop_sent:
            # A close ran inside this thread's own hand-over (a signal handler or finalizer
            # landing in ``emit``): the background thread is gone, and these events with it.
            self.dropped_events += events
            return
        try:
            self._queue.put_nowait((data, events))
        except queue.Full:
            self.dropped_events += events

    def on_worker_thread(self) -> bool:
        """Whether the caller runs on the background thread that feeds the pipeline."""
        return threading.current_thread() is self._thread

    def flush(self, timeout: float | None = None) -> None:
        """Hands over what is buffered and waits until the pipeline has taken every batch."""
        if self._forked:
            return  # nothing buffered here is the child's
        if self.on_worker_thread():
            # A finalizer the collector ran on the background thread: waiting for that
            # thread would wait forever, and it takes the partial batch itself.
            return

        def put(data: bytes, events: int) -> None:
            self._queue.put((data, events), timeout=timeout)

        # A put that times out leaves its events pending.
        self._batch.flush(put)
        self._queue.join()

    def close(self) -> None:
        """Ingests what is left, commits it and stops the background thread; from then on
        ``emit`` raises. A call made while a close runs on the same thread (from a signal
        handler, say) returns at once and leaves the storing to that close."""
        with self._close_lock:
            if self._done or self._closing:
                # Called again on this thread while it closes (a signal handler or finalizer
                # landing in close): the outer call stores what is left.
                return
            self._closing = True
            try:
                self._close()
            finally:
                self._closing = False

    def _close(self) -> None:
        self._closing_now.set()
        if not self._forked:
            self._batch.close()
            self._stop_worker()
        self._done = True
        _open_emitters.discard(self)
        try:
            self.pipeline.close()
        except Exception as e:
            # A full disk, say: what the pipeline still held is lost, and counted.
            self.error = e
            self.dropped_events += self.pipeline.buffered_rows
            raise

    def _stop_worker(self) -> None:
        """Hands everything over, stops the background thread and ingests here whatever it
        left: a close interrupted by an exception (a signal handler that exits) is taken up
        again at exit, possibly after the thread stopped."""
        if not self._stop_sent:
            self.flush()
            self._stop_sent = True
        while self._thread.is_alive():
            # A second stop, after a close interrupted here, is harmless.
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=self.flush_interval)
            self._thread.join(self.flush_interval)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._ingest(item[0])
            self._queue.task_done()
        self._take_partial()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _after_fork_in_child(self) -> None:
        """Makes the child's copy refuse events, so nothing waits on the background thread,
        which stayed in the parent."""
        # Another thread of the parent may have held a lock at the fork: the child's are new.
        # What was buffered is the parent's, which stores it.
        self._batch = self._batch.forked()
        self._bind_emit()
        self._close_lock = threading.RLock()
        self._closing = False
        self._forked = True

    def _run(self) -> None:
        # Events this thread emits (a finalizer that logs) never wait for a flush that waits
        # for this thread to make room in the queue.
        self._batch.drains_here()
        commit_at = None  # when the oldest ingested row not yet committed is due
        while True:
            try:
                wait = self.flush_interval
                if commit_at is not None:
                    wait = max(0.0, min(wait, commit_at - time.monotonic()))
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                self._take_partial()
            else:
                try:
                    if item is None:
                        return
                    self._ingest(item[0])
                finally:
                    self._queue.task_done()
            if commit_at is None or time.monotonic() >= commit_at:
                commit_at = self._commit_aged()

    def _commit_aged(self) -> float | None:
        """Commits the partitions whose rows have waited ``commit_interval``; returns when
        the next is due (``None``: nothing waits)."""
        commit_aged = getattr(self.pipeline, "commit_aged", None)
        if commit_aged is None:  # a stand-in pipeline that only takes batches
            return None
        try:
            due_in = commit_aged(self.commit_interval)
        except Exception as e:  # a failed commit keeps its rows; the host goes on
            self._failed(e)
            due_in = self.commit_interval
        else:
            self._failing = False
        return None if due_in is None else time.monotonic() + due_in

    def _take_partial(self) -> None:
        """After a quiet interval, ingests the partial buffer so events do not wait long."""
        taken = self._batch.take()
        if taken is not None:
            self._ingest(taken[0])

    def _ingest(self, data: bytes) -> None:
        # A hand-over that raised after its batch was queued (an interrupt at its last line)
        # is retried with the same object, which then follows the first in the queue.
        if data is self._last_ingested:
            return
        self._last_ingested = data
        self._wait_for_room()
        try:
            self.pipeline.process(data, source="emit", format="ndjson")
        except Exception as e:  # a failed batch must not stop the host application
            self._failed(e)

    def _wait_for_room(self) -> None:
        """While commits fail and the buffers are full, retries committing at doubling
        intervals (up to ``RETRY_MAX_S``) rather than buffering more: memory stays bounded by
        the buffers and the queue. ``close`` ends the wait, and stores or counts the rest."""
        config = getattr(self.pipeline, "config", None)
        if config is None:  # a stand-in pipeline that only takes batches
            return
        delay = self.flush_interval
        while self._failing and self.pipeline.buffered_bytes > config.store.max_buffer_bytes:
            if self._closing_now.wait(delay):
                return
            try:
                self.pipeline.flush()
            except Exception as e:
                self._failed(e)
                delay = min(delay * 2, RETRY_MAX_S)
            else:
                self._failing = False

    def _failed(self, error: Exception) -> None:
        """Keeps the error; the first of a run of failures is said once on stderr, since
        the host goes on and nothing else would tell."""
        drop_locals(error)
        self.error = error
        if self._failing:
            return
        self._failing = True
        if sys.stderr is not None:
            note = _one_redacted_line(
                f"qlingest: events could not be stored: {error_line(error)}; they are kept "
                "and retried, and once store.max_buffer_bytes is full new events are dropped "
                "and counted in Emitter.dropped_events"
            )
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(note + "\n")


def _check_destination(name: str, data_dir: str | Path | None, pipeline: Pipeline | None) -> None:
    """Raises ``TypeError`` when events would be stored nowhere: no ``data_dir`` and no
    pipeline, or a decode-only pipeline (built without ``data_dir``)."""
    if pipeline is None and data_dir is None:
        raise TypeError(
            f"{name} needs a data_dir to store events in (or a pipeline built with one): "
            "without it every event would be discarded"
        )
    if isinstance(pipeline, Pipeline) and pipeline.store is None:
        raise TypeError(
            f"{name} was given a decode-only Pipeline (built without data_dir), which would "
            "discard every event: build it with the store's directory"
        )


def _encode_object(encode: Callable[[Any], bytes], event: Any) -> bytes:
    """An event that is not an exact dict nor bytes-like, encoded, if it is a JSON object;
    the batch calls this off its fast path, and counts the event rejected when it raises."""
    line = encode(event)
    if not line.startswith(b"{"):
        raise TypeError(
            "Emitter.emit takes a dict, or the bytes of one JSON object, not "
            + type(event).__name__
        )
    return line


#: Emitters not yet closed; weak, so this set keeps none of them alive.
_open_emitters: weakref.WeakSet[Emitter] = weakref.WeakSet()


def _close_at_exit() -> None:
    """Closes the emitters left open, so their buffered events are stored. One whose Handler
    is alive is left to ``logging.shutdown``, which runs later and closes the Handler after
    the last records (logged by earlier exit hooks) are in."""
    for emitter in list(_open_emitters):
        owner = emitter._owner() if emitter._owner is not None else None
        if owner is not None and not emitter._forked:
            continue
        try:
            emitter.close()
        except Exception as e:
            log.error(
                "Events buffered at exit were not stored. error=%s",
                _one_redacted_line(error_line(e)),
            )


def _after_fork_in_child() -> None:
    for emitter in list(_open_emitters):
        emitter._after_fork_in_child()


atexit.register(_close_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)


def _one_redacted_line(text: str) -> str:
    """``text`` on one line, redacted: an error can quote what was being stored."""
    return redact_message(" ".join(text.split()))


_FORMATTER = logging.Formatter()
#: The stored level of a record, from its number: the standard level at or below it, so a
#: custom level between two standard ones (25) takes the lower one and one above CRITICAL is
#: critical; a number below DEBUG (a TRACE level) is debug, as the decoder reads "trace".
_LEVELS = (
    (logging.CRITICAL, "critical"),
    (logging.ERROR, "error"),
    (logging.WARNING, "warn"),
    (logging.INFO, "info"),
)


def _level_name(record: logging.LogRecord) -> str:
    if not isinstance(record.levelno, int):
        return record.levelname  # a record made by hand, without a level number
    for number, name in _LEVELS:
        if record.levelno >= number:
            return name
    return "debug"


_encode = msgspec.json.Encoder().encode


def _encodable(value: dict | list | tuple) -> bool:
    """Whether a container given through ``extra=`` can be stored as JSON; one that cannot
    (an ``object()`` inside) is left out, so the record itself is still stored."""
    try:
        _encode(value)
    except (msgspec.EncodeError, TypeError, ValueError, RecursionError):
        return False
    return True


class Handler(logging.Handler):
    """A ``logging.Handler`` that turns records into events for an ``Emitter``.

    ``service`` fills the service column; the logger name, and the traceback of
    ``exc_info`` followed by the call stack of ``stack_info``, travel as ``logger`` and
    ``stack``. Attributes given through
    ``extra=`` that are JSON-encodable are kept as fields. The level is the standard one at
    or below the record's number (25 is info, 55 critical, a TRACE level debug). Events go
    to ``emitter``, or to one built on ``data_dir`` (one of the two is required).
    """

    _RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
    #: Input keys that would override what the handler takes from the record itself: its time,
    #: level, message, logger, stack and (when the handler names one) service.
    _OWN = frozenset(
        [k for k, kind in _core.key_columns() if kind in ("timestamp", "level", "message")]
        + ["logger", "stack", "extra"]
    )
    _SERVICE = frozenset(k for k, kind in _core.key_columns() if kind == "service")

    def __init__(
        self,
        data_dir: str | Path | None = None,
        config: Config | None = None,
        *,
        service: str | None = None,
        emitter: Emitter | None = None,
        level: int = logging.NOTSET,
    ) -> None:
        if emitter is None:
            _check_destination("Handler", data_dir, None)
        super().__init__(level)
        if emitter is None:
            emitter = Emitter(data_dir, config)
            emitter._owner = weakref.ref(self)
        self.emitter = emitter
        self.service = service
        self.addFilter(self._not_our_own)

    def _not_our_own(self, record: logging.LogRecord) -> bool:
        """Leaves out records that qlingest logs while it ingests: fed back, each batch
        would log about the last."""
        return not (record.name == "qlingest" or record.name.startswith("qlingest."))

    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:
        """Filters the record and emits it without taking the handler's lock: the emitter is
        safe from any thread, and a record logged on its background thread (a finalizer the
        collector runs there) would otherwise wait on that lock, which ``logging.shutdown``
        holds while it flushes this handler, for ever."""
        passed = self.filter(record)
        if isinstance(passed, logging.LogRecord):
            record = passed  # a filter may return a changed record (Python 3.12)
        if passed:
            self.emit(record)
        return passed

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.emitter.emit(self.to_event(record))
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """Prints one redacted line on stderr: the record was not stored, and why.

        ``logging.Handler.handleError`` prints the record's message and arguments, which are
        what this handler exists to redact; only the logger, the call site and the error
        are named here. Silent when ``logging.raiseExceptions`` is false, as logging is.
        """
        if not logging.raiseExceptions or sys.stderr is None:
            return
        error = sys.exc_info()[1]
        note = _one_redacted_line(
            f"qlingest: a log record was not stored (logger {record.name!r}, "
            f"{record.pathname}:{record.lineno}): "
            + (error_line(error) if error is not None else "unknown error")
        )
        # A closed or vanished stderr leaves nowhere to say it.
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(note + "\n")

    def to_event(self, record: logging.LogRecord) -> dict[str, Any]:
        """The event of one log record."""
        event: dict[str, Any] = {
            "timestamp": int(record.created * 1e9),
            "level": _level_name(record),
            "message": record.getMessage(),
            "logger": record.name,
        }
        if self.service is not None:
            event["service"] = self.service
        formatter = self.formatter or _FORMATTER
        stack = []
        if record.exc_info:
            stack.append(formatter.formatException(record.exc_info))
        if record.stack_info:
            stack.append(formatter.formatStack(record.stack_info))
        if stack:
            event["stack"] = "\n".join(stack)
        extra: dict[str, Any] = {}
        for key, value in record.__dict__.items():
            if key in self._RESERVED:
                continue
            if isinstance(value, str | int | float | bool) or (
                isinstance(value, dict | list | tuple) and _encodable(value)
            ):
                extra[key] = value
        # An attribute that would override the record's own time, level or message (``level``,
        # ``ts``, ``msg``, ...) travels under ``extra`` instead; other columns such as
        # ``category`` or ``trace_id`` may be set this way on purpose.
        own = self._OWN | self._SERVICE if self.service is not None else self._OWN
        moved = {k: extra.pop(k) for k in list(extra) if k in own}
        event.update(extra)
        if moved:
            event["extra"] = moved
        return event

    def flush(self) -> None:
        self.emitter.flush()

    def close(self) -> None:
        # ``logging.shutdown`` closes handlers at exit: a failure is one redacted line there,
        # not a traceback; the emitter keeps the error and counts what was lost.
        try:
            self.emitter.close()
        except Exception as e:
            # Straight to stderr: a record logged here would come back through this handler.
            if sys.stderr is not None:
                lost = self.emitter.dropped_events
                line = f"qlingest: {lost} log records were not stored at close: {error_line(e)}"
                print(_one_redacted_line(line), file=sys.stderr)
        finally:
            super().close()
