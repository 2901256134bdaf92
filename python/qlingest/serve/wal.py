"""The write-ahead log: numbered, checksummed records in segments, fsynced by group commit.

A segment is ``<first record number>.wal``: a header (magic and the store's next file number
when the segment opened), then records. A record is ``crc32 | length | seq | observed_ns |
source length``, the source name and the payload; the checksum covers everything after it.
A torn record at the end of the last segment (a crash mid-write) is cut off on recovery; other
damage loses only the damaged bytes, which are kept aside (see ``Wal.recover``).
A record's payload is written from its parts (the bodies of the requests it groups) with one
``writev`` per group commit, so it is never copied into one buffer on the way in.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from qlingest.store import fsync_dir

__all__ = ["Wal", "WalRecord", "make_private"]

MAGIC = b"QLWAL1\n\0"
_SEGMENT_HEAD = struct.Struct("<8sQ")
_RECORD_HEAD = struct.Struct("<IIQqH")
_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16
#: Segments hold request bodies before redaction: readable by the server's user alone.
FILE_MODE = 0o600
DIR_MODE = 0o700


@dataclass(frozen=True, slots=True)
class WalRecord:
    """One logged group of requests from one source: NDJSON lines and their receive time.

    ``parts`` are the requests' bodies in order (one part once read back from disk).
    """

    seq: int
    observed_ns: int
    source: str
    parts: tuple[bytes, ...]

    @property
    def payload(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)

    @property
    def size(self) -> int:
        return sum(map(len, self.parts))


@dataclass(slots=True)
class _Segment:
    path: Path
    first_seq: int
    first_file: int
    last_seq: int = -1
    size: int = 0
    #: When its first record was written (``time.monotonic``); None while it holds none.
    first_written: float | None = None


class Wal:
    """Appends records to the current segment; segments wholly committed are deleted."""

    def __init__(
        self,
        directory: str | Path,
        *,
        segment_bytes: int,
        fsync: bool = True,
        scrub: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.dir = Path(directory)
        #: Applied to damaged bytes before they are kept (the server redacts them).
        self.scrub = scrub
        _make_dirs(self.dir)
        _tighten(self.dir)
        self.segment_bytes = segment_bytes
        self.fsync_enabled = fsync
        self._segments: list[_Segment] = []
        self._fd = -1
        self.next_seq = 0
        #: What ``recover`` found damaged and could not replay, one line each.
        self.damage: list[str] = []

    @property
    def bytes(self) -> int:
        """Bytes of every segment on disk."""
        return sum(s.size for s in self._segments)

    @property
    def first_file(self) -> int | None:
        """The lowest store file number a segment opened at: older files hold none of the log."""
        return min((s.first_file for s in self._segments), default=None)

    def first_file_on_disk(self) -> int | None:
        """Like ``first_file`` but read from the segment headers, before ``recover``; 0 when a
        header is damaged, so that every file is checked for records already committed."""
        firsts = []
        for path in self.dir.glob("*.wal"):
            with open(path, "rb") as f:
                head = f.read(_SEGMENT_HEAD.size)
            if len(head) == _SEGMENT_HEAD.size and head[:8] == MAGIC:
                firsts.append(_SEGMENT_HEAD.unpack(head)[1])
            elif head:
                firsts.append(0)
        return min(firsts, default=None)

    def recover(self) -> Iterator[WalRecord]:
        """Yields every intact record of the existing segments, oldest first.

        A record cut off at the end of the last segment (a crash mid-write) is cut away
        quietly. Any other damage (a flipped bit, a damaged header, a closed segment that ends
        early) loses only the damaged bytes: they are kept under ``damaged/``, the records
        after them are found again by their numbers and checksums, and ``damage`` says what
        happened, for the operator's log."""
        paths = sorted(self.dir.glob("*.wal"), key=lambda p: int(p.stem))
        for i, path in enumerate(paths):
            data = path.read_bytes()
            last = i == len(paths) - 1
            if len(data) < _SEGMENT_HEAD.size:
                if data and not last:
                    self._keep_damaged(path, 0, data, "segment shorter than its header")
                path.unlink()
                continue
            first_file = 0
            if data[:8] == MAGIC:
                _, first_file = _SEGMENT_HEAD.unpack_from(data)
            else:
                self.damage.append(f"{path}: segment header damaged; its records read without it")
            seg = _Segment(path, int(path.stem), first_file)
            self._segments.append(seg)
            end = yield from self._records(path, data, seg, last)
            if end < len(data):
                # A torn tail: cut, so that appends and the next recovery start cleanly.
                with open(path, "r+b") as f:
                    f.truncate(end)
            seg.size = end
        self.next_seq = max((s.last_seq + 1 for s in self._segments), default=0)
        self.next_seq = max([self.next_seq, *(s.first_seq for s in self._segments)])

    def _records(self, path: Path, data: bytes, seg: _Segment, last: bool) -> Iterator[WalRecord]:
        """Yields the segment's intact records; returns where a torn tail starts (or its
        length)."""
        pos = _SEGMENT_HEAD.size
        while pos < len(data):
            record = _record_at(data, pos, seg.last_seq)
            if record is None:
                resume = _resync(data, pos, max(seg.last_seq, seg.first_seq - 1))
                torn = resume is None and _incomplete(data, pos)
                if torn and last:
                    return pos
                stop = len(data) if resume is None else resume
                reason = "cut short" if torn else "damaged"
                self._keep_damaged(path, pos, data[pos:stop], reason)
                if resume is None:
                    return len(data)
                pos = resume
                continue
            end, seq, observed_ns, source, payload = record
            seg.last_seq = seq
            yield WalRecord(seq, observed_ns, source, (payload,))
            pos = end
        return pos

    def _keep_damaged(self, path: Path, offset: int, data: bytes, reason: str) -> None:
        """Saves bytes recovery cannot read, and says so in ``damage``."""
        kept = self.dir / "damaged" / f"{path.stem}-{offset}.bin"
        kept.parent.mkdir(DIR_MODE, exist_ok=True)
        fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with open(fd, "wb") as f:
            f.write(data if self.scrub is None else self.scrub(data))
        self.damage.append(
            f"{path}: {len(data)} bytes at offset {offset} {reason}, not replayed; kept in {kept}"
        )

    def open_segment(self, first_file: int) -> None:
        """Starts a new segment; ``first_file`` is the store's next file number.

        A newest segment that holds no record has the new one's name, and is replaced by it
        (else releasing it would delete the new one). If the new segment cannot be started
        (a full disk), the open one stays open and the error is raised."""
        path = self.dir / f"{self.next_seq:020d}.wal"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, FILE_MODE)
        try:
            os.write(fd, _SEGMENT_HEAD.pack(MAGIC, first_file))
            if self.fsync_enabled:
                os.fsync(fd)
                fsync_dir(self.dir)
            self._close_fd()
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        if self._segments and self._segments[-1].path == path:
            self._segments.pop()
        self._segments.append(_Segment(path, self.next_seq, first_file, size=_SEGMENT_HEAD.size))

    def append(
        self, records: list[tuple[int, str, Sequence[bytes]]], *, sync: bool = False
    ) -> list[WalRecord]:
        """Writes ``(observed_ns, source, parts)`` records in one ``writev``, then fsyncs
        them if ``sync``; numbers them.

        A write or fsync that fails (a full disk) raises; what was written is cut off again
        and its numbers are given to the next records, so refused writes leave no gap in the
        log, and a refused request is not replayed."""
        if not self.is_open:
            raise OSError(errno.EBADF, "no log segment is open")
        first_seq = self.next_seq
        out, buffers = [], []
        for observed_ns, source, parts in records:
            src = source.encode()
            size = sum(map(len, parts))
            rest = _RECORD_HEAD.pack(0, size, self.next_seq, observed_ns, len(src))[4:]
            crc = zlib.crc32(src, zlib.crc32(rest))
            for part in parts:
                crc = zlib.crc32(part, crc)
            buffers += [struct.pack("<I", crc), rest, src, *parts]
            out.append(WalRecord(self.next_seq, observed_ns, source, tuple(parts)))
            self.next_seq += 1
        seg = self._segments[-1]
        try:
            written = _write_all(self._fd, buffers)
            if sync:
                os.fsync(self._fd)
        except OSError:
            self.next_seq = first_seq
            self._cut(seg)
            raise
        seg.size += written
        seg.last_seq = out[-1].seq if out else seg.last_seq
        if out and seg.first_written is None:
            seg.first_written = time.monotonic()
        return out

    def _cut(self, seg: _Segment) -> None:
        """Cuts what a failed write left after the segment's last whole record. Should that
        fail too, the bytes stay: recovery finds the next record by its number past them."""
        try:
            os.ftruncate(self._fd, seg.size)
        except OSError:
            seg.size = os.fstat(self._fd).st_size

    def sync(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)

    def writable(self) -> bool:
        """Whether the open segment takes the start of a record now, as the next request's
        would be written: bytes appended (and fsynced) where it would go, then cut off again.
        So the answer is the one a request would get, on a disk with room in the segment's
        last block but none for a new file. False when no segment is open."""
        if not self.is_open:
            return False
        seg = self._segments[-1]
        try:
            _write_all(self._fd, [bytes(_PROBE_BYTES)])
            if self.fsync_enabled:
                os.fsync(self._fd)
            return True
        except OSError:
            return False
        finally:
            self._cut(seg)

    def should_rotate(self) -> bool:
        return bool(self._segments) and self._segments[-1].size >= self.segment_bytes

    @property
    def is_open(self) -> bool:
        """Whether a segment is open for appends (none is until one could be started)."""
        return self._fd >= 0

    def open_age(self) -> float:
        """Seconds since the open segment's first record was written; 0 while it holds none."""
        first = self._segments[-1].first_written if self._segments else None
        return 0.0 if first is None else time.monotonic() - first

    def release(self, committed_below: int) -> int:
        """Deletes closed segments whose records are all below ``committed_below``."""
        removed = 0
        while len(self._segments) > 1 and self._segments[0].last_seq < committed_below:
            self._segments.pop(0).path.unlink(missing_ok=True)
            removed += 1
        return removed

    def release_recovered(self) -> None:
        """Deletes every segment but the current one (after a replay was committed)."""
        while len(self._segments) > 1:
            self._segments.pop(0).path.unlink(missing_ok=True)

    def close(self) -> None:
        self._close_fd()

    def remove(self) -> None:
        """Closes the log and deletes every segment: a clean stop committed all of it.

        The next start then replays nothing; record numbers start over at 0, which is safe
        because a restart only reads files numbered from the oldest segment's ``first_file``.
        """
        self._close_fd()
        for seg in self._segments:
            seg.path.unlink(missing_ok=True)
        self._segments.clear()
        if self.fsync_enabled:
            fsync_dir(self.dir)

    def _close_fd(self) -> None:
        if self._fd >= 0:
            if self.fsync_enabled:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def _make_dirs(path: Path) -> None:
    """Creates ``path`` and its missing parents as ``DIR_MODE``: ``mkdir(parents=True)``
    would give the parents (``wal/`` itself) the default mode."""
    if not path.parent.exists():
        _make_dirs(path.parent)
    path.mkdir(DIR_MODE, exist_ok=True)


