"""How many cores an ingest keeps busy over time: `Pipeline.ingest_file` and `close` on one
input with the bench's configuration, the process's CPU sampled every 50 ms.

    python scripts/cpu_timeline.py mix1m.ndjson
    perf record -D 1100 -g python scripts/cpu_timeline.py mix1m.ndjson 1

Prints the time spent ingesting and closing, then one line per sample: seconds since the
start and the cores busy in the 50 ms before it (CPU seconds of every thread / wall seconds).
A second argument waits that many seconds after the imports, so a profiler started with a
delay (perf's -D, in milliseconds) records the run alone.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import threading
import time

from qlingest import bench
from qlingest.pipeline import Pipeline

INTERVAL = 0.05


def main(path: str, pause: float = 0.0) -> None:
    time.sleep(pause)
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter(), time.process_time()))
            done.wait(INTERVAL)

    with tempfile.TemporaryDirectory(prefix="qlingest-timeline-") as store:
        sampler = threading.Thread(target=sample, daemon=True)
        start = time.perf_counter()
        sampler.start()
        with Pipeline(store, bench._bench_config()) as pipeline:
            pipeline.ingest_file(path)
            ingested = time.perf_counter()
            pipeline.close()
        closed = time.perf_counter()
        done.set()
        sampler.join()
    print(f"ingest {ingested - start:.3f} s, close {closed - ingested:.3f} s")
    for (t0, c0), (t1, c1) in itertools.pairwise(samples):
        print(f"{t1 - start:6.2f} s  {(c1 - c0) / (t1 - t0):4.2f} cores")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
