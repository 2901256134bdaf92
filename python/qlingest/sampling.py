"""Sampling on its own: the same engine the pipeline runs, for frames (see docs/sampling.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl

from qlingest import _core
from qlingest.config import policy_json, sampling_policy

__all__ = ["Sampler"]


class Sampler:
    """Built once from a policy — ``"cost-optimized"``, the path of a TOML policy file, or the
    policy as a dict — and used for many frames; adaptive rates carry across calls."""

    def __init__(self, policy: str | Path | dict[str, Any]) -> None:
        spec = policy if isinstance(policy, dict) else sampling_policy(policy)
        self._core = _core.Sampler(policy_json(spec) or "{}")

    @property
    def rule_names(self) -> list[str]:
        return self._core.rule_names

    def decide(self, frame: pl.DataFrame, *, now_ns: int | None = None) -> pl.DataFrame:
        """One row per input row: ``keep``, the new ``sample_rate`` and the deciding ``rule``."""
        now = time.time_ns() if now_ns is None else now_ns
        decisions = pl.DataFrame(self._core.decide(frame, now_ns=now))
        names = pl.Series(self.rule_names, dtype=pl.String)
        return decisions.with_columns(pl.col("rule").map_batches(lambda r: names.gather(r)))
