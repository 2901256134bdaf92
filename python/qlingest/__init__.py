"""qlingest: observability ingest with a Rust core.

``Pipeline`` turns bytes into redacted, sampled, audit-chained Polars frames and commits them as
zstd Parquet; ``Redactor`` and ``Sampler`` run one stage on their own.
"""

from qlingest._core import AuditChain, Sampler, __version__
from qlingest.audit import verify as verify_audit
from qlingest.config import Config, load_config
from qlingest.exceptions import AuditError, ConfigError, DecodeError, QlingestError
from qlingest.pipeline import Batch, Pipeline, Summary
from qlingest.redact import Redactor

__all__ = [
    "AuditChain",
    "AuditError",
    "Batch",
    "Config",
    "ConfigError",
    "DecodeError",
    "Pipeline",
    "QlingestError",
    "Redactor",
    "Sampler",
    "Summary",
    "__version__",
    "load_config",
    "verify_audit",
]
