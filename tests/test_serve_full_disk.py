"""A full disk: failed commits keep their rows, failed log writes leave no gap, and a broken
stderr stops nothing (breaker report s5, items 1-3)."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import sys

import pytest
from qlingest import Pipeline
from qlingest.audit import verify
from qlingest.config import load_config
from qlingest.serve import Server
from qlingest.serve import server as server_module
from qlingest.serve import wal as wal_module
from qlingest.serve.wal import Wal
from qlingest.store import Store
from serve_helpers import events, metric, stored


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def half_then_full(fd: int, buffers: list[bytes]) -> int:
    """A ``writev`` on a disk that fills halfway through."""
    data = b"".join(buffers)
    os.write(fd, data[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


class FullDisk:
    """Makes every Parquet and dead-letter write of the store fail with ENOSPC until freed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.mp = monkeypatch
        monkeypatch.setattr(Store, "_write_parquet", no_space)
        monkeypatch.setattr(Store, "write_dead_letters", no_space)

    def free(self) -> None:
        self.mp.undo()


def messages(data_dir) -> list[str]:
    frame = stored(data_dir)
    return sorted(frame["message"].to_list()) if frame.height else []


def expected(ids) -> list[str]:
    return sorted(f"e{i}" for i in ids)


class TestPipelineCommit:
    def test_a_failed_commit_keeps_the_rows_for_the_next_one(self, tmp_path, monkeypatch):
        pipeline = Pipeline(tmp_path)
        pipeline.process(events(range(50)))
        disk = FullDisk(monkeypatch)
        with pytest.raises(OSError):
            pipeline.flush()
        assert pipeline.buffered_partitions > 0 and pipeline.summary.events_written == 0

        disk.free()
        pipeline.close()
        assert pipeline.summary.events_written == 50
        assert messages(tmp_path) == expected(range(50))

    def test_chained_audit_rows_are_written_as_chained_after_a_failure(self, tmp_path, monkeypatch):
        pipeline = Pipeline(tmp_path)
        pipeline.process(events(range(20), category="security.audit_logs"))
        disk = FullDisk(monkeypatch)
        with pytest.raises(OSError):
            pipeline.flush()
        pipeline.process(events(range(20, 30), category="security.audit_logs"))

        disk.free()
        pipeline.close()
        assert messages(tmp_path) == expected(range(30))
        assert verify(tmp_path).ok

    def test_a_commit_failing_mid_frame_still_buffers_the_whole_frame(self, tmp_path, monkeypatch):
        config = load_config(None, **{"store.target_file_bytes": 1})
        pipeline = Pipeline(tmp_path, config)
        disk = FullDisk(monkeypatch)
        # Several hours, several partitions: the first one's commit fails, the rest are
        # buffered all the same.
        with pytest.raises(OSError):
            pipeline.process(events(range(0, 7200, 100)))
        assert pipeline.buffered_partitions > 1

        disk.free()
        pipeline.close()
        assert messages(tmp_path) == expected(range(0, 7200, 100))


def serve_config(**overrides):
    settings = {"serve.http_port": 0, "serve.otlp_port": 0, "serve.flush_interval_s": 0.05}
    return load_config(None, **{**settings, **overrides})


