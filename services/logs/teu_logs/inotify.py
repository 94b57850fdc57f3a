"""Linux inotify through libc (the standard library has no binding): which log directories changed.

Rotation reacts to a log's growth within milliseconds instead of on a timer, so a fast writer cannot
outrun it between two looks. Only directory watches are used; events on the files inside them (conmon
writing ``ctr.log``, or the segment it still writes after a rename) name the directory's watch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from pathlib import Path
from typing import Final

IN_MODIFY: Final = 0x00000002
IN_CLOSE_WRITE: Final = 0x00000008
IN_MOVED_TO: Final = 0x00000080
IN_CREATE: Final = 0x00000100
IN_NONBLOCK: Final = os.O_NONBLOCK
IN_CLOEXEC: Final = os.O_CLOEXEC
#: What wakes rotation: a write, a file conmon closed (its exit), a file created or renamed into place.
LOG_EVENTS: Final = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
_HEADER: Final = struct.Struct("iIII")  # wd, mask, cookie, len (of the name that follows)

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


class Inotify:
    """One non-blocking inotify instance; :attr:`fd` becomes readable when watched directories change."""

    def __init__(self) -> None:
        self.fd = _check(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")

    def watch(self, directory: Path, mask: int = LOG_EVENTS) -> int:
        """Watches ``directory`` (the same directory twice gives the same watch); returns the watch id."""
        return _check(_libc.inotify_add_watch(self.fd, os.fsencode(directory), mask), f"inotify_add_watch {directory}")

    def unwatch(self, wd: int) -> None:
        """Stops a watch (a no-op if the directory is gone: the kernel dropped the watch already)."""
        _libc.inotify_rm_watch(self.fd, wd)

    def changed(self) -> set[int]:
        """The watches with events since the last call (without blocking); empty when there are none."""
        wds: set[int] = set()
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return wds
            pos = 0
            while pos + _HEADER.size <= len(data):
                wd, _mask, _cookie, length = _HEADER.unpack_from(data, pos)
                wds.add(wd)
                pos += _HEADER.size + length

    def close(self) -> None:
        """Releases the instance and its watches."""
        os.close(self.fd)
