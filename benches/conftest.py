"""Shared inputs of the benchmarks: the standard mix, generated once per session.

``QLINGEST_BENCH_EVENTS`` sets the size (``make bench`` uses 1,000,000); the default keeps
the smoke run of the normal test suite fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from qlingest import _core
from qlingest.bench import generate_file

EVENTS = int(os.environ.get("QLINGEST_BENCH_EVENTS", "20000"))
SEED = 42


@pytest.fixture(scope="session")
def events() -> int:
    return EVENTS


@pytest.fixture(scope="session")
def mix_bytes() -> bytes:
    return _core.generate(EVENTS, SEED)


@pytest.fixture(scope="session")
def mix_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mix") / "standard-mix.ndjson"
    generate_file(path, EVENTS, SEED)
    return path


def throughput(benchmark, events: int, size: int) -> None:
    """Records events/s and MB/s of the best round beside pytest-benchmark's timings."""
    stats = getattr(benchmark, "stats", None)
    if stats is None or not getattr(stats, "stats", None) or not stats.stats.min:
        return
    best = stats.stats.min
    benchmark.extra_info["events_per_s"] = round(events / best)
    benchmark.extra_info["mb_per_s"] = round(size / 1e6 / best, 1)
