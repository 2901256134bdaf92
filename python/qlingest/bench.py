"""`qlingest bench`: the standard mix, the pipeline end to end and stage by stage, and the
plain-Python and plain-Polars baselines, each measured the same way.

Every measurement runs in a fresh process (``spawn``), so its peak RSS is its own and the
Polars thread pool has the size asked for; ``--in-process`` runs them all here instead.
Wall time is ``perf_counter``; CPU seconds are ``process_time`` (every thread of the process);
peak RSS is ``ru_maxrss`` of the measuring process.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

__all__ = [
    "STAGES",
    "Measurement",
    "Report",
    "add_arguments",
    "generate_file",
    "main",
    "measure_baseline",
    "measure_end_to_end",
    "measure_stages",
    "run",
]

DEFAULT_EVENTS = 1_000_000
DEFAULT_SEED = 42
GENERATE_BATCH = 50_000
MB = 1_000_000


@dataclass
class Measurement:
    """One timed run over the same input; ``available`` is false for a stage not built yet."""

    name: str
    events: int
    input_bytes: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    output_bytes: int | None = None
    rows_out: int | None = None
    available: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float | None:
        return self.events / self.wall_s if self.available and self.wall_s > 0 else None

    @property
    def mb_per_s(self) -> float | None:
        return self.input_bytes / MB / self.wall_s if self.available and self.wall_s > 0 else None

    @property
    def compression_ratio(self) -> float | None:
        return self.input_bytes / self.output_bytes if self.output_bytes else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["events_per_s"] = _round(self.events_per_s)
        d["mb_per_s"] = _round(self.mb_per_s, 1)
        d["compression_ratio"] = _round(self.compression_ratio, 2)
        d["wall_s"], d["cpu_s"] = round(self.wall_s, 4), round(self.cpu_s, 4)
        return d


def _round(value: float | None, digits: int = 0) -> float | int | None:
    if value is None:
        return None
    return round(value) if digits == 0 else round(value, digits)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Clock:
    """Accumulates wall and CPU time over the blocks it times."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def time(self, fn: Callable[..., Any], *args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn(*args)
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        return result


# --- the standard mix ---------------------------------------------------------------------


def generate_chunks(count: int, seed: int, batch: int = GENERATE_BATCH) -> Iterator[bytes]:
    """The standard mix for ``seed`` in chunks of whole events; one stream however cut."""
    from qlingest import _core

    generator = _core.Generator(seed)
    left = count
    while left > 0:
        n = min(batch, left)
        yield generator.fill(n)
        left -= n


def generate_file(path: str | Path, count: int, seed: int = DEFAULT_SEED, progress=None) -> int:
    """Writes ``count`` events of the standard mix to ``path``; returns the bytes written.

    The file is synced before it is measured on: written back later, its pages would compete
    with whatever runs then, and a run's own file syncs could wait for them."""
    written = 0
    with open(path, "wb") as out:
        for chunk in generate_chunks(count, seed):
            out.write(chunk)
            written += len(chunk)
            if progress is not None:
                progress(chunk.count(b"\n"))
        out.flush()
        try:
            os.fsync(out.fileno())
        except OSError as e:
            if e.errno != errno.EINVAL:  # a file that cannot be synced (/dev/null) is fine
                raise
    return written


# --- end to end ---------------------------------------------------------------------------


def _bench_config():
    from qlingest.config import load_config, sampling_policy

    # Files are committed exactly as `qlingest ingest` commits them, fsync included; redaction,
    # the cost-optimized sampling policy and audit chaining (with the bench's own key) are on.
    sampling = (
        None if os.environ.get("QLINGEST_BENCH_KEEP_ALL") else sampling_policy("cost-optimized")
    )
    return load_config(sampling=sampling, **{"audit.key": "qlingest-bench-audit-key"})


