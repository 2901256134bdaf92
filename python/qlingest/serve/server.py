"""The sidecar: receivers on uvloop, group commit to the log, one pipeline thread, replay.

Flow of a request: body read and checked on the event loop; admitted if the queue has room
(else 429 with ``Retry-After``); appended to the log by the group committer (one write and one
fsync for every request waiting); acknowledged; then decoded in pieces on the decode threads
(the Rust core releases the GIL, so pieces decode on every core at once), buffered in log
order by the pipeline thread, and committed by size or age. Each committed file names the log
records it holds (Parquet in its metadata, dead letters in each row), so a restart replays
exactly what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import os
import re
import signal
import ssl
import stat
import sys
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import polars as pl
import zstandard

from qlingest.config import Config, ServeConfig
from qlingest.exceptions import (
    ConfigError,
    QlingestError,
    drop_locals,
    error_line,
    first_line,
)
from qlingest.pipeline import Batch, Pipeline
from qlingest.redact import Redactor, redact_message
from qlingest.serve import otlp
from qlingest.serve.http import HttpProtocol, Limits, Request, Response
from qlingest.serve.metrics import Metrics
from qlingest.serve.wal import Wal, WalRecord, make_private
from qlingest.source import GzipReader, ZstdReader
from qlingest.store import (
    PARTITION_KEY,
    WAL_KEY,
    WAL_RECORD_FIELD,
    Store,
    decode_ranges,
    file_seq,
)

__all__ = ["Server", "log"]

NDJSON_TYPES = {"", "application/x-ndjson", "application/jsonl", "application/json", "text/plain"}
Key = tuple[str, str, str]
#: A log record is decoded in pieces of about this size, one per decode thread at most.
PIECE_BYTES = 256 << 10
#: An OTLP request's events may come to this many times ``max_body_bytes`` (413 beyond).
OTLP_EXPANSION = 4


#: What a failed commit of buffered rows raises: the OS's error, or Polars' for a Parquet
#: write (a full disk is ``ComputeError: ... No space left on device``).
COMMIT_ERRORS = (OSError, pl.exceptions.PolarsError)
#: The longest wait between retries of a failing commit.
RETRY_MAX_S = 10.0
#: The open log segment is closed once its first record is this old, so that it is deleted
#: as soon as its records are committed: the raw request bodies in it (secrets included)
#: stay on disk about this long at most, however slowly the segment fills.
WAL_SEGMENT_MAX_AGE_S = 60.0
#: How long a stop waits for HTTP requests that had begun to arrive (at most half of
#: ``shutdown_deadline_s``, so that what they bring can still be committed).
SHUTDOWN_GRACE_S = 5.0


def log(level: str, msg: str, **fields: object) -> None:
    """qlingest's own log: one JSON object per line on stderr; never a payload, only counts.

    It never raises: a closed or full stderr must not stop the caller (often an error
    handler), so such a line is lost."""
    record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level}
    record["msg"] = msg
    record.update(fields)
    with contextlib.suppress(OSError, ValueError):
        print(redact_message(json.dumps(record, default=str)), file=sys.stderr, flush=True)


class BindError(Exception):
    """A receiver could not listen on its address (in use, not permitted, not local)."""


class BodyError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class Server:
    """``start`` recovers and listens; ``serve_forever`` runs until SIGTERM/SIGINT, then drains."""

    def __init__(self, data_dir: str | Path, config: Config) -> None:
        self.config = config
        self.cfg = config.serve
        # Before anything is opened: a certificate that cannot be loaded leaves nothing behind.
        self._tls_context = _tls_context(self.cfg)
        self.metrics = Metrics()
        self.pipeline = Pipeline(data_dir, config)
        assert self.pipeline.store is not None
        self.store = self.pipeline.store
        self.dead_letters = _DeadLetters(self.store, config.store.target_file_bytes)
        self._own = _Sink(self.pipeline, self.dead_letters)
        fsync = self.cfg.wal_fsync != "never"
        make_private(self.store.root / "wal")
        self.wal = Wal(
            self.store.root / "wal" / self.store.writer,
            segment_bytes=self.cfg.wal_segment_bytes,
            fsync=fsync,
            scrub=_redactor_of_bytes(config),
        )
        self._wal_pool = ThreadPoolExecutor(1, thread_name_prefix="qlingest-wal")
        self._pipe_pool = ThreadPoolExecutor(1, thread_name_prefix="qlingest-pipeline")
        self._decoders = config.input.threads or os.cpu_count() or 1
        self._decode_pool = ThreadPoolExecutor(self._decoders, thread_name_prefix="qlingest-decode")
        self._aux_pool = ThreadPoolExecutor(2, thread_name_prefix="qlingest-convert")
        #: Requests waiting for the log: source, body, its events, and the acknowledgement.
        self._pending: list[tuple[str, bytes, int, asyncio.Future]] = []
        self._queue: list[WalRecord] = []
        self.queue_bytes = 0
        self._processed_below = 0
        self._connections: set = set()
        self._probes: set = set()  # health checks beyond max_connections
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: list[asyncio.Task] = []
        self._stop = asyncio.Event()
        self.ready = False
        self.stopping = False
        #: Why commits of buffered rows fail, while they do; set on the pipeline thread.
        self.commit_failure: str | None = None
        self._commit_failures = 0
        #: Log writes refused in a row (a full disk); the server is not ready while there are.
        self._wal_failures = 0

    # ----- start and recovery

    async def start(self) -> dict[str, int]:
        """Replays the log, then binds every receiver; returns the ports bound."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        replayed = await loop.run_in_executor(self._pipe_pool, self._recover)
        self._kick, self._work, self._drained = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._resumed, self._log_failing = asyncio.Event(), asyncio.Event()
        if self.commit_failure is None:
            self._resumed.set()
        if self._wal_failures:
            self._log_failing.set()
        jobs = (self._committer, self._writer, self._flusher, self._syncer, self._log_prober)
        for job in jobs:
            self._tasks.append(loop.create_task(job()))
        ports = await self._listen()
        self.ready = True
        tls = self._tls_context is not None
        log("info", "Listening.", host=self.cfg.host, tls=tls, replayed_records=replayed, **ports)
        if self.cfg.tokens and "tcp" in ports:
            # Limitation: raw TCP lines carry no credentials; only where the port is bound
            # guards that receiver.
            log("warn", "serve.tokens guards HTTP and OTLP only: the TCP receiver takes "
                "lines from anyone who reaches its port.", tcp=ports["tcp"])  # fmt: skip
        return ports

    def _recover(self) -> int:
        """Replays every log record into the pipeline, minus what is already committed; then
        the logs of other writers that no live process holds."""
        replayed = self._replay(self.wal, self._own)
        try:
            self._flush_pipeline()
        except COMMIT_ERRORS as e:
            # The replayed rows stay buffered and their segments stay until a retry commits.
            self._note_commit_failure(e)
        try:
            self.wal.open_segment(self.store._seq)
        except OSError as e:
            # A disk filled by the log itself: the server starts, refuses requests with 503
            # and starts a segment once it can (on the next request); /readyz answers 503 until
            # a request or the probe finds room.
            log("error", "Log segment could not be started; requests are refused with 503 "
                "until one can.", error=error_line(e))  # fmt: skip
            self._wal_failures = 1
        if self.commit_failure is None:
            self.wal.release_recovered()
        self._processed_below = self.wal.next_seq
        self.metrics.wal_bytes.set(self.wal.bytes)
        for writer in self._orphan_writers():
            replayed += self._replay_orphan(writer)
        return replayed

    def _replay(self, wal: Wal, sink: _Sink) -> int:
        """Replays one writer's log into its sink, minus what its files already hold."""
        # The engine is built on first use; build it here, before decode threads share it.
        sink.pipeline.decode(b"", format="ndjson")
        store = sink.dead_letters.store
        first_file = wal.first_file_on_disk()
        committed = self._committed_records(store, first_file)
        dead_done = set() if first_file is None else store.dead_letter_wal_records(first_file)
        # Limitation: exactly-once rests on decoding being a function of the bytes and the
        # receive time; stateful stages (adaptive sampling, the audit chain's sequence) may
        # decide differently on replay than they did before the crash.
        replayed = self._process(wal.recover(), committed, dead_done, sink)
        for damage in wal.damage:
            log("error", "Write-ahead log damaged: records lost.", detail=damage)
        return replayed

    def _orphan_writers(self) -> list[str]:
        """Other writers with a log on disk: left by a process that died, or in use by a live
        one (``_replay_orphan`` tells them apart by the writer's lock)."""
        return sorted(
            d.name
            for d in self.wal.dir.parent.iterdir()
            if d.name != self.store.writer
            and re.fullmatch(r"[A-Za-z0-9_.-]+", d.name)
            and any(d.glob("*.wal"))
        )

    def _replay_orphan(self, writer: str) -> int:
        """Replays another writer's log as that writer, holding its lock, so that its files,
        audit chain and bookkeeping stay its own; a clean replay deletes the log, as a clean
        stop would. Returns the records replayed: 0 when a live process holds the writer id.
        """
        store_cfg = msgspec.structs.replace(self.config.store, writer=writer)
        try:
            pipeline = Pipeline(
                self.store.root, msgspec.structs.replace(self.config, store=store_cfg)
            )
        except (QlingestError, ValueError) as e:
            # An unreadable audit checkpoint, say: the server that takes this id will say so.
            log("error", "Another writer's log cannot be replayed; it is kept.", writer=writer,
                error=error_line(e))  # fmt: skip
            return 0
        except RuntimeError:
            return 0  # a live process holds the writer id
        assert pipeline.store is not None
        sink = _Sink(pipeline, _DeadLetters(pipeline.store, self.config.store.target_file_bytes))
        wal = Wal(
            self.wal.dir.parent / writer,
            segment_bytes=self.cfg.wal_segment_bytes,
            fsync=self.wal.fsync_enabled,
            scrub=self.wal.scrub,
        )
        try:
            replayed = self._replay(wal, sink)
            self._flush_pipeline(sink)
            # Deleted while the lock is held, so that no other server replays it again.
            wal.remove()
        except COMMIT_ERRORS as e:
            # The log stays, and the next start replays what it holds that is not committed.
            log("error", "Replay of another writer's log failed; the log is kept.",
                writer=writer, error=error_line(e))  # fmt: skip
            pipeline.abort()
            return 0
        summary = pipeline.close()
        log("info", "Replayed the log of a writer no process holds.", writer=writer,
            records=replayed, events_written=summary.events_written)  # fmt: skip
        return replayed

    def _committed_records(self, store: Store, first_file: int | None) -> dict[int, set[Key]]:
        """Log record -> partitions that hold it, from the metadata of the writer's files."""
        out: dict[int, set[Key]] = {}
        if first_file is None:
            return out
        for path in (store.root / "hot").rglob(f"part-{store.writer}-*.parquet"):
            seq = file_seq(path)
            if seq is None or seq < first_file:
                continue
            try:
                meta = pl.read_parquet_metadata(path)
            except (OSError, pl.exceptions.PolarsError) as e:
                # Its records count as not committed: what the log still holds is replayed.
                log("warn", "Skipped an unreadable file.", file=str(path), error=first_line(e))
                continue
            if WAL_KEY not in meta:
                continue
            key = tuple(json.loads(meta[PARTITION_KEY]))
            for lo, hi in decode_ranges(meta[WAL_KEY]):
                for n in range(lo, hi + 1):
                    out.setdefault(n, set()).add(key)
        return out

    async def _listen(self) -> dict[str, int]:
        loop = asyncio.get_running_loop()
        tls = self._tls_context
        limits = Limits(
            self.cfg.max_header_bytes,
            self.cfg.max_headers,
            self.cfg.max_body_bytes,
            self.cfg.idle_timeout_s,
            self.cfg.max_connections,
            self.cfg.request_timeout_s,
        )
        ports: dict[str, int] = {}

        def http():
            return HttpProtocol(self._route, limits, self._reject, self._connections, self._probes)

        receivers = (
            ("http", self.cfg.http_port, http),
            ("otlp", self.cfg.otlp_port, http),
            ("tcp", self.cfg.tcp_port, lambda: TcpProtocol(self)),
        )
        for name, port, factory in receivers:
            if port is None:
                continue
            try:
                srv = await loop.create_server(factory, self.cfg.host, port, ssl=tls, backlog=1024)
            except OSError as e:
                reason = os.strerror(e.errno) if e.errno else str(e)
                where = f"{self.cfg.host}:{port}"
                raise BindError(f"{name} receiver cannot listen on {where}: {reason}") from None
            self._servers.append(srv)
            ports[name] = srv.sockets[0].getsockname()[1]
        return ports

    # ----- admission and the group commit

    def admits(self, size: int) -> bool:
        """Room in the queue for ``size`` more bytes (an empty queue admits any one request)."""
        return self.queue_bytes == 0 or self.queue_bytes + size <= self.cfg.max_queue_bytes

    async def submit(self, source: str, payload: bytes, events: int) -> None:
        """Returns once ``payload``, holding ``events`` events, is in the log (fsynced under
        the ``always`` policy)."""
        if not payload.endswith(b"\n"):
            payload += b"\n"
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((source, payload, events, fut))
        self.queue_bytes += len(payload)
        self.metrics.queue_bytes.set(self.queue_bytes)
        self._kick.set()
        await fut

    async def _committer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                started = time.perf_counter()
                try:
                    logged = await loop.run_in_executor(self._wal_pool, self._log_group, batch)
                except OSError as e:
                    self._wal_failures += 1
                    self._log_failing.set()
                    if self._wal_failures % 100 == 1:
                        log(
                            "error",
                            "Log write failed; requests are refused with 503.",
                            error=error_line(e),
                            attempts=self._wal_failures,
                        )
                    for _, payload, _, fut in batch:
                        self.queue_bytes -= len(payload)
                        if not fut.done():
                            fut.set_exception(e)
                    continue
                self._log_writes_resumed()
                self.metrics.wal_commit.observe(time.perf_counter() - started)
                self.metrics.wal_bytes.set(self.wal.bytes)
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
                self._queue += logged
                self._work.set()

    def _log_writes_resumed(self) -> None:
        """A log write (or the probe's) succeeded: the server is ready again, if it was not."""
        if self._wal_failures:
            log("info", "Log writes resumed.", failed_attempts=self._wal_failures)
            self._wal_failures = 0

    async def _log_prober(self) -> None:
        """While log writes fail, checks at doubling intervals (from ``flush_interval_s`` up to
        ``RETRY_MAX_S``) whether the log takes writes again: a server that ``/readyz`` took
        out of rotation gets no request that could find out."""
        loop = asyncio.get_running_loop()
        while True:
            await self._log_failing.wait()
            delay = self.cfg.flush_interval_s
            while self._wal_failures:
                await asyncio.sleep(delay)
                if await loop.run_in_executor(self._wal_pool, self._log_takes_writes):
                    self._log_writes_resumed()
                delay = min(delay * 2, max(RETRY_MAX_S, self.cfg.flush_interval_s))
            self._log_failing.clear()

    def _log_takes_writes(self) -> bool:
        """On the log thread: whether a request would be logged now. It asks what a request
        does: a segment is started if none is open, and the open one is written to."""
        if not self.wal.is_open:
            try:
                self.wal.open_segment(self.store._seq)
            except OSError:
                return False
        return self.wal.writable()

    def _group(
        self, batch: list[tuple[str, bytes, int, asyncio.Future]]
    ) -> list[tuple[int, str, list[bytes]]]:
        """One record per source, split at ``wal_record_bytes`` or ``max_request_events``
        (a record is decoded whole, so its events bound the memory it takes); all share the
        receive time."""
        now = time.time_ns()
        max_bytes, max_events = self.cfg.wal_record_bytes, self.cfg.max_request_events
        by_source: dict[str, list[tuple[int, int, list[bytes]]]] = {}
        for source, payload, events, _ in batch:
            groups = by_source.setdefault(source, [(0, 0, [])])
            size, count, parts = groups[-1]
            if parts and (size + len(payload) > max_bytes or count + events > max_events):
                size, count, parts = 0, 0, []
                groups.append((size, count, parts))
            parts.append(payload)
            groups[-1] = (size + len(payload), count + events, parts)
        return [(now, s, parts) for s, gs in by_source.items() for *_, parts in gs]

    def _log_group(self, batch: list[tuple[str, bytes, int, asyncio.Future]]) -> list[WalRecord]:
        """On the log thread: groups the requests into records, writes and fsyncs them."""
        if not self.wal.is_open:
            self.wal.open_segment(self.store._seq)
        logged = self.wal.append(self._group(batch), sync=self.cfg.wal_fsync == "always")
        if self.wal.should_rotate():
            try:
                self.wal.open_segment(self.store._seq)
            except OSError as e:
                # The records are logged: they are acknowledged. The open segment stays open,
                # and the next write tries the rotation again.
                log("warn", "Log segment rotation failed.", error=error_line(e))
        return logged

    async def _syncer(self) -> None:
        """The ``interval`` policy: fsync the log every ``wal_fsync_interval_s``."""
        if self.cfg.wal_fsync != "interval":
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.cfg.wal_fsync_interval_s)
            await loop.run_in_executor(self._wal_pool, self.wal.sync)

    # ----- the pipeline thread

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._work.wait()
            self._work.clear()
            while self._queue:
                if self._commits_stalled():
                    # Commits fail and the buffers are full: decoding waits, so the queue
                    # fills and requests are refused with 429 until a retry commits.
                    self._resumed.clear()
                    await self._resumed.wait()
                batch, self._queue = self._queue, []
                await loop.run_in_executor(self._pipe_pool, self._process, batch)
                self._processed_below = batch[-1].seq + 1
                self.queue_bytes -= sum(r.size for r in batch)
                self.metrics.queue_bytes.set(self.queue_bytes)
                self.metrics.buffer_bytes.set(self._buffered_bytes())
            if not self._pending:
                self._drained.set()

    def _process(
        self,
        records: Iterable[WalRecord],
        committed: dict[int, set[Key]] | None = None,
        dead_done: set[int] | frozenset[int] = frozenset(),
        sink: _Sink | None = None,
    ) -> int:
        """Decodes records on the decode threads and absorbs them in log order; how many.

        The next record decodes while this thread absorbs the last. On replay ``committed``
        names the partitions already holding each record's events and ``dead_done`` the
        records whose dead letters are already committed; ``sink`` is another writer's when
        its log is replayed.
        """
        sink = sink or self._own
        ahead: tuple[WalRecord, list[Future[Batch]], float] | None = None
        count = 0
        for rec in records:
            started = time.perf_counter()
            pieces = self._decode(rec, sink.pipeline)
            if ahead is not None:
                self._absorb(sink, *ahead, committed or {}, dead_done)
            ahead, count = (rec, pieces, started), count + 1
        if ahead is not None:
            self._absorb(sink, *ahead, committed or {}, dead_done)
        sink.seen.update(sink.pipeline, self.metrics)
        return count

    def _decode(self, rec: WalRecord, pipeline: Pipeline) -> list[Future[Batch]]:
        """Hands a record's pieces to the decode threads."""
        return [
            self._decode_pool.submit(
                pipeline.decode,
                piece,
                source=rec.source,
                format="ndjson",
                observed_ns=rec.observed_ns,
            )
            for piece in _pieces(rec.parts, self._decoders)
        ]

    def _absorb(
        self,
        sink: _Sink,
        rec: WalRecord,
        pieces: list[Future[Batch]],
        started: float,
        committed: dict[int, set[Key]],
        dead_done: set[int] | frozenset[int],
    ) -> None:
        """Buffers one record's events; its dead letters are held apart, tagged with it."""
        batch = _merge([p.result() for p in pieces])
        dead = batch.dead_letters
        if dead.height and rec.seq not in dead_done:
            sink.pipeline.summary.dead_letters.update(dead["reason"].to_list())
            sink.dead_letters.add(dead, rec.seq)
        # The pipeline would commit dead letters untagged, one file per record.
        batch.dead_letters = dead.clear()
        skip = committed.get(rec.seq, ())

        def hold(rows: pl.DataFrame) -> None:
            # Rows the pipeline dead-letters while buffering (a bad category) join the
            # record's other dead letters: committed in one file with them, tagged, once.
            if rec.seq not in dead_done:
                sink.pipeline.summary.dead_letters.update(rows["reason"].to_list())
                sink.dead_letters.add(
                    rows.with_columns(pl.lit(rec.source).alias("source")), rec.seq
                )

        try:
            with sink.pipeline.wal_records([rec.seq], skip=skip, dead_letters=hold):
                sink.pipeline.absorb(batch, rec.size)
            sink.dead_letters.commit_if_full()
        except COMMIT_ERRORS as e:
            # The record's rows are buffered; a failed commit keeps them for the next one.
            self._note_commit_failure(e)
        self.metrics.batch.observe(time.perf_counter() - started)

    async def _flusher(self) -> None:
        """Commits every ``flush_interval_s``; while commits fail, retries at doubling
        intervals up to ``RETRY_MAX_S``."""
        delay = self.cfg.flush_interval_s
        while True:
            await asyncio.sleep(delay)
            if await self.flush():
                delay = self.cfg.flush_interval_s
            else:
                delay = min(delay * 2, max(RETRY_MAX_S, self.cfg.flush_interval_s))

    async def flush(self) -> bool:
        """Commits every buffered partition, then deletes log segments wholly committed.

        Returns whether everything buffered is committed; when a write fails the rows stay
        buffered and their log segments stay on disk."""
        loop = asyncio.get_running_loop()
        below = self._processed_below
        started = time.perf_counter()
        try:
            await loop.run_in_executor(self._pipe_pool, self._flush_pipeline)
        except COMMIT_ERRORS as e:
            self._note_commit_failure(e)
            return False
        finally:
            self.metrics.buffer_bytes.set(self._buffered_bytes())
        self.metrics.commit.observe(time.perf_counter() - started)
        if self.commit_failure is not None:
            log("info", "Commits resumed.", failed_attempts=self._commit_failures)
            self.commit_failure, self._commit_failures = None, 0
            self._resumed.set()
        try:
            await loop.run_in_executor(self._wal_pool, self._release_log, below)
        except OSError as e:
            # Everything is committed; the log keeps more than it needs until the next flush.
            log("warn", "Log segment rotation or release failed.", error=error_line(e))
        self.metrics.wal_bytes.set(self.wal.bytes)
        return True

    def _release_log(self, committed_below: int) -> None:
        """On the log thread: closes the open segment once it is ``WAL_SEGMENT_MAX_AGE_S``
        old, and deletes the segments whose records are all committed."""
        if self.wal.is_open and self.wal.open_age() >= WAL_SEGMENT_MAX_AGE_S:
            self.wal.open_segment(self.store._seq)
        self.wal.release(committed_below)

    def _note_commit_failure(self, error: BaseException) -> None:
        """Logs a failed commit (one line, the first of a run and then every tenth) and marks
        the server not ready until a commit succeeds."""
        drop_locals(error)
        self.commit_failure = error_line(error)
        self._commit_failures += 1
        if self._commit_failures % 10 == 1:
            log(
                "error",
                "Commit failed; the rows stay buffered and in the log until a retry commits them.",
                error=self.commit_failure,
                attempts=self._commit_failures,
            )

    def _commits_stalled(self) -> bool:
        """Whether decoding waits for a commit: commits fail and the buffers are full. Not
        while stopping: the queue is finite then, and its records are kept in the log."""
        full = self._buffered_bytes() > self.config.store.max_buffer_bytes
        return bool(self.commit_failure) and full and not self.stopping

    def _buffered_bytes(self) -> int:
        return self.pipeline.buffered_bytes + self.dead_letters.bytes

    def _flush_pipeline(self, sink: _Sink | None = None) -> None:
        sink = sink or self._own
        try:
            sink.pipeline.flush()
            sink.dead_letters.commit()
        finally:
            sink.seen.update(sink.pipeline, self.metrics)

    # ----- HTTP routes

    def _reject(self, reason: str) -> None:
        self.metrics.rejected_requests.labels(reason).inc()

    async def _route(self, req: Request) -> Response:
        response = await self._dispatch(req)
        self.metrics.requests.labels(_route_label(req.path), str(response.status)).inc()
        return response

    async def _dispatch(self, req: Request) -> Response:
        if req.path == "/healthz":
            return Response(200, b"ok\n")
        if req.path == "/readyz":
            ok = self.ready and not self.stopping and self.admits(1)
            ok = ok and not self.commit_failure and not self._wal_failures
            return Response(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
        if self.cfg.tokens and not self._authorized(req):
            self._reject("unauthorized")
            return Response(401, b"unauthorized\n", headers={"WWW-Authenticate": "Bearer"})
        if req.path == "/metrics" and req.method in ("GET", "HEAD"):
            self.metrics.connections.set(len(self._connections))
            return Response(200, self.metrics.render(), "text/plain; version=0.0.4")
        if req.path != "/v1/events" and req.path not in otlp.SIGNALS:
            self._reject("not_found")
            return Response(404, b"not found\n")
        if req.method != "POST":
            self._reject("method_not_allowed")
            return Response(405, b"use POST\n", headers={"Allow": "POST"})
        try:
            body = await self._decompress(req)
        except BodyError as e:
            self._reject(e.reason)
            return Response(e.status, f"{e.reason}\n".encode())
        if req.path == "/v1/events":
            return await self._events(req, body)
        return await self._otlp(req, body, otlp.SIGNALS[req.path])

    def _authorized(self, req: Request) -> bool:
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token in self.cfg.tokens

    def _refuse(self, status: int, reason: str, json_body: bool | None = None) -> Response:
        self._reject(reason)
        retry = {"Retry-After": str(self.cfg.retry_after_s)}
        if json_body is None:
            return Response(status, f"{reason}\n".encode(), headers=retry)
        body = otlp.error_status(14 if status == 503 else 8, reason, json=json_body)
        return Response(status, body, _otlp_type(json_body), headers=retry)

    async def _decompress(self, req: Request) -> bytes:
        encoding = req.headers.get("content-encoding", "identity").lower()
        if encoding in ("identity", ""):
            return req.body
        if encoding not in ("gzip", "x-gzip", "zstd"):
            raise BodyError(415, "unsupported_encoding")
        limit = self.cfg.max_body_bytes
        if len(req.body) < 64 << 10:
            return _inflate(req.body, encoding, limit)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._aux_pool, _inflate, req.body, encoding, limit)

    async def _events(self, req: Request, body: bytes) -> Response:
        ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in NDJSON_TYPES:
            self._reject("unsupported_content_type")
            return Response(415, b"send NDJSON (application/x-ndjson)\n")
        lines = count_events(body)
        if not body:
            return Response(200, b'{"accepted":0}', "application/json")
        if lines > self.cfg.max_request_events:
            self._reject("too_many_events")
            return Response(413, self._too_many().encode() + b"\n")
        if not self.admits(len(body)):
            return self._refuse(429, "overloaded")
        try:
            await self.submit("http", body, lines)
        except OSError:
            return self._refuse(503, "log_unavailable")
        self.metrics.received.labels("http").inc(lines)
        return Response(200, b'{"accepted":%d}' % lines, "application/json")

    def _too_many(self) -> str:
        return (
            f"more than {self.cfg.max_request_events} events in one request "
            "(serve.max_request_events): send them in several requests"
        )

    def _too_many_values(self, values: int) -> str:
        return (
            f"more than {values} attributes, array values, span events and links, exemplars, "
            f"quantiles or objects in one request (one per {otlp.VALUE_BYTES} bytes of "
            "serve.max_body_bytes): send fewer per request"
        )

    async def _otlp(self, req: Request, body: bytes, signal_: otlp.Signal) -> Response:
        ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/x-protobuf", "application/json"):
            self._reject("unsupported_content_type")
            return Response(415, b"send application/x-protobuf or application/json\n")
        as_json = ctype == "application/json"
        loop = asyncio.get_running_loop()
        cap = self.cfg.max_request_events
        # What a request's events may come to: their lines become one log record.
        expanded = OTLP_EXPANSION * self.cfg.max_body_bytes
        values = self.cfg.max_body_bytes // otlp.VALUE_BYTES

        def convert() -> otlp.Converted | None:
            # A record can take two or three bytes of the body and a hundred times that once
            # parsed: a body that could hold more records than allowed is counted first.
            if as_json:
                if otlp.count_json_records(body, cap) > cap:
                    return None
                if otlp.count_json_objects(body, values) > values:
                    raise otlp.OtlpTooMany(self._too_many_values(values))
                return otlp.convert(signal_, body, json=True, max_bytes=expanded)
            if len(body) > 2 * cap and otlp.count_records(signal_, body, cap) > cap:
                return None
            # So can an attribute, many of which fit in one record.
            if otlp.count_values(signal_, body, values) > values:
                raise otlp.OtlpTooMany(self._too_many_values(values))
            return otlp.convert(signal_, body, json=False, max_bytes=expanded)

        try:
            converted = await loop.run_in_executor(self._aux_pool, convert)
        except otlp.OtlpError as e:
            self._reject("bad_otlp")
            return Response(400, otlp.error_status(3, str(e), json=as_json), _otlp_type(as_json))
        except otlp.OtlpTooMany as e:
            self._reject("too_many_values")
            return Response(413, otlp.error_status(3, str(e), json=as_json), _otlp_type(as_json))
        except otlp.OtlpTooLarge as e:
            self._reject("too_large")
            return Response(413, otlp.error_status(3, str(e), json=as_json), _otlp_type(as_json))
        if converted is None or converted.accepted > cap:
            self._reject("too_many_events")
            status = otlp.error_status(3, self._too_many(), json=as_json)
            return Response(413, status, _otlp_type(as_json))
        if converted.rejected:
            self.metrics.rejected_events.labels("otlp_" + signal_.name).inc(converted.rejected)
        if converted.lines:
            if not self.admits(len(converted.lines)):
                return self._refuse(429, "overloaded", as_json)
            try:
                await self.submit("otlp." + signal_.name, converted.lines, converted.accepted)
            except OSError:
                return self._refuse(503, "log_unavailable", as_json)
            self.metrics.received.labels("otlp").inc(converted.accepted)
        body_out = otlp.response(signal_, converted, json=as_json)
        return Response(200, body_out, _otlp_type(as_json))

    # ----- running and stopping

    def request_stop(self) -> None:
        self._stop.set()

    async def serve_forever(self) -> bool:
        """Runs until asked to stop; returns ``True`` when everything was committed in time."""
        await self._stop.wait()
        log("info", "Stopping.", deadline_s=self.cfg.shutdown_deadline_s)
        try:
            return await asyncio.wait_for(self.shutdown(), self.cfg.shutdown_deadline_s)
        except TimeoutError:
            log(
                "error",
                "Shutdown deadline passed; the log keeps what was not committed.",
                commit_failure=self.commit_failure,
            )
            return False

    async def shutdown(self) -> bool:
        """Stops accepting, finishes requests in hand, drains the queue and commits it all.

        Returns whether everything was committed. Only then is the log deleted; otherwise it
        is kept, and the next start replays it."""
        self.stopping = True
        self._resumed.set()
        for srv in self._servers:
            srv.close()
        for conn in list(self._connections):
            conn.close_when_idle()
        await self._requests_arrive()
        while any(c.busy for c in self._connections) or self._pending or self._queue:
            await asyncio.sleep(0.01)
        while self.queue_bytes > 0:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        loop = asyncio.get_running_loop()
        if not await self.flush():
            return await self._stop_uncommitted()
        # Everything logged is decoded and committed now, so nothing is left to replay.
        await loop.run_in_executor(self._wal_pool, self.wal.remove)
        summary = await loop.run_in_executor(self._pipe_pool, self.pipeline.close)
        self._shutdown_pools()
        log("info", "Stopped.", events_written=summary.events_written, files=summary.files)
        return True

    async def _requests_arrive(self) -> None:
        """Waits up to ``SHUTDOWN_GRACE_S`` (half the shutdown deadline at most) for the HTTP
        requests that had begun to arrive; the ones still arriving then are answered 503.
        No other request begins: idle connections are closed, the others close after their
        answer."""
        grace = min(SHUTDOWN_GRACE_S, self.cfg.shutdown_deadline_s / 2)
        until = time.monotonic() + grace
        arriving = [c for c in self._connections if isinstance(c, HttpProtocol)]
        while time.monotonic() < until and any(c.in_hand and not c.busy for c in arriving):
            await asyncio.sleep(0.01)
        for conn in arriving:
            conn.cut_short()

    async def _stop_uncommitted(self) -> bool:
        """Stops with rows not committed: the log is closed, not deleted, so the next start
        replays what it holds; the buffered rows are dropped. Returns ``False``."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._wal_pool, self.wal.close)
        except OSError as e:
            log("error", "Closing the log failed.", error=error_line(e))
        await loop.run_in_executor(self._pipe_pool, self.pipeline.abort)
        self._shutdown_pools()
        log(
            "error",
            "Stopped with rows not committed; the log is kept and the next start replays it.",
            error=self.commit_failure,
            wal=str(self.wal.dir),
            events_written=self.pipeline.summary.events_written,
        )
        return False

    def _shutdown_pools(self) -> None:
        for pool in (self._wal_pool, self._pipe_pool, self._decode_pool, self._aux_pool):
            pool.shutdown(wait=True)


class TcpProtocol(asyncio.Protocol):
    """Newline-delimited JSON; each chunk of whole lines is answered ``ok <lines>`` once logged.

    When the queue is full the server stops reading this socket until it drains. A connection
    that sends nothing for ``idle_timeout_s`` with nothing in hand is closed, and so is one
    whose line has been arriving for longer than ``request_timeout_s`` (that line is dropped).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.buf = bytearray()
        self.skipping = False
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.paused = False
        self.write_paused = False
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task | None = None
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if len(self.server._connections) >= self.server.cfg.max_connections:
            self.server._reject("too_many_connections")
            transport.close()
            return
        self.busy = False
        self.server._connections.add(self)
        loop = asyncio.get_running_loop()
        self.task = loop.create_task(self._consume())
        self._active, self._line_since = time.monotonic(), None
        self._idle = loop.call_later(self.server.cfg.idle_timeout_s, self._on_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        if self._idle:
            self._idle.cancel()
        if self.buf and not self.skipping:
            self.chunks.put_nowait(bytes(self.buf) + b"\n")
        self.chunks.put_nowait(b"")

    def eof_received(self) -> bool:
        """The client has sent all it will (a half-close): the rest is a last line, and the
        connection stays open until every chunk is answered."""
        if self.buf and not self.skipping:
            self.chunks.put_nowait(bytes(self.buf) + b"\n")
        self.buf.clear()
        self.chunks.put_nowait(b"")
        return True

    def close_when_idle(self) -> None:
        if self.transport and not self.busy and self.chunks.empty():
            self.transport.close()

    def _on_idle(self) -> None:
        """Closes the connection once it has sent nothing for ``idle_timeout_s`` and nothing
        of it is in hand: not a chunk waiting or being logged, nor reading paused for a full
        queue (a client that does not read its answers is idle, though)."""
        t, timeout = self.transport, self.server.cfg.idle_timeout_s
        if t is None or t.is_closing():
            return
        quiet = time.monotonic() - self._active
        held = self.busy or not self.chunks.empty() or self.paused
        if quiet >= timeout and not held:
            self._close_dropping_line()
            return
        delay = timeout - quiet if quiet < timeout else timeout
        self._idle = asyncio.get_running_loop().call_later(delay, self._on_idle)

    def _close_dropping_line(self) -> None:
        """Closes; an unfinished line was never acknowledged and is not taken as a last line."""
        self.buf.clear()
        self.skipping = True
        self.transport.close()  # type: ignore[union-attr]

    def _line_deadline(self, ended: bool) -> bool:
        """Times the line in progress; ``False`` (and the connection closed) when it has been
        arriving for longer than ``request_timeout_s``."""
        now = time.monotonic()
        self._active = now
        if not (self.buf or self.skipping):
            self._line_since = None
        elif ended or self._line_since is None:
            self._line_since = now
        elif now - self._line_since > self.server.cfg.request_timeout_s:
            self.server._reject("request_timeout")
            self._close_dropping_line()
            return False
        return True

    def data_received(self, data: bytes) -> None:
        limit = self.server.config.input.max_line_bytes
        skipped = False
        if self.skipping:
            end = data.find(b"\n")
            if end < 0:
                self._line_deadline(False)
                return
            data, self.skipping, skipped = data[end + 1 :], False, True
        self.buf += data
        cut = self.buf.rfind(b"\n")
        if cut >= 0:
            self.chunks.put_nowait(bytes(self.buf[: cut + 1]))
            del self.buf[: cut + 1]
        if len(self.buf) > limit:
            self.server._reject("line_too_long")
            self.buf.clear()
            self.skipping = True
        if not self._line_deadline(skipped or cut >= 0):
            return
        if self.chunks.qsize() > 8 and not self.paused:
            self.paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def pause_writing(self) -> None:
        """Answers not yet sent passed the write buffer's high mark: the client is not read
        from until it reads them."""
        self.write_paused = True
        self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.paused and self.transport and not self.transport.is_closing():
            self.transport.resume_reading()

    async def _consume(self) -> None:
        while chunk := await self.chunks.get():
            self.busy = True
            while not self.server.admits(len(chunk)):
                self.server._reject("overloaded")
                await asyncio.sleep(0.05)
            lines = count_events(chunk)
            try:
                await self.server.submit("tcp", chunk, lines)
            except OSError:
                self.transport.close()  # type: ignore[union-attr]
                return
            self.server.metrics.received.labels("tcp").inc(lines)
            if self.transport and not self.transport.is_closing():
                self.transport.write(b"ok %d\n" % lines)
            self.busy = False
            if self.paused and self.chunks.qsize() <= 2 and self.transport:
                self.paused = False
                if not self.write_paused:
                    self.transport.resume_reading()
            if self.server.stopping and self.chunks.empty():
                self.close_when_idle()
        # The end of the input: after a half-close the answers are all written by now.
        if self.transport and not self.transport.is_closing():
            self.transport.close()


class _DeadLetters:
    """Dead letters of log records, buffered and committed like events.

    Each row carries its record's number, and all of one record's rows go into one atomically
    committed file, so a replay knows which records' dead letters are already stored.
    """

    def __init__(self, store: Store, limit_bytes: int) -> None:
        self.store, self.limit = store, limit_bytes
        self.frames: list[pl.DataFrame] = []
        self.bytes = 0

    def add(self, frame: pl.DataFrame, seq: int) -> None:
        self.frames.append(frame.with_columns(pl.lit(seq, pl.Int64).alias(WAL_RECORD_FIELD)))
        self.bytes += frame.estimated_size()

    def commit_if_full(self) -> None:
        if self.bytes >= self.limit:
            self.commit()

    def commit(self) -> None:
        """Commits what is buffered; a failed write raises and keeps it buffered."""
        if not self.frames:
            return
        frame = pl.concat(self.frames) if len(self.frames) > 1 else self.frames[0]
        self.store.write_dead_letters(frame, time.strftime("%Y-%m-%d", time.gmtime()))
        self.frames, self.bytes = [], 0


class _SummarySeen:
    """Turns the pipeline summary's running totals into counter increments."""

    def __init__(self) -> None:
        self.written = 0
        self.dead: dict[str, int] = {}
        self.sampled: dict[str, int] = {}
        self.redactions: dict[str, int] = {}

    def update(self, pipeline: Pipeline, m: Metrics) -> None:
        s = pipeline.summary
        m.written.inc(s.events_written - self.written)
        self.written = s.events_written
        for counter, seen, now in (
            (m.dead_lettered, self.dead, s.dead_letters),
            (m.sampled_out, self.sampled, s.sampled_out),
            (m.redactions, self.redactions, s.redactions),
        ):
            for label, n in now.items():
                if n > seen.get(label, 0):
                    counter.labels(label).inc(n - seen.get(label, 0))
                    seen[label] = n


@dataclass(slots=True)
class _Sink:
    """Where one writer's log records go: its pipeline (its files) and its dead letters."""

    pipeline: Pipeline
    dead_letters: _DeadLetters
    #: The pipeline's totals already counted in the metrics.
    seen: _SummarySeen = field(default_factory=_SummarySeen)


def _pieces(parts: tuple[bytes, ...], threads: int) -> list[bytes]:
    """A record's parts as pieces of about ``PIECE_BYTES`` or more for the decode threads.

    Small parts are joined; when that leaves fewer pieces than threads, each large piece is cut
    at line ends, one cut per thread. Every part ends in a newline, so pieces hold whole lines.
    """
    pieces: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for part in parts:
        group.append(part)
        size += len(part)
        if size >= PIECE_BYTES:
            pieces.append(group[0] if len(group) == 1 else b"".join(group))
            group, size = [], 0
    if group:
        pieces.append(group[0] if len(group) == 1 else b"".join(group))
    if len(pieces) >= threads:
        return pieces
    return [cut for piece in pieces for cut in _cut(piece, min(threads, len(piece) // PIECE_BYTES))]


def _cut(data: bytes, n: int) -> list[bytes]:
    """``data`` in up to ``n`` pieces of about equal size, each ending at a line end."""
    if n <= 1:
        return [data]
    cuts = [0]
    for i in range(1, n):
        cut = data.find(b"\n", max(cuts[-1], len(data) * i // n)) + 1
        if cut <= 0:
            break
        cuts.append(cut)
    cuts.append(len(data))
    return [data[lo:hi] for lo, hi in itertools.pairwise(cuts) if hi > lo]


def count_lines(data: bytes) -> int:
    """The newlines in ``data``, counted the fastest way for its line length.

    ``bytes.count`` tests byte by byte; deleting the newlines jumps between them with
    ``memchr`` and copies the rest, several times faster once lines pass ~32 bytes (a 540 KB
    body of 270-byte lines: 80 µs instead of 380 µs). The first 4 KiB tell which case it is.
    """
    if data.count(b"\n", 0, 4096) > 128:
        return data.count(b"\n")
    return len(data) - len(data.replace(b"\n", b""))


#: A line after the first that starts with ASCII whitespace, the only kind that can be blank.
_MAYBE_BLANK = re.compile(rb"\n[ \t\r\x0c\n]")
_WHITESPACE = b" \t\r\x0c"


def count_events(data: bytes) -> int:
    """The lines of ``data`` that are not blank (all ASCII whitespace, which the decoder
    skips), a last one without a newline included: what an answer says was accepted.

    Lines are counted at memchr speed; only a body with a line starting in whitespace is
    split to tell the blank ones. The check for one costs about 0.05 µs a line.
    """
    if not data:
        return 0
    lines = count_lines(data) + (0 if data.endswith(b"\n") else 1)
    if data[:1] not in _WHITESPACE + b"\n" and not _MAYBE_BLANK.search(data):
        return lines
    pieces = data.split(b"\n")
    if data.endswith(b"\n"):
        pieces.pop()
    return lines - sum(1 for piece in pieces if not piece.strip(_WHITESPACE))


def _merge(batches: list[Batch]) -> Batch:
    """One record's pieces as one batch; dead-letter line numbers count from the record's start."""
    if len(batches) == 1:
        return batches[0]
    dead, offset = [], 0
    for b in batches:
        if b.dead_letters.height:
            dead.append(b.dead_letters.with_columns(pl.col("line") + offset))
        offset += b.lines
    return Batch(
        events=pl.concat([b.events for b in batches], rechunk=False),
        dead_letters=pl.concat(dead) if dead else batches[0].dead_letters,
        lines=offset,
        blank_lines=sum(b.blank_lines for b in batches),
        unparsed=sum(b.unparsed for b in batches),
        redactions=_sum(b.redactions for b in batches),
        sampled_out=_sum(b.sampled_out for b in batches),
    )


def _sum(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, n in c.items():
            out[k] = out.get(k, 0) + n
    return out


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Decompresses at most ``limit`` bytes; more is a 413, broken input a 400. The readers
    of compressed files do it: every gzip member and zstd frame is read, a cut-off last one
    or bytes after the last that start no other are an error, and no read is unbounded."""
    bad = f"bad_{'zstd' if encoding == 'zstd' else 'gzip'}"
    if not body:
        raise BodyError(400, bad)  # no member or frame at all
    reader = ZstdReader if encoding == "zstd" else GzipReader
    stream = reader(io.BytesIO(body), b"")
    parts: list[bytes] = []
    size = 0
    try:
        while size <= limit and (part := stream.read(limit + 1 - size)):
            parts.append(part)
            size += len(part)
    except (zlib.error, zstandard.ZstdError, EOFError):
        raise BodyError(400, bad) from None
    if size > limit:
        raise BodyError(413, "body_too_large")
    return b"".join(parts)


def _redactor_of_bytes(config: Config) -> Callable[[bytes], bytes]:
    """Raw bytes redacted with the configured rules, as text read byte for byte (Latin-1),
    so that bytes that are not UTF-8 come back unchanged."""
    redactor = Redactor(config.redaction)

    def scrub(data: bytes) -> bytes:
        return redactor.redact(data.decode("latin-1")).encode("latin-1", "replace")

    return scrub


def _otlp_type(as_json: bool) -> str:
    return "application/json" if as_json else "application/x-protobuf"


def _route_label(path: str) -> str:
    known = {"/v1/events", "/healthz", "/readyz", "/metrics", *otlp.SIGNALS}
    return path if path in known else "other"


def _tls_context(cfg: ServeConfig) -> ssl.SSLContext | None:
    """The server's TLS context, or None without ``tls_cert`` and ``tls_key``. One that cannot
    be loaded (a missing file, a key that does not match, a key under a passphrase, which is
    not asked for) is a configuration error naming both files."""
    if not (cfg.tls_cert and cfg.tls_key):
        return None
    _check_regular_file("serve.tls_cert", cfg.tls_cert)
    _check_regular_file("serve.tls_key", cfg.tls_key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key, password=_no_passphrase)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"serve.tls_cert {cfg.tls_cert!r} and serve.tls_key {cfg.tls_key!r} cannot be "
            f"loaded: {error_line(e)}"
        ) from None
    return ctx


def _check_regular_file(setting: str, path: str) -> None:
    """Refuses a path that is not a regular file (or a link to one) before it is opened: a FIFO
    would block the start until something writes to it, and a device may never end."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # loading names the file and the reason
    # Limitation: a file swapped for a FIFO between this check and the load is still opened.
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{setting} {path!r} is not a regular file")


def _no_passphrase() -> bytes:
    raise ValueError("the key is under a passphrase; give it unencrypted")


def run(data_dir: str | Path, config: Config) -> int:
    """Runs the sidecar on uvloop until SIGTERM/SIGINT; the exit code."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run

    async def main() -> int:
        server = Server(data_dir, config)
        try:
            ports = await server.start()
        except BindError as e:
            # What was replayed is committed; the log is closed as on a normal stop.
            await server.shutdown()
            print(redact_message(f"qlingest: error: {e}"), file=sys.stderr, flush=True)
            return 1
        print(json.dumps({"listening": ports, "host": config.serve.host}), flush=True)
        return 0 if await server.serve_forever() else 1

    return runner(main())
