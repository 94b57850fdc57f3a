"""The k8s-file log format that conmon writes: one record per line, parsed with bytes operations.

A record is ``<timestamp> <stream> <P|F> <content>\\n``: a 35-byte local-time timestamp with a
numeric UTC offset, ``stdout`` or ``stderr``, then ``F`` when the chunk ended a line (the record's
newline is the line's newline) or ``P`` for a piece without a newline (the record's newline is only
a terminator). Content is raw bytes and never contains a newline.
"""

from __future__ import annotations

from typing import Final

#: Stream numbers, equal to the values of ``teu.types.v1.Stream``.
STDOUT: Final = 1
STDERR: Final = 2

#: One parsed record: (Unix nanoseconds, stream number, data). ``data`` ends with ``\n`` exactly
#: when the record completed a line. A plain tuple, because a reader builds millions of them.
Record = tuple[int, int, bytes]

TIMESTAMP_LEN: Final = 35
#: Bytes before the content: timestamp, space, 6-byte stream name, space, flag, space.
HEADER_LEN: Final = TIMESTAMP_LEN + 10
#: Offset of the P/F flag inside a record.
FLAG_POS: Final = TIMESTAMP_LEN + 8
PARTIAL: Final = ord("P")
FULL: Final = ord("F")

# The ten bytes between timestamp and content → (stream, what to append to the content).
_KINDS: Final[dict[bytes, tuple[int, bytes]]] = {
    b" stdout F ": (STDOUT, b"\n"),
    b" stdout P ": (STDOUT, b""),
    b" stderr F ": (STDERR, b"\n"),
    b" stderr P ": (STDERR, b""),
}
_NS: Final = 1_000_000_000
_CACHE_SIZE: Final = 1024
_seconds_cache: dict[bytes, int] = {}


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _seconds(key: bytes) -> int:
    """Unix seconds of ``YYYY-MM-DDTHH:MM:SS±HH:MM`` (a timestamp without its fraction)."""
    if key[4] != 45 or key[7] != 45 or key[10] != 84 or key[13] != 58 or key[16] != 58 or key[22] != 58:
        raise ValueError(f"bad timestamp {key!r}")
    days = _days_from_civil(int(key[0:4]), int(key[5:7]), int(key[8:10]))
    local = days * 86400 + int(key[11:13]) * 3600 + int(key[14:16]) * 60 + int(key[17:19])
    offset = int(key[20:22]) * 3600 + int(key[23:25]) * 60
    sign = key[19]
    if sign == 43:  # "+": local time is ahead of UTC
        return local - offset
    if sign == 45:  # "-"
        return local + offset
    raise ValueError(f"bad timestamp offset {key!r}")


def parse_timestamp(ts: bytes) -> int:
    """Unix nanoseconds of a 35-byte conmon timestamp such as ``2026-11-30T06:24:30.027115861+00:00``.

    The whole-seconds part is cached: consecutive records usually share it. Raises ValueError.
    """
    if len(ts) != TIMESTAMP_LEN or ts[19] != 46:  # "."
        raise ValueError(f"bad timestamp {ts!r}")
    key = ts[:19] + ts[29:]
    secs = _seconds_cache.get(key)
    if secs is None:
        secs = _seconds(key)
        if len(_seconds_cache) >= _CACHE_SIZE:
            _seconds_cache.clear()
        _seconds_cache[key] = secs
    return secs * _NS + int(ts[20:29])


def parse_records(buf: bytes) -> list[Record]:
    """Parses ``buf``, which holds whole records only (it is empty or ends with ``\\n``).

    Malformed lines (not something conmon writes) are skipped.
    """
    records: list[Record] = []
    append = records.append
    kinds = _KINDS
    last_ts = b""
    last_ns = 0
    lines = buf.split(b"\n")
    lines.pop()  # the empty piece after the final newline
    for line in lines:
        kind = kinds.get(line[TIMESTAMP_LEN:HEADER_LEN])
        if kind is None:
            continue
        ts = line[:TIMESTAMP_LEN]
        if ts != last_ts:
            try:
                last_ns = parse_timestamp(ts)
            except ValueError:
                continue
            last_ts = ts
        stream, end = kind
        append((last_ns, stream, line[HEADER_LEN:] + end))
    return records