async def call(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
    data = await reader.read()
    writer.close()
    head_, _, answer = data.partition(b"\r\n\r\n")
    return int(head_.split()[1]), answer


async def post(port: int, body: bytes) -> tuple[int, bytes]:
    return await call(port, "POST", "/v1/events", body)


async def get(port: int, path: str) -> tuple[int, bytes]:
    return await call(port, "GET", path)


async def until(condition, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]


class TestServerFullDisk:
    def test_commits_resume_once_space_is_back_and_nothing_is_lost(
        self, tmp_path, monkeypatch, capsys
    ):
        async def scenario() -> None:
            server = Server(tmp_path, serve_config())
            port = (await server.start())["http"]
            disk = FullDisk(monkeypatch)
            for i in range(4):
                assert (await post(port, events(range(i * 25, i * 25 + 25))))[0] == 200
            await until(lambda: server.commit_failure is not None)
            assert (await get(port, "/readyz"))[0] == 503
            assert metric((await get(port, "/metrics"))[1], "qlingest_events_written_total") == 0

            disk.free()
            await until(lambda: server.commit_failure is None)
            assert (await get(port, "/readyz"))[0] == 200
            assert await server.shutdown()

        asyncio.run(scenario())
        assert messages(tmp_path) == expected(range(100))
        assert list((tmp_path / "wal").rglob("*.wal")) == []
        logged = log_lines(capsys)
        (failed,) = [r for r in logged if r["msg"].startswith("Commit failed")]
        assert failed["level"] == "error" and "No space left on device" in failed["error"]
        assert any(r["msg"] == "Commits resumed." for r in logged)

    def test_a_stop_while_commits_fail_keeps_the_log_for_the_next_start(
        self, tmp_path, monkeypatch, capsys
    ):
        async def first() -> bool:
            server = Server(tmp_path, serve_config())
            port = (await server.start())["http"]
            FullDisk(monkeypatch)
            for i in range(4):
                assert (await post(port, events(range(i * 25, i * 25 + 25))))[0] == 200
            return await server.shutdown()

        assert asyncio.run(first()) is False
        monkeypatch.undo()
        assert len(list((tmp_path / "wal").rglob("*.wal"))) == 1
        stopped = log_lines(capsys)[-1]
        assert stopped["level"] == "error" and "log is kept" in stopped["msg"]

        async def second() -> bool:
            server = Server(tmp_path, serve_config())
            await server.start()
            return await server.shutdown()

        assert asyncio.run(second()) is True
        assert messages(tmp_path) == expected(range(100))
        assert list((tmp_path / "wal").rglob("*.wal")) == []

    def test_decoding_waits_while_commits_fail_and_the_buffers_are_full(
        self, tmp_path, monkeypatch
    ):
        config = serve_config(**{"store.max_buffer_bytes": 1, "serve.max_queue_bytes": 10_000})

        async def scenario() -> None:
            server = Server(tmp_path, config)
            port = (await server.start())["http"]
            disk = FullDisk(monkeypatch)
            codes = [(await post(port, events(range(i * 50, i * 50 + 50))))[0] for i in range(8)]
            # The first is buffered, the next wait in the queue; then the queue is full.
            assert codes[:2] == [200, 200] and 429 in codes
            assert server.queue_bytes > 0

            disk.free()
            await until(lambda: server.queue_bytes == 0)
            assert await server.shutdown()
            acked = [i for n, c in enumerate(codes) if c == 200 for i in range(n * 50, n * 50 + 50)]
            assert messages(tmp_path) == expected(acked)

        asyncio.run(scenario())


class TestLogWriteFailure:
    def three_logged(self, tmp_path) -> Wal:
        wal = Wal(tmp_path, segment_bytes=1 << 20)
        wal.open_segment(first_file=0)
        wal.append([(i, "http", [b"ok%d\n" % i]) for i in range(3)])
        return wal

    def test_refused_writes_leave_no_gap_however_many(self, tmp_path, monkeypatch):
        wal = self.three_logged(tmp_path)
        monkeypatch.setattr(wal_module.os, "writev", half_then_full)
        for i in range(200):
            with pytest.raises(OSError):
                wal.append([(i, "http", [b"refused%d\n" % i])])
        monkeypatch.undo()
        logged = wal.append([(7, "http", [b"after\n"])])
        wal.close()

        assert logged[0].seq == 3
        again = Wal(tmp_path, segment_bytes=1 << 20)
        payloads = [r.payload for r in again.recover()]
        assert payloads == [b"ok0\n", b"ok1\n", b"ok2\n", b"after\n"]
        assert again.damage == []

    def test_bytes_a_failed_write_could_not_cut_cost_only_themselves(self, tmp_path, monkeypatch):
        wal = self.three_logged(tmp_path)
        monkeypatch.setattr(wal_module.os, "writev", half_then_full)
        monkeypatch.setattr(wal_module.os, "ftruncate", no_space)
        for i in range(200):
            with pytest.raises(OSError):
                wal.append([(i, "http", [b"refused%d\n" % i])])
        monkeypatch.undo()
        wal.append([(7, "http", [b"after\n"])])
        wal.append([(8, "http", [b"later\n"])])
        wal.close()

        again = Wal(tmp_path, segment_bytes=1 << 20)
        payloads = [r.payload for r in again.recover()]
        assert payloads == [b"ok0\n", b"ok1\n", b"ok2\n", b"after\n", b"later\n"]
        assert len(again.damage) == 1 and "not replayed" in again.damage[0]

    def test_a_probe_tells_whether_the_log_takes_writes_and_leaves_nothing(
        self, tmp_path, monkeypatch
    ):
        wal = self.three_logged(tmp_path)
        size = wal.bytes
        assert wal.writable()
        monkeypatch.setattr(wal_module.os, "writev", no_space)
        assert not wal.writable()
        monkeypatch.undo()
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"{0:020d}.wal"]
        assert wal.bytes == (tmp_path / f"{0:020d}.wal").stat().st_size == size
        wal.close()
        assert not wal.writable()  # no segment open

    def test_a_probe_a_crash_leaves_behind_is_cut_away_quietly(self, tmp_path, monkeypatch):
        wal = self.three_logged(tmp_path)
        monkeypatch.setattr(wal_module.os, "ftruncate", lambda fd, size: None)
        assert wal.writable()
        monkeypatch.undo()
        wal.close()

        again = Wal(tmp_path, segment_bytes=1 << 20)
        assert [r.payload for r in again.recover()] == [b"ok0\n", b"ok1\n", b"ok2\n"]
        assert again.damage == []


