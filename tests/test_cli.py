from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "qlingest", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True)


def test_missing_file_is_a_one_line_error(tmp_path):
    out = run("ingest", str(tmp_path / "nope.log"), "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert (
        out.stderr.decode().strip()
        == f"qlingest: error: input file not found: {tmp_path / 'nope.log'}"
    )


def test_bad_config_is_a_one_line_error(tmp_path):
    cfg = tmp_path / "q.toml"
    cfg.write_text("[input]\nmax_depth = 'deep'\n")
    src = tmp_path / "a.ndjson"
    src.write_text("{}\n")
    out = run("ingest", str(src), "--data-dir", str(tmp_path / "s"), "--config", str(cfg))
    assert out.returncode == 2
    err = out.stderr.decode().strip()
    assert err.startswith("qlingest: error:") and "max_depth" in err and len(err.splitlines()) == 1


def test_unknown_preset_is_named(tmp_path):
    src = tmp_path / "a.log"
    src.write_text("x\n")
    out = run("ingest", str(src), "--data-dir", str(tmp_path), "--parse", "@nginx-fancy")
    assert out.returncode == 2
    assert "@nginx-fancy" in out.stderr.decode()


@pytest.fixture
def store(tmp_path):
    rows = [
        {
            "ts": "2024-01-01T10:00:00Z",
            "level": "info",
            "msg": "hello",
            "service": "api",
            "trace_id": "AB12",
        },
        {"ts": "2024-01-01T11:00:00Z", "level": "error", "msg": "boom timeout", "service": "api"},
        {
            "ts": "2024-01-02T10:00:00Z",
            "level": "warn",
            "msg": "slow",
            "service": "db",
            "sample_rate": 10,
        },
    ]
    src = tmp_path / "in.ndjson"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run("ingest", str(src), "--data-dir", str(tmp_path / "s")).returncode == 0
    return str(tmp_path / "s")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "3"),
        (("--level", "warn"), "2"),
        (("--service", "api"), "2"),
        (("--since", "2024-01-01T10:30:00Z"), "2"),
        (("--until", "2024-01-02"), "2"),
        (("--grep", "timeout"), "1"),
        (("--trace-id", "ab12"), "1"),
        (("--estimate",), "12"),
    ],
)
def test_query_counts(store, args, expected):
    out = run("query", "--data-dir", store, "--count", *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == expected


def test_query_ndjson_and_csv(store):
    out = run("query", "--data-dir", store, "--format", "ndjson", "--level", "error")
    (row,) = [json.loads(x) for x in out.stdout.splitlines()]
    assert row["message"] == "boom timeout" and row["level"] == "error"
    csv = run("query", "--data-dir", store, "--format", "csv", "--limit", "1").stdout.decode()
    assert csv.splitlines()[0].startswith("timestamp,observed_at,level")


def test_query_of_an_empty_store_says_so(tmp_path):
    out = run("query", "--data-dir", str(tmp_path), "--count")
    assert out.returncode == 2
    assert "no Parquet files" in out.stderr.decode()
