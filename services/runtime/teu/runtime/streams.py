"""The runtime's bidirectional stdio streams: Attach (a container's own process) and Exec."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from teu.errors import FailedPrecondition, InvalidArgument
from teu.runtime.attach import AttachSocket, resize
from teu.runtime.manager import RUNNING, Manager
from teu.runtime.spec import exit_code_for_start_error
from teu.runtime.v1 import runtime_pb2 as pb
from teu.types.v1 import types_pb2 as t

Frames = AsyncIterator[t.StdinFrame]


async def _forward_input(frames: Frames, sock: AttachSocket, ctl: Path, stdin: bool) -> None:
    """Client frames → the process: input bytes, resizes, end of input."""
    async for f in frames:
        kind = f.WhichOneof("frame")
        if kind == "data" and stdin:
            await sock.send(f.data)
        elif kind == "resize":
            resize(ctl, f.resize.rows, f.resize.cols)
        elif kind == "close_stdin" and stdin:
            sock.close_stdin()


async def _pump(sock: AttachSocket, frames: Frames, ctl: Path, stdin: bool) -> AsyncIterator[t.OutputFrame]:
    """Output frames until the process's output ends, while input is forwarded alongside."""
    feeder = asyncio.create_task(_forward_input(frames, sock, ctl, stdin))
    try:
        async for stream, data in sock.output():
            yield t.OutputFrame(output=t.OutputChunk(stream=stream, data=data))
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await feeder


def _size(size: t.WindowSize) -> tuple[int, int] | None:
    return (size.rows, size.cols) if size.rows and size.cols else None


async def attach(m: Manager, open_: pb.AttachOpen, frames: Frames) -> AsyncIterator[t.OutputFrame]:
    """Attach: connect (then start, if asked), stream output, end with the exit status."""
    c = m.store.get(open_.id)
    bundle = m.bundle(c.id)
    connected: list[AttachSocket] = []

    async def connect(at: Path) -> None:
        connected.append(await AttachSocket.connect(at / "attach"))
        if size := _size(open_.size):
            resize(at / "ctl", *size)

    if open_.stdin and not (c.spec.process.open_stdin or c.spec.process.terminal):
        raise InvalidArgument("the container was not created with an open stdin (-i) or a terminal (-t)")
    if open_.start:
        c = await m.start(c.id, on_created=connect)
        if c.state != RUNNING:
            yield t.OutputFrame(exit=t.ExitStatus(exit_code=c.exit_code, error=c.error))
            return
    elif c.state != RUNNING:
        raise FailedPrecondition(f"container {c.name} is not running: start it first")
    else:
        await connect(bundle)
    sock = connected[0]
    try:
        async for frame in _pump(sock, frames, bundle / "ctl", open_.stdin):
            yield frame
    finally:
        sock.close()
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
        async for frame in _pump(session.sock, frames, session.dir / "ctl", open_.process.open_stdin):
            yield frame
        finished = True
        yield t.OutputFrame(exit=t.ExitStatus(exit_code=await finish()))
    finally:
        if not finished:  # the client went away: the process keeps running; record its end later
            if session.sock:
                session.sock.close()
            m.background(finish())
