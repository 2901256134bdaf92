"""The stages on their own, from Python: redaction, sampling, the audit chain and verification.

Each works on frames of the standard mix decoded once per session."""

from __future__ import annotations

import json
import time

import polars as pl
import pytest
from benchutil import throughput
from qlingest import _core
from qlingest.config import InputConfig, RedactionConfig
from qlingest.pipeline import _events_frame

AUDIT = {"categories": ["security.audit_logs", "application.request_logs", "application.logs"]}


@pytest.fixture(scope="module")
def frame(mix_bytes) -> pl.DataFrame:
    engine = _core.Engine(InputConfig().core_json())
    return _events_frame(engine.process(mix_bytes, observed_ns=time.time_ns()).events)


@pytest.mark.benchmark(group="stages")
def test_decode_with_redaction(benchmark, mix_bytes, events):
    engine = _core.Engine(InputConfig().core_json(), redaction_json=RedactionConfig().core_json())
    result = benchmark(lambda: engine.process(mix_bytes, observed_ns=time.time_ns()))
    assert result.lines == events and sum(result.redactions) > 0
    throughput(benchmark, events, len(mix_bytes))


@pytest.mark.benchmark(group="stages")
def test_redaction_of_decoded_frames(benchmark, frame, mix_bytes):
    """`Redactor` on the decoded standard mix, every string column and `fields` walked."""
    redactor = _core.Redactor(RedactionConfig().core_json())
    texts = frame.select(pl.col(pl.String))
    batches, counts = benchmark(lambda: redactor.redact_frame(texts))
    assert len(batches) == frame.height and sum(counts) > 0
    throughput(benchmark, frame.height, len(mix_bytes))


@pytest.mark.benchmark(group="stages")
def test_sampling_decisions(benchmark, frame):
    sampler = _core.Sampler('{"extends":"cost-optimized"}')
    decisions = benchmark(lambda: pl.DataFrame(sampler.decide(frame, now_ns=0)))
    assert decisions.height == frame.height and 0 < decisions["keep"].sum() < frame.height
    throughput(benchmark, frame.height, frame.estimated_size())


@pytest.mark.benchmark(group="stages")
def test_audit_chaining(benchmark, frame):
    config = json.dumps(AUDIT)
    chained = benchmark(
        lambda: pl.DataFrame(_core.AuditChain("w0", config_json=config).append(frame))
    )
    audited = chained["audit_seq"].drop_nulls().len()
    assert audited > frame.height // 2
    throughput(benchmark, audited, frame.estimated_size())


@pytest.mark.benchmark(group="stages")
def test_audit_verification(benchmark, frame):
    chained = pl.DataFrame(_core.AuditChain("w0", config_json=json.dumps(AUDIT)).append(frame))
    rows = chained.filter(pl.col("audit_seq").is_not_null()).sort("audit_seq")
    report = benchmark(lambda: json.loads(_core.verify_chain("w0", rows, [])))
    assert report["failure"] is None and report["records"] == rows.height
    throughput(benchmark, rows.height, rows.estimated_size())
