"""Directories of the store that cannot be listed: ``audit verify`` names them and does not
pass, ``query`` names them and skips their files, as it skips unreadable files. And what
``audit verify`` says of a wrong key, of no key, and of junk outside the audit files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_audit_tamper import AUDIT_DIR, KEY, audit_events, ingest

# Root reads any directory; without these capabilities it obeys the permission bits.
UNPRIVILEGED = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps=-all"]


def run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "qlingest", *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root reads every directory, and setpriv is not there to drop that")
        cmd = UNPRIVILEGED + cmd
    env = dict(os.environ, QLINGEST_AUDIT_KEY=KEY)
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "store"
    ingest(root, audit_events(3))
    yield root
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)


def unlisted(path: Path) -> Path:
    path.chmod(0)
    return path


def hour_dir(store: Path, category: str) -> Path:
    return sorted((store / "hot" / category).glob("date=*/hour=*"))[1]


class TestVerify:
    def test_an_unreadable_audit_hour_is_unreadable_not_deleted(self, store):
        hour = unlisted(hour_dir(store, AUDIT_DIR))
        out = run("audit", "verify", "--data-dir", str(store), "--require-seals")
        assert out.returncode == 1
        relative = hour.relative_to(store).as_posix()
        assert f"UNREADABLE at seq 0 ({relative}/): expected a directory that can be listed" in (
            out.stdout
        )
        assert "DELETED" not in out.stdout and "TAMPERED" not in out.stdout
        assert out.stdout.splitlines()[-1].startswith("UNREADABLE: ")

    def test_unreadable_audit_category_and_log_are_both_named(self, store):
        unlisted(store / "hot" / AUDIT_DIR)
        unlisted(store / "audit")
        out = run("audit", "verify", "--data-dir", str(store), "--require-seals")
        assert out.returncode == 1
        assert f"(hot/{AUDIT_DIR}/)" in out.stdout and "(audit/)" in out.stdout
        assert not out.stdout.startswith("OK") and "\nOK" not in out.stdout

    def test_an_unreadable_checkpoint_log_is_unreadable(self, store):
        log = store / "audit" / "checkpoints-w0.ndjson"
        log.chmod(0)
        out = run("audit", "verify", "--data-dir", str(store), "--require-seals")
        log.chmod(0o644)
        assert out.returncode == 1
        assert (
            "UNREADABLE at seq 0 (audit/checkpoints-w0.ndjson): expected a readable" in out.stdout
        )
        assert "Traceback" not in out.stderr


class TestQuery:
    def test_an_unreadable_directory_is_named_and_its_rows_skipped(self, store):
        hour = unlisted(hour_dir(store, "category=application.logs"))
        out = run("query", "--data-dir", str(store), "--count")
        assert (out.returncode, out.stdout) == (0, "5\n"), out.stderr
        assert f"skipped unreadable directory {hour} (its files are left out)" in out.stderr
        assert "ComputeError" not in out.stderr

    def test_a_zero_byte_file_beside_it_does_not_hide_it(self, store):
        hour = unlisted(hour_dir(store, "category=application.logs"))
        (hour_dir(store, AUDIT_DIR) / "part-x-00000001.parquet").write_bytes(b"")
        out = run("query", "--data-dir", str(store), "--count")
        assert (out.returncode, out.stdout) == (0, "5\n"), out.stderr
        assert f"skipped unreadable directory {hour}" in out.stderr

    def test_a_store_whose_hot_tier_cannot_be_listed_is_an_error(self, store):
        unlisted(store / "hot")
        out = run("query", "--data-dir", str(store), "--count")
        assert out.returncode == 1
        assert f"skipped unreadable directory {store / 'hot'}" in out.stderr
        assert "no readable Parquet files" in out.stderr


class TestVerifyMessages:
    def test_a_wrong_key_is_named_as_the_likely_cause(self, store):
        out = run_verify(store, key="not-the-key")
        assert out.returncode == 1
        assert "SEAL_INVALID" in out.stdout
        assert out.stdout.splitlines()[-1].startswith("SEALS FAIL: ")
        assert "most likely a wrong key or a rotated one" in out.stdout

    def test_one_forged_seal_is_still_tampering(self, store):
        log = store / "audit" / "checkpoints-w0.ndjson"
        lines = log.read_text().splitlines(keepends=True)
        entry = json.loads(lines[1])
        entry["seal"] = "0" * 64
        lines[1] = json.dumps(entry) + "\n"
        log.write_text("".join(lines))
        out = run_verify(store, key=KEY)
        assert out.stdout.splitlines()[-1].startswith("TAMPERED: ")

    def test_no_key_on_a_sealed_store_says_the_seals_were_not_checked(self, store):
        out = run_verify(store, key=None)
        assert out.returncode == 0
        assert "seals NOT CHECKED: no key given (set QLINGEST_AUDIT_KEY" in out.stdout
        assert "UNSEALED" not in out.stdout

    def test_no_key_on_an_unsealed_store_says_unsealed(self, tmp_path):
        root = tmp_path / "unsealed"
        ingest(root, audit_events(2), key=None)
        assert "UNSEALED (truncation not detectable)" in run_verify(root, key=None).stdout

    def test_a_junk_file_outside_the_audit_categories_is_named_and_passed_over(self, store):
        junk = hour_dir(store, "category=application.logs") / "junk.parquet"
        junk.write_bytes(b"junk\n")
        out = run_verify(store, key=KEY)
        assert out.returncode == 0, out.stdout
        relative = junk.relative_to(store).as_posix()
        assert f"Skipped unreadable file {relative} (not an audit file)" in out.stderr

    def test_a_junk_file_among_the_audit_files_is_unreadable(self, store):
        junk = hour_dir(store, AUDIT_DIR) / "junk.parquet"
        junk.write_bytes(b"junk\n")
        out = run_verify(store, key=KEY)
        assert out.returncode == 1
        assert f"UNREADABLE at seq 0 ({junk.relative_to(store).as_posix()})" in out.stdout


def run_verify(store: Path, key: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "QLINGEST_AUDIT_KEY"}
    if key is not None:
        env["QLINGEST_AUDIT_KEY"] = key
    cmd = [sys.executable, "-m", "qlingest", "audit", "verify", "--data-dir", str(store)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)
