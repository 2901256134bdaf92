from __future__ import annotations

import contextlib
import gzip
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest
import zstandard
from qlingest.config import load_config
from qlingest.exceptions import ConfigError
from qlingest.serve.http import ChunkedBody, HttpError
from qlingest.serve.server import count_events
from serve_helpers import ROOT, ServeProcess, events, metric, stored


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


def test_a_tls_hello_on_the_plain_port_is_refused_at_once(server):
    # It waited for the 30 s request deadline (the hello holds no CRLF), and its client with
    # it; `raw` gives up after 10 s.
    hello = bytes.fromhex("160301 00a5 010000a1 0303") + bytes(range(16, 48))
    assert raw(server, hello).startswith(b"HTTP/1.1 400")
    # Sent one byte at a time, a request still reads as one.
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=10) as s:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n":
            s.sendall(bytes([byte]))
        assert s.recv(100).startswith(b"HTTP/1.1 200")


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
        # Beyond the limit only health checks are answered.
        extra = socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=5)
        extra.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert extra.recv(100).startswith(b"HTTP/1.1 503")
        extra.close()
    finally:
        for s in socks:
            s.close()

    # The server may not have seen the eight closes yet; each early try is refused and counted.
    refused_again = 0
    while (status := server.post("/v1/events", events(range(5)))[0]) == 503 and refused_again < 50:
        refused_again += 1
        time.sleep(0.05)
    assert status == 200
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
        "too_many_connections": 1 + refused_again,
    }
    for reason, n in reasons.items():
        assert metric(text, "qlingest_requests_rejected_total", reason=reason) == n, reason
    assert metric(text, "qlingest_events_received_total", receiver="http") == 5
    assert server.stop() == 0


def test_health_and_readiness(server):
    assert server.get("/healthz") == (200, b"ok\n")
    assert server.get("/readyz") == (200, b"ready\n")
    assert server.stop() == 0


def test_head_is_answered_without_its_body_on_a_kept_alive_connection(server):
    """Breaker report s13: HEAD got the body too, which the client read as the start of the
    next answer."""
    both = b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    both += b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    head, get = raw(server, both).split(b"HTTP/1.1 ")[1:]
    assert head.startswith(b"200 OK\r\n") and head.endswith(b"Content-Length: 3\r\n\r\n")
    assert get.startswith(b"200 OK\r\n") and get.endswith(b"\r\n\r\nok\n")

    c = server.conn()
    answers = []
    for path in ("/readyz", "/metrics", "/v1/events", "/healthz"):
        c.request("HEAD", path)
        r = c.getresponse()
        answers.append((r.status, r.read(), int(r.headers["Content-Length"]) > 0))
    c.request("GET", "/healthz")
    assert c.getresponse().read() == b"ok\n"
    c.close()
    assert answers == [(200, b"", True), (200, b"", True), (405, b"", True), (200, b"", True)]


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


def test_tcp_a_client_that_half_closes_gets_its_answer(tmp_path):
    srv = ServeProcess(tmp_path / "s", "", tcp=True)
    try:
        with socket.create_connection(("127.0.0.1", srv.ports["tcp"]), timeout=10) as s:
            # The last line has no newline: the half-close ends it.
            s.sendall(events(range(3)) + b'{"msg":"last"}')
            s.shutdown(socket.SHUT_WR)
            answers = b""
            while chunk := s.recv(1024):
                answers += chunk
        assert sum(int(line.split()[1]) for line in answers.splitlines()) == 4
        assert srv.stop() == 0
        assert stored(tmp_path / "s").height == 4
    finally:
        if srv.proc.poll() is None:
            srv.kill()


def test_tokens_with_a_tcp_receiver_warn_that_tcp_is_not_guarded(tmp_path):
    srv = ServeProcess(tmp_path / "s", '[serve]\ntokens = ["t0k"]\n', tcp=True)
    try:
        srv.proc.send_signal(signal.SIGTERM)
        _, err = srv.proc.communicate(timeout=30)
        assert srv.proc.returncode == 0
        warnings = [json.loads(x) for x in err.splitlines() if b'"warn"' in x]
        assert any("TCP receiver" in w["msg"] and w["tcp"] == srv.ports["tcp"] for w in warnings)
    finally:
        if srv.proc.poll() is None:
            srv.kill()


