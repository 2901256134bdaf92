"""qlingest: observability ingest with a Rust core.

``Pipeline`` turns bytes into redacted, sampled, audit-chained Polars frames and commits them as
zstd Parquet; ``Redactor`` and ``Sampler`` run one stage on their own.

The names below are imported on first use: the command line starts without loading Polars,
and an interrupt while it starts ends it quietly rather than inside an import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from qlingest._core import __version__

if TYPE_CHECKING:
    from qlingest._core import AuditChain
    from qlingest.audit import verify as verify_audit
    from qlingest.config import Config, load_config
    from qlingest.events import AuditEvent, Event, Span
    from qlingest.exceptions import (
        AuditError,
        ConfigError,
        DecodeError,
        InputError,
        PipelineClosedError,
        QlingestError,
    )
    from qlingest.pipeline import Batch, Pipeline, Summary
    from qlingest.redact import Redactor
    from qlingest.sampling import Sampler

#: Each public name and the module (and name there) it comes from.
_HOMES = {
    "AuditChain": ("qlingest._core", "AuditChain"),
    "AuditError": ("qlingest.exceptions", "AuditError"),
    "AuditEvent": ("qlingest.events", "AuditEvent"),
    "Batch": ("qlingest.pipeline", "Batch"),
    "Config": ("qlingest.config", "Config"),
    "ConfigError": ("qlingest.exceptions", "ConfigError"),
    "DecodeError": ("qlingest.exceptions", "DecodeError"),
    "Event": ("qlingest.events", "Event"),
    "InputError": ("qlingest.exceptions", "InputError"),
    "Pipeline": ("qlingest.pipeline", "Pipeline"),
    "PipelineClosedError": ("qlingest.exceptions", "PipelineClosedError"),
    "QlingestError": ("qlingest.exceptions", "QlingestError"),
    "Redactor": ("qlingest.redact", "Redactor"),
    "Sampler": ("qlingest.sampling", "Sampler"),
    "Span": ("qlingest.events", "Span"),
    "Summary": ("qlingest.pipeline", "Summary"),
    "load_config": ("qlingest.config", "load_config"),
    "verify_audit": ("qlingest.audit", "verify"),
}

__all__ = [
    "AuditChain",
    "AuditError",
    "AuditEvent",
    "Batch",
    "Config",
    "ConfigError",
    "DecodeError",
    "Event",
    "InputError",
    "Pipeline",
    "PipelineClosedError",
    "QlingestError",
    "Redactor",
    "Sampler",
    "Span",
    "Summary",
    "__version__",
    "load_config",
    "verify_audit",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'qlingest' has no attribute {name!r}")
    value = getattr(importlib.import_module(home[0]), home[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
