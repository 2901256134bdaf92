from __future__ import annotations

import http.client
import itertools
import random
import re
import threading
import time
from collections import Counter

from serve_helpers import ServeProcess, dead_letters, mixed, stored

CONFIG = """
[store]
target_file_bytes = 40000
[serve]
flush_interval_s = 0.2
"""


def send_until(srv: ServeProcess, ids, lock, acked: dict, deadline: float) -> None:
    """Posts batches of fresh ids, one line in ten malformed, until the deadline or the server
    dies; records which good and bad lines were acknowledged."""
    port = srv.ports["http"]
    while time.monotonic() < deadline:
        with lock:
            body, good, bad = mixed([next(ids) for _ in range(100)])
        # Closed on every path: a connection left open when the server dies was a
        # ResourceWarning, an error under the suite's warning filter, now and then in CI.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            c.request("POST", "/v1/events", body, {"Content-Type": "application/x-ndjson"})
            status = c.getresponse().status
        except OSError:
            return
        finally:
            c.close()
        if status == 200:
            with lock:
                acked["good"].update(good)
                acked["bad"].update(bad)


def test_kill_9_under_load_keeps_every_acknowledged_line_exactly_once(tmp_path):
    store, rng = tmp_path / "store", random.Random(6)
    ids, lock, acked = itertools.count(), threading.Lock(), {"good": set(), "bad": set()}
    for _ in range(4):
        srv = ServeProcess(store, CONFIG)
        deadline = time.monotonic() + 5
        senders = [
            threading.Thread(target=send_until, args=(srv, ids, lock, acked, deadline))
            for _ in range(3)
        ]
        for t in senders:
            t.start()
        time.sleep(rng.uniform(0.3, 1.5))
        srv.kill()
        for t in senders:
            t.join()
    srv = ServeProcess(store, CONFIG)
    assert srv.stop() == 0

    counts = Counter(stored(store)["message"].to_list())
    assert len(acked["good"]) > 500
    assert [i for i in acked["good"] if counts[f"e{i}"] != 1] == []
    assert max(counts.values()) == 1

    dead = Counter(int(re.match(r'\{"msg":"b(\d+)"', r["raw"])[1]) for r in dead_letters(store))
    assert len(acked["bad"]) > 50
    assert [i for i in acked["bad"] if dead[i] != 1] == []
    assert max(dead.values()) == 1
