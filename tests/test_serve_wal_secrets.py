"""Raw request bodies in the write-ahead log: how long they stay, and what is kept of damage."""

from __future__ import annotations

import asyncio
import os
import stat

from qlingest.config import load_config
from qlingest.serve import Server
from qlingest.serve import server as server_module
from qlingest.serve.wal import Wal
from serve_helpers import stored

SECRET_LINE = b'{"msg":"login","password":"hunter2","card":"4111 1111 1111 1111"}\n'


async def post(port: int, body: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
    data = await reader.read()
    writer.close()
    return int(data.split()[1])


def log_bytes(data_dir) -> bytes:
    return b"".join(p.read_bytes() for p in (data_dir / "wal").rglob("*.wal"))


def test_an_old_segment_is_closed_and_deleted_once_committed(tmp_path, monkeypatch):
    monkeypatch.setattr(server_module, "WAL_SEGMENT_MAX_AGE_S", 0.2)
    config = load_config(
        None,
        **{"serve.http_port": 0, "serve.otlp_port": 0, "serve.flush_interval_s": 0.05},
    )

    async def scenario() -> None:
        server = Server(tmp_path, config)
        port = (await server.start())["http"]
        assert await post(port, SECRET_LINE) == 200
        assert b"hunter2" in log_bytes(tmp_path)
        for _ in range(100):
            if b"hunter2" not in log_bytes(tmp_path):
                break
            await asyncio.sleep(0.05)
        assert b"hunter2" not in log_bytes(tmp_path)
        assert stored(tmp_path).height == 1  # committed before its segment went
        assert await server.shutdown()

    asyncio.run(scenario())


def test_damaged_bytes_are_kept_redacted(tmp_path):
    wal = Wal(tmp_path, segment_bytes=1 << 20)
    wal.open_segment(first_file=0)
    wal.append([(i, "http", [SECRET_LINE]) for i in range(3)])
    wal.close()
    (segment,) = tmp_path.glob("*.wal")
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x40  # inside the middle record's header or payload
    segment.write_bytes(bytes(data))

    scrub = server_module._redactor_of_bytes(load_config())
    again = Wal(tmp_path, segment_bytes=1 << 20, scrub=scrub)
    assert len(list(again.recover())) == 2
    (kept,) = (tmp_path / "damaged").iterdir()
    assert b"hunter2" not in kept.read_bytes() and b"4111" not in kept.read_bytes()
    assert b"REDACTED" in kept.read_bytes()
    assert mode(kept) == 0o600 and mode(kept.parent) == 0o700


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_log_is_readable_by_its_owner_alone(tmp_path):
    """Breaker report s13: segments were 0644 in 0755 directories, under any umask."""
    old = os.umask(0)
    try:
        wal = Wal(tmp_path / "store" / "wal" / "w0", segment_bytes=1 << 20)
        wal.open_segment(first_file=0)
        wal.append([(0, "http", [SECRET_LINE])])
        wal.close()
    finally:
        os.umask(old)

    (segment,) = (tmp_path / "store" / "wal" / "w0").glob("*.wal")
    assert mode(segment) == 0o600
    assert mode(segment.parent) == mode(segment.parent.parent) == 0o700


def test_a_log_made_by_an_older_version_is_made_private_when_opened(tmp_path):
    """Hardening s14: directories made 0755 and segments 0644 kept those modes."""
    wal = Wal(tmp_path / "store" / "wal" / "w0", segment_bytes=1 << 20)
    wal.open_segment(first_file=0)
    wal.append([(0, "http", [SECRET_LINE])])
    wal.close()
    (segment,) = (tmp_path / "store" / "wal" / "w0").glob("*.wal")
    kept = segment.parent / "damaged" / "0-8.bin"
    kept.parent.mkdir()
    kept.write_bytes(b"x")
    for path, old in [(segment, 0o644), (kept, 0o644), (kept.parent, 0o755)]:
        path.chmod(old)
    for path in (segment.parent, segment.parent.parent):
        path.chmod(0o755)

    server = Server(tmp_path / "store", load_config(None, **{"serve.http_port": 0}))
    server.pipeline.abort()

    assert mode(segment) == mode(kept) == 0o600
    assert mode(segment.parent) == mode(segment.parent.parent) == mode(kept.parent) == 0o700
