"""The audit chain across crashes and concurrent writers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from qlingest.audit import verify
from qlingest.config import load_config
from qlingest.pipeline import Pipeline

KEY = "crash-test-key"


def audit_ndjson(n: int, tag: str) -> bytes:
    rows = (
        {"ts": 1_700_000_000 + i, "category": "security.audit_logs", "msg": f"{tag} {i}"}
        for i in range(n)
    )
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def test_kill_9_mid_ingest_leaves_a_store_that_verifies_and_continues(tmp_path):
    src = tmp_path / "audit.ndjson"
    src.write_bytes(audit_ndjson(300_000, "a"))
    store = tmp_path / "store"
    env = {**os.environ, "QLINGEST_AUDIT_KEY": KEY}
    # Small files, so the kill lands between (or inside) commits.
    cfg = tmp_path / "q.toml"
    cfg.write_text("[store]\ntarget_file_bytes = 2000000\n")
    cmd = [
        sys.executable,
        "-m",
        "qlingest",
        "ingest",
        str(src),
        "--data-dir",
        str(store),
        "--config",
        str(cfg),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(store.rglob("*.parquet"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not [p for p in store.rglob("*.parquet") if p.name.startswith(".")], (
        "a temp file is visible"
    )
    before = verify(store, require_seals=True, key=KEY)
    # A kill between a file's commit and its checkpoint leaves that last file unsealed: the
    # verifier must say so (a cut-off tail looks the same), and the next run seals it.
    failures = [c.failure for c in before.chains if c.failure is not None]
    assert all(f.kind == "seal_missing" for f in failures), before.chains
    assert before.records > 0
    with Pipeline(store, load_config(**{"audit.key": KEY})) as p:
        p.process(audit_ndjson(10, "b"))
    after = verify(store, require_seals=True, key=KEY)
    assert after.ok, after.chains
    assert after.records == before.records + 10


def test_two_writers_keep_two_chains_that_each_verify(tmp_path):
    cfg = load_config(**{"audit.key": KEY})
    a, b = Pipeline(tmp_path, cfg), Pipeline(tmp_path, cfg)
    for i in range(3):
        a.process(audit_ndjson(5, f"a{i}"))
        a.flush()
        b.process(audit_ndjson(7, f"b{i}"))
        b.flush()
    a.close()
    b.close()
    report = verify(tmp_path, require_seals=True, key=KEY)
    assert report.ok
    assert {(c.chain, c.records) for c in report.chains} == {("w0", 15), ("w1", 21)}
