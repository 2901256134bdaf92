"""The ``qlingest`` command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from qlingest.exceptions import InputError, QlingestError

if TYPE_CHECKING:
    from qlingest.source import Stop

__all__ = ["main"]

PROGRESS_MIN_BYTES = 32 << 20


def _fail(message: str, code: int = 2) -> int:
    _stderr(f"qlingest: error: {message}")
    return code


def _stderr(text: str) -> None:
    """Prints one of qlingest's own messages, redacted: paths and excerpts can hold secrets."""
    from qlingest.redact import redact_message

    print(redact_message(text), file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """Prints its usage errors redacted, as every message of the command: they quote the
    rejected value, which can be a secret typed into the wrong option."""

    def error(self, message: str) -> NoReturn:
        from qlingest.redact import redact_message

        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {redact_message(message)}\n")


def _progress(paths: list[str]):
    """A tqdm bar over input bytes, on a terminal and for large inputs only."""
    if not sys.stderr.isatty():
        return None
    total = sum(os.path.getsize(p) for p in paths if p != "-" and os.path.exists(p))
    if total < PROGRESS_MIN_BYTES:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="ingest", file=sys.stderr)


def _print_summary(summary: dict, out=sys.stdout) -> None:
    rows = [
        ("events read", f"{summary['events_read']:,}"),
        ("events written", f"{summary['events_written']:,}"),
        ("dead-lettered", f"{summary['dead_lettered']:,}"),
    ]
    rows += [
        (f"  {reason}", f"{n:,}") for reason, n in sorted(summary["dead_letters_by_reason"].items())
    ]
    if summary["unparsed_lines"]:
        rows.append(
            (
                "lines --parse did not match",
                f"{summary['unparsed_lines']:,}",
            )
        )
    if summary["redactions_by_rule"]:
        rows.append(("redactions", f"{sum(summary['redactions_by_rule'].values()):,}"))
        rows += [
            (f"  {r}", f"{n:,}") for r, n in sorted(summary["redactions_by_rule"].items()) if n
        ]
    if summary["sampled_out_by_rule"] or summary["kept_by_rule"]:
        rows.append(("sampled out", f"{sum(summary['sampled_out_by_rule'].values()):,}"))
        rows += [
            (f"  {r}", f"{n:,}") for r, n in sorted(summary["sampled_out_by_rule"].items()) if n
        ]
        rows.append(("kept by sampling rule", f"{sum(summary['kept_by_rule'].values()):,}"))
        rows += [(f"  {r}", f"{n:,}") for r, n in sorted(summary["kept_by_rule"].items()) if n]
        if summary["sampling_fallback_hashes"]:
            unusable = f"{summary['sampling_fallback_hashes']:,} (sampled on an event hash)"
            rows.append(("trace ids without randomness", unusable))
    if summary["inputs_failed"]:
        rows.append(("inputs failed", ", ".join(summary["inputs_failed"])))
    if summary["interrupted"]:
        stopped = f"by {summary['interrupted']}: input not read to its end, what was read is stored"
        rows.append(("interrupted", stopped))
    rows += [
        ("bytes in", f"{summary['bytes_in']:,}"),
        ("bytes on disk", f"{summary['bytes_on_disk']:,} in {summary['files']} files"),
        ("compression ratio", f"{summary['compression_ratio']:.1f}x"),
        ("elapsed", f"{summary['elapsed_s']:.2f} s"),
        ("events/s", f"{summary['events_per_s']:,}"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}", file=out)


def _not_a_store(data_dir: str) -> str | None:
    """Why ``data_dir`` cannot hold a store, when something other than a directory is there."""
    path = Path(data_dir)
    if path.exists() and not path.is_dir():
        return f"no store at {data_dir}: not a directory"
    return None


def cmd_ingest(args: argparse.Namespace) -> int:
    from qlingest.config import load_config, sampling_policy
    from qlingest.pipeline import Pipeline

    if problem := _not_a_store(args.data_dir):
        return _fail(problem)

    missing = [p for p in args.paths if p != "-" and not Path(p).exists()]
    if missing:
        return _fail(f"input file not found: {missing[0]}")
    # Named pipes, /dev/stdin and <(...) are read like files; a directory is not.
    directories = [p for p in args.paths if p != "-" and Path(p).is_dir()]
    if directories:
        return _fail(f"a directory, not a file: {directories[0]}")
    if args.paths.count("-") > 1:
        return _fail("stdin (-) can be read once")
    from qlingest.formats import resolve

    parse, time_format = resolve(args.parse, args.timestamp_format)
    overrides = {"input.parse": parse, "input.timestamp_format": time_format}
    overrides["input.category"] = args.category
    overrides["input.service"] = args.service
    overrides["sampling"] = sampling_policy(args.sampling)
    if args.no_redact:
        overrides["redaction.enabled"] = False
        print(
            "qlingest: WARNING: --no-redact: secrets are written to disk as sent. "
            "For measurements only.",
            file=sys.stderr,
        )
    config = load_config(args.config, **overrides)
    bar = _progress(args.paths)
    with _stop_on_signals() as stop, Pipeline(args.data_dir, config) as pipeline:
        for path in args.paths:
            try:
                progress = bar.update if bar else None
                pipeline.ingest_file(path, format=args.format, progress=progress, stop=stop)
            except InputError as e:
                # One bad input does not cost the others: named now, counted in the summary.
                _stderr(f"qlingest: error: {e}")
            if stop.is_set():
                break
        # What was read before a signal is committed as at the end of the input.
        summary = pipeline.close()
        summary.interrupted = summary.interrupted or stop.reason
    if bar:
        bar.close()
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        _print_summary(summary.as_dict())
    code = 0
    if summary.inputs_failed:
        n = len(summary.inputs_failed)
        code = _fail(f"{n} of {len(args.paths)} inputs could not be read to their end", 1)
    # As a shell reports a process ended by the signal: 130 for SIGINT, 143 for SIGTERM.
    return 128 + signal.Signals[summary.interrupted] if summary.interrupted else code


@contextmanager
def _stop_on_signals() -> Iterator[Stop]:
    """A :class:`Stop` that the first SIGINT or SIGTERM sets; the signals then act as they did
    before, so a second one ends the process at once. A signal ignored stays ignored."""
    from qlingest.source import Stop

    stop = Stop()
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.getsignal(s) for s in handled}
        previous = {s: h for s, h in previous.items() if h is not signal.SIG_IGN}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def on_signal(signum: int, frame: object) -> None:
        restore()
        stop.set(signal.Signals(signum).name)

    for signum in previous:
        signal.signal(signum, on_signal)
    try:
        yield stop
    finally:
        restore()
        stop.close()


