"""Property: a secret of a supported kind planted anywhere in an event never reaches disk."""

from __future__ import annotations

import json
import string

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qlingest.config import load_config
from qlingest.pipeline import Pipeline

ALNUM = string.ascii_letters + string.digits


def luhn_complete(body: str) -> str:
    total = 0
    for i, d in enumerate(reversed(body)):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return body + str((10 - total % 10) % 10)


# (issuer prefix, card length): Visa, Mastercard (both series), American Express, Discover.
ISSUERS = [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("37", 15), ("6011", 16)]
cards = st.sampled_from(ISSUERS).flatmap(
    lambda issuer: st.text(
        "0123456789",
        min_size=issuer[1] - len(issuer[0]) - 1,
        max_size=issuer[1] - len(issuer[0]) - 1,
    ).map(lambda rest, prefix=issuer[0]: luhn_complete(prefix + rest))
)
secrets = st.one_of(
    cards,
    st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(
        lambda s: "AKIA" + s
    ),
    st.text(ALNUM, min_size=36, max_size=36).map(lambda s: "ghp_" + s),
    st.text(ALNUM, min_size=24, max_size=24).map(lambda s: "sk_live_" + s),
    st.from_regex(r"[a-z]{3,10}\.[a-z]{2,8}@[a-z]{3,10}\.(com|org|net)", fullmatch=True),
)
filler = st.text(alphabet=string.ascii_letters + " ", max_size=20)


@st.composite
def planted(draw):
    secret = draw(secrets)
    place = draw(st.sampled_from(["message", "nested", "array", "escaped", "query"]))
    text = f"{draw(filler)} {secret} {draw(filler)}"
    event: dict = {"msg": "ok"}
    if place == "message":
        event["msg"] = text
    elif place == "nested":
        event["ctx"] = {"a": {"b": text}}
    elif place == "array":
        event["items"] = [1, {"note": text}]
    elif place == "escaped":
        event["detail"] = text
        return event, secret, True
    else:
        event["url"] = f"https://example.com/cb?token={secret}&x=1"
    return event, secret, False


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(planted(), min_size=1, max_size=5))
def test_planted_secrets_never_reach_disk(tmp_path_factory, cases):
    store = tmp_path_factory.mktemp("store")
    lines = []
    for event, _, escape in cases:
        line = json.dumps(event, ensure_ascii=True)
        if escape:
            # Spell every digit and letter of the value as a \\u escape.
            line = line.replace(
                event["detail"], "".join(f"\\u{ord(c):04x}" for c in event["detail"])
            )
        lines.append(line)
    with Pipeline(store, load_config(**{"store.fsync": False})) as p:
        p.process(("\n".join(lines) + "\n").encode())
    stored = pl.scan_parquet(store / "hot/**/*.parquet").collect()
    text = stored.select(pl.col(pl.String)).write_ndjson()
    for _, secret, _ in cases:
        assert secret not in text and secret.lower() not in text.lower()


def test_the_documented_custom_rule_loads_and_applies(tmp_path):
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "redaction.md").read_text()
    toml = re.search(r"```toml\n(\[\[redaction\.rules\]\].*?)```", doc, re.S).group(1)
    config = tmp_path / "q.toml"
    # The example's validator would refuse this number; the rest of it is taken as written.
    toml = re.sub(r"\nvalidator = .*", "", toml.replace('action = "hash"', 'action = "mask"'))
    config.write_text(toml)
    batch = Pipeline(config=load_config(config)).decode(b'{"msg":"order ORD-123456 shipped"}\n')
    assert batch.events["message"].to_list() == ["order [REDACTED:order_ref] shipped"]


# Each line once reached disk with its secret: names in fields that free text already took,
# prefixed tokens after an underscore, an AWS secret after `=`, name/value pairs.
FOUND_BY_AN_ATTACK = [
    ({"msg": "f", "api_token": "TokA_1234567"}, "TokA_1234567"),
    ({"msg": "f", "headers": {"X-Amz-Security-Token": "TokB_1234567"}}, "TokB_1234567"),
    ({"msg": "f", "headers": {"PRIVATE-TOKEN": "TokC_1234567"}}, "TokC_1234567"),
    ({"msg": "deploy_ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"}, "ghp_aBcDeFgHiJkLmNoPqRs"),
    ({"msg": "key_AKIAIOSFODNN7EXAMPLE"}, "AKIAIOSFODNN7EXAMPLE"),
    ({"msg": "AWS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}, "wJalrXUtnFEMI/K7MDENG"),
    ({"env": [{"name": "DB_PASSWORD", "value": "TokD_1234567"}]}, "TokD_1234567"),
    ({"attrs": [{"key": "password", "value": {"stringValue": "TokF_123"}}]}, "TokF_123"),
    ({"name": "api_token", "value": "TokE_1234567"}, "TokE_1234567"),
]


def test_secrets_an_attack_found_stay_off_disk(tmp_path):
    lines = "".join(json.dumps(event) + "\n" for event, _ in FOUND_BY_AN_ATTACK)
    with Pipeline(tmp_path, load_config(**{"store.fsync": False})) as p:
        p.process(lines.encode())
    stored = pl.scan_parquet(tmp_path / "hot/**/*.parquet").collect()
    assert stored.height == len(FOUND_BY_AN_ATTACK)
    text = stored.select(pl.col(pl.String)).write_ndjson()
    for _, secret in FOUND_BY_AN_ATTACK:
        assert secret not in text
    assert text.count("[REDACTED:") == len(FOUND_BY_AN_ATTACK)
