"""One container's log directory: the file conmon writes, the rotated segments, and their positions.

Layout of ``<root>/<container id>/``:

- ``ctr.log``: the current file, which conmon appends to;
- ``seg-<base>.log``: rotated segments, ``base`` (20 digits) being the global position of their first
  byte: the total size of every earlier file, deleted ones included;
- ``state.json``: the retention configuration and ``floor``, the lowest possible base of ``ctr.log``.

A global position is ``base + offset in the file``; it never decreases, whatever is rotated or deleted,
so an offset handed to a client stays valid across rotations and restarts. The base of ``ctr.log`` is
not stored: it is the end of the newest segment (which is final once ``ctr.log`` exists, because
conmon closes the old file before it creates the new one), or ``floor`` when every segment is gone.
Retention raises ``floor`` before it deletes anything, so the base never has to be guessed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final, NamedTuple

import structlog

log = structlog.get_logger()

LOG_NAME: Final = "ctr.log"
STATE_NAME: Final = "state.json"
_SEGMENT: Final = re.compile(r"seg-(\d{20})\.log")
#: How often a snapshot is retried when a rotation renames files under it.
_SNAPSHOT_TRIES: Final = 20


def segment_name(base: int) -> str:
    """File name of the segment whose first byte is at global position ``base``."""
    return f"seg-{base:020d}.log"


class FileInfo(NamedTuple):
    """One file of a log as seen by a snapshot."""

    base: int
    path: Path
    size: int
    ino: int
    current: bool

    @property
    def end(self) -> int:
        """Global position just past the file's last byte."""
        return self.base + self.size


@dataclass
class LogConfig:
    """Retention of one log, as set by ConfigureLog."""

    max_size: int
    max_files: int


class LogDir:
    """The files of one container's log. Cheap to query; every method may run in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.current = path / LOG_NAME
        self.config: LogConfig | None = None
        #: Lowest base ``ctr.log`` can have (raised by retention before it deletes segments).
        self.floor = 0
        #: Cached (first timestamp, last timestamp, end of complete records) per (inode, size).
        self.times: dict[tuple[int, int], tuple[int, int, int]] = {}
        self._load()

    def _load(self) -> None:
        """Reads ``state.json`` if there is one; a damaged file is logged and ignored."""
        try:
            raw = json.loads((self.path / STATE_NAME).read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("log_state_unreadable", path=str(self.path), error=str(exc))
            return
        self.floor = int(raw.get("floor", 0))
        cfg = raw.get("config")
        if cfg:
            self.config = LogConfig(int(cfg["max_size"]), int(cfg["max_files"]))

    def save(self) -> None:
        """Writes ``state.json`` atomically (temp file, fsync, rename) so a crash leaves old or new."""
        state = {"floor": self.floor, "config": asdict(self.config) if self.config else None}
        tmp = self.path / (STATE_NAME + ".tmp")
        with open(tmp, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / STATE_NAME)

    def segments(self) -> list[tuple[int, Path]]:
        """The rotated segments, oldest first: (base, path)."""
        found = []
        try:
            with os.scandir(self.path) as entries:
                for entry in entries:
                    m = _SEGMENT.fullmatch(entry.name)
                    if m:
                        found.append((int(m.group(1)), Path(entry.path)))
        except FileNotFoundError:
            return []
        found.sort()
        return found

    def snapshot(self) -> list[FileInfo]:
        """Every file of the log, oldest first, with its base; empty when there is none.

        ``ctr.log`` is looked at first and the segments after: if a rotation renames it in between,
        its inode shows up among the segments and the snapshot is taken again.
        """
        for _ in range(_SNAPSHOT_TRIES):
            try:
                cur: os.stat_result | None = os.stat(self.current)
            except FileNotFoundError:
                cur = None
            files = []
            for base, path in self.segments():
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue  # deleted by retention meanwhile: older than anything kept
                files.append(FileInfo(base, path, st.st_size, st.st_ino, False))
            if cur is not None and any(f.ino == cur.st_ino for f in files):
                continue
            # Read after listing: retention raises the floor before deleting, so a listing that
            # misses a deleted segment always comes with the raised floor.
            floor = self.floor
            if cur is not None:
                base = max(floor, files[-1].end if files else 0)
                files.append(FileInfo(base, self.current, cur.st_size, cur.st_ino, True))
            return files
        raise RuntimeError(f"log {self.path} keeps changing under its snapshot")

    def current_base(self) -> int:
        """Base ``ctr.log`` has or will have: the end of the newest segment, at least ``floor``."""
        segments = self.segments()
        if not segments:
            return self.floor
        base, path = segments[-1]
        try:
            return max(self.floor, base + os.stat(path).st_size)
        except FileNotFoundError:
            return self.floor

    def exists(self) -> bool:
        """Whether the directory is still there (RemoveLog deletes it)."""
        return self.path.is_dir()


def open_unchanged(info: FileInfo) -> int | None:
    """A read-only fd of ``info``'s file, or None if it is gone or was replaced (another inode) since
    the listing: the caller then lists again."""
    try:
        fd = os.open(info.path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    if os.fstat(fd).st_ino != info.ino:
        os.close(fd)
        return None
    return fd
