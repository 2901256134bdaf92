from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from qlingest.config import load_config
from qlingest.serve import Server
from qlingest.serve.server import PIECE_BYTES, _pieces, count_lines
from qlingest.serve.wal import Wal
from qlingest.store import decode_ranges, encode_ranges
from serve_helpers import ServeProcess, dead_letters, events, mixed, stored


def test_ranges_round_trip():
    assert encode_ranges({1, 2, 3, 7, 9, 10}) == "1-3,7,9-10"
    assert decode_ranges("1-3,7,9-10") == [(1, 3), (7, 7), (9, 10)]
    assert encode_ranges(set()) == "" and decode_ranges("") == []


def test_log_recovers_records_and_cuts_a_torn_tail(tmp_path):
    wal = Wal(tmp_path, segment_bytes=1 << 20)
    wal.open_segment(first_file=5)
    logged = wal.append([(11, "http", [b"a\n"]), (12, "tcp", [b"b\n"])])
    assert [r.seq for r in logged] == [0, 1]
    wal.close()
    (segment,) = tmp_path.glob("*.wal")
    with open(segment, "ab") as f:
        f.write(b"\x01\x02\x03 torn")
    again = Wal(tmp_path, segment_bytes=1 << 20)
    assert again.first_file_on_disk() == 5
    records = list(again.recover())
    assert [(r.seq, r.observed_ns, r.source, r.payload) for r in records] == [
        (0, 11, "http", b"a\n"),
        (1, 12, "tcp", b"b\n"),
    ]
    assert again.next_seq == 2 and segment.stat().st_size == again.bytes


def test_records_written_from_many_parts_read_back_whole(tmp_path):
    wal = Wal(tmp_path, segment_bytes=1 << 30)
    wal.open_segment(first_file=0)
    # 600 records of 3 parts: 3,600 buffers, more than one writev may take.
    records = [(i, "http", [b"%d-a\n" % i, b"%d-b\n" % i, b"%d-c\n" % i]) for i in range(600)]
    logged = wal.append(records)
    assert logged[7].payload == b"7-a\n7-b\n7-c\n" and logged[7].size == 12
    wal.close()
    again = Wal(tmp_path, segment_bytes=1 << 30)
    back = list(again.recover())
    assert [(r.seq, r.observed_ns, r.payload) for r in back] == [
        (i, i, b"".join(parts)) for i, _, parts in records
    ]
    assert again.bytes == wal.bytes


def test_closed_segments_are_released_once_committed(tmp_path):
    wal = Wal(tmp_path, segment_bytes=10)
    wal.open_segment(0)
    wal.append([(1, "s", [b"x" * 20])])
    wal.open_segment(0)
    wal.append([(1, "s", [b"y"])])
    assert len(list(tmp_path.glob("*.wal"))) == 2
    assert wal.release(committed_below=0) == 0
    assert wal.release(committed_below=1) == 1
    assert [p.name for p in tmp_path.glob("*.wal")] == [f"{1:020d}.wal"]


