"""conmon's attach socket and control fifo: a container's (or exec session's) stdio, both ways.

The socket is AF_UNIX SOCK_SEQPACKET. Each packet from conmon is one read of the process's output,
prefixed by one byte naming the stream (2 stdout, 3 stderr); input is raw bytes, at most 32 KiB per
packet (conmon silently cuts larger ones). Shutting down our write side is an EOF on the process's
stdin. The ``ctl`` fifo takes ``1 <rows> <cols>`` (resize) and ``2 0 0`` (reopen the log file); the
runtime is its only writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from teu_api.errors import Internal
from teu_api.types.v1 import types_pb2

MAX_INPUT_PACKET = 32 * 1024
_STREAMS = {2: types_pb2.STREAM_STDOUT, 3: types_pb2.STREAM_STDERR}


class AttachSocket:
    """One client connection to a conmon attach socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    async def connect(cls, path: Path) -> AttachSocket:
        """Connects to ``path``; long paths are reached through /proc/self/fd (sun_path is 108 bytes)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setblocking(False)
        fd = os.open(path, os.O_PATH)
        try:
            await asyncio.get_running_loop().sock_connect(sock, f"/proc/self/fd/{fd}")
        except BaseException:  # a failed or cancelled connect: the socket is ours to close
            sock.close()
            raise
        finally:
            os.close(fd)
        return cls(sock)

    async def output(self) -> AsyncIterator[tuple[types_pb2.Stream.ValueType, bytes]]:
        """(stream, bytes) packets until conmon closes the connection."""
        while (packet := await self.receive()) is not None:
            yield packet

    async def receive(self) -> tuple[types_pb2.Stream.ValueType, bytes] | None:
        """The next (stream, bytes) packet, None once conmon closes the connection; a wait that is
        cancelled loses nothing."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                packet = await loop.sock_recv(self._sock, 65536)
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not packet:
                return None
            stream = _STREAMS.get(packet[0])
            if stream is not None and len(packet) > 1:
                return stream, packet[1:]

    async def send(self, data: bytes) -> None:
        """Input for the process, in packets conmon takes whole."""
        loop = asyncio.get_running_loop()
        for i in range(0, len(data), MAX_INPUT_PACKET):
            await loop.sock_sendall(self._sock, data[i : i + MAX_INPUT_PACKET])

    def close_stdin(self) -> None:
        """EOF on the process's stdin (conmon closes it when our side stops writing)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Disconnects (a detach: the process keeps running).

        The socket leaves the event loop first. asyncio keeps a key per fd number: closed while a
        receive still waited, the socket's key would outlive it, and the next file given that number
        would be "added" by updating the stale key, never watched by epoll (a wait on it for ever)."""
        if self._sock.fileno() >= 0:
            with contextlib.suppress(RuntimeError):  # no loop running: nothing registered by us
                loop = asyncio.get_running_loop()
                loop.remove_reader(self._sock.fileno())
                loop.remove_writer(self._sock.fileno())
        self._sock.close()


def resize(ctl: Path, rows: int, cols: int) -> None:
    """Asks conmon to resize the terminal; a no-op once conmon is gone or not listening."""
    with contextlib.suppress(Internal):
        _control(ctl, f"1 {rows} {cols}\n".encode())


def reopen_log(ctl: Path) -> bool:
    """Asks conmon to reopen its log file (it creates a new one at its path); False if conmon is gone.

    The logs service asks this right after renaming the file into a segment: conmon goes on writing to
    the renamed file until it reads this line, so nothing is lost. Sent while the file still exists
    under its name, the new file would replace it (notes on conmon's truncation in docs)."""
    return _control(ctl, b"2 0 0\n")


def _control(ctl: Path, line: bytes) -> bool:
    """Writes one command line to conmon's control fifo, never blocking; False when no conmon listens
    (the fifo is gone, or has no reader: ENXIO). A line is shorter than PIPE_BUF, so it arrives whole;
    a full fifo (conmon not reading) is an error, not a conmon that is gone."""
    try:
        fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENXIO):
            return False
        raise Internal(f"conmon's control fifo: {exc.strerror}") from None
    try:
        os.write(fd, line)
        return True
    except BlockingIOError:
        raise Internal("conmon's control fifo is full: conmon is not reading it") from None
    finally:
        os.close(fd)
