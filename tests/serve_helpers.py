"""Starting ``qlingest serve`` as a subprocess on free loopback ports, and talking to it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import zstandard

ROOT = Path(__file__).resolve().parents[1]


class ServeProcess:
    """A running sidecar; ``ports`` is what it printed once listening."""

    def __init__(self, data_dir: Path, config: str = "", tcp: bool = False) -> None:
        cfg = data_dir.parent / f"{data_dir.name}.toml"
        cfg.write_text(config)
        args = [sys.executable, "-m", "qlingest", "serve", "--data-dir", str(data_dir)]
        args += ["--config", str(cfg), "--http-port", "0", "--otlp-port", "0"]
        if tcp:
            args += ["--tcp-port", "0"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT / "python")}
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"serve did not start: {self.proc.stderr.read().decode()[-2000:]}")
        self.ports = json.loads(line)["listening"]

    def conn(self, receiver: str = "http", timeout: float = 10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.ports[receiver], timeout=timeout)

    def post(self, path: str, body: bytes, headers: dict | None = None, receiver: str = "http"):
        c = self.conn(receiver)
        try:
            c.request("POST", path, body, headers or {"Content-Type": "application/x-ndjson"})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def get(self, path: str) -> tuple[int, bytes]:
        c = self.conn()
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def metric(text: bytes, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output (0 when absent)."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.decode().splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def stored(data_dir: Path) -> pl.DataFrame:
    files = list((data_dir / "hot").rglob("*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")


def events(ids: range, category: str = "app.serve") -> bytes:
    rows = (
        {"ts": 1_700_000_000 + i % 7200, "level": "info", "msg": f"e{i}", "category": category}
        for i in ids
    )
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def dead_letters(data_dir: Path) -> list[dict]:
    """Every committed dead letter of the store, as dicts."""
    rows = []
    for path in (data_dir / "dead-letter").rglob("*.ndjson.zst"):
        rows += [json.loads(x) for x in zstandard.decompress(path.read_bytes()).splitlines()]
    return rows


def mixed(ids: list[int], bad_every: int = 10) -> tuple[bytes, list[int], list[int]]:
    """NDJSON where every ``bad_every``-th line is malformed (raw text ``b<id>``)."""
    good = [i for i in ids if i % bad_every]
    bad = [i for i in ids if not i % bad_every]
    lines = [
        events(range(i, i + 1)) if i % bad_every else b'{"msg":"b%d","category":\n' % i for i in ids
    ]
    return b"".join(lines), good, bad
