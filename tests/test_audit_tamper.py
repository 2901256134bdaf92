"""Tampering with a real store: copies, moved and forged files, a torn checkpoint log, a live
writer, the key on start and the verify report's wording."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from qlingest import _core
from qlingest.audit import EVENT_COLUMNS, verify
from qlingest.config import load_config
from qlingest.exceptions import AuditError, ConfigError
from qlingest.pipeline import Pipeline

KEY = "test-audit-key"
AUDIT_DIR = "category=security.audit_logs"
HOUR = 3600


def audit_events(n: int, start: int = 0) -> bytes:
    """`n` audit events an hour apart (one file each), with an application event beside each."""
    rows = []
    for i in range(start, start + n):
        ts = 1_700_000_000 + i * HOUR
        rows.append({"ts": ts, "category": "security.audit_logs", "msg": f"login {i}"})
        rows.append({"ts": ts, "category": "application.logs", "msg": f"app {i}"})
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def ingest(store: Path, data: bytes, key: str | None = KEY) -> None:
    config = load_config(**{"audit.key": key}) if key else load_config()
    with Pipeline(store, config) as p:
        p.process(data)


def cli(store: Path, *args: str, key: str | None = KEY) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "QLINGEST_AUDIT_KEY"}
    if key:
        env["QLINGEST_AUDIT_KEY"] = key
    cmd = [sys.executable, "-m", "qlingest", "audit", "verify", "--data-dir", str(store), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def failures(out: subprocess.CompletedProcess) -> list[dict]:
    report = json.loads(out.stdout)
    return [dict(c["failure"], chain=c["chain"]) for c in report["chains"] if c["failure"]]


def file_with(store: Path, seq: int) -> Path:
    """The stored file holding record `seq` of chain w0."""
    for path in sorted(store.rglob("*.parquet")):
        if seq in pl.read_parquet(path, hive_partitioning=False)["audit_seq"].to_list():
            return path
    raise KeyError(seq)


@pytest.fixture
def store(tmp_path) -> Path:
    root = tmp_path / "store"
    ingest(root, audit_events(6))
    assert verify(root, require_seals=True, key=KEY).ok
    return root


@pytest.mark.parametrize("place", ["beside", "warm"])
def test_a_copied_file_is_inserted_at_its_first_row(store, place):
    original = file_with(store, 3)
    if place == "beside":
        copy = original.with_name(original.stem + "-copy.parquet")
    else:
        copy = store / "warm" / original.relative_to(store / "hot")
        copy.parent.mkdir(parents=True)
    shutil.copy(original, copy)
    out = cli(store, "--json")
    assert out.returncode == 1, out.stderr
    (failure,) = failures(out)
    assert (failure["chain"], failure["kind"], failure["seq"]) == ("w0", "inserted", 3)
    assert (failure["file"], failure["row"]) == (copy.relative_to(store).as_posix(), 0)


def test_a_copy_of_a_file_of_several_records_is_inserted_not_a_crash(tmp_path):
    store = tmp_path / "store"
    ingest(store, audit_events(2))
    one_hour = b"".join(
        json.dumps({"ts": 1_800_000_000 + i, "category": "security.audit_logs"}).encode() + b"\n"
        for i in range(4)
    )
    ingest(store, one_hour)
    ingest(store, audit_events(2, start=10))
    original = file_with(store, 3)
    copy = original.with_name(original.stem + "-copy.parquet")
    shutil.copy(original, copy)
    out = cli(store, "--json")
    assert out.returncode == 1, out.stderr
    (failure,) = failures(out)
    assert (failure["kind"], failure["seq"], failure["row"]) == ("inserted", 3, 0)
    assert (failure["expected"], failure["found"]) == ("seq 9 or above", "3")


def unchained_copy(store: Path, category: str) -> pl.DataFrame:
    frame = pl.read_parquet(file_with(store, 2), hive_partitioning=False)
    nulls = {c: pl.lit(None, frame.schema[c]) for c in frame.columns if c.startswith("audit_")}
    return frame.with_columns(
        pl.lit(category).alias("category"), pl.lit("injected").alias("message"), **nulls
    )


def test_an_unchained_file_in_the_audit_directory_is_caught_whatever_its_column(store):
    forged = file_with(store, 2).with_name("part-evil-0.parquet")
    unchained_copy(store, "application.logs").write_parquet(forged)
    out = cli(store, "--json")
    assert out.returncode == 1
    found = {(f["kind"], f["file"], f["row"], f["chain"]) for f in failures(out)}
    where = forged.relative_to(store).as_posix()
    assert found == {("modified", where, 0, None), ("inserted", where, 0, None)}
    # Queries take the category from the path, so the forged row reads as an audit record.
    hits = (
        pl.scan_parquet(str(store / "**" / "*.parquet"), hive_partitioning=True)
        .filter(pl.col("message") == "injected")
        .collect()
    )
    assert hits["category"].to_list() == ["security.audit_logs"]


def test_a_chained_file_moved_to_another_category_is_modified(store):
    original = file_with(store, 4)
    moved = Path(str(original).replace(AUDIT_DIR, "category=application.logs"))
    moved.parent.mkdir(parents=True, exist_ok=True)
    original.rename(moved)
    out = cli(store, "--json")
    assert out.returncode == 1
    where = moved.relative_to(store).as_posix()
    by_chain = {f["chain"]: f for f in failures(out)}
    assert (by_chain["w0"]["kind"], by_chain["w0"]["seq"], by_chain["w0"]["file"]) == (
        "modified",
        4,
        where,
    )
    assert by_chain[None]["kind"] == "modified" and by_chain[None]["file"] == where
    assert by_chain[None]["expected"] == "category 'application.logs' (from the path)"


def test_a_chained_file_moved_to_another_hour_is_modified(store):
    original = file_with(store, 4)
    # Record 4 is at 1_700_000_000 + 3 h: 2023-11-15 01:13:20 UTC, filed under hour=01.
    assert original.parent.name == "hour=01"
    moved = original.parent.with_name("hour=05") / original.name
    moved.parent.mkdir()
    original.rename(moved)
    out = cli(store, "--json")
    assert out.returncode == 1, out.stderr
    (failure,) = failures(out)
    where = moved.relative_to(store).as_posix()
    assert (failure["chain"], failure["kind"], failure["seq"]) == (None, "modified", 4)
    assert (failure["file"], failure["row"]) == (where, 0)
    assert failure["expected"] == "date '2023-11-15', hour '05' (from the path)"
    assert failure["found"] == "date '2023-11-15', hour '01' (from the timestamp)"


def test_a_chained_file_moved_to_another_date_is_modified(store):
    original = file_with(store, 4)
    day = original.parent.parent
    moved = day.with_name("date=2023-11-20") / original.parent.name / original.name
    moved.parent.mkdir(parents=True)
    original.rename(moved)
    (failure,) = failures(cli(store, "--json"))
    assert (failure["kind"], failure["seq"]) == ("modified", 4)
    assert failure["found"] == "date '2023-11-15', hour '01' (from the timestamp)"


@pytest.mark.parametrize("column", ["note", "date"])
def test_a_column_added_to_a_chained_file_is_modified(store, column):
    path = file_with(store, 3)
    frame = pl.read_parquet(path, hive_partitioning=False)
    frame.with_columns(pl.lit("approved by ops").alias(column)).write_parquet(path)
    assert verify(store, key=KEY).ok is False
    out = cli(store, "--json")
    assert out.returncode == 1, out.stderr
    (failure,) = failures(out)
    where = path.relative_to(store).as_posix()
    assert (failure["chain"], failure["kind"], failure["seq"]) == (None, "modified", 3)
    assert (failure["file"], failure["row"]) == (where, 0)
    assert (failure["expected"], failure["found"]) == (
        "the event columns only",
        f"extra column '{column}'",
    )


def test_stored_files_hold_exactly_the_event_columns(store):
    for path in store.rglob("*.parquet"):
        assert tuple(pl.read_parquet_schema(path)) == EVENT_COLUMNS


def test_a_file_outside_the_tiers_is_read_as_queries_read_it(store):
    forged = store / "elsewhere" / AUDIT_DIR / "x.parquet"
    forged.parent.mkdir(parents=True)
    unchained_copy(store, "security.audit_logs").write_parquet(forged)
    out = cli(store, "--json")
    assert out.returncode == 1
    assert [(f["kind"], f["file"]) for f in failures(out)] == [
        ("inserted", forged.relative_to(store).as_posix())
    ]


def test_a_torn_checkpoint_line_in_the_middle_is_a_reported_failure(store):
    log = store / "audit" / "checkpoints-w0.ndjson"
    lines = log.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:40] + "\n"
    log.write_text("".join(lines))
    out = cli(store, "--json")
    assert out.returncode == 1, out.stderr
    (failure,) = failures(out)
    assert (failure["chain"], failure["kind"], failure["file"], failure["row"]) == (
        "w0",
        "unreadable",
        "audit/checkpoints-w0.ndjson",
        2,
    )
    assert failure["seq"] == 3 and failure["origin"] == "checkpoint log"
    human = cli(store)
    assert human.returncode == 1
    assert "UNREADABLE at seq 3 (audit/checkpoints-w0.ndjson line 3)" in human.stdout


@pytest.mark.parametrize("line", ['{"chain":"w0"}', "[1]", '{"chain":"w0","seq":-1}'])
def test_a_well_formed_json_line_that_is_no_checkpoint_is_unreadable(store, line):
    log = store / "audit" / "checkpoints-w0.ndjson"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join([*lines[:1], line + "\n", *lines[1:]]))
    report = verify(store, key=KEY)
    assert [c.failure.kind for c in report.chains if c.failure] == ["unreadable"]


def drop_last_checkpoint(store: Path) -> None:
    """The state between a file's commit and its checkpoint line."""
    log = store / "audit" / "checkpoints-w0.ndjson"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:-1]))