def make_private(path: Path) -> None:
    """Creates the directory ``path`` as ``DIR_MODE``, or gives an existing one that mode."""
    _make_dirs(path)
    _restrict(path, DIR_MODE)


def _tighten(directory: Path) -> None:
    """Gives a log directory made by an older version (0755, segments 0644) the modes new
    ones get: its segments, its ``damaged/`` directory and the bytes kept there."""
    _restrict(directory, DIR_MODE)
    for path in directory.glob("*.wal"):
        _restrict(path, FILE_MODE)
    damaged = directory / "damaged"
    if damaged.is_dir():
        _restrict(damaged, DIR_MODE)
        for path in damaged.glob("*.bin"):
            _restrict(path, FILE_MODE)


def _restrict(path: Path, mode: int) -> None:
    """Sets ``mode`` on ``path`` unless it has it already."""
    if stat.S_IMODE(path.stat().st_mode) != mode:
        os.chmod(path, mode)


def _record_at(data: bytes, pos: int, after_seq: int) -> tuple[int, int, int, str, bytes] | None:
    """The intact record at ``pos`` (its end, number, receive time, source and payload) if
    its checksum holds and it is numbered after ``after_seq``."""
    if pos + _RECORD_HEAD.size > len(data):
        return None
    crc, length, seq, observed_ns, src_len = _RECORD_HEAD.unpack_from(data, pos)
    body_at = pos + _RECORD_HEAD.size
    end = body_at + src_len + length
    if seq <= after_seq or end > len(data) or zlib.crc32(data[pos + 4 : end]) != crc:
        return None
    try:
        source = data[body_at : body_at + src_len].decode()
    except UnicodeDecodeError:
        return None
    return end, seq, observed_ns, source, data[body_at + src_len : end]


