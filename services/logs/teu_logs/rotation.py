"""Rotation and retention: keeping each log within its bound without losing a byte.

A rotation renames ``ctr.log`` to the segment named after its base, then asks the runtime (conmon's
one owner) to have conmon reopen its log. conmon keeps writing to the renamed file until it reads the
request, then closes it and creates a new ``ctr.log`` (docs/architecture.md, Logs):
nothing is lost, and readers see the old file's tail before the new file. The reopen is only ever
asked right after a rename, while ``ctr.log`` is absent, because a reopen while it exists would
replace it.

Retention keeps at most ``max_files`` files and ``max_size x max_files`` bytes, oldest segments first.
What bounds the disk while this service cannot rotate (it is down, or the runtime cannot be reached)
is conmon's own ``--log-size-max``, set by the runtime well above the rotation size.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from teu_logs.segments import LogConfig, LogDir, segment_name

log = structlog.get_logger()

#: Asks conmon (through the runtime) to reopen a container's log: True when asked, False when no conmon
#: listens any more (the container exited), None when that could not be learnt (the runtime is down).
Reopen = Callable[[str], Awaitable[bool | None]]
#: After a rename, if conmon is still writing to the old file this long later, the reopen is asked again.
STALL: Final = 1.0
#: How long a rotation asked for waits for conmon's new file.
NEW_FILE_WAIT: Final = 5.0


def apply_retention(d: LogDir, max_files: int, max_bytes: int | None = None, writer: bool = True) -> int:
    """Deletes the oldest segments while the log has more than ``max_files`` files (current included)
    or more than ``max_bytes`` bytes; returns how many went.

    The newest segment is kept while ``ctr.log`` is absent and conmon may still be writing to it
    (``writer``), and the newest file always. Before
    anything goes, ``floor`` is raised to the base of ``ctr.log`` and saved, so positions stay
    derivable with no segment left.
    """
    sized = []
    for base, path in d.segments():
        try:
            sized.append((base, path, os.stat(path).st_size))
        except FileNotFoundError:
            continue
    try:
        current: int | None = os.stat(d.current).st_size
    except FileNotFoundError:
        current = None
    deletable = sized if current is not None or not writer else sized[:-1]
    files = len(sized) + (current is not None)
    total = sum(size for _, _, size in sized) + (current or 0)
    doomed = []
    for base, path, size in deletable:
        if files <= 1 or (files <= max_files and (max_bytes is None or total <= max_bytes)):
            break
        doomed.append((base, path))
        files, total = files - 1, total - size
    if not doomed:
        return 0
    if current is not None:
        floor = d.current_base()
        if floor != d.floor:
            d.floor = floor
            d.save()
    for base, path in doomed:
        path.unlink(missing_ok=True)
        log.info("log_segment_deleted", path=str(d.path), base=base)
    return len(doomed)


def rotate(d: LogDir, max_files: int, max_bytes: int | None = None) -> bool:
    """Renames ``ctr.log`` into a segment and applies retention (the caller then asks for a reopen).
    False if ``ctr.log`` vanished meanwhile."""
    if not rename_current(d):
        return False
    apply_retention(d, max_files, max_bytes)
    return True


def rename_current(d: LogDir) -> bool:
    """Renames ``ctr.log`` into the segment of its base. Only called while ``ctr.log`` exists, which
    means the newest segment is final and the new segment's base is known."""
    base = d.current_base()
    target = d.path / segment_name(base)
    if target.exists():
        log.error("log_segment_exists", path=str(target))
        return False
    try:
        os.rename(d.current, target)
    except FileNotFoundError:
        return False
    log.info("log_rotated", path=str(d.path), base=base)
    return True


def trim(d: LogDir, max_files: int, max_bytes: int) -> bool:
    """Brings a log no conmon writes any more within ``max_bytes``: its oldest files go, then the head
    of the oldest one left, at a record boundary (the rest is copied into the segment of its new base,
    so positions stay what they were). False, doing nothing, if a ``ctr.log`` has appeared since (a
    new conmon of the restarted container writes it)."""
    if d.current.exists():
        return False
    apply_retention(d, max_files, max_bytes, writer=False)
    segments = d.segments()
    if not segments:
        return True
    base, path = segments[0]
    total = sum(os.stat(p).st_size for _, p in segments)
    if total <= max_bytes:
        return True
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(total - max_bytes)
        f.readline()  # to the end of the record the cut falls in
        cut = f.tell()
        target = d.path / segment_name(base + cut)
        tmp = d.path / (target.name + ".tmp")
        with open(tmp, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)  # in pieces: the file may be as large as conmon's bound
            out.flush()
            os.fsync(out.fileno())
    os.rename(tmp, target)
    if d.floor < base + size:
        d.floor = base + size
        d.save()
    path.unlink()
    log.info("log_trimmed", path=str(d.path), base=base + cut)
    return True


