"""Type stubs of the compiled core: the standard-mix generator."""

from typing import TypedDict

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

__version__: str

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