def measure_end_to_end(path: str, events: int) -> Measurement:
    """File to committed Parquet through ``Pipeline.ingest_file``, as ``qlingest ingest``."""
    from qlingest.pipeline import Pipeline

    size = os.path.getsize(path)
    with tempfile.TemporaryDirectory(prefix="qlingest-bench-") as store:
        wall, cpu = time.perf_counter(), time.process_time()
        with Pipeline(store, _bench_config()) as pipeline:
            pipeline.ingest_file(path)
            summary = pipeline.close()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows = _stored_rows(store)
    if summary.events_read != events or rows != summary.events_written:
        raise AssertionError(
            f"end to end read {summary.events_read} of {events} events, "
            f"stored {rows} of {summary.events_written} written"
        )
    return Measurement(
        "qlingest", events, size, wall, cpu, _peak_rss(), summary.bytes_on_disk, rows,
        extra={"files": summary.files, "dead_lettered": summary.dead_lettered,
               "redactions": dict(summary.redactions),
               "sampled_out": sum(summary.sampled_out.values())},
    )  # fmt: skip


def _stored_rows(store: str) -> int:
    import polars as pl

    files = list(Path(store, "hot").rglob("*.parquet"))
    return sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in files)


# --- stage by stage -----------------------------------------------------------------------


@dataclass
class Stage:
    """One stage of the data path. ``bind`` returns its per-chunk function ``(data, value) ->
    value``, or ``None`` when the stage is not available (reported so, never estimated).
    Redaction and sampling run inside the core's one call, so each is timed as a core with the
    stage on minus the core without it (``minus``)."""

    name: str
    bind: Callable[[Any], Callable[[bytes, Any], Any] | None]
    note: str = ""
    minus: str | None = None


def _core_engine(pipeline: Any, *, redact: bool, sample: bool) -> Any:
    from qlingest import _core
    from qlingest.config import policy_json

    cfg = pipeline.config
    return _core.Engine(
        cfg.input.core_json(),
        redaction_json=cfg.redaction.core_json() if redact else None,
        sampling_json=policy_json(cfg.sampling) if sample else None,
    )


def _bind_core(redact: bool, sample: bool) -> Callable[[Any], Callable[[bytes, Any], Any] | None]:
    def bind(pipeline: Any) -> Callable[[bytes, Any], Any] | None:
        if sample and pipeline.config.sampling is None:
            return None
        engine = _core_engine(pipeline, redact=redact, sample=sample)
        observed = time.time_ns()
        return lambda data, _: engine.process(data, source="bench", observed_ns=observed)

    return bind


def _bind_frame(pipeline: Any) -> Callable[[bytes, Any], Any]:
    from qlingest.pipeline import _events_frame

    return lambda _, result: _events_frame(result.events)


def _bind_chain(pipeline: Any) -> Callable[[bytes, Any], Any]:
    writer = pipeline._audit
    return lambda _, frame: writer.chain(frame.sort("timestamp", maintain_order=True))[0]


def _bind_write(pipeline: Any) -> Callable[[bytes, Any], Any]:
    return lambda _, frame: pipeline.write(frame)


STAGES: tuple[Stage, ...] = (
    Stage("read", lambda p: _pass_through, "file to line-framed chunks"),
    Stage("decode", _bind_core(False, False), "NDJSON to Arrow columns, normalization included"),
    Stage("redact", _bind_core(True, False), "core with redaction minus decode", "decode"),
    Stage(
        "sample",
        _bind_core(True, True),
        "core with sampling minus with redaction (rows are sampled before they are redacted)",
        "redact",
    ),
    Stage("frame", _bind_frame, "Arrow batch to Polars frame"),
    Stage("chain", _bind_chain, "SHA-256 audit chain over each frame"),
    Stage("write", _bind_write, "partitioned zstd Parquet, committed"),
)


