"""The commit path with files written behind the caller: a failed audit file under audit
rules, the sidecar after such a failure, and one pipeline fed from two threads."""

from __future__ import annotations

import asyncio
import errno
import json
import threading

import pytest
from qlingest import Pipeline
from qlingest.config import load_config
from qlingest.serve import Server
from qlingest.store import Store
from serve_helpers import stored
from test_serve_full_disk import get, post, until

#: Rows of service "pay" are audit records in any category: every partition then goes
#: through the chain, and a partition with no such row is written as a plain file.
AUDIT_RULES = {"audit.rules": [{"column": "service", "values": ["pay"]}]}


def mixed_events() -> bytes:
    """Five rows no rule selects (partition ``app``), then three audit records (``billing``),
    all in one hour: the plain partition comes first in the buffers."""
    rows = [
        {"ts": 1_700_000_000, "msg": f"plain{i}", "category": "app", "service": "web"}
        for i in range(5)
    ]
    rows += [
        {"ts": 1_700_000_000, "msg": f"audited{i}", "category": "billing", "service": "pay"}
        for i in range(3)
    ]
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


MIXED = sorted([f"plain{i}" for i in range(5)] + [f"audited{i}" for i in range(3)])


def messages(data_dir) -> list[str]:
    frame = stored(data_dir)
    return sorted(frame["message"].to_list()) if frame.height else []


def chained_file_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes the synchronous write of a chained file fail as on a full disk."""

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Store, "write_partition", no_space)


def test_a_failed_chained_write_keeps_the_plain_rows_of_the_same_commit(tmp_path, monkeypatch):
    pipeline = Pipeline(tmp_path, load_config(None, **AUDIT_RULES))
    pipeline.process(mixed_events())
    chained_file_fails(monkeypatch)
    with pytest.raises(OSError):
        pipeline.flush()
    assert pipeline.buffered_rows == 8

    monkeypatch.undo()
    pipeline.close()
    assert pipeline.summary.events_written == 8
    assert messages(tmp_path) == MIXED


def test_serve_keeps_acknowledged_events_when_a_chained_write_fails(tmp_path, monkeypatch):
    settings = {"serve.http_port": 0, "serve.otlp_port": 0, "serve.flush_interval_s": 0.05}
    config = load_config(None, **settings, **AUDIT_RULES)

    async def scenario() -> None:
        server = Server(tmp_path, config)
        port = (await server.start())["http"]
        chained_file_fails(monkeypatch)
        assert (await post(port, mixed_events()))[0] == 200
        await until(lambda: server.commit_failure is not None)

        monkeypatch.undo()
        await until(lambda: server.commit_failure is None)
        assert (await get(port, "/readyz"))[0] == 200
        assert await server.shutdown()

    asyncio.run(scenario())
    assert list((tmp_path / "wal").rglob("*.wal")) == []
    assert messages(tmp_path) == MIXED


def test_a_pipeline_shared_by_two_threads_stores_every_row(tmp_path, monkeypatch):
    pipeline = Pipeline(tmp_path)
    ids = range(0, 7200, 100)  # three hours: three partitions
    pipeline.process(
        b"".join(
            json.dumps({"ts": 1_700_000_000 + i, "msg": f"e{i}", "category": "app"}).encode()
            + b"\n"
            for i in ids
        )
    )
    # The first thread's commit pauses after taking its first partition while the second
    # thread commits, the interleaving two threads calling ``process`` meet by chance. The
    # pipeline's lock makes the second commit wait for the first (here, out the pause).
    taken, other_done = threading.Event(), threading.Event()
    take = Pipeline._take

    def take_then_pause(self, key):
        out = take(self, key)
        if threading.current_thread().name == "first" and not taken.is_set():
            taken.set()
            other_done.wait(0.5)
        return out

    monkeypatch.setattr(Pipeline, "_take", take_then_pause)
    errors: list[BaseException] = []

    def flush() -> None:
        try:
            pipeline.flush()
        except Exception as e:
            errors.append(e)

    first = threading.Thread(target=flush, name="first")
    first.start()
    assert taken.wait(5)
    pipeline.flush()
    other_done.set()
    first.join()
    pipeline.close()
    assert errors == []
    assert pipeline.summary.events_written == len(ids)
    assert messages(tmp_path) == sorted(f"e{i}" for i in ids)
