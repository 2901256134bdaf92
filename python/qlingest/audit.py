"""The audit checkpoint log and store verification (see docs/audit-chain.md).

The pipeline calls :func:`append_checkpoint` after each committed file; :func:`verify` gathers
every chain's records from the stored Parquet files, orders them by ``audit_seq`` and checks
each link and each checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

GENESIS = "0" * 64
AUDIT_CATEGORY = "security.audit_logs"
KEY_ENV = "QLINGEST_AUDIT_KEY"
TIERS = ("hot", "warm", "cold")
_MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class Failure:
    """The first failure of a chain: where it breaks, what was expected and what was found."""

    kind: str
    seq: int
    file: str | None
    row: int | None
    expected: str
    found: str


@dataclass
class ChainReport:
    """The verdict on one chain."""

    chain: str | None
    records: int = 0
    head: tuple[int, str] = (0, GENESIS)
    checkpoints: int = 0
    sealed: bool = False
    failure: Failure | None = None


@dataclass
class VerifyReport:
    """The verdict on a store: intact when no chain has a failure."""

    chains: list[ChainReport] = field(default_factory=list)
    keyed: bool = False

    @property
    def ok(self) -> bool:
        return all(c.failure is None for c in self.chains)

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chains)


def audit_key(key: str | bytes | None = None) -> bytes | None:
    """The seal key: `key` if given, else ``QLINGEST_AUDIT_KEY``, else None (unsealed)."""
    key = key if key is not None else os.environ.get(KEY_ENV)
    if not key:
        return None
    return key.encode() if isinstance(key, str) else key


def checkpoint_path(data_dir: str | Path, chain: str) -> Path:
    return Path(data_dir) / "audit" / f"checkpoints-{chain}.ndjson"


def append_checkpoint(
    data_dir: str | Path,
    chain: str,
    seq: int,
    head: str,
    file: str,
    *,
    key: bytes | None = None,
    time_ns: int | None = None,
) -> dict:
    """Appends (and fsyncs) the checkpoint of a committed `file`; sealed when `key` is given."""
    time_ns = time.time_ns() if time_ns is None else time_ns
    entry = {"chain": chain, "seq": seq, "head": head, "time_ns": time_ns, "file": file}
    entry["seal"] = seal(key, chain, seq, head, time_ns, file) if key else None
    path = checkpoint_path(data_dir, chain)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
        log.flush()
        os.fsync(log.fileno())
    return entry


def read_checkpoints(data_dir: str | Path) -> list[dict]:
    """Every checkpoint entry of the store, per chain in log order. A torn last line (a crash
    mid-append) is skipped; any other unreadable line is an error."""
    entries = []
    for path in sorted((Path(data_dir) / "audit").glob("checkpoints-*.ndjson")):
        lines = path.read_text(encoding="utf-8").split("\n")
        for n, line in enumerate(lines):
            if not line:
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                if n < len(lines) - 1:
                    raise ValueError(f"{path}:{n + 1}: unreadable checkpoint") from None
    return entries


def seal(key: bytes, chain: str, seq: int, head: str, time_ns: int, file: str) -> str:
    """Hex HMAC-SHA-256 of the JCS form of ``{chain, file, head, seq, time_ns}``."""
    message = (
        f'{{"chain":{_jcs_str(chain)},"file":{_jcs_str(file)},"head":{_jcs_str(head)},'
        f'"seq":{_jcs_int(seq)},"time_ns":{_jcs_int(time_ns)}}}'
    )
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def recover_head(data_dir: str | Path, chain: str) -> tuple[int, str] | None:
    """The (seq, hash) of the last record of `chain` in the committed files, or None."""
    last = _last_record(data_dir, chain)
    return None if last is None else (last["audit_seq"], last["audit_hash"])


def checkpoint_recovered_head(
    data_dir: str | Path, chain: str, *, key: bytes | None = None
) -> dict | None:
    """After a restart, checkpoints the recovered head if a crash came between a file's commit
    and its checkpoint; returns the entry appended, or None when the log was up to date."""
    last = _last_record(data_dir, chain)
    logged = [c["seq"] for c in read_checkpoints(data_dir) if c["chain"] == chain]
    if last is None or last["audit_seq"] <= max(logged, default=0):
        return None
    seq, head, file = last["audit_seq"], last["audit_hash"], last["source_file"]
    return append_checkpoint(data_dir, chain, seq, head, file, key=key)


def _last_record(data_dir: str | Path, chain: str) -> dict | None:
    rows = _chain_rows(data_dir)
    if "audit_chain" not in rows.columns:
        return None
    rows = rows.filter(pl.col("audit_chain") == chain)
    return None if rows.is_empty() else rows.sort("audit_seq").row(-1, named=True)


def verify(
    data_dir: str | Path,
    require_seals: bool = False,
    key: str | bytes | None = None,
    *,
    categories: tuple[str, ...] = (AUDIT_CATEGORY,),
) -> VerifyReport:
    """Recomputes every link of every chain in the store and every checkpoint seal."""
    key = audit_key(key)
    if require_seals and key is None:
        raise ValueError(f"require_seals needs a key: pass key= or set {KEY_ENV}")
    rows = _chain_rows(data_dir, categories)
    checkpoints = read_checkpoints(data_dir)
    report = VerifyReport(keyed=key is not None)
    chains = set(rows["audit_chain"].drop_nulls().unique()) | {c["chain"] for c in checkpoints}
    for chain in sorted(chains):
        mine = rows.filter(pl.col("audit_chain") == chain)
        ordered = mine.sort(["audit_seq", "source_file", "source_row"]).to_dicts()
        cps = [c for c in checkpoints if c["chain"] == chain]
        report.chains.append(_ChainWalk(chain, cps, key, require_seals).run(ordered))
    stray = _unchained_audit_row(rows, categories)
    if stray is not None:
        report.chains.append(ChainReport(chain=None, failure=stray))
    return report


def _unchained_audit_row(rows: pl.DataFrame, categories: tuple[str, ...]) -> Failure | None:
    """An audit-category row outside every chain was added after the fact."""
    stray = rows.filter(pl.col("audit_chain").is_null() & pl.col("category").is_in(categories))
    if stray.is_empty():
        return None
    row = stray.row(0, named=True)
    return Failure("inserted", 0, row["source_file"], row["source_row"], "a chained record", "null")


def _chain_rows(
    data_dir: str | Path, categories: tuple[str, ...] = (AUDIT_CATEGORY,)
) -> pl.DataFrame:
    """Every stored row that is chained or in an audit category, with its file and index."""
    root = Path(data_dir)
    frames = []
    for tier in TIERS:
        for path in sorted((root / tier).rglob("*.parquet")):
            frame = _read_file(root, path)
            if "audit_chain" not in frame.columns:
                frame = frame.with_columns(pl.lit(None, pl.String).alias("audit_chain"))
            audit = pl.col("audit_chain").is_not_null() | pl.col("category").is_in(categories)
            frames.append(frame.filter(audit))
    if not frames:
        names = ("audit_chain", "category", "source_file")
        return pl.DataFrame(schema={**dict.fromkeys(names, pl.String), "audit_seq": pl.UInt64})
    return pl.concat(frames, how="diagonal_relaxed")


def _read_file(root: Path, path: Path) -> pl.DataFrame:
    frame = pl.read_parquet(path, hive_partitioning=False).with_row_index("source_row")
    relative = path.relative_to(root).as_posix()
    if "category" not in frame.columns:
        # The partition key may live only in the path: category=<c>/...
        part = next((p for p in path.parts if p.startswith("category=")), "category=")
        frame = frame.with_columns(pl.lit(part.split("=", 1)[1]).alias("category"))
    frame = frame.with_columns(pl.lit(relative).alias("source_file"))
    times = [c for c in ("timestamp", "observed_at") if c in frame.columns]
    frame = frame.with_columns(pl.col(c).dt.epoch("ns") for c in times)
    if "level" in frame.columns:
        frame = frame.with_columns(pl.col("level").cast(pl.String))
    return frame


# Limitation: the walk below hashes in Python, about 23k records/s on the project machine; the
# engine's `Verifier` (rust/src/audit/verify.rs) implements the same algorithm at over 1M/s.
class _ChainWalk:
    """The verification algorithm of docs/audit-chain.md over one chain's rows in seq order."""

    def __init__(self, chain: str, checkpoints: list[dict], key: bytes | None, require: bool):
        self.chain, self.checkpoints, self.key, self.require = chain, checkpoints, key, require
        self.heads = {}
        self.bounds = {}
        for c in checkpoints:
            self.heads.setdefault(c["seq"], []).append(c["head"])
            self.bounds[c["file"]] = max(self.bounds.get(c["file"], 0), c["seq"])
        self.expect_seq, self.prev, self.prev_row = 1, GENESIS, None
        self.max_seq, self.records = 0, 0
        self.pending: dict | None = None
        self.failure: Failure | None = None

    def run(self, rows: list[dict]) -> ChainReport:
        for row in rows:
            if self.failure is not None:
                break
            self.max_seq = max(self.max_seq, row["audit_seq"] or 0)
            self._resolve(row) if self.pending else self._check(row)
        if self.pending and self.failure is None:
            self.failure = self.pending["failure"]
        failure = _earliest(self.failure, self._checkpoint_failure())
        sealed = self.key is not None and bool(self.checkpoints)
        sealed = sealed and not (failure and failure.kind.startswith("seal"))
        head = (self.expect_seq - 1, self.prev)
        return ChainReport(self.chain, self.records, head, len(self.checkpoints), sealed, failure)

    def _check(self, row: dict) -> None:
        seq, prev, stored = row["audit_seq"], row["audit_prev_hash"], row["audit_hash"]
        if seq is None or prev is None or stored is None:
            self.failure = _at(row, "modified", self.expect_seq, "", "null")
        elif seq < self.expect_seq:
            self.failure = _at(row, "inserted", seq, self.prev, stored)
        elif seq > self.expect_seq:
            self.failure = _at(row, "deleted", self.expect_seq, str(self.expect_seq), str(seq))
        elif prev != self.prev:
            intact = _link_hash(prev, row) == stored
            self._hold_link_failure(row, intact)
        elif (computed := _link_hash(prev, row)) != stored:
            self._hold(row, _at(row, "modified", seq, computed, stored), link=None)
        else:
            self._accept(row)

    def _hold_link_failure(self, row: dict, intact: bool) -> None:
        seq, prev = row["audit_seq"], row["audit_prev_hash"]
        if intact and seq > 1:
            # An intact record naming another predecessor proves that predecessor was changed.
            p = self.prev_row
            failure = Failure(
                "modified", seq - 1, p["source_file"], p["source_row"], prev, self.prev
            )
        else:
            failure = _at(row, "modified", seq, self.prev, prev)
        self._hold(row, failure, link=prev)

    def _hold(self, row: dict, failure: Failure, link: str | None) -> None:
        self.pending = {"failure": failure, "row": row, "expect_prev": self.prev, "link": link}

    def _resolve(self, row: dict) -> None:
        p = self.pending
        held = p["row"]
        if p["link"] is not None and row["audit_hash"] == p["link"]:
            self.failure = _at(held, "reordered", held["audit_seq"], p["expect_prev"], p["link"])
        elif (
            row["audit_seq"] == held["audit_seq"]
            and row["audit_prev_hash"] == p["expect_prev"]
            and _link_hash(p["expect_prev"], row) == row["audit_hash"]
        ):
            self.failure = _at(
                held, "inserted", held["audit_seq"], row["audit_hash"], held["audit_hash"]
            )
        elif p["link"] is None and row["audit_seq"] != held["audit_seq"]:
            self.failure = p["failure"]
        if self.failure is not None:
            self.pending = None

    def _accept(self, row: dict) -> None:
        seq, stored = row["audit_seq"], row["audit_hash"]
        for head in self.heads.get(seq, ()):
            if head != stored:
                self.failure = _at(row, "modified", seq, head, stored)
                return
        bound = self.bounds.get(row["source_file"])
        if bound is not None and seq > bound:
            self.failure = _at(row, "inserted", seq, str(bound), str(seq))
            return
        self.expect_seq, self.prev, self.prev_row = seq + 1, stored, row
        self.records += 1

    def _checkpoint_failure(self) -> Failure | None:
        first = None
        for c in self.checkpoints:
            found = self._one_checkpoint(c)
            if found is not None and (first is None or found.seq < first.seq):
                first = found
        return first or self._unsealed_tail()

    def _one_checkpoint(self, c: dict) -> Failure | None:
        at = c["seq"]
        if self.key is not None:
            if not c.get("seal"):
                return Failure("seal_missing", at, c["file"], None, "seal", "none")
            args = (c["chain"], c["seq"], c["head"], c["time_ns"], c["file"])
            if not hmac.compare_digest(seal(self.key, *args), c["seal"]):
                return Failure("seal_invalid", at, c["file"], None, "valid seal", c["seal"])
        if at > self.max_seq:
            m = self.max_seq
            return Failure("truncated", m + 1, c["file"], None, str(at), str(m))
        return None

    def _unsealed_tail(self) -> Failure | None:
        sealed = max((c["seq"] for c in self.checkpoints), default=0)
        last = self.expect_seq - 1
        if self.require and last > sealed:
            expected = f"a checkpoint at seq {last}"
            return Failure(
                "seal_missing", sealed + 1, None, None, expected, f"last checkpoint at seq {sealed}"
            )
        return None


