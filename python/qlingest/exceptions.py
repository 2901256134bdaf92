"""qlingest's exceptions: one base, each also a subclass of the built-in that fits."""

from qlingest._core import AuditError, ConfigError, DecodeError, QlingestError

__all__ = [
    "AuditError",
    "ConfigError",
    "DecodeError",
    "EmitterClosedError",
    "ForkedError",
    "InputError",
    "QlingestError",
]


class InputError(DecodeError):
    """An input that could not be read to its end (unreadable, truncated or corrupt); the
    message and ``path`` name it. What was decoded before the damage is kept."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ForkedError(QlingestError, RuntimeError):
    """A store (or the pipeline, emitter or handler built on it) used in a process forked
    from the one that opened it."""


class EmitterClosedError(QlingestError, RuntimeError):
    """An event emitted after the emitter was closed: it is not stored."""
