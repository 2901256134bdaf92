"""The write-ahead log: numbered, checksummed records in segments, fsynced by group commit.

A segment is ``<first record number>.wal``: a header (magic and the store's next file number
when the segment opened), then records. A record is ``crc32 | length | seq | observed_ns |
source length``, the source name and the payload; the checksum covers everything after it.
A torn record at the end of the last segment (a crash mid-write) is cut off on recovery.
A record's payload is written from its parts (the bodies of the requests it groups) with one
``writev`` per group commit, so it is never copied into one buffer on the way in.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from qlingest.store import fsync_dir

__all__ = ["Wal", "WalRecord"]

MAGIC = b"QLWAL1\n\0"
_SEGMENT_HEAD = struct.Struct("<8sQ")
_RECORD_HEAD = struct.Struct("<IIQqH")
_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16


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


class Wal:
    """Appends records to the current segment; segments wholly committed are deleted."""

    def __init__(self, directory: str | Path, *, segment_bytes: int, fsync: bool = True) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.fsync_enabled = fsync
        self._segments: list[_Segment] = []
        self._fd = -1
        self.next_seq = 0

    @property
    def bytes(self) -> int:
        """Bytes of every segment on disk."""
        return sum(s.size for s in self._segments)

    @property
    def first_file(self) -> int | None:
        """The lowest store file number a segment opened at: older files hold none of the log."""
        return min((s.first_file for s in self._segments), default=None)

    def first_file_on_disk(self) -> int | None:
        """Like ``first_file`` but read from the segment headers, before ``recover``."""
        firsts = []
        for path in self.dir.glob("*.wal"):
            with open(path, "rb") as f:
                head = f.read(_SEGMENT_HEAD.size)
            if len(head) == _SEGMENT_HEAD.size and head[:8] == MAGIC:
                firsts.append(_SEGMENT_HEAD.unpack(head)[1])
        return min(firsts, default=None)

    def recover(self) -> Iterator[WalRecord]:
        """Yields every intact record of the existing segments, oldest first."""
        paths = sorted(self.dir.glob("*.wal"), key=lambda p: int(p.stem))
        for i, path in enumerate(paths):
            data = path.read_bytes()
            if len(data) < _SEGMENT_HEAD.size or data[:8] != MAGIC:
                path.unlink()
                continue
            _, first_file = _SEGMENT_HEAD.unpack_from(data)
            seg = _Segment(path, int(path.stem), first_file)
            self._segments.append(seg)
            end = yield from self._records(data, seg)
            if end < len(data):
                # Only the last segment can be torn; cut it so appends would start cleanly.
                with open(path, "r+b") as f:
                    f.truncate(end)
                if i != len(paths) - 1:
                    raise RuntimeError(f"{path}: corrupt record in a closed log segment")
            seg.size = end
        self.next_seq = max((s.last_seq + 1 for s in self._segments), default=0)
        self.next_seq = max([self.next_seq, *(s.first_seq for s in self._segments)])

    def _records(self, data: bytes, seg: _Segment) -> Iterator[WalRecord]:
        pos = _SEGMENT_HEAD.size
        while pos + _RECORD_HEAD.size <= len(data):
            crc, length, seq, observed_ns, src_len = _RECORD_HEAD.unpack_from(data, pos)
            body_at = pos + _RECORD_HEAD.size
            end = body_at + src_len + length
            if end > len(data) or zlib.crc32(data[pos + 4 : end]) != crc:
                break
            source = data[body_at : body_at + src_len].decode()
            seg.last_seq = seq
            yield WalRecord(seq, observed_ns, source, (data[body_at + src_len : end],))
            pos = end
        return pos

    def open_segment(self, first_file: int) -> None:
        """Starts a new segment; ``first_file`` is the store's next file number."""
        self._close_fd()
        path = self.dir / f"{self.next_seq:020d}.wal"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        os.write(self._fd, _SEGMENT_HEAD.pack(MAGIC, first_file))
        self._segments.append(_Segment(path, self.next_seq, first_file, size=_SEGMENT_HEAD.size))
        if self.fsync_enabled:
            os.fsync(self._fd)
            fsync_dir(self.dir)

    def append(self, records: list[tuple[int, str, Sequence[bytes]]]) -> list[WalRecord]:
        """Writes ``(observed_ns, source, parts)`` records in one ``writev``; numbers them."""
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
        written = _write_all(self._fd, buffers)
        seg = self._segments[-1]
        seg.size += written
        seg.last_seq = out[-1].seq if out else seg.last_seq
        return out

    def sync(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)

    def should_rotate(self) -> bool:
        return bool(self._segments) and self._segments[-1].size >= self.segment_bytes

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
