"""Reading input: files, .gz, .zst and stdin in bounded chunks, framed at line ends."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

__all__ = [
    "Chunk",
    "GzipReader",
    "Interrupted",
    "Stop",
    "StreamReader",
    "ZstdReader",
    "open_input",
    "path_text",
    "read_chunks",
]

CHUNK_BYTES = 8 << 20


class Chunk:
    """Whole lines of input; ``oversized`` marks a line cut at the size limit."""

    __slots__ = ("data", "oversized", "size")

    def __init__(self, data: bytes | memoryview, oversized: bool = False, size: int = -1) -> None:
        self.data = data
        self.oversized = oversized
        #: Input bytes the chunk stands for: a cut line's skipped rest counts too.
        self.size = len(data) if size < 0 else size


GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def path_text(path: str | bytes | Path) -> str:
    """A path as UTF-8 text: the bytes of its name that are not UTF-8 as ``\\xff`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class Interrupted(Exception):
    """Reading stopped on request (see :class:`Stop`) before the input's end."""


class Stop:
    """A request to stop reading, safe to make from a signal handler: ``set`` records the
    reason and wakes a :class:`StreamReader` waiting for input, through a pipe of its own."""

    def __init__(self) -> None:
        #: Why reading stopped (a signal's name), or ``None`` while it goes on.
        self.reason: str | None = None
        self._wake, self._waker = os.pipe()
        os.set_blocking(self._waker, False)

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        with contextlib.suppress(OSError):  # full: woken already
            os.write(self._waker, b"\0")

    def is_set(self) -> bool:
        return self.reason is not None

    def fileno(self) -> int:
        """Readable once ``set`` has run."""
        return self._wake

    def close(self) -> None:
        os.close(self._wake)
        os.close(self._waker)


#: Once something has arrived, a stream read waits this long for more before returning it.
STREAM_GATHER_S = 0.01


class StreamReader:
    """A pipe, socket or terminal, read as its data arrives: a read returns what is there
    (up to ``size`` bytes) as soon as no more follows, rather than waiting to fill ``size``.

    While nothing has arrived, ``idle`` is called before each wait and returns how many
    seconds to wait before calling it again (``None``: until input comes); a set ``stop``
    ends the wait by raising :class:`Interrupted`."""

    def __init__(
        self,
        raw: BinaryIO,
        *,
        idle: Callable[[], float | None] | None = None,
        stop: Stop | None = None,
    ) -> None:
        self._raw, self._idle, self._stop = raw, idle, stop
        self._fd = raw.fileno()
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        if stop is not None:
            self._poll.register(stop.fileno(), select.POLLIN)

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        size = size if size > 0 else CHUNK_BYTES
        parts: list[bytes] = []
        got = 0
        while got < size:
            if not self._wait(STREAM_GATHER_S if got else None):
                break
            data = os.read(self._fd, min(size - got, 1 << 20))
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def _wait(self, timeout: float | None) -> bool:
        """Whether input (or its end) is there; ``False`` after ``timeout`` seconds without.
        With no timeout, waits as long as it takes, calling ``idle`` between waits."""
        while True:
            if self._stop is not None and self._stop.is_set():
                if timeout is not None:
                    return False  # what arrived so far is returned first
                raise Interrupted(self._stop.reason)
            wait = self._idle() if timeout is None and self._idle is not None else timeout
            ms = None if wait is None else max(0, round(wait * 1000))
            if self._fd in {fd for fd, _ in self._poll.poll(ms)}:
                return True
            if timeout is not None:
                return False

    def close(self) -> None:
        self._raw.close()


def _stream(raw: BinaryIO) -> bool:
    """Whether ``raw`` is a pipe, socket or terminal (not a regular file or a block device)."""
    try:
        mode = os.fstat(raw.fileno()).st_mode
    except (AttributeError, OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def open_input(
    path: str | bytes | Path,
    *,
    idle: Callable[[], float | None] | None = None,
    stop: Stop | None = None,
) -> BinaryIO:
    """A binary stream of the decompressed input; ``-`` is stdin. A ``bytes`` path is the
    file system's own name (``os.fsdecode``); anything but a path raises ``TypeError``.

    gzip and zstd are recognised by their magic bytes, whatever the name says, so compressed
    data piped to stdin and a plain file named ``.gz`` both read right. A pipe, socket or
    terminal is read as its data arrives (:class:`StreamReader`, with ``idle`` and ``stop``);
    stdin is then read from its file descriptor, past Python's buffer."""
    name = os.fsdecode(path)
    # The caller closes the returned stream, which closes the file.
    if name == "-" and sys.stdin is None:
        raise OSError(errno.EBADF, "stdin is closed")
    raw = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    if _stream(raw):
        # Unbuffered, so that waiting on the descriptor sees every byte not yet read.
        if name == "-":
            unbuffered = open(raw.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
        else:
            unbuffered = raw.detach()  # type: ignore[attr-defined]
        raw = StreamReader(unbuffered, idle=idle, stop=stop)  # type: ignore[assignment]
    head = _peek(raw, 4)
    if head.startswith(GZIP_MAGIC):
        return GzipReader(raw, head)  # type: ignore[return-value]
    if head.startswith(ZSTD_MAGIC) or _zstd_skippable(head):
        return ZstdReader(raw, head)  # type: ignore[return-value]
    return _Prefixed(raw, head)  # type: ignore[return-value]


def _zstd_skippable(head: bytes) -> bool:
    """A zstd skippable frame (magic 0x184D2A50 to 0x184D2A5F), which pzstd writes first."""
    return len(head) == 4 and head[1:] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50


def _peek(raw: BinaryIO, n: int) -> bytes:
    """The first ``n`` bytes of ``raw`` (fewer at its end); a pipe cannot seek back."""
    head = b""
    while len(head) < n and (more := raw.read(n - len(head))):
        head += more
    return head


class _Prefixed:
    """A stream whose first bytes were already read to sniff the format; a seekable one goes
    back over them instead, and stays seekable."""

    def __init__(self, raw: BinaryIO, head: bytes) -> None:
        self._raw, self._head = raw, head
        self._seekable = _seekable(raw)
        if self._seekable and head:
            raw.seek(-len(head), os.SEEK_CUR)
            self._head = b""

    def seekable(self) -> bool:
        return self._seekable

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            if size < 0:
                return head + self._raw.read()
            return head + (self._raw.read(size - len(head)) if size > len(head) else b"")
        return self._raw.read(size)

    def close(self) -> None:
        if self._raw is not sys.stdin.buffer:
            self._raw.close()

    def __enter__(self) -> _Prefixed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GzipReader(_Prefixed):
    """Decompresses concatenated gzip members block by block, so what precedes damage in the
    file is returned before the error is raised (``gzip.open`` loses its whole last read)."""

    def __init__(self, raw: BinaryIO, head: bytes, block: int = 1 << 16) -> None:
        super().__init__(raw, head)
        self._seekable = False  # the decompressed stream cannot seek
        self._block = block
        self._dobj = zlib.decompressobj(wbits=31)
        self._rest = b""

    def read(self, size: int = -1) -> bytes:
        while True:
            compressed = self._rest or super().read(self._block)
            self._rest = b""
            if not compressed:
                if not self._dobj.eof:
                    raise EOFError("gzip input ends inside a member: the file is truncated")
                return b""
            if self._dobj.eof:
                if not compressed.lstrip(b"\0"):
                    continue
                self._dobj = zlib.decompressobj(wbits=31)
            # Bounded: one compressed block can expand a thousandfold (a gzip bomb).
            out = self._dobj.decompress(compressed, size if size > 0 else 1 << 22)
            self._rest = self._dobj.unused_data if self._dobj.eof else self._dobj.unconsumed_tail
            if out:
                return out


class _Watched:
    """A compressed stream whose bytes pass through a frame walker as they are read."""

    def __init__(self, raw: _Prefixed, frames: _ZstdFrames) -> None:
        self._raw, self._frames = raw, frames

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._frames.feed(data)
        return data


_ZSTD_FRAME = 0xFD2FB528
_FCS_BYTES = (0, 2, 4, 8)
_DICT_ID_BYTES = (0, 1, 2, 4)


class _ZstdFrames:
    """Follows a zstd stream's frame and block headers (RFC 8878) without decompressing, to
    tell whether the bytes seen so far end exactly at the end of a frame."""

    def __init__(self) -> None:
        self._need = 4  # bytes of the header being read
        self._head = b""
        self._state = "magic"
        self._skip = 0  # bytes of block or skippable-frame content to pass over
        self._checksum = False

    @property
    def complete(self) -> bool:
        return self._state == "magic" and not self._head and not self._skip

    def feed(self, data: bytes) -> None:
        at = 0
        while at < len(data) and self._state != "unknown":
            if self._skip:
                step = min(self._skip, len(data) - at)
                self._skip -= step
                at += step
                continue
            take = min(self._need - len(self._head), len(data) - at)
            self._head += data[at : at + take]
            at += take
            if len(self._head) == self._need:
                head, self._head = self._head, b""
                self._header(head)

    def _header(self, head: bytes) -> None:
        """Acts on one complete header and says what to read next."""
        if self._state == "magic":
            magic = int.from_bytes(head, "little")
            if magic == _ZSTD_FRAME:
                self._state, self._need = "descriptor", 1
            elif magic & 0xFFFFFFF0 == 0x184D2A50:
                self._state, self._need = "skippable", 4
            else:
                self._state = "unknown"  # not zstd: the decompressor reports it; not complete
        elif self._state == "skippable":
            self._skip = int.from_bytes(head, "little")
            self._state, self._need = "magic", 4
        elif self._state == "descriptor":
            fhd = head[0]
            single_segment = fhd >> 5 & 1
            self._checksum = bool(fhd >> 2 & 1)
            fcs = _FCS_BYTES[fhd >> 6] or single_segment
            self._skip = (not single_segment) + _DICT_ID_BYTES[fhd & 3] + fcs
            self._state, self._need = "block", 3
        elif self._state == "block":
            bits = int.from_bytes(head, "little")
            kind, size = bits >> 1 & 3, bits >> 3
            self._skip = 1 if kind == 1 else size
            if bits & 1:  # the frame's last block
                self._skip += 4 * self._checksum
                self._state, self._need = "magic", 4


class ZstdReader:
    """Decompresses concatenated zstd frames, at most ``size`` bytes a read, and fails on a
    truncated last frame, which a plain stream reader would end quietly, losing the rest of
    the input unseen. The frame and block headers are followed as the compressed bytes are
    read (nothing is decompressed twice) to know whether the input ended on a frame's end."""

    def __init__(self, raw: BinaryIO, head: bytes = b"", block: int = 1 << 16) -> None:
        self._frames = _ZstdFrames()
        self._raw = _Prefixed(raw, head)
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            _Watched(self._raw, self._frames), read_size=block, read_across_frames=True,
            closefd=False,
        )  # fmt: skip

    def read(self, size: int = -1) -> bytes:
        # A bounded read: one compressed block can expand to gigabytes (a zstd bomb).
        out = self._reader.read(size if size > 0 else 1 << 22)
        if not out and not self._frames.complete:
            raise EOFError("zstd input ends inside a frame: the file is truncated")
        return out

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> ZstdReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Bytes of a line the decoder does not count against the size limit: a byte order mark (3)
#: and a carriage return before the newline (1).
_LINE_MARKS = 4


def read_chunks(
    stream: BinaryIO, max_line_bytes: int, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[Chunk]:
    """Yields runs of whole lines. A line longer than ``max_line_bytes`` is cut there (the
    decoder dead-letters it) and the rest of it skipped, so memory stays bounded.

    A chunk is a memoryview of the block read, not a copy: on a seekable stream the bytes
    after the block's last newline are read again with the next block; on a pipe they are
    carried over, which costs one copy of the next chunk."""
    seekable = _seekable(stream)
    carry = b""
    skipping = False
    skipped = 0  # bytes of a cut line dropped since the last chunk
    while block := stream.read(chunk_bytes):
        start = 0
        if skipping:
            end = block.find(b"\n")
            if end < 0:
                skipped += len(block)
                continue
            start, skipping = end + 1, False
            skipped += start
        cut = block.rfind(b"\n", start)
        if cut >= 0:
            lines = memoryview(block)[start : cut + 1]
            data = carry + lines if carry else lines
            yield Chunk(data, size=len(data) + skipped)
            skipped = 0
            tail = len(block) - cut - 1
            if seekable and tail:
                stream.seek(-tail, os.SEEK_CUR)
                carry = b""
            else:
                carry = block[cut + 1 :]
        else:
            carry += memoryview(block)[start:]
        # The decoder measures a line without a byte order mark and a final carriage return:
        # a line is cut only once it passes the limit with both taken off, and its cut part
        # keeps enough of it to pass the limit that way too.
        if len(carry) > max_line_bytes + _LINE_MARKS:
            cut_line = carry[: max_line_bytes + _LINE_MARKS + 1] + b"\n"
            yield Chunk(cut_line, oversized=True, size=len(carry) + skipped)
            carry, skipping, skipped = b"", True, 0
    if carry or skipped:
        yield Chunk(carry, size=len(carry) + skipped)


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False