class NoFreeBlock:
    """A disk with no block free: a log write that fits in its file's last block, allocated
    already, succeeds; one that needs another block fails with ENOSPC."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        writev = os.writev

        def fitting_writev(fd: int, buffers: list[bytes]) -> int:
            size = os.fstat(fd).st_size
            if -(-(size + sum(map(len, buffers))) // 4096) > -(-size // 4096):
                raise OSError(errno.ENOSPC, "No space left on device")
            return writev(fd, buffers)

        monkeypatch.setattr(wal_module.os, "writev", fitting_writev)


class TestReadiness:
    """Breaker report s13: /readyz answered 200 while every request got 503 because the log's
    disk was full."""

    def fill(self, monkeypatch, wal: Wal) -> None:
        monkeypatch.setattr(wal, "append", no_space)
        monkeypatch.setattr(wal, "writable", lambda: False)

    def test_not_ready_while_log_writes_fail_and_ready_once_the_disk_takes_them(
        self, tmp_path, monkeypatch
    ):
        async def scenario() -> None:
            server = Server(tmp_path, serve_config())
            port = (await server.start())["http"]
            self.fill(monkeypatch, server.wal)
            assert (await post(port, events(range(5))))[0] == 503
            assert await get(port, "/readyz") == (503, b"not ready\n")
            await asyncio.sleep(0.3)  # the probe has failed a few times
            assert (await get(port, "/readyz"))[0] == 503

            # Room again, and no request (a balancer sends none to a server not ready).
            monkeypatch.undo()
            await until(lambda: not server._wal_failures)
            assert await get(port, "/readyz") == (200, b"ready\n")
            assert (await post(port, events(range(5, 10))))[0] == 200
            assert await server.shutdown()

        asyncio.run(scenario())
        assert messages(tmp_path) == expected(range(5, 10))

    def test_a_request_that_is_logged_makes_the_server_ready_at_once(self, tmp_path, monkeypatch):
        async def scenario() -> None:
            server = Server(tmp_path, serve_config(**{"serve.flush_interval_s": 60}))
            port = (await server.start())["http"]
            self.fill(monkeypatch, server.wal)
            assert (await post(port, events(range(5))))[0] == 503
            monkeypatch.undo()
            assert (await get(port, "/readyz"))[0] == 503  # the probe waits a minute
            assert (await post(port, events(range(5, 10))))[0] == 200
            assert (await get(port, "/readyz"))[0] == 200
            assert await server.shutdown()

        asyncio.run(scenario())
        assert messages(tmp_path) == expected(range(5, 10))

    def test_not_ready_from_a_start_whose_log_cannot_start_a_segment(self, tmp_path, monkeypatch):
        monkeypatch.setattr(Wal, "open_segment", no_space)
        monkeypatch.setattr(Wal, "writable", lambda self: False)

        async def scenario() -> None:
            server = Server(tmp_path, serve_config())
            port = (await server.start())["http"]
            assert (await get(port, "/readyz"))[0] == 503
            monkeypatch.undo()
            await until(lambda: not server._wal_failures)
            assert (await get(port, "/readyz"))[0] == 200
            assert (await post(port, events(range(5))))[0] == 200
            assert await server.shutdown()

        asyncio.run(scenario())
        assert messages(tmp_path) == expected(range(5))

    def test_ready_again_when_the_log_takes_a_write_though_no_block_is_free(
        self, tmp_path, monkeypatch
    ):
        """Hardening s14: the probe was a new 4 KiB file, which such a disk refuses, while
        requests that fit in the open segment's last block were still logged."""

        async def scenario() -> None:
            server = Server(tmp_path, serve_config(**{"serve.flush_interval_s": 0.5}))
            port = (await server.start())["http"]
            NoFreeBlock(monkeypatch)
            assert (await post(port, events(range(100))))[0] == 503  # over a block
            assert (await get(port, "/readyz"))[0] == 503

            await until(lambda: not server._wal_failures)  # with no request sent
            assert await get(port, "/readyz") == (200, b"ready\n")
            assert (await post(port, events(range(100, 102))))[0] == 200
            monkeypatch.undo()
            assert await server.shutdown()

        asyncio.run(scenario())
        assert messages(tmp_path) == expected(range(100, 102))


