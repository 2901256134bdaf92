"""Property: any events written as NDJSON come back from Parquet with equal values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qlingest.config import load_config
from qlingest.pipeline import Pipeline
from qlingest.query import scan

# Lone surrogates cannot be stored as UTF-8 and are replaced by design; other text is exact.
text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_value = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(text, kids, max_size=3),
    max_leaves=8,
)
field_key = text.filter(lambda k: k.startswith("x_"))
# Epoch units are inferred from magnitude, which is unambiguous from 1973-03-04 on.
instants = st.datetimes(
    min_value=datetime(1974, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timedelta(minutes=m))


def rfc3339(instant: datetime, offset: timedelta, digits: int) -> str:
    local = instant.astimezone(__import__("datetime").timezone(offset))
    frac = f"{local.microsecond:06d}000"[:digits]
    base = local.strftime("%Y-%m-%dT%H:%M:%S")
    sign = "+" if offset >= timedelta(0) else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{base}{'.' + frac if digits else ''}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def events(draw):
    instant = draw(instants)
    digits = draw(st.integers(0, 9))
    kind = draw(st.sampled_from(["rfc3339", "s", "ms", "us", "ns"]))
    epoch_us = (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    if kind == "rfc3339":
        ts = rfc3339(instant, draw(offsets), digits)
        expected = (
            epoch_us * 1000
            if digits >= 6
            else (epoch_us // 10 ** (6 - digits)) * 10 ** (9 - digits)
        )
    else:
        scale = {"s": 1_000_000, "ms": 1000, "us": 1, "ns": 1}[kind]
        ts = epoch_us // scale if kind != "ns" else epoch_us * 1000
        expected = (epoch_us // scale) * scale * 1000 if kind != "ns" else epoch_us * 1000
    event = {"ts": ts, "msg": draw(text), "service": draw(text)}
    extra = draw(st.dictionaries(field_key, json_value, max_size=4))
    event.update(extra)
    return event, expected, extra


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(events(), min_size=1, max_size=12))
def test_events_round_trip_through_parquet(tmp_path_factory, batch):
    store = tmp_path_factory.mktemp("store")
    data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e, _, _ in batch).encode()
    with Pipeline(store, load_config(**{"store.fsync": False})) as p:
        p.process(data)
    assert p.summary.dead_lettered == 0
    got = scan(store).with_columns(pl.col("timestamp").dt.epoch("ns").alias("ns")).collect()
    rows = sorted(got.iter_rows(named=True), key=lambda r: (r["ns"], r["message"], r["service"]))
    want = sorted(batch, key=lambda b: (b[1], b[0]["msg"], b[0]["service"]))
    for row, (event, expected_ns, extra) in zip(rows, want, strict=True):
        assert row["ns"] == expected_ns
        assert row["message"] == event["msg"]
        assert row["service"] == event["service"]
        assert (json.loads(row["fields"]) if row["fields"] else {}) == extra