def cmd_query(args: argparse.Namespace) -> int:
    from qlingest.query import empty_store, parse_time, scan

    if args.estimate and not args.count:
        return _fail("--estimate goes with --count")
    try:
        # Bad times are usage errors, whatever the store holds.
        since, until = (parse_time(t) if t else None for t in (args.since, args.until))
    except ValueError as e:
        return _fail(str(e))
    if since is not None and until is not None and since > until:
        return _fail(
            f"--since {args.since} is later than --until {args.until}: no event can match "
            "(a look-back counts back from now, so --since 3h --until 2h is the hour before)"
        )
    from qlingest.store import data_root, parquet_files

    root = data_root(args.data_dir)
    if not root.is_dir():
        return _fail(f"no store at {args.data_dir}: not a directory")
    hot = root / "hot"
    if parquet_files(hot) == ([], []):
        # A store that has stored nothing yet answers with no events, like one whose events
        # all miss the filters; only a directory that is not there is an error.
        _stderr(f"qlingest: note: no Parquet files under {hot}: the result is empty")
        return _run_query(args, empty_store())
    try:
        return _run_query(args, scan(args.data_dir))
    except FileNotFoundError as e:
        # Every file is unreadable (empty, or a name that is not UTF-8): data is lost, as
        # when every file is damaged.
        return _fail(str(e), 1)
    except ValueError as e:
        return _fail(str(e))
    except polars_error() as e:
        return _query_past_damage(args, e)


