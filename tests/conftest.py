from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The third-party sample logs; tests that need them skip where they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"sample data not present at {SHARED_DATA}")
    return SHARED_DATA