def measure_stages(path: str, events: int) -> list[Measurement]:
    """Times each stage on every chunk in turn, feeding each stage the previous one's output.

    A stage's peak RSS is that of the process once the stage has run on every chunk."""
    from qlingest.pipeline import Pipeline
    from qlingest.source import open_input, read_chunks

    size = os.path.getsize(path)
    with tempfile.TemporaryDirectory(prefix="qlingest-bench-") as store:
        pipeline = Pipeline(store, _bench_config())
        bound = [(s, s.bind(pipeline)) for s in STAGES]
        clocks = {s.name: Clock() for s in STAGES}
        outputs = dict.fromkeys(clocks, 0)
        rss = dict.fromkeys(clocks, 0)
        with open_input(path) as stream:
            chunks = read_chunks(stream, pipeline.config.input.max_line_bytes)
            while (chunk := clocks["read"].time(next, chunks, None)) is not None:
                value: Any = chunk.data
                outputs["read"] += len(value)
                for stage, fn in bound[1:]:
                    if fn is None:
                        continue
                    out = clocks[stage.name].time(fn, chunk.data, value)
                    value = value if out is None else out
                    outputs[stage.name] += _size_of(value)
                    rss[stage.name] = _peak_rss()
            rss["read"] = rss["decode"] or _peak_rss()
        clocks["write"].time(pipeline.flush)
        summary = pipeline.close()
        outputs["write"] = summary.bytes_on_disk
    return [_stage_measurement(s, fn, events, size, clocks, outputs, rss) for s, fn in bound]


def _pass_through(data: bytes, value: Any) -> Any:
    return value


def _size_of(value: Any) -> int:
    """The in-memory size of a stage's output, for its 'output bytes' (0 where unknown: an
    Arrow stream is exported once, so decode's output is sized as the frame stage's)."""
    if isinstance(value, bytes):
        return len(value)
    if hasattr(value, "estimated_size"):
        return int(value.estimated_size())
    return 0


MIN_DIFFERENCE_S = 0.02


def _stage_measurement(stage, fn, events, size, clocks, outputs, rss) -> Measurement:
    if fn is None:
        return Measurement(stage.name, events, size, available=False, note=stage.note)
    clock = clocks[stage.name]
    wall, cpu = clock.wall, clock.cpu
    if stage.minus is not None:
        wall, cpu = wall - clocks[stage.minus].wall, cpu - clocks[stage.minus].cpu
        if wall <= -MIN_DIFFERENCE_S:
            # Sampling drops rows before they are redacted and written: it costs less than
            # nothing. The saving is the figure to show, as negative seconds for machines.
            note = f"{stage.note}; saves {-wall:.2f} s ({-cpu:.2f} CPU s)"
            return Measurement(stage.name, events, size, wall, cpu, rss[stage.name],
                               available=False, note=note)  # fmt: skip
        if wall < MIN_DIFFERENCE_S:
            # The difference of two timings is within their noise: no rate can be given.
            note = f"{stage.note}; under {MIN_DIFFERENCE_S * 1e3:.0f} ms in all, below timing noise"
            return Measurement(stage.name, events, size, max(wall, 0.0), max(cpu, 0.0),
                               rss[stage.name], available=False, note=note)  # fmt: skip
    return Measurement(
        stage.name, events, size, max(wall, 1e-9), max(cpu, 0.0), rss[stage.name],
        outputs[stage.name] or None, note=stage.note,
    )  # fmt: skip


# --- baselines ----------------------------------------------------------------------------


def measure_baseline(name: str, path: str, events: int) -> Measurement:
    """One `--compare` baseline over the same file, timed by the same clock."""
    from qlingest import baselines

    run_baseline = {
        "python": baselines.run_python_baseline,
        "polars": baselines.run_polars_baseline,
    }[name]
    with tempfile.TemporaryDirectory(prefix=f"qlingest-bench-{name}-") as out:
        wall, cpu = time.perf_counter(), time.process_time()
        result = run_baseline(path, out)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        output = result.output.stat().st_size
    if result.rows_in != events:
        raise AssertionError(f"{name} baseline read {result.rows_in} of {events} events")
    return Measurement(
        name, events, os.path.getsize(path), wall, cpu, _peak_rss(), output, result.rows_out,
        extra={"redactions": dict(sorted(result.redactions.items())),
               "audit_records": result.audit_records},
    )  # fmt: skip


