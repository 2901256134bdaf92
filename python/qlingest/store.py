"""The on-disk store: hive-partitioned zstd Parquet, committed atomically, and dead letters."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import logging
import os
import re
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from qlingest.config import WRITER_ID_PATTERN, StoreConfig
from qlingest.exceptions import ConfigError, ForkedError, first_line
from qlingest.source import path_text

__all__ = [
    "ForkedError",
    "Store",
    "category_problem",
    "decode_ranges",
    "encode_ranges",
    "parquet_files",
    "partition_value",
]

#: Parquet key-value metadata: the WAL record numbers whose rows a file holds.
WAL_KEY = "qlingest.wal_records"
#: Parquet key-value metadata: the file's partition key as a JSON array.
PARTITION_KEY = "qlingest.partition"
#: Dead-letter field: the sidecar's WAL record a dead letter came from.
WAL_RECORD_FIELD = "wal_record"
#: A writer id (see ``config.WRITER_ID_PATTERN``), for ``fullmatch``.
WRITER_ID = re.compile(WRITER_ID_PATTERN)

log = logging.getLogger("qlingest.store")
LEVELS = ["debug", "info", "warn", "error", "critical"]
LEVEL_ENUM = pl.Enum(LEVELS)
_PART = re.compile(r"^part-(?P<writer>[A-Za-z0-9_.-]+)-(?P<seq>\d+)\.(parquet|ndjson\.zst)$")


#: The longest escaped category a partition directory takes: a directory name holds 255 bytes
#: on common filesystems, and ``category=`` and some headroom come before it.
MAX_CATEGORY_BYTES = 200


#: The partition value hive readers (Polars among them) read back as null, escaped or not.
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def data_root(data_dir: str | Path) -> Path:
    """``data_dir`` as a path, or a :class:`ConfigError` when its name is not UTF-8: Arrow and
    Polars take file names as UTF-8 text, so a store there could be neither written nor read."""
    root = Path(data_dir)
    try:
        str(root).encode()
    except UnicodeEncodeError:
        raise ConfigError(
            f"data directory {path_text(root)}: its path is not UTF-8, which Arrow and Polars "
            "cannot open files under; choose a directory whose path is"
        ) from None
    return root


def category_problem(category: str) -> str | None:
    """Why ``category`` cannot name a partition directory, or ``None`` when it can."""
    size = len(partition_value(category))
    if size > MAX_CATEGORY_BYTES:
        return f"category is {size} bytes as a directory name, over {MAX_CATEGORY_BYTES}"
    if category == HIVE_NULL:
        return f"category {HIVE_NULL} reads back as null from a hive-partitioned store"
    return None


def partition_value(value: str) -> str:
    """A category as a safe directory name: anything but ``[A-Za-z0-9._-]`` is %-escaped."""
    escaped = quote(value, safe="")
    return escaped.replace(".", "%2E") if escaped in {".", ".."} else escaped


def parquet_files(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every ``*.parquet`` file under ``root``, sorted, and each directory under it that cannot
    be listed, with why (``Path.rglob`` passes over those in silence, and a glob read by Polars
    fails on them). A ``root`` that is not there holds nothing."""
    files: list[Path] = []
    unlisted: list[tuple[Path, str]] = []

    def failed(error: OSError) -> None:
        if not isinstance(error, FileNotFoundError):  # removed while walking, or no store
            unlisted.append((Path(error.filename), error.strerror or first_line(error)))

    for top, _, names in os.walk(root, onerror=failed):
        files += [Path(top, name) for name in names if name.endswith(".parquet")]
    return sorted(files), sorted(unlisted)


def _remove(path: Path) -> None:
    """Removes a file written aside, if it is there; a failure is logged, not raised: it
    must not hide the error that led here, nor stop the removal of the others (on a
    read-only file system even a missing file's removal fails)."""
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        if os.path.lexists(path):
            log.warning("could not remove %s: %s", path, e.strerror)


def fsync_dir(path: Path) -> None:
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


def fsync_file(path: Path) -> None:
    _fsync(path, os.O_RDONLY)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class CommitStats:
    files: int = 0
    rows: int = 0
    bytes: int = 0
    paths: list[Path] = field(default_factory=list)


