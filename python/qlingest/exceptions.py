"""qlingest's exceptions: one base, each also a subclass of the built-in that fits."""

from qlingest._core import AuditError, ConfigError, DecodeError, QlingestError

__all__ = ["AuditError", "ConfigError", "DecodeError", "QlingestError"]
