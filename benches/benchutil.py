"""Helpers of the benchmarks."""

from __future__ import annotations


def throughput(benchmark, events: int, size: int) -> None:
    """Records events/s and MB/s of the best round beside pytest-benchmark's timings."""
    stats = getattr(benchmark, "stats", None)
    if stats is None or not getattr(stats, "stats", None) or not stats.stats.min:
        return
    best = stats.stats.min
    benchmark.extra_info["events_per_s"] = round(events / best)
    benchmark.extra_info["mb_per_s"] = round(size / 1e6 / best, 1)
