"""Every sample under ../shared/data ingests: written + dead-lettered == non-empty lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from qlingest.config import load_config
from qlingest.formats import resolve
from qlingest.pipeline import Pipeline
from qlingest.query import scan

CASES = [
    ("zeek/smtp.ndjson", "ndjson", None),
    ("zeek/ntlm.ndjson", "ndjson", None),
    ("zeek/ssh.ndjson", "ndjson", None),
    ("zeek/software.ndjson", "ndjson", None),
    ("zeek/notice.ndjson", "ndjson", None),
    ("otrf/cloudtrail_ec2_proxy_s3_exfiltration.ndjson", "ndjson", None),
    ("otrf/winevent_psh_windows_vault_web_credentials.ndjson", "ndjson", None),
    ("otrf/syslog_auoms_auditd_log4shell.ndjson", "ndjson", None),
    ("container/docker_json_file_beats_build.log", "ndjson", None),
    ("loghub/OpenSSH_2k.log", "text", "@syslog"),
    ("loghub/Linux_2k.log", "text", "@syslog"),
    ("loghub/HDFS_2k.log", "text", "@hdfs"),
    ("loghub/Apache_2k.log", "text", "@apache-error"),
    ("loghub/Zookeeper_2k.log", "text", "@log4j"),
    ("loghub/OpenSSH_2k.log_structured.csv", "text", None),
    ("elastic/apache_access_first3000.log", "text", "@apache-access"),
    ("zeek/ssh_zeek_tsv.log", "text", "@zeek-tsv"),
]


@pytest.mark.parametrize(("name", "fmt", "preset"), CASES, ids=[c[0] for c in CASES])
def test_sample_file_ingests_completely(shared_data, tmp_path, name, fmt, preset):
    path = shared_data / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    non_empty = sum(1 for line in path.read_bytes().splitlines() if line.strip())
    parse, time_format = resolve(preset, None)
    config = load_config(None, **{"input.parse": parse, "input.timestamp_format": time_format})
    with Pipeline(tmp_path, config) as p:
        p.ingest_file(path, format=fmt)
    s = p.summary
    assert s.events_written + s.dead_lettered == non_empty
    assert scan(tmp_path).select("timestamp").collect().height == s.events_written
    if preset and preset != "@zeek-tsv":
        assert s.unparsed_lines == 0, f"{preset} left {s.unparsed_lines} lines unparsed"


def test_structured_text_gets_real_timestamps_and_levels(shared_data, tmp_path):
    parse, time_format = resolve("@hdfs", None)
    config = load_config(None, **{"input.parse": parse, "input.timestamp_format": time_format})
    batch = Pipeline(config=config).decode(
        (shared_data / "loghub/HDFS_2k.log").read_bytes(), format="text"
    )
    first = batch.events.row(0, named=True)
    assert str(first["timestamp"]) == "2008-11-09 20:36:15+00:00"
    assert first["level"] == "info"
    assert first["service"] == "dfs.DataNode$PacketResponder"
    assert set(batch.events["level"].unique().to_list()) <= {"info", "warn", "error"}


def test_the_quick_starts_totals_merge_summaries_of_every_kind_of_field():
    # Session 10: the summary gained `interrupted` (None, or a signal's name) and `make run`
    # failed adding None to None when totalling the real-data files.
    import importlib.util

    from qlingest.pipeline import Summary

    script = Path(__file__).resolve().parent.parent / "scripts" / "ingest_real_data.py"
    spec = importlib.util.spec_from_file_location("ingest_real_data", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a, b = Summary(), Summary()
    a.events_read, b.events_read, b.elapsed_s = 3, 4, 1.0
    totals = module.merge(a.as_dict(), b.as_dict())
    assert totals["events_read"] == 7
    assert totals["interrupted"] is None
