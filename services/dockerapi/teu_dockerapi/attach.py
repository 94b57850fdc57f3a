"""POST /containers/{id}/attach: the container's stdio over a connection taken over (hijack.py), as
``docker run`` (without -d), ``docker attach`` and docker-py's ``attach_socket`` use it; over the
gateway's Attach stream; with ``logs=1`` the recorded output comes first.

Docker's clients attach to a created container, then ask for its start. The gateway's Attach starts
a container itself once attached, so that no byte of output is missed: an attach to a container that
is not running waits here (``PENDING``) until this service is asked to start it, and the start is
then the attach's (start.py's handler hands it over and answers once the container left "created")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2
from teu_common import httpauthz as authz
from teu_dockerapi import hijack
from teu_dockerapi.containers import details, flag
from teu_dockerapi.framing import frame
from teu_dockerapi.gateway import PENDING, of, stream
from teu_dockerapi.shapes import RUNNING_STATE as RUNNING

routes = web.RouteTableDef()


def pending(request: web.Request) -> dict[str, asyncio.Event]:
    """Attaches waiting for their container's start, by container id."""
    found: dict[str, asyncio.Event] = request.app[PENDING]
    return found


def setup(app: web.Application) -> None:
    """The tables of waiting attaches and of running processes' inputs of ``app``."""
    app[PENDING] = {}
    app[hijack.INPUTS] = {}


@routes.post("/containers/{id}/attach")
async def attach(request: web.Request) -> web.Response:
    authz.require("/teu.gateway.v1.ContainersService/Attach")  # before the connection is taken over
    g = of(request)
    d = await details(g, request.match_info["id"])
    tty, want_stdin = d.process.terminal, flag(request, "stdin")
    wanted = {types_pb2.STREAM_STDOUT} if flag(request, "stdout") else set()
    if flag(request, "stderr"):
        wanted.add(types_pb2.STREAM_STDERR)

    async def recorded() -> AsyncIterator[bytes]:
        """``logs=1``: what the container wrote so far, from its log (then the live stream, as dockerd
        does: what it writes in between may be missed)."""
        if not wanted:
            return
        req = gw.LogsRequest(containers=[d.summary.id], stdout_only=wanted == {types_pb2.STREAM_STDOUT},
                             stderr_only=wanted == {types_pb2.STREAM_STDERR})  # fmt: skip
        async for batch in stream(g.containers.Logs(req)):  # raw chunks: no timestamps asked
            for chunk in batch.chunks:
                yield chunk.data if tty else frame(chunk.stream, chunk.data)

    async def output(stdin: hijack.Input | None) -> AsyncIterator[bytes]:
        if flag(request, "logs"):
            async for data in recorded():
                yield data
        if not flag(request, "stream"):
            return
        done, start = asyncio.Event(), d.summary.state != RUNNING
        if start:  # until this service is asked to start it: the start is then this attach's
            go = pending(request).setdefault(d.summary.id, asyncio.Event())
            try:
                await go.wait()
            finally:
                pending(request).pop(d.summary.id, None)

        async def requests() -> AsyncIterator[gw.AttachRequest]:
            yield gw.AttachRequest(start=gw.AttachStart(container=d.summary.id, stdin=stdin is not None, start=start))
            async for r in hijack.frames(stdin, lambda f: gw.AttachRequest(frame=f)):
                yield r
            await done.wait()  # the stream stays open until the exit: its end would detach

        forget = hijack.listen(request, d.summary.id, stdin) if stdin is not None else None
        try:
            async for r in stream(g.containers.Attach(requests())):
                if r.frame.HasField("exit"):
                    return
                out = r.frame.output
                if out.data and (tty or out.stream in wanted):
                    yield out.data if tty else frame(out.stream, out.data)
        finally:
            done.set()
            if forget is not None:
                forget()

    return await hijack.relay(request, tty, want_stdin, output)


@routes.post("/containers/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    """The terminal of the container's attached clients changed size."""
    hijack.resize(request, (await details(of(request), request.match_info["id"])).summary.id)
    return web.Response(status=200)
