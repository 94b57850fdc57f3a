"""/containers/{id}/exec and /exec/{id}/...: Docker's two-step exec (create, then start) over the
gateway's one Exec stream, which starts its process when opened.

An exec is kept here between its create and its start, and after it, for inspect (in memory: a
restart of this service forgets them, as a restart of dockerd forgets its execs). Start answers as
Docker does: it takes the connection over (``101 UPGRADED`` when the client asked ``Upgrade: tcp``,
else ``200 OK``) and writes the output raw, framed (framing.py) without a terminal, until the
process exits; then it closes the connection.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound, TeuError, Unimplemented
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2
from teu_dockerapi import shapes
from teu_dockerapi.containers import details, json_body
from teu_dockerapi.framing import frame
from teu_dockerapi.gateway import Gateway, of, stream

log = structlog.get_logger()
routes = web.RouteTableDef()
KEPT = 1000  # ended execs kept for inspect, the oldest forgotten first


@dataclass
class Exec:
    """One exec, from its create to its end."""

    id: str
    container: str
    start: gw.ExecStart
    started: bool = False
    running: bool = False
    exit_code: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


EXECS = web.AppKey("execs", dict)


def _execs(request: web.Request) -> dict[str, Exec]:
    found: dict[str, Exec] = request.app[EXECS]
    return found


def _find(request: web.Request) -> Exec:
    ex = _execs(request).get(request.match_info["id"])
    if ex is None:
        raise NotFound(f"No such exec instance: {request.match_info['id'][:64]}")
    return ex


@routes.post("/containers/{id}/exec")
async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    cmd = shapes.strings(body, "Cmd")
    if not cmd:
        raise InvalidArgument("No exec command specified")
    if body.get("AttachStdin"):
        raise Unimplemented("exec with stdin (docker exec -i) is not served yet")
    c = await details(of(request), request.match_info["id"])
    if c.summary.state != shapes.RUNNING_STATE:
        raise FailedPrecondition(f"container {c.summary.id} is not running")
    start = gw.ExecStart(container=c.summary.id, cmd=cmd, env=shapes.strings(body, "Env"), user=body.get("User") or "",
                         working_dir=body.get("WorkingDir") or "", tty=bool(body.get("Tty")))  # fmt: skip
    execs = _execs(request)
    if len(execs) >= KEPT:
        for old in [k for k, e in execs.items() if e.started and not e.running][: len(execs) - KEPT + 1]:
            del execs[old]
    ex = Exec(secrets.token_hex(32), c.summary.id, start)
    execs[ex.id] = ex
    return web.json_response({"Id": ex.id}, status=201)


@routes.get("/exec/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    ex = _find(request)
    s, ended = ex.start, ex.started and not ex.running
    return web.json_response({
        "ID": ex.id, "ContainerID": ex.container, "Running": ex.running, "ExitCode": ex.exit_code if ended else None,
        "ProcessConfig": {"entrypoint": s.cmd[0], "arguments": list(s.cmd[1:]), "tty": s.tty, "user": s.user},
        "OpenStdin": False, "OpenStdout": True, "OpenStderr": True, "CanRemove": False, "DetachKeys": "", "Pid": 0,
    })  # fmt: skip


async def _frames(g: Gateway, ex: Exec) -> AsyncIterator[bytes]:
    """The output of the exec's process, as Docker writes it; records its exit."""

    async def requests() -> AsyncIterator[gw.ExecRequest]:
        yield gw.ExecRequest(start=ex.start)
        await ex.done.wait()  # the stream stays open until the exit: its end would detach

    ex.started = ex.running = True
    try:
        async for r in stream(g.containers.Exec(requests())):
            if not r.HasField("frame"):
                continue
            if r.frame.HasField("exit"):
                ex.exit_code = r.frame.exit.exit_code
                return
            out = r.frame.output
            yield out.data if ex.start.tty else frame(out.stream, out.data)
    finally:
        ex.running = False
        ex.done.set()


@routes.post("/exec/{id}/start")
async def start(request: web.Request) -> web.StreamResponse:
    ex = _find(request)
    if ex.started:
        raise FailedPrecondition("exec has already been started")
    body = await json_body(request)
    g = of(request)
    if body.get("Detach"):
        asyncio.get_running_loop().create_task(_drain(g, ex))
        return web.Response(status=200)
    transport = request.transport
    if transport is None:
        raise FailedPrecondition("the connection is gone")
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    kind = "application/vnd.docker.raw-stream" if ex.start.tty else "application/vnd.docker.multiplexed-stream"
    status = "101 UPGRADED" if upgrade else "200 OK"
    upgraded = "Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else ""
    transport.write(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n{upgraded}\r\n".encode())
    try:
        async for data in _frames(g, ex):
            transport.write(data)
    except TeuError as exc:  # the headers are gone: say it on stderr, as the process would
        transport.write(
            frame(types_pb2.STREAM_STDERR, exc.message.encode() + b"\n") if not ex.start.tty else exc.message.encode()
        )
    transport.close()  # the connection was taken over: its end is the output's end
    return web.Response()  # never written: the transport is closed


async def _drain(g: Gateway, ex: Exec) -> None:
    """A detached exec: its output is dropped, its exit recorded."""
    try:
        async for _ in _frames(g, ex):
            pass
    except TeuError as exc:
        log.info("exec_detached_failed", exec_id=ex.id[:12], error=exc.message)


def setup(app: web.Application) -> None:
    """The exec table of ``app``."""
    app[EXECS] = {}