async def post(port: int, body: bytes) -> tuple[int, dict[str, str]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
    data = await reader.read()
    writer.close()
    status_line, *lines = data.split(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers


def test_a_paused_writer_makes_the_server_refuse_with_retry_after(tmp_path):
    config = load_config(
        None, **{"serve.max_queue_bytes": 100_000, "serve.http_port": 0, "serve.otlp_port": 0}
    )

    async def scenario() -> None:
        server = Server(tmp_path, config)
        ports = await server.start()
        gate = threading.Event()
        decode = server.pipeline.decode

        def paused(*args, **kwargs):
            gate.wait(30)
            return decode(*args, **kwargs)

        server.pipeline.decode = paused
        body = events(range(200))
        statuses = [await post(ports["http"], body) for _ in range(40)]
        codes = [s for s, _ in statuses]
        assert codes[0] == 200 and 429 in codes
        refused = statuses[codes.index(429)][1]
        assert refused["Retry-After"] == "1"
        assert server.queue_bytes <= 100_000 + len(body)
        gate.set()
        while server.queue_bytes:
            await asyncio.sleep(0.02)
        assert (await post(ports["http"], body))[0] == 200
        await server.shutdown()
        assert server.pipeline.summary.events_written == 200 * (codes.count(200) + 1)

    asyncio.run(scenario())


@pytest.mark.parametrize("policy", ["interval", "never"])
def test_other_fsync_policies_still_commit_everything(tmp_path, policy):
    config = load_config(
        None,
        **{"serve.wal_fsync": policy, "serve.http_port": 0, "serve.otlp_port": 0},
    )

    async def scenario() -> None:
        server = Server(tmp_path, config)
        ports = await server.start()
        for i in range(5):
            assert (await post(ports["http"], events(range(i * 10, i * 10 + 10))))[0] == 200
        await server.shutdown()
        assert server.pipeline.summary.events_written == 50

    asyncio.run(scenario())


def test_a_clean_stop_deletes_the_log_and_the_next_start_replays_nothing(tmp_path):
    store = tmp_path / "store"
    srv = ServeProcess(store)
    assert srv.post("/v1/events", events(range(20)))[0] == 200
    assert srv.stop() == 0
    assert list((store / "wal").rglob("*.wal")) == []
    assert stored(store).height == 20

    again = ServeProcess(store)
    assert again.post("/v1/events", events(range(20, 30)))[0] == 200
    assert again.stop() == 0
    assert list((store / "wal").rglob("*.wal")) == []
    assert sorted(stored(store)["message"].to_list()) == sorted(f"e{i}" for i in range(30))


def test_after_a_crash_and_a_clean_stop_every_event_is_stored_once(tmp_path):
    store = tmp_path / "store"
    srv = ServeProcess(store, "[serve]\nflush_interval_s = 60\n")
    assert srv.post("/v1/events", events(range(10)))[0] == 200
    srv.kill()
    assert len(list((store / "wal").rglob("*.wal"))) == 1
    again = ServeProcess(store)
    assert again.post("/v1/events", events(range(10, 15)))[0] == 200
    assert again.stop() == 0
    assert list((store / "wal").rglob("*.wal")) == []
    third = ServeProcess(store)
    assert third.stop() == 0
    assert sorted(stored(store)["message"].to_list()) == sorted(f"e{i}" for i in range(15))


def wait_stored(store, n: int) -> None:
    deadline = time.monotonic() + 10
    while stored(store).height < n and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_start_replays_the_logs_of_writers_no_process_holds_exactly_once(tmp_path):
    store = tmp_path / "store"
    slow = "[serve]\nflush_interval_s = 60\n"
    own = ServeProcess(store, slow)  # w0
    committed = ServeProcess(store, "[serve]\nflush_interval_s = 0.1\n")  # w1
    pending = ServeProcess(store, slow)  # w2
    assert own.post("/v1/events", events(range(0, 10)))[0] == 200
    assert committed.post("/v1/events", events(range(10, 20)))[0] == 200
    assert pending.post("/v1/events", mixed(list(range(20, 30)))[0])[0] == 200
    wait_stored(store, 10)  # w1's records committed, and still in its log
    for srv in (own, committed, pending):
        srv.kill()
    assert {p.parent.name for p in (store / "wal").rglob("*.wal")} == {"w0", "w1", "w2"}

    again = ServeProcess(store)
    again.proc.terminate()
    _, err = again.proc.communicate(timeout=30)
    assert again.proc.returncode == 0
    replays = [json.loads(x) for x in err.splitlines() if b"Replayed the log" in x]
    assert [(r["writer"], r["records"]) for r in replays] == [("w1", 1), ("w2", 1)]
    assert list((store / "wal").rglob("*.wal")) == []
    want = [f"e{i}" for i in range(20)] + [f"e{i}" for i in range(20, 30) if i % 10]
    assert sorted(stored(store)["message"].to_list()) == sorted(want)
    assert [r["raw"] for r in dead_letters(store)] == ['{"msg":"b20","category":']


def test_a_start_leaves_alone_the_log_of_a_writer_a_live_process_holds(tmp_path):
    store = tmp_path / "store"
    live = ServeProcess(store, "[serve]\nflush_interval_s = 60\n")  # w0
    assert live.post("/v1/events", events(range(10)))[0] == 200
    other = ServeProcess(store)  # w1
    assert len(list((store / "wal" / "w0").glob("*.wal"))) == 1
    assert other.stop() == 0
    assert stored(store).height == 0
    assert live.stop() == 0
    assert sorted(stored(store)["message"].to_list()) == sorted(f"e{i}" for i in range(10))


def replayed_dead_letters(store, body: bytes, dead: int) -> list[dict]:
    """Posts ``body``, waits for its ``dead`` dead letters to be committed, kills the server
    while the record is still in the log's open segment, and returns the dead letters once a
    restart has replayed the record."""
    srv = ServeProcess(store, "[serve]\nflush_interval_s = 0.1\n")
    assert srv.post("/v1/events", body)[0] == 200
    deadline = time.monotonic() + 10
    while len(dead_letters(store)) < dead and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.kill()
    assert len(list((store / "wal").rglob("*.wal"))) == 1
    again = ServeProcess(store)
    assert again.stop() == 0
    return dead_letters(store)


def test_dead_letters_committed_before_a_crash_are_not_written_again(tmp_path):
    store = tmp_path / "store"
    body, good, bad = mixed(list(range(30)))
    rows = replayed_dead_letters(store, body, len(bad))
    assert sorted(r["raw"] for r in rows) == sorted(f'{{"msg":"b{i}","category":' for i in bad)
    assert {r["reason"] for r in rows} == {"malformed_json"}
    assert {r["wal_record"] for r in rows} == {0}
    assert sorted(stored(store)["message"].to_list()) == sorted(f"e{i}" for i in good)


def test_bad_category_dead_letters_committed_before_a_crash_are_not_written_again(tmp_path):
    # Breaker report s10: rows dead-lettered while buffering (a bad category) were written
    # straight to the store, untagged, so a replay of their record wrote them a second time.
    store = tmp_path / "store"
    body = (
        b'{"msg":"good","category":"app.logs"}\n'
        b'{"msg":"hive","category":"__HIVE_DEFAULT_PARTITION__"}\n'
        + b'{"msg":"long","category":"'
        + b"c" * 300
        + b'"}\n'
        + b'{"msg":"b1","category":\n'
    )
    rows = replayed_dead_letters(store, body, 3)
    reasons = sorted(r["reason"] for r in rows)
    assert reasons == ["bad_category", "bad_category", "malformed_json"]
    assert {r["wal_record"] for r in rows} == {0}
    assert len({r["source"] for r in rows}) == 1
    assert stored(store)["message"].to_list() == ["good"]


def test_a_large_record_decodes_in_pieces_with_lines_counted_from_its_start(tmp_path):
    store = tmp_path / "store"
    srv = ServeProcess(store, "[input]\nthreads = 2\n")
    body, good, bad = mixed(list(range(8000)), bad_every=997)
    assert len(body) > 2 * PIECE_BYTES
    assert srv.post("/v1/events", body)[2] == b'{"accepted":8000}'
    assert srv.stop() == 0
    rows = dead_letters(store)
    assert sorted(r["line"] for r in rows) == [i + 1 for i in bad]
    assert {r["source"] for r in rows} == {"http"}
    assert sorted(stored(store)["message"].to_list()) == sorted(f"e{i}" for i in good)


def test_pieces_join_small_parts_and_cut_a_lone_large_one():
    small = [b"x" * 99 + b"\n"] * 5
    assert _pieces(tuple(small), 2) == [b"".join(small)]
    line = b"y" * 1023 + b"\n"
    big = line * (3 * PIECE_BYTES // len(line))
    cut = _pieces((big,), 2)
    assert len(cut) == 2 and b"".join(cut) == big
    assert all(p.endswith(b"\n") and len(p) % len(line) == 0 for p in cut)
    # Enough large parts to go round: each decodes as it came, uncopied.
    parts = (big, big[: PIECE_BYTES + len(line)])
    assert all(a is b for a, b in zip(_pieces(parts, 2), parts, strict=True))


@pytest.mark.parametrize("line", [b"x\n", b"y" * 300 + b"\n"])
def test_lines_are_counted_alike_for_short_and_long_lines(line):
    for n in (0, 1, 7, 5000):
        data = line * n
        assert count_lines(data) == n
        assert count_lines(data + b"tail") == n


def logged_segment(tmp_path, n: int = 20):
    wal = Wal(tmp_path, segment_bytes=1 << 20)
    wal.open_segment(first_file=3)
    wal.append([(i, "http", [b"r%d\n" % i]) for i in range(n)])
    wal.close()
    (segment,) = tmp_path.glob("*.wal")
    return segment


def flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_flipped_byte_mid_log_loses_one_record_and_keeps_its_bytes(tmp_path):
    segment = logged_segment(tmp_path)
    record = (segment.stat().st_size - 16) // 20  # every record is the same size here
    flip(segment, 16 + 5 * record + record - 2)  # the payload of record 5
    again = Wal(tmp_path, segment_bytes=1 << 20)
    seqs = [r.seq for r in again.recover()]
    assert seqs == [i for i in range(20) if i != 5]
    assert again.next_seq == 20
    (kept,) = (tmp_path / "damaged").iterdir()
    assert kept.read_bytes() == segment.read_bytes()[16 + 5 * record : 16 + 6 * record]
    assert len(again.damage) == 1 and "damaged, not replayed" in again.damage[0]


@pytest.mark.parametrize("fill", [b"\0", b"\xa5"])
def test_damage_across_more_records_than_the_number_search_tries_loses_only_them(tmp_path, fill):
    # A lost disk block reads as zeros; other damage as anything. Either may take hundreds of
    # small records with it: the records after it are still found.
    wal = Wal(tmp_path, segment_bytes=1 << 20)
    wal.open_segment(first_file=3)
    wal.append([(i, "http", [b"r%04d\n" % i]) for i in range(600)])
    wal.close()
    (segment,) = tmp_path.glob("*.wal")
    record = (segment.stat().st_size - 16) // 600  # every record is the same size here
    data = bytearray(segment.read_bytes())
    start, end = 16 + 100 * record + 3, 16 + 400 * record - 5
    data[start:end] = fill * (end - start)
    segment.write_bytes(bytes(data))
    again = Wal(tmp_path, segment_bytes=1 << 20)
    assert [r.seq for r in again.recover()] == [*range(100), *range(400, 600)]
    assert again.next_seq == 600
    (kept,) = (tmp_path / "damaged").iterdir()
    assert len(kept.read_bytes()) == 300 * record


def test_a_damaged_segment_header_loses_no_record(tmp_path):
    segment = logged_segment(tmp_path)
    flip(segment, 2)
    again = Wal(tmp_path, segment_bytes=1 << 20)
    assert again.first_file_on_disk() == 0  # every store file is checked on replay
    assert [r.seq for r in again.recover()] == list(range(20))
    assert "header damaged" in again.damage[0]


def test_damage_in_a_closed_segment_is_kept_and_the_rest_replayed(tmp_path):
    wal = Wal(tmp_path, segment_bytes=1 << 20)
    wal.open_segment(first_file=0)
    wal.append([(i, "http", [b"a%d\n" % i]) for i in range(10)])
    wal.open_segment(first_file=0)
    wal.append([(i, "http", [b"b%d\n" % i]) for i in range(10, 15)])
    wal.close()
    first = min(tmp_path.glob("*.wal"))
    first.write_bytes(first.read_bytes()[:-5])  # the closed segment's last record cut short
    again = Wal(tmp_path, segment_bytes=1 << 20)
    assert [r.seq for r in again.recover()] == [*range(9), *range(10, 15)]
    assert "cut short" in again.damage[0]
    assert len(list((tmp_path / "damaged").iterdir())) == 1


def test_a_start_after_a_crash_right_after_a_rotation_keeps_its_own_segment(tmp_path):
    wal = Wal(tmp_path, segment_bytes=1 << 20)
    wal.open_segment(first_file=0)
    wal.append([(1, "http", [b"a\n"])])
    wal.open_segment(first_file=0)  # rotated, then killed before the next record
    wal._close_fd()

    again = Wal(tmp_path, segment_bytes=1 << 20)
    assert [r.payload for r in again.recover()] == [b"a\n"]
    again.open_segment(first_file=0)
    again.release_recovered()  # the replay was committed
    again.append([(2, "http", [b"b\n"])])
    again.close()
    third = Wal(tmp_path, segment_bytes=1 << 20)
    assert [r.payload for r in third.recover()] == [b"b\n"]
