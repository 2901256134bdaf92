"""The generator binding and `qlingest bench` on a small input."""

from __future__ import annotations

import json

import pytest
from qlingest import _core
from qlingest.bench import STAGES, generate_file, run
from qlingest.cli import main


class TestGenerator:
    def test_streaming_fill_equals_one_shot_generate(self):
        generator = _core.Generator(7)
        assert generator.fill(40) + generator.fill(60) == _core.generate(100, 7)

    def test_seeds_differ_and_repeat(self):
        assert _core.generate(50, 1) == _core.generate(50, 1)
        assert _core.generate(50, 1) != _core.generate(50, 2)

    def test_stats_describe_the_bytes(self):
        data, stats = _core.generate_with_stats(5_000, 3)
        assert stats["events"] == 5_000 == data.count(b"\n")
        assert stats["bytes"] == len(data)
        assert sum(stats["levels"].values()) == 5_000
        assert list(stats["levels"]) == ["debug", "info", "warn", "error", "critical"]
        assert len(stats["services"]) == 12
        assert 0.6 < stats["levels"]["info"] / 5_000 / 0.55 < 1.4
        assert stats["with_secrets"] > 0
        for kind, value in stats["planted"]:
            assert value.encode() in data or kind in ("private_key",), kind

    def test_average_event_is_about_350_bytes(self):
        stats = _core.Generator(1).stats()
        assert stats["events"] == 0
        data = _core.generate(20_000, 1)
        assert 250 < len(data) / 20_000 < 450


def test_cli_generate_writes_the_standard_mix(capsysbinary):
    assert main(["bench", "generate", "--count", "25", "--seed", "9"]) == 0
    assert capsysbinary.readouterr().out == _core.generate(25, 9)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "mix.ndjson"
    generate_file(path, 3_000, seed=5)
    return run(path, 3_000, compare=True, isolate=False)


def test_report_measures_end_to_end_and_every_stage(report):
    d = report.as_dict()
    assert d["events_per_s"] > 0
    e2e = d["end_to_end"]
    assert e2e["rows_out"] + e2e["extra"]["sampled_out"] == 3_000
    assert 0 < e2e["extra"]["sampled_out"] < 3_000
    assert list(d["stages"]) == [s.name for s in STAGES]
    for name in ("read", "decode", "frame", "write"):
        assert d["stages"][name]["available"] and d["stages"][name]["events_per_s"] > 0
    for stage in d["stages"].values():
        if not stage["available"]:
            assert stage["events_per_s"] is None and stage["note"]


def test_compare_runs_both_baselines_on_the_same_input(report):
    d = report.as_dict()
    for name in ("python", "polars"):
        assert d["baselines"][name]["events_per_s"] > 0
        assert d["baselines"][name]["events"] == 3_000
    assert d["ratios"]["vs_python"] > 0


def test_baselines_count_redactions_alike_but_for_cards(report):
    # Rules the mix never triggers (`openai_key`, `npm_token`) count as equal, at zero.
    assert report.checks()["baseline_redaction_rules_differing"] == ["credit_card"]


def test_cli_bench_json(tmp_path, capsys):
    path = tmp_path / "mix.ndjson"
    generate_file(path, 500, seed=2)
    assert main(["bench", "--input", str(path), "--json", "--in-process"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["events"] == 500 and out["events_per_s"] > 0 and out["baselines"] == {}