def _query_past_damage(args: argparse.Namespace, error: Exception) -> int:
    """The query over the files that read, after a damaged file failed the whole scan. A torn
    footer shows when footers are read; a damaged data page only when rows are, which costs a
    read of every row, so it is looked for only when the files whose footer reads still fail."""
    from qlingest.query import EMPTY, readable_files, scan

    good, bad = readable_files(args.data_dir)
    code = None
    if any(not line.endswith(EMPTY) for line in bad):
        try:
            code = _run_query(args, scan(args.data_dir, files=good)) if good else None
        except polars_error():
            code = None
    if code is None:
        good, more = readable_files(args.data_dir, rows=True, files=good)
        bad += more
        if all(line.endswith(EMPTY) for line in bad):
            raise error
        if good:
            code = _run_query(args, scan(args.data_dir, files=good))
        elif args.count:
            print(0)
            code = 0
    for line in bad:
        if not line.endswith(EMPTY):  # ``scan`` named the empty ones
            _stderr(f"qlingest: warning: skipped unreadable file {line}")
    _stderr(f"qlingest: warning: {len(bad)} unreadable files skipped")
    return (
        code if code is not None else _fail(f"no readable Parquet files under {args.data_dir}", 1)
    )


def _run_query(args: argparse.Namespace, frame) -> int:
    import polars as pl

    from qlingest.query import parse_time, select

    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    frame = select(
        frame,
        since=since,
        until=until,
        level=args.level,
        service=args.service,
        category=args.category,
        trace_id=args.trace_id,
        grep=args.grep,
    )
    if args.count:
        expr = pl.col("sample_rate").sum() if args.estimate else pl.len()
        # Limitation: without a filter on its columns the count comes from the files'
        # footers, which is what keeps it fast on a large store; a file whose footer reads
        # but whose data pages are damaged is counted, and only a read of the rows names it.
        value = frame.select(expr).collect().item()
        if args.estimate and not math.isfinite(value):
            return _fail("no estimate: the matching events' sample_rate values sum past a float", 1)
        print(round(value) if args.estimate else value)
        return 0
    # --limit keeps the oldest matching rows, in time order. A frame holds fewer than 2**32
    # rows, the most Polars takes as a limit: a larger one keeps them all.
    frame = frame.sort("timestamp").drop("date", "hour")
    if args.limit is not None and args.limit < 1 << 32:
        frame = frame.head(args.limit)
    result = frame.collect()
    if args.format == "ndjson":
        sys.stdout.write(result.write_ndjson())
    elif args.format == "csv":
        sys.stdout.write(result.with_columns(pl.col("level").cast(pl.String)).write_csv())
    else:
        cols = ["timestamp", "level", "service", "category", "message"]
        # Control characters from log lines would drive the terminal: shown escaped instead.
        shown = result.select(cols).with_columns(
            pl.col(pl.String).str.replace_all(r"[\x00-\x08\x0b-\x1f\x7f\x9b]", "\ufffd")
        )
        with pl.Config(tbl_rows=args.limit or 50, fmt_str_lengths=120, tbl_width_chars=200):
            print(shown)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from qlingest.config import load_config, sampling_policy
    from qlingest.serve import run

    if problem := _not_a_store(args.data_dir):
        return _fail(problem)
    overrides = {f"serve.{k}": getattr(args, k) for k in ("host", "http_port", "otlp_port")}
    overrides["serve.tcp_port"] = args.tcp_port
    overrides["sampling"] = sampling_policy(args.sampling)
    return run(args.data_dir, load_config(args.config, **overrides))


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from qlingest.audit import KEY_ENV, audit_key, read_anchor, verify, write_anchor

    if not Path(args.data_dir).is_dir():
        return _fail(f"no store at {args.data_dir}")
    key = audit_key(None)
    if args.require_seals and key is None:
        return _fail(f"--require-seals needs the seal key in {KEY_ENV}")
    anchor = None
    if args.anchor:
        if not Path(args.anchor).parent.is_dir():
            return _fail(f"anchor {args.anchor}: its directory does not exist")
        try:
            anchor = read_anchor(args.anchor)
        except ValueError as e:
            return _fail(str(e))
        if not Path(args.anchor).exists():
            _stderr(f"qlingest: anchor {args.anchor} not found: no earlier heads to check; "
                    "it will hold this run's heads")  # fmt: skip
    report = verify(args.data_dir, require_seals=args.require_seals, key=key, anchor=anchor)
    if args.anchor and report.ok:
        write_anchor(args.anchor, report)
    if args.json:
        print(json.dumps(_report_dict(report)))
        return 0 if report.ok else 1
    for chain in report.chains:
        name = chain.chain or "(no chain)"
        if chain.failure is None:
            seal = "sealed" if chain.sealed else "UNSEALED (truncation not detectable)"
            if chain.seals_unchecked:
                seal = f"seals NOT CHECKED: no key given (set {KEY_ENV}; without it truncation is not detectable)"
            pending = (
                f", {chain.pending:,} records pending (their writer is running, not yet sealed)"
                if chain.pending
                else ""
            )
            print(
                _printable(
                    f"chain {name}: OK, {chain.records:,} records, head {chain.head[0]} {chain.head[1]}, {seal}{pending}"
                )
            )
            continue
        f = chain.failure
        print(
            _printable(
                f"chain {name}: {f.kind.upper()} at seq {f.seq} ({_failure_place(f, args.anchor)}): expected {f.expected}, found {f.found}"
            )
        )
    counted = f"{report.records:,} records in {len(report.chains)} chains"
    if report.ok:
        print(f"OK: {counted}")
    elif report.wrong_key:
        print(
            f"SEALS FAIL: {counted}; no seal of the store verifies under the key given: most "
            "likely a wrong key or a rotated one (if the key is right, every seal was rewritten)"
        )
    elif report.unreadable:
        print(f"UNREADABLE: {counted}; the store could not be read in full, so it is not verified")
    else:
        print(f"TAMPERED: {counted}")
    return 0 if report.ok else 1