def hold_writer_lock(store: Path, chain: str = "w0") -> int:
    fd = os.open(store / "writers" / f"{chain}.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_records_a_live_writer_has_not_sealed_yet_are_pending(store):
    drop_last_checkpoint(store)
    stopped = verify(store, require_seals=True, key=KEY)
    assert [(c.failure.kind, c.failure.seq) for c in stopped.chains] == [("seal_missing", 6)]
    fd = hold_writer_lock(store)
    try:
        live = verify(store, require_seals=True, key=KEY)
        out = cli(store, "--require-seals")
    finally:
        os.close(fd)
    (chain,) = live.chains
    assert live.ok and (chain.records, chain.pending) == (6, 1)
    assert out.returncode == 0
    assert "1 records pending (their writer is running, not yet sealed)" in out.stdout


def test_a_live_writer_does_not_hide_tampering(store):
    drop_last_checkpoint(store)
    path = file_with(store, 6)
    frame = pl.read_parquet(path, hive_partitioning=False)
    frame.with_columns(pl.lit("forged").alias("message")).write_parquet(path)
    fd = hold_writer_lock(store)
    try:
        report = verify(store, require_seals=True, key=KEY)
    finally:
        os.close(fd)
    assert [(c.failure.kind, c.failure.seq) for c in report.chains] == [("modified", 6)]


def forge_chain(store: Path, chain: str) -> None:
    """Writes a new chain of valid links, as anyone could with the reference code, beside the
    first audit file, with no checkpoint."""
    import audit_reference as ar

    path = file_with(store, 1)
    frame = pl.read_parquet(path, hive_partitioning=False)
    audit_fields = ("audit_chain", "audit_seq", "audit_prev_hash", "audit_hash")
    rows = [
        {k: v for k, v in r.items() if k not in audit_fields} | {"message": "FORGED"}
        for r in ar.rows_from_frame(frame)
    ]
    forged = pl.DataFrame(ar.chain(rows, chain), schema=frame.schema, orient="row")
    forged.write_parquet(path.with_name("part-w7-00000001.parquet"))


def test_a_whole_chain_forged_beside_the_writers_fails_under_a_key(store):
    """Attack report s13 item 4: a new chain of valid links, written into a sealed store with
    no checkpoint, verified as intact unless seals were required."""
    forge_chain(store, "w7")
    (store / "writers" / "w7.lock").touch()
    report = verify(store, key=KEY)
    failed = {
        c.chain: c.failure and (c.failure.kind, c.failure.seq, c.failure.found)
        for c in report.chains
    }
    assert failed == {"w0": None, "w7": ("seal_missing", 1, "no checkpoint of this chain")}
    assert not report.ok
    assert cli(store).returncode == 1
    # Without a key nothing is sealed to check: intact but unsealed, as documented.
    assert verify(store).ok
    # A running writer of that id may not have checkpointed its first file yet: pending.
    fd = hold_writer_lock(store, "w7")
    try:
        assert verify(store, key=KEY).ok
    finally:
        os.close(fd)


def test_a_forged_chain_id_that_is_a_path_never_borrows_a_live_writer(store, tmp_path):
    """Attack report s13 round 2 item 4: a chain id read from the file named the lock path,
    so `./w0` (with w0 running) or an absolute path (with a lock the forger held) was live."""
    outside = tmp_path / "outside" / "evil"
    outside.parent.mkdir()
    for chain, lock in [("./w0", store / "writers" / "w0.lock"), (str(outside), None)]:
        forge_chain(store, chain)
        lock = lock or outside.with_name("evil.lock")
        lock.touch()
        fd = os.open(lock, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            report = verify(store, key=KEY)
        finally:
            os.close(fd)
        forged = next(c for c in report.chains if c.chain == chain)
        assert (forged.failure.kind, forged.pending) == ("seal_missing", 0), chain
        assert not report.ok


@pytest.mark.parametrize("key", ["another-key", None])
def test_a_sealed_store_refuses_a_wrong_or_missing_key_on_start(store, key, monkeypatch):
    monkeypatch.delenv("QLINGEST_AUDIT_KEY", raising=False)
    log = store / "audit" / "checkpoints-w0.ndjson"
    before = log.read_text()
    with pytest.raises(ConfigError, match="newest checkpoint of chain 'w0' \\(seq 6\\)"):
        ingest(store, audit_events(1, start=20), key=key)
    assert log.read_text() == before
    ingest(store, audit_events(1, start=20), key=KEY)
    assert verify(store, require_seals=True, key=KEY).records == 7
    # The refused start released its writer id: the retry in this process got w0 back.
    assert [c.chain for c in verify(store, key=KEY).chains] == ["w0"]


def test_an_unsealed_store_accepts_any_start(tmp_path, monkeypatch):
    monkeypatch.delenv("QLINGEST_AUDIT_KEY", raising=False)
    ingest(tmp_path, audit_events(2), key=None)
    ingest(tmp_path, audit_events(1, start=5), key=None)
    assert verify(tmp_path).records == 3


def test_the_chain_refuses_a_bad_start_at_construction():
    with pytest.raises(AuditError, match="chain id is empty"):
        _core.AuditChain("")
    with pytest.raises(AuditError, match="no seq for a next record"):
        _core.AuditChain("w0", (2**64 - 1, "a" * 64))
    chain = _core.AuditChain("w0", (2**64 - 2, "a" * 64))
    assert chain.head == (2**64 - 2, "a" * 64)


def test_a_full_sequence_refuses_records_instead_of_wrapping():
    frame = pl.DataFrame(
        {"timestamp": [0, 0], "category": ["security.audit_logs"] * 2},
        schema={"timestamp": pl.Datetime("ns", "UTC"), "category": pl.String},
    )
    chain = _core.AuditChain("w0", (2**64 - 2, "a" * 64))
    with pytest.raises(AuditError, match="overflow"):
        chain.append(frame)
    assert chain.head == (2**64 - 2, "a" * 64)


def test_human_output_names_checkpoints_and_the_anchor(store, tmp_path):
    anchor = tmp_path / "anchor.json"
    assert cli(store, "--anchor", str(anchor)).returncode == 0
    newest = file_with(store, 6)
    newest.unlink()
    truncated = cli(store)
    assert truncated.returncode == 1 and "row None" not in truncated.stdout
    assert f"TRUNCATED at seq 6 (checkpoint of {newest.relative_to(store).as_posix()})" in (
        truncated.stdout
    )
    drop_last_checkpoint(store)
    cut = cli(store, "--anchor", str(anchor))
    assert cut.returncode == 1
    assert f"TRUNCATED at seq 6 (anchor {anchor})" in cut.stdout


def test_a_chain_id_with_control_characters_cannot_forge_a_line_of_the_report(store):
    """Attack report s13 round 3 item 10: a chain id `w0\\nOK: ...` printed a fake verdict
    line, and escapes in it reached the terminal."""
    forge_chain(store, "w9\nOK: all chains verify\x1b[2J")
    out = cli(store)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert not any(line.startswith("OK:") for line in lines)
    assert "\x1b" not in out.stdout
    assert any("chain w9\\nOK: all chains verify\\x1b[2J: SEAL_MISSING" in line for line in lines)


def test_ingest_with_a_wrong_key_is_a_one_line_usage_error(store, tmp_path):
    events = tmp_path / "events.ndjson"
    events.write_bytes(audit_events(1, start=30))
    env = {**os.environ, "QLINGEST_AUDIT_KEY": "another-key"}
    cmd = [sys.executable, "-m", "qlingest", "ingest", str(events), "--data-dir", str(store)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "does not verify under the configured audit key" in out.stderr
    assert verify(store, require_seals=True, key=KEY).records == 6
