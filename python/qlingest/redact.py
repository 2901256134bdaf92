"""Redaction on its own: the same engine the pipeline runs, for strings and frames."""

from __future__ import annotations

import functools
import logging

import polars as pl

from qlingest import _core
from qlingest.config import RedactionConfig

__all__ = ["RedactingFilter", "Redactor", "redact_message"]


class Redactor:
    """Built once from a :class:`RedactionConfig` (the built-in rules by default), used many
    times. ``counts`` accumulates redactions per rule over every call."""

    def __init__(self, rules: RedactionConfig | None = None) -> None:
        config = rules or RedactionConfig()
        self._core = _core.Redactor(config.core_json() or "{}")
        self.counts: dict[str, int] = dict.fromkeys(self._core.rule_names, 0)

    def _count(self, counts: list[int]) -> None:
        for name, n in zip(self._core.rule_names, counts, strict=True):
            self.counts[name] += n

    def redact(self, data: str | list[str] | pl.DataFrame) -> str | list[str] | pl.DataFrame:
        """A redacted copy of a string, of a list of strings, or of a frame.

        In a frame every text is redacted (JSON text is walked, so key rules apply inside it):
        string columns, categorical and enum columns (returned as strings, since a marker is
        not one of their categories), and strings inside list and struct columns at any depth.
        Binary columns are returned unchanged: their bytes are not known to be text.
        """
        if isinstance(data, str):
            return self.redact([data])[0]
        if isinstance(data, pl.DataFrame):
            return self._redact_frame(data)
        if isinstance(data, bytes | bytearray) or not all(isinstance(t, str) for t in data):
            raise TypeError("Redactor.redact takes a str, a list of str or a polars DataFrame")
        texts, counts = self._core.redact_texts(list(data))
        self._count(counts)
        return texts

    def _redact_frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        frame = frame.with_columns(pl.col(pl.Categorical, pl.Enum).cast(pl.String)).with_columns(
            self._redact_nested(frame[c]) for c in frame.columns if _nested(frame[c])
        )
        batches, counts = self._core.redact_frame(frame)
        self._count(counts)
        return pl.DataFrame(batches)

    def _redact_nested(self, series: pl.Series) -> pl.Series:
        """A list or struct column with the strings inside it redacted, same shape."""
        if isinstance(series.dtype, pl.Struct):
            fields = series.struct.unnest()
            return self._redact_frame(fields).to_struct(series.name)
        # Limitation: list columns go through Python objects, so they are slow on large frames.
        values = series.to_list()
        flat = [t for row in values if row is not None for t in row]
        inner = pl.Series(flat, dtype=series.dtype.inner)
        done = iter(self._redact_frame(inner.to_frame("v"))["v"].to_list())
        rebuilt = [None if row is None else [next(done) for _ in row] for row in values]
        return pl.Series(series.name, rebuilt)


def _nested(series: pl.Series) -> bool:
    """Whether ``series`` is a list or struct column that may hold text."""
    return isinstance(series.dtype, pl.List | pl.Array | pl.Struct)


def redact_message(text: str) -> str:
    """One of qlingest's own messages (an error, a warning, a log line) with the built-in
    rules applied: a path, a URL or an excerpt of input in it can hold a secret. Keyed-hash
    rules mask here, since the message is for people, not for joins. Lone surrogates (the
    bytes of a file name that are not UTF-8, as Python holds them) come out as escapes:
    ``\\xff`` for such a byte, ``\\udXXX`` for any other."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode()
    return _message_redactor().redact_texts([text])[0][0]


@functools.cache
def _message_redactor() -> _core.Redactor:
    return _core.Redactor(RedactionConfig().core_json() or "{}")


class RedactingFilter(logging.Filter):
    """Redacts each record's formatted message; put it on the handlers that print them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_message(record.getMessage()), None
        return True
