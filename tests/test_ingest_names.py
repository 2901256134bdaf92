"""Input names the command line meets: a file name that is not UTF-8 is read like any other."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import zstandard
from qlingest.query import scan


def test_a_file_name_that_is_not_utf8_is_ingested_and_named_with_an_escape(tmp_path):
    good = tmp_path / "good.ndjson"
    good.write_bytes(b'{"msg": "good"}\n')
    odd = os.fsencode(tmp_path) + b"/b5-\xff-x.ndjson"
    with open(odd, "wb") as f:
        f.write(b'{"msg": "odd"}\n{broken\n')
    store = tmp_path / "store"

    cmd = [sys.executable, "-m", "qlingest", "ingest", os.fsencode(good), odd]
    out = subprocess.run([*cmd, "--data-dir", str(store), "--json"], capture_output=True)

    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr.decode()
    summary = json.loads(out.stdout)
    assert (summary["events_written"], summary["inputs_failed"]) == (2, [])
    assert sorted(scan(store).collect()["message"].to_list()) == ["good", "odd"]
    letters = list((store / "dead-letter").rglob("*.ndjson.zst"))
    raw = b"".join(zstandard.ZstdDecompressor().decompress(f.read_bytes()) for f in letters)
    (letter,) = [json.loads(line) for line in raw.splitlines()]
    assert letter["source"].endswith("/b5-\\xff-x.ndjson") and letter["line"] == 2


def test_a_missing_file_whose_name_is_not_utf8_is_a_one_line_error(tmp_path):
    missing = os.fsencode(tmp_path) + b"/gone-\xff.ndjson"
    cmd = [sys.executable, "-m", "qlingest", "ingest", missing, "--data-dir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True)
    assert out.returncode == 2
    assert (
        out.stderr.decode()
        .strip()
        .endswith("input file not found: " + str(tmp_path) + "/gone-\\xff.ndjson")
    )


def test_query_skips_and_names_a_store_file_whose_path_is_not_utf8(tmp_path):
    # Breaker report s5, second round: a file moved by hand under a directory whose name is
    # not UTF-8 made `query` fail with a traceback.
    src = tmp_path / "in.ndjson"
    src.write_bytes(b'{"msg": "a", "category": "app.x"}\n{"msg": "b", "category": "app.y"}\n')
    store = tmp_path / "store"
    run = [sys.executable, "-m", "qlingest"]
    assert subprocess.run([*run, "ingest", src, "--data-dir", store]).returncode == 0
    (moved,) = (store / "hot").glob("category=app.y")
    odd = os.fsencode(store / "hot") + b"/category=app.\xff"
    os.rename(os.fsencode(moved), odd)

    out = subprocess.run([*run, "query", "--data-dir", store, "--count"], capture_output=True)
    assert (out.returncode, out.stdout.strip()) == (0, b"1"), out.stderr
    assert b"category=app.\\xff/" in out.stderr and b"its path is not UTF-8" in out.stderr
    assert b"Traceback" not in out.stderr
