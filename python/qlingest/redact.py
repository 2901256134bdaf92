"""Redaction on its own: the same engine the pipeline runs, for strings and frames."""

from __future__ import annotations

import functools
import logging

import msgspec
import polars as pl

from qlingest import _core
from qlingest.config import RedactionConfig

__all__ = ["RedactingFilter", "Redactor", "redact_message"]


class Redactor:
    """Built once from a :class:`RedactionConfig` (the built-in rules by default), used many
    times. ``counts`` accumulates redactions per rule over every call."""

    def __init__(self, rules: RedactionConfig | None = None) -> None:
        if rules is not None and not isinstance(rules, RedactionConfig):
            raise TypeError(
                "Redactor takes a RedactionConfig (or None for the built-in rules), "
                f"not {type(rules).__name__}"
            )
        config = rules if rules is not None else RedactionConfig()
        self._core = _core.Redactor(config.core_json() or "{}")
        self.counts: dict[str, int] = dict.fromkeys(self._core.rule_names, 0)
        #: Whether each column name seen so far is a secret key to the key rules.
        self._secret_names: dict[str, bool] = {}

    def _count(self, counts: list[int]) -> None:
        for name, n in zip(self._core.rule_names, counts, strict=True):
            self.counts[name] += n

    def redact(self, data: str | list[str] | pl.DataFrame) -> str | list[str] | pl.DataFrame:
        """A redacted copy of a string, of a list of strings, or of a frame.

        In a frame every text is redacted (JSON text is walked, so key rules apply inside it):
        string columns, categorical and enum columns (returned as strings, since a marker is
        not one of their categories), and strings inside list and struct columns at any depth.
        Binary columns are returned unchanged: their bytes are not known to be text. A string,
        integer or decimal column or struct field named like a secret key (``password``,
        ``apiKey``) is redacted as a ``fields`` member of that name is. Other integer and
        decimal columns go through the value rules as text (a decimal as Polars writes it,
        ``4111111111111111.50``) and keep their type unless a value is replaced (a card number
        stored as a number): such a column is returned as strings. Float columns are returned
        unchanged. Object columns raise ``TypeError``.
        """
        if isinstance(data, str):
            return self.redact([data])[0]
        if isinstance(data, pl.DataFrame):
            return self._redact_frame(data)
        if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
            raise TypeError(
                "Redactor.redact takes a str, a list of str or a polars DataFrame, not "
                + _kind(data)
            )
        texts, counts = self._core.redact_texts(data)
        self._count(counts)
        return texts

    def _redact_frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        # The core cannot take the Null type, even inside a list or struct (`[[], None]`
        # infers List(Null)): such parts are read as strings, all null, and cast back (a
        # nested one stays a string: Polars casts nothing to a nested Null).
        if holed := {c: t for c, t in frame.schema.items() if _without_null(t) != t}:
            readable = frame.with_columns(
                pl.col(c).cast(_without_null(t)) for c, t in holed.items()
            )
            return self._redact_frame(readable).with_columns(
                pl.col(c).cast(t) for c, t in holed.items()
            )
        if objects := [c for c, dtype in frame.schema.items() if dtype == pl.Object]:
            raise TypeError(
                f"Redactor.redact cannot read column {objects[0]!r}: it holds Python objects; "
                "cast it to strings first"
            )
        frame = frame.with_columns(pl.col(pl.Categorical, pl.Enum).cast(pl.String)).with_columns(
            self._redact_nested(frame[c]) for c in frame.columns if _nested(frame[c])
        )
        numbers = [c for c, dtype in frame.schema.items() if _exact_number(dtype)]
        # A number column named like a secret key (a numeric PIN or password) becomes text
        # and is redacted under its name.
        frame = frame.with_columns(
            pl.col(c).cast(pl.String) for c in numbers if self._secret_name(c)
        )
        frame = frame.with_columns(
            self._redact_under_key(frame[c])
            for c, dtype in frame.schema.items()
            if dtype == pl.String and self._secret_name(c)
        )
        originals = {c: frame[c] for c in numbers if _exact_number(frame.schema[c])}
        text = frame.with_columns(pl.col(list(originals)).cast(pl.String))
        batches, counts = self._core.redact_frame(text)
        self._count(counts)
        redacted = pl.DataFrame(batches)
        # Other number columns keep their type unless a value rule replaced one of their
        # values (a card number or an SSN stored as a number): then they are text too.
        return redacted.with_columns(
            series
            for c, series in originals.items()
            if (redacted[c] == series.cast(pl.String)).all()
        )

    def _secret_name(self, name: str) -> bool:
        """Whether the key rules treat ``name`` as a secret key. The core has no entry point
        for a key on its own, so the name is tried as the key of a JSON object."""
        if name not in self._secret_names:
            probe = msgspec.json.encode({name: "qlingest-probe"}).decode()
            batches, _ = self._core.redact_frame(pl.DataFrame({"v": [probe]}))
            self._secret_names[name] = _member(pl.DataFrame(batches)["v"][0]) != "qlingest-probe"
        return self._secret_names[name]

    def _redact_under_key(self, series: pl.Series) -> pl.Series:
        """A string column whose name is a secret key, each value redacted as the member of
        that name in a JSON object, as a ``fields`` member is."""
        # Limitation: each value goes through Python objects, so large such columns are slow.
        name = series.name
        texts = [None if v is None else msgspec.json.encode({name: v}).decode() for v in series]
        batches, counts = self._core.redact_frame(
            pl.DataFrame({"v": texts}, schema={"v": pl.String})
        )
        self._count(counts)
        values = [None if t is None else _member(t) for t in pl.DataFrame(batches)["v"]]
        return pl.Series(name, values, dtype=pl.String)

    def _redact_nested(self, series: pl.Series) -> pl.Series:
        """A list or struct column with the strings inside it redacted, same shape."""
        if isinstance(series.dtype, pl.Struct):
            fields = series.struct.unnest()
            return self._redact_frame(fields).to_struct(series.name)
        # Limitation: list columns go through Python objects, so they are slow on large frames.
        values = series.to_list()
        flat = [t for row in values if row is not None for t in row]
        inner = pl.Series(flat, dtype=series.dtype.inner)
        redacted = self._redact_frame(inner.to_frame("v"))["v"]
        done = iter(redacted.to_list())
        rebuilt = [None if row is None else [next(done) for _ in row] for row in values]
        if redacted.dtype == inner.dtype:
            # Nothing became text (a list of numbers none of which is a card number): the
            # column keeps its type, which inferring it again would widen (UInt32 to Int64).
            return pl.Series(series.name, rebuilt, dtype=series.dtype)
        out = pl.Series(series.name, rebuilt)
        # Lists with no value in them are inferred as List(Null) again: kept readable.
        return out.cast(_without_null(out.dtype))


