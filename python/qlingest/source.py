"""Reading input: files, .gz, .zst and stdin in bounded chunks, framed at line ends."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

__all__ = ["Chunk", "open_input", "read_chunks"]

CHUNK_BYTES = 4 << 20


class Chunk:
    """Whole lines of input; ``oversized`` marks a line cut at the size limit."""

    __slots__ = ("data", "oversized")

    def __init__(self, data: bytes, oversized: bool = False) -> None:
        self.data = data
        self.oversized = oversized


def open_input(path: str | Path) -> BinaryIO:
    """A binary stream of the decompressed input; ``-`` is stdin."""
    name = str(path)
    if name == "-":
        return sys.stdin.buffer
    # The caller closes the returned stream, which closes the file.
    if name.endswith(".gz"):
        return gzip.open(name, "rb")  # type: ignore[return-value]
    raw = open(name, "rb")  # noqa: SIM115
    if name.endswith(".zst"):
        return ZstdReader(raw)  # type: ignore[return-value]
    return raw


class ZstdReader:
    """Decompresses concatenated zstd frames and fails on a truncated last frame, which a
    plain stream reader would end quietly, losing the rest of the input unseen."""

    def __init__(self, raw: BinaryIO, block: int = 1 << 20) -> None:
        self._raw, self._block = raw, block
        self._dobj = zstandard.ZstdDecompressor().decompressobj()
        self._started = False

    def read(self, size: int = -1) -> bytes:
        while True:
            compressed = self._raw.read(self._block)
            if not compressed:
                if self._started and not self._dobj.eof:
                    raise EOFError("zstd input ends inside a frame: the file is truncated")
                return b""
            out = self._decompress(compressed)
            if out:
                return out

    def _decompress(self, compressed: bytes) -> bytes:
        parts = []
        while compressed:
            if self._dobj.eof:
                self._dobj = zstandard.ZstdDecompressor().decompressobj()
            self._started = True
            parts.append(self._dobj.decompress(compressed))
            compressed = self._dobj.unused_data if self._dobj.eof else b""
        return b"".join(parts)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> ZstdReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_chunks(
    stream: BinaryIO, max_line_bytes: int, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[Chunk]:
    """Yields runs of whole lines. A line longer than ``max_line_bytes`` is cut there (the
    decoder dead-letters it) and the rest of it skipped, so memory stays bounded."""
    carry = b""
    skipping = False
    while block := stream.read(chunk_bytes):
        if skipping:
            end = block.find(b"\n")
            if end < 0:
                continue
            block, skipping = block[end + 1 :], False
        buf = carry + block if carry else block
        cut = buf.rfind(b"\n")
        if cut >= 0:
            yield Chunk(buf[: cut + 1])
            carry = buf[cut + 1 :]
        else:
            carry = buf
        if len(carry) > max_line_bytes:
            yield Chunk(carry[: max_line_bytes + 1] + b"\n", oversized=True)
            carry, skipping = b"", True
    if carry:
        yield Chunk(carry)
