"""Parsing one log line, shared by the parser guest and the monolithic baseline."""

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
ALIASES = {"WARNING": "WARN"}


def _looks_like_timestamp(text: str) -> bool:
    # 2026-11-24T08:00:00Z or with an offset / fraction; checked by shape.
    return (
        len(text) >= 20
        and text[4] == "-"
        and text[7] == "-"
        and text[10] == "T"
        and text[13] == ":"
        and text[16] == ":"
        and text[:4].isdigit()
    )


def parse_line(raw: str, extra_levels: dict | None = None) -> tuple:
    """(timestamp, LEVEL, source, message), or ValueError naming what is wrong."""
    parts = raw.strip().split(" ", 2)
    if len(parts) < 3:
        raise ValueError(f"expected '<timestamp> <LEVEL> <source>: <message>', got {raw!r}")
    timestamp, level_name, rest = parts
    if not _looks_like_timestamp(timestamp):
        raise ValueError(f"bad timestamp {timestamp!r}")
    level = level_name.upper()
    level = ALIASES.get(level, (extra_levels or {}).get(level, level))
    if level not in LEVELS:
        raise ValueError(f"unknown level {level_name!r}")
    source, sep, message = rest.partition(": ")
    if not sep or not source or " " in source:
        raise ValueError(f"missing '<source>: ' in {rest!r}")
    return timestamp, level, source, message
