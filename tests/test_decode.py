from __future__ import annotations

import io
import json

import polars as pl
import pytest
from qlingest import _core
from qlingest.config import load_config
from qlingest.exceptions import ConfigError, QlingestError
from qlingest.pipeline import Pipeline
from qlingest.source import read_chunks

LINES = b'{"ts":"2024-05-01T10:00:00.5+02:00","level":"Warn","msg":"disk full","host":"a"}\n{oops\n'


class TestInputTypes:
    @pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
    def test_bytes_bytearray_and_memoryview_decode_alike(self, kind):
        batch = Pipeline().decode(kind(LINES))
        assert batch.events["message"].to_list() == ["disk full"]
        assert batch.dead_letters["reason"].to_list() == ["malformed_json"]

    def test_memoryview_of_a_mutable_buffer_is_refused_with_a_type_error(self):
        # The core reads without the GIL: only a view of immutable bytes is safe to share.
        with pytest.raises(TypeError, match="memoryview of bytes"):
            Pipeline().decode(memoryview(bytearray(LINES)))


class TestSchema:
    def test_event_frame_has_the_design_schema(self):
        events = Pipeline().decode(LINES).events
        assert events.schema["timestamp"] == pl.Datetime("ns", "UTC")
        assert events.schema["level"] == pl.Enum(["debug", "info", "warn", "error", "critical"])
        assert events.schema["revenue"] == pl.Float64
        assert events.schema["audit_seq"] == pl.UInt64
        assert events["timestamp"].dt.epoch("ns").to_list() == [1714550400500000000]
        assert events["level"].to_list() == ["warn"]
        assert json.loads(events["fields"][0]) == {"host": "a"}

    def test_dead_letter_keeps_line_source_and_raw(self):
        dead = Pipeline().decode(LINES, source="app.log", first_line=41).dead_letters
        row = dead.row(0, named=True)
        assert row == {
            "source": "app.log",
            "line": 42,
            "reason": "malformed_json",
            "detail": "invalid JSON at column 2",
            "raw": "{oops",
        }


class TestErrors:
    def test_bad_parse_regex_is_a_config_error_and_a_value_error(self):
        with pytest.raises(ConfigError, match="parse regex") as info:
            _core.Engine('{"format":"text","parse":"(?P<x"}')
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, QlingestError)

    def test_unknown_config_key_is_named(self):
        with pytest.raises(ConfigError, match="max_lines"):
            _core.Engine('{"max_lines": 3}')


class TestSampling:
    def test_bad_policy_names_the_rule(self):
        with pytest.raises(ConfigError, match="r1"):
            _core.Engine(
                "{}", sampling_json='{"rules":[{"name":"r1","where":{"servce":"x"},"keep":true}]}'
            )

    def test_sampler_decides_on_a_polars_frame(self):
        now = pl.lit(0).cast(pl.Datetime("ns", "UTC"))
        frame = pl.DataFrame(
            {
                "level": ["debug", "error", "info"],
                "category": ["app", "app", "security.audit_logs"],
                "trace_id": ["0" * 16 + "f" * 16, "0" * 32, "1" * 32],
            }
        ).with_columns(timestamp=now, observed_at=now)
        sampler = _core.Sampler('{"extends":"cost-optimized"}')
        decisions = pl.DataFrame(sampler.decide(frame, now_ns=0))
        assert decisions["keep"].to_list()[1:] == [True, True]
        names = sampler.rule_names
        assert [names[i] for i in decisions["rule"].to_list()[1:]] == [
            "severe",
            "audit (security.*)",
        ]

    def test_sampler_names_a_missing_required_column(self):
        sampler = _core.Sampler('{"extends":"cost-optimized"}')
        with pytest.raises(TypeError, match="timestamp"):
            sampler.decide(pl.DataFrame({"level": ["info"]}), now_ns=0)


class TestDeadLetterRedaction:
    """Regressions: secrets in dead letters (found by trying to break the tool)."""

    def test_secret_after_an_invalid_byte_is_redacted(self):
        dead = Pipeline().decode(b'{"ts":1,"password":"Inv\xffalidPw1"}\n').dead_letters
        (raw,) = dead["raw"].to_list()
        assert "alidPw1" not in raw and "Inv" not in raw

    def test_secret_across_the_64k_cut_is_redacted_before_the_cut(self):
        secret = "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB"
        pad = "D" * (65536 - 30)
        line = f'{{"ts":1,"pad":"{pad} {secret} rest", broken}}\n'.encode()
        (raw,) = Pipeline().decode(line).dead_letters["raw"].to_list()
        assert "ghp_1234" not in raw and len(raw.encode()) <= 65536

    def test_secret_straddling_the_line_limit_cut_leaves_no_fragment(self):
        config = load_config(**{"input.max_line_bytes": 10_000})
        line = b'{"pad":"' + b"x " * 4990 + b'4111 1111 1111 1111"}\n'
        chunks = list(read_chunks(io.BytesIO(line), max_line_bytes=10_000))
        (raw,) = Pipeline(config=config).decode(chunks[0].data).dead_letters["raw"].to_list()
        assert "4111" not in raw

    def test_ids_are_redacted_like_any_text(self):
        line = b'{"msg":"a","trace_id":"4111 1111 1111 1111","span_id":"AKIAIOSFODNN7EXAMPLE"}\n'
        row = Pipeline().decode(line).events.row(0, named=True)
        assert "4111" not in row["trace_id"] and "AKIAIOSFODNN7EXAMPLE" not in row["span_id"]


def test_public_sampler_takes_a_policy_name_and_names_rules():
    from qlingest import Sampler

    now = pl.lit(0).cast(pl.Datetime("ns", "UTC"))
    frame = pl.DataFrame({"level": ["error", "info"], "category": ["app", "security.audit_logs"]})
    frame = frame.with_columns(timestamp=now, observed_at=now)
    decisions = Sampler("cost-optimized").decide(frame)
    assert decisions["keep"].to_list() == [True, True]
    assert decisions["rule"].to_list() == ["severe", "audit (security.*)"]


def test_a_nan_rate_is_named_not_read_as_missing(tmp_path):
    from qlingest.config import sampling_policy

    policy = tmp_path / "p.toml"
    policy.write_text('[[rules]]\nname = "r"\nrate = nan\n')
    with pytest.raises(ConfigError, match=r"sampling.rules\[0\].rate: nan is not a finite number"):
        Pipeline(config=load_config(sampling=sampling_policy(policy))).decode(b"{}\n")
