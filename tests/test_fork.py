"""A pipeline, emitter or handler built before ``fork`` and used on both sides (breaker report
s5, item 6): both processes wrote the same file names, one overwriting the other, and a
child's ``Emitter.close`` hung. The child now refuses with ``ForkedError``, the parent stores
everything it was given, exactly once.

Each scenario forks in a fresh interpreter: polars' threads do not survive a fork, so the
test process itself never forks.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

PRELUDE = """
import os, signal, sys, time
from qlingest import Pipeline
from qlingest.config import load_config
from qlingest.logging import Emitter, ForkedError
from qlingest.store import Store
config = load_config(**{"store.fsync": False})
data_dir = sys.argv[1]
def rows(who, n):
    return b"".join(b'{"msg":"%s-%d","ts":1700000000}\\n' % (who.encode(), i) for i in range(n))
def in_child(work):
    signal.alarm(10)  # a hang ends the child with SIGALRM, which the parent reports
    try:
        work()
        code = 0
    except ForkedError as e:
        print("child refused:", e, flush=True)
        code = 3
    os._exit(code)
"""


def run(tmp_path, body: str) -> str:
    script = PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def messages(tmp_path) -> list[str]:
    return sorted(pl.read_parquet(f"{tmp_path}/hot/**/*.parquet")["message"].to_list())


def test_a_pipeline_used_in_the_child_refuses_and_the_parents_rows_stay(tmp_path):
    out = run(
        tmp_path,
        """
        p = Pipeline(data_dir, config)
        p.process(rows("before", 10))  # buffered, not committed, at the fork
        pid = os.fork()
        if pid == 0:
            in_child(lambda: p.process(rows("child", 100)))
        print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        p.process(rows("parent", 100))
        p.close()
        """,
    )
    assert "child exit 3" in out
    assert "child refused: this store was opened as writer 'w0'" in out
    assert messages(tmp_path) == sorted(
        [f"before-{i}" for i in range(10)] + [f"parent-{i}" for i in range(100)]
    )


def test_a_child_closing_an_inherited_pipeline_commits_nothing(tmp_path):
    out = run(
        tmp_path,
        """
        p = Pipeline(data_dir, config)
        p.process(rows("before", 10))
        pid = os.fork()
        if pid == 0:
            in_child(p.close)
        print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        p.close()
        """,
    )
    assert "child exit 0" in out
    assert messages(tmp_path) == sorted(f"before-{i}" for i in range(10))


def test_a_child_does_not_keep_the_parents_writer_id(tmp_path):
    out = run(
        tmp_path,
        """
        p = Pipeline(data_dir, config)
        r, w = os.pipe()
        started_r, started_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.write(started_w, b"s")  # the fork hooks have run by now
            in_child(lambda: os.read(r, 1))  # lives on until the parent has checked
        os.close(r)
        os.read(started_r, 1)
        p.close()
        print("writer after parent close:", Store(data_dir).writer)
        os.close(w)
        print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """,
    )
    assert "writer after parent close: w0" in out
    assert "child exit 0" in out


def test_an_emitter_in_the_child_refuses_and_closes_at_once(tmp_path):
    out = run(
        tmp_path,
        """
        e = Emitter(data_dir, config)
        e.emit({"msg": "parent-before"})
        pid = os.fork()
        if pid == 0:
            def child():
                try:
                    e.emit({"msg": "child"})
                except ForkedError as err:
                    print("emit refused:", err, flush=True)
                started = time.monotonic()
                e.close()
                print("close took %.1f s" % (time.monotonic() - started), flush=True)
            in_child(child)
        print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        e.emit({"msg": "parent-after"})
        e.close()
        """,
    )
    assert "emit refused: this Emitter was built before a fork" in out
    assert "close took 0.0 s" in out
    assert "child exit 0" in out
    assert messages(tmp_path) == ["parent-after", "parent-before"]


def test_an_emitter_built_in_the_child_takes_its_own_writer_id(tmp_path):
    out = run(
        tmp_path,
        """
        e = Emitter(data_dir, config)
        pid = os.fork()
        if pid == 0:
            def child():
                with Emitter(data_dir, config) as mine:
                    mine.emit({"msg": "child"})
                print("child writer", mine.pipeline.store.writer, flush=True)
            in_child(child)
        print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        e.emit({"msg": "parent"})
        e.close()
        """,
    )
    assert "child writer w1" in out and "child exit 0" in out
    assert messages(tmp_path) == ["child", "parent"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads are read from /proc")
def test_a_store_opened_in_a_child_of_a_process_running_polars_refuses(tmp_path):
    # Polars' worker threads stay in the parent: a child writing Parquet waits for them
    # forever, so a store opened there refuses instead of hanging.
    out = run(
        tmp_path,
        """
        import polars as pl
        pl.DataFrame({"a": list(range(100_000))}).sort("a")  # starts polars' threads
        pid = os.fork()
        if pid == 0:
            in_child(lambda: Pipeline(data_dir, config))
        print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """,
    )
    assert "child refused: polars' worker threads had started" in out
    assert "child exit 3" in out


def test_an_emit_taken_before_the_fork_refuses_in_the_child_and_does_not_hang(tmp_path):
    # Breaker report s7: a hot loop keeps `emit = emitter.emit`. In the child that bound
    # method still filled the parent's batch (no ForkedError, events lost uncounted), and
    # once a few batches waited for the courier, a thread left in the parent, it hung.
    out = run(
        tmp_path,
        """
        import threading
        class SlowHandOver(Emitter):
            def _hand_over(self, data, events):
                time.sleep(0.5)  # handing a batch over when the fork comes
                super()._hand_over(data, events)
        e = SlowHandOver(data_dir, config, batch_bytes=64)
        emit = e.emit
        courier = threading.Thread(target=emit, args=({"msg": "parent", "pad": "x" * 80},))
        courier.start()
        time.sleep(0.1)
        pid = os.fork()
        if pid == 0:
            def child():
                signal.alarm(3)
                for i in range(10):
                    emit({"msg": f"child-{i}", "pad": "x" * 80})
                print("child emitted all", flush=True)
            in_child(child)
        print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        courier.join()
        e.close()
        """,
    )
    assert "child refused: this Emitter was built before a fork" in out
    assert "child exit 3" in out
    assert messages(tmp_path) == ["parent"]