def _earliest(a: Failure | None, b: Failure | None) -> Failure | None:
    if a is None or b is None:
        return a or b
    return b if b.seq < a.seq else a


def _at(row: dict, kind: str, seq: int, expected: str, found: str) -> Failure:
    return Failure(kind, seq, row.get("source_file"), row.get("source_row"), expected, found)


# The canonical record (RFC 8785) of a stored row: every event column except audit_hash.
_TIME = ("timestamp", "observed_at")
_FLOAT = ("revenue", "sample_rate")
_RECORD_COLUMNS = sorted(
    (
        *_TIME,
        *_FLOAT,
        "level", "category", "service", "trace_id", "span_id", "parent_span_id", "user_id",
        "session_id", "message", "stack", "fields", "feature", "cost_center", "user_tier",
        "audit_chain", "audit_seq", "audit_prev_hash",
    ),
    key=lambda k: k.encode("utf-16-be"),
)  # fmt: skip
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _link_hash(prev: str, row: dict) -> str:
    members = ",".join(f"{_jcs_str(k)}:{_jcs_value(k, row.get(k))}" for k in _RECORD_COLUMNS)
    return hashlib.sha256(prev.encode() + ("{" + members + "}").encode()).hexdigest()


def _jcs_value(column: str, value: object) -> str:
    if value is None:
        return "null"
    if column in _TIME:
        return _jcs_time(value)
    if column in _FLOAT:
        return _jcs_float(value)
    return _jcs_int(value) if column == "audit_seq" else _jcs_str(value)


