"""Reading the store back with Polars lazy scans: partition pruning and predicate pushdown."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from qlingest.exceptions import first_line
from qlingest.source import path_text
from qlingest.store import LEVELS, data_root, parquet_files

__all__ = ["empty_store", "parse_time", "readable_files", "scan", "select"]

# The spellings ingest accepts, so a query can use the same words.
LEVEL_SYNONYMS = {
    "trace": "debug", "warning": "warn", "err": "error", "fatal": "critical", "crit": "critical",
    "panic": "critical", "notice": "info", "information": "info", "emergency": "critical",
    "alert": "critical",
}  # fmt: skip
log = logging.getLogger("qlingest.query")
#: A look-back: ``2h`` or ``-2h``, both two hours before now.
LOOK_BACK = re.compile(r"^-?(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: Why a zero-byte file is skipped.
EMPTY = "empty (0 bytes)"
#: Why a file whose path is not UTF-8 is skipped.
NOT_UTF8 = "its path is not UTF-8"


def scan(data_dir: str | Path, tier: str = "hot", files: list[Path] | None = None) -> pl.LazyFrame:
    """A lazy frame over every committed file of a tier (or over ``files`` of it). A file with
    a column the others lack is read without it; one that lacks a column reads it as null."""
    root = data_root(data_dir) / tier
    if files is None:
        found, unlisted = parquet_files(root)
        # A directory that cannot be listed is named, as an unreadable file is; its files
        # are left out, and a glob would fail the whole scan on it.
        for directory, reason in unlisted:
            log.warning("skipped unreadable directory %s (its files are left out): %s",
                        path_text(directory), reason)  # fmt: skip
        if not found:
            kind = "readable " if unlisted else ""
            raise FileNotFoundError(f"no {kind}Parquet files under {root}")
        # Polars reads a zero-byte file as no rows; a committed file is never empty, so it
        # was damaged (truncated), and is named rather than counted as nothing.
        empty = {path for path in found if _size(path) == 0}
        for path in sorted(empty):
            log.warning("skipped unreadable file %s: %s", path, EMPTY)
        # Polars takes paths as UTF-8 text; a name that is not (written by hand: the store
        # escapes what it writes) is named and left out.
        odd = {path for path in found if not _utf8(path)}
        for path in sorted(odd):
            log.warning("skipped unreadable file %s: %s", path_text(path), NOT_UTF8)
        if empty or odd or unlisted:
            files = [path for path in found if path not in empty and path not in odd]
    if files is not None and not files:
        raise FileNotFoundError(f"no readable Parquet files under {root}")
    source = [str(f) for f in files] if files is not None else str(root / "**" / "*.parquet")
    return pl.scan_parquet(
        source,
        hive_partitioning=True,
        extra_columns="ignore",
        missing_columns="insert",
    )


def empty_store() -> pl.LazyFrame:
    """No rows, with the columns ``scan`` gives a store: the event schema and the ``date``
    and ``hour`` of its partitions."""
    from qlingest import _core
    from qlingest.config import InputConfig

    events = _core.Engine(InputConfig().core_json()).process(b"", observed_ns=1).events
    frame = pl.DataFrame(events).with_columns(
        pl.lit(None, pl.Date).alias("date"), pl.lit(None, pl.Int64).alias("hour")
    )
    return frame.lazy()


def readable_files(
    data_dir: str | Path,
    tier: str = "hot",
    *,
    rows: bool = False,
    files: list[Path] | None = None,
) -> tuple[list[Path], list[str]]:
    """The committed files of a tier (or ``files``) whose footer reads, and one line on each
    that does not (zero-byte files included, as ``<path>: empty (0 bytes)``). With ``rows``,
    every row is read too, which finds a damaged data page behind a footer that reads."""
    good: list[Path] = []
    bad: list[str] = []
    # Directories that cannot be listed are named by ``scan``, which runs first.
    found = parquet_files(Path(data_dir) / tier)[0] if files is None else files
    for path in found:
        if _size(path) == 0:
            bad.append(f"{path}: {EMPTY}")
            continue
        if not _utf8(path):
            bad.append(f"{path_text(path)}: {NOT_UTF8}")
            continue
        try:
            if rows:
                pl.read_parquet(path, hive_partitioning=False)
            else:
                pl.read_parquet_schema(path)
        except (OSError, pl.exceptions.PolarsError) as e:
            bad.append(f"{path}: {first_line(e)}")
        else:
            good.append(path)
    return good, bad


def _utf8(path: Path) -> bool:
    try:
        str(path).encode()
    except UnicodeEncodeError:
        return False
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """RFC 3339 / ISO 8601 (naive means UTC), or a look-back such as ``15m``, ``2h``, ``7d``
    (``-2h`` is read as ``2h``)."""
    m = LOOK_BACK.match(text.strip())
    if m:
        now = now or datetime.now(UTC)
        try:
            return now - timedelta(**{_UNITS[m[2]]: int(m[1])})
        except OverflowError:
            raise ValueError(f"look-back {text!r} reaches before year 1") from None
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use RFC 3339 or a look-back like 15m, 2h, 7d"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def select(
    frame: pl.LazyFrame,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    level: str | None = None,
    service: str | None = None,
    category: str | None = None,
    trace_id: str | None = None,
    grep: str | None = None,
) -> pl.LazyFrame:
    """Applies the usual filters; date bounds also prune partitions."""
    preds: list[pl.Expr] = []
    if since is not None:
        preds += [pl.col("date") >= since.date(), pl.col("timestamp") >= since]
    if until is not None:
        preds += [pl.col("date") <= until.date(), pl.col("timestamp") < until]
    if level is not None:
        level = LEVEL_SYNONYMS.get(level.lower(), level.lower())
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}: one of {', '.join(LEVELS)}")
        preds.append(pl.col("level").cast(pl.Enum(LEVELS)) >= level)
    if service is not None:
        preds.append(pl.col("service") == service)
    if category is not None:
        preds.append(pl.col("category") == category)
    if trace_id is not None:
        preds.append(pl.col("trace_id") == trace_id.lower())
    if grep is not None:
        preds.append(pl.col("message").str.contains(grep, literal=True))
    return frame.filter(*preds) if preds else frame
