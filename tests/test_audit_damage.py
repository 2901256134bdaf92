"""Damaged stored files (a torn footer, a damaged data page, an empty file) and a torn
checkpoint log: writers start and go on, queries skip and name the file, verification reports
it, and the audit chain never issues a seq twice nor hides what was lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from qlingest.audit import checkpoint_path, verify
from serve_helpers import ServeProcess, dead_letters, events, stored
from test_audit_tamper import KEY, audit_events, cli, file_with, ingest

SERVE_CONFIG = "[serve]\nflush_interval_s = 0.05\n"


def tear(path: Path, keep: int = 50) -> None:
    """A file cut short after its commit: its footer is gone."""
    path.write_bytes(path.read_bytes()[:keep])


def damage_pages(path: Path) -> None:
    """Every byte between the leading magic and the footer flipped: the footer still reads."""
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    data[4:-footer] = bytes(b ^ 0xFF for b in data[4:-footer])
    path.write_bytes(bytes(data))


def damage_column(path: Path, column: str) -> None:
    """The data pages of one column flipped, past their page header: the footer still reads."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata.row_group(0)
    (chunk,) = [
        meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == column
    ]
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    end = start + chunk.total_compressed_size
    data[start + 24 : end] = bytes(b ^ 0xFF for b in data[start + 24 : end])
    path.write_bytes(bytes(data))


def query(store: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "qlingest", "query", "--data-dir", str(store), *args]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture
def store(tmp_path) -> Path:
    root = tmp_path / "store"
    ingest(root, audit_events(6))
    return root


class TestWriterStart:
    def test_ingest_skips_a_torn_audit_file_and_continues_the_chain_past_it(self, store, caplog):
        torn = file_with(store, 6)
        tear(torn)
        ingest(store, audit_events(2, start=20))

        assert f"Skipped unreadable file {torn}" in caplog.text
        seqs = stored_seqs(store)
        # The torn file's seq 6 is not issued again: the chain goes on from its checkpoint.
        assert seqs == [1, 2, 3, 4, 5, 7, 8]
        failure = only_failure(store)
        assert (failure.kind, failure.origin) == ("unreadable", "file")
        assert failure.file == torn.relative_to(store).as_posix()

    def test_once_the_torn_file_is_removed_its_records_show_as_deleted(self, store):
        torn = file_with(store, 6)
        tear(torn)
        ingest(store, audit_events(2, start=20))
        torn.unlink()

        failure = only_failure(store)
        assert (failure.kind, failure.seq) == ("deleted", 6)

    def test_an_empty_audit_file_is_skipped_like_a_torn_one(self, store):
        file_with(store, 6).write_bytes(b"")
        ingest(store, audit_events(1, start=20))
        assert stored_seqs(store) == [1, 2, 3, 4, 5, 7]

    def test_when_no_file_of_the_chain_reads_the_chain_goes_on_from_the_log(self, tmp_path):
        root = tmp_path / "one"
        ingest(root, audit_events(1))
        for path in root.rglob("*.parquet"):
            tear(path)
        ingest(root, audit_events(1, start=20))
        assert stored_seqs(root) == [2]

    def test_a_torn_application_file_does_not_stop_an_ingest_of_audit_records(self, store):
        app = next((store / "hot" / "category=application.logs").rglob("*.parquet"))
        tear(app)
        ingest(store, audit_events(1, start=20))
        assert stored_seqs(store) == [1, 2, 3, 4, 5, 6, 7]

    def test_the_sidecar_starts_past_a_torn_file_and_replays_its_records(self, tmp_path):
        root = tmp_path / "s"
        srv = ServeProcess(root, SERVE_CONFIG)
        assert srv.post("/v1/events", events(range(0, 5)))[0] == 200
        wait_for_files(root, 1)
        assert srv.post("/v1/events", events(range(5, 10), category="app.other"))[0] == 200
        wait_for_files(root, 2)
        srv.kill()  # the log is kept: its records can be replayed
        first = next((root / "hot" / "category=app.serve").rglob("*.parquet"))
        tear(first)

        srv = ServeProcess(root, SERVE_CONFIG)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(30) == 0
        err = srv.proc.stderr.read().decode()
        srv.kill()  # closes the pipes of the process that has ended
        # The server's own JSON line; the audit chain, which reads the files too, warns as well.
        logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        (warning,) = [entry for entry in logged if "unreadable" in entry["msg"]]
        assert warning["file"] == str(first) and warning["level"] == "warn"
        first.unlink()
        assert sorted(stored(root)["message"].to_list()) == [f"e{i}" for i in range(10)]

    def test_the_sidecar_starts_past_a_torn_dead_letter_file_and_replays_it(self, tmp_path):
        root = tmp_path / "s"
        srv = ServeProcess(root, SERVE_CONFIG)
        assert srv.post("/v1/events", b"not json\n")[0] == 200
        deadline = time.monotonic() + 5
        while not list((root / "dead-letter").rglob("*.ndjson.zst")):
            assert time.monotonic() < deadline, "no dead letter committed"
            time.sleep(0.02)
        srv.kill()
        (torn,) = (root / "dead-letter").rglob("*.ndjson.zst")
        tear(torn, keep=10)

        srv = ServeProcess(root, SERVE_CONFIG)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(30) == 0
        err = srv.proc.stderr.read().decode()
        srv.kill()
        assert f"Skipped unreadable file {torn}" in err
        torn.unlink()
        assert [r["raw"] for r in dead_letters(root)] == ["not json"]