def _printable(line: str) -> str:
    """``line`` with every character that is not printable written as its escape: chain ids,
    paths and found values come from the store, and a line break or a terminal escape in one
    could forge a line of the report (``w0\\nOK: ...``) or drive the terminal."""
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in line)


def _failure_place(f, anchor: str | None) -> str:
    """Where a verify failure is, in words: a row, a file, a checkpoint, the log or the anchor."""
    if f.origin == "anchor":
        at = f"anchor {anchor}" if anchor else "anchor"
        return f"{at}; {f.file} row {f.row}" if f.file is not None else at
    if f.origin == "checkpoint":
        return f"checkpoint of {f.file}"
    if f.origin == "checkpoint log":
        if f.file is None:
            return "checkpoint log"
        return f"{f.file} line {f.row + 1}" if f.row is not None else f.file
    if f.row is None:
        return f.file or "store"
    return f"{f.file} row {f.row}"


def _report_dict(report) -> dict:
    from dataclasses import asdict

    return {
        "ok": report.ok,
        "records": report.records,
        "wrong_key": report.wrong_key,
        "unreadable": report.unreadable,
        "chains": [asdict(c) for c in report.chains],
    }


def cmd_bench(args: argparse.Namespace) -> int:
    from qlingest.bench import main as bench_main

    # The generator's seed is an unsigned 64-bit number; counts cannot be negative.
    if not 0 <= args.seed < 1 << 64:
        return _fail(f"--seed {args.seed}: use a number from 0 to {(1 << 64) - 1}")
    for flag in ("count", "events"):
        value = getattr(args, flag, None)
        if value is not None and value < 0:
            return _fail(f"--{flag} {value}: cannot be negative")
    return bench_main(args)


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qlingest", description="Observability ingest with a Rust core.")
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="ingest files into the store")
    ingest.add_argument(
        "paths", nargs="+", metavar="PATH", help="input files (.gz, .zst) or - for stdin"
    )
    ingest.add_argument("--data-dir", required=True, help="the store")
    ingest.add_argument("--format", choices=["auto", "ndjson", "text"], default="auto")
    ingest.add_argument(
        "--parse",
        metavar="REGEX",
        help="text lines: regex with named groups, or a preset: "
        "@syslog @hdfs @apache-error @apache-access @log4j @zeek-tsv",
    )
    ingest.add_argument(
        "--timestamp-format",
        metavar="FMT",
        help="text lines: strftime format of the timestamp group",
    )
    ingest.add_argument("--category", help="category of events that carry none")
    ingest.add_argument("--service", help="service of events that carry none")
    ingest.add_argument("--config", metavar="FILE", help="TOML configuration")
    ingest.add_argument(
        "--no-redact", action="store_true", help="turn redaction off (measurements only; unsafe)"
    )
    ingest.add_argument(
        "--sampling",
        metavar="POLICY",
        help="cost-optimized, or a TOML policy file (default: keep all)",
    )
    ingest.add_argument("--json", action="store_true", help="print the summary as JSON")
    ingest.set_defaults(func=cmd_ingest)

    query = sub.add_parser("query", help="read events back from the store")
    query.add_argument("--data-dir", required=True)
    query.add_argument(
        "--since",
        help="RFC 3339 time (UTC when it has no offset, as stored) or look-back (15m, 2h, 7d; "
        "-2h is 2h too)",
    )
    query.add_argument("--until", help="RFC 3339 time (UTC when it has no offset) or look-back")
    query.add_argument("--level", help="this level and above")
    query.add_argument("--service")
    query.add_argument("--category")
    query.add_argument("--trace-id")
    query.add_argument("--grep", metavar="TEXT", help="literal text in the message")
    query.add_argument("--limit", type=_positive, metavar="N")
    query.add_argument("--count", action="store_true", help="print the number of matching events")
    query.add_argument(
        "--estimate", action="store_true", help="with --count: reweight by sample_rate"
    )
    query.add_argument("--format", choices=["table", "ndjson", "csv"], default="table")
    query.set_defaults(func=cmd_query)

    audit = sub.add_parser("audit", help="the tamper-evident audit chain")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="recompute every link and seal of the store")
    verify.add_argument("--data-dir", required=True)
    verify.add_argument(
        "--require-seals", action="store_true", help="fail unless every checkpoint is sealed"
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument(
        "--anchor",
        metavar="FILE",
        help="heads from the last verification, kept outside the store: a cut of both files "
        "and checkpoint log shows against them; advanced when the store verifies",
    )
    verify.set_defaults(func=cmd_audit_verify)

    serve = sub.add_parser("serve", help="run the ingest sidecar (HTTP, OTLP/HTTP, TCP)")
    serve.add_argument("--data-dir", required=True, help="the store")
    serve.add_argument("--config", metavar="FILE", help="TOML configuration")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, metavar="P", help="NDJSON over HTTP; 0 = any")
    serve.add_argument("--otlp-port", type=int, metavar="P", help="OTLP/HTTP; 0 = any")
    serve.add_argument("--tcp-port", type=int, metavar="P", help="NDJSON over TCP; 0 = any")
    serve.add_argument(
        "--sampling",
        metavar="POLICY",
        help="cost-optimized, or a TOML policy file (default: keep all)",
    )
    serve.set_defaults(func=cmd_serve)

    from qlingest.bench import add_arguments as add_bench_arguments

    bench = sub.add_parser("bench", help="measure throughput, stage by stage and against baselines")
    add_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    return parser


