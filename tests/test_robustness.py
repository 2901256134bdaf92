"""Damaged inputs and hostile values: each is named and contained, the rest is kept."""

from __future__ import annotations

import errno
import gzip
import json
import subprocess
import sys
import time
import traceback
import zlib

import polars as pl
import pytest
import zstandard
from qlingest import ConfigError, InputError, Pipeline
from qlingest.config import load_config
from qlingest.query import scan
from qlingest.store import MAX_CATEGORY_BYTES


def ndjson(n: int, tag: str = "e") -> bytes:
    return b"".join(json.dumps({"ts": 1_700_000_000 + i, "msg": f"{tag}{i}"}).encode() + b"\n"
                    for i in range(n))  # fmt: skip


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "qlingest", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True)


def messages(store) -> list[str]:
    return sorted(scan(store).collect()["message"].to_list())


def gzip_cut(data: bytes) -> bytes:
    """A gzip stream cut a little before its end: the last lines and the trailer are lost."""
    whole = gzip.compress(data)
    return whole[: len(whole) - 40]


@pytest.mark.parametrize(
    "damage",
    [
        ("cut.ndjson.gz", lambda d: gzip_cut(d), "truncated"),
        ("bad.ndjson.gz", lambda d: b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"\xff" * 40, "corrupt"),
        ("cut.ndjson.zst", lambda d: zstandard.compress(d)[:-30], "truncated"),
    ],
    ids=["gzip-truncated", "gzip-corrupt", "zstd-truncated"],
)
def test_a_damaged_input_among_several_loses_only_itself(tmp_path, damage):
    name, spoil, word = damage
    (tmp_path / "a.ndjson").write_bytes(ndjson(3, "a"))
    (tmp_path / name).write_bytes(spoil(ndjson(20_000, "bad")))
    (tmp_path / "c.ndjson").write_bytes(ndjson(2, "c"))
    paths = [str(tmp_path / n) for n in ("a.ndjson", name, "c.ndjson")]
    out = run("ingest", *paths, "--data-dir", str(tmp_path / "s"), "--json")
    err = out.stderr.decode()
    assert out.returncode == 1 and "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("qlingest: error:")]
    assert errors[0].startswith(f"qlingest: error: {paths[1]}: ") and word in errors[0]
    assert errors[-1] == "qlingest: error: 1 of 3 inputs could not be read to their end"
    summary = json.loads(out.stdout)
    assert summary["inputs_failed"] == [paths[1]]
    got = messages(tmp_path / "s")
    assert [m for m in got if not m.startswith("bad")] == ["a0", "a1", "a2", "c0", "c1"]
    bad = [m for m in got if m.startswith("bad")]
    assert summary["events_written"] == len(got)
    if word == "truncated":
        # What was decoded before the cut is kept, in order and without gaps.
        assert 0 < len(bad) < 20_000
        assert sorted(bad) == sorted(f"bad{i}" for i in range(len(bad)))


def test_ingest_file_raises_a_typed_error_naming_the_file_and_keeps_what_it_read(tmp_path):
    src = tmp_path / "cut.ndjson.gz"
    src.write_bytes(gzip_cut(ndjson(50_000)))
    with Pipeline(tmp_path / "s") as p, pytest.raises(InputError) as caught:
        p.ingest_file(src)
    assert caught.value.path == str(src) and str(caught.value).startswith(f"{src}: ")
    assert isinstance(caught.value.__cause__, EOFError)
    assert p.summary.inputs_failed == [str(src)]
    assert 0 < p.summary.events_written == len(messages(tmp_path / "s")) < 50_000


def test_an_unreadable_input_is_an_input_error(tmp_path):
    with Pipeline(tmp_path / "s") as p:
        with pytest.raises(InputError, match="Is a directory"):
            p.ingest_file(tmp_path)
        p.process(ndjson(1))
    assert p.summary.events_written == 1


TOKEN = "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"


class TestSecretsInErrors:
    def test_an_input_error_and_its_cause_redact_the_file_name(self, tmp_path):
        missing = tmp_path / f"nope-{TOKEN}.log"
        with pytest.raises(InputError) as caught:
            Pipeline().ingest_file(missing)

        error = caught.value
        assert (
            str(error) == f"{tmp_path}/nope-[REDACTED:github_token].log: No such file or directory"
        )
        assert isinstance(error.__cause__, FileNotFoundError)
        assert error.__cause__.errno == errno.ENOENT
        assert TOKEN not in "".join(traceback.format_exception(error))

    def test_a_rejected_config_value_is_redacted(self):
        with pytest.raises(ConfigError) as caught:
            load_config(**{"input.format": "password=hunter2hunter2"})
        assert "hunter2" not in str(caught.value)
        assert "Invalid enum value 'password=[REDACTED:secret_param]'" in str(caught.value)

    def test_a_config_path_is_redacted(self, tmp_path):
        with pytest.raises(ConfigError) as caught:
            load_config(tmp_path / f"{TOKEN}.toml")
        assert str(caught.value) == (
            f"configuration file not found: {tmp_path}/[REDACTED:github_token].toml"
        )


