"""The `--compare` baselines on a small mix built here from a fixed list of events."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import polars as pl
import pytest
from qlingest.baselines import (
    DEFAULT_HASH_KEY,
    GENESIS,
    BaselineResult,
    PyRedactor,
    email_token,
    polars_redact,
    run_polars_baseline,
    run_python_baseline,
)

N = 6_000
SECRETS = {
    "credit_card": ("charge card 4111 1111 1111 1111 failed", "4111 1111 1111 1111"),
    "ssn": ("ssn on file 123-45-6789", "123-45-6789"),
    "email": ("receipt sent to jane.doe@example.com", "jane.doe@example.com"),
    "aws_access_key_id": ("key AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE"),
    "github_token": ("push with ghp_" + "a1B2" * 9, "ghp_" + "a1B2" * 9),
    "stripe_key": ("stripe sk_live_" + "x9" * 12, "sk_live_" + "x9" * 12),
    "jwt": ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2ln", "c2lnbmF0dXJlc2ln"),
    "url_password": ("dsn postgres://app:Hunter2pw@db:5432/x", "Hunter2pw"),
}
LEVEL_SPELLINGS = [
    ("debug", 0.30),
    ("INFO", 0.55),
    ("WARNING", 0.10),
    ("err", 0.04),
    ("fatal", 0.01),
]


def make_events(seed: int = 1) -> list[dict]:
    """Events with known levels, trace groups, 5% audit records and secrets in every 50th."""
    rng = random.Random(seed)
    traces = [f"{rng.getrandbits(128):032X}" for _ in range(N // 4)]
    events = []
    for i in range(N):
        spelling = rng.choices([s for s, _ in LEVEL_SPELLINGS], [w for _, w in LEVEL_SPELLINGS])[0]
        event = {
            "timestamp": rng.choice([1736899200 + i, f"2025-01-15T00:00:{i % 60:02d}.5+02:00"]),
            "level": spelling,
            "service": rng.choice(["checkout", "auth", "search"]),
            "category": "security.audit_logs" if i % 20 == 7 else "application.logs",
            "trace_id": traces[i // 4],
            "message": f"request {i} done",
            "http": {"method": "GET", "status": 200, "headers": {"x-request-id": str(i)}},
        }
        if i % 20 == 7:
            event.update(actor=f"u_{i}", action="read", resource="invoices/1", result="allowed")
        if i % 50 == 3:
            kind = list(SECRETS)[(i // 50) % len(SECRETS)]
            event["message"] += " " + SECRETS[kind][0]
            event["credentials"] = {"password": f"pw-{i}-secret"}
        if i % 97 == 5:
            event["order_number"] = "4111111111111112"  # fails Luhn: not a card
        events.append(event)
    return events


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    events = make_events()
    path = tmp_path_factory.mktemp("mix") / "mix.ndjson"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))
    return path, events


@pytest.fixture(scope="module")
def results(mix, tmp_path_factory) -> dict[str, BaselineResult]:
    out = tmp_path_factory.mktemp("out")
    path = mix[0]
    return {
        "python": run_python_baseline(path, out, seed=3),
        "polars": run_polars_baseline(path, out, seed=3),
    }


def stored_text(result: BaselineResult) -> str:
    frame = pl.read_parquet(result.output)
    strings = frame.select(pl.col(pl.String)).fill_null("")
    return "\n".join(strings.select(pl.concat_str(pl.all(), separator="\t")).to_series())


def must_keep(event: dict) -> bool:
    return event["level"] in ("WARNING", "err", "fatal") or event["category"].startswith(
        "security."
    )


@pytest.mark.parametrize("name", ["python", "polars"])
class TestBaseline:
    def test_reads_every_row(self, results, name):
        assert results[name].rows_in == N
        assert results[name].elapsed_s > 0

    def test_no_planted_secret_is_stored(self, results, mix, name):
        text = stored_text(results[name])
        for _, value in SECRETS.values():
            assert value not in text
        assert "-secret" not in text
        assert "[REDACTED:" in text

    def test_keeps_every_must_keep_event_and_samples_the_rest(self, results, mix, name):
        events = mix[1]
        frame = pl.read_parquet(results[name].output)
        kept_always = frame.filter(pl.col("sample_rate") == 1.0).height
        assert kept_always == sum(map(must_keep, events))
        debug = sum(e["level"] == "debug" and not must_keep(e) for e in events)
        info = sum(e["level"] == "INFO" and not must_keep(e) for e in events)
        assert (
            frame.filter(pl.col("sample_rate") == 100.0).height
            <= debug * 0.01 + 4 * (debug * 0.01) ** 0.5 + 1
        )
        kept_info = frame.filter(pl.col("sample_rate") == 10.0).height
        assert abs(kept_info - info * 0.10) < 4 * (info * 0.09) ** 0.5 + 12  # trace draws cluster

    def test_levels_are_normalized(self, results, name):
        levels = pl.read_parquet(results[name].output)["level"].cast(pl.String).unique().to_list()
        assert set(levels) <= {"debug", "info", "warn", "error", "critical"}
        assert {"warn", "error", "critical"} <= set(levels)

    def test_audit_chain_links_every_audit_record(self, results, mix, name):
        frame = pl.read_parquet(results[name].output)
        audit = frame.filter(pl.col("category") == "security.audit_logs").sort("audit_seq")
        assert audit.height == N // 20
        assert audit["audit_seq"].to_list() == list(range(1, audit.height + 1))
        assert audit["audit_prev_hash"][0] == GENESIS
        assert audit["audit_prev_hash"][1:].to_list() == audit["audit_hash"][:-1].to_list()
        assert frame.filter(pl.col("audit_hash").is_not_null()).height == audit.height

    def test_emails_become_keyed_hashes(self, results, name):
        token = email_token(b"qlingest-bench-hash-key", "jane.doe@example.com")
        assert token in stored_text(results[name])
        assert results[name].redactions["email"] > 0


def test_python_baseline_chain_recomputes(results):
    frame = pl.read_parquet(results["python"].output)
    first = frame.filter(pl.col("audit_seq") == 1).row(0, named=True)
    record = {k: v for k, v in first.items() if k != "audit_hash"}
    record["timestamp"] = (
        int(first["timestamp"].timestamp()) * 10**9 + first["timestamp"].microsecond * 1000
    )
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    assert hashlib.sha256(GENESIS.encode() + canonical.encode()).hexdigest() == first["audit_hash"]


def test_python_baseline_keeps_a_number_that_fails_luhn(results):
    assert "4111111111111112" in stored_text(results["python"])


def test_both_baselines_keep_the_same_rows(results):
    assert results["python"].rows_out == results["polars"].rows_out
    py = pl.read_parquet(results["python"].output).select("trace_id", "message").sort("message")
    pol = pl.read_parquet(results["polars"].output).select("trace_id", "message").sort("message")
    assert py.equals(pol)


def test_both_baselines_count_the_same_value_redactions(results):
    py, pol = results["python"].redactions, results["polars"].redactions
    for kind in ("ssn", "email", "aws_access_key_id", "github_token", "stripe_key", "jwt"):
        assert py.get(kind) == pol.get(kind) == N // 50 // len(SECRETS), kind
    assert py["secret_key"] == pol["secret_key"] == len(range(3, N, 50))


PREFIXED_TOKENS = {
    "openai_key": "sk-proj-nFIGLj5M7YYpHCOTHUtuJvbipRdkJAWZ4moUxm_yI5B_KGnplJJpdu0ol29v",
    "anthropic_key": "sk-ant-api03-cCTf07I8PjUhmi2ogviaNfrWta57-cLkIFKaEaTopYW5LSQdGrKNB4di",
    "huggingface_token": "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",
    "npm_token": "npm_iZbnGXei4Lo53t2zLE0MZwlwp23JOwv0HBha",
    "sendgrid_key": "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",
}


@pytest.mark.parametrize("rule", list(PREFIXED_TOKENS))
def test_both_baselines_mask_prefixed_tokens_under_the_same_name(rule):
    text = f"deploy with {PREFIXED_TOKENS[rule]} now"
    want = f"deploy with [REDACTED:{rule}] now"
    py = PyRedactor()
    assert py.text(text) == want
    frame, counts = polars_redact(pl.DataFrame({"message": [text]}), ["message"], DEFAULT_HASH_KEY)
    assert frame["message"].to_list() == [want]
    assert py.counts[rule] == counts[rule] == 1


def test_both_baselines_keep_prefixes_inside_words():
    text = "task-proj-migration-for-the-new-billing-service half_x npm_config_cache=/tmp"
    assert PyRedactor().text(text) == text
    frame, _ = polars_redact(pl.DataFrame({"message": [text]}), ["message"], DEFAULT_HASH_KEY)
    assert frame["message"].to_list() == [text]


def test_both_baselines_mask_the_signature_of_a_signed_url():
    text = "GET /c/b.txt?sv=2021-08-06&sp=r&sig=AbC%2Bdef%3D HTTP/1.1"
    want = "GET /c/b.txt?sv=2021-08-06&sp=r&sig=[REDACTED:query_token] HTTP/1.1"
    assert PyRedactor().text(text) == want
    frame, _ = polars_redact(pl.DataFrame({"message": [text]}), ["message"], DEFAULT_HASH_KEY)
    assert frame["message"].to_list() == [want]
