from __future__ import annotations

import gzip
import socket

import pytest
import zstandard
from serve_helpers import ServeProcess, events, metric, stored


@pytest.fixture
def server(tmp_path):
    srv = ServeProcess(tmp_path / "store", "[serve]\nmax_body_bytes = 65536\nmax_connections = 8\n")
    yield srv
    if srv.proc.poll() is None:
        srv.kill()


def test_ndjson_plain_gzip_and_zstd_are_acknowledged_and_committed(server, tmp_path):
    plain, gz, zst = events(range(0, 100)), events(range(100, 200)), events(range(200, 300))
    assert server.post("/v1/events", plain)[0] == 200
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    status, _, body = server.post("/v1/events", gzip.compress(gz), headers)
    assert (status, body) == (200, b'{"accepted":100}')
    headers["Content-Encoding"] = "zstd"
    assert server.post("/v1/events", zstandard.compress(zst), headers)[0] == 200
    assert server.stop() == 0
    frame = stored(tmp_path / "store")
    assert sorted(frame["message"].to_list()) == sorted(f"e{i}" for i in range(300))


def test_committed_within_a_second_while_running(server, tmp_path):
    import time

    server.post("/v1/events", events(range(10)))
    deadline = time.monotonic() + 5
    while stored(tmp_path / "store").height < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stored(tmp_path / "store").height == 10


def raw(server, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_bad_requests_get_the_right_status_and_are_counted(server):
    ctype = {"Content-Type": "application/x-protobuf"}
    assert server.post("/v1/logs", b"\x0a\xff\xff\x01", ctype, receiver="otlp")[0] == 400
    assert server.post("/v1/events", b"{}", {"Content-Type": "image/png"})[0] == 415
    bad_gz = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    assert server.post("/v1/events", b"\x1f\x8bnot gzip", bad_gz)[0] == 400
    assert server.post("/v1/events", b"x" * 70000)[0] == 413
    bomb = gzip.compress(b"\n" * 1_000_000)
    assert server.post("/v1/events", bomb, bad_gz)[0] == 413
    flood = b"POST /v1/events HTTP/1.1\r\n" + b"X-A: b\r\n" * 500 + b"\r\n"
    assert raw(server, flood).startswith(b"HTTP/1.1 431")
    huge = b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"
    assert raw(server, huge).startswith(b"HTTP/1.1 431")
    assert raw(server, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert server.post("/nowhere", b"")[0] == 404

    socks = [socket.create_connection(("127.0.0.1", server.ports["http"])) for _ in range(8)]
    try:
        extra = socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=5)
        assert extra.recv(100).startswith(b"HTTP/1.1 503")
        extra.close()
    finally:
        for s in socks:
            s.close()

    assert server.post("/v1/events", events(range(5)))[0] == 200
    status, text = server.get("/metrics")
    assert status == 200
    reasons = {
        "bad_otlp": 1,
        "unsupported_content_type": 1,
        "bad_gzip": 1,
        "body_too_large": 2,
        "too_many_headers": 1,
        "header_too_large": 1,
        "bad_request_line": 1,
        "not_found": 1,
        "too_many_connections": 1,
    }
    for reason, n in reasons.items():
        assert metric(text, "qlingest_requests_rejected_total", reason=reason) == n, reason
    assert metric(text, "qlingest_events_received_total", receiver="http") == 5
    assert server.stop() == 0


def test_health_and_readiness(server):
    assert server.get("/healthz") == (200, b"ok\n")
    assert server.get("/readyz") == (200, b"ready\n")
    assert server.stop() == 0


def test_bearer_token_is_required_when_configured(tmp_path):
    srv = ServeProcess(tmp_path / "s", '[serve]\ntokens = ["s3cret"]\n')
    try:
        assert srv.post("/v1/events", events(range(3)))[0] == 401
        headers = {"Content-Type": "application/x-ndjson", "Authorization": "Bearer s3cret"}
        assert srv.post("/v1/events", events(range(3)), headers)[0] == 200
        assert srv.get("/healthz")[0] == 200
        assert srv.stop() == 0
    finally:
        if srv.proc.poll() is None:
            srv.kill()


def test_tcp_lines_are_acknowledged_per_chunk(tmp_path):
    srv = ServeProcess(tmp_path / "s", "", tcp=True)
    try:
        with socket.create_connection(("127.0.0.1", srv.ports["tcp"]), timeout=10) as s:
            s.sendall(events(range(50)))
            acked = 0
            buf = b""
            while acked < 50:
                buf += s.recv(1024)
                *done, buf = buf.split(b"\n")
                acked += sum(int(line.split()[1]) for line in done)
        assert acked == 50
        assert srv.stop() == 0
        assert stored(tmp_path / "s").height == 50
    finally:
        if srv.proc.poll() is None:
            srv.kill()
