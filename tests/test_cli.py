from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "qlingest", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True)


def test_missing_file_is_a_one_line_error(tmp_path):
    out = run("ingest", str(tmp_path / "nope.log"), "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert (
        out.stderr.decode().strip()
        == f"qlingest: error: input file not found: {tmp_path / 'nope.log'}"
    )


def test_a_secret_in_a_path_is_redacted_in_error_messages(tmp_path):
    token = "ghp_" + "a1B2c3D4e5" * 4
    missing = tmp_path / f"token={token}" / "app.log"
    out = run("ingest", str(missing), "--data-dir", str(tmp_path / "s"))
    assert out.returncode == 2
    err = out.stderr.decode()
    assert token not in err
    assert (
        err.strip()
        == f"qlingest: error: input file not found: {tmp_path}/token=[REDACTED:secret_param]"
    )


def test_a_secret_in_a_rejected_option_value_is_redacted(tmp_path):
    token = "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
    out = run("query", "--data-dir", str(tmp_path), "--limit", token)
    assert out.returncode == 2
    err = out.stderr.decode()
    assert token not in err
    assert err.splitlines()[-1] == (
        "qlingest query: error: argument --limit: invalid _positive value: "
        "'[REDACTED:github_token]'"
    )


def test_own_log_records_are_redacted():
    import logging

    from qlingest.redact import RedactingFilter

    record = logging.LogRecord(
        "qlingest.x", logging.WARNING, __file__, 1, "bad %s", ("4111 1111 1111 1111",), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "bad [REDACTED:credit_card]"


def test_bad_config_is_a_one_line_error(tmp_path):
    cfg = tmp_path / "q.toml"
    cfg.write_text("[input]\nmax_depth = 'deep'\n")
    src = tmp_path / "a.ndjson"
    src.write_text("{}\n")
    out = run("ingest", str(src), "--data-dir", str(tmp_path / "s"), "--config", str(cfg))
    assert out.returncode == 2
    err = out.stderr.decode().strip()
    assert err.startswith("qlingest: error:") and "max_depth" in err and len(err.splitlines()) == 1


def test_unknown_preset_is_named(tmp_path):
    src = tmp_path / "a.log"
    src.write_text("x\n")
    out = run("ingest", str(src), "--data-dir", str(tmp_path), "--parse", "@nginx-fancy")
    assert out.returncode == 2
    assert "@nginx-fancy" in out.stderr.decode()


@pytest.fixture
def store(tmp_path):
    rows = [
        {
            "ts": "2024-01-01T10:00:00Z",
            "level": "info",
            "msg": "hello",
            "service": "api",
            "trace_id": "AB12",
        },
        {"ts": "2024-01-01T11:00:00Z", "level": "error", "msg": "boom timeout", "service": "api"},
        {
            "ts": "2024-01-02T10:00:00Z",
            "level": "warn",
            "msg": "slow",
            "service": "db",
            "sample_rate": 10,
        },
    ]
    src = tmp_path / "in.ndjson"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run("ingest", str(src), "--data-dir", str(tmp_path / "s")).returncode == 0
    return str(tmp_path / "s")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "3"),
        (("--level", "warn"), "2"),
        (("--service", "api"), "2"),
        (("--since", "2024-01-01T10:30:00Z"), "2"),
        (("--until", "2024-01-02"), "2"),
        (("--grep", "timeout"), "1"),
        (("--trace-id", "ab12"), "1"),
        (("--estimate",), "12"),
    ],
)
def test_query_counts(store, args, expected):
    out = run("query", "--data-dir", store, "--count", *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == expected


def test_query_ndjson_and_csv(store):
    out = run("query", "--data-dir", store, "--format", "ndjson", "--level", "error")
    (row,) = [json.loads(x) for x in out.stdout.splitlines()]
    assert row["message"] == "boom timeout" and row["level"] == "error"
    csv = run("query", "--data-dir", store, "--format", "csv", "--limit", "1").stdout.decode()
    assert csv.splitlines()[0].startswith("timestamp,observed_at,level")


class TestQueryOfAnEmptyStore:
    """Attack report s9: without --count an empty store was an error (exit 2), with it 0."""

    NOTE = "qlingest: note: no Parquet files under {}/hot: the result is empty"

    @pytest.mark.parametrize("fmt", ["table", "csv", "ndjson"])
    def test_is_an_empty_result_with_a_note(self, tmp_path, fmt):
        out = run("query", "--data-dir", str(tmp_path), "--format", fmt)
        assert out.returncode == 0
        assert out.stderr.decode().strip() == self.NOTE.format(tmp_path)
        lines = out.stdout.decode().splitlines()
        if fmt == "csv":
            assert lines == [lines[0]] and lines[0].startswith("timestamp,observed_at,level")
        elif fmt == "ndjson":
            assert lines == []
        else:
            assert lines[0] == "shape: (0, 5)" and "message" in lines[2]

    def test_counts_zero_with_the_same_note(self, tmp_path):
        out = run("query", "--data-dir", str(tmp_path), "--count")
        assert (out.returncode, out.stdout.decode()) == (0, "0\n")
        assert out.stderr.decode().strip() == self.NOTE.format(tmp_path)

    @pytest.mark.parametrize("flags", [(), ("--count",)])
    def test_a_store_whose_every_file_is_empty_has_lost_data(self, tmp_path, flags):
        torn = tmp_path / "hot" / "category=a" / "part-w0-00000000.parquet"
        torn.parent.mkdir(parents=True)
        torn.write_bytes(b"")
        out = run("query", "--data-dir", str(tmp_path), *flags)
        assert (out.returncode, out.stdout) == (1, b"")
        assert f"skipped unreadable file {torn}: empty (0 bytes)" in out.stderr.decode()
        assert "qlingest: error: no readable Parquet files under" in out.stderr.decode()

    def test_a_directory_that_is_not_there_is_an_error(self, tmp_path):
        out = run("query", "--data-dir", str(tmp_path / "nope"))
        assert out.returncode == 2
        assert out.stderr.decode().strip() == (
            f"qlingest: error: no store at {tmp_path / 'nope'}: not a directory"
        )


@pytest.mark.parametrize(
    ("since", "until"), [("2h", "3h"), ("2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z")]
)
def test_since_later_than_until_is_a_usage_error(tmp_path, since, until):
    out = run("query", "--data-dir", str(tmp_path), "--since", since, "--until", until)
    assert out.returncode == 2
    assert f"--since {since} is later than --until {until}" in out.stderr.decode()


def test_truncated_zstd_input_is_a_one_line_error(tmp_path):
    import zstandard

    data = b"".join(json.dumps({"msg": f"m{i}"}).encode() + b"\n" for i in range(5000))
    src = tmp_path / "cut.ndjson.zst"
    src.write_bytes(zstandard.compress(data)[:-200])
    out = run("ingest", str(src), "--data-dir", str(tmp_path / "s"))
    assert out.returncode == 1
    lines = out.stderr.decode().strip().splitlines()
    assert f"qlingest: error: {src}: EOFError: zstd input ends inside a frame" in lines[-2]
    assert lines[-1] == "qlingest: error: 1 of 1 inputs could not be read to their end"


def test_corrupt_gzip_is_a_one_line_error(tmp_path):
    src = tmp_path / "bad.log.gz"
    src.write_bytes(b"\x1f\x8b\x08\x00garbage")
    out = run("ingest", str(src), "--data-dir", str(tmp_path / "s"))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr.decode()


def test_a_directory_is_not_a_file(tmp_path):
    out = run("ingest", str(tmp_path), "--data-dir", str(tmp_path / "s"))
    assert out.returncode == 2 and "a directory, not a file" in out.stderr.decode()


def test_a_named_pipe_and_dev_stdin_are_read(tmp_path):
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    lines = b"".join(b'{"msg":"m%d"}\n' % i for i in range(50))
    writer = subprocess.Popen(["sh", "-c", f"cat > {fifo}"], stdin=subprocess.PIPE)
    cmd = [sys.executable, "-m", "qlingest", "ingest", str(fifo), "/dev/stdin", "--json"]
    reader = subprocess.Popen(
        [*cmd, "--data-dir", str(tmp_path / "s")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    writer.communicate(lines)
    out, err = reader.communicate(lines[:100], timeout=120)
    assert reader.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["events_written"] == 50 + lines[:100].count(b"\n")


def test_a_failed_input_with_a_secret_in_its_path_is_redacted_in_the_summary(tmp_path):
    bad = tmp_path / "AKIAIOSFODNN7EXAMPLE" / "c.gz"
    bad.parent.mkdir()
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    out = run("ingest", str(bad), "--data-dir", str(tmp_path / "s"), "--json")
    assert out.returncode == 1
    assert b"AKIAIOSFODNN7EXAMPLE" not in out.stdout + out.stderr
    assert json.loads(out.stdout)["inputs_failed"] == [
        f"{tmp_path}/[REDACTED:aws_access_key_id]/c.gz"
    ]


def test_out_of_range_compression_level_fails_before_any_work(tmp_path):
    cfg = tmp_path / "q.toml"
    cfg.write_text("[store]\ncompression_level = 99\n")
    src = tmp_path / "a.ndjson"
    src.write_text("{}\n")
    out = run("ingest", str(src), "--data-dir", str(tmp_path / "s"), "--config", str(cfg))
    assert out.returncode == 2 and "compression_level" in out.stderr.decode()
    assert not (tmp_path / "s").exists()


def test_count_of_an_empty_store_is_zero(tmp_path):
    out = run("query", "--data-dir", str(tmp_path), "--count")
    assert (out.returncode, out.stdout.decode().strip()) == (0, "0")


def test_query_accepts_ingest_level_spellings(store):
    out = run("query", "--data-dir", store, "--count", "--level", "WARNING")
    assert out.stdout.decode().strip() == "2"


def test_table_output_escapes_terminal_control_sequences(tmp_path):
    src = tmp_path / "a.ndjson"
    src.write_text(json.dumps({"msg": "\x1b]0;PWNED\x07 \x1b[31mred"}) + "\n")
    run("ingest", str(src), "--data-dir", str(tmp_path / "s"))
    out = run("query", "--data-dir", str(tmp_path / "s"))
    assert b"\x1b" not in out.stdout and b"PWNED" in out.stdout


def test_a_header_line_does_not_turn_a_json_file_into_text(tmp_path):
    src = tmp_path / "a.ndjson"
    src.write_text(
        'garbage header\n{"ts":1700000000,"level":"error","msg":"json1"}\n{"msg":"json2"}\n'
    )
    out = run("ingest", str(src), "--data-dir", str(tmp_path / "s"), "--json")
    summary = json.loads(out.stdout)
    assert summary["events_written"] == 2 and summary["dead_letters_by_reason"] == {
        "malformed_json": 1
    }


def test_a_header_and_one_json_line_is_still_ndjson(tmp_path):
    src = tmp_path / "a.ndjson"
    src.write_text('timestamp,level,message\n{"ts":1700000000,"msg":"one"}\n')
    out = run("ingest", str(src), "--data-dir", str(tmp_path / "s"), "--json")
    summary = json.loads(out.stdout)
    assert summary["events_written"] == 1 and summary["dead_lettered"] == 1


def test_an_estimate_that_overflows_is_a_one_line_error(tmp_path):
    import polars as pl

    src = tmp_path / "a.ndjson"
    src.write_text('{"msg":"a","sample_rate":1e308}\n{"msg":"b","sample_rate":1e308}\n')
    assert run("ingest", str(src), "--data-dir", str(tmp_path / "s")).returncode == 0
    # Ingest takes no sender rate past 2^56; a store written by another tool can hold any.
    (path,) = (tmp_path / "s" / "hot").rglob("*.parquet")
    frame = pl.read_parquet(path).with_columns(sample_rate=pl.lit(1e308))
    frame.write_parquet(path)
    out = run("query", "--data-dir", str(tmp_path / "s"), "--count", "--estimate")
    assert out.returncode == 1
    assert out.stderr.decode().startswith("qlingest: error: no estimate:")
    assert b"Traceback" not in out.stderr


def test_sampling_summary_counts_kept_events_and_unusable_trace_ids(tmp_path):
    src = tmp_path / "a.ndjson"
    src.write_text(
        '{"level":"info","trace_id":"0000000000000000","msg":"a"}\n'
        '{"level":"debug","trace_id":"abc","msg":"b"}\n'
        '{"level":"warn","msg":"c"}\n'
    )
    args = ["--data-dir", str(tmp_path / "s"), "--sampling", "cost-optimized", "--json"]
    summary = json.loads(run("ingest", str(src), *args).stdout)
    assert summary["kept_by_rule"] == {"severe": 1}
    assert summary["sampled_out_by_rule"] == {"log-levels": 2}
    # An all-zero and a three-digit trace id carry no randomness: both drew on the event hash.
    assert summary["sampling_fallback_hashes"] == 2


def test_sampling_rule_names_and_policy_errors_pass_through_redaction(tmp_path):
    src = tmp_path / "a.ndjson"
    src.write_text('{"level":"info","msg":"a"}\n')
    named = tmp_path / "named.toml"
    named.write_text('[[rules]]\nname = "password=s3cr3tcanary"\nlevel_rates = { info = 1.0 }\n')
    out = run("ingest", str(src), "--data-dir", str(tmp_path / "s"), "--sampling", str(named))
    assert out.returncode == 0
    assert b"password=[REDACTED:secret_param]" in out.stdout
    assert b"s3cr3tcanary" not in out.stdout + out.stderr
    # The parser's excerpt around an error cuts a value at arbitrary bytes: it is left out.
    bad = tmp_path / "bad.toml"
    key = "AKIAQWERTYUIOPASDFGH"
    bad.write_text(f'[[rules]]\nname = "r"\nwhere = {{ service = "x" }}\nrate = "{key}"\n')
    out = run("ingest", str(src), "--data-dir", str(tmp_path / "t"), "--sampling", str(bad))
    err = out.stderr.decode()
    assert out.returncode == 2 and "sampling policy: invalid type" in err, err
    assert not any(key[i : i + 6] in err for i in range(len(key) - 5)), err


@pytest.mark.parametrize("limit", [1 << 32, 1 << 63, (1 << 64) - 1, 10**30])
@pytest.mark.parametrize("fmt", ["ndjson", "table"])
def test_a_limit_past_what_polars_takes_means_all_rows(tmp_path, limit, fmt):
    run("ingest", "-", "--data-dir", str(tmp_path), stdin=b'{"msg":"a"}\n{"msg":"b"}\n')
    out = run("query", "--data-dir", str(tmp_path), "--limit", str(limit), "--format", fmt)
    assert out.returncode == 0, out.stderr.decode()
    assert b"Traceback" not in out.stderr
    assert out.stdout.count(b'"a"' if fmt == "ndjson" else b" a ") == 1
    assert out.stdout.count(b'"b"' if fmt == "ndjson" else b" b ") == 1


@pytest.mark.parametrize("command", ["ingest", "serve"])
def test_a_data_dir_that_is_a_file_is_a_usage_error(tmp_path, command):
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = [command, *(["-"] if command == "ingest" else []), "--data-dir", str(afile)]
    out = run(*args, stdin=b"")
    assert out.returncode == 2
    assert out.stderr.decode().strip() == f"qlingest: error: no store at {afile}: not a directory"


@pytest.mark.parametrize("args", [["--since", "-5h"], ["--since", "-5h", "--until", "-0s"]])
def test_a_negative_look_back_is_taken_as_a_separate_argument(tmp_path, args):
    # Events without a time are stamped now, so they fall inside the last five hours.
    run("ingest", "-", "--data-dir", str(tmp_path), stdin=b'{"msg":"a"}\n{"msg":"b"}\n')
    out = run("query", "--data-dir", str(tmp_path), *args, "--count")
    assert (out.returncode, out.stdout) == (0, b"2\n"), out.stderr.decode()


def test_the_package_loads_its_names_on_first_use():
    # The command starts without Polars: an interrupt while it starts is not inside an import.
    code = (
        "import sys, qlingest; before = 'polars' in sys.modules; "
        "from qlingest import Pipeline, verify_audit, AuditChain; "
        "print(before, 'polars' in sys.modules, Pipeline.__name__, verify_audit.__name__, "
        "AuditChain.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "Pipeline", "verify", "AuditChain"]
    import qlingest

    assert sorted(qlingest.__all__) == sorted([*qlingest._HOMES, "__version__"])
    for name in qlingest.__all__:
        assert getattr(qlingest, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        qlingest.nope  # noqa: B018


def test_an_interrupt_while_the_command_starts_exits_130_quietly(monkeypatch, capsys):
    from qlingest import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["query", "--data-dir", "x"]) == 130
    assert capsys.readouterr().err == ""


def test_a_data_directory_whose_path_is_not_utf8_is_refused_up_front(tmp_path):
    # Arrow's writer failed on it with a UnicodeEncodeError once every event was decoded, and
    # `audit verify` reported "Object does not have a .read() method".
    log = tmp_path / "in.ndjson"
    log.write_bytes(b'{"ts":1700000000,"msg":"hello"}\n')
    odd = os.fsencode(tmp_path) + b"/st\xff"
    commands = [
        [b"ingest", os.fsencode(log), b"--data-dir", odd],
        [b"query", b"--data-dir", odd, b"--count"],
        [b"audit", b"verify", b"--data-dir", odd],
    ]
    for command in commands:
        if command[0] != b"ingest":
            os.makedirs(odd + b"/hot", exist_ok=True)
        out = subprocess.run([sys.executable, "-m", "qlingest", *command], capture_output=True)
        assert out.returncode == 2, out.stderr
        assert out.stderr.decode().splitlines()[-1] == (
            f"qlingest: error: data directory {tmp_path}/st\\xff: its path is not UTF-8, which "
            "Arrow and Polars cannot open files under; choose a directory whose path is"
        )
        assert not os.path.exists(odd + b"/writers")