def _incomplete(data: bytes, pos: int) -> bool:
    """Whether the record at ``pos`` runs past the end of the data: a write cut short."""
    if pos + _RECORD_HEAD.size > len(data):
        return True
    _, length, _, _, src_len = _RECORD_HEAD.unpack_from(data, pos)
    return pos + _RECORD_HEAD.size + src_len + length > len(data)


#: What the probe of ``Wal.writable`` appends: less than a record header, so that bytes a
#: crash leaves behind are a torn tail, which recovery cuts away quietly.
_PROBE_BYTES = _RECORD_HEAD.size - 1

#: How many record numbers past the last good one a resynchronising search tries first.
#: Numbers are consecutive in a segment (a failed ``append`` gives its numbers to the next
#: records), so the next intact record is the first number past the damaged ones: one for a
#: flipped bit, a few for a lost disk block of small records. Each number tried costs a search
#: of the rest of the segment; damage that took more records than this is found by a scan.
_RESYNC_SEQS = 64


def _resync(data: bytes, pos: int, last_seq: int) -> int | None:
    """Where the next intact record after damage at ``pos`` starts: the first place past
    ``pos`` holding one of the next record numbers (at offset 8 of a record) whose record
    checks out whole. Records are in number order, so the lowest number found is the next."""
    for seq in range(last_seq + 1, last_seq + 1 + _RESYNC_SEQS):
        needle = struct.pack("<Q", seq)
        at = data.find(needle, pos + 9)
        while at >= 0:
            if _record_at(data, at - 8, last_seq) is not None:
                return at - 8
            at = data.find(needle, at + 1)
    return _scan_for_record(data, pos, last_seq)