def _bound(cfg: LogConfig) -> int:
    return cfg.max_size * cfg.max_files


@dataclass
class _Gap:
    """A log whose ``ctr.log`` is missing after a rename: since when, its newest segment, a later size."""

    since: float
    newest: Path
    checkpoint: int = -1
    checked: float = 0.0


class Rotator:
    """Upkeep of the configured logs: rotation by size, retention, and repair of a lost reopen."""

    def __init__(self, reopen: Reopen | None) -> None:
        self._reopen = reopen
        self._gaps: dict[str, _Gap] = {}
        # (inode, size) of ctr.log at the last retention: an unchanged log needs none.
        self._seen: dict[str, tuple[int, int]] = {}
        # Logs no conmon writes (the reopen found none), trimmed already: nothing to ask until ctr.log is back.
        self._closed: set[str] = set()

    async def check(self, cid: str, d: LogDir, now: float | None = None) -> None:
        """One look at one log (a stat when nothing is due); rotates it when its current file is too
        big, asks for the reopen, applies retention when the log changed."""
        cfg = d.config
        if cfg is None:
            return
        key = str(d.path)
        try:
            st = os.stat(d.current)
        except FileNotFoundError:
            if await asyncio.to_thread(self._resend_due, d, time.monotonic() if now is None else now):
                log.warning("log_reopen_resent", path=key)
                await self._reopen_or_trim(cid, d)
            return
        self._gaps.pop(key, None)
        self._closed.discard(key)
        if st.st_size > cfg.max_size:
            if await asyncio.to_thread(rotate, d, cfg.max_files, _bound(cfg)):
                self._seen.pop(key, None)
                await self._reopen_or_trim(cid, d)
            return
        if self._seen.get(key) != (st.st_ino, st.st_size):
            self._seen[key] = (st.st_ino, st.st_size)
            await asyncio.to_thread(apply_retention, d, cfg.max_files, _bound(cfg))

    async def rotate_now(self, cid: str, d: LogDir) -> bool:
        """Rotates ``d`` whatever its size and waits (up to NEW_FILE_WAIT) for conmon's new current
        file. False when no conmon writes the log (nothing is renamed then)."""
        if self._reopen is None or d.config is None or not d.current.exists():
            return False
        cfg = d.config
        if not await asyncio.to_thread(rotate, d, cfg.max_files, _bound(cfg)):
            return False
        self._seen.pop(str(d.path), None)
        if await self._reopen(cid) is False:  # no conmon: the rename stands, as after any rotation of an exited log
            return False
        deadline = time.monotonic() + NEW_FILE_WAIT
        while not d.current.exists():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def _reopen_or_trim(self, cid: str, d: LogDir) -> None:
        """Asks for the reopen after a rename; when no conmon listens any more (the container exited),
        trims the log to its bound instead, so no excess stays after the exit."""
        if self._reopen is None:
            return
        gone = await self._reopen(cid) is False
        if gone and d.config is not None and await asyncio.to_thread(trim, d, d.config.max_files, _bound(d.config)):
            self._closed.add(str(d.path))

    def _resend_due(self, d: LogDir, now: float) -> bool:
        """Whether to ask for the reopen again: ``ctr.log`` is still missing well after the rename (the
        reopen was lost: this service died between rename and reopen, the runtime could not be reached,
        or the container exited meanwhile).

        Only after STALL, and either once the renamed file grew since a checkpoint taken after STALL
        (conmon serves the fifo in the loop that writes the log, so growth proves no reopen is queued
        and asking again cannot replace a new file), or once it did not grow for another STALL (conmon
        is idle, and would have served a queued reopen, or gone). Retention keeps the log within its
        bound meanwhile.
        """
        cfg = d.config
        assert cfg is not None
        key = str(d.path)
        if key in self._closed:
            return False
        gap = self._gaps.get(key)
        if gap is None:
            segments = d.segments()  # listed once per gap
            if not segments:
                return False
            apply_retention(d, cfg.max_files, _bound(cfg))
            gap = self._gaps[key] = _Gap(now, segments[-1][1])
        try:
            size = os.stat(gap.newest).st_size
        except FileNotFoundError:
            self._gaps.pop(key, None)
            return False
        if now - gap.since < STALL:
            return False
        if gap.checkpoint < 0:
            gap.checkpoint, gap.checked = size, now
            return False
        if size > gap.checkpoint or now - gap.checked >= STALL:
            self._gaps.pop(key, None)
            return True
        return False

    def forget(self, d: LogDir) -> None:
        """Drops what is known of a removed log."""
        self._gaps.pop(str(d.path), None)
        self._seen.pop(str(d.path), None)
        self._closed.discard(str(d.path))
