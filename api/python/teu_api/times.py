"""Docker's spellings of times and durations, shared by the clients and the gateway. Pure."""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from teu_api.errors import InvalidArgument

_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d)")
_UNIT_NS: Final = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}


def duration_ns(value: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms"; "2d" too) in nanoseconds; InvalidArgument otherwise."""
    parts = _PART.findall(value)
    if not parts or "".join(a + u for a, u in parts) != value:
        raise InvalidArgument(f"invalid duration {value[:40]!r}: want e.g. 30s, 1m30s, 500ms")
    return int(sum(float(a) * _UNIT_NS[u] for a, u in parts))


def time_ns(value: str, now_ns: int) -> int:
    """Unix ns of a time as Docker's --since/--until/until= take it: Unix seconds, RFC 3339 (with or
    without fraction and offset), or a duration before ``now_ns``; InvalidArgument otherwise."""
    v = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", v):
        return int(float(v) * 10**9)
    if _PART.fullmatch(v) or (v and "".join(a + u for a, u in _PART.findall(v)) == v):
        return now_ns - duration_ns(v)
    try:
        stamp = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid time {value[:40]!r}: use RFC 3339 (2026-11-30T10:00:00Z) or a duration (10m)") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return int(stamp.timestamp()) * 10**9 + stamp.microsecond * 1000