# --- running ------------------------------------------------------------------------------


@dataclass
class Report:
    """Everything one `qlingest bench` run measured."""

    events: int
    threads: int
    input_bytes: int
    seed: int
    end_to_end: Measurement
    stages: list[Measurement]
    baselines: dict[str, Measurement] = field(default_factory=dict)

    def ratios(self) -> dict[str, float | None]:
        ours = self.end_to_end.events_per_s or 0.0
        return {
            f"vs_{name}": _round(ours / m.events_per_s, 2) if m.events_per_s else None
            for name, m in self.baselines.items()
        }

    def checks(self) -> dict[str, Any]:
        """Cross-checks of the baselines: same rows kept and same redactions per rule."""
        if len(self.baselines) < 2:
            return {}
        py, pl_ = self.baselines["python"], self.baselines["polars"]
        ours = self.end_to_end
        # A rule that matched nothing is 0 in Python's counter and absent from Polars' counts,
        # which are read from the masks written.
        differ = sorted(
            rule
            for rule in set(py.extra["redactions"]) | set(pl_.extra["redactions"])
            if py.extra["redactions"].get(rule, 0) != pl_.extra["redactions"].get(rule, 0)
        )
        return {
            "baseline_rows_out_equal": py.rows_out == pl_.rows_out,
            # Expected to differ on credit_card: Polars expressions have no Luhn check, so the
            # Polars baseline also masks look-alike numbers (see qlingest.baselines).
            "baseline_redaction_rules_differing": differ,
            "qlingest_rows_out_vs_python_baseline": (ours.rows_out or 0) - (py.rows_out or 0),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "threads": self.threads,
            "seed": self.seed,
            "input_bytes": self.input_bytes,
            "events_per_s": _round(self.end_to_end.events_per_s),
            "end_to_end": self.end_to_end.as_dict(),
            "stages": {m.name: m.as_dict() for m in self.stages},
            "baselines": {name: m.as_dict() for name, m in self.baselines.items()},
            "ratios": self.ratios(),
            "checks": self.checks(),
        }


