"""Embedded use: the caller-side cost of `Emitter.emit` and the slowdown of a busy host."""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time

import pytest
from qlingest.config import load_config
from qlingest.logging import Emitter

EVENT = {
    "level": "info",
    "service": "checkout-api",
    "message": "order placed",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "http": {"method": "POST", "path": "/orders", "status": 201},
    "duration_ms": 12.5,
}
RATE = 10_000
SECONDS = float(os.environ.get("QLINGEST_BENCH_HOST_SECONDS", "1"))
PAIRS = int(os.environ.get("QLINGEST_BENCH_HOST_PAIRS", "12"))


def emitter(tmp_path) -> Emitter:
    return Emitter(tmp_path, load_config(**{"store.fsync": False}), queue_batches=256)


@pytest.mark.benchmark(group="embedded")
def test_emit_cost_per_event(benchmark, tmp_path, record_property):
    n = 100_000
    event = {**EVENT, "timestamp": time.time_ns()}
    costs = []
    with emitter(tmp_path) as e:

        def emit_many():
            emit = e.emit
            start, cpu = time.perf_counter(), time.thread_time()
            for _ in range(n):
                emit(event)
            costs.append(((time.perf_counter() - start) / n, (time.thread_time() - cpu) / n))

        benchmark.pedantic(emit_many, rounds=3)
    assert e.dropped_events == 0
    assert e.pipeline.summary.events_read == n * len(costs)
    wall, cpu = (min(c[i] for c in costs) * 1e6 for i in (0, 1))
    record_property("us_per_event", wall)
    benchmark.extra_info.update(us_per_event=round(wall, 3), cpu_us_per_event=round(cpu, 3))
    print(f"emit: {wall:.2f} us wall, {cpu:.2f} us caller CPU per event (best of {len(costs)})")


def host_work(units: int, every: int, emit=None) -> tuple[float, float]:
    """A request loop: parse, hash and serialize a small payload per unit, one event every
    ``every`` units; wall and host-thread CPU seconds."""
    payload = json.dumps({"items": list(range(40)), "user": "u_1", "cart": "x" * 200})
    start, cpu = time.perf_counter(), time.thread_time()
    for i in range(units):
        body = json.loads(payload)
        body["n"] = i
        hashlib.sha256(json.dumps(body).encode()).hexdigest()
        # Both loops test the unit's number alike; only the loaded one emits.
        if i % every == 0 and emit is not None:
            emit({**EVENT, "timestamp": i})
    return time.perf_counter() - start, time.thread_time() - cpu


def test_host_slowdown_at_10k_events_per_s(tmp_path, record_property, benchmark):
    """The host's loop with and without emitting, in interleaved pairs (the order alternates),
    each pair's ratio taken; the median ratio is the figure. On a shared machine single runs
    swing by a percent or more either way, more than the effect measured, and a median of
    pairs holds where a best-of-three does not."""
    # Run once as a smoke test (benchmarks off), the loop is short and the figure not quoted.
    seconds, pairs = (SECONDS, PAIRS) if not benchmark.disabled else (0.1, 2)
    probe = 5_000
    per_unit = host_work(probe, 1)[0] / probe
    every = max(1, round(1 / (RATE * per_unit)))
    units = int(seconds / per_unit)
    walls, cpus, rates = [], [], []

    def measure():
        with emitter(tmp_path) as e:
            for i in range(pairs):
                if i % 2:
                    bare = host_work(units, every)
                    loaded = host_work(units, every, e.emit)
                else:
                    loaded = host_work(units, every, e.emit)
                    bare = host_work(units, every)
                walls.append(loaded[0] / bare[0] - 1)
                cpus.append(loaded[1] / bare[1] - 1)
                rates.append(units / every / loaded[0])
        assert e.dropped_events == 0

    benchmark.pedantic(measure, rounds=1)
    wall, cpu, rate = (statistics.median(v) for v in (walls, cpus, rates))
    record_property("slowdown_wall", wall)
    record_property("slowdown_host_cpu", cpu)
    print(
        f"host slowdown at {rate:,.0f} events/s, median of {pairs} pairs: wall {wall:.2%} "
        f"({min(walls):.2%} to {max(walls):.2%}), host-thread CPU {cpu:.2%}"
    )
