"""Decode alone: NDJSON bytes to Arrow columns in the core, one thread.

The input is fed in the chunks the file reader gives the core (whole lines, 8 MiB at most):
that is how every event reaches the decoder, and it keeps one batch's columns small, as in
the pipeline. One call on the whole input is measured beside it, as a worst case."""

from __future__ import annotations

import io
import time

import pytest
from benchutil import throughput
from qlingest import _core
from qlingest.config import InputConfig
from qlingest.source import read_chunks


@pytest.fixture(scope="module")
def decoder() -> _core.Engine:
    return _core.Engine(InputConfig().core_json())


@pytest.fixture(scope="module")
def mix_chunks(mix_bytes) -> list[bytes]:
    max_line = InputConfig().max_line_bytes
    chunks = [bytes(c.data) for c in read_chunks(io.BytesIO(mix_bytes), max_line)]
    assert b"".join(chunks) == mix_bytes
    return chunks


@pytest.mark.benchmark(group="decode")
def test_decode_standard_mix(benchmark, decoder, mix_chunks, events):
    def decode():
        # Each batch is let go before the next, as the pipeline lets it go once written.
        observed, lines, unparsed = time.time_ns(), 0, 0
        for chunk in mix_chunks:
            result = decoder.process(chunk, source="bench", observed_ns=observed)
            lines, unparsed = lines + result.lines, unparsed + result.unparsed
        return lines, unparsed

    assert benchmark(decode) == (events, 0)
    throughput(benchmark, events, sum(map(len, mix_chunks)))


@pytest.mark.benchmark(group="decode")
def test_decode_standard_mix_in_one_call(benchmark, decoder, mix_bytes, events):
    def decode():
        return decoder.process(mix_bytes, source="bench", observed_ns=time.time_ns())

    result = benchmark(decode)
    assert result.lines == events
    assert result.unparsed == 0
    throughput(benchmark, events, len(mix_bytes))
