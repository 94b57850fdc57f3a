"""The runtime's bidirectional stdio streams: Attach (a container's own process) and Exec."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from teu_api.errors import FailedPrecondition, InvalidArgument
from teu_api.runtime.v1 import runtime_pb2 as pb
from teu_api.types.v1 import types_pb2 as t
from teu_common.signals import parse_signal
from teu_runtime import execs
from teu_runtime.attach import AttachSocket, resize
from teu_runtime.bundle import Bundle
from teu_runtime.manager import RUNNING, Manager
from teu_runtime.spec import exit_code_for_start_error

Frames = AsyncIterator[t.StdinFrame]
#: Sends a signal (a number) to the stream's process.
Signaller = Callable[[int], Awaitable[None]]


async def _forward_input(frames: Frames, sock: AttachSocket, ctl: Path, stdin: bool, send_signal: Signaller) -> bool:
    """Client frames → the process: input bytes, resizes, end of input, signals. Returns whether the
    client closed stdin before it stopped sending (if not, its end of the stream is a detach)."""
    closed = False
    async for f in frames:
        kind = f.WhichOneof("frame")
        if kind == "data" and stdin:
            await sock.send(f.data)
        elif kind == "resize":
            resize(ctl, f.resize.rows, f.resize.cols)
        elif kind == "close_stdin":
            closed = True
            if stdin:
                sock.close_stdin()
        elif kind == "signal":
            await send_signal(parse_signal(f.signal))
    return closed


class Pump:
    """Output frames until the process's output ends, while input is forwarded alongside.

    A client that ends its side of the stream without closing stdin has detached: the pump stops
    then, after every frame it sent has reached the process (so keys typed just before a detach are
    never lost, as they could be if the client cancelled the call instead).
    """

    def __init__(self, sock: AttachSocket, frames: Frames, ctl: Path, stdin: bool, send_signal: Signaller) -> None:
        self.sock, self.frames, self.ctl, self.stdin, self.send_signal = sock, frames, ctl, stdin, send_signal
        self.detached = False

    async def __aiter__(self) -> AsyncIterator[t.OutputFrame]:
        feeder = asyncio.create_task(_forward_input(self.frames, self.sock, self.ctl, self.stdin, self.send_signal))
        output = aiter(self.sock.output())
        packet: asyncio.Future[tuple[t.Stream.ValueType, bytes] | None] | None = None
        try:
            while True:
                packet = asyncio.ensure_future(anext(output, None))
                if not feeder.done():
                    await asyncio.wait({packet, feeder}, return_when=asyncio.FIRST_COMPLETED)
                if feeder.done() and not packet.done() and (feeder.exception() is not None or not feeder.result()):
                    packet.cancel()
                    if (exc := feeder.exception()) is not None:
                        raise exc
                    self.detached = True
                    return
                item = await packet
                if item is None:
                    return
                yield t.OutputFrame(output=t.OutputChunk(stream=item[0], data=item[1]))
        finally:  # nothing of ours waits on the socket once the pump ends (its owner closes it)
            feeder.cancel()
            if packet is not None:
                packet.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # their own failures are theirs (return_exceptions)
                await asyncio.gather(*(task for task in (feeder, packet) if task is not None), return_exceptions=True)


def _size(size: t.WindowSize) -> tuple[int, int] | None:
    return (size.rows, size.cols) if size.rows and size.cols else None


async def attach(m: Manager, open_: pb.AttachOpen, frames: Frames) -> AsyncIterator[t.OutputFrame]:
    """Attach: connect (then start, if asked), stream output, end with the exit status."""
    c = m.store.get(open_.id)
    bundle = m.bundle(c.id)
    connected: list[AttachSocket] = []

    async def connect(at: Bundle) -> None:
        connected.append(await AttachSocket.connect(at.attach))
        if size := _size(open_.size):
            resize(at.ctl, *size)

    if open_.stdin and not (c.spec.process.open_stdin or c.spec.process.terminal):
        raise InvalidArgument("the container was not created with an open stdin (-i) or a terminal (-t)")
    if open_.start:
        c = await m.start(c.id, open_.rootfs, on_created=connect)
        if c.state != RUNNING:
            yield t.OutputFrame(exit=t.ExitStatus(exit_code=c.exit_code, error=c.error))
            return
    elif c.state != RUNNING:
        raise FailedPrecondition(f"container {c.name} is not running: start it first")
    else:
        await connect(bundle)
    sock = connected[0]

    async def send_signal(sig: int) -> None:
        await m.kill(c.id, sig)

    pump = Pump(sock, frames, bundle.ctl, open_.stdin, send_signal)
    try:
        async for frame in pump:
            yield frame
    finally:
        sock.close()
    if pump.detached:  # the container runs on; this client left
        return
    c = await m.wait(c.id)
    yield t.OutputFrame(exit=t.ExitStatus(exit_code=c.exit_code, oom_killed=c.oom_killed, error=c.error))


async def exec_(m: Manager, open_: pb.ExecOpen, frames: Frames) -> AsyncIterator[str | t.OutputFrame]:
    """Exec: start the session and yield its id at once, then its output, then its exit status."""
    session = await m.exec(open_.id, open_.process, _size(open_.size))
    finished = False

    async def finish() -> int:
        code = await session.exit_code()
        m.exec_ended(open_.id, session.id, code)
        session.cleanup()
        return code

    try:
        yield session.id
        if session.error:
            code = exit_code_for_start_error(session.error)
            await session.exit_code()
            session.cleanup()
            finished = True
            yield t.OutputFrame(exit=t.ExitStatus(exit_code=code, error=session.error))
            return
        assert session.sock is not None
        try:
            process = execs.Process(session.pid)
        except OSError:  # it ended already: nothing to signal
            process = None

        async def send_signal(sig: int) -> None:
            if process is not None:
                process.send_signal(sig)

        pump = Pump(session.sock, frames, session.dir.ctl, open_.process.open_stdin, send_signal)
        try:
            async for frame in pump:
                yield frame
        finally:
            if process is not None:
                process.close()
        if pump.detached:
            return  # the finally below records the session's end once its process exits
        finished = True
        yield t.OutputFrame(exit=t.ExitStatus(exit_code=await finish()))
    finally:
        if not finished:  # the client went away: the process keeps running; record its end later
            if session.sock:
                session.sock.close()
            m.background(finish())
