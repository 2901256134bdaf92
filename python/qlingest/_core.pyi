"""Type stubs of the compiled core, ``qlingest._core``."""

from collections.abc import Callable
from typing import Any, TypedDict, final

__version__: str

class QlingestError(Exception): ...
class ConfigError(QlingestError, ValueError): ...
class DecodeError(QlingestError, ValueError): ...
class AuditError(QlingestError, RuntimeError): ...
class ForkedError(QlingestError, RuntimeError): ...
class EmitterClosedError(QlingestError, RuntimeError): ...

@final
class ArrowBatches:
    """Record batches exported once through ``__arrow_c_stream__`` (``pl.DataFrame(obj)``)."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...
    def __len__(self) -> int: ...

@final
class ProcessResult:
    events: ArrowBatches
    dead_letters: ArrowBatches
    lines: int
    blank_lines: int
    unparsed: int
    redactions: list[int]
    kept: list[int]
    sampled_out: list[int]
    fallback_hashes: int
    partitions: list[tuple[str | None, int, int]]

@final
class Engine:
    def __init__(
        self,
        decode_json: str,
        *,
        redaction_json: str | None = None,
        sampling_json: str | None = None,
    ) -> None: ...
    @property
    def redaction_rules(self) -> list[str]: ...
    @property
    def sampling_rules(self) -> list[str]: ...
    @property
    def hash_fallback(self) -> bool: ...
    def process(
        self,
        data: bytes | bytearray | memoryview,
        *,
        source: str = "-",
        first_line: int = 1,
        observed_ns: int,
    ) -> ProcessResult: ...

@final
class Redactor:
    def __init__(self, config_json: str) -> None: ...
    @property
    def rule_names(self) -> list[str]: ...
    def redact_texts(self, texts: list[str]) -> tuple[list[str], list[int]]: ...
    def redact_frame(self, frame: Any) -> tuple[ArrowBatches, list[int]]: ...

@final
class Sampler:
    def __init__(self, policy_json: str) -> None: ...
    @property
    def rule_names(self) -> list[str]: ...
    def decide(self, frame: Any, *, now_ns: int) -> ArrowBatches: ...

@final
class AuditChain:
    def __init__(
        self, chain_id: str, head: tuple[int, str] | None = None, *, config_json: str = "{}"
    ) -> None: ...
    def append(self, frame: Any) -> ArrowBatches: ...
    @property
    def head(self) -> tuple[int, str]: ...
    def finish(self) -> tuple[int, str]: ...

def verify_chain(
    chain_id: str,
    frame: Any,
    checkpoints: list[str],
    *,
    key: bytes | None = None,
    require_seals: bool = False,
) -> str: ...

@final
class PendingBatch:
    """The batch ``Emitter.emit`` fills, as NDJSON; full batches go to ``hand_over``."""

    def __init__(
        self,
        batch_bytes: int,
        *,
        encode: Callable[[Any], bytes],
        hand_over: Callable[[bytes, int], object],
    ) -> None: ...
    def emit(self, event: Any) -> None:
        """Appends one event: bytes-like as one line, anything else encoded as JSON."""
    def flush(self, put: Callable[[bytes, int], object]) -> None:
        """Hands every batch, the partial one last, to ``put`` in order."""
    def take(self) -> tuple[bytes, int] | None:
        """Everything not yet handed over, with its event count."""
    def close(self) -> None:
        """Refuses every event from now on with ``EmitterClosedError``."""
    def forked(self) -> PendingBatch:
        """The batch of a forked child: empty, refusing every event with ``ForkedError``;
        this batch refuses from then on too."""
    def drains_here(self) -> None:
        """Marks the calling thread as the one that takes batches from ``hand_over``'s queue."""
    batch_bytes: int
    @property
    def rejected_events(self) -> int: ...
    @property
    def events(self) -> int: ...

# The standard-mix generator of `qlingest bench`.

class GenStats(TypedDict):
    events: int
    bytes: int
    levels: dict[str, int]
    services: dict[str, int]
    audit: int
    security: int
    with_secrets: int
    traces: int
    planted: list[tuple[str, str]]

class Generator:
    """A streaming generator: successive `fill` calls continue one seeded stream."""

    def __init__(self, seed: int = 42, *, record_secrets: bool = False) -> None: ...
    def fill(self, n: int) -> bytes:
        """The next `n` events, one JSON object per line."""
    def stats(self) -> GenStats:
        """The ground truth of everything generated so far."""

def generate(count: int, seed: int = 42) -> bytes:
    """`count` events of the standard mix for `seed`, as NDJSON bytes."""

def generate_with_stats(count: int, seed: int = 42) -> tuple[bytes, GenStats]:
    """`count` events for `seed` and their ground truth, planted secrets included."""

def key_columns() -> list[tuple[str, str]]: ...
