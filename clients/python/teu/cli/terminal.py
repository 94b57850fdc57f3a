"""The local terminal of an interactive session: raw mode, window size, detach keys."""

from __future__ import annotations

import os
import termios
import tty
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["DEFAULT_DETACH_KEYS", "DetachScanner", "parse_detach_keys", "raw_mode", "window_size"]

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
# Docker's names of the control characters, by code: ctrl-@ is NUL, ctrl-a is 1 ... ctrl-_ is 31.
_CONTROL = ["@", *"abcdefghijklmnopqrstuvwxyz", "[", "\\", "]", "^", "_"]


def parse_detach_keys(spec: str) -> bytes:
    """The byte sequence of a Docker ``--detach-keys`` value ("ctrl-p,ctrl-q", "ctrl-\\\\,x", "DEL").

    An empty value means the default. Raises ValueError naming the key it does not understand.
    """
    keys = bytearray()
    for key in (spec or DEFAULT_DETACH_KEYS).split(","):
        if len(key) == 1 and key.isascii():
            keys.append(ord(key))
        elif key == "DEL":
            keys.append(127)
        elif key.lower().startswith("ctrl-") and (name := key[5:].lower().replace("\\\\", "\\")) in _CONTROL:
            keys.append(_CONTROL.index(name))
        else:
            raise ValueError(f"unknown key {key!r}")
    return bytes(keys)


class DetachScanner:
    """Finds the detach sequence in a stream of input, holding back bytes that may begin it.

    ``feed`` returns the bytes safe to forward and whether the full sequence was seen; bytes after
    the sequence are dropped (the session ends). A partial match followed by other input is
    forwarded whole, even when the sequence is split across reads.
    """

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = bytearray()

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Scans one read; returns (bytes to forward, whether to detach)."""
        if not self.keys:
            return data, False
        if not self._held and self.keys[0] not in data:
            return data, False  # the common case, kept cheap for pastes
        out = bytearray()
        for byte in data:
            self._held.append(byte)
            # Release bytes from the front until what is held could still begin the sequence.
            while self._held and not self.keys.startswith(self._held):
                out.append(self._held.pop(0))
            if len(self._held) == len(self.keys):
                self._held.clear()
                return bytes(out), True
        return bytes(out), False


def window_size(*fds: int) -> tuple[int, int] | None:
    """(rows, cols) of the first of ``fds`` that is a terminal, else None."""
    for fd in fds:
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        return size.lines, size.columns
    return None


@contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Puts terminal ``fd`` in raw mode (keys pass as bytes, no echo, no signals) and always restores it."""
    saved = termios.tcgetattr(fd)
    try:
        # TCSANOW, not TCSADRAIN: restoring must never wait on output nobody reads.
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
