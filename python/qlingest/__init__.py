"""qlingest: observability ingest with a Rust core."""

from qlingest._core import __version__

__all__ = ["__version__"]
