"""``qlingest ingest -`` on a stream that stays open: commits by age, and a signal commits
what was read."""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import sys
import termios
import time

import pytest


def ingest(store, config, *extra: str) -> subprocess.Popen:
    cfg = store.parent / "ingest.toml"
    cfg.write_text(config)
    cmd = [sys.executable, "-m", "qlingest", "ingest", "-", "--data-dir", str(store)]
    cmd += ["--config", str(cfg), *extra]
    return subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def count(store) -> int:
    cmd = [sys.executable, "-m", "qlingest", "query", "--data-dir", str(store), "--count"]
    return int(subprocess.run(cmd, capture_output=True, check=True).stdout)


def lines(n: int, start: int = 0) -> bytes:
    return b"".join(b'{"msg":"m%d"}\n' % i for i in range(start, start + n))


def wait_until(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def unread(pipe) -> int:
    """Bytes written to ``pipe`` that its reader has not read yet."""
    return int.from_bytes(fcntl.ioctl(pipe.fileno(), termios.FIONREAD, b"\0\0\0\0"), "little")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_signal_commits_what_was_read_and_exits_as_a_shell_expects(tmp_path, signum):
    store = tmp_path / "s"
    proc = ingest(store, "[serve]\nflush_interval_s = 3600\n", "--json")
    proc.stdin.write(lines(1000))
    proc.stdin.flush()
    wait_until(lambda: unread(proc.stdin) == 0)

    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 128 + signum, err.decode()
    summary = json.loads(out)
    assert summary["interrupted"] == signum.name
    assert summary["events_written"] == 1000
    assert count(store) == 1000


def test_the_summary_says_it_was_interrupted(tmp_path):
    proc = ingest(tmp_path / "s", "")
    proc.stdin.write(lines(5))
    proc.stdin.flush()
    wait_until(lambda: unread(proc.stdin) == 0)

    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == 130
    assert "interrupted        by SIGINT: input not read to its end" in out.decode()


def test_a_slow_stream_is_committed_by_age_while_it_stays_open(tmp_path):
    store = tmp_path / "s"
    proc = ingest(store, "[serve]\nflush_interval_s = 0.2\n", "--json")
    proc.stdin.write(lines(10))
    proc.stdin.flush()
    wait_until(lambda: store.joinpath("hot").exists() and count(store) == 10)

    proc.stdin.write(lines(5, start=10))
    proc.stdin.flush()
    wait_until(lambda: count(store) == 15)

    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert json.loads(out)["events_written"] == 15
    assert json.loads(out)["interrupted"] is None
