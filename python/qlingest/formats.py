"""Named parse presets for common text log formats: ``--parse @syslog`` and friends."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["PRESETS", "Preset", "resolve"]


class Preset(NamedTuple):
    regex: str
    timestamp_format: str | None
    description: str


PRESETS: dict[str, Preset] = {
    "syslog": Preset(
        r"^(?P<timestamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) +"
        r"(?P<service>[^\[:]+?)(?:\[(?P<pid>\d+)\])?: (?P<message>.*)$",
        "%b %d %H:%M:%S",
        "BSD syslog: 'Jun 14 15:16:01 host sshd[123]: ...' (year taken from the observed time)",
    ),
    "hdfs": Preset(
        r"^(?P<timestamp>\d{6} \d{6}) (?P<pid>\d+) (?P<level>[A-Z]+) (?P<service>[^:]+): (?P<message>.*)$",
        "%y%m%d %H%M%S",
        "Hadoop HDFS: '081109 203615 148 INFO dfs.DataNode: ...'",
    ),
    "apache-error": Preset(
        r"^\[(?P<timestamp>[^\]]+)\] \[(?P<level>\w+)\] (?P<message>.*)$",
        "%a %b %d %H:%M:%S %Y",
        "Apache error log: '[Sun Dec 04 04:47:44 2005] [notice] ...'",
    ),
    "apache-access": Preset(
        r"^(?P<client_ip>\S+) \S+ (?P<remote_user>\S+) \[(?P<timestamp>[^\]]+)\] "
        r'"(?P<method>[A-Z]+) (?P<path>\S+) (?P<protocol>[^"]*)" (?P<status>\d{3}) (?P<bytes>\S+)'
        r'(?: "(?P<referrer>[^"]*)" "(?P<user_agent>[^"]*)")?',
        "%d/%b/%Y:%H:%M:%S %z",
        "Apache/nginx combined access log",
    ),
    "log4j": Preset(
        r"^(?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - (?P<level>[A-Z]+)\s+"
        r"\[(?P<thread>.*)\] - (?P<message>.*)$",
        "%Y-%m-%d %H:%M:%S,%f",
        "log4j / Zookeeper: '2015-07-29 17:41:44,747 - INFO  [thread] - ...'",
    ),
    "zeek-tsv": Preset(
        r"^(?P<timestamp>\d{9,10}\.\d+)\t(?P<uid>[^\t]+)\t(?P<message>.*)$",
        None,
        "Zeek TSV data lines (epoch ts, uid, the rest); '#' header lines are kept whole",
    ),
}


def resolve(parse: str | None, timestamp_format: str | None) -> tuple[str | None, str | None]:
    """Turns ``@name`` into the preset's regex and format; an explicit format wins."""
    if not parse or not parse.startswith("@"):
        return parse, timestamp_format
    name = parse[1:]
    if name not in PRESETS:
        from qlingest.config import _config_error

        known = ", ".join(f"@{n}" for n in PRESETS)
        raise _config_error(f"unknown parse preset {parse!r}: known presets are {known}")
    preset = PRESETS[name]
    return preset.regex, timestamp_format or preset.timestamp_format
