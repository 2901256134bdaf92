"""qlingest's exceptions: one base, each also a subclass of the built-in that fits."""

import traceback

from qlingest._core import (
    AuditError,
    ConfigError,
    DecodeError,
    EmitterClosedError,
    ForkedError,
    QlingestError,
)

__all__ = [
    "AuditError",
    "ConfigError",
    "DecodeError",
    "EmitterClosedError",
    "ForkedError",
    "InputError",
    "PipelineClosedError",
    "QlingestError",
    "drop_locals",
    "error_line",
    "first_line",
]


class InputError(DecodeError):
    """An input that could not be read to its end (unreadable, truncated or corrupt); the
    message and ``path`` name it. What was decoded before the damage is kept.

    The message is redacted with the built-in rules, since a file name can hold a secret;
    ``path`` and ``reason`` are kept as given, for the caller that chose the name."""

    def __init__(self, path: str, reason: str) -> None:
        from qlingest.redact import redact_message  # redact imports config, which imports this

        super().__init__(redact_message(f"{path}: {reason}"))
        self.path = path
        self.reason = reason


class PipelineClosedError(QlingestError, RuntimeError):
    """A ``Pipeline`` used after ``close`` or ``abort``: its writer id is released, perhaps
    to another pipeline by now, so it decodes and writes nothing more."""

    def __init__(self) -> None:
        super().__init__(
            "this Pipeline is closed: its writer id is released and nothing more is stored. "
            "Build a new Pipeline to ingest more."
        )


def first_line(error: BaseException) -> str:
    """An error's message, its first line only, or its type's name when it has none."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def drop_locals(error: BaseException) -> None:
    """Clears the local variables of the finished frames in ``error``'s traceback and in those
    of its causes. An error raised inside an ``except`` block is in a reference cycle with the
    frame that raised it, so the rows a failed write held stayed in memory until the cycle
    collector ran, each retry adding another copy; the traceback still names every line."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


def error_line(error: BaseException) -> str:
    """An error as one line: its type's name and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