class BrokenStderr(io.TextIOBase):
    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_log_survives_a_broken_stderr(monkeypatch):
    monkeypatch.setattr(sys, "stderr", BrokenStderr())
    server_module.log("error", "Log write failed.", error="x")


def test_a_broken_stderr_during_a_log_write_failure_stops_nothing(tmp_path, monkeypatch):
    async def scenario() -> None:
        server = Server(tmp_path, serve_config())
        port = (await server.start())["http"]
        monkeypatch.setattr(sys, "stderr", BrokenStderr())
        monkeypatch.setattr(server.wal, "append", no_space)
        assert (await post(port, events(range(5))))[0] == 503
        monkeypatch.undo()
        monkeypatch.setattr(sys, "stderr", BrokenStderr())
        assert (await asyncio.wait_for(post(port, events(range(5, 10))), 5))[0] == 200
        assert (await get(port, "/readyz"))[0] == 200
        assert await server.shutdown()

    asyncio.run(scenario())
    assert messages(tmp_path) == expected(range(5, 10))


def test_refused_log_writes_are_logged_once_per_run(tmp_path, monkeypatch, capsys):
    async def scenario() -> None:
        server = Server(tmp_path, serve_config())
        port = (await server.start())["http"]
        monkeypatch.setattr(server.wal, "append", no_space)
        assert [(await post(port, events(range(1))))[0] for _ in range(5)] == [503] * 5
        monkeypatch.undo()
        assert (await post(port, events(range(1))))[0] == 200
        assert await server.shutdown()

    asyncio.run(scenario())
    logged = [r["msg"] for r in log_lines(capsys)]
    assert logged.count("Log write failed; requests are refused with 503.") == 1
    assert "Log writes resumed." in logged


