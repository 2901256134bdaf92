"""Times ``Pipeline.close`` (the final flush) with files written side by side on the store's
writer pool against the same pipeline writing them one after another, interleaved.

    python scripts/flush_pool_ab.py EVENTS.ndjson [PAIRS]

Each measurement runs in a fresh process with the bench's configuration.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future


def measure(path: str) -> float:
    from qlingest.bench import _bench_config
    from qlingest.pipeline import Pipeline
    from qlingest.store import Store

    if os.environ.get("QLINGEST_AB_INLINE"):

        def inline(self, write, *args):
            done: Future[None] = Future()
            done.set_result(write(*args))
            return done

        Store._submit = inline
    with tempfile.TemporaryDirectory() as store:
        pipeline = Pipeline(store, _bench_config())
        pipeline.ingest_file(path)
        start = time.perf_counter()
        pipeline.close()
        return time.perf_counter() - start


def main() -> None:
    path, pairs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8
    if os.environ.get("QLINGEST_AB_CHILD"):
        print(measure(path))
        return
    runs: dict[str, list[float]] = {"pool": [], "inline": []}
    for _ in range(pairs):
        for name in runs:
            env = {**os.environ, "QLINGEST_AB_CHILD": "1"}
            if name == "inline":
                env["QLINGEST_AB_INLINE"] = "1"
            out = subprocess.run(
                [sys.executable, __file__, path], env=env, capture_output=True, check=True
            )
            runs[name].append(float(out.stdout))
    for name, times in runs.items():
        print(f"{name}: close median {statistics.median(times) * 1000:.1f} ms over {pairs} runs")


if __name__ == "__main__":
    main()