def serve_cli(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "qlingest", "serve", "--data-dir", str(tmp_path / "s"), *flags]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_a_port_out_of_range_is_a_one_line_error(tmp_path, port):
    done = serve_cli(tmp_path, "--http-port", port, "--otlp-port", "0")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("qlingest: error: invalid configuration: Expected `int`")
    assert "$.serve.http_port" in done.stderr and done.stdout == ""


def test_a_port_in_use_is_a_one_line_error_naming_the_address(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve_cli(tmp_path, "--http-port", "0", "--otlp-port", str(port))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("qlingest: error:")]
    assert errors == [
        f"qlingest: error: otlp receiver cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("flush_interval_s = 0", "`float` >= 0.01"),  # an idle server spun a core
        ("flush_interval_s = -1", "`float` >= 0.01"),
        ("flush_interval_s = nan", "`float` >= 0.01"),
        ("idle_timeout_s = 0", "`float` >= 0.1"),  # closed every connection
        ("idle_timeout_s = inf", "`float` <= 86400.0"),
        ("shutdown_deadline_s = -1", "`float` >= 0.1"),
        ("max_connections = 0", "`int` >= 1"),
        ("max_body_bytes = -1", "`int` >= 1"),
        ("wal_segment_bytes = 1", "`int` >= 65536"),
        ('tokens = [""]', "`str` of length >= 1"),  # took a bare "Bearer"
        ('tokens = [" "]', r"`str` matching regex '\\A[!-~]+\\Z'"),  # could never match
        ('tokens = ["abc\\n"]', r"`str` matching regex '\\A[!-~]+\\Z'"),  # nor could this
    ],
)
def test_serve_settings_out_of_range_are_config_errors(tmp_path, setting, expected):
    """Breaker report s13: these were accepted."""
    config = tmp_path / "c.toml"
    config.write_text(f"[serve]\n{setting}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    name = setting.split(" ")[0]
    assert f"Expected {expected} - at `$.serve.{name}" in str(refused.value)


def test_a_serve_setting_out_of_range_is_a_one_line_error(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[serve]\nflush_interval_s = 0\n")
    done = serve_cli(tmp_path, "--config", str(config), "--http-port", "0", "--otlp-port", "0")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("qlingest: error: ") and done.stderr.count("\n") == 1
    assert "$.serve.flush_interval_s" in done.stderr


@pytest.mark.parametrize("setting", ["tls_cert", "tls_key"])
def test_half_a_tls_configuration_is_a_one_line_error(tmp_path, setting):
    """Breaker report s13: a certificate without its key served plain HTTP, silently."""
    config = tmp_path / "half.toml"
    config.write_text(f'[serve]\n{setting} = "{tmp_path / "x.pem"}"\n')
    done = serve_cli(tmp_path, "--config", str(config), "--http-port", "0", "--otlp-port", "0")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "serve.tls_cert and serve.tls_key go together" in done.stderr


def test_a_certificate_that_cannot_be_loaded_is_a_one_line_error_leaving_nothing(tmp_path):
    """A missing certificate file ended the server with a FileNotFoundError naming no file,
    after an empty log segment had been made."""
    store = tmp_path / "store"
    config = tmp_path / "tls.toml"
    missing = tmp_path / "missing-cert.pem"
    config.write_text(f'[serve]\ntls_cert = "{missing}"\ntls_key = "{tmp_path / "k.pem"}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "qlingest", "serve", "--data-dir", str(store), "--config",
         str(config), "--http-port", "0", "--otlp-port", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"serve.tls_cert '{missing}'" in done.stderr and "cannot be loaded" in done.stderr
    assert not list(store.rglob("*.wal")) and not (store / "wal").exists()


@pytest.mark.parametrize("setting", ["tls_cert", "tls_key"])
def test_a_certificate_or_key_that_is_a_fifo_is_a_one_line_error(tmp_path, setting):
    """Breaker report s14: a FIFO as the certificate or key hung the start, waiting for a
    writer that never came."""
    store, fifo, plain = tmp_path / "store", tmp_path / "fifo.pem", tmp_path / "plain.pem"
    os.mkfifo(fifo)
    plain.write_text("")
    cert, key = (fifo, plain) if setting == "tls_cert" else (plain, fifo)
    config = tmp_path / "tls.toml"
    config.write_text(f'[serve]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "qlingest", "serve", "--data-dir", str(store), "--config",
         str(config), "--http-port", "0", "--otlp-port", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=20,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"qlingest: error: serve.{setting} '{fifo}' is not a regular file\n"
    assert not store.exists()


def test_a_certificate_that_is_a_directory_is_a_one_line_error(tmp_path):
    key = tmp_path / "key.pem"
    key.write_text("")
    config = tmp_path / "tls.toml"
    config.write_text(f'[serve]\ntls_cert = "{tmp_path}"\ntls_key = "{key}"\n')
    done = serve_cli(tmp_path, "--config", str(config), "--http-port", "0", "--otlp-port", "0")
    assert done.returncode == 2
    assert done.stderr == f"qlingest: error: serve.tls_cert '{tmp_path}' is not a regular file\n"


def listening_line(srv: ServeProcess) -> dict:
    """The server's ``Listening.`` log line, once it has stopped."""
    srv.proc.send_signal(signal.SIGTERM)
    _, err = srv.proc.communicate(timeout=30)
    lines = [json.loads(x) for x in err.splitlines() if x.startswith(b"{")]
    return next(x for x in lines if x["msg"] == "Listening.")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_listening_line_says_whether_tls_is_on(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    request += ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(request, check=True, capture_output=True)
    tls = ServeProcess(tmp_path / "tls", f'[serve]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    try:
        context = ssl.create_default_context(cafile=str(cert))
        s = socket.create_connection(("127.0.0.1", tls.ports["http"]), timeout=10)
        with context.wrap_socket(s, server_hostname="localhost") as secure:
            secure.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert secure.recv(100).startswith(b"HTTP/1.1 200")
        assert listening_line(tls)["tls"] is True
    finally:
        if tls.proc.poll() is None:
            tls.kill()
    plain = ServeProcess(tmp_path / "plain")
    try:
        assert listening_line(plain)["tls"] is False
    finally:
        if plain.proc.poll() is None:
            plain.kill()


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_a_post_without_a_length_is_411(server, version):
    head = f"POST /v1/events {version}\r\nContent-Type: application/x-ndjson\r\n\r\n"
    answer = raw(server, head.encode() + events(range(3)))
    assert answer.startswith(b"HTTP/1.1 411 Length Required\r\n")
    assert server.stop() == 0


@pytest.mark.parametrize(
    "framing",
    [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Content-Length: +5\r\n",
    ],
)
def test_conflicting_or_malformed_lengths_are_400(server, framing):
    head = f"POST /v1/events HTTP/1.1\r\nHost: x\r\n{framing}\r\n"
    answer = raw(server, head.encode() + b"5\r\n{}\n\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in answer


@pytest.mark.parametrize(
    "framing",
    [
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length: 5\r\nContent-Encoding: gzip\r\ncontent-encoding: identity\r\n",
        "Content-Length: 5\r\nContent-Type: image/png\r\nContent-Type: application/json\r\n",
    ],
)
def test_a_repeated_framing_header_is_400(server, tmp_path, framing):
    """Breaker report s13: the last of a repeated header won, so ``gzip`` then ``chunked``
    was read as chunked, where ``gzip, chunked`` in one header gets 501."""
    head = f"POST /v1/events HTTP/1.1\r\nHost: x\r\n{framing}\r\n"
    answer = raw(server, head.encode() + b"5\r\n{}\n\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(b"\r\n\r\nrepeated_header\n") and b"Connection: close" in answer
    text = server.get("/metrics")[1]
    assert metric(text, "qlingest_requests_rejected_total", reason="repeated_header") == 1
    assert server.stop() == 0
    assert stored(tmp_path / "store").height == 0


def test_the_same_length_twice_is_accepted(server):
    body = events(range(2))
    head = f"POST /v1/events HTTP/1.1\r\nContent-Length: {len(body)}\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    assert raw(server, head.encode() + body).startswith(b"HTTP/1.1 200 OK\r\n")


def test_bare_lf_line_endings_are_400_not_silence(server):
    body = events(range(2))
    head = f"POST /v1/events HTTP/1.1\nHost: x\nContent-Length: {len(body)}\n\n"
    assert raw(server, head.encode() + body).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    mixed = "GET /healthz HTTP/1.1\r\nHost: x\n\r\n"
    assert raw(server, mixed.encode()).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert (
        metric(server.get("/metrics")[1], "qlingest_requests_rejected_total", reason="bare_lf") == 2
    )
    assert server.stop() == 0


def test_a_head_arriving_byte_by_byte_is_parsed(server):
    body = events(range(3))
    request = f"POST /v1/events HTTP/1.1\r\nContent-Length: {len(body)}\r\n"
    request = (request + "Connection: close\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=10) as s:
        for i in range(len(request)):
            s.send(request[i : i + 1])
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b'{"accepted":3}')


@pytest.mark.parametrize("encoding", ["zstd", "gzip"])
def test_a_cut_off_compressed_body_is_400_and_nothing_is_accepted(server, tmp_path, encoding):
    whole = events(range(500))
    packed = zstandard.compress(whole) if encoding == "zstd" else gzip.compress(whole)
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": encoding}
    for cut in (len(packed) // 2, len(packed) - 1):
        assert server.post("/v1/events", packed[:cut], headers)[0] == 400
    assert server.post("/v1/events", packed, headers)[2] == b'{"accepted":500}'
    text = server.get("/metrics")[1]
    assert metric(text, "qlingest_requests_rejected_total", reason=f"bad_{encoding}") == 2
    assert server.stop() == 0
    assert stored(tmp_path / "store").height == 500


def test_a_body_in_many_reads_then_pipelined_requests_on_one_connection(server, tmp_path):
    first, second, third = events(range(200)), events(range(200, 230)), events(range(230, 240))
    head = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n"
    chunked = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    chunked += b"Connection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(third), third)
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=10) as s:
        s.sendall(head.format(len(first)).encode() + first[:100])
        for at in range(100, len(first) - 50, 4000):
            s.sendall(first[at : min(at + 4000, len(first) - 50)])
            time.sleep(0.002)
        # The body's last bytes arrive with the next two requests behind them.
        s.sendall(first[-50:] + head.format(len(second)).encode() + second + chunked)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    answers = out.split(b"HTTP/1.1 ")[1:]
    assert [a.split(b"\r\n")[0] for a in answers] == [b"200 OK"] * 3
    assert [a.rsplit(b"\r\n\r\n", 1)[1] for a in answers] == [
        b'{"accepted":200}',
        b'{"accepted":30}',
        b'{"accepted":10}',
    ]
    assert server.stop() == 0
    assert sorted(stored(tmp_path / "store")["message"].to_list()) == sorted(
        f"e{i}" for i in range(240)
    )


def test_a_zstd_body_whose_second_frame_is_cut_off_is_400(server, tmp_path):
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "zstd"}
    body = zstandard.compress(events(range(10))) + zstandard.compress(events(range(10, 60)))
    assert server.post("/v1/events", body[:-3], headers)[0] == 400
    assert server.post("/v1/events", body, headers)[2] == b'{"accepted":60}'
    assert server.post("/v1/events", b"", headers)[0] == 400
    assert server.stop() == 0
    assert stored(tmp_path / "store").height == 60


@pytest.mark.parametrize("size", [b"-6", b"+5", b"0x3", b"1_0", b"", b"12345678901234567"])
def test_a_chunk_size_that_is_not_plain_hex_is_400_and_the_server_lives_on(server, size):
    head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    out = raw(server, head + size + b"\r\nabc\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and b"bad_chunk" in out
    assert server.get("/healthz")[0] == 200


def test_chunk_data_must_end_with_crlf(server):
    head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    out = raw(server, head + b"3\r\nabcXY0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and b"bad_chunk" in out


def test_every_gzip_member_is_read_and_trailing_garbage_is_400(server, tmp_path):
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    body = gzip.compress(events(range(10))) + gzip.compress(events(range(10, 30)))
    assert server.post("/v1/events", body, headers)[2] == b'{"accepted":30}'
    padded = gzip.compress(events(range(30, 35))) + b"\0" * 16
    assert server.post("/v1/events", padded, headers)[2] == b'{"accepted":5}'
    junk = gzip.compress(events(range(35, 40))) + b"junk"
    assert server.post("/v1/events", junk, headers)[0] == 400
    assert server.stop() == 0
    assert stored(tmp_path / "store").height == 35


def test_a_body_arriving_slowly_is_not_cut_by_the_idle_timeout(tmp_path):
    srv = ServeProcess(tmp_path / "store", "[serve]\nidle_timeout_s = 1.0\n")
    try:
        body = events(range(20))
        head = f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        with socket.create_connection(("127.0.0.1", srv.ports["http"]), timeout=10) as s:
            s.sendall(head.encode() + b"Connection: close\r\n\r\n")
            step = len(body) // 6 + 1
            for at in range(0, len(body), step):  # 6 pieces, 0.4 s apart: 2.4 s in all
                time.sleep(0.4)
                s.sendall(body[at : at + step])
            out = s.recv(65536)
        assert out.startswith(b"HTTP/1.1 200") and out.endswith(b'{"accepted":20}')
        # A connection that sends nothing is still closed after the timeout.
        with socket.create_connection(("127.0.0.1", srv.ports["http"]), timeout=10) as s:
            time.sleep(1.6)
            assert s.recv(10) == b""
    finally:
        srv.kill()


def chunked(body: bytes, sizes: list[int], extension: bytes = b"") -> bytes:
    """``body`` in chunks of the given sizes (cycled), each size line with ``extension``."""
    out, at, i = [], 0, 0
    while at < len(body):
        size = sizes[i % len(sizes)]
        part = body[at : at + size]
        out.append(b"%x%s\r\n%s\r\n" % (len(part), extension, part))
        at, i = at + size, i + 1
    return b"".join(out) + b"0\r\n\r\n"


@pytest.mark.parametrize("read", [1, 2, 3, 7, 1000])
def test_a_chunked_body_decodes_the_same_however_its_reads_are_cut(read):
    body = events(range(40))
    wire = chunked(body, [1, 300, 17, 4096], b";ext=1") + b"GET /next"
    reader = ChunkedBody(1 << 20)
    ends = [reader.feed(wire[at : at + read]) for at in range(0, len(wire), read)]
    done = [(i, end) for i, end in enumerate(ends) if end is not None]
    assert len(done) == 1
    i, end = done[0]
    assert wire[i * read + end :] == b"GET /next"
    assert reader.body() == body


@pytest.mark.parametrize("read", [1, 2, 5, 1000])
def test_trailer_fields_after_the_last_chunk_are_read_past(read):
    """Breaker report s5, second round: a valid body with trailer fields got 400."""
    body = events(range(5))
    trailers = b"X-Checksum: abc\r\nX-Other: 2\r\n"
    wire = chunked(body, [64])[: -len(b"\r\n")] + trailers + b"\r\nGET /next"
    reader = ChunkedBody(1 << 20)
    ends = [reader.feed(wire[at : at + read]) for at in range(0, len(wire), read)]
    ((i, end),) = [(i, end) for i, end in enumerate(ends) if end is not None]
    assert wire[i * read + end :] == b"GET /next" and reader.body() == body


def test_trailer_fields_count_against_the_body_limit():
    wire = chunked(b"x", [1])[: -len(b"\r\n")] + b"X-T: " + b"y" * 900 + b"\r\n" * 2
    with pytest.raises(HttpError) as refused:
        ChunkedBody(500).feed(wire)
    assert refused.value.status == 413


def test_a_chunked_body_in_small_reads_costs_linear_time():
    """Breaker report s5 item 8: each read re-parsed the whole body (40 MB took 6.7 s)."""
    wire = chunked(b"x" * 4000, [1], b";" + b"e" * 1000)  # 4 MB of framing for 4 KB
    reader = ChunkedBody(len(wire))
    started = time.perf_counter()
    for at in range(0, len(wire), 1024):
        reader.feed(wire[at : at + 1024])
    assert time.perf_counter() - started < 1.0
    assert reader.body() == b"x" * 4000


def test_chunk_framing_counts_against_the_body_limit(server):
    """Breaker report s5 item 8: 1-byte chunks with 1000-byte extensions were not limited."""
    head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    framed = chunked(b"{}\n" * 100, [1], b";" + b"e" * 1000)  # 300 KB on the wire
    out = raw(server, head + framed)
    assert out.startswith(b"HTTP/1.1 413") and b"body_too_large" in out
    fits = chunked(events(range(10)), [64], b";e=1")
    assert (
        raw(server, head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + fits)[-15:]
        == b'{"accepted":10}'
    )
    assert server.get("/healthz")[0] == 200


def test_a_chunked_post_expecting_100_continue_gets_it(server):
    head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    head += b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=10) as s:
        s.sendall(head)
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(chunked(events(range(3)), [100]))
        out = s.recv(65536)
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b'{"accepted":3}')


def test_a_client_that_pipelines_and_never_reads_stops_being_read(server):
    """Breaker report s5 item 9: answers to pipelined requests piled up in server memory
    (+10 MB/s) for as long as the client kept sending without reading."""
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"

    def answered() -> float:
        text = server.get("/metrics")[1]
        return metric(text, "qlingest_requests_total", code="200", route="/metrics")

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", server.ports["http"]))
        s.settimeout(1)
        with contextlib.suppress(TimeoutError):
            s.sendall(request * 20_000)
        # Once the unsent answers pass the bound nothing more is read; only the counting
        # requests themselves still add one each. A loaded machine takes longer to get there.
        counts = [answered()]
        deadline = time.monotonic() + 30
        while len(counts) < 5 or (counts[-1] - counts[-3] != 2 and time.monotonic() < deadline):
            time.sleep(0.3)
            counts.append(answered())
    assert counts[-1] - counts[-3] == 2 and counts[-1] < 5_000


@pytest.fixture
def strict(tmp_path):
    """A server with 4 connections, 1 s to send a request and 1 s of idleness allowed."""
    config = "[serve]\nmax_connections = 4\nidle_timeout_s = 1.0\nrequest_timeout_s = 1.0\n"
    srv = ServeProcess(tmp_path / "store", config, tcp=True)
    yield srv
    if srv.proc.poll() is None:
        srv.kill()
    for pipe in (srv.proc.stdout, srv.proc.stderr):
        pipe.close()


def slow_body(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    return s


def trickle(s: socket.socket, piece: bytes) -> bytes:
    """Sends ``piece`` every 0.2 s (often enough for the idle timeout never to fire) until
    the server answers or closes; what it sent."""
    for _ in range(20):
        s.sendall(piece)
        if select.select([s], [], [], 0.2)[0]:
            return s.recv(100)
    raise AssertionError("no answer in 4 s")


def test_a_body_arriving_too_slowly_gets_408_at_the_request_deadline(strict):
    """Breaker report s5 item 10: a body at 1 byte/s held its connection for ever."""
    with slow_body(strict.ports["http"]) as s:
        started = time.monotonic()
        out = trickle(s, b" ")
    assert out.startswith(b"HTTP/1.1 408") and 0.8 <= time.monotonic() - started < 2.5
    text = strict.get("/metrics")[1]
    assert metric(text, "qlingest_requests_rejected_total", reason="request_timeout") == 1


def test_a_request_begun_is_answered_408_even_past_a_shorter_idle_timeout(tmp_path):
    """Breaker report s5, second round: with idle_timeout_s below request_timeout_s, a
    stalled request was closed at the idle timeout without an answer."""
    config = "[serve]\nidle_timeout_s = 0.5\nrequest_timeout_s = 1.5\n"
    srv = ServeProcess(tmp_path / "store", config)
    try:
        with socket.create_connection(("127.0.0.1", srv.ports["http"]), timeout=5) as s:
            started = time.monotonic()
            s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
            out = s.recv(100)
        assert out.startswith(b"HTTP/1.1 408") and 1.3 <= time.monotonic() - started < 3.5
    finally:
        srv.kill()
        for pipe in (srv.proc.stdout, srv.proc.stderr):
            pipe.close()


def test_health_checks_answer_while_every_connection_is_held(strict):
    """Breaker report s5 item 10: four slow bodies made /healthz answer 503."""
    held = [slow_body(strict.ports["http"]) for _ in range(4)]
    try:
        time.sleep(0.2)
        assert strict.get("/healthz") == (200, b"ok\n")
        assert strict.get("/readyz")[0] == 200
        assert strict.post("/v1/events", events(range(3)))[0] == 503
    finally:
        for s in held:
            s.close()


def test_idle_tcp_connections_are_closed_and_do_not_lock_out_health_checks(strict):
    """Breaker report s5 item 10: idle TCP sockets had no timeout and took every slot."""
    idle = [socket.create_connection(("127.0.0.1", strict.ports["tcp"])) for _ in range(5)]
    try:
        idle[-1].settimeout(3)
        assert idle[-1].recv(10) == b""  # the fifth, beyond the limit, is closed at once
        assert strict.get("/healthz")[0] == 200
        for s in idle:
            s.settimeout(3)
            assert s.recv(10) == b""  # closed by the server after the idle timeout
    finally:
        for s in idle:
            s.close()
    strict.proc.send_signal(signal.SIGTERM)
    assert strict.proc.wait(10) == 0
    assert "Traceback" not in strict.proc.stderr.read().decode()


def test_a_tcp_line_arriving_too_slowly_is_dropped_and_the_connection_closed(strict, tmp_path):
    with socket.create_connection(("127.0.0.1", strict.ports["tcp"]), timeout=5) as s:
        s.sendall(events(range(2)))
        assert s.recv(100) == b"ok 2\n"
        started = time.monotonic()
        assert trickle(s, b'{"msg":') == b""  # a line that never ends
    assert 0.8 <= time.monotonic() - started < 2.5
    text = strict.get("/metrics")[1]
    assert metric(text, "qlingest_requests_rejected_total", reason="request_timeout") == 1
    assert strict.stop() == 0
    assert stored(tmp_path / "store").height == 2


@pytest.mark.parametrize("version", [b"HTTP/1.1x", b"HTTP/1.", b"HTTP/1.10", b"HTTP/2.0"])
def test_a_request_line_with_a_malformed_version_is_400(server, version):
    out = raw(server, b"GET /healthz " + version + b"\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and b"bad_request_line" in out


@pytest.mark.parametrize(
    ("data", "n"),
    [(b"", 0), (b"\n", 0), (b"a", 1), (b"a\n\n", 1), (b"\r\n \t\na\n", 1), (b"a\n b\n\x0c\nc", 3)],
)
def test_count_events_leaves_out_blank_lines(data, n):
    assert count_events(data) == n


def test_accepted_counts_leave_out_blank_lines(tmp_path):
    """Breaker report s5 (minor): ``accepted`` and ``ok N`` counted blank lines as events."""
    srv = ServeProcess(tmp_path / "store", tcp=True)
    try:
        body = b"\n" + events(range(3)).replace(b"\n", b"\n\r\n  \n")
        assert srv.post("/v1/events", body)[2] == b'{"accepted":3}'
        with socket.create_connection(("127.0.0.1", srv.ports["tcp"]), timeout=5) as s:
            s.sendall(body)
            assert s.recv(100) == b"ok 3\n"
        assert srv.stop() == 0
        assert stored(tmp_path / "store").height == 6
    finally:
        if srv.proc.poll() is None:
            srv.kill()


def post_head(port: int, body: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
    return s


def test_a_stop_finishes_a_request_whose_body_is_still_arriving(tmp_path):
    """Attack report s10: on SIGTERM a body still arriving was dropped without an answer."""
    srv = ServeProcess(tmp_path / "store")
    body = events(range(50))
    s = post_head(srv.ports["http"], body)
    s.sendall(body[:100])
    time.sleep(0.3)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    s.sendall(body[100:])

    assert s.recv(4096).split(b"\r\n\r\n")[1] == b'{"accepted":50}'
    srv.proc.communicate(timeout=30)
    assert srv.proc.returncode == 0
    s.close()
    assert sorted(stored(tmp_path / "store")["message"].to_list()) == sorted(
        f"e{i}" for i in range(50)
    )


def test_a_body_that_stalls_past_the_stop_grace_gets_503_and_nothing_is_lost(tmp_path):
    srv = ServeProcess(tmp_path / "store", "[serve]\nshutdown_deadline_s = 2\n")
    assert srv.post("/v1/events", events(range(5)))[0] == 200
    s = post_head(srv.ports["http"], events(range(5, 10)))
    s.sendall(b'{"msg":')
    time.sleep(0.3)
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)

    assert s.recv(4096).startswith(b"HTTP/1.1 503 ")
    assert 0.8 < time.monotonic() - started < 1.8  # half the deadline
    srv.proc.communicate(timeout=30)
    assert srv.proc.returncode == 0
    s.close()
    assert sorted(stored(tmp_path / "store")["message"].to_list()) == [f"e{i}" for i in range(5)]
