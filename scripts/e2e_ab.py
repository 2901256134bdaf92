"""Alternates end-to-end ingests (``bench.measure_end_to_end``: file to committed Parquet with
the bench's configuration) between variants of the package, each run in a fresh process, and
prints every run and each variant's medians.

    python scripts/e2e_ab.py mix1m.ndjson 1000000 ROUNDS LABEL=DIR [LABEL=DIR ...]

``DIR`` holds a ``qlingest`` package with its built core (``_core.abi3.so``), put first on the
import path: ``python`` of this checkout, or another revision's, made with
``git worktree add /tmp/base REV`` and the core copied or built into
``/tmp/base/python/qlingest``. Alternating the variants run by run spreads the machine's slow
and fast stretches over all of them, which timing one after the other does not.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

MEASURE = """
import json, resource, sys
from qlingest import bench
m = bench.measure_end_to_end(sys.argv[1], int(sys.argv[2]))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"wall_s": m.wall_s, "cpu_s": m.cpu_s, "rss_mb": rss >> 20, "rows": m.rows_out}))
"""


def run(directory: str, path: str, events: int) -> dict:
    env = {**os.environ, "PYTHONPATH": directory}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, path, str(events)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    path, events, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    variants = [arg.split("=", 1) for arg in sys.argv[4:]]
    results: dict[str, list[dict]] = {label: [] for label, _ in variants}
    for i in range(rounds):
        for label, directory in variants:
            r = run(directory, path, events)
            results[label].append(r)
            print(f"round {i + 1} {label:12s} wall {r['wall_s']:.3f} s  cpu {r['cpu_s']:.3f} s  "
                  f"rss {r['rss_mb']} MB  rows {r['rows']}", flush=True)  # fmt: skip
    for label, runs in results.items():
        walls = [r["wall_s"] for r in runs]
        print(f"{label:12s} wall median {statistics.median(walls):.3f} s "
              f"({min(walls):.3f}-{max(walls):.3f}), cpu median "
              f"{statistics.median(r['cpu_s'] for r in runs):.3f} s, "
              f"peak rss {max(r['rss_mb'] for r in runs)} MB, "
              f"{events / statistics.median(walls):,.0f} events/s")  # fmt: skip


if __name__ == "__main__":
    main()
