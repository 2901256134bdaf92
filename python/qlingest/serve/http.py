"""A small HTTP/1.1 server on asyncio Protocols: keep-alive, Content-Length and chunked bodies,
``Expect: 100-continue``, and hard limits on head size, header count and body size.

Framing follows RFC 9112 strictly: lines end in CRLF (a bare LF is a 400), a request with a
body states its length (411 otherwise), and conflicting lengths are a 400.

Requests on one connection are handled one at a time, in order (reading pauses meanwhile), so
a client that pipelines cannot make the server buffer without bound. A ``Content-Length`` body
arriving over many reads is kept as the list of reads and joined once, when complete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

__all__ = ["HttpProtocol", "Request", "Response"]


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int
    max_headers: int
    max_body_bytes: int
    idle_timeout_s: float
    max_connections: int


class HttpError(Exception):
    """A request the server refuses before the handler sees it; the connection closes."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


Handler = Callable[[Request], Awaitable[Response]]


class HttpProtocol(asyncio.Protocol):
    """One connection. ``on_reject(reason)`` counts requests refused by the limits."""

    def __init__(
        self,
        handler: Handler,
        limits: Limits,
        on_reject: Callable[[str], None],
        connections: set[HttpProtocol],
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.on_reject = on_reject
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.closing = False
        self._continued = False
        self._scanned = 0
        # A request whose head is parsed and whose body is still arriving, its length, and
        # the body's reads so far.
        self._awaiting: tuple[Request, bool] | None = None
        self._want = 0
        self._chunks: list[bytes | bytearray] = []
        self._have = 0
        self._idle: asyncio.TimerHandle | None = None
        self._active = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if len(self.connections) >= self.limits.max_connections:
            self.refuse(503, "too_many_connections")
            return
        self.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if self._idle:
            self._idle.cancel()

    def refuse(self, status: int, reason: str) -> None:
        """Answers without reading a request (too many connections) and closes."""
        self.on_reject(reason)
        self._send(Response(status, f"{reason}\n".encode()), close=True)

    def close_when_idle(self) -> None:
        """Graceful shutdown: close now if idle, else after the request in hand."""
        self.closing = True
        if not self.busy and self.transport:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._active = time.monotonic()
        if self._awaiting is not None:
            self._chunks.append(data)
            self._have += len(data)
            if self._have >= self._want:
                self._body_complete()
            return
        self.buf += data
        if not self.busy:
            self._next()

    def _body_complete(self) -> None:
        """Joins the body's reads (one copy) and handles the request; the rest is the next."""
        request, keep_alive = self._awaiting  # type: ignore[misc]
        blob = b"".join(self._chunks)
        request.body = blob[: self._want] if len(blob) > self._want else blob
        self.buf = bytearray(blob[self._want :])
        self._awaiting, self._chunks, self._have = None, [], 0
        self._dispatch(request, keep_alive)

    def _arm_idle(self) -> None:
        self._active = time.monotonic()
        if self._idle:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self.limits.idle_timeout_s, self._on_idle)

    def _on_idle(self) -> None:
        """Closes a connection that sent nothing for the idle timeout; one that sent data
        since the timer was armed (a body arriving slowly) gets the rest of its time."""
        if self.busy or not self.transport:
            return
        quiet = time.monotonic() - self._active
        if quiet < self.limits.idle_timeout_s:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.limits.idle_timeout_s - quiet, self._on_idle)
            return
        self.transport.close()

    def _next(self) -> None:
        """Parses one complete request from the buffer, if there is one, and handles it."""
        try:
            parsed = self._parse()
        except HttpError as e:
            self.on_reject(e.reason)
            self._send(Response(e.status, f"{e.reason}\n".encode()), close=True)
            return
        if parsed is None:
            return
        self._dispatch(*parsed)

    def _dispatch(self, request: Request, keep_alive: bool) -> None:
        self.busy = True
        self.transport.pause_reading()  # type: ignore[union-attr]
        asyncio.get_running_loop().create_task(self._handle(request, keep_alive))

    async def _handle(self, request: Request, keep_alive: bool) -> None:
        try:
            response = await self.handler(request)
        except Exception:
            self.on_reject("internal_error")
            response = Response(500, b"internal error\n")
        self.busy = False
        close = not keep_alive or self.closing
        self._send(response, close=close)
        if close or self.transport is None or self.transport.is_closing():
            return
        self._arm_idle()
        self.transport.resume_reading()
        if self.buf:
            self._next()

    def _send(self, response: Response, *, close: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        phrase = HTTPStatus(response.status).phrase
        head = [f"HTTP/1.1 {response.status} {phrase}"]
        head.append(f"Content-Type: {response.content_type}")
        head.append(f"Content-Length: {len(response.body)}")
        head += [f"{k}: {v}" for k, v in response.headers.items()]
        if close:
            head.append("Connection: close")
        t.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
        if close:
            t.close()

    def _parse(self) -> tuple[Request, bool] | None:
        lim = self.limits
        end = self._head_end()
        if end < 0:
            if len(self.buf) > lim.max_header_bytes:
                raise HttpError(431, "header_too_large")
            return None
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        if len(lines) - 1 > lim.max_headers:
            raise HttpError(431, "too_many_headers")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400, "bad_request_line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise HttpError(400, "bad_header")
            name, value = name.lower(), value.strip()
            if name == "content-length" and headers.get(name, value) != value:
                raise HttpError(400, "bad_content_length")
            headers[name] = value
        body_at = end + 4
        parsed = self._body(method, headers, body_at)
        conn = headers.get("connection", "").lower()
        keep_alive = conn != "close" and (version == "HTTP/1.1" or conn == "keep-alive")
        request = Request(method, target.split("?", 1)[0], headers)
        if parsed is None:
            if self._want:
                # The head is done; the body's reads are gathered apart from now on.
                self._awaiting = request, keep_alive
                self._chunks, self._have = [self.buf[body_at:]], len(self.buf) - body_at
                self.buf = bytearray()
                self._continued = False
                self._scanned = 0
            return None
        request.body, consumed = parsed
        del self.buf[:consumed]
        self._continued = False
        self._scanned = 0
        return request, keep_alive

    def _head_end(self) -> int:
        """Where the head's closing CRLF CRLF starts, or -1 while it has not all arrived.

        Each LF is looked at once however the head arrives, so a slow head costs linear time.
        """
        limit = self.limits.max_header_bytes + 4
        pos = self._scanned
        while (lf := self.buf.find(b"\n", pos, limit)) >= 0:
            if lf == 0 or self.buf[lf - 1] != 0x0D:
                raise HttpError(400, "bare_lf")
            if lf >= 3 and self.buf[lf - 3 : lf + 1] == b"\r\n\r\n":
                return lf - 3
            pos = lf + 1
        self._scanned = pos
        return -1

    def _body(self, method: str, headers: dict[str, str], at: int) -> tuple[bytes, int] | None:
        """The body and the bytes the request took, or ``None`` while more must arrive (then
        ``_want`` is the length of a ``Content-Length`` body, else 0)."""
        self._want = 0
        if "transfer-encoding" in headers and "content-length" in headers:
            # RFC 9112 6.1: both at once is a smuggling attempt or a broken client.
            raise HttpError(400, "conflicting_length")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return self._chunked(at)
        if "transfer-encoding" in headers:
            raise HttpError(501, "unsupported_transfer_encoding")
        if "content-length" not in headers and method in ("POST", "PUT", "PATCH"):
            # A body delimited by closing the connection cannot be acknowledged.
            raise HttpError(411, "length_required")
        text = headers.get("content-length", "0")
        # Digits only: int() would also take "+5", " 5" and "5_0".
        if not (text.isascii() and text.isdigit()):
            raise HttpError(400, "bad_content_length")
        length = int(text)
        if length > self.limits.max_body_bytes:
            raise HttpError(413, "body_too_large")
        if len(self.buf) - at < length:
            self._continue(headers)
            self._want = length
            return None
        return bytes(self.buf[at : at + length]), at + length

    def _continue(self, headers: dict[str, str]) -> None:
        if self._continued or self.transport is None:
            return
        if headers.get("expect", "").lower() == "100-continue":
            self._continued = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _chunked(self, at: int) -> tuple[bytes, int] | None:
        parts, pos, total = [], at, 0
        while True:
            eol = self.buf.find(b"\r\n", pos, pos + 1024)
            if eol < 0:
                if len(self.buf) - pos > 1024:
                    raise HttpError(400, "bad_chunk")
                return None
            size = _chunk_size(bytes(self.buf[pos:eol]))
            total += size
            if total > self.limits.max_body_bytes:
                raise HttpError(413, "body_too_large")
            start = eol + 2
            if len(self.buf) < start + size + 2:
                return None
            if size == 0:
                # Trailers are not supported; the body ends at the blank line.
                if self.buf[start : start + 2] != b"\r\n":
                    raise HttpError(400, "bad_chunk")
                return b"".join(parts), start + 2
            if self.buf[start + size : start + size + 2] != b"\r\n":
                raise HttpError(400, "bad_chunk")
            parts.append(bytes(self.buf[start : start + size]))
            pos = start + size + 2


def _chunk_size(line: bytes) -> int:
    """The size of a chunk from its size line: hex digits only (no sign, prefix or
    underscore, which ``int`` would take), then optional extensions, which are ignored."""
    digits = line.split(b";", 1)[0].rstrip(b" \t")
    if not digits or len(digits) > 16 or digits.strip(b"0123456789abcdefABCDEF"):
        raise HttpError(400, "bad_chunk")
    return int(digits, 16)
