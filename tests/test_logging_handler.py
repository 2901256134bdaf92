"""Embedded use: `Emitter.emit` and the `logging.Handler` feed a background pipeline."""

from __future__ import annotations

import gc
import json
import logging
import queue
import subprocess
import sys
import threading
import time
import weakref

import polars as pl
import pytest
from qlingest.config import load_config
from qlingest.logging import Emitter, EmitterClosedError, Handler
from qlingest.pipeline import Pipeline


def stored(data_dir) -> pl.DataFrame:
    return pl.read_parquet(f"{data_dir}/hot/**/*.parquet", hive_partitioning=True)


def config():
    return load_config(**{"store.fsync": False})


def test_emitted_dicts_and_bytes_are_stored(tmp_path):
    with Emitter(tmp_path, config()) as emitter:
        emitter.emit({"ts": 1736899200, "level": "WARNING", "msg": "disk full", "svc": 1})
        emitter.emit(b'{"ts": 1736899201, "level": "info", "message": "ok"}')
    frame = stored(tmp_path).sort("timestamp")
    assert frame["message"].to_list() == ["disk full", "ok"]
    assert frame["level"].cast(pl.String).to_list() == ["warn", "info"]


def test_small_batches_are_handed_over_as_they_fill(tmp_path):
    with Emitter(tmp_path, config(), batch_bytes=200, queue_batches=1000) as emitter:
        for i in range(500):
            emitter.emit({"timestamp": 1736899200 + i, "level": "info", "message": f"m{i}"})
        emitter.flush()
        assert emitter.pipeline.summary.events_read == 500
    assert stored(tmp_path).height == 500
    assert emitter.dropped_events == 0


def test_a_quiet_emitter_ingests_its_partial_buffer(tmp_path):
    with Emitter(tmp_path, config(), flush_interval=0.05) as emitter:
        emitter.emit({"message": "lonely"})
        done = threading.Event()
        for _ in range(100):
            if emitter.pipeline.summary.events_read == 1:
                done.set()
                break
            done.wait(0.05)
        assert done.is_set()


