"""A plain-Python reference of the audit chain, written from docs/audit-chain.md alone.

It shares no code with qlingest: the canonical record (RFC 8785 over the event columns), the
SHA-256 links, the seals and a link-by-link check use only ``hashlib``, ``hmac`` and ``json``.
Rows are dicts of stored values: timestamps as int nanoseconds, the level as its name, strings,
floats, ints or None.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

GENESIS = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1

# Every event column except audit_hash, with the JSON form of its values.
RECORD_COLUMNS = {
    "timestamp": "time",
    "observed_at": "time",
    "level": "text",
    "category": "text",
    "service": "text",
    "trace_id": "text",
    "span_id": "text",
    "parent_span_id": "text",
    "user_id": "text",
    "session_id": "text",
    "message": "text",
    "stack": "text",
    "feature": "text",
    "cost_center": "text",
    "user_tier": "text",
    "fields": "text",
    "revenue": "float",
    "sample_rate": "float",
    "audit_chain": "text",
    "audit_seq": "int",
    "audit_prev_hash": "text",
}


def utf16_key(key: str) -> bytes:
    """Sort key comparing strings by UTF-16 code units."""
    return key.encode("utf-16-be")


def jcs_string(s: str) -> str:
    out = ['"']
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
    short["\r"] = "\\r"
    for ch in s:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs_float(f: float) -> str:
    """ECMAScript Number.prototype.toString of a double; non-finite values as strings."""
    if f != f:
        return '"NaN"'
    if f in (float("inf"), float("-inf")):
        return '"Infinity"' if f > 0 else '"-Infinity"'
    if f == 0:
        return "0"
    sign = "-" if f < 0 else ""
    # repr gives the shortest round-tripping digits, as ECMAScript requires.
    mantissa, _, exp = repr(abs(f)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    n = len(whole) + int(exp or 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        body = (
            digits[0]
            + ("." + digits[1:] if k > 1 else "")
            + ("e+" if e > 0 else "e-")
            + str(abs(e))
        )
    return sign + body


def jcs_int(n: int) -> str:
    return str(n) if abs(n) <= MAX_SAFE_INTEGER else f'"{n}"'


def jcs_time(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    t = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=secs)
    return f'"{t:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"'


def jcs_value(kind: str, value: object) -> str:
    if value is None:
        return "null"
    encode = {"time": jcs_time, "text": jcs_string, "float": jcs_float, "int": jcs_int}[kind]
    return encode(value)  # type: ignore[operator]


def canonical(row: dict) -> bytes:
    """The canonical record of a stored row: every record column, null when missing."""
    members = [
        jcs_string(name) + ":" + jcs_value(kind, row.get(name))
        for name, kind in sorted(RECORD_COLUMNS.items(), key=lambda kv: utf16_key(kv[0]))
    ]
    return ("{" + ",".join(members) + "}").encode("utf-8")


def link_hash(prev_hash: str, row: dict) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(row)).hexdigest()


def chain(rows: list[dict], chain_id: str, head: tuple[int, str] = (0, GENESIS)) -> list[dict]:
    """Returns copies of `rows` with the four audit fields filled, in order."""
    seq, prev = head
    out = []
    for row in rows:
        seq += 1
        linked = dict(row, audit_chain=chain_id, audit_seq=seq, audit_prev_hash=prev)
        linked["audit_hash"] = prev = link_hash(prev, linked)
        out.append(linked)
    return out


def seal_message(chain_id: str, seq: int, head: str, time_ns: int, file: str) -> bytes:
    obj = {"chain": chain_id, "file": file, "head": head, "seq": seq, "time_ns": time_ns}
    members = []
    for key in sorted(obj, key=utf16_key):
        value = obj[key]
        members.append(
            jcs_string(key)
            + ":"
            + (jcs_int(value) if isinstance(value, int) else jcs_string(value))
        )
    return ("{" + ",".join(members) + "}").encode("utf-8")


def seal(key: bytes, chain_id: str, seq: int, head: str, time_ns: int, file: str) -> str:
    message = seal_message(chain_id, seq, head, time_ns, file)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def first_broken_link(rows: list[dict]) -> int | None:
    """Index of the first row, in seq order, whose seq, link or hash is wrong; None if intact."""
    prev, expect = GENESIS, 1
    for i, row in enumerate(sorted(rows, key=lambda r: r["audit_seq"])):
        ok = row["audit_seq"] == expect and row["audit_prev_hash"] == prev
        if not ok or link_hash(prev, row) != row["audit_hash"]:
            return i
        prev, expect = row["audit_hash"], expect + 1
    return None


def rows_from_frame(frame) -> list[dict]:
    """Stored rows of a Polars frame as reference dicts (timestamps as int nanoseconds)."""
    import polars as pl

    times = [c for c in ("timestamp", "observed_at") if c in frame.columns]
    frame = frame.with_columns(pl.col(c).dt.epoch("ns") for c in times)
    if "level" in frame.columns:
        frame = frame.with_columns(pl.col("level").cast(pl.String))
    return frame.to_dicts()


if __name__ == "__main__":
    print(json.dumps(seal_message("w0", 1, GENESIS, 0, "f")))
