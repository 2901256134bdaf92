"""Shared inputs of the benchmarks: the standard mix, generated once per session.

``QLINGEST_BENCH_EVENTS`` sets the size (``make bench`` uses 1,000,000); the default keeps
the smoke run of the normal test suite fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from qlingest import _core
from qlingest.bench import generate_file

EVENTS = int(os.environ.get("QLINGEST_BENCH_EVENTS", "20000"))
SEED = 42


@pytest.fixture(scope="session")
def events() -> int:
    return EVENTS


@pytest.fixture(scope="session")
def mix_bytes() -> bytes:
    return _core.generate(EVENTS, SEED)


@pytest.fixture(scope="session")
def mix_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mix") / "standard-mix.ndjson"
    generate_file(path, EVENTS, SEED)
    return path
