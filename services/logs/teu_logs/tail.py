"""Where the last N lines of a log begin, found by reading it backwards block by block.

Lines are counted exactly as :mod:`teu_logs.scan` emits them going forwards, after the stream filter
and the pattern: among the records of wanted streams, a line ends after an F record, where the
stream changes, and at the end of a file (a rotated file's pending line is flushed). The cost
follows the answer: only the blocks holding the last N lines are read, across segments when the
current file is short.
"""

from __future__ import annotations

import os
from typing import Final

from teu_logs.k8sfile import HEADER_LEN, STDERR, STDOUT, TIMESTAMP_LEN
from teu_logs.scan import Filter
from teu_logs.segments import FileInfo, LogDir, open_unchanged

#: First block size of the backward scan; it doubles while a block holds no whole record.
TAIL_BLOCK: Final = 64 * 1024
_KINDS: Final[dict[bytes, tuple[int, bool]]] = {
    b" stdout F ": (STDOUT, True),
    b" stdout P ": (STDOUT, False),
    b" stderr F ": (STDERR, True),
    b" stderr P ": (STDERR, False),
}


class _Backwards:
    """Line counting over records fed last-to-first."""

    def __init__(self, lines: int, flt: Filter) -> None:
        self.lines = lines
        self.flt = flt
        self.count = 0
        self.stream = 0  # stream of the line being gathered (0: none)
        self.parts: list[bytes] = []  # its contents, last first (only with a pattern)
        self.start = -1  # global position of its earliest record so far

    def finish(self) -> bool:
        """Closes the line being gathered; True once it is the N-th (its start is ``self.start``)."""
        if not self.stream:
            return False
        self.stream = 0
        rx = self.flt.grep
        if rx is not None and not rx.search(b"".join(reversed(self.parts))):
            return False
        self.count += 1
        return self.count >= self.lines

    def feed(self, recs: bytes, start: int) -> int | None:
        """Feeds the whole records ``recs`` (at global ``start``), last first; the answer once found."""
        wanted, kinds, keep = self.flt.streams, _KINDS, self.flt.grep is not None
        raws = recs.split(b"\n")
        raws.pop()
        pos = start + len(recs)
        for raw in reversed(raws):
            pos -= len(raw) + 1
            kind = kinds.get(raw[TIMESTAMP_LEN:HEADER_LEN])
            if kind is None or kind[0] not in wanted:
                continue
            stream, full = kind
            if self.stream and (full or stream != self.stream) and self.finish():
                return self.start
            if self.stream:
                if keep:
                    self.parts.append(raw[HEADER_LEN:])
            else:
                self.stream = stream
                self.parts = [raw[HEADER_LEN:]] if keep else []
            self.start = pos
        return None


def _scan_file(back: _Backwards, fd: int, info: FileInfo, lo_bound: int, hi: int) -> int | None:
    """Feeds the complete records of ``[lo_bound, hi)`` of one file backwards; the answer once found."""
    block = TAIL_BLOCK
    trimmed = False  # whether ``hi`` has been moved back to the end of the last complete record
    while hi > lo_bound:
        lo = max(lo_bound, hi - block)
        buf = os.pread(fd, hi - lo, lo)
        if not trimmed:
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                if lo == lo_bound:
                    return None
                block *= 2
                continue
            buf, hi, trimmed = buf[:cut], lo + cut, True
        skip = 0
        if lo > lo_bound:
            # The first bytes may belong to a record that started before ``lo``.
            skip = buf.find(b"\n") + 1
            if skip == len(buf):
                block *= 2
                continue
        found = back.feed(buf[skip:] if skip else buf, info.base + lo + skip)
        if found is not None:
            return found
        hi = lo + skip
    return None


def tail_start(d: LogDir, lines: int, end: int, lower: int, flt: Filter) -> int:
    """Global position where the last ``lines`` lines before ``end`` begin, never before ``lower``.

    ``end`` and ``lower`` are record boundaries (``lower`` may lie before the oldest data).
    """
    for _ in range(5):
        back = _Backwards(lines, flt)
        answer = _tail_in(d.snapshot(), back, end, lower)
        if answer is not None:
            return answer
    return lower


def _tail_in(files: list[FileInfo], back: _Backwards, end: int, lower: int) -> int | None:
    """:func:`tail_start` over one snapshot; None when a file changed identity under it."""
    for info in reversed(files):
        if info.base >= end:
            continue
        if info.end <= lower:
            break
        fd = open_unchanged(info)
        if fd is None:
            return None
        try:
            hi = min(end, info.end) - info.base
            found = _scan_file(back, fd, info, max(lower, info.base) - info.base, hi)
        finally:
            os.close(fd)
        if found is not None:
            return found
        if back.finish():  # a file boundary ends a line, as going forwards
            return back.start
    if back.finish():
        return back.start
    return lower
