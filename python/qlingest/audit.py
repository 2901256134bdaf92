"""The audit checkpoint log and store verification (see docs/audit-chain.md).

The pipeline calls :func:`append_checkpoint` after each committed file; :func:`verify` gathers
every chain's records from the stored Parquet files, orders them by ``audit_seq`` and checks
each link and each checkpoint.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

import polars as pl

from qlingest import _core
from qlingest.exceptions import ConfigError, first_line
from qlingest.store import WRITER_ID, data_root, parquet_files

GENESIS = "0" * 64
AUDIT_CATEGORY = "security.audit_logs"
KEY_ENV = "QLINGEST_AUDIT_KEY"
TIERS = ("hot", "warm", "cold")
log = logging.getLogger("qlingest.audit")
_MAX_SAFE_INTEGER = 2**53 - 1
# The columns of a stored file (docs/audit-chain.md §2.1): the record's 21 and its hash.
EVENT_COLUMNS = (
    "timestamp",
    "observed_at",
    "level",
    "category",
    "service",
    "trace_id",
    "span_id",
    "parent_span_id",
    "user_id",
    "session_id",
    "message",
    "stack",
    "feature",
    "cost_center",
    "user_tier",
    "fields",
    "revenue",
    "sample_rate",
    "audit_chain",
    "audit_seq",
    "audit_prev_hash",
    "audit_hash",
)
# What verification adds to each row read: its place in the store.
_PLACE_COLUMNS = ("source_file", "source_row")


@dataclass(frozen=True)
class Failure:
    """The first failure of a chain: where it breaks, what was expected and what was found.

    ``origin`` says what ``file`` and ``row`` point at: ``record`` (a stored row), ``file`` (a
    stored file as a whole), ``directory`` (a directory of the store that cannot be listed),
    ``checkpoint`` (the checkpoint entry of ``file``), ``checkpoint log`` (the log itself:
    ``file`` is the log and ``row`` its 0-based line, or None when the whole log cannot be
    read; both None when the log is behind the records) or ``anchor`` (the head kept outside
    the store)."""

    kind: str
    seq: int
    file: str | None
    row: int | None
    expected: str
    found: str
    origin: str = "record"


@dataclass
class ChainReport:
    """The verdict on one chain."""

    chain: str | None
    records: int = 0
    head: tuple[int, str] = (0, GENESIS)
    checkpoints: int = 0
    sealed: bool = False
    failure: Failure | None = None
    # Records past the last checkpoint of a writer that still runs: not yet sealed.
    pending: int = 0
    #: The chain's checkpoints carry seals, which were not checked for want of a key.
    seals_unchecked: bool = False


@dataclass
class VerifyReport:
    """The verdict on a store: intact when no chain has a failure."""

    chains: list[ChainReport] = field(default_factory=list)
    keyed: bool = False
    #: A seal failed and no seal of the store verifies under the key given: most likely a
    #: wrong or rotated key (or every seal was rewritten).
    wrong_key: bool = False

    @property
    def ok(self) -> bool:
        return all(c.failure is None for c in self.chains)

    @property
    def unreadable(self) -> bool:
        """Whether every failure is of something that could not be read: the store was not
        verified in full, which says nothing of tampering."""
        failures = [c.failure for c in self.chains if c.failure is not None]
        return bool(failures) and all(f.kind == "unreadable" for f in failures)

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
    line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
    with open(path, "ab+") as log:
        _end_last_line(log)
        log.write(line.encode())
        log.flush()
        os.fsync(log.fileno())
    return entry


def _end_last_line(log: BinaryIO) -> None:
    """A crash mid-append leaves a last line without its newline. A whole entry gets its
    newline; a torn one, which readers skip, is cut: either way the next entry starts a line
    of its own instead of joining the torn bytes into a line no reader can take."""
    size = log.seek(0, os.SEEK_END)
    if size == 0:
        return
    log.seek(size - 1)
    if log.read(1) == b"\n":
        return
    log.seek(0)
    data = log.read()
    start = data.rfind(b"\n") + 1
    if _checkpoint_entry(data[start:]) is not None:
        log.write(b"\n")
    else:
        log.truncate(start)


def read_checkpoints(data_dir: str | Path) -> list[dict]:
    """Every checkpoint entry of the store, per chain in log order. A torn last line (a crash
    mid-append) is skipped; any other unreadable line is an error."""
    entries, unreadable = _read_checkpoint_log(data_dir)
    if unreadable:
        _, bad = unreadable[0]
        if bad.row is None:
            raise ValueError(f"{Path(data_dir) / bad.file}: cannot be read: {bad.found}")
        raise ValueError(f"{Path(data_dir) / bad.file}:{bad.row + 1}: unreadable checkpoint")
    return entries


def _read_checkpoint_log(data_dir: str | Path) -> tuple[list[dict], list[tuple[str, Failure]]]:
    """The readable checkpoint entries, and (chain, ``unreadable`` failure) for each log line
    that is not one (a torn last line, from a crash mid-append, is no failure and is skipped)."""
    root = Path(data_dir)
    entries, unreadable = [], []
    for path in sorted((root / "audit").glob("checkpoints-*.ndjson")):
        chain = path.name.removeprefix("checkpoints-").removesuffix(".ndjson")
        log = path.relative_to(root).as_posix()
        try:
            lines = path.read_bytes().split(b"\n")
        except OSError as e:
            reason = e.strerror or first_line(e)
            where = {"file": log, "row": None, "origin": "checkpoint log"}
            unreadable.append(
                (chain, Failure("unreadable", 1, **where, expected=_LOG, found=reason))
            )
            continue
        last_seq = 0
        for n, line in enumerate(lines):
            if not line:
                continue
            entry = _checkpoint_entry(line)
            if entry is not None:
                entries.append(entry)
                last_seq = entry["seq"]
            elif n < len(lines) - 1:
                found = f"line {n + 1}: {line[:80].decode('utf-8', 'replace')!r}"
                where = {"file": log, "row": n, "origin": "checkpoint log"}
                failure = Failure("unreadable", last_seq + 1, **where, expected=_ENTRY, found=found)
                unreadable.append((chain, failure))
    return entries, unreadable


_ENTRY = "a checkpoint entry"
_LOG = "a readable checkpoint log"
_CHECKPOINT_TYPES = {"chain": str, "seq": int, "head": str, "time_ns": int, "file": str}


def _checkpoint_entry(line: bytes) -> dict | None:
    """The checkpoint entry on a log line, or None when the line is not a well-formed one."""
    try:
        entry = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(entry, dict):
        return None
    for name, kind in _CHECKPOINT_TYPES.items():
        value = entry.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return None
    if not (0 <= entry["seq"] < 2**64 and -(2**63) <= entry["time_ns"] < 2**63):
        return None
    return entry if entry.get("seal") is None or isinstance(entry["seal"], str) else None


def seal(key: bytes, chain: str, seq: int, head: str, time_ns: int, file: str) -> str:
    """Hex HMAC-SHA-256 of the JCS form of ``{chain, file, head, seq, time_ns}``."""
    message = (
        f'{{"chain":{_jcs_str(chain)},"file":{_jcs_str(file)},"head":{_jcs_str(head)},'
        f'"seq":{_jcs_int(seq)},"time_ns":{_jcs_int(time_ns)}}}'
    )
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def recover_head(data_dir: str | Path, chain: str) -> tuple[int, str] | None:
    """The (seq, hash) of the last record of `chain` in the committed files, or None."""
    last, _ = _last_record(data_dir, chain)
    return None if last is None else (last["audit_seq"], last["audit_hash"])


def start_head(
    data_dir: str | Path, chain: str, *, key: bytes | None = None
) -> tuple[int, str] | None:
    """The head a restarting writer continues from: its last committed record (checkpointed
    first when a crash came between that file's commit and its checkpoint).

    When a file of the chain cannot be read and the log holds a checkpoint beyond every record
    read, the chain continues from that checkpoint instead: the damaged file's records keep
    their seqs, so no seq is issued twice, and a verifier still reports the file (unreadable),
    or, once it is removed, its records as deleted."""
    last, skipped = _last_record(data_dir, chain)
    entries, unreadable = _read_checkpoint_log(data_dir)
    for _, bad in unreadable:
        # Verification reports the line; what the writer needs is the newest entry.
        at = f"{bad.file} line {bad.row + 1}" if bad.row is not None else bad.file
        log.warning("Skipped unreadable checkpoint: %s.", at)
    logged = [c for c in entries if c["chain"] == chain]
    newest = max(logged, key=lambda c: c["seq"], default=None)
    read = None if last is None else (last["audit_seq"], last["audit_hash"])
    if read is not None and (newest is None or read[0] > newest["seq"]):
        append_checkpoint(data_dir, chain, *read, last["source_file"], key=key)
        return read
    if skipped and newest is not None and newest["seq"] > (read or (0,))[0]:
        # Limitation: records of a damaged file past the newest checkpoint (a crash between
        # its commit and its checkpoint, then damage) are unknown, and their seqs are issued
        # again; verification reports the file for as long as it is there.
        log.warning(
            "Audit chain %s continues from its checkpoint at seq %d (%s): the records read "
            "end at seq %d, the rest are in unreadable files.",
            chain, newest["seq"], newest["file"], (read or (0,))[0],
        )  # fmt: skip
        return newest["seq"], newest["head"]
    return read


def _last_record(data_dir: str | Path, chain: str) -> tuple[dict | None, list[Path]]:
    """The chain's last record, read from the footers and three columns of the writer's files,
    and the files left out because they cannot be read (each named in a warning)."""
    root = Path(data_dir)
    files = [p for tier in TIERS for p in (root / tier).rglob(f"part-{chain}-*.parquet")]
    if not files:
        return None, []
    try:
        frame, skipped = _tail_record(files, chain), []
    except (OSError, pl.exceptions.PolarsError):
        # One damaged file fails a scan of them all: read them one at a time, without it.
        parts, skipped = [], []
        for path in sorted(files):
            try:
                parts.append(_tail_record([path], chain))
            except (OSError, pl.exceptions.PolarsError) as e:
                log.warning("Skipped unreadable file %s: %s", path, first_line(e))
                skipped.append(path)
        if not parts:
            return None, skipped
        frame = pl.concat(parts, how="vertical_relaxed").sort("audit_seq").tail(1)
    if frame.is_empty():
        return None, skipped
    row = frame.row(0, named=True)
    row["source_file"] = Path(row["source_file"]).relative_to(root).as_posix()
    return row, skipped


def _tail_record(files: list[Path], chain: str) -> pl.DataFrame:
    return (
        pl.scan_parquet(files, hive_partitioning=False, include_file_paths="source_file")
        .select("audit_chain", "audit_seq", "audit_hash", "source_file")
        .filter(pl.col("audit_chain") == chain)
        .sort("audit_seq")
        .tail(1)
        .collect()
    )


def check_key(data_dir: str | Path, key: bytes | None) -> None:
    """Refuses (ConfigError) a key that does not verify the newest sealed checkpoint of each
    chain, or no key for a sealed store: writing on would seal with a key under which the
    store's older seals fail, so no single key could ever verify the store again."""
    newest: dict[str, dict] = {}
    for entry in _read_checkpoint_log(data_dir)[0]:
        newest[entry["chain"]] = entry
    for chain, entry in sorted(newest.items()):
        if entry.get("seal") is None:
            continue
        where = f"the newest checkpoint of chain {chain!r} (seq {entry['seq']})"
        if key is None:
            raise ConfigError(
                f"audit: {where} is sealed but no audit key is set: set {KEY_ENV} or audit.key "
                "to the key that sealed this store"
            )
        args = (entry["chain"], entry["seq"], entry["head"], entry["time_ns"], entry["file"])
        if not hmac.compare_digest(seal(key, *args).encode(), entry["seal"].encode()):
            raise ConfigError(
                f"audit: {where} does not verify under the configured audit key: a wrong key, "
                "or a rotated one; use the key that sealed this store (a new key needs a new "
                "data directory)"
            )


class ChainWriter:
    """Chains each file's audit rows just before it is committed, and checkpoints the head
    after. The chain continues from the committed files, which are the truth."""

    def __init__(self, data_dir: str | Path, chain: str, *, config_json: str, key: bytes | None):
        self.root = Path(data_dir)
        self.chain_id = chain
        self.key = key
        check_key(self.root, key)
        head = start_head(self.root, chain, key=key)
        self._chain = _core.AuditChain(chain, head, config_json=config_json)

    def chain(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
        """The frame with its audit columns filled; whether it holds audit rows."""
        before = self._chain.head[0]
        chained = pl.DataFrame(self._chain.append(frame))
        if "level" in chained.columns:
            chained = chained.with_columns(pl.col("level").cast(frame.schema["level"]))
        return chained, self._chain.head[0] != before

    def committed(self, path: Path) -> None:
        """Records the checkpoint of a committed file that holds audit rows."""
        seq, head = self._chain.head
        append_checkpoint(
            self.root,
            self.chain_id,
            seq,
            head,
            path.relative_to(self.root).as_posix(),
            key=self.key,
        )


def verify(
    data_dir: str | Path,
    require_seals: bool = False,
    key: str | bytes | None = None,
    *,
    categories: tuple[str, ...] = (AUDIT_CATEGORY,),
    anchor: dict[str, tuple[int, str]] | None = None,
) -> VerifyReport:
    """Recomputes every link of every chain in the store and every checkpoint seal; with an
    ``anchor`` (heads from an earlier verification, kept outside the store) also checks that
    each anchored head is still in its chain, which reveals a cut of files and log together."""
    key = audit_key(key)
    if require_seals and key is None:
        raise ValueError(f"require_seals needs a key: pass key= or set {KEY_ENV}")
    report = VerifyReport(keyed=key is not None)
    walk = _StoreWalk(data_root(data_dir), categories, key, require_seals, anchor or {})
    broken = [(f, why) for f, why in unreadable_files(data_dir) if not walk.passed_over(f, why)]
    try:
        if not broken:
            walk.run()
    except _UnreadableFile as e:
        # A footer that reads can still front a damaged page, found only when rows are read.
        broken = [e.args]
    if broken:
        for file, reason in broken:
            expected, origin = _unreadable(file)
            failure = Failure("unreadable", 0, file, None, expected, reason, origin)
            report.chains.append(ChainReport(chain=None, failure=failure))
        return report
    report.chains.extend(walk.reports())
    seal_failed = any(c.failure and c.failure.kind == "seal_invalid" for c in report.chains)
    report.wrong_key = key is not None and seal_failed and not _any_seal_verifies(data_dir, key)
    return report


def _any_seal_verifies(data_dir: str | Path, key: bytes) -> bool:
    """Whether some sealed checkpoint of the store verifies under ``key``."""
    for entry in _read_checkpoint_log(data_dir)[0]:
        if entry.get("seal") is None:
            continue
        args = (entry["chain"], entry["seq"], entry["head"], entry["time_ns"], entry["file"])
        if hmac.compare_digest(seal(key, *args).encode(), entry["seal"].encode()):
            return True
    return False


def _unreadable(relative: str) -> tuple[str, str]:
    """What was expected of an unreadable path of the store, and the failure's origin."""
    if relative.endswith("/"):
        return "a directory that can be listed", "directory"
    if relative.endswith(".ndjson"):
        return _LOG, "checkpoint log"
    return "a readable Parquet file", "file"


class _UnreadableFile(Exception):
    """A stored file whose rows cannot be read: (its path in the store, the reason)."""


class _StoreWalk:
    """One pass over the store, one file at a time: each file's audit rows go, per chain and in
    seq order, to that chain's verifier in the core. Files are visited in each writer's commit
    order, which is chain order, so memory is that of one file; rows out of place show up as
    links out of order, and rows of a copied file as inserted."""

    def __init__(self, root: Path, categories, key, require_seals, anchor) -> None:
        self.root, self.categories, self.key, self.require = root, categories, key, require_seals
        self.anchor = anchor
        self.anchored: dict[str, dict] = {}
        self.checkpoints: dict[str, list[str]] = {}
        entries, unreadable = _read_checkpoint_log(root)
        for entry in entries:
            self.checkpoints.setdefault(entry["chain"], []).append(json.dumps(entry))
        self.log_failures: dict[str, Failure] = {}
        for chain, failure in unreadable:
            self.log_failures.setdefault(chain, failure)
        self.verifiers: dict[str, _core.ChainVerifier] = {}
        # Store-level failures outside any chain, the first of each kind of check.
        self.stray: dict[str, Failure] = {}
        self.checkpointed = {entry["file"] for entry in entries}
        #: Unreadable files that cannot hold audit records, named in a warning and not read.
        self.passed: set[str] = set()

    def passed_over(self, relative: str, reason: str) -> bool:
        """Whether an unreadable file is left out with a warning: it lies in a category that
        is not an audit category and no checkpoint names it, so it holds no committed audit
        record (a file with chained rows is checkpointed when committed)."""
        category = _path_category(Path(relative))
        if relative.endswith("/") or category is None or category in self.categories:
            return False
        if relative in self.checkpointed:
            return False
        log.warning("Skipped unreadable file %s (not an audit file): %s", relative, reason)
        self.passed.add(relative)
        return True

    def _verifier(self, chain: str) -> _core.ChainVerifier:
        if chain not in self.verifiers:
            cps = self.checkpoints.get(chain, [])
            live = writer_is_live(self.root, chain)
            self.verifiers[chain] = _core.ChainVerifier(
                chain, cps, key=self.key, require_seals=self.require, live=live
            )
        return self.verifiers[chain]

    def run(self) -> None:
        for path in _files_in_commit_order(self.root):
            relative = path.relative_to(self.root).as_posix()
            if relative in self.passed:
                continue
            try:
                frame, misplaced = _read_file(self.root, path)
            except (OSError, pl.exceptions.PolarsError) as e:
                if self.passed_over(relative, first_line(e)):
                    continue
                raise _UnreadableFile(relative, first_line(e)) from None
            for check, failure in misplaced.items():
                self.stray.setdefault(check, failure)
            if "audit_chain" not in frame.columns:
                frame = frame.with_columns(pl.lit(None, pl.String).alias("audit_chain"))
            chained = pl.col("audit_chain").is_not_null()
            if "unchained" not in self.stray:
                unchained = _unchained_audit_row(frame, self.categories)
                if unchained is not None:
                    self.stray["unchained"] = unchained
            rows = frame.filter(chained)
            if rows.is_empty():
                continue
            for (chain,), part in rows.partition_by("audit_chain", as_dict=True).items():
                part = part.sort("audit_seq", maintain_order=True)
                self._verifier(chain).push(part)
                self._note_anchor(chain, part)

    def _note_anchor(self, chain: str, part: pl.DataFrame) -> None:
        if chain in self.anchor:
            seq = self.anchor[chain][0]
            hit = part.filter(pl.col("audit_seq") == seq)
            if not hit.is_empty():
                self.anchored[chain] = hit.row(0, named=True)

    def reports(self) -> list[ChainReport]:
        chains = set(self.verifiers) | set(self.checkpoints) | set(self.anchor)
        chains |= set(self.log_failures)
        reports = []
        for chain in sorted(chains):
            report = _chain_report(json.loads(self._verifier(chain).finish()))
            cps = self.checkpoints.get(chain, [])
            report.seals_unchecked = self.key is None and any(
                json.loads(cp).get("seal") is not None for cp in cps
            )
            for failure in (self._anchor_failure(chain), self.log_failures.get(chain)):
                if failure is not None and (
                    report.failure is None or failure.seq < report.failure.seq
                ):
                    report.failure = failure
            reports.append(report)
        reports.extend(ChainReport(chain=None, failure=f) for f in self.stray.values())
        return reports

    def _anchor_failure(self, chain: str) -> Failure | None:
        if chain not in self.anchor:
            return None
        seq, head = self.anchor[chain]
        row = self.anchored.get(chain)
        if row is None:
            return Failure("truncated", seq, None, None, head, "no record", "anchor")
        if row["audit_hash"] != head:
            file, found = row["source_file"], row["audit_hash"]
            return Failure("modified", seq, file, row["source_row"], head, found, "anchor")
        return None


def _files_in_commit_order(root: Path) -> list[Path]:
    """Every stored Parquet file, by writer and then by the writer's file number."""

    def order(path: Path) -> tuple:
        m = _PART_NAME.match(path.name)
        return (0, m["writer"], int(m["seq"]), "") if m else (1, "", 0, path.as_posix())

    return sorted(_parquet_files(root), key=order)


def _parquet_files(root: Path) -> list[Path]:
    """Every Parquet file under the data directory, whatever the directory: queries read them
    all (``<data-dir>/**/*.parquet``), so verification does too."""
    return parquet_files(root)[0]


def writer_is_live(data_dir: str | Path, chain: str) -> bool:
    """Whether a process holds the writer lock ``writers/<chain>.lock`` (a running ingest).
    A chain id that is no writer id (``/tmp/x``, ``./w0``) names no lock of the store's, so
    its writer is never live, whatever lock that path would lead to."""
    if not WRITER_ID.fullmatch(chain):
        return False
    try:
        fd = os.open(Path(data_dir) / "writers" / f"{chain}.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        # Limitation: the shared lock is held for a moment; a writer claiming this id in that
        # moment finds it busy (it then takes another id, or fails when the id is configured).
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


_PART_NAME = re.compile(r"^part-(?P<writer>[A-Za-z0-9_.-]+)-(?P<seq>\d+)\.parquet$")


def read_anchor(path: str | Path) -> dict[str, tuple[int, str]]:
    """The anchor file's heads (``{"<chain>": [seq, head], ...}``); an absent file is an empty
    anchor. Anything else malformed is a ValueError naming the file."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"anchor {path}: cannot read it: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"anchor {path}: expected an object of chain heads")
    heads = {}
    for chain, value in data.items():
        ok = isinstance(value, list) and len(value) == 2
        seq, head = value if ok else (None, None)
        ok = ok and type(seq) is int and seq >= 1 and isinstance(head, str)
        if not ok or not re.fullmatch(r"[0-9a-f]{64}", head):
            raise ValueError(f"anchor {path}: chain {chain!r} needs [seq >= 1, 64 lower-case hex]")
        heads[chain] = (seq, head)
    return heads


def write_anchor(path: str | Path, report: VerifyReport) -> None:
    """Records each verified chain's head, written aside and renamed into place; the file keeps
    its permissions."""
    path = Path(path)
    heads = {c.chain: list(c.head) for c in report.chains if c.chain and c.records}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(heads, sort_keys=True) + "\n")
    if path.exists():
        os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)


def _chain_report(raw: dict) -> ChainReport:
    failure = raw["failure"]
    if failure is not None:
        fields = {k: failure[k] for k in Failure.__dataclass_fields__ if k != "origin"}
        failure = Failure(**fields, origin=_origin(failure))
    head = (raw["head"][0], raw["head"][1])
    return ChainReport(
        raw["chain"],
        raw["records"],
        head,
        raw["checkpoints"],
        raw["sealed"],
        failure,
        raw["pending"],
    )


def _origin(failure: dict) -> str:
    """What a core failure's place points at: a row, a file's checkpoint or the log."""
    if failure["row"] is not None:
        return "record"
    return "checkpoint" if failure["file"] is not None else "checkpoint log"


def _unchained_audit_row(rows: pl.DataFrame, categories: tuple[str, ...]) -> Failure | None:
    """An audit-category row outside every chain was added after the fact."""
    stray = rows.filter(pl.col("audit_chain").is_null() & pl.col("category").is_in(categories))
    if stray.is_empty():
        return None
    row = stray.row(0, named=True)
    file, at = row["source_file"], row["source_row"]
    return Failure("inserted", 0, file, at, "a chained record", "a record with no chain fields")


def unreadable_files(data_dir: str | Path) -> list[tuple[str, str]]:
    """Stored files that are not readable Parquet, checkpoint logs that cannot be opened and
    directories that cannot be listed (their paths ending in ``/``), with the reason: a store
    with one is not verified, whatever its chains say."""
    root = Path(data_dir)
    files, unlisted = parquet_files(root)
    bad = [(f"{d.relative_to(root).as_posix()}/", reason) for d, reason in unlisted]
    for log in sorted((root / "audit").glob("checkpoints-*.ndjson")):
        try:
            with open(log, "rb"):
                pass
        except OSError as e:
            bad.append((log.relative_to(root).as_posix(), e.strerror or first_line(e)))
    for path in files:
        try:
            pl.read_parquet_schema(path)
        except Exception as e:
            bad.append((path.relative_to(root).as_posix(), first_line(e)))
    return bad


def _read_file(root: Path, path: Path) -> tuple[pl.DataFrame, dict[str, Failure]]:
    """The file's rows with their place, and their category as queries see it: the path's
    ``category=`` partition wins over the column. A column that disagrees with the path, a
    timestamp outside the path's ``date=`` and ``hour=``, or a column beyond the event columns
    is a ``modified`` failure, by check (the file was moved or forged, or holds what no record
    proves)."""
    frame = pl.read_parquet(path, hive_partitioning=False).with_row_index("source_row")
    relative = path.relative_to(root).as_posix()
    frame = frame.with_columns(pl.lit(relative).alias("source_file"))
    category = _path_category(path.relative_to(root))
    misplaced = None
    if category is not None:
        if "category" in frame.columns:
            misplaced = _category_mismatch(frame, category)
        # A column that agrees with the path is kept as stored: hashing reads it faster.
        if misplaced is not None or "category" not in frame.columns:
            frame = frame.with_columns(pl.lit(category, pl.String).alias("category"))
    if "level" in frame.columns:
        frame = frame.with_columns(pl.col("level").cast(pl.String))
    checks = {
        "category": misplaced,
        "hour": _hour_mismatch(frame, path.relative_to(root)),
        "columns": _extra_column(frame),
    }
    return frame, {check: f for check, f in checks.items() if f is not None}


def _path_category(relative: Path) -> str | None:
    """The hive partition value ``category=<c>`` of a stored file's path, %-decoded as the
    store encodes it (the innermost one when several), or None."""
    parts = [p for p in relative.parent.parts if p.startswith("category=")]
    return unquote(parts[-1].split("=", 1)[1]) if parts else None


def _hour_mismatch(frame: pl.DataFrame, relative: Path) -> Failure | None:
    """The first row whose timestamp lies outside the path's ``date=`` and ``hour=`` partition
    (UTC): the store files each row by its timestamp, so the file was moved to another hour."""
    keys = dict(p.split("=", 1) for p in relative.parent.parts if p[:5] in ("date=", "hour="))
    if not keys or "timestamp" not in frame.columns:
        return None
    formats = {"date": "%Y-%m-%d", "hour": "%H"}
    stamped = frame.with_columns(
        pl.col("timestamp").dt.convert_time_zone("UTC").dt.strftime(formats[k]).alias(f"_{k}")
        for k in keys
    )
    wrong = pl.any_horizontal(pl.col(f"_{k}").ne_missing(unquote(v)) for k, v in keys.items())
    differs = stamped.filter(wrong)
    if differs.is_empty():
        return None
    row = differs.row(0, named=True)
    expected = ", ".join(f"{k} {unquote(v)!r}" for k, v in keys.items()) + " (from the path)"
    found = ", ".join(f"{k} {row['_' + k]!r}" for k in keys) + " (from the timestamp)"
    seq = row.get("audit_seq") or 0
    return Failure("modified", seq, row["source_file"], row["source_row"], expected, found)


def _extra_column(frame: pl.DataFrame) -> Failure | None:
    """A column beyond the event columns in a file that holds chained records: no record
    covers it, so whatever it says is unproven, and it is reported as ``modified``."""
    extra = [c for c in frame.columns if c not in EVENT_COLUMNS and c not in _PLACE_COLUMNS]
    if not extra or "audit_chain" not in frame.columns:
        return None
    chained = frame.filter(pl.col("audit_chain").is_not_null())
    if chained.is_empty():
        return None
    row = chained.row(0, named=True)
    found = "extra column " + ", ".join(repr(c) for c in extra)
    seq = row.get("audit_seq") or 0
    where = (row["source_file"], row["source_row"])
    return Failure("modified", seq, *where, "the event columns only", found)


def _category_mismatch(frame: pl.DataFrame, category: str) -> Failure | None:
    differs = frame.filter(pl.col("category").cast(pl.String).ne_missing(category))
    if differs.is_empty():
        return None
    row = differs.row(0, named=True)
    seq = row.get("audit_seq") or 0
    expected = f"category {category!r} (from the path)"
    found = f"category {row['category']!r}"
    return Failure("modified", seq, row["source_file"], row["source_row"], expected, found)


# JCS (RFC 8785) strings and integers, for the seal message of a checkpoint.
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _jcs_str(s: str) -> str:
    body = "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in s)
    return f'"{body}"'


def _jcs_int(n: int) -> str:
    return str(n) if abs(n) <= _MAX_SAFE_INTEGER else f'"{n}"'
