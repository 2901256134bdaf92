"""How ``query`` reads the times it is given."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from qlingest.query import parse_time


def test_a_time_without_an_offset_is_utc_and_help_says_so():
    assert parse_time("2024-01-02T03:04:05") == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time("2024-01-02T04:04:05+01:00") == parse_time("2024-01-02T03:04:05")
    cmd = [sys.executable, "-m", "qlingest", "query", "--help"]
    usage = " ".join(subprocess.run(cmd, capture_output=True, text=True).stdout.split())
    assert "--since SINCE RFC 3339 time (UTC when it has no offset, as stored)" in usage
    assert "--until UNTIL RFC 3339 time (UTC when it has no offset)" in usage
