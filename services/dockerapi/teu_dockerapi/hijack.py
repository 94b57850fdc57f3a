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
from typing import TypeVar

from aiohttp import web

from teu_api.errors import FailedPrecondition, InvalidArgument, TeuError
from teu_api.types.v1 import types_pb2
from teu_dockerapi.framing import frame

#: What a process taken over gets: the client's bytes (b"" at their end), and new window sizes
#: (POST /containers/{id}/resize, /exec/{id}/resize) while it runs.
T = TypeVar("T")
Input = asyncio.Queue[bytes | types_pb2.WindowSize]
#: The inputs of the processes running now, by container or exec id, for the resize endpoints.
INPUTS = web.AppKey("inputs", dict)


def inputs(request: web.Request, key: str) -> list[Input]:
    """The inputs listening for ``key``'s window size."""
    table: dict[str, list[Input]] = request.app[INPUTS]
    return table.setdefault(key, [])


def listen(request: web.Request, key: str, given: Input) -> Callable[[], None]:
    """Registers ``given`` for ``key``'s resizes; returns what unregisters it."""
    inputs(request, key).append(given)

    def forget() -> None:
        table: dict[str, list[Input]] = request.app[INPUTS]
        found = table.get(key, [])
        if given in found:
            found.remove(given)
        if not found:
            table.pop(key, None)

    return forget


def window(request: web.Request) -> types_pb2.WindowSize:
    """The window size ``h`` x ``w`` of a resize request."""
    try:
        rows, cols = int(request.query.get("h", "0")), int(request.query.get("w", "0"))
    except ValueError:
        raise InvalidArgument("h and w must be numbers") from None
    if not (0 < rows < 1 << 16 and 0 < cols < 1 << 16):
        raise InvalidArgument(f"invalid window size {rows}x{cols}")
    return types_pb2.WindowSize(rows=rows, cols=cols)


def resize(request: web.Request, key: str) -> None:
    """Hands the request's window size to every process of ``key`` that takes input."""
    size = window(request)
    for given in inputs(request, key):
        given.put_nowait(size)


async def frames(given: Input | None, data: Callable[[types_pb2.StdinFrame], T]) -> AsyncIterator[T]:
    """The stream requests of ``given``: its bytes and window sizes as frames (wrapped by ``data``),
    then the end of input."""
    if given is None:
        return
    while item := await given.get():
        frame_ = types_pb2.StdinFrame(resize=item) if isinstance(item, types_pb2.WindowSize) else types_pb2.StdinFrame(data=item)
        yield data(frame_)
    yield data(types_pb2.StdinFrame(close_stdin=True))


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

    def __init__(self, queue: Input) -> None:
        self.queue = queue

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")


def input_of(request: web.Request) -> Input:
    """The client's bytes after an upgraded request, b"" once it half-closes or goes."""
    protocol = request.protocol
    if protocol is None:
        raise FailedPrecondition("the connection is gone")
    queue: Input = asyncio.Queue()
    protocol.set_parser(_Input(queue))  # type: ignore[arg-type]
    transport = request.transport
    if transport is not None:
        transport.set_protocol(_KeepOpen(protocol, queue))
    return queue


class _KeepOpen(asyncio.Protocol):
    """aiohttp's protocol, but a half-close by the client only ends the input."""

    def __init__(self, inner: asyncio.Protocol, queue: Input) -> None:
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
