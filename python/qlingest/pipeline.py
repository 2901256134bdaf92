"""The batch pipeline: bytes to frames in the Rust core, frames to committed Parquet."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec
import polars as pl
import zstandard

from qlingest import _core
from qlingest.audit import ChainWriter, audit_key
from qlingest.config import Config, load_config, policy_json
from qlingest.exceptions import InputError, PipelineClosedError, drop_locals, error_line
from qlingest.redact import redact_message
from qlingest.source import Chunk, Interrupted, Stop, open_input, path_text, read_chunks
from qlingest.store import LEVEL_ENUM, Store, category_problem, sorted_by_time

__all__ = ["Batch", "Pipeline", "Summary"]

log = logging.getLogger("qlingest")

#: A store partition: category, UTC date and hour, as they appear in the directory names.
PartitionKey = tuple[str, str, str]
#: A file of rows without audit records: its partition, rows and the WAL records they hold.
PlainFile = tuple[PartitionKey, pl.DataFrame, frozenset[int]]
#: What reading an input can raise: an unreadable file, a truncated or corrupt stream.
READ_ERRORS = (OSError, EOFError, zlib.error, zstandard.ZstdError)
Format = Literal["auto", "ndjson", "text"]


@dataclass
class Batch:
    """One decoded batch: events, dead letters, and how many input lines it covered."""

    events: pl.DataFrame
    dead_letters: pl.DataFrame
    lines: int
    blank_lines: int
    unparsed: int
    redactions: dict[str, int]
    sampled_out: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    #: Events whose trace id was present but unusable as randomness (all zeros, too short).
    fallback_hashes: int = 0
    #: The store partition and row count of each run of ``events``, in order, when known.
    parts: list[tuple[PartitionKey, int]] | None = None


@dataclass
class Summary:
    """What an ingest did, for people and for machines."""

    events_read: int = 0
    events_written: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    unparsed_lines: int = 0
    redactions: Counter[str] = field(default_factory=Counter)
    sampled_out: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    #: Events sampled on a hash of the event because their trace id carried no randomness.
    sampling_fallback_hashes: int = 0
    bytes_in: int = 0
    bytes_on_disk: int = 0
    files: int = 0
    elapsed_s: float = 0.0
    #: Inputs that could not be read to their end (their earlier lines are counted above).
    inputs_failed: list[str] = field(default_factory=list)
    #: Why reading stopped before the end of its input (a signal's name), if it did.
    interrupted: str | None = None

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())

    @property
    def events_per_s(self) -> float:
        return self.events_read / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def compression_ratio(self) -> float:
        return self.bytes_in / self.bytes_on_disk if self.bytes_on_disk else 0.0

    def as_dict(self) -> dict:
        return {
            "events_read": self.events_read,
            "events_written": self.events_written,
            "dead_lettered": self.dead_lettered,
            "dead_letters_by_reason": dict(self.dead_letters),
            "unparsed_lines": self.unparsed_lines,
            "redactions_by_rule": dict(self.redactions),
            "sampled_out_by_rule": dict(self.sampled_out),
            "kept_by_rule": dict(self.kept),
            "sampling_fallback_hashes": self.sampling_fallback_hashes,
            "bytes_in": self.bytes_in,
            "bytes_on_disk": self.bytes_on_disk,
            "files": self.files,
            "inputs_failed": list(self.inputs_failed),
            "interrupted": self.interrupted,
            "compression_ratio": round(self.compression_ratio, 2),
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.events_per_s),
        }


def _events_frame(arrow: object) -> pl.DataFrame:
    frame = pl.DataFrame(arrow)
    # The core marks `level` as this Enum; a Polars that reads the mark otherwise gets a
    # Categorical, cast here.
    if frame.schema["level"] != LEVEL_ENUM:
        frame = frame.with_columns(pl.col("level").cast(LEVEL_ENUM))
    return frame


def _locked(method):
    """Runs ``method`` holding the pipeline's lock. In a child forked from the process that
    built the pipeline the lock is not taken: another thread of the parent may have held it
    at the fork, and the child commits nothing anyway."""

    @functools.wraps(method)
    def locked(self: Pipeline, *args, **kwargs):
        if self.store is not None and self.store.forked:
            return method(self, *args, **kwargs)
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class Pipeline:
    """Decodes, transforms and stores events. Build once, feed many batches, then ``close``.

    Without a ``data_dir`` the pipeline only decodes: ``decode`` returns frames to the caller.
    """

    def __init__(self, data_dir: str | Path | None = None, config: Config | None = None) -> None:
        self.config = config or load_config()
        # Buffering and committing take turns across threads; decoding runs beside them.
        self._lock = threading.RLock()
        self._engines: dict[str, _core.Engine] = {}
        self.store = Store(data_dir, self.config.store) if data_dir is not None else None
        self.summary = Summary()
        self._buffers: dict[tuple[str, str, str], list[pl.DataFrame]] = {}
        self._buffer_sizes: dict[tuple[str, str, str], int] = {}
        self._buffer_wal: dict[tuple[str, str, str], set[int]] = {}
        #: When each buffered partition received its oldest row (``time.monotonic``).
        self._buffer_since: dict[tuple[str, str, str], float] = {}
        # Plain files being written behind the caller, oldest first; their rows count as
        # buffered until the write is reaped, and go back to the buffers if it failed.
        self._behind: deque[tuple[Future[list[Path]], list[PlainFile], int]] = deque()
        self._category_checked: dict[str, str | None] = {}
        self._sampling_names: list[str] | None = None
        self._source = "-"
        #: Set by ``close`` and ``abort``: the writer id may be another pipeline's from then on.
        self._closed = False
        try:
            self._audit = self._chain_writer() if self.store is not None else None
        except BaseException:
            # A refused start (a wrong audit key) must not keep the writer id taken.
            if self.store is not None:
                self.store.close()
            raise
        self._started = time.perf_counter()

    def _chain_writer(self) -> ChainWriter:
        assert self.store is not None
        cfg = self.config.audit
        key = audit_key(cfg.key)
        if key is None:
            _warn_once(
                "No audit key: audit records are chained but unsealed, so a rewritten chain or a "
                "cut-off tail cannot be detected. Set QLINGEST_AUDIT_KEY or audit.key."
            )
        select = {"categories": cfg.categories, "rules": cfg.rules}
        return ChainWriter(self.store.root, self.store.writer, config_json=_json(select), key=key)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            # After a failure nothing more is committed: what is buffered was never
            # acknowledged, and a second failure would only hide the first.
            self.abort()

    def _check_open(self) -> None:
        """Raises :class:`PipelineClosedError` once ``close`` or ``abort`` has run."""
        if self._closed:
            raise PipelineClosedError()

    @_locked
    def abort(self) -> None:
        """Drops what is buffered and releases the writer id; the pipeline is closed after."""
        self._closed = True
        # Files being written are let finish, so the store is not closed under them; in a
        # forked child their threads stayed in the parent.
        if self.store is None or not self.store.forked:
            wait([job for job, _, _ in self._behind])
        self._behind.clear()
        self._buffers.clear()
        self._buffer_sizes.clear()
        self._buffer_wal.clear()
        self._buffer_since.clear()
        if self.store is not None:
            self.store.close()

    def _engine(self, fmt: str) -> _core.Engine:
        if fmt not in self._engines:
            section = self.config.input
            if fmt != section.format:
                section = msgspec.structs.replace(section, format=fmt)
            sampling = policy_json(self.config.sampling)
            redaction = self.config.redaction.core_json()
            engine = _core.Engine(
                section.core_json(), redaction_json=redaction, sampling_json=sampling
            )
            if engine.hash_fallback:
                _warn_once("No hash key: keyed-hash rules mask instead. Set QLINGEST_HASH_KEY.")
            self._engines[fmt] = engine
        return self._engines[fmt]

    def _rule_names(self, engine: _core.Engine) -> list[str]:
        """Sampling rule names as the summary shows them: through redaction, as a name is
        written by whoever wrote the policy and ends up on a terminal. Every engine runs the
        one policy of the configuration, so the names are worked out once."""
        if self._sampling_names is None:
            self._sampling_names = [redact_message(name) for name in engine.sampling_rules]
        return self._sampling_names

    def decode(
        self,
        data: bytes | memoryview,
        *,
        source: str = "-",
        first_line: int = 1,
        format: Format | None = None,
        observed_ns: int | None = None,
    ) -> Batch:
        """Decodes, redacts and samples whole lines of ``data`` into an event frame and a
        dead-letter frame."""
        self._check_open()
        if self.store is not None:
            self.store.check_process()
        fmt = format if format and format != "auto" else self.config.input.format
        engine = self._engine(fmt)
        observed_ns = self._observed_ns if observed_ns is None else observed_ns
        observed = observed_ns or time.time_ns()
        result = engine.process(data, source=source, first_line=first_line, observed_ns=observed)
        return Batch(
            events=_events_frame(result.events),
            dead_letters=pl.DataFrame(result.dead_letters),
            lines=result.lines,
            blank_lines=result.blank_lines,
            unparsed=result.unparsed,
            redactions=_named(engine.redaction_rules, result.redactions),
            sampled_out=_named(self._rule_names(engine), result.sampled_out),
            kept=_named(self._rule_names(engine), result.kept),
            fallback_hashes=result.fallback_hashes,
            parts=[(_partition_key(c, h), n) for c, h, n in result.partitions],
        )

    def process(
        self, data: bytes, *, source: str = "-", first_line: int = 1, format: Format | None = None
    ) -> Batch:
        """Decodes ``data`` and hands the result to the store; returns the batch."""
        batch = self.decode(data, source=source, first_line=first_line, format=format)
        self._source = source
        self.absorb(batch, len(data))
        return batch

    @_locked
    def absorb(self, batch: Batch, input_bytes: int) -> None:
        """Counts a decoded batch, commits its dead letters and buffers its events."""
        self._check_open()
        s = self.summary
        s.bytes_in += input_bytes
        s.events_read += batch.lines - batch.blank_lines
        s.unparsed_lines += batch.unparsed
        s.redactions.update(batch.redactions)
        s.sampled_out.update(batch.sampled_out)
        s.kept.update(batch.kept)
        s.sampling_fallback_hashes += batch.fallback_hashes
        if batch.dead_letters.height:
            s.dead_letters.update(batch.dead_letters["reason"].to_list())
            if self.store is not None:
                date = time.strftime("%Y-%m-%d", time.gmtime())
                self.store.write_dead_letters(batch.dead_letters, date)
        self.write(batch.events, batch.parts)

    #: Called after each commit with the partition key and the WAL records its file holds.
    on_commit: Callable[[tuple[str, str, str], frozenset[int]], None] | None = None
    # Set by ``wal_records`` for the duration of one replayed or served WAL record.
    _wal_tag: frozenset[int] = frozenset()
    _wal_skip: frozenset[tuple[str, str, str]] = frozenset()
    _wal_dead: Callable[[pl.DataFrame], None] | None = None
    _observed_ns: int | None = None

    @contextmanager
    def wal_records(
        self,
        seqs: Iterable[int],
        *,
        observed_ns: int | None = None,
        skip: Iterable[tuple[str, str, str]] = (),
        dead_letters: Callable[[pl.DataFrame], None] | None = None,
    ) -> Iterator[None]:
        """Tags what is decoded and written inside the block with WAL record numbers.

        Each committed file lists the records whose rows it holds; partitions in ``skip`` are
        already committed for these records (a replay after a crash) and are left out. Rows
        dead-lettered while buffering (``bad_category``) go to ``dead_letters`` when given,
        instead of to the store: the caller commits them with the records' other dead
        letters, tagged, so that a replay writes them once.
        """
        self._wal_tag, self._wal_skip = frozenset(seqs), frozenset(skip)
        self._observed_ns, self._wal_dead = observed_ns, dead_letters
        try:
            yield
        finally:
            self._wal_tag, self._wal_skip, self._observed_ns = frozenset(), frozenset(), None
            self._wal_dead = None

    @_locked
    def write(
        self, events: pl.DataFrame, parts: list[tuple[PartitionKey, int]] | None = None
    ) -> None:
        """Buffers events by partition; full partitions are committed. ``parts`` names the
        partition of each run of rows, as the core splits them; without it the frame is split
        here."""
        self._check_open()
        if events.height == 0 or self.store is None:
            return
        self.store.check_process()
        cfg = self.config.store
        # Files written behind since the last call are counted first; a failed one has put
        # its rows back and its error is raised once this frame is buffered too.
        failure: Exception | None = self._reap()
        for key, part in _runs(events, parts) if parts is not None else _split(events):
            if key in self._wal_skip:
                continue
            if problem := self._category_problem(key[0]):
                try:
                    self._dead_letter_rows(part, "bad_category", problem)
                except Exception as e:
                    failure = failure or e
                continue
            self._buffers.setdefault(key, []).append(part)
            self._buffer_since.setdefault(key, time.monotonic())
            if self._wal_tag:
                self._buffer_wal.setdefault(key, set()).update(self._wal_tag)
            self._buffer_sizes[key] = self._buffer_sizes.get(key, 0) + memory_size(part)
            if failure is not None:
                continue
            try:
                if self._buffer_sizes[key] >= cfg.target_file_bytes:
                    self._commit([key], behind=True)
                elif len(self._buffers) > cfg.max_buffered_partitions:
                    # Dicts keep insertion order: the partitions started longest ago go first,
                    # together, in one write on the committer and its writer pool.
                    excess = len(self._buffers) - cfg.max_buffered_partitions // 2
                    self._commit(list(self._buffers)[:excess], behind=True)
            except Exception as e:
                # A failed commit keeps its rows buffered; the rest of the frame is buffered
                # too before the error is raised, so the caller loses nothing of it.
                failure = e
        if failure is not None:
            raise failure
        if self.buffered_bytes > cfg.max_buffer_bytes:
            if failure := self._reap(block=True):
                raise failure
            while self._buffer_sizes and self.buffered_bytes > cfg.max_buffer_bytes:
                self._commit([max(self._buffer_sizes, key=self._buffer_sizes.__getitem__)])

    def _category_problem(self, category: str) -> str | None:
        if category not in self._category_checked:
            self._category_checked[category] = category_problem(category)
        return self._category_checked[category]

    def _dead_letter_rows(self, rows: pl.DataFrame, reason: str, detail: str) -> None:
        """Dead-letters decoded rows; their raw line is gone by now, so ``raw`` holds the
        event as JSON and ``line`` is 0."""
        assert self.store is not None
        raw = rows.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%.9fZ"))
        frame = pl.DataFrame(
            {
                "source": [self._source] * rows.height,
                "line": pl.Series([0] * rows.height, dtype=pl.UInt64),
                "reason": [reason] * rows.height,
                "detail": [detail] * rows.height,
                "raw": raw.write_ndjson().splitlines(),
            }
        )
        if self._wal_dead is not None:
            # The caller counts them, once, as it counts the records' other dead letters.
            return self._wal_dead(frame)
        self.summary.dead_letters[reason] += rows.height
        self.store.write_dead_letters(frame, time.strftime("%Y-%m-%d", time.gmtime()))

    #: A file whose rows are chained already, with its path once written: it is committed
    #: (and checkpointed) before anything else is chained, so a failed write leaves no gap.
    _chained: tuple[PartitionKey, pl.DataFrame, frozenset[int], Path | None] | None = None

    def _commit(self, keys: list[PartitionKey], *, behind: bool = False) -> None:
        """Commits buffered partitions. Files with audit rows are committed one at a time, in
        chain order, each followed by its checkpoint; the others are committed together, on
        the store's committer thread while audit rows are chained here.

        Rows leave the buffers only once their file is committed: when a write fails (a full
        disk) the error is raised and the rows stay for the next commit to write. With
        ``behind`` the plain files are left to finish behind the caller (a later call counts
        them, or raises their error with their rows buffered again)."""
        assert self.store is not None and self._audit is not None
        # Limitation: the store raises too when only the sync after its renames fails, with
        # the files in place; their rows then stay buffered and are stored a second time.
        self._commit_chained()
        plain: list[PlainFile] = []
        audit: list[PartitionKey] = []
        for key in keys:
            if self._may_audit(key[0]):
                audit.append(key)
            else:
                plain.append(self._take(key))
        # Rows handed over all at once take no more memory than they did buffered: a commit
        # that waits for its files keeps both cores writing rather than one file at a time.
        self._write_behind(plain, wait=behind)
        try:
            for key in audit:
                _, frame, wal = self._buffered(key)
                # The chain follows the file's row order; other files are sorted as written.
                frame, audited = self._audit.chain(sorted_by_time(frame))
                self._unbuffer(key)
                if audited:
                    # Chained rows are held as chained from here, and committed before
                    # anything else is chained.
                    self._chained = (key, frame, wal, None)
                    self._commit_chained()
                else:
                    plain.append((key, frame, wal))
        except BaseException:
            # Partitions that turned out to hold no audit rows go back until a later commit.
            self._rebuffer(plain)
            raise
        self._write_behind(plain, wait=behind)
        if not behind and (failure := self._reap(block=True)):
            raise failure

    def _buffered(self, key: PartitionKey) -> PlainFile:
        """The rows of a buffered partition as one frame, with their WAL records; the
        partition stays buffered."""
        frames = self._buffers[key]
        frame = pl.concat(frames, rechunk=False) if len(frames) > 1 else frames[0]
        return key, frame, frozenset(self._buffer_wal.get(key, ()))

    def _take(self, key: PartitionKey) -> PlainFile:
        """The rows of a buffered partition as one file, out of the buffers."""
        file = self._buffered(key)
        self._unbuffer(key)
        return file

    def _write_behind(self, plain: list[PlainFile], *, wait: bool = True) -> None:
        """Hands files without audit rows to the store's committer, and empties ``plain``.
        At most two such writes are in flight: with ``wait`` a third waits for the oldest."""
        assert self.store is not None
        if not plain:
            return
        while wait and len(self._behind) >= 2:
            if failure := self._reap(block=True, only_oldest=True):
                self._rebuffer(plain)
                plain.clear()
                raise failure
        size = sum(memory_size(frame) for _, frame, _ in plain)
        self._behind.append((self.store.write_partitions_behind(list(plain)), list(plain), size))
        plain.clear()

    def _reap(self, *, block: bool = False, only_oldest: bool = False) -> Exception | None:
        """Counts the files written behind that are done (all of them with ``block``). The rows
        of a failed write go back to the buffers, and its error is returned once every write
        in flight has ended, so no other failure follows it later."""
        failure: Exception | None = None
        while self._behind and (block or failure or self._behind[0][0].done()):
            job, files, _ = self._behind.popleft()
            try:
                job.result()
            except Exception as e:
                drop_locals(e)
                failure = failure or e
                self._rebuffer(files)
            else:
                for key, frame, wal in files:
                    self._committed(key, frame.height, wal)
            if only_oldest and not failure:
                break
        return failure

    def _commit_chained(self) -> None:
        """Commits the file of chained rows, if one is held, then records its checkpoint."""
        assert self.store is not None and self._audit is not None
        if self._chained is None:
            return
        key, frame, wal, path = self._chained
        if path is None:
            path = self.store.write_partition(*key, frame, wal_records=wal)
            self._chained = (key, frame, wal, path)
            self._committed(key, frame.height, wal)
        self._audit.committed(path)
        self._chained = None

    def _rebuffer(self, files: list[PlainFile]) -> None:
        """Puts the rows of files not written back in the buffers, ahead of later rows."""
        for key, frame, wal in files:
            self._buffers.setdefault(key, []).insert(0, frame)
            self._buffer_since.setdefault(key, time.monotonic())
            self._buffer_sizes[key] = self._buffer_sizes.get(key, 0) + memory_size(frame)
            if wal:
                self._buffer_wal.setdefault(key, set()).update(wal)

    def _unbuffer(self, key: PartitionKey) -> None:
        del self._buffers[key], self._buffer_sizes[key], self._buffer_since[key]
        self._buffer_wal.pop(key, None)

    def _may_audit(self, category: str) -> bool:
        """Whether rows of ``category`` can be audit records; the chain leaves others as they
        are, so they skip it (its cost per file counts when partitions are many and small)."""
        cfg = self.config.audit
        return bool(cfg.rules) or category in cfg.categories

    def _committed(self, key: PartitionKey, rows: int, wal: frozenset[int]) -> None:
        self.summary.events_written += rows
        if self.on_commit is not None:
            self.on_commit(key, wal)

    @property
    @_locked
    def buffered_partitions(self) -> int:
        """Partitions gathering rows (files being written are not counted)."""
        return len(self._buffers)

    @property
    @_locked
    def buffered_rows(self) -> int:
        """Events not yet committed: gathering, chained, or in files being written."""
        held = sum(frame.height for frames in self._buffers.values() for frame in frames)
        held += sum(frame.height for _, files, _ in self._behind for _, frame, _ in files)
        chained = self._chained
        return held + (chained[1].height if chained is not None and chained[3] is None else 0)

    @property
    @_locked
    def buffered_bytes(self) -> int:
        """Estimated memory held by rows not yet committed."""
        return sum(self._buffer_sizes.values()) + sum(size for _, _, size in self._behind)

    @_locked
    def flush(self) -> None:
        """Commits every buffered partition; raises, keeping the rows, when a write fails."""
        self._check_open()
        if self._buffers or self._chained is not None:
            self._commit(list(self._buffers))
        elif failure := self._reap(block=True):
            raise failure

    @_locked
    def commit_aged(self, max_age_s: float) -> float | None:
        """Commits the partitions whose oldest buffered row has waited ``max_age_s`` seconds or
        longer; returns the seconds until the next one will have (``None``: nothing waits)."""
        self._check_open()
        now = time.monotonic()
        due = [key for key, since in self._buffer_since.items() if now - since >= max_age_s]
        if due or self._chained is not None:
            self._commit(due)
        elif failure := self._reap():
            raise failure
        if self._buffer_since:
            return max(0.0, min(self._buffer_since.values()) + max_age_s - time.monotonic())
        # Files still being written are counted (or their rows buffered again) on the next call.
        return max_age_s if self._behind else None

    def ingest_file(
        self,
        path: str | bytes | Path,
        *,
        format: Format = "auto",
        progress=None,
        stop: Stop | None = None,
    ) -> None:
        """Streams one file (gzip, zstd or plain; ``-`` for stdin) through the pipeline. A
        ``bytes`` path is taken as the file system's name for it (``os.fsdecode``).

        An input that cannot be read to its end raises :class:`InputError` naming it, after
        the lines read before the damage are committed to the buffers. Chunks are decoded on
        ``input.threads`` threads (the core releases the GIL) while this thread partitions and
        commits, so reading, decoding and writing overlap.

        A pipe, socket or terminal is read as its data arrives; while it sends nothing, rows
        buffered longer than ``serve.flush_interval_s`` are committed, so a slow stream is
        queryable as it goes. Once ``stop`` is set, reading ends at the last whole line read
        and everything read is absorbed; ``summary.interrupted`` then holds its reason."""
        self._check_open()
        max_line = self.config.input.max_line_bytes
        # The name labels dead letters: bytes of it that are not UTF-8 become ``\xff`` escapes.
        source = path_text(path)
        threads = self.config.input.threads or os.cpu_count() or 1
        pending: deque[tuple[Future[Batch], int]] = deque()
        failures: list[BaseException] = []
        self._source = source
        # Chunks decode numbering their lines from 1; the batches are absorbed in order, so
        # each one's dead letters are renumbered then, and this thread never counts lines.
        line = 0

        def idle() -> float | None:
            """While a stream sends nothing: absorbs what was read, commits what is due."""
            nonlocal line
            try:
                while pending:
                    line = self._absorb_next(pending, line, progress)
                return self.commit_aged(self.config.serve.flush_interval_s)
            except Exception as e:
                raise _IdleFailure(e) from None  # raised by the store, not by the input

        failure: Exception | None = None
        with ThreadPoolExecutor(threads, "qlingest-decode") as pool:
            fmt = None if format == "auto" else format
            try:
                for chunk in _chunks(path, max_line, failures, idle=idle, stop=stop):
                    if fmt is None:
                        fmt = _sniff(bytes(chunk.data[: 1 << 20]))
                        self._engine(fmt)
                    job = pool.submit(self.decode, chunk.data, source=source, format=fmt)
                    pending.append((job, chunk.size))
                    # One batch in flight per thread bounds memory; the oldest is written first.
                    while len(pending) > threads:
                        line = self._absorb_next(pending, line, progress)
            except _IdleFailure as e:
                failure = e.error
            while pending and failure is None:
                line = self._absorb_next(pending, line, progress)
        if failure is not None:
            raise failure
        if stop is not None and stop.is_set():
            self.summary.interrupted = stop.reason
        if failures:
            self.summary.inputs_failed.append(redact_message(source))
            raise InputError(source, _reason(failures[0])) from _redacted(failures[0])

    def _absorb_next(
        self, pending: deque[tuple[Future[Batch], int]], lines_before: int, progress
    ) -> int:
        """Absorbs the oldest decoded chunk, which follows ``lines_before`` lines of its
        input; returns the lines read once it is in."""
        job, size = pending.popleft()
        batch = job.result()
        if lines_before and batch.dead_letters.height:
            batch.dead_letters = batch.dead_letters.with_columns(pl.col("line") + lines_before)
        self.absorb(batch, size)
        if progress is not None:
            progress(size)
        return lines_before + batch.lines

    @_locked
    def close(self) -> Summary:
        """Commits what is buffered, releases the writer id and returns the summary. From
        then on the pipeline refuses work (:class:`PipelineClosedError`); closing again
        returns the summary. A close whose commit fails raises and keeps the pipeline open,
        with the rows buffered, so it can be retried.

        In a process forked from the one that built the pipeline, what is buffered is the
        parent's, which commits it: the child drops its copy and commits nothing.
        """
        if self._closed:
            return self.summary
        if self.store is not None and self.store.forked:
            self.abort()
            return self.summary
        self.flush()
        s = self.summary
        s.elapsed_s = time.perf_counter() - self._started
        if self.store is not None:
            s.bytes_on_disk = self.store.stats.bytes
            s.files = self.store.stats.files
            self.store.close()
        self._closed = True
        return s


def memory_size(frame: pl.DataFrame) -> int:
    """The bytes ``frame`` is counted as against the buffer limits: Polars' estimate, but at
    least eight bytes a cell. The estimate counts a column with no value in it as nothing,
    yet sorting and writing the rows give it a value slot per row (sixteen bytes for text),
    so rows of tiny events (``{}``, mostly null columns) would buffer several times the limit.
    """
    return max(frame.estimated_size(), frame.height * frame.width * 8)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Logs a configuration warning once per process, however many pipelines are built."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


class _IdleFailure(Exception):
    """Carries an error of the work done while a stream was idle out past the reading."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _chunks(
    path: str | bytes | Path,
    max_line: int,
    failures: list[BaseException],
    *,
    idle: Callable[[], float | None] | None = None,
    stop: Stop | None = None,
) -> Iterator[Chunk]:
    """The chunks of an input up to where it cannot be read further; the error that ended it
    goes into ``failures``, so the lines before the damage are still decoded and kept (the
    torn last line is lost). Errors of the caller's own work are not caught here. A set
    ``stop`` ends the chunks after the one being read, as the end of the input would."""
    try:
        with open_input(path, idle=idle, stop=stop) as stream:
            for chunk in read_chunks(stream, max_line):
                yield chunk
                if stop is not None and stop.is_set():
                    return
    except Interrupted:
        return
    except READ_ERRORS as e:
        failures.append(e)


