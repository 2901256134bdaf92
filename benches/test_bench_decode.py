"""Decode alone: NDJSON bytes to Arrow columns in the core, one thread."""

from __future__ import annotations

import time

import pytest
from benchutil import throughput
from qlingest import _core
from qlingest.config import InputConfig


@pytest.fixture(scope="module")
def decoder() -> _core.Engine:
    return _core.Engine(InputConfig().core_json())


@pytest.mark.benchmark(group="decode")
def test_decode_standard_mix(benchmark, decoder, mix_bytes, events):
    def decode():
        return decoder.process(mix_bytes, source="bench", observed_ns=time.time_ns())

    result = benchmark(decode)
    assert result.lines == events
    assert result.unparsed == 0
    throughput(benchmark, events, len(mix_bytes))
