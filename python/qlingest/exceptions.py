"""qlingest's exceptions: one base, each also a subclass of the built-in that fits."""

from qlingest._core import AuditError, ConfigError, DecodeError, QlingestError

__all__ = ["AuditError", "ConfigError", "DecodeError", "InputError", "QlingestError"]


class InputError(DecodeError):
    """An input that could not be read to its end (unreadable, truncated or corrupt); the
    message and ``path`` name it. What was decoded before the damage is kept."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
