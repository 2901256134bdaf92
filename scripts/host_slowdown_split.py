"""Splits the embedded benchmark's host slowdown into its parts: the host loop emitting to a
no-op (the loop's own event dict and call), to an `Emitter` whose batches are thrown away
(`emit` itself, in a busy host), and to a real `Emitter` (the pipeline's work on the other
core added).

    python scripts/host_slowdown_split.py [PAIRS]

Each mode runs PAIRS interleaved pairs of one-second loops (bare, emitting; the order
alternates) and prints the median of the pairs' ratios, as the benchmark does.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))

import test_bench_embedded as bench
from qlingest.config import load_config
from qlingest.logging import Emitter

SECONDS = 1.0


def split(mode: str, pairs: int) -> tuple[float, float]:
    """Median wall and host-thread CPU slowdowns of ``mode`` (noop, discard, real)."""
    probe = 5_000
    per_unit = bench.host_work(probe, 1)[0] / probe
    every = max(1, round(1 / (bench.RATE * per_unit)))
    units = int(SECONDS / per_unit)
    walls, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="qlingest-host-") as store:
        emitter = Emitter(store, load_config(**{"store.fsync": False}), queue_batches=256)
        if mode == "discard":
            emitter._ingest = lambda data: None
        emit = (lambda event: None) if mode == "noop" else emitter.emit
        for i in range(pairs):
            if i % 2:
                bare = bench.host_work(units, every)
                loaded = bench.host_work(units, every, emit)
            else:
                loaded = bench.host_work(units, every, emit)
                bare = bench.host_work(units, every)
            walls.append(loaded[0] / bare[0] - 1)
            cpus.append(loaded[1] / bare[1] - 1)
        emitter.close()
    return statistics.median(walls), statistics.median(cpus)


def main(pairs: int = 12) -> None:
    for mode in ("noop", "discard", "real"):
        wall, cpu = split(mode, pairs)
        print(f"{mode:8s} wall {wall:+.2%}  host-thread CPU {cpu:+.2%}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
