"""Rotation and retention: keeping each log under its size bound without losing a byte.

A rotation renames ``ctr.log`` to the segment named after its base, then writes ``2 0 0`` to conmon's
control fifo. conmon keeps writing to the renamed file until it reads that line, then closes it and
creates a new ``ctr.log`` (notes/CONMON.md §5): nothing is lost, and readers see the old file's tail
before the new file. The reopen is only ever sent right after a rename, while ``ctr.log`` is absent,
because a reopen while it exists would truncate it.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from teu_logs.segments import LogDir, segment_name

log = structlog.get_logger()

REOPEN: Final = b"2 0 0\n"
#: After a rename, if conmon is still writing to the old file this long later, the reopen is sent again.
STALL: Final = 1.0


def send_reopen(control_path: str) -> bool:
    """Asks conmon to reopen its log through the control fifo; False if conmon is gone.

    The fifo is opened non-blocking: with conmon gone there is no reader and the open fails with
    ENXIO instead of hanging.
    """
    try:
        fd = os.open(control_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            return False
        raise
    try:
        os.write(fd, REOPEN)
    except BlockingIOError:
        log.warning("log_reopen_fifo_full", control_path=control_path)
        return False
    finally:
        os.close(fd)
    return True


def apply_retention(d: LogDir, max_files: int) -> int:
    """Deletes the oldest segments beyond ``max_files`` files (current included); returns how many.

    The newest segment is kept while ``ctr.log`` is absent: conmon may still be writing to it.
    Before anything goes, ``floor`` is raised to the base of ``ctr.log`` and saved, so positions
    stay derivable with no segment left.
    """
    segments = d.segments()
    has_current = d.current.exists()
    excess = len(segments) + int(has_current) - max(1, max_files)
    if not has_current:
        excess = min(excess, len(segments) - 1)
    if excess <= 0:
        return 0
    if has_current:
        floor = d.current_base()
        if floor != d.floor:
            d.floor = floor
            d.save()
    for base, path in segments[:excess]:
        path.unlink(missing_ok=True)
        log.info("log_segment_deleted", path=str(d.path), base=base)
    return excess


def rotate(d: LogDir, max_files: int, control_path: str) -> bool:
    """Renames ``ctr.log`` into a segment, asks conmon to reopen, applies retention.

    Only called while ``ctr.log`` exists, which means the newest segment is final and the new
    segment's base is known. False if ``ctr.log`` vanished meanwhile.
    """
    base = d.current_base()
    target = d.path / segment_name(base)
    if target.exists():
        log.error("log_segment_exists", path=str(target))
        return False
    try:
        os.rename(d.current, target)
    except FileNotFoundError:
        return False
    reopened = bool(control_path) and send_reopen(control_path)
    log.info("log_rotated", path=str(d.path), base=base, reopened=reopened)
    apply_retention(d, max_files)
    return True


@dataclass
class _Gap:
    """A log whose ``ctr.log`` is missing after a rename: since when, its newest segment, a later size."""

    since: float
    newest: Path
    checkpoint: int = -1


class Rotator:
    """Periodic upkeep of the configured logs: rotation by size, and repair of a lost reopen."""

    def __init__(self) -> None:
        self._gaps: dict[str, _Gap] = {}
        # Logs rotated while conmon had not reopened yet: retention counts ctr.log once it is back.
        self._retention_due: set[str] = set()

    def check(self, d: LogDir, now: float | None = None) -> None:
        """One cheap look at one log (a stat or two); rotates it when its current file is too big."""
        cfg = d.config
        if cfg is None:
            return
        try:
            size = os.stat(d.current).st_size
        except FileNotFoundError:
            self._check_gap(d, cfg.control_path, time.monotonic() if now is None else now)
            return
        key = str(d.path)
        self._gaps.pop(key, None)
        if key in self._retention_due:
            self._retention_due.discard(key)
            apply_retention(d, cfg.max_files)
        if size > cfg.max_size and rotate(d, cfg.max_files, cfg.control_path):
            self._retention_due.add(key)

    def _check_gap(self, d: LogDir, control_path: str, now: float) -> None:
        """Resends the reopen if conmon went on writing to a renamed file well after the rename.

        That happens when the logs service died between the rename and the reopen. Waiting for growth
        seen at least STALL after the gap began proves no reopen is still queued in the fifo (conmon
        serves the fifo in the loop that writes the log), so a resend cannot truncate a new file.
        """
        if not control_path:
            return
        gap = self._gaps.get(str(d.path))
        if gap is None:
            segments = d.segments()  # listed once per gap: a stopped container's gap lasts for ever
            if not segments:
                return
            gap = self._gaps[str(d.path)] = _Gap(now, segments[-1][1])
        try:
            size = os.stat(gap.newest).st_size
        except FileNotFoundError:
            self._gaps.pop(str(d.path), None)
            return
        if now - gap.since < STALL:
            return
        if gap.checkpoint < 0:
            gap.checkpoint = size
        elif size > gap.checkpoint:
            log.warning("log_reopen_resent", path=str(d.path))
            send_reopen(control_path)
            self._gaps.pop(str(d.path), None)

    def forget(self, d: LogDir) -> None:
        """Drops what is known of a removed log."""
        self._gaps.pop(str(d.path), None)
        self._retention_due.discard(str(d.path))