def test_a_corrupt_gzip_error_is_said_plainly(tmp_path):
    src = tmp_path / "bad.gz"
    src.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"\xff" * 40)
    with Pipeline(tmp_path / "s") as p, pytest.raises(InputError) as caught:
        p.ingest_file(src)
    assert str(caught.value).startswith(f"{src}: corrupt gzip data")
    assert isinstance(caught.value.__cause__, zlib.error)


@pytest.mark.parametrize("compress", [gzip.compress, zstandard.compress], ids=["gzip", "zstd"])
def test_compressed_stdin_and_misnamed_files_are_recognised_by_magic(tmp_path, compress):
    data = ndjson(300)
    out = run("ingest", "-", "--data-dir", str(tmp_path / "s"), "--json", stdin=compress(data))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["events_written"] == 300
    plain = tmp_path / "plain.ndjson.gz"
    plain.write_bytes(data)
    with Pipeline(tmp_path / "t") as p:
        p.ingest_file(plain)
    assert p.summary.events_written == 300


def test_multi_member_gzip_reads_every_member(tmp_path):
    src = tmp_path / "two.gz"
    src.write_bytes(gzip.compress(ndjson(3, "x")) + gzip.compress(ndjson(2, "y")))
    with Pipeline(tmp_path / "s") as p:
        p.ingest_file(src)
    assert messages(tmp_path / "s") == ["x0", "x1", "x2", "y0", "y1"]


def test_a_category_too_long_for_a_directory_is_dead_lettered(tmp_path):
    long = "c" * (MAX_CATEGORY_BYTES + 1)
    rows = [{"msg": "before"}, {"msg": "long", "category": long}, {"msg": "after"}]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    with Pipeline(tmp_path / "s") as p:
        p.process(data, source="in.ndjson")
    s = p.summary
    assert (s.events_read, s.events_written, dict(s.dead_letters)) == (3, 2, {"bad_category": 1})
    assert messages(tmp_path / "s") == ["after", "before"]
    (dead_file,) = (tmp_path / "s" / "dead-letter").rglob("*.ndjson.zst")
    (dead,) = pl.read_ndjson(zstandard.decompress(dead_file.read_bytes())).to_dicts()
    assert (dead["source"], dead["reason"]) == ("in.ndjson", "bad_category")
    assert "over 200" in dead["detail"]
    event = json.loads(dead["raw"])
    assert (event["category"], event["message"]) == (long, "long")


def test_the_hive_null_category_is_dead_lettered_not_stored_as_null(tmp_path):
    # Hive readers (Polars too) read a partition named so back as null, escaped or not.
    rows = [{"msg": "kept"}, {"msg": "odd", "category": "__HIVE_DEFAULT_PARTITION__"}]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    with Pipeline(tmp_path / "s") as p:
        p.process(data, source="in.ndjson")
    assert dict(p.summary.dead_letters) == {"bad_category": 1}
    assert messages(tmp_path / "s") == ["kept"]
    (dead_file,) = (tmp_path / "s" / "dead-letter").rglob("*.ndjson.zst")
    (dead,) = pl.read_ndjson(zstandard.decompress(dead_file.read_bytes())).to_dicts()
    assert "reads back as null" in dead["detail"]


def test_a_category_at_the_limit_is_stored(tmp_path):
    fits = "c" * MAX_CATEGORY_BYTES
    with Pipeline(tmp_path / "s") as p:
        p.process(json.dumps({"msg": "m", "category": fits}).encode() + b"\n")
    assert p.summary.events_written == 1 and not p.summary.dead_letters


@pytest.mark.parametrize("pattern", ["", "x*", "(?m)^", "(secret)?"])
def test_a_rule_that_can_match_the_empty_string_is_refused_at_load(tmp_path, pattern):
    cfg = tmp_path / "q.toml"
    cfg.write_text(f"[[redaction.rules]]\nname = 'everywhere'\npattern = '{pattern}'\n")
    with pytest.raises(ConfigError, match=r'rule "everywhere".*empty string'):
        load_config(cfg)


def test_a_rule_that_needs_a_character_loads(tmp_path):
    cfg = tmp_path / "q.toml"
    cfg.write_text("[[redaction.rules]]\nname = 'tok'\npattern = 'tok-[0-9]+'\n")
    assert load_config(cfg).redaction.rules[0].name == "tok"


