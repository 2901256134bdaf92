from __future__ import annotations

import http.client
import itertools
import random
import threading
import time
from collections import Counter

from serve_helpers import ServeProcess, events, stored

CONFIG = """
[store]
target_file_bytes = 40000
[serve]
flush_interval_s = 0.2
"""


def send_until(srv: ServeProcess, ids, lock, acked: set[int], deadline: float) -> None:
    """Posts batches of fresh ids until the deadline or the server dies; records acks."""
    port = srv.ports["http"]
    while time.monotonic() < deadline:
        with lock:
            batch = [next(ids) for _ in range(100)]
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("POST", "/v1/events", events(batch), {"Content-Type": "application/x-ndjson"})
            if c.getresponse().status == 200:
                with lock:
                    acked.update(batch)
            c.close()
        except OSError:
            return


def test_kill_9_under_load_keeps_every_acknowledged_event_exactly_once(tmp_path):
    store, rng = tmp_path / "store", random.Random(6)
    ids, lock, acked = itertools.count(), threading.Lock(), set()
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
    assert len(acked) > 500
    missing = [i for i in acked if counts[f"e{i}"] != 1]
    assert missing == []
    assert max(counts.values()) == 1