def test_a_start_whose_replay_cannot_be_committed_keeps_the_log_and_retries(tmp_path, monkeypatch):
    wal = Wal(tmp_path / "wal" / "w0", segment_bytes=1 << 20)
    wal.open_segment(first_file=0)
    wal.append([(1_700_000_000_000_000_000, "http", [events(range(30))])])
    wal.close()  # as a crash leaves it

    async def scenario() -> None:
        disk = FullDisk(monkeypatch)
        server = Server(tmp_path, serve_config())
        port = (await server.start())["http"]
        assert server.commit_failure is not None
        assert (await get(port, "/readyz"))[0] == 503
        assert (tmp_path / "wal" / "w0" / f"{0:020d}.wal").exists()

        disk.free()
        await until(lambda: server.commit_failure is None)
        assert not (tmp_path / "wal" / "w0" / f"{0:020d}.wal").exists()
        assert await server.shutdown()

    asyncio.run(scenario())
    assert messages(tmp_path) == expected(range(30))


def test_a_refused_fsync_cuts_its_records_off_too(tmp_path, monkeypatch):
    wal = Wal(tmp_path, segment_bytes=1 << 20)
    wal.open_segment(first_file=0)
    wal.append([(0, "http", [b"ok\n"])], sync=True)
    monkeypatch.setattr(wal_module.os, "fsync", no_space)
    with pytest.raises(OSError):
        wal.append([(1, "http", [b"refused\n"])], sync=True)
    monkeypatch.undo()
    assert wal.append([(2, "http", [b"after\n"])], sync=True)[0].seq == 1
    wal.close()

    again = Wal(tmp_path, segment_bytes=1 << 20)
    assert [r.payload for r in again.recover()] == [b"ok\n", b"after\n"]
    assert again.damage == []


def test_a_refused_rotation_does_not_refuse_requests_already_logged(tmp_path, monkeypatch):
    config = serve_config(**{"serve.wal_segment_bytes": 64 << 10})

    async def scenario() -> None:
        server = Server(tmp_path, config)
        port = (await server.start())["http"]
        monkeypatch.setattr(server.wal, "open_segment", no_space)
        # Over 64 KiB: the segment is due to rotate once it is logged.
        assert (await post(port, events(range(1000))))[0] == 200
        assert server.wal.should_rotate()
        monkeypatch.undo()
        assert (await post(port, events(range(1000, 1010))))[0] == 200
        assert await server.shutdown()

    asyncio.run(scenario())
    assert messages(tmp_path) == expected(range(1010))


def test_a_failed_bad_category_dead_letter_still_buffers_the_rest(tmp_path, monkeypatch):
    pipeline = Pipeline(tmp_path)
    disk = FullDisk(monkeypatch)
    with pytest.raises(OSError):
        pipeline.process(events(range(1), category="x" * 300) + events(range(1, 10)))

    disk.free()
    pipeline.close()
    assert messages(tmp_path) == expected(range(1, 10))


def test_a_server_starts_when_its_log_cannot_start_a_segment_and_logs_once_it_can(
    tmp_path, monkeypatch
):
    # The log itself filled the disk: starting a segment fails at start. The server starts,
    # refuses requests with 503, and starts a segment on the first request once space is back.
    settings = {"serve.http_port": 0, "serve.otlp_port": 0, "serve.flush_interval_s": 0.05}
    opened = Wal.open_segment
    full = {"disk": True}

    def open_segment(self, first_file):
        if full["disk"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return opened(self, first_file)

    monkeypatch.setattr(Wal, "open_segment", open_segment)

    async def scenario() -> None:
        server = Server(tmp_path, load_config(None, **settings))
        port = (await server.start())["http"]
        assert (await post(port, events(range(5))))[0] == 503
        full["disk"] = False
        assert (await post(port, events(range(5, 9))))[0] == 200
        assert await server.shutdown()

    asyncio.run(scenario())
    assert list((tmp_path / "wal").rglob("*.wal")) == []
    assert sorted(stored(tmp_path)["message"].to_list()) == sorted(f"e{i}" for i in range(5, 9))