def _jcs_str(s: str) -> str:
    body = "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in s)
    return f'"{body}"'


def _jcs_int(n: int) -> str:
    return str(n) if abs(n) <= _MAX_SAFE_INTEGER else f'"{n}"'


def _jcs_time(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    days, tod = divmod(secs, 86_400)
    date = _civil_from_days(days)
    return f'"{date}T{tod // 3600:02d}:{tod // 60 % 60:02d}:{tod % 60:02d}.{frac:09d}Z"'


def _civil_from_days(z: int) -> str:
    z += 719_468
    era, doe = divmod(z, 146_097)
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day, month = doy - (153 * mp + 2) // 5 + 1, mp + 3 if mp < 10 else mp - 9
    return f"{yoe + era * 400 + (month <= 2):04d}-{month:02d}-{day:02d}"


def _jcs_float(f: float) -> str:
    if f != f or f in (float("inf"), float("-inf")):
        return '"NaN"' if f != f else ('"Infinity"' if f > 0 else '"-Infinity"')
    if f == 0:
        return "0"
    mantissa, _, exp = repr(abs(f)).partition("e")
    whole, _, frac = mantissa.partition(".")
    raw = whole + frac
    n = len(whole) + int(exp or 0) - (len(raw) - len(raw.lstrip("0")))
    digits = raw.strip("0")
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        rest = "." + digits[1:] if k > 1 else ""
        body = f"{digits[0]}{rest}e{'+' if n > 1 else '-'}{abs(n - 1)}"
    return ("-" if f < 0 else "") + body