def _member(text: str) -> object:
    """The value of the one member of a JSON object; the key may have been rewritten (a value
    rule redacts an e-mail used as a key)."""
    (value,) = msgspec.json.decode(text).values()
    return value


def _kind(data: object) -> str:
    """What ``redact`` was given instead, for its error: a type, or a list's first odd item."""
    if isinstance(data, list):
        bad = next(t for t in data if not isinstance(t, str))
        return f"a list holding {type(bad).__name__}"
    return type(data).__name__


def _exact_number(dtype: pl.DataType) -> bool:
    """Whether ``dtype`` holds numbers written out in full as text, digit for digit: integers
    and decimals, whose digits can be a card number. A float's text may not be its digits."""
    return dtype.is_integer() or dtype.is_decimal()


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


def _without_null(dtype: pl.DataType) -> pl.DataType:
    """``dtype`` with the Null type, at any depth, read as String."""
    if dtype == pl.Null:
        return pl.String
    if isinstance(dtype, pl.List):
        return pl.List(_without_null(dtype.inner))
    if isinstance(dtype, pl.Array):
        return pl.Array(_without_null(dtype.inner), dtype.shape)
    if isinstance(dtype, pl.Struct):
        return pl.Struct([pl.Field(f.name, _without_null(f.dtype)) for f in dtype.fields])
    return dtype
