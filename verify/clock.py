"""Times as verify writes them: UTC, ISO 8601, and media times as H:MM:SS.mmm."""

from __future__ import annotations

from datetime import datetime, timezone


def now_utc() -> str:
    """The current time in UTC, ISO 8601 to the second (as every record and log entry carries it)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def file_stamp() -> str:
    """The current UTC time for a file name: sortable, to the microsecond (20261126T061155.123456Z)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def timestamp(t_ms: float) -> str:
    """Milliseconds as H:MM:SS.mmm."""
    total = int(round(t_ms))
    hours, rest = divmod(total, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours}:{minutes:02d}:{seconds:02d}.{millis:03d}"
