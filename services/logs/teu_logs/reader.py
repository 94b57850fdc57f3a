"""Reading a log across its segments: batches, since/until, tail, follow across rotations.

A :class:`Cursor` holds a global position and the file that contains it. It hands out blocks of
whole records; :func:`teu_logs.scan.scan_block` says how much of each block is done, and the cursor
advances by exactly that, so every offset handed out continues with no gap and no repeat. At the end
of a file the cursor moves on only once the file is final (a later file exists: conmon closes the old
file before it creates the new one), re-reading the old file's tail first, so the bytes conmon wrote
between the rename and the reopen are never missed.

The blocking parts run in worker threads; a follower that waits checks for news with one fstat and
one stat per poll, on the event loop, and only goes to a thread when there is something to read.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import structlog

from teu_logs.scan import Chunk, Filter, Line, scan_block
from teu_logs.segments import FileInfo, LogDir
from teu_logs.tail import tail_start
from teu_logs.timeindex import find_time

log = structlog.get_logger()

#: File bytes parsed into one batch: output per response stays at most this big.
BATCH_BYTES: Final = 1024 * 1024
#: A follower polls this often while the log grows, backing off to ``poll_max`` while it is idle.
POLL_MIN: Final = 0.02
POLL_MAX: Final = 0.05
#: A line a follower has seen unterminated for this long is emitted as partial.
HOLD: Final = 0.5
#: A follow with ``until`` ends this long after the wall clock passed ``until`` (late writes).
UNTIL_GRACE_NS: Final = 1_000_000_000


class Batch(NamedTuple):
    """Output of one response and the position just past it."""

    chunks: list[Chunk]
    records: list[Line]
    offset: int


@dataclass(frozen=True)
class ReadOptions:
    """A validated ReadLog request."""

    offset: int = 0
    tail: int = 0
    follow: bool = False
    flt: Filter = field(default_factory=Filter)


class Block(NamedTuple):
    """Whole records at ``start``."""

    data: bytes
    start: int
    #: They end a file that will not grow any more (a later file exists).
    last: bool
    #: They end what could be read (end of the file or of the read's limit).
    short: bool


class Cursor:
    """A global position in a log and the open file holding it; methods run in a worker thread."""

    def __init__(self, d: LogDir, pos: int) -> None:
        self.d = d
        self.pos = pos
        self.fd = -1
        self.fbase = 0
        self.fino = 0
        # A cancelled read goes on in its worker thread: close waits for it, and no read runs after.
        self._lock = threading.Lock()
        self._closed = False
        #: Bytes of the open file the last read saw: a follower waits until the file differs.
        self.seen = -1

    def _close_fd(self) -> None:
        """Closes the open file, if any (the cursor stays usable)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        """Closes the cursor for good, after a read still running in a worker thread."""
        with self._lock:
            self._closed = True
            self._close_fd()

    def _open(self) -> bool:
        """Opens the file holding ``pos`` (moving ``pos`` to the oldest data if it was deleted)."""
        for _ in range(20):
            files = self.d.snapshot()
            if not files:
                return False
            if self.pos < files[0].base:
                log.info("log_position_deleted", path=str(self.d.path), position=self.pos, oldest=files[0].base)
                self.pos = files[0].base
            info = files[0]
            for f in files:
                if f.base <= self.pos:
                    info = f
            if self.pos > info.end:
                log.warning("log_position_past_end", path=str(self.d.path), position=self.pos, end=info.end)
                self.pos = info.end
            try:
                fd = os.open(info.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # renamed or deleted since the snapshot: look again
            if os.fstat(fd).st_ino != info.ino:
                os.close(fd)
                continue
            self.fd, self.fbase, self.fino = fd, info.base, info.ino
            return True
        return False

    def _next_file(self, files: list[FileInfo]) -> int | None:
        """Where reading goes on once the open file is exhausted; None while it may still grow."""
        size = os.fstat(self.fd).st_size
        if any(f.base > self.fbase for f in files):
            return self.fbase + size
        if not any(f.ino == self.fino for f in files):
            # Not ours any more: conmon replaced the file without a rename first (a reopen sent by
            # someone else), or the log was removed. Go on with whatever is current now.
            log.warning("log_file_replaced", path=str(self.d.path), base=self.fbase)
            return files[-1].base if files else None
        return None

    def read(self, size: int = BATCH_BYTES, limit: int | None = None) -> Block | None:
        """The whole records at ``pos`` (at most ``size`` bytes, none past ``limit``); None if none yet."""
        with self._lock:
            return None if self._closed else self._read(size, limit)

    def _read(self, size: int, limit: int | None) -> Block | None:
        """:meth:`read` under the lock."""
        while True:
            if self.fd < 0 and not self._open():
                return None
            want = size if limit is None else min(size, limit - self.pos)
            if want <= 0:
                return None
            off = self.pos - self.fbase
            buf = os.pread(self.fd, want, off)
            self.seen = off + len(buf)
            if len(buf) == want:  # not at the end of the file: no need to ask whether it is final
                cut = buf.rfind(b"\n") + 1
                if cut:
                    return Block(buf[:cut], self.pos, False, want < size)
                if want == size:
                    log.warning("log_garbage_skipped", path=str(self.d.path), position=self.pos, size=size)
                    self.pos += size
                    continue
                return None  # the limit falls inside a record
            nxt = self._next_file(self.d.snapshot())
            if nxt is not None:
                # Final now: read again, conmon may have written more before it let go of the file.
                buf = os.pread(self.fd, want, off)
                self.seen = off + len(buf)
            cut = buf.rfind(b"\n") + 1
            if cut:
                ends = nxt is not None and off + cut == os.fstat(self.fd).st_size
                return Block(buf[:cut], self.pos, ends, len(buf) < size)
            if nxt is None:
                return None
            self._close_fd()
            if nxt != self.pos + len(buf):
                log.warning("log_bytes_skipped", path=str(self.d.path), position=self.pos, to=nxt)
            self.pos = nxt

    def changed(self) -> bool:
        """Cheap check for news: the open file is not as the last read saw it, or ``ctr.log`` is another file."""
        if self.fd < 0:
            return True
        if os.fstat(self.fd).st_size != self.seen:
            return True
        try:
            return os.stat(self.d.current).st_ino != self.fino
        except FileNotFoundError:
            return True  # rotated, conmon not reopened yet (or gone): look at the segments


def _start(d: LogDir, opts: ReadOptions) -> tuple[int, int]:
    """Where reading starts and where a batch read ends (the log's end now)."""
    files = d.snapshot()
    end = files[-1].end if files else d.floor
    flt = opts.flt
    if opts.offset:
        return opts.offset, end
    pos = files[0].base if files else d.floor
    if flt.since:
        pos = find_time(d, flt.since, pos)
    if opts.tail > 0:
        tail_end = find_time(d, flt.until, pos) if flt.until else end
        pos = max(pos, tail_start(d, opts.tail, tail_end, pos, flt))
    return pos, end


async def read_log(
    d: LogDir, opts: ReadOptions, *, poll_max: float = POLL_MAX, hold: float = HOLD
) -> AsyncGenerator[Batch, None]:
    """Batches of the log from ``opts.offset`` (or since/tail, or the start).

    Without ``follow`` it stops at the end the log had when the read began, emitting a last
    unterminated line as partial. With ``follow`` it waits for new records (across rotations) until
    the caller cancels, ``until`` has passed, or the log's directory is removed.
    """
    flt = opts.flt
    pos, end = await asyncio.to_thread(_start, d, opts)
    cursor = Cursor(d, pos)
    limit = None if opts.follow else end
    held_at, held_since = -1, 0.0  # a pending line the follower is holding back, and since when
    try:
        interval = POLL_MIN
        while True:
            block = await asyncio.to_thread(cursor.read, BATCH_BYTES, limit)
            if block is not None:
                interval = POLL_MIN  # the log is active: look again soon
                now = time.monotonic()
                expired = held_at == block.start and now - held_since >= hold
                # A batch read flushes a pending line at its end; a follower only once it waited enough.
                final = block.last or expired or (block.short and not opts.follow)
                scan = scan_block(block.data, flt, final)
                if scan.consumed == 0 and not final and not block.short:
                    scan = scan_block(block.data, flt, True)  # a line longer than a batch: send it in pieces
                cursor.pos = block.start + scan.consumed
                if scan.chunks or scan.records:
                    yield Batch(scan.chunks, scan.records, cursor.pos)
                if scan.done:
                    return
                if not opts.follow or not block.short or block.last:
                    continue  # more to read now (a pending line going on in the next block is reread there)
                if scan.consumed < len(block.data) and held_at != cursor.pos:
                    held_at, held_since = cursor.pos, now
            if not opts.follow:
                return
            # Idle (or holding a line back): wait for news without touching a thread.
            deadline = held_since + hold if held_at >= 0 and held_at == cursor.pos else None
            while True:
                await asyncio.sleep(interval)
                interval = min(interval * 2, poll_max)
                if flt.until and time.time_ns() > flt.until + UNTIL_GRACE_NS:
                    return
                if not d.exists():
                    return
                if cursor.changed() or (deadline is not None and time.monotonic() >= deadline):
                    break
    finally:
        cursor.close()