def _call(isolate: bool, fn: Callable[..., Any], *args: Any) -> Any:
    """Runs ``fn`` in a fresh spawned process (clean peak RSS), or here."""
    if not isolate:
        return fn(*args)
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run(
    path: str | Path,
    events: int,
    *,
    threads: int = 2,
    compare: bool = False,
    isolate: bool = True,
    seed: int = DEFAULT_SEED,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Measures end to end, each stage and (with ``compare``) both baselines on ``path``."""
    path = str(path)
    # Spawned measurements inherit this; Polars sizes its pool from it when first imported.
    os.environ["POLARS_MAX_THREADS"] = str(threads)
    steps: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = [
        ("qlingest", measure_end_to_end, (path, events)),
        ("stages", measure_stages, (path, events)),
    ]
    if compare:
        steps += [(n, measure_baseline, (n, path, events)) for n in ("python", "polars")]
    results: dict[str, Any] = {}
    for name, fn, args in steps:
        if progress is not None:
            progress(name)
        results[name] = _call(isolate, fn, *args)
    return Report(
        events, threads, os.path.getsize(path), seed, results["qlingest"], results["stages"],
        {n: results[n] for n in ("python", "polars") if n in results},
    )  # fmt: skip


# --- output -------------------------------------------------------------------------------


def _cell(value: float | int | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def format_table(report: Report) -> str:
    """The report as a table for people."""
    head = ("measurement", "events/s", "MB/s", "CPU s", "peak RSS MB", "output bytes", "ratio", "")
    rows = [head]
    groups = [("end to end", [report.end_to_end])]
    groups.append(("stages", report.stages))
    if report.baselines:
        groups.append(("baselines", list(report.baselines.values())))
    for title, items in groups:
        rows.append((f"[{title}]", *[""] * (len(head) - 1)))
        for m in items:
            rows.append(_row(m))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.rjust(w) if 0 < i < len(r) - 1 else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(
        f"input: {report.events:,} events, {report.input_bytes / MB:,.1f} MB, seed {report.seed}"
        f", {report.threads} Polars threads"
    )
    for name, ratio in report.ratios().items():
        lines.append(f"qlingest {name.replace('vs_', 'vs plain ')}: {_cell(ratio, '.2f')}x")
    for name, value in report.checks().items():
        shown = ("yes" if value else "NO") if isinstance(value, bool) else value
        lines.append(f"check {name}: {shown}")
    missing = [m.name for m in report.stages if not m.available and not _timed(m)]
    if missing:
        lines.append("not available yet: " + ", ".join(missing))
    return "\n".join(lines)


def _timed(m: Measurement) -> bool:
    """Whether a stage without a rate was timed: a difference within noise, or a saving."""
    return "noise" in m.note or "saves" in m.note


def _row(m: Measurement) -> tuple[str, ...]:
    if not m.available:
        shown = "not available"
        if _timed(m):
            shown = "saves time" if "saves" in m.note else "≈ free"
        return (f"  {m.name}", shown, "", "", "", "", "", m.note)
    return (
        f"  {m.name}",
        _cell(m.events_per_s, ",.0f"),
        _cell(m.mb_per_s, ",.1f"),
        f"{m.cpu_s:.2f}",
        f"{m.peak_rss_bytes / MB:,.0f}",
        _cell(m.output_bytes, ","),
        _cell(m.compression_ratio, ".2f"),
        m.note,
    )


# --- command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `qlingest bench` flags and its `generate` subcommand."""
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, metavar="N")
    parser.add_argument("--threads", type=int, default=2, metavar="T", help="Polars threads")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="S")
    parser.add_argument("--input", metavar="FILE", help="measure this NDJSON file instead")
    parser.add_argument("--compare", action="store_true", help="also run both baselines")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--in-process", action="store_true", help="measure here, not in a fresh process each"
    )
    sub = parser.add_subparsers(dest="bench_command", metavar="{generate}")
    gen = sub.add_parser("generate", help="write the standard mix as NDJSON to stdout")
    gen.add_argument("--count", type=int, default=DEFAULT_EVENTS, metavar="N")
    gen.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="S")
    gen.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")


def _cmd_generate(args: argparse.Namespace) -> int:
    if args.output:
        generate_file(args.output, args.count, args.seed)
        return 0
    out = sys.stdout.buffer
    for chunk in generate_chunks(args.count, args.seed):
        out.write(chunk)
    out.flush()
    return 0


def _bar(total: int, desc: str, unit: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr, leave=False)


def main(args: argparse.Namespace) -> int:
    """Runs `qlingest bench` (or `qlingest bench generate`) from parsed arguments."""
    if args.bench_command == "generate":
        return _cmd_generate(args)
    with tempfile.TemporaryDirectory(prefix="qlingest-bench-input-") as tmp:
        path = args.input
        events = args.events
        if path is None:
            path = os.path.join(tmp, "standard-mix.ndjson")
            bar = _bar(events, "generate", "ev")
            generate_file(path, events, args.seed, bar.update if bar else None)
            if bar:
                bar.close()
        else:
            events = _count_events(path)
        steps = 2 + 2 * args.compare
        bar = _bar(steps, "measure", "run")
        report = run(
            path, events, threads=args.threads, compare=args.compare,
            isolate=not args.in_process, seed=args.seed,
            progress=(lambda name: (bar.set_postfix_str(name), bar.update())) if bar else None,
        )  # fmt: skip
        if bar:
            bar.close()
    print(json.dumps(report.as_dict()) if args.json else format_table(report))
    return 0


def _count_events(path: str) -> int:
    """Non-blank lines of an NDJSON file, the events a run must read."""
    count = 0
    with open(path, "rb") as f:
        for line in f:
            count += bool(line.strip())
    return count
