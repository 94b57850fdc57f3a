"""Finding a time in a log without reading it: binary search over record timestamps.

conmon writes records in time order, so the first record at or after a time is found by bisecting
byte positions: seek to the middle, skip to the next newline, parse the 35-byte timestamp there. A
file is chosen by its first and last timestamps, cached per (inode, size) since rotated segments
never change. The result is a record boundary; readers still check timestamps at block edges, so a
clock step backwards costs precision, never bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from teu_logs.k8sfile import TIMESTAMP_LEN, parse_timestamp
from teu_logs.segments import FileInfo, LogDir, open_unchanged

#: Below this many bytes the search parses records one by one.
LINEAR: Final = 64 * 1024
#: Bytes read around a probe: a record is at most 8192 content bytes plus its 46-byte frame.
WINDOW: Final = 16 * 1024
_CACHE_MAX: Final = 64

#: Reads up to n bytes at a position (fewer at the end).
Read = Callable[[int, int], bytes]


def ts_at(buf: bytes, i: int) -> int | None:
    """Timestamp of the record starting at ``buf[i]``; None if it is not a valid one."""
    try:
        return parse_timestamp(buf[i : i + TIMESTAMP_LEN])
    except ValueError:
        return None


def first_at_or_after(read: Read, lo: int, hi: int, t: int) -> int:
    """Smallest record start in ``[lo, hi)`` whose timestamp is at least ``t``; ``hi`` if none.

    ``lo`` must be a record start and ``hi`` the end of complete records. Records with an
    unreadable timestamp count as earlier than ``t``.
    """
    while hi - lo > LINEAR:
        mid = (lo + hi) // 2
        buf = read(mid, WINDOW)
        nl = buf.find(b"\n")
        if nl < 0 or len(buf) < nl + 1 + TIMESTAMP_LEN:
            break  # not conmon's framing here: let the linear scan sort it out
        r = mid + nl + 1
        if r >= hi:
            break
        ts = ts_at(buf, nl + 1)
        if ts is None or ts < t:
            lo = r
        else:
            hi = r
    buf = read(lo, hi - lo)
    pos = 0
    while pos < len(buf):
        ts = ts_at(buf, pos)
        if ts is not None and ts >= t:
            return lo + pos
        nl = buf.find(b"\n", pos)
        if nl < 0:
            break
        pos = nl + 1
    return hi


def _pread(fd: int) -> Read:
    """A :data:`Read` over an open file descriptor."""
    return lambda pos, n: os.pread(fd, n, pos)


def file_times(d: LogDir, fd: int, info: FileInfo) -> tuple[int, int, int] | None:
    """(first timestamp, last timestamp, end of complete records) of a file; None if it has no record."""
    key = (info.ino, info.size)
    cached = d.times.get(key)
    if cached is not None:
        return cached
    head = os.pread(fd, TIMESTAMP_LEN, 0)
    tail_from = max(0, info.size - WINDOW)
    tail = os.pread(fd, info.size - tail_from, tail_from)
    last_nl = tail.rfind(b"\n")
    if last_nl < 0:
        return None
    prev = tail.rfind(b"\n", 0, last_nl) + 1
    first, last = ts_at(head, 0), ts_at(tail, prev)
    if first is None or last is None or (prev == 0 and tail_from > 0):
        return None  # no parseable record at an end: treat the file as unindexable
    times = (first, last, tail_from + last_nl + 1)
    if len(d.times) >= _CACHE_MAX:
        d.times.clear()
    d.times[key] = times
    return times


def find_time(d: LogDir, t: int, lower: int = 0) -> int:
    """Global position of the first record at or after ``t`` (at or after position ``lower``).

    Past the last record it is the end of the complete records. Files are skipped by their last
    timestamp, then one is bisected.
    """
    for _ in range(5):
        files = d.snapshot()
        result = _find_in(d, files, t, lower)
        if result is not None:
            return result
    return lower  # the log kept rotating under the search: start early, block checks refine it


def _find_in(d: LogDir, files: list[FileInfo], t: int, lower: int) -> int | None:
    """:func:`find_time` over one snapshot; None when a file changed identity under it."""
    end = lower
    for info in files:
        if info.end <= lower:
            continue
        fd = open_unchanged(info)
        if fd is None:
            return None
        try:
            times = file_times(d, fd, info)
            if times is None:
                end = max(end, info.end)
                continue
            _first, last, complete = times
            start = max(0, lower - info.base)  # ``lower`` is a record start handed out earlier
            if last < t or start >= complete:
                end = max(end, info.base + max(start, complete))
                continue
            return info.base + first_at_or_after(_pread(fd), start, complete, t)
        finally:
            os.close(fd)
    return end
