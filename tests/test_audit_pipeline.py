"""The pipeline chains audit records as it commits, and `qlingest audit verify` checks them."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest
from qlingest.audit import read_checkpoints, verify
from qlingest.config import load_config
from qlingest.pipeline import Pipeline

KEY = "test-audit-key"


def audit_lines(n: int, start: int = 0) -> bytes:
    rows = []
    for i in range(start, start + n):
        rows.append(
            {
                "ts": 1_700_000_000 + i,
                "category": "security.audit_logs",
                "msg": f"login {i}",
                "actor": f"u{i}",
            }
        )
        rows.append({"ts": 1_700_000_000 + i, "msg": f"app {i}"})
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def ingest(store, data: bytes) -> None:
    with Pipeline(store, load_config(**{"audit.key": KEY})) as p:
        p.process(data)


def cli(*args: str, key: str | None = KEY) -> subprocess.CompletedProcess:
    env = {"QLINGEST_AUDIT_KEY": key} if key else {}
    cmd = [sys.executable, "-m", "qlingest", "audit", "verify", *args]
    return subprocess.run(cmd, capture_output=True, env={**__import__("os").environ, **env})


def test_chain_continues_across_runs_and_verifies(tmp_path):
    ingest(tmp_path, audit_lines(5))
    ingest(tmp_path, audit_lines(5, start=5))
    report = verify(tmp_path, require_seals=True, key=KEY)
    assert report.ok and report.records == 10
    assert [c["seq"] for c in read_checkpoints(tmp_path)] == [5, 10]
    frame = (
        pl.scan_parquet(tmp_path / "hot/**/*.parquet")
        .filter(pl.col("audit_seq").is_not_null())
        .collect()
    )
    assert sorted(frame["audit_seq"].to_list()) == list(range(1, 11))
    assert set(frame["category"].to_list()) == {"security.audit_logs"}
    out = cli("--data-dir", str(tmp_path), "--require-seals")
    assert out.returncode == 0, out.stdout + out.stderr
    assert b"OK: 10 records in 1 chains" in out.stdout


def test_an_edited_record_is_reported_with_its_place(tmp_path):
    ingest(tmp_path, audit_lines(4))
    (path,) = (tmp_path / "hot" / "category=security.audit_logs").rglob("*.parquet")
    frame = pl.read_parquet(path)
    frame.with_columns(
        pl.when(pl.col("audit_seq") == 3)
        .then(pl.lit("login forged"))
        .otherwise(pl.col("message"))
        .alias("message")
    ).write_parquet(path)
    out = cli("--data-dir", str(tmp_path), "--json")
    assert out.returncode == 1
    (chain,) = json.loads(out.stdout)["chains"]
    assert chain["failure"]["kind"] == "modified" and chain["failure"]["seq"] == 3
    assert chain["failure"]["file"].endswith(path.name)


def test_a_cut_tail_is_caught_by_the_seals(tmp_path):
    ingest(tmp_path, audit_lines(4))
    (path,) = (tmp_path / "hot" / "category=security.audit_logs").rglob("*.parquet")
    pl.read_parquet(path).filter(pl.col("audit_seq") < 4).write_parquet(path)
    report = verify(tmp_path, key=KEY)
    assert not report.ok
    assert report.chains[0].failure.kind == "truncated"


def test_require_seals_without_a_key_is_a_usage_error(tmp_path):
    ingest(tmp_path, audit_lines(1))
    out = cli("--data-dir", str(tmp_path), "--require-seals", key=None)
    assert out.returncode == 2


@pytest.mark.parametrize("count", [0, 3])
def test_unsealed_store_reports_unsealed(tmp_path, count, monkeypatch):
    monkeypatch.delenv("QLINGEST_AUDIT_KEY", raising=False)
    with Pipeline(tmp_path) as p:
        p.process(audit_lines(count) or b"{}\n")
    report = verify(tmp_path)
    assert report.ok and report.records == count
    assert all(not c.sealed for c in report.chains)


def test_a_cut_of_files_and_checkpoint_lines_shows_against_the_anchor(tmp_path):
    anchor = tmp_path / "anchor.json"
    store = tmp_path / "store"
    for start in (0, 100):
        with Pipeline(store, load_config(**{"audit.key": KEY})) as p:
            p.process(audit_lines(3, start=start).replace(b"1700000", b"1800000", 1))
    assert cli("--data-dir", str(store), "--anchor", str(anchor)).returncode == 0
    assert json.loads(anchor.read_text())["w0"][0] == 6
    # Remove the newest file and its checkpoint line together: the store alone looks intact.
    newest = max(store.rglob("part-w0-*.parquet"), key=lambda p: p.name)
    newest.unlink()
    log = store / "audit" / "checkpoints-w0.ndjson"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:-1]))
    assert verify(store, require_seals=True, key=KEY).ok
    out = cli("--data-dir", str(store), "--anchor", str(anchor), "--json")
    assert out.returncode == 1
    kinds = [c["failure"]["kind"] for c in json.loads(out.stdout)["chains"] if c["failure"]]
    assert kinds == ["truncated"]


def test_an_unreadable_file_is_reported_not_a_crash(tmp_path):
    ingest(tmp_path, audit_lines(3))
    (path,) = (tmp_path / "hot" / "category=security.audit_logs").rglob("*.parquet")
    path.write_bytes(path.read_bytes()[:100])
    out = cli("--data-dir", str(tmp_path))
    assert out.returncode == 1 and b"UNREADABLE" in out.stdout


def test_files_gone_but_checkpoints_kept_is_truncation(tmp_path):
    ingest(tmp_path, audit_lines(3))
    for path in (tmp_path / "hot").rglob("*.parquet"):
        path.unlink()
    report = verify(tmp_path, key=KEY)
    assert [c.failure.kind for c in report.chains if c.failure] == ["truncated"]


@pytest.mark.parametrize(
    "content",
    ["[]", "{", '{"w0": [true, "x"]}', '{"w0": [1, "ABC"]}', '{"w0": [0, "' + "0" * 64 + '"]}'],
)
def test_a_malformed_anchor_is_a_one_line_error(tmp_path, content):
    ingest(tmp_path / "s", audit_lines(2))
    anchor = tmp_path / "anchor.json"
    anchor.write_text(content)
    out = cli("--data-dir", str(tmp_path / "s"), "--anchor", str(anchor))
    assert out.returncode == 2
    assert (
        out.stderr.decode().startswith("qlingest: error: anchor") and b"Traceback" not in out.stderr
    )
