"""A small HTTP/1.1 server on asyncio Protocols: keep-alive, Content-Length and chunked bodies,
``Expect: 100-continue``, and hard limits on head size, header count and body size.

Framing follows RFC 9112 strictly: lines end in CRLF (a bare LF is a 400), a request with a
body states its length (411 otherwise), and conflicting lengths are a 400, as is a repeated
Transfer-Encoding, Content-Encoding or Content-Type.

Requests on one connection are handled one at a time, in order (reading pauses meanwhile), so
a client that pipelines cannot make the server buffer without bound. A body arriving over many
reads is read as it comes, each byte looked at once: a ``Content-Length`` body is kept as the
list of reads and joined once, when complete; a chunked body is decoded read by read, and its
framing (size lines, extensions, CRLFs) counts against ``max_body_bytes`` with its data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

__all__ = ["HttpProtocol", "Request", "Response"]

#: Seconds a connection closed after an answer keeps reading (and dropping) what the client
#: still sends, so that the client reads the answer rather than a reset.
LINGER_S = 2.0
#: Connections accepted beyond ``max_connections`` for health checks alone: each answers one
#: request for a path of ``HEALTH_PATHS`` (503 to any other), sent within ``PROBE_TIMEOUT_S``
#: of connecting, and is closed.
PROBE_SLOTS = 8
PROBE_TIMEOUT_S = 2.0
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
#: Longest chunk size line, extensions included (400 beyond it).
MAX_CHUNK_LINE = 1024
#: Headers that say how a body is framed or read, which a request may send once (400 when
#: repeated): with the last one winning, ``Transfer-Encoding: gzip`` then ``chunked`` read
#: as chunked where one ``gzip, chunked`` gets 501. ``Content-Length`` may repeat its value
#: (RFC 9112 6.3); a different one is a 400 of its own.
SINGLE_HEADERS = frozenset({"transfer-encoding", "content-encoding", "content-type"})


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
    #: A request's head and body must be in within this many seconds of its first byte.
    request_timeout_s: float = 30.0


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
        probes: set[HttpProtocol] | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.on_reject = on_reject
        self.connections = connections
        self.probes = probes
        self.probe = False
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.closing = False
        self.lingering = False
        self.write_paused = False
        self._continued = False
        self._scanned = 0
        # A request whose head is parsed and whose body is still arriving, and its reader.
        self._awaiting: tuple[Request, bool] | None = None
        self._reader: LengthBody | ChunkedBody | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._active = 0.0
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if len(self.connections) < self.limits.max_connections:
            self.connections.add(self)
            self._arm_idle()
            return
        if self.probes is None or len(self.probes) >= PROBE_SLOTS:
            self.refuse(503, "too_many_connections")
            return
        # Slow or idle clients holding every connection must not take health checks down.
        self.probe = True
        self.probes.add(self)
        self._begin()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if self.probes is not None:
            self.probes.discard(self)
        for timer in (self._idle, self._deadline):
            if timer:
                timer.cancel()
        self._deadline = None  # no request of its is in hand any more

    def refuse(self, status: int, reason: str) -> None:
        """Answers without reading a request (too many connections) and closes at once: a
        flood of connections must not be kept open to linger."""
        self.on_reject(reason)
        self._send(Response(status, f"{reason}\n".encode()), close=True, linger=False)

    @property
    def in_hand(self) -> bool:
        """Whether a request is being handled, or has begun to arrive (not on a health check
        connection, which holds none worth waiting for)."""
        return self.busy or (self._deadline is not None and not self.probe)

    def close_when_idle(self) -> None:
        """Graceful shutdown: close now if idle, else after the request in hand, one still
        arriving included."""
        self.closing = True
        if not self.in_hand and self.transport:
            self.transport.close()

    def cut_short(self) -> None:
        """Shutdown's grace is over: a request still arriving is answered 503 and the
        connection closes; one being handled is left to finish."""
        if self.busy or self._deadline is None or self.lingering:
            return
        self._deadline.cancel()
        self._deadline = None
        if self.transport and not self.transport.is_closing():
            self._fail(HttpError(503, "shutting_down"))

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        self._active = time.monotonic()
        if self._awaiting is not None:
            self._body_received(data)
            return
        self.buf += data
        if not self.busy:
            self._begin()
            self._next()

    def _body_received(self, data: bytes) -> None:
        """Feeds a read to the body in hand; once complete, handles the request, and what
        follows the body is the start of the next."""
        try:
            end = self._reader.feed(data)  # type: ignore[union-attr]
        except HttpError as e:
            self._fail(e)
            return
        if end is None:
            return
        request, keep_alive = self._awaiting  # type: ignore[misc]
        request.body = self._reader.body()  # type: ignore[union-attr]
        self.buf = bytearray(data[end:])
        self._awaiting, self._reader = None, None
        self._dispatch(request, keep_alive)

    def _arm_idle(self) -> None:
        self._active = time.monotonic()
        if self._idle:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self.limits.idle_timeout_s, self._on_idle)

    def _on_idle(self) -> None:
        """Closes a connection that sent nothing for the idle timeout; one that sent data
        since the timer was armed (a body arriving slowly) gets the rest of its time, and one
        with a request begun is left to the request's deadline, which answers 408."""
        if self.busy or not self.transport or self._deadline is not None:
            return
        quiet = time.monotonic() - self._active
        if quiet < self.limits.idle_timeout_s:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.limits.idle_timeout_s - quiet, self._on_idle)
            return
        self.transport.close()

    def _begin(self) -> None:
        """Starts the clock of the request whose first bytes are in (of a health check
        connection: at connecting); it must be whole before the deadline."""
        if self._deadline is None:
            timeout = PROBE_TIMEOUT_S if self.probe else self.limits.request_timeout_s
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(timeout, self._on_deadline)

    def _on_deadline(self) -> None:
        """A request too slow to arrive (a slow or stalled client holding a connection) gets
        408 and the connection closes; on a health check connection, the 503 of the limit."""
        self._deadline = None
        if self.busy or not self.transport or self.transport.is_closing():
            return
        if self.probe:
            self.refuse(503, "too_many_connections")
        else:
            self._fail(HttpError(408, "request_timeout"))

    def _next(self) -> None:
        """Parses one complete request from the buffer, if there is one, and handles it."""
        try:
            parsed = self._parse()
        except HttpError as e:
            self._fail(e)
            return
        if parsed is None:
            return
        self._dispatch(*parsed)

    def _fail(self, e: HttpError) -> None:
        """Refuses the request in hand and closes; a health check connection does not linger,
        so its slot is free at once."""
        self.on_reject(e.reason)
        self._send(Response(e.status, f"{e.reason}\n".encode()), close=True, linger=not self.probe)

    def _dispatch(self, request: Request, keep_alive: bool) -> None:
        if self._deadline:
            self._deadline.cancel()
            self._deadline = None
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
        close = not keep_alive or self.closing or self.probe
        self._send(response, close=close, head_only=request.method == "HEAD")
        if close or self.transport is None or self.transport.is_closing():
            return
        self._arm_idle()
        if not self.write_paused:
            self._read_on()

    def _read_on(self) -> None:
        """Reads again after an answer: first the requests already buffered."""
        self.transport.resume_reading()  # type: ignore[union-attr]
        if self.buf:
            self._begin()
            self._next()

    def pause_writing(self) -> None:
        """Answers not yet sent passed the write buffer's high mark: a client that pipelines
        and does not read its answers is not read from until it does."""
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        t = self.transport
        if not self.busy and not self.lingering and t is not None and not t.is_closing():
            self._read_on()

    def _send(
        self, response: Response, *, close: bool, linger: bool = True, head_only: bool = False
    ) -> None:
        """Writes the answer; ``head_only`` (a HEAD request) leaves out its body, as RFC 9110
        9.3.2 asks, and keeps the ``Content-Length`` a GET would get."""
        t = self.transport
        if t is None or t.is_closing():
            return
        phrase = HTTPStatus(response.status).phrase
        lines = [f"HTTP/1.1 {response.status} {phrase}"]
        lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(response.body)}")
        lines += [f"{k}: {v}" for k, v in response.headers.items()]
        if close:
            lines.append("Connection: close")
        body = b"" if head_only else response.body
        t.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        if close and linger:
            self._linger(t)
        elif close:
            t.close()

    def _linger(self, t: asyncio.Transport) -> None:
        """Closes after an answer: the sending side at once, the reading side when the client
        closes or after ``LINGER_S``, dropping what it still sends meanwhile. Closing both at
        once would answer a client still sending a refused body with a reset, which can
        destroy the answer before the client reads it."""
        if not t.can_write_eof():
            t.close()
            return
        t.write_eof()
        self.lingering = True
        t.resume_reading()
        asyncio.get_running_loop().call_later(LINGER_S, t.close)

    def _parse(self) -> tuple[Request, bool] | None:
        lim = self.limits
        if not _method_start(self.buf):
            # Not HTTP/1 (a TLS hello on the plain port): refused as soon as its first bytes
            # are in rather than at the request deadline, so such a client fails at once.
            raise HttpError(400, "bad_request_line")
        end = self._head_end()
        if end < 0:
            if len(self.buf) > lim.max_header_bytes:
                raise HttpError(431, "header_too_large")
            return None
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        if len(lines) - 1 > lim.max_headers:
            raise HttpError(431, "too_many_headers")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not _http1(parts[2]):
            raise HttpError(400, "bad_request_line")
        method, target, version = parts
        if self.probe and target.split("?", 1)[0] not in HEALTH_PATHS:
            # Refused before its body is read: these connections are beyond the limit.
            raise HttpError(503, "too_many_connections")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise HttpError(400, "bad_header")
            name, value = name.lower(), value.strip()
            if name == "content-length" and headers.get(name, value) != value:
                raise HttpError(400, "bad_content_length")
            if name in SINGLE_HEADERS and name in headers:
                raise HttpError(400, "repeated_header")
            headers[name] = value
        reader = self._body_reader(method, headers)
        conn = headers.get("connection", "").lower()
        keep_alive = conn != "close" and (version == "HTTP/1.1" or conn == "keep-alive")
        request = Request(method, target.split("?", 1)[0], headers)
        body_at = end + 4
        self._continued = False
        self._scanned = 0
        if reader is None:
            del self.buf[:body_at]
            return request, keep_alive
        body_end = reader.feed(self.buf, body_at)
        if body_end is None:
            # The head is done; the body is read apart from now on.
            self._continue(headers)
            self._awaiting, self._reader = (request, keep_alive), reader
            self.buf = bytearray()
            return None
        request.body = reader.body()
        del self.buf[:body_end]
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

    def _body_reader(self, method: str, headers: dict[str, str]) -> LengthBody | ChunkedBody | None:
        """What reads the request's body, or ``None`` when it has none."""
        if "transfer-encoding" in headers and "content-length" in headers:
            # RFC 9112 6.1: both at once is a smuggling attempt or a broken client.
            raise HttpError(400, "conflicting_length")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return ChunkedBody(self.limits.max_body_bytes)
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
        return LengthBody(length) if length else None

    def _continue(self, headers: dict[str, str]) -> None:
        if self._continued or self.transport is None:
            return
        if headers.get("expect", "").lower() == "100-continue":
            self._continued = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")