def sorted_by_time(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with rows in timestamp order (ties in their order), sorted only when needed:
    checking a run of parts that already follow each other costs one pass over one column."""
    if frame.get_column("timestamp").is_sorted():
        return frame
    # A partition is the slices of many batches: gathering rows from one chunk is several
    # times faster than from dozens, by more than the rechunk costs.
    return frame.rechunk().sort("timestamp", maintain_order=True)


class Store:
    """One writer's view of a data directory. Files appear under their final name complete.

    A store belongs to the process that opened it: in a child forked from that process it
    refuses to write (:class:`ForkedError`), since parent and child would otherwise number
    files of the same writer id and overwrite each other's.
    """

    def __init__(self, data_dir: str | Path, config: StoreConfig | None = None) -> None:
        if _polars_threads_lost:
            raise ForkedError(
                "polars' worker threads had started when this process was forked, and a "
                "forked child cannot run them: writing Parquet here would hang. Start the "
                "process with multiprocessing's 'spawn' or 'forkserver' method, or fork before "
                "anything runs polars (see README, Embedded use)."
            )
        self.root = data_root(data_dir)
        self.config = config or StoreConfig()
        self.root.mkdir(parents=True, exist_ok=True)
        self.writer, self._lock = self._claim_writer(self.config.writer)
        self._pid = os.getpid()
        self._seq = self._recover_seq()
        self.stats = CommitStats()
        # File numbers and commit counts are taken by the caller's thread and the committer.
        self._counting = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._committer: ThreadPoolExecutor | None = None
        _open_stores.add(self)

    @property
    def forked(self) -> bool:
        """Whether this process is a child forked from the one that opened the store."""
        return self._pid != os.getpid()

    def check_process(self) -> None:
        """Raises :class:`ForkedError` in a process forked from the one that opened the store."""
        if self.forked:
            raise ForkedError(
                f"this store was opened as writer {self.writer!r} by process {self._pid}, "
                "before a fork: a child cannot write with it. Build the Pipeline, Emitter or "
                "Handler in the child process (see README, Embedded use)."
            )

    def _after_fork_in_child(self) -> None:
        """Lets go of what the child inherited: the writer lock and the writer threads."""
        if self._lock >= 0:
            # Closed, never unlocked: the lock is the parent's, held through its own descriptor,
            # and a child living on after the parent must not keep the writer id taken.
            os.close(self._lock)
            self._lock = -1
        self._pool = self._committer = None  # their threads stayed in the parent
        self._counting = threading.Lock()

    def _claim_writer(self, wanted: str | None) -> tuple[str, int]:
        """Holds ``writers/<id>.lock`` for the life of the store, so concurrent writers differ."""
        locks = self.root / "writers"
        locks.mkdir(exist_ok=True)
        candidates = [wanted] if wanted else (f"w{i}" for i in range(1024))
        for name in candidates:
            if not WRITER_ID.fullmatch(name):
                raise ValueError(
                    f"writer id {name!r}: use up to 64 letters, digits, '.', '_' or '-', "
                    "not starting with '.'"
                )
            fd = os.open(locks / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return name, fd
            except BlockingIOError:
                os.close(fd)
        raise RuntimeError(
            f"writer {wanted!r} is in use by another process" if wanted else "no free writer id"
        )

    def _recover_seq(self) -> int:
        """The next file number: one past the highest this writer committed; leftovers removed."""
        highest = -1
        for sub in ("hot", "dead-letter"):
            for path in (self.root / sub).rglob(f"*part-{self.writer}-*"):
                if path.name.startswith(".") and path.name.endswith(".tmp"):
                    path.unlink(missing_ok=True)
                    continue
                m = _PART.match(path.name)
                if m and m["writer"] == self.writer:
                    highest = max(highest, int(m["seq"]))
        return highest + 1

    def close(self) -> None:
        if self._committer is not None:
            self._committer.shutdown()
            self._committer = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1
        _open_stores.discard(self)

    def next_name(self, suffix: str) -> str:
        with self._counting:
            name = f"part-{self.writer}-{self._seq:08d}.{suffix}"
            self._seq += 1
        return name

    def _count(self, path: Path, rows: int) -> None:
        size = path.stat().st_size
        with self._counting:
            self.stats.files += 1
            self.stats.rows += rows
            self.stats.bytes += size
            self.stats.paths.append(path)

    def _make_dir(self, directory: Path) -> None:
        """Creates a partition directory and makes each new level durable."""
        missing = []
        d = directory
        while not d.exists():
            missing.append(d)
            d = d.parent
        directory.mkdir(parents=True, exist_ok=True)
        if self.config.fsync:
            for d in reversed(missing):
                fsync_dir(d.parent)

    def _commit_file(self, directory: Path, name: str, write) -> Path:
        """Writes aside, fsyncs, renames into place and fsyncs the directory."""
        self._make_dir(directory)
        tmp = directory / f".{name}.tmp"
        final = directory / name
        try:
            write(tmp)
            if self.config.fsync:
                fsync_file(tmp)
            os.rename(tmp, final)
        except BaseException:
            # A failed write (a full disk, say) leaves nothing half-written behind.
            _remove(tmp)
            raise
        if self.config.fsync:
            fsync_dir(directory)
        return final

    def partition_dir(self, category: str, date: str, hour: str, tier: str = "hot") -> Path:
        return (
            self.root
            / tier
            / f"category={partition_value(category)}"
            / f"date={date}"
            / f"hour={hour}"
        )

    def write_partition(
        self,
        category: str,
        date: str,
        hour: str,
        frame: pl.DataFrame,
        *,
        wal_records: frozenset[int] = frozenset(),
    ) -> Path:
        """Commits one file of one partition, rows sorted by timestamp.

        ``wal_records`` (the sidecar's log records the rows came from) go into the file's
        metadata, so a restart knows which records this partition already holds.
        """
        self.check_process()
        metadata = _metadata(category, date, hour, wal_records)
        path = self._commit_file(
            self.partition_dir(category, date, hour),
            self.next_name("parquet"),
            lambda path: self._write_parquet(path, frame, metadata),
        )
        self._count(path, frame.height)
        return path

    def _submit(self, write, *args) -> Future[None]:
        """Runs ``write`` on the writer pool."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(os.cpu_count() or 1, "qlingest-write")
        return _submit_or_run(self._pool, write, *args)

    def _write_parquet(self, path: Path, frame: pl.DataFrame, metadata: dict | None) -> None:
        cfg = self.config
        table = _arrow_table(sorted_by_time(frame), metadata)
        try:
            write_table(table, path, cfg.compression_level, cfg.row_group_size)
        except OSError as e:
            # Arrow names no file when a write fails (a full disk): the error names it here.
            code = e.errno or _io_errno(str(e))
            if code is None:
                raise
            raise OSError(code, os.strerror(code), str(path)) from e

    def write_partitions(
        self, files: list[tuple[tuple[str, str, str], pl.DataFrame, frozenset[int]]]
    ) -> list[Path]:
        """Commits several files (partition key, rows, WAL records) at once: each is written
        aside and fsynced on the writer pool, side by side; then all are renamed into place and
        each directory is synced once. Only the store's own files are synced: a file-system
        wide sync would also wait for whatever else is being written on the disk."""
        self.check_process()
        if len(files) < 2:
            return [self.write_partition(*key, frame, wal_records=wal) for key, frame, wal in files]
        return self._rename_staged(*self._stage(files))

    def write_partitions_behind(
        self, files: list[tuple[tuple[str, str, str], pl.DataFrame, frozenset[int]]]
    ) -> Future[list[Path]]:
        """``write_partitions`` behind the caller, who goes on decoding while the files are
        encoded; the future holds the paths or the error.

        The files start encoding on the writer pool at once, after those handed over before
        them, and the committer thread renames each call's files into place in call order. A
        call's files do not wait for the previous call's renames: both cores keep encoding
        until the last file is written (one file is encoded on one core)."""
        self.check_process()
        try:
            staged, jobs = self._stage(files)
        except Exception as e:
            failed: Future[list[Path]] = Future()
            failed.set_exception(e)
            return failed
        if self._committer is None:
            self._committer = ThreadPoolExecutor(1, "qlingest-commit")
        return _submit_or_run(self._committer, self._rename_staged, staged, jobs)

    def _stage(
        self, files: list[tuple[tuple[str, str, str], pl.DataFrame, frozenset[int]]]
    ) -> tuple[list[tuple[Path, Path, int]], list[Future[None]]]:
        """Starts writing each file aside (``.<name>.tmp``) on the writer pool, the largest
        first, so the last one to end is a small one; names follow the order of ``files``."""
        staged: list[tuple[Path, Path, int]] = []
        work = []
        for (category, date, hour), frame, wal in files:
            directory = self.partition_dir(category, date, hour)
            name = self.next_name("parquet")
            staged.append((directory / f".{name}.tmp", directory / name, frame.height))
            work.append((directory, staged[-1][0], frame, _metadata(category, date, hour, wal)))
        jobs: list[Future[None]] = []
        try:
            for directory, tmp, frame, metadata in sorted(work, key=lambda w: -w[2].height):
                self._make_dir(directory)
                jobs.append(self._submit(self._write_durable, tmp, frame, metadata))
        except BaseException:
            wait(jobs)  # a writer still running would leave its file behind
            for tmp, _, _ in staged:
                _remove(tmp)
            raise
        return staged, jobs

    def _rename_staged(
        self, staged: list[tuple[Path, Path, int]], jobs: list[Future[None]]
    ) -> list[Path]:
        """Waits for the files of ``_stage``, renames them into place and syncs each directory
        once; when any failed, removes them all and raises its error."""
        try:
            for job in jobs:
                job.result()
            for tmp, final, _ in staged:
                os.rename(tmp, final)
        except BaseException:
            wait(jobs)
            for tmp, _, _ in staged:
                _remove(tmp)
            raise
        if self.config.fsync:
            for directory in dict.fromkeys(final.parent for _, final, _ in staged):
                fsync_dir(directory)
        for _, final, rows in staged:
            self._count(final, rows)
        return [final for _, final, _ in staged]

    def _write_durable(self, path: Path, frame: pl.DataFrame, metadata: dict | None) -> None:
        self._write_parquet(path, frame, metadata)
        if self.config.fsync:
            fsync_file(path)

    def write_dead_letters(self, frame: pl.DataFrame, date: str) -> Path:
        """Commits dead letters as zstd NDJSON: source, line, reason, detail, raw (or raw_hex)."""
        self.check_process()
        buf = io.BytesIO()
        frame.write_ndjson(buf)
        data = zstandard.ZstdCompressor(level=3).compress(buf.getvalue())

        def write(path: Path) -> None:
            path.write_bytes(data)

        directory = self.root / "dead-letter" / f"date={date}"
        path = self._commit_file(directory, self.next_name("ndjson.zst"), write)
        self._count(path, 0)
        return path

    def dead_letter_wal_records(self, first_file: int) -> set[int]:
        """WAL records whose dead letters this writer committed in files from ``first_file`` on.

        The sidecar commits all of one record's dead letters in one file, each row tagged with
        ``wal_record``, so a record listed here has every dead letter committed.
        """
        out: set[int] = set()
        for path in (self.root / "dead-letter").rglob(f"part-{self.writer}-*.ndjson.zst"):
            seq = file_seq(path)
            if seq is None or seq < first_file:
                continue
            try:
                frame = pl.read_ndjson(io.BytesIO(zstandard.decompress(path.read_bytes())))
            except (OSError, zstandard.ZstdError, pl.exceptions.PolarsError) as e:
                # Its records count as not committed: what the log still holds is replayed.
                log.warning("Skipped unreadable file %s: %s", path, first_line(e))
                continue
            if WAL_RECORD_FIELD in frame.columns:
                out.update(frame[WAL_RECORD_FIELD].drop_nulls().unique().to_list())
        return out


#: Stores not yet closed, for the fork hook; weak, so an abandoned store is not kept alive.
_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()


#: Errors of writing a file that the Parquet writer may report only inside its message.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES, errno.EFBIG)


def _io_errno(message: str) -> int | None:
    """The error number of an operating-system error a writer's message reports, if any."""
    for code in _WRITE_ERRNOS:
        if os.strerror(code) in message:
            return code
    return None


def _submit_or_run(pool: ThreadPoolExecutor, work, *args) -> Future:
    """Runs ``work`` on ``pool``, or here once the interpreter is exiting: thread pools take no
    work then, and an emitter closed at exit still commits."""
    try:
        return pool.submit(work, *args)
    except RuntimeError:
        done: Future = Future()
        try:
            done.set_result(work(*args))
        except BaseException as e:
            done.set_exception(e)
        return done


#: Whether polars' worker threads ran in the process this one was forked from: they did not
#: come along, and polars waits for them forever when it writes Parquet.
_polars_threads_lost = False
_polars_threads_at_fork = False


def _polars_threads_started() -> bool:
    """Whether polars' worker threads (``polars-<n>``) run in this process.

    Limitation: read from ``/proc/self/task``, so on systems without it (macOS) this says no
    and a store opened in a forked child can still hang in polars.
    """
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                name = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        if re.match(r"polars-\d", name):
            return True
    return False


def _before_fork() -> None:
    global _polars_threads_at_fork
    _polars_threads_at_fork = _polars_threads_started()


def _after_fork_in_child() -> None:
    global _polars_threads_lost
    _polars_threads_lost = _polars_threads_lost or _polars_threads_at_fork
    for store in list(_open_stores):
        store._after_fork_in_child()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


#: Columns written with a dictionary: few distinct values in a file (every other column is
#: written plain, where zstd finds what repeats).
DICTIONARY_COLUMNS = frozenset(
    {"level", "category", "service", "feature", "cost_center", "user_tier", "audit_chain"}
)
#: Columns written without min/max statistics: long text and hashes, which no query prunes
#: by, and `level`: Arrow's writer gives a dictionary column with nulls the bounds of its
#: whole dictionary when the file holds all but one of its values (a file of debug to warn
#: and rows without a level claimed `critical` as its maximum), and nearly every file spans
#: the levels anyway.
UNSTATED_COLUMNS = frozenset(
    {"level", "message", "stack", "fields", "audit_prev_hash", "audit_hash"}
)


def write_table(
    table: pa.Table, where: Path | BinaryIO, level: int, row_group_size: int | None = None
) -> None:
    """Writes ``table`` as zstd Parquet with Arrow's writer, because it takes encodings and
    statistics column by column: Polars' tries a dictionary on every string column (hashing
    every message and stack trace) and keeps min/max of every one
    (``scripts/parquet_writer_ab.py`` measures the two on the same frames)."""
    names = table.column_names
    pq.write_table(
        table,
        where,
        compression="zstd",
        compression_level=level,
        row_group_size=row_group_size,
        use_dictionary=[c for c in names if c in DICTIONARY_COLUMNS],
        write_statistics=[c for c in names if c not in UNSTATED_COLUMNS],
    )


def _arrow_table(frame: pl.DataFrame, metadata: dict | None) -> pa.Table:
    """``frame`` as an Arrow table without copying its strings, with ``metadata`` added to the
    schema's (the file's key-value metadata)."""
    # One chunk per column: Arrow takes each chunk over and writes it apart, which costs more
    # than one copy of the rows (a partition already in time order is still its parts).
    table = plain_dictionaries(frame.rechunk().to_arrow(compat_level=pl.CompatLevel.newest()))
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    return table


def plain_dictionaries(table: pa.Table) -> pa.Table:
    """``table`` with Polars' dictionaries of string views (the level Enum) turned into
    dictionaries of plain strings, which Arrow's Parquet writer takes."""
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type) and pa.types.is_string_view(f.type.value_type):
            kind = pa.dictionary(f.type.index_type, pa.string(), f.type.ordered)
            table = table.set_column(i, f.with_type(kind), table.column(i).cast(kind))
    return table


def _metadata(category: str, date: str, hour: str, wal_records: frozenset[int]) -> dict | None:
    """The key-value metadata of a file that holds rows of the sidecar's WAL records."""
    if not wal_records:
        return None
    return {
        WAL_KEY: encode_ranges(wal_records),
        PARTITION_KEY: json.dumps([category, date, hour]),
    }


def encode_ranges(numbers: frozenset[int] | set[int]) -> str:
    """``{1, 2, 3, 7}`` as ``"1-3,7"``."""
    out: list[str] = []
    ordered = sorted(numbers)
    start = prev = ordered[0] if ordered else 0
    for n in ordered[1:]:
        if n != prev + 1:
            out.append(f"{start}-{prev}" if prev > start else str(start))
            start = n
        prev = n
    if ordered:
        out.append(f"{start}-{prev}" if prev > start else str(start))
    return ",".join(out)


def decode_ranges(text: str) -> list[tuple[int, int]]:
    """``"1-3,7"`` as inclusive ranges ``[(1, 3), (7, 7)]``."""
    ranges = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        ranges.append((int(lo), int(hi or lo)))
    return ranges


def file_seq(path: Path) -> int | None:
    """The writer's file number in a committed file name, or ``None``."""
    m = _PART.match(path.name)
    return int(m["seq"]) if m else None
