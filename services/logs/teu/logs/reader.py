"""Reading a k8s-file log that conmon may still be appending to: batches, tail, follow.

Only complete records are consumed: bytes after the last newline are a record conmon is still
writing, so every offset handed out lies just past a newline and a later read from it continues
with no gap and no repeat. The blocking parts are plain functions over an open binary file; the
async generator :func:`read_log` runs them in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple

import structlog

from teu.logs.k8sfile import FLAG_POS, FULL, PARTIAL, Record, parse_records

log = structlog.get_logger()

#: Most file bytes parsed into one batch (conmon's records are at most ~8 KiB long).
BATCH_BYTES: Final = 256 * 1024
#: Block size of the backward scan for ``tail``.
TAIL_BLOCK: Final = 64 * 1024
#: Follow polls the file this often while it grows, backing off to POLL_MAX while it is idle.
POLL_MIN: Final = 0.02
POLL_MAX: Final = 0.05


class Batch(NamedTuple):
    """Records read in one go, and the offset just past the last of them."""

    records: list[Record]
    offset: int


def read_batch(f: BinaryIO, offset: int, end: int, size: int = BATCH_BYTES) -> Batch | None:
    """The complete records in ``[offset, end)``, reading at most ``size`` bytes.

    None when no complete record starts at ``offset`` yet. A full block with no newline at all is
    not something conmon writes: it is skipped as garbage, giving a batch without records.
    """
    f.seek(offset)
    buf = f.read(min(size, end - offset))
    cut = buf.rfind(b"\n") + 1
    if cut == 0:
        if len(buf) == size:
            log.warning("log_garbage_skipped", offset=offset, size=size)
            return Batch([], offset + size)
        return None
    return Batch(parse_records(buf if cut == len(buf) else buf[:cut]), offset + cut)


def tail_offset(f: BinaryIO, size: int, lines: int, block: int = TAIL_BLOCK) -> int:
    """Offset of the first record of the last ``lines`` lines among the complete records before ``size``.

    A line ends with an F record; P records after the last F form one more (unfinished) line. The
    file is scanned backwards one block at a time, so the cost follows the answer, not the file.
    """
    count = 0  # lines seen so far, walking backwards
    first = True  # the next record examined is the last complete one
    pos = size  # the scan has examined everything from ``pos`` on
    start_after = -1  # start of the record examined last (the one after the current record)
    ahead = b""  # the first bytes at ``pos``: the header of a record that began before ``pos``
    while pos > 0:
        lo = max(0, pos - block)
        f.seek(lo)
        data = f.read(pos - lo) + ahead
        limit = pos - lo
        if start_after < 0:
            # Skip the incomplete record conmon may be writing: complete records end at the last newline.
            limit = data.rfind(b"\n", 0, limit)
            if limit < 0:
                pos, ahead = lo, data[: FLAG_POS + 1]
                continue
            start_after = lo + limit + 1
        while True:
            nl = data.rfind(b"\n", 0, limit)
            if nl < 0 and lo > 0:
                break  # this record starts in an earlier block
            rec = nl + 1
            flag = data[rec + FLAG_POS] if rec + FLAG_POS < len(data) else -1
            if first:
                first = False
                count = 1 if flag == PARTIAL else 0
            if flag == FULL:
                if count == lines:
                    return start_after
                count += 1
            start_after = lo + rec
            if nl < 0:
                return 0
            limit = nl
        pos, ahead = lo, data[: FLAG_POS + 1]
    return 0


class _Cursor:
    """An open log file and the offset of the next record to read; methods run in a worker thread."""

    def __init__(self, path: Path, f: BinaryIO, offset: int) -> None:
        self.path = path
        self.f = f
        self.offset = offset

    def size(self) -> int:
        """Current size of the open file."""
        return os.fstat(self.f.fileno()).st_size

    def next_batch(self, end: int) -> Batch | None:
        """The next batch of complete records before ``end``, advancing the cursor."""
        if self.offset >= end:
            return None
        batch = read_batch(self.f, self.offset, end)
        if batch is not None:
            self.offset = batch.offset
        return batch

    def poll(self) -> Batch | None:
        """New records, switching to a fresh file when conmon has replaced or truncated the log."""
        batch = self.next_batch(self.size())
        if batch is not None:
            return batch
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return None
        opened = os.fstat(self.f.fileno())
        if current.st_ino != opened.st_ino or current.st_dev != opened.st_dev:
            log.info("log_replaced", path=str(self.path))
            self.f.close()
            self.f = open(self.path, "rb")  # noqa: SIM115 - owned by the cursor, closed by read_log
            self.offset = 0
        elif opened.st_size < self.offset:
            log.info("log_truncated", path=str(self.path))
            self.offset = 0
        else:
            return None
        return self.next_batch(self.size())


def _open(path: Path) -> tuple[BinaryIO | None, bool]:
    """The log opened for reading, or None if it does not exist; and whether its directory exists."""
    try:
        return open(path, "rb"), True
    except FileNotFoundError:
        return None, path.parent.is_dir()


def _start(f: BinaryIO, offset: int, tail: int) -> tuple[int, int]:
    """Where reading starts (``offset``, else the last ``tail`` lines, else 0) and the size now."""
    size = os.fstat(f.fileno()).st_size
    if offset == 0 and tail > 0:
        offset = tail_offset(f, size, tail)
    return offset, size


async def read_log(
    path: Path, *, offset: int = 0, tail: int = 0, follow: bool = False, poll_max: float = POLL_MAX
) -> AsyncGenerator[Batch, None]:
    """Batches of the log at ``path`` from ``offset`` (or its last ``tail`` lines, or the start).

    Without ``follow`` it stops at the end the file had when the read began; a missing file gives
    nothing. With ``follow`` it waits for the file to appear and then for new records until the
    caller cancels, or until the log's directory is removed while waiting for the file.
    """
    f, dir_exists = await asyncio.to_thread(_open, path)
    while f is None:
        if not follow or not dir_exists:
            return
        await asyncio.sleep(poll_max)
        f, dir_exists = await asyncio.to_thread(_open, path)
    cursor = _Cursor(path, f, 0)
    try:
        cursor.offset, end = await asyncio.to_thread(_start, f, offset, tail)
        while (batch := await asyncio.to_thread(cursor.next_batch, end)) is not None:
            if batch.records:
                yield batch
        if not follow:
            return
        interval = POLL_MIN
        while True:
            batch = await asyncio.to_thread(cursor.poll)
            if batch is None:
                await asyncio.sleep(interval)
                interval = min(interval * 2, poll_max)
                continue
            interval = POLL_MIN
            if batch.records:
                yield batch
    finally:
        # The buffered file's lock makes close wait for a read still running in a worker thread.
        cursor.f.close()
