"""The input side of a connection Docker's clients take over (``Connection: Upgrade``, ``Upgrade:
tcp``): after the request, the client's bytes are the process's stdin, and its half-close is
stdin's end while the output still flows back.

aiohttp hands an upgraded connection's bytes to a payload parser its protocol lets one set (how its
own websockets read). The transport's protocol is wrapped so that the client's half-close keeps the
connection open (aiohttp's own closes it both ways, and the output would be lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from teu_api.errors import FailedPrecondition, TeuError
from teu_api.types.v1 import types_pb2
from teu_dockerapi.framing import frame

Input = asyncio.Queue[bytes]


async def relay(
    request: web.Request, tty: bool, stdin: bool, output: Callable[[Input | None], AsyncIterator[bytes]]
) -> web.Response:
    """Takes the connection over as Docker does (``101 UPGRADED`` when the client asked ``Upgrade:
    tcp``, else ``200 OK``), writes ``output`` (given the client's input when ``stdin`` and the
    connection was upgraded) raw to it until it ends, then closes it."""
    transport = request.transport
    if transport is None:
        raise FailedPrecondition("the connection is gone")
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    kind = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    status = "101 UPGRADED" if upgrade else "200 OK"
    upgraded = "Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else ""
    transport.write(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n{upgraded}\r\n".encode())
    # an upgraded connection's input is taken even when it is not the process's: a client that
    # half-closes at once (the docker CLI without -i) must not end the connection, output and all
    given = input_of(request) if upgrade else None
    try:
        async for data in output(given if stdin else None):
            transport.write(data)
    except TeuError as exc:  # the headers are gone: say it on stderr, as the process would
        message = exc.message.encode() + b"\n"
        transport.write(message if tty else frame(types_pb2.STREAM_STDERR, message))
    transport.close()  # the connection was taken over: its end is the output's end
    return web.Response()  # never written: the transport is closed


class _Input:
    """The payload parser of an upgraded connection: every byte, then b"" at the end, into a queue."""

    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")


def input_of(request: web.Request) -> asyncio.Queue[bytes]:
    """The client's bytes after an upgraded request, b"" once it half-closes or goes."""
    protocol = request.protocol
    if protocol is None:
        raise FailedPrecondition("the connection is gone")
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    protocol.set_parser(_Input(queue))  # type: ignore[arg-type]
    transport = request.transport
    if transport is not None:
        transport.set_protocol(_KeepOpen(protocol, queue))
    return queue


class _KeepOpen(asyncio.Protocol):
    """aiohttp's protocol, but a half-close by the client only ends the input."""

    def __init__(self, inner: asyncio.Protocol, queue: asyncio.Queue[bytes]) -> None:
        self.inner = inner
        self.queue = queue

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool:
        self.queue.put_nowait(b"")
        return True  # keep the connection: the output goes on

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