def test_scattered_timestamps_keep_few_partitions_buffered(tmp_path):
    cfg = load_config(**{"store.max_buffered_partitions": 8})
    rows = [{"ts": 1_000_000_000 + i * 7_200, "msg": f"m{i}"} for i in range(100)]
    seen = []
    with Pipeline(tmp_path / "s", cfg) as p:
        for i in range(0, 100, 10):
            p.process(b"".join(json.dumps(r).encode() + b"\n" for r in rows[i : i + 10]))
            seen.append(p.buffered_partitions)
    assert max(seen) <= 8
    assert (p.summary.events_written, p.summary.files) == (100, 100)
    assert messages(tmp_path / "s") == sorted(f"m{i}" for i in range(100))
    assert not list((tmp_path / "s").rglob(".*.tmp"))


def test_a_batch_scattered_over_many_hours_comes_in_runs_past_16_partitions():
    # One Arrow batch per partition cost about 850 MB for 20,000 events in as many hours: the
    # first 16 partitions of a call have batches of their own, the rest share one, in runs.
    hours = [(i * 7919) % 500 for i in range(500)]
    data = b"".join(
        json.dumps({"ts": 1_000_000_000 + h * 3_600, "msg": f"m{i}"}).encode() + b"\n"
        for i, h in enumerate(hours)
    )
    batch = Pipeline().decode(data)
    assert batch.events.n_chunks() == 16 + 1
    assert len(batch.parts) == 500 and {rows for _, rows in batch.parts} == {1}
    first_hour = time.gmtime(1_000_000_000 + hours[0] * 3_600)
    assert batch.parts[0][0][2] == time.strftime("%H", first_hour)
    assert batch.events["message"].head(2).to_list() == ["m0", "m1"]


def test_one_batch_of_many_partitions_is_bounded_within_the_batch(tmp_path):
    cfg = load_config(**{"store.max_buffered_partitions": 4})
    data = b"".join(
        json.dumps({"ts": 1_000_000_000 + i * 3_600, "msg": f"m{i}"}).encode() + b"\n"
        for i in range(100)
    )
    with Pipeline(tmp_path / "s", cfg) as p:
        p.process(data)
        assert p.buffered_partitions <= 4
    assert p.summary.files == 100
    assert messages(tmp_path / "s") == sorted(f"m{i}" for i in range(100))


def test_audit_records_among_many_partitions_still_verify(tmp_path):
    from qlingest import verify_audit

    cfg = load_config(**{"store.max_buffered_partitions": 4})
    rows = [
        {"ts": 1_000_000_000 + i * 3_600, "msg": f"m{i}",
         "category": "security.audit_logs" if i % 3 == 0 else "app"}
        for i in range(90)
    ]  # fmt: skip
    with Pipeline(tmp_path / "s", cfg) as p:
        p.process(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    report = verify_audit(tmp_path / "s")
    assert report.ok and report.records == 30


def torn_store(tmp_path):
    rows = [{"ts": 1_700_000_000 + i * 3_600, "msg": f"m{i}"} for i in range(3)]
    store = tmp_path / "s"
    with Pipeline(store) as p:
        p.process(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    files = sorted((store / "hot").rglob("*.parquet"))
    files[0].write_bytes(files[0].read_bytes()[:-10])
    extra = pl.read_parquet(files[1], hive_partitioning=False)
    extra.with_columns(pl.lit(7).alias("added")).write_parquet(files[1])
    return store, files[0]


def test_a_torn_file_is_skipped_with_a_warning_and_an_extra_column_is_read(tmp_path):
    store, torn = torn_store(tmp_path)
    out = run("query", "--data-dir", str(store), "--count")
    assert (out.returncode, out.stdout.decode().strip()) == (0, "2")
    err = out.stderr.decode()
    assert f"skipped unreadable file {torn}:" in err and "1 unreadable files skipped" in err
    rows = run("query", "--data-dir", str(store), "--format", "ndjson").stdout.splitlines()
    assert sorted(json.loads(r)["message"] for r in rows) == ["m1", "m2"]


def test_a_zero_byte_file_is_named_not_counted_as_empty(tmp_path):
    store, torn = torn_store(tmp_path)
    torn.write_bytes(b"")
    out = run("query", "--data-dir", str(store), "--count")
    assert (out.returncode, out.stdout.decode().strip()) == (0, "2")
    assert f"skipped unreadable file {torn}: empty (0 bytes)" in out.stderr.decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("query", "--since", "99999999d", "--count"), "look-back '99999999d'"),
        (("bench", "generate", "--seed", "-1", "--count", "1"), "--seed -1"),
        (("bench", "generate", "--seed", str(1 << 64), "--count", "1"), f"--seed {1 << 64}"),
        (("bench", "generate", "--count", "-1"), "--count -1: cannot be negative"),
    ],
)
def test_out_of_range_arguments_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "hot").mkdir()
    out = run(*args, "--data-dir", str(tmp_path)) if args[0] == "query" else run(*args)
    err = out.stderr.decode()
    assert out.returncode == 2 and out.stdout == b""
    assert err.startswith("qlingest: error: ") and message in err and len(err.splitlines()) == 1