def _attach_look_backs(argv: list[str]) -> list[str]:
    """``--since -2h`` as ``--since=-2h``: argparse takes a separate value that starts with
    ``-`` (and is no negative number) for an option, and would refuse it."""
    if not {"--since", "--until"} & set(argv):
        return argv  # the query module imports Polars, which other commands may not need
    from qlingest.query import LOOK_BACK

    attached: list[str] = []
    for arg in argv:
        if attached and attached[-1] in ("--since", "--until") and LOOK_BACK.match(arg):
            attached[-1] = f"{attached[-1]}={arg}"
        else:
            attached.append(arg)
    return attached


def main(argv: list[str] | None = None) -> int:
    try:
        # Building the parser imports modules that load Polars: an interrupt then ends the
        # command as one while it runs does.
        args = build_parser().parse_args(_attach_look_backs(sys.argv[1:] if argv is None else argv))
        _log_redacted()
    except KeyboardInterrupt:
        return 130
    try:
        return args.func(args)
    except QlingestError as e:
        return _fail(str(e))
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except (OSError, EOFError, ValueError, zstd_error(), polars_error()) as e:
        # Input that cannot be read (corrupt or truncated .gz/.zst, a full disk, a file that
        # vanished): one line, and what was committed before it stays committed.
        return _fail(f"{type(e).__name__}: {e}", 1)
    except Exception:
        # A fault of qlingest's own: the whole traceback, redacted like every message.
        import traceback

        _stderr(f"qlingest: internal error\n{traceback.format_exc().rstrip()}")
        return 1


def _log_redacted() -> None:
    import logging

    from qlingest.redact import RedactingFilter

    logging.basicConfig(level=logging.WARNING, format="qlingest: %(levelname)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())


def polars_error() -> type[Exception]:
    import polars as pl

    return pl.exceptions.PolarsError


def zstd_error() -> type[Exception]:
    import zstandard

    return zstandard.ZstdError


if __name__ == "__main__":
    sys.exit(main())
