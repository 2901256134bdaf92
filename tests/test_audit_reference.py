"""The plain-Python reference of the audit chain against the golden vectors the Rust tests also
check (rust/src/audit/tests.rs), and qlingest.audit's store verification on real Parquet."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import audit_reference as ref

pl = pytest.importorskip("polars")
_core = pytest.importorskip("qlingest._core")

GOLDEN_HASHES = [
    "d4085545c48002789761bff9456500ab19494f7ae1b7a1e72ff6d27fad98e84c",
    "0b60c866a04a09ebcab53c3d63aa79ca235d6be85a4d46f4246789e6e7e36c84",
    "6f3d7dc975cb150248904b1c8ccb45b27bce21bfd2a25ac74784bd956cd65a42",
]
GOLDEN_FILE = "hot/category=security.audit_logs/date=2024-01-02/hour=03/part-w0-1.parquet"
# The golden rows span a century, so the hand-built stores file them under no date and hour
# (verification checks that a file's timestamps lie in the hour its path names).
STORE_DIR = "hot/category=security.audit_logs"
GOLDEN_SEAL = "5d03e30028c08b3b9cd17d7bfe9a5b2e5d04bd4a8ff1ffe040969c0f3655a829"
GOLDEN_BIG_SEQ_HASH = "043bbc3d7bb4ad1f08c08987aa30e31e6ef4fc51d63d722d8ef30e261f242f3d"
GOLDEN_RECORD_1 = (
    '{"audit_chain":"w0","audit_prev_hash":"' + "0" * 64 + '","audit_seq":1,'
    '"category":"security.audit_logs","cost_center":null,"feature":null,'
    '"fields":"{\\"action\\":\\"login\\",\\"ip\\":\\"10.0.0.1\\"}","level":"info",'
    '"message":"login ok \\"quoted\\"\\n\\u0001é😀","observed_at":"2024-01-02T03:04:05.200000000Z",'
    '"parent_span_id":null,"revenue":null,"sample_rate":1,"service":"auth","session_id":null,'
    '"span_id":null,"stack":null,"timestamp":"2024-01-02T03:04:05.123456789Z","trace_id":null,'
    '"user_id":"u-42","user_tier":"gold"}'
)
LEVELS = ["debug", "info", "warn", "error", "critical"]
STRINGS = [
    "category", "service", "trace_id", "span_id", "parent_span_id", "user_id", "session_id",
    "message", "stack", "feature", "cost_center", "user_tier", "fields",
]  # fmt: skip


def golden_rows() -> list[dict]:
    """The three golden events of rust/src/audit/tests.rs."""
    return [
        {
            "timestamp": 1_704_164_645_123_456_789,
            "observed_at": 1_704_164_645_200_000_000,
            "level": "info",
            "category": "security.audit_logs",
            "service": "auth",
            "user_id": "u-42",
            "message": 'login ok "quoted"\n\x01é😀',
            "fields": '{"action":"login","ip":"10.0.0.1"}',
            "user_tier": "gold",
            "sample_rate": 1.0,
        },
        {
            "timestamp": -1,
            "observed_at": 0,
            "level": "critical",
            "category": "security.audit_logs",
            "service": "iam",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "message": "permission denied",
            "fields": "{}",
            "revenue": 1e21,
            "sample_rate": 0.1,
        },
        {
            "timestamp": 4_102_444_799_999_999_999,
            "observed_at": 1_000_000_000,
            "level": None,
            "category": "security.audit_logs",
            "service": "\u2028svc\t",
            "user_id": "",
            "fields": '{"k":[1,2.5,null]}',
            "revenue": -1.5e-7,
            "sample_rate": 123_456_789.125,
        },
    ]


class TestGoldenVectors:
    def test_canonical_record(self):
        row = ref.chain(golden_rows(), "w0")[0]
        assert ref.canonical(row).decode() == GOLDEN_RECORD_1

    def test_chain_hashes(self):
        assert [r["audit_hash"] for r in ref.chain(golden_rows(), "w0")] == GOLDEN_HASHES

    def test_seal(self):
        time_ns = 1_704_164_645_000_000_000
        assert ref.seal(b"k3y", "w0", 3, GOLDEN_HASHES[2], time_ns, GOLDEN_FILE) == GOLDEN_SEAL

    def test_sequence_beyond_2_pow_53(self):
        row = ref.chain(golden_rows()[:1], "w1", head=(2**53 - 1, GOLDEN_HASHES[2]))[0]
        assert b'"audit_seq":"9007199254740992"' in ref.canonical(row)
        assert row["audit_hash"] == GOLDEN_BIG_SEQ_HASH


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"), (-0.0, "0"), (1.0, "1"), (-1.5, "-1.5"), (0.1, "0.1"),
        (123_456_789.125, "123456789.125"), (1e20, "100000000000000000000"), (1e21, "1e+21"),
        (1.5e21, "1.5e+21"), (1e-6, "0.000001"), (1e-7, "1e-7"), (-1.5e-7, "-1.5e-7"),
        (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
        (9_007_199_254_740_993.0, "9007199254740992"), (0.0001234, "0.0001234"),
        (1 / 3, "0.3333333333333333"), (float("nan"), '"NaN"'), (float("-inf"), '"-Infinity"'),
    ],
)  # fmt: skip
def test_floats_take_the_ecmascript_form(value, text):
    assert ref.jcs_float(value) == text


def test_keys_sort_by_utf16_code_units():
    keys = ["\uffff", "\U00010000", "a", "B", "\ue000", "😀", "aa", ""]
    assert sorted(keys, key=ref.utf16_key) == [
        "",
        "B",
        "a",
        "aa",
        "\U00010000",
        "😀",
        "\ue000",
        "\uffff",
    ]


# ---- stored Parquet and qlingest.audit ----


def load_audit_module():
    """qlingest.audit straight from its file, so these tests need no compiled extension."""
    path = Path(__file__).parents[1] / "python" / "qlingest" / "audit.py"
    spec = importlib.util.spec_from_file_location("qlingest_audit_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def frame_of(rows: list[dict]) -> pl.DataFrame:
    """Rows as a frame with the stored types of the event schema."""
    columns = {
        "timestamp": pl.Series([r["timestamp"] for r in rows], dtype=pl.Int64),
        "observed_at": pl.Series([r["observed_at"] for r in rows], dtype=pl.Int64),
        "level": pl.Series([r.get("level") for r in rows], dtype=pl.Enum(LEVELS)),
        **{c: pl.Series([r.get(c) for r in rows], dtype=pl.String) for c in STRINGS},
        "revenue": pl.Series([r.get("revenue") for r in rows], dtype=pl.Float64),
        "sample_rate": pl.Series([r["sample_rate"] for r in rows], dtype=pl.Float64),
        "audit_chain": pl.Series([r.get("audit_chain") for r in rows], dtype=pl.String),
        "audit_seq": pl.Series([r.get("audit_seq") for r in rows], dtype=pl.UInt64),
        "audit_prev_hash": pl.Series([r.get("audit_prev_hash") for r in rows], dtype=pl.String),
        "audit_hash": pl.Series([r.get("audit_hash") for r in rows], dtype=pl.String),
    }
    frame = pl.DataFrame(columns)
    return frame.with_columns(
        pl.col(t).cast(pl.Datetime("ns", "UTC")) for t in ("timestamp", "observed_at")
    )


def many_rows(n: int) -> list[dict]:
    base = golden_rows()
    return [
        dict(base[i % 3], message=f"event {i}", timestamp=base[i % 3]["timestamp"] + i)
        for i in range(n)
    ]


@pytest.fixture
def store(tmp_path):
    """A store of two files of chain w0 (8 records, timestamp-sorted) with sealed checkpoints."""
    audit = load_audit_module()
    rows = ref.chain(many_rows(8), "w0")
    files = []
    for part, chunk in enumerate((rows[:5], rows[5:]), start=1):
        rel = f"{STORE_DIR}/part-w0-{part}.parquet"
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        frame_of(chunk).sort("timestamp").write_parquet(path, compression="zstd")
        head = chunk[-1]
        audit.append_checkpoint(
            tmp_path, "w0", head["audit_seq"], head["audit_hash"], rel, key=b"k", time_ns=part
        )
        files.append(path)
    return audit, tmp_path, files


def test_stored_rows_hash_back_to_their_stored_hashes(tmp_path):
    rows = ref.chain(golden_rows(), "w0")
    path = tmp_path / "part.parquet"
    frame_of(rows).write_parquet(path, compression="zstd")
    stored = ref.rows_from_frame(pl.read_parquet(path))
    assert [ref.link_hash(r["audit_prev_hash"], r) for r in stored] == GOLDEN_HASHES
    assert ref.first_broken_link(stored) is None


def test_rust_chain_agrees_with_the_reference_byte_for_byte():
    rows = golden_rows() + many_rows(5)
    expected = ref.chain(rows, "w0")
    frame = frame_of(rows)
    chained = pl.DataFrame(_core.AuditChain("w0").append(frame))
    assert chained["audit_hash"].to_list() == [r["audit_hash"] for r in expected]
    assert chained["audit_seq"].to_list() == list(range(1, len(rows) + 1))


def test_package_seal_agrees_with_the_reference():
    audit = load_audit_module()
    assert (
        audit.seal(b"k3y", "w0", 3, GOLDEN_HASHES[2], 1_704_164_645_000_000_000, GOLDEN_FILE)
        == GOLDEN_SEAL
    )


class TestVerifyStore:
    def test_an_empty_store_verifies(self, tmp_path):
        audit = load_audit_module()
        report = audit.verify(tmp_path)
        assert report.ok and report.chains == [] and audit.recover_head(tmp_path, "w0") is None

    def test_an_untouched_store_verifies(self, store):
        audit, root, _ = store
        report = audit.verify(root, require_seals=True, key=b"k")
        assert report.ok and report.records == 8
        assert report.chains[0].head == (8, ref.chain(many_rows(8), "w0")[-1]["audit_hash"])
        assert report.chains[0].sealed
        assert audit.recover_head(root, "w0") == report.chains[0].head

    def test_without_a_key_the_chain_is_intact_but_unsealed(self, store):
        audit, root, _ = store
        report = audit.verify(root)
        assert report.ok and not report.chains[0].sealed
        with pytest.raises(ValueError, match="require_seals"):
            audit.verify(root, require_seals=True)

    @pytest.mark.parametrize(
        ("tamper", "kind", "seq"),
        [
            (lambda f: f.with_columns(pl.when(pl.col("audit_seq") == 2).then(pl.lit("x")).otherwise("message").alias("message")), "modified", 2),
            (lambda f: f.filter(pl.col("audit_seq") != 3), "deleted", 3),
            (lambda f: pl.concat([f, f.filter(pl.col("audit_seq") == 4).with_columns(user_id=pl.lit("root"))]), "inserted", 4),
            (lambda f: f.with_columns(audit_seq=pl.when(pl.col("audit_seq") == 1).then(2).when(pl.col("audit_seq") == 2).then(1).otherwise("audit_seq").cast(pl.UInt64)), "reordered", 1),
        ],
    )  # fmt: skip
    def test_each_tamper_of_a_stored_file_is_found(self, store, tamper, kind, seq):
        audit, root, files = store
        tamper(pl.read_parquet(files[0])).write_parquet(files[0])
        failure = audit.verify(root, key=b"k").chains[0].failure
        assert (failure.kind, failure.seq) == (kind, seq)
        assert failure.file == files[0].relative_to(root).as_posix()

    def test_a_cut_off_tail_is_truncated(self, store):
        audit, root, files = store
        pl.read_parquet(files[1]).filter(pl.col("audit_seq") < 7).write_parquet(files[1])
        failure = audit.verify(root, key=b"k").chains[0].failure
        assert (failure.kind, failure.seq, failure.expected) == ("truncated", 7, "8")

    def test_a_forged_or_missing_seal_is_found(self, store):
        audit, root, _ = store
        log = root / "audit" / "checkpoints-w0.ndjson"
        first, second = log.read_text().splitlines()
        log.write_text(first + "\n" + json.dumps(dict(json.loads(second), seal="00" * 32)) + "\n")
        assert audit.verify(root, key=b"k").chains[0].failure.kind == "seal_invalid"
        log.write_text(json.dumps(dict(json.loads(first), seal=None)) + "\n" + second + "\n")
        assert audit.verify(root, key=b"k").chains[0].failure.kind == "seal_missing"

    def test_a_crash_before_the_checkpoint_is_repaired_on_restart(self, store):
        audit, root, _ = store
        log = root / "audit" / "checkpoints-w0.ndjson"
        log.write_text(log.read_text().splitlines()[0] + "\n")
        assert (
            audit.verify(root, require_seals=True, key=b"k").chains[0].failure.kind
            == "seal_missing"
        )
        head = audit.start_head(root, "w0", key=b"k")
        assert head == audit.recover_head(root, "w0") and head[0] == 8
        entry = audit.read_checkpoints(root)[-1]
        assert (entry["seq"], entry["file"].endswith("part-w0-2.parquet")) == (8, True)
        # Up to date now: a second start appends nothing.
        assert audit.start_head(root, "w0", key=b"k") == head
        assert len(log.read_text().splitlines()) == 2
        assert audit.verify(root, require_seals=True, key=b"k").ok

    def test_two_writers_keep_two_chains(self, store):
        audit, root, _ = store
        rows = ref.chain(many_rows(3), "w1")
        rel = f"{STORE_DIR}/part-w1-1.parquet"
        frame_of(rows).sort("timestamp").write_parquet(root / rel)
        audit.append_checkpoint(root, "w1", 3, rows[-1]["audit_hash"], rel, key=b"k")
        # A plain row lives in its own category's partition: the path is its category.
        plain = dict(golden_rows()[0], category="application.request_logs")
        other = root / rel.replace("security.audit_logs", "application.request_logs")
        other.parent.mkdir(parents=True)
        frame_of([plain]).write_parquet(other.with_name("part-w1-2.parquet"))
        report = audit.verify(root, require_seals=True, key=b"k")
        assert report.ok and [(c.chain, c.records) for c in report.chains] == [("w0", 8), ("w1", 3)]

    def test_an_unchained_audit_row_is_inserted(self, store):
        audit, root, files = store
        frame = pl.read_parquet(files[0])
        extra = frame.head(1).with_columns(
            pl.lit(None, pl.String).alias(c)
            for c in ("audit_chain", "audit_prev_hash", "audit_hash")
        )
        pl.concat(
            [frame, extra.with_columns(pl.lit(None, pl.UInt64).alias("audit_seq"))]
        ).write_parquet(files[0])
        report = audit.verify(root, key=b"k")
        assert [(c.chain, c.failure and c.failure.kind) for c in report.chains] == [
            ("w0", None),
            (None, "inserted"),
        ]

    def test_a_torn_last_checkpoint_line_is_ignored(self, store):
        audit, root, _ = store
        with open(root / "audit" / "checkpoints-w0.ndjson", "a") as log:
            log.write('{"chain":"w0","se')
        assert len(audit.read_checkpoints(root)) == 2
        assert audit.verify(root, key=b"k").ok
