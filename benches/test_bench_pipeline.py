"""End to end and stage by stage: the standard mix file to committed Parquet."""

from __future__ import annotations

import pytest
from benchutil import throughput
from qlingest.bench import measure_end_to_end, measure_stages


@pytest.mark.benchmark(group="end-to-end")
def test_file_to_parquet(benchmark, mix_file, events):
    result = benchmark.pedantic(measure_end_to_end, (str(mix_file), events), rounds=3)
    assert result.rows_out + result.extra["sampled_out"] == events
    throughput(benchmark, events, mix_file.stat().st_size)


@pytest.mark.benchmark(group="stages")
def test_stages(benchmark, mix_file, events):
    stages = benchmark.pedantic(measure_stages, (str(mix_file), events), rounds=1)
    for stage in stages:
        if stage.available:
            benchmark.extra_info[f"{stage.name}_events_per_s"] = round(stage.events_per_s or 0)
        else:
            benchmark.extra_info[f"{stage.name}_events_per_s"] = "not available"
    assert {s.name for s in stages if s.available} >= {"read", "decode", "frame", "write"}
