"""/containers/{id}/exec and /exec/{id}/...: Docker's two-step exec (create, then start) over the
gateway's one Exec stream, which starts its process when opened.

An exec is kept here between its create and its start, and after it, for inspect (in memory: a
restart of this service forgets them, as a restart of dockerd forgets its execs). Start answers as
Docker does: it takes the connection over (hijack.py), the client's bytes being the process's stdin
(``AttachStdin``), and writes the output raw, framed (framing.py) without a terminal, until the
process exits; then it closes the connection.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound, TeuError
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_common import httpauthz as authz
from teu_dockerapi import hijack, shapes
from teu_dockerapi.containers import details, json_body
from teu_dockerapi.framing import frame
from teu_dockerapi.gateway import Gateway, of, stream

log = structlog.get_logger()
routes = web.RouteTableDef()
KEPT = 1000  # ended execs kept for inspect, the oldest forgotten first
EXEC = "/teu.gateway.v1.ContainersService/Exec"


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
    input: hijack.Input | None = None  # while it runs with its stdin: where its window sizes go


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
    authz.require(EXEC)
    body = await json_body(request)
    cmd = shapes.strings(body, "Cmd")
    if not cmd:
        raise InvalidArgument("No exec command specified")
    c = await details(of(request), request.match_info["id"])
    if c.summary.state != shapes.RUNNING_STATE:
        raise FailedPrecondition(f"container {c.summary.id} is not running")
    start = gw.ExecStart(container=c.summary.id, cmd=cmd, env=shapes.strings(body, "Env"), user=body.get("User") or "",
                         working_dir=body.get("WorkingDir") or "", tty=bool(body.get("Tty")),
                         stdin=bool(body.get("AttachStdin")))  # fmt: skip
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
        "OpenStdin": s.stdin, "OpenStdout": True, "OpenStderr": True, "CanRemove": False, "DetachKeys": "", "Pid": 0,
    })  # fmt: skip


async def _frames(g: Gateway, ex: Exec, stdin: hijack.Input | None = None) -> AsyncIterator[bytes]:
    """The output of the exec's process, as Docker writes it, with ``stdin`` (bytes; b"" at its end)
    as its input; records its exit."""

    async def requests() -> AsyncIterator[gw.ExecRequest]:
        yield gw.ExecRequest(start=ex.start)
        async for r in hijack.frames(stdin, lambda f: gw.ExecRequest(frame=f)):
            yield r
        await ex.done.wait()  # the stream stays open until the exit: its end would detach

    ex.started = ex.running = True
    ex.input = stdin
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
        ex.input = None
        ex.done.set()


@routes.post("/exec/{id}/start")
async def start(request: web.Request) -> web.StreamResponse:
    authz.require(EXEC)  # before the connection is taken over: a refusal is then an answer of its own
    ex = _find(request)
    if ex.started:
        raise FailedPrecondition("exec has already been started")
    body = await json_body(request)
    g = of(request)
    if body.get("Detach"):
        asyncio.get_running_loop().create_task(_drain(g, ex))
        return web.Response(status=200)
    return await hijack.relay(request, ex.start.tty, ex.start.stdin, lambda stdin: _frames(g, ex, stdin))


@routes.post("/exec/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    """The exec's terminal changed size (it takes effect while its input is attached)."""
    ex, size = _find(request), hijack.window(request)
    if ex.input is not None:
        ex.input.put_nowait(size)
    return web.Response(status=200)


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