class TestQuery:
    def test_a_damaged_page_is_skipped_and_named(self, store):
        damaged = file_with(store, 3)
        damage_pages(damaged)
        out = query(store, "--format", "ndjson")
        assert out.returncode == 0, out.stderr
        assert f"skipped unreadable file {damaged}: " in out.stderr
        assert "1 unreadable files skipped" in out.stderr
        assert len(out.stdout.splitlines()) == 11

    @pytest.mark.parametrize("column", [None, "message", "user_tier"])
    def test_count_reads_footers_and_a_read_names_a_damaged_page(self, store, column):
        # Breaker report s10: --count and a read disagree past a damaged data page. The count
        # comes from the footers by design (fast on a large store); the read names the file.
        import pyarrow.parquet as pq

        damaged = file_with(store, 3)
        held = pq.ParquetFile(damaged).metadata.num_rows
        damage_pages(damaged) if column is None else damage_column(damaged, column)
        rows = query(store, "--format", "ndjson")
        count = query(store, "--count")
        assert count.returncode == 0, count.stderr
        assert len(rows.stdout.splitlines()) == 11
        assert int(count.stdout) == 11 + held
        assert f"skipped unreadable file {damaged}: " in rows.stderr

    def test_the_skipped_count_counts_empty_and_torn_files(self, store):
        empty, torn = file_with(store, 2), file_with(store, 4)
        empty.write_bytes(b"")
        tear(torn)
        out = query(store, "--count")
        assert (out.returncode, out.stdout.strip()) == (0, "10"), out.stderr
        assert out.stderr.count(f"skipped unreadable file {empty}: empty (0 bytes)") == 1
        assert f"skipped unreadable file {torn}: " in out.stderr
        assert "2 unreadable files skipped" in out.stderr

    def test_a_torn_footer_and_a_damaged_page_are_both_skipped_and_named(self, store):
        # Breaker report s5 (second round): the footer pass found the torn file, and the scan
        # of the rest then failed on the damaged page, unnamed.
        torn, damaged = file_with(store, 4), file_with(store, 3)
        tear(torn, keep=60)
        damage_pages(damaged)
        out = query(store, "--format", "ndjson")
        assert out.returncode == 0, out.stderr
        assert f"skipped unreadable file {torn}: " in out.stderr
        assert f"skipped unreadable file {damaged}: " in out.stderr
        assert "2 unreadable files skipped" in out.stderr
        assert len(out.stdout.splitlines()) == 10


class TestVerify:
    @pytest.mark.parametrize("as_json", [False, True])
    def test_a_damaged_page_is_unreadable_with_its_file(self, store, as_json):
        damaged = file_with(store, 3)
        damage_pages(damaged)
        out = cli(store, *(["--json"] if as_json else []))
        assert out.returncode == 1 and "error" not in out.stderr, out.stderr
        relative = damaged.relative_to(store).as_posix()
        if as_json:
            (chain,) = json.loads(out.stdout)["chains"]
            assert (chain["failure"]["kind"], chain["failure"]["file"]) == ("unreadable", relative)
        else:
            assert f"UNREADABLE at seq 0 ({relative})" in out.stdout
            assert out.stdout.splitlines()[-1].startswith("UNREADABLE: ")


class TestTornCheckpointLog:
    def test_the_next_writer_cuts_a_torn_last_line_and_the_store_verifies(self, store):
        log = checkpoint_path(store, "w0")
        log.write_bytes(log.read_bytes()[:-30])  # a crash while appending the last line
        assert verify(store, key=KEY).ok

        ingest(store, audit_events(1, start=20))

        lines = log.read_bytes().split(b"\n")
        assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])
        report = verify(store, require_seals=True, key=KEY)
        assert report.ok, report.chains
        assert report.records == 7

    def test_a_whole_last_entry_without_its_newline_is_kept(self, store):
        log = checkpoint_path(store, "w0")
        whole = log.read_bytes()[:-1]
        log.write_bytes(whole)

        ingest(store, audit_events(1, start=20))

        after = log.read_bytes()
        assert after.startswith(whole + b"\n") and len(after.splitlines()) == 7
        assert verify(store, require_seals=True, key=KEY).ok

    def test_a_writer_starts_past_an_unreadable_line_that_verify_keeps_reporting(
        self, store, caplog
    ):
        log = checkpoint_path(store, "w0")
        lines = log.read_text().splitlines(keepends=True)
        lines[2] = lines[2][:40] + "\n"
        log.write_text("".join(lines))

        ingest(store, audit_events(1, start=20))

        assert "Skipped unreadable checkpoint: audit/checkpoints-w0.ndjson line 3." in caplog.text
        assert stored_seqs(store) == [1, 2, 3, 4, 5, 6, 7]
        failure = only_failure(store)
        assert (failure.kind, failure.origin, failure.row) == ("unreadable", "checkpoint log", 2)


def stored_seqs(store: Path) -> list[int]:
    frame = pl.concat(
        pl.read_parquet(p, hive_partitioning=False, columns=["audit_seq"])
        for p in store.rglob("*.parquet")
        if p.stat().st_size > 100
    )
    return sorted(frame["audit_seq"].drop_nulls().to_list())


def only_failure(store: Path):
    report = verify(store, require_seals=True, key=KEY)
    (failure,) = [c.failure for c in report.chains if c.failure is not None]
    return failure


def wait_for_files(root: Path, n: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while len(list((root / "hot").rglob("*.parquet"))) < n:
        assert time.monotonic() < deadline, f"fewer than {n} files committed"
        time.sleep(0.02)
