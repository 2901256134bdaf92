"""Load generator for ``qlingest serve`` on loopback: events/s and acknowledgement latency.

    .venv/bin/python benches/load_http.py --duration 10 --connections 8 --batch 2000
    .venv/bin/python benches/load_http.py --otlp

Starts its own server on 127.0.0.1 (free ports, a temporary store, the WAL on with fsync
``always`` unless ``--fsync`` says otherwise), keeps ``--connections`` keep-alive connections
each posting a prebuilt body back to back, and reports accepted events/s and p50/p99 latency,
and over the same window the CPU the server and this load generator used (in cores) and how
busy the whole machine was, since they share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ndjson_body(n: int) -> bytes:
    lines = []
    for i in range(n):
        lines.append(
            json.dumps(
                {
                    "ts": 1_700_000_000_000 + i,
                    "level": ("info", "warn", "error")[i % 3],
                    "service": f"svc-{i % 7}",
                    "category": "application.request_logs",
                    "msg": f"GET /api/v1/items/{i} 200 in {i % 97} ms",
                    "trace_id": f"{i:032x}",
                    "user_id": f"u{i % 1000}",
                    "http": {"method": "GET", "status": 200, "bytes": i % 5000},
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


def otlp_body(n: int) -> bytes:
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    req = logs_service_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    kv = rl.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "bench"
    sl = rl.scope_logs.add()
    for i in range(n):
        rec = sl.log_records.add()
        rec.time_unix_nano = 1_700_000_000_000_000_000 + i
        rec.severity_number = 9
        rec.body.string_value = f"GET /api/v1/items/{i} 200 in {i % 97} ms"
        rec.trace_id = i.to_bytes(16, "big")
        rec.span_id = (i + 1).to_bytes(8, "big")
        a = rec.attributes.add()
        a.key, a.value.string_value = "user_id", f"u{i % 1000}"
    return req.SerializeToString()


async def client(port: int, path: str, ctype: str, body: bytes, until: float, lat: list) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    ok = 0
    while time.perf_counter() < until:
        started = time.perf_counter()
        writer.write(head + body)
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        status = int(status_line.split()[1])
        if status == 200:
            ok += 1
            lat.append(time.perf_counter() - started)
        else:
            await asyncio.sleep(0.05)
    writer.close()
    return ok


def start_server(store: Path, fsync: str) -> tuple[subprocess.Popen, dict]:
    cfg = store.parent / "bench.toml"
    cfg.write_text(f'[serve]\nwal_fsync = "{fsync}"\n')
    args = [sys.executable, "-m", "qlingest", "serve", "--data-dir", str(store), "--config"]
    args += [str(cfg), "--host", "127.0.0.1", "--http-port", "0", "--otlp-port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, cwd=ROOT, env=env)
    return proc, json.loads(proc.stdout.readline())["listening"]


def server_means(port: int) -> dict[str, float]:
    """Mean milliseconds of the server's log writes (write + fsync per group), per-record
    decode and absorb, and partition commits, from its ``/metrics``."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    sums: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.endswith(("_seconds_sum", "_seconds_count")):
            sums[name.removeprefix("qlingest_")] = float(value)
    out = {}
    for name in ("wal_commit", "batch", "commit"):
        count = sums.get(f"{name}_seconds_count", 0)
        if count:
            out[f"{name}_mean_ms"] = round(sums[f"{name}_seconds_sum"] / count * 1000, 2)
            out[f"{name}_count"] = int(count)
    return out


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process, every thread, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all cores spent not idle, from ``/proc/stat``."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace, ports: dict, server_pid: int) -> dict:
    if args.otlp:
        body, path, ctype, port = (
            otlp_body(args.batch),
            "/v1/logs",
            "application/x-protobuf",
            ports["otlp"],
        )
    else:
        body, path, ctype, port = (
            ndjson_body(args.batch),
            "/v1/events",
            "application/x-ndjson",
            ports["http"],
        )
    lat: list[float] = []
    cpu = (process_cpu_s(server_pid), process_cpu_s(os.getpid()), machine_busy_s())
    started = time.perf_counter()
    until = started + args.duration
    oks = await asyncio.gather(
        *(client(port, path, ctype, body, until, lat) for _ in range(args.connections))
    )
    elapsed = time.perf_counter() - started
    server_cpu, client_cpu, busy = (
        round((now - then) / elapsed, 2)
        for now, then in zip(
            (process_cpu_s(server_pid), process_cpu_s(os.getpid()), machine_busy_s()),
            cpu,
            strict=True,
        )
    )
    lat.sort()
    n = sum(oks) * args.batch
    return {
        "receiver": "otlp" if args.otlp else "http-ndjson",
        "events": n,
        "seconds": round(elapsed, 2),
        "events_per_s": round(n / elapsed),
        "mb_per_s": round(sum(oks) * len(body) / elapsed / 1e6, 1),
        "p50_ms": round(lat[len(lat) // 2] * 1000, 2) if lat else None,
        "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None,
        "requests": sum(oks),
        "batch": args.batch,
        "connections": args.connections,
        "fsync": args.fsync,
        "server_cores": server_cpu,
        "loadgen_cores": client_cpu,
        "machine_busy_cores": busy,
        "cores": os.cpu_count(),
        **server_means(ports["http"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--batch", type=int, default=2000, help="events per request")
    ap.add_argument("--otlp", action="store_true", help="OTLP/HTTP protobuf logs")
    ap.add_argument("--fsync", default="always", choices=["always", "interval", "never"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="qlingest-load-") as tmp:
        proc, ports = start_server(Path(tmp) / "store", args.fsync)
        try:
            try:
                import uvloop

                result = uvloop.run(run(args, ports, proc.pid))
            except ImportError:
                result = asyncio.run(run(args, ports, proc.pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            result_code = proc.wait(120)
        result["server_exit"] = result_code
        result["store_bytes"] = sum(
            f.stat().st_size for f in (Path(tmp) / "store").rglob("*.parquet")
        )
    print(json.dumps(result))
    print(
        f"{result['receiver']}: {result['events_per_s']:,} events/s "
        f"({result['mb_per_s']} MB/s), ack p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
        f"cores used: server {result['server_cores']}, load generator {result['loadgen_cores']}, "
        f"whole machine {result['machine_busy_cores']} of {result['cores']}",
        file=sys.stderr,
    )
    os._exit(0)


if __name__ == "__main__":
    main()