def _reason(error: BaseException) -> str:
    """One line on why an input could not be read, without the path the message repeats."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, zlib.error):
        return f"corrupt gzip data ({error})"
    return error_line(error)


def _redacted(error: BaseException) -> BaseException | None:
    """The error to chain under an :class:`InputError`, whose message is redacted: an OS
    error with its file names redacted too, another error as it is unless its text holds
    a secret (then none, as the InputError says why)."""
    if isinstance(error, OSError) and (error.filename is not None or error.filename2 is not None):
        names = [
            None if name is None else redact_message(os.fsdecode(name))
            for name in (error.filename, error.filename2)
        ]
        return type(error)(error.errno, error.strerror, names[0], None, names[1])
    return error if redact_message(str(error)) == str(error) else None


def _sniff(data: bytes, lines: int = 64) -> str:
    """NDJSON when at least half of the first non-blank lines open an object, text otherwise; a header
    line or two do not turn a JSON file into text (they become dead letters instead)."""
    head = [ln.strip() for ln in data[: 1 << 20].split(b"\n", lines)[:lines]]
    head = [ln.removeprefix(b"\xef\xbb\xbf") for ln in head if ln]
    objects = sum(ln.startswith(b"{") for ln in head)
    return "ndjson" if head and objects * 2 >= len(head) else "text"


def _partition_key(category: str | None, hour: int) -> PartitionKey:
    """The store partition of a category and a UTC hour counted from the epoch."""
    at = time.gmtime(hour * 3600)
    return (str(category), time.strftime("%Y-%m-%d", at), time.strftime("%H", at))


def _runs(
    events: pl.DataFrame, parts: list[tuple[PartitionKey, int]]
) -> Iterator[tuple[PartitionKey, pl.DataFrame]]:
    """The runs of ``events`` that ``parts`` describes, as zero-copy slices."""
    if sum(rows for _, rows in parts) != events.height:
        raise ValueError(f"partition runs do not cover the {events.height} rows of the frame")
    offset = 0
    for key, rows in parts:
        yield key, events.slice(offset, rows)
        offset += rows


def _split(events: pl.DataFrame) -> Iterator[tuple[PartitionKey, pl.DataFrame]]:
    """``events`` split by category and UTC hour, for frames that come without their runs."""
    # Truncating to the hour is a third of the cost of formatting every row's date and hour.
    keyed = events.with_columns(pl.col("timestamp").dt.truncate("1h").alias("_hour"))
    for (category, hour), part in keyed.partition_by(["category", "_hour"], as_dict=True).items():
        yield (str(category), hour.strftime("%Y-%m-%d"), hour.strftime("%H")), part.drop("_hour")


def _json(section: object) -> str:
    return msgspec.json.encode(section).decode()


def _named(names: list[str], counts: list[int]) -> dict[str, int]:
    return {name: n for name, n in zip(names, counts, strict=True) if n}
