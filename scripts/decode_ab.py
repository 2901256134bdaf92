"""Alternates decode-alone runs (the core's ``Engine.process`` without redaction over the
standard mix, fed in the reader's chunks) between variants of the package, each run in a
fresh process, and prints every run and each variant's medians.

    python scripts/decode_ab.py EVENTS ROUNDS LABEL=DIR[@CHUNK_BYTES] [LABEL=DIR[@CHUNK_BYTES] ...]

``DIR`` holds a ``qlingest`` package with its built core, put first on the import path, as
for ``scripts/e2e_ab.py``; ``@CHUNK_BYTES`` sets the reader's chunk size for that variant
(default: the reader's own). A run decodes every chunk five times and keeps its fastest
pass, by wall clock and by the thread's CPU time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

MEASURE = """
import io, json, resource, sys, time
from qlingest import _core
from qlingest.config import InputConfig
from qlingest.source import CHUNK_BYTES, read_chunks
events, size = int(sys.argv[1]), int(sys.argv[2]) or CHUNK_BYTES
data = _core.generate(events, 42)
config = InputConfig()
chunks = [bytes(c.data) for c in read_chunks(io.BytesIO(data), config.max_line_bytes, size)]
engine = _core.Engine(config.core_json())
best = None
for _ in range(5):
    cpu, wall = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter()
    for chunk in chunks:
        engine.process(chunk, source="ab", observed_ns=1)
    wall, end = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_THREAD)
    cpu = end.ru_utime + end.ru_stime - cpu.ru_utime - cpu.ru_stime
    best = (wall, cpu) if best is None else (min(best[0], wall), min(best[1], cpu))
print(json.dumps({"wall_s": best[0], "cpu_s": best[1], "chunks": len(chunks)}))
"""


def run(directory: str, events: int, chunk_bytes: int) -> dict:
    env = {**os.environ, "PYTHONPATH": directory}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(events), str(chunk_bytes)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    events, rounds = int(sys.argv[1]), int(sys.argv[2])
    variants = []
    for arg in sys.argv[3:]:
        label, spec = arg.split("=", 1)
        directory, _, chunk_bytes = spec.partition("@")
        variants.append((label, directory, int(chunk_bytes or 0)))
    results: dict[str, list[dict]] = {label: [] for label, _, _ in variants}
    for i in range(rounds):
        for label, directory, chunk_bytes in variants:
            r = run(directory, events, chunk_bytes)
            results[label].append(r)
            print(f"round {i + 1} {label:12s} wall {r['wall_s'] * 1e3:.1f} ms  "
                  f"cpu {r['cpu_s'] * 1e3:.1f} ms  chunks {r['chunks']}", flush=True)  # fmt: skip
    for label, runs in results.items():
        walls = [r["wall_s"] for r in runs]
        print(f"{label:12s} wall median {statistics.median(walls) * 1e3:.1f} ms "
              f"({min(walls) * 1e3:.1f}-{max(walls) * 1e3:.1f}), "
              f"{events / statistics.median(walls):,.0f} events/s")  # fmt: skip


if __name__ == "__main__":
    main()
