"""``qlingest serve``: the ingest sidecar (HTTP, OTLP/HTTP and TCP receivers, write-ahead log)."""

from qlingest.serve.server import Server, run

__all__ = ["Server", "run"]
