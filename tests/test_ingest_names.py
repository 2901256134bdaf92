"""Input names the command line meets: a file name that is not UTF-8 fails alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from qlingest.query import scan


def test_a_file_name_that_is_not_utf8_fails_alone_named_with_an_escape(tmp_path):
    good = tmp_path / "good.ndjson"
    good.write_bytes(b'{"msg": "good"}\n')
    odd = os.fsencode(tmp_path) + b"/b5-\xff-x.ndjson"
    with open(odd, "wb") as f:
        f.write(b'{"msg": "odd"}\n')
    store = tmp_path / "store"

    cmd = [sys.executable, "-m", "qlingest", "ingest", os.fsencode(good), odd]
    out = subprocess.run([*cmd, "--data-dir", str(store), "--json"], capture_output=True)

    assert out.returncode == 1
    err = out.stderr.decode()
    assert "b5-\\xff-x.ndjson: the file name is not UTF-8" in err
    assert "Traceback" not in err and "UnicodeEncodeError" not in err
    (failed,) = json.loads(out.stdout)["inputs_failed"]
    assert failed.endswith("/b5-\\xff-x.ndjson")
    assert scan(store).collect()["message"].to_list() == ["good"]
