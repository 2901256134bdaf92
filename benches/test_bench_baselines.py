"""The `--compare` baselines on the standard mix, checked against each other."""

from __future__ import annotations

import pytest
from benchutil import throughput
from qlingest.baselines import run_polars_baseline, run_python_baseline


@pytest.mark.benchmark(group="baselines")
@pytest.mark.parametrize(
    "run", [run_python_baseline, run_polars_baseline], ids=["python", "polars"]
)
def test_baseline(benchmark, run, mix_file, events, tmp_path):
    result = benchmark.pedantic(run, (mix_file, tmp_path), rounds=1)
    assert result.rows_in == events
    assert result.rows_out > 0
    throughput(benchmark, events, mix_file.stat().st_size)
