"""The long crash test: load ``qlingest serve``, ``kill -9`` it at random moments, restart,
and check that every acknowledged event is in the store exactly once and every acknowledged
malformed line (one in ``--bad-every``) is in the dead letters exactly once.

    .venv/bin/python scripts/crash_test.py --rounds 20 --senders 4 --batch 500

Everything runs on 127.0.0.1 against servers this script starts, in a temporary store.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import polars as pl
import zstandard

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
[store]
target_file_bytes = 200000
[serve]
flush_interval_s = 0.3
"""


def start(store: Path) -> tuple[subprocess.Popen, int]:
    cfg = store.parent / "crash.toml"
    cfg.write_text(CONFIG)
    args = [sys.executable, "-m", "qlingest", "serve", "--data-dir", str(store)]
    args += ["--config", str(cfg), "--http-port", "0", "--otlp-port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    return proc, json.loads(proc.stdout.readline())["listening"]["http"]


def line(i: int, bad_every: int) -> bytes:
    if bad_every and i % bad_every == 0:
        return b'{"msg":"b%d","category":\n' % i
    row = {"ts": 1_700_000_000 + i % 10_800, "msg": f"e{i}", "category": f"crash.c{i % 3}"}
    return json.dumps(row).encode() + b"\n"


def sender(port, ids, lock, acked, args, deadline) -> None:
    while time.monotonic() < deadline:
        with lock:
            chunk = [next(ids) for _ in range(args.batch)]
        body = b"".join(line(i, args.bad_every) for i in chunk)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/v1/events", body, {"Content-Type": "application/x-ndjson"})
            if c.getresponse().status == 200:
                with lock:
                    acked.update(chunk)
            c.close()
        except OSError:
            return


def dead_letter_ids(store: Path) -> Counter[int]:
    """How many times each malformed line's id is in the dead letters."""
    ids: Counter[int] = Counter()
    for path in (store / "dead-letter").rglob("*.ndjson.zst"):
        for row in zstandard.decompress(path.read_bytes()).splitlines():
            ids[int(re.match(r'\{"msg":"b(\d+)"', json.loads(row)["raw"])[1])] += 1
    return ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--bad-every", type=int, default=20, help="one malformed line in N (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    ids, lock, acked = itertools.count(), threading.Lock(), set()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="qlingest-crash-") as tmp:
        store = Path(tmp) / "store"
        for _ in range(args.rounds):
            proc, port = start(store)
            deadline = time.monotonic() + 30
            threads = [
                threading.Thread(target=sender, args=(port, ids, lock, acked, args, deadline))
                for _ in range(args.senders)
            ]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, 3.0))
            proc.kill()
            proc.wait()
            for t in threads:
                t.join()
        proc, _ = start(store)
        proc.send_signal(signal.SIGTERM)
        clean_exit = proc.wait(60)
        frame = pl.scan_parquet(store / "hot" / "**" / "*.parquet").select("message").collect()
        counts = Counter(frame["message"].to_list())
        files = len(list((store / "hot").rglob("*.parquet")))
        dead = dead_letter_ids(store)
    sent = next(ids)
    bad = {i for i in acked if args.bad_every and i % args.bad_every == 0}
    lost = sum(1 for i in acked - bad if counts[f"e{i}"] == 0)
    duplicated = sum(1 for n in counts.values() if n > 1)
    dead_lost = sum(1 for i in bad if dead[i] == 0)
    dead_duplicated = sum(1 for n in dead.values() if n > 1)
    report = {
        "rounds": args.rounds,
        "events_sent": sent,
        "events_acknowledged": len(acked) - len(bad),
        "events_stored": frame.height,
        "unacknowledged_stored": sum(1 for m in counts if int(m[1:]) not in acked),
        "lost": lost,
        "duplicated": duplicated,
        "bad_lines_acknowledged": len(bad),
        "dead_letters_stored": sum(dead.values()),
        "dead_letters_lost": dead_lost,
        "dead_letters_duplicated": dead_duplicated,
        "files": files,
        "final_exit": clean_exit,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report))
    failures = lost + duplicated + dead_lost + dead_duplicated + clean_exit
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