def test_emitted_events_are_committed_within_the_commit_interval(tmp_path):
    # Session 10: rows handed over waited in the pipeline's buffers until a partition filled
    # or the emitter closed, so nothing emitted was on disk, or queryable, before that.
    with Emitter(tmp_path, config(), flush_interval=0.05, commit_interval=0.1) as emitter:
        emitter.emit({"ts": 1736899200, "message": "early"})
        deadline = time.monotonic() + 10
        while not list(tmp_path.glob("hot/**/*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stored(tmp_path)["message"].to_list() == ["early"]
        assert emitter.pipeline.buffered_rows == 0
        emitter.emit({"ts": 1736899201, "message": "later"})
    assert sorted(stored(tmp_path)["message"].to_list()) == ["early", "later"]


def test_the_commit_interval_defaults_to_the_serve_flush_interval(tmp_path):
    cfg = load_config(**{"store.fsync": False, "serve.flush_interval_s": 7.5})
    with Emitter(tmp_path, cfg) as emitter:
        assert emitter.commit_interval == 7.5


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    gate = threading.Event()

    class SlowPipeline(Pipeline):
        def process(self, data, **kwargs):
            gate.wait(5)
            return super().process(data, **kwargs)

    pipeline = SlowPipeline(tmp_path, config())
    emitter = Emitter(pipeline=pipeline, batch_bytes=1, queue_batches=2)
    for i in range(10):
        emitter.emit({"message": f"e{i}"})
    assert 0 < emitter.dropped_events <= 10 - 2
    gate.set()
    emitter.close()
    assert pipeline.summary.events_read == 10 - emitter.dropped_events


def test_bad_input_is_dead_lettered_not_raised(tmp_path):
    with Emitter(tmp_path, config()) as emitter:
        emitter.emit(b"not json")
        emitter.emit({"message": "fine"})
    assert emitter.error is None
    assert emitter.pipeline.summary.dead_lettered == 1
    assert stored(tmp_path)["message"].to_list() == ["fine"]


class RecordingPipeline:
    """Keeps each batch the emitter hands over, as bytes; ``gate`` holds the first back."""

    buffered_rows = 0

    def __init__(self, gate: threading.Event | None = None):
        self.batches: list[bytes] = []
        self.gate = gate
        self.busy = threading.Event()

    def process(self, data, **kwargs):
        self.busy.set()
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append(data)

    def close(self):
        pass


class TestBatchesHandedOver:
    """Issue 7: the cheaper ``emit`` keeps what the pipeline is given byte for byte."""

    def test_a_batch_is_the_events_as_ndjson_each_ending_in_a_newline(self):
        pipeline = RecordingPipeline()
        with Emitter(pipeline=pipeline) as emitter:
            emitter.emit({"message": "a", "n": 1.5, "http": {"status": 201}})
            emitter.emit(b'{"message":"raw"}')
            emitter.emit({"message": "\u00e9"})
        assert pipeline.batches == [
            b'{"message":"a","n":1.5,"http":{"status":201}}\n'
            b'{"message":"raw"}\n'
            b'{"message":"\xc3\xa9"}\n'
        ]

    def test_batches_are_handed_over_once_they_reach_batch_bytes(self):
        pipeline = RecordingPipeline()
        line = b'{"message":"0123456789"}'  # 24 bytes, 25 with its newline
        with Emitter(pipeline=pipeline, batch_bytes=50, queue_batches=100) as emitter:
            for _ in range(5):
                emitter.emit(line)
        assert pipeline.batches == [(line + b"\n") * 2, (line + b"\n") * 2, line + b"\n"]

    def test_events_from_many_threads_are_all_handed_over(self):
        pipeline = RecordingPipeline()
        with Emitter(pipeline=pipeline, batch_bytes=4096, queue_batches=10_000) as emitter:

            def emit_many(thread):
                for i in range(2000):
                    emitter.emit({"thread": thread, "i": i})

            threads = [threading.Thread(target=emit_many, args=(t,)) for t in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        lines = b"".join(pipeline.batches).splitlines()
        assert len(lines) == 4 * 2000 and emitter.dropped_events == 0
        assert sorted(lines) == sorted(
            b'{"thread":%d,"i":%d}' % (t, i) for t in range(4) for i in range(2000)
        )

    def test_a_flush_that_times_out_leaves_its_events_pending(self):
        gate = threading.Event()
        pipeline = RecordingPipeline(gate)
        emitter = Emitter(pipeline=pipeline, batch_bytes=1, queue_batches=1)
        emitter.emit(b'{"n":0}')  # taken by the worker, which waits at the gate
        assert pipeline.busy.wait(5)
        emitter.emit(b'{"n":1}')  # fills the queue
        emitter.batch_bytes = 1 << 20
        emitter.emit(b'{"n":2}')
        with pytest.raises(queue.Full):
            emitter.flush(timeout=0.01)
        gate.set()
        emitter.close()
        assert pipeline.batches == [b'{"n":0}\n', b'{"n":1}\n', b'{"n":2}\n']
        assert emitter.dropped_events == 0


class TestHandler:
    @pytest.fixture
    def logger(self, tmp_path):
        handler = Handler(tmp_path, config(), service="checkout")
        log = logging.getLogger(f"qlingest-test-{tmp_path.name}")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        yield log
        log.removeHandler(handler)
        handler.close()

    def test_records_become_events(self, logger, tmp_path):
        logger.warning("card declined for %s", "order-7", extra={"order": 7})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("payment failed")
        logger.handlers[0].close()
        frame = stored(tmp_path).sort("timestamp")
        assert frame["message"].to_list() == ["card declined for order-7", "payment failed"]
        assert frame["level"].cast(pl.String).to_list() == ["warn", "error"]
        assert frame["service"].to_list() == ["checkout", "checkout"]
        assert "ValueError: boom" in frame["stack"][1]
        assert '"order":7' in frame["fields"][0].replace(" ", "")
        assert logger.name in frame["fields"][0]

    def test_stack_info_travels_in_stack(self, logger, tmp_path):
        # Breaker report s5, minor: stack_info was dropped.
        try:
            raise ValueError("boom")
        except ValueError:
            logger.error("with both", exc_info=True, stack_info=True)
        logger.warning("where am I", stack_info=True)
        logger.handlers[0].close()
        stacks = stored(tmp_path).sort("timestamp")["stack"].to_list()
        assert "ValueError: boom" in stacks[0] and "Stack (most recent call last)" in stacks[0]
        assert stacks[1].startswith("Stack (most recent call last)")
        assert "test_stack_info_travels_in_stack" in stacks[1]

    def test_extra_cannot_override_the_records_time_level_or_message(self, logger, tmp_path):
        extra = {"level": "debug", "ts": 0, "body": "forged", "service": "other", "user_id": "u1"}
        logger.warning("real", extra=extra)
        logger.handlers[0].close()
        row = stored(tmp_path).row(0, named=True)
        assert (row["message"], row["level"], row["service"]) == ("real", "warn", "checkout")
        assert row["timestamp"].year > 2000
        # Columns the handler does not fill may be set on purpose; the rest are kept as fields.
        assert row["user_id"] == "u1"
        assert '"extra":{' in row["fields"].replace(" ", "") and "forged" in row["fields"]

    def test_dict_and_list_extras_are_kept_as_nested_fields(self, logger, tmp_path):
        # Attack report s9: extras that were dicts or lists were dropped.
        logger.info("x", extra={"ctx": {"a": 1}, "tags": ["a"], "pair": (1, "b")})
        logger.handlers[0].close()
        fields = json.loads(stored(tmp_path)["fields"][0])
        assert (fields["ctx"], fields["tags"], fields["pair"]) == ({"a": 1}, ["a"], [1, "b"])

    def test_an_extra_that_cannot_be_encoded_is_left_out_not_the_record(self, logger, tmp_path):
        logger.info("kept", extra={"bad": {"o": object()}, "good": [1]})
        logger.handlers[0].close()
        row = stored(tmp_path).row(0, named=True)
        assert row["message"] == "kept"
        assert json.loads(row["fields"])["good"] == [1] and "bad" not in row["fields"]

    @pytest.mark.parametrize(
        ("number", "level"),
        [
            (1, "debug"),
            (5, "debug"),
            (15, "debug"),
            (25, "info"),
            (35, "warn"),
            (45, "error"),
            (50, "critical"),
            (55, "critical"),
            (100, "critical"),
        ],
    )
    def test_a_level_number_maps_to_the_standard_level_at_or_below_it(
        self, logger, tmp_path, number, level
    ):
        # Attack report s9: a record above CRITICAL (55) was stored with level null.
        logger.setLevel(1)
        logger.log(number, "m")
        logger.handlers[0].close()
        assert stored(tmp_path)["level"].cast(pl.String).to_list() == [level]


def test_a_handler_on_the_root_logger_lets_the_program_exit(tmp_path):
    # The pipeline warns (no hash key) on the emitter's thread while logging.shutdown holds
    # the handler's lock and waits for it to flush: the warning must not come back through
    # the handler, or the program never exits.
    script = f"""
import logging, os
os.environ.pop("QLINGEST_HASH_KEY", None)
os.environ.pop("QLINGEST_AUDIT_KEY", None)
from qlingest.logging import Handler
logging.getLogger().addHandler(Handler({str(tmp_path)!r}, service="checkout"))
logging.getLogger().setLevel(logging.INFO)
logging.getLogger("app").warning("hello")
"""
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert stored(tmp_path)["message"].to_list() == ["hello"]


class TestEventsThatCannotBeEncoded:
    """Breaker report s5 item 5: a failed encoding left partial bytes that corrupted the next
    event, and logging's own error report printed a card number unredacted."""

    @pytest.mark.parametrize("bad", [{"msg": "x", "obj": object()}, {"msg": "lone \ud800"}])
    def test_the_failure_raises_counts_and_spares_the_next_event(self, tmp_path, bad):
        with Emitter(tmp_path, config()) as emitter:
            emitter.emit({"message": "before"})
            with pytest.raises((TypeError, UnicodeEncodeError)):
                emitter.emit(bad)
            emitter.emit({"message": "after"})
        assert emitter.rejected_events == 1
        assert emitter.pipeline.summary.dead_lettered == 0
        assert sorted(stored(tmp_path)["message"].to_list()) == ["after", "before"]

    def test_the_handler_reports_one_redacted_line_and_keeps_going(self, tmp_path, capsys):
        handler = Handler(tmp_path, config())
        log = logging.getLogger(f"qlingest-test-{tmp_path.name}")
        log.propagate = False
        log.addHandler(handler)
        name = "rep\udcffort.pdf"  # os.fsdecode(b"rep\xffort.pdf")
        log.warning("upload %s by card %s", name, "4111 1111 1111 1111")
        log.warning("innocent next record")
        log.removeHandler(handler)
        handler.close()

        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "a log record was not stored" in err
        assert "UnicodeEncodeError" in err and log.name in err
        assert "4111" not in err and "ort.pdf" not in err
        assert stored(tmp_path)["message"].to_list() == ["innocent next record"]
        assert handler.emitter.rejected_events == 1

    def test_an_error_quoting_a_secret_is_redacted_in_the_note(self, tmp_path, capsys):
        class Unprintable:
            def __str__(self):
                raise ValueError("cannot print card 4111 1111 1111 1111")

        handler = Handler(tmp_path, config())
        record = logging.makeLogRecord({"name": "app", "msg": "%s", "args": (Unprintable(),)})
        handler.handle(record)
        handler.close()

        err = capsys.readouterr().err
        assert "ValueError: cannot print card" in err and "4111" not in err


class TestExitAndClose:
    """Breaker report s5, item 7: an emitter never closed lost its events at exit, and
    ``emit`` after ``close`` was accepted and dropped."""

    def test_an_emitter_left_open_is_stored_at_exit(self, tmp_path):
        script = f"""
from qlingest.config import load_config
from qlingest.logging import Emitter
emitter = Emitter({str(tmp_path)!r}, load_config(**{{"store.fsync": False}}))
for i in range(10):
    emitter.emit({{"message": f"exit-{{i}}", "category": f"app.c{{i % 3}}"}})
"""
        done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
        assert b"not stored" not in done.stderr
        # Three partitions: their files are committed together, after the interpreter's
        # thread pools stopped taking work.
        assert sorted(stored(tmp_path)["message"].to_list()) == [f"exit-{i}" for i in range(10)]

    def test_records_logged_by_an_earlier_exit_hook_are_stored(self, tmp_path):
        # Exit hooks run last-registered first: the application's runs after qlingest's and
        # before logging.shutdown, which closes the handler and its emitter.
        script = f"""
import atexit, logging
atexit.register(lambda: logging.getLogger("app").warning("last words"))
from qlingest.config import load_config
from qlingest.logging import Handler
handler = Handler({str(tmp_path)!r}, load_config(**{{"store.fsync": False}}))
logging.getLogger("app").addHandler(handler)
logging.getLogger("app").warning("hello")
"""
        done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
        assert b"not stored" not in done.stderr
        assert sorted(stored(tmp_path)["message"].to_list()) == ["hello", "last words"]

    def test_an_unencodable_event_after_close_is_refused_as_closed(self, tmp_path):
        emitter = Emitter(tmp_path, config())
        emitter.close()
        with pytest.raises(EmitterClosedError, match="closed"):
            emitter.emit({"message": "late", "obj": object()})
        assert emitter.rejected_events == 1

    def test_emit_after_close_raises_and_counts(self, tmp_path):
        emitter = Emitter(tmp_path, config())
        emitter.close()
        with pytest.raises(EmitterClosedError, match="closed"):
            emitter.emit({"message": "late"})
        assert emitter.rejected_events == 1
        emitter.flush()
        emitter.close()

    def test_a_closed_emitter_is_not_kept_alive(self, tmp_path):
        emitter = Emitter(tmp_path, config())
        emitter.close()
        ref = weakref.ref(emitter)
        del emitter
        gc.collect()
        assert ref() is None


class TestFullDiskAtClose:
    """Breaker report s5, second round: on a full disk a Handler printed a long traceback at
    exit and ``Emitter.close`` raised with the loss neither kept nor counted."""

    @staticmethod
    def full(store) -> None:
        def refuse(path, frame, metadata):
            raise OSError(28, "No space left on device")

        store._write_parquet = refuse

    def test_emitter_close_raises_keeps_the_error_and_counts_the_loss(self, tmp_path):
        emitter = Emitter(tmp_path, load_config(**{"store.fsync": False}))
        for i in range(3):
            emitter.emit({"message": f"m{i}"})
        self.full(emitter.pipeline.store)
        with pytest.raises(OSError, match="No space"):
            emitter.close()
        assert isinstance(emitter.error, OSError) and emitter.dropped_events == 3

    def test_handler_close_prints_one_redacted_line(self, tmp_path, capsys):
        handler = Handler(tmp_path, load_config(**{"store.fsync": False}))
        logger = logging.getLogger("full-disk-test")
        logger.addHandler(handler)
        try:
            logger.warning("card 4111 1111 1111 1111 charged")
            handler.flush()
            self.full(handler.emitter.pipeline.store)
            handler.close()
        finally:
            logger.removeHandler(handler)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "4111" not in err
        assert "1 log records were not stored at close: OSError" in err
        assert handler.emitter.dropped_events == 1


class TestFullDiskWhileRunning:
    """Attack report s13 item 3: on a full disk an emitter buffered every event in memory
    (2.36 GB after 8 s on a 3 MB tmpfs), silently."""

    def test_memory_stays_bounded_the_loss_is_counted_and_said_once(self, tmp_path, capsys):
        cfg = load_config(**{"store.fsync": False, "store.max_buffer_bytes": 64 << 10})
        emitter = Emitter(tmp_path, cfg, batch_bytes=4096, queue_batches=4, flush_interval=0.05)
        store = emitter.pipeline.store
        write = store._write_parquet
        TestFullDiskAtClose.full(store)
        peak = 0
        for i in range(20_000):
            emitter.emit({"message": f"event {i} password=hunter2 " + "x" * 100})
            if i % 500 == 0:
                time.sleep(0.01)
                peak = max(peak, emitter.pipeline.buffered_bytes)
        # The buffers stop at their limit plus the batch that passed it; the rest is dropped.
        assert peak < (64 << 10) * 3
        assert emitter.dropped_events > 10_000
        assert isinstance(emitter.error, OSError)
        err = capsys.readouterr().err
        assert err.count("qlingest: events could not be stored: OSError") == 1
        assert "hunter2" not in err
        # Room again: a retry commits what was kept, and new events are stored.
        store._write_parquet = write
        deadline = time.monotonic() + 10
        while emitter._failing and time.monotonic() < deadline:
            time.sleep(0.05)
        emitter.emit({"message": "after"})
        emitter.close()
        stored = pl.read_parquet(tmp_path / "hot" / "**" / "*.parquet")
        assert "after" in stored["message"].to_list()
        assert stored.height == 20_001 - emitter.dropped_events

    def test_a_close_while_waiting_for_room_returns_and_counts(self, tmp_path):
        cfg = load_config(**{"store.fsync": False, "store.max_buffer_bytes": 16 << 10})
        emitter = Emitter(tmp_path, cfg, batch_bytes=2048, queue_batches=2, flush_interval=5)
        TestFullDiskAtClose.full(emitter.pipeline.store)
        for i in range(2000):
            emitter.emit({"message": f"e{i} " + "y" * 60})
        started = time.monotonic()
        with pytest.raises(OSError, match="No space"):
            emitter.close()
        assert time.monotonic() - started < 4  # not the 5 s retry interval, nor forever
        assert emitter.dropped_events == 2000


def run_script(script: str, *args: str, hang: float = 10) -> subprocess.CompletedProcess[str]:
    """Runs ``script`` in a fresh interpreter; a hang of ``hang`` seconds ends it with a
    traceback on stderr."""
    prelude = f"import faulthandler; faulthandler.dump_traceback_later({hang}, exit=True)\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + script, *args],
        timeout=60,
        capture_output=True,
        text=True,
    )


class TestAttack7:
    """Breaker report s7: ways an application's own code (signal handlers, finalizers, odd
    settings) made the emitter hang or lose events."""

    @pytest.mark.parametrize("interval", [0, -1, float("nan")])
    @pytest.mark.parametrize("name", ["flush_interval", "commit_interval"])
    def test_an_interval_that_is_not_positive_is_refused(self, tmp_path, interval, name):
        # -1 ended the background thread with ValueError, after which close (and so the exit)
        # waited forever; 0 kept it polling at full speed.
        with pytest.raises(ValueError, match=f"{name} must be a positive number"):
            Emitter(tmp_path, config(), **{name: interval})
        assert not (tmp_path / "writers").exists()  # refused before a pipeline was built

    @pytest.mark.parametrize("then", ["return", "exit"])
    def test_a_signal_handler_closing_during_close_does_not_hang(self, tmp_path, then):
        # A SIGTERM handler that closes (and perhaps exits) landed in the program's own close:
        # the second close waited forever on the first one's lock.
        script = f"""
import signal, sys, time
from qlingest.config import load_config
from qlingest.logging import Emitter
emitter = Emitter(sys.argv[1], load_config(**{{"store.fsync": False}}), batch_bytes=10)
ingest = emitter.pipeline.process
def slow(data, **kwargs):
    time.sleep(0.3)
    return ingest(data, **kwargs)
emitter.pipeline.process = slow
for i in range(5):
    emitter.emit({{"message": f"m{{i}}"}})
def on_alarm(signum, frame):
    emitter.close()
    print("handler closed", flush=True)
    if {then!r} == "exit":
        sys.exit(0)
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.1)
emitter.close()
print("main closed", flush=True)
"""
        done = run_script(script, str(tmp_path))
        assert done.returncode == 0, done.stderr
        assert "handler closed" in done.stdout
        assert ("main closed" in done.stdout) == (then == "return")
        assert sorted(stored(tmp_path)["message"].to_list()) == [f"m{i}" for i in range(5)]

    def test_flush_on_the_background_thread_returns(self, tmp_path):
        # A finalizer that flushes, run by the collector on the background thread, waited for
        # that thread to finish the batch it was ingesting: forever, and close with it.
        script = """
import sys
from qlingest.config import load_config
from qlingest.logging import Emitter
emitter = Emitter(sys.argv[1], load_config(**{"store.fsync": False}), batch_bytes=1)
ingest = emitter.pipeline.process
def flushing(data, **kwargs):
    emitter.flush()
    return ingest(data, **kwargs)
emitter.pipeline.process = flushing
emitter.emit({"message": "a"})
emitter.emit({"message": "b"})
emitter.close()
"""
        done = run_script(script, str(tmp_path))
        assert done.returncode == 0, done.stderr
        assert sorted(stored(tmp_path)["message"].to_list()) == ["a", "b"]

    def test_a_close_inside_the_callers_own_hand_over_loses_nothing_uncounted(self, tmp_path):
        # A signal handler (or finalizer) that closes can land while emit hands a full batch
        # over: the batches still in its hands went into a queue nobody read, uncounted.
        class ClosingInside(Emitter):
            def _hand_over(self, data: bytes, events: int) -> None:
                if not self._done:
                    self.close()
                super()._hand_over(data, events)

        emitter = ClosingInside(tmp_path, config(), batch_bytes=1)
        emitter.emit({"message": "a"})
        frame = stored(tmp_path) if (tmp_path / "hot").exists() else pl.DataFrame()
        assert frame.height + emitter.dropped_events == 1

    def test_emit_on_the_background_thread_during_a_flush_on_a_full_queue_does_not_hang(
        self, tmp_path
    ):
        # A finalizer that emits, run by the collector on the background thread, while a flush
        # waits for room on a full queue: the thread waited for the flush to finish handing
        # over, and the flush for the thread to take a batch.
        script = """
import sys, time
from qlingest.config import load_config
from qlingest.logging import Emitter
emitter = Emitter(sys.argv[1], load_config(**{"store.fsync": False}), batch_bytes=1,
                  queue_batches=1)
ingest = emitter.pipeline.process
def busy(data, **kwargs):
    time.sleep(0.2)  # the queue fills meanwhile
    if b"first" in data:
        for i in range(8):  # the finalizer
            emitter.emit({"message": f"finalizer-{i}", "pad": "x" * 2000})
    return ingest(data, **kwargs)
emitter.pipeline.process = busy
emitter.emit({"message": "first"})
time.sleep(0.05)
emitter.emit({"message": "second"})  # fills the queue
emitter.batch_bytes = 1000
emitter.emit({"message": "third"})  # a partial batch, for the flush to put
emitter.flush()
emitter.close()
print("dropped", emitter.dropped_events)
"""
        done = run_script(script, str(tmp_path), hang=5)
        assert done.returncode == 0, done.stderr
        dropped = int(done.stdout.split()[-1])
        assert stored(tmp_path).height + dropped == 11

    def test_a_record_logged_by_a_finalizer_on_the_background_thread_is_stored(self, tmp_path):
        # The collector runs finalizers on whichever thread allocates, often the background
        # one: their records vanished there, counted nowhere.
        handler = Handler(tmp_path, config())
        app = logging.getLogger("attack7-finalizer")
        app.addHandler(handler)
        ingest = handler.emitter.pipeline.process

        def with_finalizer(data, **kwargs):
            if b"from a finalizer" not in data:
                app.warning("from a finalizer")
            return ingest(data, **kwargs)

        handler.emitter.pipeline.process = with_finalizer
        try:
            app.warning("first")
            handler.flush()
            handler.close()
        finally:
            app.removeHandler(handler)
        assert sorted(stored(tmp_path)["message"].to_list()) == ["first", "from a finalizer"]

    def test_an_interrupt_just_after_a_batch_is_queued_does_not_store_it_twice(self, tmp_path):
        # Ctrl-C (or any signal handler that raises) lands at the first bytecode after the
        # queue's put returned: emit raised, the batch went back in line, and was stored twice.
        class Interrupted(Emitter):
            interrupt = True

            def _hand_over(self, data: bytes, events: int) -> None:
                super()._hand_over(data, events)
                if self.interrupt:
                    self.interrupt = False
                    raise KeyboardInterrupt

        emitter = Interrupted(tmp_path, config(), batch_bytes=1)
        with pytest.raises(KeyboardInterrupt):
            emitter.emit({"message": "a"})
        emitter.emit({"message": "b"})
        emitter.close()
        assert sorted(stored(tmp_path)["message"].to_list()) == ["a", "b"]


class TestNowhereToStore:
    """Attack report s9: built without a store, an emitter or handler took every event and
    stored none (events_written 0, no error)."""

    def test_an_emitter_without_data_dir_or_pipeline_is_refused(self):
        with pytest.raises(TypeError, match="Emitter needs a data_dir"):
            Emitter()

    def test_an_emitter_on_a_decode_only_pipeline_is_refused(self):
        with pytest.raises(TypeError, match="decode-only Pipeline"):
            Emitter(pipeline=Pipeline())

    def test_a_handler_without_data_dir_or_emitter_is_refused(self):
        with pytest.raises(TypeError, match="Handler needs a data_dir"):
            Handler(service="checkout")


def test_a_kept_error_does_not_keep_what_the_frames_that_raised_it_held():
    """Attack report s13 (round 2) item 3: each failed commit retry on a full disk kept ~28 MB
    of rows alive in a cycle (the error raised in an ``except`` block and its frame) until the
    cycle collector ran: an emitter's memory climbed with every retry."""
    from qlingest.exceptions import drop_locals

    class Rows:
        pass

    def write(rows: Rows) -> None:
        try:
            raise OSError(28, "No space left on device")
        except OSError as e:
            raise OSError(28, "No space left on device", "part-1.parquet") from e

    rows = Rows()
    held = weakref.ref(rows)
    gc.disable()
    try:
        try:
            write(rows)
        except OSError as e:
            kept = e
        del rows
        assert held() is not None  # the cycle through the raising frame holds the rows
        drop_locals(kept)
        assert held() is None
        assert "part-1.parquet" in str(kept) and kept.__traceback__ is not None
    finally:
        gc.enable()
