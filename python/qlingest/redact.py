"""Redaction on its own: the same engine the pipeline runs, for strings and frames."""

from __future__ import annotations

import polars as pl

from qlingest import _core
from qlingest.config import RedactionConfig

__all__ = ["Redactor"]


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

    def redact(self, data: list[str] | pl.DataFrame) -> list[str] | pl.DataFrame:
        """Redacted copies of strings, or a frame whose string columns are redacted (JSON text
        is walked, so key rules apply inside it)."""
        if isinstance(data, pl.DataFrame):
            batches, counts = self._core.redact_frame(data)
            self._count(counts)
            return pl.DataFrame(batches)
        texts, counts = self._core.redact_texts(list(data))
        self._count(counts)
        return texts
