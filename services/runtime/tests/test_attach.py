"""The attach socket's close while a receive waits: the number it frees must work for the next file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from teu_runtime.attach import AttachSocket
from teu_runtime.conmon import read_line


async def _close_while_receiving() -> bytes:
    ours, conmons = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    attach = AttachSocket(ours)
    number = ours.fileno()
    waiting = asyncio.create_task(attach.receive())
    await asyncio.sleep(0.01)  # the receive now waits on the loop
    attach.close()  # a client went away: its stream closes the socket while the receive still waits
    conmons.close()
    r, w = os.pipe()  # the next file gets the number the socket freed
    try:
        assert number in (r, w)
        if w == number:
            r, w = w, r
        asyncio.get_running_loop().call_later(0.05, os.write, w, b"done\n")  # after the reader waits
        return await asyncio.wait_for(read_line(r), 5)
    finally:
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        os.close(r)
        os.close(w)


def test_a_closed_socket_leaves_no_stale_registration() -> None:
    """asyncio keeps a key per fd number: a socket closed under a pending receive used to leave its key,
    and a pipe that got the same number was never watched (the runtime waited for ever on it)."""
    assert asyncio.run(_close_while_receiving()) == b"done\n"