_NOT_ZERO = re.compile(rb"[^\x00]")


def _scan_for_record(data: bytes, pos: int, last_seq: int) -> int | None:
    """The first intact record past ``pos`` numbered after ``last_seq``, however many records
    the damage took: every place holding the high half of the next numbers (at offset 12 of a
    record) is checked, in order, so the first found is the next. Runs of zero bytes, which a
    lost disk block reads as, are skipped whole."""
    high = struct.pack("<I", (last_seq + 1) >> 32)
    at = data.find(high, pos + 13)
    while at >= 0:
        start = at - 12
        if _record_at(data, start, last_seq) is not None:
            return start
        if not any(data[start:at]):
            # Zeros before the match too: jump to the end of the run.
            more = _NOT_ZERO.search(data, at)
            if more is None:
                return None
            at = data.find(high, max(more.start() - 3, at + 1))
            continue
        at = data.find(high, at + 1)
    return None


def _write_all(fd: int, buffers: list[bytes]) -> int:
    """Writes ``buffers`` in order with as few ``writev`` calls as ``IOV_MAX`` allows."""
    written = 0
    for at in range(0, len(buffers), _IOV_MAX):
        chunk = buffers[at : at + _IOV_MAX]
        want = sum(map(len, chunk))
        done = os.writev(fd, chunk)
        if done < want:
            # A short write (a signal, a full disk) is finished byte-wise, or raises.
            view = memoryview(b"".join(chunk))[done:]
            while view:
                view = view[os.write(fd, view) :]
        written += want
    return written