class LengthBody:
    """A ``Content-Length`` body: its reads are kept as they come and joined once."""

    def __init__(self, length: int) -> None:
        self.want = length
        self.parts: list[bytes | bytearray] = []

    def feed(self, data: bytes | bytearray, pos: int = 0) -> int | None:
        """Takes ``data[pos:]``; where the body ends in ``data`` once complete, else ``None``."""
        end = min(len(data), pos + self.want)
        self.parts.append(data if (pos, end) == (0, len(data)) else data[pos:end])
        self.want -= end - pos
        return end if not self.want else None

    def body(self) -> bytes:
        part = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        return part if isinstance(part, bytes) else bytes(part)


class ChunkedBody:
    """A chunked body decoded read by read: each byte is looked at once, only a size line or
    CRLF cut by the end of a read is carried over (at most ``MAX_CHUNK_LINE`` bytes).

    Data and framing together count against ``limit`` (413 beyond it), so chunk extensions
    cannot make a small body cost unbounded reading. Trailer fields after the last chunk are
    read past and dropped (counted against the limit too).

    Limitation: each chunk costs about 1.3 µs of the event loop, so the smallest chunks cost
    the most: 16 MiB sent as 1-byte chunks takes about 3.8 s (at most ~75 ms per read), 8 KiB
    chunks 0.02 s. Small chunks are not refused, since streaming clients send them.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes | bytearray] = []
        self.size = 0  # data and framing so far
        self._left = 0  # data of the current chunk still to come
        self._expect = b""  # the CRLF due after a chunk's data, or after the last chunk
        self._last = False
        self._carry = b""

    def feed(self, data: bytes | bytearray, pos: int = 0) -> int | None:
        """Takes ``data[pos:]``; where the body ends in ``data`` once complete, else ``None``."""
        shift = 0  # where data[pos] is once the carried bytes are put before it
        if self._carry:
            shift = len(self._carry) - pos
            data, pos, self._carry = self._carry + data[pos:], 0, b""
        while pos < len(data):
            if self._left:
                take = min(self._left, len(data) - pos)
                self.parts.append(data[pos : pos + take])
                pos, self._left = pos + take, self._left - take
                self._expect = b"" if self._left else b"\r\n"
            elif self._expect:
                if len(data) - pos < 2:
                    break
                if data[pos : pos + 2] != b"\r\n":
                    if not self._last:
                        raise HttpError(400, "bad_chunk")
                    # A trailer field after the last chunk: counted, bounded and dropped.
                    eol = data.find(b"\r\n", pos, pos + MAX_CHUNK_LINE + 2)
                    if eol < 0:
                        if len(data) - pos > MAX_CHUNK_LINE + 1:
                            raise HttpError(400, "bad_chunk")
                        break
                    self._count(eol + 2 - pos)
                    pos = eol + 2
                    continue
                pos, self._expect = pos + 2, b""
                if self._last:
                    return pos - shift
            else:
                eol = data.find(b"\r\n", pos, pos + MAX_CHUNK_LINE + 2)
                if eol < 0:
                    if len(data) - pos > MAX_CHUNK_LINE + 1:
                        raise HttpError(400, "bad_chunk")
                    break
                self._chunk(_chunk_size(bytes(data[pos:eol])), eol + 2 - pos)
                pos = eol + 2
        self._carry = bytes(data[pos:])
        return None

    def _chunk(self, size: int, line: int) -> None:
        """Counts a chunk, its size line and its CRLF; the last chunk has size 0."""
        self._count(size + line + 2)
        self._left, self._last = size, not size
        self._expect = b"\r\n" if not size else b""

    def _count(self, framed: int) -> None:
        self.size += framed
        if self.size > self.limit:
            raise HttpError(413, "body_too_large")

    def body(self) -> bytes:
        return b"".join(self.parts)


#: Longest request method read before its space (``OPTIONS`` and ``CONNECT`` are 7 bytes).
MAX_METHOD = 16
#: The bytes of a method, an HTTP token.
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _method_start(buf: bytearray) -> bool:
    """Whether ``buf`` can begin a request line: token bytes up to the method's space, which
    comes within MAX_METHOD bytes."""
    head = bytes(buf[:MAX_METHOD])
    space = head.find(b" ")
    method = head if space < 0 else head[:space]
    if space == 0 or (space < 0 and len(head) == MAX_METHOD):
        return False
    return all(c in _TOKEN for c in method)


def _http1(version: str) -> bool:
    """``HTTP/1.`` and one digit (RFC 9112 2.3), nothing after it."""
    return len(version) == 8 and version.startswith("HTTP/1.") and version[7] in "0123456789"


def _chunk_size(line: bytes) -> int:
    """The size of a chunk from its size line: hex digits only (no sign, prefix or
    underscore, which ``int`` would take), then optional extensions, which are ignored."""
    digits = line.split(b";", 1)[0].rstrip(b" \t")
    if not digits or len(digits) > 16 or digits.strip(b"0123456789abcdefABCDEF"):
        raise HttpError(400, "bad_chunk")
    return int(digits, 16)
