"""The public Attach and Exec streams: resolve the container, then relay frames to and from the runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from teu_api.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.types.v1 import types_pb2 as t
from teu_common.opening import first_message
from teu_gateway.backends import stream
from teu_gateway.flows import Flows


async def _relay(requests: AsyncIterator[Any], opening: Any, kind: type) -> AsyncIterator[Any]:
    yield opening
    async for req in requests:
        if req.WhichOneof("part") == "frame":
            yield kind(frame=req.frame)


async def attach(f: Flows, requests: AsyncIterator[gw.AttachRequest]) -> AsyncIterator[gw.AttachResponse]:
    """Attach (and optionally start): output and the exit flow back; ``--rm`` containers are removed
    once they exit, also when the client detached first."""
    start: gw.AttachStart = (await first_message(requests, "start")).start
    c = await f.find(start.container)
    rootfs = await f.rootfs(c.id) if start.start else []
    opening = rt.AttachRequest(open=rt.AttachOpen(id=c.id, stdin=start.stdin, start=start.start, size=start.size, rootfs=rootfs))
    removal: asyncio.Task[None] | None = None
    exited = False
    try:
        async for resp in stream("runtime", f.b.runtime.Attach(_relay(requests, opening, rt.AttachRequest))):
            exited = exited or resp.frame.WhichOneof("frame") == "exit"
            yield gw.AttachResponse(frame=resp.frame)
    finally:
        if c.spec.auto_remove:  # the output is streamed, or the client detached: removed once it exits
            removal = f.auto_remover.watch(c.id)
    if removal is not None and exited:
        await asyncio.shield(removal)  # the stream ends once the container is gone, as `run --rm` does


async def exec_(f: Flows, requests: AsyncIterator[gw.ExecRequest]) -> AsyncIterator[gw.ExecResponse]:
    """Exec: the session id, output, then the exit code."""
    start: gw.ExecStart = (await first_message(requests, "start")).start
    c = await f.find(start.container)
    process = t.Process(
        args=list(start.cmd), env=list(start.env), cwd=start.working_dir, user=start.user,
        terminal=start.tty, open_stdin=start.stdin,
    )  # fmt: skip
    if start.working_dir and not start.working_dir.startswith("/"):
        raise InvalidArgument(f"the working directory {start.working_dir!r} is invalid: it needs to be an absolute path")
    opening = rt.ExecRequest(open=rt.ExecOpen(id=c.id, process=process, size=start.size))
    async for resp in stream("runtime", f.b.runtime.Exec(_relay(requests, opening, rt.ExecRequest))):
        if resp.WhichOneof("part") == "exec_id":
            yield gw.ExecResponse(exec_id=resp.exec_id)
        else:
            yield gw.ExecResponse(frame=resp.frame)
