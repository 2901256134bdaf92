"""Ingests every sample under a data folder (see its README) into one store, prints the
summary, and checks that written + dead-lettered events equal the non-empty input lines and
that a query reads the written count back. Used by ``make run``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qlingest.cli import _print_summary
from qlingest.config import load_config
from qlingest.formats import resolve
from qlingest.pipeline import Pipeline
from qlingest.query import scan

# (glob under the data folder, format, parse preset, category)
SOURCES = [
    ("zeek/*.ndjson", "ndjson", None, "network.zeek"),
    ("otrf/*.ndjson", "ndjson", None, "security.datasets"),
    ("container/*.log", "ndjson", None, "application.container"),
    ("loghub/OpenSSH_2k.log", "text", "@syslog", "security.auth"),
    ("loghub/Linux_2k.log", "text", "@syslog", "system.syslog"),
    ("loghub/HDFS_2k.log", "text", "@hdfs", "application.hdfs"),
    ("loghub/Apache_2k.log", "text", "@apache-error", "application.apache"),
    ("loghub/Zookeeper_2k.log", "text", "@log4j", "application.zookeeper"),
    ("loghub/*.csv", "text", None, "application.loghub_csv"),
    ("elastic/*.log", "text", "@apache-access", "application.access"),
    ("zeek/*_tsv.log", "text", "@zeek-tsv", "network.zeek_tsv"),
]


def non_empty_lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data", type=Path)
    ap.add_argument("store", type=Path)
    args = ap.parse_args()
    if not args.data.is_dir():
        print(
            f"no sample data at {args.data}: the real logs live outside the repository; "
            "point DATA at them (make run DATA=/path/to/shared/data)",
            file=sys.stderr,
        )
        return 2
    expected = 0
    totals = None
    for pattern, fmt, preset, category in SOURCES:
        paths = sorted(args.data.glob(pattern))
        parse, time_format = resolve(preset, None)
        config = load_config(
            None,
            **{
                "input.parse": parse,
                "input.timestamp_format": time_format,
                "input.category": category,
            },
        )
        with Pipeline(args.store, config) as pipeline:
            for path in paths:
                pipeline.ingest_file(path, format=fmt)
                expected += non_empty_lines(path)
            s = pipeline.close()
        print(
            f"{pattern:<28} {len(paths):>2} files  {s.events_read:>6} events  {s.dead_lettered:>3} dead"
        )
        totals = s.as_dict() if totals is None else merge(totals, s.as_dict())
    print()
    _print_summary(totals)
    stored = scan(args.store).select("timestamp").collect().height
    done = totals["events_written"] + totals["dead_lettered"]
    print(
        f"\nnon-empty input lines {expected:,}; written + dead-lettered {done:,}; query reads {stored:,}"
    )
    return 0 if done == expected and stored >= totals["events_written"] else 1


def merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            merged = dict(a[key])
            for k, v in value.items():
                merged[k] = merged.get(k, 0) + v
            out[key] = merged
        elif key in ("compression_ratio", "events_per_s"):
            continue
        elif not isinstance(value, (int, float)):
            # Not a count (``interrupted``: the signal that stopped a run, or None).
            out[key] = a[key] if a[key] is not None else value
        else:
            out[key] = a[key] + value
    out["compression_ratio"] = (
        out["bytes_in"] / out["bytes_on_disk"] if out["bytes_on_disk"] else 0.0
    )
    out["events_per_s"] = round(out["events_read"] / out["elapsed_s"]) if out["elapsed_s"] else 0
    return out


if __name__ == "__main__":
    sys.exit(main())
