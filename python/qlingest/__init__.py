"""qlingest: observability ingest with a Rust core.

``Pipeline`` turns bytes into redacted, sampled, audit-chained Polars frames and commits them as
zstd Parquet; ``Redactor`` and ``Sampler`` run one stage on their own.
"""

from qlingest._core import AuditChain, __version__
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
